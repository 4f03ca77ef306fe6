//! The runtime's clock: tokio's, moved on by the time the machine has spent suspended since the
//! process started.
//!
//! tokio's clock is CLOCK_MONOTONIC on Linux, which stands still while the machine is suspended
//! (a laptop lid, a VM put to sleep) while the peers' clocks go on. A fence measured on it would
//! outlast a suspend: the instance would wake believing its lease good and receive from queues a
//! peer took over meanwhile. On this clock a suspend is what the protocol already survives, a
//! pause: on waking the fence is past, the pollers stop, and the next heartbeat renews the life
//! or learns that it is lost. The core's time, every fence, send-by and give-up time and the
//! health checks are on this clock; tokio's timers are set from it with [`timer`].
//!
//! The suspended time is CLOCK_BOOTTIME less CLOCK_MONOTONIC, counted in whole milliseconds from
//! the first reading; elsewhere than Linux it reads as zero (see the README's limits).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::{Duration, Instant};

/// Now on this clock.
pub fn now() -> Instant {
    Instant::now() + suspended()
}

/// The moment on tokio's clock at which `t` on this clock falls, as far as is known now: what a
/// timer for `t` waits for (a suspend during the wait makes it fire late, and [`now`] then
/// shows `t` long past).
pub fn timer(t: Instant) -> Instant {
    t.checked_sub(suspended()).unwrap_or(t)
}

/// How long the machine has been suspended since the first reading; never decreases, and never
/// more than the truth: a reading delayed by a preemption only makes it smaller.
fn suspended() -> Duration {
    static FIRST: OnceLock<u64> = OnceLock::new();
    static MOST: AtomicU64 = AtomicU64::new(0);
    let (least, most) = asleep_micros();
    let first = *FIRST.get_or_init(|| most);
    let ms = least.saturating_sub(first) / 1_000;
    let ms = MOST.fetch_max(ms, Ordering::Relaxed).max(ms);
    Duration::from_millis(ms) + pretend::get()
}

/// CLOCK_BOOTTIME less CLOCK_MONOTONIC in microseconds, as bounds: the boot clock is read
/// between two monotonic readings, and the difference lies between what it is against each.
#[cfg(target_os = "linux")]
fn asleep_micros() -> (u64, u64) {
    use rustix::time::{ClockId, Timespec, clock_gettime};
    fn micros(t: Timespec) -> i128 {
        i128::from(t.tv_sec) * 1_000_000 + i128::from(t.tv_nsec) / 1_000
    }
    let before = micros(clock_gettime(ClockId::Monotonic));
    let boot = micros(clock_gettime(ClockId::Boottime));
    let after = micros(clock_gettime(ClockId::Monotonic));
    let clamp = |v: i128| u64::try_from(v).unwrap_or(0);
    (clamp(boot - after), clamp(boot - before))
}

#[cfg(not(target_os = "linux"))]
fn asleep_micros() -> (u64, u64) {
    (0, 0)
}

/// A suspend made up by a test, on the test's thread only.
#[cfg(test)]
pub(crate) mod pretend {
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        static SUSPENDED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    /// This thread's clock behaves as if the machine had been suspended for `d` more.
    pub(crate) fn suspend(d: Duration) {
        SUSPENDED.with(|s| s.set(s.get() + d));
    }

    pub(super) fn get() -> Duration {
        SUSPENDED.with(Cell::get)
    }
}

#[cfg(not(test))]
mod pretend {
    use std::time::Duration;

    pub(super) fn get() -> Duration {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspend_moves_the_clock_on_and_timers_back() {
        let before = now();
        let deadline = before + Duration::from_secs(5);
        let timer_before = timer(deadline);
        pretend::suspend(Duration::from_secs(60));
        assert!(now() >= before + Duration::from_secs(60));
        assert!(
            now() > deadline,
            "a deadline 5 s ahead is past after a minute asleep"
        );
        assert!(
            timer(deadline) + Duration::from_secs(60) <= timer_before + Duration::from_millis(1)
        );
    }

    #[test]
    fn without_a_suspend_it_is_tokios_clock() {
        let (a, b, c) = (Instant::now(), now(), Instant::now());
        assert!(
            a <= b && b <= c + Duration::from_millis(1),
            "{a:?} {b:?} {c:?}"
        );
    }
}

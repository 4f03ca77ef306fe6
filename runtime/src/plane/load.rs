//! Each queue's recent load, as its owner measures it (G14): handler time per second of the
//! runtime's clock, decayed exponentially over [`WINDOW`], so a change of traffic shows within
//! a few minutes and neither one slow message nor a minute's noise does (a one-minute window
//! let noise alone move queues under load balance). `Stats::queue_load` reports it, and the
//! driver hands it to the node to publish.

use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::time::{Duration, Instant};

/// The decay time: handler time `WINDOW` ago counts 1/e as much as handler time now.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);

/// The recent load of every queue polled since the data plane started.
#[derive(Debug, Default)]
pub(crate) struct Loads {
    /// Each queue's load, shared with its pollers' lives so a worker records without a lookup.
    by_queue: Mutex<BTreeMap<QueueId, Arc<QueueLoad>>>,
}

impl Loads {
    /// The load of `queue`, for a poller life to record its handlers in; a life after an
    /// earlier one on this instance carries on from it.
    pub(crate) fn track(&self, queue: &QueueId) -> Arc<QueueLoad> {
        let mut by_queue = lock(&self.by_queue);
        let load = by_queue.entry(queue.clone()).or_default();
        Arc::clone(load)
    }

    /// The load of each of `queues` at `now`, in handler milliseconds per second (1,000 is one
    /// worker busy all the time); 0 for a queue not handled yet.
    pub(crate) fn of(&self, queues: &[QueueId], now: Instant) -> BTreeMap<QueueId, u64> {
        self.scaled(queues, now, 1e3)
    }

    /// [`Loads::of`] in handler microseconds per second: the unit instances publish.
    pub(crate) fn micros_of(&self, queues: &[QueueId], now: Instant) -> BTreeMap<QueueId, u64> {
        self.scaled(queues, now, 1e6)
    }

    /// The loads in handler seconds per second times `unit`, rounded.
    fn scaled(&self, queues: &[QueueId], now: Instant, unit: f64) -> BTreeMap<QueueId, u64> {
        let by_queue = lock(&self.by_queue);
        (queues.iter())
            .map(|q| {
                let rate = by_queue.get(q).map_or(0.0, |l| l.rate_at(now));
                (q.clone(), (rate * unit).round() as u64)
            })
            .collect()
    }
}

/// One queue's load: its meter, with times since the first handler it counted.
#[derive(Debug, Default)]
pub(crate) struct QueueLoad(Mutex<Option<(Instant, LoadMeter)>>);

impl QueueLoad {
    /// A handler of the queue's messages took `took`, ending `now`.
    pub(crate) fn handled(&self, now: Instant, took: Duration) {
        let mut load = lock(&self.0);
        let (origin, meter) = load.get_or_insert((now, LoadMeter::default()));
        meter.add(now.saturating_duration_since(*origin), took);
    }

    /// Handler seconds per second at `now`.
    fn rate_at(&self, now: Instant) -> f64 {
        (lock(&self.0)).map_or(0.0, |(origin, meter)| {
            meter.per_second(now.saturating_duration_since(origin))
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain numbers: a panic elsewhere leaves them consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The age under which a meter's estimate is not scaled up further: one handler in a meter's
/// first second does not count as a whole second's load.
const YOUNG: Duration = Duration::from_secs(10);

/// One queue's handler time per second, decayed exponentially over five minutes. Times are
/// durations since any origin the caller keeps fixed, so the simulator models the runtime's
/// measure with the same type. A young meter's decayed sum is scaled up by the share of a
/// window it has seen, so an instance that has just taken a queue over reports its load
/// within seconds rather than ramping up over minutes (which would make the fleet misjudge
/// it, and move more).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadMeter {
    /// Decayed handler seconds per second as of `at`.
    rate: f64,
    /// When `rate` was last decayed to.
    at: Duration,
    /// When the first handler was counted.
    since: Option<Duration>,
}

impl LoadMeter {
    /// Counts a handler that took `took`, ending at `now`.
    pub fn add(&mut self, now: Duration, took: Duration) {
        self.since.get_or_insert(now);
        self.rate = self.decayed(now) + took.as_secs_f64() / WINDOW.as_secs_f64();
        self.at = self.at.max(now);
    }

    /// Handler seconds per second at `now` (1.0 is one worker busy all the time).
    pub fn per_second(&self, now: Duration) -> f64 {
        let Some(since) = self.since else { return 0.0 };
        let age = now.saturating_sub(since).max(YOUNG).as_secs_f64();
        self.decayed(now) / (1.0 - (-age / WINDOW.as_secs_f64()).exp())
    }

    /// Handler microseconds per second at `now`, rounded: the unit instances publish, fine
    /// enough that the one unit every queue weighs besides its load (docs/design.md §4.5)
    /// is negligible beside any traffic.
    pub fn micros_per_second(&self, now: Duration) -> u64 {
        (self.per_second(now) * 1e6).round() as u64
    }

    /// The sum decayed from `at` to `now`.
    fn decayed(&self, now: Duration) -> f64 {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.rate * (-elapsed / WINDOW.as_secs_f64()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn queue(name: &str) -> QueueId {
        QueueId::new(&format!("https://sqs.eu-west-1.amazonaws.com/1/{name}")).expect("valid")
    }

    /// `loads` after `seconds` of a handler running `ms` every second on `q`, from `start`.
    fn steady(loads: &Loads, q: &QueueId, start: Instant, seconds: u64, ms: u64) -> Instant {
        let load = loads.track(q);
        for s in 1..=seconds {
            load.handled(start + Duration::from_secs(s), Duration::from_millis(ms));
        }
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn a_steady_load_converges_to_its_handler_time_per_second_and_decays_when_idle() {
        let (loads, q, start) = (Loads::default(), queue("a"), Instant::now());
        let end = steady(&loads, &q, start, 600, 500);
        let now = loads.of(std::slice::from_ref(&q), end)[&q];
        assert!((490..=510).contains(&now), "{now} ms/s");
        let later = loads.of(std::slice::from_ref(&q), end + 10 * WINDOW)[&q];
        assert_eq!(later, 0, "ten windows idle");
        assert_eq!(loads.of(&[queue("never")], end)[&queue("never")], 0);
        // A later poller life of the queue carries on from the earlier one.
        let again = steady(&loads, &q, end, 1, 0);
        assert!(loads.of(std::slice::from_ref(&q), again)[&q] > 480);
    }

    #[test]
    fn a_queue_just_taken_over_reports_its_load_within_seconds() {
        let (loads, q, start) = (Loads::default(), queue("a"), Instant::now());
        let end = steady(&loads, &q, start, 15, 500);
        let now = loads.of(std::slice::from_ref(&q), end)[&q];
        assert!((450..=550).contains(&now), "{now} ms/s after 15 s");
        // One handler in a meter's first second is not a whole second's load.
        let mut meter = LoadMeter::default();
        meter.add(Duration::from_secs(1), Duration::from_millis(500));
        let first = meter.micros_per_second(Duration::from_secs(1));
        assert!((40_000..=60_000).contains(&first), "{first} µs/s");
    }

    proptest! {
        #[test]
        fn a_load_never_exceeds_the_busiest_second_and_falls_while_idle(
            ms in proptest::collection::vec(0u64..=1_000, 1..200),
            idle in 1u64..600,
        ) {
            let (loads, q, start) = (Loads::default(), queue("a"), Instant::now());
            let load = loads.track(&q);
            for (s, &took) in ms.iter().enumerate() {
                let at = start + Duration::from_secs(s as u64 + 1);
                load.handled(at, Duration::from_millis(took));
            }
            let end = start + Duration::from_secs(ms.len() as u64);
            let busiest = *ms.iter().max().expect("not empty");
            let now = loads.of(std::slice::from_ref(&q), end)[&q];
            // The busiest second's handler time per second at most: a steady stream's decayed
            // sum overshoots by 1/(2 x 60) for one-second steps, and rounding adds one.
            prop_assert!(now as f64 <= busiest as f64 * 1.01 + 1.0, "{now} > {busiest}");
            let after = loads.of(std::slice::from_ref(&q), end + Duration::from_secs(idle))[&q];
            prop_assert!(after <= now, "{after} > {now}");
        }
    }
}

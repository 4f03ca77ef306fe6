//! The node's timers, on the caller's monotonic clock.

use crate::config::Config;
use crate::rng::Rng;
use crate::time::{Millis, duration_ms};
use std::time::Duration;

/// The node's periodic timers and its one-shot deadline for deferred moves; the other
/// deadlines (resends, the shutdown's) live with the state they belong to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timers {
    /// Heartbeat, and read the instance records (or the table).
    pub tick: Timer,
    /// List the account's queues.
    pub discovery: Timer,
    /// Read the whole table at the next heartbeat.
    pub reconcile: Timer,
    /// The rebalance delay has passed: deferred moves may go.
    pub moves: Option<Millis>,
    /// The next extra instance read while a queue waits for its owner's hand-off.
    pub watch: Option<Millis>,
}

impl Timers {
    /// The timers of a node started at `now`. The first reconciliation comes at a random point
    /// of its interval, so a fleet started together does not read the table in lockstep.
    pub fn new(cfg: &Config, now: Millis, rng: &mut Rng) -> Timers {
        let spread = duration_ms(cfg.reconcile_interval).max(1);
        let first_reconcile = now.saturating_add(Duration::from_millis(rng.below(spread)));
        Timers {
            tick: Timer::new(
                now.saturating_add(cfg.heartbeat_interval),
                cfg.heartbeat_interval,
            ),
            discovery: Timer::new(now, cfg.queue_discovery_interval),
            reconcile: Timer::new(first_reconcile, cfg.reconcile_interval),
            moves: None,
            watch: None,
        }
    }

    /// When the first of them is due.
    pub fn next(&self) -> Millis {
        let at = self.tick.at().min(self.reconcile.at());
        let at = at.min(self.discovery.at());
        [self.moves, self.watch]
            .into_iter()
            .flatten()
            .fold(at, Millis::min)
    }
}

/// One periodic timer: due at `at`, then every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timer {
    at: Millis,
    every: Duration,
}

impl Timer {
    /// A timer first due at `at`.
    pub fn new(at: Millis, every: Duration) -> Timer {
        Timer { at, every }
    }

    /// If due at `now`, re-arms it one period after `now` and returns true.
    pub fn fire(&mut self, now: Millis) -> bool {
        if now < self.at {
            return false;
        }
        self.at = now.saturating_add(self.every);
        true
    }

    /// Makes it due at `now` (or keeps an earlier deadline).
    pub fn due_now(&mut self, now: Millis) {
        self.at = self.at.min(now);
    }

    /// When it is next due.
    pub fn at(&self) -> Millis {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_period_measured_from_the_firing() {
        let mut t = Timer::new(Millis(100), Duration::from_millis(50));
        assert!(!t.fire(Millis(99)));
        assert!(t.fire(Millis(120)));
        assert_eq!(t.at(), Millis(170));
        assert!(!t.fire(Millis(169)));
        t.due_now(Millis(150));
        assert!(t.fire(Millis(150)));
    }
}

//! The node's periodic timers, on the caller's monotonic clock.

use crate::time::Millis;
use std::time::Duration;

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

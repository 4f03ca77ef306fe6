//! Monotonic time as the core sees it: a plain number passed in by the caller.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the caller's monotonic clock, in milliseconds since an arbitrary origin.
///
/// The core never reads a clock; every `handle` call carries the current `Millis`. Values from
/// different hosts are never compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// The origin of the caller's clock.
    pub const ZERO: Millis = Millis(0);

    /// `self + d`, saturating at the end of time rather than wrapping.
    pub fn saturating_add(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(duration_ms(d)))
    }

    /// `self - d`, saturating at the origin.
    pub fn saturating_sub(self, d: Duration) -> Millis {
        Millis(self.0.saturating_sub(duration_ms(d)))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        self.saturating_add(d)
    }
}

impl Sub<Duration> for Millis {
    type Output = Millis;
    fn sub(self, d: Duration) -> Millis {
        self.saturating_sub(d)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A host's monotonic clock as the simulators model it: it reads `offset` at global time zero
/// and runs at 1 + `drift_ppm` / 1,000,000 times the global rate. The one model of a drifting
/// clock, for the level-1 simulator and the core's multi-node tests alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriftingClock {
    /// The local reading at global time zero, ms.
    pub offset: u64,
    /// How far the clock runs fast (positive) or slow, in parts per million.
    pub drift_ppm: i64,
}

impl DriftingClock {
    /// A clock whose drift is drawn from `rng` within ±`most_ppm` (none drawn when zero), then
    /// its offset below `offsets`.
    pub fn drawn(rng: &mut crate::rng::Rng, most_ppm: u64, offsets: u64) -> DriftingClock {
        let drift_ppm = if most_ppm == 0 {
            0
        } else {
            rng.below(2 * most_ppm + 1) as i64 - most_ppm as i64
        };
        DriftingClock {
            offset: rng.below(offsets),
            drift_ppm,
        }
    }

    /// The local reading at global time `t`, ms.
    pub fn local(self, t: u64) -> Millis {
        let skew = (i128::from(t) * i128::from(self.drift_ppm)) / 1_000_000;
        Millis((i128::from(self.offset) + i128::from(t) + skew) as u64)
    }

    /// A global time whose local reading is at least `local`, at most a millisecond after the
    /// first such time: an event due at a local time is never early.
    pub fn global(self, local: Millis) -> u64 {
        let l = i128::from(local.0.saturating_sub(self.offset));
        let rate = 1_000_000 + i128::from(self.drift_ppm);
        let mut t = ((l * 1_000_000 + rate - 1) / rate).max(0) as u64;
        while self.local(t) < local {
            t += 1;
        }
        t
    }
}

/// Whole milliseconds in `d`, saturating at `u64::MAX`.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drifting_clock_s_global_time_is_never_early_and_at_most_a_millisecond_late() {
        for drift_ppm in [-5_000, -1, 0, 1, 5_000] {
            let c = DriftingClock {
                offset: 1_234,
                drift_ppm,
            };
            for local in [1_234, 1_235, 10_000, 1_000_000_007] {
                let t = c.global(Millis(local));
                assert!(c.local(t) >= Millis(local), "{drift_ppm} ppm at {local}");
                assert!(
                    t < 2 || c.local(t - 2) < Millis(local),
                    "{drift_ppm} ppm at {local}"
                );
            }
        }
        let fast = DriftingClock {
            offset: 0,
            drift_ppm: 1_000,
        };
        assert_eq!(fast.local(1_000_000), Millis(1_001_000));
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(
            Millis(u64::MAX - 1) + Duration::from_secs(1),
            Millis(u64::MAX)
        );
        assert_eq!(Millis(5) - Duration::from_millis(10), Millis::ZERO);
        assert_eq!(Millis(10).since(Millis(25)), Duration::ZERO);
        assert_eq!(Millis(25).since(Millis(10)), Duration::from_millis(15));
    }
}

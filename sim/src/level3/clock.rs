//! The simulated wall clock that the SDK clients and the server both read: a fixed epoch plus
//! turmoil's simulated time, so signatures, `Date` headers and clock-skew checks replay.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The simulated wall clock's start, in seconds since the Unix epoch (2026-01-01T00:00:00Z).
/// A harness that also reads `turmoil::since_epoch` should give turmoil's builder the same
/// epoch ([`sim_epoch`]): turmoil's default is the real wall clock.
pub const SIM_EPOCH_SECS: u64 = 1_767_225_600;

/// [`SIM_EPOCH_SECS`] as a `SystemTime`.
pub fn sim_epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SIM_EPOCH_SECS)
}

/// The simulated wall clock: [`sim_epoch`] plus the simulated time elapsed
/// (`turmoil::sim_elapsed`); outside a turmoil host, the epoch itself.
pub fn sim_now() -> SystemTime {
    sim_epoch() + turmoil::sim_elapsed().unwrap_or_default()
}

//! What each simulation level runs: the one place that maps a [`Level`] to its simulator.

use crate::report::Report;
use crate::scenario::{Level, Scenario, SwarmLimits};
use crate::swarm::{SwarmSummary, run_seeds};
use crate::{SimError, level2, level3};

impl Level {
    /// Whether this build replays a seed of this level byte for byte: levels 2 and 3 only
    /// with `--cfg tokio_unstable` (see [`level2::DETERMINISTIC`]).
    pub fn deterministic(self) -> bool {
        self == Level::Core || level2::DETERMINISTIC
    }

    /// Seed `seed` of this level's swarm within `limits`.
    pub fn scenario(self, seed: u64, limits: &SwarmLimits) -> Scenario {
        match self {
            Level::Core => Scenario::swarm_of(seed, limits),
            Level::Runtime => level2::scenario(seed, limits),
            Level::Sdk => level3::scenario(seed, limits),
        }
    }

    /// Runs `sc` at this level.
    pub fn run(self, sc: Scenario) -> Result<Report, SimError> {
        match self {
            Level::Core => crate::run(sc),
            Level::Runtime => level2::run(sc),
            Level::Sdk => level3::run(sc),
        }
    }

    /// Runs this level's seeds `from..from + seeds` on `threads` threads within `limits`,
    /// calling `on_done` after each run, and sums the reports in seed order.
    pub fn swarm(
        self,
        from: u64,
        seeds: u64,
        threads: usize,
        limits: &SwarmLimits,
        on_done: impl Fn(&Report) + Sync,
    ) -> SwarmSummary {
        let run = |seed| {
            let sc = self.scenario(seed, limits);
            let report = match self {
                Level::Core => crate::run_on_one_thread(sc),
                _ => self.run(sc),
            };
            report.expect("swarm scenarios are valid by construction")
        };
        run_seeds(from, seeds, threads, run, on_done)
    }
}

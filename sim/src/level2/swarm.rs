//! The level-2 swarm: many seeds of [`scenario`](super::scenario) on a few threads, each its
//! own turmoil simulation, summed up in seed order like the level-1 swarm.

use super::entry::{run, scenario};
use crate::report::Report;
use crate::scenario::SwarmLimits;
use crate::swarm::{SwarmSummary, run_seeds};

/// Runs level-2 seeds `from..from + seeds` on `threads` threads within `limits`, calling
/// `on_done` after each run, and sums the reports in seed order.
pub fn swarm(
    from: u64,
    seeds: u64,
    threads: usize,
    limits: &SwarmLimits,
    on_done: impl Fn(&Report) + Sync,
) -> SwarmSummary {
    let run = |seed| {
        run(scenario(seed, limits)).expect("level-2 swarm scenarios are valid by construction")
    };
    run_seeds(from, seeds, threads, run, on_done)
}

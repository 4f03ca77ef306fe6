//! Deterministic simulation of sqsbalancer.
//!
//! An in-memory, clock-free SQS and DynamoDB ([`fake`]), and a level-1 discrete-event simulator
//! ([`World`]) that drives N sans-IO core nodes against it with a simple consumer model, injects
//! the faults of docs/design.md §6 and checks its invariants after every event ([`check`]).
//! Everything is drawn from the seed: the same seed gives a byte-identical trace. Nothing here
//! reads a clock or OS entropy; wall-clock timing belongs to the caller. [`backend`] puts the
//! same fakes behind the runtime's backend traits, so the real tokio driver runs against them
//! too; [`level2`] runs the whole real runtime of a fleet on turmoil hosts against the fakes,
//! with the same checks.
//!
//! ```
//! use sqsbalancer_sim::{Scenario, run};
//! let report = run(Scenario::swarm(7)).unwrap();
//! assert!(report.violation.is_none(), "{}", report.replay_command());
//! ```

mod ahead;
pub mod backend;
mod chaos;
pub mod check;
mod consumer;
mod decoded;
mod error;
pub mod fake;
mod level;
pub mod level2;
pub mod level3;
mod lookup;
pub mod report;
pub mod scenario;
mod script;
mod stats;
pub mod summary;
pub mod swarm;
pub mod testing;
pub mod timeline;
pub mod trace;
pub mod traffic;
mod world;

pub use check::{Class, Invariant, Violation};
pub use error::SimError;
pub use report::{Report, Spread};
pub use scenario::{
    FaultKind, FaultMix, Level, Mutation, Scenario, Schedule, SwarmLimits, parse_duration,
    replay_command,
};
pub use swarm::SwarmSummary;
pub use traffic::Traffic;
pub use world::{APP, Progress, TABLE, World, config};

/// Runs one scenario to its end, or to its first violation, and reports what it measured.
/// Read replies are handled ahead on a second thread ([`World::handle_ahead`]).
pub fn run(sc: Scenario) -> Result<Report, SimError> {
    run_observed(sc, |_| {})
}

/// As [`run`], telling `on_sample` how far the run has got every 30 simulated seconds.
pub fn run_observed(sc: Scenario, on_sample: impl FnMut(Progress)) -> Result<Report, SimError> {
    run_with(sc, true, on_sample)
}

/// As [`run`], on this thread alone: for a swarm, whose threads run seeds side by side.
pub fn run_on_one_thread(sc: Scenario) -> Result<Report, SimError> {
    run_with(sc, false, |_| {})
}

fn run_with(
    sc: Scenario,
    ahead: bool,
    on_sample: impl FnMut(Progress),
) -> Result<Report, SimError> {
    sc.validate()?;
    let mut w = World::new(sc);
    if ahead {
        w.handle_ahead();
    }
    w.run_observed(on_sample);
    Ok(w.report())
}

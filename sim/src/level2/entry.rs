//! What level 2 (and level 3) runs and how a run starts: the fault kinds it injects, the swarm's
//! scenario of a seed, what it refuses, and the entry points into the harness.

use super::shared::Transport;
use crate::error::SimError;
use crate::report::Report;
use crate::scenario::{FaultKind, Scenario, Schedule, SwarmLimits};
use sqsbalancer_core::rng::Rng;
use std::time::Duration;

/// The fault kinds level 2 injects: all but clock drift and process pauses, in
/// [`FaultKind::ALL`]'s order.
pub const KINDS: [FaultKind; 18] = {
    let mut kinds = [FaultKind::Crash; 18];
    let (mut i, mut n) = (0, 0);
    while i < FaultKind::ALL.len() {
        let k = FaultKind::ALL[i];
        if !matches!(k, FaultKind::Drift | FaultKind::Pause) {
            kinds[n] = k;
            n += 1;
        }
        i += 1;
    }
    assert!(n == kinds.len(), "every kind but drift and pause");
    kinds
};

/// Whether this build replays a seed byte for byte: only with `--cfg tokio_unstable` can
/// turmoil seed the hosts' tokio runtimes.
pub const DETERMINISTIC: bool = cfg!(tokio_unstable);

/// Simulated length of a level-2 swarm run: six minutes of faults, then the calm (longer by
/// what [`crate::scenario::calm_for`] adds to [`crate::scenario::MIN_CALM`]).
pub const DURATION: Duration = Duration::from_secs(600);

/// Seed `seed` of the level-2 swarm within `limits`: the fault kinds and rates of the level-1
/// seed (less drift and pauses), a smaller fleet (2-4 instances, 1-24 queues, 1-4 messages a
/// second) and ten simulated minutes, since every host runs the whole runtime.
pub fn scenario(seed: u64, limits: &SwarmLimits) -> Scenario {
    scenario_at(crate::scenario::Level::Runtime, seed, limits)
}

/// [`scenario`], replayed at simulation level `level` (2 or 3).
pub(crate) fn scenario_at(
    level: crate::scenario::Level,
    seed: u64,
    limits: &SwarmLimits,
) -> Scenario {
    let mut sc = Scenario::swarm_of(seed, limits);
    sc.faults.drift_ppm = 0;
    sc.faults.pause = 0;
    let mut rng = Rng::new(seed ^ 0x1e7e_1202_5eed);
    sc.instances = 2 + rng.below(3) as usize;
    sc.queues = [1, 6, 12, 24][rng.below(4) as usize];
    sc.messages_per_second = 1 + rng.below(4);
    sc.duration = DURATION + sc.calm.saturating_sub(crate::scenario::MIN_CALM);
    sc.replay = Some(crate::scenario::replay_command(level, seed, limits));
    sc
}

/// Runs one scenario on the real runtime to its end, or to its first violation, and reports
/// what it measured (failover and hand-off gaps included; no steady-state cost).
pub fn run(sc: Scenario) -> Result<Report, SimError> {
    check(&sc)?;
    super::run::run(sc, Transport::Link)
}

/// [`run`], the instances reaching the fake AWS through the real AWS SDK clients over
/// turmoil's network (level 3).
pub(crate) fn run_http(sc: Scenario) -> Result<Report, SimError> {
    check(&sc)?;
    super::run::run(sc, Transport::Http)
}

/// Refuses what levels 2 and 3 cannot run: drift and pauses, and a fleet too large.
fn check(sc: &Scenario) -> Result<(), SimError> {
    sc.validate()?;
    if sc.faults.drift_ppm > 0 || sc.faults.pause > 0 {
        return Err(SimError::InvalidScenario {
            field: "faults",
            rule: "drift and pause are simulated at level 1 only".to_owned(),
        });
    }
    if sc.schedule != Schedule::Drawn {
        return Err(SimError::InvalidScenario {
            field: "schedule",
            rule: format!("{} is scripted at level 1 only", sc.schedule.name()),
        });
    }
    check_size(sc.instances, sc.queues)
}

/// Refuses a fleet larger than level 2 runs (every instance is a whole runtime): at most 50
/// instances and 1000 queues.
pub(super) fn check_size(instances: usize, queues: usize) -> Result<(), SimError> {
    if instances > 50 || queues > 1_000 {
        return Err(SimError::InvalidScenario {
            field: "size",
            rule: format!(
                "level 2 runs at most 50 instances and 1000 queues, {instances} and {queues} given"
            ),
        });
    }
    Ok(())
}

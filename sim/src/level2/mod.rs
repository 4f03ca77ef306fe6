//! Level 2: the real runtime — [`Balancer`](sqsbalancer_runtime::Balancer) with its driver,
//! data plane and handler — of several instances, each a [turmoil] host, against the same
//! in-memory fakes as level 1, on simulated time, with faults, checked against the invariants
//! of docs/design.md §6.
//!
//! * Time: turmoil gives every host a paused tokio runtime and advances them all in steps of
//!   10 ms, so the runtime's sleeps, timeouts and long polls run on simulated time. The fakes
//!   read one clock for all hosts, turmoil's simulation clock (each host runtime's own
//!   `Instant`s start from its own base, renewed at every restart).
//! * Faults: crash (turmoil drops every task of the host: an abort without `stop`), graceful
//!   stop (`Running::stop`), restart, join, partitions from DynamoDB or SQS (calls time out,
//!   or hang until healed), throttling, 5xx, timeouts applied or not, latency, calls that
//!   never answer, slow calls, writes applied after their caller gave up, paged reads, TTL
//!   deletes, queue churn, and handlers that fail (half of them by panicking) or outlive the
//!   visibility timeout. The backend calls do not go over turmoil's network: the faults are in
//!   each life's link to the fakes (`link.rs`), or at level 3 in the HTTP server (`http.rs`).
//! * Checked: exclusive receive, receive within the fence, delete only after a handler
//!   success, epoch growth and no loss at the fake ([`Checker`](crate::check::Checker)); the
//!   settled state from the runtime's own view (what each `Running` receives); graceful stops; and that no runtime
//!   task panics (under `tokio_unstable` turmoil shuts a host's runtime down when a panic
//!   escapes a task, which fails the run; the runtime must contain a handler's).
//! * Proven: every deliberate bug of [`Mutation`](crate::Mutation) can be planted around the
//!   real runtime (`plant.rs`, and the handler in `host.rs`), and `sim/tests/level2.rs` shows
//!   each is caught.
//! * Deterministic: the run's seed seeds turmoil, which seeds every host's tokio runtime, and
//!   draws every fault. Tokio picks `select!` branches and wakes watch receivers in an order
//!   drawn from the runtime's seed, which only a runtime built with `--cfg tokio_unstable`
//!   can be given (the workspace's `.cargo/config.toml` sets it): without it two runs of one
//!   seed differ.
//! * Scripted: a [`Story`] plays fixed beats (joins, crashes, graceful stops, queue churn)
//!   instead of drawn faults, stepped by its caller ([`Live`]) so that it can be paced and
//!   watched; `sqsbalancer demo` tells one.
//!
//! Left to level 1: clock drift and process pauses (turmoil runs every host at one rate and
//! cannot freeze one).

mod acked;
mod fleet;
mod host;
mod http;
mod link;
mod plant;
mod run;
mod server;
mod shared;
mod stopped;
mod story;
mod swarm;

pub use story::{
    Act, Beat, Chapter, DEMO_RATE, InstanceState, InstanceView, Live, Story, Told, View,
};
pub use swarm::swarm;

use crate::error::SimError;
use crate::report::Report;
use crate::scenario::{FaultKind, Scenario, SwarmLimits};
use sqsbalancer_core::rng::Rng;
use std::time::Duration;

/// The fault kinds level 2 injects: all but clock drift and process pauses.
pub const KINDS: [FaultKind; 18] = [
    FaultKind::Crash,
    FaultKind::Stop,
    FaultKind::Restart,
    FaultKind::Join,
    FaultKind::PartitionDynamo,
    FaultKind::PartitionSqs,
    FaultKind::Throttle,
    FaultKind::ServerError,
    FaultKind::Timeout,
    FaultKind::Latency,
    FaultKind::QueueChurn,
    FaultKind::SlowHandler,
    FaultKind::FailingHandler,
    FaultKind::Hang,
    FaultKind::SlowCall,
    FaultKind::LateWrite,
    FaultKind::Pages,
    FaultKind::Ttl,
];

/// Whether this build replays a seed byte for byte: only with `--cfg tokio_unstable` can
/// turmoil seed the hosts' tokio runtimes.
pub const DETERMINISTIC: bool = cfg!(tokio_unstable);

/// Simulated length of a level-2 swarm run: six minutes of faults, then the calm.
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
    sc.duration = DURATION;
    sc.replay = Some(crate::scenario::replay_command(level, seed, limits));
    sc
}

/// Runs one scenario on the real runtime to its end, or to its first violation, and reports
/// what it measured (failover and hand-off gaps included; no steady-state cost).
pub fn run(sc: Scenario) -> Result<Report, SimError> {
    check(&sc)?;
    run::run(sc, shared::Transport::Link)
}

/// [`run`], the instances reaching the fake AWS through the real AWS SDK clients over
/// turmoil's network (level 3).
pub(crate) fn run_http(sc: Scenario) -> Result<Report, SimError> {
    check(&sc)?;
    run::run(sc, shared::Transport::Http)
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
    check_size(sc.instances, sc.queues)
}

/// Refuses a fleet larger than level 2 runs (every instance is a whole runtime): at most 50
/// instances and 1000 queues.
fn check_size(instances: usize, queues: usize) -> Result<(), SimError> {
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

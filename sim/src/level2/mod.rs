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
//! * Checked by the checkers all levels share ([`check`](crate::check)): exclusive receive,
//!   receive within the fence, delete only after a handler success, epoch growth and no loss
//!   at the fake ([`Checker`](crate::check::Checker)); the settled state and graceful stops
//!   over a [`Fleet`](crate::check::Fleet) built from the runtime's own view (`fleet.rs`: what
//!   each `Running` receives); and that no runtime task panics (under `tokio_unstable` turmoil
//!   shuts a host's runtime down when a panic escapes a task, which fails the run; the runtime
//!   must contain a handler's).
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
pub(crate) mod entry;
mod fleet;
mod host;
mod http;
mod landing;
mod link;
mod plant;
mod run;
mod server;
mod shared;
mod stopped;
mod story;

pub use entry::{DETERMINISTIC, DURATION, KINDS, run, scenario};
pub use story::{
    Act, Beat, Chapter, DEMO_RATE, InstanceState, InstanceView, Live, Story, Told, View,
};

//! Level 3, the transport: the real AWS SDK clients (configured by the runtime's
//! [`dynamodb_config`](sqsbalancer_runtime::aws::dynamodb_config) and
//! [`sqs_config`](sqsbalancer_runtime::aws::sqs_config), wrapped in the runtime's
//! [`AwsBackend`](sqsbalancer_runtime::aws::AwsBackend)) speak HTTP over turmoil's simulated
//! network to an in-process server that serves the DynamoDB and SQS JSON protocols by calling
//! the backend traits, so the adapter, the SDK's serialization, signing, retries and timeouts
//! are inside the simulation.
//!
//! * [`protocol`]: the wire formats, pure: requests decode into calls on the backend traits,
//!   results and errors encode into the services' answers.
//! * [`server`]: an HTTP/1.1 server on any listener (turmoil's or tokio's) that names the
//!   caller by the access key of its SigV4 signature, finds the caller's backend, asks a
//!   [`FaultDecider`] what to do with each request, and does it.
//! * [`connector`]: an SDK [`HttpClient`](aws_smithy_runtime_api::client::http::HttpClient) over
//!   turmoil's TCP, and [`SimClients`], which builds a host's two SDK clients and its
//!   `AwsBackend`.
//!
//! * [`clock`]: the simulated wall clock both sides read.
//!
//! Time: both sides read one clock, [`sim_now`]: the fixed [`SIM_EPOCH_SECS`] plus turmoil's
//! simulated time. The server writes it into the `Date` header (hyper's own, from the wall
//! clock, is off); the SDK signs with it and measures its clock skew against that header.

pub mod clock;
pub mod connector;
pub mod protocol;
pub mod server;

use crate::error::SimError;
use crate::report::Report;
use crate::scenario::{FaultKind, Scenario, SwarmLimits};

pub use clock::{SIM_EPOCH_SECS, sim_epoch, sim_now};
pub use connector::{SimClients, SimHttpClient, SimTimeSource, seed_thread_rng};
pub use protocol::{Call, Failure, Outcome, Service};
pub use server::{Fault, FaultDecider, Listener, RequestInfo, Server};

/// The fault kinds level 3 injects: level 2's, at the HTTP level (see the level-2 harness's
/// `http` module for how each is made).
pub const KINDS: [FaultKind; 18] = crate::level2::entry::KINDS;

/// Seed `seed` of the level-3 swarm within `limits`: the scenario of the level-2 seed.
pub fn scenario(seed: u64, limits: &SwarmLimits) -> Scenario {
    crate::level2::entry::scenario_at(crate::scenario::Level::Sdk, seed, limits)
}

/// Runs one scenario with the real AWS SDK clients of every instance over turmoil's network,
/// to its end or its first violation, checked as levels 1 and 2 are.
pub fn run(sc: Scenario) -> Result<Report, SimError> {
    crate::level2::entry::run_http(sc)
}

//! The sans-IO coordination core of sqsbalancer.
//!
//! Everything here is pure and synchronous: no clock, no I/O, no OS entropy. Time and the random
//! seed are inputs, so the same inputs always give the same effects, in tests, in the fuzzers, in
//! the cluster simulator and in production.

pub mod assignment;
mod by_id;
pub mod config;
pub mod discovery;
pub mod effect;
pub mod error;
/// Hooks for the fuzz targets and the corpus replay test: built under cargo-fuzz's
/// `--cfg fuzzing` and in debug builds (tests), never in a release build.
#[cfg(any(fuzzing, debug_assertions))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod ids;
pub mod lease;
pub mod loads;
pub mod membership;
pub mod node;
pub mod page;
pub mod reads;
pub mod rng;
pub mod shared_targets;
pub mod shutdown;
pub mod table;
pub mod time;
mod timer;

pub use assignment::{Assignment, Band, Member, assign, assign_by_load, share_bounds};
pub use config::{Config, SqsConfig};
pub use effect::{
    Effect, Input, InstanceRecord, Notice, OpId, Outcome, QueueRecord, Read, Reply, Status,
    Unreadable, Write,
};
pub use error::{Error, Result};
pub use ids::{InstanceId, Owner, QueueId};
pub use node::Node;
pub use page::QueuePage;
pub use reads::{ReadCause, TableReads};
pub use shared_targets::SharedTargets;
pub use shutdown::{Phase, StopOutcome};
pub use time::{DriftingClock, Millis};

//! The in-memory AWS the simulators run against: DynamoDB, SQS and the fault hooks.
//!
//! Deterministic and clock-free: time is passed in, and the only randomness is the fault hooks'
//! seeded generator. Used by the level-1 simulator here and, through the runtime's backend traits,
//! by the level-2 simulation and the benchmarks.

pub mod dynamo;
pub mod faults;
pub mod sqs;

pub use dynamo::{BatchGot, DynamoError, FakeDynamo, Page, Usage};
pub use faults::{CallFaults, FaultHooks, SLOW_MS, Service, Verdict};
pub use sqs::{
    EntryError, FakeSqs, Listing, Outgoing, ReceiveRequest, Received, SqsError, SqsOp, WaitId,
};

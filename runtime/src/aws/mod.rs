//! The production backends on the AWS SDK: DynamoDB for the coordination table, SQS for
//! discovery and messages. One client each, built from the standard configuration chain
//! (region, credentials) with an optional endpoint override for emulators, and this project's
//! retries and timeouts ([`client`]).

mod backend;
#[cfg(test)]
mod canned;
pub mod client;
mod dynamo;
mod expr;
mod sdk_error;
mod sqs;

pub use backend::{AwsBackend, AwsSettings, Billing};
pub use client::{dynamodb_config, sqs_config};
pub use dynamo::ensure_table;

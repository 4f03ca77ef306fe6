//! sqsbalancer: share many Amazon SQS queues across a fleet of instances, coordinated through one
//! DynamoDB table, with exact balance, minimal movement and fenced ownership.
//!
//! This facade re-exports the public API. The coordination core lives in [`core`].

pub use sqsbalancer_core as core;
pub use sqsbalancer_core::{
    Assignment, Config, Error, InstanceId, Member, QueueId, SqsConfig, assign,
};

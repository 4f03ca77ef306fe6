//! The tokio effects runtime of sqsbalancer.
//!
//! The core ([`sqsbalancer_core::Node`]) decides; this crate does. [`Driver`] runs one node: it
//! executes the node's DynamoDB and ListQueues effects through the [`Store`] and [`QueueList`]
//! backend traits, feeds each result back, ticks the node when [`Node::poll_timeout`] says, and
//! passes receive commands to the data plane ([`DataPlane`]: pollers within the self-fence,
//! permit-based backpressure, a worker pool running the [`Handler`] or [`BatchHandler`],
//! batched deletes, visibility extension, failure backoff). Time is
//! tokio's clock, so a paused tokio runtime runs the real runtime on simulated time.
//!
//! Backends are traits so the same driver runs against AWS in production and against the
//! deterministic in-memory fakes of `sqsbalancer-sim` in tests and simulations.
//!
//! [`Node::poll_timeout`]: sqsbalancer_core::Node::poll_timeout

#[cfg(feature = "aws")]
pub mod aws;
pub mod backend;
pub mod balancer;
pub mod clock;
pub mod driver;
pub mod error;
pub mod execute;
pub mod handler;
mod instance;
pub mod layout;
mod observed;
#[cfg(feature = "otel")]
pub mod otel;
pub mod plane;
mod signal;
pub mod status;
mod telemetry;
pub mod timeouts;

pub use backend::{
    AttributeData, AttributeValue, Batch, Message, Page, QueueList, QueuePage, Receive, Sqs, Store,
};
pub use balancer::{Balancer, Monitor, Running};
pub use driver::{Driver, DriverHandle, PlaneCommand};
pub use error::{BackendError, RuntimeError};
pub use handler::{BatchHandler, BatchOutcome, Handler, HandlerError};
pub use instance::instance_id_from_environment;
pub use plane::{DataPlane, FailureBackoff, LoadMeter, PlaneSettings};
pub use signal::{StopSignal, shutdown_signal};
pub use status::{Health, Stats};
pub use timeouts::{ReceivePlan, RelativePlan, Timeouts};

//! sqsbalancer: share many Amazon SQS queues across a fleet of service instances, coordinated
//! through one DynamoDB table, with exact balance, minimal movement and fenced ownership.
//!
//! # Quick start
//!
//! ```no_run
//! use sqsbalancer::aws::AwsBackend;
//! use sqsbalancer::{Balancer, Config, HandlerError, Message, shutdown_signal};
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cfg = Config::new("orders", "sqsbalancer"); // application, DynamoDB table
//! cfg.queue_filter_pattern = Some("^orders-".into());
//!
//! // Region and credentials come from the standard AWS chain; the table from `cfg` (created,
//! // on demand, when missing).
//! let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let aws = AwsBackend::from_sdk_config(&sdk, &cfg);
//!
//! let handler = |m: Message| async move {
//!     println!("{} from {}", m.body, m.queue.name());
//!     Ok::<(), HandlerError>(()) // Err leaves the message for redelivery
//! };
//! let stop = shutdown_signal()?; // SIGTERM (ECS, Kubernetes) or Ctrl-C
//! let running = Balancer::new(cfg, Arc::new(aws))?.start(handler)?;
//! stop.await;
//! running.stop().await?; // hand the queues over, then deregister
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//!
//! - **Exclusive receive.** Two instances never have ReceiveMessage calls on one queue in
//!   flight at the same time. Ownership is a conditional write with a growing epoch, and every
//!   instance stops its own receive calls (self-fences) before its lease could have expired in
//!   its peers' eyes. The one limit: a process paused for longer than the fence margin (a tenth
//!   of the heartbeat timeout by default) can outlive its lease with a call in flight.
//! - **Exact balance.** Queues are split by capacity weight to within one queue of the fair
//!   share, not approximately as a hash ring does.
//! - **Minimal movement.** A membership change moves only as many queues as the new balance
//!   needs, and a graceful stop hands its queues over within a heartbeat interval.
//! - **No lost messages.** A message is deleted only after its handler succeeded; a failure,
//!   panic or timeout leaves it for redelivery. Received but unstarted messages are made
//!   visible again at once on a hand-off or shutdown.
//! - **Bounded failover.** The queues of an instance that dies without stopping are taken
//!   over within HeartbeatTimeout + 2 × HeartbeatInterval.
//!
//! # Architecture
//!
//! Dependencies flow one way: `sqsbalancer-cli` → `sqsbalancer-sim` → `sqsbalancer-runtime`
//! → `sqsbalancer-core`.
//!
//! - `sqsbalancer-core` is the protocol as a pure state machine: `handle(now, input)`,
//!   `poll_effect()`, `poll_timeout()`. It never reads a clock, does I/O or draws entropy, so
//!   the simulator can run thousands of seeds of it and replay any one exactly.
//! - `sqsbalancer-runtime` drives the core on tokio: it executes the core's DynamoDB and
//!   ListQueues effects through the [`backend`] traits (AWS SDK in production, in-memory fakes
//!   in tests), and runs the data plane: a poller per owned queue within the self-fence,
//!   permit-based backpressure, a worker pool, batched deletes, visibility extension, failure
//!   backoff, FIFO group order.
//! - `sqsbalancer-sim` checks the protocol's invariants under crashes, partitions, throttling,
//!   clock drift and pauses, at three levels: the core alone, the whole runtime on turmoil
//!   hosts, and the real AWS SDK clients over a simulated wire. The `sqsbalancer` CLI runs the
//!   simulations, a worker, a demo and a status view.
//!
//! This crate is the API a service uses; the crates above are its implementation, and their
//! internals (the node, the driver, the data plane) are not part of it.

pub use sqsbalancer_core::config::Balance;
pub use sqsbalancer_core::{
    Assignment, Band, Config, Error, InstanceId, Member, Phase, QueueId, SqsConfig, StopOutcome,
    Unreadable, assign, assign_by_load,
};
/// The production backend on the AWS SDK (feature `aws`, on by default): built from the
/// application's `SdkConfig` with this project's retries and deadlines.
#[cfg(feature = "aws")]
pub mod aws {
    pub use sqsbalancer_runtime::aws::{
        AwsBackend, AwsSettings, Billing, dynamodb_config, ensure_table, sqs_config,
    };
}
pub use sqsbalancer_runtime::{
    AttributeData, AttributeValue, BackendError, Balancer, BatchHandler, BatchOutcome,
    FailureBackoff, Handler, HandlerError, Health, Message, Monitor, Running, RuntimeError, Stats,
    StopSignal, Timeouts, instance_id_from_environment, shutdown_signal,
};

/// OpenTelemetry (feature `otel`): [`otel::Otlp`] exports the metrics and the handler spans
/// over OTLP; [`otel::MeterRecorder`] records the metrics into the application's own meter;
/// handler spans join the trace their message carries.
#[cfg(feature = "otel")]
pub use sqsbalancer_runtime::otel;

/// A fleet of balancers running your handler on a simulated clock, through crashes and
/// hand-offs, counting what the handler saw; and SQS and DynamoDB in memory (feature
/// `testing`).
#[cfg(feature = "testing")]
pub use sqsbalancer_sim::testing;

/// The traits a coordination and message backend implements, for a backend other than the
/// AWS SDK's (the simulator's fakes are one): the table's conditional writes and queries,
/// queue listing, and the SQS calls of the data plane.
pub mod backend {
    /// The table's data model as a backend sees it: items, keys, conditional updates and
    /// queries, and [`table::update`], which applies a write to an item exactly as
    /// DynamoDB's UpdateItem would (for a store kept in memory or in another database). For
    /// tools that read the table: where an application keeps its records ([`recorded_layout`]
    /// finds its [`table::Layout`], whose queries make each [`table::Read`]), and its items
    /// decoded into records with [`table::decode_item`].
    pub mod table {
        pub use sqsbalancer_core::loads::{LISTED, PublishedLoads};
        pub use sqsbalancer_core::table::{
            Cond, DecodeError, Item, Key, Layout, MAX_INSTANCE_PARTITION_KEYS,
            MAX_QUEUE_PARTITION_KEYS, Record, Refused, TableQuery, TableWrite, Update, UpdateError,
            Value, decode_item, partition, update,
        };
        pub use sqsbalancer_core::{InstanceRecord, Owner, QueueRecord, Read, Status};
    }
    pub use sqsbalancer_runtime::clock::now;
    pub use sqsbalancer_runtime::layout::recorded as recorded_layout;
    pub use sqsbalancer_runtime::{Batch, Page, QueueList, QueuePage, Receive, Sqs, Store};
}

//! The runtime's errors: what a backend call can answer, and what the runtime reports.

use sqsbalancer_core::Error as CoreError;

/// How a backend call failed. The driver maps each kind onto the core's outcomes: a failed
/// condition is `Rejected`; everything else is `Unknown` for writes (they may have applied)
/// and a failed read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// A conditional write's condition did not hold; nothing changed.
    #[error("the condition of the write did not hold")]
    ConditionFailed,
    /// The service throttled the call; it did not apply.
    #[error("throttled by {service}: {message}")]
    Throttled {
        /// `dynamodb` or `sqs`.
        service: &'static str,
        /// The service's message.
        message: String,
    },
    /// The queue does not exist (any more).
    #[error("queue {url} does not exist")]
    QueueDoesNotExist {
        /// The queue URL asked for.
        url: String,
    },
    /// The call timed out or the connection failed: a write may or may not have applied.
    #[error("{service} call outcome unknown: {reason}")]
    Unknown {
        /// `dynamodb` or `sqs`.
        service: &'static str,
        /// What happened, for the log.
        reason: String,
    },
    /// No usable credentials: none configured, expired, or their provider unreachable. The
    /// request was not sent; [`crate::Health`] reports it until a call succeeds.
    #[error("{service} call not sent, no usable credentials: {reason}")]
    Credentials {
        /// `dynamodb` or `sqs`.
        service: &'static str,
        /// What the credentials provider said.
        reason: String,
    },
    /// The request was never sent: its send-by time (a receive's fence) had passed by the time
    /// it could go out (credentials, connection or scheduling took too long).
    #[error("{service} request not sent: {reason}")]
    NotSent {
        /// `dynamodb` or `sqs`.
        service: &'static str,
        /// What held it.
        reason: String,
    },
    /// The service refused the request as malformed or unauthorized; retrying will not help.
    #[error("{service} refused the request: {reason}")]
    Refused {
        /// `dynamodb` or `sqs`.
        service: &'static str,
        /// The service's message.
        reason: String,
    },
}

/// What the runtime reports to its user.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The configuration was rejected by the core (the field and the rule are named).
    #[error(transparent)]
    Config(#[from] CoreError),
    /// A per-queue override of the SQS settings breaks an SQS limit.
    #[error("settings of queue {queue}: {source}")]
    QueueSettings {
        /// The queue name the override is for.
        queue: String,
        /// The field and the rule.
        source: CoreError,
    },
    /// The configuration's `dynamodb_table_name` and the backend's table differ: one of them
    /// is a mistake, and the instance would coordinate through a table its peers may not use.
    #[error("dynamodb_table_name is {configured:?} but the backend writes to table {backend:?}")]
    TableMismatch {
        /// The configuration's `dynamodb_table_name`.
        configured: String,
        /// The table the backend was built for.
        backend: String,
    },
    /// A data-plane option is out of range.
    #[error("option {option}: {rule}")]
    Option {
        /// The option, by its documented name.
        option: &'static str,
        /// What it must be, and what it was.
        rule: String,
    },
    /// The driver stopped before the operation could be delivered to it.
    #[error("the balancer has stopped")]
    Stopped,
    /// A graceful stop did not finish within the shutdown timeout; unfinished messages were
    /// not deleted and peers take the queues over as after a crash.
    #[error("shutdown did not finish within {timeout:?}")]
    ShutdownTimeout {
        /// The configured shutdown timeout.
        timeout: std::time::Duration,
    },
    /// Peers declared this instance dead while it stopped (the coordination table was out
    /// of reach for longer than the heartbeat timeout); they take its queues over.
    #[error("the instance lost its lease while stopping")]
    LifeLost,
    /// The coordination table is unusable: it could not be created or described, or it exists
    /// with another key schema.
    #[error("coordination table {table}: {reason}")]
    Table {
        /// The table name.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// The driver ended in a phase that is not a stop (a bug).
    #[error("the driver ended in phase {phase}")]
    Unexpected {
        /// The phase it ended in.
        phase: String,
    },
}

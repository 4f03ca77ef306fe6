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
    /// An item the runtime must read is not as the protocol writes it (a manual edit, or a
    /// later version's format); it stays so until an operator repairs or deletes it.
    #[error("item {key} of the coordination table cannot be read: {reason}")]
    Malformed {
        /// The item's key, as `pk/sk`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl BackendError {
    /// Whether the same call may succeed if made again: throttling, a timeout or a lost
    /// connection, missing credentials or a deadline that passed before sending are passing
    /// troubles; a failed condition, a missing queue or a refused request are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Throttled { .. }
            | BackendError::Unknown { .. }
            | BackendError::Credentials { .. }
            | BackendError::NotSent { .. } => true,
            BackendError::ConditionFailed
            | BackendError::QueueDoesNotExist { .. }
            | BackendError::Refused { .. }
            | BackendError::Malformed { .. } => false,
        }
    }
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
    /// The coordination table is unusable as it is: it exists with another key schema, or
    /// could not be read at all. Asking again will not help.
    #[error("coordination table {table}: {reason}")]
    Table {
        /// The table name.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// Managing the coordination table (describing, creating it, waiting for it to become
    /// active) failed; [`RuntimeError::is_retryable`] says whether asking again may help.
    #[error("coordination table {table}: {source}")]
    TableUnavailable {
        /// The table name.
        table: String,
        /// How the call failed.
        source: BackendError,
    },
    /// OpenTelemetry export could not be set up or finished (feature `otel`).
    #[error("telemetry: {what}: {reason}")]
    Telemetry {
        /// What failed: an exporter, the metrics recorder, the last export.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The driver ended in a phase that is not a stop (a bug).
    #[error("the driver ended in phase {phase}")]
    Unexpected {
        /// The phase it ended in.
        phase: String,
    },
}

impl RuntimeError {
    /// Whether doing the same again may succeed: only a table that could not be managed for a
    /// passing reason (throttling, a timeout, credentials not yet available). A bad
    /// configuration, a stop that timed out or a lost lease are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            RuntimeError::TableUnavailable { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_troubles_are_retryable_and_refusals_are_not() {
        let throttled = BackendError::Throttled {
            service: "dynamodb",
            message: "slow down".into(),
        };
        let refused = BackendError::Refused {
            service: "dynamodb",
            reason: "AccessDenied".into(),
        };
        assert!(throttled.is_retryable());
        assert!(!refused.is_retryable());
        assert!(!BackendError::ConditionFailed.is_retryable());
        let unavailable = |source| RuntimeError::TableUnavailable {
            table: "t".into(),
            source,
        };
        assert!(unavailable(throttled).is_retryable());
        assert!(!unavailable(refused).is_retryable());
        assert!(!RuntimeError::Stopped.is_retryable());
        let schema = RuntimeError::Table {
            table: "t".into(),
            reason: "exists with key schema []".into(),
        };
        assert!(!schema.is_retryable());
    }
}

//! The one error type of the core.

/// Everything the core can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration field broke one of its rules.
    #[error("invalid configuration: {field} {rule}")]
    InvalidConfig {
        /// The field, by its name in `Config` (`heartbeat_timeout`, `sqs.max_messages`, ...).
        field: &'static str,
        /// The rule it broke, phrased to follow the field name.
        rule: String,
    },
    /// An identifier (application, instance, queue) cannot be stored safely in a DynamoDB key.
    #[error("invalid {kind} {value:?}: {rule}")]
    InvalidId {
        /// Which kind of identifier.
        kind: &'static str,
        /// The value given (truncated to 80 characters).
        value: String,
        /// The rule it broke.
        rule: &'static str,
    },
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;

//! The one error type of the simulator.

/// Everything the simulator can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A scenario parameter is out of range.
    #[error("invalid scenario: {field} {rule}")]
    InvalidScenario {
        /// The parameter.
        field: &'static str,
        /// The rule it broke.
        rule: String,
    },
    /// A duration could not be read.
    #[error("invalid duration {value:?}: use a number and a unit (500ms, 1.5s, 1m30s, 2h)")]
    InvalidDuration {
        /// The text given (truncated).
        value: String,
    },
    /// A fault name is not known.
    #[error("unknown fault {name:?}; known: all, none, {}", known.join(", "))]
    UnknownFault {
        /// The name given.
        name: String,
        /// The names known.
        known: Vec<&'static str>,
    },
    /// A level-2 host's software failed: the runtime refused to start.
    #[error("level-2 host failed: {reason}")]
    Host {
        /// What turmoil reported.
        reason: String,
    },
    /// The in-memory SQS refused a call, as SQS would (a bad queue name, an unknown queue).
    #[error("in-memory SQS: {0}")]
    Sqs(#[from] crate::fake::SqsError),
    /// Writing the trace or the timeline failed.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

//! What the user's code implements: a handler for one message.

use crate::backend::Message;
use std::future::Future;

/// Why a handler did not succeed; the message stays in the queue and comes back after its
/// visibility timeout.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{reason}")]
pub struct HandlerError {
    /// What went wrong, for the log (never the message body).
    pub reason: String,
}

impl HandlerError {
    /// A failure with this reason.
    pub fn new(reason: impl Into<String>) -> HandlerError {
        HandlerError {
            reason: reason.into(),
        }
    }
}

/// Handles one message. `Ok` deletes it; `Err` or a panic leaves it for redelivery.
pub trait Handler: Send + Sync + 'static {
    /// Handles `message`.
    fn handle(&self, message: Message) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Any `Fn(Message) -> impl Future<Output = Result<(), HandlerError>>` is a handler, so a
/// closure returning an async block works.
impl<F, Fut> Handler for F
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle(&self, message: Message) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(message)
    }
}

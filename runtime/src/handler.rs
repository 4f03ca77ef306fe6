//! What the user's code implements: a handler for one message, or for a batch of up to ten.

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

/// What a batch handler says about each message of its batch, in the batch's order: `Ok`
/// deletes the message, `Err` leaves it for redelivery. A list of the wrong length fails the
/// whole batch.
pub type BatchOutcome = Vec<Result<(), HandlerError>>;

/// Handles the messages of one ReceiveMessage call together (up to `MaxMessages`, all from
/// one queue, in the order received), succeeding or failing each one alone. On a FIFO queue a
/// failure also fails the later messages of its group in the batch, so order holds.
pub trait BatchHandler: Send + Sync + 'static {
    /// Handles `batch`; the outcome has one entry per message.
    fn handle_batch(&self, batch: Vec<Message>) -> impl Future<Output = BatchOutcome> + Send;
}

/// Any `Fn(Vec<Message>) -> impl Future<Output = BatchOutcome>` is a batch handler.
impl<F, Fut> BatchHandler for F
where
    F: Fn(Vec<Message>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BatchOutcome> + Send + 'static,
{
    fn handle_batch(&self, batch: Vec<Message>) -> impl Future<Output = BatchOutcome> + Send {
        self(batch)
    }
}

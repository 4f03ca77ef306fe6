//! What the user's code implements: a handler for one message, or for a batch of up to ten.

use crate::backend::Message;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// Why a handler did not succeed; the message stays in the queue and comes back after its
/// visibility timeout (or its failure backoff).
///
/// Any error converts into it, so `?` works in a handler, and the error is kept as the
/// [`source`](HandlerError::source) for logs and tests. Like `anyhow::Error`, it is not itself
/// a `std::error::Error`: that is what lets every error convert into it.
#[derive(Clone)]
pub struct HandlerError {
    /// What went wrong, for the log (never the message body).
    reason: String,
    /// The error the handler failed with, when it failed with one.
    source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl HandlerError {
    /// A failure with this reason and no underlying error.
    pub fn new(reason: impl Into<String>) -> HandlerError {
        HandlerError {
            reason: reason.into(),
            source: None,
        }
    }

    /// What went wrong: the reason given, or the underlying error's message.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The error the handler failed with, if it failed with one (downcast it to inspect it).
    pub fn source(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> HandlerError {
        HandlerError {
            reason: e.to_string(),
            source: Some(Arc::new(e)),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        let mut next = self.source.as_deref().and_then(Error::source);
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("reason", &self.reason)
            .field("source", &self.source)
            .finish()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the ledger refused")]
    struct Refused(#[source] std::io::Error);

    fn parse(body: &str) -> Result<u64, HandlerError> {
        Ok(body.parse::<u64>()?)
    }

    #[test]
    fn any_error_converts_with_question_mark_and_stays_the_source() {
        let e = parse("twelve").unwrap_err();
        assert_eq!(e.reason(), "invalid digit found in string");
        let source = e.source().expect("the parse error is kept");
        assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
        assert_eq!(parse("12").ok(), Some(12));
    }

    #[test]
    fn the_display_names_the_whole_chain_of_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 5s");
        let e = HandlerError::from(Refused(io));
        assert_eq!(e.to_string(), "the ledger refused: no answer in 5s");
        assert_eq!(HandlerError::new("busy").to_string(), "busy");
        assert!(HandlerError::new("busy").source().is_none());
    }
}

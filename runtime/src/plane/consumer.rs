//! How the data plane runs the user's code: a [`Handler`] one message at a time, or a
//! [`BatchHandler`] on a whole receive at once.

use crate::backend::Message;
use crate::handler::{BatchHandler, BatchOutcome, Handler};
use std::future::Future;
use std::sync::Arc;

/// The user's code as the data plane calls it.
pub trait Consumer: Send + Sync + 'static {
    /// Whether one receive is handled as one batch (else one message at a time).
    const BATCHED: bool;

    /// Runs the user's code on `messages`: exactly one unless batched. One outcome per message.
    fn run(self: Arc<Self>, messages: Vec<Message>) -> impl Future<Output = BatchOutcome> + Send;
}

/// A per-message [`Handler`] as a consumer.
pub struct One<H>(pub H);

impl<H: Handler> Consumer for One<H> {
    const BATCHED: bool = false;

    async fn run(self: Arc<Self>, messages: Vec<Message>) -> BatchOutcome {
        let mut outcomes = Vec::with_capacity(messages.len());
        for m in messages {
            outcomes.push(self.0.handle(m).await);
        }
        outcomes
    }
}

/// A [`BatchHandler`] as a consumer.
pub struct Batch<B>(pub B);

impl<B: BatchHandler> Consumer for Batch<B> {
    const BATCHED: bool = true;

    async fn run(self: Arc<Self>, messages: Vec<Message>) -> BatchOutcome {
        self.0.handle_batch(messages).await
    }
}

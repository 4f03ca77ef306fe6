//! The worker pool: each worker runs the handler on one message at a time, isolated in its
//! own task so a panic fails that message and nothing else.

use super::{Job, Shared};
use crate::handler::Handler;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};

pub(super) async fn work<Q, H: Handler>(
    shared: Arc<Shared<Q, H>>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
) {
    loop {
        let job = jobs.lock().await.recv().await;
        let Some(job) = job else { return };
        let queue = job.message.queue.clone();
        let receipt = job.message.receipt.clone();
        let message_id = job.message.message_id.clone();
        let handler = Arc::clone(&shared.handler);
        let message = job.message;
        let outcome = tokio::spawn(async move { handler.handle(message).await }).await;
        match outcome {
            Ok(Ok(())) => {
                if shared.deletes.send((queue, receipt)).is_err() {
                    shared.finished(1);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(queue = %queue, message_id = %message_id, error = %e, "handler failed; the message comes back after its visibility timeout");
                shared.finished(1);
            }
            Err(e) => {
                tracing::error!(queue = %queue, message_id = %message_id, panicked = e.is_panic(), "handler did not finish; the message comes back after its visibility timeout");
                shared.finished(1);
            }
        }
        drop(job._permit);
    }
}

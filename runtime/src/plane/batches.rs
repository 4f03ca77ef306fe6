//! Batched SQS changes: deletes of successes and visibility changes (extensions, releases of
//! unstarted messages, failure backoff). Each waits up to the linger time for nine more of its
//! kind and queue, then goes out as one batch call in its own task; failed entries are retried
//! once, then logged.

use super::change::{Change, Kind};
use super::shared::{Phase, Shared};
use crate::backend::Sqs;
use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// SQS batch calls take at most ten entries.
const BATCH: usize = 10;

/// Collects changes into batches until the data plane closes, then flushes the rest.
pub(super) async fn batch<Q: Sqs, C: Send + Sync + 'static>(
    shared: Arc<Shared<Q, C>>,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    let mut pending: BTreeMap<(Kind, QueueId), Vec<Change>> = BTreeMap::new();
    let mut due: Option<Instant> = None;
    let mut phase = shared.phase.clone();
    loop {
        let next = tokio::select! {
            next = changes.recv() => next,
            () = Phase::reached(&mut phase, Phase::Flushed) => None,
            () = sleep_until(due) => {
                flush_all(&shared, &mut pending);
                due = None;
                continue;
            }
        };
        let Some(change) = next else {
            flush_all(&shared, &mut pending);
            return;
        };
        let key = (change.kind, change.queue.clone());
        let batch = pending.entry(key.clone()).or_default();
        batch.push(change);
        if batch.len() >= BATCH {
            let full = pending.remove(&key).unwrap_or_default();
            tokio::spawn(flush(Arc::clone(&shared), full));
        } else if due.is_none() {
            due = Some(Instant::now() + shared.settings.delete_linger);
        }
        if pending.is_empty() {
            due = None;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn flush_all<Q: Sqs, C: Send + Sync + 'static>(
    shared: &Arc<Shared<Q, C>>,
    pending: &mut BTreeMap<(Kind, QueueId), Vec<Change>>,
) {
    for (_, changes) in std::mem::take(pending) {
        tokio::spawn(flush(Arc::clone(shared), changes));
    }
}

/// `call`, or an unknown outcome once `deadline` has passed without its answer: a batch call
/// that never answers must not hold its messages (and a drain) for ever.
async fn within<T>(
    deadline: std::time::Duration,
    call: impl std::future::Future<Output = Result<T, crate::BackendError>>,
) -> Result<T, crate::BackendError> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(crate::BackendError::Unknown {
                service: "sqs",
                reason: format!("no answer within {deadline:?}"),
            })
        })
}

/// Sends one batch (all of one kind and queue), retrying failed entries once.
async fn flush<Q: Sqs, C>(shared: Arc<Shared<Q, C>>, changes: Vec<Change>) {
    let Some(first) = changes.first() else { return };
    let (queue, kind) = (first.queue.clone(), first.kind);
    let finishing = changes.iter().filter(|c| c.finishes).count();
    let mut done = Vec::new();
    let mut left = changes;
    for attempt in 0..2 {
        let deadline = shared.settings.timeouts.effect;
        let result = match kind {
            Kind::Delete => {
                let receipts = left.iter().map(|c| c.receipt.clone()).collect();
                let call = shared.sqs.delete_batch(queue.clone(), receipts);
                within(deadline, call).await
            }
            Kind::Visibility => {
                let entries = left.iter().map(|c| (c.receipt.clone(), c.secs)).collect();
                let call = shared.sqs.change_visibility_batch(queue.clone(), entries);
                within(deadline, call).await
            }
        };
        let operation = match kind {
            Kind::Delete => "DeleteMessageBatch",
            Kind::Visibility => "ChangeMessageVisibilityBatch",
        };
        crate::telemetry::api_call(operation, result.is_ok());
        match result {
            Ok(results) => {
                let mut failed = Vec::new();
                for (c, res) in left.into_iter().zip(results) {
                    match res {
                        Ok(()) => done.push(c),
                        Err(_) => failed.push(c),
                    }
                }
                left = failed;
            }
            Err(e) => {
                tracing::warn!(queue = %queue, operation, error = %e, attempt, "batch call failed");
            }
        }
        if left.is_empty() {
            break;
        }
    }
    let answered = done
        .iter()
        .map(|c| (c, true))
        .chain(left.iter().map(|c| (c, false)));
    for (c, accepted) in answered {
        if let Some(x) = &c.extension {
            shared.lock_inflight().extension_answered(x, accepted);
        }
    }
    if !left.is_empty() {
        match kind {
            Kind::Delete => tracing::warn!(
                queue = %queue,
                failed = left.len(),
                "deletes failed twice; those messages will be delivered again"
            ),
            Kind::Visibility => tracing::warn!(
                queue = %queue,
                failed = left.len(),
                "visibility changes failed twice; those messages keep their old timeout"
            ),
        }
    }
    shared.finished(finishing);
}

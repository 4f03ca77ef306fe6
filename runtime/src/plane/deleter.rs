//! Batched deletes: successes wait up to the linger time for nine more of their queue, then
//! go out as one DeleteMessageBatch; failed entries are retried once, then logged.

use super::Shared;
use crate::backend::Sqs;
use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

const BATCH: usize = 10;

pub(super) async fn delete<Q: Sqs, H>(
    shared: Arc<Shared<Q, H>>,
    mut successes: mpsc::UnboundedReceiver<(QueueId, String)>,
) {
    let mut pending: BTreeMap<QueueId, Vec<String>> = BTreeMap::new();
    let mut due: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            next = successes.recv() => next,
            () = sleep_until(due) => {
                flush_all(&shared, &mut pending).await;
                due = None;
                continue;
            }
        };
        let Some((queue, receipt)) = next else {
            flush_all(&shared, &mut pending).await;
            return;
        };
        let batch = pending.entry(queue.clone()).or_default();
        batch.push(receipt);
        if batch.len() >= BATCH {
            let receipts = pending.remove(&queue).unwrap_or_default();
            flush(&shared, queue, receipts).await;
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

async fn flush_all<Q: Sqs, H>(shared: &Shared<Q, H>, pending: &mut BTreeMap<QueueId, Vec<String>>) {
    for (queue, receipts) in std::mem::take(pending) {
        flush(shared, queue, receipts).await;
    }
}

async fn flush<Q: Sqs, H>(shared: &Shared<Q, H>, queue: QueueId, receipts: Vec<String>) {
    let n = receipts.len();
    let mut left = receipts;
    for attempt in 0..2 {
        match shared.sqs.delete_batch(queue.clone(), left.clone()).await {
            Ok(results) => {
                left = left
                    .into_iter()
                    .zip(results)
                    .filter_map(|(r, res)| res.err().map(|_| r))
                    .collect();
            }
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, attempt, "DeleteMessageBatch failed");
            }
        }
        if left.is_empty() {
            break;
        }
    }
    if !left.is_empty() {
        tracing::warn!(queue = %queue, failed = left.len(), "deletes failed twice; those messages will be delivered again");
    }
    shared.finished(n);
}

//! One queue's poller: receive as many messages as there are free permits, within the fence.

use super::{Job, Shared};
use crate::backend::{Receive, Sqs};
use crate::error::BackendError;
use sqsbalancer_core::{Input, QueueId};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::{Duration, Instant};

/// How long a poller rests after an empty short poll (a long poll waits at the service).
const SHORT_POLL_PAUSE: Duration = Duration::from_millis(200);

/// Polls `queue` until `stop` turns true, then reports [`Input::ReceivingStopped`] (never
/// while a receive call is in flight).
pub(super) async fn poll<Q: Sqs, H>(
    shared: Arc<Shared<Q, H>>,
    queue: QueueId,
    mut stop: watch::Receiver<bool>,
) {
    let mut fence = shared.fence.clone();
    let mut backoff = Duration::from_millis(100);
    let max = shared.settings.sqs.max_messages.clamp(1, 10) as usize;
    while !*stop.borrow() {
        // At least one permit, then whatever more is free right now.
        let first = tokio::select! {
            p = Arc::clone(&shared.permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let mut permits = vec![first];
        while permits.len() < max {
            match Arc::clone(&shared.permits).try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        // The call must end before the self-fence: no fence (not yet heartbeating, or cut
        // off) or too little time left means wait for the fence to move.
        let wait = fence_wait(*fence.borrow(), &shared.settings);
        let Some(wait) = wait else {
            drop(permits);
            tokio::select! {
                _ = fence.changed() => continue,
                _ = stop.changed() => break,
            }
        };
        let request = Receive {
            queue: queue.clone(),
            max: permits.len() as u32,
            visibility_secs: shared.settings.sqs.visibility_timeout,
            wait,
            attribute_names: shared.settings.sqs.message_attribute_names.clone(),
        };
        match shared.sqs.receive(request).await {
            Ok(messages) => {
                backoff = Duration::from_millis(100);
                if messages.is_empty() && wait.is_zero() {
                    // A short poll came back empty: pause rather than spin.
                    tokio::select! {
                        () = tokio::time::sleep(SHORT_POLL_PAUSE) => {}
                        _ = stop.changed() => break,
                    }
                }
                shared.received(messages.len());
                for message in messages {
                    let Some(permit) = permits.pop() else {
                        tracing::error!(queue = %queue, "more messages than asked for");
                        shared.finished(1);
                        continue;
                    };
                    let job = Job {
                        message,
                        _permit: permit,
                    };
                    if shared.jobs.send(job).await.is_err() {
                        shared.finished(1);
                    }
                }
            }
            Err(BackendError::QueueDoesNotExist { .. }) => {
                tracing::warn!(queue = %queue, "queue does not exist; dropping it");
                shared.report(Input::QueueGone {
                    queue: queue.clone(),
                });
                // The node answers with a stop; nothing more to receive meanwhile.
                let _ = stop.wait_for(|s| *s).await;
                break;
            }
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, backoff_ms = backoff.as_millis() as u64, "receive failed");
                drop(permits);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    shared.report(Input::ReceivingStopped { queue });
}

/// The long-poll wait that ends before the fence, in whole seconds as SQS takes it (zero, a
/// short poll, when less than a second is left); `None` when the fence is too close for any
/// call.
fn fence_wait(fence: Option<Instant>, settings: &super::PlaneSettings) -> Option<Duration> {
    let left = fence?.checked_duration_since(Instant::now() + settings.request_margin)?;
    let wanted = Duration::from_secs(u64::from(settings.sqs.wait_time_seconds.min(20)));
    Some(Duration::from_secs(left.min(wanted).as_secs()))
}

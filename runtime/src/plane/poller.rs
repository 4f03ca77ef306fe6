//! One queue's poller: wait in turn for a receive's worth of permits, receive within the
//! fence, and hand the messages to the workers as jobs.

use super::batches::Change;
use super::{Job, Origin, Shared};
use crate::backend::{Message, Receive, Sqs};
use crate::clock;
use crate::error::BackendError;
use crate::plane::Consumer;
use sqsbalancer_core::Input;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Duration, Instant};

/// The first rest after an empty short poll; it doubles up to the queue's wait time.
const FIRST_REST: Duration = Duration::from_millis(200);

/// Polls `origin`'s queue until `stop` turns true, then reports [`Input::ReceivingStopped`]
/// (never while a receive call is in flight).
pub(super) async fn poll<Q: Sqs, C: Consumer>(
    shared: Arc<Shared<Q, C>>,
    origin: Arc<Origin>,
    mut stop: watch::Receiver<bool>,
) {
    let queue = origin.queue.clone();
    let sqs = shared.settings.sqs_for(&queue).clone();
    let batch = (sqs.max_messages.clamp(1, 10) as usize).min(shared.settings.capacity());
    let longest_rest = Duration::from_secs(u64::from(sqs.wait_time_seconds.max(1)));
    let wanted = Duration::from_secs(u64::from(sqs.wait_time_seconds.min(20)));
    let timeouts = shared.settings.timeouts;
    let mut fence = shared.fence.clone();
    let mut backoff = Duration::from_millis(100);
    let mut rest = FIRST_REST;
    while !*stop.borrow() {
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        let permits = tokio::select! {
            p = Arc::clone(&shared.permits).acquire_many_owned(batch as u32) => p.ok(),
            _ = stop.changed() => None,
        };
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        let Some(permits) = permits else { break };
        // The call must be over at SQS before the self-fence: no fence (not yet heartbeating,
        // or cut off) or too little time left means wait for the fence to move.
        let now = clock::now();
        let plan = fence
            .borrow()
            .and_then(|f| timeouts.plan_receive(now, f, wanted));
        let Some(plan) = plan else {
            drop(permits);
            tokio::select! {
                _ = fence.changed() => continue,
                _ = stop.changed() => break,
            }
        };
        // A long poll only while nobody waits for permits and a long-poll slot is free.
        let slot = if plan.wait.is_zero() || shared.waiting.load(Ordering::SeqCst) > 0 {
            None
        } else {
            Arc::clone(&shared.long_polls).try_acquire_owned().ok()
        };
        let plan = match (&slot, *fence.borrow()) {
            (None, Some(f)) => timeouts
                .plan_receive(now, f, Duration::ZERO)
                .unwrap_or(plan),
            _ => plan,
        };
        let request = Receive {
            queue: queue.clone(),
            max: batch as u32,
            visibility_secs: sqs.visibility_timeout,
            wait: plan.wait,
            attribute_names: sqs.message_attribute_names.clone(),
            send_by: plan.send_by,
            attempt_timeout: timeouts.receive_attempt(plan.wait),
        };
        let sent = Instant::now();
        let call = shared.sqs.receive(request);
        let result = match tokio::time::timeout_at(clock::timer(plan.give_up_at), call).await {
            Ok(result) => result,
            // Over at SQS by the fence; what it took comes back after its visibility timeout.
            Err(_) => Err(BackendError::Unknown {
                service: "sqs",
                reason: "no answer by the self-fence".to_owned(),
            }),
        };
        drop(slot);
        crate::telemetry::api_call("ReceiveMessage", result.is_ok());
        let fenced = fence.borrow().is_none_or(|f| clock::now() >= f);
        match result {
            Ok(messages) if messages.is_empty() => {
                backoff = Duration::from_millis(100);
                drop(permits);
                if plan.wait.is_zero() {
                    // A short poll came back empty: rest rather than spin.
                    tokio::select! {
                        () = tokio::time::sleep(rest) => {}
                        _ = stop.changed() => break,
                    }
                    rest = (rest * 2).min(longest_rest);
                }
            }
            Ok(messages) if fenced => {
                drop(permits);
                shared.counters.received(&origin.metrics, messages.len());
                fence_out(&shared, &origin, messages);
            }
            Ok(messages) => {
                backoff = Duration::from_millis(100);
                rest = FIRST_REST;
                shared.counters.received(&origin.metrics, messages.len());
                hand_over(
                    &shared,
                    &origin,
                    messages,
                    permits,
                    sent,
                    sqs.visibility_timeout,
                );
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
                    () = tokio::time::sleep(jitter(backoff, &queue)) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    shared.report(Input::ReceivingStopped { queue });
}

/// A receive came back after the self-fence: a peer may own the queue by now, so its messages
/// are made visible again at once and never handed to a handler.
fn fence_out<Q, C>(shared: &Shared<Q, C>, origin: &Origin, messages: Vec<Message>) {
    tracing::warn!(
        queue = %origin.queue,
        messages = messages.len(),
        "a receive came back after the self-fence; its messages are made visible again unhandled"
    );
    shared.counters.fenced_out(&origin.metrics, messages.len());
    shared.received(messages.len());
    for m in messages {
        shared.change(Change::visibility(m.queue, m.receipt, 0));
    }
}

/// Registers `messages` as held and queues them as jobs: the whole receive for a batch
/// handler, each FIFO group's messages in order, or else one job per message.
fn hand_over<Q, C: Consumer>(
    shared: &Shared<Q, C>,
    origin: &Arc<Origin>,
    messages: Vec<Message>,
    mut permits: OwnedSemaphorePermit,
    sent: Instant,
    visibility_secs: u32,
) {
    let n = messages.len();
    if permits.num_permits() > n {
        // SQS returned fewer than asked: the rest go back at once.
        drop(permits.split(permits.num_permits() - n));
    }
    shared.received(n);
    let held: Vec<(u64, Message)> = {
        let mut inflight = shared.lock_inflight();
        messages
            .into_iter()
            .map(|m| {
                let id = inflight.add(&m.queue, &m.receipt, visibility_secs, sent);
                (id, m)
            })
            .collect()
    };
    let jobs: Vec<Vec<(u64, Message)>> = if C::BATCHED {
        vec![held]
    } else if origin.fifo {
        let mut groups: Vec<Vec<(u64, Message)>> = Vec::new();
        for (id, m) in held {
            match groups.iter_mut().find(|g| g[0].1.group == m.group) {
                Some(g) => g.push((id, m)),
                None => groups.push(vec![(id, m)]),
            }
        }
        groups
    } else {
        held.into_iter().map(|h| vec![h]).collect()
    };
    for messages in jobs {
        let Some(job_permits) = permits.split(messages.len()) else {
            tracing::error!(queue = %origin.queue, "more messages than permits");
            shared.finished(messages.len());
            continue;
        };
        let job = Job {
            messages,
            permits: job_permits,
            origin: Arc::clone(origin),
        };
        if let Err(closed) = shared.jobs.try_send(job) {
            shared.finished(closed.into_inner().messages.len());
        }
    }
}

/// `base` stretched by up to half again, fixed per queue so a fleet's pollers do not retry in
/// step (no entropy needed: queue URLs differ).
fn jitter(base: Duration, queue: &sqsbalancer_core::QueueId) -> Duration {
    let spread = queue
        .as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 500;
    base + base * spread / 1000
}

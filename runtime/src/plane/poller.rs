//! One queue's poller: wait in turn for a receive's worth of permits, receive within the
//! fence, and hand the messages to the workers as jobs.

use super::change::Change;
use super::shared::{Job, Origin, Permits, Shared};
use crate::backend::{Message, Receive, Sqs};
use crate::clock;
use crate::error::BackendError;
use crate::plane::Consumer;
use crate::plane::settings::IDLE_AFTER;
use crate::timeouts::ReceivePlan;
use sqsbalancer_core::Input;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Duration, Instant};

/// The first rest after an empty short poll; it doubles up to the queue's wait time.
const FIRST_REST: Duration = Duration::from_millis(200);
/// The first wait after a failed receive; it doubles up to [`LONGEST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait after failed receives.
const LONGEST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest long poll SQS takes.
const LONGEST_WAIT: Duration = Duration::from_secs(20);

/// Polls `origin`'s queue until `stop` turns true, then reports [`Input::ReceivingStopped`]
/// (never while a receive call is in flight).
pub(super) async fn poll<Q: Sqs, C: Consumer>(
    shared: Arc<Shared<Q, C>>,
    origin: Arc<Origin>,
    stop: watch::Receiver<bool>,
) {
    let mut poller = Poller::new(shared, origin, stop);
    while !*poller.stop.borrow() {
        let Some(permits) = poller.turn().await else {
            break;
        };
        let Some((plan, slot)) = poller.plan() else {
            drop(permits);
            if poller.fence_moved().await {
                continue;
            }
            break;
        };
        let sent = Instant::now();
        let result = poller.receive(plan).await;
        drop(slot);
        if poller.settle(result, permits, plan, sent).await == Flow::Stop {
            break;
        }
    }
    let Poller { shared, origin, .. } = poller;
    shared.jobs.end(origin.lane);
    shared.report(Input::ReceivingStopped {
        queue: origin.queue.clone(),
    });
}

/// What the poller does after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Poll again.
    Continue,
    /// The poller was told to stop.
    Stop,
}

/// One queue's poller between its steps.
struct Poller<Q, C> {
    shared: Arc<Shared<Q, C>>,
    origin: Arc<Origin>,
    /// Turns true when the poller must stop.
    stop: watch::Receiver<bool>,
    /// The self-fence, which moves with every acknowledged heartbeat.
    fence: watch::Receiver<Option<Instant>>,
    /// The queue's SQS settings.
    sqs: sqsbalancer_core::SqsConfig,
    /// Messages asked for per receive (and permits held for it).
    batch: usize,
    /// The queue's own permits, one per message it holds, if it caps them.
    cap: Option<Arc<Semaphore>>,
    /// The long-poll wait the settings ask for.
    wanted: Duration,
    /// The rest after the next empty short poll.
    rest: Duration,
    /// The wait after the next failed receive.
    backoff: Duration,
    /// Empty long polls in a row.
    empty: u32,
}

impl<Q: Sqs, C: Consumer> Poller<Q, C> {
    fn new(
        shared: Arc<Shared<Q, C>>,
        origin: Arc<Origin>,
        stop: watch::Receiver<bool>,
    ) -> Poller<Q, C> {
        let sqs = shared.settings.sqs_for(&origin.queue).clone();
        let cap = sqs.max_in_flight.map(|c| c as usize);
        let batch = (sqs.max_messages.clamp(1, 10) as usize)
            .min(shared.settings.capacity())
            .min(cap.unwrap_or(usize::MAX));
        let cap = cap.map(|c| Arc::new(Semaphore::new(c)));
        let wanted = sqs.wait_time.min(LONGEST_WAIT);
        let fence = shared.fence.clone();
        Poller {
            shared,
            origin,
            stop,
            fence,
            sqs,
            batch,
            cap,
            wanted,
            rest: FIRST_REST,
            backoff: FIRST_BACKOFF,
            empty: 0,
        }
    }

    /// Waits in turn for a receive's worth of permits, the queue's own first (waiting for
    /// those leaves other pollers free to long-poll); `None` once told to stop.
    async fn turn(&mut self) -> Option<Permits> {
        let n = self.batch as u32;
        let queue = match &self.cap {
            Some(cap) => Some(tokio::select! {
                p = Arc::clone(cap).acquire_many_owned(n) => p.ok()?,
                _ = self.stop.changed() => return None,
            }),
            None => None,
        };
        let shared = &self.shared;
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        let plane = tokio::select! {
            p = Arc::clone(&shared.permits).acquire_many_owned(n) => p.ok(),
            _ = self.stop.changed() => None,
        };
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        Some(Permits {
            plane: plane?,
            queue,
        })
    }

    /// A receive that is over at SQS before the self-fence, and the long-poll slot it holds
    /// (a long poll only while nobody waits for permits and a slot is free); `None` when there
    /// is no fence (not yet heartbeating, or cut off) or too little time is left before it.
    fn plan(&self) -> Option<(ReceivePlan, Option<OwnedSemaphorePermit>)> {
        let timeouts = self.shared.settings.timeouts;
        let now = clock::now();
        let fence = *self.fence.borrow();
        let plan = fence.and_then(|f| timeouts.plan_receive(now, f, self.wanted))?;
        let slot = if plan.wait.is_zero() || self.shared.waiting.load(Ordering::SeqCst) > 0 {
            None
        } else {
            Arc::clone(&self.shared.long_polls).try_acquire_owned().ok()
        };
        let plan = match (&slot, fence) {
            (None, Some(f)) => timeouts
                .plan_receive(now, f, Duration::ZERO)
                .unwrap_or(plan),
            _ => plan,
        };
        Some((plan, slot))
    }

    /// Waits for the fence to move: `false` if told to stop first.
    async fn fence_moved(&mut self) -> bool {
        tokio::select! {
            _ = self.fence.changed() => true,
            _ = self.stop.changed() => false,
        }
    }

    /// The receive of `plan`, given up on at its give-up time: over at SQS by the fence, what
    /// it took comes back after its visibility timeout.
    async fn receive(&self, plan: ReceivePlan) -> Result<Vec<Message>, BackendError> {
        let request = Receive {
            queue: self.origin.queue.clone(),
            max: self.batch as u32,
            visibility_secs: self.sqs.visibility_secs(),
            wait: plan.wait,
            attribute_names: self.sqs.message_attribute_names.clone(),
            send_by: plan.send_by,
            attempt_timeout: self.shared.settings.timeouts.receive_attempt(plan.wait),
        };
        let call = self.shared.sqs.receive(request);
        let result = tokio::time::timeout_at(clock::timer(plan.give_up_at), call)
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::Unknown {
                    service: "sqs",
                    reason: "no answer by the self-fence".to_owned(),
                })
            });
        crate::telemetry::api_call("ReceiveMessage", result.is_ok());
        result
    }

    /// Acts on a receive's `result`: hands its messages over, or makes them visible again if
    /// they came back past the fence; rests after an empty short poll, backs off after a
    /// failure.
    async fn settle(
        &mut self,
        result: Result<Vec<Message>, BackendError>,
        permits: Permits,
        plan: ReceivePlan,
        sent: Instant,
    ) -> Flow {
        let fenced = self.fence.borrow().is_none_or(|f| clock::now() >= f);
        let (shared, origin) = (&self.shared, &self.origin);
        match result {
            Ok(messages) if messages.is_empty() => {
                self.backoff = FIRST_BACKOFF;
                drop(permits);
                self.empty = self.empty.saturating_add(1);
                if let Some(idle) = self.idle_pause() {
                    return self.pause(idle).await;
                }
                if plan.wait.is_zero() {
                    // A short poll came back empty: rest rather than spin.
                    let rest = self.rest;
                    self.rest = (rest * 2).min(self.longest_rest());
                    return self.pause(rest).await;
                }
            }
            Ok(messages) if fenced => {
                drop(permits);
                shared.counters.received(&origin.metrics, messages.len());
                fence_out(shared, origin, messages);
            }
            Ok(messages) => {
                self.backoff = FIRST_BACKOFF;
                self.rest = FIRST_REST;
                self.empty = 0;
                shared.counters.received(&origin.metrics, messages.len());
                let visibility = self.sqs.visibility_secs();
                hand_over(shared, origin, messages, permits, sent, visibility);
            }
            Err(BackendError::QueueDoesNotExist { .. }) => {
                tracing::warn!(queue = %origin.queue, "queue does not exist; dropping it");
                shared.report(Input::QueueGone {
                    queue: origin.queue.clone(),
                });
                // The node answers with a stop; nothing more to receive meanwhile.
                let _ = self.stop.wait_for(|s| *s).await;
                return Flow::Stop;
            }
            Err(e) => {
                let backoff = self.backoff;
                tracing::warn!(queue = %origin.queue, error = %e, backoff_ms = backoff.as_millis() as u64, "receive failed");
                drop(permits);
                self.backoff = (backoff * 2).min(LONGEST_BACKOFF);
                return self.pause(jitter(backoff, &self.origin.queue)).await;
            }
        }
        Flow::Continue
    }

    /// The rest before the next long poll when the queue counts as idle.
    fn idle_pause(&self) -> Option<Duration> {
        let pause = self.shared.settings.idle_pause?;
        (self.empty >= IDLE_AFTER).then_some(pause)
    }

    /// The longest rest between empty short polls: the queue's wait time.
    fn longest_rest(&self) -> Duration {
        self.sqs.wait_time.max(Duration::from_secs(1))
    }

    /// Sleeps for `d` unless told to stop first.
    async fn pause(&mut self, d: Duration) -> Flow {
        tokio::select! {
            () = tokio::time::sleep(d) => Flow::Continue,
            _ = self.stop.changed() => Flow::Stop,
        }
    }
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
    mut permits: Permits,
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
    let mut queued = Vec::with_capacity(jobs.len());
    for messages in jobs {
        let Some(job_permits) = permits.split(messages.len()) else {
            tracing::error!(queue = %origin.queue, "more messages than permits");
            shared.finished(messages.len());
            continue;
        };
        shared.counters.queued(messages.len());
        queued.push(Job {
            messages,
            permits: job_permits,
            origin: Arc::clone(origin),
        });
    }
    // One receive's jobs go in at once: one lock and one wake-up call, not one per message.
    for closed in shared
        .jobs
        .push_all(origin.lane, queued, |j| j.messages.len())
    {
        let n = closed.messages.len();
        shared.counters.dequeued(n);
        shared.finished(n);
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

//! What the data plane's tasks share: the pollers' origins, the jobs handed to workers, the
//! shared state and the plane's phase.

use super::change::Change;
use super::counters::Counters;
use super::inflight::InFlight;
use super::settings::PlaneSettings;
use super::work_queue::WorkQueue;
use crate::backend::Message;
use crate::driver::DriverHandle;
use crate::telemetry::QueueMetrics;
use sqsbalancer_core::{Input, QueueId};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

/// One poller's life on its queue: jobs remember it so a worker can tell that their queue
/// was stopped before they started.
pub(super) struct Origin {
    /// The queue polled.
    pub(super) queue: QueueId,
    /// This poller life's lane in the work queue: a number no other life of the data plane
    /// has.
    pub(super) lane: u64,
    /// The queue's recent load, which this life's handlers add to.
    pub(super) load: Arc<super::load::QueueLoad>,
    /// A FIFO queue: its messages are handled in order, one group at a time.
    pub(super) fifo: bool,
    /// The poller was told to stop (a hand-off, a drain): unstarted jobs are released.
    pub(super) stopped: AtomicBool,
    /// The queue's metrics.
    pub(super) metrics: QueueMetrics,
}

impl Origin {
    pub(super) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// Received messages handled together, with their ids in the in-flight registry and one
/// permit each.
pub(super) struct Job {
    /// The messages, with their ids in the in-flight registry.
    pub(super) messages: Vec<(u64, Message)>,
    /// One permit per message, given back when the message is settled.
    pub(super) permits: Permits,
    /// The poller life that received them.
    pub(super) origin: Arc<Origin>,
}

/// The permits of messages held: one each of the data plane's, and one each of their queue's
/// when it caps its messages in flight (`SqsConfig::max_in_flight`).
pub(super) struct Permits {
    /// The data plane's permits.
    pub(super) plane: OwnedSemaphorePermit,
    /// The queue's permits, if it has a cap.
    pub(super) queue: Option<OwnedSemaphorePermit>,
}

impl Permits {
    /// How many messages these permits are for.
    pub(super) fn num_permits(&self) -> usize {
        self.plane.num_permits()
    }

    /// Splits off the permits of `n` messages; `None` if there are fewer.
    pub(super) fn split(&mut self, n: usize) -> Option<Permits> {
        if n > self.plane.num_permits() {
            return None;
        }
        let queue = match &mut self.queue {
            Some(q) => Some(q.split(n)?),
            None => None,
        };
        Some(Permits {
            plane: self.plane.split(n)?,
            queue,
        })
    }
}

/// What the pollers, workers, batcher and keeper share.
pub(super) struct Shared<Q, C> {
    /// The SQS client.
    pub(super) sqs: Arc<Q>,
    /// The user's handler.
    pub(super) consumer: Arc<C>,
    /// The data plane's settings.
    pub(super) settings: PlaneSettings,
    /// One permit per message held (capacity = workers + work queue).
    pub(super) permits: Arc<Semaphore>,
    /// Long polls in flight at most (each holds a receive's worth of permits).
    pub(super) long_polls: Arc<Semaphore>,
    /// Pollers waiting for permits: while any wait, nobody starts a long poll.
    pub(super) waiting: AtomicUsize,
    /// The self-fence on the runtime's clock: no receive may be open at SQS from then on.
    pub(super) fence: watch::Receiver<Option<Instant>>,
    /// The work queue the workers take jobs from.
    pub(super) jobs: WorkQueue<Job>,
    /// Changes for the batcher.
    pub(super) changes: mpsc::UnboundedSender<Change>,
    /// The messages held, for the keeper.
    pub(super) inflight: std::sync::Mutex<InFlight>,
    /// The runtime's counters.
    pub(super) counters: Arc<Counters>,
    /// Where receiving-stopped and drain-finished reports go.
    pub(super) driver: DriverHandle,
    /// Messages received and not yet finished (deleted, released, or failed and left).
    pub(super) outstanding: AtomicUsize,
    /// Woken when `outstanding` reaches zero.
    pub(super) idle: Notify,
    /// The instance drains: workers start nothing new.
    pub(super) draining: AtomicBool,
    /// How far the close has gone: the workers and keeper end once closed, the batcher once
    /// flushed.
    pub(super) phase: watch::Receiver<Phase>,
}

/// The data plane's life, in order: one channel rather than a flag per step, so that a step
/// implies the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    /// Handling messages.
    Open,
    /// The driver has stopped: pollers and the keeper end, workers abandon their handlers and
    /// release what they hold.
    Closed,
    /// The last changes are flushed (or their deadline passed): the batcher ends.
    Flushed,
}

impl Phase {
    /// Waits until `phase` reaches at least `at`; also returns if the data plane is gone.
    pub(super) async fn reached(phase: &mut watch::Receiver<Phase>, at: Phase) {
        let _ = phase.wait_for(|p| *p >= at).await;
    }
}

impl<Q, C> Shared<Q, C> {
    pub(super) fn received(&self, n: usize) {
        self.outstanding.fetch_add(n, Ordering::SeqCst);
    }

    pub(super) fn finished(&self, n: usize) {
        if n > 0 && self.outstanding.fetch_sub(n, Ordering::SeqCst) == n {
            self.idle.notify_waiters();
        }
    }

    /// Waits until every received message is finished.
    pub(super) async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(super) fn lock_inflight(&self) -> MutexGuard<'_, InFlight> {
        // The registry holds plain data; a panic elsewhere leaves it consistent.
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a batched change; once the batcher is gone, a finishing change just finishes.
    pub(super) fn change(&self, change: Change) {
        if let Err(mpsc::error::SendError(c)) = self.changes.send(change)
            && c.finishes()
        {
            self.finished(1);
        }
    }

    pub(super) fn report(&self, input: Input) {
        if self.driver.report(input).is_err() {
            tracing::debug!("the driver has stopped; report dropped");
        }
    }
}

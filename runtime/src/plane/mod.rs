//! The data plane (docs/design.md §5): one poller per owned queue, a bounded pool of workers
//! running the user's code, batched deletes and visibility changes, and a keeper extending the
//! visibility of messages still held.
//!
//! Backpressure is by permits, one per message held (capacity = workers + work queue). A
//! poller waits, in turn, for a full receive's worth of permits before it calls
//! ReceiveMessage, so receives come back full (fewer calls per message) and nothing received
//! waits for a worker long enough to time out. Long polls hold their permits for up to 20 s,
//! so a poller long-polls only while no other poller waits for permits, and at most all but
//! one receive's worth of permits are in long polls; otherwise it short-polls and, when that
//! comes back empty, rests (200 ms doubling up to the queue's wait time) without permits.
//! That keeps an instance with far more queues than permits from starving its busy queues
//! behind idle ones' long polls.
//!
//! A message is deleted only after its handler succeeded; a failure or a panic leaves it to
//! come back after its visibility timeout (or a backoff), and the worker lives on. Messages
//! received but not started when their queue is handed off or the instance drains are made
//! visible again at once.
//!
//! When the driver stops with handlers still running (the shutdown timeout passed, or the
//! life was lost), the data plane closes: running handlers are abandoned (their futures
//! dropped) and their messages, like those still waiting for a worker, made visible again at
//! once; then it flushes every delete and release still pending, within one coordination
//! deadline, before [`Running::stop`](crate::Running::stop) returns.

mod batches;
mod change;
mod consumer;
mod counters;
mod inflight;
mod keeper;
mod load;
mod poller;
mod settings;
mod shared;
mod work_queue;
mod worker;

pub use consumer::{Batch, Consumer, One};
pub(crate) use counters::Counters;
pub use load::LoadMeter;
pub use settings::{FailureBackoff, MAX_VISIBILITY, PlaneSettings};

use crate::backend::Sqs;
use crate::driver::{DriverHandle, PlaneCommand};
use crate::telemetry::QueueMetrics;
use inflight::InFlight;
use shared::{Origin, Phase, Shared};
use sqsbalancer_core::{Input, QueueId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::Instant;
use work_queue::WorkQueue;

/// The data plane of one instance, running consumer `C` (a [`One`] handler or a [`Batch`]
/// handler).
pub struct DataPlane<Q, C> {
    shared: Arc<Shared<Q, C>>,
    fence: watch::Sender<Option<Instant>>,
    phase: watch::Sender<Phase>,
    pollers: BTreeMap<QueueId, (watch::Sender<bool>, Arc<Origin>)>,
}

impl<Q: Sqs, C: Consumer> DataPlane<Q, C> {
    /// A data plane that reports to `driver` and counts into `counters`; starts its workers,
    /// batcher and keeper at once.
    pub(crate) fn start(
        settings: PlaneSettings,
        sqs: Arc<Q>,
        consumer: Arc<C>,
        driver: DriverHandle,
        counters: Arc<Counters>,
    ) -> DataPlane<Q, C> {
        let (fence, fence_rx) = watch::channel(None);
        let (phase, phase_rx) = watch::channel(Phase::Open);
        let (changes, changes_rx) = mpsc::unbounded_channel();
        let batch = settings.sqs.max_messages.clamp(1, 10) as usize;
        let long_polls = (settings.capacity() / batch).saturating_sub(1).max(1);
        let shared = Arc::new(Shared {
            sqs,
            consumer,
            permits: Arc::new(Semaphore::new(settings.capacity())),
            long_polls: Arc::new(Semaphore::new(long_polls)),
            waiting: AtomicUsize::new(0),
            fence: fence_rx,
            jobs: WorkQueue::new(settings.fair_scheduling),
            changes,
            inflight: std::sync::Mutex::new(InFlight::default()),
            counters,
            driver,
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
            draining: AtomicBool::new(false),
            phase: phase_rx,
            settings,
        });
        for _ in 0..shared.settings.workers {
            tokio::spawn(worker::work(Arc::clone(&shared)));
        }
        tokio::spawn(batches::batch(Arc::clone(&shared), changes_rx));
        if shared.settings.extend_visibility {
            tokio::spawn(keeper::keep(Arc::clone(&shared)));
        }
        DataPlane {
            shared,
            fence,
            phase,
            pollers: BTreeMap::new(),
        }
    }

    /// Carries out the driver's commands until the driver stops, then closes: abandons the
    /// handlers still running, releases what they and the work queue hold, and flushes the
    /// last changes (within one coordination deadline).
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PlaneCommand>) {
        while let Some(c) = commands.recv().await {
            match c {
                PlaneCommand::Start { queue, epoch } => {
                    let (stop, stop_rx) = watch::channel(false);
                    let origin = Arc::new(Origin {
                        lane: self.shared.jobs.open(),
                        load: self.shared.counters.loads.track(&queue),
                        fifo: queue.name().ends_with(".fifo"),
                        metrics: QueueMetrics::of(&queue),
                        queue: queue.clone(),
                        stopped: AtomicBool::new(false),
                    });
                    if let Some((old, old_origin)) = self
                        .pollers
                        .insert(queue.clone(), (stop, Arc::clone(&origin)))
                    {
                        old_origin.stopped.store(true, Ordering::SeqCst);
                        old.send_replace(true);
                    }
                    tracing::info!(queue = %queue, epoch, "receiving");
                    tokio::spawn(poller::poll(Arc::clone(&self.shared), origin, stop_rx));
                    self.ownership(1, 0);
                }
                PlaneCommand::Stop { queue } => match self.pollers.remove(&queue) {
                    Some((stop, origin)) => {
                        origin.stopped.store(true, Ordering::SeqCst);
                        stop.send_replace(true);
                        self.ownership(0, 1);
                    }
                    None => self.shared.report(Input::ReceivingStopped { queue }),
                },
                PlaneCommand::Fence { until } => {
                    self.fence.send_replace(Some(until));
                }
                PlaneCommand::Drain => {
                    self.shared.draining.store(true, Ordering::SeqCst);
                    let shared = Arc::clone(&self.shared);
                    tokio::spawn(async move {
                        shared.drained().await;
                        shared.report(Input::DrainFinished);
                    });
                }
            }
        }
        for (stop, origin) in self.pollers.values() {
            origin.stopped.store(true, Ordering::SeqCst);
            stop.send_replace(true);
        }
        self.phase.send_replace(Phase::Closed);
        let last = self.shared.settings.timeouts.effect;
        if tokio::time::timeout(last, self.shared.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.shared.outstanding.load(Ordering::SeqCst),
                "closing: some deletes or releases were not flushed in time"
            );
        }
        self.phase.send_replace(Phase::Flushed);
    }

    fn ownership(&self, acquired: usize, released: usize) {
        crate::telemetry::ownership(self.pollers.len(), acquired, released);
    }
}

//! The data plane (DESIGN §5): one poller per owned queue, a bounded pool of workers running
//! the handler, and batched deletes.
//!
//! Backpressure is by permits: a poller asks ReceiveMessage for at most as many messages as it
//! holds free permits for (one permit per worker and per work-queue slot), so nothing received
//! ever waits for a worker long enough to time out. A message is deleted only after its
//! handler succeeded; a failure or a panic leaves it to come back after its visibility
//! timeout, and the worker lives on.

mod deleter;
mod poller;
mod worker;

use crate::backend::{Message, Sqs};
use crate::driver::{DriverHandle, PlaneCommand};
use crate::handler::Handler;
use sqsbalancer_core::{Config, Input, QueueId, SqsConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Duration, Instant};

/// The data plane's settings, from the balancer's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaneSettings {
    /// ReceiveMessage settings.
    pub sqs: SqsConfig,
    /// Concurrent handler invocations.
    pub workers: usize,
    /// Messages received and waiting for a worker, at most.
    pub work_queue: usize,
    /// How long before the self-fence a receive call must have returned: covers the request
    /// beyond its long poll (network, retries).
    pub request_margin: Duration,
    /// How long a success waits for nine more before its delete batch goes out.
    pub delete_linger: Duration,
}

impl PlaneSettings {
    /// The settings of `cfg`.
    pub fn of(cfg: &Config) -> PlaneSettings {
        PlaneSettings {
            sqs: cfg.sqs.clone(),
            workers: cfg.worker_pool_size,
            work_queue: cfg.work_queue_size,
            // Two seconds, or a fifth of the heartbeat timeout when that is shorter (tests).
            request_margin: Duration::from_secs(2).min(cfg.heartbeat_timeout / 5),
            delete_linger: Duration::from_millis(50),
        }
    }
}

/// A received message and the permit it holds until it is finished.
struct Job {
    message: Message,
    _permit: OwnedSemaphorePermit,
}

/// What the pollers, workers and deleter share.
struct Shared<Q, H> {
    sqs: Arc<Q>,
    handler: Arc<H>,
    settings: PlaneSettings,
    permits: Arc<Semaphore>,
    fence: watch::Receiver<Option<Instant>>,
    jobs: mpsc::Sender<Job>,
    deletes: mpsc::UnboundedSender<(QueueId, String)>,
    driver: DriverHandle,
    /// Messages received and not yet finished (deleted, or failed and left).
    outstanding: AtomicUsize,
    idle: Notify,
}

impl<Q, H> Shared<Q, H> {
    fn received(&self, n: usize) {
        self.outstanding.fetch_add(n, Ordering::SeqCst);
    }

    fn finished(&self, n: usize) {
        if n > 0 && self.outstanding.fetch_sub(n, Ordering::SeqCst) == n {
            self.idle.notify_waiters();
        }
    }

    /// Waits until every received message is finished.
    async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    fn report(&self, input: Input) {
        if self.driver.report(input).is_err() {
            tracing::debug!("the driver has stopped; report dropped");
        }
    }
}

/// The data plane of one instance.
pub struct DataPlane<Q, H> {
    shared: Arc<Shared<Q, H>>,
    fence: watch::Sender<Option<Instant>>,
    pollers: BTreeMap<QueueId, watch::Sender<bool>>,
}

impl<Q: Sqs, H: Handler> DataPlane<Q, H> {
    /// A data plane that reports to `driver`; starts its workers and deleter at once.
    pub fn start(
        settings: PlaneSettings,
        sqs: Arc<Q>,
        handler: Arc<H>,
        driver: DriverHandle,
    ) -> DataPlane<Q, H> {
        let (fence, fence_rx) = watch::channel(None);
        let (jobs, jobs_rx) = mpsc::channel(settings.work_queue.max(1));
        let (deletes, deletes_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            sqs,
            handler,
            permits: Arc::new(Semaphore::new(settings.workers + settings.work_queue)),
            settings,
            fence: fence_rx,
            jobs,
            deletes,
            driver,
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        for _ in 0..shared.settings.workers {
            tokio::spawn(worker::work(Arc::clone(&shared), Arc::clone(&jobs_rx)));
        }
        tokio::spawn(deleter::delete(Arc::clone(&shared), deletes_rx));
        DataPlane {
            shared,
            fence,
            pollers: BTreeMap::new(),
        }
    }

    /// Carries out the driver's commands until the driver stops.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PlaneCommand>) {
        while let Some(c) = commands.recv().await {
            match c {
                PlaneCommand::Start { queue, epoch } => {
                    let (stop, stop_rx) = watch::channel(false);
                    if let Some(old) = self.pollers.insert(queue.clone(), stop) {
                        old.send_replace(true);
                    }
                    tracing::info!(queue = %queue, epoch, "receiving");
                    tokio::spawn(poller::poll(Arc::clone(&self.shared), queue, stop_rx));
                }
                PlaneCommand::Stop { queue } => match self.pollers.remove(&queue) {
                    Some(stop) => {
                        stop.send_replace(true);
                    }
                    None => self.shared.report(Input::ReceivingStopped { queue }),
                },
                PlaneCommand::Fence { until } => {
                    self.fence.send_replace(Some(until));
                }
                PlaneCommand::Drain => {
                    let shared = Arc::clone(&self.shared);
                    tokio::spawn(async move {
                        shared.drained().await;
                        shared.report(Input::DrainFinished);
                    });
                }
            }
        }
        for stop in self.pollers.values() {
            stop.send_replace(true);
        }
    }
}

//! The public face: [`Balancer::start`] runs a node and its data plane with the user's handler,
//! [`Running::stop`] walks the shutdown phases.

use crate::backend::{QueueList, Sqs, Store};
use crate::driver::{Driver, DriverHandle};
use crate::error::RuntimeError;
use crate::handler::{BatchHandler, Handler};
use crate::plane::{Batch, Consumer, Counters, DataPlane, FailureBackoff, One, PlaneSettings};
use crate::status::{Health, Stats};
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::{Config, Phase, QueueId, SqsConfig, StopOutcome};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A configured balancer, not yet running.
pub struct Balancer<B> {
    cfg: Config,
    settings: PlaneSettings,
    backend: Arc<B>,
}

impl<B: Store + QueueList + Sqs> Balancer<B> {
    /// A balancer of `cfg` over `backend` (DynamoDB for coordination, SQS for discovery and
    /// messages). The configuration is checked here: a bad one is a [`RuntimeError::Config`]
    /// naming the field and the rule.
    pub fn new(cfg: Config, backend: Arc<B>) -> Result<Balancer<B>, RuntimeError> {
        cfg.validate()?;
        if let Some(table) = backend.table_name()
            && table != cfg.dynamodb_table_name
        {
            return Err(RuntimeError::TableMismatch {
                configured: cfg.dynamodb_table_name,
                backend: table.to_owned(),
            });
        }
        let mut cfg = cfg;
        if cfg.instance_id.is_none() {
            let id = crate::instance::instance_id_from_environment();
            tracing::info!(instance_id = %id, "no instance id configured; generated one");
            cfg.instance_id = Some(id);
        }
        if cfg.seed == 0 {
            cfg.seed = crate::instance::entropy();
        }
        let settings = PlaneSettings::of(&cfg);
        Ok(Balancer {
            cfg,
            settings,
            backend,
        })
    }

    /// This instance's id: the configured one, or the one generated for it.
    pub fn instance_id(&self) -> &str {
        self.cfg.instance_id.as_deref().unwrap_or_default()
    }

    /// Receives from the queue named `queue` (the last segment of its URL) with `sqs`
    /// instead of the configuration's SQS settings. Checked with the other data-plane
    /// options when the balancer starts.
    pub fn with_queue_settings(mut self, queue: &str, sqs: SqsConfig) -> Balancer<B> {
        self.settings.overrides.insert(queue.to_owned(), sqs);
        self
    }

    /// Retries a failed message after `backoff` (growing with its receive count, set with
    /// ChangeMessageVisibility) instead of after the visibility timeout.
    pub fn with_failure_backoff(mut self, backoff: FailureBackoff) -> Balancer<B> {
        self.settings.failure_backoff = Some(backoff);
        self
    }

    /// Rests `pause` before each receive of a queue whose last three came back empty, until
    /// a message comes: an idle queue costs one receive per `wait_time + pause` instead of
    /// three a minute, and its first message waits up to `pause` longer (at most 1 h). Queues
    /// short-polling for want of a long-poll slot rest it too, instead of the wait time.
    pub fn with_idle_pause(mut self, pause: Duration) -> Balancer<B> {
        self.settings.idle_pause = Some(pause);
        self
    }

    /// Fails (and aborts) a handler still running after `timeout`.
    pub fn with_handler_timeout(mut self, timeout: Duration) -> Balancer<B> {
        self.settings.handler_timeout = Some(timeout);
        self
    }

    /// Checks every data-plane option now, naming the first bad one; `start` checks them
    /// too, so this is for failing before anything else is done.
    pub fn check(&self) -> Result<(), RuntimeError> {
        self.settings.validate()
    }

    /// Turns off fair scheduling (on by default): workers then take received messages in
    /// arrival order, so a queue with a backlog or a slow handler can hold every worker while
    /// the other queues' messages wait. Cap a queue's share with `SqsConfig::max_in_flight`.
    pub fn without_fair_scheduling(mut self) -> Balancer<B> {
        self.settings.fair_scheduling = false;
        self
    }

    /// Turns off visibility extension (on by default): a handler running past the visibility
    /// timeout then races a redelivery of its message.
    pub fn without_visibility_extension(mut self) -> Balancer<B> {
        self.settings.extend_visibility = false;
        self
    }

    /// Starts coordinating and, for the queues this instance comes to own, receiving and
    /// handling messages one at a time with `handler`. Needs a tokio runtime.
    pub fn start<H: Handler>(self, handler: H) -> Result<Running, RuntimeError> {
        self.run(One(handler))
    }

    /// Like [`Balancer::start`], but each receive (up to `MaxMessages` messages of one queue)
    /// goes to `handler` as one batch, each message succeeding or failing alone.
    pub fn start_batch<H: BatchHandler>(self, handler: H) -> Result<Running, RuntimeError> {
        self.run(Batch(handler))
    }

    /// Checks every data-plane option at once (the first bad one is named), then starts.
    fn run<C: Consumer>(self, consumer: C) -> Result<Running, RuntimeError> {
        self.check()?;
        let instance_id = self.instance_id().to_owned();
        let settings = self.settings;
        let shutdown_timeout = self.cfg.shutdown_timeout;
        let by_load = matches!(self.cfg.balance, Balance::Load { .. });
        let (driver, handle, commands) = Driver::new(
            self.cfg,
            Arc::clone(&self.backend),
            Arc::clone(&self.backend),
        )?;
        let counters = Arc::new(Counters::default());
        let driver = if by_load {
            driver.with_loads(Arc::clone(&counters))
        } else {
            driver
        };
        let plane = DataPlane::start(
            settings,
            self.backend,
            Arc::new(consumer),
            handle.clone(),
            Arc::clone(&counters),
        );
        let plane = tokio::spawn(plane.run(commands));
        let task = tokio::spawn(driver.run());
        Ok(Running {
            monitor: Monitor {
                handle,
                counters,
                instance_id,
            },
            task,
            plane,
            shutdown_timeout,
        })
    }
}

/// A running balancer. Dropping it leaves the instance running with nobody to stop it: call
/// [`Running::stop`].
#[must_use = "a dropped Running keeps its instance running until the process exits; call stop()"]
pub struct Running {
    /// What it reports, also handed out by [`Running::monitor`].
    monitor: Monitor,
    /// The driver.
    task: JoinHandle<Phase>,
    /// The data plane: it ends once the driver has and its last changes are flushed.
    plane: JoinHandle<()>,
    /// The configured shutdown timeout, for the error a late stop returns.
    shutdown_timeout: Duration,
}

/// A read-only view of a running instance, cheap to clone: for a health endpoint or a metrics
/// scrape that must keep answering while [`Running::stop`] runs.
#[derive(Clone, Debug)]
pub struct Monitor {
    /// The driver's handle, which it watches.
    handle: DriverHandle,
    /// The data plane's message counters.
    counters: Arc<Counters>,
    /// This instance's id.
    instance_id: String,
}

impl Monitor {
    /// The queues this instance receives from now.
    pub fn active_queues(&self) -> Vec<QueueId> {
        self.handle.receiving().into_keys().collect()
    }

    /// Message totals since start, the workers and work queue now, the queues owned, the
    /// fleet's size and the phase.
    pub fn stats(&self) -> Stats {
        let t = self.counters.totals();
        let queues = self.active_queues();
        Stats {
            instance_id: self.instance_id.clone(),
            processed: t.succeeded + t.failed,
            received: t.received,
            succeeded: t.succeeded,
            failed: t.failed,
            released: t.released,
            fenced_out: t.fenced_out,
            in_handlers: t.handling,
            busy_workers: t.busy,
            work_queue_depth: t.waiting,
            owned_queues: queues.len(),
            queue_load: (self.counters.loads).of(&queues, tokio::time::Instant::now()),
            queues,
            instances: self.handle.members(),
            phase: self.handle.phase(),
        }
    }

    /// Whether the instance is running and reaching its coordination table; the last
    /// backend error if not.
    pub fn health(&self) -> Health {
        self.handle.health()
    }

    /// Where the instance is in its lifecycle.
    pub fn phase(&self) -> Phase {
        self.handle.phase()
    }
}

impl Running {
    /// A view of this instance that outlives `stop()`'s taking of `self`.
    pub fn monitor(&self) -> Monitor {
        self.monitor.clone()
    }

    /// The queues this instance receives from now.
    pub fn active_queues(&self) -> Vec<QueueId> {
        self.monitor.active_queues()
    }

    /// Message totals since start, the workers and work queue now, the queues owned, the
    /// fleet's size and the phase.
    pub fn stats(&self) -> Stats {
        self.monitor.stats()
    }

    /// Whether the instance is running and reaching its coordination table; the last
    /// backend error if not.
    pub fn health(&self) -> Health {
        self.monitor.health()
    }

    /// Where the instance is in its lifecycle.
    pub fn phase(&self) -> Phase {
        self.monitor.phase()
    }

    /// The driver's handle, for the simulator to watch the instance; not part of the API.
    #[doc(hidden)]
    pub fn handle(&self) -> &DriverHandle {
        &self.monitor.handle
    }

    /// Ends the instance as a crash would, for its peers: no hand-off and no deregistration,
    /// so they take its queues over once its heartbeat timeout has passed. Its running
    /// handlers are dropped mid-call and their messages, like those not yet started, are made
    /// visible again, so each may be handled a second time. For tests of a handler's
    /// idempotency; a service stops with [`Running::stop`].
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = self.plane.await;
    }

    /// Stops gracefully: stop receiving, finish in-flight handlers and deletes, hand every
    /// queue to its next owner, deregister. Past the shutdown timeout it gives up with
    /// [`RuntimeError::ShutdownTimeout`]: handlers still running are abandoned and their
    /// messages made visible again at once (nothing unfinished is deleted); peers take the
    /// queues over as after a crash. Either way it returns once the last deletes and
    /// releases are flushed (or a coordination deadline passed).
    pub async fn stop(self) -> Result<(), RuntimeError> {
        // A driver that already stopped has nothing left to shut down.
        let _ = self.monitor.handle.shutdown();
        let phase = self.task.await.map_err(|_| RuntimeError::Stopped)?;
        let _ = self.plane.await;
        match phase {
            Phase::Stopped {
                outcome: StopOutcome::Clean,
            } => Ok(()),
            Phase::Stopped {
                outcome: StopOutcome::TimedOut,
            } => Err(RuntimeError::ShutdownTimeout {
                timeout: self.shutdown_timeout,
            }),
            Phase::Stopped {
                outcome: StopOutcome::LifeLost,
            } => Err(RuntimeError::LifeLost),
            other => Err(RuntimeError::Unexpected {
                phase: format!("{other:?}"),
            }),
        }
    }
}

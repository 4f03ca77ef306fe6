//! The driver: one core node on tokio.
//!
//! It owns the [`Node`] and is the only caller of `handle`, so the calling contract holds by
//! construction: every effect is drained after every input, and time (the runtime's
//! suspend-aware [`clock`], counted from the driver's start) only moves forward. DynamoDB and ListQueues effects run as
//! tasks whose results come back as inputs; receive commands go to the data plane, whose
//! reports come back through [`DriverHandle::report`].

use crate::backend::{QueueList, Store};
use crate::clock;
use crate::error::{BackendError, RuntimeError};
use crate::observed::Observed;
use crate::plane::Counters;
use crate::status::{Fleet, Health, HealthTracker};
use crate::timeouts::Timeouts;
use crate::{execute, layout, telemetry};
use sqsbalancer_core::table::Layout;
use sqsbalancer_core::{
    Config, Effect, Input, Millis, Node, OpId, Outcome, Phase, QueueId, StopOutcome, TableReads,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};

/// What the driver asks of the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaneCommand {
    /// Start receiving from `queue`, owned at `epoch`.
    Start {
        /// The queue.
        queue: QueueId,
        /// Its fencing epoch.
        epoch: u64,
    },
    /// Stop receiving from `queue`; report [`Input::ReceivingStopped`] once no receive call is
    /// in flight.
    Stop {
        /// The queue.
        queue: QueueId,
    },
    /// No receive call may be in flight at or after `until`.
    Fence {
        /// The deadline on the runtime's clock ([`crate::clock`]).
        until: Instant,
    },
    /// Shutdown reached the data plane's part: finish in-flight handlers, flush deletes,
    /// then report [`Input::DrainFinished`].
    Drain,
}

/// The handle the driver's owner keeps: feed it data-plane reports and shutdown, watch it.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    inputs: mpsc::UnboundedSender<Input>,
    phase: watch::Receiver<Phase>,
    receiving: watch::Receiver<BTreeMap<QueueId, u64>>,
    health: Arc<HealthTracker>,
    /// The live instances the node divides the queues among, as of its last input.
    members: Arc<AtomicUsize>,
    /// The configured worker pool size.
    workers: usize,
}

impl DriverHandle {
    /// Whether the instance is running and reaching its coordination table, with the fleet
    /// and queue counts it sees.
    pub fn health(&self) -> Health {
        let fleet = Fleet {
            instances: self.members(),
            queues: self.receiving.borrow().len(),
            workers: self.workers,
        };
        self.health.health(self.phase(), fleet)
    }

    /// The number of live instances the queues are divided among (this one included while
    /// running), as the node last saw them.
    pub fn members(&self) -> usize {
        self.members.load(Ordering::Relaxed)
    }

    /// Passes a data-plane report ([`Input::ReceivingStopped`], [`Input::QueueGone`],
    /// [`Input::DrainFinished`]) to the node.
    pub fn report(&self, input: Input) -> Result<(), RuntimeError> {
        self.inputs.send(input).map_err(|_| RuntimeError::Stopped)
    }

    /// Begins a graceful shutdown.
    pub fn shutdown(&self) -> Result<(), RuntimeError> {
        self.report(Input::Shutdown)
    }

    /// The node's current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Waits until the phase satisfies `done` (returns at once if it already does).
    pub async fn wait_phase(&mut self, done: impl Fn(Phase) -> bool) -> Phase {
        let reached = self.phase.wait_for(|p| done(*p)).await.map(|p| *p);
        reached.unwrap_or_else(|_| *self.phase.borrow())
    }

    /// The queues this instance may receive from, with their epochs.
    pub fn receiving(&self) -> BTreeMap<QueueId, u64> {
        self.receiving.borrow().clone()
    }

    /// Waits until the receiving set changes.
    pub async fn changed(&mut self) -> Result<(), RuntimeError> {
        self.receiving
            .changed()
            .await
            .map_err(|_| RuntimeError::Stopped)
    }
}

/// One node, its backends and its channels.
pub struct Driver<S, L> {
    node: Node,
    /// Where the records are: the requested layout until the store is prepared, then the one
    /// the application recorded.
    layout: Arc<Layout>,
    store: Arc<Observed<S>>,
    queues: Arc<Observed<L>>,
    start: Instant,
    inputs: mpsc::UnboundedReceiver<Input>,
    results: mpsc::UnboundedReceiver<(OpId, Outcome)>,
    results_tx: mpsc::UnboundedSender<(OpId, Outcome)>,
    plane: mpsc::UnboundedSender<PlaneCommand>,
    phase: watch::Sender<Phase>,
    receiving: watch::Sender<BTreeMap<QueueId, u64>>,
    /// Where the node's member count is published for the handle.
    members: Arc<AtomicUsize>,
    /// What reads and deadlines tell about the instance's health.
    health: Arc<HealthTracker>,
    /// The deadline of every effect.
    timeouts: Timeouts,
    /// How long to wait before asking a store that is not ready again.
    retry_prepare: Duration,
    /// The node's table reads as last published to the metrics.
    reads_published: TableReads,
    /// Where the data plane measures its queues' loads, and when the node is next told them:
    /// set under load balance only.
    loads: Option<(Arc<Counters>, Millis)>,
    /// How often the node is told the loads: its heartbeat interval.
    loads_every: Duration,
}

/// A new driver, its handle, and the stream of commands for the data plane.
pub type Started<S, L> = (
    Driver<S, L>,
    DriverHandle,
    mpsc::UnboundedReceiver<PlaneCommand>,
);

impl<S: Store, L: QueueList> Driver<S, L> {
    /// A driver for a node of `cfg` (validated here), with its handle and the data plane's
    /// command stream.
    pub fn new(cfg: Config, store: Arc<S>, queues: Arc<L>) -> Result<Started<S, L>, RuntimeError> {
        let layout = Layout::new(&cfg.application_name, cfg.queue_partition_keys)
            .with_instance_keys(cfg.instance_partition_keys);
        let layout = Arc::new(layout);
        let cfg_heartbeat_timeout = cfg.heartbeat_timeout;
        let heartbeat_interval = cfg.heartbeat_interval;
        let workers = cfg.worker_pool_size;
        let members = Arc::new(AtomicUsize::new(0));
        let timeouts = Timeouts::of(&cfg);
        let node = Node::new(cfg, Millis::ZERO)?;
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (results_tx, results) = mpsc::unbounded_channel();
        let (plane, plane_rx) = mpsc::unbounded_channel();
        let (phase, phase_rx) = watch::channel(node.phase());
        let (receiving, receiving_rx) = watch::channel(BTreeMap::new());
        let health = Arc::new(HealthTracker::new(cfg_heartbeat_timeout));
        let driver = Driver {
            node,
            layout,
            store: Arc::new(Observed::new(store, Arc::clone(&health), timeouts.effect)),
            queues: Arc::new(Observed::new(queues, Arc::clone(&health), timeouts.effect)),
            start: clock::now(),
            inputs,
            results,
            results_tx,
            plane,
            phase,
            receiving,
            members: Arc::clone(&members),
            health: Arc::clone(&health),
            timeouts,
            retry_prepare: heartbeat_interval,
            reads_published: TableReads::default(),
            loads: None,
            loads_every: heartbeat_interval,
        };
        let handle = DriverHandle {
            inputs: inputs_tx,
            phase: phase_rx,
            receiving: receiving_rx,
            health,
            members,
            workers,
        };
        Ok((driver, handle, plane_rx))
    }

    /// Tells the node the loads `counters` measure once a heartbeat interval, for it to
    /// publish under [`sqsbalancer_core::config::Balance::Load`].
    pub(crate) fn with_loads(mut self, counters: Arc<Counters>) -> Self {
        self.loads = Some((counters, Millis::ZERO));
        self
    }

    /// Feeds the node its queues' loads if they are due at `now`.
    fn feed_loads(&mut self, now: Millis) {
        let Some((counters, due)) = &mut self.loads else {
            return;
        };
        if now < *due {
            return;
        }
        *due = now.saturating_add(self.loads_every);
        let queues: Vec<QueueId> = self.node.receiving().into_iter().map(|(q, _)| q).collect();
        let loads = counters.loads.micros_of(&queues, Instant::now());
        self.node.handle(now, Input::QueueLoads { loads });
    }

    fn now(&self) -> Millis {
        Millis(
            clock::now()
                .saturating_duration_since(self.start)
                .as_millis() as u64,
        )
    }

    fn at(&self, t: Millis) -> Instant {
        self.start + Duration::from_millis(t.0)
    }

    /// Runs the node until it stops (a shutdown completed or timed out); returns the final phase.
    pub async fn run(mut self) -> Phase {
        if !self.prepare().await {
            let stopped = Phase::Stopped {
                outcome: StopOutcome::Clean,
            };
            self.phase.send_replace(stopped);
            return stopped;
        }
        loop {
            self.drain();
            if self.node.phase().is_stopped() {
                return self.node.phase();
            }
            let wake = self.node.poll_timeout().map(|t| self.at(t));
            let input = tokio::select! {
                Some((id, outcome)) = self.results.recv() => Input::Completed { id, outcome },
                Some(input) = self.inputs.recv() => input,
                () = sleep_until(wake) => Input::Tick,
            };
            let now = self.now();
            // One coordination round: the input and every effect it leads to.
            let round = tracing::debug_span!(
                "round",
                instance = %self.node.instance(),
                input = input_kind(&input),
                at_ms = now.0,
            );
            let _entered = round.enter();
            self.feed_loads(now);
            self.node.handle(now, input);
            self.drain();
        }
    }

    /// Readies the store before the node's first write (the AWS backend creates a missing
    /// table) and agrees on the table layout, asking again every heartbeat interval while it
    /// fails: an instance comes up once its table can be used, and reports the trouble in its
    /// health meanwhile. False when a shutdown came first (nothing was registered, so the stop
    /// is clean).
    async fn prepare(&mut self) -> bool {
        loop {
            match self.ready().await {
                Ok(layout) => {
                    self.layout = Arc::new(layout);
                    return true;
                }
                Err(e) => tracing::warn!(error = %e, "the coordination table is not ready"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.retry_prepare) => {}
                input = self.inputs.recv() => match input {
                    Some(Input::Shutdown) | None => return false,
                    Some(_) => {}
                },
            }
        }
    }

    async fn ready(&self) -> Result<Layout, BackendError> {
        self.store.prepare().await?;
        layout::agree(&*self.store, &self.layout).await
    }

    /// Executes every pending effect.
    fn drain(&mut self) {
        while let Some(effect) = self.node.poll_effect() {
            match effect {
                Effect::Write { id, write } => {
                    let (store, layout) = (Arc::clone(&self.store), Arc::clone(&self.layout));
                    let call =
                        async move { execute::write(&*store, &layout, &write, wall_secs()).await };
                    self.spawn_call(id, "dynamodb", None, call);
                }
                Effect::Read { id, read } => {
                    let (store, layout) = (Arc::clone(&self.store), Arc::clone(&self.layout));
                    let health = Arc::clone(&self.health);
                    let call = async move {
                        let outcome = execute::read(&*store, &layout, read).await;
                        if let Outcome::Applied(reply) = &outcome {
                            health.read_completed(reply);
                        }
                        outcome
                    };
                    self.spawn_call(id, "dynamodb", None, call);
                }
                Effect::ListQueues { id, prefix } => {
                    let queues = Arc::clone(&self.queues);
                    let call = async move { execute::list(&*queues, &prefix).await };
                    self.spawn_call(id, "sqs", Some(self.timeouts.listing), call);
                }
                Effect::StartReceiving { queue, epoch } => {
                    self.command(PlaneCommand::Start { queue, epoch });
                }
                Effect::StopReceiving { queue } => self.command(PlaneCommand::Stop { queue }),
                Effect::Fence { until } => {
                    let until = self.at(until);
                    self.command(PlaneCommand::Fence { until });
                }
                Effect::Phase(p) => {
                    tracing::info!(instance = %self.node.instance(), phase = ?p, "phase");
                    if p == Phase::Finishing {
                        self.command(PlaneCommand::Drain);
                    }
                    self.phase.send_replace(p);
                }
            }
        }
        let reads = *self.node.table_reads();
        if reads != self.reads_published {
            telemetry::table_reads(&self.reads_published, &reads);
            self.reads_published = reads;
        }
        self.members.store(self.node.members(), Ordering::Relaxed);
        let receiving: BTreeMap<QueueId, u64> = self.node.receiving().into_iter().collect();
        self.receiving.send_if_modified(|r| {
            let changed = *r != receiving;
            *r = receiving;
            changed
        });
    }

    /// Runs `call` (effect `id`) as a task and reports its outcome, or `Unknown` once
    /// `deadline`, if any, has passed without one (each backend call within it is bounded by
    /// [`Observed`] already): the call is dropped, and the node decides what a write that may
    /// still apply means.
    fn spawn_call(
        &self,
        id: OpId,
        service: &'static str,
        deadline: Option<Duration>,
        call: impl Future<Output = Outcome> + Send + 'static,
    ) {
        let tx = self.results_tx.clone();
        let health = Arc::clone(&self.health);
        tokio::spawn(async move {
            let outcome = match deadline {
                None => call.await,
                Some(deadline) => match tokio::time::timeout(deadline, call).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::warn!(
                            op = id.0,
                            service,
                            deadline_ms = deadline.as_millis() as u64,
                            "a coordination call found no answer by its deadline"
                        );
                        health.failed(&crate::error::BackendError::Unknown {
                            service,
                            reason: format!("no answer within {deadline:?}"),
                        });
                        Outcome::Unknown
                    }
                },
            };
            let _ = tx.send((id, outcome));
        });
    }

    fn command(&self, c: PlaneCommand) {
        if self.plane.send(c).is_err() {
            tracing::debug!("the data plane has gone; command dropped");
        }
    }
}

/// The input's kind, as the `round` span's `input` field.
fn input_kind(input: &Input) -> &'static str {
    match input {
        Input::Tick => "tick",
        Input::Completed { .. } => "completed",
        Input::ReceivingStopped { .. } => "receiving_stopped",
        Input::QueueGone { .. } => "queue_gone",
        Input::Shutdown => "shutdown",
        Input::DrainFinished => "drain_finished",
        Input::QueueLoads { .. } => "queue_loads",
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(clock::timer(at)).await,
        None => std::future::pending().await,
    }
}

/// Wall-clock seconds since the epoch: used only for the coordination records' TTL, never for
/// a decision.
#[allow(
    clippy::disallowed_methods,
    reason = "TTL attributes are wall-clock epoch seconds by DynamoDB's definition"
)]
fn wall_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

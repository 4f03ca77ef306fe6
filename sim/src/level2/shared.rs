//! What every host and the harness share: the fake AWS, its fault switches, the checker, the
//! trace, and what is known of each instance slot.
//!
//! Everything runs on one thread (turmoil ticks the hosts one after another), so one mutex
//! guards it all; nobody holds it across an await.

use super::server::Server;
use crate::check::{Checker, Invariant, Who};
use crate::fake::{FakeDynamo, FakeSqs, FaultHooks, Service};
use crate::scenario::{Mutation, Scenario};
use crate::stats::Stats;
use crate::trace::Trace;
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::loads::PublishedLoads;
use sqsbalancer_core::{InstanceId, Owner, QueueId};
use sqsbalancer_runtime::DriverHandle;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The shared state, as the hosts and the harness hold it.
pub(crate) type Lab = Arc<Mutex<Shared>>;

/// Locks `lab`; a panic while it was held is a bug the run reports anyway, so the state is
/// still read.
pub(crate) fn lock(lab: &Lab) -> MutexGuard<'_, Shared> {
    lab.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How the instances reach the fake AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Level 2: the runtime's backend traits straight over each life's [`Link`].
    ///
    /// [`Link`]: super::link::Link
    Link,
    /// Level 3: the real AWS SDK clients over turmoil's network to the HTTP server, which
    /// calls each caller's link.
    Http,
}

/// How a slot's process is doing, as the harness sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Up {
    /// No process (never started, crashed, or exited after a stop).
    Down,
    /// Running.
    Running,
    /// Asked to stop gracefully; the process exits when `Running::stop` returns.
    Stopping,
    /// `Running::stop` returned: the harness ends the process (its leftover tasks) next.
    Exited,
}

/// One instance slot: a host whose process may crash, stop and come back under the same id.
pub(crate) struct Slot {
    /// Host name, instance id and fake caller: `node-<index>`.
    pub name: String,
    /// Capacity weight.
    pub weight: u32,
    /// The current (or last) life, counted from 1 by the harness.
    pub life: u64,
    /// The process's state.
    pub up: Up,
    /// The running balancer's handle, to see what it receives.
    pub handle: Option<DriverHandle>,
    /// Wakes the process to stop gracefully.
    pub stop: Arc<Notify>,
    /// When the process asked the balancer to stop, ms.
    pub stop_started: Option<u64>,
    /// A fault hit a call of this life.
    pub life_faulted: bool,
    /// A fault hit a call of this life while it stopped, or a slow handler was running.
    pub stop_faulted: bool,
    /// When a fault last hit this life, ms.
    pub faulted_at: Option<u64>,
    /// When the slowest slow handler started in this life ends, ms.
    pub slow_until: u64,
    /// Since when this life has been up and not stopping, ms.
    pub up_since: Option<u64>,
    /// When this life started, ms (for instance-minutes).
    pub started_at: Option<u64>,
    /// Messages deleted by this slot's lives, all together (each instance's throughput, as a
    /// scripted run shows it).
    pub deleted: u64,
}

/// Message-handling faults, in ppm of handler runs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HandlerFaults {
    /// Runs that fail.
    pub fail: u64,
    /// Runs that outlive the visibility timeout.
    pub slow: u64,
}

/// The shared state of one level-2 run.
pub(crate) struct Shared {
    /// The run's seed.
    pub seed: u64,
    /// The layout the even instances ask for (`queue_partition_keys`); the odd ones ask for
    /// one key.
    pub queue_partition_keys: u32,
    /// The instance partition keys the even instances ask for; the odd ones ask for one.
    pub instance_partition_keys: u32,
    /// The deliberate bug under test, if any.
    pub mutation: Option<Mutation>,
    /// How the instances reach the fake AWS.
    pub transport: Transport,
    /// This run's number among the process's level-3 runs (0 at level 2).
    pub run: u64,
    /// DynamoDB.
    pub dynamo: FakeDynamo,
    /// SQS.
    pub sqs: FakeSqs,
    /// Partitions, throttling, 5xx, timeouts and latency.
    pub hooks: FaultHooks,
    /// Partitions whose calls hang until healed rather than time out.
    pub hang: BTreeSet<(String, Service)>,
    /// Handler faults in force.
    pub handler_faults: HandlerFaults,
    /// How the messages spread over the queues, and which queues have slow handlers.
    pub traffic: crate::Traffic,
    /// What the instances' targets balance.
    pub balance: Balance,
    /// The loads each instance record carries, as last written.
    pub published: BTreeMap<InstanceId, Option<PublishedLoads>>,
    /// When handler time starts counting toward the work share, ms.
    pub work_share_from: u64,
    /// The invariants.
    pub checker: Checker,
    /// Counters and gaps, as the level-1 report keeps them.
    pub stats: Stats,
    /// The trace.
    pub trace: Trace,
    /// Simulated time, ms: the latest any host or the harness saw (never goes back).
    clock: u64,
    /// The instance slots.
    pub slots: Vec<Slot>,
    /// The message id of every receipt handed out.
    pub receipts: BTreeMap<String, String>,
    /// Each queue record's owner as last written, and when it changed.
    pub owners: BTreeMap<QueueId, (Option<Owner>, u64)>,
    /// Each registered life's owner name, and back.
    pub lives: BTreeMap<Who, Owner>,
    /// Queues a life's never-stopping poller receives from (the `IgnoreStop` mutation).
    pub haunted: BTreeSet<(Who, QueueId)>,
    /// Receive calls started, to name each one.
    pub calls: u64,
    /// The fake's side of every call: requests on their way, long polls open.
    pub server: Server<Shared>,
    /// Each life's fence as its acknowledged heartbeats set it, ms.
    fences: BTreeMap<Who, u64>,
    /// Most items in one page of a table read (0: up to 1 MB), while faults last.
    pub page_items: u64,
    /// Events recorded (trace lines).
    pub events: u64,
    /// The faults stopped.
    pub calm: bool,
}

impl Shared {
    /// The state at the start of a run of `sc`, with no slot yet.
    pub fn new(sc: &Scenario, hooks_seed: u64, transport: Transport) -> Shared {
        let mut hooks = FaultHooks::new(hooks_seed);
        hooks.rates = crate::fake::CallFaults::of(&sc.faults);
        let mut dynamo = FakeDynamo::new();
        dynamo
            .create_table(crate::TABLE)
            .expect("a fresh fake has no table");
        Shared {
            seed: sc.seed,
            queue_partition_keys: sc.queue_partition_keys,
            instance_partition_keys: sc.instance_partition_keys,
            mutation: sc.mutation,
            transport,
            run: match transport {
                Transport::Link => 0,
                Transport::Http => next_run(),
            },
            dynamo,
            sqs: FakeSqs::new(),
            hooks,
            hang: BTreeSet::new(),
            handler_faults: HandlerFaults {
                fail: sc.faults.failing_handler,
                slow: sc.faults.slow_handler,
            },
            traffic: sc.traffic,
            balance: sc.balance,
            published: BTreeMap::new(),
            work_share_from: sc.work_share_from_ms(),
            checker: Checker::default(),
            stats: Stats::default(),
            trace: Trace::new(sc.trace),
            clock: 0,
            slots: Vec::new(),
            receipts: BTreeMap::new(),
            owners: BTreeMap::new(),
            lives: BTreeMap::new(),
            haunted: BTreeSet::new(),
            calls: 0,
            server: Server::default(),
            fences: BTreeMap::new(),
            page_items: sc.faults.page_items,
            events: 0,
            calm: false,
        }
    }

    /// Simulated time now, ms. Inside a host this is turmoil's simulation clock (one clock for
    /// every host, whatever its runtime's own `Instant`s say); elsewhere the last time seen.
    /// Hosts run one after another within a step, so a host may read a time a little behind
    /// the last one seen: the clock holds rather than going back.
    pub fn now(&mut self) -> u64 {
        if let Some(t) = turmoil::sim_elapsed() {
            self.clock = self.clock.max(t.as_millis() as u64);
        }
        self.clock
    }

    /// The last time seen, without asking turmoil (for code that runs while a host's runtime
    /// is being dropped).
    pub fn last_now(&self) -> u64 {
        self.clock
    }

    /// Moves the clock to `t` ms (the harness, between steps).
    pub fn set_clock(&mut self, t: u64) {
        self.clock = self.clock.max(t);
    }

    /// Adds one trace line at the current time and counts it as an event.
    pub fn emit(&mut self, node: Option<usize>, ev: &str, detail: impl FnOnce() -> String) {
        let t = self.last_now();
        self.events += 1;
        self.checker.event = self.events;
        self.checker.now = t;
        let name = node.map(|i| self.slots[i].name.clone());
        self.trace.emit(t, name.as_deref(), ev, &detail());
    }

    /// Records that a fault hit a call of slot `i`.
    pub fn faulted(&mut self, i: usize) {
        let now = self.last_now();
        let s = &mut self.slots[i];
        s.life_faulted = true;
        s.stop_faulted |= s.stop_started.is_some();
        s.faulted_at = Some(now);
    }

    /// Whether `who` is the life now running in its slot.
    pub fn current(&self, who: Who) -> bool {
        let s = &self.slots[who.0];
        s.life == who.1 && s.up != Up::Down
    }

    /// A queue record was written by `who`: track its owner, the moves and the hand-offs.
    pub fn record_written(&mut self, who: Who, queue: QueueId, owner: Option<Owner>, epoch: u64) {
        let now = self.last_now();
        let old = self.owners.get(&queue).and_then(|o| o.0.clone());
        if old != owner {
            self.owners.insert(queue.clone(), (owner.clone(), now));
            let to = owner.as_ref().and_then(|o| self.who_of(o));
            self.stats
                .ownership
                .push((now, queue.clone(), to.map(|w| w.0)));
            if self.calm && to.is_some() {
                self.stats.moves_after_calm += 1;
            }
            // Written by the old owner itself, to someone else: a hand-off.
            if old.is_some() && old == self.lives.get(&who).cloned() && owner.is_some() {
                let receiver = to.filter(|w| self.current(*w));
                let handed = (receiver, now);
                self.stats.handed_off.insert((queue.clone(), who), handed);
            }
        }
        self.emit(Some(who.0), "record", || {
            format!("{queue} owner={owner:?} epoch={epoch}")
        });
    }

    /// The life a queue record's owner names, if it registered in this run.
    pub fn who_of(&self, owner: &Owner) -> Option<Who> {
        self.lives
            .iter()
            .find(|(_, o)| *o == owner)
            .map(|(w, _)| *w)
    }

    /// A heartbeat or registration of `who` was acknowledged: its fence is `fence` ms now,
    /// unless it already was later.
    pub fn acked(&mut self, who: Who, fence: u64) {
        let f = self.fences.entry(who).or_insert(fence);
        *f = (*f).max(fence);
    }

    /// The fence of `who` now, ms (0 before any acknowledgement: no receive is allowed).
    pub fn fence_of(&self, who: Who) -> u64 {
        self.fences.get(&who).copied().unwrap_or(0)
    }

    /// Records a violation of `invariant` now.
    pub fn violate(&mut self, invariant: Invariant, detail: String) {
        self.checker.now = self.last_now();
        self.checker.violate(invariant, detail);
    }
}

/// Whether an instance other than slot `i` has been up and not stopping since `t`.
pub(crate) fn others_up_since(slots: &[Slot], i: usize, t: u64) -> bool {
    slots
        .iter()
        .enumerate()
        .any(|(j, s)| j != i && s.up_since.is_some_and(|since| since <= t))
}

/// Runs of level 3 started in this process. The SDK keeps its retry token buckets in a
/// process-wide map, by partition name: each run's clients name theirs with its number, so no
/// run (say, the same seed replayed in one test) ever drains another's.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// A number no other level-3 run of this process has.
fn next_run() -> u64 {
    RUNS.fetch_add(1, Ordering::Relaxed)
}

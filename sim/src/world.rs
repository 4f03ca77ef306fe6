//! The level-1 simulator: a discrete-event loop that drives N core nodes against the fake
//! DynamoDB and SQS, with no async runtime. This file holds the loop and the coordination side
//! (each node's effects as DynamoDB and SQS calls); `consumer.rs` holds the data plane model and
//! `chaos.rs` the faults.

use crate::ahead::{Ahead, Concerns};
use crate::check::{
    Checker, FAULT_LINGER_MS, Fleet, Instance, Invariant, Stop, StopEnd, Who, drain_over, settled,
    still_named, stop_problem,
};
use crate::decoded::{DecodedItems, SharedIds};
use crate::fake::{FakeDynamo, FakeSqs, FaultHooks, Received, Service, SqsError, Verdict, WaitId};
use crate::report::{Finished, Report};
use crate::scenario::{Level, Mutation, Scenario};
use crate::stats::{SAMPLE_MS, Sample, Stats};
use crate::trace::Trace;
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::loads::PublishedLoads;
use sqsbalancer_core::rng::Rng;
use sqsbalancer_core::table::{self, EPOCH, Key, Layout, QUEUE_PREFIX, Update, Value};
use sqsbalancer_core::{
    Config, DriftingClock, Effect, Input, InstanceId, Millis, Node, OpId, Outcome, Owner, Phase,
    QueueId, Read, Reply, SharedTargets, StopOutcome, Write,
};
use sqsbalancer_runtime::{LoadMeter, Timeouts};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

/// The coordination table's name.
pub const TABLE: &str = "sqsbalancer";
/// The application name every simulated instance shares.
pub const APP: &str = "sim";
/// How far the end moves while a backlog drains, ms.
const DRAIN_STEP_MS: u64 = 60_000;
/// Latency every call has, one way, ms.
pub const BASE_LATENCY_MS: u64 = 2;

/// The balancer configuration every simulated instance runs: the library's defaults, with
/// queue discovery every minute instead of five so runs see new queues sooner.
pub fn config() -> Config {
    let mut c = Config::new(APP, TABLE);
    c.queue_discovery_interval = Duration::from_secs(60);
    c
}

/// One receive call, from issue to reply.
#[derive(Clone, Debug)]
pub(crate) struct Recv {
    pub slot: usize,
    pub life: u64,
    pub queue: QueueId,
    pub call: u64,
    /// What becomes of its answer (the deadline is the poller's, see `PollerGiveUp`).
    pub answer: Answer,
}

/// What a receive returned to its caller.
#[derive(Clone, Debug)]
pub(crate) enum RecvResult {
    Messages(Vec<Received>),
    Gone,
    Failed,
}

#[derive(Clone, Debug)]
pub(crate) enum DCall {
    Write(Write),
    Read(Read),
    List(String),
}

/// What becomes of a call's answer once the service has served the request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    /// It comes back after the trip and `extra` ms more, unless the caller's deadline (global
    /// ms) passes first.
    Back { extra: u64, deadline: u64 },
    /// The caller never sees it: it was, or will be, told the outcome is unknown.
    Lost,
}

#[derive(Debug)]
pub(crate) enum Ev {
    Tick {
        slot: usize,
        life: u64,
    },
    Input {
        slot: usize,
        life: u64,
        input: Input,
    },
    DynamoArrive {
        slot: usize,
        life: u64,
        id: OpId,
        call: DCall,
        answer: Answer,
    },
    /// The next page of a table read arrives (reads in pages of a few items).
    PageArrive {
        slot: usize,
        life: u64,
        id: OpId,
        read: Read,
        at: Cursor,
        pages: Vec<Arc<[Arc<table::Item>]>>,
        answer: Answer,
    },
    ReceiveArrive {
        recv: Recv,
        wait_ms: u64,
        paused: bool,
        fence_global: u64,
    },
    ReceiveDone {
        recv: Recv,
        result: RecvResult,
    },
    PollerRetry {
        slot: usize,
        life: u64,
        queue: QueueId,
    },
    /// The poller gives up on receive `call` (the fence plus the request margin passed).
    PollerGiveUp {
        slot: usize,
        life: u64,
        queue: QueueId,
        call: u64,
    },
    /// Messages that came back after the fence are made visible again at SQS.
    ReleaseArrive {
        slot: usize,
        queue: QueueId,
        receipts: Vec<String>,
    },
    HandlerDone {
        /// The slot whose handler it was (its batch is filed after the handlers start).
        slot: usize,
        batch: u64,
        message_id: String,
        receipt: String,
        ok: bool,
    },
    DeleteArrive {
        slot: usize,
        queue: QueueId,
        entries: Vec<(String, String)>,
    },
    SqsWake,
    Produce,
    Chaos,
    /// A step of the scenario's [`crate::scenario::Schedule`].
    Script(crate::script::Step),
    Calm,
    Sample,
    /// A read's reply to `slot`, whose input [`Ahead`] keeps so that the node can handle it
    /// ahead of its turn.
    Reply {
        slot: usize,
        life: u64,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    /// The slots it concerns, noted when scheduled.
    concerns: Concerns,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The receive state of one owned queue on one instance.
#[derive(Clone, Debug, Default)]
pub(crate) struct Poller {
    pub stopping: bool,
    pub receiving: Option<u64>,
    pub batch: Option<u64>,
    pub waiting_fence: bool,
}

/// One instance slot: a process that may crash, restart (same id) and stop.
pub(crate) struct Slot {
    pub name: String,
    pub id: InstanceId,
    pub weight: u32,
    pub node: Option<Node>,
    pub life: u64,
    pub clock: DriftingClock,
    pub fence: Millis,
    pub tick_at: Option<u64>,
    pub pollers: BTreeMap<QueueId, Poller>,
    pub paused_until: u64,
    pub stop_started: Option<u64>,
    pub stop_faulted: bool,
    /// When a fault last hit this life, ms.
    pub faulted_at: Option<u64>,
    /// A fault touched this life (an unreachable table, a lost reply, a pause): peers reaping
    /// it is then the fault's doing.
    pub life_faulted: bool,
    pub open_batches: u32,
    pub up_since: Option<u64>,
    /// When the slowest handler started by a slow-handler fault ends: a graceful stop that
    /// waits for it may time out, and that is the fault's doing.
    pub slow_until: u64,
    /// The life the process had when it began to stop (it has none once deregistered).
    pub stop_life: Option<Owner>,
    /// While its node handles a reply ahead on the helper thread: the node's life when it
    /// left, which is what peers see of it until the reply's turn.
    pub away: Option<Option<Owner>>,
    /// This process's measure of each queue's load, as the runtime's data plane keeps it
    /// (times in global ms since the run began).
    pub meters: BTreeMap<QueueId, LoadMeter>,
    /// When the node is next told its queues' loads (under load balance), global ms.
    pub loads_due: u64,
}

impl Slot {
    pub fn local(&self, t: u64) -> Millis {
        self.clock.local(t)
    }

    /// A global time whose local time is at least `local` ([`DriftingClock::global`]).
    pub fn global(&self, local: Millis) -> u64 {
        self.clock.global(local)
    }

    pub fn who(&self) -> Who {
        (self.index(), self.life)
    }

    /// Whether a process runs in this slot (its node may be away, handling a reply ahead).
    pub fn up(&self) -> bool {
        self.node.is_some() || self.away.is_some()
    }

    /// The life of the process in this slot as of the last event it handled.
    pub fn node_life(&self) -> Option<Owner> {
        match &self.away {
            Some(life) => life.clone(),
            None => self.node.as_ref().and_then(Node::life),
        }
    }

    fn index(&self) -> usize {
        self.name
            .strip_prefix("node-")
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX)
    }
}

/// Handlers of one received batch.
pub(crate) struct Batch {
    pub slot: usize,
    pub life: u64,
    pub queue: QueueId,
    pub left: u32,
    pub delete: Vec<(String, String)>,
}

/// Where a table read stands: how many of its keys were read, which of its queries, and
/// after which key of it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cursor {
    /// How many of the read's record keys have been read (they come before its queries).
    keys: usize,
    /// The index of the query being read.
    query: usize,
    /// The last key read of it; `None` before its first page.
    start: Option<Key>,
}

impl Cursor {
    /// Moves past a page of the current query that ended at `last` (`None`: its last page).
    fn advance(&mut self, last: Option<Key>) {
        match last {
            Some(k) => self.start = Some(k),
            None => {
                self.query += 1;
                self.start = None;
            }
        }
    }
}

/// How far a level-1 run has got, as [`World::run_observed`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Simulated time now, ms since the start.
    pub sim_ms: u64,
    /// Where the run will end, ms: its duration, pushed back while a backlog drains.
    pub end_ms: u64,
    /// Events handled so far.
    pub events: u64,
    /// Instances whose process is up.
    pub up: usize,
}

/// One simulated cluster.
pub struct World {
    pub(crate) sc: Scenario,
    pub(crate) cfg: Config,
    pub(crate) now: u64,
    pub(crate) rng: Rng,
    pub(crate) dynamo: FakeDynamo,
    /// The records of the table's items, decoded once per stored version for every node.
    pub(crate) decoded: DecodedItems,
    /// The id of each queue URL listed and of each instance, made once for every node.
    pub(crate) ids: SharedIds,
    /// The targets the nodes compute, shared so that one computes what others would again.
    targets: Arc<SharedTargets>,
    /// Where the records are kept.
    layout: Layout,
    pub(crate) sqs: FakeSqs,
    pub(crate) hooks: FaultHooks,
    /// The deadlines the runtime gives every call (the same rules, on simulated time).
    pub(crate) timeouts: Timeouts,
    pub(crate) slots: Vec<Slot>,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    /// The helper thread that handles replies ahead of their turn, when there is one.
    ahead: Option<Ahead>,
    pub(crate) checker: Checker,
    pub(crate) trace: Trace,
    pub(crate) stats: Stats,
    pub(crate) calm: bool,
    pub(crate) next_call: u64,
    pub(crate) parked: BTreeMap<WaitId, Recv>,
    wake_at: Option<u64>,
    pub(crate) batches: BTreeMap<u64, Batch>,
    pub(crate) next_batch: u64,
    pub(crate) next_queue: usize,
    pub(crate) events: u64,
    pub(crate) owners: BTreeMap<QueueId, Option<Owner>>,
    /// When each queue record's owner last changed.
    pub(crate) owner_at: BTreeMap<QueueId, u64>,
    pub(crate) end: u64,
    /// Slots the rolling restart stopped: each starts again when its stop ends.
    pub(crate) rolling: BTreeSet<usize>,
    /// Slots the scripted crash took down, until they come back.
    pub(crate) script_crashed: Vec<usize>,
    /// The loads each instance record carries, as last written.
    pub(crate) published: BTreeMap<InstanceId, Option<PublishedLoads>>,
    /// Under load balance, from the calm on: each queue's load at the calm point, which
    /// instances measure while the calm lasts. Traffic stops in the calm so that every
    /// message drains, but loads held still are what a fleet settles under.
    pub(crate) calm_loads: Option<BTreeMap<QueueId, u64>>,
}

impl World {
    /// Sets up the fleet, the queues and the first events of `sc`.
    pub fn new(sc: Scenario) -> World {
        let mut rng = Rng::new(sc.seed);
        let hooks = FaultHooks::new(rng.next_u64());
        let end = sc.duration.as_millis() as u64;
        let mut w = World {
            timeouts: Timeouts::of(&config()),
            cfg: config(),
            now: 0,
            dynamo: FakeDynamo::new(),
            decoded: DecodedItems::default(),
            ids: SharedIds::default(),
            targets: Arc::default(),
            layout: Layout::new(APP, sc.queue_partition_keys)
                .with_instance_keys(sc.instance_partition_keys),
            sqs: FakeSqs::new(),
            hooks,
            slots: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            ahead: None,
            checker: Checker::default(),
            trace: Trace::new(sc.trace),
            stats: Stats::default(),
            calm: false,
            next_call: 0,
            parked: BTreeMap::new(),
            wake_at: None,
            batches: BTreeMap::new(),
            next_batch: 0,
            next_queue: 0,
            events: 0,
            owners: BTreeMap::new(),
            owner_at: BTreeMap::new(),
            end,
            rolling: BTreeSet::new(),
            script_crashed: Vec::new(),
            published: BTreeMap::new(),
            calm_loads: None,
            rng,
            sc,
        };
        w.cfg.balance = w.sc.balance;
        w.dynamo.create_table(TABLE).expect("fresh fake");
        w.hooks.rates = crate::fake::CallFaults::of(&w.sc.faults);
        for _ in 0..w.sc.queues {
            w.add_queue();
        }
        for i in 0..w.sc.instances {
            let weight = 1 + u32::from(w.rng.below(4) == 0);
            w.add_slot(weight);
            w.start(i);
        }
        let calm_at = end - w.sc.calm.as_millis() as u64;
        w.push(1_000, Ev::Chaos);
        w.push(1_000, Ev::Produce);
        w.push(calm_at, Ev::Calm);
        w.schedule_script(calm_at);
        w.push(SAMPLE_MS, Ev::Sample);
        w
    }

    /// Handles read replies ahead of their turn on a helper thread (docs/design.md §6): the
    /// same run, faster on a machine with a core to spare. Not with a trace, whose lines
    /// follow each input as it is handled.
    pub fn handle_ahead(&mut self) {
        if self.sc.trace || self.ahead.is_some() {
            return;
        }
        let mut ahead = Ahead::start();
        for s in &self.heap {
            ahead.scheduled((s.at, s.seq), s.concerns);
        }
        self.ahead = Some(ahead);
    }

    /// How many read replies the helper thread handled ahead of their turn.
    pub fn handled_ahead(&self) -> u64 {
        self.ahead.as_ref().map_or(0, |a| a.sent)
    }

    pub(crate) fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let key = (at.max(self.now), self.seq);
        let concerns = Self::concerns(&ev);
        let ev = match (ev, self.ahead.as_mut()) {
            (Ev::Input { slot, life, input }, Some(ahead)) if is_reply(&input) => {
                ahead.keep(key, slot, life, input);
                Ev::Reply { slot, life }
            }
            (ev, _) => ev,
        };
        if let Some(ahead) = self.ahead.as_mut() {
            ahead.scheduled(key, concerns);
        }
        self.heap.push(Scheduled {
            at: key.0,
            seq: key.1,
            concerns,
            ev,
        });
    }

    /// The slots `ev` concerns ([`Concerns`]).
    fn concerns(ev: &Ev) -> Concerns {
        match ev {
            Ev::Tick { slot, .. }
            | Ev::Input { slot, .. }
            | Ev::Reply { slot, .. }
            | Ev::DynamoArrive { slot, .. }
            | Ev::PageArrive { slot, .. }
            | Ev::PollerRetry { slot, .. }
            | Ev::PollerGiveUp { slot, .. }
            | Ev::ReleaseArrive { slot, .. }
            | Ev::DeleteArrive { slot, .. }
            | Ev::HandlerDone { slot, .. } => Concerns::Slot(*slot),
            Ev::ReceiveArrive { recv, .. } | Ev::ReceiveDone { recv, .. } => {
                Concerns::Slot(recv.slot)
            }
            Ev::SqsWake | Ev::Produce => Concerns::Neither,
            Ev::Chaos | Ev::Script(_) | Ev::Calm | Ev::Sample => Concerns::All,
        }
    }

    pub(crate) fn emit(&mut self, slot: Option<usize>, ev: &str, detail: impl FnOnce() -> String) {
        if self.sc.trace {
            let name = slot.map(|s| self.slots[s].name.clone());
            let d = detail();
            self.trace.emit(self.now, name.as_deref(), ev, &d);
        }
    }

    /// Runs to the end or the first violation.
    pub fn run(&mut self) {
        self.run_observed(|_| {});
    }

    /// As [`World::run`], telling `on_sample` how far the run has got once a sampling period
    /// (30 simulated seconds), so a caller can show progress of a long run.
    pub fn run_observed(&mut self, mut on_sample: impl FnMut(Progress)) {
        let run_end = self.end;
        while let Some(s) = self.heap.pop() {
            if s.at <= self.end && matches!(s.ev, Ev::Reply { .. }) {
                // While this reply is handled here, the helper may handle a later one. Sent
                // before this one is taken, so that it counts among the events that one
                // must come after.
                self.send_ahead((s.at, s.seq));
            }
            if let Some(ahead) = self.ahead.as_mut() {
                ahead.taken((s.at, s.seq), s.concerns);
            }
            if s.at > self.end {
                // A backlog left by a long outage drains after the run's end.
                let sqs = &self.sqs;
                let backlog = self.checker.outstanding(|q| sqs.exists(q.as_str()));
                if drain_over(backlog == 0, self.end - run_end) {
                    break;
                }
                self.end += DRAIN_STEP_MS;
                if let Some(ahead) = self.ahead.as_mut() {
                    ahead.scheduled((s.at, s.seq), s.concerns);
                }
                self.heap.push(s);
                continue;
            }
            self.now = s.at;
            self.events += 1;
            self.checker.event = self.events;
            self.checker.now = self.now;
            let sampled = matches!(s.ev, Ev::Sample);
            self.step((s.at, s.seq), s.ev);
            if sampled {
                on_sample(self.progress());
            }
            if let Some(v) = self.checker.violations.first() {
                let d = format!("{}: {}", v.invariant, v.detail);
                self.trace.emit(self.now, None, "violation", &d);
                self.come_back();
                return;
            }
        }
        self.come_back();
        self.now = self.end;
        self.checker.now = self.end;
        self.finish();
    }

    /// Sends the first reply after the reply at `next` (whose turn it is) that can be handled
    /// ahead to the helper, if it is idle, so that both handle one at once. Only beside a
    /// reply: beside lighter events the world soon waits for the helper (a 300 × 30,000 day
    /// took as long or longer).
    fn send_ahead(&mut self, next: crate::ahead::Key) {
        let Some(ahead) = self.ahead.as_ref().filter(|a| !a.busy()) else {
            return;
        };
        let slots = &self.slots;
        let ready = |slot: usize, at: u64, life: u64| {
            let s = &slots[slot];
            s.life == life && s.node.is_some() && s.paused_until <= at
        };
        let Some((key, slot)) = ahead.next_ready(next, ready) else {
            return;
        };
        let s = &mut self.slots[slot];
        let node = s.node.take().expect("a ready slot's node is up");
        s.away = Some(node.life());
        let local = s.local(key.0);
        if let Some(ahead) = self.ahead.as_mut() {
            ahead.send(key, slot, node, local);
        }
    }

    /// Takes back the node handling a reply ahead, if one is away.
    fn come_back(&mut self) {
        if let Some((slot, node)) = self.ahead.as_mut().and_then(Ahead::wait) {
            let s = &mut self.slots[slot];
            s.away = None;
            s.node = Some(node);
        }
    }

    fn is_client_event(ev: &Ev) -> Option<usize> {
        match ev {
            Ev::Tick { slot, .. }
            | Ev::Input { slot, .. }
            | Ev::Reply { slot, .. }
            | Ev::PollerRetry { slot, .. } => Some(*slot),
            Ev::ReceiveDone { recv, .. } => Some(recv.slot),
            _ => None,
        }
    }

    /// Handles one event: an instance's own (deferred while its process is paused), or the
    /// services' and the world's.
    fn step(&mut self, key: crate::ahead::Key, ev: Ev) {
        // A reply's input, kept aside until its turn.
        let ev = match ev {
            Ev::Reply { slot, life } => {
                if self.ahead.as_ref().is_some_and(|a| a.is_away(slot, key)) {
                    self.come_back();
                    self.after_handle(slot);
                    return;
                }
                let ahead = self.ahead.as_mut().expect("replies are kept aside");
                let (_, _, input) = ahead.take_reply(key).expect("a kept reply");
                Ev::Input { slot, life, input }
            }
            ev => ev,
        };
        // A paused process handles nothing until the pause ends.
        if let Some(slot) = Self::is_client_event(&ev)
            && self.now < self.slots[slot].paused_until
        {
            let at = self.slots[slot].paused_until;
            self.push(at, ev);
            return;
        }
        match ev {
            Ev::Tick { slot, life } => {
                // `<=`: a tick deferred by a pause runs late, at the pause's end.
                if self.slots[slot].life == life
                    && self.slots[slot].tick_at.is_some_and(|t| t <= self.now)
                {
                    self.slots[slot].tick_at = None;
                    self.feed_loads(slot);
                    self.input(slot, Input::Tick);
                }
            }
            Ev::Input { slot, life, input } => {
                if self.slots[slot].life == life {
                    self.input(slot, input);
                }
            }
            Ev::PollerRetry { slot, life, queue } => {
                if self.slots[slot].life == life {
                    self.poller_retry(slot, &queue);
                }
            }
            Ev::PollerGiveUp {
                slot,
                life,
                queue,
                call,
            } => {
                if self.slots[slot].life == life {
                    self.poller_give_up(slot, &queue, call);
                }
            }
            ev => self.arrive(ev),
        }
    }

    /// Handles an event at the services (a request arrives, a handler ends) or of the world
    /// around the fleet (traffic, faults, the calm, a sample).
    fn arrive(&mut self, ev: Ev) {
        match ev {
            Ev::DynamoArrive {
                slot,
                life,
                id,
                call,
                answer,
            } => self.dynamo_arrive(slot, life, id, call, answer),
            Ev::PageArrive {
                slot,
                life,
                id,
                read,
                at,
                pages,
                answer,
            } => self.read_pages(slot, life, id, read, at, pages, answer),
            Ev::ReceiveArrive {
                recv,
                wait_ms,
                paused,
                fence_global,
            } => self.receive_arrive(recv, wait_ms, paused, fence_global),
            Ev::ReceiveDone { recv, result } => self.receive_done(recv, result),
            Ev::ReleaseArrive {
                slot,
                queue,
                receipts,
            } => self.release_arrive(slot, &queue, &receipts),
            Ev::HandlerDone {
                slot: _,
                batch,
                message_id,
                receipt,
                ok,
            } => self.handler_done(batch, message_id, receipt, ok),
            Ev::DeleteArrive {
                slot,
                queue,
                entries,
            } => self.delete_arrive(slot, &queue, entries),
            Ev::SqsWake => self.sqs_wake(),
            Ev::Produce => self.produce(),
            Ev::Chaos => self.chaos(),
            Ev::Script(step) => self.script(step),
            Ev::Calm => self.calm_down(),
            Ev::Sample => self.sample(),
            Ev::Tick { .. }
            | Ev::Input { .. }
            | Ev::Reply { .. }
            | Ev::PollerRetry { .. }
            | Ev::PollerGiveUp { .. } => {
                unreachable!("an instance's events are handled by step")
            }
        }
    }

    // ----- instances -----

    pub(crate) fn add_slot(&mut self, weight: u32) -> usize {
        let i = self.slots.len();
        let clock = DriftingClock::drawn(&mut self.rng, self.sc.faults.drift_ppm, 1_000_000_000);
        let name = format!("node-{i}");
        self.slots.push(Slot {
            id: self
                .ids
                .instance(&InstanceId::new(&name).expect("valid id")),
            name,
            weight,
            node: None,
            life: 0,
            clock,
            fence: Millis::ZERO,
            tick_at: None,
            pollers: BTreeMap::new(),
            paused_until: 0,
            stop_started: None,
            stop_faulted: false,
            faulted_at: None,
            life_faulted: false,
            open_batches: 0,
            up_since: None,
            slow_until: 0,
            stop_life: None,
            away: None,
            meters: BTreeMap::new(),
            loads_due: 0,
        });
        i
    }

    /// Starts a process in slot `i` (first start or restart).
    pub(crate) fn start(&mut self, i: usize) {
        let mut cfg = self.cfg.clone();
        cfg.seed = self.rng.next_u64();
        let s = &mut self.slots[i];
        s.life += 1;
        s.pollers.clear();
        s.meters.clear();
        s.loads_due = self.now;
        s.fence = Millis::ZERO;
        s.tick_at = None;
        s.stop_started = None;
        s.stop_faulted = false;
        s.faulted_at = None;
        s.life_faulted = false;
        s.open_batches = 0;
        s.slow_until = 0;
        s.paused_until = 0;
        s.up_since = Some(self.now);
        cfg.instance_id = Some(s.name.clone());
        cfg.capacity = s.weight;
        let local = s.local(self.now);
        let mut node = Node::new(cfg, local).expect("the simulation's config is valid");
        node.share_targets(Arc::clone(&self.targets));
        s.node = Some(node);
        self.stats.starts += 1;
        self.emit(Some(i), "start", String::new);
        self.after_handle(i);
    }

    /// Tells slot `i`'s node its queues' loads once a heartbeat interval, as the runtime's
    /// driver does, under load balance.
    fn feed_loads(&mut self, i: usize) {
        let every = self.cfg.heartbeat_interval.as_millis() as u64;
        let s = &mut self.slots[i];
        if !matches!(self.sc.balance, Balance::Load { .. }) || self.now < s.loads_due {
            return;
        }
        s.loads_due = self.now + every;
        let now = Duration::from_millis(self.now);
        let loads = (s.pollers.keys())
            .map(|q| {
                let load = match &self.calm_loads {
                    Some(held) => held.get(q).copied().unwrap_or(0),
                    None => s.meters.get(q).map_or(0, |m| m.micros_per_second(now)),
                };
                (q.clone(), load)
            })
            .collect();
        self.input(i, Input::QueueLoads { loads });
    }

    /// Each queue's load at the calm point, as its receiver measured it (the largest of any
    /// instance's measure for a queue nobody receives).
    pub(crate) fn loads_now(&self) -> BTreeMap<QueueId, u64> {
        let now = Duration::from_millis(self.now);
        let mut out: BTreeMap<QueueId, u64> = BTreeMap::new();
        for s in &self.slots {
            for (q, m) in &s.meters {
                let load = m.micros_per_second(now);
                let at = out.entry(q.clone()).or_default();
                *at = if s.pollers.contains_key(q) {
                    load
                } else {
                    (*at).max(load)
                };
            }
        }
        out
    }

    /// Ends the process in slot `i` (crash, or after a stop completed).
    pub(crate) fn end_life(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if let Some(since) = s.up_since.take() {
            self.stats.instance_ms += self.now - since;
        }
        if let Some(node) = s.node.take() {
            self.stats.table_reads.add(node.table_reads());
        }
        s.life += 1;
        s.pollers.clear();
        s.tick_at = None;
    }

    pub(crate) fn input(&mut self, i: usize, input: Input) {
        let local = self.slots[i].local(self.now);
        if self.slots[i].node.is_none() {
            return;
        }
        if self.sc.trace {
            let d = format!("{input:?}");
            let name = self.slots[i].name.clone();
            self.trace.emit(self.now, Some(&name), "input", &d);
        }
        if let Some(node) = self.slots[i].node.as_mut() {
            node.handle(local, input);
        }
        self.after_handle(i);
    }

    fn after_handle(&mut self, i: usize) {
        let life = self.slots[i].life;
        loop {
            let Some(node) = self.slots[i].node.as_mut() else {
                return;
            };
            let Some(effect) = node.poll_effect() else {
                break;
            };
            if self.sc.trace {
                let d = format!("{effect:?}");
                let name = self.slots[i].name.clone();
                self.trace.emit(self.now, Some(&name), "effect", &d);
            }
            match effect {
                Effect::Write { id, write } => self.dynamo_call(i, life, id, DCall::Write(write)),
                Effect::Read { id, read } => self.dynamo_call(i, life, id, DCall::Read(read)),
                Effect::ListQueues { id, prefix } => {
                    self.dynamo_call(i, life, id, DCall::List(prefix))
                }
                Effect::StartReceiving { queue, .. } => self.start_receiving(i, queue),
                Effect::StopReceiving { queue } => self.stop_receiving(i, queue),
                Effect::Fence { until } => {
                    self.slots[i].fence = until;
                    self.fence_moved(i);
                }
                Effect::Phase(p) => self.phase(i, p),
            }
        }
        let s = &self.slots[i];
        let Some(node) = s.node.as_ref() else { return };
        if let Some(at) = node.poll_timeout() {
            let t = s.global(at).max(self.now);
            if s.tick_at.is_none_or(|old| t < old || old < self.now) {
                self.slots[i].tick_at = Some(t);
                self.push(t, Ev::Tick { slot: i, life });
            }
        }
    }

    fn phase(&mut self, i: usize, p: Phase) {
        match p {
            Phase::Draining => self.draining(i),
            Phase::Stopped { outcome } => self.stopped(i, outcome),
            _ => {}
        }
    }

    /// Slot `i` began to drain: its stop counts from when the node took the request (a pause
    /// may have held it back), and a recent fault is in its way.
    fn draining(&mut self, i: usize) {
        let now = self.now;
        let s = &mut self.slots[i];
        s.stop_started = Some(now);
        s.stop_life = s.node.as_ref().and_then(Node::life);
        s.stop_faulted |= s.faulted_at.is_some_and(|t| now < t + FAULT_LINGER_MS);
        self.maybe_drained(i);
    }

    /// Slot `i`'s stop ended with `outcome`: it is checked and counted, and the process exits.
    fn stopped(&mut self, i: usize, outcome: StopOutcome) {
        let s = &self.slots[i];
        let took = s.stop_started.map_or(0, |t| self.now - t);
        // The timeout runs on the node's own (possibly drifting) clock.
        let limit = s.stop_started.map_or(0, |t| {
            let timeout = self.cfg.shutdown_timeout.as_millis() as u64;
            s.global(Millis(s.local(t).0 + timeout)) - t
        });
        let records = self.owners.iter().map(|(q, o)| (q, o.as_ref()));
        let since = |q: &QueueId| self.owner_at.get(q).copied().unwrap_or(u64::MAX);
        let stop = Stop {
            name: &s.name,
            end: match outcome {
                StopOutcome::Clean => StopEnd::Clean,
                StopOutcome::TimedOut => StopEnd::TimedOut,
                StopOutcome::LifeLost => StopEnd::LifeLost,
            },
            took,
            limit,
            stop_faulted: s.stop_faulted || s.stop_started.is_some_and(|t| s.slow_until > t),
            life_faulted: s.life_faulted,
            pollers_left: s.pollers.len(),
            still_named: still_named(
                records,
                since,
                s.stop_life.as_ref(),
                s.stop_started.unwrap_or(0),
            ),
        };
        if let Some(p) = stop_problem(&stop) {
            self.checker.violate(Invariant::GracefulStop, p);
        }
        match outcome {
            StopOutcome::Clean => {
                self.stats.stops_clean += 1;
                self.stats.stop_ms.push(took);
            }
            StopOutcome::TimedOut => self.stats.stops_timed_out += 1,
            StopOutcome::LifeLost => self.stats.stops_life_lost += 1,
        }
        self.end_life(i);
        if self.rolling.remove(&i) || self.calm {
            // A stop begun just before the calm point ends after it: the calm brings every
            // instance back, this one too, so the backlog still drains.
            self.start(i);
        }
    }

    /// Reports DrainFinished once a stopping instance has no handlers running.
    pub(crate) fn maybe_drained(&mut self, i: usize) {
        let s = &self.slots[i];
        if s.stop_started.is_some() && s.open_batches == 0 {
            let life = s.life;
            self.push(
                self.now,
                Ev::Input {
                    slot: i,
                    life,
                    input: Input::DrainFinished,
                },
            );
        }
    }

    // ----- DynamoDB -----

    pub(crate) fn latency(&mut self) -> u64 {
        BASE_LATENCY_MS + self.hooks.latency()
    }

    /// The most one [`World::latency`] draw can be, ms.
    pub(crate) fn max_latency(&self) -> u64 {
        BASE_LATENCY_MS + self.hooks.rates.max_latency_ms
    }

    /// Records that a fault hit slot `i` (during its stop, if it is stopping).
    pub(crate) fn faulted(&mut self, i: usize) {
        let s = &mut self.slots[i];
        s.life_faulted = true;
        s.stop_faulted |= s.stop_started.is_some();
        s.faulted_at = Some(self.now);
    }

    /// The caller of `id` learns at `at` that its outcome is unknown (an error, its SDK's
    /// attempt timeout, or the driver's deadline).
    fn fail_at(&mut self, i: usize, life: u64, id: OpId, at: u64) {
        self.faulted(i);
        self.answer_at(i, life, id, at, Outcome::Unknown);
    }

    fn answer_at(&mut self, i: usize, life: u64, id: OpId, at: u64, outcome: Outcome) {
        let input = Input::Completed { id, outcome };
        self.push(
            at,
            Ev::Input {
                slot: i,
                life,
                input,
            },
        );
    }

    /// The driver's deadline for `call`, ms.
    fn deadline_ms(&self, call: &DCall) -> u64 {
        let d = match call {
            DCall::List(_) => self.timeouts.listing,
            _ => self.timeouts.effect,
        };
        d.as_millis() as u64
    }

    fn dynamo_call(&mut self, i: usize, life: u64, id: OpId, mut call: DCall) {
        let stopping = self.slots[i].stop_started.is_some();
        match (&mut call, self.sc.mutation) {
            (DCall::Write(Write::HandOff { .. }), Some(Mutation::SkipReleaseOnStop))
                if stopping =>
            {
                let done = Outcome::Applied(Reply::Done);
                let input = Input::Completed { id, outcome: done };
                self.push(
                    self.now,
                    Ev::Input {
                        slot: i,
                        life,
                        input,
                    },
                );
                return;
            }
            (DCall::Write(Write::Register { capacity, .. }), Some(Mutation::WrongCapacity))
                if i == 0 =>
            {
                *capacity *= 2;
            }
            _ => {}
        }
        let service = match call {
            DCall::List(_) => Service::Sqs,
            _ => Service::Dynamo,
        };
        let name = self.slots[i].name.clone();
        let verdict = self.hooks.decide(Millis(self.now), &name, service);
        let deadline = self.now + self.deadline_ms(&call);
        let attempt = self.now + self.timeouts.attempt.as_millis() as u64;
        // A slow call is held before it is sent, and its answer comes late.
        let (held, extra) = self.hooks.slowness();
        if held + extra > 0 {
            self.faulted(i);
        }
        let arrive = self.now + held + self.latency();
        let send = |w: &mut World, at: u64, answer: Answer, call: DCall| {
            let ev = Ev::DynamoArrive {
                slot: i,
                life,
                id,
                call,
                answer,
            };
            w.push(at, ev);
        };
        match verdict {
            Verdict::Serve => send(self, arrive, Answer::Back { extra, deadline }, call),
            // Served, its answer lost: the SDK's attempt timeout tells the caller.
            Verdict::TimeoutApplied => {
                send(self, arrive, Answer::Lost, call);
                self.fail_at(i, life, id, attempt);
            }
            Verdict::Unreachable | Verdict::TimeoutNotApplied => {
                self.fail_at(i, life, id, attempt);
            }
            Verdict::Throttled | Verdict::ServerError => {
                let at = self.now + 2 * self.latency();
                self.fail_at(i, life, id, at);
            }
            // No answer ever: only the driver's deadline ends the call.
            Verdict::Hang(served) => {
                if served {
                    send(self, arrive, Answer::Lost, call);
                }
                self.fail_at(i, life, id, deadline);
            }
            // The caller gives up at its deadline; the request lands seconds later.
            Verdict::Late => {
                let at = deadline + 1 + self.rng.below(crate::fake::SLOW_MS);
                send(self, at, Answer::Lost, call);
                self.fail_at(i, life, id, deadline);
            }
        }
    }

    fn dynamo_arrive(&mut self, i: usize, life: u64, id: OpId, call: DCall, answer: Answer) {
        let name = self.slots[i].name.clone();
        let outcome = match &call {
            DCall::Write(w) => self.apply_write(i, &name, w),
            DCall::Read(r) => {
                let at = Cursor::default();
                return self.read_pages(i, life, id, r.clone(), at, Vec::new(), answer);
            }
            DCall::List(prefix) => self.list(&name, prefix),
        };
        self.answer(i, life, id, outcome, answer);
    }

    /// The answer to a call served now travels back, unless it is lost or the caller's
    /// deadline passes first.
    fn answer(&mut self, i: usize, life: u64, id: OpId, outcome: Outcome, answer: Answer) {
        let Answer::Back { extra, deadline } = answer else {
            return;
        };
        let at = self.now + self.latency() + extra;
        if at > deadline {
            self.fail_at(i, life, id, deadline.max(self.now));
        } else {
            self.answer_at(i, life, id, at, outcome);
        }
    }

    fn apply_write(&mut self, i: usize, caller: &str, w: &Write) -> Outcome {
        let wall_secs = 1_700_000_000 + self.now / 1000;
        let mut tw = table::encode_write(&self.layout, w, wall_secs);
        if let (Write::HandOff { expect_epoch, .. }, Some(Mutation::HandOffKeepsEpoch)) =
            (w, self.sc.mutation)
        {
            for u in &mut tw.updates {
                if let Update::Set(n, v) = u
                    && *n == EPOCH
                {
                    *v = Value::num(*expect_epoch);
                }
            }
        }
        self.dynamo.set_now(Millis(self.now));
        match self.dynamo.update_item(caller, TABLE, &tw) {
            Ok((before, after)) => {
                if let Some(q) = tw.key.sk.strip_prefix(QUEUE_PREFIX) {
                    self.queue_record_written(i, w, q, before.as_ref(), &after);
                } else if let Ok(table::Record::Instance(rec)) = table::decode_item(&after) {
                    self.published.insert(rec.id, rec.loads);
                }
                match table::write_reply(w, &after) {
                    Ok(reply) => Outcome::Applied(reply),
                    Err(_) => Outcome::Unknown,
                }
            }
            Err(crate::fake::DynamoError::ConditionalCheckFailed) => Outcome::Rejected,
            Err(_) => Outcome::Unknown,
        }
    }

    fn queue_record_written(
        &mut self,
        i: usize,
        w: &Write,
        q: &str,
        before: Option<&table::Item>,
        after: &table::Item,
    ) {
        let epoch = |item: &table::Item| match item.get(EPOCH) {
            Some(Value::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        let after_epoch = epoch(after).unwrap_or(0);
        self.checker
            .epoch_written(q, before.and_then(epoch), after_epoch);
        let Ok(table::Record::Queue(rec)) = table::decode_item(after) else {
            return;
        };
        let old = self
            .owners
            .insert(rec.queue.clone(), rec.owner.clone())
            .flatten();
        if old != rec.owner {
            self.owner_at.insert(rec.queue.clone(), self.now);
            let to = rec.owner.as_ref().and_then(|o| self.slot_of(&o.id));
            self.stats.ownership.push((self.now, rec.queue.clone(), to));
            if let (Write::HandOff { .. }, Some(_)) = (w, to) {
                self.stats.voluntary_moves += 1;
            }
            if self.calm && to.is_some() {
                self.stats.moves_after_calm += 1;
            }
            if matches!(w, Write::HandOff { .. }) {
                let who = self.slots[i].who();
                // The receiving life, if it is still the one running in its slot: a gap that
                // outlives the receiver (it crashed or stopped) is not a hand-off's.
                let receiver = rec.owner.as_ref().and_then(|o| {
                    let j = self.slot_of(&o.id)?;
                    let s = &self.slots[j];
                    (s.node_life().as_ref() == Some(o)).then(|| s.who())
                });
                self.stats
                    .handed_off
                    .insert((rec.queue.clone(), who), (receiver, self.now));
            }
        }
        if self.sc.trace {
            let d = format!("{} owner={:?} epoch={after_epoch}", rec.queue, rec.owner);
            self.trace.emit(self.now, None, "record", &d);
        }
    }

    pub(crate) fn slot_of(&self, id: &InstanceId) -> Option<usize> {
        id.as_str().strip_prefix("node-")?.parse().ok()
    }

    /// Serves table read `r` from `at`: its records by key, then every page of its queries,
    /// all at once, or (with the pages fault) a few keys or items now and the next request a
    /// round trip later, while the table changes.
    #[allow(
        clippy::too_many_arguments,
        reason = "one read's state, carried from page to page"
    )]
    fn read_pages(
        &mut self,
        i: usize,
        life: u64,
        id: OpId,
        r: Read,
        mut at: Cursor,
        mut pages: Vec<Arc<[Arc<table::Item>]>>,
        answer: Answer,
    ) {
        let caller = self.slots[i].name.clone();
        let keys = table::record_keys(&self.layout, &r);
        let queries = table::encode_read(&self.layout, &r).concat();
        let most = if self.calm {
            0
        } else {
            self.sc.faults.page_items
        };
        let items_read = if most > 0 {
            queries.iter().map(|q| self.dynamo.count(TABLE, q)).sum()
        } else {
            0
        };
        self.dynamo.set_now(Millis(self.now));
        // A page per query and batch at least: a whole-table read is hundreds of them.
        pages.reserve(queries.len() + keys.len().div_ceil(table::MAX_BATCH_GET));
        while at.keys < keys.len() || at.query < queries.len() {
            let served = if at.keys < keys.len() {
                let chunk = &keys[at.keys..keys.len().min(at.keys + table::MAX_BATCH_GET)];
                let limit = self.hooks.page_limit(most, chunk.len());
                self.dynamo
                    .batch_get_item(&caller, TABLE, chunk, limit, true)
                    .map(|got| {
                        at.keys += chunk.len() - got.unprocessed.len();
                        pages.push(got.items.into());
                        limit.is_some()
                    })
            } else {
                let q = &queries[at.query];
                let limit = self.hooks.page_limit(most, items_read);
                self.dynamo
                    .query(&caller, TABLE, q, limit, at.start.as_ref(), true)
                    .map(|page| {
                        pages.push(page.items);
                        at.advance(page.last_key);
                        limit.is_some()
                    })
            };
            match served {
                Err(_) => return self.answer(i, life, id, Outcome::Unknown, answer),
                Ok(false) => {}
                Ok(true) if at.keys == keys.len() && at.query == queries.len() => {}
                Ok(true) => return self.next_page_later(i, life, id, r, at, pages, answer),
            }
        }
        let decoded = self.decoded.collect(&pages, &mut self.ids);
        let outcome = Outcome::Applied(table::read_reply(&r, decoded));
        self.answer(i, life, id, outcome, answer);
    }

    /// A read of many round trips: the page travels back and the next request goes out, with
    /// a deadline of its own (the driver bounds each call, not the whole read).
    #[allow(
        clippy::too_many_arguments,
        reason = "one read's state, carried from page to page"
    )]
    fn next_page_later(
        &mut self,
        i: usize,
        life: u64,
        id: OpId,
        read: Read,
        at: Cursor,
        pages: Vec<Arc<[Arc<table::Item>]>>,
        answer: Answer,
    ) {
        // A fault in the way of a graceful stop.
        self.faulted(i);
        let back = self.latency();
        let answer = match answer {
            Answer::Back { deadline, .. } if self.now + back > deadline => {
                return self.fail_at(i, life, id, deadline.max(self.now));
            }
            Answer::Back { extra, .. } => Answer::Back {
                extra,
                deadline: self.now + back + self.timeouts.effect.as_millis() as u64,
            },
            Answer::Lost => return,
        };
        let when = self.now + back + self.latency();
        let ev = Ev::PageArrive {
            slot: i,
            life,
            id,
            read,
            at,
            pages,
            answer,
        };
        self.push(when, ev);
    }

    fn list(&mut self, caller: &str, prefix: &str) -> Outcome {
        let listing = self.sqs.list_all(caller, prefix);
        let queues = self.ids.listed(&listing.urls);
        Outcome::Applied(Reply::Queues(queues))
    }

    // ----- SQS long polls -----

    /// Makes sure a wake event is pending for the fake's next parked-receive deadline.
    pub(crate) fn arm_wake(&mut self) {
        if let Some(t) = self.sqs.next_wake(Millis(self.now)) {
            let t = t.0.max(self.now);
            if self.wake_at.is_none_or(|w| t < w) {
                self.wake_at = Some(t);
                self.push(t, Ev::SqsWake);
            }
        }
    }

    fn sqs_wake(&mut self) {
        if self.wake_at == Some(self.now) {
            self.wake_at = None;
        }
        for (id, _, result) in self.sqs.wake(Millis(self.now)) {
            let Some(recv) = self.parked.remove(&id) else {
                continue;
            };
            let result = match result {
                Ok(m) => RecvResult::Messages(m),
                Err(SqsError::QueueDoesNotExist { .. }) => RecvResult::Gone,
                Err(_) => RecvResult::Failed,
            };
            self.receive_returned(recv, result);
        }
        self.arm_wake();
    }

    /// How far the run has got.
    fn progress(&self) -> Progress {
        Progress {
            sim_ms: self.now,
            end_ms: self.end,
            events: self.events,
            up: self.slots.iter().filter(|s| s.node.is_some()).count(),
        }
    }

    /// Records a sample of the instances' DynamoDB requests, and schedules the next.
    pub(crate) fn sample(&mut self) {
        let dynamo_requests = self
            .dynamo
            .usage_by_caller()
            .iter()
            .filter(|(c, _)| c.starts_with("node-"))
            .map(|(_, u)| u.total_requests())
            .sum();
        let up = self.slots.iter().filter(|s| s.node.is_some()).count();
        self.stats.samples.push(Sample {
            t: self.now,
            dynamo_requests,
            up,
        });
        self.push(self.now + SAMPLE_MS, Ev::Sample);
    }

    fn finish(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(since) = self.slots[i].up_since.take() {
                self.stats.instance_ms += self.now - since;
            }
            if let Some(node) = &self.slots[i].node {
                self.stats.table_reads.add(node.table_reads());
            }
        }
        if self.checker.violations.is_empty()
            && let Some(problem) = settled(&self.fleet())
        {
            self.checker.violate(Invariant::Settled, problem);
        }
        if self.checker.violations.is_empty() {
            let sqs = &self.sqs;
            self.checker.check_no_loss(|q| sqs.exists(q.as_str()));
        }
    }

    /// The fleet now, as the checks see it.
    fn fleet(&self) -> Fleet {
        let instances = self
            .slots
            .iter()
            .map(|s| Instance {
                id: s.id.clone(),
                weight: s.weight,
                life: s.node.as_ref().and_then(Node::life),
                phase: s.node.as_ref().map(Node::phase),
                receiving: s
                    .pollers
                    .iter()
                    .filter(|(_, p)| !p.stopping)
                    .map(|(q, _)| q.clone())
                    .collect(),
            })
            .collect();
        Fleet {
            instances,
            queues: self
                .sqs
                .urls()
                .filter_map(|u| QueueId::new(u).ok())
                .collect(),
            records: self.owners.clone(),
            balance: self.sc.balance,
            loads: (self.published.iter())
                .filter_map(|(id, l)| Some((id.clone(), l.clone()?)))
                .collect(),
        }
    }

    /// What the run measured.
    pub fn report(&self) -> Report {
        Report::of(&Finished {
            sc: &self.sc,
            level: Level::Core,
            sim_ms: self.now,
            events: self.events,
            trace: &self.trace,
            trace_hash: self.sc.trace.then(|| self.trace.hash()),
            stats: &self.stats,
            checker: &self.checker,
            dynamo: &self.dynamo,
            sqs: &self.sqs,
            fleet: self.fleet(),
        })
    }
}

/// Whether `input` is a read's reply, which a node may handle ahead of its turn: handling
/// those is most of a large fleet's time.
fn is_reply(input: &Input) -> bool {
    matches!(
        input,
        Input::Completed {
            outcome: Outcome::Applied(
                Reply::Table { .. }
                    | Reply::Members { .. }
                    | Reply::Records { .. }
                    | Reply::Queues(_)
            ),
            ..
        }
    )
}

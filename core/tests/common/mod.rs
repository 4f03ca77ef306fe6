//! A small cluster harness for the core's multi-node tests: an in-memory table that executes
//! each write with the core's own encoding and conditions (`table`), nodes with drifting clocks, random latency, lost
//! responses (with and without the write applied), crashes, restarts, graceful stops and queues
//! appearing and vanishing. After every event it checks that no queue has two nodes that may
//! receive from it at the same instant. `solo` drives one node input by input instead.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the harness"
)]

pub mod solo;
pub mod table;

use sqsbalancer_core::rng::Rng;
use sqsbalancer_core::table::{self as core_table, Cond};
use sqsbalancer_core::{
    Config, DriftingClock, Effect, Input, InstanceId, Millis, Node, OpId, Outcome, Phase, QueueId,
    Read, Reply, SharedTargets, StopOutcome, Write,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;
use table::MemTable;

/// A deliberately broken store, to show the checker catches protocol violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakage {
    /// A correct store.
    None,
    /// Claims ignore their condition.
    UnconditionalClaims,
    /// The runtime ignores the self-fence and keeps receiving while cut off.
    IgnoreFence,
}

/// The in-test coordination table: the core's own encoding and write conditions, unless
/// deliberately broken.
#[derive(Default)]
pub struct Store {
    /// The items, as DynamoDB would hold them.
    pub table: MemTable,
    /// How the store is broken, if it is.
    pub breakage: Option<Breakage>,
}

impl Store {
    /// Applies `w`; a queue write that applies must move the record's epoch forward.
    pub fn write(&mut self, w: &Write) -> Outcome {
        let mut request = core_table::encode_write(&table::layout(), w, 0);
        let broken = self.breakage == Some(Breakage::UnconditionalClaims);
        if broken && matches!(w, Write::Claim { .. }) {
            request.cond = Some(Cond::Exists(core_table::PK));
        }
        let queue = queue_of(w);
        let before = queue.and_then(|q| self.table.queue(q));
        let outcome = self.table.write_request(w, request);
        if let (Some(q), Some(old), Outcome::Applied(_), false) = (queue, before, &outcome, broken)
        {
            let epoch = self.table.queue(q).map_or(0, |r| r.epoch);
            assert!(
                epoch > old.epoch,
                "epoch of {q} went from {} to {epoch}",
                old.epoch
            );
        }
        outcome
    }

    pub fn read(&self, r: Read) -> Reply {
        self.table.read(r)
    }
}

/// The queue whose record `w` writes, if it writes one.
fn queue_of(w: &Write) -> Option<&QueueId> {
    match w {
        Write::CreateQueue { queue, .. }
        | Write::Claim { queue, .. }
        | Write::HandOff { queue, .. }
        | Write::Retire { queue, .. } => Some(queue),
        _ => None,
    }
}

/// Rates of the faults a run injects, drawn per seed.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Per mille of calls whose response is lost (half of them after the write applied).
    pub lost_per_mille: u64,
    /// Largest one-way latency.
    pub max_latency_ms: u64,
    /// Per mille chance per node-second of a crash.
    pub crash_per_mille: u64,
    /// Per mille chance per node-second of a graceful stop.
    pub stop_per_mille: u64,
    /// Per mille chance per second of a new queue or of a queue deleted.
    pub queue_churn_per_mille: u64,
    /// Largest clock rate error, in parts per million.
    pub drift_ppm: u64,
    /// Per mille chance per node-second of a partition from the table (1 to 15 s).
    pub partition_per_mille: u64,
}

impl Faults {
    pub fn draw(rng: &mut Rng) -> Faults {
        let on = |rng: &mut Rng, max: u64| {
            if rng.below(2) == 0 {
                0
            } else {
                rng.below(max + 1)
            }
        };
        Faults {
            lost_per_mille: on(rng, 150),
            max_latency_ms: 1 + on(rng, 400),
            crash_per_mille: on(rng, 30),
            stop_per_mille: on(rng, 20),
            queue_churn_per_mille: on(rng, 300),
            drift_ppm: on(rng, 5_000),
            partition_per_mille: on(rng, 40),
        }
    }

    pub fn none() -> Faults {
        Faults {
            lost_per_mille: 0,
            max_latency_ms: 1,
            crash_per_mille: 0,
            stop_per_mille: 0,
            queue_churn_per_mille: 0,
            drift_ppm: 0,
            partition_per_mille: 0,
        }
    }
}

#[derive(Debug)]
enum Ev {
    Tick {
        node: usize,
        life: u64,
    },
    Apply {
        node: usize,
        life: u64,
        id: OpId,
        call: Call,
    },
    Deliver {
        node: usize,
        life: u64,
        input: Input,
    },
    Second,
}

#[derive(Debug)]
enum Call {
    Write(Write),
    Read(Read),
    List,
}

struct Slot {
    id: InstanceId,
    node: Option<Node>,
    /// Bumped on every crash or restart, so stale events are dropped.
    life: u64,
    /// Pollers: `None` while running, `Some(bound)` once asked to stop: the receive still in
    /// flight started under a fence no later than `bound`, so it ends before it.
    polling: BTreeMap<QueueId, Option<Millis>>,
    fence: Millis,
    clock: DriftingClock,
    weight: u32,
    cut_off_until: u64,
    /// The time of the one tick event that counts.
    tick_at: Option<u64>,
}

impl Slot {
    fn local(&self, t: u64) -> Millis {
        self.clock.local(t)
    }

    fn global(&self, local: Millis) -> u64 {
        // Rounded up so the event is not early.
        self.clock.global(local)
    }
}

/// One simulated cluster.
pub struct Cluster {
    pub now: u64,
    pub store: Store,
    pub sqs: BTreeSet<QueueId>,
    slots: Vec<Slot>,
    events: BinaryHeap<Reverse<(u64, u64, usize)>>,
    payloads: BTreeMap<usize, Ev>,
    seq: u64,
    rng: Rng,
    pub faults: Faults,
    cfg: Config,
    next_queue: usize,
    /// The first safety violation seen, if any.
    pub violation: Option<String>,
    pub events_run: u64,
    /// When set, every input and effect is logged here (for debugging a failing seed).
    pub log: Option<Vec<String>>,
    /// The targets every node shares, if they share them.
    shared: Option<Arc<SharedTargets>>,
}

pub fn config() -> Config {
    let mut c = Config::new("app", "table");
    c.heartbeat_interval = Duration::from_millis(1_000);
    c.heartbeat_timeout = Duration::from_millis(4_000);
    c.fence_margin = Some(Duration::from_millis(400));
    c.rebalance_delay = Duration::from_millis(2_000);
    c.queue_discovery_interval = Duration::from_millis(5_000);
    c.reconcile_interval = Duration::from_millis(10_000);
    c.shutdown_timeout = Duration::from_millis(10_000);
    c
}

impl Cluster {
    pub fn new(seed: u64, nodes: usize, queues: usize, faults: Faults) -> Cluster {
        Cluster::with_shared(seed, nodes, queues, faults, None, None)
    }

    /// [`Cluster::new`] with its nodes sharing `shared` and logging into `log`, if given.
    pub fn with_shared(
        seed: u64,
        nodes: usize,
        queues: usize,
        faults: Faults,
        shared: Option<Arc<SharedTargets>>,
        log: Option<Vec<String>>,
    ) -> Cluster {
        let mut c = Cluster {
            now: 0,
            store: Store::default(),
            sqs: BTreeSet::new(),
            slots: Vec::new(),
            events: BinaryHeap::new(),
            payloads: BTreeMap::new(),
            seq: 0,
            rng: Rng::new(seed),
            faults,
            cfg: config(),
            next_queue: 0,
            violation: None,
            events_run: 0,
            log,
            shared,
        };
        for _ in 0..queues {
            c.add_queue();
        }
        for i in 0..nodes {
            let weight = 1 + (c.rng.below(4) == 0) as u32;
            c.join(i, weight);
        }
        c.push(1_000, Ev::Second);
        c
    }

    pub fn add_queue(&mut self) {
        let q = QueueId::new(&format!("https://sqs.local/1/q-{:04}", self.next_queue)).unwrap();
        self.next_queue += 1;
        self.sqs.insert(q);
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let key = self.seq as usize;
        self.payloads.insert(key, ev);
        self.events.push(Reverse((at, self.seq, key)));
    }

    fn latency(&mut self) -> u64 {
        self.rng.below(self.faults.max_latency_ms + 1)
    }

    /// Adds node `i` (a new slot, or a restart of a crashed one with the same id).
    pub fn join(&mut self, i: usize, weight: u32) {
        let clock = DriftingClock::drawn(&mut self.rng, self.faults.drift_ppm, 1_000_000);
        if i == self.slots.len() {
            self.slots.push(Slot {
                id: InstanceId::new(&format!("node-{i}")).unwrap(),
                node: None,
                life: 0,
                polling: BTreeMap::new(),
                fence: Millis::ZERO,
                clock,
                weight,
                cut_off_until: 0,
                tick_at: None,
            });
        }
        let slot = &mut self.slots[i];
        slot.life += 1;
        slot.polling.clear();
        slot.fence = Millis::ZERO;
        let mut cfg = self.cfg.clone();
        cfg.instance_id = Some(slot.id.as_str().to_owned());
        cfg.capacity = slot.weight;
        cfg.seed = self.rng.next_u64();
        let local = slot.local(self.now);
        let mut node = Node::new(cfg, local).expect("valid config");
        if let Some(shared) = &self.shared {
            node.share_targets(Arc::clone(shared));
        }
        slot.node = Some(node);
        self.after_handle(i);
    }

    pub fn crash(&mut self, i: usize) {
        if let Some(log) = &mut self.log {
            log.push(format!("{:>7} n{i} CRASH", self.now));
        }
        let s = &mut self.slots[i];
        s.node = None;
        s.life += 1;
        s.polling.clear();
    }

    pub fn stop(&mut self, i: usize) {
        self.input(i, Input::Shutdown);
        let at = self.now + self.rng.below(3_000);
        let life = self.slots[i].life;
        self.push(
            at,
            Ev::Deliver {
                node: i,
                life,
                input: Input::DrainFinished,
            },
        );
    }

    fn input(&mut self, i: usize, input: Input) {
        let local = self.slots[i].local(self.now);
        let Some(node) = self.slots[i].node.as_mut() else {
            return;
        };
        if let Some(log) = &mut self.log {
            log.push(format!("{:>7} n{i} <- {input:?}", self.now));
        }
        node.handle(local, input);
        node.check_invariants();
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
            if let Some(log) = &mut self.log {
                log.push(format!("{:>7} n{i} -> {effect:?}", self.now));
            }
            match effect {
                Effect::Write { id, write } => self.send(i, life, id, Call::Write(write)),
                Effect::Read { id, read } => self.send(i, life, id, Call::Read(read)),
                Effect::ListQueues { id, .. } => self.send(i, life, id, Call::List),
                Effect::StartReceiving { queue, .. } => {
                    let old = self.slots[i].polling.insert(queue.clone(), None);
                    assert!(old.is_none(), "started {queue} twice");
                    self.check(&queue);
                    if !self.sqs.contains(&queue) {
                        let at = self.now + self.latency();
                        self.push(
                            at,
                            Ev::Deliver {
                                node: i,
                                life,
                                input: Input::QueueGone { queue },
                            },
                        );
                    }
                }
                Effect::StopReceiving { queue } => {
                    let fence = self.slots[i].fence;
                    let p = self.slots[i]
                        .polling
                        .get_mut(&queue)
                        .expect("stop without start");
                    assert!(p.is_none(), "stopped {queue} twice");
                    *p = Some(fence);
                    // The in-flight receive returns within its wait time (cut by the fence).
                    let at = self.now + self.rng.below(2_000);
                    self.push(
                        at,
                        Ev::Deliver {
                            node: i,
                            life,
                            input: Input::ReceivingStopped { queue },
                        },
                    );
                }
                Effect::Fence { until } => self.slots[i].fence = until,
                Effect::Phase(Phase::Stopped {
                    outcome: StopOutcome::Clean,
                }) => {
                    assert!(
                        self.slots[i].polling.is_empty(),
                        "stopped with pollers running"
                    );
                }
                Effect::Phase(_) => {}
            }
        }
        let Some(node) = self.slots[i].node.as_ref() else {
            return;
        };
        if node.phase().is_stopped() {
            self.slots[i].node = None;
            self.slots[i].life += 1;
            return;
        }
        if let Some(at) = node.poll_timeout() {
            let t = self.slots[i].global(at).max(self.now);
            if self.slots[i].tick_at != Some(t) {
                self.slots[i].tick_at = Some(t);
                self.push(t, Ev::Tick { node: i, life });
            }
        }
    }

    /// Sends a call of node `i` to the store; it arrives after a random latency.
    fn send(&mut self, i: usize, life: u64, id: OpId, call: Call) {
        let at = self.now + self.latency();
        self.push(
            at,
            Ev::Apply {
                node: i,
                life,
                id,
                call,
            },
        );
    }

    /// Whether node `i` may have a receive in flight on `q` now.
    fn may_receive(&self, i: usize, q: &QueueId) -> bool {
        let s = &self.slots[i];
        let fenced = self.store.breakage != Some(Breakage::IgnoreFence);
        let Some(p) = s.polling.get(q) else {
            return false;
        };
        let bound = p.unwrap_or(s.fence);
        s.node.is_some() && (!fenced || s.local(self.now) < bound)
    }

    fn check(&mut self, q: &QueueId) {
        let who: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.may_receive(i, q))
            .collect();
        if who.len() > 1 && self.violation.is_none() {
            self.violation = Some(format!(
                "t={}ms: {q} may be received by nodes {who:?}",
                self.now
            ));
        }
    }

    fn second(&mut self) {
        let f = self.faults.clone();
        for i in 0..self.slots.len() {
            if self.rng.below(1000) < f.partition_per_mille {
                self.slots[i].cut_off_until = self.now + 1_000 + self.rng.below(14_000);
                if let Some(log) = &mut self.log {
                    log.push(format!(
                        "{:>7} n{i} CUT OFF until {}",
                        self.now, self.slots[i].cut_off_until
                    ));
                }
            }
            if self.slots[i].node.is_some() {
                if self.rng.below(1000) < f.crash_per_mille {
                    self.crash(i);
                } else if self.rng.below(1000) < f.stop_per_mille {
                    self.stop(i);
                }
            } else if self.rng.below(1000) < 100 && f.crash_per_mille + f.stop_per_mille > 0 {
                self.join(i, self.slots[i].weight);
            }
        }
        if self.rng.below(1000) < f.queue_churn_per_mille {
            if self.rng.below(2) == 0 || self.sqs.is_empty() {
                self.add_queue();
            } else {
                let k = self.rng.below(self.sqs.len() as u64) as usize;
                let q = self.sqs.iter().nth(k).cloned().unwrap();
                self.sqs.remove(&q);
                for i in 0..self.slots.len() {
                    if self.slots[i].polling.get(&q) == Some(&None) {
                        let at = self.now + self.latency();
                        let life = self.slots[i].life;
                        self.push(
                            at,
                            Ev::Deliver {
                                node: i,
                                life,
                                input: Input::QueueGone { queue: q.clone() },
                            },
                        );
                    }
                }
            }
        }
        self.push(self.now + 1_000, Ev::Second);
    }

    /// Runs events until `until` (ms of simulated time).
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse((at, _, key))) = self.events.peek().copied() {
            if at > until {
                break;
            }
            self.events.pop();
            self.now = at;
            self.events_run += 1;
            let ev = self.payloads.remove(&key).unwrap();
            self.step(ev);
        }
        self.now = until;
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Second => self.second(),
            Ev::Tick { node, life }
                if self.slots[node].life == life && self.slots[node].tick_at == Some(self.now) =>
            {
                self.slots[node].tick_at = None;
                self.input(node, Input::Tick);
            }
            Ev::Deliver { node, life, input } if self.slots[node].life == life => {
                if let Input::ReceivingStopped { queue } = &input {
                    self.slots[node].polling.remove(queue);
                }
                self.input(node, input);
            }
            Ev::Apply {
                node,
                life,
                id,
                call,
            } => {
                let cut_off = self.now < self.slots[node].cut_off_until;
                let lost = cut_off || self.rng.below(1000) < self.faults.lost_per_mille;
                let applies = !cut_off && (!lost || self.rng.below(2) == 0);
                let outcome = if !applies {
                    Outcome::Unknown
                } else {
                    let o = match call {
                        Call::Write(w) => self.store.write(&w),
                        Call::Read(r) => Outcome::Applied(self.store.read(r)),
                        Call::List => {
                            Outcome::Applied(Reply::Queues(self.sqs.iter().cloned().collect()))
                        }
                    };
                    if lost { Outcome::Unknown } else { o }
                };
                let at = self.now + self.latency();
                self.push(
                    at,
                    Ev::Deliver {
                        node,
                        life,
                        input: Input::Completed { id, outcome },
                    },
                );
            }
            _ => {}
        }
        let queues: Vec<QueueId> = self
            .slots
            .iter()
            .flat_map(|s| s.polling.keys().cloned())
            .collect();
        for q in queues {
            self.check(&q);
        }
    }

    /// Stops all faults from now on and restarts every node that is down.
    pub fn calm(&mut self) {
        self.faults.lost_per_mille = 0;
        self.faults.crash_per_mille = 0;
        self.faults.stop_per_mille = 0;
        self.faults.queue_churn_per_mille = 0;
        self.faults.partition_per_mille = 0;
        for i in 0..self.slots.len() {
            self.slots[i].cut_off_until = 0;
            if self.slots[i].node.is_none() {
                let w = self.slots[i].weight;
                self.join(i, w);
            }
        }
    }

    /// Checks the settled state: every queue polled by exactly one running node whose life the
    /// record names, and every running node within floor/ceil of its weighted share.
    pub fn check_settled(&self) -> Result<(), String> {
        let running: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.phase() == Phase::Running)
            })
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        let total_w: u64 = running
            .iter()
            .map(|&i| u64::from(self.slots[i].weight))
            .sum();
        let q = self.sqs.len();
        for queue in &self.sqs {
            let who: Vec<usize> = running
                .iter()
                .copied()
                .filter(|&i| self.slots[i].polling.get(queue) == Some(&None))
                .collect();
            if who.len() != 1 {
                return Err(format!("{queue} polled by {who:?}"));
            }
            let life = self.slots[who[0]].node.as_ref().unwrap().life();
            let rec = self.store.table.queue(queue);
            if rec.as_ref().and_then(|r| r.owner.clone()) != life {
                return Err(format!(
                    "{queue}: record {rec:?} but node {} polls it",
                    who[0]
                ));
            }
        }
        for &i in &running {
            let n = self.slots[i].polling.len();
            let w = self.slots[i].weight;
            let (lo, hi) = sqsbalancer_core::share_bounds(q, w, total_w);
            if n < lo || n > hi {
                return Err(format!(
                    "node {i} (weight {w}) polls {n}, share {lo}..={hi} of {q}"
                ));
            }
        }
        Ok(())
    }
}

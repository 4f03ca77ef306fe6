//! Byte-driven drivers shared by the fuzz targets and the corpus replay test (feature `fuzzing`).
//!
//! Each driver decodes arbitrary bytes into a scenario and panics if a rule breaks, so libFuzzer
//! finds inputs that break it and a plain `cargo test` replays the committed corpus on stable.

use crate::assignment::{Member, assign, share_bounds};
use crate::config::Config;
use crate::effect::{
    Effect, Input, InstanceRecord, OpId, Outcome, QueueRecord, Read, Reply, Status, Unreadable,
    Write,
};
use crate::ids::{InstanceId, Owner, QueueId};
use crate::node::Node;
use crate::page::QueuePage;
use crate::time::Millis;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Reads bytes, yielding zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

const IDS: [&str; 4] = ["me", "peer-a", "peer-b", "peer-c"];

fn id(b: u8) -> InstanceId {
    InstanceId::new(IDS[usize::from(b) % IDS.len()]).expect("valid id")
}

fn queue(b: u8) -> QueueId {
    QueueId::new(&format!("https://sqs.local/1/q-{}", b % 8)).expect("valid queue")
}

fn owner(b: &mut Bytes) -> Option<Owner> {
    let x = b.u8();
    (!x.is_multiple_of(3)).then(|| Owner {
        id: id(x >> 2),
        incarnation: u64::from(b.u8() % 4),
    })
}

fn instances(b: &mut Bytes) -> Vec<InstanceRecord> {
    let mut out: BTreeMap<InstanceId, InstanceRecord> = BTreeMap::new();
    for _ in 0..b.u8() % 5 {
        let x = b.u8();
        let y = b.u8();
        let r = InstanceRecord {
            id: id(x),
            incarnation: u64::from(b.u8() % 4),
            heartbeat: u64::from(b.u8()),
            status: [Status::Active, Status::Draining, Status::Dead][usize::from(x >> 4) % 3],
            capacity: u32::from(x >> 6),
            inbox: u64::from(x & 3),
            news: u64::from(y & 1),
            ended: u64::from(b.u8() % 3),
            lapsed: u64::from(y % 3),
            prior: (u64::from((y >> 2) % 4), u64::from(y >> 4)),
            loads: None,
        };
        out.insert(r.id.clone(), r);
    }
    out.into_values().collect()
}

fn queues(b: &mut Bytes) -> Vec<Arc<QueueRecord>> {
    let mut out: BTreeMap<QueueId, Arc<QueueRecord>> = BTreeMap::new();
    for _ in 0..b.u8() % 9 {
        let q = queue(b.u8());
        let owner = owner(b);
        let x = b.u8();
        let r = QueueRecord {
            queue: q.clone(),
            owner,
            epoch: u64::from(x % 16),
            retired: x >= 240,
        };
        out.insert(q, Arc::new(r));
    }
    out.into_values().collect()
}

/// What the driver remembers of an effect it has not answered yet.
enum Open {
    Write(Write),
    Read(Read),
    List,
}

/// Drives one node with inputs decoded from `data` and checks its invariants after each.
///
/// Besides the node's own checks: pollers are started only when stopped and stopped only when
/// started, and a stopped node asks for nothing more.
pub fn drive_node(data: &[u8]) {
    let mut b = Bytes(data);
    let cfg = config(&mut b);
    let mut now = Millis(u64::from(b.u16()));
    let mut node = Node::new(cfg, now).expect("valid config");
    let mut driven = Driven::default();
    loop {
        driven.take_effects(&mut node);
        check_node(&node, now);
        if b.done() {
            break;
        }
        let input = driven.next_input(&mut b, &mut now);
        node.handle(now, input);
    }
}

/// The node's config: fixed heartbeat timing, the rest decoded from `b`.
fn config(b: &mut Bytes) -> Config {
    let mut cfg = Config::new("app", "table");
    cfg.instance_id = Some("me".into());
    cfg.heartbeat_interval = Duration::from_millis(1_000);
    cfg.heartbeat_timeout = Duration::from_millis(4_000);
    cfg.rebalance_delay = Duration::from_millis(u64::from(b.u8()) * 20);
    cfg.capacity = u32::from(b.u8() % 4) + 1;
    cfg.queue_filter_pattern = b.u8().is_multiple_of(2).then(|| "^q-[0-5]".to_owned());
    cfg.seed = u64::from(b.u16());
    cfg
}

/// The node's own invariants, and its timeout: none once stopped, else never before `now`.
fn check_node(node: &Node, now: Millis) {
    node.check_invariants();
    if node.phase().is_stopped() {
        assert!(node.poll_timeout().is_none());
    } else {
        let t = node
            .poll_timeout()
            .expect("a running node always has a timeout");
        assert!(t >= now, "timeout {t:?} before now {now:?}");
    }
}

/// What the driver tracks of the node between inputs: the calls not answered yet, and each
/// poller as running (`true`) or asked to stop (`false`).
#[derive(Default)]
struct Driven {
    open: Vec<(OpId, Open)>,
    pollers: BTreeMap<QueueId, bool>,
}

impl Driven {
    /// Takes the node's effects: remembers each call to answer, and checks that a poller is
    /// started only when stopped and stopped only when started.
    fn take_effects(&mut self, node: &mut Node) {
        while let Some(e) = node.poll_effect() {
            match e {
                Effect::Write { id, write } => self.open.push((id, Open::Write(write))),
                Effect::Read { id, read } => self.open.push((id, Open::Read(read))),
                Effect::ListQueues { id, .. } => self.open.push((id, Open::List)),
                Effect::StartReceiving { queue, .. } => {
                    assert!(
                        self.pollers.insert(queue.clone(), true).is_none(),
                        "{queue} started twice"
                    );
                }
                Effect::StopReceiving { queue } => {
                    assert_eq!(
                        self.pollers.insert(queue.clone(), false),
                        Some(true),
                        "{queue} stopped while not running"
                    );
                }
                Effect::Fence { .. } | Effect::Phase(_) => {}
            }
        }
    }

    /// The next input, decoded from `b`: a tick (which may advance `now`), an answer, a
    /// poller stopped, a queue gone, a shutdown or drain, or an answer to no call.
    fn next_input(&mut self, b: &mut Bytes, now: &mut Millis) -> Input {
        match b.u8() % 9 {
            0 | 1 => {
                *now = now.saturating_add(Duration::from_millis(u64::from(b.u16()) % 10_000));
                Input::Tick
            }
            2..=4 if !self.open.is_empty() => {
                let (id, what) = self.open.remove(usize::from(b.u8()) % self.open.len());
                Input::Completed {
                    id,
                    outcome: outcome(b, what),
                }
            }
            2..=4 => Input::Tick,
            5 => self.receiving_stopped(b),
            6 => Input::QueueGone {
                queue: queue(b.u8()),
            },
            7 => {
                if b.u8().is_multiple_of(4) {
                    Input::Shutdown
                } else {
                    Input::DrainFinished
                }
            }
            _ => Input::Completed {
                id: OpId(u64::from(b.u8())),
                outcome: Outcome::Applied(Reply::Queues([queue(b.u8())].into())),
            },
        }
    }

    /// A poller reports it stopped: one the node asked to stop if there is one, else any
    /// queue, as a stray report.
    fn receiving_stopped(&mut self, b: &mut Bytes) -> Input {
        let stopping: Vec<QueueId> = self
            .pollers
            .iter()
            .filter(|(_, r)| !**r)
            .map(|(q, _)| q.clone())
            .collect();
        if stopping.is_empty() {
            Input::ReceivingStopped {
                queue: queue(b.u8()),
            }
        } else {
            let q = stopping[usize::from(b.u8()) % stopping.len()].clone();
            self.pollers.remove(&q);
            Input::ReceivingStopped { queue: q }
        }
    }
}

/// An answer to the call `what`, decoded from `b`: unknown, rejected (writes), or applied
/// with a reply of the call's kind.
fn outcome(b: &mut Bytes, what: Open) -> Outcome {
    let x = b.u8();
    match (x % 4, what) {
        (0, _) => Outcome::Unknown,
        (1, Open::Write(_)) => Outcome::Rejected,
        (_, Open::Write(Write::Register { .. })) => Outcome::Applied(Reply::Registered {
            incarnation: u64::from(x >> 4),
        }),
        (_, Open::Write(_)) => Outcome::Applied(Reply::Done),
        (_, Open::Read(Read::Members)) => Outcome::Applied(Reply::Members {
            instances: instances(b),
            unreadable: Unreadable::default(),
        }),
        (_, Open::Read(Read::Table)) => {
            let instances = instances(b);
            // Cut into two pages where the answer's spare bits say, reading no more bytes,
            // so that older corpus entries mean what they meant.
            let mut first = queues(b);
            let rest = first.split_off(usize::from(x >> 2).min(first.len()));
            Outcome::Applied(Reply::Table {
                instances,
                pages: vec![QueuePage::new(first), QueuePage::new(rest)],
                unreadable: Unreadable::default(),
            })
        }
        // Any queues, asked or not: a node must ignore records it did not ask for.
        (_, Open::Read(Read::Records(_))) => {
            let instances = instances(b);
            Outcome::Applied(Reply::Records {
                instances,
                queues: queues(b),
                unreadable: Unreadable::default(),
            })
        }
        (_, Open::List) => {
            let n = b.u8() % 8;
            Outcome::Applied(Reply::Queues((0..n).map(|_| queue(b.u8())).collect()))
        }
    }
}

/// Decodes a fleet from `data`, assigns it, and checks floor/ceil balance, full coverage and
/// that re-assigning the result moves nothing.
pub fn check_fleet(data: &[u8]) {
    let mut b = Bytes(data);
    let n = usize::from(b.u8() % 64) + 1;
    let members: Vec<Member> = (0..n)
        .map(|i| Member {
            id: InstanceId::new(&format!("i-{}", usize::from(b.u8()) * 64 + i)).expect("valid id"),
            weight: u32::from(b.u8() % 4) + 1,
        })
        .collect();
    let q = usize::from(b.u16() % 3_000);
    let qs: Vec<QueueId> = (0..q)
        .map(|i| QueueId::new(&format!("q-{i}")).expect("valid queue"))
        .collect();
    let mut current = BTreeMap::new();
    for qid in &qs {
        let x = b.u8();
        if !x.is_multiple_of(3) {
            let who = members[usize::from(x) % n].id.clone();
            current.insert(qid.clone(), who);
        } else if x.is_multiple_of(2) {
            current.insert(qid.clone(), InstanceId::new("departed").expect("valid id"));
        }
    }
    let a = assign(&members, &qs, &current);
    assert_eq!(a.len(), q, "every queue assigned");
    let mut by_id: BTreeMap<&InstanceId, u32> = BTreeMap::new();
    for m in &members {
        let w = by_id.entry(&m.id).or_insert(0);
        *w = (*w).max(m.weight);
    }
    let total: u64 = by_id.values().map(|&w| u64::from(w)).sum();
    let load = a.load();
    for (id, &w) in &by_id {
        let (lo, hi) = share_bounds(q, w, total);
        let got = load[*id];
        assert!(lo <= got && got <= hi, "{id} w{w}: {got} of {q}");
    }
    let settled: BTreeMap<QueueId, InstanceId> =
        a.iter().map(|(q, m)| (q.clone(), m.clone())).collect();
    assert!(
        assign(&members, &qs, &settled).moved(&settled).is_empty(),
        "a settled fleet moved"
    );
}

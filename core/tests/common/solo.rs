//! One node driven input by input against a table the test controls: every call waits in
//! `open` until the test answers it, by applying it to the table with the core's own request
//! encoding and write conditions, or with an outcome of its choosing.

pub use super::table::APP;
use super::table::MemTable;
use sqsbalancer_core::table::{self, Value};
use sqsbalancer_core::{
    Config, Effect, Input, InstanceId, Millis, Node, OpId, Outcome, Owner, Phase, QueueId, Read,
    Reply, Write,
};

/// One node, the table it coordinates through, and what it asked for.
pub struct Solo {
    pub node: Node,
    pub now: Millis,
    /// Calls issued and not answered yet, in issue order.
    pub open: Vec<Effect>,
    /// Every phase the node entered.
    pub phases: Vec<Phase>,
    /// Every receive command, in order.
    pub commands: Vec<Effect>,
    /// The coordination table, as DynamoDB would hold it.
    pub table: MemTable,
    /// Queues a listing returns.
    pub listed: Vec<QueueId>,
    /// Queues whose pollers were told to stop and have not reported it yet.
    pub stopping: Vec<QueueId>,
    /// Every write the table was asked to apply, in order.
    pub writes: Vec<Write>,
}

/// The configuration of solo node `name`.
pub fn config(name: &str) -> Config {
    let mut cfg = Config::new(APP, "table");
    cfg.instance_id = Some(name.into());
    cfg
}

/// Queue `name` as a URL.
pub fn queue(name: &str) -> QueueId {
    QueueId::new(&format!("https://sqs.us-east-1.amazonaws.com/1/{name}")).expect("a valid queue")
}

/// Life `incarnation` of `id`.
pub fn owner(id: &str, incarnation: u64) -> Owner {
    Owner {
        id: InstanceId::new(id).expect("a valid id"),
        incarnation,
    }
}

fn id_of(e: &Effect) -> OpId {
    match e {
        Effect::Write { id, .. } | Effect::Read { id, .. } | Effect::ListQueues { id, .. } => *id,
        other => panic!("not a call: {other:?}"),
    }
}

impl Solo {
    /// A node of `cfg` that has registered and read the table once; `listed` is what its
    /// listings find.
    pub fn running(cfg: Config, listed: Vec<QueueId>) -> Solo {
        let node = Node::new(cfg, Millis::ZERO).expect("valid config");
        let mut solo = Solo {
            node,
            now: Millis::ZERO,
            open: Vec::new(),
            phases: Vec::new(),
            commands: Vec::new(),
            table: MemTable::default(),
            listed,
            stopping: Vec::new(),
            writes: Vec::new(),
        };
        solo.input(Input::Tick);
        let mut rounds = 0;
        while solo.node.phase() != Phase::Running {
            rounds += 1;
            assert!(
                rounds < 20,
                "never reached Running: {:?}",
                solo.node.phase()
            );
            solo.answer_all();
            solo.tick();
        }
        solo.answer_all();
        solo
    }

    pub fn input(&mut self, input: Input) {
        self.node.handle(self.now, input);
        self.node.check_invariants();
        while let Some(e) = self.node.poll_effect() {
            match e {
                Effect::Phase(p) => self.phases.push(p),
                Effect::Write { .. } | Effect::Read { .. } | Effect::ListQueues { .. } => {
                    self.open.push(e)
                }
                Effect::StopReceiving { ref queue } => {
                    self.stopping.push(queue.clone());
                    self.commands.push(e)
                }
                Effect::StartReceiving { .. } => self.commands.push(e),
                Effect::Fence { .. } => {}
            }
        }
    }

    /// Moves time to the node's next timeout and ticks it.
    pub fn tick(&mut self) {
        self.now = self
            .node
            .poll_timeout()
            .expect("a running node has a timeout");
        self.input(Input::Tick);
    }

    /// Applies `write` to the table as DynamoDB would: its condition, then its updates.
    pub fn apply(&mut self, write: &Write) -> Outcome {
        self.writes.push(write.clone());
        self.table.write(write)
    }

    /// What the table answers to `e` now.
    pub fn serve(&mut self, e: &Effect) -> Outcome {
        match e {
            Effect::Write { write, .. } => self.apply(write),
            Effect::Read { read, .. } => Outcome::Applied(self.read(read.clone())),
            Effect::ListQueues { .. } => {
                Outcome::Applied(Reply::Queues(self.listed.as_slice().into()))
            }
            other => panic!("not a call: {other:?}"),
        }
    }

    /// A strongly consistent read of the table.
    pub fn read(&self, read: Read) -> Reply {
        self.table.read(read)
    }

    pub fn answer(&mut self, e: &Effect, outcome: Outcome) {
        self.input(Input::Completed {
            id: id_of(e),
            outcome,
        });
    }

    /// Reports every stopped poller, then serves every open call, and those their answers
    /// lead to, until none is open.
    pub fn answer_all(&mut self) {
        self.answer_all_but(|_| false);
    }

    /// Like [`Solo::answer_all`], but leaves open the calls matching `keep`.
    pub fn answer_all_but(&mut self, keep: impl Fn(&Effect) -> bool) {
        loop {
            if let Some(queue) = self.stopping.pop() {
                self.input(Input::ReceivingStopped { queue });
                continue;
            }
            let Some(at) = self.open.iter().position(|e| !keep(e)) else {
                return;
            };
            let e = self.open.remove(at);
            let outcome = self.serve(&e);
            self.answer(&e, outcome);
        }
    }

    /// Takes the first open call matching `f`.
    pub fn take(&mut self, f: impl Fn(&Effect) -> bool) -> Option<Effect> {
        let at = self.open.iter().position(f)?;
        Some(self.open.remove(at))
    }

    /// Whether a call matching `f` is open.
    pub fn sent(&self, f: impl Fn(&Effect) -> bool) -> bool {
        self.open.iter().any(f)
    }

    /// Registers peer `id` (or starts its next life) with `capacity`; returns its life.
    pub fn register_peer(&mut self, id: &str, capacity: u32) -> Owner {
        let w = Write::Register {
            id: InstanceId::new(id).expect("a valid id"),
            capacity,
            first: 1,
        };
        match self.apply(&w) {
            Outcome::Applied(Reply::Registered { incarnation }) => owner(id, incarnation),
            other => panic!("registering {id}: {other:?}"),
        }
    }

    /// Peer `life` heartbeats (its counter moves on).
    pub fn beat(&mut self, life: &Owner) {
        self.beat_as(life, sqsbalancer_core::Status::Active);
    }

    /// Peer `life` heartbeats with `status` (its counter moves on).
    pub fn beat_as(&mut self, life: &Owner, status: sqsbalancer_core::Status) {
        let key = super::table::layout().instance_key(&life.id);
        let counter = match self.table.get(&key).and_then(|i| i.get(table::HEARTBEAT)) {
            Some(Value::N(n)) => n.parse::<u64>().expect("a counter") + 1,
            _ => 1,
        };
        let w = Write::Heartbeat {
            owner: life.clone(),
            counter,
            status,
            loads: None,
        };
        assert!(
            matches!(self.apply(&w), Outcome::Applied(_)),
            "{life:?} beats"
        );
    }

    /// The queues the node was told to start receiving, in order.
    pub fn started(&self) -> Vec<QueueId> {
        self.commands
            .iter()
            .filter_map(|c| match c {
                Effect::StartReceiving { queue, .. } => Some(queue.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The write `e` carries.
pub fn write_of(e: &Effect) -> Write {
    match e {
        Effect::Write { write, .. } => write.clone(),
        other => panic!("not a write: {other:?}"),
    }
}

/// Whether `e` is a table read.
pub fn is_table_read(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Read {
            read: Read::Table,
            ..
        }
    )
}

/// Whether `e` is a heartbeat.
pub fn is_heartbeat(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Write {
            write: Write::Heartbeat { .. },
            ..
        }
    )
}

/// Whether `e` is the deregistration.
pub fn is_deregister(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Write {
            write: Write::Deregister { .. },
            ..
        }
    )
}

//! A single node's graceful shutdown, driven input by input: it deregisters only from a fresh
//! view, and it says so when peers reaped it first.

use sqsbalancer_core::{
    Config, Effect, Input, InstanceId, InstanceRecord, Millis, Node, OpId, Outcome, Phase, Read,
    Reply, Status, StopOutcome, Write,
};
use std::time::Duration;

/// One node and a table that holds only its own instance record.
struct Solo {
    node: Node,
    now: Millis,
    /// Calls issued and not answered yet.
    open: Vec<Effect>,
    phases: Vec<Phase>,
}

impl Solo {
    fn running() -> Solo {
        let mut cfg = Config::new("app", "table");
        cfg.instance_id = Some("solo".into());
        let node = Node::new(cfg, Millis::ZERO).expect("valid config");
        let mut solo = Solo {
            node,
            now: Millis::ZERO,
            open: Vec::new(),
            phases: Vec::new(),
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

    fn input(&mut self, input: Input) {
        self.node.handle(self.now, input);
        while let Some(e) = self.node.poll_effect() {
            match e {
                Effect::Phase(p) => self.phases.push(p),
                Effect::Write { .. } | Effect::Read { .. } | Effect::ListQueues { .. } => {
                    self.open.push(e)
                }
                _ => {}
            }
        }
    }

    fn tick(&mut self) {
        self.now = self
            .node
            .poll_timeout()
            .expect("a running node has a timeout");
        self.input(Input::Tick);
    }

    fn record(&self) -> InstanceRecord {
        InstanceRecord {
            id: InstanceId::new("solo").expect("valid id"),
            incarnation: 1,
            heartbeat: 1,
            status: Status::Active,
            capacity: 1,
            inbox: 0,
            ended: 0,
        }
    }

    /// What a healthy table answers to `e`.
    fn reply(&self, e: &Effect) -> Reply {
        match e {
            Effect::Write {
                write: Write::Register { .. },
                ..
            } => Reply::Registered { incarnation: 1 },
            Effect::Read {
                read: Read::Members,
                ..
            } => Reply::Members(vec![self.record()]),
            Effect::Read {
                read: Read::Table, ..
            } => Reply::Table {
                instances: vec![self.record()],
                queues: Vec::new(),
            },
            Effect::ListQueues { .. } => Reply::Queues(Vec::new()),
            _ => Reply::Done,
        }
    }

    fn answer(&mut self, e: &Effect, outcome: Outcome) {
        let id: OpId = match e {
            Effect::Write { id, .. } | Effect::Read { id, .. } | Effect::ListQueues { id, .. } => {
                *id
            }
            other => panic!("not a call: {other:?}"),
        };
        self.input(Input::Completed { id, outcome });
    }

    fn answer_all(&mut self) {
        while !self.open.is_empty() {
            let e = self.open.remove(0);
            let reply = self.reply(&e);
            self.answer(&e, Outcome::Applied(reply));
        }
    }

    /// Takes the first open call matching `f`.
    fn take(&mut self, f: impl Fn(&Effect) -> bool) -> Option<Effect> {
        let at = self.open.iter().position(f)?;
        Some(self.open.remove(at))
    }

    fn deregister_sent(&self) -> bool {
        self.open.iter().any(|e| {
            matches!(
                e,
                Effect::Write {
                    write: Write::Deregister { .. },
                    ..
                }
            )
        })
    }
}

fn is_table_read(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Read {
            read: Read::Table,
            ..
        }
    )
}

fn is_heartbeat(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Write {
            write: Write::Heartbeat { .. },
            ..
        }
    )
}

#[test]
fn a_failed_final_read_is_retried_before_deregistering() {
    let mut solo = Solo::running();
    solo.input(Input::Shutdown);
    solo.input(Input::DrainFinished);
    assert_eq!(solo.node.phase(), Phase::Releasing);
    let read = solo.take(is_table_read).expect("shutdown reads the table");
    solo.answer(&read, Outcome::Unknown);
    solo.answer_all();
    assert!(
        !solo.deregister_sent() && solo.node.phase() == Phase::Releasing,
        "deregistered without a fresh view"
    );
    // Retried at the next heartbeat tick (an earlier timer, such as reconciliation, may
    // come first).
    let mut retry = None;
    for _ in 0..3 {
        solo.tick();
        retry = solo.take(is_table_read);
        if retry.is_some() {
            break;
        }
        assert!(!solo.deregister_sent(), "deregistered without a fresh view");
    }
    let retry = retry.expect("the failed read is retried");
    assert!(!solo.deregister_sent());
    let reply = solo.reply(&retry);
    solo.answer(&retry, Outcome::Applied(reply));
    assert!(
        solo.deregister_sent(),
        "a fresh empty view lets it deregister"
    );
    solo.answer_all();
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::Clean
        })
    );
}

#[test]
fn a_stop_whose_life_was_reaped_says_so() {
    let mut solo = Solo::running();
    solo.input(Input::Shutdown);
    solo.input(Input::DrainFinished);
    let heartbeat = solo
        .take(is_heartbeat)
        .expect("shutdown publishes Draining");
    solo.answer(&heartbeat, Outcome::Rejected);
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::LifeLost
        })
    );
    assert!(!solo.deregister_sent(), "a reaped life has nothing to end");
}

#[test]
fn a_stop_past_its_timeout_says_so() {
    let mut solo = Solo::running();
    solo.input(Input::Shutdown);
    // The runtime never reports its handlers finished.
    solo.now = solo.now + Duration::from_secs(3_600);
    solo.input(Input::Tick);
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::TimedOut
        })
    );
}

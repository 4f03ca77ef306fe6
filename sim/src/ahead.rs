//! Handling read replies ahead of their turn, on a second thread, with the same outcome.
//!
//! Most of a large fleet's simulation is its nodes handling the replies of reads (merging a
//! table of 100,000 records, computing targets over it). A node's [`Node::handle`] depends only
//! on that node and the input, so a reply due within [`AHEAD_MS`] can be handled on a helper
//! thread while the world goes on with the events before it, provided none of them concerns its
//! node. At the reply's turn the world takes the node back and applies its effects then, in
//! order, so every effect, random draw and check happens exactly as if handled in turn, and
//! the report is the same byte for byte (`tests/ahead.rs`).
//!
//! Why nothing before the reply can concern the node: the events already scheduled before it
//! are checked (none names its slot, none may touch any slot), and an event scheduled later by
//! another slot's or a service's event crosses the simulated network, [`BASE_LATENCY_MS`] at
//! least, so it comes after the reply. [`Ahead::check_push`] enforces that with a panic, so a
//! future change that breaks it fails every run that would diverge, rather than any output.

use crate::world::BASE_LATENCY_MS;
use sqsbalancer_core::{Input, Node, time::Millis};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// How far past the current event a reply may be handled ahead, ms: no event scheduled from
/// now on by anything but the reply's own slot can fall before it.
pub(crate) const AHEAD_MS: u64 = BASE_LATENCY_MS;

/// An event's place in the world's order: its time, then the order it was scheduled in.
pub(crate) type Key = (u64, u64);

/// Which slots an event may concern: read their node, change their state, or schedule events
/// for them at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Concerns {
    /// This slot alone.
    Slot(usize),
    /// Any slot (faults, the schedule, the calm, samples).
    All,
    /// No slot: the services' own events, which reach a slot only across the network.
    Neither,
}

/// A node's handling of a reply, sent to the helper.
struct Job {
    node: Node,
    local: Millis,
    input: Input,
}

/// The helper thread and what the world's order needs to know to use it.
pub(crate) struct Ahead {
    /// Where jobs go (dropped first, which ends the helper).
    jobs: Option<Sender<Job>>,
    /// Where handled nodes come back.
    done: Receiver<Node>,
    /// The helper, joined when the world is dropped.
    helper: Option<JoinHandle<()>>,
    /// The slot whose node is away, and the key of the reply it handles: one at a time.
    away: Option<(usize, Key)>,
    /// The keys of the scheduled events that concern each slot.
    pending: Vec<BTreeSet<Key>>,
    /// The keys of the scheduled events that may concern any slot.
    all: BTreeSet<Key>,
    /// The scheduled replies that can be handled ahead, with their slot, life and input.
    replies: BTreeMap<Key, (usize, u64, Input)>,
    /// How many replies were handled ahead.
    pub sent: u64,
}

impl Ahead {
    /// Starts the helper thread.
    pub fn start() -> Ahead {
        let (jobs, inbox) = channel::<Job>();
        let (outbox, done) = channel();
        let helper = std::thread::Builder::new()
            .name("sim-ahead".into())
            .spawn(move || {
                for mut job in inbox {
                    job.node.handle(job.local, job.input);
                    if outbox.send(job.node).is_err() {
                        return;
                    }
                }
            })
            .expect("a thread starts");
        Ahead {
            jobs: Some(jobs),
            done,
            helper: Some(helper),
            away: None,
            pending: Vec::new(),
            all: BTreeSet::new(),
            replies: BTreeMap::new(),
            sent: 0,
        }
    }

    /// Notes an event scheduled at `key`. Panics if it concerns the node away and falls
    /// before its reply: handling that reply ahead would then have changed the outcome.
    pub fn scheduled(&mut self, key: Key, concerns: Concerns) {
        if let Some((slot, at)) = self.away {
            let concerned = matches!(concerns, Concerns::All)
                || matches!(concerns, Concerns::Slot(i) if i == slot);
            assert!(
                key > at || !concerned,
                "an event at {key:?} concerning {concerns:?} came before the reply at {at:?} \
                 that slot {slot} handles ahead"
            );
        }
        match concerns {
            Concerns::Slot(i) => {
                if self.pending.len() <= i {
                    self.pending.resize_with(i + 1, BTreeSet::new);
                }
                self.pending[i].insert(key);
            }
            Concerns::All => {
                self.all.insert(key);
            }
            Concerns::Neither => {}
        }
    }

    /// Keeps the input of a reply scheduled at `key` until its turn.
    pub fn keep(&mut self, key: Key, slot: usize, life: u64, input: Input) {
        self.replies.insert(key, (slot, life, input));
    }

    /// The event at `key` has its turn.
    pub fn taken(&mut self, key: Key, concerns: Concerns) {
        match concerns {
            Concerns::Slot(i) => {
                self.pending[i].remove(&key);
            }
            Concerns::All => {
                self.all.remove(&key);
            }
            Concerns::Neither => {}
        }
    }

    /// The input of the reply at `key`, at its turn, unless it was handled ahead.
    pub fn take_reply(&mut self, key: Key) -> Option<(usize, u64, Input)> {
        self.replies.remove(&key)
    }

    /// Whether a node is away.
    pub fn busy(&self) -> bool {
        self.away.is_some()
    }

    /// Whether the event at `key` is the reply the node of `slot` handles ahead.
    pub fn is_away(&self, slot: usize, key: Key) -> bool {
        self.away == Some((slot, key))
    }

    /// The first reply after `next`, the event whose turn it is, and due by [`AHEAD_MS`]
    /// after it, that nothing scheduled before it concerns (`next` included), and whose slot
    /// `ready` accepts (its node is up, in that life, and not paused then).
    pub fn next_ready(
        &self,
        next: Key,
        ready: impl Fn(usize, u64, u64) -> bool,
    ) -> Option<(Key, usize)> {
        use std::ops::Bound::{Excluded, Excluded as Before};
        let first_all = self.all.first().copied();
        let due = (self.replies).range((Excluded(next), Before((next.0 + AHEAD_MS + 1, 0))));
        due.take_while(|(key, _)| first_all.is_none_or(|a| **key < a))
            .find(|(key, (slot, life, _))| {
                self.pending[*slot].first() == Some(*key) && ready(*slot, key.0, *life)
            })
            .map(|(key, (slot, _, _))| (*key, *slot))
    }

    /// Sends `node` to handle the reply at `key` for `slot`, at local time `local`.
    pub fn send(&mut self, key: Key, slot: usize, node: Node, local: Millis) {
        let (_, _, input) = self.replies.remove(&key).expect("a kept reply");
        let jobs = self.jobs.as_ref().expect("the helper runs");
        jobs.send(Job { node, local, input })
            .expect("the helper takes jobs");
        self.away = Some((slot, key));
        self.sent += 1;
    }

    /// Waits for the node away, and returns it with its slot.
    pub fn wait(&mut self) -> Option<(usize, Node)> {
        let (slot, _) = self.away.take()?;
        let node = self.done.recv().expect("the helper returns the node");
        Some((slot, node))
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(helper) = self.helper.take() {
            // A panic on the helper was a node's, and reached the world at `wait` already.
            let _ = helper.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqsbalancer_core::{OpId, Outcome, Reply};

    fn reply() -> Input {
        Input::Completed {
            id: OpId(1),
            outcome: Outcome::Applied(Reply::Done),
        }
    }

    fn node() -> Node {
        let mut cfg = crate::world::config();
        cfg.instance_id = Some("node-0".into());
        Node::new(cfg, Millis(0)).expect("a valid config")
    }

    /// An `Ahead` with a reply for slot `slot` scheduled at `key`.
    fn with_reply(slot: usize, key: Key) -> Ahead {
        let mut a = Ahead::start();
        a.scheduled(key, Concerns::Slot(slot));
        a.keep(key, slot, 1, reply());
        a
    }

    const UP: fn(usize, u64, u64) -> bool = |_, _, _| true;

    #[test]
    fn a_reply_is_ready_only_within_the_window_after_the_event_whose_turn_it_is() {
        let a = with_reply(3, (100 + AHEAD_MS, 9));
        assert_eq!(a.next_ready((100, 1), UP), Some(((100 + AHEAD_MS, 9), 3)));
        assert_eq!(a.next_ready((99, 1), UP), None, "beyond the window");
        assert_eq!(a.next_ready((100 + AHEAD_MS, 9), UP), None, "its own turn");
        assert_eq!(
            a.next_ready((100, 1), |_, _, _| false),
            None,
            "its slot is not ready"
        );
    }

    #[test]
    fn a_reply_waits_for_any_earlier_event_of_its_slot_or_of_every_slot() {
        let mut a = with_reply(3, (101, 9));
        a.scheduled((100, 5), Concerns::Neither);
        a.scheduled((100, 6), Concerns::Slot(4));
        assert!(
            a.next_ready((100, 1), UP).is_some(),
            "others' events do not hold it"
        );
        a.scheduled((100, 7), Concerns::Slot(3));
        assert_eq!(
            a.next_ready((100, 1), UP),
            None,
            "an earlier event of its slot"
        );
        a.taken((100, 7), Concerns::Slot(3));
        a.scheduled((101, 8), Concerns::All);
        assert_eq!(
            a.next_ready((100, 1), UP),
            None,
            "an earlier event of every slot"
        );
        a.taken((101, 8), Concerns::All);
        assert!(a.next_ready((100, 1), UP).is_some());
    }

    #[test]
    fn the_node_comes_back_from_the_helper_having_handled_its_reply() {
        let mut a = with_reply(3, (101, 9));
        let (key, slot) = a.next_ready((100, 1), UP).expect("ready");
        a.send(key, slot, node(), Millis(101));
        assert!(a.busy() && a.is_away(3, (101, 9)));
        assert!(a.take_reply(key).is_none(), "the helper has its input");
        let (slot, _node) = a.wait().expect("a node was away");
        assert_eq!(slot, 3);
        assert!(!a.busy());
    }

    #[test]
    #[should_panic(expected = "came before the reply")]
    fn an_event_of_the_away_slot_scheduled_before_its_reply_is_refused() {
        let mut a = with_reply(3, (101, 9));
        a.send((101, 9), 3, node(), Millis(101));
        a.scheduled((101, 10), Concerns::Slot(4));
        a.scheduled((101, 11), Concerns::Slot(3));
        a.scheduled((100, 12), Concerns::Neither);
        a.scheduled((100, 13), Concerns::Slot(3));
    }
}

//! The safety invariants checked as events happen: exclusive receive, receive within the
//! fence, delete after success and epoch growth, plus the message ledger that no-loss counts.
//!
//! The checker sees the fake's side of every call (when a receive is really in flight at SQS,
//! which delete really removed a message), not what the instances believe; every level feeds
//! it from its fake.

use super::invariant::{Invariant, Violation};
use crate::lookup::Lookup;
use sqsbalancer_core::QueueId;
use std::collections::{BTreeMap, BTreeSet};

/// Who made a call: an instance slot and which life of the process in it.
pub type Who = (usize, u64);

#[derive(Clone, Debug)]
struct Active {
    who: Who,
    call: u64,
    /// The call outlives its issuer's fence because a process pause delayed it.
    paused_past_fence: bool,
    /// Its issuer's fence when it was sent, ms.
    fence: u64,
}

#[derive(Clone, Debug, Default)]
struct MsgState {
    queue: Option<QueueId>,
    successes: BTreeSet<String>,
    deleted: bool,
    handled_ok: u32,
}

/// The invariant checker of one run.
#[derive(Default)]
pub struct Checker {
    /// The receives in flight at SQS, by queue. A queue's list stays when it empties: its
    /// poller sends the next receive at once, and taking the entry out and putting it back
    /// for each long poll was a quarter of the checker's time in a steady fleet.
    active: Lookup<QueueId, Vec<Active>>,
    messages: BTreeMap<String, MsgState>,
    /// Overlaps that happened only because a process pause outlived the fence margin: the
    /// known limit of leases without server-side fencing, reported apart.
    pub excused_overlaps: u64,
    /// Messages handled successfully more than once (at-least-once delivery at work).
    pub duplicates: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Violations seen; the run stops at the first.
    pub violations: Vec<Violation>,
    /// The current event index, set by the simulator.
    pub event: u64,
    /// The current time, set by the simulator.
    pub now: u64,
}

impl Checker {
    /// Records a violation.
    pub fn violate(&mut self, invariant: Invariant, detail: String) {
        self.violations.push(Violation {
            event: self.event,
            t: self.now,
            invariant,
            detail,
        });
    }

    /// A receive call reached SQS and is in flight there; its issuer's fence was `fence` ms
    /// when it sent it.
    pub fn receive_start(
        &mut self,
        queue: &QueueId,
        who: Who,
        call: u64,
        paused_past_fence: bool,
        fence: u64,
    ) {
        let list = match self.active.get_mut(queue) {
            Some(list) => list,
            None => self.active.entry(queue.clone()).or_default(),
        };
        let other = list.iter().find(|a| a.who != who).cloned();
        list.push(Active {
            who,
            call,
            paused_past_fence,
            fence,
        });
        if let Some(o) = other {
            if o.paused_past_fence || paused_past_fence {
                self.excused_overlaps += 1;
            } else {
                self.violate(
                    Invariant::Exclusive,
                    format!(
                        "{queue}: receive of slot {} life {} overlaps one of slot {} life {}",
                        who.0, who.1, o.who.0, o.who.1
                    ),
                );
            }
        }
    }

    /// A receive call returned at SQS (now, `self.now`); it must not have been in flight at
    /// its issuer's fence.
    pub fn receive_end(&mut self, queue: &QueueId, call: u64) {
        let Some(list) = self.active.get_mut(queue) else {
            return;
        };
        let ended: Vec<Active> = list.iter().filter(|a| a.call == call).cloned().collect();
        list.retain(|a| a.call != call);
        for a in ended {
            if self.now <= a.fence {
                continue;
            }
            if a.paused_past_fence {
                self.excused_overlaps += 1;
                continue;
            }
            self.violate(
                Invariant::Fenced,
                format!(
                    "{queue}: receive of slot {} life {} in flight until {} ms, past its fence at {} ms",
                    a.who.0, a.who.1, self.now, a.fence
                ),
            );
        }
    }

    /// A message was sent.
    pub fn sent(&mut self, id: &str, queue: &QueueId) {
        self.sent += 1;
        self.messages.insert(
            id.to_owned(),
            MsgState {
                queue: Some(queue.clone()),
                ..MsgState::default()
            },
        );
    }

    /// A handler finished with a message received under `receipt`.
    pub fn handled(&mut self, id: &str, receipt: &str, ok: bool) {
        if !ok {
            return;
        }
        let m = self.messages.entry(id.to_owned()).or_default();
        m.handled_ok += 1;
        if m.handled_ok == 2 {
            self.duplicates += 1;
        }
        m.successes.insert(receipt.to_owned());
    }

    /// SQS accepted a delete of message `id` with `receipt`.
    pub fn deleted(&mut self, id: &str, receipt: &str) {
        let m = self.messages.entry(id.to_owned()).or_default();
        let ok = m.successes.contains(receipt);
        if !m.deleted {
            m.deleted = true;
            self.deleted += 1;
        }
        if !ok {
            self.violate(
                Invariant::DeleteAfterSuccess,
                format!(
                    "message {id} deleted with receipt {receipt} whose handler never succeeded"
                ),
            );
        }
    }

    /// A write changed a queue record's epoch from `before` (`None`: created) to `after`.
    pub fn epoch_written(&mut self, queue: &str, before: Option<u64>, after: u64) {
        if before.is_some_and(|b| after <= b) {
            self.violate(
                Invariant::EpochGrows,
                format!(
                    "queue record {queue}: epoch went from {} to {after}",
                    before.unwrap_or(0)
                ),
            );
        }
    }

    /// At the end: every message of a queue that still exists must have been deleted.
    pub fn check_no_loss(&mut self, exists: impl Fn(&QueueId) -> bool) {
        let lost: Vec<String> = self
            .messages
            .iter()
            .filter(|(_, m)| !m.deleted && m.queue.as_ref().is_some_and(&exists))
            .map(|(id, m)| format!("{id} on {}", m.queue.as_ref().map_or("?", |q| q.as_str())))
            .collect();
        if !lost.is_empty() {
            let n = lost.len();
            let shown: Vec<String> = lost.into_iter().take(5).collect();
            self.violate(
                Invariant::NoLoss,
                format!("{n} messages never deleted, e.g. {}", shown.join(", ")),
            );
        }
    }

    /// Messages sent to queues that still exist and not yet deleted.
    pub fn outstanding(&self, exists: impl Fn(&QueueId) -> bool) -> usize {
        self.messages
            .values()
            .filter(|m| !m.deleted && m.queue.as_ref().is_some_and(&exists))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> QueueId {
        QueueId::new("https://x/1/q").unwrap()
    }

    #[test]
    fn overlapping_receives_of_two_lives_are_caught_and_pauses_excused() {
        let mut c = Checker::default();
        let f = u64::MAX;
        c.receive_start(&q(), (0, 1), 1, false, f);
        c.receive_start(&q(), (0, 1), 2, false, f);
        assert!(
            c.violations.is_empty(),
            "one instance may poll with two pollers"
        );
        c.receive_start(&q(), (1, 1), 3, true, f);
        assert_eq!((c.violations.len(), c.excused_overlaps), (0, 1));
        c.receive_end(&q(), 3);
        c.receive_start(&q(), (0, 2), 4, false, f);
        assert_eq!(c.violations[0].invariant, Invariant::Exclusive);
        c.receive_end(&q(), 1);
        c.receive_end(&q(), 2);
        c.receive_end(&q(), 4);
        c.receive_start(&q(), (2, 1), 5, false, f);
        assert_eq!(c.violations.len(), 1, "after the others ended, no overlap");
    }

    #[test]
    fn a_receive_in_flight_past_its_fence_is_reported_apart() {
        let mut c = Checker {
            now: 1_000,
            ..Checker::default()
        };
        c.receive_start(&q(), (0, 1), 1, false, 5_000);
        c.receive_start(&q(), (1, 1), 2, true, 5_000);
        c.now = 5_000;
        c.receive_end(&q(), 1);
        assert!(c.violations.is_empty(), "ended at its fence");
        c.receive_start(&q(), (0, 1), 3, false, 5_000);
        c.now = 5_001;
        c.receive_end(&q(), 2);
        // Two overlaps with the paused receive, then its end past its fence: all excused.
        assert_eq!(c.excused_overlaps, 3, "a pause is the known limit");
        c.receive_end(&q(), 3);
        assert_eq!(c.violations.len(), 1);
        assert_eq!(c.violations[0].invariant, Invariant::Fenced);
    }

    #[test]
    fn deletes_need_a_success_and_every_message_needs_a_delete() {
        let mut c = Checker::default();
        c.sent("m1", &q());
        c.sent("m2", &q());
        c.handled("m1", "r1", false);
        c.handled("m1", "r2", true);
        c.deleted("m1", "r2");
        assert!(c.violations.is_empty());
        c.deleted("m2", "r9");
        assert_eq!(c.violations[0].invariant, Invariant::DeleteAfterSuccess);
        c.sent("m3", &q());
        c.check_no_loss(|_| false);
        assert_eq!(
            c.violations.len(),
            1,
            "messages of deleted queues are not lost"
        );
        c.check_no_loss(|_| true);
        assert_eq!(c.violations[1].invariant, Invariant::NoLoss);
        c.epoch_written("q", Some(3), 3);
        assert_eq!(c.violations[2].invariant, Invariant::EpochGrows);
    }
}

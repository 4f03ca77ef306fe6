//! What a node does about one queue, as a pure function of what it knows (docs/design.md §5,
//! §6): start or stop receiving, hand the queue off, claim it, or wait.

use crate::effect::QueueRecord;
use crate::ids::{InstanceId, Owner};
use crate::lease::{AfterStop, Held};
use crate::membership::Liveness;

/// What the node knows of one queue when it decides about it.
#[derive(Clone, Debug)]
pub(super) struct Facts<'a> {
    /// The queue's record as this node last saw it; `None` once it is gone from the table.
    pub record: Option<&'a QueueRecord>,
    /// Whether this node's pollers run on it, or are stopping.
    pub held: Option<Held>,
    /// A write to it is unsettled: nothing is decided until it settles.
    pub busy: bool,
    /// The node is in `Phase::Running` (it takes and receives queues).
    pub running: bool,
    /// This node's current life.
    pub me: &'a Owner,
    /// The instance the target gives the queue to.
    pub wanted: Option<&'a InstanceId>,
    /// The current life of `wanted`, as far as this node knows.
    pub wanted_life: Option<Owner>,
    /// The queue passes this node's filter.
    pub allowed: bool,
    /// The rebalance delay since the last membership change has passed: queues may move.
    pub may_move: bool,
}

/// The one thing to do about a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Nothing, for now.
    Wait,
    /// Stop the pollers, then do `then`.
    Stop(AfterStop),
    /// Start the pollers at `epoch`; `defer` when the queue is targeted elsewhere but may not
    /// move yet.
    Start {
        /// The epoch the record is owned at.
        epoch: u64,
        /// Hand it over once moves are allowed.
        defer: bool,
    },
    /// Hand the queue, not being received, to `to` (nobody when `None`).
    HandOff {
        /// The epoch the hand-off expects.
        epoch: u64,
        /// The life it goes to.
        to: Option<Owner>,
    },
    /// A write of this life moved the record's epoch: receive on at the new one.
    Adopt {
        /// The record's epoch.
        epoch: u64,
    },
    /// Keep receiving; hand it over once moves are allowed.
    Defer,
    /// Claim the queue from its dead (or absent) owner.
    Claim {
        /// The owner the claim expects.
        expect_owner: Option<Owner>,
        /// The epoch the claim expects.
        expect_epoch: u64,
    },
    /// Targeted here, but a live peer holds it: wait for its hand-off.
    AwaitHandOff,
}

/// Decides one queue. `liveness` is asked only about the owner of a queue this node would
/// claim, and only then (asking starts a ghost timer for a life never seen).
pub(super) fn decide(f: &Facts<'_>, liveness: impl FnOnce(&Owner) -> Liveness) -> Decision {
    let Some(record) = f.record else {
        // The record is gone from the table: nobody may receive from it.
        return match f.held {
            Some(_) => Decision::Stop(AfterStop::Forget),
            None => Decision::Wait,
        };
    };
    if f.busy {
        return Decision::Wait;
    }
    let named_here = record.owner.as_ref() == Some(f.me) && !record.retired;
    if named_here && !f.allowed {
        return outside_filter(f, record.epoch);
    }
    if named_here {
        return named_here_decision(f, record.epoch);
    }
    if f.held.is_some() {
        return Decision::Stop(AfterStop::Forget);
    }
    let mine_target = f.wanted == Some(&f.me.id) && f.allowed;
    if !f.running || !mine_target || record.retired {
        return Decision::Wait;
    }
    let orphan = match &record.owner {
        None => true,
        Some(o) => liveness(o) == Liveness::Dead,
    };
    if orphan {
        Decision::Claim {
            expect_owner: record.owner.clone(),
            expect_epoch: record.epoch,
        }
    } else {
        Decision::AwaitHandOff
    }
}

/// A queue named here that this node's filter does not take (peers with another filter
/// compute the same target during a configuration rollout): pass it on, never receive it.
fn outside_filter(f: &Facts<'_>, epoch: u64) -> Decision {
    match f.held {
        None => Decision::HandOff {
            epoch,
            to: f.wanted_life.clone().filter(|_| f.wanted != Some(&f.me.id)),
        },
        Some(Held::Receiving { .. }) => Decision::Stop(AfterStop::HandOff),
        Some(Held::Stopping { .. }) => Decision::Wait,
    }
}

/// A queue named here, in the filter: receive it, or pass it on when the target says so.
fn named_here_decision(f: &Facts<'_>, epoch: u64) -> Decision {
    let elsewhere = f.wanted.is_some_and(|w| *w != f.me.id);
    match f.held {
        // Named here but targeted elsewhere (a hand-off that failed, say): pass it on
        // without receiving, or receive it until moves are allowed.
        None if f.running && elsewhere && f.may_move => Decision::HandOff {
            epoch,
            to: f.wanted_life.clone(),
        },
        None if f.running => Decision::Start {
            epoch,
            defer: elsewhere,
        },
        None => Decision::HandOff {
            epoch,
            to: f.wanted_life.clone(),
        },
        // Only a write naming this life can change the record; adopt its epoch.
        Some(Held::Receiving { epoch: held }) if held != epoch => Decision::Adopt { epoch },
        Some(Held::Receiving { .. }) if f.running && elsewhere && f.may_move => {
            Decision::Stop(AfterStop::HandOff)
        }
        Some(Held::Receiving { .. }) if f.running && elsewhere => Decision::Defer,
        Some(_) => Decision::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::QueueId;

    fn life(id: &str, incarnation: u64) -> Owner {
        Owner {
            id: InstanceId::new(id).unwrap(),
            incarnation,
        }
    }

    fn record(owner: Option<Owner>, epoch: u64, retired: bool) -> QueueRecord {
        QueueRecord {
            queue: QueueId::new("q").unwrap(),
            owner,
            epoch,
            retired,
        }
    }

    /// Decides with `me` = a/1 running, the queue allowed, moves allowed, no write unsettled.
    fn decide_with(
        record: Option<&QueueRecord>,
        held: Option<Held>,
        wanted: Option<&Owner>,
        edit: impl FnOnce(&mut Facts<'_>),
        owner_liveness: Liveness,
    ) -> Decision {
        let me = life("a", 1);
        let mut f = Facts {
            record,
            held,
            busy: false,
            running: true,
            me: &me,
            wanted: wanted.map(|w| &w.id),
            wanted_life: wanted.cloned(),
            allowed: true,
            may_move: true,
        };
        edit(&mut f);
        decide(&f, |_| owner_liveness)
    }

    const RECEIVING: Option<Held> = Some(Held::Receiving { epoch: 3 });

    #[test]
    fn a_queue_gone_from_the_table_is_never_received() {
        let d = decide_with(None, RECEIVING, None, |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::Stop(AfterStop::Forget));
        let d = decide_with(None, None, None, |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::Wait);
    }

    #[test]
    fn nothing_is_decided_for_a_busy_queue() {
        let r = record(None, 3, false);
        let me = life("a", 1);
        let d = decide_with(Some(&r), None, Some(&me), |f| f.busy = true, Liveness::Dead);
        assert_eq!(d, Decision::Wait);
    }

    #[test]
    fn a_queue_named_and_targeted_here_is_received_at_its_epoch() {
        let me = life("a", 1);
        let r = record(Some(me.clone()), 3, false);
        let d = decide_with(Some(&r), None, Some(&me), |_| {}, Liveness::Alive);
        assert_eq!(
            d,
            Decision::Start {
                epoch: 3,
                defer: false
            }
        );
        let d = decide_with(Some(&r), RECEIVING, Some(&me), |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::Wait);
        let moved = Some(Held::Receiving { epoch: 2 });
        let d = decide_with(Some(&r), moved, Some(&me), |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::Adopt { epoch: 3 });
    }

    #[test]
    fn a_queue_targeted_elsewhere_moves_only_once_moves_are_allowed() {
        let (me, b) = (life("a", 1), life("b", 4));
        let r = record(Some(me), 3, false);
        let wait = |f: &mut Facts<'_>| f.may_move = false;
        let d = decide_with(Some(&r), RECEIVING, Some(&b), wait, Liveness::Alive);
        assert_eq!(d, Decision::Defer);
        let d = decide_with(Some(&r), None, Some(&b), wait, Liveness::Alive);
        assert_eq!(
            d,
            Decision::Start {
                epoch: 3,
                defer: true
            }
        );
        let d = decide_with(Some(&r), RECEIVING, Some(&b), |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::Stop(AfterStop::HandOff));
        let d = decide_with(Some(&r), None, Some(&b), |_| {}, Liveness::Alive);
        assert_eq!(
            d,
            Decision::HandOff {
                epoch: 3,
                to: Some(b)
            }
        );
    }

    #[test]
    fn a_node_that_is_not_running_hands_off_what_it_is_named_for() {
        let (me, b) = (life("a", 1), life("b", 4));
        let r = record(Some(me), 3, false);
        let stopping = |f: &mut Facts<'_>| f.running = false;
        let d = decide_with(Some(&r), None, Some(&b), stopping, Liveness::Alive);
        assert_eq!(
            d,
            Decision::HandOff {
                epoch: 3,
                to: Some(b.clone())
            }
        );
        let d = decide_with(Some(&r), RECEIVING, Some(&b), stopping, Liveness::Alive);
        assert_eq!(d, Decision::Wait);
    }

    #[test]
    fn a_queue_outside_the_filter_is_passed_on_and_never_to_this_node() {
        let me = life("a", 1);
        let r = record(Some(me.clone()), 3, false);
        let outside = |f: &mut Facts<'_>| f.allowed = false;
        let d = decide_with(Some(&r), None, Some(&me), outside, Liveness::Alive);
        assert_eq!(d, Decision::HandOff { epoch: 3, to: None });
        let d = decide_with(Some(&r), RECEIVING, Some(&me), outside, Liveness::Alive);
        assert_eq!(d, Decision::Stop(AfterStop::HandOff));
        let stopping = Some(Held::Stopping {
            epoch: 3,
            then: AfterStop::HandOff,
        });
        let d = decide_with(Some(&r), stopping, Some(&me), outside, Liveness::Alive);
        assert_eq!(d, Decision::Wait);
        let free = record(None, 3, false);
        let d = decide_with(Some(&free), None, Some(&me), outside, Liveness::Dead);
        assert_eq!(d, Decision::Wait);
    }

    #[test]
    fn a_queue_held_but_named_elsewhere_is_stopped_and_forgotten() {
        let b = life("b", 4);
        let r = record(Some(b.clone()), 4, false);
        let d = decide_with(Some(&r), RECEIVING, Some(&b), |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::Stop(AfterStop::Forget));
        let retired = record(Some(life("a", 1)), 4, true);
        let d = decide_with(Some(&retired), RECEIVING, None, |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::Stop(AfterStop::Forget));
    }

    #[test]
    fn a_queue_targeted_here_is_claimed_only_from_a_dead_or_absent_owner() {
        let (me, b) = (life("a", 1), life("b", 4));
        let held_by_b = record(Some(b.clone()), 4, false);
        let d = decide_with(Some(&held_by_b), None, Some(&me), |_| {}, Liveness::Alive);
        assert_eq!(d, Decision::AwaitHandOff);
        let d = decide_with(Some(&held_by_b), None, Some(&me), |_| {}, Liveness::Expired);
        assert_eq!(d, Decision::AwaitHandOff);
        let d = decide_with(Some(&held_by_b), None, Some(&me), |_| {}, Liveness::Dead);
        let claim = Decision::Claim {
            expect_owner: Some(b),
            expect_epoch: 4,
        };
        assert_eq!(d, claim);
        let free = record(None, 4, false);
        let d = decide_with(Some(&free), None, Some(&me), |_| {}, Liveness::Alive);
        let claim = Decision::Claim {
            expect_owner: None,
            expect_epoch: 4,
        };
        assert_eq!(d, claim);
    }

    #[test]
    fn nothing_is_claimed_while_not_running_when_retired_or_targeted_elsewhere() {
        let (me, b) = (life("a", 1), life("b", 4));
        let free = record(None, 4, false);
        let stopping = |f: &mut Facts<'_>| f.running = false;
        let d = decide_with(Some(&free), None, Some(&me), stopping, Liveness::Dead);
        assert_eq!(d, Decision::Wait);
        let retired = record(None, 4, true);
        let d = decide_with(Some(&retired), None, Some(&me), |_| {}, Liveness::Dead);
        assert_eq!(d, Decision::Wait);
        let d = decide_with(Some(&free), None, Some(&b), |_| {}, Liveness::Dead);
        assert_eq!(d, Decision::Wait);
    }

    #[test]
    fn liveness_is_asked_only_about_a_queue_this_node_would_claim() {
        let (me, b) = (life("a", 1), life("b", 4));
        let r = record(Some(b.clone()), 4, false);
        let f = Facts {
            record: Some(&r),
            held: None,
            busy: false,
            running: true,
            me: &me,
            wanted: Some(&b.id),
            wanted_life: Some(b.clone()),
            allowed: true,
            may_move: true,
        };
        let d = decide(&f, |_| {
            panic!("liveness asked about a queue targeted elsewhere")
        });
        assert_eq!(d, Decision::Wait);
    }
}

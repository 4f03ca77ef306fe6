//! Targets shared between nodes of one process that compute them from the same inputs.
//!
//! A target is a pure function of the members, the queues and each queue's holder, and a pass
//! over every queue. The simulator runs a whole fleet in one process, where most targets are
//! computed by one node after another from the same inputs: 58% of a rolling 300 × 30,000
//! fleet's, nearly all of them among the last four computed (docs/design.md §4.12). A node given
//! a [`SharedTargets`] looks its inputs up among the last few targets computed by any node that
//! shares it, and takes a copy of the one it finds. The inputs are compared in full, so a node
//! gets exactly the target it would have computed. A node in production has nobody to share
//! with and is given none.

use crate::assignment::{Assignment, Member};
use crate::ids::QueueId;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// How many of the latest targets are kept: in the rolling fleet above, 99% of the targets found
/// were among the last four.
const KEPT: usize = 8;

/// The latest targets computed by the nodes that share this, with what each was computed from.
#[derive(Default)]
pub struct SharedTargets {
    /// The kept targets, the most recently computed or found last.
    latest: Mutex<VecDeque<Computed>>,
}

/// What a target takes for each queue: its holder's index among the members, and (under load
/// balance; empty otherwise) its load.
pub(crate) type ByQueue<'a> = (&'a [u32], &'a [u64]);

/// One target and its inputs.
struct Computed {
    /// The members, normalized.
    members: Vec<Member>,
    /// The queues, sorted.
    queues: Arc<[QueueId]>,
    /// Each queue's holder, by index among `members`.
    holders: Vec<u32>,
    /// Each queue's load, under load balance (empty otherwise).
    loads: Vec<u64>,
    /// The target computed from them.
    target: Assignment,
}

impl Computed {
    /// Whether this was computed from exactly these inputs.
    fn from(&self, members: &[Member], queues: &Arc<[QueueId]>, by_queue: ByQueue<'_>) -> bool {
        self.holders == by_queue.0
            && self.loads == by_queue.1
            && self.members == members
            && (Arc::ptr_eq(&self.queues, queues) || self.queues == *queues)
    }
}

impl SharedTargets {
    /// Nothing shared yet.
    pub fn new() -> SharedTargets {
        SharedTargets::default()
    }

    /// The target for these inputs: a copy of one kept, or else `compute(members, queues)`, then
    /// kept. `compute` must be the pure function of the inputs that every sharer uses.
    pub(crate) fn get_or_compute(
        &self,
        members: Vec<Member>,
        queues: Arc<[QueueId]>,
        by_queue: ByQueue<'_>,
        compute: impl FnOnce(Vec<Member>, Arc<[QueueId]>) -> Assignment,
    ) -> Assignment {
        if let Some(found) = self.find(&members, &queues, by_queue) {
            // The caller's own list, which its view recognises without comparing.
            return found.with_queues(queues);
        }
        let target = compute(members.clone(), Arc::clone(&queues));
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if latest.len() == KEPT {
            latest.pop_front();
        }
        latest.push_back(Computed {
            members,
            queues,
            holders: by_queue.0.to_vec(),
            loads: by_queue.1.to_vec(),
            target: target.clone(),
        });
        target
    }

    /// A copy of the kept target computed from these inputs, moved to the back, if any.
    fn find(
        &self,
        members: &[Member],
        queues: &Arc<[QueueId]>,
        by_queue: ByQueue<'_>,
    ) -> Option<Assignment> {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let at = latest
            .iter()
            .rposition(|c| c.from(members, queues, by_queue))?;
        let found = latest.remove(at)?;
        let target = found.target.clone();
        latest.push_back(found);
        Some(target)
    }
}

impl fmt::Debug for SharedTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("SharedTargets")
            .field("kept", &latest.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::{NO_HOLDER, assign_sorted};
    use crate::hash::Rendezvous;
    use crate::ids::InstanceId;
    use proptest::prelude::*;
    use std::cell::Cell;

    fn members(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member::new(InstanceId::new(&format!("i-{i}")).unwrap(), 1))
            .collect()
    }

    /// `n` sorted queues, each a new allocation: equal to another call's, never the same `Arc`.
    fn queues(n: usize) -> Arc<[QueueId]> {
        (0..n)
            .map(|i| QueueId::new(&format!("q-{i:04}")).unwrap())
            .collect()
    }

    fn compute(holders: &[u32]) -> impl FnOnce(Vec<Member>, Arc<[QueueId]>) -> Assignment + '_ {
        move |members, queues| {
            let named = Arc::clone(&queues);
            let score = |rv: &Rendezvous, qi: u32| rv.score(named[qi as usize].as_str());
            assign_sorted(members, queues, holders, score)
        }
    }

    /// `shared.get_or_compute` with [`compute`], and whether it computed.
    fn get(
        shared: &SharedTargets,
        members: &[Member],
        queues: &Arc<[QueueId]>,
        holders: &[u32],
    ) -> (Assignment, bool) {
        let computed = Cell::new(false);
        let target = shared.get_or_compute(
            members.to_vec(),
            Arc::clone(queues),
            (holders, &[]),
            |m, q| {
                computed.set(true);
                compute(holders)(m, q)
            },
        );
        (target, computed.get())
    }

    #[test]
    fn equal_inputs_take_the_kept_target_and_others_compute_their_own() {
        let shared = SharedTargets::new();
        let (ms, holders) = (members(3), vec![0, 0, 1, NO_HOLDER, 2, 0]);
        let (first, computed) = get(&shared, &ms, &queues(6), &holders);
        assert!(computed);
        let mine = queues(6);
        let (again, computed) = get(&shared, &ms, &mine, &holders);
        assert!(
            !computed,
            "equal inputs in other allocations were computed again"
        );
        assert_eq!(again, first);
        assert!(
            Arc::ptr_eq(again.queues(), &mine),
            "not given the caller's own queues"
        );

        let moved = vec![0, 1, 1, NO_HOLDER, 2, 0];
        let (other, computed) = get(&shared, &ms, &queues(6), &moved);
        assert!(computed, "other holders were given a kept target");
        assert_eq!(other, compute(&moved)(ms.clone(), queues(6)));
        let (fewer, computed) = get(&shared, &ms[..2], &queues(6), &[0, 0, 1, 1, 0, 1]);
        assert!(computed, "other members were given a kept target");
        assert_eq!(fewer.members(), &ms[..2]);
    }

    #[test]
    fn only_the_latest_targets_are_kept_and_a_found_one_counts_as_latest() {
        let shared = SharedTargets::new();
        let ms = members(2);
        let qs = queues(KEPT + 1);
        let holders = |i: usize| -> Vec<u32> { (0..=KEPT).map(|q| u32::from(q < i)).collect() };
        for i in 0..KEPT {
            assert!(get(&shared, &ms, &qs, &holders(i)).1);
        }
        // Finding the oldest makes it the latest, so the next one computed drops the second.
        assert!(!get(&shared, &ms, &qs, &holders(0)).1);
        assert!(get(&shared, &ms, &qs, &holders(KEPT)).1);
        assert!(!get(&shared, &ms, &qs, &holders(0)).1);
        assert!(
            get(&shared, &ms, &qs, &holders(1)).1,
            "kept past {KEPT} targets"
        );
    }

    proptest! {
        /// Whatever order nodes ask in, each gets the target of its own inputs.
        #[test]
        fn a_shared_target_is_the_one_its_inputs_give(
            asks in prop::collection::vec(
                (1usize..5, prop::collection::vec(0u32..6, 12)), 1..40),
        ) {
            let shared = SharedTargets::new();
            let qs = queues(12);
            for (n, picks) in asks {
                let ms = members(n);
                let n = n as u32;
                let holders: Vec<u32> =
                    picks.iter().map(|&p| if p < n { p } else { NO_HOLDER }).collect();
                let (got, _) = get(&shared, &ms, &qs, &holders);
                prop_assert_eq!(got, compute(&holders)(ms.clone(), Arc::clone(&qs)));
            }
        }
    }
}

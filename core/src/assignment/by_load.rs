//! Assignment by queue load: each member gets the share of the fleet's load its capacity
//! weight entitles it to, rather than that share of the queue count (G14).
//!
//! [`assign_by_load`] is a pure function of (members, queues with their loads, current owners),
//! like [`super::assign`], and its result does not depend on input order. A queue weighs one
//! more than its load, since even an idle queue costs its owner a poller. The rules, in order:
//! 1. When every queue weighs the same, loads say nothing: the target is [`super::assign`]'s,
//!    floor or ceiling of each member's weighted share of the count.
//! 2. Member `i`'s target is `T_i = L·w_i/W` of the total weight `L`. While every member's load
//!    is within the band `T_i·(1 ± band)`, every member keeps all it holds: load noise moves
//!    nothing. Once one is outside (a member over its band holding more than one queue, or
//!    one under it), the fleet rebalances: each member over its target keeps its queues in
//!    descending weight (the first always) while they fit under `T_i`, and offers the rest.
//! 3. The offered queues and the orphans are dealt heaviest first, each to the first member
//!    clockwise from its hash on the ring [`super::assign`] deals over that has room for it
//!    under its target. An offered queue no member has room for stays with its holder; an
//!    orphan nobody has room for goes to the member it leaves least loaded for its weight.
//!
//! So a queue moves only from a member over its target to one it leaves at or under its own,
//! and each such move lowers the fleet's total excess over targets: with loads held still, a
//! fleet reaches a target that moves nothing within as many rebalances as it has queues
//! (the property tests check both).

use super::{
    Assignment, Member, NO_HOLDER, Rendezvous, assign_sorted, hash64, prepared, ring_points,
};
use crate::ids::{InstanceId, QueueId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The largest load counted: a larger one counts as this, so the sums of weights times
/// weights times thousandths stay within 128 bits.
pub const MAX_LOAD: u64 = u32::MAX as u64 - 1;

/// How far a member's load may stray from its target, in thousandths of the target, before
/// the fleet rebalances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Band {
    /// The band in thousandths, at most 1,000.
    permille: u32,
}

impl Band {
    /// A band of `percent` of the target either way; `None` above 100.
    pub fn percent(percent: u32) -> Option<Band> {
        (percent <= 100).then_some(Band {
            permille: percent * 10,
        })
    }

    /// The band in thousandths of the target.
    pub fn permille(self) -> u32 {
        self.permille
    }
}

/// Computes the target by load. See the module docs for the rules.
///
/// `loads` gives each queue's recent load in any unit the caller uses throughout (a queue it
/// does not list has load 0). Members are deduplicated as for [`super::assign`]; `current`
/// entries for queues not in `queues`, or naming a non-member, are ignored.
pub fn assign_by_load(
    members: &[Member],
    queues: &[QueueId],
    current: &BTreeMap<QueueId, InstanceId>,
    loads: &BTreeMap<QueueId, u64>,
    band: Band,
) -> Assignment {
    let (members, queues, holders) = prepared(members, queues, current);
    let weights: Vec<u64> = (queues.iter())
        .map(|q| loads.get(q).map_or(1, |&l| l.min(MAX_LOAD) + 1))
        .collect();
    let named = Arc::clone(&queues);
    let score = |rv: &Rendezvous, qi: u32| rv.score(named[qi as usize].as_str());
    if members.is_empty() || weights.windows(2).all(|w| w[0] == w[1]) {
        return assign_sorted(members, queues, &holders, score);
    }
    let mut fleet = Fleet::new(&members, &holders, &weights, band);
    let mut owners = vec![NO_HOLDER; queues.len()];
    let free = fleet.keep(&members, &holders, &weights, &mut owners, score);
    fleet.deal(&members, &queues, &weights, free, &mut owners);
    Assignment {
        members,
        queues,
        owners: owners.into(),
    }
}

/// The members' targets and loads as the deal goes, all scaled by the members' total weight
/// `W` so that a target `L·w_i/W` is a whole number.
struct Fleet {
    /// Each member's target, `L·w_i`.
    target: Vec<u128>,
    /// Each member's load so far (held, kept or dealt), times `W`.
    load: Vec<u128>,
    /// How many queues each member holds now.
    held: Vec<usize>,
    /// The members' total weight `W`.
    total_weight: u128,
    /// The band, in thousandths.
    band: u128,
}

impl Fleet {
    /// The targets of `members` and their loads as held.
    fn new(members: &[Member], holders: &[u32], weights: &[u64], band: Band) -> Fleet {
        let total_weight: u128 = members.iter().map(|m| u128::from(m.weight)).sum();
        let total_load: u128 = weights.iter().map(|&w| u128::from(w)).sum();
        let mut fleet = Fleet {
            target: (members.iter())
                .map(|m| total_load * u128::from(m.weight))
                .collect(),
            load: vec![0; members.len()],
            held: vec![0; members.len()],
            total_weight,
            band: u128::from(band.permille),
        };
        for (&mi, &w) in holders
            .iter()
            .zip(weights)
            .filter(|(mi, _)| **mi != NO_HOLDER)
        {
            fleet.add(mi, w);
            fleet.held[mi as usize] += 1;
        }
        fleet
    }

    /// Counts a queue of weight `w` on member `mi`.
    fn add(&mut self, mi: u32, w: u64) {
        self.load[mi as usize] += u128::from(w) * self.total_weight;
    }

    /// Whether a queue of weight `w` fits on member `mi` under its target.
    fn fits(&self, mi: usize, w: u64) -> bool {
        self.load[mi] + u128::from(w) * self.total_weight <= self.target[mi]
    }

    /// Whether member `mi` is outside its band in a way a move can help: over it with more
    /// than one queue, or under it.
    fn outside_band(&self, mi: usize) -> bool {
        let (load, target) = (self.load[mi] * 1000, self.target[mi]);
        let over = load > target * (1000 + self.band) && self.held[mi] > 1;
        over || load < target * (1000 - self.band)
    }

    /// Rule 2: the queues members keep are written to `owners`; the rest are returned to be
    /// dealt, each with the member offering it ([`NO_HOLDER`] for an orphan).
    fn keep(
        &mut self,
        members: &[Member],
        holders: &[u32],
        weights: &[u64],
        owners: &mut [u32],
        mut score: impl FnMut(&Rendezvous, u32) -> u64,
    ) -> Vec<(u32, u32)> {
        let rebalance = (0..members.len()).any(|mi| self.outside_band(mi));
        let mut over: Vec<Vec<u32>> = vec![Vec::new(); members.len()];
        let mut free = Vec::new();
        for (qi, &mi) in holders.iter().enumerate() {
            if mi == NO_HOLDER {
                free.push((qi as u32, NO_HOLDER));
            } else if rebalance && self.load[mi as usize] > self.target[mi as usize] {
                over[mi as usize].push(qi as u32);
            } else {
                owners[qi] = mi;
            }
        }
        for (mi, mine) in over.into_iter().enumerate().filter(|(_, q)| !q.is_empty()) {
            let scores = Rendezvous::new(members[mi].id.as_str());
            let mut order: Vec<(Reverse<u64>, Reverse<u64>, u32)> = (mine.into_iter())
                .map(|qi| {
                    (
                        Reverse(weights[qi as usize]),
                        Reverse(score(&scores, qi)),
                        qi,
                    )
                })
                .collect();
            order.sort_unstable();
            self.load[mi] = 0;
            for (i, (Reverse(w), _, qi)) in order.into_iter().enumerate() {
                if i == 0 || self.fits(mi, w) {
                    owners[qi as usize] = mi as u32;
                    self.add(mi as u32, w);
                } else {
                    free.push((qi, mi as u32));
                }
            }
        }
        free
    }

    /// Rule 3: deals `free` (queue, offering member) heaviest first, writing each one's member
    /// to `owners`.
    fn deal(
        &mut self,
        members: &[Member],
        queues: &[QueueId],
        weights: &[u64],
        free: Vec<(u32, u32)>,
        owners: &mut [u32],
    ) {
        let ring = ring_points(members, |_| true);
        let mut free: Vec<(Reverse<u64>, u64, u32, u32)> = (free.into_iter())
            .map(|(qi, from)| {
                let at = hash64(&[queues[qi as usize].as_str().as_bytes()]);
                (Reverse(weights[qi as usize]), at, qi, from)
            })
            .collect();
        free.sort_unstable();
        let mut rooms: BTreeSet<(i128, u32)> = (0..members.len() as u32)
            .map(|mi| (self.room(mi), mi))
            .collect();
        for (Reverse(w), at, qi, from) in free {
            let roomiest = rooms.last().map_or(i128::MIN, |r| r.0);
            let fitting = (roomiest >= self.scaled(w)).then(|| self.first_fit(&ring, at, w));
            let to = match fitting.flatten() {
                Some(mi) => mi,
                None if from != NO_HOLDER => from,
                None => self.least_loaded(members, w),
            };
            rooms.remove(&(self.room(to), to));
            self.add(to, w);
            rooms.insert((self.room(to), to));
            owners[qi as usize] = to;
        }
    }

    /// Member `mi`'s room under its target, scaled (negative when over it).
    fn room(&self, mi: u32) -> i128 {
        self.target[mi as usize] as i128 - self.load[mi as usize] as i128
    }

    /// A weight `w`, scaled as the loads are.
    fn scaled(&self, w: u64) -> i128 {
        (u128::from(w) * self.total_weight) as i128
    }

    /// The first member clockwise from `at` on the ring with room for a queue of weight `w`.
    fn first_fit(&self, ring: &[(u64, u32)], at: u64, w: u64) -> Option<u32> {
        let start = ring.partition_point(|(h, _)| *h < at);
        let (after, before) = ring.split_at(start);
        (before.iter().chain(after))
            .map(|&(_, mi)| mi)
            .find(|&mi| self.fits(mi as usize, w))
    }

    /// The member a queue of weight `w` leaves least loaded for its weight (the first such).
    fn least_loaded(&self, members: &[Member], w: u64) -> u32 {
        let after = |mi: usize| self.load[mi] + u128::from(w) * self.total_weight;
        let better = |a: usize, b: usize| {
            after(a) * u128::from(members[b].weight) < after(b) * u128::from(members[a].weight)
        };
        (0..members.len()).fold(0, |best, mi| if better(mi, best) { mi } else { best }) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::assign;
    use proptest::prelude::*;

    fn id(i: usize) -> InstanceId {
        InstanceId::new(&format!("i-{i}")).unwrap()
    }

    fn queue(i: usize) -> QueueId {
        QueueId::new(&format!("q-{i}")).unwrap()
    }

    /// A fleet: members with weights, queues with loads, and who holds what now.
    #[derive(Clone, Debug)]
    struct Case {
        members: Vec<Member>,
        queues: Vec<QueueId>,
        loads: BTreeMap<QueueId, u64>,
        current: BTreeMap<QueueId, InstanceId>,
    }

    impl Case {
        fn target(&self, band: Band) -> Assignment {
            assign_by_load(
                &self.members,
                &self.queues,
                &self.current,
                &self.loads,
                band,
            )
        }

        fn weight(&self, q: &QueueId) -> u128 {
            u128::from(self.loads.get(q).copied().unwrap_or(0)) + 1
        }

        /// Each member's load under `owners`, by member id.
        fn loads_of(&self, owners: &BTreeMap<QueueId, InstanceId>) -> BTreeMap<InstanceId, u128> {
            let mut out: BTreeMap<InstanceId, u128> =
                self.members.iter().map(|m| (m.id.clone(), 0)).collect();
            for (q, m) in owners {
                if let Some(l) = out.get_mut(m) {
                    *l += self.weight(q);
                }
            }
            out
        }

        /// `L·w_i` and `W`: member `i` is within its target when its load times `W` is at
        /// most `L·w_i`.
        fn scaled_targets(&self) -> (BTreeMap<InstanceId, u128>, u128) {
            let total: u128 = self.queues.iter().map(|q| self.weight(q)).sum();
            let weights: u128 = self.members.iter().map(|m| u128::from(m.weight)).sum();
            let targets = (self.members.iter())
                .map(|m| (m.id.clone(), total * u128::from(m.weight)))
                .collect();
            (targets, weights)
        }

        /// Total excess over targets, scaled by `W`.
        fn excess(&self, owners: &BTreeMap<QueueId, InstanceId>) -> u128 {
            let (targets, w) = self.scaled_targets();
            (self.loads_of(owners).iter())
                .map(|(m, l)| (l * w).saturating_sub(targets[m]))
                .sum()
        }
    }

    fn owners(a: &Assignment) -> BTreeMap<QueueId, InstanceId> {
        a.iter().map(|(q, m)| (q.clone(), m.clone())).collect()
    }

    /// Members `i-0..`, distinct and of weight 1 to 3; queues `q-0..` with loads from 0 to
    /// `max_load`, held by a member, by `i-99` (not a member) or by nobody.
    fn case(max_load: u64) -> impl Strategy<Value = Case> {
        (1usize..7, 1usize..120).prop_flat_map(move |(n, q)| {
            (
                proptest::collection::vec(1u32..4, n),
                proptest::collection::vec(0..=max_load, q),
                proptest::collection::vec(0usize..n + 2, q),
            )
                .prop_map(move |(weights, loads, held)| Case {
                    members: (weights.iter().enumerate())
                        .map(|(i, &w)| Member::new(id(i), w))
                        .collect(),
                    queues: (0..loads.len()).map(queue).collect(),
                    loads: loads
                        .iter()
                        .enumerate()
                        .map(|(i, &l)| (queue(i), l))
                        .collect(),
                    current: (held.iter().enumerate())
                        .filter(|(_, m)| **m <= n)
                        .map(|(i, &m)| (queue(i), if m == n { id(99) } else { id(m) }))
                        .collect(),
                })
        })
    }

    /// `case` with every queue held by a member.
    fn held_case(max_load: u64) -> impl Strategy<Value = Case> {
        case(max_load).prop_map(|mut c| {
            let n = c.members.len();
            c.current = (c.queues.iter().enumerate())
                .map(|(i, q)| (q.clone(), id(i % n)))
                .chain(c.current.into_iter().filter(|(_, m)| *m != id(99)))
                .collect();
            c
        })
    }

    /// Up to four members of weight 1 or 2 and many queues of loads up to 3, all orphans.
    fn small_case() -> impl Strategy<Value = Case> {
        (1usize..5, 300usize..1000).prop_flat_map(|(n, q)| {
            (
                proptest::collection::vec(1u32..3, n),
                proptest::collection::vec(0u64..4, q),
            )
                .prop_map(|(weights, loads)| Case {
                    members: (weights.iter().enumerate())
                        .map(|(i, &w)| Member::new(id(i), w))
                        .collect(),
                    queues: (0..loads.len()).map(queue).collect(),
                    loads: loads
                        .iter()
                        .enumerate()
                        .map(|(i, &l)| (queue(i), l))
                        .collect(),
                    current: BTreeMap::new(),
                })
        })
    }

    fn band() -> Band {
        Band::percent(5).unwrap()
    }

    #[test]
    fn a_band_is_a_percentage() {
        assert_eq!(Band::percent(5).map(Band::permille), Some(50));
        assert_eq!(Band::percent(100).map(Band::permille), Some(1000));
        assert_eq!(Band::percent(101), None);
    }

    #[test]
    fn the_busiest_queue_stays_alone_and_the_rest_balance_around_it() {
        // One queue carries 40% of the load: its member keeps it and nothing else.
        let mut c = Case {
            members: (0..3).map(|i| Member::new(id(i), 1)).collect(),
            queues: (0..31).map(queue).collect(),
            loads: (0..31)
                .map(|i| (queue(i), if i == 0 { 399 } else { 19 }))
                .collect(),
            current: BTreeMap::new(),
        };
        for _ in 0..40 {
            c.current = owners(&c.target(band()));
        }
        let big = &c.current[&queue(0)];
        assert_eq!(c.current.values().filter(|m| *m == big).count(), 1);
        let loads = c.loads_of(&c.current);
        let others: Vec<u128> = loads
            .iter()
            .filter(|(m, _)| *m != big)
            .map(|(_, l)| *l)
            .collect();
        assert_eq!(others, vec![300, 300], "{loads:?}");
    }

    proptest! {
        /// Rule 1: loads that are all equal give the count target.
        #[test]
        fn equal_loads_give_the_count_target(mut c in case(0), load in 0u64..50) {
            c.loads.values_mut().for_each(|l| *l = load);
            prop_assert_eq!(c.target(band()), assign(&c.members, &c.queues, &c.current));
        }

        /// The target depends on the inputs, not on their order.
        #[test]
        fn the_target_does_not_depend_on_input_order(c in case(500)) {
            let mut reversed = c.clone();
            reversed.members.reverse();
            reversed.queues.reverse();
            prop_assert_eq!(c.target(band()), reversed.target(band()));
        }

        /// Rule 2: while every member is within its band, no held queue moves.
        #[test]
        fn within_the_band_nothing_held_moves(c in held_case(500), percent in 0u32..40) {
            let band = Band::percent(percent).unwrap();
            let (targets, w) = c.scaled_targets();
            let loads = c.loads_of(&c.current);
            let within = loads.iter().all(|(m, l)| {
                let (l, t, b) = (l * w * 1000, targets[m], u128::from(band.permille()));
                l >= t * (1000 - b) && l <= t * (1000 + b)
            });
            prop_assume!(within);
            prop_assert!(c.target(band).moved(&c.current).is_empty());
        }

        /// Rule 3: with no orphans, a queue moves only from a member over its target to one
        /// it leaves at or under its own, so the fleet's excess over targets goes down.
        #[test]
        fn a_queue_moves_only_from_excess_to_room(c in held_case(500)) {
            let (targets, w) = c.scaled_targets();
            let before = c.loads_of(&c.current);
            let target = owners(&c.target(band()));
            let after = c.loads_of(&target);
            let moved = c.target(band()).moved(&c.current);
            for q in &moved {
                let (from, to) = (&c.current[q], &target[q]);
                prop_assert!(before[from] * w > targets[from], "{q} left {from} within target");
                prop_assert!(after[to] * w <= targets[to], "{q} took {to} over target");
            }
            if !moved.is_empty() {
                prop_assert!(c.excess(&target) < c.excess(&c.current));
            }
        }

        /// With loads held still, a fleet reaches a target that moves nothing, and each
        /// rebalance on the way lowers its excess.
        #[test]
        fn with_loads_held_still_a_fleet_settles(mut c in case(500)) {
            c.current = owners(&c.target(band()));
            for _ in 0..=c.queues.len() {
                let next = owners(&c.target(band()));
                if next == c.current {
                    return Ok(());
                }
                prop_assert!(c.excess(&next) < c.excess(&c.current));
                c.current = next;
            }
            prop_assert!(false, "still moving after {} rebalances", c.queues.len());
        }

        /// Where no queue outweighs a band's share of the smallest target divided among the
        /// members, a settled fleet has every member within its band: an under-loaded member,
        /// or the others' room beside an over-loaded one, would fit any queue offered.
        #[test]
        fn small_queues_settle_within_the_band(mut c in small_case()) {
            let band = Band::percent(10).unwrap();
            let (targets, w) = c.scaled_targets();
            let n = c.members.len() as u128;
            let least = targets.values().min().copied().unwrap_or(0);
            let largest = c.queues.iter().map(|q| c.weight(q)).max().unwrap_or(0);
            prop_assume!(largest * w * 1000 * n <= least * 100);
            for _ in 0..=c.queues.len() {
                let next = owners(&c.target(band));
                if next == c.current {
                    break;
                }
                c.current = next;
            }
            let loads = c.loads_of(&c.current);
            for (m, l) in &loads {
                let (l, t) = (l * w * 1000, targets[m]);
                prop_assert!(l >= t * 900 && l <= t * 1100, "{m}: {loads:?}");
            }
        }
    }
}

//! Sticky, capacity-weighted, exactly balanced assignment of queues to instances.
//!
//! [`assign`] is a pure function of (members with weights, queues, current owners). Every
//! instance that sees the same snapshot computes the same target, whatever order the inputs come
//! in. The rules, in order:
//! 1. Quotas: member `i` of weight `w` gets `floor(Q·w/W)`, and the `R` queues left over go one each
//!    to members whose share has a fractional part, current holders of more than their floor
//!    first (each such choice saves a move), then by pinned hash. So every member ends with the
//!    floor or the ceiling of its weighted share.
//! 2. Stickiness: a live member keeps its current queues up to its quota, the ones with the
//!    highest rendezvous score first.
//! 3. The excess of over-quota members and the orphans (no owner, or an owner not in the member
//!    list) are the only queues that move. In pinned-hash order, each goes to the first member
//!    under quota clockwise from its hash on a ring of the members' pinned hashes, so targets
//!    computed from views that differ in a few holders differ in a few queues, not in all.

mod by_load;

pub(crate) use by_load::assign_sorted_by_load;
pub use by_load::{Band, MAX_LOAD, assign_by_load};

use crate::hash::{Rendezvous, hash64};
use crate::ids::{InstanceId, QueueId};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One live instance that may own queues, with its capacity weight (at least 1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Member {
    /// The instance.
    pub id: InstanceId,
    /// Its capacity weight; a member of weight 2 gets twice the queues of a member of weight 1.
    pub weight: u32,
}

impl Member {
    /// Instance `id` with capacity weight `weight`.
    pub fn new(id: InstanceId, weight: u32) -> Member {
        Member { id, weight }
    }
}

/// The target: every queue given, with its member. Sorted by queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The members, sorted and deduplicated.
    members: Vec<Member>,
    /// The queues given, sorted: shared by the targets a node computes while its live queues
    /// stay the same, so a recompute clones no queue id.
    queues: Arc<[QueueId]>,
    /// The index among `members` of each queue's member (empty when there are no members):
    /// shared by the nodes that take the target from one [`crate::SharedTargets`].
    owners: Arc<[u32]>,
}

impl Assignment {
    /// The member `queue` is assigned to, if the queue was given and there was any member.
    pub fn owner_of(&self, queue: &QueueId) -> Option<&InstanceId> {
        let i = self.queues.binary_search(queue).ok()?;
        Some(&self.members[*self.owners.get(i)? as usize].id)
    }

    /// [`Assignment::owner_of`], looked up at index `at` first: a node that has found the
    /// queue's place among its records knows its place among the target's queues too, when the
    /// target was computed from those records, and one comparison (by pointer, mostly) replaces
    /// a search that compared URLs' text at every step.
    pub(crate) fn owner_near(&self, queue: &QueueId, at: Option<usize>) -> Option<&InstanceId> {
        match at.and_then(|i| Some((i, self.queues.get(i)?))) {
            Some((i, q)) if q == queue => Some(&self.members[*self.owners.get(i)? as usize].id),
            _ => self.owner_of(queue),
        }
    }

    /// This assignment with its queues given as `queues`, an equal list.
    pub(crate) fn with_queues(mut self, queues: Arc<[QueueId]>) -> Assignment {
        debug_assert!(self.queues == queues);
        self.queues = queues;
        self
    }

    /// Every (queue, member) pair, sorted by queue.
    pub fn iter(&self) -> impl Iterator<Item = (&QueueId, &InstanceId)> {
        self.queues
            .iter()
            .zip(self.owners.iter())
            .map(|(q, m)| (q, &self.members[*m as usize].id))
    }

    /// Every queue with the index of its member in [`Assignment::members`], sorted by queue.
    pub(crate) fn by_index(&self) -> impl Iterator<Item = (&QueueId, u32)> {
        self.queues.iter().zip(self.owners.iter().copied())
    }

    /// The queues assigned to `member`, sorted.
    pub fn assigned_to(&self, member: &InstanceId) -> impl Iterator<Item = &QueueId> {
        let mine = self.queues.iter().zip(self.assigned_each(member));
        mine.filter(|(_, a)| *a).map(|(q, _)| q)
    }

    /// Whether each queue, in order, is assigned to `member`.
    pub(crate) fn assigned_each(&self, member: &InstanceId) -> impl Iterator<Item = bool> {
        let at = self.members.binary_search_by(|m| m.id.cmp(member));
        let at = at.map_or(u32::MAX, |i| i as u32);
        self.owners.iter().map(move |&m| m == at)
    }

    /// The queues given, sorted, as shared with whoever listed them.
    pub(crate) fn queues(&self) -> &Arc<[QueueId]> {
        &self.queues
    }

    /// The number of queues assigned.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether no queue is assigned.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Queues per member, every member listed (zero included), sorted by member id.
    pub fn load(&self) -> BTreeMap<InstanceId, usize> {
        let mut counts = vec![0usize; self.members.len()];
        for m in self.owners.iter() {
            counts[*m as usize] += 1;
        }
        self.members
            .iter()
            .zip(counts)
            .map(|(m, c)| (m.id.clone(), c))
            .collect()
    }

    /// The members the target was computed for, sorted and deduplicated.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Queues whose target owner differs from `current` (absent counts as different), sorted.
    pub fn moved(&self, current: &BTreeMap<QueueId, InstanceId>) -> Vec<QueueId> {
        self.iter()
            .filter(|(q, m)| current.get(*q) != Some(*m))
            .map(|(q, _)| q.clone())
            .collect()
    }
}

/// The floor/ceiling quota of each member for `queue_count` queues: `(floor, may_take_extra)`.
fn floors(members: &[Member], queue_count: usize) -> (Vec<usize>, Vec<bool>, usize) {
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let mut base = Vec::with_capacity(members.len());
    let mut fractional = Vec::with_capacity(members.len());
    for m in members {
        let (lo, hi) = share_bounds(queue_count, m.weight, total);
        base.push(lo);
        fractional.push(lo != hi);
    }
    let rest = queue_count - base.iter().sum::<usize>();
    (base, fractional, rest)
}

/// The balance rule (G1), the one place it is computed: a member of weight `weight` out of a
/// fleet of total weight `total` holds the floor or the ceiling of its share of `queues`.
pub fn share_bounds(queues: usize, weight: u32, total: u64) -> (usize, usize) {
    let share = queues as u128 * u128::from(weight);
    let total = u128::from(total.max(1));
    ((share / total) as usize, share.div_ceil(total) as usize)
}

/// Computes the target assignment. See the module docs for the rules.
///
/// Members are deduplicated by id (the largest weight wins); `current` entries for queues not in
/// `queues`, or naming a non-member, are ignored (those queues are orphans).
pub fn assign(
    members: &[Member],
    queues: &[QueueId],
    current: &BTreeMap<QueueId, InstanceId>,
) -> Assignment {
    let (members, queues, holders) = prepared(members, queues, current);
    let named = Arc::clone(&queues);
    let score = |rv: &Rendezvous, qi: u32| rv.score(named[qi as usize].as_str());
    assign_sorted(members, queues, &holders, score)
}

/// The inputs of a target as its computation takes them: the [`normalized`] members, the
/// queues sorted and deduplicated, and each queue's holder by index among the members (or
/// [`NO_HOLDER`] when `current` names none, or a non-member).
pub(crate) fn prepared(
    members: &[Member],
    queues: &[QueueId],
    current: &BTreeMap<QueueId, InstanceId>,
) -> (Vec<Member>, Arc<[QueueId]>, Vec<u32>) {
    let members = normalized(members);
    let mut queues: Vec<QueueId> = queues.to_vec();
    queues.sort_unstable();
    queues.dedup();
    let holders: Vec<u32> = queues
        .iter()
        .map(|q| {
            let member = current
                .get(q)
                .and_then(|id| members.binary_search_by(|m| m.id.cmp(id)).ok());
            member.map_or(NO_HOLDER, |i| i as u32)
        })
        .collect();
    (members, queues.into(), holders)
}

/// The members an assignment is made among: weight above zero, sorted by id, one per id (the
/// largest weight).
pub(crate) fn normalized(members: &[Member]) -> Vec<Member> {
    let mut members: Vec<Member> = members.iter().filter(|m| m.weight > 0).cloned().collect();
    members.sort_by(|a, b| a.id.cmp(&b.id).then(b.weight.cmp(&a.weight)));
    members.dedup_by(|later, first| later.id == first.id);
    members
}

/// A queue held by no member, in the holders [`assign_sorted`] takes.
pub(crate) const NO_HOLDER: u32 = u32::MAX;

/// [`assign`] for [`normalized`] members and queues already sorted and deduplicated, with
/// `holders[i]` the index among `members` of the current holder of `queues[i]` (or
/// [`NO_HOLDER`]), and
/// `score(scores, i)` the score of `queues[i]` by `scores`, its holder's [`Rendezvous`]: the
/// node has these from its view in order, so it skips a sort and two lookups per queue, and
/// a hash per queue it scored before, which were most of the cost of recomputing a target.
pub(crate) fn assign_sorted(
    members: Vec<Member>,
    queues: Arc<[QueueId]>,
    holders: &[u32],
    mut score: impl FnMut(&Rendezvous, u32) -> u64,
) -> Assignment {
    debug_assert!(queues.windows(2).all(|w| w[0] < w[1]));
    debug_assert_eq!(queues.len(), holders.len());
    if members.is_empty() {
        return Assignment {
            members,
            queues,
            owners: Arc::from([]),
        };
    }

    // How many queues each member holds now.
    let mut counts = vec![0usize; members.len()];
    for &mi in holders.iter().filter(|&&mi| mi != NO_HOLDER) {
        counts[mi as usize] += 1;
    }

    // Quotas: floors, then the remainder to fractional members, holders above their floor first.
    let (mut quota, fractional, mut rest) = floors(&members, queues.len());
    let member_hash: Vec<u64> = members
        .iter()
        .map(|m| hash64(&[m.id.as_str().as_bytes()]))
        .collect();
    let mut order: Vec<usize> = (0..members.len()).filter(|&i| fractional[i]).collect();
    order.sort_by_key(|&i| (counts[i] <= quota[i], member_hash[i], i));
    for &i in &order {
        if rest == 0 {
            break;
        }
        quota[i] += 1;
        rest -= 1;
    }

    // A member within its quota keeps all it holds; the holdings of one over it are gathered
    // (only theirs: gathering every member's was a tenth of a rolling fleet's time), and the
    // orphans join the free queues.
    let mut owner_of: Vec<u32> = vec![u32::MAX; queues.len()];
    let mut over: Vec<Vec<u32>> = (0..members.len())
        .map(|mi| {
            Vec::with_capacity(if counts[mi] > quota[mi] {
                counts[mi]
            } else {
                0
            })
        })
        .collect();
    let mut free = Vec::new();
    for (qi, &mi) in holders.iter().enumerate() {
        if mi == NO_HOLDER {
            free.push(qi as u32);
        } else if counts[mi as usize] > quota[mi as usize] {
            over[mi as usize].push(qi as u32);
        } else {
            owner_of[qi] = mi;
        }
    }
    // An over-quota member keeps its quota, the highest rendezvous scores first; the rest
    // joins the free queues.
    for (mi, mine) in over.into_iter().enumerate() {
        if mine.is_empty() {
            quota[mi] -= counts[mi];
            continue;
        }
        // Which are kept is all that matters, not their order: a selection, not a sort.
        let scores = Rendezvous::new(members[mi].id.as_str());
        let mut scored: Vec<(Reverse<u64>, u32)> = (mine.iter())
            .map(|&qi| (Reverse(score(&scores, qi)), qi))
            .collect();
        scored.select_nth_unstable(quota[mi]);
        let (kept, excess) = scored.split_at(quota[mi]);
        for &(_, qi) in kept {
            owner_of[qi as usize] = mi as u32;
        }
        free.extend(excess.iter().map(|(_, qi)| *qi));
        quota[mi] = 0;
    }

    // Deal the free queues in hash order, each to the first member with room clockwise from
    // it on a hash ring.
    let mut free: Vec<(u64, u32)> = free
        .into_iter()
        .map(|qi| (hash64(&[queues[qi as usize].as_str().as_bytes()]), qi))
        .collect();
    free.sort_unstable();
    debug_assert_eq!(quota.iter().sum::<usize>(), free.len());
    let mut ring = Ring::new(&members, &quota);
    for (at, qi) in free {
        owner_of[qi as usize] = ring.take(at, &mut quota);
    }

    Assignment {
        members,
        queues,
        owners: owner_of.into(),
    }
}

/// How many points each member with room has on the [`Ring`]: more points spread the free
/// queues more evenly over first choices, so fewer of them go past a full member.
const RING_POINTS: u32 = 16;

/// The points of the members `on(index)` picks on a consistent-hash ring: [`RING_POINTS`]
/// pinned hashes of each one's id, with its index, sorted by hash. Both policies deal over it.
pub(crate) fn ring_points(members: &[Member], on: impl Fn(usize) -> bool) -> Vec<(u64, u32)> {
    let mut points: Vec<(u64, u32)> = Vec::new();
    for (mi, m) in members.iter().enumerate().filter(|(mi, _)| on(*mi)) {
        let id = m.id.as_str().as_bytes();
        for p in 0..RING_POINTS {
            points.push((hash64(&[id, &p.to_le_bytes()]), mi as u32));
        }
    }
    points.sort_unstable();
    points
}

/// A consistent-hash ring of the members with room, which free queues are dealt over.
///
/// A queue goes to the first member clockwise from its hash that has room, so two nodes whose
/// views differ by a few free queues or a quota deal every other queue alike: the targets they
/// compute agree but for those few (a round-robin deal shifted every queue after the first
/// difference, and nodes then awaited hand-offs that never came, and handed off what nobody
/// awaited).
struct Ring {
    /// Each point's hash and member index, sorted by hash.
    points: Vec<(u64, u32)>,
    /// For each point, a point at or after it (cyclically) that may still have room: a
    /// union-find of full members' points, so passing them costs amortised constant time.
    next: Vec<u32>,
    /// Each member's points, by member index, to take off the ring when it fills.
    of_member: Vec<Vec<u32>>,
}

impl Ring {
    /// The ring of the members whose `quota` is above zero.
    fn new(members: &[Member], quota: &[usize]) -> Ring {
        let points = ring_points(members, |mi| quota[mi] > 0);
        let next = (0..points.len() as u32).collect();
        let mut of_member = vec![Vec::new(); members.len()];
        for (p, (_, mi)) in points.iter().enumerate() {
            of_member[*mi as usize].push(p as u32);
        }
        Ring {
            points,
            next,
            of_member,
        }
    }

    /// The member a queue hashing to `at` goes to, whose quota it takes one of. The quotas
    /// left must add up to at least one.
    fn take(&mut self, at: u64, quota: &mut [usize]) -> u32 {
        let start = self.points.partition_point(|(h, _)| *h < at) % self.points.len();
        let p = self.find(start);
        let mi = self.points[p].1;
        quota[mi as usize] -= 1;
        if quota[mi as usize] == 0 {
            let n = self.points.len();
            for &q in &self.of_member[mi as usize] {
                self.next[q as usize] = ((q as usize + 1) % n) as u32;
            }
        }
        mi
    }

    /// The first point at or after `p` (cyclically) whose member has room.
    fn find(&mut self, p: usize) -> usize {
        let mut root = p;
        while self.next[root] as usize != root {
            root = self.next[root] as usize;
        }
        let mut at = p;
        while at != root {
            let after = self.next[at] as usize;
            self.next[at] = root as u32;
            at = after;
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_bounded_by_its_floor_and_ceiling() {
        assert_eq!(share_bounds(10, 1, 3), (3, 4));
        assert_eq!(share_bounds(9, 1, 3), (3, 3));
        assert_eq!(share_bounds(10, 2, 3), (6, 7));
        assert_eq!(share_bounds(0, 5, 7), (0, 0));
        assert_eq!(
            share_bounds(100_000, u32::MAX, u64::from(u32::MAX) * 3),
            (33_333, 33_334)
        );
    }

    fn m(id: &str, weight: u32) -> Member {
        Member {
            id: InstanceId::new(id).unwrap(),
            weight,
        }
    }

    fn qs(n: usize) -> Vec<QueueId> {
        (0..n)
            .map(|i| QueueId::new(&format!("q-{i}")).unwrap())
            .collect()
    }

    fn current(a: &Assignment) -> BTreeMap<QueueId, InstanceId> {
        a.iter().map(|(q, m)| (q.clone(), m.clone())).collect()
    }

    #[test]
    fn equal_weights_split_exactly() {
        let a = assign(&[m("a", 1), m("b", 1), m("c", 1)], &qs(9), &BTreeMap::new());
        assert_eq!(
            a.load().values().copied().collect::<Vec<_>>(),
            vec![3, 3, 3]
        );
        assert_eq!(a.len(), 9);
    }

    #[test]
    fn integral_shares_never_take_the_remainder() {
        // Shares are 3, 1.5, 1.5: the member with an integral share must get exactly 3.
        let a = assign(&[m("a", 2), m("b", 1), m("c", 1)], &qs(6), &BTreeMap::new());
        assert_eq!(a.load()[&InstanceId::new("a").unwrap()], 3);
    }

    #[test]
    fn no_members_assigns_nothing_and_no_queues_is_fine() {
        assert!(assign(&[], &qs(5), &BTreeMap::new()).is_empty());
        let a = assign(&[m("a", 1)], &[], &BTreeMap::new());
        assert!(a.is_empty());
        assert_eq!(a.load()[&InstanceId::new("a").unwrap()], 0);
    }

    #[test]
    fn unchanged_inputs_move_nothing_and_a_leave_moves_only_the_leavers() {
        let members = [m("a", 1), m("b", 1), m("c", 1), m("d", 1)];
        let queues = qs(103);
        let first = assign(&members, &queues, &BTreeMap::new());
        let cur = current(&first);
        assert_eq!(assign(&members, &queues, &cur), first);
        let left = assign(&members[..3], &queues, &cur);
        let d = InstanceId::new("d").unwrap();
        let moved = left.moved(&cur);
        assert!(moved.iter().all(|q| cur[q] == d));
        assert_eq!(moved.len(), first.load()[&d]);
    }

    #[test]
    fn duplicate_members_and_queues_are_collapsed() {
        let mut queues = qs(4);
        queues.extend(qs(4));
        let a = assign(
            &[m("a", 1), m("a", 3), m("b", 1)],
            &queues,
            &BTreeMap::new(),
        );
        assert_eq!(a.len(), 4);
        assert_eq!(a.members(), &[m("a", 3), m("b", 1)]);
        assert_eq!(a.load()[&InstanceId::new("a").unwrap()], 3);
    }

    proptest::proptest! {
        /// A hint only saves a search: right, wrong or out of range, the owner is the same.
        #[test]
        fn an_owner_looked_up_near_a_hint_is_the_owner(n in 1usize..40, hint in 0usize..50) {
            let queues = qs(n);
            let none = assign(&[], &queues, &BTreeMap::new());
            let a = assign(&[m("a", 1), m("b", 2), m("c", 1)], &queues, &BTreeMap::new());
            for q in queues.iter().chain(&qs(n + 3)[n..]) {
                proptest::prop_assert_eq!(a.owner_near(q, Some(hint)), a.owner_of(q));
                proptest::prop_assert_eq!(a.owner_near(q, None), a.owner_of(q));
                proptest::prop_assert_eq!(none.owner_near(q, Some(hint)), None);
            }
            let sorted: Vec<QueueId> = a.iter().map(|(q, _)| q.clone()).collect();
            for (i, q) in sorted.iter().enumerate() {
                proptest::prop_assert_eq!(a.owner_near(q, Some(i)), a.owner_of(q));
            }
        }
    }
}

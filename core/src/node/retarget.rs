//! When to compute the target again, and computing it.
//!
//! Computing the target is a pass over every queue, so it is cached ([`super::target`]) and
//! recomputed only when what it was computed from changed: the members, their lives, or a
//! queue record in a way the target did not ask for (docs/design.md §5).

use super::Node;
use crate::assignment::{
    Assignment, Member, NO_HOLDER, assign_sorted, assign_sorted_by_load, normalized,
};
use crate::config::Balance;
use crate::hash::Rendezvous;
use crate::ids::{InstanceId, Owner, QueueId};
use crate::loads::FleetLoads;
use crate::reads::ReadCause;
use crate::shutdown::Phase;
use std::sync::Arc;

impl Node {
    /// Where `queue` should go when this node gives it up: its target, or nobody.
    pub(super) fn hand_off_target(&mut self, queue: &QueueId) -> Option<Owner> {
        self.refresh_target();
        let id = self.target.assignment.as_ref()?.owner_of(queue)?.clone();
        if id == self.me {
            // Targeted here but outside this node's filter: nobody this node knows takes it.
            return self
                .listing
                .filter
                .matches(queue)
                .then(|| self.life())
                .flatten();
        }
        self.peers.membership.life_of(&id)
    }

    /// Brings the cached target up to date with the members and the view.
    pub(super) fn refresh_target(&mut self) {
        if self.refresh_members() {
            // Seen in an instance read (or this node's own phase changed): the view may be
            // older than the members, and the target needs the holders as of now.
            self.want_table(ReadCause::Members);
        }
        self.take_view_changes();
        // While this node's own writes are in flight (the creates of a listing, say) a stale
        // target waits for the last of them or the next tick: one recompute, not one per write.
        let t = &mut self.target;
        let wait = t.stale && !self.writes.writing.is_empty() && !t.tick_passed;
        t.tick_passed = false;
        let key_changed = self.refresh_key();
        let t = &mut self.target;
        if t.assignment.is_some() && (!t.stale || wait) && !key_changed {
            return;
        }
        t.behind = false;
        t.stale = false;
        let queues = self.view.live_queues();
        let target = self.assign_among(&self.target.members.clone(), queues);
        // An unchanged target leaves every decision as it was, except those of the queues
        // that changed (already marked).
        if self.target.assignment.as_ref() != Some(&target) {
            self.target.assignment = Some(target);
            self.target.fallback = None;
            self.dirty.all = true;
        }
    }

    /// Takes in who is suspected as of the last read; a change re-decides every queue, since
    /// orphans targeted at a suspect go to the fallback target instead.
    pub(super) fn refresh_suspects(&mut self) {
        let silence = self.cfg.heartbeat_interval * 3 / 2;
        let timeout = self.cfg.heartbeat_timeout;
        let suspects = self.peers.membership.suspects(silence, timeout, &self.me);
        if suspects != self.target.suspects {
            self.target.suspects = suspects;
            self.target.fallback = None;
            self.dirty.all = true;
        }
    }

    /// The fallback target, computed once per target and set of suspects: the assignment
    /// among the members that are not suspected. `None` while nobody is.
    pub(super) fn fallback(&mut self) -> Option<&Assignment> {
        if self.target.suspects.is_empty() || self.target.assignment.is_none() {
            return None;
        }
        if self.target.fallback.is_none() {
            let suspects = &self.target.suspects;
            let members: Vec<Member> = self
                .target
                .members
                .iter()
                .filter(|m| suspects.binary_search(&m.id).is_err())
                .cloned()
                .collect();
            let queues = self.view.live_queues();
            self.target.fallback = Some(self.assign_among(&members, queues));
        }
        self.target.fallback.as_ref()
    }

    /// Whether any queue may be an orphan targeted at a suspect, the only queues the fallback
    /// target decides: most of the time a suspect's queues are still its own, and computing
    /// the fallback, a pass over every queue, is skipped. Errs towards yes: a queue whose
    /// holder is not a member in its current life may be an orphan.
    pub(super) fn fallback_needed(&self) -> bool {
        let (Some(target), suspects) = (&self.target.assignment, &self.target.suspects) else {
            return false;
        };
        if suspects.is_empty() {
            return false;
        }
        let membership = &self.peers.membership;
        let members = &self.target.members;
        // By member index: looking each of 100,000 queues' member up among the suspects
        // compared ids' text at every step while a crashed tenth of a fleet was suspected.
        let suspected: Vec<bool> = (target.members().iter())
            .map(|m| suspects.binary_search(&m.id).is_ok())
            .collect();
        target
            .by_index()
            .filter(|(_, m)| suspected[*m as usize])
            .any(|(q, _)| {
                let owner = self.view.get(q).and_then(|r| r.owner.as_ref());
                owner.is_none_or(|o| {
                    let member = members.binary_search_by(|m| m.id.cmp(&o.id)).is_ok();
                    !member
                        || membership.life_of(&o.id).as_ref() != Some(o)
                        || membership.known_over(o)
                })
            })
    }

    /// The instance `queue` should go to: its target, except that an orphan (no owner, or a
    /// dead one) targeted at a suspect goes to its fallback target, a member likely to claim
    /// it now rather than one that may have to be condemned in turn. `at` is the queue's
    /// [`crate::lease::QueueView::position`] (`None`: the view has no record of it).
    pub(super) fn wanted(&mut self, queue: &QueueId, at: Option<usize>) -> Option<InstanceId> {
        let target = self.target.assignment.as_ref()?;
        let target = target.owner_near(queue, at)?.clone();
        if target == self.me || self.target.suspects.binary_search(&target).is_err() {
            return Some(target);
        }
        let owner = self.view.record_at(at?).owner.clone();
        let orphan = owner.is_none_or(|o| self.liveness(&o) == crate::membership::Liveness::Dead);
        if !orphan {
            return Some(target);
        }
        self.fallback()?.owner_near(queue, at).cloned()
    }

    /// Recomputes the members; a change drops the target. Returns whether they changed.
    pub(super) fn refresh_members(&mut self) -> bool {
        let me = (self.phase == Phase::Running && self.life.is_some()).then(|| Member {
            id: self.me.clone(),
            weight: self.cfg.capacity,
        });
        let from = Some((self.peers.membership.version(), me.is_some()));
        if self.target.members_from == from {
            return false;
        }
        self.target.members_from = from;
        let mut members = self
            .peers
            .membership
            .members(self.cfg.heartbeat_timeout, me.as_ref());
        if me.is_none() {
            // Draining or not yet registered: our own record may still read Active, but a
            // node that is giving queues up must never be their target (it would hand off to
            // itself, forever).
            members.retain(|m| m.id != self.me);
        }
        if members == self.target.members {
            return false;
        }
        self.target.members = members;
        self.target.key_from = None;
        self.target.members_changed_at = self.now;
        self.target.assignment = None;
        true
    }

    /// Queue records that changed since the last look are decided again. A change that
    /// carries a queue to its target owner (the moves this target asked for) leaves the
    /// target as it is; any other (a new or retired queue, a release, a peer acting on a
    /// different target) makes it stale. Every table read still recomputes a target that any
    /// change went by, so that nodes whose targets came from different snapshots converge on
    /// the same one.
    fn take_view_changes(&mut self) {
        self.target.stale |= self.target.retarget && self.target.behind;
        self.target.retarget = false;
        let mut changes = self.view.take_changes();
        if changes.is_empty() {
            return;
        }
        self.target.behind = true;
        if !self.target.stale {
            self.target.stale = changes.iter().any(|q| !self.toward_target(q));
        }
        self.dirty.queues.append(&mut changes);
    }

    /// Brings up to date what the target depends on besides the view (this node's life and
    /// its members' lives), looking the lives up only when the membership changed. Returns
    /// whether it changed.
    fn refresh_key(&mut self) -> bool {
        let version = self.peers.membership.version();
        let life = self.life();
        if self.target.key_from == Some(version) && self.target.key.0 == life {
            return false;
        }
        let lives = self.target.members.iter();
        let lives = lives.map(|m| self.peers.membership.life_of(&m.id));
        let loads = match self.cfg.balance {
            Balance::Load { .. } => (self.target.members.iter())
                .map(|m| self.peers.membership.loads_of(&m.id).cloned())
                .collect(),
            Balance::Count => Vec::new(),
        };
        let key = (life, lives.collect(), loads);
        self.target.key_from = Some(version);
        let changed = key != self.target.key;
        self.target.key = key;
        changed
    }

    /// The target among `members` for `queues`, the live queues of the view. A queue held by
    /// a member in its current life counts as held: the assignment keeps it there as far as
    /// balance allows. The scores it computes stay in the view. Taken from the shared targets
    /// when another node computed it from the same inputs.
    fn assign_among(&mut self, members: &[Member], queues: Arc<[QueueId]>) -> Assignment {
        debug_assert!(
            self.view
                .records()
                .filter(|r| !r.retired)
                .map(|r| &r.queue)
                .eq(queues.iter())
        );
        let members = normalized(members);
        let lives = self.current_lives(&members);
        let holders = self.view.live_holders(|o| {
            let at = lives.binary_search_by(|(l, _)| life_order(l, o)).ok()?;
            Some(lives[at].1)
        });
        let loads = match self.cfg.balance {
            Balance::Load { band, .. } => Some((self.loads_of(&members, &queues, &holders), band)),
            Balance::Count => None,
        };
        let mut scores = self.view.live_scores();
        let mut compute = |members, queues: Arc<[QueueId]>| {
            let named = Arc::clone(&queues);
            let score =
                |rv: &Rendezvous, qi: u32| scores.get(qi, || rv.score(named[qi as usize].as_str()));
            match &loads {
                Some((loads, band)) => {
                    assign_sorted_by_load(members, queues, &holders, loads, *band, score)
                }
                None => assign_sorted(members, queues, &holders, score),
            }
        };
        let by_queue = (
            &holders[..],
            loads.as_ref().map_or(&[][..], |(l, _)| &l[..]),
        );
        match &self.target.shared {
            Some(shared) => shared.get_or_compute(members, queues, by_queue, compute),
            None => compute(members, queues),
        }
    }

    /// Each queue's load as the members' records publish it ([`FleetLoads::weigh`]): every
    /// node that read the same records weighs the queues alike.
    fn loads_of(&self, members: &[Member], queues: &[QueueId], holders: &[u32]) -> Vec<u64> {
        let fleet = FleetLoads::new(
            members
                .iter()
                .map(|m| self.peers.membership.loads_of(&m.id)),
        );
        (queues.iter().zip(holders))
            .map(|(q, &h)| fleet.weigh(q, (h != NO_HOLDER).then_some(h as usize)))
            .collect()
    }

    /// The current lives of `members`, in [`life_order`], each with its member's index: this
    /// node's own life, and each member's latest as read. A queue held by one of them counts
    /// as held.
    fn current_lives(&self, members: &[Member]) -> Vec<(Owner, u32)> {
        let life = self.life();
        let mut lives = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let read = self.peers.membership.life_of(&m.id);
            let own = life
                .as_ref()
                .filter(|l| l.id == m.id && read.as_ref() != Some(*l));
            lives.extend(read.into_iter().chain(own.cloned()).map(|l| (l, i as u32)));
        }
        lives.sort_by(|(a, _), (b, _)| life_order(a, b));
        lives
    }

    /// Whether `queue`'s record names the owner the current target gives it, in its current life.
    fn toward_target(&self, queue: &QueueId) -> bool {
        let Some(target) = &self.target.assignment else {
            return false;
        };
        let Some(at) = self.view.position(queue) else {
            return false;
        };
        let r = self.view.record_at(at);
        let Some(o) = r.owner.as_ref().filter(|_| !r.retired) else {
            return false;
        };
        target.owner_near(queue, Some(at)) == Some(&o.id)
            && (Some(o) == self.life().as_ref()
                || self.peers.membership.life_of(&o.id).as_ref() == Some(o))
    }
}

/// An order of lives that compares incarnations first: they start at random, so looking
/// up each queue's holder among the lives rarely compares the ids' text, which was most of
/// the cost of a target (G7).
fn life_order(a: &Owner, b: &Owner) -> std::cmp::Ordering {
    a.incarnation
        .cmp(&b.incarnation)
        .then_with(|| a.id.cmp(&b.id))
}

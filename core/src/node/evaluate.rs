//! Applying decisions: which queues to decide again, and carrying out what [`decide`] says,
//! plus the queue writes that come from outside the decision (listings, stops, deletions).

use super::Node;
use super::decide::{Decision, Facts, decide};
use crate::effect::{QueueRecord, Write};
use crate::ids::{InstanceId, Owner, QueueId};
use crate::lease::{AfterStop, Held, names};
use crate::membership::Liveness;
use crate::shutdown::Phase;
use crate::time::Millis;

impl Node {
    /// Brings holdings and claims in line with the view and the target: every queue after a
    /// change that concerns them all (membership, liveness, phase, a new target), otherwise only
    /// the queues that changed, so a claim completing costs one decision rather than a pass
    /// over every queue.
    pub(super) fn evaluate(&mut self) {
        if self.phase.is_stopped() {
            return;
        }
        if self.life.is_none() {
            self.dirty.all = false;
            self.dirty.queues.clear();
            return;
        }
        if !self.dirty.all && self.dirty.queues.is_empty() && !self.view.has_changes() {
            return;
        }
        self.refresh_target();
        let Some(me) = self.life() else { return };
        let all = std::mem::take(&mut self.dirty.all);
        let fallback = all && self.fallback_needed();
        if fallback {
            let _ = self.fallback();
        }
        // Each with its record's place; a decision that changes the records moves the places
        // after it, which `decide_queue` checks.
        let queues = if all {
            self.dirty.queues.clear();
            self.moves = super::Moves::default();
            self.concerning(&me, fallback)
        } else {
            let queues: Vec<QueueId> = std::mem::take(&mut self.dirty.queues).into_iter().collect();
            let places: Vec<Option<usize>> = self.view.positions_sorted(&queues).collect();
            queues.into_iter().zip(places).collect()
        };
        debug_assert!(queues.is_sorted_by(|a, b| a.0 < b.0));
        let mut lives = LastLife::default();
        for (q, hint) in &queues {
            self.moves.incoming.remove(q);
            self.moves.deferred.remove(q);
            let decision = self.decide_queue(q, *hint, &me, &mut lives);
            self.apply(q, &me, decision);
        }
        self.timers.moves = (!self.moves.deferred.is_empty()).then(|| self.move_at());
        self.plan_watch();
        if all {
            let view = &self.view;
            self.peers.membership.retain_lives(|o| view.names_ever(o));
        }
    }

    /// The queues that can need anything, sorted, each with its record's place if known: named
    /// here, targeted here (and known) or held here, and with `fallback` those the fallback
    /// target gives here. Most are found by place in walks of the view, since searching the
    /// view for each by its URL was a tenth of a rolling fleet's time (G11).
    fn concerning(&self, me: &Owner, fallback: bool) -> Vec<(QueueId, Option<usize>)> {
        let mut places: Vec<usize> = self.view.named_at(me).collect();
        if let Some(target) = &self.target.assignment {
            let wanted = target.assigned_each(&self.me);
            if self.view.lists(target.queues()) {
                // A target of the live queues as the view lists them now: one walk beside it.
                let live = self.view.live_places().zip(wanted);
                places.extend(live.filter(|(_, w)| *w).map(|(p, _)| p));
            } else {
                let mine = target.queues().iter().zip(wanted).filter(|(_, w)| *w);
                places.extend(mine.filter_map(|(q, _)| self.view.position(q)));
            }
        }
        places.sort_unstable();
        places.dedup();
        let mut others = self.held_elsewhere(&places);
        if let Some(fallback) = self.target.fallback.as_ref().filter(|_| fallback) {
            // Orphans of a suspect that fall back to this node.
            others.extend(fallback.assigned_to(&self.me).cloned());
            others.sort();
            others.dedup();
        }
        let others_at: Vec<Option<usize>> = self.view.positions_sorted(&others).collect();
        let queue = |p: usize| (self.view.queue_at(p).clone(), Some(p));
        if others_at.iter().all(Option::is_some) {
            places.extend(others_at.into_iter().flatten());
            places.sort_unstable();
            places.dedup();
            return places.into_iter().map(queue).collect();
        }
        // A held queue without a record: sorted by queue.
        let mut all: Vec<(QueueId, Option<usize>)> = places.into_iter().map(queue).collect();
        all.extend(others.into_iter().zip(others_at));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        all
    }

    /// The held queues whose records are not at `places` (sorted), found by a walk beside
    /// them: most are named here.
    fn held_elsewhere(&self, places: &[usize]) -> Vec<QueueId> {
        let mut at = places.iter().map(|&p| self.view.queue_at(p)).peekable();
        let mut others = Vec::new();
        for q in self.held.keys() {
            while at.next_if(|p| *p < q).is_some() {}
            if at.peek() != Some(&q) {
                others.push(q.clone());
            }
        }
        others
    }

    /// When queues may move: the rebalance delay after the last membership change.
    pub(super) fn move_at(&self) -> crate::time::Millis {
        let changed = self.target.members_changed_at;
        changed.saturating_add(self.cfg.rebalance_delay)
    }

    /// Gathers what this node knows of `q` and decides it. `hint`: where its record was.
    fn decide_queue(
        &mut self,
        q: &QueueId,
        hint: Option<usize>,
        me: &Owner,
        lives: &mut LastLife,
    ) -> Decision {
        let at = self.view.position_near(q, hint);
        let wanted = self.wanted(q, at);
        let wanted = wanted.as_ref();
        debug_assert!(at.is_none_or(|i| self.view.record_at(i).queue == *q));
        let facts = Facts {
            record: at.map(|i| self.view.record_at(i)),
            held: self.held.get(q).copied(),
            busy: self.writes.busy(q),
            running: self.phase == Phase::Running,
            me,
            wanted,
            wanted_life: wanted.and_then(|id| lives.of(id, |id| self.peers.membership.life_of(id))),
            allowed: self.listing.filter.matches(q),
            may_move: self.now >= self.move_at(),
        };
        let (membership, now) = (&mut self.peers.membership, self.now);
        let timeout = self.cfg.heartbeat_timeout;
        decide(&facts, |o| membership.liveness(now, o, timeout))
    }

    /// Carries out the decision about `q`.
    fn apply(&mut self, q: &QueueId, me: &Owner, decision: Decision) {
        match decision {
            Decision::Wait => {}
            Decision::Stop(then) => self.stop(q, then),
            Decision::Start { epoch, defer } => {
                self.start(q.clone(), epoch);
                if defer {
                    self.moves.deferred.insert(q.clone());
                }
            }
            Decision::HandOff { epoch, to } => self.hand_off(q.clone(), me.clone(), epoch, to),
            Decision::Adopt { epoch } => {
                self.held.insert(q.clone(), Held::Receiving { epoch });
                self.dirty.queues.insert(q.clone());
            }
            Decision::Defer => {
                self.moves.deferred.insert(q.clone());
            }
            Decision::Claim {
                expect_owner,
                expect_epoch,
            } => self.claim(q, me, expect_owner, expect_epoch),
            Decision::AwaitHandOff => {
                self.moves.incoming.insert(q.clone());
            }
        }
    }

    /// The liveness of `owner`, this node's own life being alive.
    pub(super) fn liveness(&mut self, owner: &Owner) -> Liveness {
        if Some(owner) == self.life().as_ref() {
            return Liveness::Alive;
        }
        self.peers
            .membership
            .liveness(self.now, owner, self.cfg.heartbeat_timeout)
    }

    fn queue_write(&mut self, write: Write, result: QueueRecord) {
        self.send_queue_write(write, result, 0);
    }

    fn claim(&mut self, q: &QueueId, me: &Owner, expect_owner: Option<Owner>, expect_epoch: u64) {
        let write = Write::Claim {
            queue: q.clone(),
            expect_owner,
            expect_epoch,
            new_owner: me.clone(),
        };
        let result = QueueRecord {
            queue: q.clone(),
            owner: Some(me.clone()),
            epoch: expect_epoch + 1,
            retired: false,
        };
        self.queue_write(write, result);
    }

    fn hand_off(&mut self, queue: QueueId, from: Owner, epoch: u64, to: Option<Owner>) {
        let result = QueueRecord {
            queue: queue.clone(),
            owner: to.clone(),
            epoch: epoch + 1,
            retired: false,
        };
        let write = Write::HandOff {
            queue,
            from,
            expect_epoch: epoch,
            to,
        };
        self.queue_write(write, result);
    }

    pub(super) fn retire(&mut self, r: &QueueRecord) {
        let result = QueueRecord {
            queue: r.queue.clone(),
            owner: None,
            epoch: r.epoch + 1,
            retired: true,
        };
        let write = Write::Retire {
            queue: r.queue.clone(),
            expect_epoch: r.epoch,
        };
        self.queue_write(write, result);
    }

    /// The pollers of `queue` stopped: do what the stop was for.
    pub(super) fn on_stopped(&mut self, queue: QueueId) {
        let Some(Held::Stopping { epoch, then }) = self.held.get(&queue).copied() else {
            return;
        };
        self.held.remove(&queue);
        self.dirty.queues.insert(queue.clone());
        let Some(me) = self.life() else { return };
        let still_mine = self
            .view
            .get(&queue)
            .is_some_and(|r| names(r, Some(&me)) && r.epoch == epoch);
        if !still_mine || self.busy(&queue) {
            return;
        }
        match then {
            AfterStop::Forget => {}
            AfterStop::Retire => {
                let r = QueueRecord {
                    queue,
                    owner: Some(me),
                    epoch,
                    retired: false,
                };
                self.retire(&r);
            }
            AfterStop::HandOff => {
                let to = self.hand_off_target(&queue);
                if to.as_ref() == Some(&me) {
                    if self.phase == Phase::Running {
                        self.start(queue, epoch);
                    }
                    return;
                }
                self.hand_off(queue, me, epoch, to);
            }
        }
    }

    /// SQS says `queue` no longer exists: stop receiving and retire its record.
    pub(super) fn on_gone(&mut self, queue: QueueId) {
        if self.held.contains_key(&queue) {
            self.stop(&queue, AfterStop::Retire);
            return;
        }
        let Some(r) = self.view.get(&queue).cloned() else {
            return;
        };
        let free = match &r.owner {
            None => true,
            Some(o) => Some(o) == self.life().as_ref() || self.liveness(o) == Liveness::Dead,
        };
        if free && !r.retired && !self.busy(&queue) && self.life.is_some() {
            self.retire(&r);
        }
    }

    /// Compares a listing with the view: listed but unknown (or retired) is created (or
    /// revived); known, live, in this node's filter and not listed is retired once free.
    pub(super) fn on_listed(&mut self, listed: &[QueueId]) {
        // A listing of exactly the view's live queues has nothing to create or retire: the
        // usual case, checked without filtering or sorting the listing (a tenth of a steady
        // 300 × 30,000 simulation's time went to comparing listings that matched).
        if self.phase != Phase::Running || *listed == *self.view.live_queues() {
            return;
        }
        let diff = self.compare_listing(listed);
        let timeout = self.cfg.heartbeat_timeout;
        let peers = self.peers.membership.members(timeout, None);
        let mut later = Vec::new();
        for (q, revive_epoch) in diff.create {
            if self.creates_first(&q, &peers) {
                self.create(q, revive_epoch);
            } else {
                later.push((q, revive_epoch));
            }
        }
        let due = self.now.saturating_add(self.cfg.heartbeat_interval);
        self.listing.deferred.defer(due, later);
        for r in diff.vanished {
            if self.busy(&r.queue) {
                continue;
            }
            let free = match &r.owner {
                None => true,
                Some(o) => self.liveness(o) == Liveness::Dead,
            };
            if free {
                self.retire(&r);
            }
        }
    }

    /// Writes the record of listed queue `q` (reviving a tombstone at `revive_epoch`).
    fn create(&mut self, q: QueueId, revive_epoch: Option<u64>) {
        // An unreadable record exists: creating it again would only be rejected.
        if self.busy(&q) || self.listing.unreadable.contains(&q) {
            return;
        }
        let result = QueueRecord {
            queue: q.clone(),
            owner: None,
            epoch: revive_epoch.map_or(1, |e| e + 1),
            retired: false,
        };
        let write = Write::CreateQueue {
            queue: q,
            revive_epoch,
        };
        self.queue_write(write, result);
    }

    /// Whether this node writes the record of a listed queue at once: it scores highest for
    /// the queue among itself and the `peers` it knows alive (rendezvous hashing). The others
    /// wait an interval ([`Node::create_deferred`]).
    fn creates_first(&self, q: &QueueId, peers: &[crate::assignment::Member]) -> bool {
        let score = |id| (crate::hash::rendezvous(id, q.as_str()), id);
        let mine = score(self.me.as_str());
        peers
            .iter()
            .filter(|m| m.id != self.me)
            .all(|m| score(m.id.as_str()) < mine)
    }

    /// Creates the deferred queues due by `by` whose record the view still lacks (or still
    /// shows retired at the epoch listed): their first creator did not write them. Called
    /// after each table read, and at each tick for those a table read should have settled by
    /// now.
    pub(super) fn create_deferred(&mut self, by: Millis) {
        let due = self.listing.deferred.take_due(by);
        if self.phase != Phase::Running {
            return;
        }
        let records = self.view.get_sorted(due.iter().map(|(q, _)| q));
        let still: Vec<bool> = (records.zip(&due))
            .map(|(r, (_, revive_epoch))| match (r, revive_epoch) {
                (None, None) => true,
                (Some(r), Some(e)) => r.retired && r.epoch == *e,
                _ => false,
            })
            .collect();
        for ((q, revive_epoch), still) in due.into_iter().zip(still) {
            if still {
                self.create(q, revive_epoch);
            }
        }
    }

    /// Walks the sorted listing and the sorted view side by side.
    fn compare_listing(&self, listed: &[QueueId]) -> ListingDiff {
        let mut listed: Vec<QueueId> = listed
            .iter()
            .filter(|q| self.listing.filter.matches(q))
            .cloned()
            .collect();
        listed.sort_unstable();
        listed.dedup();
        let (mut create, mut vanished) = (Vec::new(), Vec::new());
        let mut view = self.view.records().peekable();
        // Only queues this node's filter takes can have vanished from its listing: a record
        // outside it may belong to peers with another filter (a configuration rollout).
        let ours = |r: &QueueRecord| !r.retired && self.listing.filter.matches(&r.queue);
        for q in &listed {
            while let Some(r) = view.next_if(|r| r.queue < *q) {
                if ours(r) {
                    vanished.push(r.clone());
                }
            }
            match view.next_if(|r| r.queue == *q) {
                None => create.push((q.clone(), None)),
                Some(r) if r.retired => create.push((q.clone(), Some(r.epoch))),
                Some(_) => {}
            }
        }
        vanished.extend(view.filter(|r| ours(r)).cloned());
        ListingDiff { create, vanished }
    }
}

/// How a listing differs from the view.
struct ListingDiff {
    /// Listed queues without a live record, with the epoch of the retired record to revive.
    create: Vec<(QueueId, Option<u64>)>,
    /// Live records in this node's filter whose queue was not listed.
    vanished: Vec<QueueRecord>,
}

/// The life a pass last looked up for a wanted member: most queues of a pass want the same
/// member (this node), and looking it up among a thousand members for each was a few percent
/// of a rolling fleet's time (G11). Kept for one pass, in which the members' lives stay put.
#[derive(Default)]
struct LastLife(Option<(InstanceId, Option<Owner>)>);

impl LastLife {
    /// `id`'s life: the last one's again, or what `look` finds.
    fn of(
        &mut self,
        id: &InstanceId,
        look: impl FnOnce(&InstanceId) -> Option<Owner>,
    ) -> Option<Owner> {
        match &self.0 {
            Some((last, life)) if last == id => life.clone(),
            _ => {
                let life = look(id);
                self.0 = Some((id.clone(), life.clone()));
                life
            }
        }
    }
}

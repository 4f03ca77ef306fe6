//! How a node folds in the answers to its effects, one function per kind of reply.

use super::Node;
use super::ops::Pending;
use super::writes::{Unsettled, resend_after};
use crate::config::Balance;
use crate::effect::{
    Effect, InstanceRecord, Notice, OpId, Outcome, QueueRecord, Read, Reply, Status, Unreadable,
    Write,
};
use crate::ids::{InstanceId, Owner, QueueId};
use crate::lease::{AfterStop, names};
use crate::page::QueuePage;
use crate::reads::ReadCause;
use crate::shutdown::Phase;
use crate::time::Millis;
use std::sync::Arc;

/// What an instance read showed of the counters that notices move.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// How far this life's inbox moved: a queue handed here for each, or a receiver's nudge.
    inbox: u64,
    /// A peer's news or life moved (or this node's inbox went back, a new record's): only a
    /// table read answers it, counted under this cause.
    news: Option<ReadCause>,
}

/// Matches `moved` inbox moves against `handed` queues found handed here: one notice comes
/// for each hand-off, in either order. Returns the moves left unexplained and the hand-offs
/// whose notices are still to come.
fn settle(moved: u64, handed: u64) -> (u64, u64) {
    (moved.saturating_sub(handed), handed.saturating_sub(moved))
}

impl Node {
    /// Dispatches the answer to operation `id` to the handler of its kind.
    pub(super) fn on_completed(&mut self, id: OpId, outcome: Outcome) {
        let Some(pending) = self.ops.complete(id) else {
            return;
        };
        match pending {
            Pending::Register { sent } => self.on_registered(sent, outcome),
            Pending::Heartbeat { sent, life, loads } => {
                self.on_heartbeat(sent, life, outcome, loads);
            }
            Pending::Reap { owner } => self.on_reaped(owner, outcome),
            Pending::Notify {
                to,
                notice,
                unknowns,
            } => self.on_notified((to, notice), unknowns, outcome),
            Pending::Queue {
                write,
                result,
                unknowns,
            } => self.on_queue_written(id, write, result, unknowns, outcome),
            Pending::Deregister => self.on_deregistered(outcome),
            Pending::Read { read } => self.on_read(id, read, outcome),
            Pending::List => self.on_list(id, outcome),
        }
    }

    fn on_registered(&mut self, sent: Millis, outcome: Outcome) {
        let Outcome::Applied(Reply::Registered { incarnation }) = outcome else {
            return;
        };
        if self.incarnation().is_some_and(|l| l >= incarnation) {
            return;
        }
        self.life = Some(super::Life {
            incarnation,
            since: self.ops.next_seq(),
            counter: 0,
        });
        // A registration removes the record's loads.
        self.publisher.forget();
        if self.phase.is_shutting_down() {
            // Registered after all: deregister it in Releasing rather than leave it to expire.
            return;
        }
        self.acked(sent);
        self.want_table(ReadCause::Start);
        self.timers.discovery.due_now(self.now);
        self.set_phase(Phase::Running);
        self.discover();
    }

    /// A heartbeat of life `life` answered: applied extends the fence; rejected means peers
    /// reaped this life.
    /// A heartbeat that published `loads` and came back unknown leaves the record's loads in
    /// doubt: the next heartbeat publishes again.
    fn on_heartbeat(&mut self, sent: Millis, life: u64, outcome: Outcome, loads: bool) {
        if self.incarnation() != Some(life) {
            return;
        }
        match outcome {
            Outcome::Applied(_) => self.acked(sent),
            Outcome::Rejected => self.lose_life(),
            Outcome::Unknown if loads => self.publisher.forget(),
            Outcome::Unknown => {}
        }
    }

    /// A reap answered: applied marks the life dead, so its queues may be claimed.
    fn on_reaped(&mut self, owner: Owner, outcome: Outcome) {
        self.peers.reaping.remove(&owner);
        if matches!(outcome, Outcome::Applied(_)) {
            self.peers.membership.mark_dead(owner);
            self.dirty.all = true;
        }
    }

    /// A lost notice leaves peers on a stale view until their next reconciliation: send it
    /// again (a notice twice only costs an extra read).
    fn on_notified(&mut self, to: (Owner, Notice), unknowns: u32, outcome: Outcome) {
        if to.1 == Notice::News {
            self.writes.news_sending = false;
        }
        if outcome == Outcome::Unknown {
            let unknowns = unknowns + 1;
            let wait = resend_after(unknowns, self.cfg.heartbeat_interval);
            self.writes
                .notices
                .insert(to, (self.now.saturating_add(wait), unknowns));
        }
    }

    /// A read answered: fold in what it shows; after a failed read of queue records a table
    /// read is wanted.
    fn on_read(&mut self, id: OpId, read: Read, outcome: Outcome) {
        match (read, outcome) {
            (
                _,
                Outcome::Applied(Reply::Members {
                    instances,
                    unreadable,
                }),
            ) => {
                let seen = self.observe(id, &instances, &unreadable.instances);
                self.answer_notices(seen);
            }
            (
                _,
                Outcome::Applied(Reply::Table {
                    instances,
                    pages,
                    unreadable,
                }),
            ) => self.on_table(id, &instances, &pages, unreadable),
            (
                Read::Records(asked),
                Outcome::Applied(Reply::Records {
                    instances,
                    queues,
                    unreadable,
                }),
            ) => self.on_records(id, &asked, &instances, queues, &unreadable),
            // Retried on the next tick, not at once, which would hammer an unreachable table;
            // the notices a failed read of records answered are answered by that table read.
            (read, _) => self.reads.retry |= read != Read::Members,
        }
    }

    /// Reads the queue records now, not at reconciliation, when an instance read showed
    /// queues changed hands: only those awaited from their holders when the only news is
    /// this life's inbox and nothing else asks for the whole table.
    fn answer_notices(&mut self, mut seen: Seen) {
        let due = self.handed_unseen_due();
        (seen.inbox, self.reads.handed_unseen.count) = settle(seen.inbox, due);
        if seen.inbox == 0 && seen.news.is_none() {
            return;
        }
        if seen.news.is_none() && self.may_read_records() {
            self.reads.inbox_unanswered += seen.inbox;
            if let Some(awaited) = self.awaited_records() {
                self.read(awaited);
            }
            return;
        }
        self.want_table(seen.news.unwrap_or(ReadCause::Inbox));
        self.read(Read::Table);
    }

    /// Folds in a read of the records of the queues `asked`, sent as `id`: those queues change
    /// as a table read would change them, and the rest of the view stays. A table read
    /// follows when the read leaves something unexplained: inbox moves that no queue newly
    /// handed here accounts for (a nudge, or a hand-off this node did not await), or an
    /// awaited queue now held by someone other than its holder (this node's view missed a
    /// claim).
    fn on_records(
        &mut self,
        id: OpId,
        asked: &[QueueId],
        instances: &[InstanceRecord],
        queues: Vec<Arc<QueueRecord>>,
        unreadable: &Unreadable,
    ) {
        let seen = self.observe(id, instances, &unreadable.instances);
        let Some(me) = self.life() else { return };
        let holders: Vec<Option<Owner>> = asked.iter().map(|q| self.owner_of(q)).collect();
        let (unread, read): (Vec<QueueId>, Vec<QueueId>) = asked
            .iter()
            .cloned()
            .partition(|q| unreadable.queues.binary_search(q).is_ok());
        for q in read {
            self.listing.unreadable.remove(&q);
        }
        self.listing.unreadable.extend(unread);
        for q in self.writes.take_refreshed_among(id.0, asked) {
            self.dirty.queues.insert(q);
        }
        self.view.merge_records(id.0, asked, queues);
        let mut handed_here = 0;
        let mut taken = false;
        for (q, was) in asked.iter().zip(holders) {
            let now = self.owner_of(q);
            if let Some(o) = &now {
                self.peers.membership.notice(self.now, o);
            }
            if now == was {
                continue;
            }
            match now {
                Some(o) if o == me => handed_here += 1,
                Some(_) => taken = true,
                None => {}
            }
        }
        let due = self.handed_unseen_due();
        let r = &mut self.reads;
        (r.inbox_unanswered, r.handed_unseen.count) =
            settle(r.inbox_unanswered + seen.inbox, due + handed_here);
        if handed_here > 0 {
            r.handed_unseen.found_at = self.now;
        }
        if r.inbox_unanswered > 0 || seen.news.is_some() {
            self.want_table(seen.news.unwrap_or(ReadCause::Inbox));
        }
        if taken {
            self.want_table(ReadCause::AwaitingHandOff);
        }
    }

    /// The notices of hand-offs here still to come ([`super::HandedUnseen::due`]): those
    /// found within the last two heartbeat intervals.
    fn handed_unseen_due(&self) -> u64 {
        let expiry = self.cfg.heartbeat_interval * 2;
        self.reads.handed_unseen.due(self.now, expiry)
    }

    /// The life `queue`'s record names as owner, as this node knows it.
    fn owner_of(&self, queue: &QueueId) -> Option<Owner> {
        self.view.get(queue).and_then(|r| r.owner.clone())
    }

    /// A listing answered: compare it with the view, once the view has been read.
    fn on_list(&mut self, id: OpId, outcome: Outcome) {
        if let Outcome::Applied(Reply::Queues(listed)) = outcome {
            if self.view.snapshot() > 0 {
                self.on_listed(&listed);
            } else {
                self.listing.early = Some((id, listed));
                self.want_table(ReadCause::Start);
            }
        }
    }

    /// Folds in a whole table read, sent as `id`.
    fn on_table(
        &mut self,
        id: OpId,
        instances: &[InstanceRecord],
        pages: &[QueuePage],
        unreadable: Unreadable,
    ) {
        let _ = self.observe(id, instances, &unreadable.instances);
        // The queue records of this read are as fresh as its members: a change of members
        // seen here needs no second read.
        let _ = self.refresh_members();
        self.listing.unreadable = unreadable.queues.into_iter().collect();
        // Queues whose write was rejected before this read was sent are decided again, with
        // those the read shows changed; a reconciliation read of a quiet table costs no
        // decision at all.
        for q in self.writes.take_refreshed(id.0) {
            self.dirty.queues.insert(q);
        }
        let returned = pages.iter().map(|p| p.records().len()).sum();
        let changed = self.view.merge_snapshot(id.0, pages);
        self.reads.sent.count_answer(returned, changed);
        self.create_deferred(self.now);
        self.target.retarget = true;
        for o in self.view.owners() {
            self.peers.membership.notice(self.now, &o);
        }
        if let Some((list_id, _)) = &self.listing.early
            && *list_id < id
            && let Some((_, listed)) = self.listing.early.take()
        {
            self.on_listed(&listed);
        }
    }

    /// An applied registration or heartbeat sent at `sent`: the fence opens until
    /// `sent + HeartbeatTimeout - FenceMargin`.
    fn acked(&mut self, sent: Millis) {
        let (ht, margin) = (
            self.cfg.heartbeat_timeout,
            self.cfg.effective_fence_margin(),
        );
        if let Some(until) = self.fence.acked(sent, ht, margin) {
            self.effects.push_back(Effect::Fence { until });
        }
    }

    /// This life is over (a heartbeat was rejected, or a read showed it reaped): stop everything,
    /// close the fence, and register again unless shutting down.
    pub(super) fn lose_life(&mut self) {
        self.life = None;
        // Notices to that life, and hand-offs to it, no longer concern this node.
        self.reads.inbox_unanswered = 0;
        self.reads.handed_unseen.count = 0;
        self.fence.reset();
        // Writes of that life need not be settled: a late copy can only name a life that is
        // over, whose queues peers claim as a dead life's.
        self.writes.unsettled.clear();
        self.effects.push_back(Effect::Fence { until: self.now });
        if let Some(s) = &mut self.shutdown {
            s.life_lost = true;
        }
        let queues: Vec<QueueId> = self.held.keys().cloned().collect();
        for q in &queues {
            self.stop(q, AfterStop::Forget);
        }
        self.dirty.all = true;
        if !self.phase.is_shutting_down() {
            self.set_phase(Phase::Starting);
            self.register();
        }
    }

    /// Takes in a read of the instance records sent as `sent`, and returns how the counters
    /// that notices move changed since the last read: this node's inbox (a queue was handed
    /// here, or a receiver nudged it), anyone's news or life (a queue was released, retired
    /// or created, or a life began). Hand-offs between peers concern only their receivers. A
    /// read sent after this life began that shows it ended (reaped, or a later registration
    /// of this id) ends it here too.
    #[must_use]
    fn observe(
        &mut self,
        sent: OpId,
        instances: &[InstanceRecord],
        unreadable: &[InstanceId],
    ) -> Seen {
        self.peers
            .membership
            .observe(self.now, instances, unreadable);
        let verdicts = self.peers.membership.verdicts(self.cfg.heartbeat_timeout);
        if verdicts != self.peers.verdicts {
            self.peers.verdicts = verdicts;
            self.dirty.all = true;
        }
        if matches!(self.cfg.balance, Balance::Load { .. }) {
            let published = instances.iter().map(|r| (r.id.clone(), r.loads.clone()));
            if !published.clone().eq(self.peers.published.iter().cloned()) {
                self.peers.published = published.collect();
                self.dirty.all = true;
            }
        }
        self.refresh_suspects();
        let mut seen = Seen::default();
        for (p, r) in instances.iter().enumerate() {
            let now = (r.incarnation, r.inbox, r.news);
            // Updated in place: cloning each id into the map at every read of a thousand
            // instances was a twentieth of a settled 1,000-node fleet's time.
            let (inc, inbox, news) = match self.peers.inboxes.read_entry(p, &r.id, || now) {
                (_, true) => (r.incarnation, 0, 0),
                (old, false) => std::mem::replace(old, now),
            };
            if inc != r.incarnation {
                seen.news = Some(ReadCause::NewLife);
            } else if news != r.news {
                seen.news.get_or_insert(ReadCause::News);
            }
            if r.id == self.me {
                match r.inbox.checked_sub(inbox) {
                    Some(moved) => seen.inbox += moved,
                    None => seen.news = Some(ReadCause::NewLife),
                }
            }
        }
        if self.life_ended_by(sent, instances) {
            self.lose_life();
            return Seen::default();
        }
        if self.life.is_some() {
            self.reap_expired();
            self.lapse_ghosts();
        }
        self.plan_watch();
        seen
    }

    /// Whether a read sent as `sent` shows this life over: its record is dead, or a later
    /// registration of this id replaced it. Only a read sent after the life began can tell.
    fn life_ended_by(&self, sent: OpId, instances: &[InstanceRecord]) -> bool {
        let Some(life) = self.life.filter(|l| sent.0 >= l.since) else {
            return false;
        };
        let mine = instances.iter().find(|r| r.id == self.me);
        mine.is_some_and(|r| {
            r.incarnation > life.incarnation
                || (r.incarnation == life.incarnation && r.status == Status::Dead)
        })
    }

    /// Marks dead every peer life whose heartbeat stopped longer than the timeout ago.
    fn reap_expired(&mut self) {
        let expired = self
            .peers
            .membership
            .expired(self.cfg.heartbeat_timeout, &self.me);
        for (owner, counter) in expired {
            if self.peers.reaping.insert(owner.clone()) {
                let pending = Pending::Reap {
                    owner: owner.clone(),
                };
                self.write(pending, Write::Reap { owner, counter });
            }
        }
    }

    /// Records in the table every ghost this node timed out that a queue record still names,
    /// so that the queue's next owner need not time it out again (it may be a later life of
    /// the same instance, or a peer that never saw the ghost).
    fn lapse_ghosts(&mut self) {
        let lapsable = self.peers.membership.lapsable(self.cfg.heartbeat_timeout);
        for owner in lapsable {
            let named = self
                .view
                .records()
                .any(|r| r.owner.as_ref() == Some(&owner));
            if named && self.peers.reaping.insert(owner.clone()) {
                let pending = Pending::Reap {
                    owner: owner.clone(),
                };
                self.write(pending, Write::Lapse { owner });
            }
        }
    }

    fn on_queue_written(
        &mut self,
        id: OpId,
        write: Write,
        result: QueueRecord,
        unknowns: u32,
        outcome: Outcome,
    ) {
        let queue = result.queue.clone();
        if self.writes.writing.get(&queue) == Some(&id) {
            self.writes.writing.remove(&queue);
        }
        match outcome {
            Outcome::Applied(_) => self.on_queue_applied(write, result),
            // The record changed under this write: maybe by a peer, maybe by an earlier copy
            // of it (an SDK retry, a late landing), so it is announced all the same.
            Outcome::Rejected => {
                self.announce(&write);
                self.writes.stale.insert(queue, self.ops.next_seq());
                self.want_table(ReadCause::Rejected);
            }
            // It may still apply: send it again until it is settled (a life that is over has
            // nothing to settle).
            Outcome::Unknown if self.life.is_some() => {
                let unknowns = unknowns + 1;
                let wait = resend_after(unknowns, self.cfg.heartbeat_interval);
                let u = Unsettled {
                    write,
                    result,
                    resend_at: self.now.saturating_add(wait),
                    unknowns,
                };
                self.writes.unsettled.insert(queue, u);
            }
            Outcome::Unknown => {}
        }
    }

    /// Only an applied write changes what this node knows; after a rejected or unknown one it
    /// waits for the table read it asked for. An applied claim starts the pollers.
    fn on_queue_applied(&mut self, write: Write, result: QueueRecord) {
        let queue = result.queue.clone();
        self.dirty.queues.insert(queue.clone());
        self.announce(&write);
        let starts = matches!(write, Write::Claim { .. })
            && self.phase == Phase::Running
            && names(&result, self.life().as_ref())
            && !self.held.contains_key(&queue);
        let epoch = result.epoch;
        self.view.apply_local(self.ops.next_seq(), result);
        if starts {
            self.start(queue, epoch);
        }
    }

    /// Announces the change `write` made (or may have made) to those it concerns, so they read
    /// the queue records at their next instance read instead of their next reconciliation: a
    /// hand-off to its receiver; a creation, release or retirement to every node ([`Notice`]),
    /// by one notice for a burst of them. Under load balance a takeover (a claim from a life
    /// that ended) is news too: the next target weighs each queue on its holder, so a node
    /// whose view still shows the queue orphaned computes another one (docs/design.md §4.8).
    fn announce(&mut self, write: &Write) {
        match write {
            Write::HandOff { to: Some(to), .. } => self.notify(to.clone(), Notice::Inbox, 0),
            Write::HandOff { to: None, .. } | Write::Retire { .. } | Write::CreateQueue { .. } => {
                self.writes.news_due = true;
            }
            Write::Claim {
                expect_owner: Some(_),
                ..
            } if matches!(self.cfg.balance, Balance::Load { .. }) => {
                self.writes.news_due = true;
            }
            _ => {}
        }
    }
}

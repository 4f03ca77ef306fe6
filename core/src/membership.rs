//! Liveness of the fleet, judged by local observation only.
//!
//! A peer life is alive while its heartbeat counter keeps changing: it is *expired* once a read
//! shows the counter (with status and incarnation) unchanged HeartbeatTimeout after this observer
//! first saw the value, on this observer's own monotonic clock. Judging by reads, not by the
//! clock alone, means an observer that cannot read condemns nobody. Wall clocks of
//! different hosts are never compared. An expired life is not yet dead: the observer must reap it
//! (a conditional write on the counter it saw) before anyone may take its queues, which also
//! rejects any heartbeat of that life still in flight, so the life's self-fence has passed.
//!
//! A queue may name a life this observer cannot see any more (the record is gone, or shows a
//! later incarnation). Such a *ghost* cannot heartbeat (its condition names its incarnation), so
//! it is treated as dead once a read handled at least HeartbeatTimeout after it was first noticed
//! still shows it missing (a fresh read, so a stale view never condemns a live peer).
//!
//! A record that cannot be decoded (a later version's status, a manual edit) tells nothing of
//! its instance's heartbeat: every life of that id counts as alive until it can be read again.

use crate::assignment::Member;
use crate::by_id::ById;
use crate::effect::{InstanceRecord, Status};
use crate::ids::{InstanceId, Owner};
use crate::loads::PublishedLoads;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How this observer judges one life right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Heartbeating (or within the timeout of its last change).
    Alive,
    /// Silent for the timeout but not yet reaped: its queues must wait.
    Expired,
    /// Reaped, deregistered or a ghost past the timeout: its queues may be claimed.
    Dead,
}

/// One instance as this observer last read it.
#[derive(Clone, Debug)]
struct Seen {
    /// Its record as last read.
    record: InstanceRecord,
    /// Since when it has shown no sign of life.
    since: Millis,
    /// The read that last showed it ([`Membership::reads`] then).
    read: u64,
}

/// What one instance record contributes to the verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Verdict {
    /// The instance.
    id: InstanceId,
    /// Its current life and that life's status.
    life: (u64, Status),
    /// Its weight in the assignment.
    capacity: u32,
    /// The lives its record shows over: `ended` and `lapsed`.
    over: (u64, u64),
    /// Whether its counter stood still for the timeout.
    expired: bool,
}

/// A summary of every liveness verdict, compared to tell whether any changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    instances: Vec<Verdict>,
    /// Ghosts past their timeout (a ghost just noticed changes no verdict).
    ghosts: Vec<Owner>,
    /// Instances whose record could not be decoded.
    unreadable: Vec<InstanceId>,
}

/// What this observer knows about every instance record.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    /// Each instance's record as last read, and since when it has shown no sign of life.
    seen: ById<Seen>,
    /// Lives known to have ended (reaped or deregistered).
    dead: BTreeSet<Owner>,
    /// Lives no read shows current any more, and when that was first seen.
    ghosts: BTreeMap<Owner, Millis>,
    /// Instances whose record the last read could not decode: alive, whatever their life.
    unreadable: BTreeSet<InstanceId>,
    /// When the last read was handled.
    last_read: Millis,
    /// Bumped whenever `seen` or `last_read` change: equal versions give equal members and lives.
    version: u64,
    /// How many reads were observed: an instance no read since the last shows is gone.
    reads: u64,
}

/// When the ghost timeout of `old`'s life, superseded by `new`, starts: when this observer
/// first saw the counter that life ended with, if the registration that superseded it recorded
/// that very counter (no heartbeat of it applied after this observer's view, so its fence runs
/// from before then, as for a silent life); otherwise `now`, the read that shows it superseded.
fn ghost_since(old: &Seen, new: &InstanceRecord, now: Millis) -> Millis {
    if new.prior == (old.record.incarnation, old.record.heartbeat) {
        old.since.min(now)
    } else {
        now
    }
}

impl Membership {
    /// Folds in a full read of the instance records, handled at `now`; `unreadable` are the
    /// instances whose record it could not decode.
    pub fn observe(&mut self, now: Millis, records: &[InstanceRecord], unreadable: &[InstanceId]) {
        self.unreadable = unreadable.iter().cloned().collect();
        // Updated in place, one lookup a record: building a new map of a thousand
        // instances at every read was a tenth of a 1,000-node simulation's time. Of two
        // records of one instance in one read, the later is compared with the earlier.
        self.reads += 1;
        let read = self.reads;
        for (p, r) in records.iter().enumerate() {
            if r.status == Status::Dead {
                self.dead.insert(Owner {
                    id: r.id.clone(),
                    incarnation: r.incarnation,
                });
            }
            let (s, new) = self.seen.read_entry(p, &r.id, || Seen {
                record: r.clone(),
                since: now,
                read,
            });
            if new {
                continue;
            }
            // A newer life replaces one this observer saw: the old one can never heartbeat
            // again, so its ghost timeout starts now at the latest, not when a queue asks.
            if s.record.incarnation < r.incarnation && s.record.status != Status::Dead {
                let start = ghost_since(s, r, now);
                self.ghosts
                    .entry(Owner {
                        id: r.id.clone(),
                        incarnation: s.record.incarnation,
                    })
                    .and_modify(|t| *t = (*t).min(start))
                    .or_insert(start);
            }
            // Only a heartbeat, status or life change is a sign of life; a peer's notice
            // bumping the inbox of a silent instance is not.
            let life = |r: &InstanceRecord| (r.incarnation, r.heartbeat, r.status);
            if life(&s.record) != life(r) {
                s.since = now;
            }
            if s.record != *r {
                s.record = r.clone();
            }
            s.read = read;
        }
        self.seen.retain(|s| s.read == read);
        // A life this read shows current is no ghost, whatever an earlier read (or a later page
        // of one) made of it: its timer starts afresh when a read shows it superseded.
        let seen = &self.seen;
        self.ghosts.retain(|o, _| {
            seen.get(&o.id)
                .is_none_or(|s| s.record.incarnation != o.incarnation)
        });
        self.last_read = self.last_read.max(now);
        self.version += 1;
    }

    /// Starts the ghost timeout of `owner` at `now` if a read shows it superseded (a later
    /// life of its id, or no record at all) and its timeout has not started yet. Called for
    /// every owner a table read names, so the timeout runs from the first read that could
    /// tell, whichever node the queue is later targeted to.
    pub fn notice(&mut self, now: Millis, owner: &Owner) {
        let superseded = self
            .seen
            .get(&owner.id)
            .is_none_or(|s| s.record.incarnation > owner.incarnation);
        if superseded && !self.dead.contains(owner) && !self.unreadable.contains(&owner.id) {
            self.ghosts.entry(owner.clone()).or_insert(now);
        }
    }

    /// Records that this observer's reap of `owner` was applied.
    pub fn mark_dead(&mut self, owner: Owner) {
        if let Some(s) = self.seen.get_mut(&owner.id)
            && s.record.incarnation == owner.incarnation
        {
            s.record.status = Status::Dead;
            self.version += 1;
        }
        self.dead.insert(owner);
    }

    /// Whether `owner` is known dead or its record shows its life over: for a member's current
    /// life, the only ways [`Membership::liveness`] can find it dead. Asks without starting a
    /// ghost timer.
    pub fn known_over(&self, owner: &Owner) -> bool {
        self.dead.contains(owner) || self.record_ends(owner)
    }

    /// Whether `owner`'s record says its life is over: deregistered, reaped, or lapsed as a ghost.
    /// Only that very life: once TTL has deleted a dead record, the id registers afresh at a
    /// random incarnation, maybe a lower one, so a lower number may be a newer life that a
    /// read of the old record cannot speak for.
    fn record_ends(&self, owner: &Owner) -> bool {
        self.seen.get(&owner.id).is_some_and(|s| {
            s.record.ended == owner.incarnation || s.record.lapsed == owner.incarnation
        })
    }

    /// Judges `owner` at `now`; a ghost starts its timeout the first time it is asked about.
    pub fn liveness(&mut self, now: Millis, owner: &Owner, timeout: Duration) -> Liveness {
        if self.dead.contains(owner) {
            return Liveness::Dead;
        }
        if self.unreadable.contains(&owner.id) {
            return Liveness::Alive;
        }
        if self.record_ends(owner) {
            // It deregistered, was reaped or timed out as a ghost; a later life of the id does
            // not revive it. A deregistration speaks for that life only: an earlier one may be a
            // paused zombie whose fence still runs, and it waits out its ghost timeout.
            return Liveness::Dead;
        }
        match self.seen.get(&owner.id) {
            Some(s) if s.record.incarnation == owner.incarnation => {
                if s.record.status == Status::Dead {
                    Liveness::Dead
                } else if self.last_read.since(s.since) >= timeout {
                    Liveness::Expired
                } else {
                    Liveness::Alive
                }
            }
            _ => {
                let since = *self.ghosts.entry(owner.clone()).or_insert(now);
                if self.last_read.since(since) >= timeout {
                    Liveness::Dead
                } else {
                    Liveness::Alive
                }
            }
        }
    }

    /// Whether the last read showed `owner`'s life draining: it hands its queues over now,
    /// not after a rebalance delay.
    pub fn draining(&self, owner: &Owner) -> bool {
        self.seen.get(&owner.id).is_some_and(|s| {
            s.record.incarnation == owner.incarnation && s.record.status == Status::Draining
        })
    }

    /// Changes whenever what [`Membership::members`] and [`Membership::life_of`] answer may
    /// change: the node computes its members and their lives again only then (G11: with a
    /// thousand members, looking them up at every decision was a fifth of a fleet start's time).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The current life of `id`, if its record is known and not dead.
    pub fn life_of(&self, id: &InstanceId) -> Option<Owner> {
        let s = self.seen.get(id)?;
        (s.record.status != Status::Dead).then(|| Owner {
            id: id.clone(),
            incarnation: s.record.incarnation,
        })
    }

    /// The loads `id`'s current life published, if its record is known, not dead, and
    /// carries some.
    pub fn loads_of(&self, id: &InstanceId) -> Option<&PublishedLoads> {
        let s = self.seen.get(id)?;
        (s.record.status != Status::Dead)
            .then_some(s.record.loads.as_ref())
            .flatten()
    }

    /// Peers expired as of the last read and not yet dead, with the counter to reap them at. Sorted.
    pub fn expired(&self, timeout: Duration, me: &InstanceId) -> Vec<(Owner, u64)> {
        self.seen
            .values()
            .filter(|s| {
                s.record.id != *me
                    && s.record.status != Status::Dead
                    && self.last_read.since(s.since) >= timeout
            })
            .map(|s| {
                let owner = Owner {
                    id: s.record.id.clone(),
                    incarnation: s.record.incarnation,
                };
                (owner, s.record.heartbeat)
            })
            .filter(|(o, _)| !self.dead.contains(o))
            .collect()
    }

    /// Whether some peer life is about to be condemned, or just was and is not yet dead: its
    /// counter (or its ghost timer) has stood for between `timeout - window` and `timeout +
    /// window` (ghosts: `timeout`). A peer with an earlier view may reap or lapse it any moment
    /// now, and its queues' next owners learn of that at their next read.
    pub fn nearly_expired(&self, timeout: Duration, window: Duration, me: &InstanceId) -> bool {
        let from = timeout.saturating_sub(window);
        let near = |since: Millis, until: Duration| {
            let age = self.last_read.since(since);
            age >= from && age < until
        };
        let silent = self.seen.values().any(|s| {
            s.record.id != *me && s.record.status != Status::Dead && near(s.since, timeout + window)
        });
        silent || self.ghosts.values().any(|since| near(*since, timeout))
    }

    /// Active peers whose counter has stood for `silence` or longer as of the last read but
    /// who have not expired: probably gone, not condemned yet. Sorted.
    pub fn suspects(
        &self,
        silence: Duration,
        timeout: Duration,
        me: &InstanceId,
    ) -> Vec<InstanceId> {
        self.seen
            .values()
            .filter(|s| {
                let age = self.last_read.since(s.since);
                s.record.id != *me
                    && s.record.status == Status::Active
                    && age >= silence
                    && age < timeout
            })
            .map(|s| s.record.id.clone())
            .collect()
    }

    /// Ghosts past their timeout that the table does not yet show as lapsed: their record
    /// shows a later life and a lower `lapsed`. Writing [`Write::Lapse`](crate::effect::Write)
    /// spares every peer that never saw them a timeout of its own. Sorted.
    pub fn lapsable(&self, timeout: Duration) -> Vec<Owner> {
        self.ghosts
            .iter()
            .filter(|(o, since)| {
                self.last_read.since(**since) >= timeout
                    && !self.unreadable.contains(&o.id)
                    && self.seen.get(&o.id).is_some_and(|s| {
                        s.record.incarnation > o.incarnation
                            && s.record.lapsed < o.incarnation
                            && s.record.ended != o.incarnation
                    })
            })
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// The members that take queues as of the last read: active and alive. `me`, when given, is always
    /// included with its own capacity (this node trusts its own heartbeats). Sorted by id.
    pub fn members(&self, timeout: Duration, me: Option<&Member>) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .seen
            .values()
            .filter(|s| me.is_none_or(|m| m.id != s.record.id))
            .filter(|s| {
                s.record.status == Status::Active && self.last_read.since(s.since) < timeout
            })
            .map(|s| Member {
                id: s.record.id.clone(),
                weight: s.record.capacity.max(1),
            })
            .collect();
        if let Some(m) = me {
            out.push(m.clone());
            out.sort();
        }
        out
    }

    /// Everything this observer's verdicts depend on, as of the last read: each record's
    /// life, status, capacity and whether it expired, and the ghosts past their timeout.
    /// The node re-decides its queues only when this changes, not at every heartbeat read.
    pub fn verdicts(&self, timeout: Duration) -> Verdicts {
        let instances = self
            .seen
            .values()
            .map(|s| {
                let r = &s.record;
                Verdict {
                    id: r.id.clone(),
                    life: (r.incarnation, r.status),
                    capacity: r.capacity,
                    over: (r.ended, r.lapsed),
                    expired: self.last_read.since(s.since) >= timeout,
                }
            })
            .collect();
        let ghosts = self
            .ghosts
            .iter()
            .filter(|(_, since)| self.last_read.since(**since) >= timeout)
            .map(|(o, _)| o.clone())
            .collect();
        Verdicts {
            instances,
            ghosts,
            unreadable: self.unreadable.iter().cloned().collect(),
        }
    }

    /// Forgets dead lives and ghosts that no queue names any more, so memory stays bounded.
    /// `referenced` says whether a queue names a life.
    pub fn retain_lives(&mut self, referenced: impl Fn(&Owner) -> bool) {
        self.dead.retain(|o| referenced(o));
        self.ghosts.retain(|o, _| referenced(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HT: Duration = Duration::from_secs(30);

    fn rec(id: &str, inc: u64, hb: u64, status: Status) -> InstanceRecord {
        InstanceRecord {
            id: InstanceId::new(id).unwrap(),
            incarnation: inc,
            heartbeat: hb,
            status,
            capacity: 1,
            inbox: 0,
            news: 0,
            ended: 0,
            lapsed: 0,
            prior: (0, 0),
            loads: None,
        }
    }

    fn owner(id: &str, inc: u64) -> Owner {
        Owner {
            id: InstanceId::new(id).unwrap(),
            incarnation: inc,
        }
    }

    #[test]
    fn a_peer_expires_only_after_the_timeout_on_the_observers_clock() {
        let mut m = Membership::default();
        m.observe(Millis(1_000), &[rec("a", 1, 5, Status::Active)], &[]);
        m.observe(Millis(30_999), &[rec("a", 1, 5, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(99_999), &owner("a", 1), HT),
            Liveness::Alive
        );
        // A change restarts the clock.
        m.observe(Millis(31_000), &[rec("a", 1, 6, Status::Active)], &[]);
        m.observe(Millis(60_999), &[rec("a", 1, 6, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(60_999), &owner("a", 1), HT),
            Liveness::Alive
        );
        m.observe(Millis(61_000), &[rec("a", 1, 6, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(61_000), &owner("a", 1), HT),
            Liveness::Expired
        );
        let me = InstanceId::new("me").unwrap();
        assert_eq!(m.expired(HT, &me), vec![(owner("a", 1), 6)]);
        m.mark_dead(owner("a", 1));
        assert_eq!(
            m.liveness(Millis(61_000), &owner("a", 1), HT),
            Liveness::Dead
        );
        assert!(m.expired(HT, &me).is_empty());
    }

    #[test]
    fn an_ended_life_is_dead_at_once_even_after_a_restart_but_not_its_elders() {
        let mut m = Membership::default();
        m.observe(Millis(0), &[rec("a", 3, 9, Status::Active)], &[]);
        // Life 3 deregisters and life 4 registers before this observer reads again.
        let mut restarted = rec("a", 4, 0, Status::Active);
        restarted.ended = 3;
        m.observe(Millis(1_000), &[restarted], &[]);
        assert_eq!(
            m.liveness(Millis(1_000), &owner("a", 3), HT),
            Liveness::Dead
        );
        // Life 2 may still be a paused zombie: it waits out its ghost timeout.
        assert_eq!(
            m.liveness(Millis(1_000), &owner("a", 2), HT),
            Liveness::Alive
        );
        assert_eq!(
            m.liveness(Millis(1_000), &owner("a", 4), HT),
            Liveness::Alive
        );
    }

    #[test]
    fn a_superseded_life_starts_its_ghost_timeout_at_the_read_that_shows_it() {
        let mut m = Membership::default();
        m.observe(Millis(0), &[rec("a", 1, 5, Status::Active)], &[]);
        m.observe(Millis(10_000), &[rec("a", 2, 0, Status::Active)], &[]);
        // Nobody asked about life 1 until much later: the timeout still runs from 10 s.
        m.observe(Millis(39_999), &[rec("a", 2, 3, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(39_999), &owner("a", 1), HT),
            Liveness::Alive
        );
        m.observe(Millis(40_000), &[rec("a", 2, 4, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(40_000), &owner("a", 1), HT),
            Liveness::Dead
        );
        // A life never seen current starts its timeout when a read first names it.
        m.notice(Millis(40_000), &owner("b", 7));
        m.observe(Millis(70_000), &[rec("a", 2, 5, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(70_000), &owner("b", 7), HT),
            Liveness::Dead
        );
    }

    #[test]
    fn a_life_seen_current_after_its_ghost_timer_started_waits_a_full_timeout_once_superseded() {
        // A read whose later page named a@2 while its instance page still showed a@1 (or a read
        // that lacked a's record) starts a ghost timer for a@2 at 0.
        let mut m = Membership::default();
        m.observe(Millis(0), &[rec("a", 1, 5, Status::Active)], &[]);
        assert_eq!(m.liveness(Millis(0), &owner("a", 2), HT), Liveness::Alive);
        // a@2 then heartbeats for ten minutes, seen current by every read.
        for t in (10..=600).step_by(10) {
            m.observe(Millis(t * 1000), &[rec("a", 2, t, Status::Active)], &[]);
        }
        // a@3 registers: a@2 may be a paused process whose fence runs for another timeout.
        m.observe(Millis(610_000), &[rec("a", 3, 0, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(610_000), &owner("a", 2), HT),
            Liveness::Alive,
            "condemned at once by the stale ghost timer"
        );
        m.observe(Millis(639_999), &[rec("a", 3, 1, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(639_999), &owner("a", 2), HT),
            Liveness::Alive
        );
        m.observe(Millis(640_000), &[rec("a", 3, 2, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(640_000), &owner("a", 2), HT),
            Liveness::Dead
        );
    }

    /// a@2 superseded by a@3, whose registration recorded `prior`.
    fn superseded(prior: (u64, u64)) -> InstanceRecord {
        let mut r = rec("a", 3, 0, Status::Active);
        r.prior = prior;
        r
    }

    #[test]
    fn a_ghost_whose_last_counter_this_observer_saw_is_timed_from_when_it_saw_it() {
        let mut m = Membership::default();
        m.observe(Millis(0), &[rec("a", 2, 6, Status::Active)], &[]);
        m.observe(Millis(10_000), &[rec("a", 2, 7, Status::Active)], &[]);
        // a@2 never beat again: a@3's registration found counter 7, first seen at 10 s.
        m.observe(Millis(25_000), &[superseded((2, 7))], &[]);
        m.observe(Millis(39_999), &[superseded((2, 7))], &[]);
        assert_eq!(
            m.liveness(Millis(39_999), &owner("a", 2), HT),
            Liveness::Alive
        );
        m.observe(Millis(40_000), &[superseded((2, 7))], &[]);
        assert_eq!(
            m.liveness(Millis(40_000), &owner("a", 2), HT),
            Liveness::Dead
        );
        assert_eq!(m.lapsable(HT), vec![owner("a", 2)]);
    }

    #[test]
    fn a_ghost_that_beat_after_this_observer_looked_is_timed_from_the_supersession() {
        for prior in [(2, 8), (1, 7), (0, 0)] {
            let mut m = Membership::default();
            m.observe(Millis(10_000), &[rec("a", 2, 7, Status::Active)], &[]);
            // Counter 8 (unseen here) may have been acknowledged just before a@3 registered;
            // a prior naming another life says nothing of a@2's last beat.
            m.observe(Millis(25_000), &[superseded(prior)], &[]);
            m.observe(Millis(54_999), &[superseded(prior)], &[]);
            assert_eq!(
                m.liveness(Millis(54_999), &owner("a", 2), HT),
                Liveness::Alive,
                "{prior:?}"
            );
            assert!(m.lapsable(HT).is_empty());
            m.observe(Millis(55_000), &[superseded(prior)], &[]);
            assert_eq!(
                m.liveness(Millis(55_000), &owner("a", 2), HT),
                Liveness::Dead,
                "{prior:?}"
            );
        }
    }

    #[test]
    fn a_lapsed_life_is_dead_for_an_observer_that_never_saw_it_and_no_other_life_is() {
        let mut m = Membership::default();
        let mut r = rec("a", 5, 0, Status::Active);
        r.lapsed = 3;
        m.observe(Millis(0), &[r], &[]);
        // a@2 may be an elder, or a newer life: once TTL deleted a dead record the id
        // registers afresh at a random incarnation, and a read of the old record (a page
        // served before the deletion) cannot speak for it. It is a ghost like a@4.
        for (life, want) in [
            (2, Liveness::Alive),
            (3, Liveness::Dead),
            (4, Liveness::Alive),
            (5, Liveness::Alive),
        ] {
            assert_eq!(m.liveness(Millis(0), &owner("a", life), HT), want, "{life}");
        }
        // a@2 and a@4 time out as ghosts here; this read shows no lapse, so both are lapsable.
        m.observe(Millis(30_000), &[rec("a", 5, 3, Status::Active)], &[]);
        for life in [2, 4] {
            assert_eq!(
                m.liveness(Millis(30_000), &owner("a", life), HT),
                Liveness::Dead,
                "{life}"
            );
        }
        assert_eq!(m.lapsable(HT), vec![owner("a", 2), owner("a", 4)]);
        let mut lapsed = rec("a", 5, 4, Status::Active);
        lapsed.lapsed = 4;
        m.observe(Millis(40_000), &[lapsed], &[]);
        assert!(m.lapsable(HT).is_empty());
    }

    #[test]
    fn a_stale_dead_record_does_not_condemn_a_life_registered_after_its_deletion() {
        let mut m = Membership::default();
        let mut old = rec("a", 9, 5, Status::Dead);
        (old.ended, old.lapsed) = (9, 9);
        m.observe(Millis(0), &[old], &[]);
        // TTL deleted that record and `a` registered afresh at random incarnation 4; a table
        // read whose instance page came before the deletion names the new life as an owner.
        assert_eq!(m.liveness(Millis(0), &owner("a", 4), HT), Liveness::Alive);
        assert_eq!(m.liveness(Millis(0), &owner("a", 9), HT), Liveness::Dead);
    }

    #[test]
    fn verdicts_change_with_liveness_not_with_every_heartbeat() {
        let mut m = Membership::default();
        m.observe(Millis(0), &[rec("a", 1, 1, Status::Active)], &[]);
        let first = m.verdicts(HT);
        m.observe(Millis(10_000), &[rec("a", 1, 2, Status::Active)], &[]);
        assert_eq!(
            m.verdicts(HT),
            first,
            "a heartbeat alone changes no verdict"
        );
        m.observe(Millis(39_999), &[rec("a", 1, 2, Status::Active)], &[]);
        assert_eq!(m.verdicts(HT), first);
        m.observe(Millis(40_000), &[rec("a", 1, 2, Status::Active)], &[]);
        let expired = m.verdicts(HT);
        assert_ne!(expired, first, "expiry is a verdict");
        m.observe(Millis(41_000), &[rec("a", 1, 2, Status::Draining)], &[]);
        assert_ne!(m.verdicts(HT), expired, "a status change is a verdict");
        let mut capacity = rec("a", 1, 2, Status::Draining);
        capacity.capacity = 3;
        let before = m.verdicts(HT);
        m.observe(Millis(42_000), &[capacity], &[]);
        assert_ne!(m.verdicts(HT), before, "capacity changes the target");
    }

    #[test]
    fn ghosts_wait_out_the_timeout_from_first_notice() {
        let mut m = Membership::default();
        m.observe(Millis(0), &[rec("a", 2, 0, Status::Active)], &[]);
        assert_eq!(m.liveness(Millis(10), &owner("a", 1), HT), Liveness::Alive);
        // Time alone is not enough: a read at least the timeout after the first notice is.
        assert_eq!(
            m.liveness(Millis(40_000), &owner("a", 1), HT),
            Liveness::Alive
        );
        m.observe(Millis(30_009), &[rec("a", 2, 1, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(40_000), &owner("a", 1), HT),
            Liveness::Alive
        );
        m.observe(Millis(30_010), &[rec("a", 2, 2, Status::Active)], &[]);
        assert_eq!(
            m.liveness(Millis(40_000), &owner("a", 1), HT),
            Liveness::Dead
        );
        assert_eq!(
            m.liveness(Millis(30_010), &owner("gone", 1), HT),
            Liveness::Alive
        );
    }

    #[test]
    fn members_are_the_active_and_alive_plus_me() {
        let mut m = Membership::default();
        m.observe(
            Millis(0),
            &[
                rec("a", 1, 0, Status::Active),
                rec("b", 1, 0, Status::Draining),
                rec("c", 1, 0, Status::Dead),
            ],
            &[],
        );
        let me = Member {
            id: InstanceId::new("z").unwrap(),
            weight: 3,
        };
        let got = m.members(HT, Some(&me));
        let ids: Vec<_> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "z"]);
        assert_eq!(m.liveness(Millis(1), &owner("c", 1), HT), Liveness::Dead);
        m.observe(Millis(30_000), &[rec("a", 1, 0, Status::Active)], &[]);
        assert!(m.members(HT, None).is_empty());
    }

    /// One step of the property below: a read of records drawn from a few ids, a reap, or
    /// the questions that start ghost timers.
    #[derive(Clone, Debug)]
    enum Step {
        Observe(Vec<(u8, u64, u64, u8)>),
        MarkDead(u8, u64),
        Ask(u8, u64),
    }

    fn status(s: u8) -> Status {
        [Status::Active, Status::Draining, Status::Dead][usize::from(s % 3)]
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let record = (0u8..5, 1u64..4, 0u64..3, 0u8..3);
        prop_oneof![
            proptest::collection::vec(record, 0..6).prop_map(Step::Observe),
            (0u8..5, 1u64..4).prop_map(|(i, n)| Step::MarkDead(i, n)),
            (0u8..5, 1u64..4).prop_map(|(i, n)| Step::Ask(i, n)),
        ]
    }

    proptest::proptest! {
        /// The node recomputes its members and their lives only when the version changed, so
        /// an unchanged version must mean unchanged answers, whatever happened in between.
        #[test]
        fn an_unchanged_version_means_unchanged_members_and_lives(
            steps in proptest::collection::vec(step(), 1..30),
        ) {
            let mut m = Membership::default();
            let ids: Vec<String> = (0..5).map(|i| format!("i{i}")).collect();
            let answers = |m: &Membership| {
                let lives: Vec<_> = ids.iter().map(|i| m.life_of(&InstanceId::new(i).unwrap())).collect();
                (m.members(HT, None), lives)
            };
            for (t, s) in steps.into_iter().enumerate() {
                let now = Millis(t as u64 * 10_000);
                let (version, before) = (m.version(), answers(&m));
                match s {
                    Step::Observe(rs) => {
                        let mut rs: Vec<_> = rs
                            .into_iter()
                            .map(|(i, inc, hb, st)| rec(&ids[usize::from(i)], inc, hb, status(st)))
                            .collect();
                        rs.sort_by(|a, b| a.id.cmp(&b.id));
                        rs.dedup_by(|a, b| a.id == b.id);
                        m.observe(now, &rs, &[]);
                    }
                    Step::MarkDead(i, n) => m.mark_dead(owner(&ids[usize::from(i)], n)),
                    Step::Ask(i, n) => {
                        let o = owner(&ids[usize::from(i)], n);
                        m.notice(now, &o);
                        let _ = m.liveness(now, &o, HT);
                    }
                }
                if m.version() == version {
                    proptest::prop_assert_eq!(answers(&m), before);
                }
            }
        }
    }

    proptest::proptest! {
        /// After every read the observer holds each instance that read showed, with its
        /// record, silent since it last changed life, heartbeat or status (or since the read
        /// that first showed it), and no other instance.
        #[test]
        fn a_read_leaves_each_instance_it_shows_silent_since_its_last_sign_of_life(
            reads in proptest::collection::vec(
                proptest::collection::btree_map(0u8..5, (1u64..3, 0u64..3, 0u8..3, 0u64..2), 0..5),
                1..12,
            ),
        ) {
            let mut m = Membership::default();
            let mut want: BTreeMap<InstanceId, (InstanceRecord, Millis)> = BTreeMap::new();
            for (t, read) in reads.into_iter().enumerate() {
                let now = Millis(t as u64 * 10_000);
                let rs: Vec<InstanceRecord> = read
                    .into_iter()
                    .map(|(i, (inc, hb, st, inbox))| InstanceRecord {
                        inbox,
                        ..rec(&format!("i{i}"), inc, hb, status(st))
                    })
                    .collect();
                m.observe(now, &rs, &[]);
                let life = |r: &InstanceRecord| (r.incarnation, r.heartbeat, r.status);
                want = rs
                    .iter()
                    .map(|r| {
                        let since = match want.get(&r.id) {
                            Some((was, since)) if life(was) == life(r) => *since,
                            _ => now,
                        };
                        (r.id.clone(), (r.clone(), since))
                    })
                    .collect();
                let got: BTreeMap<InstanceId, (InstanceRecord, Millis)> = (m.seen.values())
                    .map(|s| (s.record.id.clone(), (s.record.clone(), s.since)))
                    .collect();
                proptest::prop_assert_eq!(got, want.clone());
            }
        }
    }
}

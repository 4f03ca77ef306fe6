//! What a watch of the coordination table observed: for each instance life, whether its
//! heartbeat counter moved; for each queue, since when it has had no live owner.
//!
//! Pure (times are offsets from the start of the watch), so the verdicts are unit-tested
//! without a table. Like the fleet itself, it judges liveness only by a counter seen standing
//! still on its own clock, never by comparing wall clocks.

use sqsbalancer_core::{
    InstanceId, InstanceRecord, Member, Owner, QueueId, QueueRecord, Status, assign,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// The heartbeat settings the fleet runs with: the table does not record them, so they come
/// from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// HeartbeatInterval.
    pub interval: Duration,
    /// HeartbeatTimeout.
    pub timeout: Duration,
}

impl Timing {
    /// How long a queue may go without a live owner after its owner crashed: HeartbeatTimeout
    /// for peers to condemn it, then up to two intervals to reap it and claim its queues.
    pub fn failover_bound(&self) -> Duration {
        self.timeout + 2 * self.interval
    }

    /// How long a counter must stand still to be called stale: a live instance beats twice
    /// in that time.
    pub fn stale_after(&self) -> Duration {
        2 * self.interval
    }
}

/// One life's heartbeat as watched.
#[derive(Clone, Copy, Debug)]
struct Beat {
    /// The counter last read.
    counter: u64,
    /// When that value was first read.
    since: Duration,
    /// Whether the counter changed while watched.
    moved: bool,
}

/// An instance's liveness as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Its counter moved recently.
    Alive,
    /// Its counter stood still for at least [`Timing::stale_after`].
    Stale,
    /// Not watched long enough to tell (one read, or a short watch).
    Unobserved,
    /// Its record says this life is over (deregistered or reaped).
    Ended,
}

impl Liveness {
    /// The word printed for it, given the status its record states.
    pub fn word(self, status: Status) -> &'static str {
        match (self, status) {
            (Liveness::Ended, _) | (_, Status::Dead) => "ended",
            (Liveness::Stale, _) => "stale",
            (Liveness::Alive, Status::Draining) => "draining",
            (Liveness::Alive, _) => "alive",
            (Liveness::Unobserved, Status::Draining) => "draining?",
            (Liveness::Unobserved, _) => "active?",
        }
    }
}

/// Why a queue has no live owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The record names no owner.
    NoOwner,
    /// The record names an instance with no instance record.
    OwnerUnknown,
    /// The owner's life ended (deregistered or reaped).
    OwnerEnded,
    /// The owner's instance re-registered: the named life is a ghost peers wait out.
    Ghost,
    /// The owner's heartbeat counter stood still.
    OwnerStale,
}

impl Why {
    /// The words printed for it.
    pub fn words(self) -> &'static str {
        match self {
            Why::NoOwner => "no owner",
            Why::OwnerUnknown => "owner has no record",
            Why::OwnerEnded => "owner ended",
            Why::Ghost => "owner superseded",
            Why::OwnerStale => "owner stale",
        }
    }
}

/// One instance in the report.
#[derive(Clone, Debug)]
pub struct InstanceRow {
    /// Its current life.
    pub life: Owner,
    /// The heartbeat counter last read.
    pub heartbeat: u64,
    /// Whether the counter moved while watched; `None` when this life was read only once.
    pub advanced: Option<bool>,
    /// How long the counter has been seen standing still.
    pub unchanged_for: Duration,
    /// The status its record states.
    pub status: Status,
    /// What was observed.
    pub liveness: Liveness,
    /// Its capacity weight.
    pub capacity: u32,
    /// The queues this life owns.
    pub queues: Vec<QueueId>,
    /// Its exact fair share by capacity; `None` when it takes no queues (not an active live
    /// member).
    pub fair: Option<usize>,
}

/// One queue without a live owner.
#[derive(Clone, Debug)]
pub struct UnownedRow {
    /// The queue.
    pub queue: QueueId,
    /// The life its record names, if any.
    pub owner: Option<Owner>,
    /// Why that is not a live owner.
    pub why: Why,
    /// How long it has been seen without a live owner.
    pub unowned_for: Duration,
    /// Whether that is at least the failover bound.
    pub past_bound: bool,
}

/// Owned counts against the fair split, over the members taking queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// The fewest queues a member owns.
    pub owned_min: usize,
    /// The most queues a member owns.
    pub owned_max: usize,
    /// The smallest fair share.
    pub fair_min: usize,
    /// The largest fair share.
    pub fair_max: usize,
    /// Every member owns exactly its fair share and no queue is unowned.
    pub balanced: bool,
}

/// Everything observed, as of the last read.
#[derive(Clone, Debug)]
pub struct Report {
    /// Successful reads.
    pub reads: usize,
    /// From the first read to the last.
    pub window: Duration,
    /// The settings judged by.
    pub timing: Timing,
    /// Every instance record, by id.
    pub instances: Vec<InstanceRow>,
    /// Queue records that are not tombstones.
    pub queues: usize,
    /// Tombstones (queues found gone).
    pub retired: usize,
    /// Partition keys the queue records are spread over (the application's layout).
    pub queue_partition_keys: u32,
    /// Partition keys the instance records are spread over (the application's layout).
    pub instance_partition_keys: u32,
    /// Queues without a live owner.
    pub unowned: Vec<UnownedRow>,
    /// Listed queues matching the pattern that have no queue record (`None`: not listed).
    pub unrecorded: Option<Vec<QueueId>>,
    /// `None` when no instance takes queues.
    pub balance: Option<Balance>,
}

impl Report {
    /// Whether staleness could be observed (the watch lasted at least two intervals).
    pub fn staleness_observed(&self) -> bool {
        self.window >= self.timing.stale_after()
    }

    /// The queues unowned for at least the failover bound.
    pub fn stuck(&self) -> Vec<&UnownedRow> {
        self.unowned.iter().filter(|u| u.past_bound).collect()
    }
}

/// Accumulates reads of one application's records.
#[derive(Debug)]
pub struct Observer {
    timing: Timing,
    reads: usize,
    first: Duration,
    last: Duration,
    beats: BTreeMap<Owner, Beat>,
    instances: Vec<InstanceRecord>,
    queues: Vec<QueueRecord>,
    /// The layout's partition keys: queue records, instance records.
    keys: (u32, u32),
    unowned_since: BTreeMap<QueueId, Duration>,
}

fn life(r: &InstanceRecord) -> Owner {
    Owner {
        id: r.id.clone(),
        incarnation: r.incarnation,
    }
}

impl Observer {
    /// An observer that has read nothing yet.
    pub fn new(timing: Timing) -> Observer {
        Observer {
            timing,
            reads: 0,
            first: Duration::ZERO,
            last: Duration::ZERO,
            beats: BTreeMap::new(),
            instances: Vec::new(),
            queues: Vec::new(),
            keys: (1, 1),
            unowned_since: BTreeMap::new(),
        }
    }

    /// Successful reads so far.
    pub fn reads(&self) -> usize {
        self.reads
    }

    /// Takes in one read of the records, made `at` after the watch started, in a layout of
    /// `keys` (queue keys, instance keys). The instances are shown in id order, whatever order
    /// the layout's queries returned them in.
    pub fn observe(
        &mut self,
        at: Duration,
        keys: (u32, u32),
        mut instances: Vec<InstanceRecord>,
        queues: Vec<QueueRecord>,
    ) {
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        self.keys = keys;
        if self.reads == 0 {
            self.first = at;
        }
        self.reads += 1;
        self.last = at;
        for r in instances.iter().filter(|r| r.status != Status::Dead) {
            let beat = self.beats.entry(life(r)).or_insert(Beat {
                counter: r.heartbeat,
                since: at,
                moved: false,
            });
            if beat.counter != r.heartbeat {
                *beat = Beat {
                    counter: r.heartbeat,
                    since: at,
                    moved: true,
                };
            }
        }
        self.beats
            .retain(|o, _| instances.iter().any(|r| life(r) == *o));
        self.instances = instances;
        self.queues = queues;
        let verdicts: BTreeMap<QueueId, Duration> = self
            .queues
            .iter()
            .filter(|q| !q.retired)
            .filter_map(|q| {
                self.why_unowned(q)
                    .map(|(_, since)| (q.queue.clone(), since))
            })
            .collect();
        self.unowned_since.retain(|q, _| verdicts.contains_key(q));
        for (q, since) in verdicts {
            self.unowned_since.entry(q).or_insert(since);
        }
    }

    fn liveness(&self, r: &InstanceRecord) -> Liveness {
        if r.status == Status::Dead {
            return Liveness::Ended;
        }
        match self.beats.get(&life(r)) {
            Some(b) if self.last - b.since >= self.timing.stale_after() => Liveness::Stale,
            Some(b) if b.moved => Liveness::Alive,
            _ => Liveness::Unobserved,
        }
    }

    /// Why `q` has no live owner (and since when that is known), or `None` if it has one.
    fn why_unowned(&self, q: &QueueRecord) -> Option<(Why, Duration)> {
        let now = self.last;
        let Some(o) = &q.owner else {
            return Some((Why::NoOwner, now));
        };
        let Some(r) = self.instances.iter().find(|r| r.id == o.id) else {
            return Some((Why::OwnerUnknown, now));
        };
        if r.incarnation == o.incarnation {
            return match self.liveness(r) {
                Liveness::Ended => Some((Why::OwnerEnded, now)),
                Liveness::Stale => Some((Why::OwnerStale, self.beats[o].since)),
                Liveness::Alive | Liveness::Unobserved => None,
            };
        }
        if r.incarnation < o.incarnation {
            Some((Why::OwnerUnknown, now))
        } else if o.incarnation <= r.ended {
            Some((Why::OwnerEnded, now))
        } else {
            Some((Why::Ghost, now))
        }
    }

    /// The report as of the last read; `unrecorded` is the listing's verdict, if one was made.
    pub fn report(&self, unrecorded: Option<Vec<QueueId>>) -> Report {
        let fair = self.fair_shares();
        let instances: Vec<InstanceRow> = self
            .instances
            .iter()
            .map(|r| self.instance_row(r, &fair))
            .collect();
        let unowned = self.unowned_rows();
        let balance = balance(&instances, &unowned);
        let live = self.live().count();
        Report {
            reads: self.reads,
            window: self.last - self.first,
            timing: self.timing,
            instances,
            queues: live,
            retired: self.queues.len() - live,
            queue_partition_keys: self.keys.0,
            instance_partition_keys: self.keys.1,
            unowned,
            unrecorded,
            balance,
        }
    }

    /// The queues not retired: the ones that should have a live owner.
    fn live(&self) -> impl Iterator<Item = &QueueRecord> {
        self.queues.iter().filter(|q| !q.retired)
    }

    /// The live queues `o` holds and is still live enough to keep.
    fn owned_by(&self, o: &Owner) -> Vec<QueueId> {
        self.live()
            .filter(|q| q.owner.as_ref() == Some(o) && self.why_unowned(q).is_none())
            .map(|q| q.queue.clone())
            .collect()
    }

    /// Whether `r` counts as a member for the fair shares: active, and not seen stale or ended.
    fn takes_queues(&self, r: &InstanceRecord) -> bool {
        r.status == Status::Active
            && matches!(self.liveness(r), Liveness::Alive | Liveness::Unobserved)
    }

    /// Each member's fair share: the live queues as `assign` spreads them over the members,
    /// keeping the queues they own now where it can.
    fn fair_shares(&self) -> BTreeMap<InstanceId, usize> {
        let members: Vec<Member> = self
            .instances
            .iter()
            .filter(|r| self.takes_queues(r))
            .map(|r| Member::new(r.id.clone(), r.capacity))
            .collect();
        let current: BTreeMap<QueueId, InstanceId> = self
            .instances
            .iter()
            .filter(|r| self.takes_queues(r))
            .flat_map(|r| {
                self.owned_by(&life(r))
                    .into_iter()
                    .map(|q| (q, r.id.clone()))
            })
            .collect();
        let ids: Vec<QueueId> = self.live().map(|q| q.queue.clone()).collect();
        assign(&members, &ids, &current).load()
    }

    /// One instance's row: its heartbeat as watched, its liveness, what it owns and its fair
    /// share (none unless it takes queues).
    fn instance_row(&self, r: &InstanceRecord, fair: &BTreeMap<InstanceId, usize>) -> InstanceRow {
        let beat = self.beats.get(&life(r));
        InstanceRow {
            life: life(r),
            heartbeat: r.heartbeat,
            advanced: beat
                .filter(|b| b.moved || self.last > b.since)
                .map(|b| b.moved),
            unchanged_for: beat.map_or(Duration::ZERO, |b| self.last - b.since),
            status: r.status,
            liveness: self.liveness(r),
            capacity: r.capacity,
            queues: self.owned_by(&life(r)),
            fair: self
                .takes_queues(r)
                .then(|| fair.get(&r.id).copied())
                .flatten(),
        }
    }

    /// One row per live queue without a live owner: why, for how long, and whether that is
    /// past the failover bound.
    fn unowned_rows(&self) -> Vec<UnownedRow> {
        let bound = self.timing.failover_bound();
        self.live()
            .filter_map(|q| {
                let (why, _) = self.why_unowned(q)?;
                let unowned_for = self.last - self.unowned_since[&q.queue];
                Some(UnownedRow {
                    queue: q.queue.clone(),
                    owner: q.owner.clone(),
                    why,
                    unowned_for,
                    past_bound: unowned_for >= bound,
                })
            })
            .collect()
    }
}

/// The spread of owned queues and fair shares over the members; `None` when no instance takes
/// queues. Balanced only if every member owns its fair share and no queue is unowned.
fn balance(instances: &[InstanceRow], unowned: &[UnownedRow]) -> Option<Balance> {
    let pairs: Vec<(usize, usize)> = instances
        .iter()
        .filter_map(|i| Some((i.queues.len(), i.fair?)))
        .collect();
    (!pairs.is_empty()).then(|| Balance {
        owned_min: pairs.iter().map(|p| p.0).min().unwrap_or(0),
        owned_max: pairs.iter().map(|p| p.0).max().unwrap_or(0),
        fair_min: pairs.iter().map(|p| p.1).min().unwrap_or(0),
        fair_max: pairs.iter().map(|p| p.1).max().unwrap_or(0),
        balanced: unowned.is_empty() && pairs.iter().all(|(o, f)| o == f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    };

    fn inst(id: &str, incarnation: u64, heartbeat: u64, status: Status) -> InstanceRecord {
        let mut r = InstanceRecord::new(InstanceId::new(id).unwrap());
        r.incarnation = incarnation;
        r.heartbeat = heartbeat;
        r.status = status;
        r.ended = if status == Status::Dead {
            incarnation
        } else {
            0
        };
        r
    }

    fn queue(n: usize, owner: Option<(&str, u64)>) -> QueueRecord {
        let mut r = QueueRecord::new(QueueId::new(&format!("https://sqs.local/1/q-{n}")).unwrap());
        r.owner = owner.map(|(id, incarnation)| Owner {
            id: InstanceId::new(id).unwrap(),
            incarnation,
        });
        r.epoch = 2;
        r
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn instances_are_shown_in_id_order_whatever_order_they_were_read_in() {
        let mut o = Observer::new(TIMING);
        let read = ["c", "a", "b"].map(|id| inst(id, 1, 5, Status::Active));
        o.observe(secs(0), (1, 2), read.to_vec(), Vec::new());
        let ids: Vec<String> = o
            .report(None)
            .instances
            .iter()
            .map(|i| i.life.id.to_string())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn one_read_judges_no_heartbeat_and_no_queue_past_the_bound() {
        let mut o = Observer::new(TIMING);
        o.observe(
            secs(0),
            (1, 1),
            vec![inst("a", 1, 5, Status::Active)],
            vec![queue(0, Some(("a", 1))), queue(1, None)],
        );
        let r = o.report(None);
        assert!(!r.staleness_observed());
        assert_eq!(r.instances[0].liveness, Liveness::Unobserved);
        assert_eq!(r.instances[0].advanced, None);
        assert_eq!(r.instances[0].fair, Some(2));
        assert_eq!(r.unowned.len(), 1);
        assert!(r.stuck().is_empty());
        assert_eq!(r.balance.map(|b| b.balanced), Some(false));
    }

    #[test]
    fn a_still_counter_is_stale_and_its_queues_unowned_since_it_stopped() {
        let mut o = Observer::new(TIMING);
        let queues = vec![queue(0, Some(("a", 1))), queue(1, Some(("b", 1)))];
        for t in 0..=8 {
            o.observe(
                secs(t),
                (1, 1),
                vec![
                    inst("a", 1, 10 + t, Status::Active),
                    inst("b", 1, 3, Status::Active),
                ],
                queues.clone(),
            );
        }
        let r = o.report(None);
        assert!(r.staleness_observed());
        let words: Vec<&str> = r
            .instances
            .iter()
            .map(|i| i.liveness.word(i.status))
            .collect();
        assert_eq!(words, ["alive", "stale"]);
        assert_eq!(r.instances[1].advanced, Some(false));
        assert_eq!(r.unowned.len(), 1);
        assert_eq!(r.unowned[0].why, Why::OwnerStale);
        assert_eq!(
            r.unowned[0].unowned_for,
            secs(8),
            "since b's counter was first read"
        );
        assert_eq!(r.stuck().len(), 1, "8 s is past the 7 s bound");
        assert_eq!(
            r.instances[0].fair,
            Some(2),
            "a stale instance takes no share"
        );
    }

    #[test]
    fn ended_lives_and_ghosts_own_nothing_and_an_owned_queue_resets_the_clock() {
        let mut o = Observer::new(TIMING);
        let ended = inst("b", 2, 7, Status::Dead);
        let mut reborn = inst("c", 3, 0, Status::Active);
        reborn.ended = 1;
        o.observe(
            secs(0),
            (1, 1),
            vec![
                inst("a", 1, 1, Status::Active),
                ended.clone(),
                reborn.clone(),
            ],
            vec![
                queue(0, Some(("b", 2))),
                queue(1, Some(("c", 2))),
                queue(2, Some(("c", 1))),
                queue(3, Some(("z", 1))),
            ],
        );
        o.observe(
            secs(9),
            (1, 1),
            vec![inst("a", 1, 9, Status::Active), ended, reborn],
            vec![
                queue(0, Some(("a", 1))),
                queue(1, Some(("c", 2))),
                queue(2, Some(("c", 1))),
                queue(3, Some(("z", 1))),
            ],
        );
        let r = o.report(None);
        let whys: Vec<(Why, bool)> = r.unowned.iter().map(|u| (u.why, u.past_bound)).collect();
        assert_eq!(
            whys,
            [
                (Why::Ghost, true),
                (Why::OwnerEnded, true),
                (Why::OwnerUnknown, true)
            ]
        );
        assert_eq!(
            r.instances[0].queues.len(),
            1,
            "claimed, so no longer unowned"
        );
        assert_eq!(r.instances[1].liveness, Liveness::Ended);
    }
}

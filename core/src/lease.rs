//! Queue leases: this node's view of the queue records, its own holdings, and its self-fence.
//!
//! Safety rests on three rules kept here and in [`crate::Node`]:
//! - a node receives from a queue only after its own conditional write named it owner, or a read
//!   showed a record naming its current life;
//! - a node that sees a record naming anyone else stops that queue at once;
//! - no receive may be in flight at or after the self-fence: the send time of the last
//!   acknowledged heartbeat plus HeartbeatTimeout minus the margin. A peer condemns this node only
//!   after its counter stood still for HeartbeatTimeout from the peer's first sight of it (which
//!   is after that heartbeat was sent), and only after reaping it, which rejects any heartbeat
//!   still in flight; so the fence has passed by then.

use crate::assignment::NO_HOLDER;
use crate::effect::QueueRecord;
use crate::ids::{Owner, QueueId};
use crate::page::{self, QueuePage};
use crate::time::Millis;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;
use std::sync::Arc;
use std::time::Duration;

/// What happens to a queue once its pollers have stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterStop {
    /// Hand it to its target owner (or release it if there is none).
    HandOff,
    /// It is gone: retire its record.
    Retire,
    /// Someone else owns it now (or this life ended): nothing to write.
    Forget,
}

/// This node's own state for one queue it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Pollers running, owned at `epoch`.
    Receiving {
        /// The epoch of the record naming this life.
        epoch: u64,
    },
    /// Pollers asked to stop; waiting for [`crate::Input::ReceivingStopped`].
    Stopping {
        /// The epoch it was held at.
        epoch: u64,
        /// What to do once stopped.
        then: AfterStop,
    },
}

/// The queue records as this node last knew them.
///
/// Reads are full snapshots, one at a time, so each is newer than the one before; the only thing
/// a snapshot can be older than is this node's own write that completed after the read was sent.
/// The sequence number of each such write is kept until a snapshot sent after it, and a snapshot
/// sent before it leaves the record alone.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueueView {
    /// Every known record, sorted by queue: each shared with the read that brought it (in the
    /// simulator, with every other node's view of the same stored item), so a view costs a
    /// pointer per queue, which is what lets level 1 hold a thousand views of a large table.
    records: Vec<Arc<QueueRecord>>,
    /// The sequence number of this node's own write that last set a record, for the writes
    /// that the last snapshot was sent before.
    touched: BTreeMap<QueueId, u64>,
    /// The sequence number the last merged snapshot's read was sent at (0: none yet).
    snapshot: u64,
    /// Queues whose record changed since [`QueueView::take_changes`] was last called.
    changes: BTreeSet<QueueId>,
    /// The lives that own records, kept as records change: the lives are asked for after
    /// every table read, and counting them afresh was a pass over every record.
    owners: Owners,
    /// Each record's owner and score, in the order of `records`: a target reads these rather
    /// than the records, whose loading (a cache miss each) was most of computing a target at
    /// 1,000 × 100,000.
    slots: Vec<Slot>,
    /// The live (not retired) queues, sorted, once asked for and until one joins or leaves:
    /// most records that change only change owner, and every target shares this list.
    live: Option<Arc<[QueueId]>>,
    /// Where the last snapshot's records went in `records`: a snapshot of the same queues cut
    /// into the same pages (most reads of a settled fleet) is put in order by it, where
    /// sorting a read was a fifth of a rolling 1,000-node fleet's time. It is checked record
    /// by record before use, so a queue that joined or left since costs one sort, not a
    /// wrong view.
    layout: Option<page::Layout>,
}

/// What a merge sets aside as it walks: this node's own records written after the read that
/// the read lacks, and the queues whose record changed, in queue order.
#[derive(Default)]
struct MergeOut {
    /// Records kept from the view, with their slots.
    kept: Vec<(Arc<QueueRecord>, Slot)>,
    /// Queues whose record appeared, changed or vanished.
    changes: Vec<QueueId>,
}

/// What a view keeps beside each record for computing targets, packed to 12 bytes: a view
/// of 100,000 queues holds 100,000 of them on each of a simulation's 1,000 nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(4))]
struct Slot {
    /// The slot of the life the record names in [`Owners`] (or [`RETIRED`], [`UNOWNED`]).
    life: u32,
    /// The rendezvous score of the record's queue for the instance it names, or [`UNSCORED`]
    /// until a target first needs it: a target keeps a member's best-scoring queues when it
    /// holds more than its quota, and hashing their URLs at every target was a third of a
    /// rolling fleet's time (and scoring every record as it arrived slowed the start).
    score: u64,
}

/// A [`Slot`]'s score not computed yet. A queue whose score happens to be this is scored at
/// every target that needs it, as every queue once was.
pub(crate) const UNSCORED: u64 = 0;

/// The slot of a retired record, whoever it names: not a live queue.
const RETIRED: u32 = u32::MAX;
/// The slot of a live record that names no owner.
const UNOWNED: u32 = u32::MAX - 1;

/// The lives that own records, each in a slot of its own while any record names it.
#[derive(Clone, Debug, Default)]
struct Owners {
    /// The slots of the owning lives, by incarnation: incarnations start at random, so finding
    /// a life compares numbers rather than ids' text, as a tree of lives did for every record
    /// that changed owner.
    by_incarnation: BTreeMap<u64, Vec<u32>>,
    /// The life in each slot (`None`: free).
    lives: Vec<Option<Owner>>,
    /// How many records name the life in each slot.
    counts: Vec<usize>,
    /// The free slots, taken by the next new owner.
    free: Vec<u32>,
}

/// The old records of a merge, each with its slot, walked in queue order.
type Walk =
    Peekable<std::iter::Zip<std::vec::IntoIter<Arc<QueueRecord>>, std::vec::IntoIter<Slot>>>;

impl Owners {
    /// The slot of `owner`, if any record names it.
    fn slot_of(&self, owner: &Owner) -> Option<u32> {
        let slots = self.by_incarnation.get(&owner.incarnation)?;
        let named = |s: &&u32| {
            self.lives[**s as usize]
                .as_ref()
                .is_some_and(|l| l.id == owner.id)
        };
        slots.iter().find(named).copied()
    }

    /// Counts `record`'s owner once more, and returns the record's slot.
    fn add(&mut self, record: &QueueRecord) -> u32 {
        let slot = match &record.owner {
            None => UNOWNED,
            Some(o) => match self.slot_of(o) {
                Some(slot) => {
                    self.counts[slot as usize] += 1;
                    slot
                }
                None => {
                    let slot = self.free.pop().unwrap_or(self.lives.len() as u32);
                    if slot as usize == self.lives.len() {
                        self.lives.push(None);
                        self.counts.push(0);
                    }
                    self.lives[slot as usize] = Some(o.clone());
                    self.counts[slot as usize] = 1;
                    self.by_incarnation
                        .entry(o.incarnation)
                        .or_default()
                        .push(slot);
                    slot
                }
            },
        };
        if record.retired { RETIRED } else { slot }
    }

    /// Stops counting `record`'s owner once, freeing its slot when no record names it.
    fn remove(&mut self, record: &QueueRecord) {
        let Some(o) = &record.owner else { return };
        let Some(slot) = self.slot_of(o) else { return };
        self.counts[slot as usize] -= 1;
        if self.counts[slot as usize] > 0 {
            return;
        }
        self.lives[slot as usize] = None;
        self.free.push(slot);
        if let Some(slots) = self.by_incarnation.get_mut(&o.incarnation) {
            slots.retain(|s| *s != slot);
            if slots.is_empty() {
                self.by_incarnation.remove(&o.incarnation);
            }
        }
    }

    /// Counts `record`'s owner once more, and returns the record's [`Slot`], unscored.
    fn add_slot(&mut self, record: &QueueRecord) -> Slot {
        Slot {
            life: self.add(record),
            score: UNSCORED,
        }
    }
}

/// The scores of a view's live queues, by their place among them ([`QueueView::live_scores`]).
pub(crate) struct LiveScores<'a> {
    /// The view's slots, whose scores these are.
    slots: &'a mut [Slot],
    /// Each live queue's place in `slots`, when retired records sit among them (`None`: the
    /// same place).
    at: Option<Vec<u32>>,
}

impl LiveScores<'_> {
    /// The score of the `live`-th live queue: the kept one, or `compute`'s, which is kept.
    pub fn get(&mut self, live: u32, compute: impl FnOnce() -> u64) -> u64 {
        let i = self.at.as_ref().map_or(live, |at| at[live as usize]) as usize;
        let kept = self.slots[i].score;
        if kept != UNSCORED {
            return kept;
        }
        let score = compute();
        self.slots[i].score = score;
        score
    }
}

impl QueueView {
    /// Takes the queues whose record changed (appeared, changed or vanished) since the last call.
    pub fn take_changes(&mut self) -> BTreeSet<QueueId> {
        std::mem::take(&mut self.changes)
    }

    /// Whether any record changed since [`QueueView::take_changes`] was last called.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The sequence number the last merged snapshot's read was sent at (0: none yet).
    pub fn snapshot(&self) -> u64 {
        self.snapshot
    }

    /// Replaces the view with a snapshot, `pages` in any order, whose read was sent at
    /// sequence `sent`.
    /// Returns how many queues' records appeared, changed or vanished: all a read of only
    /// what changed would have had to bring (docs/design.md §4.12).
    pub fn merge_snapshot(&mut self, sent: u64, pages: &[QueuePage]) -> usize {
        let differing = self
            .layout
            .as_ref()
            .and_then(|l| l.differing(pages, &self.records));
        let changed = match differing {
            Some(differing) => self.merge_differing(sent, differing),
            None => self.merge_sorted(sent, pages),
        };
        self.touched.retain(|_, seq| *seq > sent);
        self.snapshot = self.snapshot.max(sent);
        changed
    }

    /// Merges a snapshot sent at `sent` of the view's very queues, of which `differing`
    /// (with their places, in order) are not the view's own records: the rest of the view
    /// stays as it is, untouched.
    fn merge_differing(&mut self, sent: u64, differing: Vec<(usize, &Arc<QueueRecord>)>) -> usize {
        let mut out = MergeOut::default();
        for (at, r) in differing {
            let was = &self.records[at];
            if self.written_after(&r.queue, sent) {
                // This node's own later write stays unless the read shows a later epoch.
                if r.epoch <= was.epoch {
                    continue;
                }
                self.touched.remove(&r.queue);
            }
            let was = (Arc::clone(was), self.slots[at]);
            (self.records[at], self.slots[at]) = self.take_read(Some(was), r, &mut out);
        }
        let changed = out.changes.len();
        self.changes.append(&mut out.changes.into_iter().collect());
        changed
    }

    /// Merges a snapshot sent at `sent` by sorting it and walking it beside the view.
    fn merge_sorted(&mut self, sent: u64, pages: &[QueuePage]) -> usize {
        // Walk the view and the sorted read side by side, moving each unchanged record's
        // pointer from the old view to the new: a read of a quiet table touches no record,
        // not even its reference count.
        let (read, layout) = page::sorted_unique(pages);
        let mut own = self.own_writes_after(sent, &read).into_iter().peekable();
        let old_slots = std::mem::take(&mut self.slots).into_iter();
        let mut old = std::mem::take(&mut self.records)
            .into_iter()
            .zip(old_slots)
            .peekable();
        let mut records = Vec::with_capacity(read.len());
        let mut slots = Vec::with_capacity(read.len());
        let mut out = MergeOut::default();
        for (i, r) in read.into_iter().enumerate() {
            let written;
            let r = match own.next_if(|(j, _)| *j == i) {
                Some((_, w)) => {
                    written = w;
                    &written
                }
                None => r,
            };
            let was = self.walk_to(&mut old, r, sent, &mut out);
            let (record, slot) = self.take_read(was, r, &mut out);
            records.push(record);
            slots.push(slot);
        }
        for o in old {
            self.drop_unless_written(o, sent, &mut out);
        }
        // Each read record has the place the layout gives it, unless kept ones join.
        self.layout = layout.filter(|_| out.kept.is_empty());
        if !out.kept.is_empty() {
            let mut both: Vec<(Arc<QueueRecord>, Slot)> = records.into_iter().zip(slots).collect();
            both.extend(out.kept);
            both.sort_by(|(a, _), (b, _)| a.queue.cmp(&b.queue));
            (records, slots) = both.into_iter().unzip();
        }
        self.records = records;
        self.slots = slots;
        let changed = out.changes.len();
        // In queue order, so the set is built in one pass rather than searched per queue.
        self.changes.append(&mut out.changes.into_iter().collect());
        changed
    }

    /// The record and slot the merged view keeps for `r`, a read record whose queue the view
    /// had as `was` (with its slot), counting the change in `out`.
    fn take_read(
        &mut self,
        was: Option<(Arc<QueueRecord>, Slot)>,
        r: &Arc<QueueRecord>,
        out: &mut MergeOut,
    ) -> (Arc<QueueRecord>, Slot) {
        match was {
            // The view's own copy of this very record, most of a read.
            Some((o, slot)) if Arc::ptr_eq(&o, r) => (o, slot),
            // An equal copy replaces the old one, so that the next read finds the very record
            // (and shares the simulator's one copy).
            Some((o, slot)) if o == *r => (Arc::clone(r), slot),
            Some((o, _)) => {
                if o.retired != r.retired {
                    self.live = None;
                }
                let slot = self.owners.add_slot(r);
                self.owners.remove(&o);
                out.changes.push(o.queue.clone());
                (Arc::clone(r), slot)
            }
            None => {
                self.live = None;
                out.changes.push(r.queue.clone());
                (Arc::clone(r), self.owners.add_slot(r))
            }
        }
    }

    /// This node's own records written after `sent` that `read`, a snapshot sent at `sent`
    /// sorted by queue, has at an older or the same epoch, each beside its place in `read`
    /// (in order), and forgets the writes it shows a later epoch for. Done per write rather
    /// than per record: looking each record up among the writes loaded every record the view
    /// held.
    fn own_writes_after(
        &mut self,
        sent: u64,
        read: &[&Arc<QueueRecord>],
    ) -> Vec<(usize, Arc<QueueRecord>)> {
        let after = self.touched.iter().filter(|(_, seq)| **seq > sent);
        let after: Vec<QueueId> = after.map(|(q, _)| q.clone()).collect();
        let mut own = Vec::new();
        for q in after {
            let Ok(i) = self.find(&q) else { continue };
            let Ok(j) = read.binary_search_by(|r| r.queue.cmp(&q)) else {
                continue;
            };
            if read[j].epoch <= self.records[i].epoch {
                own.push((j, Arc::clone(&self.records[i])));
            } else {
                self.touched.remove(&q);
            }
        }
        // `touched` is in queue order already, as `read` is.
        own.sort_by_key(|(j, _)| *j);
        own
    }

    /// Takes in a read of the records of `asked` (sorted) sent at sequence `sent`, which found
    /// `found`: each asked queue changes under a snapshot's rules (this node's own write
    /// completed after the read was sent stays unless the read shows a later epoch; a queue
    /// the read did not find is dropped), and every other queue stays as it was. Records of
    /// queues not asked for are ignored. Returns whether anything changed.
    pub fn merge_records(
        &mut self,
        sent: u64,
        asked: &[QueueId],
        mut found: Vec<Arc<QueueRecord>>,
    ) -> bool {
        found.retain(|r| asked.binary_search(&r.queue).is_ok());
        found.sort_by(|a, b| a.queue.cmp(&b.queue));
        found.dedup_by(|later, first| later.queue == first.queue);
        let mut changed = false;
        for q in asked {
            let read = found
                .binary_search_by(|r| r.queue.cmp(q))
                .ok()
                .map(|i| Arc::clone(&found[i]));
            changed |= self.merge_one(sent, q, read);
            if self.touched.get(q).is_some_and(|seq| *seq <= sent) {
                self.touched.remove(q);
            }
        }
        changed
    }

    /// Sets `queue`'s record to `read` (`None`: gone), as read by a read sent at `sent`,
    /// unless this node's own later write is newer. Returns whether it changed.
    fn merge_one(&mut self, sent: u64, queue: &QueueId, read: Option<Arc<QueueRecord>>) -> bool {
        let at = self.find(queue);
        let old = at.ok().map(|i| Arc::clone(&self.records[i]));
        if let Some(o) = &old
            && self.written_after(queue, sent)
            && read.as_ref().is_none_or(|r| r.epoch <= o.epoch)
        {
            return false;
        }
        if old.as_deref() == read.as_deref() {
            return false;
        }
        if let Some(o) = &old {
            self.owners.remove(o);
        }
        if old.as_ref().map(|o| o.retired) != read.as_ref().map(|r| r.retired) {
            self.live = None;
        }
        match (at, read) {
            (Ok(i), Some(r)) => {
                self.slots[i] = self.owners.add_slot(&r);
                self.records[i] = r;
            }
            (Ok(i), None) => {
                self.records.remove(i);
                self.slots.remove(i);
            }
            (Err(i), Some(r)) => {
                self.slots.insert(i, self.owners.add_slot(&r));
                self.records.insert(i, r);
            }
            (Err(_), None) => {}
        }
        self.changes.insert(queue.clone());
        true
    }

    /// Advances `old`, the view's records, to `r`'s queue, dropping the records passed over
    /// (unless written after `sent`), and returns the view's record of that queue if it has one.
    fn walk_to(
        &mut self,
        old: &mut Walk,
        r: &Arc<QueueRecord>,
        sent: u64,
        out: &mut MergeOut,
    ) -> Option<(Arc<QueueRecord>, Slot)> {
        while let Some((o, _)) = old.peek() {
            // The view's own copy of this very record: no URL to compare.
            let order = if Arc::ptr_eq(o, r) {
                Ordering::Equal
            } else {
                o.queue.cmp(&r.queue)
            };
            match order {
                Ordering::Less => {
                    let o = old.next().expect("peeked");
                    self.drop_unless_written(o, sent, out);
                }
                Ordering::Equal => return old.next(),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// Whether this node's own write set `queue`'s record after a read sent at `sent`.
    fn written_after(&self, queue: &QueueId, sent: u64) -> bool {
        self.touched.get(queue).is_some_and(|seq| *seq > sent)
    }

    /// A record (with its slot) that a snapshot sent at `sent` lacks: kept if this node wrote
    /// it after the read was sent, dropped otherwise.
    fn drop_unless_written(
        &mut self,
        (record, slot): (Arc<QueueRecord>, Slot),
        sent: u64,
        out: &mut MergeOut,
    ) {
        if self.written_after(&record.queue, sent) {
            out.kept.push((record, slot));
            return;
        }
        self.live = None;
        self.owners.remove(&record);
        out.changes.push(record.queue.clone());
    }

    /// Records the effect of this node's own applied write, at sequence `seq`.
    pub fn apply_local(&mut self, seq: u64, record: QueueRecord) {
        let at = self.find(&record.queue);
        if at.is_ok_and(|i| self.records[i].epoch > record.epoch) {
            return;
        }
        self.changes.insert(record.queue.clone());
        self.touched.insert(record.queue.clone(), seq);
        let slot = self.owners.add_slot(&record);
        let record = Arc::new(record);
        match at {
            Ok(i) => {
                let old = std::mem::replace(&mut self.records[i], record);
                self.slots[i] = slot;
                if old.retired != self.records[i].retired {
                    self.live = None;
                }
                self.owners.remove(&old);
            }
            Err(i) => {
                self.records.insert(i, record);
                self.slots.insert(i, slot);
                self.live = None;
            }
        }
    }

    /// Where `queue`'s record is, or would go, in the sorted records: searched among the live
    /// queues when they are every record (no tombstone), which loads one URL per step where
    /// the records load a record and then its URL; deciding a rolling fleet's queues spent a
    /// tenth of its time in these searches.
    fn find(&self, queue: &QueueId) -> Result<usize, usize> {
        match &self.live {
            Some(live) if live.len() == self.records.len() => {
                let at = live.binary_search(queue);
                debug_assert_eq!(at, self.records.binary_search_by(|r| r.queue.cmp(queue)));
                at
            }
            _ => self.records.binary_search_by(|r| r.queue.cmp(queue)),
        }
    }

    /// Where `queue`'s record is among [`QueueView::records`], if known: with no retired
    /// record, also where `queue` is among the live queues. Valid until the records change.
    pub(crate) fn position(&self, queue: &QueueId) -> Option<usize> {
        self.find(queue).ok()
    }

    /// The record at `position`, as [`QueueView::position`] gave it since the records last
    /// changed.
    pub(crate) fn record_at(&self, position: usize) -> &QueueRecord {
        &self.records[position]
    }

    /// The record of `queue`, if known.
    pub fn get(&self, queue: &QueueId) -> Option<&QueueRecord> {
        self.find(queue).ok().map(|i| &*self.records[i])
    }

    /// The record of each of `queues` (sorted), if known ([`QueueView::positions_sorted`]).
    pub fn get_sorted<'a>(
        &'a self,
        queues: impl IntoIterator<Item = &'a QueueId>,
    ) -> impl Iterator<Item = Option<&'a QueueRecord>> {
        let at = self.positions_sorted(queues);
        at.map(|at| at.map(|i| &*self.records[i]))
    }

    /// The [`QueueView::position`] of each of `queues` (sorted): found by walking forward
    /// from the last one found, doubling the stride, where a search per queue cost a fleet
    /// start's nodes a tenth of its first minute (each defers nearly every queue it lists,
    /// §4.9).
    pub(crate) fn positions_sorted<'a>(
        &'a self,
        queues: impl IntoIterator<Item = &'a QueueId>,
    ) -> impl Iterator<Item = Option<usize>> {
        // With no retired record, the live list has the records' queues in place, one
        // pointer nearer than each record's.
        let live = (self.live.as_ref()).filter(|l| l.len() == self.records.len());
        let queue = move |i: usize| match live {
            Some(live) => &live[i],
            None => &self.records[i].queue,
        };
        let mut from = 0;
        queues.into_iter().map(move |q| {
            let len = self.records.len() - from;
            let before = |i: usize| queue(from + i) < q;
            let mut stride = 1;
            while stride < len && before(stride) {
                stride *= 2;
            }
            from += partition_point(stride.min(len), before);
            (from < self.records.len() && queue(from) == q).then_some(from)
        })
    }

    /// [`QueueView::position`], looked for at `hint` first (one comparison, by pointer
    /// mostly): a position found before the records last changed.
    pub(crate) fn position_near(&self, queue: &QueueId, hint: Option<usize>) -> Option<usize> {
        let hit = hint.filter(|&i| self.records.get(i).is_some_and(|r| r.queue == *queue));
        hit.or_else(|| self.position(queue))
    }

    /// Every known record, sorted by queue.
    pub fn records(&self) -> impl Iterator<Item = &QueueRecord> {
        self.records.iter().map(|r| &**r)
    }

    /// The live (not retired) queues, sorted: the same list until one joins or leaves.
    pub fn live_queues(&mut self) -> Arc<[QueueId]> {
        let records = &self.records;
        let live = self.live.get_or_insert_with(|| {
            let live = records.iter().filter(|r| !r.retired);
            live.map(|r| r.queue.clone()).collect()
        });
        Arc::clone(live)
    }

    /// Whether `queues` is the very list [`QueueView::live_queues`] gives now: then each of
    /// them has a record, without a search.
    pub fn lists(&self, queues: &Arc<[QueueId]>) -> bool {
        self.live
            .as_ref()
            .is_some_and(|live| Arc::ptr_eq(live, queues))
    }

    /// The lives that own a record.
    pub fn owners(&self) -> BTreeSet<Owner> {
        self.owners.lives.iter().flatten().cloned().collect()
    }

    /// The places of the records that name `owner`, retired ones included, in order: found by
    /// slot, so only the records that name it (or are retired) are loaded, where comparing
    /// every record's owner was a tenth of a rolling fleet's time.
    pub(crate) fn named_at(&self, owner: &Owner) -> impl Iterator<Item = usize> {
        let slot = self.owners.slot_of(owner);
        let owner = owner.clone();
        let named = self.slots.iter().enumerate();
        let named = named.filter(move |(i, s)| match s.life {
            RETIRED => self.records[*i].owner.as_ref() == Some(&owner),
            s => Some(s) == slot,
        });
        named.map(|(i, _)| i)
    }

    /// The place of each live record, in order: the `k`-th is the place of the `k`-th queue
    /// [`QueueView::live_queues`] lists.
    pub(crate) fn live_places(&self) -> impl Iterator<Item = usize> {
        let live = self.slots.iter().enumerate();
        live.filter(|(_, s)| s.life != RETIRED).map(|(i, _)| i)
    }

    /// The queue of the record at `place`, as [`QueueView::position`] gave it since the
    /// records last changed.
    pub(crate) fn queue_at(&self, place: usize) -> &QueueId {
        &self.records[place].queue
    }

    /// Whether any record names `owner`, retired ones included ([`QueueView::owners`] has it):
    /// found among the slots by incarnation, where collecting the owners of a view took a
    /// sort of a thousand lives at every pass over the queues.
    pub(crate) fn names_ever(&self, owner: &Owner) -> bool {
        self.owners.slot_of(owner).is_some()
    }

    /// Whether any live record names `owner`: found by its slot, no record read.
    pub(crate) fn names_any(&self, owner: &Owner) -> bool {
        let Some(slot) = self.owners.slot_of(owner) else {
            return false;
        };
        self.slots.iter().any(|s| s.life == slot)
    }

    /// The holder of each live queue, in the order of [`QueueView::live_queues`]: what
    /// `member` gives for the life its record names ([`NO_HOLDER`]: unowned, or no member).
    pub fn live_holders(&self, member: impl Fn(&Owner) -> Option<u32>) -> Vec<u32> {
        let of_slot: Vec<u32> = (self.owners.lives.iter())
            .map(|life| life.as_ref().and_then(&member).unwrap_or(NO_HOLDER))
            .collect();
        let mut holders = Vec::with_capacity(self.slots.len());
        for s in self.slots.iter().filter(|s| s.life != RETIRED) {
            holders.push(of_slot.get(s.life as usize).copied().unwrap_or(NO_HOLDER));
        }
        holders
    }

    /// The live queues' scores, in the order of [`QueueView::live_queues`], each computed
    /// when first asked for and kept beside its record until the record changes.
    pub fn live_scores(&mut self) -> LiveScores<'_> {
        let all_live = (self.live.as_ref()).is_some_and(|l| l.len() == self.records.len());
        let at = (!all_live).then(|| self.live_places().map(|i| i as u32).collect());
        LiveScores {
            slots: &mut self.slots,
            at,
        }
    }

    /// The number of known records.
    pub fn len(&self) -> usize {
        self.records.len()
    }
}

/// The first of `0..len` that `before` rejects, `before` accepting a prefix of them.
fn partition_point(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The self-fence: the instant by which every receive must have ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fence {
    acked_send: Option<Millis>,
}

impl Fence {
    /// A heartbeat (or registration) sent at `sent` was acknowledged. Returns the new deadline
    /// if it moved later.
    pub fn acked(&mut self, sent: Millis, timeout: Duration, margin: Duration) -> Option<Millis> {
        if self.acked_send.is_some_and(|a| a >= sent) {
            return None;
        }
        self.acked_send = Some(sent);
        Some(Self::deadline_for(sent, timeout, margin))
    }

    /// This life ended: nothing may be received any more.
    pub fn reset(&mut self) {
        self.acked_send = None;
    }

    /// The current deadline, or `None` before the first acknowledgement of this life.
    pub fn until(&self, timeout: Duration, margin: Duration) -> Option<Millis> {
        self.acked_send
            .map(|s| Self::deadline_for(s, timeout, margin))
    }

    fn deadline_for(sent: Millis, timeout: Duration, margin: Duration) -> Millis {
        sent.saturating_add(timeout).saturating_sub(margin)
    }
}

/// Whether `record` names `me`.
pub(crate) fn names(record: &QueueRecord, me: Option<&Owner>) -> bool {
    me.is_some() && record.owner.as_ref() == me
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::rendezvous;
    use crate::ids::InstanceId;

    fn rec(q: &str, owner: Option<(&str, u64)>, epoch: u64) -> Arc<QueueRecord> {
        Arc::new(QueueRecord {
            queue: QueueId::new(q).unwrap(),
            owner: owner.map(|(id, incarnation)| Owner {
                id: InstanceId::new(id).unwrap(),
                incarnation,
            }),
            epoch,
            retired: false,
        })
    }

    /// Merges a snapshot of `records` (sent at `sent`) cut into pages after the first `cut`.
    fn read_cut(v: &mut QueueView, sent: u64, records: &[Arc<QueueRecord>], cut: usize) -> usize {
        let (a, b) = records.split_at(cut.min(records.len()));
        v.merge_snapshot(
            sent,
            &[QueuePage::new(a.to_vec()), QueuePage::new(b.to_vec())],
        )
    }

    /// Merges a snapshot of `records` (sent at `sent`), one page.
    fn read_all(v: &mut QueueView, sent: u64, records: Vec<Arc<QueueRecord>>) -> usize {
        v.merge_snapshot(sent, &[QueuePage::new(records)])
    }

    /// A record from drawn numbers: queue `q<q>`, owned by life 1 of a, b or c (or nobody).
    fn drawn((q, o, epoch): (u8, u8, u64)) -> Arc<QueueRecord> {
        let owner = ["a", "b", "c"].get(usize::from(o)).map(|id| (*id, 1));
        rec(&format!("q{q}"), owner, epoch)
    }

    /// A view that read `before` at sequence 1 and then made the writes `local`, completed at
    /// 2, 3, ...: some after a later read was sent, some before.
    fn view_after(before: Vec<(u8, u8, u64)>, local: Vec<(u8, u8, u64)>) -> QueueView {
        let mut v = QueueView::default();
        read_all(&mut v, 1, before.into_iter().map(drawn).collect());
        for (i, r) in local.into_iter().enumerate() {
            v.apply_local(2 + i as u64, own(drawn(r)));
        }
        v
    }

    /// The view's records by queue.
    fn by_queue(v: &QueueView) -> BTreeMap<QueueId, Arc<QueueRecord>> {
        v.records
            .iter()
            .map(|r| (r.queue.clone(), Arc::clone(r)))
            .collect()
    }

    /// A record to apply as this node's own write.
    fn own(r: Arc<QueueRecord>) -> QueueRecord {
        Arc::unwrap_or_clone(r)
    }

    #[test]
    fn a_snapshot_older_than_a_local_write_does_not_undo_it() {
        let mut v = QueueView::default();
        assert_eq!(
            read_all(&mut v, 1, vec![rec("q", None, 1), rec("gone", None, 1)]),
            2
        );
        v.apply_local(5, own(rec("q", Some(("a", 1)), 2)));
        // Sent at 4, before the write completed at 5: keeps the local record, drops `gone`.
        assert_eq!(read_all(&mut v, 4, vec![rec("q", None, 1)]), 1);
        assert_eq!(v.get(&QueueId::new("q").unwrap()).unwrap().epoch, 2);
        assert!(v.get(&QueueId::new("gone").unwrap()).is_none());
        // Sent after: the snapshot wins, even going back in epoch (a recreated record).
        assert_eq!(read_all(&mut v, 6, vec![rec("q", None, 1)]), 1);
        assert_eq!(v.get(&QueueId::new("q").unwrap()).unwrap().epoch, 1);
        assert_eq!(read_all(&mut v, 7, vec![rec("q", None, 1)]), 0);
        assert_eq!(v.records().filter(|r| !r.retired).count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn the_owners_live_queues_holders_and_named_queues_kept_are_those_of_the_records(
            ops in proptest::collection::vec(
                (0u8..3, proptest::collection::vec((0u8..6, 0u8..4, 1u64..5), 0..6)),
                1..30,
            )
        ) {
            let mut v = QueueView::default();
            for (seq, (kind, recs)) in ops.into_iter().enumerate() {
                let recs: Vec<Arc<QueueRecord>> = recs
                    .into_iter()
                    .map(|(q, o, epoch)| {
                        let owner = ["a", "b", "c"].get(usize::from(o)).map(|id| (*id, epoch % 2));
                        Arc::new(QueueRecord {
                            retired: epoch == 3,
                            ..own(rec(&format!("q{q}"), owner, epoch))
                        })
                    })
                    .collect();
                let seq = seq as u64 + 1;
                match kind {
                    0 => {
                        for r in recs {
                            v.apply_local(seq, own(r));
                        }
                    }
                    1 => {
                        read_all(&mut v, seq, recs);
                    }
                    _ => {
                        let mut asked: Vec<QueueId> = recs.iter().map(|r| r.queue.clone()).collect();
                        asked.sort();
                        asked.dedup();
                        v.merge_records(seq, &asked, recs);
                    }
                }
                let counted: BTreeSet<Owner> =
                    v.records().filter_map(|r| r.owner.clone()).collect();
                proptest::prop_assert_eq!(v.owners(), counted.clone());
                let live: Vec<QueueId> =
                    v.records().filter(|r| !r.retired).map(|r| r.queue.clone()).collect();
                proptest::prop_assert_eq!(&*v.live_queues(), &live[..]);
                let placed: Vec<QueueId> = v.live_places().map(|p| v.queue_at(p).clone()).collect();
                proptest::prop_assert_eq!(placed, live);
                // Members "a" and "c" in their life 1: a holder is found for their records alone.
                let member = |o: &Owner| match (o.id.as_str(), o.incarnation) {
                    ("a", 1) => Some(0),
                    ("c", 1) => Some(1),
                    _ => None,
                };
                let live_records: Vec<QueueRecord> =
                    v.records().filter(|r| !r.retired).cloned().collect();
                let holders: Vec<u32> = (live_records.iter())
                    .map(|r| r.owner.as_ref().and_then(member).unwrap_or(NO_HOLDER))
                    .collect();
                proptest::prop_assert_eq!(v.live_holders(member), holders);
                // A kept score is its record's, whatever merged since it was kept; the
                // unowned queues' scores are left unasked, as a target leaves them.
                let mut scores = v.live_scores();
                for (live, r) in live_records.iter().enumerate() {
                    let Some(o) = &r.owner else { continue };
                    let score = rendezvous(o.id.as_str(), r.queue.as_str());
                    proptest::prop_assert_eq!(scores.get(live as u32, || score), score);
                    // And it is kept: asked again, the score computes nothing.
                    proptest::prop_assert_eq!(scores.get(live as u32, || UNSCORED), score);
                }
                for life in ["a", "b", "c"].iter().flat_map(|id| [(*id, 0), (*id, 1)]) {
                    let life = own(rec("q", Some(life), 1)).owner.expect("named");
                    let named: Vec<&QueueId> = (v.records())
                        .filter(|r| r.owner.as_ref() == Some(&life))
                        .map(|r| &r.queue)
                        .collect();
                    let named_at: Vec<&QueueId> = v.named_at(&life).map(|p| v.queue_at(p)).collect();
                    proptest::prop_assert_eq!(named_at, named);
                    let names_live = v.records().any(|r| !r.retired && names(r, Some(&life)));
                    proptest::prop_assert_eq!(v.names_any(&life), names_live);
                    proptest::prop_assert_eq!(v.names_ever(&life), counted.contains(&life));
                }
            }
        }

        #[test]
        fn records_and_places_found_in_a_sorted_walk_are_those_found_one_by_one(
            held in proptest::collection::vec((0u8..40, 1u64..5), 0..30),
            asked in proptest::collection::btree_set(0u8..45, 0..45),
            hint in 0usize..40,
        ) {
            let v = view_after(held.into_iter().map(|(q, e)| (q, 0, e)).collect(), Vec::new());
            let mut asked: Vec<QueueId> = (asked.iter())
                .map(|q| QueueId::new(&format!("q{q}")).unwrap())
                .collect();
            asked.sort();
            let walked: Vec<Option<&QueueRecord>> = v.get_sorted(&asked).collect();
            let one_by_one: Vec<Option<&QueueRecord>> = asked.iter().map(|q| v.get(q)).collect();
            proptest::prop_assert_eq!(walked, one_by_one);
            // A hint is checked before use: a wrong one, or none, still finds the position.
            let places: Vec<Option<usize>> = v.positions_sorted(&asked).collect();
            for (q, place) in asked.iter().zip(places) {
                proptest::prop_assert_eq!(place, v.position(q));
                for hint in [place, Some(0), Some(hint), None] {
                    proptest::prop_assert_eq!(v.position_near(q, hint), v.position(q));
                }
            }
        }
    }

    proptest::proptest! {
        /// A read of some queues' records changes those queues as a snapshot would (this
        /// node's own later write stays unless the read shows a later epoch; a record not found
        /// is gone) and no other queue; the changes it reports are exactly the queues it changed.
        #[test]
        fn a_read_of_records_changes_the_asked_queues_alone(
            before in proptest::collection::vec((0u8..8, 0u8..4, 1u64..6), 0..8),
            local in proptest::collection::vec((0u8..8, 0u8..4, 1u64..6), 0..4),
            asked in proptest::collection::btree_set(0u8..8, 0..8),
            found in proptest::collection::vec((0u8..10, 0u8..4, 1u64..6), 0..10),
            sent in 1u64..4,
        ) {
            let mut v = view_after(before, local);
            v.take_changes();
            let old = by_queue(&v);
            let later: BTreeSet<QueueId> =
                v.touched.iter().filter(|(_, s)| **s > sent).map(|(q, _)| q.clone()).collect();
            let asked: Vec<QueueId> =
                asked.into_iter().map(|q| QueueId::new(&format!("q{q}")).unwrap()).collect();
            let found: Vec<Arc<QueueRecord>> = found.into_iter().map(drawn).collect();
            v.merge_records(sent, &asked, found.clone());
            let mut changed = BTreeSet::new();
            for q in old.keys().chain(found.iter().map(|r| &r.queue)) {
                let now = v.get(q);
                let was = old.get(q).map(|r| &**r);
                if !asked.contains(q) {
                    proptest::prop_assert_eq!(now, was, "{} was not asked", q);
                    continue;
                }
                let read = found.iter().find(|r| r.queue == *q).map(|r| &**r);
                let keeps = was.is_some()
                    && later.contains(q)
                    && read.is_none_or(|r| r.epoch <= was.map_or(0, |w| w.epoch));
                let want = if keeps { was } else { read };
                proptest::prop_assert_eq!(now, want, "{}", q);
                if now != was {
                    changed.insert(q.clone());
                }
            }
            proptest::prop_assert_eq!(v.take_changes(), changed);
        }
    }

    proptest::proptest! {
        /// A snapshot replaces the view, except that this node's own writes completed after
        /// the snapshot's read was sent stay where the snapshot lacks the queue or shows no
        /// later epoch; the writes it supersedes, and those before it, are forgotten, so the
        /// next snapshot takes the queue as read.
        #[test]
        fn a_snapshot_keeps_exactly_the_later_own_writes_it_does_not_supersede(
            before in proptest::collection::vec((0u8..8, 0u8..4, 1u64..6), 0..8),
            local in proptest::collection::vec((0u8..8, 0u8..4, 1u64..6), 0..5),
            snapshot in proptest::collection::vec((0u8..8, 0u8..4, 1u64..6), 0..10),
            sent in 1u64..5,
            cut in 0usize..10,
        ) {
            let mut v = view_after(before, local);
            let old = by_queue(&v);
            let later: BTreeSet<QueueId> =
                v.touched.iter().filter(|(_, s)| **s > sent).map(|(q, _)| q.clone()).collect();
            let snapshot: Vec<Arc<QueueRecord>> = snapshot.into_iter().map(drawn).collect();
            let mut read: BTreeMap<QueueId, Arc<QueueRecord>> = BTreeMap::new();
            for r in &snapshot {
                read.entry(r.queue.clone()).or_insert_with(|| Arc::clone(r));
            }
            read_cut(&mut v, sent, &snapshot, cut);
            let mut want = read.clone();
            let mut still = BTreeSet::new();
            for q in &later {
                let (Some(o), r) = (old.get(q), read.get(q)) else { continue };
                if r.is_none_or(|r| r.epoch <= o.epoch) {
                    want.insert(q.clone(), Arc::clone(o));
                    still.insert(q.clone());
                }
            }
            proptest::prop_assert_eq!(by_queue(&v), want);
            let kept: BTreeSet<QueueId> = v.touched.keys().cloned().collect();
            proptest::prop_assert_eq!(kept, still);
        }
    }

    proptest::proptest! {
        /// A snapshot put in order by the last one's layout leaves the view exactly as one
        /// sorted afresh does, whatever own writes and reads came between.
        #[test]
        fn a_snapshot_placed_by_the_layout_merges_as_a_sorted_one(
            ops in proptest::collection::vec(
                (0u8..4, proptest::collection::vec((0u8..5, 1u64..5), 6), 0u64..3, 0usize..7),
                1..20,
            ),
        ) {
            let (mut placed, mut sorted) = (QueueView::default(), QueueView::default());
            let mut last: Vec<Arc<QueueRecord>> = Vec::new();
            for (seq, (kind, drawn, back, cut)) in ops.into_iter().enumerate() {
                let seq = seq as u64 + 1;
                // Queues q0..q5, owned by a, b or c (or nobody); owner 4 leaves the queue out of
                // a read, and epoch 1 keeps the last read's very record where it had one.
                let records: Vec<Arc<QueueRecord>> = (0u8..)
                    .zip(&drawn)
                    .filter(|(_, (o, _))| kind != 2 || *o != 4)
                    .map(|(q, (o, epoch))| {
                        let again = last.iter().find(|r| r.queue.as_str() == format!("q{q}"));
                        match again {
                            Some(r) if *epoch == 1 => Arc::clone(r),
                            _ => self::drawn((q, *o % 4, *epoch)),
                        }
                    })
                    .collect();
                match kind {
                    0 => {
                        let r = own(Arc::clone(&records[cut % records.len()]));
                        placed.apply_local(seq, r.clone());
                        sorted.apply_local(seq, r);
                    }
                    3 => {
                        let asked = [records[cut % records.len()].queue.clone()];
                        placed.merge_records(seq, &asked, records.clone());
                        sorted.merge_records(seq, &asked, records.clone());
                    }
                    _ => {
                        let sent = seq.saturating_sub(back).max(1);
                        sorted.layout = None;
                        // One page per partition key, as the simulator serves a spread
                        // table: mostly as many keys as the read before, so that its layout
                        // may place this one.
                        let keys = [2, 2, 2, 2, 3, 1, 6][cut];
                        let pages: Vec<QueuePage> = (0..keys)
                            .map(|k| {
                                // Queue qN's key: N modulo the keys.
                                let key = |r: &&Arc<QueueRecord>| usize::from(r.queue.as_str().as_bytes()[1] - b'0') % keys;
                                let on_key = records.iter().filter(|r| key(r) == k);
                                QueuePage::new(on_key.cloned().collect())
                            })
                            .collect();
                        let a = placed.merge_snapshot(sent, &pages);
                        let b = sorted.merge_snapshot(sent, &pages);
                        proptest::prop_assert_eq!(a, b);
                        last = records;
                    }
                }
                proptest::prop_assert_eq!(by_queue(&placed), by_queue(&sorted));
                proptest::prop_assert_eq!(&placed.slots, &sorted.slots);
                proptest::prop_assert_eq!(&placed.touched, &sorted.touched);
                proptest::prop_assert_eq!(placed.snapshot, sorted.snapshot);
                proptest::prop_assert_eq!(placed.take_changes(), sorted.take_changes());
                proptest::prop_assert_eq!(placed.owners(), sorted.owners());
                proptest::prop_assert_eq!(placed.live_queues(), sorted.live_queues());
            }
        }
    }

    #[test]
    fn changes_name_exactly_the_queues_whose_record_changed() {
        let q = |s: &str| QueueId::new(s).unwrap();
        let mut v = QueueView::default();
        read_all(
            &mut v,
            1,
            vec![rec("a", None, 1), rec("b", None, 1), rec("c", None, 1)],
        );
        assert_eq!(v.take_changes().len(), 3);
        assert!(!v.has_changes());
        // b changes hands, c vanishes, d appears; a is untouched.
        read_all(
            &mut v,
            2,
            vec![
                rec("a", None, 1),
                rec("b", Some(("x", 1)), 2),
                rec("d", None, 1),
            ],
        );
        assert_eq!(v.take_changes(), BTreeSet::from([q("b"), q("c"), q("d")]));
        v.apply_local(3, own(rec("a", Some(("me", 1)), 2)));
        // A local write older than the record changes nothing.
        v.apply_local(4, own(rec("b", Some(("me", 1)), 1)));
        assert_eq!(v.take_changes(), BTreeSet::from([q("a")]));
        read_all(
            &mut v,
            5,
            vec![
                rec("a", Some(("me", 1)), 2),
                rec("b", Some(("x", 1)), 2),
                rec("d", None, 1),
            ],
        );
        assert!(!v.has_changes());
    }

    #[test]
    fn an_equal_record_read_again_is_shared_and_no_change() {
        let q = QueueId::new("q").unwrap();
        let mut v = QueueView::default();
        v.apply_local(1, own(rec("q", Some(("a", 1)), 2)));
        let _ = v.take_changes();
        let read = rec("q", Some(("a", 1)), 2);
        assert_eq!(read_all(&mut v, 2, vec![Arc::clone(&read)]), 0);
        assert!(!v.has_changes());
        assert!(
            std::ptr::eq(v.get(&q).unwrap(), &*read),
            "the read's copy is kept"
        );
        let moved = rec("q", Some(("b", 1)), 3);
        assert_eq!(read_all(&mut v, 3, vec![moved]), 1);
        assert_eq!(v.take_changes(), BTreeSet::from([q]));
    }

    #[test]
    fn the_live_list_is_the_view_s_own_until_a_queue_joins_or_leaves() {
        let mut v = QueueView::default();
        read_all(&mut v, 1, vec![rec("q1", None, 1)]);
        let live = v.live_queues();
        assert!(v.lists(&live));
        assert!(
            !v.lists(&live.iter().cloned().collect()),
            "an equal copy is not the list"
        );
        // A queue changing owner keeps the list; one joining makes a new one.
        read_all(&mut v, 2, vec![rec("q1", Some(("a", 1)), 2)]);
        assert!(v.lists(&live));
        read_all(
            &mut v,
            3,
            vec![rec("q1", Some(("a", 1)), 2), rec("q2", None, 1)],
        );
        assert!(!v.lists(&live));
        assert_eq!(v.live_queues().len(), 2);
    }

    #[test]
    fn a_local_write_never_replaces_a_newer_epoch() {
        let mut v = QueueView::default();
        read_all(&mut v, 1, vec![rec("q", Some(("b", 1)), 9)]);
        v.apply_local(2, own(rec("q", Some(("a", 1)), 3)));
        assert_eq!(v.get(&QueueId::new("q").unwrap()).unwrap().epoch, 9);
    }

    #[test]
    fn the_fence_follows_the_latest_acknowledged_send() {
        let ht = Duration::from_secs(30);
        let margin = Duration::from_secs(3);
        let mut f = Fence::default();
        assert_eq!(f.until(ht, margin), None);
        assert_eq!(f.acked(Millis(10_000), ht, margin), Some(Millis(37_000)));
        // An older acknowledgement arriving late never moves it back.
        assert_eq!(f.acked(Millis(5_000), ht, margin), None);
        assert_eq!(f.until(ht, margin), Some(Millis(37_000)));
        f.reset();
        assert_eq!(f.until(ht, margin), None);
    }
}

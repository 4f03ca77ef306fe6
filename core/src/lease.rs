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

use crate::effect::QueueRecord;
use crate::ids::{Owner, QueueId};
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};
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

#[derive(Clone, Debug)]
struct Entry {
    /// The record, shared with the read that brought it (and, in the simulator, with every
    /// other node's view of the same item).
    record: Arc<QueueRecord>,
    /// The sequence number of this node's own write that last set it (0: set by a snapshot).
    touched: u64,
}

/// The queue records as this node last knew them.
///
/// Reads are full snapshots, one at a time, so each is newer than the one before; the only thing
/// a snapshot can be older than is this node's own write that completed after the read was sent.
/// Each entry remembers the sequence number of the local write that last set it, and a snapshot
/// sent before that write leaves the entry alone.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueueView {
    entries: BTreeMap<QueueId, Entry>,
    snapshot: u64,
    /// Queues whose record changed since [`QueueView::take_changes`] was last called.
    changes: BTreeSet<QueueId>,
    /// How many records name each owning life, kept as records change: the lives are asked
    /// for after every table read, and counting them afresh was a pass over every record.
    owners: BTreeMap<Owner, usize>,
    /// The live (not retired) queues, sorted, once asked for and until one joins or leaves:
    /// most records that change only change owner, and every target shares this list.
    live: Option<Arc<[QueueId]>>,
}

/// Counts `record`'s owner in `owners` (`by` = 1) or stops counting it (`by` = -1).
fn count_owner(owners: &mut BTreeMap<Owner, usize>, record: &QueueRecord, by: isize) {
    let Some(o) = &record.owner else { return };
    if by > 0 {
        *owners.entry(o.clone()).or_insert(0) += 1;
    } else if let Some(n) = owners.get_mut(o) {
        *n -= 1;
        if *n == 0 {
            owners.remove(o);
        }
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

    /// Replaces the view with a snapshot whose read was sent at sequence `sent`.
    /// Returns whether anything changed.
    pub fn merge_snapshot(&mut self, sent: u64, mut records: Vec<Arc<QueueRecord>>) -> bool {
        // Walk the view and the sorted snapshot side by side, changing only what differs: a
        // reconciliation read of a quiet table allocates nothing.
        records.sort_by(|a, b| a.queue.cmp(&b.queue));
        records.dedup_by(|later, first| later.queue == first.queue);
        let mut gone = Vec::new();
        let mut incoming = records.into_iter().peekable();
        let mut added = Vec::new();
        let mut changed = false;
        for (q, e) in self.entries.iter_mut() {
            while let Some(r) = incoming.next_if(|r| r.queue < *q) {
                added.push(r);
            }
            match incoming.next_if(|r| r.queue == *q) {
                // This node's own write completed after the read was sent: keep it unless the
                // snapshot shows a later epoch.
                Some(r) if e.touched > sent && r.epoch <= e.record.epoch => {}
                Some(r) => {
                    e.touched = 0;
                    // The same allocation is the same record, most of a read, compared
                    // without reading the queue's URL; an equal copy is adopted so that the
                    // next read compares so too (and shares the simulator's one copy).
                    if Arc::ptr_eq(&e.record, &r) {
                        continue;
                    }
                    if e.record != r {
                        if e.record.retired != r.retired {
                            self.live = None;
                        }
                        count_owner(&mut self.owners, &e.record, -1);
                        count_owner(&mut self.owners, &r, 1);
                        self.changes.insert(q.clone());
                        changed = true;
                    }
                    e.record = r;
                }
                None if e.touched > sent => {}
                None => gone.push(q.clone()),
            }
        }
        added.extend(incoming);
        if !gone.is_empty() || !added.is_empty() {
            self.live = None;
        }
        for q in gone {
            if let Some(e) = self.entries.remove(&q) {
                count_owner(&mut self.owners, &e.record, -1);
            }
            self.changes.insert(q);
            changed = true;
        }
        for record in added {
            self.changes.insert(record.queue.clone());
            changed = true;
            count_owner(&mut self.owners, &record, 1);
            self.entries
                .insert(record.queue.clone(), Entry { record, touched: 0 });
        }
        self.snapshot = self.snapshot.max(sent);
        changed
    }

    /// Records the effect of this node's own applied write, at sequence `seq`.
    pub fn apply_local(&mut self, seq: u64, record: QueueRecord) {
        let newer = self
            .entries
            .get(&record.queue)
            .is_none_or(|e| e.record.epoch <= record.epoch);
        if newer {
            let record_retired = record.retired;
            self.changes.insert(record.queue.clone());
            count_owner(&mut self.owners, &record, 1);
            let old = self.entries.insert(
                record.queue.clone(),
                Entry {
                    record: Arc::new(record),
                    touched: seq,
                },
            );
            match old {
                Some(old) => {
                    if old.record.retired != record_retired {
                        self.live = None;
                    }
                    count_owner(&mut self.owners, &old.record, -1);
                }
                None => self.live = None,
            }
        }
    }

    /// The record of `queue`, if known.
    pub fn get(&self, queue: &QueueId) -> Option<&QueueRecord> {
        self.entries.get(queue).map(|e| &*e.record)
    }

    /// Every known record, sorted by queue.
    pub fn records(&self) -> impl Iterator<Item = &QueueRecord> {
        self.entries.values().map(|e| &*e.record)
    }

    /// The live (not retired) queues, sorted: the same list until one joins or leaves.
    pub fn live_queues(&mut self) -> Arc<[QueueId]> {
        let entries = &self.entries;
        let live = self.live.get_or_insert_with(|| {
            let live = entries.values().filter(|e| !e.record.retired);
            live.map(|e| e.record.queue.clone()).collect()
        });
        Arc::clone(live)
    }

    /// The lives that own a record.
    pub fn owners(&self) -> BTreeSet<Owner> {
        self.owners.keys().cloned().collect()
    }

    /// The number of known records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
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

    /// A record to apply as this node's own write.
    fn own(r: Arc<QueueRecord>) -> QueueRecord {
        Arc::unwrap_or_clone(r)
    }

    #[test]
    fn a_snapshot_older_than_a_local_write_does_not_undo_it() {
        let mut v = QueueView::default();
        assert!(v.merge_snapshot(1, vec![rec("q", None, 1), rec("gone", None, 1)]));
        v.apply_local(5, own(rec("q", Some(("a", 1)), 2)));
        // Sent at 4, before the write completed at 5: keeps the local record, drops `gone`.
        assert!(v.merge_snapshot(4, vec![rec("q", None, 1)]));
        assert_eq!(v.get(&QueueId::new("q").unwrap()).unwrap().epoch, 2);
        assert!(v.get(&QueueId::new("gone").unwrap()).is_none());
        // Sent after: the snapshot wins, even going back in epoch (a recreated record).
        assert!(v.merge_snapshot(6, vec![rec("q", None, 1)]));
        assert_eq!(v.get(&QueueId::new("q").unwrap()).unwrap().epoch, 1);
        assert!(!v.merge_snapshot(7, vec![rec("q", None, 1)]));
        assert_eq!(v.records().filter(|r| !r.retired).count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn the_owners_and_live_queues_kept_are_those_of_the_records(
            ops in proptest::collection::vec(
                (proptest::bool::ANY, proptest::collection::vec((0u8..6, 0u8..4, 1u64..5), 0..6)),
                1..30,
            )
        ) {
            let mut v = QueueView::default();
            for (seq, (local, recs)) in ops.into_iter().enumerate() {
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
                if local {
                    for r in recs {
                        v.apply_local(seq, own(r));
                    }
                } else {
                    v.merge_snapshot(seq, recs);
                }
                let counted: BTreeSet<Owner> =
                    v.records().filter_map(|r| r.owner.clone()).collect();
                proptest::prop_assert_eq!(v.owners(), counted);
                let live: Vec<QueueId> =
                    v.records().filter(|r| !r.retired).map(|r| r.queue.clone()).collect();
                proptest::prop_assert_eq!(&*v.live_queues(), &live[..]);
            }
        }
    }

    #[test]
    fn changes_name_exactly_the_queues_whose_record_changed() {
        let q = |s: &str| QueueId::new(s).unwrap();
        let mut v = QueueView::default();
        v.merge_snapshot(
            1,
            vec![rec("a", None, 1), rec("b", None, 1), rec("c", None, 1)],
        );
        assert_eq!(v.take_changes().len(), 3);
        assert!(!v.has_changes());
        // b changes hands, c vanishes, d appears; a is untouched.
        v.merge_snapshot(
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
        v.merge_snapshot(
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
        assert!(!v.merge_snapshot(2, vec![Arc::clone(&read)]));
        assert!(!v.has_changes());
        assert!(
            std::ptr::eq(v.get(&q).unwrap(), &*read),
            "the read's copy is kept"
        );
        let moved = rec("q", Some(("b", 1)), 3);
        assert!(v.merge_snapshot(3, vec![moved]));
        assert_eq!(v.take_changes(), BTreeSet::from([q]));
    }

    #[test]
    fn a_local_write_never_replaces_a_newer_epoch() {
        let mut v = QueueView::default();
        v.merge_snapshot(1, vec![rec("q", Some(("b", 1)), 9)]);
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

//! Writes on their way to settling: in flight, of unknown outcome, or rejected and waiting for
//! a read to show what beat them.

use crate::effect::{Notice, OpId, QueueRecord, Write};
use crate::ids::{Owner, QueueId};
use crate::time::Millis;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long after an unknown outcome a write is first sent again; the wait doubles with each
/// further unknown, up to one heartbeat interval.
const FIRST_RESEND: Duration = Duration::from_millis(500);

/// The wait before sending again a write that has had `unknowns` unknown outcomes.
pub(super) fn resend_after(unknowns: u32, interval: Duration) -> Duration {
    FIRST_RESEND
        .saturating_mul(1 << unknowns.saturating_sub(1).min(16))
        .min(interval)
}

/// A queue write whose outcome is unknown: it may still apply, so it is sent again, the same
/// write, until an answer settles it. Any copy still on its way then fails its condition (the
/// epoch moved, or the record exists), so no late copy can undo what the settled answer shows.
#[derive(Clone, Debug)]
pub(super) struct Unsettled {
    /// The write, exactly as first sent.
    pub write: Write,
    /// The record it leaves when applied.
    pub result: QueueRecord,
    /// When to send it again.
    pub resend_at: Millis,
    /// Unknown outcomes so far (the wait before the next copy doubles with each).
    pub unknowns: u32,
}

/// Every queue write and notice not yet settled. A queue with any of them is busy: nothing
/// else is decided for it until it settles.
#[derive(Debug, Default)]
pub(super) struct Writes {
    /// Queue writes in flight, by queue: nothing else is decided for the queue meanwhile.
    pub writing: BTreeMap<QueueId, OpId>,
    /// Queue writes whose outcome is unknown, waiting to be sent again; the queue waits too.
    pub unsettled: BTreeMap<QueueId, Unsettled>,
    /// Queues whose write was rejected, with the sequence number it was rejected at: this
    /// node's record of them is stale (a copy of its own write may have applied, or a peer's),
    /// so nothing is decided for them until a table read sent after the rejection shows what
    /// beat them.
    pub stale: BTreeMap<QueueId, u64>,
    /// Notices whose outcome was unknown, to be sent again at a time (with their count of
    /// unknown outcomes so far).
    pub notices: BTreeMap<(Owner, Notice), (Millis, u32)>,
    /// This life created, released or retired a queue since its last news notice was sent:
    /// one goes out once none is in flight, so a burst of such writes costs one notice.
    pub news_due: bool,
    /// A news notice of this node's is in flight.
    pub news_sending: bool,
}

impl Writes {
    /// Whether a write to `queue` is in flight, waits to be sent again, or was rejected since
    /// the last table read.
    pub fn busy(&self, queue: &QueueId) -> bool {
        self.writing.contains_key(queue)
            || self.unsettled.contains_key(queue)
            || self.stale.contains_key(queue)
    }

    /// The earliest time something is due to be sent again.
    pub fn next_resend(&self) -> Option<Millis> {
        let writes = self.unsettled.values().map(|u| u.resend_at);
        writes.chain(self.notices.values().map(|n| n.0)).min()
    }

    /// Takes the notices due at `now`, with their unknown outcomes so far.
    pub fn take_due_notices(&mut self, now: Millis) -> Vec<((Owner, Notice), u32)> {
        let due: Vec<(Owner, Notice)> = self
            .notices
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(o, _)| o.clone())
            .collect();
        due.into_iter()
            .filter_map(|o| self.notices.remove(&o).map(|(_, n)| (o, n)))
            .collect()
    }

    /// Takes the unsettled queue writes due at `now`.
    pub fn take_due_writes(&mut self, now: Millis) -> Vec<Unsettled> {
        let due: Vec<QueueId> = self
            .unsettled
            .iter()
            .filter(|(_, u)| u.resend_at <= now)
            .map(|(q, _)| q.clone())
            .collect();
        due.iter()
            .filter_map(|q| self.unsettled.remove(q))
            .collect()
    }

    /// Takes the rejected queues that a table read sent as `seq` shows afresh.
    pub fn take_refreshed(&mut self, seq: u64) -> Vec<QueueId> {
        self.take_refreshed_if(seq, |_| true)
    }

    /// Takes the rejected queues among `asked` (sorted) that a read of their records sent as
    /// `seq` shows afresh; the others stay stale, whatever the read's sequence.
    pub fn take_refreshed_among(&mut self, seq: u64, asked: &[QueueId]) -> Vec<QueueId> {
        self.take_refreshed_if(seq, |q| asked.binary_search(q).is_ok())
    }

    fn take_refreshed_if(&mut self, seq: u64, read: impl Fn(&QueueId) -> bool) -> Vec<QueueId> {
        let fresh: Vec<QueueId> = self
            .stale
            .iter()
            .filter(|(q, s)| **s <= seq && read(q))
            .map(|(q, _)| q.clone())
            .collect();
        for q in &fresh {
            self.stale.remove(q);
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A read of some records refreshes exactly the rejected writes among them that were
        /// rejected before it was sent; every other rejected write stays stale.
        #[test]
        fn a_read_of_records_refreshes_only_the_asked_queues_rejected_before_it(
            stale in proptest::collection::btree_map(0u8..10, 1u64..10, 0..10),
            asked in proptest::collection::btree_set(0u8..10, 0..10),
            seq in 1u64..10,
        ) {
            let q = |n: &u8| QueueId::new(&format!("q{n}")).unwrap();
            let mut w = Writes {
                stale: stale.iter().map(|(n, s)| (q(n), *s)).collect(),
                ..Writes::default()
            };
            let asked: Vec<QueueId> = asked.iter().map(q).collect();
            let fresh = w.take_refreshed_among(seq, &asked);
            for (n, s) in &stale {
                let refreshed = asked.contains(&q(n)) && *s <= seq;
                proptest::prop_assert_eq!(fresh.contains(&q(n)), refreshed, "q{}", n);
                proptest::prop_assert_eq!(w.stale.contains_key(&q(n)), !refreshed, "q{}", n);
            }
            proptest::prop_assert_eq!(fresh.len() + w.stale.len(), stale.len());
        }
    }
}

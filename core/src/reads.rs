//! Why a node reads the whole table, counted: a table read costs every queue record, and
//! which rule asked for it is what a cheaper protocol must change (docs/design.md §4.8).

/// What made a node read the whole table. A read several causes asked for before it was
/// sent counts under the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ReadCause {
    /// A life began (its registration applied), or a listing came before the first read.
    Start,
    /// The member list changed, seen in an instance read.
    Members,
    /// An instance read showed this life's inbox moved with no awaited hand-off to account
    /// for it: a hand-off this node did not await, or a nudge from a receiver waiting on it.
    Inbox,
    /// An instance read showed a peer's news: it created, released or retired queues.
    News,
    /// An instance read showed a peer's new life (or this life's inbox counter went back).
    NewLife,
    /// One of this node's queue writes was rejected.
    Rejected,
    /// A hand-off to this node is awaited: read again each heartbeat until it comes.
    AwaitingHandOff,
    /// A table read failed: read again at the next heartbeat.
    Retry,
    /// The periodic reconciliation (`reconcile_interval`).
    Reconcile,
    /// A graceful stop began.
    Shutdown,
}

impl ReadCause {
    /// Every cause, in the order reports list them.
    pub const ALL: [ReadCause; 10] = [
        ReadCause::Start,
        ReadCause::Members,
        ReadCause::Inbox,
        ReadCause::News,
        ReadCause::NewLife,
        ReadCause::Rejected,
        ReadCause::AwaitingHandOff,
        ReadCause::Retry,
        ReadCause::Reconcile,
        ReadCause::Shutdown,
    ];

    /// The cause's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ReadCause::Start => "start",
            ReadCause::Members => "members",
            ReadCause::Inbox => "inbox",
            ReadCause::News => "news",
            ReadCause::NewLife => "new_life",
            ReadCause::Rejected => "rejected",
            ReadCause::AwaitingHandOff => "awaiting_hand_off",
            ReadCause::Retry => "retry",
            ReadCause::Reconcile => "reconcile",
            ReadCause::Shutdown => "shutdown",
        }
    }
}

/// Table reads sent, by cause, and the reads of awaited queue records sent in place of one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableReads {
    /// The count of each cause, in [`ReadCause::ALL`]'s order.
    counts: [u64; ReadCause::ALL.len()],
    /// Reads of the records of queues awaited from their holders ([`crate::Read::Records`]).
    records: u64,
    /// Queue records the table reads brought back.
    returned: u64,
    /// Of those, how many had appeared, changed or vanished since the read before: what a
    /// read of only what changed would bring (docs/design.md §4.12).
    changed: u64,
}

impl TableReads {
    /// Counts one read of awaited queue records.
    pub fn count_records(&mut self) {
        self.records += 1;
    }

    /// The reads of awaited queue records sent: not table reads, and not in [`Self::total`].
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Counts the answer of one table read: `returned` queue records, `changed` of them new
    /// to the reader.
    pub fn count_answer(&mut self, returned: usize, changed: usize) {
        self.returned += returned as u64;
        self.changed += changed as u64;
    }

    /// The queue records the table reads brought back, and how many of them had changed.
    pub fn answers(&self) -> (u64, u64) {
        (self.returned, self.changed)
    }

    /// Counts one read sent for `cause`.
    pub fn count(&mut self, cause: ReadCause) {
        self.counts[cause as usize] += 1;
    }

    /// The reads sent for `cause`.
    pub fn get(&self, cause: ReadCause) -> u64 {
        self.counts[cause as usize]
    }

    /// Every read counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &TableReads) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.records += other.records;
        self.returned += other.returned;
        self.changed += other.changed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_is_listed_once_in_its_own_slot() {
        for (i, c) in ReadCause::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
        let mut names: Vec<&str> = ReadCause::ALL.iter().map(|c| c.name()).collect();
        names.dedup();
        assert_eq!(names.len(), ReadCause::ALL.len());
    }

    #[test]
    fn counts_add_up_by_cause() {
        let mut a = TableReads::default();
        a.count(ReadCause::Inbox);
        a.count(ReadCause::Inbox);
        a.count(ReadCause::Shutdown);
        let mut b = TableReads::default();
        b.count(ReadCause::Inbox);
        b.count_records();
        b.count_answer(100, 3);
        a.count_answer(50, 0);
        a.count_records();
        a.count_records();
        b.add(&a);
        assert_eq!(
            (
                b.get(ReadCause::Inbox),
                b.get(ReadCause::Shutdown),
                b.total(),
                b.records(),
                b.answers()
            ),
            (3, 1, 4, 3, (150, 3))
        );
    }
}

//! The effects a node has issued and not yet heard back from.
//!
//! What is in flight is read from here, never mirrored in flags: whether a read, a listing, a
//! registration, a heartbeat of this life or the deregistration is outstanding is a question
//! asked of the pending operations themselves.

use crate::effect::{Notice, OpId, QueueRecord, Read, Write};
use crate::ids::Owner;
use crate::time::Millis;
use std::collections::BTreeMap;

/// What an issued effect was, kept until its result comes back.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    /// The instance's registration, sent at `sent`.
    Register {
        /// When it was sent: an applied answer opens the fence from then.
        sent: Millis,
    },
    /// A heartbeat of life `life`, sent at `sent`.
    Heartbeat {
        /// When it was sent: an applied answer extends the fence from then.
        sent: Millis,
        /// The incarnation it beats for.
        life: u64,
        /// Whether it publishes loads.
        loads: bool,
    },
    /// Marking an expired peer's life dead, or a timed-out ghost lapsed.
    Reap {
        /// The life reaped or lapsed.
        owner: Owner,
    },
    /// Moving a counter of `to`'s record, so the nodes the notice concerns read the queue
    /// records soon.
    Notify {
        /// The life told.
        to: Owner,
        /// What it tells.
        notice: Notice,
        /// Unknown outcomes of this notice before this copy.
        unknowns: u32,
    },
    /// A write to one queue's record.
    Queue {
        /// The write as sent.
        write: Write,
        /// The record it leaves when applied.
        result: QueueRecord,
        /// Unknown outcomes of this write before this copy.
        unknowns: u32,
    },
    /// The final deregistration of a graceful stop.
    Deregister,
    /// A read of the table.
    Read {
        /// What it reads.
        read: Read,
    },
    /// A listing of the account's queues.
    List,
}

impl Pending {
    /// The node's own bookkeeping (at most a few at a time), as opposed to writes to records
    /// of queues and peers, of which thousands may be in flight.
    fn is_control(&self) -> bool {
        !matches!(
            self,
            Pending::Reap { .. } | Pending::Notify { .. } | Pending::Queue { .. }
        )
    }
}

/// The pending operations, by id. Ids grow with every effect issued, so an id also orders
/// events: a read sent after a write has a larger id.
#[derive(Debug)]
pub(super) struct Ops {
    /// The id the next effect gets.
    next: u64,
    /// Registrations, heartbeats, the deregistration, reads and listings in flight: few, so
    /// the in-flight questions below scan them.
    control: BTreeMap<OpId, Pending>,
    /// Writes to queue records and peers' records in flight.
    records: BTreeMap<OpId, Pending>,
}

impl Default for Ops {
    fn default() -> Ops {
        Ops {
            next: 1,
            control: BTreeMap::new(),
            records: BTreeMap::new(),
        }
    }
}

impl Ops {
    /// The id the next effect will get: a sequence number for "sent after this point".
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Records `pending` under a fresh id.
    pub fn issue(&mut self, pending: Pending) -> OpId {
        let id = OpId(self.next);
        self.next += 1;
        let map = if pending.is_control() {
            &mut self.control
        } else {
            &mut self.records
        };
        map.insert(id, pending);
        id
    }

    /// Takes the operation `id` answered, if it is pending (each is answered once).
    pub fn complete(&mut self, id: OpId) -> Option<Pending> {
        self.control
            .remove(&id)
            .or_else(|| self.records.remove(&id))
    }

    /// Whether `id` is still pending.
    #[cfg(any(fuzzing, debug_assertions))]
    pub fn contains(&self, id: OpId) -> bool {
        self.control.contains_key(&id) || self.records.contains_key(&id)
    }

    /// How many pending control operations `f` picks.
    fn count(&self, f: impl Fn(&Pending) -> bool) -> usize {
        self.control.values().filter(|p| f(p)).count()
    }

    /// Whether a read (of either kind) is in flight.
    pub fn reading(&self) -> bool {
        self.reads() > 0
    }

    /// How many reads are in flight (never more than one).
    pub fn reads(&self) -> usize {
        self.count(|p| matches!(p, Pending::Read { .. }))
    }

    /// Whether a queue listing is in flight.
    pub fn listing(&self) -> bool {
        self.count(|p| matches!(p, Pending::List)) > 0
    }

    /// Whether a registration is in flight.
    pub fn registering(&self) -> bool {
        self.count(|p| matches!(p, Pending::Register { .. })) > 0
    }

    /// Whether the deregistration is in flight.
    pub fn deregistering(&self) -> bool {
        self.count(|p| matches!(p, Pending::Deregister)) > 0
    }

    /// How many heartbeats of life `life` are in flight (never more than one).
    pub fn heartbeats(&self, life: u64) -> usize {
        self.count(|p| matches!(p, Pending::Heartbeat { life: l, .. } if *l == life))
    }
}

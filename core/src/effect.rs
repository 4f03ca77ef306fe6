//! The plain-data vocabulary between the core and its runtime: inputs, effects, and the records
//! they carry.
//!
//! The runtime turns each [`Effect`] into AWS calls (or simulator events) and feeds every result
//! back as [`Input::Completed`] with the [`OpId`] it was issued under. Every write is conditional
//! (its condition is spelled out on each [`Write`] variant) and comes back as applied, rejected
//! (condition failed) or unknown (no answer by the deadline: it may have happened, or may yet).

use crate::ids::{InstanceId, Owner, QueueId};
use crate::loads::PublishedLoads;
use crate::page::QueuePage;
use crate::time::Millis;
use std::sync::Arc;

/// Names one issued read, write or listing; results come back under the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// The status stored in an instance record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Alive and taking queues.
    Active,
    /// Shutting down: alive, keeps what it holds until it hands it off, takes nothing new.
    Draining,
    /// This life is over (deregistered, or reaped by a peer after its heartbeat stopped). Final.
    Dead,
}

/// One instance record (`instance#<id>`) as read from the table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceRecord {
    /// The instance.
    pub id: InstanceId,
    /// Its current life; bumped by every registration.
    pub incarnation: u64,
    /// Heartbeat counter; any change means "alive".
    pub heartbeat: u64,
    /// Lifecycle status.
    pub status: Status,
    /// Capacity weight (at least 1).
    pub capacity: u32,
    /// Hand-offs and nudges announced to this instance by peers ([`Notice::Inbox`]); a change
    /// tells it to read the queue records now rather than at the next reconciliation.
    pub inbox: u64,
    /// Creations, releases and retirements announced by this instance ([`Notice::News`]); a
    /// change tells every node to read the queue records now.
    pub news: u64,
    /// The latest life of this instance that ended (deregistered or reaped; 0: none).
    /// It survives re-registration, so a queue still naming that life is claimable at once
    /// rather than after a ghost's timeout (the rolling-restart case).
    pub ended: u64,
    /// Every life of this instance numbered up to this one is past its fence (0: none
    /// known): set by a reap, and by a peer that timed out a superseded life (a *ghost*), so
    /// that observers who never saw that life need not time it out again.
    pub lapsed: u64,
    /// The life this one's registration superseded, and the heartbeat counter it had
    /// reached then (both 0 for a record created afresh). A peer that saw that counter knows
    /// when the superseded life last showed a sign of life, and times its ghost from then.
    pub prior: (u64, u64),
    /// The loads of the queues this life holds, as it last published them (G14); `None` when
    /// it published none (or the attribute does not decode: every reader then weighs its
    /// queues alike, as if idle).
    pub loads: Option<PublishedLoads>,
}

/// What a [`Write::Notify`] tells. A claim sends none: it moves a queue towards the target
/// every node computes, so no other node's decisions wait on it, and a node whose view missed
/// it learns of it when a write of its own is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Notice {
    /// Something concerns the life told (its `inbox` moves): a queue was handed to it, or a
    /// peer has waited past its move time for it to hand one over (its view may have missed a
    /// claim, so its target differs). That node reads the records.
    Inbox,
    /// The life told, the writer itself, created, released or retired queues (its `news`
    /// moves): every node reads the records, since a queue may be any member's to claim now,
    /// or the quotas changed. One notice follows a burst of such writes.
    News,
}

/// One queue record (`queue#<queue url>`) as read from the table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueRecord {
    /// The queue.
    pub queue: QueueId,
    /// Which life of which instance may receive from it, if any.
    pub owner: Option<Owner>,
    /// Fencing counter: bumped by every write to the record, so it only grows.
    pub epoch: u64,
    /// The queue was found gone; the record is a tombstone kept so epochs never go back.
    pub retired: bool,
}

impl InstanceRecord {
    /// A record of `id` for tests and tools: first life, active, weight 1, no heartbeat yet;
    /// set the public fields for the rest.
    pub fn new(id: InstanceId) -> InstanceRecord {
        InstanceRecord {
            id,
            incarnation: 1,
            heartbeat: 0,
            status: Status::Active,
            capacity: 1,
            inbox: 0,
            news: 0,
            ended: 0,
            lapsed: 0,
            prior: (0, 0),
            loads: None,
        }
    }
}

impl QueueRecord {
    /// A record of `queue` for tests and tools: no owner, epoch 0, live; set the public
    /// fields for the rest.
    pub fn new(queue: QueueId) -> QueueRecord {
        QueueRecord {
            queue,
            owner: None,
            epoch: 0,
            retired: false,
        }
    }
}

/// Records a read found but could not decode (a later version's record, a manual edit), by what
/// their sort keys name. The node never condemns such an instance (it may be heartbeating) and
/// never tries to create such a queue's record (it exists).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unreadable {
    /// Instances whose record could not be decoded, sorted.
    pub instances: Vec<InstanceId>,
    /// Queues whose record could not be decoded, sorted.
    pub queues: Vec<QueueId>,
}

impl Unreadable {
    /// Whether every record could be decoded.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.queues.is_empty()
    }
}

/// A conditional write to the coordination table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Start a new life: atomically add 1 to the incarnation (`first` if the record is absent),
    /// set heartbeat 0, status active and the capacity, and keep the superseded life and its
    /// counter as [`InstanceRecord::prior`]. Unconditional; replies
    /// [`Reply::Registered`] with the new incarnation.
    Register {
        /// This instance.
        id: InstanceId,
        /// Its capacity weight.
        capacity: u32,
        /// The incarnation of a record created afresh: drawn at random, so that an instance
        /// whose record DynamoDB's TTL deleted never starts a life numbered like an earlier one
        /// that a queue record may still name.
        first: u64,
    },
    /// Set the heartbeat counter and status, on condition that the record exists with this
    /// incarnation and is not dead. Rejected means this life is over.
    Heartbeat {
        /// This instance and life.
        owner: Owner,
        /// The new counter value.
        counter: u64,
        /// Active or draining.
        status: Status,
        /// The loads of the queues this life holds, to publish with the heartbeat; `None`
        /// leaves those last published as they are.
        loads: Option<PublishedLoads>,
    },
    /// Announce a change to the queue records: add 1 to a counter of `to`'s instance record,
    /// on condition that the incarnation is still the one named. Every node reads the instance
    /// records at its heartbeat; a change of the counter a notice moves makes the nodes it
    /// concerns re-read the queue records at once. At steady state nothing changes and
    /// nothing extra is read. One of unknown outcome is sent again (a lost notice would delay
    /// its readers until their next reconciliation read).
    Notify {
        /// The life whose record carries the notice.
        to: Owner,
        /// What the notice tells, and so who reads the queue records for it.
        notice: Notice,
    },
    /// Mark a silent peer's life dead (status, `ended` and `lapsed`), on condition that its incarnation
    /// and counter are still the ones observed. Once applied its heartbeats are rejected, so it
    /// stays fenced.
    Reap {
        /// The peer life.
        owner: Owner,
        /// The counter it was observed stuck at.
        counter: u64,
    },
    /// Record that `owner`, a superseded life (a ghost) this node timed out, is past its
    /// fence ([`InstanceRecord::lapsed`]), on condition that the record shows a later life and
    /// a lower `lapsed`. Every peer then treats it as dead, including those that never saw it.
    Lapse {
        /// The ghost.
        owner: Owner,
    },
    /// Create a queue record with no owner and epoch 1, on condition that none exists; or revive
    /// a retired one, on condition that it is still retired at `revive_epoch` (epoch + 1).
    CreateQueue {
        /// The queue discovered.
        queue: QueueId,
        /// `Some(epoch)` to revive a tombstone read at that epoch.
        revive_epoch: Option<u64>,
    },
    /// Take a queue: set owner and epoch + 1, on condition that owner and epoch are still as read.
    Claim {
        /// The queue.
        queue: QueueId,
        /// The owner as read (`None`: no owner).
        expect_owner: Option<Owner>,
        /// The epoch as read.
        expect_epoch: u64,
        /// This instance's current life.
        new_owner: Owner,
    },
    /// Give a queue to `to` (or to nobody), on condition that owner and epoch are still
    /// `from`/`expect_epoch`; epoch + 1. Issued only after this instance's pollers stopped.
    HandOff {
        /// The queue.
        queue: QueueId,
        /// This instance's current life.
        from: Owner,
        /// The epoch as held.
        expect_epoch: u64,
        /// The new owner; `None` releases the queue for anyone to claim.
        to: Option<Owner>,
    },
    /// Turn the record into a tombstone (no owner, retired, epoch + 1) on condition that the
    /// epoch is still as read.
    Retire {
        /// The queue that is gone.
        queue: QueueId,
        /// The epoch as read.
        expect_epoch: u64,
    },
    /// End this life: status dead and `ended` = its incarnation, on condition that the
    /// incarnation is still this one.
    Deregister {
        /// This instance and life.
        owner: Owner,
    },
}

/// A read of the coordination table. Reads are strongly consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// Every instance record of the application (the cheap steady-state read).
    Members,
    /// Every instance record and every queue record of the application. The instance
    /// records are read last, so every life a queue record names registered before they were
    /// read: this read shows it current, superseded, or its record gone, never a view older
    /// than the queue records (which would make a live life look like a ghost).
    Table,
    /// These queue records (a key with no item: the record is gone), then every instance
    /// record, read last for the same reason as in [`Read::Table`]: what a node awaiting a
    /// hand-off needs, at a read unit a record rather than the whole table. Sorted, no
    /// duplicates, at least one.
    Records(Vec<QueueId>),
}

/// One thing the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Perform a conditional write and report [`Input::Completed`].
    Write {
        /// The id to report under.
        id: OpId,
        /// What to write.
        write: Write,
    },
    /// Perform a read and report [`Input::Completed`] with [`Reply::Members`],
    /// [`Reply::Table`] or [`Reply::Records`].
    Read {
        /// The id to report under.
        id: OpId,
        /// What to read.
        read: Read,
    },
    /// List queues whose name starts with `prefix` (all pages) and report [`Reply::Queues`].
    ListQueues {
        /// The id to report under.
        id: OpId,
        /// The longest literal prefix of the filter pattern (may be empty).
        prefix: String,
    },
    /// Start the pollers of `queue`. This instance owns it at `epoch`.
    StartReceiving {
        /// The queue.
        queue: QueueId,
        /// The fencing epoch it is owned at.
        epoch: u64,
    },
    /// Stop the pollers of `queue` at once; report [`Input::ReceivingStopped`] when no receive
    /// call is in flight any more.
    StopReceiving {
        /// The queue.
        queue: QueueId,
    },
    /// The self-fence moved: no receive call may be in flight at or after `until`; the runtime
    /// shortens the wait time of each receive so it ends before it.
    Fence {
        /// The deadline.
        until: Millis,
    },
    /// The node entered a new lifecycle phase.
    Phase(crate::shutdown::Phase),
}

/// The result of an effect, as the runtime observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded (a write's condition held), with its reply.
    Applied(Reply),
    /// A conditional write's condition failed; nothing changed.
    Rejected,
    /// The call failed or found no answer by its deadline; a write may have applied, or may
    /// still apply later (a copy still on its way). The node sends a queue write again until an
    /// answer settles it.
    Unknown,
}

/// The data a successful call returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A write with nothing to return.
    Done,
    /// [`Write::Register`]: the new incarnation.
    Registered {
        /// The incarnation of the new life.
        incarnation: u64,
    },
    /// [`Read::Members`].
    Members {
        /// Every instance record that could be decoded.
        instances: Vec<InstanceRecord>,
        /// Records that could not.
        unreadable: Unreadable,
    },
    /// [`Read::Table`].
    Table {
        /// Every instance record that could be decoded.
        instances: Vec<InstanceRecord>,
        /// Every queue record that could be decoded, page by page, each shared with whatever
        /// else holds it (a view of the table keeps the same allocation).
        pages: Vec<QueuePage>,
        /// Records that could not.
        unreadable: Unreadable,
    },
    /// [`Read::Records`].
    Records {
        /// Every instance record that could be decoded.
        instances: Vec<InstanceRecord>,
        /// The asked queue records that exist and could be decoded (an asked queue missing
        /// here and from `unreadable` has no record).
        queues: Vec<Arc<QueueRecord>>,
        /// Records that could not be decoded.
        unreadable: Unreadable,
    },
    /// [`Effect::ListQueues`]: the queues found (URLs), before filtering. Shared, so that a
    /// simulator can hand one listing to a thousand nodes without copying it for each.
    Queues(Arc<[QueueId]>),
}

/// Something that happened, fed to [`crate::Node::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed; the node does whatever is due (send it at [`crate::Node::poll_timeout`]).
    Tick,
    /// An effect finished.
    Completed {
        /// The id it was issued under.
        id: OpId,
        /// How it ended.
        outcome: Outcome,
    },
    /// The pollers of `queue` stopped after [`Effect::StopReceiving`]; nothing is in flight.
    ReceivingStopped {
        /// The queue.
        queue: QueueId,
    },
    /// SQS answered QueueDoesNotExist for `queue`; the node drops it at once.
    QueueGone {
        /// The queue.
        queue: QueueId,
    },
    /// Begin a graceful shutdown.
    Shutdown,
    /// All handlers have finished and all deletes are flushed (the runtime's part of draining).
    DrainFinished,
    /// The recent load of the queues this instance handles, in any unit used fleet-wide (the
    /// runtime gives handler milliseconds per second). Under [`crate::config::Balance::Load`]
    /// the node publishes them with its heartbeats; otherwise they are kept and unused.
    QueueLoads {
        /// Each queue's load; a held queue not listed counts 0.
        loads: std::collections::BTreeMap<QueueId, u64>,
    },
}

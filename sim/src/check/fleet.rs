//! The fleet as the end-of-run checks see it: one snapshot type that every level builds from
//! its own state, so each check is written once, as a pure function over it.

use sqsbalancer_core::{InstanceId, Owner, Phase, QueueId};
use std::collections::{BTreeMap, BTreeSet};

/// One instance slot at the moment of the snapshot.
#[derive(Clone, Debug)]
pub struct Instance {
    /// Its id (`node-<slot>`).
    pub id: InstanceId,
    /// Its capacity weight.
    pub weight: u32,
    /// The life it runs, once registered.
    pub life: Option<Owner>,
    /// Its lifecycle phase; `None` when no process is up (or it has been asked to stop).
    pub phase: Option<Phase>,
    /// The queues it receives from: pollers started and not told to stop.
    pub receiving: BTreeSet<QueueId>,
}

impl Instance {
    /// Whether it is up and in the Running phase: a member that should hold its share.
    pub fn running(&self) -> bool {
        self.phase == Some(Phase::Running)
    }
}

/// The fleet, the table and SQS at one moment.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    /// Every instance slot, by slot index.
    pub instances: Vec<Instance>,
    /// The queues that exist at SQS, in the fake's order.
    pub queues: Vec<QueueId>,
    /// Each queue record's owner, as last written to the table.
    pub records: BTreeMap<QueueId, Option<Owner>>,
}

impl Fleet {
    /// The running instances with their slot indices.
    pub fn running(&self) -> impl Iterator<Item = (usize, &Instance)> {
        self.instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.running())
    }

    /// The life queue `q`'s record names, if any.
    pub fn record(&self, q: &QueueId) -> Option<&Owner> {
        self.records.get(q).and_then(Option::as_ref)
    }
}

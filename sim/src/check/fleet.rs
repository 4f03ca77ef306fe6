//! The fleet as the end-of-run checks see it: one snapshot type that every level builds from
//! its own state, so each check is written once, as a pure function over it.

use sqsbalancer_core::config::Balance;
use sqsbalancer_core::loads::PublishedLoads;
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
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Every instance slot, by slot index.
    pub instances: Vec<Instance>,
    /// The queues that exist at SQS, in the fake's order.
    pub queues: Vec<QueueId>,
    /// Each queue record's owner, as last written to the table.
    pub records: BTreeMap<QueueId, Option<Owner>>,
    /// What the instances' targets balance.
    pub balance: Balance,
    /// The loads each instance record carries, as last written (those that carry some).
    pub loads: BTreeMap<InstanceId, PublishedLoads>,
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet {
            instances: Vec::new(),
            queues: Vec::new(),
            records: BTreeMap::new(),
            balance: Balance::Count,
            loads: BTreeMap::new(),
        }
    }
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

/// Small fleets for the checks' unit tests.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;
    use sqsbalancer_core::InstanceId;

    /// Queue `n` of a test fleet.
    pub(in crate::check) fn queue(n: usize) -> QueueId {
        QueueId::new(&format!("https://x/1/q-{n}")).unwrap()
    }

    /// The first life of `node-<slot>`.
    pub(in crate::check) fn life(slot: usize) -> Owner {
        Owner {
            id: InstanceId::new(&format!("node-{slot}")).unwrap(),
            incarnation: 1,
        }
    }

    /// A running fleet of instances of weight one, instance `i` receiving the queues
    /// `held[i]`, every record naming its receiver.
    pub(in crate::check) fn fleet(held: &[&[usize]]) -> Fleet {
        let mut f = Fleet::default();
        for (slot, qs) in held.iter().enumerate() {
            f.instances.push(Instance {
                id: life(slot).id,
                weight: 1,
                life: Some(life(slot)),
                phase: Some(Phase::Running),
                receiving: qs.iter().map(|&n| queue(n)).collect(),
            });
            for &n in *qs {
                f.records.insert(queue(n), Some(life(slot)));
            }
        }
        let n = held.iter().map(|qs| qs.len()).sum();
        f.queues = (0..n).map(queue).collect();
        f
    }
}

//! The fleet of a level-2 or level-3 run as the checks see it ([`Fleet`]): each instance
//! from its runtime's own view (its phase, what it receives), the records as last written.

use super::shared::{Shared, Up};
use crate::check::{Fleet, Instance};
use sqsbalancer_core::{InstanceId, QueueId};

/// The fleet of `s` now. An instance asked to stop, or down, has no phase.
pub(crate) fn fleet(s: &Shared) -> Fleet {
    let instances = s
        .slots
        .iter()
        .enumerate()
        .map(|(i, sl)| {
            let handle = sl.handle.as_ref().filter(|_| sl.up == Up::Running);
            Instance {
                id: InstanceId::new(&sl.name).expect("slot names are valid instance ids"),
                weight: sl.weight,
                life: s.lives.get(&(i, sl.life)).cloned(),
                phase: handle.map(|h| h.phase()),
                receiving: handle
                    .map(|h| h.receiving().into_keys().collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Fleet {
        instances,
        queues: s.sqs.urls().filter_map(|u| QueueId::new(u).ok()).collect(),
        records: s
            .owners
            .iter()
            .map(|(q, o)| (q.clone(), o.0.clone()))
            .collect(),
        balance: s.balance,
        loads: (s.published.iter())
            .filter_map(|(id, l)| Some((id.clone(), l.clone()?)))
            .collect(),
    }
}

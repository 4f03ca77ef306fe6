//! This node's part in sharing loads (G14, [`crate::loads`]): what the runtime measured, what
//! this life's record carries, and when the next heartbeat should publish again.

use crate::ids::QueueId;
use crate::loads::{PublishedLoads, material};
use crate::time::Millis;
use std::collections::BTreeMap;
use std::time::Duration;

/// The loads this node measures and publishes.
#[derive(Debug, Default)]
pub(super) struct Publisher {
    /// Each queue's load as the runtime last measured it ([`crate::Input::QueueLoads`]).
    measured: BTreeMap<QueueId, u64>,
    /// What this life's record carries as far as this node knows, and when it was sent; `None`
    /// after a registration (which removes a record's loads) or a heartbeat of unknown outcome
    /// that carried some.
    published: Option<(PublishedLoads, Millis)>,
}

impl Publisher {
    /// Takes the runtime's latest measures.
    pub fn measured(&mut self, loads: BTreeMap<QueueId, u64>) {
        self.measured = loads;
    }

    /// The loads a heartbeat sent at `now` should publish for `held` (the queues this node
    /// receives from; a queue not measured counts 0): none unless `interval` passed since the
    /// last were sent and readers of those would misjudge these [`material`]ly.
    pub fn due<'a>(
        &self,
        now: Millis,
        interval: Duration,
        held: impl Iterator<Item = &'a QueueId>,
    ) -> Option<PublishedLoads> {
        let last = self.published.as_ref();
        if last.is_some_and(|(_, at)| now.since(*at) < interval) {
            return None;
        }
        let loads: BTreeMap<QueueId, u64> = held
            .map(|q| (q.clone(), self.measured.get(q).copied().unwrap_or(0)))
            .collect();
        let summary = || PublishedLoads::summarize(loads.iter().map(|(q, &l)| (q, l)));
        material(last.map(|(p, _)| p), &loads).then(summary)
    }

    /// A heartbeat carrying `loads` was sent at `now`.
    pub fn sent(&mut self, loads: PublishedLoads, now: Millis) {
        self.published = Some((loads, now));
    }

    /// The record may not carry what was last sent: a new life, or a heartbeat of unknown
    /// outcome. The next heartbeat publishes again.
    pub fn forget(&mut self) {
        self.published = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(i: usize) -> QueueId {
        QueueId::new(&format!("q-{i}")).unwrap()
    }

    #[test]
    fn loads_are_published_at_once_then_only_on_a_material_change_an_interval_apart() {
        let minute = Duration::from_secs(60);
        let held = [q(0), q(1)];
        let mut p = Publisher::default();
        p.measured(BTreeMap::from([(q(0), 400), (q(1), 100), (q(9), 900)]));
        let first = p
            .due(Millis(0), minute, held.iter())
            .expect("nothing published yet");
        assert_eq!(first.estimate(&q(0)), 400);
        assert_eq!(first.estimate(&q(9)), 0, "q-9 is not held");
        p.sent(first, Millis(0));
        p.measured(BTreeMap::from([(q(0), 900), (q(1), 100)]));
        assert_eq!(p.due(Millis(59_999), minute, held.iter()), None);
        assert!(p.due(Millis(60_000), minute, held.iter()).is_some());
        p.measured(BTreeMap::from([(q(0), 420), (q(1), 100)]));
        assert_eq!(p.due(Millis(60_000), minute, held.iter()), None);
        p.forget();
        assert!(p.due(Millis(60_001), minute, held.iter()).is_some());
    }
}

//! Messages received and not yet finished, and the keeper that extends their visibility while
//! they wait or run, so a slow handler is not raced by a redelivery (up to SQS's 12 h limit).

use super::Shared;
use super::batches::Change;
use super::settings::MAX_VISIBILITY;
use crate::telemetry::QueueMetrics;
use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::{Duration, Instant};

/// One message the data plane holds.
struct Entry {
    queue: QueueId,
    receipt: String,
    visibility: Duration,
    received: Instant,
    visible_until: Instant,
}

/// The messages held, by an id given at receipt.
#[derive(Default)]
pub(super) struct InFlight {
    next: u64,
    entries: BTreeMap<u64, Entry>,
}

impl InFlight {
    /// Registers a message received by a call sent at `sent` with `visibility_secs`.
    pub(super) fn add(
        &mut self,
        queue: &QueueId,
        receipt: &str,
        visibility_secs: u32,
        sent: Instant,
    ) -> u64 {
        let id = self.next;
        self.next += 1;
        let visibility = Duration::from_secs(u64::from(visibility_secs));
        self.entries.insert(
            id,
            Entry {
                queue: queue.clone(),
                receipt: receipt.to_owned(),
                visibility,
                received: sent,
                visible_until: sent + visibility,
            },
        );
        id
    }

    /// Forgets a finished message.
    pub(super) fn remove(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// The extensions due at `now`: every message with less than half its visibility timeout
    /// left is made invisible for another full timeout, never past 12 h from its receipt.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(QueueId, String, u32)> {
        let mut out = Vec::new();
        for e in self.entries.values_mut() {
            if e.visibility.is_zero() || e.visible_until > now + e.visibility / 2 {
                continue;
            }
            let left = (e.received + MAX_VISIBILITY).saturating_duration_since(now);
            let secs = e.visibility.min(left).as_secs() as u32;
            if secs == 0 {
                continue;
            }
            e.visible_until = now + Duration::from_secs(u64::from(secs));
            out.push((e.queue.clone(), e.receipt.clone(), secs));
        }
        out
    }
}

/// Extends what is due every tick until the data plane closes.
pub(super) async fn keep<Q, C>(shared: Arc<Shared<Q, C>>) {
    let tick = shared.settings.extension_tick();
    let mut closed = shared.closed.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = closed.wait_for(|c| *c) => return,
        }
        let due = shared.lock_inflight().due(Instant::now());
        for (queue, receipt, secs) in due {
            tracing::debug!(queue = %queue, visibility_secs = secs, "extending visibility");
            QueueMetrics::of(&queue).extended();
            shared.change(Change::visibility(queue, receipt, secs, false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> QueueId {
        QueueId::new("https://sqs.local/1/q").expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn extends_past_half_the_timeout_and_never_beyond_twelve_hours() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        let a = f.add(&queue(), "a", 30, t0);
        f.add(&queue(), "b", 0, t0);
        assert!(f.due(t0 + Duration::from_secs(14)).is_empty(), "16 s left");
        let due = f.due(t0 + Duration::from_secs(15));
        assert_eq!(
            due,
            vec![(queue(), "a".to_owned(), 30)],
            "zero visibility never extended"
        );
        assert!(
            f.due(t0 + Duration::from_secs(20)).is_empty(),
            "extended to 45 s"
        );
        // Near the 12 h ceiling only what is left is granted, then nothing.
        let near = t0 + MAX_VISIBILITY - Duration::from_secs(10);
        assert_eq!(f.due(near), vec![(queue(), "a".to_owned(), 10)]);
        assert!(f.due(t0 + MAX_VISIBILITY).is_empty());
        f.remove(a);
        assert!(f.due(t0 + MAX_VISIBILITY * 2).is_empty());
    }
}

//! Messages received and not yet finished, and which of them need their visibility extended
//! (the keeper, `keeper.rs`, asks SQS for it), so a slow handler is not raced by a redelivery
//! (up to SQS's 12 h limit). An extension counts only once SQS has accepted it: one that
//! failed is tried again at the keeper's next tick (an eighth of the timeout later), while the
//! old timeout still runs.

use super::settings::MAX_VISIBILITY;
use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use tokio::time::{Duration, Instant};

/// One message the data plane holds.
struct Entry {
    queue: QueueId,
    receipt: String,
    /// The visibility timeout it was received (and is extended) with.
    visibility: Duration,
    /// When the receive that returned it was sent (its visibility counts from no earlier).
    received: Instant,
    /// Until when SQS has been told to keep it invisible, by an accepted change.
    visible_until: Instant,
    /// An extension is on its way; its answer decides `visible_until`.
    extending: bool,
}

/// One extension to ask SQS for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Extension {
    /// The message's id in the registry.
    pub(super) id: u64,
    pub(super) queue: QueueId,
    pub(super) receipt: String,
    /// The new visibility timeout, from now.
    pub(super) secs: u32,
    /// Until when the message stays invisible once SQS accepts it.
    pub(super) until: Instant,
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
                extending: false,
            },
        );
        id
    }

    /// Forgets a finished message.
    pub(super) fn remove(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// The extensions due at `now`: every message with less than half its visibility timeout
    /// left, and no extension on its way, is to be made invisible for another full timeout,
    /// never past 12 h from its receipt.
    pub(super) fn due(&mut self, now: Instant) -> Vec<Extension> {
        let mut out = Vec::new();
        for (id, e) in &mut self.entries {
            if e.extending || e.visibility.is_zero() || e.visible_until > now + e.visibility / 2 {
                continue;
            }
            let left = (e.received + MAX_VISIBILITY).saturating_duration_since(now);
            let secs = e.visibility.min(left).as_secs() as u32;
            if secs == 0 {
                continue;
            }
            e.extending = true;
            out.push(Extension {
                id: *id,
                queue: e.queue.clone(),
                receipt: e.receipt.clone(),
                secs,
                until: now + Duration::from_secs(u64::from(secs)),
            });
        }
        out
    }

    /// SQS answered extension `x`: accepted moves the message's deadline; refused (or no
    /// answer) leaves it, and the next tick asks again.
    pub(super) fn extension_answered(&mut self, x: &Extension, accepted: bool) {
        if let Some(e) = self.entries.get_mut(&x.id) {
            e.extending = false;
            if accepted {
                e.visible_until = e.visible_until.max(x.until);
            }
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
        let asked = |due: &[Extension]| -> Vec<(String, u32)> {
            due.iter().map(|x| (x.receipt.clone(), x.secs)).collect()
        };
        assert!(f.due(t0 + Duration::from_secs(14)).is_empty(), "16 s left");
        let due = f.due(t0 + Duration::from_secs(15));
        assert_eq!(
            asked(&due),
            vec![("a".to_owned(), 30)],
            "zero visibility never extended"
        );
        assert!(
            f.due(t0 + Duration::from_secs(16)).is_empty(),
            "one extension on its way at a time"
        );
        f.extension_answered(&due[0], true);
        assert!(
            f.due(t0 + Duration::from_secs(20)).is_empty(),
            "extended to 45 s"
        );
        // Near the 12 h ceiling only what is left is granted, then nothing.
        let near = t0 + MAX_VISIBILITY - Duration::from_secs(10);
        let due = f.due(near);
        assert_eq!(asked(&due), vec![("a".to_owned(), 10)]);
        f.extension_answered(&due[0], true);
        assert!(f.due(t0 + MAX_VISIBILITY).is_empty());
        f.remove(a);
        assert!(f.due(t0 + MAX_VISIBILITY * 2).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_extension_is_asked_again_before_the_old_timeout_runs_out() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        f.add(&queue(), "a", 30, t0);
        let first = f.due(t0 + Duration::from_secs(15));
        f.extension_answered(&first[0], false);
        // The deadline stays at 30 s: the next look (an eighth of the timeout on) asks again.
        let again = f.due(t0 + Duration::from_millis(18_750));
        assert_eq!(again.len(), 1, "not asked again");
        assert_eq!(again[0].until, t0 + Duration::from_millis(48_750));
    }
}

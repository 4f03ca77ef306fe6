//! What a running balancer reports about itself: [`Stats`] (totals since start) and
//! [`Health`] (whether it can reach its coordination table, and the last error if not).

use crate::error::BackendError;
use sqsbalancer_core::Phase;
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// Totals since the balancer started, and where it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages received from SQS.
    pub received: u64,
    /// Messages whose handler succeeded (deleted, or being deleted).
    pub succeeded: u64,
    /// Messages whose handler failed, panicked or timed out (left for redelivery).
    pub failed: u64,
    /// Received messages made visible again unstarted (hand-offs and shutdown).
    pub released: u64,
    /// Messages in the handler now.
    pub in_handlers: u64,
    /// Queues this instance receives from now.
    pub owned_queues: usize,
    /// The lifecycle phase.
    pub phase: Phase,
}

/// Whether the balancer is working, for a readiness or liveness probe.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// True when the phase is running, the coordination table answered within the heartbeat
    /// timeout, and no call has been refused or left unsent for want of credentials since.
    pub healthy: bool,
    /// The lifecycle phase.
    pub phase: Phase,
    /// How long ago the coordination table last answered; `None` before it ever did.
    pub since_table_answered: Option<Duration>,
    /// The last failed backend call since the last success, if any.
    pub last_error: Option<BackendError>,
}

/// Records the outcome of every coordination call, for [`Health`].
#[derive(Debug)]
pub(crate) struct HealthTracker {
    inner: Mutex<Tracked>,
    heartbeat_timeout: Duration,
}

#[derive(Debug, Default)]
struct Tracked {
    last_ok: Option<Instant>,
    last_error: Option<BackendError>,
}

impl HealthTracker {
    pub(crate) fn new(heartbeat_timeout: Duration) -> HealthTracker {
        HealthTracker {
            inner: Mutex::new(Tracked::default()),
            heartbeat_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A coordination call got an answer (a failed condition is an answer).
    pub(crate) fn answered(&self) {
        let mut t = self.lock();
        t.last_ok = Some(Instant::now());
        t.last_error = None;
    }

    /// A backend call failed with `e`.
    pub(crate) fn failed(&self, e: &BackendError) {
        self.lock().last_error = Some(e.clone());
    }

    /// The health now, in `phase`.
    pub(crate) fn health(&self, phase: Phase) -> Health {
        let t = self.lock();
        let since = t.last_ok.map(|at| at.elapsed());
        let refused = matches!(
            t.last_error,
            Some(BackendError::Refused { .. } | BackendError::Credentials { .. })
        );
        Health {
            healthy: phase == Phase::Running
                && since.is_some_and(|s| s <= self.heartbeat_timeout)
                && !refused,
            phase,
            since_table_answered: since,
            last_error: t.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn healthy_only_while_running_answered_recently_and_not_refused() {
        let t = HealthTracker::new(Duration::from_secs(30));
        assert!(!t.health(Phase::Running).healthy, "never answered");
        t.answered();
        assert!(t.health(Phase::Running).healthy);
        assert!(!t.health(Phase::Draining).healthy, "not running");
        t.failed(&BackendError::Unknown {
            service: "dynamodb",
            reason: "timeout".into(),
        });
        assert!(
            t.health(Phase::Running).healthy,
            "one timeout is not an outage"
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        let h = t.health(Phase::Running);
        assert!(!h.healthy, "silent past the heartbeat timeout");
        assert!(matches!(h.last_error, Some(BackendError::Unknown { .. })));
        t.answered();
        t.failed(&BackendError::Refused {
            service: "dynamodb",
            reason: "AccessDenied".into(),
        });
        assert!(
            !t.health(Phase::Running).healthy,
            "refused: credentials or permissions"
        );
    }
}

//! What a running balancer reports about itself: [`Stats`] (totals since start) and
//! [`Health`] (whether it reads its coordination table, and the last error if not).

use crate::error::BackendError;
use sqsbalancer_core::{Phase, QueueId, Reply, Unreadable};
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// Totals since the balancer started, and where it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// This instance's id.
    pub instance_id: String,
    /// Messages handled to an outcome: `succeeded` + `failed`.
    pub processed: u64,
    /// Messages received from SQS.
    pub received: u64,
    /// Messages whose handler succeeded (deleted, or being deleted).
    pub succeeded: u64,
    /// Messages whose handler failed, panicked or timed out (left for redelivery).
    pub failed: u64,
    /// Received messages made visible again unstarted (hand-offs and shutdown).
    pub released: u64,
    /// Messages whose receive came back after the self-fence: never handed to a handler (a
    /// peer may own the queue by then), made visible again at once.
    pub fenced_out: u64,
    /// Messages in the handler now.
    pub in_handlers: u64,
    /// Workers running a handler now (a batch handler holds one worker for its batch).
    pub busy_workers: u64,
    /// Messages received and waiting for a worker: the work queue's depth.
    pub work_queue_depth: u64,
    /// Queues this instance receives from now.
    pub owned_queues: usize,
    /// Those queues.
    pub queues: Vec<QueueId>,
    /// Each of those queues' recent load: handler milliseconds per second (1,000 is one
    /// worker busy all the time), decayed over five minutes; what load balance weighs.
    pub queue_load: std::collections::BTreeMap<QueueId, u64>,
    /// Live instances the queues are divided among, this one included while running.
    pub instances: usize,
    /// The lifecycle phase.
    pub phase: Phase,
}

/// Whether the balancer is working, for a readiness or liveness probe.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// True when the phase is running, a read of the coordination table completed within the
    /// heartbeat timeout, and no call has been refused or left unsent for want of credentials
    /// since. (Heartbeats alone are not enough: an instance that cannot read never sees the
    /// queues handed to it.)
    pub healthy: bool,
    /// The lifecycle phase.
    pub phase: Phase,
    /// How long ago the coordination table last answered any call; `None` before it ever did.
    pub since_table_answered: Option<Duration>,
    /// How long ago a read of the coordination table last completed; `None` before one did.
    pub since_table_read: Option<Duration>,
    /// The last failed backend call since the last success, if any.
    pub last_error: Option<BackendError>,
    /// Records the last reads could not decode (a later version's, or edited by hand): such
    /// an instance counts as alive and such a queue is left alone until they can be read.
    pub unreadable: Unreadable,
    /// Live instances the queues are divided among, this one included while running.
    pub instances: usize,
    /// Queues this instance receives from now.
    pub queues: usize,
    /// The worker pool's size.
    pub workers: usize,
}

/// What a health report counts besides the table: the fleet, the queues and the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fleet {
    /// Live instances the queues are divided among.
    pub(crate) instances: usize,
    /// Queues this instance receives from.
    pub(crate) queues: usize,
    /// The worker pool's size.
    pub(crate) workers: usize,
}

/// Records the outcome of every coordination call, for [`Health`].
#[derive(Debug)]
pub(crate) struct HealthTracker {
    inner: Mutex<Tracked>,
    heartbeat_timeout: Duration,
}

#[derive(Debug, Default)]
struct Tracked {
    /// The last answer of any coordination call.
    last_ok: Option<Instant>,
    /// The last completed read.
    last_read: Option<Instant>,
    last_error: Option<BackendError>,
    unreadable: Unreadable,
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
        t.last_ok = Some(crate::clock::now());
        t.last_error = None;
    }

    /// A read of the table completed with `reply`.
    pub(crate) fn read_completed(&self, reply: &Reply) {
        let mut t = self.lock();
        t.last_read = Some(crate::clock::now());
        match reply {
            Reply::Table { unreadable, .. } => t.unreadable = unreadable.clone(),
            // A read of some queues' records tells nothing of the other queues'.
            Reply::Members { unreadable, .. } | Reply::Records { unreadable, .. } => {
                t.unreadable.instances = unreadable.instances.clone();
            }
            _ => {}
        }
    }

    /// A backend call failed with `e`.
    pub(crate) fn failed(&self, e: &BackendError) {
        self.lock().last_error = Some(e.clone());
    }

    /// The health now, in `phase`, with the counts of `fleet`.
    pub(crate) fn health(&self, phase: Phase, fleet: Fleet) -> Health {
        let t = self.lock();
        let now = crate::clock::now();
        let since = t.last_ok.map(|at| now.saturating_duration_since(at));
        let since_read = t.last_read.map(|at| now.saturating_duration_since(at));
        let refused = matches!(
            t.last_error,
            Some(
                BackendError::Refused { .. }
                    | BackendError::Credentials { .. }
                    | BackendError::Malformed { .. }
            )
        );
        Health {
            healthy: phase == Phase::Running
                && since_read.is_some_and(|s| s <= self.heartbeat_timeout)
                && !refused,
            phase,
            since_table_answered: since,
            since_table_read: since_read,
            last_error: t.last_error.clone(),
            unreadable: t.unreadable.clone(),
            instances: fleet.instances,
            queues: fleet.queues,
            workers: fleet.workers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> Reply {
        Reply::Members {
            instances: Vec::new(),
            unreadable: Unreadable::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_only_while_running_reading_and_not_refused() {
        let t = HealthTracker::new(Duration::from_secs(30));
        assert!(
            !t.health(Phase::Running, Fleet::default()).healthy,
            "never read"
        );
        t.answered();
        t.read_completed(&read());
        assert!(t.health(Phase::Running, Fleet::default()).healthy);
        assert!(
            !t.health(Phase::Draining, Fleet::default()).healthy,
            "not running"
        );
        t.failed(&BackendError::Unknown {
            service: "dynamodb",
            reason: "timeout".into(),
        });
        assert!(
            t.health(Phase::Running, Fleet::default()).healthy,
            "one timeout is not an outage"
        );
        // Heartbeats keep being answered, but no read completes (one hung Query): an instance
        // that cannot read never sees the queues handed to it.
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(10)).await;
            t.answered();
        }
        let h = t.health(Phase::Running, Fleet::default());
        assert!(!h.healthy, "no read within the heartbeat timeout");
        assert!(h.since_table_answered < Some(Duration::from_secs(1)));
        assert!(h.last_error.is_none());
        t.read_completed(&read());
        assert!(t.health(Phase::Running, Fleet::default()).healthy);
        t.failed(&BackendError::Refused {
            service: "dynamodb",
            reason: "AccessDenied".into(),
        });
        assert!(
            !t.health(Phase::Running, Fleet::default()).healthy,
            "refused: credentials or permissions"
        );
    }

    #[test]
    fn unreadable_records_are_reported_until_a_read_decodes_them() {
        let t = HealthTracker::new(Duration::from_secs(30));
        let id = sqsbalancer_core::InstanceId::new("newer").unwrap();
        let q = sqsbalancer_core::QueueId::new("q").unwrap();
        let mut unreadable = Unreadable::default();
        unreadable.instances.push(id.clone());
        unreadable.queues.push(q.clone());
        t.read_completed(&Reply::Table {
            instances: Vec::new(),
            pages: Vec::new(),
            unreadable,
        });
        // A members read speaks for the instances only.
        t.read_completed(&read());
        let h = t.health(Phase::Running, Fleet::default());
        assert!(h.unreadable.instances.is_empty());
        assert_eq!(h.unreadable.queues, vec![q]);
    }
}

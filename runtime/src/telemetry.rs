//! Metrics through the `metrics` facade (feature `metrics`, on by default): whatever recorder
//! the application installs (Prometheus, OpenTelemetry, StatsD) receives them; without one, or
//! without the feature, each call is a no-op.
//!
//! Names (stable): the Go library's four message counters, `sqsbalancer.messages.received`,
//! `.processed`, `.succeeded` and `.failed`, labelled `queue_url`; `.released` (unstarted
//! messages made visible again), `.fenced_out` (messages whose receive came back after the
//! self-fence, made visible again unhandled) and `sqsbalancer.visibility.extended`, also by
//! queue;
//! `sqsbalancer.handler.duration` and `sqsbalancer.message.dwell` (seconds from SQS's
//! `SentTimestamp` to the handler's start), both by queue, and the gauge
//! `sqsbalancer.handler.in_flight`; the gauge `sqsbalancer.queues.owned` and the counter
//! `sqsbalancer.queues.moves` (label `direction`: `acquired` or `released`); and
//! `sqsbalancer.api.calls` by `operation` and `outcome` (`ok` or `error`); and the node's
//! reads of the coordination table: `sqsbalancer.table.reads` (whole-table reads, label `cause`)
//! and `sqsbalancer.table.record_reads` (reads of awaited queue records in their place).

use sqsbalancer_core::{QueueId, TableReads};
use std::time::Duration;

/// One queue's metric handles, registered once when its poller starts so that counting a
/// message costs an increment, not a registration. (Install the recorder before starting.)
#[derive(Clone)]
pub(crate) struct QueueMetrics {
    #[cfg(feature = "metrics")]
    handles: std::sync::Arc<Handles>,
}

#[cfg(feature = "metrics")]
struct Handles {
    received: metrics::Counter,
    processed: metrics::Counter,
    succeeded: metrics::Counter,
    failed: metrics::Counter,
    released: metrics::Counter,
    fenced_out: metrics::Counter,
    extended: metrics::Counter,
    duration: metrics::Histogram,
    dwell: metrics::Histogram,
}

impl QueueMetrics {
    /// The handles of `queue`, labelled `queue_url`.
    pub(crate) fn of(queue: &QueueId) -> QueueMetrics {
        #[cfg(feature = "metrics")]
        {
            let url = || metrics::SharedString::from_shared(queue.shared());
            QueueMetrics {
                handles: std::sync::Arc::new(Handles {
                    received: metrics::counter!("sqsbalancer.messages.received", "queue_url" => url()),
                    processed: metrics::counter!("sqsbalancer.messages.processed", "queue_url" => url()),
                    succeeded: metrics::counter!("sqsbalancer.messages.succeeded", "queue_url" => url()),
                    failed: metrics::counter!("sqsbalancer.messages.failed", "queue_url" => url()),
                    released: metrics::counter!("sqsbalancer.messages.released", "queue_url" => url()),
                    fenced_out: metrics::counter!("sqsbalancer.messages.fenced_out", "queue_url" => url()),
                    extended: metrics::counter!("sqsbalancer.visibility.extended", "queue_url" => url()),
                    duration: metrics::histogram!("sqsbalancer.handler.duration", "queue_url" => url()),
                    dwell: metrics::histogram!("sqsbalancer.message.dwell", "queue_url" => url()),
                }),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = queue;
            QueueMetrics {}
        }
    }

    /// `n` messages received.
    pub(crate) fn received(&self, n: usize) {
        #[cfg(feature = "metrics")]
        self.handles.received.increment(n as u64);
        #[cfg(not(feature = "metrics"))]
        let _ = n;
    }

    /// One message handled: processed, and succeeded or failed.
    pub(crate) fn processed(&self, success: bool) {
        #[cfg(feature = "metrics")]
        {
            self.handles.processed.increment(1);
            if success {
                self.handles.succeeded.increment(1);
            } else {
                self.handles.failed.increment(1);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = success;
    }

    /// An unstarted message made visible again (a hand-off or a shutdown).
    pub(crate) fn released(&self) {
        #[cfg(feature = "metrics")]
        self.handles.released.increment(1);
    }

    /// `n` messages came back after the self-fence and were made visible again unhandled.
    pub(crate) fn fenced_out(&self, n: usize) {
        #[cfg(feature = "metrics")]
        self.handles.fenced_out.increment(n as u64);
        #[cfg(not(feature = "metrics"))]
        let _ = n;
    }

    /// A message kept invisible for another visibility timeout.
    pub(crate) fn extended(&self) {
        #[cfg(feature = "metrics")]
        self.handles.extended.increment(1);
    }

    /// A handler is about to start on `m`: how long it waited since it was sent.
    pub(crate) fn dwell(&self, m: &crate::backend::Message) {
        #[cfg(feature = "metrics")]
        if let Some(d) = m
            .system
            .get("SentTimestamp")
            .and_then(|s| dwell_of(s, wall_ms()))
        {
            self.handles.dwell.record(d.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = m;
    }

    /// One handler invocation took `took`.
    pub(crate) fn handler_duration(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        self.handles.duration.record(took.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = took;
    }
}

/// Milliseconds since the Unix epoch now, on the clock SQS stamps `SentTimestamp` with.
#[cfg(feature = "metrics")]
#[allow(
    clippy::disallowed_methods,
    reason = "dwell is measured against SQS's wall-clock SentTimestamp"
)]
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long a message sent at `sent` (SQS's `SentTimestamp`, epoch ms) has waited at
/// `now_ms`; `None` if the stamp does not parse. A clock behind SQS's reads as zero.
#[cfg(any(feature = "metrics", test))]
fn dwell_of(sent: &str, now_ms: u64) -> Option<Duration> {
    let sent: u64 = sent.parse().ok()?;
    Some(Duration::from_millis(now_ms.saturating_sub(sent)))
}

/// Messages in handlers now.
pub(crate) fn in_flight(n: u64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("sqsbalancer.handler.in_flight").set(n as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = n;
}

/// Queues this instance receives from now, and how many it just acquired and released.
pub(crate) fn ownership(owned: usize, acquired: usize, released: usize) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("sqsbalancer.queues.owned").set(owned as f64);
        if acquired > 0 {
            metrics::counter!("sqsbalancer.queues.moves", "direction" => "acquired")
                .increment(acquired as u64);
        }
        if released > 0 {
            metrics::counter!("sqsbalancer.queues.moves", "direction" => "released")
                .increment(released as u64);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (owned, acquired, released);
}

/// One AWS call, by its API operation name.
pub(crate) fn api_call(operation: &'static str, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "sqsbalancer.api.calls",
        "operation" => operation,
        "outcome" => if ok { "ok" } else { "error" }
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, ok);
}

/// The node's reads of the coordination table sent between two counts of them, `before` and
/// `now`: a whole-table read costs every queue record, so its cause tells an operator what to
/// change when read units run high.
pub(crate) fn table_reads(before: &TableReads, now: &TableReads) {
    #[cfg(feature = "metrics")]
    {
        for cause in sqsbalancer_core::ReadCause::ALL {
            let sent = now.get(cause).saturating_sub(before.get(cause));
            if sent > 0 {
                metrics::counter!("sqsbalancer.table.reads", "cause" => cause.name())
                    .increment(sent);
            }
        }
        let sent = now.records().saturating_sub(before.records());
        if sent > 0 {
            metrics::counter!("sqsbalancer.table.record_reads").increment(sent);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (before, now);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use sqsbalancer_core::ReadCause;

    /// The counters `f` incremented, by name and labels, as `name{label=value}`.
    fn counted(f: impl FnOnce()) -> Vec<(String, u64)> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        let mut out: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| {
                let DebugValue::Counter(n) = value else {
                    return None;
                };
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                Some((format!("{}{{{}}}", key.name(), labels.join(",")), n))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn table_reads_count_what_was_sent_between_the_two_counts_by_cause() {
        let mut before = TableReads::default();
        before.count(ReadCause::Start);
        before.count(ReadCause::Inbox);
        before.count_records();
        let mut now = before;
        now.count(ReadCause::NewLife);
        now.count(ReadCause::NewLife);
        now.count(ReadCause::Reconcile);
        now.count_records();
        let counted = counted(|| table_reads(&before, &now));
        assert_eq!(
            counted,
            vec![
                ("sqsbalancer.table.reads{cause=new_life}".to_owned(), 2),
                ("sqsbalancer.table.reads{cause=reconcile}".to_owned(), 1),
                ("sqsbalancer.table.record_reads{}".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn dwell_is_the_time_since_the_sent_timestamp() {
        let d = |sent, now| dwell_of(sent, now);
        assert_eq!(
            d("1700000000000", 1_700_000_001_500),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(d("1700000000000", 1_699_999_999_000), Some(Duration::ZERO));
        assert_eq!(d("soon", 1), None);
    }

    #[test]
    fn table_reads_count_nothing_when_nothing_was_sent() {
        let mut reads = TableReads::default();
        reads.count(ReadCause::Members);
        assert_eq!(counted(|| table_reads(&reads, &reads)), vec![]);
    }
}

//! Metrics through the `metrics` facade (feature `metrics`, on by default): whatever recorder
//! the application installs (Prometheus, OpenTelemetry, StatsD) receives them; without one, or
//! without the feature, each call is a no-op.
//!
//! Names (stable): the Go library's four message counters, `sqsbalancer.messages.received`,
//! `.processed`, `.succeeded` and `.failed`, labelled `queue_url`; `.released` (unstarted
//! messages made visible again) and `sqsbalancer.visibility.extended`, also by queue;
//! `sqsbalancer.handler.duration` (seconds, by queue) and the gauge
//! `sqsbalancer.handler.in_flight`; the gauge `sqsbalancer.queues.owned` and the counter
//! `sqsbalancer.queues.moves` (label `direction`: `acquired` or `released`); and
//! `sqsbalancer.api.calls` by `operation` and `outcome` (`ok` or `error`).

use sqsbalancer_core::QueueId;
use std::time::Duration;

/// A queue as a metric label: shares the queue's string rather than copying it.
#[derive(Clone)]
pub(crate) struct QueueLabel(
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] std::sync::Arc<str>,
);

impl QueueLabel {
    pub(crate) fn of(queue: &QueueId) -> QueueLabel {
        QueueLabel(queue.shared())
    }
}

#[cfg(feature = "metrics")]
fn label(q: &QueueLabel) -> metrics::SharedString {
    metrics::SharedString::from_shared(std::sync::Arc::clone(&q.0))
}

/// `n` messages received from `queue`.
pub(crate) fn received(queue: &QueueLabel, n: usize) {
    #[cfg(feature = "metrics")]
    metrics::counter!("sqsbalancer.messages.received", "queue_url" => label(queue))
        .increment(n as u64);
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, n);
}

/// One message of `queue` handled: processed, and succeeded or failed.
pub(crate) fn processed(queue: &QueueLabel, success: bool) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("sqsbalancer.messages.processed", "queue_url" => label(queue))
            .increment(1);
        let name = if success {
            "sqsbalancer.messages.succeeded"
        } else {
            "sqsbalancer.messages.failed"
        };
        metrics::counter!(name, "queue_url" => label(queue)).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, success);
}

/// An unstarted message of `queue` made visible again (a hand-off or a shutdown).
pub(crate) fn released(queue: &QueueLabel) {
    #[cfg(feature = "metrics")]
    metrics::counter!("sqsbalancer.messages.released", "queue_url" => label(queue)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

/// A message of `queue` kept invisible for another visibility timeout.
pub(crate) fn extended(queue: &QueueLabel) {
    #[cfg(feature = "metrics")]
    metrics::counter!("sqsbalancer.visibility.extended", "queue_url" => label(queue)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = queue;
}

/// One handler invocation on `queue` took `took`.
pub(crate) fn handler_duration(queue: &QueueLabel, took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("sqsbalancer.handler.duration", "queue_url" => label(queue))
        .record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (queue, took);
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

//! The worker pool: each worker takes one job (a message, a FIFO group's messages of one
//! receive, or a whole batch) and runs the user's code on it in the worker's own task, with
//! panics caught and a timeout that drops the handler's future, so either fails that job and
//! nothing else.

use super::change::Change;
use super::consumer::Consumer;
use super::counters::Counters;
use super::shared::{Job, Origin, Phase, Shared};
use super::work_queue::Taken;
use crate::backend::{Message, Sqs};
use crate::handler::{BatchOutcome, HandlerError};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use tokio::time::{Duration, Instant};
use tracing::Instrument;

pub(super) async fn work<Q: Sqs, C: Consumer>(shared: Arc<Shared<Q, C>>) {
    let mut phase = shared.phase.clone();
    let mut next = None;
    loop {
        let taken = match next.take() {
            Some(taken) => Some(taken),
            None => tokio::select! {
                taken = shared.jobs.pop() => taken,
                () = Phase::reached(&mut phase, Phase::Closed) => break,
            },
        };
        let Some(Taken { job, charged }) = taken else {
            break;
        };
        let n = job.messages.len();
        shared.counters.dequeued(n);
        let lane = job.origin.lane;
        let started = Instant::now();
        // A job taken as the data plane closed is released here: its origin was stopped.
        run(&shared, job).await;
        next = shared.jobs.done(lane, n, charged, started.elapsed());
    }
    // Closed: what still waits for a worker will not be handled here.
    for job in shared.jobs.close() {
        shared.counters.dequeued(job.messages.len());
        release(&shared, job.messages, &job.origin);
    }
}

/// Makes `span` a child of the span the message's sender started, when it carries one.
#[cfg(feature = "otel")]
fn join_sender_trace(span: &tracing::Span, m: &Message) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if let Some(cx) = crate::otel::sender_context(m) {
        let _ = span.set_parent(cx);
    }
}

/// Links `span`, which handles a batch, to the span each message's sender started.
#[cfg(feature = "otel")]
fn link_sender_traces(span: &tracing::Span, batch: &[Message]) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    for cx in batch.iter().filter_map(crate::otel::sender_span) {
        span.add_link(cx);
    }
}

/// Makes messages that will not be handled here visible again at once.
fn release<Q, C>(shared: &Shared<Q, C>, messages: Vec<(u64, Message)>, origin: &Origin) {
    for (id, m) in messages {
        tracing::debug!(queue = %m.queue, message_id = %m.message_id, "releasing an unstarted message");
        shared.counters.released(&origin.metrics);
        shared.lock_inflight().remove(id);
        shared.change(Change::visibility(m.queue, m.receipt, 0));
    }
}

/// What the data plane keeps of a message once the handler has it.
struct Ticket {
    id: u64,
    queue: sqsbalancer_core::QueueId,
    receipt: String,
    message_id: String,
    group: Option<String>,
    receive_count: u32,
}

impl Ticket {
    fn of(id: u64, m: &Message) -> Ticket {
        Ticket {
            id,
            queue: m.queue.clone(),
            receipt: m.receipt.clone(),
            message_id: m.message_id.clone(),
            group: m.group.clone(),
            receive_count: m.receive_count,
        }
    }
}

async fn run<Q: Sqs, C: Consumer>(shared: &Arc<Shared<Q, C>>, job: Job) {
    let Job {
        messages,
        mut permits,
        origin,
    } = job;
    if origin.is_stopped() || shared.is_draining() {
        // Received but not started, and no longer ours to handle: visible again at once.
        release(shared, messages, &origin);
        return;
    }
    // FIFO order: once a message of a group fails, the group's later messages in this job
    // are left unhandled so they come back after it.
    let mut failed_groups = BTreeSet::new();
    // Closing abandons the handler: its future is dropped, its messages released.
    let mut phase = shared.phase.clone();
    if C::BATCHED {
        let tickets: Vec<Ticket> = messages.iter().map(|(id, m)| Ticket::of(*id, m)).collect();
        let n = tickets.len();
        let batch: Vec<Message> = messages.into_iter().map(|(_, m)| m).collect();
        let span = tracing::info_span!("batch", queue = %origin.queue, messages = n);
        #[cfg(feature = "otel")]
        link_sender_traces(&span, &batch);
        // Biased toward the handler: one that finished as the data plane closed is settled
        // (its success deleted), not abandoned to be handled again.
        let outcomes = tokio::select! {
            biased;
            o = invoke(shared, &origin, batch, n).instrument(span) => o,
            () = Phase::reached(&mut phase, Phase::Closed) => return abandon(shared, &origin, tickets),
        };
        for (t, outcome) in tickets.into_iter().zip(outcomes) {
            settle(shared, &origin, t, outcome, &mut failed_groups);
        }
    } else {
        let mut rest = messages.into_iter();
        while let Some((id, m)) = rest.next() {
            let t = Ticket::of(id, &m);
            let blocked =
                origin.fifo && t.group.as_ref().is_some_and(|g| failed_groups.contains(g));
            let outcome = if blocked {
                Err(HandlerError::new(
                    "an earlier message of its FIFO group failed",
                ))
            } else {
                let span = tracing::info_span!(
                    "message",
                    queue = %t.queue,
                    message_id = %t.message_id,
                    receive_count = t.receive_count,
                );
                #[cfg(feature = "otel")]
                join_sender_trace(&span, &m);
                let run = invoke(shared, &origin, vec![m], 1).instrument(span);
                // Biased toward the handler, as for a batch above.
                let mut o = tokio::select! {
                    biased;
                    o = run => o,
                    () = Phase::reached(&mut phase, Phase::Closed) => {
                        let left = rest.map(|(id, m)| Ticket::of(id, &m));
                        return abandon(shared, &origin, std::iter::once(t).chain(left).collect());
                    }
                };
                o.pop()
                    .unwrap_or_else(|| Err(HandlerError::new("no outcome")))
            };
            settle(shared, &origin, t, outcome, &mut failed_groups);
            // This message's permit goes back as soon as it is settled.
            drop(permits.split(1));
        }
    }
}

/// The data plane closed while these messages' handler ran: it is abandoned (its future was
/// dropped), and they are made visible again at once rather than after their timeout.
fn abandon<Q, C>(shared: &Shared<Q, C>, origin: &Origin, tickets: Vec<Ticket>) {
    for t in tickets {
        tracing::warn!(queue = %t.queue, message_id = %t.message_id, "abandoned a running handler at shutdown; the message is visible again");
        shared.counters.released(&origin.metrics);
        shared.lock_inflight().remove(t.id);
        shared.change(Change::visibility(t.queue, t.receipt, 0));
    }
}

/// Runs the user's code on `messages` within the handler timeout (past it the handler's
/// future is dropped); a panic, a timeout or a wrong number of outcomes fails every message.
async fn invoke<Q, C: Consumer>(
    shared: &Arc<Shared<Q, C>>,
    origin: &Origin,
    messages: Vec<Message>,
    n: usize,
) -> BatchOutcome {
    for m in &messages {
        origin.metrics.dwell(m);
    }
    let started = Instant::now();
    let handling = Handling::new(&shared.counters, n);
    let outcome = isolated(
        Arc::clone(&shared.consumer).run(messages),
        shared.settings.handler_timeout,
    )
    .await;
    drop(handling);
    let took = started.elapsed();
    origin.metrics.handler_duration(took);
    origin.load.handled(Instant::now(), took);
    match outcome {
        Ok(o) if o.len() == n => o,
        Ok(o) => {
            let e = HandlerError::new(format!(
                "the batch handler gave {} outcomes for {n} messages",
                o.len()
            ));
            vec![Err(e); n]
        }
        Err(reason) => vec![Err(HandlerError::new(reason)); n],
    }
}

/// Counts `n` messages in a handler for as long as it lives (an abandoned handler's future is
/// dropped mid-call).
struct Handling<'a> {
    counters: &'a Counters,
    n: usize,
}

impl<'a> Handling<'a> {
    fn new(counters: &'a Counters, n: usize) -> Handling<'a> {
        counters.handler_started(n);
        Handling { counters, n }
    }
}

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.counters.handler_finished(self.n);
    }
}

/// Awaits `fut` catching a panic, within `timeout` (past it the future is dropped, which
/// cancels the handler): either is an `Err` naming what happened. The handler runs in the
/// worker's own task, so isolating it costs no task spawn per message.
async fn isolated<T>(
    fut: impl Future<Output = T> + Send,
    timeout: Option<Duration>,
) -> Result<T, String> {
    let caught = CatchUnwind(Box::pin(fut));
    let joined = match timeout {
        Some(t) => match tokio::time::timeout(t, caught).await {
            Ok(joined) => joined,
            Err(_) => return Err(format!("the handler timed out after {t:?}")),
        },
        None => caught.await,
    };
    joined.map_err(|_| "the handler panicked".to_owned())
}

/// A future whose panic becomes an `Err`: the user's handler may panic, the worker may not.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        // The handler's state is dropped after a panic, never polled again.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

/// Deletes a success; leaves a failure to its visibility timeout or backs it off.
fn settle<Q, C>(
    shared: &Shared<Q, C>,
    origin: &Origin,
    t: Ticket,
    outcome: Result<(), HandlerError>,
    failed_groups: &mut BTreeSet<String>,
) {
    let fifo = origin.fifo;
    let outcome = match (&t.group, outcome) {
        (Some(g), Ok(())) if fifo && failed_groups.contains(g) => Err(HandlerError::new(
            "an earlier message of its FIFO group failed",
        )),
        (_, o) => o,
    };
    shared.lock_inflight().remove(t.id);
    let queue = &origin.metrics;
    match outcome {
        Ok(()) => {
            shared.counters.succeeded(queue);
            shared.change(Change::delete(t.queue, t.receipt));
        }
        Err(e) => {
            shared.counters.failed(queue);
            if fifo && let Some(g) = &t.group {
                failed_groups.insert(g.clone());
            }
            match &shared.settings.failure_backoff {
                Some(b) => {
                    let secs = b.delay_secs(t.receive_count);
                    tracing::warn!(queue = %t.queue, message_id = %t.message_id, receive_count = t.receive_count, retry_in_secs = secs, error = %e, "handler failed; backing off");
                    shared.change(Change::visibility(t.queue, t.receipt, secs));
                }
                None => {
                    tracing::warn!(queue = %t.queue, message_id = %t.message_id, receive_count = t.receive_count, error = %e, "handler failed; the message comes back after its visibility timeout");
                    shared.finished(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panic_or_a_timeout_is_an_error_and_the_caller_lives() {
        assert_eq!(isolated(async { 7 }, None).await, Ok(7));
        let panicked = isolated(async { panic!("boom") }, None).await;
        assert_eq!(panicked, Err::<(), _>("the handler panicked".to_owned()));
        let slow = isolated(
            tokio::time::sleep(Duration::from_secs(5)),
            Some(Duration::from_secs(1)),
        )
        .await;
        assert_eq!(slow, Err("the handler timed out after 1s".to_owned()));
    }
}

//! The OpenTelemetry tests' runs: one instance handles a message that carries its sender's
//! trace and one that fails its first delivery, so every one of the Go library's four
//! message counters moves and the handler's span has a remote parent; or a batch handler
//! gets the traced message, so the batch span links to the sender's span.

use super::{backend, cfg, fakes_with_queues, wait_until};
use sqsbalancer_runtime::{Balancer, HandlerError, Message, Running};
use sqsbalancer_sim::backend::Fakes;
use sqsbalancer_sim::fake::Outgoing;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The sender's trace id, in the `traceparent` attribute.
pub const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
/// The sender's span id, the handler span's parent.
pub const PARENT: &str = "b7ad6b7169203331";
/// The Go library's message counters, as the runtime names them.
pub const GO_COUNTERS: [&str; 4] = [
    "sqsbalancer.messages.received",
    "sqsbalancer.messages.processed",
    "sqsbalancer.messages.succeeded",
    "sqsbalancer.messages.failed",
];

/// A message from the sender's span.
fn traced() -> Outgoing {
    let mut traced = Outgoing {
        body: "traced".into(),
        ..Outgoing::default()
    };
    let parent = format!("00-{TRACE}-{PARENT}-01");
    traced.attributes.insert("traceparent".into(), parent);
    traced
}

/// Fakes with one queue holding `messages`.
fn one_queue_of(messages: impl IntoIterator<Item = Outgoing>) -> Arc<Mutex<Fakes>> {
    let (fakes, urls) = fakes_with_queues(1);
    {
        let mut f = fakes.lock().expect("not poisoned");
        let now = f.now();
        for m in messages {
            f.sqs.send(now, "producer", &urls[0], m).expect("sent");
        }
    }
    fakes
}

/// Runs the instance until both messages are handled, then stops it cleanly.
pub async fn handle_traced_and_flaky() {
    let flaky = Outgoing {
        body: "flaky".into(),
        ..Outgoing::default()
    };
    let fakes = one_queue_of([traced(), flaky]);
    let handler = |m: Message| async move {
        if m.body == "flaky" && m.receive_count == 1 {
            return Err(HandlerError::new("first delivery"));
        }
        Ok(())
    };
    let balancer = Balancer::new(cfg("a"), backend(&fakes, "a")).expect("valid");
    run_until_succeeded(balancer.start(handler).expect("started"), 2).await;
}

/// Runs a batch handler until the traced message is handled, then stops it cleanly.
pub async fn handle_traced_in_a_batch() {
    let fakes = one_queue_of([traced()]);
    let handler = |batch: Vec<Message>| async move { batch.iter().map(|_| Ok(())).collect() };
    let balancer = Balancer::new(cfg("a"), backend(&fakes, "a")).expect("valid");
    run_until_succeeded(balancer.start_batch(handler).expect("started"), 1).await;
}

/// Waits until `n` messages succeeded, then stops the instance cleanly.
async fn run_until_succeeded(running: Running, n: u64) {
    wait_until(Duration::from_secs(120), "the messages handled", || {
        running.stats().succeeded == n
    })
    .await;
    running.stop().await.expect("a clean stop");
}

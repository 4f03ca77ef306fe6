//! The harness the runtime tests share: fakes with a table and queues, an instance's
//! configuration and backend, sending, and waiting on the paused clock.

#![allow(
    dead_code,
    reason = "each test binary uses its own subset of the harness"
)]

pub mod faulty;
pub mod traced;

use sqsbalancer_core::Config;
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use sqsbalancer_sim::fake::Outgoing;
use sqsbalancer_sim::{TABLE, config};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The simulator's configuration for instance `name`.
pub fn cfg(name: &str) -> Config {
    let mut cfg = config();
    cfg.instance_id = Some(name.to_owned());
    cfg
}

/// Instance `name`'s backend on the shared fakes, 2 ms each way.
pub fn backend(fakes: &Arc<Mutex<Fakes>>, name: &str) -> Arc<FakeBackend> {
    Arc::new(FakeBackend::new(
        Arc::clone(fakes),
        name,
        TABLE,
        Duration::from_millis(2),
    ))
}

/// Fakes with the coordination table and `n` queues `q-0`...
pub fn fakes_with_queues(n: usize) -> (Arc<Mutex<Fakes>>, Vec<String>) {
    let fakes = Arc::new(Mutex::new(Fakes::new()));
    let mut urls = Vec::new();
    {
        let mut f = fakes.lock().expect("not poisoned");
        f.dynamo.create_table(TABLE).expect("a new table");
        for i in 0..n {
            urls.push(
                f.sqs
                    .create_queue("admin", &format!("q-{i}"))
                    .expect("a new queue"),
            );
        }
    }
    (fakes, urls)
}

/// Waits, on the paused clock, until `done` holds; fails past `within`.
pub async fn wait_until(within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `body` to `url` as a producer.
pub fn send(fakes: &Arc<Mutex<Fakes>>, url: &str, body: &str) {
    let mut f = fakes.lock().expect("not poisoned");
    let now = f.now();
    let msg = Outgoing {
        body: body.to_owned(),
        ..Outgoing::default()
    };
    f.sqs.send(now, "producer", url, msg).expect("sent");
}

/// Messages left in `urls`, visible or not.
pub fn backlog(fakes: &Arc<Mutex<Fakes>>, urls: &[String]) -> usize {
    let f = fakes.lock().expect("not poisoned");
    urls.iter().map(|u| f.sqs.depth(u)).sum()
}

/// Sends `body` to FIFO queue `url` in `group`.
pub fn send_fifo(fakes: &Arc<Mutex<Fakes>>, url: &str, group: &str, body: &str) {
    let mut f = fakes.lock().expect("not poisoned");
    let now = f.now();
    let msg = Outgoing {
        body: body.to_owned(),
        group: Some(group.to_owned()),
        ..Outgoing::default()
    };
    f.sqs.send(now, "producer", url, msg).expect("sent");
}

/// Creates queue `name` and returns its URL.
pub fn create_queue(fakes: &Arc<Mutex<Fakes>>, name: &str) -> String {
    let mut f = fakes.lock().expect("not poisoned");
    f.sqs.create_queue("admin", name).expect("a new queue")
}

/// Calls of `op` made by `caller`.
pub fn calls(fakes: &Arc<Mutex<Fakes>>, caller: &str, op: sqsbalancer_sim::fake::SqsOp) -> u64 {
    let f = fakes.lock().expect("not poisoned");
    f.sqs
        .calls()
        .get(caller)
        .and_then(|by| by.get(&op).copied())
        .unwrap_or(0)
}

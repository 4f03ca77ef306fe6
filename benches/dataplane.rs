//! The data plane's speed and cost on the in-memory fake (G5's SQS half, G6, G9):
//! `cargo bench --bench dataplane`. Prints one line per scenario.
//!
//! - throughput: one instance, 10 and then 100 queues preloaded, a no-op handler, zero
//!   latency: messages per second from start to the last delete, and SQS calls per message;
//!   beside it, the fake's own cost: the same receives and delete batches made straight on
//!   the fake, with no runtime;
//! - utilisation: the same with 20 ms one-way latency on every call and a 20 ms handler:
//!   the share of worker time spent in the handler, from the first handler start to the last
//!   handler end;
//! - idle: one instance owning 100 empty queues for a simulated hour (tokio's paused clock),
//!   without and with a 5-minute idle pause: receives per idle queue-minute over the last 50
//!   minutes, and how long a message then sent to one of them waits to be handled;
//! - memory: peak RSS of a fresh child process (this program with `--memory`) with the
//!   fake's 1,000 queues, then once one instance owns them all: the fake's share beside the
//!   runtime's.
//!
//! Wall time is measured here, outside the library, as a benchmark should. Without `--bench`
//! (as `cargo test --all-targets` runs it) each scenario is cut down to a smoke test.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time and reads /proc"
)]

use sqsbalancer_core::Config;
use sqsbalancer_runtime::{Balancer, HandlerError, Message};
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use sqsbalancer_sim::fake::{Outgoing, SqsOp};
use sqsbalancer_sim::{TABLE, config};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Handler time, and the window from the first handler start to the last handler end.
#[derive(Default)]
struct Busy {
    micros: AtomicU64,
    window: Mutex<Option<(Instant, Instant)>>,
}

impl Busy {
    fn record(&self, started: Instant) {
        let ended = Instant::now();
        self.micros
            .fetch_add((ended - started).as_micros() as u64, Ordering::Relaxed);
        let mut w = self.window.lock().expect("not poisoned");
        let (first, last) = w.get_or_insert((started, ended));
        *first = (*first).min(started);
        *last = (*last).max(ended);
    }

    /// Handler time over `workers` × the window.
    fn utilisation(&self, workers: usize) -> f64 {
        let w = self.window.lock().expect("not poisoned");
        let Some((first, last)) = *w else { return 0.0 };
        self.micros.load(Ordering::Relaxed) as f64
            / 1e6
            / (workers as f64 * (last - first).as_secs_f64())
    }
}

/// The fake alone: receive batches of 10 and delete them, as the runtime would, with no
/// runtime; messages per second.
fn fake_only(fakes: &Arc<Mutex<Fakes>>, urls: &[String], messages: usize) -> f64 {
    use sqsbalancer_sim::fake::ReceiveRequest;
    let start = Instant::now();
    let mut done = 0;
    while done < messages {
        for url in urls {
            let mut f = fakes.lock().expect("not poisoned");
            let now = f.now();
            let req = ReceiveRequest {
                url: url.clone(),
                max: 10,
                visibility_secs: 30,
                wait_ms: 0,
                attribute_names: vec!["All".to_owned()],
            };
            let got = f.sqs.receive(now, "fake-only", &req).expect("received");
            if got.is_empty() {
                continue;
            }
            done += got.len();
            let receipts: Vec<String> = got.into_iter().map(|r| r.receipt).collect();
            f.sqs
                .delete_batch("fake-only", url, &receipts)
                .expect("deleted");
        }
    }
    messages as f64 / start.elapsed().as_secs_f64()
}

fn fakes(queues: usize, per_queue: usize) -> (Arc<Mutex<Fakes>>, Vec<String>) {
    let mut f = Fakes::new();
    f.dynamo.create_table(TABLE).expect("a new table");
    let mut urls = Vec::new();
    for q in 0..queues {
        let url = f
            .sqs
            .create_queue("admin", &format!("q-{q}"))
            .expect("a queue");
        for chunk in 0..per_queue.div_ceil(10) {
            let n = (per_queue - chunk * 10).min(10);
            let batch = (0..n)
                .map(|i| Outgoing {
                    body: format!("m-{q}-{chunk}-{i}"),
                    ..Outgoing::default()
                })
                .collect();
            let now = f.now();
            f.sqs
                .send_batch(now, "producer", &url, batch)
                .expect("sent");
        }
        urls.push(url);
    }
    (Arc::new(Mutex::new(f)), urls)
}

fn cfg(workers: usize) -> Config {
    let mut c = config();
    c.instance_id = Some("bench".to_owned());
    c.worker_pool_size = workers;
    c.work_queue_size = workers * 4;
    c.rebalance_delay = Duration::from_secs(0);
    c
}

fn backlog(fakes: &Arc<Mutex<Fakes>>, urls: &[String]) -> usize {
    let f = fakes.lock().expect("not poisoned");
    urls.iter().map(|u| f.sqs.depth(u)).sum()
}

fn sqs_calls(fakes: &Arc<Mutex<Fakes>>) -> (u64, u64, u64) {
    let f = fakes.lock().expect("not poisoned");
    let by = f.sqs.calls().get("bench").cloned().unwrap_or_default();
    let get = |op| by.get(&op).copied().unwrap_or(0);
    (
        get(SqsOp::ReceiveMessage),
        get(SqsOp::DeleteMessageBatch),
        by.values().sum(),
    )
}

/// Runs one instance until every message is gone; returns the wall time.
fn drain(
    fakes: &Arc<Mutex<Fakes>>,
    urls: &[String],
    latency: Duration,
    workers: usize,
    handler_ms: u64,
    busy: Arc<Busy>,
) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let backend = Arc::new(FakeBackend::new(Arc::clone(fakes), "bench", TABLE, latency));
        let handler = move |_m: Message| {
            let busy = Arc::clone(&busy);
            async move {
                if handler_ms > 0 {
                    let t = Instant::now();
                    tokio::time::sleep(Duration::from_millis(handler_ms)).await;
                    busy.record(t);
                }
                Ok::<(), HandlerError>(())
            }
        };
        // From the start (registration, discovery and claims take milliseconds here) to the
        // last delete.
        let start = Instant::now();
        let running = Balancer::new(cfg(workers), backend)
            .expect("a valid config")
            .start(handler)
            .expect("started");
        while backlog(fakes, urls) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = start.elapsed();
        let _ = running.stop().await;
        took
    })
}

/// One instance owning `queues` empty queues for a simulated hour (tokio's paused clock), with
/// `idle_pause`: the receives per queue-minute over the last 50 minutes, and the longest a
/// message then waits to be handled, of one sent to each of up to 8 queues 40 s apart (so
/// they land at different points of the pause).
fn idle(queues: usize, idle_pause: Option<Duration>) -> (f64, Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (f, urls) = fakes(queues, 0);
        let backend = Arc::new(FakeBackend::new(
            Arc::clone(&f),
            "bench",
            TABLE,
            Duration::ZERO,
        ));
        let handled: Arc<Mutex<Vec<(String, tokio::time::Instant)>>> = Arc::default();
        let seen = Arc::clone(&handled);
        let handler = move |m: Message| {
            let at = tokio::time::Instant::now();
            seen.lock()
                .expect("not poisoned")
                .push((m.body.clone(), at));
            async { Ok::<(), HandlerError>(()) }
        };
        let mut balancer = Balancer::new(cfg(10), backend).expect("a valid config");
        if let Some(pause) = idle_pause {
            balancer = balancer.with_idle_pause(pause);
        }
        let running = balancer.start(handler).expect("started");
        tokio::time::sleep(Duration::from_secs(600)).await;
        let (before, _, _) = sqs_calls(&f);
        tokio::time::sleep(Duration::from_secs(3000)).await;
        let (after, _, _) = sqs_calls(&f);
        let per_minute = (after - before) as f64 / queues as f64 / 50.0;
        let mut sent = BTreeMap::new();
        for url in urls.iter().take(8) {
            let one = vec![Outgoing {
                body: url.clone(),
                ..Outgoing::default()
            }];
            {
                let mut fakes = f.lock().expect("not poisoned");
                let now = fakes.now();
                let sent = fakes.sqs.send_batch(now, "producer", url, one);
                sent.expect("sent");
            }
            sent.insert(url.clone(), tokio::time::Instant::now());
            tokio::time::sleep(Duration::from_secs(40)).await;
        }
        while handled.lock().expect("not poisoned").len() < sent.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let handled = handled.lock().expect("not poisoned").clone();
        let waited = handled.iter().map(|(url, at)| *at - sent[url]).max();
        let _ = running.stop().await;
        (per_minute, waited.unwrap_or_default())
    })
}

/// Starts one instance and waits until it polls all `queues`.
fn own_all(fakes: &Arc<Mutex<Fakes>>, queues: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let backend = Arc::new(FakeBackend::new(
            Arc::clone(fakes),
            "bench",
            TABLE,
            Duration::ZERO,
        ));
        let handler = |_m: Message| async { Ok::<(), HandlerError>(()) };
        let running = Balancer::new(cfg(10), backend)
            .expect("a valid config")
            .start(handler)
            .expect("started");
        while running.active_queues().len() < queues {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let every poller start its first long poll.
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The child process of the memory scenario: prints its peak RSS with the fake alone, then
/// with one instance owning every queue.
fn memory_child(queues: usize) {
    let (f, urls) = fakes(queues, 0);
    let with_fake = peak_rss_kb();
    own_all(&f, urls.len());
    println!("{with_fake} {}", peak_rss_kb());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        let queues = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000);
        memory_child(queues);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = args.iter().any(|a| a == "--bench");
    let scale = if full { 1 } else { 100 };
    // G6 and G5 (SQS half): zero latency, no-op handler; 10 queues, then 100 (more pollers
    // than the 50 permits of 10 workers and a work queue of 40).
    let runs: &[(usize, usize)] = if full {
        &[(10, 200_000), (100, 200_000)]
    } else {
        &[(10, 2_000)]
    };
    for &(queues, messages) in runs {
        let (f, urls) = fakes(queues, messages / queues);
        let took = drain(&f, &urls, Duration::ZERO, 10, 0, Arc::default());
        let (receives, deletes, all) = sqs_calls(&f);
        let (alone, _) = fakes(queues, messages / queues);
        let fake_rate = fake_only(&alone, &urls, messages);
        let rate = messages as f64 / took.as_secs_f64();
        println!(
            "throughput, {queues} queues: {messages} messages in {:.2} s = {rate:.0} msg/s; SQS calls per message {:.3} (receive {:.3}, delete batches {:.3}); the fake alone {fake_rate:.0} msg/s, so per message {:.2} us in the fake and {:.2} us in the runtime",
            took.as_secs_f64(),
            all as f64 / messages as f64,
            receives as f64 / messages as f64,
            deletes as f64 / messages as f64,
            1e6 / fake_rate,
            (1e6 / rate - 1e6 / fake_rate).max(0.0),
        );
    }

    // G6 second half: 20 ms one-way latency, 20 ms handlers, 10 workers.
    let messages = 2_000 / scale.min(10);
    let queues = if full { 20 } else { 5 };
    let (f, urls) = fakes(queues, messages / queues);
    let busy = Arc::new(Busy::default());
    let took = drain(
        &f,
        &urls,
        Duration::from_millis(20),
        10,
        20,
        Arc::clone(&busy),
    );
    let utilisation = busy.utilisation(10);
    println!(
        "utilisation: {messages} messages, 20 ms latency, 20 ms handler, 10 workers: {:.1} % of worker time in the handler ({:.2} s)",
        utilisation * 100.0,
        took.as_secs_f64()
    );

    // G13: idle queues, with and without a 5-minute idle pause (simulated time).
    let queues = if full { 100 } else { 5 };
    let (always, _) = idle(queues, None);
    let pause = Duration::from_secs(300);
    let (paused, waited) = idle(queues, Some(pause));
    println!(
        "idle: {queues} empty queues, one instance, 20 s wait: {always:.2} receives per idle queue-minute; with a {} s idle pause {paused:.3}, and a message sent after an idle hour handled within {:.1} s (the longest of 8 sent 40 s apart)",
        pause.as_secs(),
        waited.as_secs_f64()
    );

    // G9: one instance owning 1,000 empty queues (pollers, records, views), in a fresh child
    // process so nothing above inflates the figure.
    let queues = if full { 1_000 } else { 50 };
    let out = std::process::Command::new(std::env::current_exe().expect("this program"))
        .args(["--memory", &queues.to_string()])
        .output()
        .expect("the memory child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let figures: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [with_fake, after] = figures[..] else {
        panic!(
            "the memory child printed {text:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    println!(
        "memory: peak RSS of a fresh process {with_fake} KB with the fake's {queues} queues, {after} KB once one instance owns them all (runtime share {} KB)",
        after.saturating_sub(with_fake)
    );
}

//! Fairness inside one instance (G15): `cargo bench --bench fairness`.
//!
//! One instance, 10 workers and a work queue of 500 (every poller can long-poll), 50 queues,
//! 10 ms one-way latency to the fake, tokio's paused clock
//! (simulated time, so the figures do not depend on this machine's load). 49 quiet queues get
//! one message every 2 s each, handled in 50 ms. The noisy queue starts with a backlog of 100
//! times what a quiet queue gets over the run, handled ten times slower (500 ms). Printed per
//! run: the quiet queues' dwell time (send to handler start) at p50, p99 and max, the noisy
//! queue's messages handled, and each side's share of handler time. The runs: without the noisy
//! queue (the baseline, fair scheduling with `max_in_flight` 5 on every queue), then with it:
//! fairness off (arrival order, no cap), fair scheduling alone, and fair scheduling with
//! `max_in_flight` 5 on every queue.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) the run is cut to a smoke test that
//! still checks the cap's effect.

use sqsbalancer_core::Config;
use sqsbalancer_runtime::{Balancer, HandlerError, Message};
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use sqsbalancer_sim::fake::Outgoing;
use sqsbalancer_sim::{TABLE, config};
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

/// Quiet queues beside the noisy one.
const QUIET: usize = 49;
/// A quiet queue's handler time.
const QUIET_HANDLER: Duration = Duration::from_millis(50);
/// The noisy queue's handler time: ten times slower.
const NOISY_HANDLER: Duration = Duration::from_millis(500);
/// How often each quiet queue gets a message.
const EVERY: Duration = Duration::from_secs(2);
/// Workers of the instance.
const WORKERS: usize = 10;

/// One run's settings.
#[derive(Clone, Copy)]
struct Setup {
    /// The noisy queue has its backlog.
    noisy: bool,
    /// Fair scheduling on.
    fair: bool,
    /// `max_in_flight` of every queue.
    cap: Option<u32>,
}

/// What one run measured.
#[derive(Default)]
struct Outcome {
    /// Quiet messages' dwell times, ms.
    dwell: Vec<u64>,
    /// Noisy messages handled.
    noisy_handled: usize,
    /// Handler time of the quiet queues and of the noisy one.
    busy: (Duration, Duration),
}

fn cfg(cap: Option<u32>) -> Config {
    let mut c = config();
    c.instance_id = Some("fair".to_owned());
    c.worker_pool_size = WORKERS;
    // Room for every poller's long poll (each holds a receive's worth of permits), so the
    // baseline's quiet queues are never short-polled for want of permits.
    c.work_queue_size = (QUIET + 1) * 10;
    c.rebalance_delay = Duration::from_secs(0);
    c.sqs.max_in_flight = cap;
    c
}

/// Sends one message, whose body is the send time in ms since `start` (or `noisy`).
fn send(f: &Arc<Mutex<Fakes>>, url: &str, body: String) {
    let mut fakes = f.lock().expect("not poisoned");
    let now = fakes.now();
    let one = vec![Outgoing {
        body,
        ..Outgoing::default()
    }];
    fakes
        .sqs
        .send_batch(now, "producer", url, one)
        .expect("sent");
}

/// Runs `setup` for `run` of simulated time and returns what it measured.
fn measure(setup: Setup, run: Duration) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut fakes = Fakes::new();
        fakes.dynamo.create_table(TABLE).expect("a new table");
        let mut urls = Vec::new();
        for q in 0..=QUIET {
            let url = fakes.sqs.create_queue("admin", &format!("q-{q:02}"));
            urls.push(url.expect("a queue"));
        }
        let f = Arc::new(Mutex::new(fakes));
        let noisy_url = urls[QUIET].clone();
        let per_quiet = (run.as_millis() / EVERY.as_millis()) as usize;
        if setup.noisy {
            for _ in 0..100 * per_quiet {
                send(&f, &noisy_url, "noisy".to_owned());
            }
        }
        let start = Instant::now();
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let seen = Arc::clone(&outcome);
        let handler = move |m: Message| {
            let seen = Arc::clone(&seen);
            async move {
                let began = Instant::now();
                let noisy = m.body == "noisy";
                if !noisy {
                    let sent: u64 = m.body.parse().expect("a send time");
                    let at = (began - start).as_millis() as u64;
                    seen.lock().expect("not poisoned").dwell.push(at - sent);
                }
                tokio::time::sleep(if noisy { NOISY_HANDLER } else { QUIET_HANDLER }).await;
                let mut o = seen.lock().expect("not poisoned");
                if noisy {
                    o.noisy_handled += 1;
                    o.busy.1 += began.elapsed();
                } else {
                    o.busy.0 += began.elapsed();
                }
                Ok::<(), HandlerError>(())
            }
        };
        let backend = Arc::new(FakeBackend::new(
            Arc::clone(&f),
            "fair",
            TABLE,
            Duration::from_millis(10),
        ));
        let mut balancer = Balancer::new(cfg(setup.cap), backend).expect("a valid config");
        if !setup.fair {
            balancer = balancer.without_fair_scheduling();
        }
        let running = balancer.start(handler).expect("started");
        while running.active_queues().len() < urls.len() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Each quiet queue's messages EVERY apart, the queues spread evenly over the period.
        let step = EVERY / QUIET as u32;
        let t0 = Instant::now();
        while t0.elapsed() < run {
            for url in &urls[..QUIET] {
                let body = (Instant::now() - start).as_millis().to_string();
                send(&f, url, body);
                tokio::time::sleep(step).await;
            }
        }
        let _ = running.stop().await;
        Arc::try_unwrap(outcome)
            .ok()
            .expect("the handler is gone")
            .into_inner()
            .expect("not poisoned")
    })
}

/// The `p`th percentile of sorted `v`, ms.
fn percentile(v: &[u64], p: f64) -> u64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0)
}

fn report(name: &str, o: &mut Outcome) -> u64 {
    o.dwell.sort_unstable();
    let p99 = percentile(&o.dwell, 0.99);
    let total = (o.busy.0 + o.busy.1).as_secs_f64().max(f64::EPSILON);
    println!(
        "{name}: quiet dwell p50 {} ms, p99 {p99} ms, max {} ms ({} messages); noisy handled {}; handler time quiet {:.0} %, noisy {:.0} %",
        percentile(&o.dwell, 0.5),
        o.dwell.last().copied().unwrap_or(0),
        o.dwell.len(),
        o.noisy_handled,
        100.0 * o.busy.0.as_secs_f64() / total,
        100.0 * o.busy.1.as_secs_f64() / total,
    );
    p99
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let run = Duration::from_secs(if full { 600 } else { 60 });
    let runs = [
        (
            "baseline (no noisy queue), fair scheduling, max_in_flight 5",
            Setup {
                noisy: false,
                fair: true,
                cap: Some(5),
            },
        ),
        (
            "noisy, fairness off",
            Setup {
                noisy: true,
                fair: false,
                cap: None,
            },
        ),
        (
            "noisy, fair scheduling",
            Setup {
                noisy: true,
                fair: true,
                cap: None,
            },
        ),
        (
            "noisy, fair scheduling, max_in_flight 5",
            Setup {
                noisy: true,
                fair: true,
                cap: Some(5),
            },
        ),
    ];
    let mut p99 = Vec::new();
    for (name, setup) in runs {
        let mut o = measure(setup, run);
        p99.push(report(name, &mut o));
        if setup.noisy {
            assert!(
                o.noisy_handled > 0,
                "{name}: the noisy queue was never served"
            );
        }
    }
    println!(
        "G15: quiet p99 with the noisy queue, fair with a cap, over the baseline: {:.2}x (fairness off: {:.2}x)",
        p99[3] as f64 / p99[0].max(1) as f64,
        p99[1] as f64 / p99[0].max(1) as f64,
    );
}

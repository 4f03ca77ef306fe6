//! The shared harness of the integration tests: a moto server of their own on a free loopback
#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared harness"
)]
//! port, stopped when dropped, and balancers connected to it.

pub mod proxy;
pub mod worker;

use sqsbalancer_core::{Config, Outcome, Read, Reply};
use sqsbalancer_runtime::aws::{AwsBackend, AwsSettings};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio::time::Instant;

/// A running `moto_server` (SQS and DynamoDB on one endpoint).
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a port of its own choosing and waits until it says which.
    ///
    /// Picking a free port here and handing it to moto raced with the other tests doing the
    /// same at once: two servers given one port, the second fails to bind, and its test talks
    /// to the first until that one is stopped. Port 0 lets the kernel give moto its own port,
    /// which moto prints once it listens.
    pub fn start() -> Moto {
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "moto_server on PATH (scripts/test installs it: pip install 'moto[server]==5.2.1')",
            );
        let stderr = child.stderr.take().expect("moto's stderr, piped");
        let (tx, rx) = mpsc::channel();
        // Reads moto's log to its end, so that moto never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(endpoint) = line.split("Running on ").nth(1) {
                    let _ = tx.send(endpoint.trim().to_owned());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("moto said where it listens within 30 s");
        Moto { child, endpoint }
    }

    /// A backend for `table` on this server.
    pub async fn backend(&self, table: &str) -> AwsBackend {
        let settings = AwsSettings::default()
            .with_endpoint(&self.endpoint)
            .with_region("us-east-1")
            .with_static_credentials("testing", "testing");
        AwsBackend::connect(&settings, table).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A balancer config for `app` with short intervals, so a cluster converges in seconds; it
/// takes the queues whose names start with `{app}-`.
pub fn fast(app: &str, table: &str, id: &str) -> Config {
    let mut c = Config::new(app, table);
    c.instance_id = Some(id.to_owned());
    c.heartbeat_interval = Duration::from_millis(300);
    c.heartbeat_timeout = Duration::from_millis(3_000);
    c.rebalance_delay = Duration::from_millis(500);
    c.queue_discovery_interval = Duration::from_secs(1);
    c.reconcile_interval = Duration::from_secs(5);
    c.shutdown_timeout = Duration::from_secs(10);
    c.sqs.wait_time = Duration::from_secs(1);
    c.sqs.visibility_timeout = Duration::from_secs(5);
    c.queue_filter_pattern = Some(format!("^{app}-"));
    // Spread, so every test also runs the layout's agreement and its queries on the emulator.
    c.queue_partition_keys = 4;
    c.instance_partition_keys = 2;
    c
}

/// Waits until `done` holds, checking every 100 ms; fails past `within`.
pub async fn wait_until(within: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates queues `{prefix}-0`... and returns their URLs.
pub async fn create_queues(aws: &AwsBackend, prefix: &str, n: usize) -> Vec<String> {
    let mut urls = Vec::new();
    for i in 0..n {
        let out = aws
            .sqs()
            .create_queue()
            .queue_name(format!("{prefix}-{i}"))
            .send()
            .await
            .expect("queue created");
        urls.push(out.queue_url().expect("a URL").to_owned());
    }
    urls
}

/// Messages in `urls`, visible or in flight.
pub async fn backlog(aws: &AwsBackend, urls: &[String]) -> usize {
    let mut total = 0;
    for u in urls {
        let out = aws
            .sqs()
            .get_queue_attributes()
            .queue_url(u)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await
            .expect("attributes");
        total += out
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum())
            .unwrap_or(0);
    }
    total
}

/// How many live queue records each instance id owns in `app`'s coordination records.
pub async fn owners(aws: &AwsBackend, app: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Outcome::Applied(Reply::Table {
        instances, pages, ..
    }) = sqsbalancer_runtime::layout::read_recorded(aws, app, Read::Table).await
    {
        let queues = pages.iter().flat_map(|p| p.records());
        for q in queues.filter(|q| !q.retired) {
            let Some(o) = &q.owner else { continue };
            let live = instances.iter().any(|i| {
                i.id == o.id
                    && i.incarnation == o.incarnation
                    && i.status != sqsbalancer_core::Status::Dead
            });
            if live {
                *out.entry(o.id.as_str().to_owned()).or_default() += 1;
            }
        }
    }
    out
}

/// Sends `per_queue` messages to each of `urls`, bodies `{tag}-{queue index}-{n}`; returns them.
pub async fn send_messages(
    aws: &AwsBackend,
    urls: &[String],
    per_queue: usize,
    tag: &str,
) -> std::collections::BTreeSet<String> {
    let mut bodies = std::collections::BTreeSet::new();
    for (i, u) in urls.iter().enumerate() {
        for j in 0..per_queue {
            let body = format!("{tag}-{i}-{j}");
            send_message(aws, u, &body).await;
            bodies.insert(body);
        }
    }
    bodies
}

/// Sends one message with `body` to the queue at `url`.
pub async fn send_message(aws: &AwsBackend, url: &str, body: &str) {
    aws.sqs()
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .expect("sent");
}

/// The current life of instance `id` of `app`, if it has a record.
pub async fn incarnation(aws: &AwsBackend, app: &str, id: &str) -> Option<u64> {
    match sqsbalancer_runtime::layout::read_recorded(aws, app, Read::Members).await {
        Outcome::Applied(Reply::Members { instances, .. }) => instances
            .iter()
            .find(|i| i.id.as_str() == id)
            .map(|i| i.incarnation),
        _ => None,
    }
}

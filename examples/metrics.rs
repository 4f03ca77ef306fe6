//! Exporting sqsbalancer's metrics to Prometheus: install a recorder for the `metrics` facade
//! and every instance in the process reports to it. Here one instance runs on the in-memory
//! fake (no AWS needed), handles 300 messages on three queues, and the metrics are printed in
//! Prometheus' text format; in a service, serve `handle.render()` from your `/metrics`
//! endpoint (or enable the exporter's own `http-listener` feature).
//!
//! `cargo run --example metrics`

use metrics_exporter_prometheus::PrometheusBuilder;
use sqsbalancer::{Balancer, HandlerError, Message};
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use sqsbalancer_sim::fake::Outgoing;
use sqsbalancer_sim::{TABLE, config};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    // The fake's SQS and DynamoDB, with three queues of 100 messages each.
    let fakes = Arc::new(Mutex::new(Fakes::new()));
    {
        let mut f = fakes.lock().map_err(|_| "poisoned")?;
        f.dynamo.create_table(TABLE)?;
        for q in 0..3 {
            let url = f.sqs.create_queue("producer", &format!("orders-{q}"))?;
            for i in 0..100 {
                let now = f.now();
                let message = Outgoing {
                    body: format!("order {i}"),
                    ..Outgoing::default()
                };
                f.sqs.send(now, "producer", &url, message)?;
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let mut cfg = config();
        cfg.instance_id = Some("example".into());
        let backend = Arc::new(FakeBackend::new(
            Arc::clone(&fakes),
            "example",
            TABLE,
            Duration::from_millis(1),
        ));
        let handler = |m: Message| async move {
            // Every tenth order fails once and comes back after its visibility timeout.
            if m.body.ends_with('0') && m.receive_count == 1 {
                return Err(HandlerError::new("payment service unavailable"));
            }
            Ok(())
        };
        let running = Balancer::new(cfg, backend)?.start(handler)?;
        // Wait for the 270 orders that succeed first time (the 30 failures are retried after
        // the 30 s visibility timeout, which this example does not wait for).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while running.stats().succeeded < 270 {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("only {:?} after 60 s", running.stats()).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("{:?}", running.stats());
        println!("{:?}", running.health());
        running.stop().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;

    for line in prometheus.render().lines() {
        if line.starts_with("sqsbalancer") {
            println!("{line}");
        }
    }
    Ok(())
}

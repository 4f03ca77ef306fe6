//! Exporting sqsbalancer's metrics to Prometheus: install a recorder for the `metrics` facade
//! and every instance in the process reports to it. Here one instance runs on the test kit's
//! in-memory SQS and DynamoDB (no AWS needed), handles 300 messages on three queues, and the
//! metrics are printed in Prometheus' text format; in a service, serve `handle.render()` from
//! your `/metrics` endpoint (or enable the exporter's own `http-listener` feature).
//!
//! `cargo run --example metrics --features testing`

use metrics_exporter_prometheus::PrometheusBuilder;
use sqsbalancer::testing::LocalAws;
use sqsbalancer::{Balancer, Config, HandlerError, Message};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    // Three queues of 100 orders each.
    let aws = LocalAws::new();
    for q in 0..3 {
        let url = aws.create_queue(&format!("orders-{q}"))?;
        for i in 0..100 {
            aws.send(&url, format!("order {i}"))?;
        }
    }

    let handler = |m: Message| async move {
        // Every tenth order fails once and comes back after its visibility timeout.
        if m.body.ends_with('0') && m.receive_count == 1 {
            return Err(HandlerError::new("payment service unavailable"));
        }
        Ok(())
    };
    let cfg = Config::new("orders", LocalAws::TABLE);
    let running = Balancer::new(cfg, aws.backend("example"))?.start(handler)?;
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

    for line in prometheus.render().lines() {
        if line.starts_with("sqsbalancer") {
            println!("{line}");
        }
    }
    Ok(())
}

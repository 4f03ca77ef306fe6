//! The quick start: one instance of a fleet sharing the queues named `orders-*`, printing each
//! message. Start as many as you like, on one machine or many; they split the queues evenly
//! and hand them over as they come and go. SIGTERM or Ctrl-C stops it gracefully.
//!
//! Against AWS (region and credentials from the standard chain; the table `sqsbalancer` is
//! created, on demand, if missing):
//! `cargo run --example quickstart`
//!
//! Against a local moto server (`moto_server -H 127.0.0.1 -p 5000`; see the README for
//! creating queues):
//! `AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test
//! AWS_SECRET_ACCESS_KEY=test cargo run --example quickstart`

use sqsbalancer::aws::AwsBackend;
use sqsbalancer::{Balancer, Config, HandlerError, Message, shutdown_signal};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = Config::new("orders", "sqsbalancer");
    cfg.queue_filter_pattern = Some("^orders-".into());
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let aws = AwsBackend::from_sdk_config(&sdk, &cfg);

    let handler = |m: Message| async move {
        println!("{} from {}", m.body, m.queue.name());
        Ok::<(), HandlerError>(())
    };
    // Listen before starting, so a SIGTERM from a deploy that comes early is not lost.
    let stop = shutdown_signal()?;
    let balancer = Balancer::new(cfg, Arc::new(aws))?;
    println!("instance {}", balancer.instance_id());
    let running = balancer.start(handler)?;
    let signal = stop.await;
    println!("{signal:?}; stopping: {:?}", running.stats());
    running.stop().await?;
    Ok(())
}

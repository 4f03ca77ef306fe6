//! The quick start: one instance of a fleet sharing the queues named `orders-*`, printing each
//! message. Start as many as you like, on one machine or many; they split the queues evenly
//! and hand them over as they come and go. Ctrl-C stops it gracefully.
//!
//! Against AWS (region and credentials from the standard chain):
//! `cargo run --example quickstart -- host-1`
//!
//! Against a local moto server (`moto_server -H 127.0.0.1 -p 5000`; see the README for
//! creating queues):
//! `SQSBALANCER_ENDPOINT=http://127.0.0.1:5000 cargo run --example quickstart -- host-1`

use sqsbalancer::aws::{AwsBackend, AwsSettings, Billing, ensure_table};
use sqsbalancer::{Balancer, Config, HandlerError, Message, shutdown_signal};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let instance = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "host-1".to_owned());
    let settings = match std::env::var("SQSBALANCER_ENDPOINT") {
        // An emulator takes any credentials and region.
        Ok(url) => AwsSettings {
            endpoint_url: Some(url),
            region: Some("us-east-1".into()),
            static_credentials: Some(("test".into(), "test".into())),
            ..AwsSettings::default()
        },
        Err(_) => AwsSettings::default(),
    };
    let aws = AwsBackend::connect(&settings, "sqsbalancer").await;
    ensure_table(&aws, Billing::OnDemand).await?;

    let mut cfg = Config::new("orders", "sqsbalancer");
    cfg.instance_id = Some(instance.clone());
    cfg.queue_filter_pattern = Some("^orders-".into());

    let handler = move |m: Message| {
        let instance = instance.clone();
        async move {
            println!("{instance}: {} from {}", m.body, m.queue.name());
            Ok::<(), HandlerError>(())
        }
    };
    // Listen before starting, so a SIGTERM from a deploy that comes early is not lost.
    let stop = shutdown_signal()?;
    let running = Balancer::new(cfg, Arc::new(aws))?.start(handler)?;
    let signal = stop.await;
    println!("{signal:?}; stopping: {:?}", running.stats());
    running.stop().await?;
    Ok(())
}

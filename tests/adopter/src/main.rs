//! The orders service: balances the `adopter-` queues with its peers until SIGTERM.

use sqsbalancer::aws::AwsBackend;
use sqsbalancer::{Balancer, Config, shutdown_signal};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = Config::new("adopter", "adopter-coordination");
    cfg.queue_filter_pattern = Some("^adopter-".into());
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let aws = AwsBackend::from_sdk_config(&sdk, &cfg);
    let stop = shutdown_signal()?;
    let running = Balancer::new(cfg, Arc::new(aws))?.start(sqsbalancer_adopter::handle)?;
    stop.await;
    running.stop().await?;
    Ok(())
}

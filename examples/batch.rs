//! A batch handler: each receive (up to ten messages of one queue) arrives as one batch, as
//! for a bulk insert, and each message succeeds or fails on its own: the failed ones come
//! back, the rest are deleted. Runs on the test kit's in-memory SQS and DynamoDB, no AWS
//! needed:
//!
//! `cargo run --example batch --features testing`

use sqsbalancer::testing::LocalAws;
use sqsbalancer::{Balancer, BatchOutcome, Config, HandlerError, Message};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let aws = LocalAws::new();
    let url = aws.create_queue("events")?;
    for i in 0..100 {
        if i % 25 == 7 {
            aws.send(&url, "not json")?;
        } else {
            aws.send(&url, format!("{{\"id\":{i}}}"))?;
        }
    }

    let batches = Arc::new(Mutex::new(Vec::new()));
    let sizes = Arc::clone(&batches);
    let handler = move |batch: Vec<Message>| {
        if let Ok(mut s) = sizes.lock() {
            s.push(batch.len());
        }
        // One bulk write of the valid rows; the malformed ones fail alone.
        let outcome: BatchOutcome = batch
            .iter()
            .map(|m| {
                if m.body.starts_with('{') {
                    Ok(())
                } else {
                    Err(HandlerError::new("not a JSON object"))
                }
            })
            .collect();
        std::future::ready(outcome)
    };
    let cfg = Config::new("events", LocalAws::TABLE);
    let running = Balancer::new(cfg, aws.backend("example"))?.start_batch(handler)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while running.stats().succeeded + running.stats().failed < 100 {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {:?} after 60 s", running.stats()).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = running.stats();
    running.stop().await?;
    let batches = batches.lock().map_err(|_| "poisoned")?;
    println!(
        "{} batches of sizes {:?}; {} succeeded, {} failed (they come back after the visibility timeout)",
        batches.len(),
        *batches,
        stats.succeeded,
        stats.failed
    );
    Ok(())
}

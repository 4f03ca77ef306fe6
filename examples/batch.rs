//! A batch handler: each receive (up to ten messages of one queue) arrives as one batch, as
//! for a bulk insert, and each message succeeds or fails on its own: the failed ones come
//! back, the rest are deleted. Runs on the in-memory fake, no AWS needed:
//!
//! `cargo run --example batch`

use sqsbalancer::{Balancer, BatchOutcome, HandlerError, Message};
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use sqsbalancer_sim::fake::Outgoing;
use sqsbalancer_sim::{TABLE, config};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fakes = Arc::new(Mutex::new(Fakes::new()));
    {
        let mut f = fakes.lock().map_err(|_| "poisoned")?;
        f.dynamo.create_table(TABLE)?;
        let url = f.sqs.create_queue("producer", "events")?;
        for i in 0..100 {
            let now = f.now();
            let body = if i % 25 == 7 {
                "not json".to_owned()
            } else {
                format!("{{\"id\":{i}}}")
            };
            let message = Outgoing {
                body,
                ..Outgoing::default()
            };
            f.sqs.send(now, "producer", &url, message)?;
        }
    }
    let batches = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;
    let stats = runtime.block_on(async {
        let mut cfg = config();
        cfg.instance_id = Some("example".into());
        let backend = Arc::new(FakeBackend::new(
            Arc::clone(&fakes),
            "example",
            TABLE,
            Duration::from_millis(1),
        ));
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
        let running = Balancer::new(cfg, backend)?.start_batch(handler)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while running.stats().succeeded + running.stats().failed < 100 {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("only {:?} after 60 s", running.stats()).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stats = running.stats();
        running.stop().await?;
        Ok::<_, Box<dyn std::error::Error>>(stats)
    })?;
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

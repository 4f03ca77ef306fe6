//! A FIFO queue: the messages of one MessageGroupId are handled in order, one at a time, even
//! when a handler fails (the rest of that group waits for the failed message's retry), while
//! different groups run in parallel. Runs on the test kit's in-memory SQS and DynamoDB, no
//! AWS needed:
//!
//! `cargo run --example fifo --features testing`

use sqsbalancer::testing::LocalAws;
use sqsbalancer::{Balancer, Config, FailureBackoff, HandlerError, Message};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let aws = LocalAws::new();
    let url = aws.create_queue("accounts.fifo")?;
    for step in 0..5 {
        for account in ["alice", "bob", "carol"] {
            aws.send_to_group(&url, account, format!("{account}: step {step}"))?;
        }
    }

    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&handled);
    let handler = move |m: Message| {
        let log = Arc::clone(&log);
        async move {
            // Bob's step 2 fails once: bob's steps 3 and 4 wait for its retry.
            if m.body == "bob: step 2" && m.receive_count == 1 {
                return Err(HandlerError::new("ledger busy"));
            }
            log.lock()
                .map_err(|_| HandlerError::new("poisoned"))?
                .push(m.body);
            Ok(())
        }
    };
    // Retry failures after a second instead of the 30 s visibility timeout.
    let backoff = FailureBackoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let cfg = Config::new("accounts", LocalAws::TABLE);
    let running = Balancer::new(cfg, aws.backend("example"))?
        .with_failure_backoff(backoff)
        .start(handler)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while running.stats().succeeded < 15 {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {:?} after 60 s", running.stats()).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await?;
    let handled = handled.lock().map_err(|_| "poisoned")?;
    for account in ["alice", "bob", "carol"] {
        let steps: Vec<&str> = handled
            .iter()
            .filter(|b| b.starts_with(account))
            .map(|b| b.rsplit(' ').next().unwrap_or_default())
            .collect();
        println!("{account:>5}: steps {}", steps.join(", "));
    }
    Ok(())
}

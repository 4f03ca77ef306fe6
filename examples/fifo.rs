//! A FIFO queue: the messages of one MessageGroupId are handled in order, one at a time, even
//! when a handler fails (the rest of that group waits for the failed message's retry), while
//! different groups run in parallel. Runs on the in-memory fake, no AWS needed:
//!
//! `cargo run --example fifo`

use sqsbalancer::{Balancer, FailureBackoff, HandlerError, Message};
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
        let url = f.sqs.create_queue("producer", "accounts.fifo")?;
        for step in 0..5 {
            for account in ["alice", "bob", "carol"] {
                let now = f.now();
                let message = Outgoing {
                    body: format!("{account}: step {step}"),
                    group: Some(account.to_owned()),
                    ..Outgoing::default()
                };
                f.sqs.send(now, "producer", &url, message)?;
            }
        }
    }
    let handled = Arc::new(Mutex::new(Vec::new()));
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
        let backoff = FailureBackoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let running = Balancer::new(cfg, backend)?
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
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
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

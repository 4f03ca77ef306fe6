//! Three real `sqsbalancer worker` processes against one moto server: 12 queues split 4/4/4;
//! after kill -9 of one the survivors split 6/6 and every message is still handled; after
//! SIGTERM of another the last owns all 12; nothing is left in the queues.

mod common;

use common::worker::{APP, TABLE, Worker, loads};
use common::{Moto, backlog, create_queues, owners, send_messages, wait_until};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_survive_a_kill_and_a_sigterm_without_losing_a_message() {
    let moto = Moto::start();
    let admin = moto.backend(TABLE).await;
    let urls = create_queues(&admin, "jobs", 12).await;
    let printed: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut workers: Vec<Worker> = ["w0", "w1", "w2"]
        .iter()
        .map(|id| Worker::start(&moto.endpoint, id, &printed))
        .collect();
    wait_until(Duration::from_secs(60), "4/4/4", async || {
        loads(&owners(&admin, APP).await) == [4, 4, 4]
    })
    .await;
    let mut sent = send_messages(&admin, &urls, 2, "r1").await;
    wait_until(Duration::from_secs(30), "round 1 handled", async || {
        printed.lock().expect("not poisoned").is_superset(&sent)
    })
    .await;

    // kill -9: no shutdown at all; the survivors fail its queues over.
    let killed = workers.remove(0);
    killed.signal("-KILL");
    drop(killed);
    sent.extend(send_messages(&admin, &urls, 2, "r2").await);
    wait_until(Duration::from_secs(60), "6/6 after the kill", async || {
        loads(&owners(&admin, APP).await) == [6, 6]
    })
    .await;
    wait_until(Duration::from_secs(30), "round 2 handled", async || {
        printed.lock().expect("not poisoned").is_superset(&sent)
    })
    .await;

    // SIGTERM: a graceful stop that exits 0 and hands its queues to the last worker.
    let mut stopped = workers.remove(0);
    stopped.signal("-TERM");
    let status = tokio::task::spawn_blocking(move || stopped.child.wait())
        .await
        .expect("joined")
        .expect("waited");
    assert!(status.success(), "SIGTERM exit: {status}");
    wait_until(
        Duration::from_secs(30),
        "the last owns all 12",
        async || loads(&owners(&admin, APP).await) == [12],
    )
    .await;
    sent.extend(send_messages(&admin, &urls, 2, "r3").await);
    wait_until(Duration::from_secs(30), "round 3 handled", async || {
        printed.lock().expect("not poisoned").is_superset(&sent)
    })
    .await;
    wait_until(
        Duration::from_secs(30),
        "nothing left in the queues",
        async || backlog(&admin, &urls).await == 0,
    )
    .await;
    let last = workers.remove(0);
    last.signal("-TERM");
}

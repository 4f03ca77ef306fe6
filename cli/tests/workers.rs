//! Three real `sqsbalancer worker` processes against one moto server: 12 queues split 4/4/4;
//! after kill -9 of one the survivors split 6/6 and every message is still handled; after
//! SIGTERM of another the last owns all 12; nothing is left in the queues.

mod common;

use common::{Moto, backlog, create_queues, owners, send_messages, wait_until};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APP: &str = "jobs";
const TABLE: &str = "fleet";

/// A worker process and the bodies it printed.
struct Worker {
    child: Child,
}

impl Worker {
    fn start(moto: &Moto, id: &str, printed: &Arc<Mutex<BTreeSet<String>>>) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
            .args([
                "worker",
                "--endpoint-url",
                &moto.endpoint,
                "--region",
                "us-east-1",
                "--table",
                TABLE,
                "--app",
                APP,
                "--queue-pattern",
                "^jobs-",
                "--instance-id",
                id,
                "--heartbeat-interval",
                "300ms",
                "--heartbeat-timeout",
                "3s",
                "--rebalance-delay",
                "500ms",
                "--discovery-interval",
                "1s",
                "--visibility-timeout",
                "5",
                "--wait-time",
                "1",
                "--shutdown-timeout",
                "10s",
                "--print",
            ])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the worker starts");
        let stdout = child.stdout.take().expect("piped");
        let printed = Arc::clone(printed);
        let id = id.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: serde_json::Value =
                    serde_json::from_str(&line).expect("one JSON object per line");
                assert_eq!(v["instance"], id.as_str(), "{line}");
                let body = v["body"].as_str().expect("a body").to_owned();
                printed.lock().expect("not poisoned").insert(body);
            }
        });
        Worker { child }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loads(o: &std::collections::BTreeMap<String, usize>) -> Vec<usize> {
    let mut l: Vec<usize> = o.values().copied().collect();
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_survive_a_kill_and_a_sigterm_without_losing_a_message() {
    let moto = Moto::start();
    let admin = moto.backend(TABLE).await;
    let urls = create_queues(&admin, "jobs", 12).await;
    let printed: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut workers: Vec<Worker> = ["w0", "w1", "w2"]
        .iter()
        .map(|id| Worker::start(&moto, id, &printed))
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

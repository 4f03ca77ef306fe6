//! `sqsbalancer worker` processes for application [`APP`] on table [`TABLE`], with the short
//! intervals of [`super::fast`], printing each message they handle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The application the workers serve: the queues named `jobs-*`.
pub const APP: &str = "jobs";
/// Their coordination table.
pub const TABLE: &str = "fleet";

/// A worker process and the bodies it printed.
pub struct Worker {
    /// The process.
    pub child: Child,
}

impl Worker {
    /// Starts worker `id` against `endpoint`; the bodies it prints are added to `printed`.
    pub fn start(endpoint: &str, id: &str, printed: &Arc<Mutex<BTreeSet<String>>>) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
            .args([
                "worker",
                "--endpoint-url",
                endpoint,
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
                "5s",
                "--wait-time",
                "1s",
                "--shutdown-timeout",
                "10s",
                "--print",
            ])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("SQSBALANCER_LOG_LEVEL", "warn")
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

    /// Sends it `sig` (`-TERM`, `-KILL`).
    pub fn signal(&self, sig: &str) {
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

/// The queue counts of `owners`, smallest first.
pub fn loads(o: &BTreeMap<String, usize>) -> Vec<usize> {
    let mut l: Vec<usize> = o.values().copied().collect();
    l.sort();
    l
}

/// The configuration the workers run with, as the balancer of `id` sees it.
pub fn config(id: &str) -> sqsbalancer_core::Config {
    super::fast(APP, TABLE, id)
}

//! `sqsbalancer status` against a live fleet on moto: three balancers shown alive and balanced
//! (exit 0); an aborted one shown ended after its queues failed over; with every instance
//! stopped, the queues left without an owner past the failover bound make it exit 2 and are
//! listed, beside a new queue that has no record yet; an unreachable endpoint and a missing
//! table exit 1 naming what is wrong.

mod common;

use common::{Moto, create_queues, fast, owners, wait_until};
use serde_json::Value;
use sqsbalancer_runtime::aws::{AwsBackend, Billing, ensure_table};
use sqsbalancer_runtime::{Balancer, HandlerError, Message, Running};
use std::time::Duration;

const APP: &str = "st";
const TABLE: &str = "coordination";

/// One finished `sqsbalancer status`.
struct Status {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Status {
    /// The JSON object on the last line of stdout.
    fn json(&self) -> Value {
        let last = self.stdout.lines().last().expect("some output");
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
    }
}

/// Runs `sqsbalancer status` for the test app with the fleet's intervals and `extra` flags.
async fn status(endpoint: &str, table: &str, extra: &[&str]) -> Status {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
        .args([
            "status",
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--table",
            table,
            "--app",
            APP,
            "--heartbeat-interval",
            "300ms",
            "--heartbeat-timeout",
            "3s",
        ])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .expect("the status command runs");
    Status {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The instances of a report by id: (status, queues owned, fair share).
fn instances(v: &Value) -> Vec<(String, String, u64, Value)> {
    v["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            (
                i["id"].as_str().expect("id").to_owned(),
                i["status"].as_str().expect("status").to_owned(),
                i["queues"].as_u64().expect("queues"),
                i["fair"].clone(),
            )
        })
        .collect()
}

/// A tokio runtime with `workers` threads.
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Starts balancer `id` of the test app, handling every message with success.
async fn start_balancer(moto: &Moto, id: &str) -> Running {
    let backend = std::sync::Arc::new(moto.backend(TABLE).await);
    let b = Balancer::new(fast(APP, TABLE, id), backend).expect("valid");
    b.start(|_m: Message| async { Ok::<(), HandlerError>(()) })
        .expect("started")
}

/// Waits until the live instances own `loads` queues each (by instance id).
async fn wait_for_loads(admin: &AwsBackend, what: &str, loads: &[usize]) {
    wait_until(Duration::from_secs(30), what, async || {
        owners(admin, APP)
            .await
            .values()
            .copied()
            .collect::<Vec<_>>()
            == loads
    })
    .await;
}

/// The report of a one-second watch, which must exit 0.
async fn watch_ok(moto: &Moto) -> Value {
    let out = status(&moto.endpoint, TABLE, &["--watch", "1s", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.json()
}

/// A watch of the healthy fleet a, b, c shows each alive, its heartbeat advancing, owning
/// its fair share of 2 of the 6 queues.
async fn assert_healthy(moto: &Moto) {
    let v = watch_ok(moto).await;
    let two = Value::from(2);
    assert_eq!(
        instances(&v),
        [
            ("a".into(), "alive".into(), 2, two.clone()),
            ("b".into(), "alive".into(), 2, two.clone()),
            ("c".into(), "alive".into(), 2, two),
        ],
        "{v}"
    );
    assert!(v["staleness_observed"].as_bool().expect("a flag"), "{v}");
    for i in v["instances"].as_array().expect("instances") {
        assert_eq!(i["heartbeat_advanced"], true, "{i}");
    }
    assert_eq!(v["owners"]["a"].as_array().expect("a's queues").len(), 2);
    assert_eq!(v["balance"]["balanced"], true, "{v}");
    assert_eq!(
        (&v["balance"]["fair_min"], &v["balance"]["fair_max"]),
        (&Value::from(2), &Value::from(2))
    );
    assert_eq!(v["unowned"], Value::Array(Vec::new()));
    assert_eq!(v["failover_bound_ms"], 3_600);
    // The fleet asked for 4 queue keys and 2 instance keys and recorded them; the watch reads
    // in that layout.
    assert_eq!(v["queue_partition_keys"], 4, "{v}");
    assert_eq!(v["instance_partition_keys"], 2, "{v}");
}

/// After c's abort and failover a watch shows c ended, and a and b balanced at 3 each.
async fn assert_failed_over(moto: &Moto) {
    let v = watch_ok(moto).await;
    let three = Value::from(3);
    assert_eq!(
        instances(&v),
        [
            ("a".into(), "alive".into(), 3, three.clone()),
            ("b".into(), "alive".into(), 3, three),
            ("c".into(), "ended".into(), 0, Value::Null),
        ],
        "{v}"
    );
    assert_eq!(v["balance"]["balanced"], true, "{v}");
}

/// With every instance ended, a watch past the failover bound exits 2 and lists the 6 queues
/// as having no owner, and the `late` queue as listed without a record.
async fn assert_stuck(moto: &Moto, late: &[String]) {
    let stuck = status(
        &moto.endpoint,
        TABLE,
        &["--watch", "4s", "--queue-pattern", "^st-", "--json"],
    )
    .await;
    assert_eq!(stuck.code, 6, "{}", stuck.stderr);
    assert!(
        stuck
            .stderr
            .contains("6 queue(s) unowned past the failover bound"),
        "{}",
        stuck.stderr
    );
    let v = stuck.json();
    let unowned = v["unowned"].as_array().expect("unowned");
    assert_eq!(unowned.len(), 6, "{v}");
    for u in unowned {
        assert_eq!(
            (&u["why"], &u["past_bound"]),
            (&"no owner".into(), &true.into()),
            "{u}"
        );
    }
    assert_eq!(v["unowned_past_bound"], 6);
    assert_eq!(v["unrecorded"], serde_json::json!(late), "{v}");
    assert!(instances(&v).iter().all(|i| i.1 == "ended"), "{v}");
}

/// One read cannot see how long queues stay unowned: exit 0, and the table says so.
async fn assert_one_read_cannot_judge(moto: &Moto) {
    let once = status(&moto.endpoint, TABLE, &[]).await;
    assert_eq!(once.code, 0, "{}", once.stderr);
    assert!(
        once.stdout.contains("6 unowned, 0 past the failover bound"),
        "{}",
        once.stdout
    );
    assert!(
        once.stdout.contains("staleness not observed"),
        "{}",
        once.stdout
    );
}

#[test]
fn a_live_fleet_is_shown_balanced_and_queues_left_unowned_exit_2() {
    let moto = Moto::start();
    let fleet_rt = runtime(2);
    // The instance to abort runs on its own runtime: shutting that down kills every one of its
    // tasks mid-flight, as a crash would.
    let doomed_rt = runtime(1);
    let (admin, fleet) = fleet_rt.block_on(async {
        let admin = moto.backend(TABLE).await;
        ensure_table(&admin, Billing::OnDemand)
            .await
            .expect("table");
        create_queues(&admin, APP, 6).await;
        let mut fleet: Vec<Running> = Vec::new();
        for id in ["a", "b"] {
            fleet.push(start_balancer(&moto, id).await);
        }
        (admin, fleet)
    });
    let _doomed = doomed_rt.block_on(start_balancer(&moto, "c"));
    fleet_rt.block_on(async {
        wait_for_loads(&admin, "2/2/2", &[2, 2, 2]).await;
        assert_healthy(&moto).await;
    });

    // Abort c: once the others have reaped it and taken its queues, it shows as ended.
    doomed_rt.shutdown_background();
    fleet_rt.block_on(async {
        wait_for_loads(&admin, "3/3 after the abort", &[3, 3]).await;
        assert_failed_over(&moto).await;

        // Stop the rest: they release their queues to nobody, and a new queue gets no record.
        for r in fleet {
            r.stop().await.expect("a clean stop");
        }
        let late = create_queues(&admin, "st-late", 1).await;
        assert_stuck(&moto, &late).await;
        assert_one_read_cannot_judge(&moto).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_and_a_missing_table_exit_1_naming_what_is_wrong() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let nowhere = format!("http://{free}");
    let unreachable = status(&nowhere, TABLE, &[]).await;
    assert_eq!(unreachable.code, 1, "{}", unreachable.stderr);
    let want = format!("error: coordination table {TABLE}: cannot reach DynamoDB at {nowhere}");
    assert!(unreachable.stderr.contains(&want), "{}", unreachable.stderr);
    assert!(unreachable.stdout.is_empty(), "{}", unreachable.stdout);

    let moto = Moto::start();
    let missing = status(&moto.endpoint, "absent", &["--json"]).await;
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    let want = format!(
        "error: coordination table absent: does not exist at {}",
        moto.endpoint
    );
    assert!(missing.stderr.contains(&want), "{}", missing.stderr);
}

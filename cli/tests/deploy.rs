//! `sqsbalancer worker` as a container runs it: configured by `SQSBALANCER_*` variables
//! alone, logging JSON lines, serving `/healthz` and `/metrics`, exiting 0 on SIGTERM; and an
//! `--exec` command that outlives `--handler-timeout` killed, its message kept.

mod common;

use common::{Moto, backlog, create_queues, send_message, send_messages, wait_until};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The worker's variables for application `app` on moto at `endpoint`, with short intervals.
fn environment(endpoint: &str, app: &str) -> Vec<(String, String)> {
    [
        ("ENDPOINT_URL", endpoint),
        ("REGION", "us-east-1"),
        ("TABLE", "deploy-table"),
        ("APP", app),
        ("QUEUE_PATTERN", &format!("^{app}-")),
        ("HEARTBEAT_INTERVAL", "300ms"),
        ("HEARTBEAT_TIMEOUT", "3s"),
        ("REBALANCE_DELAY", "500ms"),
        ("DISCOVERY_INTERVAL", "1s"),
        ("VISIBILITY_TIMEOUT", "5s"),
        ("WAIT_TIME", "1s"),
        ("SHUTDOWN_TIMEOUT", "10s"),
    ]
    .into_iter()
    .map(|(k, v)| (format!("SQSBALANCER_{k}"), v.to_owned()))
    .collect()
}

/// A worker process, killed if a failed test drops it still running.
struct Worker {
    /// The process; `None` once it exited.
    child: Option<Child>,
    /// Its stderr lines so far.
    logs: Arc<Mutex<Vec<String>>>,
    /// The thread reading its stderr.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker with `args` and the variables `vars` (and moto's credentials).
    fn start(args: &[&str], vars: &[(String, String)]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
            .arg("worker")
            .args(args)
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let stderr = child.stderr.take().expect("piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("not poisoned").push(line);
            }
        });
        Worker {
            child: Some(child),
            logs,
            reader: Some(reader),
        }
    }

    /// The address its `--listen` server bound, once it has logged it (JSON logs).
    fn listening(&self) -> Option<String> {
        let logs = self.logs.lock().expect("not poisoned");
        logs.iter().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            v["listen"].as_str().map(str::to_owned)
        })
    }

    /// Sends SIGTERM, waits for the exit, and returns its status and every stderr line.
    async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.expect("kill runs").success());
        let mut status = None;
        wait_until(Duration::from_secs(30), "the worker exits", async || {
            status = child.try_wait().expect("waitable");
            status.is_some()
        })
        .await;
        // Its stderr is closed: the reader has every line once it ends.
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader ends");
        }
        let logs = self.logs.lock().expect("not poisoned").clone();
        (status.expect("exited"), logs)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// GET `url`: the status and the body, or `None` while nothing answers.
async fn get(url: &str) -> Option<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = url.parse().expect("a URL");
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .ok()?
        .ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The value of `sqsbalancer_messages_processed` for the queue at `url` in `metrics`.
fn processed(metrics: &str, url: &str) -> u64 {
    counted(
        metrics,
        "sqsbalancer_messages_processed",
        &format!("queue_url=\"{url}\""),
    )
}

/// The sum of the samples of `name` labelled `label` in `metrics`.
fn counted(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_configured_by_its_environment_serves_health_and_metrics_and_logs_json() {
    let moto = Moto::start();
    let admin = moto.backend("deploy-table").await;
    let urls = create_queues(&admin, "env", 2).await;
    let mut vars = environment(&moto.endpoint, "env");
    // Any free port: the worker logs the one it bound.
    vars.push(("SQSBALANCER_LISTEN".into(), "127.0.0.1:0".into()));
    vars.push(("SQSBALANCER_LOG_FORMAT".into(), "json".into()));
    let worker = Worker::start(&["--print"], &vars);
    let mut bound = None;
    wait_until(Duration::from_secs(60), "the listener bound", async || {
        bound = worker.listening();
        bound.is_some()
    })
    .await;
    let base = format!("http://{}", bound.expect("an address"));
    wait_until(
        Duration::from_secs(60),
        "/healthz answers 200",
        async || get(&format!("{base}/healthz")).await.map(|r| r.0) == Some(200),
    )
    .await;
    for round in 1..=2 {
        send_messages(&admin, &urls, 3, &format!("round-{round}")).await;
        let want = 3 * round;
        wait_until(
            Duration::from_secs(60),
            "processed rises on every queue",
            async || {
                let Some((200, metrics)) = get(&format!("{base}/metrics")).await else {
                    return false;
                };
                // At least: a message delivered twice on a slow machine counts twice.
                urls.iter().all(|u| processed(&metrics, u) >= want)
            },
        )
        .await;
    }
    // Owning the queues took the start's table read: the metrics say why each read was sent.
    let (_, metrics) = get(&format!("{base}/metrics"))
        .await
        .expect("/metrics answers");
    let start_reads = counted(&metrics, "sqsbalancer_table_reads", "cause=\"start\"");
    assert!(start_reads >= 1, "no start read counted in:\n{metrics}");

    let (status, logs) = worker.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(!logs.is_empty(), "the worker logged nothing");
    for line in logs.iter() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
}

/// Whether process `pid` is gone (or a zombie, dead but not yet reaped by its new parent).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_command_past_the_handler_timeout_is_killed_and_its_message_kept() {
    let moto = Moto::start();
    let admin = moto.backend("deploy-table").await;
    let urls = create_queues(&admin, "slow", 1).await;
    let dir = std::env::temp_dir().join(format!("sqsbalancer-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let pids = dir.join("pids");
    // A background child of the shell: only a kill of the whole process group reaches it.
    let cmd = format!("sleep 120 & echo $! >> {}; wait", pids.display());
    let vars = environment(&moto.endpoint, "slow");
    let args = ["--exec", &cmd, "--handler-timeout", "1s"];
    let worker = Worker::start(&args, &vars);
    send_message(&admin, &urls[0], "takes too long").await;

    let mut first = None;
    wait_until(Duration::from_secs(60), "the command started", async || {
        first = std::fs::read_to_string(&pids)
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok());
        first.is_some()
    })
    .await;
    let pid = first.expect("a pid");
    wait_until(Duration::from_secs(30), "the command killed", async || {
        gone(pid)
    })
    .await;
    assert_eq!(backlog(&admin, &urls).await, 1, "the message was deleted");

    let (status, _) = worker.terminate().await;
    assert!(status.success(), "{status:?}");
    assert_eq!(backlog(&admin, &urls).await, 1, "the message was deleted");
    for started in std::fs::read_to_string(&pids).unwrap_or_default().lines() {
        let pid: u32 = started.trim().parse().expect("a pid");
        assert!(gone(pid), "command {pid} outlived the worker");
    }
    std::fs::remove_dir_all(&dir).expect("the scratch directory is removed");
}

/// A file of the deployment documentation, `docs/deploy/<name>`.
fn deploy_doc(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudformation_table_is_the_table_the_library_creates() {
    use sqsbalancer_runtime::aws::{Billing, ensure_table};
    let template: serde_json::Value =
        serde_json::from_str(&deploy_doc("cloudformation.json")).expect("JSON");
    let declared = &template["Resources"]["CoordinationTable"]["Properties"];
    let moto = Moto::start();
    let aws = moto.backend("created-by-the-library").await;
    ensure_table(&aws, Billing::OnDemand)
        .await
        .expect("created");
    let described = aws
        .dynamo()
        .describe_table()
        .table_name("created-by-the-library")
        .send()
        .await
        .expect("described");
    let table = described.table().expect("a table");
    let keys: Vec<serde_json::Value> = table
        .key_schema()
        .iter()
        .map(|k| {
            serde_json::json!({ "AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str() })
        })
        .collect();
    assert_eq!(serde_json::Value::from(keys), declared["KeySchema"]);
    let mut attributes: Vec<serde_json::Value> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            serde_json::json!({ "AttributeName": a.attribute_name(), "AttributeType": a.attribute_type().as_str() })
        })
        .collect();
    attributes.sort_by_key(|a| a["AttributeName"].to_string());
    assert_eq!(
        serde_json::Value::from(attributes),
        declared["AttributeDefinitions"]
    );
    let billing = table.billing_mode_summary().and_then(|b| b.billing_mode());
    assert_eq!(
        billing.map(|b| b.as_str()),
        declared["BillingMode"].as_str()
    );
    let ttl = aws
        .dynamo()
        .describe_time_to_live()
        .table_name("created-by-the-library")
        .send()
        .await
        .expect("TTL described");
    let ttl = ttl.time_to_live_description().expect("a TTL description");
    let spec = &declared["TimeToLiveSpecification"];
    assert_eq!(ttl.attribute_name(), spec["AttributeName"].as_str());
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );
}

/// The `SQSBALANCER_*` names in `text`.
fn variables(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("SQSBALANCER_") && w.len() > "SQSBALANCER_".len())
        .map(str::to_owned)
        .collect()
}

/// Seconds of a `60s`-style duration.
fn seconds(d: &str) -> u64 {
    d.trim()
        .trim_matches('"')
        .trim_end_matches('s')
        .parse()
        .expect("whole seconds")
}

#[test]
fn the_deployment_examples_use_real_variables_and_outlast_the_shutdown_timeout() {
    let help = |sub: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
            .args([sub, "--help"])
            .output()
            .expect("help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let known = variables(&(help("worker") + &help("status")));
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README");
    let ecs = deploy_doc("ecs-task-definition.json");
    let kubernetes = deploy_doc("kubernetes.yaml");
    for (doc, text) in [
        ("README.md", &readme),
        ("ecs", &ecs),
        ("kubernetes", &kubernetes),
    ] {
        let unknown: Vec<String> = variables(text).difference(&known).cloned().collect();
        assert!(
            unknown.is_empty(),
            "{doc} names variables the worker does not read: {unknown:?}"
        );
    }

    let task: serde_json::Value = serde_json::from_str(&ecs).expect("JSON");
    let container = &task["containerDefinitions"][0];
    let env = |name: &str| {
        container["environment"]
            .as_array()
            .and_then(|vars| vars.iter().find(|v| v["name"] == name))
            .and_then(|v| v["value"].as_str())
            .map(seconds)
    };
    let shutdown = env("SQSBALANCER_SHUTDOWN_TIMEOUT").expect("a shutdown timeout");
    let stop = container["stopTimeout"].as_u64().expect("a stop timeout");
    assert!(
        stop > shutdown,
        "ECS kills at {stop} s, before the {shutdown} s shutdown ends"
    );

    // The YAML's `key: value` on the key's line, and an env entry's `value:` on the next.
    let same_line = |key: &str| {
        let line = kubernetes.lines().find(|l| l.contains(key)).expect(key);
        line.rsplit(':').next().unwrap_or_default().to_owned()
    };
    let env_value = |name: &str| {
        let mut lines = kubernetes.lines().skip_while(|l| !l.contains(name)).skip(1);
        let line = lines.next().expect(name);
        line.split_once("value:").expect("a value").1.to_owned()
    };
    let grace = seconds(&same_line("terminationGracePeriodSeconds"));
    let shutdown = seconds(&env_value("name: SQSBALANCER_SHUTDOWN_TIMEOUT"));
    assert!(
        grace > shutdown,
        "Kubernetes kills at {grace} s, before the {shutdown} s shutdown ends"
    );
    assert!(
        kubernetes.contains("fieldPath: metadata.name"),
        "the pod name is not the instance id"
    );
}

//! The service as deployed: against a moto server, from an SdkConfig, with no instance id and
//! no table beforehand; it handles every order, and on SIGTERM hands its queues over and exits 0.

use sqsbalancer::aws::{AwsBackend, AwsSettings};
use sqsbalancer::backend::Store;
use sqsbalancer::backend::table::{self, Record, TableQuery};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A moto server on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server on PATH (pip install 'moto[server]==5.2.1')");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done` holds, failing past `within`.
fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The service's process, its stdout lines collected as they come.
fn spawn_service(endpoint: &str, lines: &Arc<Mutex<Vec<String>>>) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sqsbalancer-adopter"))
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the service starts");
    let out = child.stdout.take().expect("piped");
    let lines = Arc::clone(lines);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            lines.lock().expect("not poisoned").push(line);
        }
    });
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_handles_every_order_and_hands_over_on_sigterm() {
    let moto = Moto::start();
    let settings = AwsSettings::default()
        .with_endpoint(&moto.endpoint)
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing");
    let admin = AwsBackend::connect(&settings, "adopter-coordination").await;
    let mut urls = Vec::new();
    for name in ["adopter-eu", "adopter-us", "other-team"] {
        let q = admin.sqs().create_queue().queue_name(name).send().await;
        urls.push(q.expect("created").queue_url().expect("a url").to_owned());
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut service = spawn_service(&moto.endpoint, &lines);
    let mut want = BTreeSet::new();
    for (i, url) in urls[..2].iter().enumerate() {
        for n in 0..5 {
            let body = format!("sku-{i}-{n}:{}", n + 1);
            want.insert(format!("handled sku-{i}-{n} x{}", n + 1));
            let sent = admin
                .sqs()
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send();
            sent.await.expect("sent");
        }
    }
    let handled = || {
        lines
            .lock()
            .expect("ok")
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    wait_until(Duration::from_secs(60), "every order handled", || {
        handled() == want
    });
    let pid = service.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.expect("kill runs").success());
    let mut status = None;
    wait_until(Duration::from_secs(60), "the service exits", || {
        status = service.try_wait().expect("waitable");
        status.is_some()
    });
    assert!(status.expect("exited").success(), "{status:?}");
    // Handed over: no queue record names an owner, and the instance deregistered.
    let query = TableQuery {
        pk: table::partition("adopter"),
        sk_prefix: None,
        backward: false,
    };
    let page = admin
        .query(query, None)
        .await
        .expect("the table the service made");
    let records: Vec<Record> = page
        .items
        .iter()
        .map(|i| table::decode_item(i).expect("a record"))
        .collect();
    let queues: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Queue(q) => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(queues.len(), 2, "only the adopter- queues: {records:?}");
    assert!(queues.iter().all(|q| q.owner.is_none()), "{records:?}");
    // A deregistered life is recorded as ended.
    let deregistered = |r: &Record| matches!(r, Record::Instance(i) if i.ended == i.incarnation);
    assert!(records.iter().any(deregistered), "{records:?}");
}

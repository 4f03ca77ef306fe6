//! The shared harness of the integration tests: a moto server of their own on a free loopback
//! port, stopped when dropped, and balancers connected to it.

use sqsbalancer_runtime::aws::{AwsBackend, AwsSettings};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// A running `moto_server` (SQS and DynamoDB on one endpoint).
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a free port and waits until it accepts connections.
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "moto_server on PATH (scripts/test installs it: pip install 'moto[server]==5.2.1')",
            );
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// A backend for `table` on this server.
    pub async fn backend(&self, table: &str) -> AwsBackend {
        let settings = AwsSettings {
            endpoint_url: Some(self.endpoint.clone()),
            region: Some("us-east-1".to_owned()),
            static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
        };
        AwsBackend::connect(&settings, table).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done` holds, checking every 100 ms; fails past `within`.
pub async fn wait_until(within: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

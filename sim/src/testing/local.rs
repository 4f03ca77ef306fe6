//! [`LocalAws`]: SQS and the coordination table in memory, on the real clock, for an example
//! or a test that runs one instance (or a few) of a handler without AWS.

use crate::backend::{FakeBackend, Fakes};
use crate::error::SimError;
use crate::fake::Outgoing;
use crate::world::TABLE;
use sqsbalancer_runtime::{QueueList, Sqs, Store};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long each call to the in-memory services takes, each way: enough to interleave tasks
/// as a network would, little enough not to slow a test.
const LATENCY: Duration = Duration::from_millis(1);

/// SQS and DynamoDB in memory, shared by every instance made from it. Its coordination table
/// is [`LocalAws::TABLE`]; queues are made and filled with [`LocalAws::create_queue`] and
/// [`LocalAws::send`]. For crashes and hand-offs on a simulated clock, use
/// [`FleetTest`](super::FleetTest) instead.
///
/// ```
/// use sqsbalancer_core::Config;
/// use sqsbalancer_sim::testing::LocalAws;
///
/// let aws = LocalAws::new();
/// let url = aws.create_queue("orders-1").unwrap();
/// aws.send(&url, "order 1").unwrap();
/// let cfg = Config::new("orders", LocalAws::TABLE);
/// let backend = aws.backend("instance-1"); // for Balancer::new(cfg, backend)
/// # let _ = (cfg, backend);
/// ```
#[derive(Clone)]
pub struct LocalAws {
    /// The services' state, shared with every backend made from this.
    fakes: Arc<Mutex<Fakes>>,
}

impl Default for LocalAws {
    fn default() -> LocalAws {
        LocalAws::new()
    }
}

impl LocalAws {
    /// The coordination table's name: give it to `Config::new`.
    pub const TABLE: &'static str = TABLE;

    /// Empty services with the coordination table.
    pub fn new() -> LocalAws {
        let mut fakes = Fakes::new();
        fakes
            .dynamo
            .create_table(TABLE)
            .expect("a new fake has no table");
        LocalAws {
            fakes: Arc::new(Mutex::new(fakes)),
        }
    }

    /// Creates queue `name` (a FIFO queue when it ends in `.fifo`) and returns its URL.
    pub fn create_queue(&self, name: &str) -> Result<String, SimError> {
        Ok(self.lock().sqs.create_queue("admin", name)?)
    }

    /// Sends `body` to the queue at `url`.
    pub fn send(&self, url: &str, body: impl Into<String>) -> Result<(), SimError> {
        self.send_message(url, body.into(), None)
    }

    /// Sends `body` to the FIFO queue at `url` in message group `group`.
    pub fn send_to_group(
        &self,
        url: &str,
        group: &str,
        body: impl Into<String>,
    ) -> Result<(), SimError> {
        self.send_message(url, body.into(), Some(group.to_owned()))
    }

    /// Messages in the queue at `url`, visible or in flight.
    pub fn depth(&self, url: &str) -> usize {
        self.lock().sqs.depth(url)
    }

    /// A backend for the instance called `instance`, for `Balancer::new`.
    pub fn backend(&self, instance: &str) -> Arc<impl Store + QueueList + Sqs + 'static> {
        Arc::new(FakeBackend::new(
            Arc::clone(&self.fakes),
            instance,
            TABLE,
            LATENCY,
        ))
    }

    /// Sends one message, in `group` when given.
    fn send_message(&self, url: &str, body: String, group: Option<String>) -> Result<(), SimError> {
        let mut fakes = self.lock();
        let now = fakes.now();
        let message = Outgoing {
            body,
            group,
            ..Outgoing::default()
        };
        fakes.sqs.send(now, "producer", url, message)?;
        Ok(())
    }

    /// The services, even after a panic elsewhere (their state stays readable).
    fn lock(&self) -> MutexGuard<'_, Fakes> {
        self.fakes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

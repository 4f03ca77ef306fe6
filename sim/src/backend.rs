//! The runtime's backend traits over the in-memory fakes, so the real driver (and, later, the
//! whole runtime) runs against the same DynamoDB and SQS as the level-1 simulator.
//!
//! Every instance gets its own [`FakeBackend`] over one shared [`Fakes`]; its calls are billed
//! to its name, and each takes a fixed one-way latency on tokio's clock (so a paused tokio
//! runtime runs the cluster on simulated time). As with AWS, a call the caller gives up on is
//! not undone: it travels on, a write still applies and a long poll still runs to its end at
//! the fake (taking the messages that arrive meanwhile) in a task of its own.

use crate::fake::{
    DynamoError, EntryError, FakeDynamo, FakeSqs, ReceiveRequest, Received, SqsError,
};
use sqsbalancer_core::table::{Item, Key, TableQuery, TableWrite};
use sqsbalancer_core::{Millis, QueueId};
use sqsbalancer_runtime::{
    AttributeValue, BackendError, Batch, Message, Page, QueueList, QueuePage, Receive, Sqs, Store,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The fake services a cluster shares, and the instant their clock counts from.
pub struct Fakes {
    /// DynamoDB.
    pub dynamo: FakeDynamo,
    /// SQS.
    pub sqs: FakeSqs,
    epoch: tokio::time::Instant,
}

impl Fakes {
    /// Empty fakes whose clock starts now (tokio's clock: paused in a paused runtime).
    pub fn new() -> Fakes {
        Fakes {
            dynamo: FakeDynamo::new(),
            sqs: FakeSqs::new(),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// The fakes' time now.
    pub fn now(&self) -> Millis {
        Millis(self.epoch.elapsed().as_millis() as u64)
    }
}

impl Default for Fakes {
    fn default() -> Self {
        Fakes::new()
    }
}

/// One instance's connection to the shared fakes.
#[derive(Clone)]
pub struct FakeBackend {
    fakes: Arc<Mutex<Fakes>>,
    caller: String,
    table: String,
    latency: Duration,
}

impl FakeBackend {
    /// Calls billed to `caller`, against coordination table `table`, each way taking `latency`.
    pub fn new(fakes: Arc<Mutex<Fakes>>, caller: &str, table: &str, latency: Duration) -> Self {
        FakeBackend {
            fakes,
            caller: caller.to_owned(),
            table: table.to_owned(),
            latency,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Fakes> {
        // A panic while holding the lock is a bug in the fake; its state is still readable.
        self.fakes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One way of a call: the latency, or without one just a yield (tokio's timer would round
    /// even a zero sleep up to its next millisecond tick).
    async fn travel(&self) {
        if self.latency.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// Sends the request after one latency, runs `call` on the fakes, returns after another.
    fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Fakes, &str, &str) -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, BackendError>> + Send + 'static {
        let me = self.clone();
        detached(async move {
            me.travel().await;
            let out = {
                let mut fakes = me.lock();
                let now = fakes.now();
                fakes.dynamo.set_now(now);
                call(&mut fakes, &me.caller, &me.table)
            };
            me.travel().await;
            out
        })
    }

    /// A long poll at the fake, from its arrival to its answer.
    async fn long_poll(&self, request: &Receive) -> Result<Vec<Message>, BackendError> {
        let req = ReceiveRequest {
            url: request.queue.as_str().to_owned(),
            max: request.max,
            visibility_secs: request.visibility_secs,
            wait_ms: request.wait.as_millis() as u64,
            attribute_names: request.attribute_names.clone(),
        };
        let deadline = tokio::time::Instant::now() + request.wait;
        let mut got = {
            let mut f = self.lock();
            let now = f.now();
            f.sqs.receive(now, &self.caller, &req)
        };
        // Look again until something is visible or the wait is over.
        while matches!(&got, Ok(m) if m.is_empty())
            && tokio::time::Instant::now() + LONG_POLL_STEP <= deadline
        {
            tokio::time::sleep(LONG_POLL_STEP).await;
            let mut f = self.lock();
            let now = f.now();
            got = f.sqs.receive_more(now, &req);
        }
        got.map(|ms| ms.into_iter().map(|r| message(&request.queue, r)).collect())
            .map_err(sqs_error)
    }
}

/// Runs `exchange` (a request's way there, its work at the fake and its answer's way back) as
/// a task of its own, so that dropping the caller leaves it running, as AWS would.
async fn detached<T: Send + 'static>(
    exchange: impl Future<Output = T> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::spawn(exchange)
        .await
        .map_err(|e| BackendError::Unknown {
            service: "fake",
            reason: format!("the fake's task ended: {e}"),
        })
}

/// How often a long poll looks at its queue again on tokio's clock (it was counted once).
const LONG_POLL_STEP: Duration = Duration::from_millis(20);

pub(crate) fn sqs_error(e: SqsError) -> BackendError {
    match e {
        SqsError::QueueDoesNotExist { url } => BackendError::QueueDoesNotExist { url },
        other => BackendError::Refused {
            service: "sqs",
            reason: other.to_string(),
        },
    }
}

/// A message the fake returned, as the runtime's [`Message`]. The fake keeps string
/// attributes only, and of the system attributes the receive count and the group.
pub(crate) fn message(queue: &QueueId, r: Received) -> Message {
    let mut system = BTreeMap::new();
    system.insert(
        "ApproximateReceiveCount".to_owned(),
        r.receive_count.to_string(),
    );
    if let Some(g) = &r.group {
        system.insert("MessageGroupId".to_owned(), g.clone());
    }
    let mut m = Message::new(queue.clone(), r.message_id, r.receipt, r.body);
    m.receive_count = r.receive_count;
    m.attributes = (r.attributes.into_iter())
        .map(|(k, v)| (k, AttributeValue::string(v)))
        .collect();
    m.system = system;
    m.group = r.group;
    m
}

/// A batch call's per-entry results with the failures as text, as the backend trait has them.
pub(crate) fn entry_strings(entries: Vec<Result<(), EntryError>>) -> Vec<Result<(), String>> {
    entries
        .into_iter()
        .map(|e| e.map_err(|err| format!("{err:?}")))
        .collect()
}

pub(crate) fn dynamo_error(e: DynamoError) -> BackendError {
    match e {
        DynamoError::ConditionalCheckFailed => BackendError::ConditionFailed,
        other => BackendError::Refused {
            service: "dynamodb",
            reason: other.to_string(),
        },
    }
}

impl Store for FakeBackend {
    fn update(&self, write: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
        let call = self.call(move |f, caller, table| {
            f.dynamo
                .update_item(caller, table, &write)
                .map(|(_, after)| after)
                .map_err(dynamo_error)
        });
        async move { call.await? }
    }

    fn query(
        &self,
        query: TableQuery,
        start: Option<Key>,
    ) -> impl Future<Output = Result<Page, BackendError>> + Send {
        let call = self.call(move |f, caller, table| {
            f.dynamo
                .query(caller, table, &query, None, start.as_ref(), true)
                .map(|p| Page {
                    items: p.items.iter().map(|i| (**i).clone()).collect(),
                    last_key: p.last_key,
                })
                .map_err(dynamo_error)
        });
        async move { call.await? }
    }

    fn batch_get(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
        let call = self.call(move |f, caller, table| {
            f.dynamo
                .batch_get_item(caller, table, &keys, None, true)
                .map(|got| Batch {
                    items: got.items.iter().map(|i| (**i).clone()).collect(),
                    unprocessed: got.unprocessed,
                })
                .map_err(dynamo_error)
        });
        async move { call.await? }
    }
}

impl QueueList for FakeBackend {
    fn list(
        &self,
        prefix: String,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<QueuePage, BackendError>> + Send {
        let call = self.call(move |f, caller, _| {
            f.sqs
                .list_queues(caller, &prefix, Some(1000), next_token.as_deref())
                .map(|p| QueuePage {
                    urls: p.urls,
                    next_token: p.next_token,
                })
                .map_err(sqs_error)
        });
        async move { call.await? }
    }
}

impl Sqs for FakeBackend {
    fn receive(
        &self,
        request: Receive,
    ) -> impl Future<Output = Result<Vec<Message>, BackendError>> + Send {
        let me = self.clone();
        let send_by = request.send_by;
        let exchange = detached(async move {
            me.travel().await;
            let got = me.long_poll(&request).await;
            me.travel().await;
            got
        });
        async move {
            // As the SDK adapter does: never sent past its send-by time.
            if sqsbalancer_runtime::clock::now() > send_by {
                return Err(BackendError::NotSent {
                    service: "sqs",
                    reason: "past its send-by time".to_owned(),
                });
            }
            exchange.await?
        }
    }

    fn delete_batch(
        &self,
        queue: QueueId,
        receipts: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        let call = self.call(move |f, caller, _| {
            f.sqs
                .delete_batch(caller, queue.as_str(), &receipts)
                .map(entry_strings)
                .map_err(sqs_error)
        });
        async move { call.await? }
    }

    fn change_visibility_batch(
        &self,
        queue: QueueId,
        entries: Vec<(String, u32)>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        let call = self.call(move |f, caller, _| {
            let now = f.now();
            f.sqs
                .change_visibility_batch(now, caller, queue.as_str(), &entries)
                .map(entry_strings)
                .map_err(sqs_error)
        });
        async move { call.await? }
    }
}

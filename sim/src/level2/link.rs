//! One instance life's link to the fake AWS: the runtime's backend traits over the shared fakes,
//! with the faults of the run and the checker's view of every call.
//!
//! Why not [`FakeBackend`](crate::backend::FakeBackend): it reads the fakes' clock from a tokio
//! `Instant` of the calling runtime, and every turmoil host has a runtime (a clock) of its own,
//! recreated at every restart. Here every call reads one simulation clock, and the link sees
//! what the checker needs at the fake itself: when a receive is really in flight there, the
//! epoch a write replaced, which receipt a delete removed.
//!
//! Faults, per call, from the run's [`FaultHooks`](crate::fake::FaultHooks): throttling and
//! 5xx fail after a round trip; a timeout fails after [`CALL_TIMEOUT_MS`], applied or not; a
//! partition makes the call time out, or, for a partition drawn as a hang, wait until it heals
//! (a DynamoDB write then applies late; a receive fails, never having reached SQS).

use super::shared::{Lab, Shared, Slot, lock};
use crate::backend::{dynamo_error, entry_strings, message, sqs_error};
use crate::check::Who;
use crate::fake::{ReceiveRequest, Service, Verdict};
use crate::scenario::Mutation;
use crate::world::{BASE_LATENCY_MS, CALL_TIMEOUT_MS};
use sqsbalancer_core::table::{self, Item, Key, Record, TableQuery, TableWrite, Value};
use sqsbalancer_core::{Owner, QueueId};
use sqsbalancer_runtime::{BackendError, Message, Page, QueueList, QueuePage, Receive, Sqs, Store};
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// How often a long poll looks at its queue again.
const LONG_POLL_STEP: Duration = Duration::from_millis(200);
/// How often a hung call looks whether its partition healed.
const HANG_STEP: Duration = Duration::from_millis(250);
/// How often a poller that ignores stops (the `IgnoreStop` mutation) receives again.
const ZOMBIE_PAUSE: Duration = Duration::from_secs(1);

/// What happens to one call.
enum Fate {
    /// Served after `up` ms; the reply takes `down` ms, or is lost (the caller times out).
    Serve {
        up: u64,
        down: u64,
        lose_reply: bool,
    },
    /// Fails with `error` after `after` ms, never having been applied.
    Fail { after: u64, error: BackendError },
    /// Waits until the partition heals.
    Hang,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n.max(1))
}

fn service_name(s: Service) -> &'static str {
    match s {
        Service::Dynamo => "dynamodb",
        Service::Sqs => "sqs",
    }
}

/// One life's connection: calls billed to the instance's name, checked as that life's.
#[derive(Clone)]
pub(crate) struct Link {
    lab: Lab,
    who: Who,
    name: String,
}

impl Link {
    /// The link of life `who` of the slot named `name`.
    pub fn new(lab: Lab, who: Who, name: String) -> Link {
        Link { lab, who, name }
    }

    fn fate(&self, service: Service) -> Fate {
        let mut s = lock(&self.lab);
        let now = s.now();
        let verdict = s
            .hooks
            .decide(sqsbalancer_core::Millis(now), &self.name, service);
        let up = BASE_LATENCY_MS + s.hooks.latency();
        let down = BASE_LATENCY_MS + s.hooks.latency();
        if verdict != Verdict::Serve {
            s.faulted(self.who.0);
        }
        let svc = service_name(service);
        let unknown = |reason: &str| BackendError::Unknown {
            service: svc,
            reason: reason.to_owned(),
        };
        match verdict {
            Verdict::Serve => Fate::Serve {
                up,
                down,
                lose_reply: false,
            },
            Verdict::TimeoutApplied => Fate::Serve {
                up,
                down,
                lose_reply: true,
            },
            Verdict::Unreachable if s.hang.contains(&(self.name.clone(), service)) => Fate::Hang,
            Verdict::Unreachable | Verdict::TimeoutNotApplied => Fate::Fail {
                after: CALL_TIMEOUT_MS,
                error: unknown("timed out"),
            },
            Verdict::Throttled => Fate::Fail {
                after: up + down,
                error: BackendError::Throttled {
                    service: svc,
                    message: "Rate exceeded".to_owned(),
                },
            },
            Verdict::ServerError => Fate::Fail {
                after: up + down,
                error: unknown("HTTP 500 InternalServerError"),
            },
        }
    }

    /// Waits until this instance reaches `service` again.
    async fn hang_until_healed(&self, service: Service) {
        loop {
            {
                let mut s = lock(&self.lab);
                let now = sqsbalancer_core::Millis(s.now());
                if s.hooks.reachable(now, &self.name, service) {
                    return;
                }
            }
            sleep(HANG_STEP).await;
        }
    }

    /// One call of `service`: its fate, the trip there, `op` on the fakes, the trip back.
    async fn call<T>(
        &self,
        service: Service,
        op: impl FnOnce(&mut Shared, &Link) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let (up, down, lose_reply) = match self.fate(service) {
            Fate::Fail { after, error } => {
                sleep(ms(after)).await;
                return Err(error);
            }
            Fate::Hang => {
                self.hang_until_healed(service).await;
                (BASE_LATENCY_MS, BASE_LATENCY_MS, false)
            }
            Fate::Serve {
                up,
                down,
                lose_reply,
            } => (up, down, lose_reply),
        };
        sleep(ms(up)).await;
        let out = {
            let mut s = lock(&self.lab);
            s.now();
            op(&mut s, self)
        };
        self.reply(service, up, down, lose_reply).await?;
        out
    }

    /// The trip back: `down` ms, or a timeout when the reply is lost.
    async fn reply(
        &self,
        service: Service,
        up: u64,
        down: u64,
        lose_reply: bool,
    ) -> Result<(), BackendError> {
        if lose_reply {
            sleep(ms(CALL_TIMEOUT_MS.saturating_sub(up))).await;
            return Err(BackendError::Unknown {
                service: service_name(service),
                reason: "timed out after the request was served".to_owned(),
            });
        }
        sleep(ms(down)).await;
        Ok(())
    }

    /// A write applied at the fake: check the queue record's epoch, track owners and lives.
    fn written(&self, s: &mut Shared, write: &TableWrite, before: Option<&Item>, after: &Item) {
        let number = |item: &Item, name: &str| match item.get(name) {
            Some(Value::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        match table::decode_item(after) {
            Ok(Record::Queue(rec)) => {
                let sk = write.key.sk.as_str();
                let q = sk.strip_prefix(table::QUEUE_PREFIX).unwrap_or(sk);
                let before = before.and_then(|b| number(b, table::EPOCH));
                s.checker.epoch_written(q, before, rec.epoch);
                s.record_written(self.who, rec.queue, rec.owner, rec.epoch);
            }
            Ok(Record::Instance(rec)) if rec.id.as_str() == self.name => {
                let registered =
                    before.and_then(|b| number(b, table::INCARNATION)) != Some(rec.incarnation);
                if registered {
                    let owner = Owner {
                        id: rec.id,
                        incarnation: rec.incarnation,
                    };
                    s.emit(Some(self.who.0), "registered", || format!("{owner:?}"));
                    s.lives.insert(self.who, owner);
                }
            }
            _ => {}
        }
    }

    /// A receive on the fake, from its arrival to its last look at the queue.
    async fn receive_at_fake(&self, request: &Receive) -> Result<Vec<Message>, BackendError> {
        let req = ReceiveRequest {
            url: request.queue.as_str().to_owned(),
            max: request.max,
            visibility_secs: request.visibility_secs,
            wait_ms: request.wait.as_millis() as u64,
            attribute_names: request.attribute_names.clone(),
        };
        let deadline = Instant::now() + request.wait;
        let (mut flight, mut got) = {
            let mut s = lock(&self.lab);
            let now = s.now();
            let flight = InFlight::start(&mut s, self, &request.queue, now);
            let got = s
                .sqs
                .receive(sqsbalancer_core::Millis(now), &self.name, &req);
            (flight, got)
        };
        // The long poll: look again until something is visible or the wait is over.
        while matches!(&got, Ok(m) if m.is_empty()) && Instant::now() + LONG_POLL_STEP <= deadline {
            sleep(LONG_POLL_STEP).await;
            let mut s = lock(&self.lab);
            let now = sqsbalancer_core::Millis(s.now());
            got = s.sqs.receive_more(now, &req);
        }
        let mut s = lock(&self.lab);
        s.now();
        flight.end(&mut s);
        let got = got.map_err(sqs_error)?;
        for m in &got {
            s.receipts.insert(m.receipt.clone(), m.message_id.clone());
        }
        if !got.is_empty() {
            s.emit(Some(self.who.0), "received", || {
                let ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
                format!("{} {}", request.queue, ids.join(","))
            });
        }
        Ok(got
            .into_iter()
            .map(|r| message(&request.queue, r))
            .collect())
    }

    /// A receive as the runtime makes it: fate, trip, the receive at the fake, trip back.
    async fn receive_call(&self, request: Receive) -> Result<Vec<Message>, BackendError> {
        // As the SDK adapter does: never sent past its send-by time.
        if Instant::now() > request.send_by {
            return Err(BackendError::NotSent {
                service: "sqs",
                reason: "past its send-by time".to_owned(),
            });
        }
        let (up, down, lose_reply) = match self.fate(Service::Sqs) {
            Fate::Fail { after, error } => {
                sleep(ms(after)).await;
                return Err(error);
            }
            Fate::Hang => {
                self.hang_until_healed(Service::Sqs).await;
                return Err(BackendError::Unknown {
                    service: "sqs",
                    reason: "the connection stalled; the request never arrived".to_owned(),
                });
            }
            Fate::Serve {
                up,
                down,
                lose_reply,
            } => (up, down, lose_reply),
        };
        sleep(ms(up)).await;
        let got = self.receive_at_fake(&request).await;
        self.reply(Service::Sqs, up, down, lose_reply).await?;
        got
    }

    /// The `IgnoreStop` mutation: the first receive of a queue also starts a poller of it
    /// that never stops for as long as the process lives.
    fn haunt(&self, request: &Receive) {
        let first = {
            let mut s = lock(&self.lab);
            s.haunted.insert((self.who, request.queue.clone()))
        };
        if first {
            let link = self.clone();
            let request = request.clone();
            tokio::spawn(async move {
                loop {
                    // A poller that ignores its stop ignores its fence too.
                    let mut request = request.clone();
                    request.send_by = Instant::now() + Duration::from_secs(3600);
                    let _ = link.receive_call(request).await;
                    sleep(ZOMBIE_PAUSE).await;
                }
            });
        }
    }
}

/// A receive in flight at the fake, as the checker sees it; dropping it (the process died
/// mid-call) ends it there too.
struct InFlight {
    lab: Lab,
    who: Who,
    queue: QueueId,
    call: u64,
    open: bool,
}

impl InFlight {
    fn start(s: &mut Shared, link: &Link, queue: &QueueId, now: u64) -> InFlight {
        s.calls += 1;
        let call = s.calls;
        let who = link.who;
        s.checker.receive_start(queue, who, call, false);
        let Shared { stats, slots, .. } = &mut *s;
        stats.receive_started(now, queue, who, |i, t| others_up_since(slots, i, t));
        s.emit(Some(who.0), "receive", || queue.to_string());
        InFlight {
            lab: link.lab.clone(),
            who,
            queue: queue.clone(),
            call,
            open: true,
        }
    }

    fn end(&mut self, s: &mut Shared) {
        if std::mem::take(&mut self.open) {
            s.checker.receive_end(&self.queue, self.call);
            let now = s.last_now();
            s.stats.receive_ended(now, &self.queue, self.who);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.open {
            let lab = self.lab.clone();
            self.end(&mut lock(&lab));
        }
    }
}

/// Whether an instance other than slot `i` has been up and not stopping since `t`.
pub(crate) fn others_up_since(slots: &[Slot], i: usize, t: u64) -> bool {
    slots
        .iter()
        .enumerate()
        .any(|(j, s)| j != i && s.up_since.is_some_and(|since| since <= t))
}

impl Store for Link {
    fn update(&self, write: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
        let panics = {
            let mut s = lock(&self.lab);
            s.mutation == Some(Mutation::PanicInRuntime) && self.who.0 == 0 && s.now() > 60_000
        };
        assert!(
            !panics,
            "planted: a coordination call panics in the runtime"
        );
        self.call(Service::Dynamo, move |s, link| {
            let mut write = write;
            if let Some(faked) = super::plant::write(s, link.who, &link.name, &mut write) {
                return Ok(faked);
            }
            let (before, after) = s
                .dynamo
                .update_item(&link.name, crate::TABLE, &write)
                .map_err(dynamo_error)?;
            link.written(s, &write, before.as_ref(), &after);
            Ok(after)
        })
    }

    fn query(
        &self,
        query: TableQuery,
        start: Option<Key>,
    ) -> impl Future<Output = Result<Page, BackendError>> + Send {
        self.call(Service::Dynamo, move |s, link| {
            s.dynamo
                .query(&link.name, crate::TABLE, &query, None, start.as_ref(), true)
                .map(|p| Page {
                    items: p.items.iter().map(|i| (**i).clone()).collect(),
                    last_key: p.last_key,
                })
                .map_err(dynamo_error)
        })
    }
}

impl QueueList for Link {
    fn list(
        &self,
        prefix: String,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<QueuePage, BackendError>> + Send {
        self.call(Service::Sqs, move |s, link| {
            s.sqs
                .list_queues(&link.name, &prefix, Some(1000), next_token.as_deref())
                .map(|p| QueuePage {
                    urls: p.urls,
                    next_token: p.next_token,
                })
                .map_err(sqs_error)
        })
    }
}

impl Sqs for Link {
    fn receive(
        &self,
        request: Receive,
    ) -> impl Future<Output = Result<Vec<Message>, BackendError>> + Send {
        if lock(&self.lab).mutation == Some(Mutation::IgnoreStop) {
            self.haunt(&request);
        }
        self.receive_call(request)
    }

    fn delete_batch(
        &self,
        queue: QueueId,
        receipts: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        self.call(Service::Sqs, move |s, link| {
            let entries = s
                .sqs
                .delete_batch(&link.name, queue.as_str(), &receipts)
                .map_err(sqs_error)?;
            for (receipt, entry) in receipts.iter().zip(&entries) {
                if entry.is_ok() {
                    let id = s.receipts.get(receipt).cloned();
                    let id = id.unwrap_or_else(|| receipt.clone());
                    s.checker.deleted(&id, receipt);
                    s.slots[link.who.0].deleted += 1;
                    s.emit(Some(link.who.0), "deleted", || id.clone());
                }
            }
            Ok(entry_strings(entries))
        })
    }

    fn change_visibility_batch(
        &self,
        queue: QueueId,
        entries: Vec<(String, u32)>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        self.call(Service::Sqs, move |s, link| {
            let now = sqsbalancer_core::Millis(s.last_now());
            let out = s
                .sqs
                .change_visibility_batch(now, &link.name, queue.as_str(), &entries)
                .map_err(sqs_error)?;
            s.emit(Some(link.who.0), "visibility", || {
                let e: Vec<String> = entries
                    .iter()
                    .map(|(r, secs)| format!("{r}={secs}"))
                    .collect();
                format!("{queue} {}", e.join(","))
            });
            Ok(entry_strings(out))
        })
    }
}

//! One instance life's link to the fake AWS: the runtime's backend traits over the shared
//! fakes, with the faults of the run and the checker's view of every call.
//!
//! Why not [`FakeBackend`](crate::backend::FakeBackend): it reads the fakes' clock from a tokio
//! `Instant` of the calling runtime, and every turmoil host has a runtime (a clock) of its own,
//! recreated at every restart. Here every call reads one simulation clock, and the checker
//! sees what happens at the fake itself.
//!
//! A call has two sides. The caller's, here, in the host's tasks: its fate, how long it is
//! held before it is sent (a slow call), the check that a receive is sent by its send-by time,
//! the trip back and what the caller is told. The fake's, in the harness ([`super::server`]):
//! the request lands after its trip and is applied, whether or not its caller still waits.
//!
//! Faults, per call, from the run's [`FaultHooks`](crate::fake::FaultHooks): throttling and
//! 5xx fail after a round trip, never applied; a timeout fails at the SDK's attempt timeout,
//! applied or not; a call that hangs never answers (applied or not); a late call lands after
//! its caller's deadline; a slow call is held before it is sent and answered late; a partition
//! makes the call fail unsent, or, for a partition drawn as a hang, wait until it heals.
//! The runtime's own deadlines end the calls that never answer.

use super::landing;
use super::server::{LongPoll, Work};
use super::shared::{Lab, Shared, Transport, lock};
use crate::backend::{dynamo_error, entry_strings, message, sqs_error};
use crate::check::Who;
use crate::fake::{ReceiveRequest, SLOW_MS, Service, Verdict};
use crate::scenario::Mutation;
use crate::world::BASE_LATENCY_MS;
use sqsbalancer_core::table::{self, Item, Key, Record, TableQuery, TableWrite, Value};
use sqsbalancer_core::{Owner, QueueId};
use sqsbalancer_runtime::{
    BackendError, Batch, Message, Page, QueueList, QueuePage, Receive, Sqs, Store, Timeouts,
};
use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::sleep;

/// How often a hung call looks whether its partition healed.
const HANG_STEP: Duration = Duration::from_millis(250);
/// How often a poller that ignores stops (the `IgnoreStop` mutation) receives again.
const ZOMBIE_PAUSE: Duration = Duration::from_secs(1);

/// What becomes of one call.
enum Fate {
    /// It lands after `up` ms; its answer takes `down` ms back, or never comes (`lost`).
    Lands { up: u64, down: u64, lost: bool },
    /// It lands `after` ms from now, its caller long gone (a late call).
    LandsLate { after: u64 },
    /// It never lands; its caller learns `error` after `after` ms.
    Fails { after: u64, error: BackendError },
    /// It never lands and never answers.
    Vanishes,
    /// It waits until the partition heals, then lands.
    Stalls,
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
    timeouts: Timeouts,
}

impl Link {
    /// The link of life `who` of the slot named `name`.
    pub fn new(lab: Lab, who: Who, name: String) -> Link {
        let timeouts = Timeouts::of(&crate::config());
        Link {
            lab,
            who,
            name,
            timeouts,
        }
    }

    /// Draws the fate of one call of `service` now, and how long it is held before it is sent.
    /// Behind the HTTP server (level 3) the link is the fake AWS itself: its faults are the
    /// server's, so every call lands at once.
    fn fate(&self, service: Service) -> (Fate, u64) {
        let mut s = lock(&self.lab);
        if s.transport == Transport::Http {
            let prompt = Fate::Lands {
                up: 0,
                down: 0,
                lost: false,
            };
            return (prompt, 0);
        }
        let now = s.now();
        let verdict = s
            .hooks
            .decide(sqsbalancer_core::Millis(now), &self.name, service);
        let up = BASE_LATENCY_MS + s.hooks.latency();
        let down = BASE_LATENCY_MS + s.hooks.latency();
        let (held, extra) = s.hooks.slowness();
        if verdict != Verdict::Serve || held + extra > 0 {
            s.faulted(self.who.0);
        }
        let svc = service_name(service);
        let attempt = self.timeouts.attempt.as_millis() as u64;
        let unknown = |reason: &str| BackendError::Unknown {
            service: svc,
            reason: reason.to_owned(),
        };
        let fate = match verdict {
            Verdict::Serve => Fate::Lands {
                up,
                down: down + extra,
                lost: false,
            },
            Verdict::TimeoutApplied | Verdict::Hang(true) => Fate::Lands {
                up,
                down,
                lost: true,
            },
            Verdict::Unreachable if s.hang.contains(&(self.name.clone(), service)) => Fate::Stalls,
            Verdict::Unreachable | Verdict::TimeoutNotApplied => Fate::Fails {
                after: attempt,
                error: unknown("timed out"),
            },
            Verdict::Hang(false) => Fate::Vanishes,
            Verdict::Late => Fate::LandsLate {
                after: self.timeouts.effect.as_millis() as u64 + 1 + s.hooks.draw(SLOW_MS),
            },
            Verdict::Throttled => Fate::Fails {
                after: up + down,
                error: BackendError::Throttled {
                    service: svc,
                    message: "Rate exceeded".to_owned(),
                },
            },
            Verdict::ServerError => Fate::Fails {
                after: up + down,
                error: unknown("HTTP 500 InternalServerError"),
            },
        };
        (fate, held)
    }

    /// Waits until this instance reaches `service` again.
    async fn heal(&self, service: Service) {
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

    /// One call of `service`: its fate, the time it is held, then `work` at the fake when it
    /// lands, and its answer back.
    async fn call<T: Send + 'static>(
        &self,
        service: Service,
        work: impl FnOnce(&mut Shared, &Link) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (fate, held) = self.fate(service);
        sleep(ms(held)).await;
        let (tx, rx) = oneshot::channel();
        let link = self.clone();
        let land = move |s: &mut Shared| {
            s.now();
            let _ = tx.send(work(s, &link));
        };
        let (down, lost) = match self.lands(service, fate, Box::new(land)).await {
            Ok(back) => back,
            Err(e) => return Err(e),
        };
        let answer = rx.await;
        if lost {
            std::future::pending::<()>().await;
        }
        sleep(ms(down)).await;
        answer.unwrap_or_else(|_| {
            Err(BackendError::Unknown {
                service: service_name(service),
                reason: "the fake dropped the request".to_owned(),
            })
        })
    }

    /// Sends a request whose fate is `fate` to land as `work`; the answer's way back (ms, and
    /// whether it is lost) once it is sent, or the error the caller is told instead.
    async fn lands(
        &self,
        service: Service,
        fate: Fate,
        work: Work<Shared>,
    ) -> Result<(u64, bool), BackendError> {
        let (up, down, lost) = match fate {
            Fate::Fails { after, error } => {
                sleep(ms(after)).await;
                return Err(error);
            }
            Fate::Vanishes => std::future::pending().await,
            Fate::LandsLate { after } => {
                self.send(after, work);
                return std::future::pending().await;
            }
            Fate::Stalls => {
                self.heal(service).await;
                (BASE_LATENCY_MS, BASE_LATENCY_MS, false)
            }
            Fate::Lands { up, down, lost } => (up, down, lost),
        };
        self.send(up, work);
        Ok((down, lost))
    }

    /// Hands `work` to the fake, to land `after` ms from now.
    fn send(&self, after: u64, work: Work<Shared>) {
        let mut s = lock(&self.lab);
        let at = s.now() + after.max(1);
        s.server.send(at, work);
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
                let rec = std::sync::Arc::unwrap_or_clone(rec);
                s.record_written(self.who, rec.queue, rec.owner, rec.epoch);
            }
            Ok(Record::Instance(rec)) if rec.id.as_str() == self.name => {
                s.published.insert(rec.id.clone(), rec.loads.clone());
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

    /// A receive as the runtime makes it: never sent past its send-by time, then a long poll
    /// at the fake from the moment it lands, and its answer back.
    async fn receive_call(&self, request: Receive) -> Result<Vec<Message>, BackendError> {
        let (fate, held) = self.fate(Service::Sqs);
        sleep(ms(held)).await;
        // A stalled connection holds the request before it is sent, too; once sent, its trip
        // is within the request margin (a request that arrives late is one held before it was
        // sent, which the send-by check covers).
        let prompt = Fate::Lands {
            up: BASE_LATENCY_MS,
            down: BASE_LATENCY_MS,
            lost: false,
        };
        let fate = match fate {
            Fate::Stalls => {
                self.heal(Service::Sqs).await;
                prompt
            }
            Fate::LandsLate { .. } => prompt,
            other => other,
        };
        // As the SDK adapter does, after signing: never sent past its send-by time.
        let ignore = lock(&self.lab).mutation == Some(Mutation::IgnoreSendBy);
        if sqsbalancer_runtime::clock::now() > request.send_by && !ignore {
            return Err(BackendError::NotSent {
                service: "sqs",
                reason: "past its send-by time".to_owned(),
            });
        }
        let req = ReceiveRequest {
            url: request.queue.as_str().to_owned(),
            max: request.max,
            visibility_secs: request.visibility_secs,
            wait_ms: request.wait.as_millis() as u64,
            attribute_names: request.attribute_names.clone(),
        };
        // The fence this life had when it sent the request, as its acknowledged heartbeats
        // set it.
        let fence = lock(&self.lab).fence_of(self.who);
        let (tx, rx) = oneshot::channel();
        let (who, queue) = (self.who, request.queue.clone());
        let land = move |s: &mut Shared| {
            let now = s.now();
            let poll = LongPoll {
                who,
                call: 0,
                until: now + req.wait_ms,
                req,
                queue,
                answer: tx,
            };
            landing::open(s, poll, fence, now);
        };
        let (down, lost) = self.lands(Service::Sqs, fate, Box::new(land)).await?;
        let got = rx.await;
        if lost {
            std::future::pending::<()>().await;
        }
        sleep(ms(down)).await;
        let got = got
            .map_err(|_| BackendError::Unknown {
                service: "sqs",
                reason: "the fake dropped the request".to_owned(),
            })?
            .map_err(sqs_error)?;
        Ok(got
            .into_iter()
            .map(|r| message(&request.queue, r))
            .collect())
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
                    request.send_by = sqsbalancer_runtime::clock::now() + Duration::from_secs(3600);
                    let _ = link.receive_call(request).await;
                    sleep(ZOMBIE_PAUSE).await;
                }
            });
        }
    }
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
            let now = sqsbalancer_core::Millis(s.last_now());
            s.dynamo.set_now(now);
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
            // With the pages fault, a page holds a few items, and the table changes between.
            let items = if s.page_items > 0 {
                s.dynamo.count(crate::TABLE, &query)
            } else {
                0
            };
            let limit = s.hooks.page_limit(s.page_items, items);
            let now = sqsbalancer_core::Millis(s.last_now());
            s.dynamo.set_now(now);
            let page = s
                .dynamo
                .query(
                    &link.name,
                    crate::TABLE,
                    &query,
                    limit,
                    start.as_ref(),
                    true,
                )
                .map_err(dynamo_error)?;
            if limit.is_some() && page.last_key.is_some() {
                // A read of many round trips: a fault in the way of a graceful stop.
                s.faulted(link.who.0);
            }
            Ok(Page {
                items: page.items.iter().map(|i| (**i).clone()).collect(),
                last_key: page.last_key,
            })
        })
    }

    fn batch_get(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
        self.call(Service::Dynamo, move |s, link| {
            // With the pages fault, a partition under load leaves some keys unprocessed.
            let limit = s.hooks.page_limit(s.page_items, keys.len());
            let now = sqsbalancer_core::Millis(s.last_now());
            s.dynamo.set_now(now);
            let got = s
                .dynamo
                .batch_get_item(&link.name, crate::TABLE, &keys, limit, true)
                .map_err(dynamo_error)?;
            Ok(Batch {
                items: got.items.iter().map(|i| (**i).clone()).collect(),
                unprocessed: got.unprocessed,
            })
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

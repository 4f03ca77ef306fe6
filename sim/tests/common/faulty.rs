//! A backend over the fakes with the faults of a real network and SDK, switched on by the test:
//! DynamoDB out of reach, calls that never answer, a long poll answered 500 and retried as the
//! SDK's standard retry does, answers slower than every margin, failing visibility changes.
//! Every receive is logged with its window as the caller saw it.

use sqsbalancer_core::QueueId;
use sqsbalancer_core::table::{Item, Key, PK, SK, TableQuery, TableWrite, Update, Value};
use sqsbalancer_runtime::{
    BackendError, Batch, Message, Page, QueueList, QueuePage, Receive, Sqs, Store,
};
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The faults in force; counts are of the next calls of that kind.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every DynamoDB call fails after 5 ms, never reaching the table.
    pub dynamo_cut: bool,
    /// Queries that never answer.
    pub hang_queries: u32,
    /// This instance's heartbeat writes that never answer.
    pub hang_heartbeats: u32,
    /// Receives that never answer (their long poll still runs at the fake).
    pub hang_receives: u32,
    /// Long polls answered 500 a second before their end, then sent again with the same
    /// request after 0.5 s, as the SDK's standard retry did.
    pub retry_receives: u32,
    /// Every receive's answer is held until a second after the instance's fence (as this
    /// backend reckons it from the heartbeats it saw acknowledged), if it would come earlier.
    pub answers_after_fence: bool,
    /// ChangeMessageVisibilityBatch calls that fail.
    pub fail_visibility: u32,
    /// Queries answer in pages of this many items, each this late (a big table, a slow link).
    pub slow_pages: Option<(usize, Duration)>,
    /// Preparations of the table that fail (a table still being created).
    pub unprepared: u32,
    /// Preparations asked for so far.
    pub prepares: u32,
}

/// One receive as its caller saw it: when it started and ended (ms), and what it returned.
#[derive(Clone, Debug)]
pub struct Window {
    pub who: String,
    pub queue: QueueId,
    pub start: u64,
    pub end: u64,
    pub messages: usize,
    pub what: &'static str,
}

/// The receives of every instance of one test.
pub type Windows = Arc<Mutex<Vec<Window>>>;

/// An instance's backend with switchable faults.
pub struct Faulty {
    inner: Arc<FakeBackend>,
    fakes: Arc<Mutex<Fakes>>,
    name: String,
    /// The faults in force.
    pub faults: Arc<Mutex<Faults>>,
    windows: Windows,
    /// When the latest acknowledged heartbeat (or registration) was sent, ms.
    acked: Arc<Mutex<Option<u64>>>,
    /// Whole-table reads of more than one page whose last page was answered.
    pub table_reads: Arc<AtomicU32>,
}

/// The fence of a life whose latest acknowledged heartbeat was sent at `acked` ms.
fn fence_of(acked: Option<u64>) -> Option<u64> {
    let c = super::cfg("x");
    let lease = c.heartbeat_timeout - c.effective_fence_margin();
    acked.map(|a| a + lease.as_millis() as u64)
}

fn take(n: &mut u32) -> bool {
    let t = *n > 0;
    *n = n.saturating_sub(1);
    t
}

impl Faulty {
    /// Instance `name`'s backend on `fakes`, logging its receives into `windows`.
    pub fn new(fakes: &Arc<Mutex<Fakes>>, name: &str, windows: &Windows) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner: super::backend(fakes, name),
            fakes: Arc::clone(fakes),
            name: name.to_owned(),
            faults: Arc::new(Mutex::new(Faults::default())),
            windows: Arc::clone(windows),
            acked: Arc::new(Mutex::new(None)),
            table_reads: Arc::default(),
        })
    }

    /// The instance's self-fence as its acknowledged heartbeats set it, ms.
    pub fn fence(&self) -> Option<u64> {
        fence_of(*self.acked.lock().expect("not poisoned"))
    }

    /// Changes the faults in force.
    pub fn set(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.faults.lock().expect("not poisoned"));
    }

    fn with<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        f(&mut self.faults.lock().expect("not poisoned"))
    }

    fn cut() -> BackendError {
        BackendError::Unknown {
            service: "dynamodb",
            reason: "unreachable".into(),
        }
    }
}

impl Store for Faulty {
    fn prepare(&self) -> impl Future<Output = Result<(), BackendError>> + Send {
        let fail = self.with(|f| {
            f.prepares += 1;
            take(&mut f.unprepared)
        });
        std::future::ready(if fail {
            Err(BackendError::Unknown {
                service: "dynamodb",
                reason: "the table is not active yet".into(),
            })
        } else {
            Ok(())
        })
    }

    fn update(&self, w: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
        // A heartbeat (or a registration, which starts the counter at 0) of this instance.
        let beat = w.key.sk == format!("instance#{}", self.name)
            && w.updates
                .iter()
                .any(|u| matches!(u, Update::Set("heartbeat", _)));
        let (cut, hang) = self.with(|f| (f.dynamo_cut, beat && take(&mut f.hang_heartbeats)));
        let inner = Arc::clone(&self.inner);
        let (fakes, acked) = (Arc::clone(&self.fakes), Arc::clone(&self.acked));
        async move {
            let sent = fakes.lock().expect("not poisoned").now().0;
            if hang {
                std::future::pending::<()>().await;
            }
            if cut {
                tokio::time::sleep(Duration::from_millis(5)).await;
                return Err(Faulty::cut());
            }
            let out = inner.update(w).await;
            if beat && out.is_ok() {
                let mut a = acked.lock().expect("not poisoned");
                *a = Some(a.map_or(sent, |x| x.max(sent)));
            }
            out
        }
    }

    fn query(
        &self,
        q: TableQuery,
        s: Option<Key>,
    ) -> impl Future<Output = Result<Page, BackendError>> + Send {
        let (cut, hang, slow) =
            self.with(|f| (f.dynamo_cut, take(&mut f.hang_queries), f.slow_pages));
        let (inner, table_reads) = (Arc::clone(&self.inner), Arc::clone(&self.table_reads));
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            if cut {
                tokio::time::sleep(Duration::from_millis(5)).await;
                return Err(Faulty::cut());
            }
            let whole_table = q.sk_prefix.is_none() && s.is_some();
            let mut page = inner.query(q, s).await?;
            if let Some((items, late)) = slow {
                tokio::time::sleep(late).await;
                page = cut_page(page, items);
            }
            if whole_table && page.last_key.is_none() {
                table_reads.fetch_add(1, Ordering::SeqCst);
            }
            Ok(page)
        }
    }

    fn batch_get(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
        let cut = self.with(|f| f.dynamo_cut);
        let inner = Arc::clone(&self.inner);
        async move {
            if cut {
                tokio::time::sleep(Duration::from_millis(5)).await;
                return Err(Faulty::cut());
            }
            inner.batch_get(keys).await
        }
    }
}

impl QueueList for Faulty {
    fn list(
        &self,
        p: String,
        t: Option<String>,
    ) -> impl Future<Output = Result<QueuePage, BackendError>> + Send {
        self.inner.list(p, t)
    }
}

impl Sqs for Faulty {
    fn receive(
        &self,
        request: Receive,
    ) -> impl Future<Output = Result<Vec<Message>, BackendError>> + Send {
        let long = request.wait >= Duration::from_secs(2);
        let (retry, hang, hold) = self.with(|f| {
            (
                long && take(&mut f.retry_receives),
                take(&mut f.hang_receives),
                f.answers_after_fence,
            )
        });
        let acked = Arc::clone(&self.acked);
        let inner = Arc::clone(&self.inner);
        let fakes = Arc::clone(&self.fakes);
        let windows = Arc::clone(&self.windows);
        let who = self.name.clone();
        let now = move || fakes.lock().expect("not poisoned").now().0;
        async move {
            let log = |start, what, got: &Result<Vec<Message>, BackendError>| {
                windows.lock().expect("not poisoned").push(Window {
                    who: who.clone(),
                    queue: request.queue.clone(),
                    start,
                    end: now(),
                    messages: got.as_ref().map_or(0, Vec::len),
                    what,
                });
            };
            let start = now();
            if retry {
                // Attempt 1: held by SQS, then HTTP 500 a second before the wait is over.
                tokio::time::sleep(request.wait - Duration::from_secs(1)).await;
                log(start, "attempt 1 (500)", &Ok(Vec::new()));
                // The standard retry's backoff, then attempt 2: the same request.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let start = now();
                let got = inner.receive(request.clone()).await;
                log(start, "attempt 2 (retry)", &got);
                return got;
            }
            let got = inner.receive(request.clone()).await;
            log(start, "receive", &got);
            if hang {
                std::future::pending::<()>().await;
            }
            let fence = fence_of(*acked.lock().expect("not poisoned"));
            if let Some(f) = fence.filter(|_| hold) {
                let left = (f + 1_000).saturating_sub(now());
                tokio::time::sleep(Duration::from_millis(left)).await;
            }
            got
        }
    }

    fn delete_batch(
        &self,
        q: QueueId,
        r: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        self.inner.delete_batch(q, r)
    }

    fn change_visibility_batch(
        &self,
        q: QueueId,
        e: Vec<(String, u32)>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        let fail = self.with(|f| take(&mut f.fail_visibility));
        let call = self.inner.change_visibility_batch(q, e);
        async move {
            if fail {
                tokio::time::sleep(Duration::from_millis(5)).await;
                return Err(BackendError::Throttled {
                    service: "sqs",
                    message: "Rate exceeded".into(),
                });
            }
            call.await
        }
    }
}

/// The first `items` of `page`, continued from its last item as DynamoDB does.
fn cut_page(mut page: Page, items: usize) -> Page {
    if page.items.len() > items {
        page.items.truncate(items);
        let last = page.items.last().expect("at least one item");
        let text = |k: &str| match last.get(k) {
            Some(Value::S(v)) => v.clone(),
            other => panic!("{k}: {other:?}"),
        };
        page.last_key = Some(Key {
            pk: text(PK),
            sk: text(SK),
        });
    }
    page
}

//! Executing the core's coordination effects against the backends: each function turns one
//! effect into calls and the result into the [`Outcome`] the core expects.

use crate::backend::{Batch, Page, QueueList, Store};
use crate::error::BackendError;
use futures_util::{StreamExt, TryStreamExt, stream};
use sqsbalancer_core::table::{self, Item, Key, Layout, TableQuery};
use sqsbalancer_core::{Outcome, QueueId, Read, Reply, Write};
use std::time::Duration;

/// Performs `write` in `layout`; `wall_secs` (epoch seconds) only sets record TTLs.
pub async fn write<S: Store>(store: &S, layout: &Layout, write: &Write, wall_secs: u64) -> Outcome {
    let request = table::encode_write(layout, write, wall_secs);
    match store.update(request).await {
        Ok(after) => match table::write_reply(write, &after) {
            Ok(reply) => Outcome::Applied(reply),
            Err(e) => {
                tracing::warn!(error = %e, "written item could not be read back");
                Outcome::Unknown
            }
        },
        Err(BackendError::ConditionFailed) => Outcome::Rejected,
        Err(e) => {
            tracing::debug!(error = %e, "coordination write failed");
            Outcome::Unknown
        }
    }
}

/// How many queries of one read run at once: a read of a spread layout takes about as long as
/// its slowest query rather than the sum of them, without a burst of hundreds of calls.
const QUERIES_AT_ONCE: usize = 16;

/// Performs `read` in `layout`: the records it asks for by key, then every page of every
/// query, phase by phase (the instance records last); a failed call fails the read.
pub async fn read<S: Store>(store: &S, layout: &Layout, read: Read) -> Outcome {
    let items = match read_items(store, layout, &read).await {
        Ok(items) => items,
        Err(e) => {
            tracing::debug!(error = %e, "coordination read failed");
            return Outcome::Unknown;
        }
    };
    let decoded = table::decode_items(&items);
    for skipped in &decoded.skipped {
        tracing::warn!(error = %skipped, "skipped a malformed item in the coordination table");
    }
    Outcome::Applied(table::read_reply(&read, decoded))
}

/// Every item `read` finds, in the order read.
async fn read_items<S: Store>(
    store: &S,
    layout: &Layout,
    read: &Read,
) -> Result<Vec<Item>, BackendError> {
    let keys = table::record_keys(layout, read);
    let chunks: Vec<Vec<Key>> = keys
        .chunks(table::MAX_BATCH_GET)
        .map(<[Key]>::to_vec)
        .collect();
    let records: Vec<Vec<Item>> = stream::iter(chunks)
        .map(|keys| get_all(store, keys))
        .buffered(QUERIES_AT_ONCE)
        .try_collect()
        .await?;
    let mut items: Vec<Item> = records.into_iter().flatten().collect();
    // Phase by phase: a table read's instance queries go out only once every queue query has
    // answered (docs/design.md §4.3).
    for phase in table::encode_read(layout, read) {
        let found: Vec<Vec<Item>> = stream::iter(phase)
            .map(|query| query_all(store, query))
            .buffered(QUERIES_AT_ONCE)
            .try_collect()
            .await?;
        items.extend(found.into_iter().flatten());
    }
    Ok(items)
}

/// How many times the keys of one BatchGetItem are asked for while DynamoDB leaves some
/// unprocessed, before the read fails.
const BATCH_ATTEMPTS: u32 = 4;

/// The wait before asking again for unprocessed keys, doubled at each further attempt
/// (DynamoDB leaves keys unprocessed when the partition is throttled, and asks for backoff).
const UNPROCESSED_BACKOFF: Duration = Duration::from_millis(50);

/// Every item of `keys` (1..=100), asking again for those DynamoDB left unprocessed.
pub async fn get_all<S: Store>(store: &S, keys: Vec<Key>) -> Result<Vec<Item>, BackendError> {
    let mut items = Vec::new();
    let mut keys = keys;
    for attempt in 1..=BATCH_ATTEMPTS {
        let Batch {
            items: got,
            unprocessed,
        } = store.batch_get(keys).await?;
        items.extend(got);
        if unprocessed.is_empty() {
            return Ok(items);
        }
        keys = unprocessed;
        if attempt < BATCH_ATTEMPTS {
            tokio::time::sleep(UNPROCESSED_BACKOFF * 2u32.pow(attempt - 1)).await;
        }
    }
    Err(BackendError::Throttled {
        service: "dynamodb",
        message: format!(
            "BatchGetItem left {} keys unprocessed after {BATCH_ATTEMPTS} attempts",
            keys.len()
        ),
    })
}

/// How many times one page of a read is asked for when it fails with a passing trouble: a
/// read of a spread layout is many queries, and asking again for the one that failed costs
/// less than the whole read the node would make again.
const PAGE_ATTEMPTS: usize = 2;

/// Every item `query` finds, following each page to the last.
pub async fn query_all<S: Store>(store: &S, query: TableQuery) -> Result<Vec<Item>, BackendError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = query_page(store, &query, start.take()).await?;
        items.extend(page.items);
        match page.last_key {
            Some(k) => start = Some(k),
            None => return Ok(items),
        }
    }
}

async fn query_page<S: Store>(
    store: &S,
    query: &TableQuery,
    start: Option<Key>,
) -> Result<Page, BackendError> {
    let mut attempt = 1;
    loop {
        match store.query(query.clone(), start.clone()).await {
            Err(e) if e.is_retryable() && attempt < PAGE_ATTEMPTS => attempt += 1,
            done => return done,
        }
    }
}

/// Lists every queue whose name starts with `prefix`, following NextToken to the end.
pub async fn list<L: QueueList>(queues: &L, prefix: &str) -> Outcome {
    let mut urls = Vec::new();
    let mut token = None;
    loop {
        match queues.list(prefix.to_owned(), token.take()).await {
            Ok(page) => {
                urls.extend(page.urls);
                match page.next_token {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "ListQueues failed");
                return Outcome::Unknown;
            }
        }
    }
    let mut found = Vec::with_capacity(urls.len());
    for u in urls {
        match QueueId::new(&u) {
            Ok(q) => found.push(q),
            Err(e) => tracing::warn!(url = %u, error = %e, "skipped a queue URL"),
        }
    }
    Outcome::Applied(Reply::Queues(found.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Page, QueuePage};
    use sqsbalancer_core::InstanceId;
    use sqsbalancer_core::table::{Key, TableWrite, Value};
    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::Mutex;

    /// Answers every call with the same canned result.
    struct Canned {
        update: Result<Item, BackendError>,
        pages: Vec<Result<Page, BackendError>>,
        lists: Vec<QueuePage>,
        /// Errors the next queries answer, one each, before their canned page.
        failing: Mutex<VecDeque<BackendError>>,
        /// What the next BatchGetItem calls answer, one each.
        batches: Mutex<VecDeque<Batch>>,
        /// The keys each BatchGetItem call asked for.
        asked: Mutex<Vec<Vec<Key>>>,
    }

    impl Store for Canned {
        fn update(&self, _: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
            std::future::ready(self.update.clone())
        }

        fn query(
            &self,
            _: TableQuery,
            start: Option<Key>,
        ) -> impl Future<Output = Result<Page, BackendError>> + Send {
            let i = start.map_or(0, |k| k.sk.parse::<usize>().expect("a page index"));
            let failed = self.failing.lock().unwrap().pop_front();
            std::future::ready(failed.map_or_else(|| self.pages[i].clone(), Err))
        }

        fn batch_get(
            &self,
            keys: Vec<Key>,
        ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
            self.asked.lock().unwrap().push(keys);
            let next = self.batches.lock().unwrap().pop_front();
            std::future::ready(Ok(next.expect("a canned batch")))
        }
    }

    impl QueueList for Canned {
        fn list(
            &self,
            _: String,
            token: Option<String>,
        ) -> impl Future<Output = Result<QueuePage, BackendError>> + Send {
            let i = token.map_or(0, |t| t.parse::<usize>().expect("a page index"));
            std::future::ready(Ok(self.lists[i].clone()))
        }
    }

    fn canned(update: Result<Item, BackendError>) -> Canned {
        Canned {
            update,
            pages: vec![Ok(Page::default())],
            lists: Vec::new(),
            failing: Mutex::default(),
            batches: Mutex::default(),
            asked: Mutex::default(),
        }
    }

    fn register() -> Write {
        Write::Register {
            id: InstanceId::new("a").unwrap(),
            capacity: 1,
            first: 1,
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn write_results_map_onto_the_cores_outcomes() {
        let item: Item = [("incarnation".to_owned(), Value::num(4))]
            .into_iter()
            .collect();
        let applied = block_on(write(
            &canned(Ok(item)),
            &Layout::single("app"),
            &register(),
            0,
        ));
        assert_eq!(
            applied,
            Outcome::Applied(Reply::Registered { incarnation: 4 })
        );
        let rejected = block_on(write(
            &canned(Err(BackendError::ConditionFailed)),
            &Layout::single("app"),
            &register(),
            0,
        ));
        assert_eq!(rejected, Outcome::Rejected);
        let lost = BackendError::Unknown {
            service: "dynamodb",
            reason: "timed out".into(),
        };
        assert_eq!(
            block_on(write(
                &canned(Err(lost)),
                &Layout::single("app"),
                &register(),
                0
            )),
            Outcome::Unknown
        );
        // Applied, but the item that came back has no incarnation: not knowable, so unknown.
        assert_eq!(
            block_on(write(
                &canned(Ok(Item::new())),
                &Layout::single("app"),
                &register(),
                0
            )),
            Outcome::Unknown
        );
    }

    #[test]
    fn reads_follow_every_page_and_a_failed_page_fails_the_read() {
        let key = |i: usize| Key {
            pk: "p".into(),
            sk: i.to_string(),
        };
        let mut store = canned(Ok(Item::new()));
        store.pages = vec![
            Ok(Page {
                items: Vec::new(),
                last_key: Some(key(1)),
            }),
            Ok(Page::default()),
        ];
        assert_eq!(
            block_on(read(&store, &Layout::single("app"), Read::Members)),
            Outcome::Applied(Reply::Members {
                instances: Vec::new(),
                unreadable: Default::default()
            })
        );
        store.pages[1] = Err(BackendError::Throttled {
            service: "dynamodb",
            message: "slow down".into(),
        });
        assert_eq!(
            block_on(read(&store, &Layout::single("app"), Read::Members)),
            Outcome::Unknown
        );
    }

    #[test]
    fn a_page_that_failed_with_a_passing_trouble_is_asked_for_once_more() {
        let throttled = || BackendError::Throttled {
            service: "dynamodb",
            message: "slow down".into(),
        };
        let refused = BackendError::Refused {
            service: "dynamodb",
            reason: "no".into(),
        };
        let store = canned(Ok(Item::new()));
        let members = || block_on(read(&store, &Layout::single("app"), Read::Members));
        *store.failing.lock().unwrap() = [throttled()].into();
        assert!(matches!(members(), Outcome::Applied(_)));
        *store.failing.lock().unwrap() = [throttled(), throttled()].into();
        assert_eq!(members(), Outcome::Unknown);
        *store.failing.lock().unwrap() = [refused].into();
        assert_eq!(members(), Outcome::Unknown);
        assert!(store.failing.lock().unwrap().is_empty());
    }

    /// Logs when each query is sent and when it answers; every query yields before it
    /// answers, so queries that run at once are all sent before any answers.
    #[derive(Default)]
    struct Logged {
        log: std::sync::Arc<Mutex<Vec<(bool, String)>>>,
    }

    impl Store for Logged {
        fn update(&self, _: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
            std::future::ready(Ok(Item::new()))
        }

        fn query(
            &self,
            query: TableQuery,
            _: Option<Key>,
        ) -> impl Future<Output = Result<Page, BackendError>> + Send {
            let log = std::sync::Arc::clone(&self.log);
            async move {
                log.lock().unwrap().push((false, query.pk.clone()));
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                log.lock().unwrap().push((true, query.pk));
                Ok(Page::default())
            }
        }

        fn batch_get(
            &self,
            _: Vec<Key>,
        ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
            std::future::ready(Ok(Batch {
                items: Vec::new(),
                unprocessed: Vec::new(),
            }))
        }
    }

    #[test]
    fn a_spread_table_read_sends_its_instance_queries_after_every_queue_query_answered() {
        let store = Logged::default();
        let layout = Layout::new("app", 3).with_instance_keys(2);
        let read = block_on(read(&store, &layout, Read::Table));
        assert!(
            matches!(read, Outcome::Applied(Reply::Table { .. })),
            "{read:?}"
        );
        let log = store.log.lock().unwrap().clone();
        let instance = |pk: &str| pk.starts_with("app#app#i");
        let first_instance_sent = log
            .iter()
            .position(|(answered, pk)| !answered && instance(pk))
            .expect("instance queries sent");
        let last_queue_answered = log
            .iter()
            .rposition(|(answered, pk)| *answered && !instance(pk))
            .expect("queue queries answered");
        assert!(
            last_queue_answered < first_instance_sent,
            "an instance query went out before the queue queries answered: {log:?}"
        );
        let sent_at_once = log.iter().take_while(|(answered, _)| !answered).count();
        assert_eq!(sent_at_once, 3, "the queue queries run at once: {log:?}");
    }

    #[test]
    fn unprocessed_keys_are_asked_again_until_none_is_left_or_the_attempts_run_out() {
        let key = |sk: &str| Key {
            pk: "p".into(),
            sk: sk.into(),
        };
        let item = |sk: &str| Item::from([("sk".to_owned(), Value::S(sk.into()))]);
        let paused = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let store = canned(Ok(Item::new()));
        *store.batches.lock().unwrap() = VecDeque::from([
            Batch {
                items: vec![item("a")],
                unprocessed: vec![key("b"), key("c")],
            },
            Batch {
                items: vec![item("c")],
                unprocessed: Vec::new(),
            },
        ]);
        let got = paused().block_on(get_all(&store, vec![key("a"), key("b"), key("c")]));
        assert_eq!(got, Ok(vec![item("a"), item("c")]), "b has no item");
        let asked = store.asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            [vec![key("a"), key("b"), key("c")], vec![key("b"), key("c")]]
        );

        let store = canned(Ok(Item::new()));
        let throttled = Batch {
            items: Vec::new(),
            unprocessed: vec![key("a")],
        };
        *store.batches.lock().unwrap() = vec![throttled; 5].into();
        let got = paused().block_on(get_all(&store, vec![key("a")]));
        assert!(
            matches!(got, Err(BackendError::Throttled { .. })),
            "{got:?}"
        );
        assert_eq!(store.asked.lock().unwrap().len(), BATCH_ATTEMPTS as usize);
    }

    #[test]
    fn listing_follows_next_token_and_skips_invalid_urls() {
        let mut store = canned(Ok(Item::new()));
        store.lists = vec![
            QueuePage {
                urls: vec!["https://q/1".into(), "bad url".into()],
                next_token: Some("1".into()),
            },
            QueuePage {
                urls: vec!["https://q/2".into()],
                next_token: None,
            },
        ];
        let Outcome::Applied(Reply::Queues(found)) = block_on(list(&store, "")) else {
            panic!("a listing");
        };
        let names: Vec<&str> = found.iter().map(QueueId::as_str).collect();
        assert_eq!(names, ["https://q/1", "https://q/2"]);
    }
}

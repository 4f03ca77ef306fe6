//! Executing the core's coordination effects against the backends: each function turns one
//! effect into calls and the result into the [`Outcome`] the core expects.

use crate::backend::{Page, QueueList, Store};
use crate::error::BackendError;
use futures_util::{StreamExt, TryStreamExt, stream};
use sqsbalancer_core::table::{self, Item, Key, Layout, TableQuery};
use sqsbalancer_core::{Outcome, QueueId, Read, Reply, Write};

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

/// Performs `read` in `layout`, every page of every query; a failed page fails the read.
pub async fn read<S: Store>(store: &S, layout: &Layout, read: Read) -> Outcome {
    let found: Result<Vec<Vec<Item>>, BackendError> =
        stream::iter(table::encode_read(layout, read))
            .map(|query| query_all(store, query))
            .buffered(QUERIES_AT_ONCE)
            .try_collect()
            .await;
    let items: Vec<Item> = match found {
        Ok(found) => found.into_iter().flatten().collect(),
        Err(e) => {
            tracing::debug!(error = %e, "coordination read failed");
            return Outcome::Unknown;
        }
    };
    let decoded = table::decode_items(&items);
    for skipped in &decoded.skipped {
        tracing::warn!(error = %skipped, "skipped a malformed item in the coordination table");
    }
    Outcome::Applied(table::read_reply(read, decoded))
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
    Outcome::Applied(Reply::Queues(found))
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

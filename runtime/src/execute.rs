//! Executing the core's coordination effects against the backends: each function turns one
//! effect into calls and the result into the [`Outcome`] the core expects.

use crate::backend::{QueueList, Store};
use crate::error::BackendError;
use sqsbalancer_core::table::{self, Item, Layout, TableQuery};
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

/// Performs `read` in `layout`, every page of every query; a failed page fails the read.
pub async fn read<S: Store>(store: &S, layout: &Layout, read: Read) -> Outcome {
    let mut items = Vec::new();
    for query in table::encode_read(layout, read) {
        match query_all(store, query).await {
            Ok(found) => items.extend(found),
            Err(e) => {
                tracing::debug!(error = %e, "coordination read failed");
                return Outcome::Unknown;
            }
        }
    }
    let decoded = table::decode_items(&items);
    for skipped in &decoded.skipped {
        tracing::warn!(error = %skipped, "skipped a malformed item in the coordination table");
    }
    Outcome::Applied(table::read_reply(read, decoded))
}

/// Every item `query` finds, following each page to the last.
pub async fn query_all<S: Store>(store: &S, query: TableQuery) -> Result<Vec<Item>, BackendError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store.query(query.clone(), start.take()).await?;
        items.extend(page.items);
        match page.last_key {
            Some(k) => start = Some(k),
            None => return Ok(items),
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
    use std::future::Future;

    /// Answers every call with the same canned result.
    struct Canned {
        update: Result<Item, BackendError>,
        pages: Vec<Result<Page, BackendError>>,
        lists: Vec<QueuePage>,
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
            std::future::ready(self.pages[i].clone())
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
            pages: Vec::new(),
            lists: Vec::new(),
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

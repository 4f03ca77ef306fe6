//! Agreeing on the table layout before the first write: every instance of an application
//! must look for a record under the same partition key, so the numbers of queue and instance
//! partition keys are recorded once and followed by all (see [`Layout`]).

use crate::backend::Store;
use crate::error::BackendError;
use crate::execute::{self, query_all};
use sqsbalancer_core::table::{self, Layout};
use sqsbalancer_core::{Outcome, Read};

/// The layout `application` recorded; [`Layout::single`] when it recorded none (an
/// application last run by a version that kept every record under one key, or never run).
pub async fn recorded<S: Store>(store: &S, application: &str) -> Result<Layout, BackendError> {
    Ok(find(store, application)
        .await?
        .unwrap_or_else(|| Layout::single(application)))
}

/// Performs `read` in the layout `application` recorded: for a tool that reads a table it
/// does not coordinate through (`sqsbalancer status`).
pub async fn read_recorded<S: Store>(store: &S, application: &str, read: Read) -> Outcome {
    match recorded(store, application).await {
        Ok(layout) => execute::read(store, &layout, read).await,
        Err(e) => {
            tracing::debug!(error = %e, "the table layout could not be read");
            Outcome::Unknown
        }
    }
}

/// The layout this instance uses: the recorded one, or, when none is, the `requested` one
/// recorded now (one key instead when queue records already sit under the one key). Logs a
/// warning when it is not the one requested. Safe to call again after a failure.
pub async fn agree<S: Store>(store: &S, requested: &Layout) -> Result<Layout, BackendError> {
    let application = requested.application();
    let layout =
        match find(store, application).await? {
            Some(found) => found,
            None => {
                let single_key = *requested != Layout::single(application)
                    && !query_all(store, Layout::single_key_queues(application))
                        .await?
                        .is_empty();
                let want = table::to_record(requested.clone(), single_key);
                match store.update(want.record()).await {
                    Ok(_) => want,
                    Err(BackendError::ConditionFailed) => find(store, application)
                        .await?
                        .ok_or_else(|| BackendError::Unknown {
                            service: "dynamodb",
                            reason: "the layout item was refused but is not there".to_owned(),
                        })?,
                    Err(e) => return Err(e),
                }
            }
        };
    if layout != *requested {
        tracing::warn!(
            requested_queue_keys = requested.queue_partition_keys(),
            requested_instance_keys = requested.instance_partition_keys(),
            recorded_queue_keys = layout.queue_partition_keys(),
            recorded_instance_keys = layout.instance_partition_keys(),
            "the partition keys asked for differ from the application's recorded layout, \
             which is used"
        );
    }
    Ok(layout)
}

async fn find<S: Store>(store: &S, application: &str) -> Result<Option<Layout>, BackendError> {
    let items = query_all(store, Layout::item_query(application)).await?;
    match items.first() {
        None => Ok(None),
        Some(item) => Layout::from_item(application, item).map(Some).map_err(|e| {
            let key = Layout::item_key(application);
            BackendError::Malformed {
                key: format!("{}/{}", key.pk, key.sk),
                reason: e.reason,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Batch, Page};
    use sqsbalancer_core::table::{Item, Key, Refused, TableQuery, TableWrite, Value};
    use sqsbalancer_core::{QueueId, Write};
    use std::collections::BTreeMap;
    use std::future::Future;
    use std::sync::Mutex;

    /// A table in memory that applies writes as DynamoDB does.
    #[derive(Default)]
    struct Mem(Mutex<BTreeMap<Key, Item>>);

    impl Store for Mem {
        fn update(&self, w: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
            let mut items = self.0.lock().unwrap();
            let out = match table::update(&w, items.get(&w.key)) {
                Ok(item) => {
                    items.insert(w.key, item.clone());
                    Ok(item)
                }
                Err(Refused::Condition) => Err(BackendError::ConditionFailed),
                Err(e) => panic!("{e}"),
            };
            std::future::ready(out)
        }

        fn query(
            &self,
            q: TableQuery,
            _: Option<Key>,
        ) -> impl Future<Output = Result<Page, BackendError>> + Send {
            let prefix = q.sk_prefix.unwrap_or_default();
            let items = self.0.lock().unwrap();
            let mut found: Vec<Item> = items
                .iter()
                .filter(|(k, _)| k.pk == q.pk && k.sk.starts_with(&prefix))
                .map(|(_, i)| i.clone())
                .collect();
            if q.backward {
                found.reverse();
            }
            std::future::ready(Ok(Page {
                items: found,
                last_key: None,
            }))
        }

        fn batch_get(
            &self,
            keys: Vec<Key>,
        ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
            let items = self.0.lock().unwrap();
            std::future::ready(Ok(Batch {
                items: keys.iter().filter_map(|k| items.get(k).cloned()).collect(),
                unprocessed: Vec::new(),
            }))
        }
    }

    #[tokio::test]
    async fn the_first_request_is_recorded_and_later_ones_follow_it() {
        let store = Mem::default();
        assert_eq!(recorded(&store, "app").await, Ok(Layout::single("app")));
        assert_eq!(
            agree(&store, &Layout::new("app", 8)).await,
            Ok(Layout::new("app", 8))
        );
        assert_eq!(
            agree(&store, &Layout::new("app", 2)).await,
            Ok(Layout::new("app", 8))
        );
        assert_eq!(
            agree(&store, &Layout::new("app", 8)).await,
            Ok(Layout::new("app", 8))
        );
        assert_eq!(recorded(&store, "app").await, Ok(Layout::new("app", 8)));
        assert_eq!(
            agree(&store, &Layout::new("other", 1)).await,
            Ok(Layout::single("other"))
        );
    }

    #[tokio::test]
    async fn instance_keys_are_recorded_beside_queue_keys_and_followed() {
        let store = Mem::default();
        let spread = Layout::new("app", 8).with_instance_keys(4);
        assert_eq!(agree(&store, &spread).await, Ok(spread.clone()));
        assert_eq!(
            agree(&store, &Layout::new("app", 8)).await,
            Ok(spread.clone())
        );
        assert_eq!(recorded(&store, "app").await, Ok(spread));
    }

    #[tokio::test]
    async fn queue_records_under_one_key_keep_the_application_on_one_key() {
        let store = Mem::default();
        let create = Write::CreateQueue {
            queue: QueueId::new("q").unwrap(),
            revive_epoch: None,
        };
        store
            .update(table::encode_write(&Layout::single("app"), &create, 0))
            .await
            .unwrap();
        assert_eq!(
            agree(&store, &Layout::new("app", 8)).await,
            Ok(Layout::single("app"))
        );
        assert_eq!(
            agree(&store, &Layout::new("app", 8)).await,
            Ok(Layout::single("app"))
        );
    }

    #[tokio::test]
    async fn a_malformed_layout_item_is_named_and_not_overwritten() {
        let store = Mem::default();
        agree(&store, &Layout::new("app", 4)).await.unwrap();
        let key = Layout::item_key("app");
        store.0.lock().unwrap().get_mut(&key).unwrap().insert(
            table::QUEUE_PARTITION_KEYS.to_owned(),
            Value::S("four".into()),
        );
        let Err(BackendError::Malformed { key: named, reason }) =
            agree(&store, &Layout::new("app", 4)).await
        else {
            panic!("a malformed layout is refused");
        };
        assert_eq!(named, "layout#app/layout");
        assert!(reason.contains(table::QUEUE_PARTITION_KEYS), "{reason}");
        let kept = store.0.lock().unwrap().get(&key).unwrap().clone();
        assert_eq!(
            kept.get(table::QUEUE_PARTITION_KEYS),
            Some(&Value::S("four".into()))
        );
    }
}

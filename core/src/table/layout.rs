//! Where an application's records are kept: instance records under the application's
//! partition key, queue records spread over a fixed number of keys by a pinned hash of the
//! queue's name, and the one item that fixes that number for the whole fleet.
//!
//! DynamoDB serves one partition key at most 3,000 read and 1,000 write units a second, and
//! every instance reads every queue record, so a large fleet spreads them. The number is
//! recorded once, in the layout item, because two instances that looked for one queue's
//! record under different keys could each own the queue.

use super::{
    Cond, DecodeError, INSTANCE_PREFIX, Item, Key, PK, QUEUE_PREFIX, TableQuery, TableWrite,
    Update, Value, number, partition,
};
use crate::effect::Read;
use crate::hash::hash64;
use crate::ids::{InstanceId, QueueId};

/// The most partition keys queue records may be spread over.
pub const MAX_QUEUE_PARTITION_KEYS: u32 = 256;
/// Attribute of the layout item: how many partition keys the queue records are spread over.
pub const QUEUE_PARTITION_KEYS: &str = "queue_partition_keys";
/// Sort key of the layout item.
const LAYOUT_SK: &str = "layout";

/// An application's table layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The application whose records these are.
    application: String,
    /// How many partition keys its queue records are spread over, 1 to
    /// [`MAX_QUEUE_PARTITION_KEYS`].
    queue_keys: u32,
}

impl Layout {
    /// `application`'s records with the queue records over `queue_partition_keys` keys (held
    /// within 1 to [`MAX_QUEUE_PARTITION_KEYS`]).
    pub fn new(application: &str, queue_partition_keys: u32) -> Layout {
        Layout {
            application: application.to_owned(),
            queue_keys: queue_partition_keys.clamp(1, MAX_QUEUE_PARTITION_KEYS),
        }
    }

    /// The layout of an application that recorded none: every record under one key, as
    /// before layouts were recorded.
    pub fn single(application: &str) -> Layout {
        Layout::new(application, 1)
    }

    /// The application.
    pub fn application(&self) -> &str {
        &self.application
    }

    /// How many partition keys the queue records are spread over.
    pub fn queue_partition_keys(&self) -> u32 {
        self.queue_keys
    }

    /// The partition key of the instance records (and of every record with one key).
    pub fn instance_partition(&self) -> String {
        partition(&self.application)
    }

    /// The partition key of `queue`'s record.
    pub fn queue_partition(&self, queue: &QueueId) -> String {
        let base = partition(&self.application);
        if self.queue_keys == 1 {
            return base;
        }
        let at = hash64(&[b"queue-partition", queue.as_str().as_bytes()]);
        format!("{base}#{}", at % u64::from(self.queue_keys))
    }

    /// The key of `id`'s instance record.
    pub fn instance_key(&self, id: &InstanceId) -> Key {
        Key {
            pk: self.instance_partition(),
            sk: format!("{INSTANCE_PREFIX}{id}"),
        }
    }

    /// The key of `queue`'s record.
    pub fn queue_key(&self, queue: &QueueId) -> Key {
        Key {
            pk: self.queue_partition(queue),
            sk: format!("{QUEUE_PREFIX}{queue}"),
        }
    }

    /// The queries that together make `read`, in the order they are read. A table read
    /// reads the instance records last ([`Read::Table`]): with one key, in one query read
    /// backwards (`queue#` sorts after `instance#`), so it costs no request more.
    pub fn queries(&self, read: Read) -> Vec<TableQuery> {
        let instances = TableQuery {
            pk: self.instance_partition(),
            sk_prefix: Some(INSTANCE_PREFIX.to_owned()),
            backward: false,
        };
        match read {
            Read::Members => vec![instances],
            Read::Table if self.queue_keys == 1 => vec![TableQuery {
                sk_prefix: None,
                backward: true,
                ..instances
            }],
            Read::Table => {
                let base = partition(&self.application);
                let queues = (0..self.queue_keys).map(|k| TableQuery {
                    pk: format!("{base}#{k}"),
                    sk_prefix: Some(QUEUE_PREFIX.to_owned()),
                    backward: false,
                });
                queues.chain(std::iter::once(instances)).collect()
            }
        }
    }

    /// The key of `application`'s layout item; its partition key is the item's own, so no
    /// read of records ever returns it.
    pub fn item_key(application: &str) -> Key {
        Key {
            pk: format!("layout#{application}"),
            sk: LAYOUT_SK.to_owned(),
        }
    }

    /// The query that finds `application`'s layout item.
    pub fn item_query(application: &str) -> TableQuery {
        TableQuery {
            pk: Layout::item_key(application).pk,
            sk_prefix: Some(LAYOUT_SK.to_owned()),
            backward: false,
        }
    }

    /// The query that finds queue records kept under `application`'s one key: an application
    /// that has them cannot spread its queue records any more.
    pub fn single_key_queues(application: &str) -> TableQuery {
        TableQuery {
            pk: partition(application),
            sk_prefix: Some(QUEUE_PREFIX.to_owned()),
            backward: false,
        }
    }

    /// The write that records this layout: applied when none is recorded or this one is,
    /// refused when another one is. Safe to resend.
    pub fn record(&self) -> TableWrite {
        let keys = Value::num(u64::from(self.queue_keys));
        TableWrite {
            key: Layout::item_key(&self.application),
            updates: vec![Update::Set(QUEUE_PARTITION_KEYS, keys.clone())],
            cond: Some(Cond::Or(vec![
                Cond::NotExists(PK),
                Cond::Eq(QUEUE_PARTITION_KEYS, keys),
            ])),
        }
    }

    /// The layout `item` records for `application`.
    pub fn from_item(application: &str, item: &Item) -> Result<Layout, DecodeError> {
        let keys = number(item, QUEUE_PARTITION_KEYS)?;
        match u32::try_from(keys) {
            Ok(k) if (1..=MAX_QUEUE_PARTITION_KEYS).contains(&k) => Ok(Layout::new(application, k)),
            _ => Err(DecodeError {
                sk: LAYOUT_SK.to_owned(),
                reason: format!(
                    "{QUEUE_PARTITION_KEYS} is {keys}, not 1 to {MAX_QUEUE_PARTITION_KEYS}"
                ),
            }),
        }
    }
}

/// The layout an instance asks to record when `application` has none: the `requested` one,
/// unless queue records already sit under the one key (a fleet that placed them there, maybe
/// of an earlier version, still looks for them there).
pub fn to_record(application: &str, requested: u32, single_key_records: bool) -> Layout {
    if single_key_records {
        Layout::single(application)
    } else {
        Layout::new(application, requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{holds, update};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn q(name: &str) -> QueueId {
        QueueId::new(name).unwrap()
    }

    #[test]
    fn one_key_keeps_every_record_where_it_was() {
        let l = Layout::single("app");
        assert_eq!(l.queue_partition(&q("orders")), "app#app");
        assert_eq!(l.instance_partition(), "app#app");
        let table = l.queries(Read::Table);
        assert_eq!(table.len(), 1);
        assert_eq!(
            (table[0].pk.as_str(), &table[0].sk_prefix, table[0].backward),
            ("app#app", &None, true)
        );
    }

    #[test]
    fn the_partition_of_a_queue_is_pinned() {
        // Changing these moves every record of a spread application: a breaking change.
        let l = Layout::new("app", 16);
        let got: Vec<String> = ["orders", "payments", "q-0"]
            .iter()
            .map(|n| l.queue_partition(&q(n)))
            .collect();
        assert_eq!(got, ["app#app#8", "app#app#6", "app#app#10"]);
    }

    #[test]
    fn a_spread_table_read_covers_the_instances_and_every_queue_key() {
        let l = Layout::new("app", 3);
        let pks: Vec<String> = l.queries(Read::Table).into_iter().map(|q| q.pk).collect();
        assert_eq!(pks, ["app#app#0", "app#app#1", "app#app#2", "app#app"]);
        assert_eq!(l.queries(Read::Members).len(), 1);
    }

    #[test]
    fn a_layout_is_recorded_once_and_the_same_one_again() {
        let four = Layout::new("app", 4).record();
        let stored = update(&four, None).unwrap();
        assert_eq!(Layout::from_item("app", &stored), Ok(Layout::new("app", 4)));
        assert!(holds(four.cond.as_ref().unwrap(), Some(&stored)));
        let two = Layout::new("app", 2).record();
        assert!(!holds(two.cond.as_ref().unwrap(), Some(&stored)));
    }

    #[test]
    fn a_recorded_layout_out_of_range_is_refused_by_name() {
        let mut item = update(&Layout::new("app", 4).record(), None).unwrap();
        item.insert(QUEUE_PARTITION_KEYS.to_owned(), Value::num(0));
        let e = Layout::from_item("app", &item).unwrap_err();
        assert!(e.reason.contains(QUEUE_PARTITION_KEYS), "{e}");
    }

    #[test]
    fn queue_records_under_the_one_key_keep_it() {
        assert_eq!(to_record("app", 8, true), Layout::single("app"));
        assert_eq!(to_record("app", 8, false), Layout::new("app", 8));
    }

    proptest! {
        #[test]
        fn every_queue_is_found_by_exactly_one_query_of_a_table_read(
            name in "[a-z0-9-]{1,40}",
            keys in 1u32..=MAX_QUEUE_PARTITION_KEYS,
        ) {
            let l = Layout::new("app", keys);
            let pk = l.queue_partition(&q(&name));
            let found = l
                .queries(Read::Table)
                .iter()
                .filter(|t| t.pk == pk && t.sk_prefix.as_deref().is_none_or(|p| QUEUE_PREFIX.starts_with(p)))
                .count();
            prop_assert_eq!(found, 1);
        }

        /// Run as DynamoDB runs them (`begins_with`, `ScanIndexForward`), a table read's
        /// queries return every record once and every queue record before any instance record.
        #[test]
        fn a_table_read_reads_every_record_once_and_the_instance_records_last(
            keys in 1u32..=8,
            ids in proptest::collection::btree_set("[a-z0-9]{1,6}", 0..5),
            queues in proptest::collection::btree_set("[a-z0-9-]{1,12}", 0..12),
        ) {
            let l = Layout::new("app", keys);
            let instance = |id: &String| l.instance_key(&InstanceId::new(id).unwrap());
            let stored: BTreeSet<(String, String)> = ids
                .iter()
                .map(instance)
                .chain(queues.iter().map(|n| l.queue_key(&q(n))))
                .map(|k| (k.pk, k.sk))
                .collect();
            let mut read = Vec::new();
            for t in l.queries(Read::Table) {
                let prefix = t.sk_prefix.as_deref().unwrap_or("");
                let mut page: Vec<&(String, String)> = stored
                    .iter()
                    .filter(|(pk, sk)| *pk == t.pk && sk.starts_with(prefix))
                    .collect();
                if t.backward {
                    page.reverse();
                }
                read.extend(page);
            }
            prop_assert_eq!(read.len(), stored.len());
            prop_assert_eq!(read.iter().collect::<BTreeSet<_>>().len(), stored.len());
            let first_instance = read.iter().position(|(_, sk)| sk.starts_with(INSTANCE_PREFIX));
            let last_queue = read.iter().rposition(|(_, sk)| sk.starts_with(QUEUE_PREFIX));
            if let (Some(i), Some(q)) = (first_instance, last_queue) {
                prop_assert!(q < i, "a queue record read after an instance record: {read:?}");
            }
        }
    }
}

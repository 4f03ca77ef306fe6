//! Where an application's records are kept: instance records and queue records each spread
//! over a fixed number of partition keys by a pinned hash of the instance id or queue name,
//! and the one item that fixes both numbers for the whole fleet.
//!
//! DynamoDB serves one partition key at most 3,000 read and 1,000 write units a second;
//! every instance reads every queue record after a change, and every instance record every
//! heartbeat interval, so a large fleet spreads them. The numbers are recorded once, in the
//! layout item, because two instances that looked for one record under different keys could
//! each own a queue (or take a live peer for a ghost).

use super::{
    Cond, DecodeError, INSTANCE_PREFIX, Item, Key, PK, QUEUE_PREFIX, TableQuery, TableWrite,
    Update, Value, number, partition,
};
use crate::effect::Read;
use crate::hash::hash64;
use crate::ids::{InstanceId, QueueId};

/// The most partition keys queue records may be spread over.
pub const MAX_QUEUE_PARTITION_KEYS: u32 = 256;
/// The most partition keys instance records may be spread over: 64 keys carry 192,000 read
/// units a second, far more than a fleet within the 400 KB-per-key item budget reads.
pub const MAX_INSTANCE_PARTITION_KEYS: u32 = 64;
/// Attribute of the layout item: how many partition keys the queue records are spread over.
pub const QUEUE_PARTITION_KEYS: &str = "queue_partition_keys";
/// Attribute of the layout item: how many partition keys the instance records are spread
/// over (absent: one).
pub const INSTANCE_PARTITION_KEYS: &str = "instance_partition_keys";
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
    /// How many partition keys its instance records are spread over, 1 to
    /// [`MAX_INSTANCE_PARTITION_KEYS`].
    instance_keys: u32,
}

impl Layout {
    /// `application`'s records with the queue records over `queue_partition_keys` keys (held
    /// within 1 to [`MAX_QUEUE_PARTITION_KEYS`]).
    pub fn new(application: &str, queue_partition_keys: u32) -> Layout {
        Layout {
            application: application.to_owned(),
            queue_keys: queue_partition_keys.clamp(1, MAX_QUEUE_PARTITION_KEYS),
            instance_keys: 1,
        }
    }

    /// This layout with the instance records over `instance_partition_keys` keys (held within
    /// 1 to [`MAX_INSTANCE_PARTITION_KEYS`]).
    pub fn with_instance_keys(self, instance_partition_keys: u32) -> Layout {
        Layout {
            instance_keys: instance_partition_keys.clamp(1, MAX_INSTANCE_PARTITION_KEYS),
            ..self
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

    /// How many partition keys the instance records are spread over.
    pub fn instance_partition_keys(&self) -> u32 {
        self.instance_keys
    }

    /// The partition key of `id`'s instance record (with one key, the application's key,
    /// shared with every record kept under one key).
    pub fn instance_partition(&self, id: &InstanceId) -> String {
        let at = hash64(&[b"instance-partition", id.as_str().as_bytes()]);
        self.instance_partition_at(at % u64::from(self.instance_keys))
    }

    /// The partition key of the instance records' key number `k`.
    fn instance_partition_at(&self, k: u64) -> String {
        let base = partition(&self.application);
        if self.instance_keys == 1 {
            base
        } else {
            format!("{base}#i{k}")
        }
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
            pk: self.instance_partition(id),
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

    /// The queries that together make `read`, in phases: every query of a phase has answered
    /// before a query of the next is sent, and the queries of one phase may run at once. A
    /// table read reads the instance records last ([`Read::Table`], §4.3 relies on it): with
    /// one key for all, in one query read backwards (`queue#` sorts after `instance#`), so it
    /// costs no request more; spread, in a phase after every queue query.
    pub fn queries(&self, read: &Read) -> Vec<Vec<TableQuery>> {
        let instances = (0..u64::from(self.instance_keys)).map(|k| TableQuery {
            pk: self.instance_partition_at(k),
            sk_prefix: Some(INSTANCE_PREFIX.to_owned()),
            backward: false,
        });
        let base = partition(&self.application);
        match read {
            Read::Members | Read::Records(_) => vec![instances.collect()],
            Read::Table if self.queue_keys == 1 && self.instance_keys == 1 => {
                vec![vec![TableQuery {
                    pk: base,
                    sk_prefix: None,
                    backward: true,
                }]]
            }
            Read::Table => {
                let queues = (0..self.queue_keys).map(|k| TableQuery {
                    pk: if self.queue_keys == 1 {
                        base.clone()
                    } else {
                        format!("{base}#{k}")
                    },
                    sk_prefix: Some(QUEUE_PREFIX.to_owned()),
                    backward: false,
                });
                vec![queues.collect(), instances.collect()]
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
        let queue_keys = Value::num(u64::from(self.queue_keys));
        let instance_keys = Value::num(u64::from(self.instance_keys));
        TableWrite {
            key: Layout::item_key(&self.application),
            updates: vec![
                Update::Set(QUEUE_PARTITION_KEYS, queue_keys.clone()),
                Update::Set(INSTANCE_PARTITION_KEYS, instance_keys.clone()),
            ],
            cond: Some(Cond::Or(vec![
                Cond::NotExists(PK),
                Cond::And(vec![
                    Cond::Eq(QUEUE_PARTITION_KEYS, queue_keys),
                    Cond::Eq(INSTANCE_PARTITION_KEYS, instance_keys),
                ]),
            ])),
        }
    }

    /// The layout `item` records for `application`.
    pub fn from_item(application: &str, item: &Item) -> Result<Layout, DecodeError> {
        let queue_keys = keys(item, QUEUE_PARTITION_KEYS, MAX_QUEUE_PARTITION_KEYS)?;
        let instance_keys = match item.get(INSTANCE_PARTITION_KEYS) {
            None => 1,
            Some(_) => keys(item, INSTANCE_PARTITION_KEYS, MAX_INSTANCE_PARTITION_KEYS)?,
        };
        Ok(Layout::new(application, queue_keys).with_instance_keys(instance_keys))
    }
}

/// The number of keys attribute `name` of a layout item records, refused outside 1 to `max`.
fn keys(item: &Item, name: &str, max: u32) -> Result<u32, DecodeError> {
    let n = number(item, name)?;
    match u32::try_from(n) {
        Ok(k) if (1..=max).contains(&k) => Ok(k),
        _ => Err(DecodeError {
            sk: LAYOUT_SK.to_owned(),
            reason: format!("{name} is {n}, not 1 to {max}"),
        }),
    }
}

/// The layout an instance asks to record when its application has none: the `requested`
/// one, unless queue records already sit under the one key (a fleet that placed them there,
/// maybe of an earlier version, still looks for every record there).
pub fn to_record(requested: Layout, single_key_records: bool) -> Layout {
    if single_key_records {
        Layout::single(&requested.application)
    } else {
        requested
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
        assert_eq!(
            l.instance_partition(&InstanceId::new("a").unwrap()),
            "app#app"
        );
        let table = l.queries(&Read::Table).concat();
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
    fn the_partition_of_an_instance_is_pinned() {
        // Changing these moves every instance record of a spread application: a breaking
        // change.
        let l = Layout::new("app", 1).with_instance_keys(4);
        let got: Vec<String> = ["a", "node-1", "i-0abc"]
            .iter()
            .map(|n| l.instance_partition(&InstanceId::new(n).unwrap()))
            .collect();
        assert_eq!(got, ["app#app#i2", "app#app#i1", "app#app#i1"]);
        let pks = |read: &Read| -> Vec<Vec<String>> {
            l.queries(read)
                .into_iter()
                .map(|phase| phase.into_iter().map(|q| q.pk).collect())
                .collect()
        };
        let instances = ["app#app#i0", "app#app#i1", "app#app#i2", "app#app#i3"];
        assert_eq!(pks(&Read::Table), [vec!["app#app"], instances.to_vec()]);
        assert_eq!(pks(&Read::Members), [instances]);
    }

    #[test]
    fn a_layout_item_without_instance_keys_keeps_them_on_one_key() {
        let mut item = update(&Layout::new("app", 4).with_instance_keys(8).record(), None).unwrap();
        assert_eq!(
            Layout::from_item("app", &item),
            Ok(Layout::new("app", 4).with_instance_keys(8))
        );
        item.remove(INSTANCE_PARTITION_KEYS);
        assert_eq!(Layout::from_item("app", &item), Ok(Layout::new("app", 4)));
        item.insert(INSTANCE_PARTITION_KEYS.to_owned(), Value::num(65));
        let e = Layout::from_item("app", &item).unwrap_err();
        assert!(e.reason.contains(INSTANCE_PARTITION_KEYS), "{e}");
    }

    #[test]
    fn a_spread_table_read_covers_the_instances_and_every_queue_key() {
        let l = Layout::new("app", 3);
        let pks: Vec<Vec<String>> = l
            .queries(&Read::Table)
            .into_iter()
            .map(|phase| phase.into_iter().map(|q| q.pk).collect())
            .collect();
        assert_eq!(
            pks,
            [vec!["app#app#0", "app#app#1", "app#app#2"], vec!["app#app"]]
        );
        assert_eq!(l.queries(&Read::Members).concat().len(), 1);
    }

    #[test]
    fn a_layout_is_recorded_once_and_the_same_one_again() {
        let four = Layout::new("app", 4).record();
        let stored = update(&four, None).unwrap();
        assert_eq!(Layout::from_item("app", &stored), Ok(Layout::new("app", 4)));
        assert!(holds(four.cond.as_ref().unwrap(), Some(&stored)));
        let two = Layout::new("app", 2).record();
        assert!(!holds(two.cond.as_ref().unwrap(), Some(&stored)));
        let spread = Layout::new("app", 4).with_instance_keys(2).record();
        assert!(!holds(spread.cond.as_ref().unwrap(), Some(&stored)));
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
        let spread = Layout::new("app", 8).with_instance_keys(4);
        assert_eq!(to_record(spread.clone(), true), Layout::single("app"));
        assert_eq!(to_record(spread.clone(), false), spread);
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
                .queries(&Read::Table)
                .concat()
                .iter()
                .filter(|t| t.pk == pk && t.sk_prefix.as_deref().is_none_or(|p| QUEUE_PREFIX.starts_with(p)))
                .count();
            prop_assert_eq!(found, 1);
        }

        /// Run as DynamoDB runs them (`begins_with`, `ScanIndexForward`), a table read's
        /// queries return every record once, and every queue record before any instance
        /// record: in an earlier phase, or earlier in the same query (the queries of one phase
        /// may run at once, so nothing orders two of them).
        #[test]
        fn a_table_read_reads_every_record_once_and_the_instance_records_last(
            keys in 1u32..=8,
            instance_keys in 1u32..=4,
            ids in proptest::collection::btree_set("[a-z0-9]{1,6}", 0..5),
            queues in proptest::collection::btree_set("[a-z0-9-]{1,12}", 0..12),
        ) {
            let l = Layout::new("app", keys).with_instance_keys(instance_keys);
            let instance = |id: &String| l.instance_key(&InstanceId::new(id).unwrap());
            let stored: BTreeSet<(String, String)> = ids
                .iter()
                .map(instance)
                .chain(queues.iter().map(|n| l.queue_key(&q(n))))
                .map(|k| (k.pk, k.sk))
                .collect();
            // Each record read, with the (phase, query) that read it, in each query's order.
            let run = |read: Read| {
                let mut got = Vec::new();
                for (phase, queries) in l.queries(&read).into_iter().enumerate() {
                    for (query, t) in queries.into_iter().enumerate() {
                        let prefix = t.sk_prefix.as_deref().unwrap_or("");
                        let mut page: Vec<&(String, String)> = stored
                            .iter()
                            .filter(|(pk, sk)| *pk == t.pk && sk.starts_with(prefix))
                            .collect();
                        if t.backward {
                            page.reverse();
                        }
                        got.extend(page.into_iter().map(|r| ((phase, query), r)));
                    }
                }
                got
            };
            let members = run(Read::Members);
            prop_assert_eq!(members.len(), ids.len());
            prop_assert!(members.iter().all(|(_, (_, sk))| sk.starts_with(INSTANCE_PREFIX)));
            let read = run(Read::Table);
            prop_assert_eq!(read.len(), stored.len());
            let records: BTreeSet<_> = read.iter().map(|(_, r)| r).collect();
            prop_assert_eq!(records.len(), stored.len());
            let of = |prefix: &str| {
                read.iter()
                    .enumerate()
                    .filter(|(_, (_, (_, sk)))| sk.starts_with(prefix))
                    .map(|(at, (by, _))| (at, *by))
                    .collect::<Vec<_>>()
            };
            for (qa, (qphase, qquery)) in of(QUEUE_PREFIX) {
                for (ia, (iphase, iquery)) in of(INSTANCE_PREFIX) {
                    let before = qphase < iphase || (qphase == iphase && qquery == iquery && qa < ia);
                    prop_assert!(before, "a queue record not read before an instance record: {read:?}");
                }
            }
        }
    }
}

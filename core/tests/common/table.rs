//! The coordination table the core's tests run against: items exactly as DynamoDB holds
//! them, each write encoded and executed by the core's own `table` module, so the tests
//! exercise the very conditions production sends.

use sqsbalancer_core::table::{self, Item, Key, Layout, Record, Refused, TableWrite};
use sqsbalancer_core::{Outcome, QueueId, QueueRecord, Read, Reply, Write};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The application every test node belongs to.
pub const APP: &str = "app";

/// Where the tests' records are kept: queue records spread over three partition keys, so
/// every test also reads and writes a spread table.
pub fn layout() -> Layout {
    Layout::new(APP, 3)
}

/// The wall clock the instance records' TTL is computed from (it never matters to a test).
const WALL_SECS: u64 = 1_700_000_000;

/// An in-memory table of one application's items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemTable {
    items: BTreeMap<Key, Item>,
}

impl MemTable {
    /// Applies `write` as DynamoDB would: its condition, then its updates.
    pub fn write(&mut self, write: &Write) -> Outcome {
        self.write_request(write, table::encode_write(&layout(), write, WALL_SECS))
    }

    /// Applies `request`, an encoding of `write` (perhaps edited to break the protocol).
    pub fn write_request(&mut self, write: &Write, request: TableWrite) -> Outcome {
        match table::update(&request, self.items.get(&request.key)) {
            Ok(new) => {
                let reply = table::write_reply(write, &new).expect("a reply");
                self.items.insert(request.key, new);
                Outcome::Applied(reply)
            }
            Err(Refused::Condition) => Outcome::Rejected,
            Err(e) => panic!("{write:?} cannot apply: {e}"),
        }
    }

    /// A strongly consistent read of the table: the records asked for by key, then the
    /// queries.
    pub fn read(&self, read: Read) -> Reply {
        let queries = table::encode_read(&layout(), &read).concat();
        let keys = table::record_keys(&layout(), &read);
        let got = keys.iter().filter_map(|k| self.items.get(k));
        let items = got.chain(queries.iter().flat_map(|q| {
            let prefix = q.sk_prefix.clone().unwrap_or_default();
            let mut found: Vec<&Item> = self
                .items
                .iter()
                .filter(move |(k, _)| k.pk == q.pk && k.sk.starts_with(&prefix))
                .map(|(_, item)| item)
                .collect();
            if q.backward {
                found.reverse();
            }
            found
        }));
        table::read_reply(&read, table::decode_items(items))
    }

    /// The item under `key`.
    pub fn get(&self, key: &Key) -> Option<&Item> {
        self.items.get(key)
    }

    /// The item under `key`, to corrupt it.
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut Item> {
        self.items.get_mut(key)
    }

    /// The queue record of `queue`, decoded.
    pub fn queue(&self, queue: &QueueId) -> Option<QueueRecord> {
        match table::decode_item(self.items.get(&layout().queue_key(queue))?) {
            Ok(Record::Queue(r)) => Some(Arc::unwrap_or_clone(r)),
            other => panic!("{queue}'s record reads as {other:?}"),
        }
    }

    /// Every queue record, decoded.
    pub fn queues(&self) -> BTreeMap<QueueId, QueueRecord> {
        let Reply::Table { pages, .. } = self.read(Read::Table) else {
            unreachable!("a table read answers with the table")
        };
        (pages.iter().flat_map(|p| p.records()))
            .map(|r| (r.queue.clone(), QueueRecord::clone(r)))
            .collect()
    }
}

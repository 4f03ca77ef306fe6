//! An in-memory DynamoDB: tables keyed by (pk, sk), conditional writes, queries and scans with
//! pagination, and capacity accounting the way DynamoDB bills it, per caller.
//!
//! Billing rules followed: a read costs one unit per started 4 KB (half for an eventually
//! consistent read), summed per item for GetItem/BatchGetItem and over the whole page for
//! Query/Scan; a write costs one unit per started 1 KB of the larger of the old and new item, and
//! a write whose condition fails is billed too. Every request costs at least one unit. Units are
//! kept in halves so eventually consistent reads stay exact integers. TTL is stored; the
//! simulators act for it ([`FakeDynamo::expire_ended`]) when they inject its deletions.

use sqsbalancer_core::Millis;
use sqsbalancer_core::table::{
    self, Cond, DecodeError, Item, Key, PK, Record, Refused, SK, TableQuery, TableWrite, Value,
    holds, item_size,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest item DynamoDB stores.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// The most data one Query or Scan page reads.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
pub use sqsbalancer_core::table::MAX_BATCH_GET;

/// What the fake DynamoDB refuses, named as DynamoDB names it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoError {
    /// The table does not exist.
    #[error("ResourceNotFoundException: table {table} not found")]
    ResourceNotFound {
        /// The table asked for.
        table: String,
    },
    /// The table already exists.
    #[error("ResourceInUseException: table {table} already exists")]
    ResourceInUse {
        /// The table.
        table: String,
    },
    /// The write's condition did not hold; nothing changed.
    #[error("ConditionalCheckFailedException")]
    ConditionalCheckFailed,
    /// The request is malformed.
    #[error("ValidationException: {reason}")]
    Validation {
        /// What is wrong.
        reason: String,
    },
}

/// Request and capacity counts of one caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests by operation name (`GetItem`, `Query`, ...), including failed ones.
    pub requests: BTreeMap<&'static str, u64>,
    /// Read capacity consumed, in half units.
    pub read_half_units: u64,
    /// Write capacity consumed, in units.
    pub write_units: u64,
}

impl Usage {
    /// All requests.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Usage) {
        for (k, v) in &other.requests {
            *self.requests.entry(k).or_default() += v;
        }
        self.read_half_units += other.read_half_units;
        self.write_units += other.write_units;
    }
}

/// One page of a Query or Scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The items, in key order, shared with the table (a read copies no attribute) and, for a
    /// query, with every read of the partition until it takes a write.
    pub items: Arc<[Arc<Item>]>,
    /// Where the next page starts; `None` when this was the last.
    pub last_key: Option<Key>,
}

/// Query pages kept at most, past which the cache starts afresh (pages asked once, such as
/// those a fault cut short, would otherwise pile up).
const MAX_CACHED_PAGES: usize = 4096;

/// What a query asked: its partition, sort-key prefix and direction, where it started and
/// how many items it took at most.
type Ask = (String, Option<String>, bool, Option<String>, Option<usize>);

/// A query's page as last read, with the partition's write count then and its size.
struct Cached {
    /// [`Table::writes`] of the partition when the page was read.
    writes: u64,
    /// The page.
    page: Page,
    /// The bytes it read, what it is billed for.
    bytes: usize,
}

/// One item as stored, with its size (what reads bill) computed once at write time.
struct Stored {
    item: Arc<Item>,
    size: usize,
}

impl Stored {
    fn new(item: Item) -> Stored {
        Stored {
            size: item_size(&item),
            item: Arc::new(item),
        }
    }
}

#[derive(Default)]
struct Table {
    /// The items by (pk, sk).
    items: BTreeMap<(String, String), Stored>,
    /// Writes applied to each partition so far: a page read at the same count is what the
    /// query would read now.
    writes: BTreeMap<String, u64>,
    /// The last page of each query asked: every node of a simulated fleet reads the same
    /// partitions, mostly unchanged since the last node read them, and walking the tree and
    /// decoding its items afresh for each was nearly all of a 1,000-node start-up (G11).
    pages: BTreeMap<Ask, Cached>,
}

impl Table {
    /// Stores `item` at `k`, returning what was there.
    fn store(&mut self, k: (String, String), item: Stored) -> Option<Stored> {
        self.wrote(&k.0);
        self.items.insert(k, item)
    }

    /// Deletes the item at `k`.
    fn unstore(&mut self, k: &(String, String)) {
        self.wrote(&k.0);
        self.items.remove(k);
    }

    /// Counts a write to partition `pk`.
    fn wrote(&mut self, pk: &str) {
        match self.writes.get_mut(pk) {
            Some(n) => *n += 1,
            None => {
                self.writes.insert(pk.to_owned(), 1);
            }
        }
    }

    /// The page a query of `q` reads after `after`, at most `limit` items, and its bytes: the
    /// cached page if the partition took no write since it was read.
    fn page(&mut self, q: &TableQuery, after: Option<&str>, limit: Option<usize>) -> (Page, usize) {
        let writes = self.writes.get(&q.pk).copied().unwrap_or(0);
        let ask = (
            q.pk.clone(),
            q.sk_prefix.clone(),
            q.backward,
            after.map(str::to_owned),
            limit,
        );
        if let Some(c) = self.pages.get(&ask).filter(|c| c.writes == writes) {
            return (c.page.clone(), c.bytes);
        }
        let (page, bytes) = FakeDynamo::page(self.partition(q, after), limit);
        if self.pages.len() >= MAX_CACHED_PAGES {
            self.pages.clear();
        }
        let cached = Cached {
            writes,
            page: page.clone(),
            bytes,
        };
        self.pages.insert(ask, cached);
        (page, bytes)
    }

    /// The items a query of `q` reads, in key order (descending when `q.backward`), after
    /// sort key `after` in that order if given: one range of the map, bounded on both sides,
    /// so a forward read costs no comparison per item.
    fn partition<'a>(
        &'a self,
        q: &'a TableQuery,
        after: Option<&str>,
    ) -> Box<dyn Iterator<Item = (&'a (String, String), &'a Stored)> + 'a> {
        use std::ops::Bound::{Excluded, Included};
        let prefix = q.sk_prefix.as_deref().unwrap_or("");
        let pk = || q.pk.clone();
        // Every key of this partition sorts before the first key of `pk` followed by NUL.
        let past_end = Excluded((format!("{}\0", q.pk), String::new()));
        let first = Included((pk(), prefix.to_owned()));
        let matches = move |(k, _): &(&(String, String), &Stored)| k.1.starts_with(prefix);
        if q.backward {
            let end = after.map_or(past_end, |sk| Excluded((pk(), sk.to_owned())));
            let range = self.items.range((first, end)).rev();
            Box::new(range.skip_while(move |e| !matches(e)).take_while(matches))
        } else {
            let from = after.map_or(first, |sk| Excluded((pk(), sk.to_owned())));
            Box::new(self.items.range((from, past_end)).take_while(matches))
        }
    }
}

/// The in-memory DynamoDB.
#[derive(Default)]
pub struct FakeDynamo {
    tables: BTreeMap<String, Table>,
    usage: BTreeMap<String, Usage>,
    /// The simulated time calls are metered at, set by the simulator ([`FakeDynamo::set_now`]).
    now: Millis,
    /// Capacity consumed per partition key and simulated minute: read half units, write units.
    /// Keyed by partition key first, so that metering a call finds its key without a copy.
    meter: BTreeMap<String, BTreeMap<u64, (u64, u64)>>,
}

/// What a BatchGetItem of the fake read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchGot {
    /// The items found, shared with the store, in the order of their keys.
    pub items: Vec<Arc<Item>>,
    /// The keys left unread, to be asked again.
    pub unprocessed: Vec<Key>,
}

/// The busiest partition key's load, each in its busiest simulated minute, averaged over that
/// minute: what DynamoDB's per-partition limits (3,000 read and 1,000 write units a second)
/// apply to.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct PartitionPeak {
    /// Read capacity units a second.
    pub read_units_per_s: f64,
    /// Write capacity units a second.
    pub write_units_per_s: f64,
}

fn read_units_half(bytes: usize, consistent: bool) -> u64 {
    let units = (bytes.div_ceil(4096)).max(1) as u64;
    if consistent { units * 2 } else { units }
}

fn write_units(bytes: usize) -> u64 {
    (bytes.div_ceil(1024)).max(1) as u64
}

fn key_of(item: &Item) -> Result<(String, String), DynamoError> {
    match (item.get(PK), item.get(SK)) {
        (Some(Value::S(pk)), Some(Value::S(sk))) if !pk.is_empty() && !sk.is_empty() => {
            Ok((pk.clone(), sk.clone()))
        }
        _ => Err(DynamoError::Validation {
            reason: "item needs non-empty string pk and sk".to_owned(),
        }),
    }
}

impl FakeDynamo {
    /// An empty DynamoDB.
    pub fn new() -> FakeDynamo {
        FakeDynamo::default()
    }

    /// CreateTable with a (pk, sk) string key.
    pub fn create_table(&mut self, name: &str) -> Result<(), DynamoError> {
        if self.tables.contains_key(name) {
            return Err(DynamoError::ResourceInUse {
                table: name.to_owned(),
            });
        }
        self.tables.insert(name.to_owned(), Table::default());
        Ok(())
    }

    /// Whether `name` exists.
    pub fn has_table(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }

    /// The usage of one caller.
    pub fn usage(&self, caller: &str) -> Usage {
        self.usage.get(caller).cloned().unwrap_or_default()
    }

    /// The usage of every caller.
    pub fn usage_by_caller(&self) -> &BTreeMap<String, Usage> {
        &self.usage
    }

    /// Sets the simulated time the next calls are metered at.
    pub fn set_now(&mut self, now: Millis) {
        self.now = now;
    }

    /// The peak per-partition load so far.
    pub fn partition_peak(&self) -> PartitionPeak {
        let (read_half, write) = self
            .meter
            .values()
            .flat_map(BTreeMap::values)
            .fold((0, 0), |(r, w), (r2, w2)| (r.max(*r2), w.max(*w2)));
        PartitionPeak {
            read_units_per_s: read_half as f64 / 2.0 / 60.0,
            write_units_per_s: write as f64 / 60.0,
        }
    }

    /// Counts a request of `caller` and the capacity it consumed, against partition `pk`
    /// (`None`: a scan or a batch over several).
    fn bill(
        &mut self,
        caller: &str,
        pk: Option<&str>,
        op: &'static str,
        read_half: u64,
        write: u64,
    ) {
        let u = match self.usage.get_mut(caller) {
            Some(u) => u,
            None => self.usage.entry(caller.to_owned()).or_default(),
        };
        *u.requests.entry(op).or_default() += 1;
        u.read_half_units += read_half;
        u.write_units += write;
        if let Some(pk) = pk {
            self.meter(pk, read_half, write);
        }
    }

    /// Counts capacity consumed against partition `pk` in the current simulated minute.
    fn meter(&mut self, pk: &str, read_half: u64, write: u64) {
        let minute = self.now.0 / 60_000;
        let minutes = match self.meter.get_mut(pk) {
            Some(minutes) => minutes,
            None => self.meter.entry(pk.to_owned()).or_default(),
        };
        let m = minutes.entry(minute).or_default();
        m.0 += read_half;
        m.1 += write;
    }

    fn table(&self, name: &str) -> Result<&Table, DynamoError> {
        self.tables
            .get(name)
            .ok_or_else(|| DynamoError::ResourceNotFound {
                table: name.to_owned(),
            })
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut Table, DynamoError> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| DynamoError::ResourceNotFound {
                table: name.to_owned(),
            })
    }

    /// GetItem.
    pub fn get_item(
        &mut self,
        caller: &str,
        table: &str,
        key: &Key,
        consistent: bool,
    ) -> Result<Option<Item>, DynamoError> {
        let stored = self
            .table(table)?
            .items
            .get(&(key.pk.clone(), key.sk.clone()));
        let size = stored.map_or(0, |s| s.size);
        let item = stored.map(|s| (*s.item).clone());
        self.bill(
            caller,
            Some(&key.pk),
            "GetItem",
            read_units_half(size, consistent),
            0,
        );
        Ok(item)
    }

    /// BatchGetItem of 1..=100 keys: the items of those that have one, each shared with
    /// the store. Each key is billed as a read of its item rounded up to 4 KB (a key with no
    /// item as the smallest read) against its own partition key. With `limit`, only the first
    /// `limit` keys are read and the others come back unprocessed, as DynamoDB leaves them
    /// when a partition is throttled.
    pub fn batch_get_item(
        &mut self,
        caller: &str,
        table: &str,
        keys: &[Key],
        limit: Option<usize>,
        consistent: bool,
    ) -> Result<BatchGot, DynamoError> {
        if keys.is_empty() || keys.len() > MAX_BATCH_GET {
            return Err(DynamoError::Validation {
                reason: format!("BatchGetItem takes 1..=100 keys, {} given", keys.len()),
            });
        }
        let t = self.table(table)?;
        let (read, unread) = keys.split_at(limit.unwrap_or(keys.len()).min(keys.len()));
        let mut got = BatchGot {
            items: Vec::new(),
            unprocessed: unread.to_vec(),
        };
        let mut billed = Vec::with_capacity(read.len());
        for k in read {
            let stored = t.items.get(&(k.pk.clone(), k.sk.clone()));
            let size = stored.map_or(0, |s| s.size);
            got.items.extend(stored.map(|s| Arc::clone(&s.item)));
            billed.push((k.pk.as_str(), read_units_half(size, consistent)));
        }
        let half = billed.iter().map(|(_, h)| h).sum();
        self.bill(caller, None, "BatchGetItem", half, 0);
        for (pk, h) in billed {
            self.meter(pk, h, 0);
        }
        Ok(got)
    }

    /// PutItem, replacing the whole item, if `cond` holds on the item stored.
    pub fn put_item(
        &mut self,
        caller: &str,
        table: &str,
        item: Item,
        cond: Option<&Cond>,
    ) -> Result<(), DynamoError> {
        let k = key_of(&item)?;
        let pk = k.0.clone();
        let size = item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(DynamoError::Validation {
                reason: format!("item of {size} bytes exceeds 400 KB"),
            });
        }
        let t = self.table_mut(table)?;
        let old = t.items.get(&k);
        let units = write_units(size.max(old.map_or(0, |s| s.size)));
        let ok = cond.is_none_or(|c| holds(c, old.map(|s| &*s.item)));
        if ok {
            t.store(k, Stored::new(item));
        }
        self.bill(caller, Some(&pk), "PutItem", 0, units);
        if ok {
            Ok(())
        } else {
            Err(DynamoError::ConditionalCheckFailed)
        }
    }

    /// UpdateItem; returns the item before and after the write.
    pub fn update_item(
        &mut self,
        caller: &str,
        table: &str,
        write: &TableWrite,
    ) -> Result<(Option<Item>, Item), DynamoError> {
        if write.key.pk.is_empty() || write.key.sk.is_empty() {
            return Err(DynamoError::Validation {
                reason: "key needs non-empty pk and sk".to_owned(),
            });
        }
        let t = self.table_mut(table)?;
        let k = (write.key.pk.clone(), write.key.sk.clone());
        let old = t.items.get(&k);
        let old_size = old.map_or(0, |s| s.size);
        let new = match table::update(write, old.map(|s| &*s.item)) {
            Ok(n) if item_size(&n) <= MAX_ITEM_BYTES => n,
            Ok(_) => {
                return Err(DynamoError::Validation {
                    reason: "item would exceed 400 KB".to_owned(),
                });
            }
            Err(Refused::Condition) => {
                self.bill(
                    caller,
                    Some(&write.key.pk),
                    "UpdateItem",
                    0,
                    write_units(old_size),
                );
                return Err(DynamoError::ConditionalCheckFailed);
            }
            Err(e) => {
                return Err(DynamoError::Validation {
                    reason: e.to_string(),
                });
            }
        };
        let units = write_units(old_size.max(item_size(&new)));
        let before = t
            .store(k, Stored::new(new.clone()))
            .map(|s| Arc::unwrap_or_clone(s.item));
        self.bill(caller, Some(&write.key.pk), "UpdateItem", 0, units);
        Ok((before, new))
    }

    /// DeleteItem if `cond` holds; deleting an absent item succeeds.
    pub fn delete_item(
        &mut self,
        caller: &str,
        table: &str,
        key: &Key,
        cond: Option<&Cond>,
    ) -> Result<(), DynamoError> {
        let t = self.table_mut(table)?;
        let k = (key.pk.clone(), key.sk.clone());
        let old = t.items.get(&k);
        let units = write_units(old.map_or(0, |s| s.size));
        let ok = cond.is_none_or(|c| holds(c, old.map(|s| &*s.item)));
        if ok {
            t.unstore(&k);
        }
        self.bill(caller, Some(&key.pk), "DeleteItem", 0, units);
        if ok {
            Ok(())
        } else {
            Err(DynamoError::ConditionalCheckFailed)
        }
    }

    fn page<'a>(
        stored: impl Iterator<Item = (&'a (String, String), &'a Stored)>,
        limit: Option<usize>,
    ) -> (Page, usize) {
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut last: Option<&(String, String)> = None;
        let mut last_key = None;
        for (k, item) in stored {
            if limit.is_some_and(|l| items.len() >= l) || bytes >= MAX_PAGE_BYTES {
                last_key = last.map(|(pk, sk)| Key {
                    pk: pk.clone(),
                    sk: sk.clone(),
                });
                break;
            }
            bytes += item.size;
            last = Some(k);
            items.push(Arc::clone(&item.item));
        }
        let page = Page {
            items: items.into(),
            last_key,
        };
        (page, bytes)
    }

    /// Query one partition, optionally `begins_with(sk, prefix)`, from `start` (exclusive).
    /// Every query of a partition that took no write since returns the same item list.
    pub fn query(
        &mut self,
        caller: &str,
        table: &str,
        q: &TableQuery,
        limit: Option<usize>,
        start: Option<&Key>,
        consistent: bool,
    ) -> Result<Page, DynamoError> {
        if limit == Some(0) {
            return Err(DynamoError::Validation {
                reason: "Limit must be at least 1".to_owned(),
            });
        }
        self.table(table)?;
        let after = match start {
            Some(s) if s.pk == q.pk => Some(s.sk.as_str()),
            Some(_) => {
                return Err(DynamoError::Validation {
                    reason: "ExclusiveStartKey is outside the queried partition".to_owned(),
                });
            }
            None => None,
        };
        let (page, bytes) = self.table_mut(table)?.page(q, after, limit);
        self.bill(
            caller,
            Some(&q.pk),
            "Query",
            read_units_half(bytes, consistent),
            0,
        );
        Ok(page)
    }

    /// How many items a query of `q` reads in all, unbilled: for simulators that size a
    /// fault's pages to the table.
    pub fn count(&self, table: &str, q: &TableQuery) -> usize {
        let Ok(t) = self.table(table) else { return 0 };
        t.partition(q, None).count()
    }

    /// Scan the whole table from `start` (exclusive).
    pub fn scan(
        &mut self,
        caller: &str,
        table: &str,
        limit: Option<usize>,
        start: Option<&Key>,
        consistent: bool,
    ) -> Result<Page, DynamoError> {
        let t = self.table(table)?;
        let after = start.map(|s| (s.pk.clone(), s.sk.clone()));
        let range = t
            .items
            .iter()
            .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a));
        let (page, bytes) = Self::page(range, limit);
        self.bill(caller, None, "Scan", read_units_half(bytes, consistent), 0);
        Ok(page)
    }

    /// DynamoDB's TTL at work: deletes, unbilled, one of the records that have ended (a dead
    /// instance's, a retired queue's), the `pick(n)`th of the `n` there are, and returns its key.
    /// `decode` makes of an item what [`decode_item`] does: a caller that keeps the items it
    /// decoded before passes its cache, since decoding every item afresh at each expiry was a
    /// twentieth of a level-1 run with the TTL fault on.
    ///
    /// [`decode_item`]: sqsbalancer_core::table::decode_item
    pub fn expire_ended(
        &mut self,
        table: &str,
        mut decode: impl FnMut(&Arc<Item>) -> Result<Record, DecodeError>,
        pick: impl FnOnce(usize) -> usize,
    ) -> Option<Key> {
        let t = self.tables.get_mut(table)?;
        let ended: Vec<(String, String)> = t
            .items
            .iter()
            .filter(|(_, s)| match decode(&s.item) {
                Ok(Record::Instance(r)) => r.status == sqsbalancer_core::Status::Dead,
                Ok(Record::Queue(r)) => r.retired,
                // Undecodable or of a kind this version does not know: never given a TTL.
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        if ended.is_empty() {
            return None;
        }
        let k = ended[pick(ended.len()).min(ended.len() - 1)].clone();
        t.unstore(&k);
        Some(Key { pk: k.0, sk: k.1 })
    }

    /// Stores `item` as is, unbilled: for tests that plant malformed items.
    pub fn plant(&mut self, table: &str, item: Item) -> Result<(), DynamoError> {
        let k = key_of(&item)?;
        self.table_mut(table)?.store(k, Stored::new(item));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: &str, pad: usize) -> Item {
        let mut i = Item::new();
        i.insert(PK.into(), Value::S(pk.into()));
        i.insert(SK.into(), Value::S(sk.into()));
        i.insert("pad".into(), Value::S("x".repeat(pad)));
        i
    }

    #[test]
    fn the_partition_peak_is_the_busiest_key_in_its_busiest_minute() {
        let mut d = FakeDynamo::new();
        d.create_table("t").unwrap();
        // Minute 0: 3 writes of 1 unit to p, 2 to q; minute 1: 4 to q and a strongly
        // consistent query of q (2 half units per 4 KB, at least one unit).
        for (at, pk, n) in [(0, "p", 3), (59_999, "q", 2), (60_000, "q", 4)] {
            d.set_now(Millis(at));
            for i in 0..n {
                d.put_item("a", "t", item(pk, &format!("s{at}-{i}"), 10), None)
                    .unwrap();
            }
        }
        let q = TableQuery {
            pk: "q".into(),
            sk_prefix: None,
            backward: false,
        };
        d.query("a", "t", &q, None, None, true).unwrap();
        let peak = d.partition_peak();
        assert_eq!(peak.write_units_per_s, 4.0 / 60.0);
        assert_eq!(peak.read_units_per_s, 1.0 / 60.0);
    }

    #[test]
    fn an_unchanged_partition_shares_its_page_and_a_write_to_it_is_read_at_once() {
        let mut d = FakeDynamo::new();
        d.create_table("t").unwrap();
        for (pk, sk) in [("p", "a"), ("p", "b"), ("q", "a")] {
            d.put_item("w", "t", item(pk, sk, 10), None).unwrap();
        }
        let q = |pk: &str| TableQuery {
            pk: pk.into(),
            sk_prefix: None,
            backward: false,
        };
        let sks = |page: &Page| -> Vec<String> {
            let sk = |i: &Item| match i.get(SK) {
                Some(Value::S(s)) => s.clone(),
                other => panic!("no sort key: {other:?}"),
            };
            page.items.iter().map(|i| sk(i)).collect()
        };
        let first = d.query("a", "t", &q("p"), None, None, true).unwrap();
        let again = d.query("b", "t", &q("p"), None, None, true).unwrap();
        assert!(Arc::ptr_eq(&first.items, &again.items), "one shared list");
        assert_eq!(
            d.usage("a"),
            d.usage("b"),
            "a cached page is billed the same"
        );
        // A write elsewhere leaves p's page shared; writes to p are read at once.
        d.put_item("w", "t", item("q", "b", 10), None).unwrap();
        let third = d.query("a", "t", &q("p"), None, None, true).unwrap();
        assert!(Arc::ptr_eq(&first.items, &third.items));
        d.put_item("w", "t", item("p", "c", 10), None).unwrap();
        let added = d.query("a", "t", &q("p"), None, None, true).unwrap();
        assert_eq!(sks(&added), ["a", "b", "c"]);
        let key = Key {
            pk: "p".into(),
            sk: "a".into(),
        };
        d.delete_item("w", "t", &key, None).unwrap();
        let page = d.query("a", "t", &q("p"), Some(1), None, true).unwrap();
        assert_eq!(sks(&page), ["b"]);
        let next = page.last_key.as_ref();
        let rest = d.query("a", "t", &q("p"), Some(1), next, true).unwrap();
        assert_eq!(sks(&rest), ["c"]);
    }

    #[test]
    fn capacity_is_billed_like_dynamodb() {
        let mut d = FakeDynamo::new();
        d.create_table("t").unwrap();
        // 2 + 2 + 3 + 2 + 3 + pad bytes: 4,100 bytes is two 4 KB read units and five 1 KB write units.
        d.put_item("a", "t", item("p", "s", 4_100 - 12), None)
            .unwrap();
        assert_eq!(d.usage("a").write_units, 5);
        let k = Key {
            pk: "p".into(),
            sk: "s".into(),
        };
        d.get_item("a", "t", &k, true).unwrap();
        d.get_item("a", "t", &k, false).unwrap();
        assert_eq!(d.usage("a").read_half_units, 4 + 2);
        // A failed condition is billed and changes nothing.
        let never = Cond::NotExists(PK);
        assert_eq!(
            d.put_item("b", "t", item("p", "s", 1), Some(&never)),
            Err(DynamoError::ConditionalCheckFailed)
        );
        assert_eq!(d.usage("b").write_units, 5);
        assert_eq!(d.usage("b").requests.get("PutItem"), Some(&1));
        assert_eq!(
            d.get_item("c", "t", &k, true).unwrap().unwrap()["pad"].size(),
            4_088
        );
        // A missing item still costs one unit.
        let none = Key {
            pk: "p".into(),
            sk: "zz".into(),
        };
        assert_eq!(d.get_item("c", "t", &none, false).unwrap(), None);
        assert_eq!(d.usage("c").read_half_units, 4 + 1);
    }

    #[test]
    fn query_pages_cover_the_partition_exactly_once() {
        let mut d = FakeDynamo::new();
        d.create_table("t").unwrap();
        for i in 0..2_500 {
            d.put_item("w", "t", item("p", &format!("queue#{i:05}"), 1_000), None)
                .unwrap();
        }
        d.put_item("w", "t", item("p", "instance#a", 10), None)
            .unwrap();
        d.put_item("w", "t", item("other", "queue#x", 10), None)
            .unwrap();
        let query = |prefix: &str, backward| TableQuery {
            pk: "p".into(),
            sk_prefix: (!prefix.is_empty()).then(|| prefix.into()),
            backward,
        };
        let mut read_all = |q: &TableQuery| {
            let (mut seen, mut start, mut pages) = (Vec::new(), None, 0);
            loop {
                let p = d
                    .query("r", "t", q, Some(700), start.as_ref(), true)
                    .unwrap();
                pages += 1;
                seen.extend(p.items.iter().map(|i| i[SK].clone()));
                match p.last_key {
                    Some(k) => start = Some(k),
                    None => break (seen, pages),
                }
            }
        };
        let (seen, pages) = read_all(&query("queue#", false));
        assert_eq!(seen.len(), 2_500);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(pages, 4);
        // Backwards, pages go on below the last key, and a prefix read from its far end
        // skips what sorts after it.
        let (back, pages) = read_all(&query("queue#", true));
        assert_eq!(back, seen.iter().rev().cloned().collect::<Vec<_>>());
        assert_eq!(pages, 4);
        let (whole, _) = read_all(&query("", true));
        assert_eq!(whole.len(), 2_501);
        assert_eq!(whole.last(), Some(&Value::S("instance#a".into())));
        let (instances, _) = read_all(&query("instance#", true));
        assert_eq!(instances, [Value::S("instance#a".into())]);
        let q = query("queue#", false);
        // The 1 MB cap cuts pages without a limit too.
        let p = d.query("r2", "t", &q, None, None, true).unwrap();
        assert!(p.items.len() < 1_100 && p.last_key.is_some());
        let bytes: usize = p.items.iter().map(|i| item_size(i)).sum();
        assert!(bytes >= MAX_PAGE_BYTES);
        assert_eq!(
            d.usage("r2").read_half_units,
            2 * bytes.div_ceil(4096) as u64
        );
        let (mut scanned, mut start) = (0, None);
        loop {
            let p = d.scan("s", "t", Some(999), start.as_ref(), false).unwrap();
            scanned += p.items.len();
            match p.last_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        assert_eq!(scanned, 2_502);
        assert_eq!(
            d.query("r", "nope", &q, None, None, true),
            Err(DynamoError::ResourceNotFound {
                table: "nope".into()
            })
        );
    }

    #[test]
    fn batch_get_and_delete() {
        let mut d = FakeDynamo::new();
        d.create_table("t").unwrap();
        d.put_item("w", "t", item("p", "a", 1), None).unwrap();
        let k = |s: &str| Key {
            pk: "p".into(),
            sk: s.into(),
        };
        let got = d.batch_get_item("r", "t", &[k("a"), k("b")], None, true);
        assert_eq!(got.unwrap().items.len(), 1);
        assert_eq!(
            d.usage("r").read_half_units,
            4,
            "a strongly consistent read unit a key, found or not"
        );
        let got = d.batch_get_item("r", "t", &[k("b"), k("a")], Some(1), true);
        let got = got.unwrap();
        assert!(got.items.is_empty(), "b has no item");
        assert_eq!(got.unprocessed, [k("a")], "a is left for the next call");
        assert_eq!(
            d.partition_peak().read_units_per_s,
            3.0 / 60.0,
            "each key read is metered against its partition, none for a key left unread"
        );
        assert!(d.batch_get_item("r", "t", &[], None, true).is_err());
        let many: Vec<Key> = (0..=MAX_BATCH_GET).map(|i| k(&i.to_string())).collect();
        assert!(d.batch_get_item("r", "t", &many, None, true).is_err());
        assert_eq!(
            d.delete_item("w", "t", &k("a"), Some(&Cond::NotExists(PK))),
            Err(DynamoError::ConditionalCheckFailed)
        );
        d.delete_item("w", "t", &k("a"), Some(&Cond::Exists(PK)))
            .unwrap();
        assert_eq!(d.get_item("r", "t", &k("a"), true).unwrap(), None);
        assert!(matches!(
            d.put_item("w", "t", item("p", "big", MAX_ITEM_BYTES), None),
            Err(DynamoError::Validation { .. })
        ));
    }
}

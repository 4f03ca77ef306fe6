//! What the simulated nodes read, decoded once for all of them: the records of the fake
//! table's items (once per stored version) and the ids of the queues the fake SQS lists.
//!
//! A stored item is immutable and shared (`Arc`) by every read that returns it, so its record
//! is the same every time: ten nodes each reading a thousand-item table would otherwise decode
//! the same items over and over, most of a level-1 run's time (G7). A write stores a new
//! `Arc`, which decodes afresh; what is decoded is exactly what [`table::decode_item`] makes of
//! the item.

#![allow(
    clippy::disallowed_types,
    reason = "looked up by key only, never iterated in an order that reaches the output"
)]

use sqsbalancer_core::table::{self, DecodeError, Item, Record};
use sqsbalancer_core::{InstanceId, QueueId, QueuePage, QueueRecord};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};
use std::sync::Arc;

/// Hashes an item's address: addresses are distinct already, so one multiply spreads them,
/// where a tree lookup per item of every read was a twentieth of level 1's time (G7).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A page of a query as the fake table shares it.
type SharedItems = Arc<[Arc<Item>]>;

/// What decoding a page's items gave: its queue records as one page, whose sort words are
/// then cut once for every node that reads it, and what its other items gave, each beside
/// its place in the page.
struct PageRecords {
    /// The queue records, in the page's order.
    queues: QueuePage,
    /// Every other item's place and what decoding it gave, in the page's order.
    others: Vec<(usize, Result<Record, DecodeError>)>,
}

/// Decoded records by item and by page, each entry holding its item or page so the address
/// cannot be reused while it is cached.
#[derive(Default)]
pub(crate) struct DecodedItems {
    /// Record of each item still cached, keyed by the item's address.
    records: HashMap<usize, (Arc<Item>, Record), BuildHasherDefault<AddressHasher>>,
    /// Entries at the last sweep: the next sweep waits until the cache has doubled.
    swept_at: usize,
    /// Records of each page still cached, keyed by the page's address: the fake table hands
    /// every read of an unchanged partition the same page, so a fleet's reads look up a page
    /// once rather than each of its items.
    pages: HashMap<usize, (SharedItems, Arc<PageRecords>), BuildHasherDefault<AddressHasher>>,
    /// Pages at the last sweep of `pages`.
    pages_swept_at: usize,
}

impl DecodedItems {
    /// What [`table::collect_records`] makes of the items of `pages`, in order, but with the
    /// queue records of each page as a page of their own, shared by every read of it.
    /// Queue ids are the ones `ids` shares.
    pub(crate) fn collect(&mut self, pages: &[SharedItems], ids: &mut SharedIds) -> table::Decoded {
        let records: Vec<Arc<PageRecords>> = pages.iter().map(|p| self.page(p, ids)).collect();
        let others = pages
            .iter()
            .zip(&records)
            .flat_map(|(p, r)| (r.others.iter()).map(|(i, record)| (&*p[*i], record.clone())));
        let mut decoded = table::collect_records(others);
        let queues = records.iter().map(|r| &r.queues);
        decoded.queues = queues
            .filter(|q| !q.records().is_empty())
            .cloned()
            .collect();
        decoded
    }

    /// The records of `page`'s items, decoded on the page's first read only.
    fn page(&mut self, page: &SharedItems, ids: &mut SharedIds) -> Arc<PageRecords> {
        let key = Arc::as_ptr(page).cast::<()>() as usize;
        if let Some((_, records)) = self.pages.get(&key) {
            return Arc::clone(records);
        }
        // Sized for a page of queue records, most pages: growing it item by item was a
        // fortieth of a rolling 1,000-node fleet's time.
        let (mut queues, mut others) = (Vec::with_capacity(page.len()), Vec::new());
        for (i, item) in page.iter().enumerate() {
            match self.decode(item, ids) {
                Ok(Record::Queue(r)) => queues.push(r),
                other => others.push((i, other)),
            }
        }
        let records = Arc::new(PageRecords {
            queues: QueuePage::new(queues),
            others,
        });
        self.pages
            .insert(key, (Arc::clone(page), Arc::clone(&records)));
        if self.pages.len() > 2 * self.pages_swept_at.max(64) {
            // Pages the table no longer hands out will not be read again.
            self.pages.retain(|_, (p, _)| Arc::strong_count(p) > 1);
            self.pages_swept_at = self.pages.len();
        }
        records
    }

    /// What [`table::decode_item`] makes of `item`, decoded on its first read only, with the
    /// queue and instance ids that `ids` shares.
    pub(crate) fn decode(
        &mut self,
        item: &Arc<Item>,
        ids: &mut SharedIds,
    ) -> Result<Record, DecodeError> {
        let key = Arc::as_ptr(item) as usize;
        if let Some((_, record)) = self.records.get(&key) {
            return Ok(record.clone());
        }
        let record = match table::decode_item(item)? {
            Record::Queue(r) => Record::Queue(ids.share(r)),
            Record::Instance(mut r) => {
                r.id = ids.instance(&r.id);
                Record::Instance(r)
            }
            other => other,
        };
        self.records.insert(key, (Arc::clone(item), record.clone()));
        if self.records.len() > 2 * self.swept_at.max(1024) {
            // Items nothing else holds were overwritten or deleted: they will not be read again.
            self.records.retain(|_, (i, _)| Arc::strong_count(i) > 1);
            self.swept_at = self.records.len();
        }
        Ok(record)
    }
}

/// The id of each queue URL a listing returned and of each instance, made once for every
/// node: each node's listing would otherwise allocate an id per queue of its own, and the ids
/// it defers or keeps were a sixth of a large fleet's memory at start-up (G11); and a node
/// that finds each record's owner among its members' lives compares the ids by pointer.
#[derive(Default)]
pub(crate) struct SharedIds {
    /// The id of each URL seen (`None`: not a queue id), hashed with fixed keys.
    ids: HashMap<String, Option<QueueId>, BuildHasherDefault<DefaultHasher>>,
    /// Each instance id seen, by its text.
    instances: HashMap<String, InstanceId, BuildHasherDefault<DefaultHasher>>,
    /// The last listing mapped to ids.
    last_listing: Option<Listed>,
}

/// A listing's URLs and the ids they map to.
struct Listed {
    /// The URLs, as the fake shared them.
    urls: Arc<[String]>,
    /// Their ids, in order, shared by every node the listing goes to.
    ids: Arc<[QueueId]>,
}

impl SharedIds {
    /// `record` with the ids of its queue and owner that this shares: a node then compares
    /// the record's queue with a listed one, or with the same queue's record in another read,
    /// by pointer rather than by URL (1,000 nodes comparing 100,000 listed queues with their
    /// views once a minute were nearly all of a steady 1,000 × 100,000 run's time), and its
    /// owner with its members' lives likewise (a tenth of a 100 × 10,000 day's time).
    pub(crate) fn share(&mut self, record: Arc<QueueRecord>) -> Arc<QueueRecord> {
        let mut shared = Arc::unwrap_or_clone(record);
        if let Some(id) = self.get(shared.queue.as_str()) {
            shared.queue = id;
        }
        if let Some(owner) = &mut shared.owner {
            owner.id = self.instance(&owner.id);
        }
        Arc::new(shared)
    }

    /// The shared copy of `id`, the same `Arc` each time it is asked for.
    pub(crate) fn instance(&mut self, id: &InstanceId) -> InstanceId {
        if let Some(shared) = self.instances.get(id.as_str()) {
            return shared.clone();
        }
        self.instances.insert(id.as_str().to_owned(), id.clone());
        id.clone()
    }

    /// The ids of a listing's URLs (those that are queue URLs), in order. A listing the
    /// fake shares with the last one asked for is not looked up again, and every node gets
    /// the same list: mapping each node's listing URL by URL was half of a steady 300 ×
    /// 30,000 run's time, and copying the list for each node a sixteenth.
    pub(crate) fn listed(&mut self, urls: &Arc<[String]>) -> Arc<[QueueId]> {
        if let Some(last) = &self.last_listing
            && Arc::ptr_eq(&last.urls, urls)
        {
            return Arc::clone(&last.ids);
        }
        let ids: Arc<[QueueId]> = urls.iter().filter_map(|u| self.get(u)).collect();
        self.last_listing = Some(Listed {
            urls: Arc::clone(urls),
            ids: Arc::clone(&ids),
        });
        ids
    }

    /// The id of `url`, the same `Arc` each time it is asked for.
    pub(crate) fn get(&mut self, url: &str) -> Option<QueueId> {
        if let Some(id) = self.ids.get(url) {
            return id.clone();
        }
        let id = QueueId::new(url).ok();
        self.ids.insert(url.to_owned(), id.clone());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqsbalancer_core::table::Value;

    fn item(epoch: u64) -> Arc<Item> {
        let mut i = Item::new();
        i.insert("pk".into(), Value::S("app#a".into()));
        i.insert("sk".into(), Value::S("queue#q".into()));
        i.insert("epoch".into(), Value::N(epoch.to_string()));
        i.insert("retired".into(), Value::Bool(false));
        Arc::new(i)
    }

    #[test]
    fn a_cached_record_is_what_decoding_the_item_gives() {
        let mut cache = DecodedItems::default();
        let ids = &mut SharedIds::default();
        for epoch in 1..3000 {
            let stored = item(epoch);
            let first = cache.decode(&stored, ids).unwrap();
            assert_eq!(first, table::decode_item(&stored).unwrap());
            assert_eq!(cache.decode(&stored, ids).unwrap(), first);
        }
        assert!(cache.records.len() < 3000, "overwritten items are swept");
    }

    #[test]
    fn pages_collect_to_what_decoding_their_items_gives() {
        let mut cache = DecodedItems::default();
        let page: SharedItems = (1..4).map(item).collect();
        let bad: SharedItems = Arc::from([Arc::new(Item::new())]);
        let pages = [Arc::clone(&page), bad, page];
        // Every record in the order read, with queue records' pages run together.
        let flat = |d: table::Decoded| {
            let queues: Vec<_> = d.queues.iter().flat_map(|p| p.records().to_vec()).collect();
            (d.instances, queues, d.skipped, d.unreadable)
        };
        for _ in 0..2 {
            let items = pages.iter().flat_map(|p| p.iter());
            let fresh = table::collect_records(items.map(|i| (&**i, table::decode_item(i))));
            let cached = cache.collect(&pages, &mut SharedIds::default());
            assert_eq!(
                cached.queues.len(),
                2,
                "a page of queue records per page read"
            );
            assert_eq!(flat(cached), flat(fresh));
        }
        assert_eq!(cache.pages.len(), 2, "each page decoded once");
    }

    #[test]
    fn an_undecodable_item_is_an_error_every_time() {
        let mut cache = DecodedItems::default();
        let bad = Arc::new(Item::new());
        let ids = &mut SharedIds::default();
        assert!(cache.decode(&bad, ids).is_err());
        assert!(cache.decode(&bad, ids).is_err());
    }

    #[test]
    fn a_decoded_record_names_its_queue_by_the_listed_id() {
        let mut cache = DecodedItems::default();
        let ids = &mut SharedIds::default();
        let listed = ids.get("q").unwrap();
        let Ok(Record::Queue(r)) = cache.decode(&item(1), ids) else {
            panic!("a queue record");
        };
        assert!(std::ptr::eq(r.queue.as_str(), listed.as_str()), "one id");
        assert_eq!(Record::Queue(r), table::decode_item(&item(1)).unwrap());
    }

    #[test]
    fn an_owner_and_its_instance_record_share_one_id() {
        let mut cache = DecodedItems::default();
        let ids = &mut SharedIds::default();
        let mut owned = Item::clone(&item(1));
        owned.insert(table::OWNER_ID.into(), Value::S("i-1".into()));
        owned.insert(table::OWNER_INC.into(), Value::num(2));
        let mut member = Item::new();
        member.insert("pk".into(), Value::S("app#a".into()));
        member.insert(
            "sk".into(),
            Value::S(format!("{}i-1", table::INSTANCE_PREFIX)),
        );
        member.insert(table::STATUS.into(), Value::S("active".into()));
        for (name, n) in [
            (table::CAPACITY, 1),
            (table::INCARNATION, 2),
            (table::HEARTBEAT, 5),
        ] {
            member.insert(name.into(), Value::num(n));
        }
        let (owned, member) = (Arc::new(owned), Arc::new(member));
        let Ok(Record::Instance(i)) = cache.decode(&member, ids) else {
            panic!("an instance record");
        };
        let Ok(Record::Queue(q)) = cache.decode(&owned, ids) else {
            panic!("a queue record");
        };
        let owner = q.owner.as_ref().expect("an owner");
        assert!(std::ptr::eq(owner.id.as_str(), i.id.as_str()), "one id");
        assert_eq!(Record::Queue(q), table::decode_item(&owned).unwrap());
        assert_eq!(Record::Instance(i), table::decode_item(&member).unwrap());
    }

    #[test]
    fn a_url_listed_again_gives_the_same_id() {
        let mut ids = SharedIds::default();
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/q-1";
        let first = ids.get(url).unwrap();
        let again = ids.get(url).unwrap();
        assert_eq!(first.as_str(), url);
        assert!(
            std::ptr::eq(first.as_str(), again.as_str()),
            "one allocation"
        );
        assert_eq!(first, QueueId::new(url).unwrap());
        assert!(ids.get("not a url").is_none());
        assert!(ids.get("not a url").is_none());
    }

    #[test]
    fn a_shared_listing_maps_to_the_same_ids_and_a_new_one_is_mapped_afresh() {
        let mut ids = SharedIds::default();
        let url = |i| format!("https://sqs.eu-west-1.amazonaws.com/123456789012/q-{i}");
        let listing: Arc<[String]> = (0..3).map(url).chain(["bad url".to_owned()]).collect();
        let first = ids.listed(&listing);
        let again = ids.listed(&listing);
        let names: Vec<&str> = first.iter().map(QueueId::as_str).collect();
        assert_eq!(names, [url(0), url(1), url(2)]);
        assert!(Arc::ptr_eq(&first, &again));
        let grown: Arc<[String]> = (0..4).map(url).collect();
        let mapped = ids.listed(&grown);
        assert_eq!(mapped.len(), 4);
        assert_eq!(mapped[3].as_str(), url(3));
        assert!(std::ptr::eq(mapped[0].as_str(), first[0].as_str()));
    }
}

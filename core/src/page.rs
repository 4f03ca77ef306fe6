//! A page of queue records as a read returned them, with the words that sort them cut once.
//!
//! A node merges every whole-table read into its view in queue order, so it sorts the read
//! first. Comparing URLs whole, through two pointers each, was nearly half of a 1,000-node
//! simulation's time, and even cutting a word from each URL loaded every record once per node
//! and read. A page cuts its words when it is made: the simulator hands one page to every node
//! that reads an unchanged partition, so its words are cut once for all of them, and a node
//! sorts a read of unchanged pages without loading a record.

use crate::effect::QueueRecord;
use std::fmt;
use std::sync::Arc;

/// Queue records read together (one page of a query, or a whole read), shared: a clone is
/// one reference count however long the page.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct QueuePage(Arc<Parts>);

/// What a page holds.
#[derive(Default, PartialEq, Eq)]
struct Parts {
    /// The records, in the order read.
    records: Vec<Arc<QueueRecord>>,
    /// How many leading bytes the URLs of all of them share.
    shared: usize,
    /// Each record's sort word, [`word_after`] its URL's first `shared` bytes.
    words: Vec<u64>,
}

impl QueuePage {
    /// A page of `records`, in the order read; their sort words are cut here, once.
    pub fn new(records: Vec<Arc<QueueRecord>>) -> QueuePage {
        let shared = shared_prefix(records.iter().map(|r| url(r)));
        let words = records.iter().map(|r| word_after(url(r), shared)).collect();
        QueuePage(Arc::new(Parts {
            records,
            shared,
            words,
        }))
    }

    /// The records, in the order read.
    pub fn records(&self) -> &[Arc<QueueRecord>] {
        &self.0.records
    }
}

impl fmt::Debug for QueuePage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.records()).finish()
    }
}

/// The records of `pages` sorted by queue, keeping the first read of each queue's: exactly
/// what a stable sort by URL and a dedup would give. A read's pages come sorted within each
/// partition key, runs that a stable sort merges.
pub(crate) fn sorted_unique(pages: &[QueuePage]) -> Vec<&Arc<QueueRecord>> {
    let shared = shared_by_all(pages);
    let len = pages.iter().map(|p| p.0.records.len()).sum();
    let mut keyed: Vec<(u64, &Arc<QueueRecord>)> = Vec::with_capacity(len);
    for p in pages {
        let p = &*p.0;
        if p.shared == shared {
            keyed.extend(p.words.iter().copied().zip(&p.records));
        } else {
            keyed.extend(p.records.iter().map(|r| (word_after(url(r), shared), r)));
        }
    }
    keyed.sort_by(|(ka, a), (kb, b)| ka.cmp(kb).then_with(|| a.queue.cmp(&b.queue)));
    keyed.dedup_by(|(kl, later), (kf, first)| kl == kf && later.queue == first.queue);
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// A number of leading bytes that every URL of `pages` shares, found from each page's first
/// URL: each page's URLs share its own `shared` bytes with its first.
fn shared_by_all(pages: &[QueuePage]) -> usize {
    let mut firsts = pages
        .iter()
        .filter_map(|p| Some((p.0.shared, url(p.0.records.first()?))));
    let Some((mut shared, first)) = firsts.next() else {
        return 0;
    };
    for (own, u) in firsts {
        shared = shared.min(own).min(common_prefix(first, u));
    }
    shared
}

/// How many leading bytes all of `urls` share (0 for none).
fn shared_prefix<'a>(mut urls: impl Iterator<Item = &'a [u8]>) -> usize {
    let Some(first) = urls.next() else { return 0 };
    let mut shared = first.len();
    for u in urls {
        if !u.starts_with(&first[..shared]) {
            shared = common_prefix(&first[..shared], u);
        }
    }
    shared
}

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A record's queue URL, as bytes.
fn url(r: &QueueRecord) -> &[u8] {
    r.queue.as_str().as_bytes()
}

/// The eight bytes of `url` after its first `shared`, as a big-endian word: URLs that share
/// their first `shared` bytes compare as these words do, until two words tie.
fn word_after(url: &[u8], shared: usize) -> u64 {
    let tail = &url[shared..];
    // Most tails have eight bytes to read at once; copying a tail's length of bytes was a
    // call to `memmove` per record, a twentieth of a rolling fleet's time.
    if let Some(w) = tail.first_chunk::<8>() {
        return u64::from_be_bytes(*w);
    }
    let mut w = [0u8; 8];
    w[..tail.len()].copy_from_slice(tail);
    // A URL holds no NUL, so a shorter tail padded with zeros sorts first, as it should.
    u64::from_be_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::QueueId;

    fn rec(q: &str, epoch: u64) -> Arc<QueueRecord> {
        Arc::new(QueueRecord {
            queue: QueueId::new(q).expect("valid"),
            owner: None,
            epoch,
            retired: false,
        })
    }

    proptest::proptest! {
        #[test]
        fn pages_are_sorted_and_deduplicated_as_their_records_by_url(
            tails in proptest::collection::vec(
                (0usize..3, "[a-c]{0,12}", 0u64..3),
                0..40,
            ),
            cuts in proptest::collection::vec(0usize..40, 0..5),
        ) {
            let prefixes = ["https://sqs.eu-west-1.amazonaws.com/1/q", "https://sqs.eu-west-1.amazonaws.com/1/", "q"];
            let records: Vec<Arc<QueueRecord>> = tails
                .iter()
                .map(|(p, tail, epoch)| rec(&format!("{}{tail}", prefixes[*p]), *epoch))
                .collect();
            let mut expected = records.clone();
            expected.sort_by(|a, b| a.queue.cmp(&b.queue));
            expected.dedup_by(|later, first| later.queue == first.queue);
            // The records cut into pages at the drawn places, in order.
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(records.len())).collect();
            cuts.sort_unstable();
            let mut pages = Vec::new();
            let mut from = 0;
            for to in cuts.into_iter().chain([records.len()]) {
                pages.push(QueuePage::new(records[from..to].to_vec()));
                from = to;
            }
            let sorted = sorted_unique(&pages);
            // The same records in the same order: of equal URLs, the first read.
            let ptrs = |v: &[&Arc<QueueRecord>]| v.iter().map(|r| Arc::as_ptr(r)).collect::<Vec<_>>();
            proptest::prop_assert_eq!(ptrs(&sorted), ptrs(&expected.iter().collect::<Vec<_>>()));
        }
    }
}

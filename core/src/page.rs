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

/// Where each record of a read sits once the read is sorted by queue: what lets the next
/// read of the same queues, cut into the same pages, be put in order without sorting it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    /// How many records each page held, in the order read.
    lens: Vec<u32>,
    /// Each record's place in the sorted read, page after page in the order read.
    at: Vec<u32>,
}

impl Layout {
    /// The records of `pages` that differ from `sorted`'s, the records this layout was made
    /// for (or others of the same queues), each with its place in `sorted`, in place order:
    /// if `pages` hold exactly those queues cut into pages as before, the records that
    /// [`sorted_unique`] would give where it gives no record of `sorted` itself. `None`
    /// otherwise.
    pub(crate) fn differing<'a>(
        &self,
        pages: &'a [QueuePage],
        sorted: &[Arc<QueueRecord>],
    ) -> Option<Vec<(usize, &'a Arc<QueueRecord>)>> {
        let lens = pages.iter().map(|p| p.records().len() as u32);
        if self.at.len() != sorted.len() || !lens.eq(self.lens.iter().copied()) {
            return None;
        }
        // `at` holds each place once (it was made so), so each place is checked once.
        let mut differing = Vec::new();
        let records = pages.iter().flat_map(|p| p.records());
        for (r, at) in records.zip(&self.at) {
            let was = &sorted[*at as usize];
            // The view's own copy of this very record: no URL to compare.
            if Arc::ptr_eq(r, was) {
                continue;
            }
            if r.queue != was.queue {
                return None;
            }
            differing.push((*at as usize, r));
        }
        differing.sort_unstable_by_key(|(at, _)| *at);
        Some(differing)
    }
}

/// The records of `pages` sorted by queue, keeping the first read of each queue's: exactly
/// what a stable sort by URL and a dedup would give. A read's pages come sorted within each
/// partition key, runs that a stable sort merges. The layout comes with them unless a queue
/// was read twice.
pub(crate) fn sorted_unique(pages: &[QueuePage]) -> (Vec<&Arc<QueueRecord>>, Option<Layout>) {
    let shared = shared_by_all(pages);
    let flat: Vec<&Arc<QueueRecord>> = pages.iter().flat_map(|p| p.records()).collect();
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(flat.len());
    for p in pages {
        let p = &*p.0;
        let from = keyed.len() as u32;
        if p.shared == shared {
            keyed.extend(p.words.iter().copied().zip(from..));
        } else {
            let words = p.records.iter().map(|r| word_after(url(r), shared));
            keyed.extend(words.zip(from..));
        }
    }
    let queue = |i: u32| &flat[i as usize].queue;
    keyed.sort_by(|(ka, a), (kb, b)| ka.cmp(kb).then_with(|| queue(*a).cmp(queue(*b))));
    let mut read: Vec<&Arc<QueueRecord>> = Vec::with_capacity(flat.len());
    let mut at = vec![0u32; flat.len()];
    let (mut last, mut twice) = (None, false);
    for (k, i) in keyed {
        if last.is_some_and(|(lk, li)| lk == k && queue(li) == queue(i)) {
            twice = true;
            continue;
        }
        last = Some((k, i));
        at[i as usize] = read.len() as u32;
        read.push(flat[i as usize]);
    }
    let lens = pages.iter().map(|p| p.records().len() as u32).collect();
    (read, (!twice).then_some(Layout { lens, at }))
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

    const PREFIXES: [&str; 3] = [
        "https://sqs.eu-west-1.amazonaws.com/1/q",
        "https://sqs.eu-west-1.amazonaws.com/1/",
        "q",
    ];

    /// Records from drawn (prefix, tail, epoch) triples.
    fn drawn(tails: &[(usize, String, u64)]) -> Vec<Arc<QueueRecord>> {
        let url = |p: usize, tail: &str| format!("{}{tail}", PREFIXES[p]);
        tails.iter().map(|(p, t, e)| rec(&url(*p, t), *e)).collect()
    }

    /// `records` cut into pages at the drawn places, in order.
    fn cut(records: &[Arc<QueueRecord>], cuts: &[usize]) -> Vec<QueuePage> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| (*c).min(records.len())).collect();
        cuts.sort_unstable();
        let mut pages = Vec::new();
        let mut from = 0;
        for to in cuts.into_iter().chain([records.len()]) {
            pages.push(QueuePage::new(records[from..to].to_vec()));
            from = to;
        }
        pages
    }

    fn ptrs(v: &[&Arc<QueueRecord>]) -> Vec<*const QueueRecord> {
        v.iter().map(|r| Arc::as_ptr(r)).collect()
    }

    proptest::proptest! {
        #[test]
        fn pages_are_sorted_and_deduplicated_as_their_records_by_url(
            tails in proptest::collection::vec((0usize..3, "[a-c]{0,12}", 0u64..3), 0..40),
            cuts in proptest::collection::vec(0usize..40, 0..5),
        ) {
            let records = drawn(&tails);
            let mut expected = records.clone();
            expected.sort_by(|a, b| a.queue.cmp(&b.queue));
            expected.dedup_by(|later, first| later.queue == first.queue);
            let pages = cut(&records, &cuts);
            let (sorted, layout) = sorted_unique(&pages);
            // The same records in the same order: of equal URLs, the first read.
            proptest::prop_assert_eq!(ptrs(&sorted), ptrs(&expected.iter().collect::<Vec<_>>()));
            // A layout exactly when no queue was read twice, giving each record its place.
            proptest::prop_assert_eq!(layout.is_some(), expected.len() == records.len());
            for (r, at) in records.iter().zip(layout.map(|l| l.at).unwrap_or_default()) {
                proptest::prop_assert!(Arc::ptr_eq(r, sorted[at as usize]));
            }
        }

        /// A layout finds the records of a later read that differ from those it was made for
        /// exactly as sorting the read would, and refuses no read whose pages hold the same
        /// queues in the same order.
        #[test]
        fn a_layout_finds_what_differs_in_a_read_as_sorting_it_would(
            tails in proptest::collection::vec((0usize..3, "[a-c]{0,6}", 0u64..3), 0..30),
            cuts in proptest::collection::vec(0usize..30, 0..4),
            edits in proptest::collection::vec((0u8..4, "[a-c]{0,6}"), 30),
            recut in proptest::collection::vec(0usize..30, 0..4),
            same_cut in proptest::bool::ANY,
        ) {
            let before = drawn(&tails);
            let first = cut(&before, &cuts);
            let (sorted, layout) = sorted_unique(&first);
            let Some(layout) = layout else { return Ok(()) };
            let view: Vec<Arc<QueueRecord>> = sorted.into_iter().cloned().collect();
            // The same records (0), others of the same queues (1, 2), or other queues (3).
            let after: Vec<Arc<QueueRecord>> = before
                .iter()
                .zip(&edits)
                .map(|(r, (edit, tail))| match edit {
                    0 => Arc::clone(r),
                    1 | 2 => rec(r.queue.as_str(), r.epoch + 1),
                    _ => rec(&format!("{}{tail}", PREFIXES[0]), r.epoch),
                })
                .collect();
            let same_queues = edits.iter().take(before.len()).all(|(e, _)| *e < 3);
            let pages = cut(&after, if same_cut { &cuts } else { &recut });
            let differing = layout.differing(&pages, &view);
            if same_cut && same_queues {
                proptest::prop_assert!(differing.is_some());
            }
            if let Some(differing) = differing {
                let mut merged: Vec<&Arc<QueueRecord>> = view.iter().collect();
                for (at, r) in differing {
                    proptest::prop_assert!(!Arc::ptr_eq(merged[at], r));
                    merged[at] = r;
                }
                proptest::prop_assert_eq!(ptrs(&merged), ptrs(&sorted_unique(&pages).0));
            }
        }
    }
}

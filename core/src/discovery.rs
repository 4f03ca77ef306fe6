//! Queue discovery: which listed queues the fleet should share.
//!
//! The filter is a regex on the queue *name* (the last segment of the URL), as in the Go library.
//! To keep ListQueues cheap, the runtime lists with the longest literal prefix of an anchored
//! pattern (`^orders-[0-9]+` lists with `orders-`), then the regex decides.

use crate::error::{Error, Result};
use crate::ids::QueueId;
use crate::time::Millis;
use regex::Regex;
use std::collections::{BTreeMap, VecDeque};

/// A compiled queue filter.
#[derive(Clone, Debug)]
pub struct Filter {
    regex: Option<Regex>,
    prefix: String,
}

impl Filter {
    /// Compiles `pattern` (`None` takes every queue).
    pub fn new(pattern: Option<&str>) -> Result<Filter> {
        let Some(p) = pattern else {
            return Ok(Filter {
                regex: None,
                prefix: String::new(),
            });
        };
        let regex = Regex::new(p).map_err(|e| Error::InvalidConfig {
            field: "queue_filter_pattern",
            rule: format!("is not a valid regex: {e}"),
        })?;
        Ok(Filter {
            regex: Some(regex),
            prefix: literal_prefix(p),
        })
    }

    /// The prefix to pass to ListQueues.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `queue` is one the fleet should share.
    pub fn matches(&self, queue: &QueueId) -> bool {
        self.regex.as_ref().is_none_or(|r| r.is_match(queue.name()))
    }
}

/// The longest literal text every match of `pattern` starts with, or `""` when unanchored.
///
/// Conservative: it stops at the first metacharacter, drops a character followed by a
/// quantifier, and gives up on alternation anywhere in the pattern.
pub fn literal_prefix(pattern: &str) -> String {
    let Some(rest) = pattern.strip_prefix('^') else {
        return String::new();
    };
    if pattern.contains('|') {
        return String::new();
    }
    let mut out: Vec<char> = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let lit = match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => e,
                _ => break,
            },
            c if c.is_alphanumeric() || c == '-' || c == '_' => c,
            '?' | '*' | '{' => {
                out.pop();
                break;
            }
            _ => break,
        };
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            break;
        }
        out.push(lit);
    }
    out.into_iter().collect()
}

/// A listed queue to create if its first creator has not, with the epoch of the tombstone to
/// revive, if any.
pub(crate) type Creation = (QueueId, Option<u64>);

/// Listed queues whose record a peer is to create first, in one group per listing: each
/// group waits for its due time, then those the view still lacks are created here. At a
/// fleet's start every node defers almost every queue, so a group is a sorted run of ids
/// (half the size of an id beside an optional epoch), and the few tombstones to revive keep
/// their epoch aside; the next due time is the first group's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deferred {
    /// The groups in the order deferred (so by due time), each sorted by queue, no queue in two.
    groups: VecDeque<(Millis, Vec<QueueId>)>,
    /// The epoch of the tombstone to revive, for the deferred queues that have one.
    revive: BTreeMap<QueueId, u64>,
}

impl Deferred {
    /// Defers `creations` (sorted by queue) until `due`, no earlier than any group before;
    /// a queue deferred already keeps its first due time and epoch.
    pub fn defer(&mut self, due: Millis, creations: Vec<Creation>) {
        debug_assert!(creations.is_sorted_by(|a, b| a.0 < b.0));
        let mut group = Vec::with_capacity(creations.len());
        for (q, epoch) in creations {
            if self.contains(&q) {
                continue;
            }
            if let Some(e) = epoch {
                self.revive.insert(q.clone(), e);
            }
            group.push(q);
        }
        if group.is_empty() {
            return;
        }
        let due = self.groups.back().map_or(due, |(last, _)| due.max(*last));
        self.groups.push_back((due, group));
    }

    /// Whether `q` waits in some group.
    fn contains(&self, q: &QueueId) -> bool {
        self.groups.iter().any(|(_, g)| g.binary_search(q).is_ok())
    }

    /// When the first group is due, if any waits.
    pub fn next_due(&self) -> Option<Millis> {
        self.groups.front().map(|(due, _)| *due)
    }

    /// Takes every queue due by `by`, sorted by queue.
    pub fn take_due(&mut self, by: Millis) -> Vec<Creation> {
        let mut due = Vec::new();
        while let Some((_, g)) = self.groups.pop_front_if(|(at, _)| *at <= by) {
            let revive = &mut self.revive;
            due.extend(g.into_iter().map(|q| {
                let epoch = revive.remove(&q);
                (q, epoch)
            }));
        }
        due.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_literal_and_conservative() {
        assert_eq!(literal_prefix("^myapp-.*"), "myapp-");
        assert_eq!(literal_prefix("^orders-[0-9]+$"), "orders-");
        assert_eq!(literal_prefix("^a\\.b\\-c"), "a.b-c");
        assert_eq!(literal_prefix("^abc?"), "ab");
        assert_eq!(literal_prefix("^abc*d"), "ab");
        assert_eq!(literal_prefix("^ab{2}"), "a");
        assert_eq!(literal_prefix("^ab+"), "ab");
        assert_eq!(literal_prefix("^a|^b"), "");
        assert_eq!(literal_prefix("myapp-"), "");
        assert_eq!(literal_prefix("^(x)"), "");
        assert_eq!(literal_prefix("^\\d+"), "");
    }

    #[test]
    fn the_filter_reads_the_queue_name_not_the_url() {
        let f = Filter::new(Some("^orders-")).unwrap();
        assert_eq!(f.prefix(), "orders-");
        assert!(f.matches(&QueueId::new("https://sqs.x/1/orders-7").unwrap()));
        assert!(!f.matches(&QueueId::new("https://orders-host/1/billing").unwrap()));
        assert!(
            Filter::new(None)
                .unwrap()
                .matches(&QueueId::new("any").unwrap())
        );
        let err = Filter::new(Some("(")).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidConfig {
                field: "queue_filter_pattern",
                ..
            }
        ));
    }

    proptest::proptest! {
        /// The groups hold what a map of queue to its first (epoch, due time) would, and give
        /// up the same queues in the same order.
        #[test]
        fn deferring_in_groups_is_a_map_of_first_deferrals(
            steps in proptest::collection::vec(
                (proptest::collection::btree_map(0u8..40, proptest::option::of(0u64..3), 0..12),
                 0u64..50),
                1..12,
            ),
        ) {
            let q = |n: u8| QueueId::new(&format!("q-{n:02}")).unwrap();
            let mut deferred = Deferred::default();
            let mut model: std::collections::BTreeMap<QueueId, (Option<u64>, Millis)> =
                std::collections::BTreeMap::new();
            let mut now = 0;
            for (listed, wait) in steps {
                now += wait;
                let due = Millis(now + 10);
                let creations: Vec<Creation> = listed.iter().map(|(n, e)| (q(*n), *e)).collect();
                for (id, e) in &creations {
                    model.entry(id.clone()).or_insert((*e, due));
                }
                deferred.defer(due, creations);
                let expected_next = model.values().map(|(_, at)| *at).min();
                proptest::prop_assert_eq!(deferred.next_due(), expected_next);
                let by = Millis(now);
                let expected: Vec<Creation> = model
                    .iter()
                    .filter(|(_, (_, at))| *at <= by)
                    .map(|(id, (e, _))| (id.clone(), *e))
                    .collect();
                model.retain(|_, (_, at)| *at > by);
                proptest::prop_assert_eq!(deferred.take_due(by), expected);
            }
        }
    }
}

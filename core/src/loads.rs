//! Queue loads as the fleet shares them (G14): each owner publishes its queues' recent loads in
//! its own instance record, coarsely, and every node weighs the queues by what the records say.
//!
//! A record lists its [`LISTED`] heaviest queues by [`key`] and sums up the rest as a count and
//! a total, so it stays a few hundred bytes however many queues its owner holds: the heartbeat
//! that carries it costs one write unit, and a Members read grows by that much a member. Loads
//! are rounded to two significant figures, and an owner publishes again only when what readers
//! would make of its record differs from what it measures by a [`material`] amount, at most
//! once an interval, so noise neither rewrites records nor moves queues.

use crate::hash::hash64;
use crate::ids::QueueId;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The most queues one record lists by key; the rest are published as a count and a total.
pub const LISTED: usize = 128;

/// The key a record lists `queue`'s load under: the high half of its pinned hash. Two queues
/// of one owner share a key about once in 40 million pairs, and then both weigh the same
/// for every reader alike.
pub fn key(queue: &QueueId) -> u32 {
    (hash64(&[queue.as_str().as_bytes()]) >> 32) as u32
}

/// One member's loads as its instance record publishes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PublishedLoads {
    /// The heaviest queues' loads by [`key`], sorted by key.
    listed: Vec<(u32, u64)>,
    /// How many other queues the owner held.
    rest_count: u64,
    /// Their total load.
    rest_total: u64,
}

impl PublishedLoads {
    /// The record of `loads` (each owned queue's load): the [`LISTED`] heaviest by key, the
    /// rest as a count and a total, every load rounded to two significant figures.
    pub fn summarize<'a>(loads: impl IntoIterator<Item = (&'a QueueId, u64)>) -> PublishedLoads {
        let mut all: Vec<(u64, u32)> = (loads.into_iter())
            .map(|(q, l)| (round(l), key(q)))
            .collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        let split = all.len().min(LISTED);
        let mut listed: Vec<(u32, u64)> = all[..split].iter().map(|&(l, k)| (k, l)).collect();
        listed.sort_unstable();
        // Two queues of one key (rare): readers cannot tell them apart anyway.
        listed.dedup_by_key(|&mut (k, _)| k);
        let rest = &all[split..];
        PublishedLoads {
            listed,
            rest_count: rest.len() as u64,
            rest_total: rest.iter().fold(0, |sum, &(l, _)| sum.saturating_add(l)),
        }
    }

    /// What a reader makes of `queue`'s load when this record's owner holds it: its listed
    /// load, else the average of the rest, else 0.
    pub fn estimate(&self, queue: &QueueId) -> u64 {
        self.listed_load(key(queue))
            .unwrap_or_else(|| self.rest_total.checked_div(self.rest_count).unwrap_or(0))
    }

    /// The load listed under `key`, if any.
    pub fn listed_load(&self, key: u32) -> Option<u64> {
        let at = self.listed.binary_search_by_key(&key, |&(k, _)| k).ok()?;
        Some(self.listed[at].1)
    }

    /// The attribute's text: `key=load` pairs (key in hex) joined by `,`, then `;count/total`
    /// of the rest.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        for (i, (k, l)) in self.listed.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}{k:08x}={l}");
        }
        let _ = write!(s, ";{}/{}", self.rest_count, self.rest_total);
        s
    }

    /// The loads [`PublishedLoads::encode`] wrote as `text`; `None` if it is not such text.
    pub fn decode(text: &str) -> Option<PublishedLoads> {
        let (listed, rest) = text.split_once(';')?;
        let (count, total) = rest.split_once('/')?;
        let mut out = PublishedLoads {
            listed: Vec::new(),
            rest_count: count.parse().ok()?,
            rest_total: total.parse().ok()?,
        };
        for pair in listed.split(',').filter(|p| !p.is_empty()) {
            let (k, l) = pair.split_once('=')?;
            if k.len() != 8 {
                return None;
            }
            out.listed
                .push((u32::from_str_radix(k, 16).ok()?, l.parse().ok()?));
        }
        let sorted = out.listed.windows(2).all(|w| w[0].0 < w[1].0);
        (sorted && out.listed.len() <= LISTED).then_some(out)
    }
}

/// The records of a fleet's members as readers weigh queues by them, so that every reader of
/// the same records weighs every queue alike.
#[derive(Debug)]
pub struct FleetLoads<'a> {
    /// Each member's published loads, by member index.
    members: Vec<Option<&'a PublishedLoads>>,
    /// The largest load any member lists under each key.
    listed: BTreeMap<u32, u64>,
}

impl<'a> FleetLoads<'a> {
    /// The records of the members, in member order.
    pub fn new(members: impl IntoIterator<Item = Option<&'a PublishedLoads>>) -> FleetLoads<'a> {
        let members: Vec<Option<&PublishedLoads>> = members.into_iter().collect();
        let mut listed: BTreeMap<u32, u64> = BTreeMap::new();
        for &(k, l) in members.iter().flatten().flat_map(|p| &p.listed) {
            let at = listed.entry(k).or_default();
            *at = (*at).max(l);
        }
        FleetLoads { members, listed }
    }

    /// `queue`'s load when member `holder` (an index, `None` for nobody) holds it: its
    /// holder's listed load; else the largest any member lists (a queue just handed over is
    /// still in its former holder's record until that publishes again, while its new holder
    /// has not yet); else the average of its holder's unlisted queues; else 0.
    pub fn weigh(&self, queue: &QueueId, holder: Option<usize>) -> u64 {
        let k = key(queue);
        let record = holder.and_then(|h| self.members.get(h).copied().flatten());
        (record.and_then(|p| p.listed_load(k)))
            .or_else(|| self.listed.get(&k).copied())
            .or_else(|| record.map(|p| p.estimate(queue)))
            .unwrap_or(0)
    }
}

/// `load` rounded to two significant figures: 1,234 is 1,200, 87 stays 87.
fn round(load: u64) -> u64 {
    let mut unit = 1u64;
    while load / unit >= 100 {
        unit = unit.saturating_mul(10);
    }
    (load / unit + u64::from(load % unit >= unit.div_ceil(2))) * unit
}

/// Whether readers of `published` would misjudge the loads `measured` (each owned queue's)
/// enough to publish again: by more than a twentieth of the measured total and 2 handler
/// milliseconds a second in all, or at all while nothing was published. Half the default
/// band: when every queue's traffic falls alike, records published a while apart then differ
/// by less than the band, and nothing moves for it.
pub fn material(published: Option<&PublishedLoads>, measured: &BTreeMap<QueueId, u64>) -> bool {
    let Some(published) = published else {
        return true;
    };
    let total = measured
        .values()
        .fold(0u64, |sum, &l| sum.saturating_add(l));
    let off = (measured.iter()).fold(0u64, |sum, (q, &l)| {
        sum.saturating_add(published.estimate(q).abs_diff(l))
    });
    off > total / 20 + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn queue(i: usize) -> QueueId {
        QueueId::new(&format!("q-{i}")).unwrap()
    }

    #[test]
    fn loads_round_to_two_significant_figures() {
        let got: Vec<u64> = [0, 7, 99, 100, 104, 105, 1_234, 1_250, 987_654]
            .map(round)
            .to_vec();
        assert_eq!(got, [0, 7, 99, 100, 100, 110, 1_200, 1_300, 990_000]);
        assert_eq!(round(u64::MAX) / 10u64.pow(18), 18);
    }

    #[test]
    fn a_record_lists_the_heaviest_and_averages_the_rest() {
        let queues: Vec<QueueId> = (0..LISTED + 24).map(queue).collect();
        let loads = queues.iter().enumerate().map(|(i, q)| (q, 10 * i as u64));
        let p = PublishedLoads::summarize(loads);
        let top = LISTED + 23;
        assert_eq!(p.estimate(&queues[top]), round(10 * top as u64));
        assert_eq!(p.estimate(&queues[24]), 240);
        // q-0 to q-23 are the rest: 10 x (0 + ... + 23) / 24 = 115.
        assert_eq!(p.estimate(&queues[3]), 115);
        assert_eq!(p.encode().matches('=').count(), LISTED);
        assert!(p.encode().ends_with(";24/2760"), "{}", p.encode());
        assert_eq!(PublishedLoads::default().estimate(&queues[0]), 0);
    }

    #[test]
    fn malformed_text_decodes_to_nothing() {
        for bad in [
            "",
            "1/2",
            "abc;1/2",
            "0000000g=1;0/0",
            "00000001=1,00000001=2;0/0",
            "0000002=1;0/0",
            "00000001=x;0/0",
            "00000002=1,00000001=1;0/0",
            ";1/",
        ] {
            assert_eq!(PublishedLoads::decode(bad), None, "{bad:?}");
        }
        assert_eq!(
            PublishedLoads::decode(";0/0"),
            Some(PublishedLoads::default())
        );
    }

    #[test]
    fn a_change_is_material_past_a_tenth_of_the_total() {
        let q: Vec<QueueId> = (0..2).map(queue).collect();
        let measured = |a, b| BTreeMap::from([(q[0].clone(), a), (q[1].clone(), b)]);
        let p = PublishedLoads::summarize([(&q[0], 500), (&q[1], 500)]);
        assert!(material(None, &measured(0, 0)));
        assert!(!material(Some(&p), &measured(520, 500)));
        assert!(!material(Some(&p), &measured(530, 480)));
        assert!(material(Some(&p), &measured(540, 470)));
        // Small loads need 2 ms a second of change.
        let idle = PublishedLoads::summarize([(&q[0], 0), (&q[1], 0)]);
        assert!(!material(Some(&idle), &measured(1, 1)));
        assert!(material(Some(&idle), &measured(3, 0)));
    }

    #[test]
    fn a_queue_weighs_what_its_holder_lists_else_what_anyone_lists_else_the_holders_average() {
        let q: Vec<QueueId> = (0..3).map(queue).collect();
        let a = PublishedLoads::summarize([(&q[0], 300)]);
        let mut rest: Vec<(&QueueId, u64)> = vec![(&q[1], 80)];
        let fillers: Vec<QueueId> = (10..10 + LISTED).map(queue).collect();
        rest.extend(fillers.iter().map(|f| (f, 500)));
        let b = PublishedLoads::summarize(rest);
        let fleet = FleetLoads::new([Some(&a), Some(&b), None]);
        assert_eq!(fleet.weigh(&q[0], Some(0)), 300);
        assert_eq!(fleet.weigh(&q[0], Some(1)), 300, "handed from a to b");
        assert_eq!(fleet.weigh(&q[1], Some(1)), 80, "b's only unlisted queue");
        assert_eq!(fleet.weigh(&q[2], Some(1)), 80, "b's average");
        assert_eq!(fleet.weigh(&q[2], Some(2)), 0);
        assert_eq!(fleet.weigh(&q[2], None), 0);
        assert_eq!(fleet.weigh(&q[0], None), 300);
    }

    proptest! {
        #[test]
        fn a_record_decodes_to_what_was_encoded(loads in proptest::collection::vec(any::<u64>(), 0..60)) {
            let queues: Vec<QueueId> = (0..loads.len()).map(queue).collect();
            let p = PublishedLoads::summarize(queues.iter().zip(loads.iter().copied()));
            prop_assert_eq!(PublishedLoads::decode(&p.encode()), Some(p.clone()));
            // Every listed queue reads back within rounding of its load.
            for (q, &l) in queues.iter().zip(&loads) {
                if p.listed_load(key(q)).is_some() {
                    prop_assert!(p.estimate(q).abs_diff(l) <= l / 20 + 1);
                }
            }
        }
    }
}

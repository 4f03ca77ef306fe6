//! Properties of the assigner that hold for every fleet.

use proptest::prelude::*;
use sqsbalancer_core::hash::rendezvous;
use sqsbalancer_core::{Assignment, InstanceId, Member, QueueId, assign};
use std::collections::BTreeMap;

fn members(weights: &[u32]) -> Vec<Member> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Member::new(InstanceId::new(&format!("i-{i:03}")).unwrap(), w))
        .collect()
}

fn queues(n: usize) -> Vec<QueueId> {
    (0..n)
        .map(|i| QueueId::new(&format!("https://sqs.us-east-1.amazonaws.com/1/t-{i:05}")).unwrap())
        .collect()
}

fn owners(a: &Assignment) -> BTreeMap<QueueId, InstanceId> {
    a.iter().map(|(q, m)| (q.clone(), m.clone())).collect()
}

/// Every member holds floor or ceil of its weighted share, and every queue is assigned.
fn assert_balanced(a: &Assignment, ms: &[Member], q: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), q);
    let total: u64 = ms.iter().map(|m| u64::from(m.weight)).sum();
    let load = a.load();
    for m in ms {
        let (lo, hi) = sqsbalancer_core::share_bounds(q, m.weight, total);
        let got = load[&m.id];
        prop_assert!(
            lo <= got && got <= hi,
            "{} (w{}) got {got}, want {lo}..={hi}",
            m.id,
            m.weight
        );
    }
    Ok(())
}

/// A random earlier owner map: some queues owned by members, some by departed instances.
fn scramble(ms: &[Member], qs: &[QueueId], seed: u64) -> BTreeMap<QueueId, InstanceId> {
    let mut x = seed | 1;
    let mut out = BTreeMap::new();
    for q in qs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 => {}
            1 => {
                out.insert(q.clone(), InstanceId::new("gone").unwrap());
            }
            _ => {
                out.insert(q.clone(), ms[(x >> 8) as usize % ms.len()].id.clone());
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn floor_ceil_balance_for_any_fleet(
        weights in prop::collection::vec(1u32..=4, 1..=200),
        q in 0usize..=5_000,
        seed in any::<u64>(),
    ) {
        let ms = members(&weights);
        let qs = queues(q);
        let cur = scramble(&ms, &qs, seed);
        assert_balanced(&assign(&ms, &qs, &cur), &ms, q)?;
        assert_balanced(&assign(&ms, &qs, &BTreeMap::new()), &ms, q)?;
    }

    #[test]
    fn the_same_target_for_every_order_of_inputs(
        weights in prop::collection::vec(1u32..=4, 1..=40),
        q in 0usize..=600,
        seed in any::<u64>(),
    ) {
        let ms = members(&weights);
        let qs = queues(q);
        let cur = scramble(&ms, &qs, seed);
        let a = assign(&ms, &qs, &cur);
        let mut ms2 = ms.clone();
        let mut qs2 = qs.clone();
        let mut r = seed;
        for i in (1..ms2.len()).rev() {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ms2.swap(i, (r >> 33) as usize % (i + 1));
        }
        for i in (1..qs2.len()).rev() {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            qs2.swap(i, (r >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(assign(&ms2, &qs2, &cur), a);
    }

    #[test]
    fn no_move_when_nothing_changed(
        weights in prop::collection::vec(1u32..=4, 1..=60),
        q in 0usize..=2_000,
        seed in any::<u64>(),
    ) {
        let ms = members(&weights);
        let qs = queues(q);
        let first = assign(&ms, &qs, &scramble(&ms, &qs, seed));
        let cur = owners(&first);
        let again = assign(&ms, &qs, &cur);
        prop_assert!(again.moved(&cur).is_empty());
    }

    #[test]
    fn with_equal_weights_a_join_moves_at_most_its_share_and_a_leave_only_the_leavers(
        n in 1usize..=100,
        q in 0usize..=3_000,
        seed in any::<u64>(),
        leaver in any::<prop::sample::Index>(),
    ) {
        let ms = members(&vec![1; n + 1]);
        let qs = queues(q);
        let before = assign(&ms[..n], &qs, &scramble(&ms[..n], &qs, seed));
        let cur = owners(&before);
        // Join: the newcomer is the only one gaining, by at most ceil(Q/(n+1)).
        let joined = assign(&ms, &qs, &cur);
        let moved = joined.moved(&cur);
        prop_assert!(moved.len() <= q.div_ceil(n + 1), "join moved {} of {q} at n={n}", moved.len());
        prop_assert!(moved.iter().all(|x| joined.owner_of(x) == Some(&ms[n].id)));
        // Leave: exactly the leaver's queues move.
        let gone = &ms[leaver.index(n)];
        let rest: Vec<Member> = ms[..n].iter().filter(|m| m.id != gone.id).cloned().collect();
        if !rest.is_empty() {
            let left = assign(&rest, &qs, &cur);
            let moved = left.moved(&cur);
            prop_assert_eq!(moved.len(), before.load()[&gone.id]);
            prop_assert!(moved.iter().all(|x| cur[x] == gone.id));
        }
    }

    #[test]
    fn views_that_differ_by_one_holder_agree_on_all_but_a_few_targets(
        weights in prop::collection::vec(1u32..=4, 1..=60),
        q in 1usize..=3_000,
        seed in any::<u64>(),
        unseen in any::<prop::sample::Index>(),
    ) {
        // One node saw a claim (or a release) that another has not: their targets may differ
        // in a chain of queues passed from member to member, never in every queue after it.
        let ms = members(&weights);
        let qs = queues(q);
        let seen = scramble(&ms, &qs, seed);
        let mut missed = seen.clone();
        let q0 = &qs[unseen.index(q)];
        if missed.remove(q0).is_none() {
            missed.insert(q0.clone(), ms[0].id.clone());
        }
        let (a, b) = (assign(&ms, &qs, &seen), assign(&ms, &qs, &missed));
        let differ = qs.iter().filter(|x| a.owner_of(x) != b.owner_of(x)).count();
        prop_assert!(differ <= ms.len() + 2, "{differ} of {q} targets differ among {} members", ms.len());
    }

    #[test]
    fn a_member_over_its_quota_keeps_the_queues_it_scores_highest(
        weights in prop::collection::vec(1u32..=4, 1..=30),
        q in 0usize..=1_500,
        seed in any::<u64>(),
    ) {
        // Every member keeps a queue it holds unless it holds more than its target share,
        // and then it keeps exactly those with the highest rendezvous scores.
        let ms = members(&weights);
        let qs = queues(q);
        let cur = scramble(&ms, &qs, seed);
        let a = assign(&ms, &qs, &cur);
        for m in &ms {
            let mut held: Vec<&QueueId> = (cur.iter()).filter(|(_, o)| **o == m.id).map(|(q, _)| q).collect();
            let kept: Vec<&QueueId> = a.assigned_to(&m.id).filter(|q| cur.get(*q) == Some(&m.id)).collect();
            let score = |q: &QueueId| rendezvous(m.id.as_str(), q.as_str());
            held.sort_by_key(|q| std::cmp::Reverse(score(q)));
            let mut want: Vec<&QueueId> = held[..kept.len()].to_vec();
            want.sort();
            prop_assert_eq!(&kept, &want, "{} kept other queues than its highest-scored", m.id);
            let target = a.load().get(&m.id).copied().unwrap_or(0);
            prop_assert_eq!(kept.len(), held.len().min(target));
            let listed: Vec<&QueueId> = a.iter().filter(|(_, o)| **o == m.id).map(|(q, _)| q).collect();
            prop_assert_eq!(a.assigned_to(&m.id).collect::<Vec<_>>(), listed);
        }
    }
}

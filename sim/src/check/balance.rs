//! Balance (G1): every running instance holds the floor or the ceiling of its weighted share,
//! the share bound computed once in the core ([`share_bounds`]); and the spread reported.

use super::fleet::Fleet;
use sqsbalancer_core::{Member, assign, share_bounds};
use std::collections::BTreeMap;

/// The first running instance of `fleet` holding more or fewer queues than its weighted share
/// allows (or, where ties leave room, than the target assignment gives it); `None` if none.
pub fn unbalanced(fleet: &Fleet) -> Option<String> {
    let members: Vec<Member> = fleet
        .running()
        .map(|(_, i)| Member::new(i.id.clone(), i.weight))
        .collect();
    let target = assign(&members, &fleet.queues, &BTreeMap::new()).load();
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let n = fleet.queues.len();
    for (_, i) in fleet.running() {
        let held = i.receiving.len();
        let w = i.weight;
        let (lo, hi) = share_bounds(n, w, total);
        let want = target.get(&i.id).copied().unwrap_or(0);
        if held < lo.min(want) || held > hi.max(want) {
            return Some(format!(
                "{} (weight {w}) receives {held} queues, share {lo}..={hi} of {n}",
                i.id
            ));
        }
    }
    None
}

/// Largest minus smallest number of queues received per unit of weight by the running
/// instances of `fleet` (0 when none runs): how far from even the load is.
pub fn spread(fleet: &Fleet) -> f64 {
    let per_weight: Vec<f64> = fleet
        .running()
        .map(|(_, i)| i.receiving.len() as f64 / f64::from(i.weight))
        .collect();
    let max = per_weight.iter().copied().fold(f64::MIN, f64::max);
    let min = per_weight.iter().copied().fold(f64::MAX, f64::min);
    if per_weight.is_empty() {
        0.0
    } else {
        max - min
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fleet::fixtures::fleet;

    #[test]
    fn floor_or_ceil_of_the_weighted_share_is_balanced() {
        assert_eq!(unbalanced(&fleet(&[&[0, 1], &[2]])), None);
        let mut f = fleet(&[&[0, 1], &[2, 3, 4, 5]]);
        assert!(
            unbalanced(&f)
                .unwrap()
                .contains("receives 2 queues, share 3..=3 of 6")
        );
        f.instances[1].weight = 2;
        assert_eq!(unbalanced(&f), None);
    }

    #[test]
    fn spread_is_the_range_of_queues_per_weight() {
        let mut f = fleet(&[&[0], &[1, 2, 3]]);
        assert_eq!(spread(&f), 2.0);
        f.instances[1].weight = 3;
        assert_eq!(spread(&f), 0.0);
        assert_eq!(spread(&Fleet::default()), 0.0);
    }
}

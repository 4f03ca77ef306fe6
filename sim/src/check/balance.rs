//! Balance (G1): every running instance holds the floor or the ceiling of its weighted share,
//! the share bound computed once in the core ([`share_bounds`]); and the spread reported.

use super::fleet::Fleet;
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::loads::FleetLoads;
use sqsbalancer_core::{Band, InstanceId, Member, QueueId, assign, assign_by_load, share_bounds};
use std::collections::BTreeMap;

/// Under count balance, the first running instance of `fleet` holding more or fewer queues
/// than its weighted share allows (or, where ties leave room, than the target assignment gives
/// it); under load balance, the first queue the load target computed from the records would
/// move. `None` if none.
pub fn unbalanced(fleet: &Fleet) -> Option<String> {
    match fleet.balance {
        Balance::Load { band, .. } => unsettled_by_load(fleet, band),
        _ => off_share(fleet),
    }
}

/// The first queue that the load target of `fleet`'s running instances, weighing each queue
/// by what its receiver's record publishes, would move: a fleet settled by load moves nothing.
fn unsettled_by_load(fleet: &Fleet, band: Band) -> Option<String> {
    let members: Vec<Member> = (fleet.running())
        .map(|(_, i)| Member::new(i.id.clone(), i.weight))
        .collect();
    let current: BTreeMap<QueueId, InstanceId> = (fleet.running())
        .flat_map(|(_, i)| i.receiving.iter().map(|q| (q.clone(), i.id.clone())))
        .collect();
    let records = FleetLoads::new(members.iter().map(|m| fleet.loads.get(&m.id)));
    let loads: BTreeMap<QueueId, u64> = (current.iter())
        .map(|(q, m)| {
            let holder = members.iter().position(|x| &x.id == m);
            (q.clone(), records.weigh(q, holder))
        })
        .collect();
    let target = assign_by_load(&members, &fleet.queues, &current, &loads, band);
    let q = target.moved(&current).into_iter().next()?;
    let from = current
        .get(&q)
        .map_or("nobody".to_owned(), ToString::to_string);
    let to = target
        .owner_of(&q)
        .map_or("nobody".to_owned(), ToString::to_string);
    Some(format!(
        "{q} (load {}) would move from {from} to {to} by load",
        loads.get(&q).copied().unwrap_or(0)
    ))
}

/// The first running instance holding more or fewer queues than its share (count balance).
fn off_share(fleet: &Fleet) -> Option<String> {
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

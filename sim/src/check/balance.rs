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
    fn under_load_balance_a_fleet_is_settled_when_its_records_move_nothing() {
        use crate::check::fleet::fixtures::queue;
        use sqsbalancer_core::loads::PublishedLoads;
        // node-0's four queues carry 90,000 µs/s and node-1's two 10,000.
        let mut f = fleet(&[&[0, 1, 2, 3], &[4, 5]]);
        f.balance = Balance::load();
        let publish = |f: &mut Fleet, slot: usize, loads: &[(usize, u64)]| {
            let queues: Vec<(QueueId, u64)> = loads.iter().map(|&(n, l)| (queue(n), l)).collect();
            let record = PublishedLoads::summarize(queues.iter().map(|(q, l)| (q, *l)));
            f.loads.insert(f.instances[slot].id.clone(), record);
        };
        let heavy = [(0, 22_500), (1, 22_500), (2, 22_500), (3, 22_500)];
        publish(&mut f, 0, &heavy);
        publish(&mut f, 1, &[(4, 5_000), (5, 5_000)]);
        let problem = unbalanced(&f).expect("node-0 carries nine tenths");
        assert!(
            problem.contains("would move from node-0 to node-1 by load"),
            "{problem}"
        );
        // Loads that node-0's four and node-1's two share evenly: settled.
        let even = [(0, 12_500), (1, 12_500), (2, 12_500), (3, 12_500)];
        publish(&mut f, 0, &even);
        publish(&mut f, 1, &[(4, 25_000), (5, 25_000)]);
        assert_eq!(unbalanced(&f), None);
        // Uneven counts that even out the loads are settled by load, not by count.
        let mut g = fleet(&[&[0], &[1, 2, 3]]);
        g.balance = Balance::load();
        publish(&mut g, 0, &[(0, 30_000)]);
        publish(&mut g, 1, &[(1, 10_000), (2, 10_000), (3, 10_000)]);
        assert_eq!(unbalanced(&g), None);
        g.balance = Balance::Count;
        assert!(unbalanced(&g).is_some());
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

//! The settled-balance invariant, checked once the calm has lasted: every queue received by
//! exactly one running instance, the life its record names, and every running instance
//! within its weighted share ([`unbalanced`](super::balance::unbalanced)).

use super::balance::unbalanced;
use super::fleet::Fleet;

/// What keeps `fleet` from being settled, or `None` when it is.
pub fn settled(fleet: &Fleet) -> Option<String> {
    if fleet.running().next().is_none() {
        return Some("no instance is running".to_owned());
    }
    misowned(fleet).or_else(|| unbalanced(fleet))
}

/// The first queue not received by exactly one running instance, or received by one whose
/// life its record does not name.
fn misowned(fleet: &Fleet) -> Option<String> {
    for q in &fleet.queues {
        let who: Vec<usize> = fleet
            .running()
            .filter(|(_, i)| i.receiving.contains(q))
            .map(|(slot, _)| slot)
            .collect();
        let [one] = who[..] else {
            return Some(format!("{q} received by slots {who:?}"));
        };
        let receiver = &fleet.instances[one];
        let record = fleet.record(q);
        if record != receiver.life.as_ref() {
            return Some(format!(
                "{q}: record names {record:?} but {} ({:?}) receives it",
                receiver.id, receiver.life
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fleet::fixtures::{fleet, life, queue};
    use sqsbalancer_core::Phase;

    #[test]
    fn one_named_receiver_per_queue_and_a_fair_share_is_settled() {
        assert_eq!(settled(&fleet(&[&[0, 1], &[2, 3]])), None);
    }

    #[test]
    fn a_queue_received_twice_or_never_is_not_settled() {
        let mut f = fleet(&[&[0, 1], &[2, 3]]);
        f.instances[1].receiving.insert(queue(0));
        assert!(settled(&f).unwrap().contains("received by slots [0, 1]"));
        f.instances[0].receiving.clear();
        f.instances[1].receiving.clear();
        assert!(settled(&f).unwrap().contains("received by slots []"));
    }

    #[test]
    fn a_receiver_its_record_does_not_name_is_not_settled() {
        let mut f = fleet(&[&[0, 1], &[2, 3]]);
        f.records.insert(queue(3), Some(life(0)));
        assert!(settled(&f).unwrap().contains("record names"));
    }

    #[test]
    fn a_fleet_with_nobody_running_is_not_settled() {
        let mut f = fleet(&[&[0]]);
        f.instances[0].phase = Some(Phase::Draining);
        assert_eq!(settled(&f).as_deref(), Some("no instance is running"));
    }
}

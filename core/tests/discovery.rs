//! Creating the records of listed queues: a fleet that lists a queue together writes its
//! record about once. The member scoring highest for a queue creates it at once; the others
//! wait a heartbeat interval and create it only if it is still missing.

mod common;

use common::solo::{Solo, config, queue};
use common::table::layout;
use sqsbalancer_core::hash::rendezvous;

use sqsbalancer_core::{Effect, QueueId, Write};
use std::time::Duration;

/// The queues a's listing asked to create so far, in order.
fn created(a: &Solo) -> Vec<QueueId> {
    a.writes
        .iter()
        .filter_map(|w| match w {
            Write::CreateQueue { queue, .. } => Some(queue.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_highest_scoring_member_creates_a_listed_queue_and_the_others_only_stand_by() {
    let mut cfg = config("a");
    cfg.queue_discovery_interval = Duration::from_secs(60);
    let interval = cfg.heartbeat_interval;
    let mut a = Solo::running(cfg, Vec::new());
    let b = a.register_peer("b", 1);
    let queues: Vec<QueueId> = (0..20).map(|i| queue(&format!("q{i:02}"))).collect();
    a.listed = queues.clone();
    // Until a's next listing; b keeps beating, so a knows it as a member.
    while !a.sent(|e| matches!(e, Effect::ListQueues { .. })) {
        a.tick();
        a.beat(&b);
        a.answer_all_but(|e| matches!(e, Effect::ListQueues { .. }));
    }
    let listed_at = a.now;
    a.answer_all();
    let mine: Vec<QueueId> = queues
        .iter()
        .filter(|q| rendezvous("a", q.as_str()) > rendezvous("b", q.as_str()))
        .cloned()
        .collect();
    assert!(!mine.is_empty() && mine.len() < queues.len(), "{mine:?}");
    assert_eq!(created(&a), mine, "a creates only its own at once");
    // b never creates its share: a does, after an interval and the next table read at most
    // another interval on.
    let by = listed_at.saturating_add(interval * 2 + Duration::from_secs(1));
    while a.now < by {
        a.tick();
        a.beat(&b);
        a.answer_all();
    }
    for q in &queues {
        let key = layout().queue_key(q);
        assert!(a.table.get(&key).is_some(), "{q} has no record by {by:?}");
    }
    let mut all = created(&a);
    all.sort();
    all.dedup();
    assert_eq!(all, queues);
}

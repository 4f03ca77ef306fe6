//! Instances whose queue filters differ (a configuration rollout): each keeps to the queues its
//! own filter takes, and leaves the records of the others' queues alone.

mod common;

use common::solo::{Solo, config, queue};
use sqsbalancer_core::{Outcome, Write};

#[test]
fn a_node_never_takes_nor_retires_queues_outside_its_filter() {
    let mut cfg = config("a");
    cfg.queue_filter_pattern = Some("^orders-".into());
    // a lists only the queues its filter takes; another instance, with another filter,
    // created the record of `billing-1`, and `orders-2` was handed to a by a peer whose
    // filter takes it.
    let mut a = Solo::running(cfg, vec![queue("orders-1")]);
    let create = |q: &str| Write::CreateQueue {
        queue: queue(q),
        revive_epoch: None,
    };
    assert!(matches!(a.apply(&create("billing-1")), Outcome::Applied(_)));
    assert!(matches!(a.apply(&create("orders-2")), Outcome::Applied(_)));
    let handed = Write::Claim {
        queue: queue("billing-2"),
        expect_owner: None,
        expect_epoch: 1,
        new_owner: a.node.life().expect("registered"),
    };
    assert!(matches!(a.apply(&create("billing-2")), Outcome::Applied(_)));
    assert!(matches!(a.apply(&handed), Outcome::Applied(_)));
    let setup = a.writes.len();
    // An hour: discoveries, reconciliations, rebalancing.
    for _ in 0..360 {
        a.answer_all();
        a.tick();
    }
    a.answer_all();
    let touched_billing = |w: &Write| match w {
        Write::Retire { queue: q, .. } | Write::Claim { queue: q, .. } => {
            q.name().starts_with("billing-")
        }
        _ => false,
    };
    let bad: Vec<&Write> = a.writes[setup..]
        .iter()
        .filter(|w| touched_billing(w))
        .collect();
    assert!(
        bad.is_empty(),
        "claims or retires outside the filter: {bad:?}"
    );
    let started: Vec<String> = a.started().iter().map(|q| q.name().to_owned()).collect();
    assert!(
        started.iter().all(|n| n.starts_with("orders-")),
        "received outside its filter: {started:?}"
    );
    assert!(started.contains(&"orders-1".to_owned()), "{started:?}");
    // billing-2 was named a's by a peer: a passes it on rather than receiving it.
    assert!(
        a.writes.iter().any(|w| matches!(
            w,
            Write::HandOff { queue: q, .. } if q.name() == "billing-2"
        )),
        "billing-2 was never passed on"
    );
}

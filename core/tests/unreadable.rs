//! Records this version cannot decode (a later version's status, a manual edit): an instance
//! whose record is unreadable is never condemned, and a queue whose record is unreadable is
//! never created again.

mod common;

use common::solo::{Solo, config, queue};
use common::table::layout;
use sqsbalancer_core::table::{self, Value};
use sqsbalancer_core::{Effect, InstanceId, Notice, Outcome, Write};

fn is_claim_or_reap(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Write {
            write: Write::Claim { .. } | Write::Reap { .. },
            ..
        }
    )
}

#[test]
fn a_peer_whose_record_cannot_be_decoded_is_never_condemned() {
    // b owns q0 and q1; its record then carries a status this version does not know, so its
    // heartbeats cannot be seen. a is the only other instance: after the heartbeat timeout it
    // would be the target of both queues.
    let mut a = Solo::running(config("a"), Vec::new());
    let b = a.register_peer("b", 1);
    for (i, q) in ["q0", "q1"].into_iter().enumerate() {
        let w = Write::CreateQueue {
            queue: queue(q),
            revive_epoch: None,
        };
        assert!(matches!(a.apply(&w), Outcome::Applied(_)));
        let claim = Write::Claim {
            queue: queue(q),
            expect_owner: None,
            expect_epoch: 1,
            new_owner: b.clone(),
        };
        assert!(matches!(a.apply(&claim), Outcome::Applied(_)), "{i}");
    }
    let b_key = layout().instance_key(&InstanceId::new("b").unwrap());
    a.table
        .get_mut(&b_key)
        .expect("b's record")
        .insert(table::STATUS.to_owned(), Value::S("retiring".into()));
    // a learns of the queues: they are listed, and a notice makes it read their records.
    a.listed = vec![queue("q0"), queue("q1")];
    let notice = Write::Notify {
        to: a.node.life().expect("registered"),
        notice: Notice::Inbox,
    };
    assert!(matches!(a.apply(&notice), Outcome::Applied(_)));
    // Ten minutes of reads (a discovery, a reconciliation): b's record never changes as far
    // as a can tell.
    for _ in 0..60 {
        a.answer_all_but(is_claim_or_reap);
        assert!(
            !a.sent(is_claim_or_reap),
            "a condemned b, whose record it cannot read: {:?}",
            a.open
        );
        a.tick();
    }
    assert!(a.started().is_empty(), "a received b's queues");
    let named_b = a.read(sqsbalancer_core::Read::Table);
    let sqsbalancer_core::Reply::Table { pages, .. } = named_b else {
        unreachable!()
    };
    let mut queues = pages.iter().flat_map(|p| p.records());
    assert!(queues.all(|r| r.owner.as_ref() == Some(&b)), "{pages:?}");
}

#[test]
fn a_queue_whose_record_cannot_be_decoded_is_not_created_again() {
    let q = queue("q0");
    let mut a = Solo::running(config("a"), vec![q.clone()]);
    a.answer_all();
    let q_key = layout().queue_key(&q);
    a.table
        .get_mut(&q_key)
        .expect("the listing created q0's record")
        .insert(table::EPOCH.to_owned(), Value::S("not a number".into()));
    let before = a.writes.len();
    // Discovery runs every five minutes: an hour of it.
    for _ in 0..360 {
        a.tick();
        a.answer_all();
    }
    let creates = a.writes[before..]
        .iter()
        .filter(|w| matches!(w, Write::CreateQueue { .. }))
        .count();
    assert_eq!(creates, 0, "the create of an existing record was retried");
}

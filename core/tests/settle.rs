//! Writes whose outcome is unknown: the node sends the same write again until an answer
//! settles it, and decides nothing about the queue meanwhile, so a copy that lands late can
//! never leave two instances receiving from one queue.

mod common;

use common::solo::{Solo, config, queue, write_of};
use sqsbalancer_core::{Effect, Notice, Outcome, Owner, Write};

/// Ticks `a` `rounds` times, every peer heartbeating and every call served at each tick.
fn run(a: &mut Solo, peers: &[Owner], rounds: usize) {
    for _ in 0..rounds {
        for p in peers {
            a.beat(p);
        }
        a.answer_all_but(is_hand_off);
        a.tick();
    }
}

fn is_hand_off(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Write {
            write: Write::HandOff { .. },
            ..
        }
    )
}

#[test]
fn a_hand_off_of_unknown_outcome_is_sent_again_and_its_queue_waits_for_the_answer() {
    let queues = vec![queue("q0"), queue("q1")];
    let mut a = Solo::running(config("a"), queues.clone());
    run(&mut a, &[], 5);
    assert_eq!(a.started().len(), 2, "a alone receives both queues");
    // b joins; once the rebalance delay has passed, a hands one queue to it.
    let b = a.register_peer("b", 1);
    let mut hand_off = None;
    for _ in 0..20 {
        run(&mut a, std::slice::from_ref(&b), 1);
        hand_off = a.take(is_hand_off);
        if hand_off.is_some() {
            break;
        }
    }
    let hand_off = hand_off.expect("a hands a queue to b");
    let Write::HandOff { queue: moved, .. } = write_of(&hand_off) else {
        unreachable!()
    };
    let starts_before = a.started().len();
    // The answer is lost: the write may or may not have applied. Meanwhile c joins, so the
    // next table read (which still shows a as the owner) also moves the rebalance delay on.
    a.answer(&hand_off, Outcome::Unknown);
    let c = a.register_peer("c", 1);
    let mut resent = None;
    for _ in 0..20 {
        run(&mut a, &[b.clone(), c.clone()], 1);
        resent = a.take(is_hand_off);
        if resent.is_some() {
            break;
        }
    }
    assert!(
        !a.started()[starts_before..].contains(&moved),
        "{moved} started again at its old epoch while the hand-off was unsettled"
    );
    let resent = resent.expect("the hand-off is sent again");
    assert_eq!(write_of(&resent), write_of(&hand_off), "the same write");
    // The first copy lands late, then the second is answered: it fails its condition.
    assert!(matches!(a.apply(&write_of(&hand_off)), Outcome::Applied(_)));
    let answer = a.serve(&resent);
    assert_eq!(answer, Outcome::Rejected);
    a.answer(&resent, answer);
    run(&mut a, &[b, c], 10);
    assert!(
        !a.started()[starts_before..].contains(&moved),
        "{moved} was handed to b, yet a started it again"
    );
}

fn is_notify(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Write {
            write: Write::Notify { .. },
            ..
        }
    )
}

#[test]
fn a_notice_of_unknown_outcome_is_sent_again() {
    // A lost notice would leave peers on a stale view until their next reconciliation.
    let mut a = Solo::running(config("a"), Vec::new());
    // A queue appears: the next discovery creates it, and announces the creation.
    a.listed = vec![queue("q0")];
    let mut notice = None;
    for _ in 0..60 {
        a.answer_all_but(is_notify);
        notice = a.take(is_notify);
        if notice.is_some() {
            break;
        }
        a.tick();
    }
    let notice = notice.expect("the creation is announced");
    a.answer(&notice, Outcome::Unknown);
    let mut again = None;
    for _ in 0..3 {
        a.tick();
        a.answer_all_but(is_notify);
        again = a.take(is_notify);
        if again.is_some() {
            break;
        }
    }
    let again = again.expect("the notice is sent again");
    assert_eq!(write_of(&again), write_of(&notice));
}

#[test]
fn a_rejected_hand_off_is_announced_all_the_same() {
    // Its first copy may have applied (an SDK retry gets the rejection): peers must hear of
    // the change now, not at their next reconciliation.
    let queues = vec![queue("q0"), queue("q1")];
    let mut a = Solo::running(config("a"), queues);
    run(&mut a, &[], 5);
    let b = a.register_peer("b", 1);
    let mut hand_off = None;
    for _ in 0..20 {
        run(&mut a, std::slice::from_ref(&b), 1);
        hand_off = a.take(is_hand_off);
        if hand_off.is_some() {
            break;
        }
    }
    let hand_off = hand_off.expect("a hands a queue to b");
    // The first copy lands; the answer a hears is a retry's rejection.
    assert!(matches!(a.apply(&write_of(&hand_off)), Outcome::Applied(_)));
    a.answer(&hand_off, Outcome::Rejected);
    let notice = a.take(is_notify).expect("announced");
    assert_eq!(
        write_of(&notice),
        Write::Notify {
            to: b,
            notice: Notice::Inbox
        }
    );
}

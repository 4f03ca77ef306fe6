//! Notices: who is told of a change to the queue records, and who reads them because of it.
//! A hand-off concerns its receiver, a creation, release or retirement every node, a claim
//! nobody (but a takeover everyone under load balance); a node that waits too long for a
//! hand-off nudges the holder, and a notice lost with its sender is not counted against a
//! later one. A change of members calls for a table read unless it was seen in one. A node
//! awaiting a hand-off from a draining owner watches for it at once.

mod common;

use common::solo::{Solo, config, is_table_read, owner, queue};
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::{
    Config, Effect, Notice, Outcome, Owner, QueueId, Read, ReadCause, Status, Write,
};

fn notice_of(w: &Write) -> Option<(&Owner, Notice)> {
    match w {
        Write::Notify { to, notice } => Some((to, *notice)),
        _ => None,
    }
}

/// Starts a heartbeat round with `peers` beating: ticks until the round's read goes out
/// (other timers may come first).
fn start_round(a: &mut Solo, peers: &[Owner]) {
    for p in peers {
        a.beat(p);
    }
    for _ in 0..10 {
        a.tick();
        if a.sent(|e| matches!(e, Effect::Read { .. })) {
            break;
        }
    }
}

/// One heartbeat round with `peers` beating and every call but table reads served; whether
/// the node then asked to read the whole table (the read is served too).
fn round_reads_table(a: &mut Solo, peers: &[Owner]) -> bool {
    start_round(a, peers);
    a.answer_all_but(is_table_read);
    let Some(read) = a.take(is_table_read) else {
        return false;
    };
    let outcome = a.serve(&read);
    a.answer(&read, outcome);
    a.answer_all();
    true
}

/// `a` with queues q0 and q1, and peer `b` that has taken its share.
fn settled_pair() -> (Solo, Owner) {
    let mut a = Solo::running(config("a"), vec![queue("q0"), queue("q1")]);
    let b = a.register_peer("b", 1);
    for _ in 0..40 {
        round_reads_table(&mut a, std::slice::from_ref(&b));
    }
    (a, b)
}

#[test]
fn a_node_reads_the_records_for_its_own_inbox_and_anyones_news_only() {
    let (mut a, b) = settled_pair();
    let me = a.node.life().expect("running");
    let peers = std::slice::from_ref(&b);
    assert!(a.node.table_reads().get(ReadCause::Start) >= 1);
    let reads = |a: &Solo, cause| a.node.table_reads().get(cause);
    let notices = |a: &Solo| reads(a, ReadCause::Inbox) + reads(a, ReadCause::News);
    let (before, total) = (reads(&a, ReadCause::News), a.node.table_reads().total());
    assert!(
        !round_reads_table(&mut a, peers),
        "a quiet round reads no records"
    );
    assert_eq!(a.node.table_reads().total(), total);
    let tell = |to: &Owner, notice| Write::Notify {
        to: to.clone(),
        notice,
    };
    assert!(matches!(
        a.apply(&tell(&b, Notice::Inbox)),
        Outcome::Applied(_)
    ));
    assert!(
        !round_reads_table(&mut a, peers),
        "a hand-off to b concerns b only"
    );
    assert!(matches!(
        a.apply(&tell(&b, Notice::News)),
        Outcome::Applied(_)
    ));
    let reconciled = |a: &Solo| a.node.table_reads().get(ReadCause::Reconcile);
    let counted = |a: &Solo| (notices(a) + reconciled(a), a.node.table_reads().total());
    let was = counted(&a);
    assert!(
        round_reads_table(&mut a, peers),
        "b's news concerns everyone"
    );
    // One read, a notice's (or the reconciliation's, when it fell due in the same round).
    assert_eq!(counted(&a), (was.0 + 1, was.1 + 1));
    assert!(reads(&a, ReadCause::News) > before, "counted as news");
    assert!(matches!(
        a.apply(&tell(&me, Notice::Inbox)),
        Outcome::Applied(_)
    ));
    let was = counted(&a);
    let inbox = |a: &Solo| reads(a, ReadCause::Inbox) + reconciled(a);
    let inbox_before = inbox(&a);
    assert!(round_reads_table(&mut a, peers), "a's own inbox concerns a");
    assert_eq!(counted(&a), (was.0 + 1, was.1 + 1));
    assert_eq!(
        inbox(&a),
        inbox_before + 1,
        "counted as an inbox move (or the reconciliation)"
    );
}

#[test]
fn a_peers_new_life_is_read_and_counted_as_one() {
    let (mut a, b) = settled_pair();
    let reads = |a: &Solo, cause| a.node.table_reads().get(cause);
    let (lives, total) = (reads(&a, ReadCause::NewLife), a.node.table_reads().total());
    let b2 = a.register_peer("b", 1);
    assert!(b2.incarnation > b.incarnation, "b restarted");
    assert!(
        round_reads_table(&mut a, std::slice::from_ref(&b2)),
        "b's new life concerns everyone"
    );
    assert_eq!(
        (reads(&a, ReadCause::NewLife), a.node.table_reads().total()),
        (lives + 1, total + 1),
        "one read, counted as a new life"
    );
}

#[test]
fn creations_are_announced_once_a_burst_and_claims_not_at_all() {
    let names: Vec<_> = (0..6).map(|i| queue(&format!("q{i}"))).collect();
    let mut a = Solo::running(config("a"), names);
    for _ in 0..5 {
        round_reads_table(&mut a, &[]);
    }
    let count = |f: &dyn Fn(&Write) -> bool| a.writes.iter().filter(|w| f(w)).count();
    let creates = count(&|w| matches!(w, Write::CreateQueue { .. }));
    let claims = count(&|w| matches!(w, Write::Claim { .. }));
    let news = count(&|w| matches!(notice_of(w), Some((_, Notice::News))));
    let inbox = count(&|w| matches!(notice_of(w), Some((_, Notice::Inbox))));
    assert_eq!(
        (creates, claims),
        (6, 6),
        "a creates and claims every queue"
    );
    assert!(
        (1..creates).contains(&news),
        "{news} news notices for {creates} creations"
    );
    assert_eq!(inbox, 0, "claims and creations send no inbox notice");
}

/// `a`, just joined, and peer `b`, which holds both queues: a's target gives it one.
fn held_by_peer() -> (Solo, Owner) {
    held_by_peer_of(config("a"))
}

/// [`held_by_peer`] with `a` configured by `cfg`.
fn held_by_peer_of(cfg: Config) -> (Solo, Owner) {
    let mut a = Solo::running(cfg, Vec::new());
    let b = a.register_peer("b", 1);
    for q in ["q0", "q1"] {
        let create = Write::CreateQueue {
            queue: queue(q),
            revive_epoch: None,
        };
        let claim = Write::Claim {
            queue: queue(q),
            expect_owner: None,
            expect_epoch: 1,
            new_owner: b.clone(),
        };
        assert!(matches!(a.apply(&create), Outcome::Applied(_)));
        assert!(matches!(a.apply(&claim), Outcome::Applied(_)));
    }
    a.listed = vec![queue("q0"), queue("q1")];
    (a, b)
}

/// One heartbeat round with `peers` beating and every call served; the queues the node read
/// the records of instead of the table, if it did.
fn round_reads_records(a: &mut Solo, peers: &[Owner]) -> Option<Vec<QueueId>> {
    start_round(a, peers);
    let read = a.take(|e| {
        matches!(
            e,
            Effect::Read {
                read: Read::Records(_),
                ..
            }
        )
    });
    if let Some(r) = &read {
        let outcome = a.serve(r);
        a.answer(r, outcome);
    }
    a.answer_all();
    match read {
        Some(Effect::Read {
            read: Read::Records(asked),
            ..
        }) => Some(asked),
        _ => None,
    }
}

/// Rounds until `a`, awaiting a queue from `b`, reads that queue's record instead of the
/// table; the queue.
fn awaited_from(a: &mut Solo, b: &Owner) -> QueueId {
    for _ in 0..60 {
        if let Some(asked) = round_reads_records(a, std::slice::from_ref(b)) {
            assert_eq!(asked.len(), 1, "a awaits one of b's two queues: {asked:?}");
            return asked[0].clone();
        }
    }
    panic!("a never read the record of the queue it awaits")
}

#[test]
fn a_hand_off_the_node_awaits_is_read_by_its_record_and_a_nudge_by_the_table() {
    let (mut a, b) = held_by_peer();
    let me = a.node.life().expect("running");
    let q = awaited_from(&mut a, &b);
    let (table_reads, records_read) =
        (a.node.table_reads().total(), a.node.table_reads().records());
    // a watches for the hand-off with instance reads between its heartbeats' reads of the
    // record: b hands the queue over just before one of those goes out.
    let is_read = |e: &Effect| matches!(e, Effect::Read { .. });
    let is_members = |e: &Effect| {
        matches!(
            e,
            Effect::Read {
                read: Read::Members,
                ..
            }
        )
    };
    for _ in 0..40 {
        a.tick();
        if a.sent(is_members) {
            break;
        }
        a.answer_all();
    }
    let members = a.take(is_members).expect("a watches between heartbeats");
    let hand_off = Write::HandOff {
        queue: q.clone(),
        from: b.clone(),
        expect_epoch: 2,
        to: Some(me.clone()),
    };
    assert!(matches!(a.apply(&hand_off), Outcome::Applied(_)));
    let notice = Write::Notify {
        to: me,
        notice: Notice::Inbox,
    };
    assert!(matches!(a.apply(&notice), Outcome::Applied(_)));
    // The instance read shows a's inbox moved, and a reads the awaited record at once.
    let outcome = a.serve(&members);
    a.answer(&members, outcome);
    let records = a.take(is_read).expect("a reads again at once");
    assert!(
        matches!(&records, Effect::Read { read: Read::Records(asked), .. } if *asked == [q.clone()]),
        "{records:?}"
    );
    let outcome = a.serve(&records);
    a.answer(&records, outcome);
    a.answer_all();
    assert!(a.started().contains(&q), "a starts the queue handed to it");
    assert_eq!(
        a.node.table_reads().total(),
        table_reads,
        "the hand-off and its notice were read by the queue's record alone"
    );
    assert!(a.node.table_reads().records() > records_read);
    // A nudge from a peer waiting on a: nothing a awaits explains it, so a reads the table.
    let nudges = a.node.table_reads().get(ReadCause::Inbox);
    assert!(matches!(a.apply(&notice), Outcome::Applied(_)));
    assert!(round_reads_table(&mut a, std::slice::from_ref(&b)));
    assert_eq!(a.node.table_reads().get(ReadCause::Inbox), nudges + 1);
}

#[test]
fn an_awaited_queue_found_held_by_a_third_life_calls_for_a_table_read() {
    let (mut a, b) = held_by_peer();
    let q = awaited_from(&mut a, &b);
    // b hands the queue to a life a has never seen: a's view of the records missed something.
    let hand_off = Write::HandOff {
        queue: q,
        from: b.clone(),
        expect_epoch: 2,
        to: Some(owner("x", 1)),
    };
    assert!(matches!(a.apply(&hand_off), Outcome::Applied(_)));
    let awaiting = a.node.table_reads().get(ReadCause::AwaitingHandOff);
    let asked = round_reads_records(&mut a, std::slice::from_ref(&b));
    assert!(asked.is_some(), "the next round reads the awaited record");
    assert_eq!(
        a.node.table_reads().get(ReadCause::AwaitingHandOff),
        awaiting + 1,
        "and the table at once after it"
    );
}

#[test]
fn a_holder_that_never_hands_over_is_nudged_after_an_interval_past_the_move_time() {
    // b holds both queues and never acts on them (its view missed something): a, whose target
    // gives it one, waits out the rebalance delay and an interval, then bumps b's inbox.
    let (mut a, b) = held_by_peer();
    let cfg = config("a");
    let joined = a.now;
    let mut nudged = None;
    for _ in 0..60 {
        round_reads_table(&mut a, std::slice::from_ref(&b));
        let sent = a
            .writes
            .iter()
            .filter_map(notice_of)
            .any(|(to, n)| *to == b && n == Notice::Inbox);
        if sent {
            nudged = Some(a.now);
            break;
        }
    }
    let at = nudged.expect("b is nudged");
    let earliest = joined.saturating_add(cfg.rebalance_delay + cfg.heartbeat_interval);
    assert!(at >= earliest, "nudged at {at:?}, before {earliest:?}");
}

#[test]
fn a_change_of_members_calls_for_a_table_read_unless_it_was_seen_in_one() {
    let (mut a, b) = settled_pair();
    let news = Write::Notify {
        to: b.clone(),
        notice: Notice::News,
    };
    assert!(matches!(a.apply(&news), Outcome::Applied(_)));
    start_round(&mut a, std::slice::from_ref(&b));
    a.answer_all_but(is_table_read);
    let read = a
        .take(is_table_read)
        .expect("b's news calls for a table read");
    // c joins while that read is on its way: a first sees c in it.
    let c = a.register_peer("c", 1);
    let outcome = a.serve(&read);
    a.answer(&read, outcome);
    assert_eq!(a.node.members(), 3, "c is seen in the table read");
    assert!(
        !a.sent(is_table_read),
        "the records of the read that showed c are as fresh as c: no second read"
    );
    a.answer_all();
    // d joins and is first seen in an instance read: the records are read again.
    let d = a.register_peer("d", 1);
    assert!(
        round_reads_table(&mut a, &[b, c, d]),
        "d is seen in an instance read"
    );
    assert_eq!(a.node.members(), 4);
}

#[test]
fn a_change_of_members_seen_before_a_table_read_is_sent_needs_no_read_of_its_own() {
    let (mut a, b) = settled_pair();
    let news = Write::Notify {
        to: b.clone(),
        notice: Notice::News,
    };
    assert!(matches!(a.apply(&news), Outcome::Applied(_)));
    let reads = |a: &Solo, cause| a.node.table_reads().get(cause);
    let (news, members) = (reads(&a, ReadCause::News), reads(&a, ReadCause::Members));
    // c joins before the instance read that shows both it and b's news: the news sends a
    // table read at once, whose records are as fresh as c.
    let c = a.register_peer("c", 1);
    for _ in 0..3 {
        round_reads_table(&mut a, &[b.clone(), c.clone()]);
    }
    assert_eq!(a.node.members(), 3);
    assert_eq!(reads(&a, ReadCause::News), news + 1, "b's news is read");
    assert_eq!(
        reads(&a, ReadCause::Members),
        members,
        "c was seen before that read went out: no read for the change of members"
    );
}

#[test]
fn a_node_awaiting_a_draining_owner_reads_again_within_a_quarter_interval() {
    let (mut a, b) = settled_pair();
    let interval = config("a").heartbeat_interval;
    // b starts draining: a's next read shows it, and b's queue is a's to take.
    a.beat_as(&b, Status::Draining);
    assert!(
        round_reads_table(&mut a, &[]),
        "b's drain changes the members"
    );
    let seen = a.now;
    for _ in 0..20 {
        a.tick();
        if a.sent(|e| matches!(e, Effect::Read { .. })) {
            break;
        }
        a.answer_all();
    }
    assert!(
        a.sent(|e| matches!(e, Effect::Read { .. })),
        "a reads again while it awaits b's queue"
    );
    let waited = a.now.since(seen);
    assert!(
        waited <= interval / 4,
        "the next read came {waited:?} after b was seen draining, not within {:?}",
        interval / 4
    );
}

#[test]
fn a_hand_off_whose_notice_never_came_does_not_hide_a_later_ones() {
    let (mut a, b) = held_by_peer();
    let me = a.node.life().expect("running");
    let q = awaited_from(&mut a, &b);
    let hand_off = |queue: &QueueId| Write::HandOff {
        queue: queue.clone(),
        from: b.clone(),
        expect_epoch: 2,
        to: Some(me.clone()),
    };
    // b hands q over and its notice is lost: a finds q in its next read of the awaited record.
    assert!(matches!(a.apply(&hand_off(&q)), Outcome::Applied(_)));
    let peers = std::slice::from_ref(&b);
    assert_eq!(round_reads_records(&mut a, peers), Some(vec![q.clone()]));
    assert!(a.started().contains(&q), "a starts the queue handed to it");
    // Three intervals on, b hands a the other queue, which a does not await, with a notice:
    // only a table read finds it, and the notice lost earlier must not stand in for this one.
    for _ in 0..3 {
        round_reads_table(&mut a, peers);
    }
    let other = if q == queue("q0") {
        queue("q1")
    } else {
        queue("q0")
    };
    assert!(matches!(a.apply(&hand_off(&other)), Outcome::Applied(_)));
    let notice = Write::Notify {
        to: me,
        notice: Notice::Inbox,
    };
    assert!(matches!(a.apply(&notice), Outcome::Applied(_)));
    let inbox = a.node.table_reads().get(ReadCause::Inbox);
    assert!(round_reads_table(&mut a, peers), "the notice is read");
    assert_eq!(a.node.table_reads().get(ReadCause::Inbox), inbox + 1);
}

/// `a` configured to balance by `balance` takes over the queues of peer `b`, which holds both
/// and stops beating: the news notices `a` sends after its first takeover.
fn news_after_a_takeover(balance: Balance) -> usize {
    let mut cfg = config("a");
    cfg.balance = balance;
    let (mut a, b) = held_by_peer_of(cfg);
    let taken_over = |w: &Write| matches!(w, Write::Claim { expect_owner: Some(o), .. } if *o == b);
    for _ in 0..200 {
        round_reads_table(&mut a, &[]);
        if let Some(at) = a.writes.iter().position(taken_over) {
            let after = &a.writes[at..];
            return (after.iter().filter_map(notice_of))
                .filter(|(_, n)| *n == Notice::News)
                .count();
        }
    }
    panic!("a never took over b's queues")
}

#[test]
fn a_takeover_is_news_under_load_balance_only() {
    // Load targets weigh each queue on its holder: a node whose view still shows the queue
    // orphaned would compute another target until its next reconciliation.
    assert!(news_after_a_takeover(Balance::load()) >= 1);
    assert_eq!(news_after_a_takeover(Balance::Count), 0);
}

//! Failing over fast: a node reads every quarter interval only while a peer it may have to
//! take over from is about to be condemned (a steady fleet reads once per heartbeat interval),
//! and a dead peer's queues go to members likely to claim them now, not to a peer that has
//! gone silent too.

mod common;

use common::solo::{Solo, config, queue};
use sqsbalancer_core::{Effect, Millis, Outcome, Owner, Write};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `solo` until `until`, answering every call; `peer` beats once per interval while
/// `beating` says so at that time. Returns when each read was sent.
fn run(solo: &mut Solo, until: Millis, peers: &[(&Owner, u64)]) -> Vec<Millis> {
    let mut reads = Vec::new();
    let mut beat_at = solo.now;
    while solo.now < until {
        solo.tick();
        if solo.now >= beat_at {
            for (peer, silent_from) in peers {
                if solo.now.0 < *silent_from {
                    solo.beat(peer);
                }
            }
            beat_at = solo.now.saturating_add(INTERVAL);
        }
        if solo.sent(|e| matches!(e, Effect::Read { .. })) {
            reads.push(solo.now);
        }
        solo.answer_all();
    }
    reads
}

/// Node a, with the intervals the tests count in.
fn node_a() -> sqsbalancer_core::Config {
    let mut cfg = config("a");
    cfg.heartbeat_interval = INTERVAL;
    cfg.heartbeat_timeout = TIMEOUT;
    cfg
}

/// The reads sent in `[from, to)`.
fn between(reads: &[Millis], from: u64, to: u64) -> usize {
    reads.iter().filter(|t| (from..to).contains(&t.0)).count()
}

#[test]
fn reads_quicken_only_while_a_silent_peer_is_about_to_be_condemned() {
    let mut a = Solo::running(node_a(), Vec::new());
    let b = a.register_peer("b", 1);
    let reads = run(&mut a, Millis(400_000), &[(&b, 200_000)]);
    // Steady: one read per interval (the first minute settles the membership).
    assert_eq!(between(&reads, 60_000, 200_000), 14, "{reads:?}");
    // b last beat at 190 s: from 20 s of silence on, a read every quarter interval until b
    // is reaped, 30 s after its counter was first seen stuck.
    assert_eq!(between(&reads, 200_000, 210_000), 1, "{reads:?}");
    assert_eq!(between(&reads, 210_000, 220_000), 4, "{reads:?}");
    // Reaped: back to one read per interval.
    assert_eq!(between(&reads, 260_000, 400_000), 14, "{reads:?}");
}

#[test]
fn a_dead_peer_s_queues_skip_a_peer_that_went_silent_too() {
    // b holds six queues. b last beats at 90 s and c at 100 s, so b is condemned at 120 s and
    // c at 130 s. At 120 s c has been silent for two intervals: every one of b's queues goes
    // to a at once, none waits for c to be condemned in turn.
    let mut a = Solo::running(node_a(), Vec::new());
    let b = a.register_peer("b", 1);
    let c = a.register_peer("c", 1);
    let queues: Vec<_> = (0..6).map(|i| queue(&format!("q{i}"))).collect();
    for q in &queues {
        let create = Write::CreateQueue {
            queue: q.clone(),
            revive_epoch: None,
        };
        let claim = Write::Claim {
            queue: q.clone(),
            expect_owner: None,
            expect_epoch: 1,
            new_owner: b.clone(),
        };
        assert!(matches!(a.apply(&create), Outcome::Applied(_)));
        assert!(matches!(a.apply(&claim), Outcome::Applied(_)));
    }
    a.listed = queues.clone();
    run(&mut a, Millis(125_000), &[(&b, 100_000), (&c, 105_000)]);
    let mut claimed: Vec<_> = a
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::Claim {
                queue,
                expect_owner: Some(o),
                ..
            } if *o == b => Some(queue.clone()),
            _ => None,
        })
        .collect();
    claimed.sort();
    assert_eq!(claimed, queues, "claimed by {:?}", a.now);
    assert_eq!(a.started().len(), 6);
}

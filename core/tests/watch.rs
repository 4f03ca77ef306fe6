//! The extra instance reads while the table is about to change hands: a steady fleet reads once
//! per heartbeat interval, and a node reads every quarter interval only while a peer it may
//! have to take over from is about to be condemned.

mod common;

use common::solo::{Solo, config};
use sqsbalancer_core::{Effect, Millis, Owner};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `solo` until `until`, answering every call; `peer` beats once per interval while
/// `beating` says so at that time. Returns when each read was sent.
fn run(
    solo: &mut Solo,
    until: Millis,
    peer: &Owner,
    beating: impl Fn(Millis) -> bool,
) -> Vec<Millis> {
    let mut reads = Vec::new();
    let mut beat_at = solo.now;
    while solo.now < until {
        solo.tick();
        if beating(solo.now) && solo.now >= beat_at {
            solo.beat(peer);
            beat_at = solo.now.saturating_add(INTERVAL);
        }
        if solo.sent(|e| matches!(e, Effect::Read { .. })) {
            reads.push(solo.now);
        }
        solo.answer_all();
    }
    reads
}

/// The reads sent in `[from, to)`.
fn between(reads: &[Millis], from: u64, to: u64) -> usize {
    reads.iter().filter(|t| (from..to).contains(&t.0)).count()
}

#[test]
fn reads_quicken_only_while_a_silent_peer_is_about_to_be_condemned() {
    let mut cfg = config("a");
    cfg.heartbeat_interval = INTERVAL;
    cfg.heartbeat_timeout = TIMEOUT;
    let mut a = Solo::running(cfg, Vec::new());
    let b = a.register_peer("b", 1);
    let silent_from = 200_000;
    let reads = run(&mut a, Millis(400_000), &b, |t| t.0 < silent_from);
    // Steady: one read per interval (the first minute settles the membership).
    assert_eq!(between(&reads, 60_000, 200_000), 14, "{reads:?}");
    // b last beat at 190 s: from 20 s of silence on, a read every quarter interval until b
    // is reaped, 30 s after its counter was first seen stuck.
    assert_eq!(between(&reads, 200_000, 210_000), 1, "{reads:?}");
    assert_eq!(between(&reads, 210_000, 220_000), 4, "{reads:?}");
    // Reaped: back to one read per interval.
    assert_eq!(between(&reads, 260_000, 400_000), 14, "{reads:?}");
}

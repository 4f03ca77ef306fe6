//! The checker is proven: each invariant has a deliberately broken protocol that the simulator
//! must catch within a bounded number of seeds, and the same seed must replay byte for byte.

use sqsbalancer_sim::{FaultKind, Invariant, Mutation, Scenario, run};
use std::collections::BTreeSet;
use std::time::Duration;

/// Seeds each catch-test may try before it fails.
const MAX_SEEDS: u64 = 20;

fn scenario(seed: u64, faults: &[FaultKind], mutation: Mutation) -> Scenario {
    let kinds: BTreeSet<FaultKind> = faults.iter().copied().collect();
    let mut sc = Scenario::new(seed, &kinds);
    sc.instances = 3;
    sc.queues = 12;
    sc.duration = Duration::from_secs(600);
    sc.mutation = Some(mutation);
    sc
}

/// Runs seeds until one breaks `want`; panics naming what was seen instead.
fn caught(want: Invariant, faults: &[FaultKind], mutation: Mutation) -> u64 {
    let mut seen = Vec::new();
    for seed in 0..MAX_SEEDS {
        let report = run(scenario(seed, faults, mutation)).expect("valid scenario");
        match report.violation {
            Some(v) if v.invariant == want => return seed,
            Some(v) => seen.push(format!("seed {seed}: {} ({})", v.invariant, v.detail)),
            None => seen.push(format!("seed {seed}: none")),
        }
    }
    panic!("{mutation:?} never broke {want} in {MAX_SEEDS} seeds: {seen:?}");
}

#[test]
fn receives_sent_past_their_send_by_time_break_the_fence() {
    // Held seconds before they are sent (a slow call), their long polls outlive the fence.
    caught(
        Invariant::Fenced,
        &[FaultKind::SlowCall],
        Mutation::IgnoreSendBy,
    );
}

#[test]
fn pollers_that_ignore_stop_break_exclusive_receive() {
    caught(
        Invariant::Exclusive,
        &[FaultKind::Join, FaultKind::Stop],
        Mutation::IgnoreStop,
    );
}

#[test]
fn dropping_redelivered_messages_breaks_no_loss() {
    caught(
        Invariant::NoLoss,
        &[FaultKind::FailingHandler],
        Mutation::DropRedelivered,
    );
}

#[test]
fn deleting_failures_breaks_delete_after_success() {
    caught(
        Invariant::DeleteAfterSuccess,
        &[FaultKind::FailingHandler],
        Mutation::DeleteFailures,
    );
}

#[test]
fn hand_offs_that_keep_the_epoch_break_epoch_growth() {
    caught(
        Invariant::EpochGrows,
        &[FaultKind::Join],
        Mutation::HandOffKeepsEpoch,
    );
}

#[test]
fn a_wrong_capacity_breaks_settled_balance() {
    caught(Invariant::Settled, &[], Mutation::WrongCapacity);
}

#[test]
fn skipping_release_on_stop_breaks_graceful_stop() {
    caught(
        Invariant::GracefulStop,
        &[FaultKind::Stop],
        Mutation::SkipReleaseOnStop,
    );
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let traced = |seed| {
        let mut sc = Scenario::swarm(seed);
        sc.trace = true;
        run(sc).expect("valid scenario")
    };
    let (a, b, c) = (traced(11), traced(11), traced(12));
    assert!(a.trace.as_ref().is_some_and(|t| !t.is_empty()));
    assert_eq!(a.trace, b.trace, "same seed, same bytes");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert!(a.trace_hash.is_some());
    assert_ne!(a.trace_hash, c.trace_hash, "different seeds differ");
}

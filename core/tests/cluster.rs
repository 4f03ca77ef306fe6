//! Multi-node property tests of the coordination protocol against an in-test conditional store.

mod common;

use common::{Breakage, Cluster, Faults};
use proptest::prelude::*;
use sqsbalancer_core::SharedTargets;
use sqsbalancer_core::rng::Rng;
use std::sync::Arc;

/// Simulated time with faults on, then with faults off until the fleet must have settled.
const FAULTY_MS: u64 = 60_000;
const SETTLE_MS: u64 = 45_000;

/// Replays a failing case with the event log on and returns its last lines, for the failure
/// message.
fn trace_tail(seed: u64, nodes: usize, queues: usize) -> String {
    let faults = Faults::draw(&mut Rng::new(seed ^ 0x5eed));
    let mut c = Cluster::new(seed, nodes, queues, faults);
    c.log = Some(Vec::new());
    c.run_until(FAULTY_MS);
    c.calm();
    c.run_until(FAULTY_MS + SETTLE_MS);
    let log = c.log.unwrap_or_default();
    log[log.len().saturating_sub(60)..].join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_500, ..ProptestConfig::default() })]

    /// Under any mix of faults no queue ever has two nodes that may receive from it at once,
    /// and once faults stop every queue has exactly one live owner and the loads are balanced.
    #[test]
    fn exclusive_under_faults_and_settled_after(
        seed in any::<u64>(),
        nodes in 1usize..=6,
        queues in 0usize..=40,
    ) {
        let faults = Faults::draw(&mut Rng::new(seed ^ 0x5eed));
        let mut c = Cluster::new(seed, nodes, queues, faults.clone());
        c.run_until(FAULTY_MS);
        prop_assert!(
            c.violation.is_none(),
            "{:?} with {faults:?}\n{}",
            c.violation,
            trace_tail(seed, nodes, queues)
        );
        c.calm();
        c.run_until(FAULTY_MS + SETTLE_MS);
        prop_assert!(
            c.violation.is_none(),
            "{:?} with {faults:?}\n{}",
            c.violation,
            trace_tail(seed, nodes, queues)
        );
        let settled = c.check_settled();
        prop_assert!(
            settled.is_ok(),
            "{settled:?} with {faults:?}\n{}",
            trace_tail(seed, nodes, queues)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Nodes that share their targets do exactly what nodes computing their own do: the same
    /// inputs and effects, event by event, under any mix of faults.
    #[test]
    fn shared_targets_change_nothing(
        seed in any::<u64>(),
        nodes in 2usize..=6,
        queues in 0usize..=40,
    ) {
        let faults = Faults::draw(&mut Rng::new(seed ^ 0x5eed));
        let run = |shared| {
            let log = Some(Vec::new());
            let mut c = Cluster::with_shared(seed, nodes, queues, faults.clone(), shared, log);
            c.run_until(FAULTY_MS);
            c.calm();
            c.run_until(FAULTY_MS + SETTLE_MS);
            c.log.unwrap_or_default()
        };
        let alone = run(None);
        let shared = run(Some(Arc::new(SharedTargets::new())));
        prop_assert!(!alone.is_empty());
        let first = alone.iter().zip(&shared).position(|(a, b)| a != b);
        prop_assert_eq!(first, None, "with {:?}", faults);
        prop_assert_eq!(alone.len(), shared.len());
    }
}

#[test]
fn a_quiet_fleet_settles_balanced_and_stays_put() {
    let mut c = Cluster::new(7, 4, 30, Faults::none());
    c.run_until(30_000);
    c.check_settled().unwrap();
    let before = c.store.table.queues();
    c.run_until(90_000);
    assert_eq!(
        c.store.table.queues(),
        before,
        "nothing changed, so nothing may move"
    );
    assert!(c.violation.is_none());
}

#[test]
fn the_checker_catches_a_runtime_that_ignores_the_fence() {
    let mut caught = 0;
    for seed in 0..40 {
        let mut faults = Faults::none();
        faults.partition_per_mille = 60;
        let mut c = Cluster::new(seed, 3, 12, faults);
        c.store.breakage = Some(Breakage::IgnoreFence);
        c.run_until(FAULTY_MS);
        caught += c.violation.is_some() as u32;
    }
    assert!(
        caught > 0,
        "partitions with the fence ignored must show double receivers"
    );
}

#[test]
fn the_checker_catches_a_store_without_conditions() {
    let mut caught = 0;
    for seed in 0..40 {
        let mut faults = Faults::none();
        faults.partition_per_mille = 30;
        faults.max_latency_ms = 300;
        faults.lost_per_mille = 100;
        let mut c = Cluster::new(seed, 5, 20, faults);
        c.store.breakage = Some(Breakage::UnconditionalClaims);
        c.run_until(FAULTY_MS);
        caught += c.violation.is_some() as u32;
    }
    assert!(
        caught > 0,
        "unconditional claims must let two nodes take one queue"
    );
}

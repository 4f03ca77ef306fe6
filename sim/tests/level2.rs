//! Level 2, the real runtime on turmoil hosts: the checker catches every deliberate bug planted
//! around the runtime within a bounded number of seeds, a fault-free fleet passes every
//! check, and the same seed replays byte for byte.

use sqsbalancer_sim::{FaultKind, Invariant, Mutation, Scenario, SwarmLimits, level2};
use std::collections::BTreeSet;

/// Seeds each catch-test may try before it fails.
const MAX_SEEDS: u64 = 10;

fn scenario(seed: u64, faults: &[FaultKind], mutation: Option<Mutation>) -> Scenario {
    let kinds: BTreeSet<FaultKind> = faults.iter().copied().collect();
    let mut sc = level2::scenario(seed, &SwarmLimits::default());
    sc.faults = Scenario::new(seed, &kinds).faults;
    sc.instances = 3;
    sc.queues = 12;
    sc.messages_per_second = 3;
    sc.mutation = mutation;
    sc
}

/// Runs seeds until one breaks `want`; panics naming what was seen instead.
fn caught(want: Invariant, faults: &[FaultKind], mutation: Mutation) -> u64 {
    let mut seen = Vec::new();
    for seed in 0..MAX_SEEDS {
        let report = level2::run(scenario(seed, faults, Some(mutation))).expect("valid scenario");
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
    // Held seconds before they are sent (a slow call) while DynamoDB is out of reach (the
    // fence is close), their long polls outlive it.
    caught(
        Invariant::Fenced,
        &[FaultKind::SlowCall, FaultKind::PartitionDynamo],
        Mutation::IgnoreSendBy,
    );
}

#[test]
fn a_poller_that_ignores_stops_breaks_exclusive_receive() {
    caught(
        Invariant::Exclusive,
        &[FaultKind::Join, FaultKind::Stop],
        Mutation::IgnoreStop,
    );
}

#[test]
fn a_panicking_runtime_task_is_a_no_panic_violation() {
    caught(
        Invariant::NoPanic,
        &[FaultKind::Join],
        Mutation::PanicInRuntime,
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
fn dropping_redeliveries_breaks_no_loss() {
    caught(
        Invariant::NoLoss,
        &[FaultKind::FailingHandler],
        Mutation::DropRedelivered,
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
fn a_fault_free_fleet_handles_everything_and_settles() {
    let report = level2::run(scenario(3, &[], None)).expect("valid scenario");
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let m = report.messages;
    assert!(m.sent > 1_000, "{m:?}");
    assert_eq!((m.deleted, m.lost, m.failed), (m.sent, 0, 0), "{m:?}");
    assert_eq!(
        report.balance_spread, 0.0,
        "12 queues over 3 instances of weight 1"
    );
}

#[test]
fn a_swarm_seed_with_every_fault_kind_passes() {
    let all: Vec<FaultKind> = level2::KINDS.to_vec();
    let report = level2::run(scenario(5, &all, None)).expect("valid scenario");
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert_eq!(report.faults.len(), level2::KINDS.len());
    assert!(
        report.messages.failed > 0 && report.starts > 3,
        "{report:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    if !level2::DETERMINISTIC {
        panic!(
            "built without --cfg tokio_unstable (set by .cargo/config.toml; a RUSTFLAGS \
             variable replaces it): tokio's scheduling choices are then unseeded"
        );
    }
    let traced = |seed| {
        let mut sc = level2::scenario(seed, &SwarmLimits::default());
        sc.trace = true;
        level2::run(sc).expect("valid scenario")
    };
    let (a, b, c) = (traced(11), traced(11), traced(12));
    assert!(a.trace.as_ref().is_some_and(|t| t.lines().count() > 1_000));
    assert_eq!(a.trace, b.trace, "same seed, same bytes");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_ne!(a.trace_hash, c.trace_hash, "different seeds differ");
}

#[test]
fn level_one_only_faults_are_refused() {
    let mut sc = scenario(1, &[FaultKind::Pause], None);
    assert!(sc.faults.pause > 0);
    let e = level2::run(sc.clone()).expect_err("pauses are level 1 only");
    assert!(e.to_string().contains("level 1"), "{e}");
    sc.faults.pause = 0;
    sc.instances = 51;
    assert!(level2::run(sc).is_err());
}

#[test]
fn a_swarm_seed_names_the_command_that_replays_it() {
    let limits = SwarmLimits {
        only: Some(FaultKind::parse_list("stop,crash").expect("known kinds")),
        scale: Some(0.5),
        traffic: None,
        balance: None,
    };
    assert_eq!(
        level2::scenario(5, &limits).replay.as_deref(),
        Some("sqsbalancer sim replay --level 2 --seed 5 --faults crash,stop --fault-scale 0.5")
    );
    let plain = level2::scenario(5, &SwarmLimits::default());
    assert_eq!(
        plain.replay.as_deref(),
        Some("sqsbalancer sim replay --level 2 --seed 5")
    );
    assert_eq!((plain.faults.drift_ppm, plain.faults.pause), (0, 0));
}

#[test]
fn a_story_is_told_with_nothing_lost_and_every_beat_measured() {
    use std::time::Duration;
    let mut live = level2::Live::start(level2::Story::demo(3, 12, Duration::from_secs(300)))
        .expect("the demo story is valid");
    while !live.step().expect("the hosts run") {}
    let view = live.view();
    let told = live.finish();
    let r = &told.report;
    assert!(r.violation.is_none(), "{:?}", r.violation);
    assert_eq!(r.messages.lost, 0, "{:?}", r.messages);
    assert!(r.messages.sent > 5_000, "{:?}", r.messages);
    let mut states: Vec<&str> = view.instances.iter().map(|i| i.state.name()).collect();
    states.sort_unstable();
    assert_eq!(
        states,
        ["crashed", "running", "running", "running", "stopped"]
    );
    let chapters: Vec<(Option<level2::Act>, u64, u64)> = told
        .chapters
        .iter()
        .map(|c| (c.act.clone(), c.moves, c.optimum))
        .collect();
    assert_eq!(chapters.len(), 5, "{chapters:?}");
    for c in &told.chapters {
        assert!(c.moves >= c.optimum, "{c:?}");
    }
    let crash = &told.chapters[2];
    assert!(!crash.failover.is_empty(), "{crash:?}");
    let stop = &told.chapters[3];
    assert!(!stop.handoff.is_empty(), "{stop:?}");
    assert_eq!(
        stop.moves, stop.optimum,
        "a stop moves only the leaver's queues"
    );
}

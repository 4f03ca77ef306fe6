//! A long run tells its caller how far it has got, and watching it changes nothing.

use sqsbalancer_sim::{Progress, Scenario, run, run_observed};
use std::collections::BTreeSet;
use std::time::Duration;

fn quiet_run() -> Scenario {
    let mut sc = Scenario::new(11, &BTreeSet::new());
    sc.instances = 3;
    sc.queues = 30;
    sc.duration = Duration::from_secs(10 * 60);
    sc
}

#[test]
fn progress_comes_every_sampling_period_and_reaches_the_end() {
    let sc = quiet_run();
    let mut seen: Vec<Progress> = Vec::new();
    let watched = run_observed(sc.clone(), |p| seen.push(p)).expect("valid scenario");
    let times: Vec<u64> = seen.iter().map(|p| p.sim_ms).collect();
    let expected: Vec<u64> = (1..=20).map(|i| i * 30_000).collect();
    assert_eq!(times, expected, "one report per 30 simulated seconds");
    assert!(seen.iter().all(|p| p.end_ms == 600_000 && p.up == 3));
    assert!(
        seen.windows(2).all(|w| w[0].events < w[1].events),
        "events only grow: {seen:?}"
    );
    let watched = serde_json::to_string(&watched.json()).expect("serialisable");
    let plain = run(sc).expect("valid scenario");
    let plain = serde_json::to_string(&plain.json()).expect("serialisable");
    assert_eq!(watched, plain, "watching changes nothing");
}

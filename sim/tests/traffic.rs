//! Traffic shapes (G14): a skewed run is as reproducible as any, and it shows what balancing
//! queue counts leaves uneven: the handler time each instance gets, and how long the popular
//! queues' messages wait.

use sqsbalancer_sim::{Scenario, Traffic, run};
use std::collections::BTreeSet;
use std::time::Duration;

fn skewed(seed: u64) -> Scenario {
    let mut sc = Scenario::new(seed, &BTreeSet::new());
    sc.instances = 5;
    sc.queues = 200;
    sc.duration = Duration::from_secs(20 * 60);
    sc.messages_per_second = 50;
    sc.traffic = Traffic::G14;
    sc
}

#[test]
fn under_zipf_traffic_count_balance_evens_the_queues_but_not_the_work() {
    let r = run(skewed(3)).expect("valid scenario");
    assert!(r.violation.is_none(), "{:?}", r.violation);
    assert_eq!(r.messages.lost, 0);
    let w = r.work_share.expect("level 1 measures the work share");
    assert_eq!(w.traffic, "zipf");
    assert!(
        w.queues_max_over_mean < 1.05 && w.queues_min_over_mean > 0.95,
        "queue counts within floor and ceil: {w:?}"
    );
    assert!(
        w.handler_max_over_mean > 1.2 || w.handler_min_over_mean < 0.8,
        "the skew shows in handler time: {w:?}"
    );
    // Without faults nothing moves, so the busiest queue's holder carries at least it.
    assert!(
        w.largest_queue_over_mean > 0.0 && w.largest_queue_over_mean <= w.handler_max_over_mean,
        "{w:?}"
    );
}

#[test]
fn a_skewed_run_is_reproducible_and_uniform_traffic_spreads_the_work() {
    let json = |sc: Scenario| serde_json::to_string(&run(sc).expect("valid").json()).expect("json");
    assert_eq!(json(skewed(5)), json(skewed(5)), "same seed, same report");
    let mut uniform = skewed(5);
    uniform.traffic = Traffic::Uniform;
    let even = run(uniform).expect("valid");
    let w = even.work_share.expect("measured");
    assert!(
        w.handler_max_over_mean < 1.2 && w.handler_min_over_mean > 0.8,
        "{w:?}"
    );
    // A popular queue's messages wait for the receive after the batch before them.
    let skew = run(skewed(5)).expect("valid").dwell.expect("measured");
    let even = even.dwell.expect("measured");
    assert!(even.all.count > 0 && skew.all.count > 0);
    assert!(
        skew.worst_queue_p99_ms > even.worst_queue_p99_ms,
        "{skew:?} {even:?}"
    );
}

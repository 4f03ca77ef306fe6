//! Instance records spread over several partition keys (`instance_partition_keys`): a
//! Members read is one query a key, and the protocol keeps every invariant with its records
//! read key by key.

use sqsbalancer_sim::{Scenario, run};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn spread_instance_records_cost_a_query_a_key_at_steady_state() {
    for (keys, per_minute) in [(1, 12.0), (4, 30.0)] {
        let mut sc = Scenario::new(5, &BTreeSet::new());
        sc.instances = 5;
        sc.queues = 50;
        sc.duration = Duration::from_secs(15 * 60);
        sc.instance_partition_keys = keys;
        let report = run(sc).expect("valid scenario");
        assert_eq!(report.violation, None);
        assert_eq!(report.instance_partition_keys, keys);
        // One heartbeat and one Members read of `keys` queries an interval (10 s).
        let steady = report
            .steady_dynamo_per_instance_minute
            .expect("a steady phase");
        assert!((steady - per_minute).abs() < 1.0, "{keys} keys: {steady}");
    }
}

#[test]
fn swarm_seeds_with_spread_instance_records_keep_every_invariant() {
    for seed in 0..60 {
        let mut sc = Scenario::swarm(seed);
        sc.instance_partition_keys = 1 + (seed % 4) as u32 * 2;
        let keys = sc.instance_partition_keys;
        let report = run(sc).expect("valid scenario");
        assert_eq!(report.violation, None, "seed {seed}, {keys} instance keys");
    }
}

//! The scripted membership day G11 measures (`--schedule crash-and-roll`): it crashes and
//! restarts what it says, and the fleet comes through it with every invariant held.

use sqsbalancer_sim::{Level, Scenario, Schedule, SimError, run};
use std::collections::BTreeSet;
use std::time::Duration;

fn crash_and_roll(instances: usize) -> Scenario {
    let mut sc = Scenario::new(3, &BTreeSet::new());
    sc.instances = instances;
    sc.queues = 10 * instances;
    sc.duration = Duration::from_secs(20 * 60);
    sc.schedule = Schedule::CrashAndRoll;
    sc
}

#[test]
fn a_tenth_crashes_then_every_instance_restarts_once_and_the_fleet_settles() {
    let instances = 20;
    let report = run(crash_and_roll(instances)).expect("valid scenario");
    assert_eq!(report.violation, None);
    assert_eq!(report.schedule, "crash-and-roll");
    let crashed = report.fault_marks.iter().filter(|f| f.1 == "crash").count();
    assert_eq!(crashed, instances / 10, "a tenth of the fleet crashes");
    assert_eq!(
        report.stop_ms.len(),
        instances,
        "every instance stops cleanly once"
    );
    // First starts, the crashed ones' return, and a restart after each stop.
    assert_eq!(report.starts, (instances + crashed + instances) as u64);
    assert!(
        report.failover.len() >= 10,
        "the crashed instances' queues fail over"
    );
    assert_eq!(report.settle_moves, report.settle_optimum);
}

#[test]
fn levels_two_and_three_refuse_a_schedule() {
    for level in [Level::Runtime, Level::Sdk] {
        let err = level.run(crash_and_roll(3)).expect_err("level 1 only");
        assert!(
            matches!(
                err,
                SimError::InvalidScenario {
                    field: "schedule",
                    ..
                }
            ),
            "{level}: {err}"
        );
    }
}

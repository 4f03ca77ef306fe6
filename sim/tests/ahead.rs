//! Handling read replies ahead on a second thread changes nothing: a run with the helper and
//! one without report the same, byte for byte, under every fault kind and both schedules.

use sqsbalancer_sim::{Scenario, Schedule, World};
use std::time::Duration;

/// The JSON report of `sc`, with replies handled ahead or not, and how many were.
fn report(sc: Scenario, ahead: bool) -> (String, u64) {
    let mut w = World::new(sc);
    if ahead {
        w.handle_ahead();
    }
    w.run();
    let json = serde_json::to_string(&w.report().json()).expect("serialisable");
    (json, w.handled_ahead())
}

#[test]
fn replies_handled_ahead_give_the_same_run() {
    let mut rolling = Scenario::swarm(3);
    rolling.instances = 40;
    rolling.queues = 2_000;
    rolling.duration = Duration::from_secs(20 * 60);
    rolling.schedule = Schedule::CrashAndRoll;
    let scenarios = (0..6).map(Scenario::swarm).chain([rolling]);
    let mut handled = 0;
    for sc in scenarios {
        let seed = sc.seed;
        let (alone, none) = report(sc.clone(), false);
        let (helped, ahead) = report(sc, true);
        assert_eq!(none, 0);
        assert_eq!(alone, helped, "seed {seed}: the helper changed the run");
        handled += ahead;
    }
    assert!(handled > 0, "no reply was handled ahead");
}

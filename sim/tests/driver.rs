//! The runtime's real driver, on a paused tokio clock, against the in-memory fakes: three
//! instances split nine queues evenly, and a graceful stop hands its share to the others.

use sqsbalancer_core::{Input, Phase, StopOutcome};
use sqsbalancer_runtime::{Driver, DriverHandle, PlaneCommand};
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use sqsbalancer_sim::{TABLE, config};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A data plane with nothing in flight: every stop is acknowledged at once, and the drain
/// finishes at once. The coordination is what is under test here.
async fn idle_plane(mut commands: mpsc::UnboundedReceiver<PlaneCommand>, handle: DriverHandle) {
    while let Some(c) = commands.recv().await {
        let report = match c {
            PlaneCommand::Stop { queue } => Input::ReceivingStopped { queue },
            PlaneCommand::Drain => Input::DrainFinished,
            PlaneCommand::Start { .. } | PlaneCommand::Fence { .. } => continue,
        };
        if handle.report(report).is_err() {
            return;
        }
    }
}

fn start(fakes: &Arc<Mutex<Fakes>>, name: &str) -> DriverHandle {
    let mut cfg = config();
    cfg.instance_id = Some(name.to_owned());
    let backend = Arc::new(FakeBackend::new(
        Arc::clone(fakes),
        name,
        TABLE,
        Duration::from_millis(2),
    ));
    let (driver, handle, plane) =
        Driver::new(cfg, Arc::clone(&backend), backend).expect("a valid config");
    tokio::spawn(driver.run());
    tokio::spawn(idle_plane(plane, handle.clone()));
    handle
}

/// Waits, on the paused clock, until `done` holds; fails past `within`.
async fn wait_until(within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn three_drivers_split_nine_queues_and_a_stop_hands_its_share_over() {
    let fakes = Arc::new(Mutex::new(Fakes::default()));
    {
        let mut f = fakes.lock().expect("not poisoned");
        f.dynamo.create_table(TABLE).expect("a new table");
        for i in 0..9 {
            f.sqs
                .create_queue("admin", &format!("q-{i}"))
                .expect("a new queue");
        }
    }
    let mut fleet: Vec<DriverHandle> = ["a", "b", "c"].iter().map(|n| start(&fakes, n)).collect();
    // Discovery, claims and the rebalance delay: well within two minutes.
    wait_until(Duration::from_secs(120), "3/3/3", || {
        fleet.iter().all(|h| h.receiving().len() == 3)
    })
    .await;
    let mut all: Vec<_> = fleet
        .iter()
        .flat_map(|h| h.receiving().into_keys())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 9, "no queue held twice");

    fleet[0].shutdown().expect("running");
    let end = fleet[0].wait_phase(Phase::is_stopped).await;
    assert_eq!(
        end,
        Phase::Stopped {
            outcome: StopOutcome::Clean
        }
    );
    let rest = fleet.split_off(1);
    // The stopped instance handed its queues over: the others hold all nine, 4 and 5.
    wait_until(Duration::from_secs(60), "4/5 after the stop", || {
        let mut loads: Vec<usize> = rest.iter().map(|h| h.receiving().len()).collect();
        loads.sort();
        loads == [4, 5]
    })
    .await;
}

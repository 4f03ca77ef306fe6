//! The runtime's real driver and data plane, on a paused tokio clock, against the in-memory
//! fakes: the coordination alone, then messages end to end with failing and panicking
//! handlers.

mod common;

use common::{backend, backlog, cfg, fakes_with_queues, send, wait_until};
use sqsbalancer_core::{Input, Phase, StopOutcome};
use sqsbalancer_runtime::{
    BackendError, Balancer, Driver, DriverHandle, Handler, HandlerError, Message, PlaneCommand,
    Running, RuntimeError,
};
use sqsbalancer_sim::backend::Fakes;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

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

/// Starts instance `name` with its driver and [`idle_plane`]: coordination only.
fn start_coordinating(fakes: &Arc<Mutex<Fakes>>, name: &str) -> DriverHandle {
    let (driver, handle, plane) =
        Driver::new(cfg(name), backend(fakes, name), backend(fakes, name)).expect("a valid config");
    tokio::spawn(driver.run());
    tokio::spawn(idle_plane(plane, handle.clone()));
    handle
}

/// Starts instance `name` as a user would: a [`Balancer`] running `handler`.
fn start_balancer<H: Handler>(fakes: &Arc<Mutex<Fakes>>, name: &str, handler: H) -> Running {
    Balancer::new(cfg(name), backend(fakes, name))
        .expect("a valid config")
        .start(handler)
        .expect("started")
}

#[tokio::test(start_paused = true)]
async fn three_drivers_split_nine_queues_and_a_stop_hands_its_share_over() {
    let (fakes, _) = fakes_with_queues(9);
    let mut fleet: Vec<DriverHandle> = ["a", "b", "c"]
        .iter()
        .map(|n| start_coordinating(&fakes, n))
        .collect();
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

/// Counts every delivery of every message by body; fails or panics on a message's first
/// delivery when its body says so. Clones share the counts.
#[derive(Clone, Default)]
struct Recorder {
    deliveries: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Recorder {
    fn count(&self, body: &str) -> u32 {
        self.deliveries
            .lock()
            .expect("not poisoned")
            .get(body)
            .copied()
            .unwrap_or(0)
    }
}

impl Handler for Recorder {
    fn handle(&self, message: Message) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let n = {
            let mut d = self.deliveries.lock().expect("not poisoned");
            let n = d.entry(message.body.clone()).or_default();
            *n += 1;
            *n
        };
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if n == 1 && message.body.starts_with("fail") {
                return Err(HandlerError::new("failing on purpose"));
            }
            if n == 1 && message.body.starts_with("panic") {
                panic!("panicking on purpose");
            }
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_message_is_handled_and_deleted_only_after_success() {
    let (fakes, urls) = fakes_with_queues(9);
    let recorder = Recorder::default();
    let mut fleet: Vec<Running> = ["a", "b", "c"]
        .iter()
        .map(|n| start_balancer(&fakes, n, recorder.clone()))
        .collect();
    let mut bodies = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        for j in 0..10 {
            let kind = match j {
                0 => "fail",
                1 => "panic",
                _ => "ok",
            };
            let body = format!("{kind}-{i}-{j}");
            send(&fakes, url, &body);
            bodies.push(body);
        }
    }
    wait_until(Duration::from_secs(300), "every queue empty", || {
        backlog(&fakes, &urls) == 0
    })
    .await;
    for body in &bodies {
        let n = recorder.count(body);
        if body.starts_with("ok") {
            assert!(n >= 1, "{body} never handled");
        } else {
            // Failed or panicked once, left for the visibility timeout, then handled again.
            assert!(n >= 2, "{body} handled {n} times");
        }
    }
    assert!(fleet.iter().all(|r| r.phase() == Phase::Running));
    // A graceful stop returns Ok and leaves its queues to the others.
    let first = fleet.remove(0);
    first.stop().await.expect("a clean stop");
    wait_until(Duration::from_secs(60), "the rest own all nine", || {
        fleet.iter().map(|r| r.active_queues().len()).sum::<usize>() == 9
    })
    .await;
}

#[tokio::test]
async fn a_bad_configuration_is_a_typed_error_naming_the_field() {
    let (fakes, _) = fakes_with_queues(0);
    let mut bad = cfg("a");
    bad.worker_pool_size = 0;
    let Err(RuntimeError::Config(e)) = Balancer::new(bad, backend(&fakes, "a")) else {
        panic!("a zero worker pool was accepted");
    };
    assert!(e.to_string().contains("worker_pool_size"), "{e}");
}

#[tokio::test]
async fn an_instance_without_an_id_gets_a_valid_one_of_its_own() {
    let (fakes, _) = fakes_with_queues(0);
    let mut anonymous = cfg("a");
    anonymous.instance_id = None;
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let b = Balancer::new(anonymous.clone(), backend(&fakes, "a")).expect("accepted");
            b.instance_id().to_owned()
        })
        .collect();
    for id in &ids {
        assert!(sqsbalancer_core::InstanceId::new(id).is_ok(), "{id}");
    }
    assert_ne!(ids[0], ids[1], "two balancers of one process share an id");
}

#[tokio::test(start_paused = true)]
async fn discovery_follows_list_queues_pages_past_a_thousand_queues() {
    // moto cuts ListQueues at 1,000 and ignores NextToken; the fake pages as SQS does.
    let (fakes, urls) = fakes_with_queues(1_100);
    let outcome = sqsbalancer_runtime::execute::list(&*backend(&fakes, "a"), "q-").await;
    let sqsbalancer_core::Outcome::Applied(sqsbalancer_core::Reply::Queues(found)) = outcome else {
        panic!("listing failed: {outcome:?}");
    };
    let found: Vec<&str> = found.iter().map(|q| q.as_str()).collect();
    let mut want: Vec<&str> = urls.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(found, want);
    let calls = fakes.lock().expect("not poisoned").sqs.calls_of("a");
    assert_eq!(calls, 2, "two pages of at most 1,000");
}

#[tokio::test(start_paused = true)]
async fn an_instance_waits_for_its_table_and_says_so_in_its_health() {
    let (fakes, _) = fakes_with_queues(2);
    let windows = common::faulty::Windows::default();
    let a = common::faulty::Faulty::new(&fakes, "a", &windows);
    a.set(|f| f.unprepared = 3);
    let faults = Arc::clone(&a.faults);
    let running = Balancer::new(cfg("a"), a)
        .expect("valid")
        .start(|_m: Message| async { Ok::<(), HandlerError>(()) })
        .expect("started");
    let prepares = || faults.lock().expect("not poisoned").prepares;
    wait_until(Duration::from_secs(60), "a failed preparation", || {
        prepares() >= 1
    })
    .await;
    let h = running.health();
    assert!(!h.healthy, "{h:?}");
    assert!(
        matches!(h.last_error, Some(BackendError::Unknown { .. })),
        "{h:?}"
    );
    wait_until(Duration::from_secs(120), "running, two queues", || {
        running.phase() == Phase::Running && running.active_queues().len() == 2
    })
    .await;
    assert_eq!(
        prepares(),
        4,
        "asked again until the table was ready, then never"
    );
    running.stop().await.expect("a clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_the_table_is_not_ready_is_clean_and_registers_nothing() {
    let (fakes, _) = fakes_with_queues(1);
    let windows = common::faulty::Windows::default();
    let a = common::faulty::Faulty::new(&fakes, "a", &windows);
    a.set(|f| f.unprepared = u32::MAX);
    let running = Balancer::new(cfg("a"), a)
        .expect("valid")
        .start(|_m: Message| async { Ok::<(), HandlerError>(()) })
        .expect("started");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(running.phase(), Phase::Starting);
    running.stop().await.expect("a clean stop");
    let partition = sqsbalancer_core::table::TableQuery {
        pk: sqsbalancer_core::table::partition(&cfg("a").application_name),
        sk_prefix: None,
        backward: false,
    };
    let f = fakes.lock().expect("not poisoned");
    let records = f.dynamo.count(sqsbalancer_sim::TABLE, &partition);
    assert_eq!(
        records, 0,
        "nothing was written to a table that was never ready"
    );
}

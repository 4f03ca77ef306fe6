//! The runtime against a real AWS emulator (moto): three balancers create their missing table
//! and share nine queues evenly, every message is handled and deleted, a graceful stop hands its queues over, and a
//! coordination table with the wrong key schema is refused; an aborted instance is failed over
//! within HeartbeatTimeout + 2 × HeartbeatInterval and a stopped one handed over within one
//! interval.

mod common;

use common::{Moto, backlog, create_queues, fast, send_message, send_messages, wait_until};
use sqsbalancer_runtime::aws::{Billing, ensure_table};
use sqsbalancer_runtime::{Balancer, Handler, HandlerError, Message, Running, RuntimeError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Starts balancers a, b and c of `app`, each recording the bodies it handled in `handled`.
async fn start_fleet(
    moto: &Moto,
    table: &str,
    app: &str,
    handled: &Arc<Mutex<BTreeSet<String>>>,
) -> Vec<Running> {
    let mut fleet = Vec::new();
    for id in ["a", "b", "c"] {
        let seen = Arc::clone(handled);
        let handler = move |m: Message| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().expect("not poisoned").insert(m.body);
                Ok::<(), HandlerError>(())
            }
        };
        let backend = Arc::new(moto.backend(table).await);
        let running = Balancer::new(fast(app, table, id), backend)
            .expect("a valid config")
            .start(handler)
            .expect("started");
        fleet.push(running);
    }
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_balancers_share_nine_queues_and_handle_every_message() {
    let moto = Moto::start();
    let table = "coordination";
    let admin = moto.backend(table).await;
    // No table beforehand: the three balancers create it, racing each other to.
    let urls = create_queues(&admin, "orders", 9).await;
    let handled: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut fleet = start_fleet(&moto, table, "orders", &handled).await;
    wait_until(Duration::from_secs(30), "3/3/3", async || {
        fleet.iter().all(|r| r.active_queues().len() == 3)
    })
    .await;
    let bodies = send_messages(&admin, &urls, 3, "m").await;
    wait_until(
        Duration::from_secs(30),
        "every message handled",
        async || *handled.lock().expect("not poisoned") == bodies,
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "every message deleted",
        async || backlog(&admin, &urls).await == 0,
    )
    .await;
    // A graceful stop hands its three queues to the other two.
    let leaver = fleet.remove(0);
    leaver.stop().await.expect("a clean stop");
    wait_until(
        Duration::from_secs(10),
        "the other two own all nine",
        async || {
            let loads: Vec<usize> = fleet.iter().map(|r| r.active_queues().len()).collect();
            loads.iter().sum::<usize>() == 9 && loads.iter().all(|l| (4..=5).contains(l))
        },
    )
    .await;
    for r in fleet {
        r.stop().await.expect("a clean stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_another_key_schema_is_refused_with_its_name() {
    let moto = Moto::start();
    let aws = moto.backend("wrong").await;
    aws.dynamo()
        .create_table()
        .table_name("wrong")
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .expect("valid"),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .expect("valid"),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .expect("created");
    match ensure_table(&aws, Billing::OnDemand).await {
        Err(RuntimeError::Table { table, reason }) => {
            assert_eq!(table, "wrong");
            assert!(reason.contains("key schema"), "{reason}");
        }
        other => panic!("a wrong key schema was accepted: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_coordination_items_are_skipped_and_the_fleet_keeps_working() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let moto = Moto::start();
    let table = "messy";
    let admin = moto.backend(table).await;
    ensure_table(&admin, Billing::OnDemand)
        .await
        .expect("table");
    let urls = create_queues(&admin, "mixed", 6).await;
    let pk = V::S("app#mixed".to_owned());
    let s = |v: &str| V::S(v.to_owned());
    let junk = [
        // Missing attributes.
        vec![
            ("sk", s("instance#no-status")),
            ("incarnation", V::N("1".into())),
        ],
        // Wrong types.
        vec![
            ("sk", s("instance#typed")),
            ("incarnation", s("one")),
            ("heartbeat", V::Bool(true)),
            ("status", s("active")),
            ("capacity", V::N("1".into())),
        ],
        vec![
            ("sk", s(&format!("queue#{}", urls[0]))),
            ("owner_id", V::N("7".into())),
            ("epoch", s("x")),
        ],
        // A 50 KB string on an unknown sort key.
        vec![("sk", s("misc#notes")), ("text", s(&"x".repeat(50_000)))],
        // A 50 KB status (sort keys themselves are capped at 1 KB, as on AWS).
        vec![
            ("sk", s("instance#huge")),
            ("incarnation", V::N("1".into())),
            ("heartbeat", V::N("1".into())),
            ("status", s(&"y".repeat(50_000))),
            ("capacity", V::N("1".into())),
        ],
    ];
    for item in junk {
        let mut put = admin
            .dynamo()
            .put_item()
            .table_name(table)
            .item("pk", pk.clone());
        for (k, v) in item {
            put = put.item(k, v);
        }
        put.send().await.expect("planted");
    }
    let handled: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let fleet = start_fleet(&moto, table, "mixed", &handled).await;
    // The broken record of the first queue is overwritten only if it can be read; the other
    // five queues must be shared evenly and served whatever the junk.
    wait_until(
        Duration::from_secs(30),
        "five healthy queues shared",
        async || {
            let loads: Vec<usize> = fleet.iter().map(|r| r.active_queues().len()).collect();
            loads.iter().sum::<usize>() >= 5 && loads.iter().all(|l| *l >= 1)
        },
    )
    .await;
    let bodies = send_messages(&admin, &urls[1..], 2, "j").await;
    wait_until(
        Duration::from_secs(30),
        "messages of healthy queues handled",
        async || handled.lock().expect("not poisoned").is_superset(&bodies),
    )
    .await;
    for r in fleet {
        r.stop().await.expect("a clean stop");
    }
}

/// Successes by body, with the receive count that succeeded.
type Successes = Arc<Mutex<BTreeMap<String, u32>>>;

/// A handler that fails (`fail…`) or panics (`panic…`) on a message's first delivery and
/// records each success in `done`, so a test sees which deliveries came back.
fn flaky_handler(done: &Successes) -> impl Handler {
    let seen = Arc::clone(done);
    move |m: Message| {
        let seen = Arc::clone(&seen);
        async move {
            if m.receive_count == 1 && m.body.starts_with("fail") {
                return Err(HandlerError::new("failing on purpose"));
            }
            if m.receive_count == 1 && m.body.starts_with("panic") {
                panic!("panicking on purpose");
            }
            seen.lock()
                .expect("not poisoned")
                .insert(m.body, m.receive_count);
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_panics_are_redelivered_and_a_deleted_queue_is_dropped() {
    let moto = Moto::start();
    let table = "solo";
    let admin = moto.backend(table).await;
    ensure_table(&admin, Billing::OnDemand)
        .await
        .expect("table");
    let urls = create_queues(&admin, "flaky", 2).await;
    let done: Successes = Arc::default();
    let running = Balancer::new(
        fast("flaky", table, "solo"),
        Arc::new(moto.backend(table).await),
    )
    .expect("a valid config")
    .start(flaky_handler(&done))
    .expect("started");
    wait_until(Duration::from_secs(30), "both queues owned", async || {
        running.active_queues().len() == 2
    })
    .await;
    for b in ["fail-0", "panic-0", "ok-0"] {
        send_message(&admin, &urls[0], b).await;
    }
    // Visibility timeout 5 s: the failed and the panicked message come back once.
    wait_until(Duration::from_secs(30), "all three succeeded", async || {
        done.lock().expect("not poisoned").len() == 3
    })
    .await;
    {
        let done = done.lock().expect("not poisoned");
        assert_eq!(done["ok-0"], 1);
        assert!(done["fail-0"] >= 2 && done["panic-0"] >= 2, "{done:?}");
    }
    // A deleted queue is dropped; the other keeps being served by the same workers.
    admin
        .sqs()
        .delete_queue()
        .queue_url(&urls[1])
        .send()
        .await
        .expect("deleted");
    wait_until(
        Duration::from_secs(30),
        "the deleted queue dropped",
        async || running.active_queues().len() == 1,
    )
    .await;
    send_message(&admin, &urls[0], "after").await;
    wait_until(
        Duration::from_secs(30),
        "served after the panic",
        async || done.lock().expect("not poisoned").contains_key("after"),
    )
    .await;
    running.stop().await.expect("a clean stop");
}

/// How long until the instances' loads satisfy `done`, polled every 20 ms; fails past `within`.
async fn time_until(
    within: Duration,
    what: &str,
    fleet: &[Running],
    done: impl Fn(&[usize]) -> bool,
) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        let loads: Vec<usize> = fleet.iter().map(|r| r.active_queues().len()).collect();
        if done(&loads) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "not within {within:?}: {what} ({loads:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_abort_is_failed_over_and_a_stop_handed_over() {
    let moto = Moto::start();
    let (app, table) = ("bounds", "coordination");
    let fleet_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // The instance to abort runs on its own runtime: shutting that down kills every one of
    // its tasks mid-flight, with no stop, as a crash would.
    let doomed_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let cfg = |id: &str| fast(app, table, id);
    let bound = cfg("x").heartbeat_timeout + 2 * cfg("x").heartbeat_interval;
    let handler = |_m: Message| async { Ok::<(), HandlerError>(()) };
    let fleet = fleet_rt.block_on(async {
        let admin = moto.backend(table).await;
        ensure_table(&admin, Billing::OnDemand)
            .await
            .expect("table");
        create_queues(&admin, app, 9).await;
        let mut fleet = Vec::new();
        for id in ["a", "b"] {
            let backend = Arc::new(moto.backend(table).await);
            let b = Balancer::new(cfg(id), backend).expect("valid");
            fleet.push(b.start(handler).expect("started"));
        }
        fleet
    });
    let doomed = doomed_rt.block_on(async {
        let backend = Arc::new(moto.backend(table).await);
        let b = Balancer::new(cfg("c"), backend).expect("valid");
        b.start(handler).expect("started")
    });
    let failover = fleet_rt.block_on(async {
        let mut all: Vec<&Running> = fleet.iter().collect();
        all.push(&doomed);
        wait_until(Duration::from_secs(30), "3/3/3", async || {
            all.iter().all(|r| r.active_queues().len() == 3)
        })
        .await;
        // Abort c: its records stay claimed until its heartbeat goes stale.
        doomed_rt.shutdown_background();
        time_until(
            Duration::from_secs(30),
            "a and b own all nine",
            &fleet,
            |l| l.iter().sum::<usize>() == 9,
        )
        .await
    });
    let mut fleet = fleet;
    let handover = fleet_rt.block_on(async {
        let leaver = fleet.remove(0);
        leaver.stop().await.expect("a clean stop");
        time_until(Duration::from_secs(30), "b owns all nine", &fleet, |l| {
            l == [9]
        })
        .await
    });
    // G4's figures on moto (README, Goals), printed rather than asserted: a wall-clock bound
    // here would fail on a loaded machine, not on a slow protocol. The waits above fail the
    // test if the queues are not taken over at all.
    let interval = cfg("x").heartbeat_interval;
    eprintln!(
        "failover after abort {failover:?} (bound {bound:?}); hand-over after stop {handover:?} \
         (bound {interval:?})"
    );
    fleet_rt.block_on(async {
        for r in fleet {
            r.stop().await.expect("a clean stop");
        }
    });
}

/// A life superseded, then lapsed: moto (a real DynamoDB implementation) answers each of these
/// writes as the core's table rules do, reading every update against the item as it was before
/// the write (`prior_life` and `prior_heartbeat` copy what the registration replaces) and
/// comparing `lapsed` and `incarnation` as numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_lapses_get_the_table_rules_answers() {
    use sqsbalancer_core::effect::{Status, Write};
    use sqsbalancer_core::table;
    use sqsbalancer_core::{InstanceId, Owner};
    use sqsbalancer_runtime::{BackendError, Store};
    let moto = Moto::start();
    let aws = moto.backend("lapse").await;
    ensure_table(&aws, Billing::OnDemand)
        .await
        .expect("a table");
    let life = |incarnation| Owner {
        id: InstanceId::new("node-0").expect("an id"),
        incarnation,
    };
    let register = Write::Register {
        id: InstanceId::new("node-0").expect("an id"),
        capacity: 1,
        first: 7,
    };
    let writes = [
        register.clone(),
        Write::Heartbeat {
            owner: life(7),
            counter: 1,
            status: Status::Active,
            // Published loads, which the next registration removes.
            loads: Some(sqsbalancer_core::loads::PublishedLoads::summarize([(
                &sqsbalancer_core::QueueId::new("q-1").expect("a queue"),
                250,
            )])),
        },
        register,
        Write::Lapse { owner: life(8) },
        Write::Lapse { owner: life(7) },
        Write::Lapse { owner: life(7) },
        Write::Lapse { owner: life(6) },
        Write::Reap {
            owner: life(8),
            counter: 0,
        },
    ];
    let mut item = None;
    let mut answers = Vec::new();
    for w in &writes {
        let tw = table::encode_write(&table::Layout::single("app"), w, 1_000_000);
        let want = table::update(&tw, item.as_ref()).ok();
        let got = match aws.update(tw).await {
            Ok(got) => Some(got),
            Err(BackendError::ConditionFailed) => None,
            Err(e) => panic!("{w:?}: {e}"),
        };
        assert_eq!(got, want, "{w:?}");
        answers.push(got.is_some());
        item = got.or(item);
    }
    assert_eq!(answers, [true, true, true, false, true, false, false, true]);
    let item = item.expect("the record");
    assert_eq!(
        item.get(table::PRIOR_HEARTBEAT),
        Some(&table::Value::num(1))
    );
    assert_eq!(item.get(table::LOADS), None, "removed by the registration");
    assert_eq!(item.get(table::LAPSED), Some(&table::Value::num(8)));
}

/// A read of some queues' records (BatchGetItem, over two requests for 110 keys spread over
/// four partition keys): moto returns every record asked for that exists, none for a queue
/// never written, and the instance records after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_records_gets_the_asked_records_and_the_instances() {
    use sqsbalancer_core::effect::Write;
    use sqsbalancer_core::table::Layout;
    use sqsbalancer_core::{InstanceId, Outcome, QueueId, Read, Reply};
    use sqsbalancer_runtime::execute;
    let moto = Moto::start();
    let aws = moto.backend("records").await;
    ensure_table(&aws, Billing::OnDemand)
        .await
        .expect("a table");
    let layout = Layout::new("app", 4);
    let queue = |i: usize| QueueId::new(&format!("https://sqs.local/1/q-{i:03}")).expect("a URL");
    let register = Write::Register {
        id: InstanceId::new("node-0").expect("an id"),
        capacity: 1,
        first: 1,
    };
    let creates = (0..120).map(|i| Write::CreateQueue {
        queue: queue(i),
        revive_epoch: None,
    });
    for w in std::iter::once(register).chain(creates) {
        let done = execute::write(&aws, &layout, &w, 1_000_000).await;
        assert!(matches!(done, Outcome::Applied(_)), "{w:?}: {done:?}");
    }
    let mut asked: Vec<QueueId> = (10..120).map(queue).chain([queue(999)]).collect();
    asked.sort();
    let got = execute::read(&aws, &layout, Read::Records(asked)).await;
    let Outcome::Applied(Reply::Records {
        instances,
        queues,
        unreadable,
    }) = got
    else {
        panic!("{got:?}")
    };
    let mut read: Vec<QueueId> = queues.iter().map(|r| r.queue.clone()).collect();
    read.sort();
    assert_eq!(read, (10..120).map(queue).collect::<Vec<_>>());
    assert!(queues.iter().all(|r| r.epoch == 1 && r.owner.is_none()));
    assert_eq!(instances.len(), 1);
    assert!(unreadable.is_empty());
}

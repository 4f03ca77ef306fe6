//! Level 3's transport end to end, inside turmoil simulations: a server host runs the level-3
//! server over `FakeBackend`s (one shared `Fakes`, one backend per caller), a client host calls
//! it through the real SDK clients (`SimClients`) and the runtime's `AwsBackend`. Every result
//! is compared with what a `FakeBackend` over an identical twin of the fakes answers directly;
//! each fault kind is checked for what the server applied and what the client saw. Time is
//! turmoil's: every wait is on simulated time and every deadline is asserted.

use sqsbalancer_core::effect::{Notice, Read, Status, Write};
use sqsbalancer_core::table::{self, Item, Key, Value};
use sqsbalancer_core::{InstanceId, Outcome, Owner, QueueId, Reply};
use sqsbalancer_runtime::aws::AwsBackend;
use sqsbalancer_runtime::execute;
use sqsbalancer_runtime::{BackendError, QueueList, Receive, Sqs, Store, Timeouts};
use sqsbalancer_sim::backend::{FakeBackend, Fakes};
use sqsbalancer_sim::fake::Outgoing;
use sqsbalancer_sim::fake::sqs::FakeSqs;
use sqsbalancer_sim::level3::{
    Failure, Fault, RequestInfo, Server, SimClients, seed_thread_rng, sim_epoch,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

const PORT: u16 = 9000;
const TABLE: &str = "coordination";
const APP: &str = "app";

/// The records of one key: the planted records and the reads over the wire share it.
fn layout() -> table::Layout {
    table::Layout::single(APP)
}
/// The wall clock the writes' TTLs are computed from.
const WALL: u64 = 1_767_225_600;
const CALLERS: [&str; 2] = ["node-0", "node-1"];

type Shared = Arc<Mutex<Fakes>>;
type Command = Box<dyn FnOnce(Shared) + Send>;

fn lock(f: &Shared) -> std::sync::MutexGuard<'_, Fakes> {
    f.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fakes every test starts from: the table, a standard and a FIFO queue.
fn setup(f: &mut Fakes) {
    f.dynamo.create_table(TABLE).expect("a table");
    f.sqs.create_queue("setup", "work").expect("a queue");
    f.sqs
        .create_queue("setup", "work.fifo")
        .expect("a FIFO queue");
}

fn url(name: &str) -> QueueId {
    QueueId::new(&FakeSqs::url_of(name)).expect("a URL")
}

/// What the server was asked, in order: caller, operation, fault.
type Seen = Arc<Mutex<Vec<(String, String, Fault)>>>;

/// A fault decider that plays a script per operation (then serves) and logs every request.
#[derive(Clone, Default)]
struct Script {
    plan: Arc<Mutex<BTreeMap<String, VecDeque<Fault>>>>,
    seen: Seen,
}

impl Script {
    fn then(&self, operation: &str, faults: &[Fault]) {
        self.plan
            .lock()
            .unwrap()
            .entry(operation.to_owned())
            .or_default()
            .extend(faults.iter().copied());
    }

    fn decide(&self, r: &RequestInfo<'_>) -> Fault {
        let fault = self
            .plan
            .lock()
            .unwrap()
            .get_mut(r.operation)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Fault::Serve);
        self.seen
            .lock()
            .unwrap()
            .push((r.caller.to_owned(), r.operation.to_owned(), fault));
        fault
    }

    /// How many requests of `operation` the server has seen.
    fn count(&self, operation: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, op, _)| op == operation)
            .count()
    }
}

/// The client's handle on the server host's fakes: closures run there, on its clock.
#[derive(Clone)]
struct Control(mpsc::UnboundedSender<Command>);

impl Control {
    /// Runs `f` on the server's fakes now, and returns its result.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Fakes) -> T + Send + 'static) -> T {
        let (tx, rx) = oneshot::channel();
        let cmd: Command = Box::new(move |fakes| {
            let out = f(&mut lock(&fakes));
            let _ = tx.send(out);
        });
        assert!(self.0.send(cmd).is_ok(), "the server host runs");
        rx.await.expect("the server host answered")
    }

    /// Runs `f` on the server's fakes `after` from now (server-side), without waiting.
    fn later(&self, after: Duration, f: impl FnOnce(&mut Fakes) + Send + 'static) {
        let cmd: Command = Box::new(move |fakes| {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                f(&mut lock(&fakes));
            });
        });
        assert!(self.0.send(cmd).is_ok(), "the server host runs");
    }
}

/// A simulation with the server host running over fresh fakes with `script`'s faults, and
/// the control channel to it.
fn lab(seed: u64, script: &Script) -> (turmoil::Sim<'static>, Control) {
    let (sim, control, _) = lab_with_server(seed, script);
    (sim, control)
}

/// [`lab`], and the server's request and answer counts, updated as it runs.
fn lab_with_server(
    seed: u64,
    script: &Script,
) -> (turmoil::Sim<'static>, Control, Arc<Mutex<Counts>>) {
    seed_thread_rng(seed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(sim_epoch())
        .simulation_duration(Duration::from_secs(600))
        .build();
    let (tx, rx) = mpsc::unbounded_channel::<Command>();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let script = script.clone();
    let counts = Arc::new(Mutex::new(Counts::default()));
    let watch = counts.clone();
    sim.host("server", move || {
        let rx = rx.lock().unwrap().take();
        let script = script.clone();
        let watch = watch.clone();
        async move {
            let mut rx = rx.expect("the server host starts once");
            // Made here: the fakes read the clock of the runtime that made them.
            let fakes: Shared = Arc::new(Mutex::new(Fakes::new()));
            setup(&mut lock(&fakes));
            let backends: BTreeMap<String, Arc<FakeBackend>> = CALLERS
                .iter()
                .map(|c| {
                    let b = FakeBackend::new(fakes.clone(), c, TABLE, Duration::ZERO);
                    ((*c).to_owned(), Arc::new(b))
                })
                .collect();
            let server = Server::new(move |caller| backends.get(caller).cloned())
                .with_faults(move |r: &RequestInfo<'_>| script.decide(r))
                .with_table(TABLE);
            let control = fakes.clone();
            tokio::spawn(async move {
                while let Some(cmd) = rx.recv().await {
                    cmd(control.clone());
                }
            });
            let server = Arc::new(server);
            let counted = server.clone();
            tokio::spawn(async move {
                loop {
                    *watch.lock().unwrap() = Counts {
                        requests: counted.requests(),
                        answered: counted.answered(),
                    };
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            server.serve(listener).await?;
            Ok(())
        }
    });
    (sim, Control(tx), counts)
}

/// The server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    requests: u64,
    answered: u64,
}

/// Node `name`'s backend over the wire, with the default timeouts.
fn wire(name: &str) -> AwsBackend {
    SimClients::new(name, "server", PORT, Timeouts::default())
        .seed(7)
        .backend(TABLE)
}

/// The twin of the server's fakes, in the client host, and `node-0`'s backend on it.
fn twin() -> (Shared, FakeBackend) {
    let fakes: Shared = Arc::new(Mutex::new(Fakes::new()));
    setup(&mut lock(&fakes));
    let b = FakeBackend::new(fakes.clone(), "node-0", TABLE, Duration::ZERO);
    (fakes, b)
}

fn owner(id: &str, incarnation: u64) -> Owner {
    Owner {
        id: InstanceId::new(id).unwrap(),
        incarnation,
    }
}

fn register(id: &str) -> Write {
    Write::Register {
        id: InstanceId::new(id).unwrap(),
        capacity: 2,
        first: 1,
    }
}

fn heartbeat(incarnation: u64, counter: u64) -> Write {
    Write::Heartbeat {
        owner: owner("node-0", incarnation),
        counter,
        status: Status::Active,
        loads: None,
    }
}

/// The stored item of `id`'s instance record, read on the server.
async fn instance(control: &Control, id: &str) -> Option<Item> {
    let key = Key {
        pk: table::partition(APP),
        sk: format!("{}{id}", table::INSTANCE_PREFIX),
    };
    control
        .run(move |f| {
            let q = table::TableQuery {
                pk: key.pk.clone(),
                sk_prefix: Some(key.sk.clone()),
                backward: false,
            };
            let page = f.dynamo.query("test", TABLE, &q, None, None, true).unwrap();
            page.items.first().map(|i| (**i).clone())
        })
        .await
}

fn number(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(Value::N(n)) => n.parse().unwrap(),
        other => panic!("{name} is {other:?}"),
    }
}

fn receive(queue: &QueueId, wait: Duration) -> Receive {
    let t = Timeouts::default();
    Receive {
        queue: queue.clone(),
        max: 10,
        visibility_secs: 30,
        wait,
        attribute_names: vec!["trace".into()],
        send_by: Instant::now() + Duration::from_secs(60),
        attempt_timeout: t.receive_attempt(wait),
    }
}

/// Both sides' per-entry results agree: the same entries fail, with the fake's code first in
/// the adapter's `Code: message` text.
fn same_entries(wire: &[Result<(), String>], fake: &[Result<(), String>]) {
    assert_eq!(wire.len(), fake.len(), "{wire:?} vs {fake:?}");
    for (w, f) in wire.iter().zip(fake) {
        match (w, f) {
            (Ok(()), Ok(())) => {}
            (Err(w), Err(f)) => assert!(w.starts_with(&format!("{f}: ")), "{w} vs {f}"),
            _ => panic!("{wire:?} vs {fake:?}"),
        }
    }
}

/// The coordination writes compared, in order: registrations and heartbeats of node-0's
/// lives, the first life lapsed (twice), a queue created and claimed (each twice), a notice and
/// a reap.
fn coordination_writes() -> Vec<Write> {
    let q1 = url("work");
    vec![
        register("node-0"),
        heartbeat(1, 1),
        heartbeat(2, 2),
        register("node-0"),
        heartbeat(2, 3),
        Write::Lapse {
            owner: owner("node-0", 1),
        },
        Write::Lapse {
            owner: owner("node-0", 1),
        },
        Write::CreateQueue {
            queue: q1.clone(),
            revive_epoch: None,
        },
        Write::CreateQueue {
            queue: q1.clone(),
            revive_epoch: None,
        },
        Write::Claim {
            queue: q1.clone(),
            expect_owner: None,
            expect_epoch: 1,
            new_owner: owner("node-0", 2),
        },
        Write::Claim {
            queue: q1.clone(),
            expect_owner: None,
            expect_epoch: 1,
            new_owner: owner("node-0", 2),
        },
        Write::Notify {
            to: owner("node-0", 2),
            notice: Notice::Inbox,
        },
        Write::Notify {
            to: owner("node-0", 2),
            notice: Notice::News,
        },
        Write::Reap {
            owner: owner("node-0", 2),
            counter: 99,
        },
    ]
}

/// Each coordination write gets the fake's answer over the wire: 9 apply, 5 are refused.
async fn assert_writes_equal(aws: &AwsBackend, fake: &FakeBackend) {
    let (mut applied, mut refused) = (0, 0);
    for w in &coordination_writes() {
        let tw = table::encode_write(&layout(), w, WALL);
        let got = aws.update(tw.clone()).await;
        let want = fake.update(tw).await;
        assert_eq!(got, want, "{w:?}");
        match got {
            Ok(_) => applied += 1,
            Err(BackendError::ConditionFailed) => refused += 1,
            Err(e) => panic!("{w:?}: {e:?}"),
        }
    }
    assert_eq!((applied, refused), (9, 5));
}

/// Plants 250 queue records of 10 kB each, so a Query of them takes more than one page.
fn plant_queue_records(f: &mut Fakes) {
    for i in 0..250 {
        let mut item = Item::new();
        item.insert(table::PK.into(), Value::S(table::partition(APP)));
        let sk = format!(
            "{}{}",
            table::QUEUE_PREFIX,
            FakeSqs::url_of(&format!("p-{i:04}"))
        );
        item.insert(table::SK.into(), Value::S(sk));
        item.insert(table::EPOCH.into(), Value::num(1));
        item.insert(table::RETIRED.into(), Value::Bool(false));
        item.insert("pad".into(), Value::S("x".repeat(10_000)));
        f.dynamo.plant(TABLE, item).unwrap();
    }
}

/// The table read over the wire equals the fake's: page by page (at least three), and as the
/// core's whole read.
async fn assert_pages_equal(aws: &AwsBackend, fake: &FakeBackend) {
    let query = table::encode_read(&layout(), &Read::Table)
        .concat()
        .remove(0);
    let (mut start, mut pages) = (None, 0);
    loop {
        let got = aws
            .query(query.clone(), start.clone())
            .await
            .expect("a page");
        let want = fake
            .query(query.clone(), start.clone())
            .await
            .expect("a page");
        assert_eq!(got, want, "page {pages}");
        pages += 1;
        match got.last_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages");
    let got = execute::read(aws, &layout(), Read::Table).await;
    assert!(matches!(got, Outcome::Applied(_)));
    assert_eq!(got, execute::read(fake, &layout(), Read::Table).await);
    // 150 planted records and one never written: two BatchGetItem requests.
    let mut asked: Vec<QueueId> = (0..150)
        .chain([9_999])
        .map(|i| QueueId::new(&FakeSqs::url_of(&format!("p-{i:04}"))).unwrap())
        .collect();
    asked.sort();
    let records = Read::Records(asked);
    let got = execute::read(aws, &layout(), records.clone()).await;
    let Outcome::Applied(Reply::Records { queues, .. }) = &got else {
        panic!("{got:?}")
    };
    assert_eq!(queues.len(), 150, "the record never written is not found");
    assert_eq!(got, execute::read(fake, &layout(), records).await);
}

/// Creates 1,100 queues, so listing them takes a second page.
fn create_many_queues(f: &mut Fakes) {
    for i in 0..1_100 {
        f.sqs.create_queue("setup", &format!("q-{i:04}")).unwrap();
    }
}

/// ListQueues past 1,000 queues equals the fake's, following NextToken: page by page, then as
/// the runtime's whole listing, two requests each.
async fn assert_listing_equal(aws: &AwsBackend, fake: &FakeBackend, script: &Script) {
    let first = aws.list("q-".into(), None).await.expect("a page");
    assert_eq!(first, fake.list("q-".into(), None).await.unwrap());
    assert_eq!(first.urls.len(), 1000);
    let token = first.next_token.clone().expect("a second page");
    let second = aws.list("q-".into(), Some(token.clone())).await.unwrap();
    assert_eq!(second, fake.list("q-".into(), Some(token)).await.unwrap());
    assert_eq!((second.urls.len(), second.next_token), (100, None));
    let all = execute::list(aws, "q-").await;
    assert_eq!(all, execute::list(fake, "q-").await);
    assert_eq!(script.count("ListQueues"), 2 + 2);
}

#[test]
fn coordination_writes_reads_and_listing_equal_the_fake() {
    let script = Script::default();
    let (mut sim, control) = lab(1, &script);
    sim.client("node-0", async move {
        let aws = wire("node-0");
        let (reference, fake) = twin();
        assert_writes_equal(&aws, &fake).await;
        control.run(plant_queue_records).await;
        plant_queue_records(&mut lock(&reference));
        assert_pages_equal(&aws, &fake).await;
        control.run(create_many_queues).await;
        create_many_queues(&mut lock(&reference));
        assert_listing_equal(&aws, &fake, &script).await;
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_long_poll_returns_when_a_message_arrives_mid_wait() {
    let script = Script::default();
    let (mut sim, control) = lab(2, &script);
    sim.client("node-0", async move {
        let aws = wire("node-0");
        let (reference, fake) = twin();
        let work = url("work");
        let outgoing = || Outgoing {
            body: "hello ✓".into(),
            attributes: BTreeMap::from([
                ("trace".into(), "t-1".into()),
                ("other".into(), "x".into()),
            ]),
            ..Outgoing::default()
        };
        let to = work.as_str().to_owned();
        control.later(Duration::from_secs(3), move |f| {
            let now = f.now();
            f.sqs.send(now, "sender", &to, outgoing()).unwrap();
        });
        let t0 = Instant::now();
        let got = aws
            .receive(receive(&work, Duration::from_secs(10)))
            .await
            .expect("messages");
        let took = t0.elapsed();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(4),
            "the long poll answered after {took:?}"
        );
        // The same on the twin, sent from here after the same wait.
        let sender = reference.clone();
        let to = work.as_str().to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let mut f = lock(&sender);
            let now = f.now();
            f.sqs.send(now, "sender", &to, outgoing()).unwrap();
        });
        let want = fake
            .receive(receive(&work, Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(got, want);
        assert_eq!(got[0].attributes.len(), 1, "only the attribute asked for");

        // A FIFO message keeps its group; an empty long poll waits it out.
        let fifo = url("work.fifo");
        let to = fifo.as_str().to_owned();
        let send = move |f: &mut Fakes| {
            let now = f.now();
            let m = Outgoing {
                body: "in order".into(),
                group: Some("g-1".into()),
                ..Outgoing::default()
            };
            f.sqs.send(now, "sender", &to, m).unwrap();
        };
        control.run(send.clone()).await;
        send(&mut lock(&reference));
        let got = aws.receive(receive(&fifo, Duration::ZERO)).await.unwrap();
        assert_eq!(
            got,
            fake.receive(receive(&fifo, Duration::ZERO)).await.unwrap()
        );
        assert_eq!(got[0].group.as_deref(), Some("g-1"));
        let t0 = Instant::now();
        let none = aws
            .receive(receive(&fifo, Duration::from_secs(2)))
            .await
            .unwrap();
        assert!(none.is_empty());
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(script.count("ReceiveMessage"), 3);
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn batches_with_a_failing_entry_and_a_missing_queue() {
    let script = Script::default();
    let (mut sim, control) = lab(3, &script);
    sim.client("node-0", async move {
        let aws = wire("node-0");
        let (reference, fake) = twin();
        let work = url("work");
        let to = work.as_str().to_owned();
        let send = move |f: &mut Fakes| {
            let now = f.now();
            for body in ["one", "two"] {
                let m = Outgoing {
                    body: body.into(),
                    ..Outgoing::default()
                };
                f.sqs.send(now, "sender", &to, m).unwrap();
            }
        };
        control.run(send.clone()).await;
        send(&mut lock(&reference));
        let got = aws.receive(receive(&work, Duration::ZERO)).await.unwrap();
        assert_eq!(
            got,
            fake.receive(receive(&work, Duration::ZERO)).await.unwrap()
        );
        assert_eq!(got.len(), 2);
        let receipts = vec![got[0].receipt.clone(), "bogus".to_owned()];
        let w = aws
            .delete_batch(work.clone(), receipts.clone())
            .await
            .unwrap();
        let f = fake.delete_batch(work.clone(), receipts).await.unwrap();
        same_entries(&w, &f);
        assert!(w[0].is_ok() && w[1].is_err(), "{w:?}");
        let entries = vec![(got[1].receipt.clone(), 0), ("bogus".to_owned(), 5)];
        let w = aws
            .change_visibility_batch(work.clone(), entries.clone())
            .await
            .unwrap();
        let f = fake
            .change_visibility_batch(work.clone(), entries)
            .await
            .unwrap();
        same_entries(&w, &f);
        assert!(w[0].is_ok() && w[1].is_err(), "{w:?}");
        // Released at once: received again, counted twice.
        let again = aws.receive(receive(&work, Duration::ZERO)).await.unwrap();
        assert_eq!(
            again,
            fake.receive(receive(&work, Duration::ZERO)).await.unwrap()
        );
        assert_eq!((again.len(), again[0].receive_count), (1, 2));

        let gone = url("gone");
        let w = aws.receive(receive(&gone, Duration::ZERO)).await;
        assert_eq!(w, fake.receive(receive(&gone, Duration::ZERO)).await);
        assert!(
            matches!(w, Err(BackendError::QueueDoesNotExist { .. })),
            "{w:?}"
        );
        let w = aws.delete_batch(gone.clone(), vec!["r".into()]).await;
        assert_eq!(w, fake.delete_batch(gone.clone(), vec!["r".into()]).await);
        let w = aws
            .change_visibility_batch(gone.clone(), vec![("r".into(), 1)])
            .await;
        assert_eq!(
            w,
            fake.change_visibility_batch(gone, vec![("r".into(), 1)])
                .await
        );
        assert!(
            matches!(w, Err(BackendError::QueueDoesNotExist { .. })),
            "{w:?}"
        );
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn an_unknown_caller_is_refused() {
    let script = Script::default();
    let (mut sim, _control) = lab(4, &script);
    sim.client("stranger", async move {
        let aws = wire("stranger");
        let e = aws.list(String::new(), None).await.expect_err("refused");
        assert!(matches!(e, BackendError::Refused { .. }), "{e:?}");
        assert!(e.to_string().contains("UnrecognizedClientException"), "{e}");
        assert_eq!(
            script.count("ListQueues"),
            0,
            "the decider sees known callers only"
        );
        Ok(())
    });
    sim.run().unwrap();
}

const fn fail(failure: Failure, applied: bool) -> Fault {
    Fault::Fail { failure, applied }
}

#[test]
fn a_5xx_before_changes_nothing_and_a_5xx_after_changes_the_item() {
    let script = Script::default();
    let (mut sim, control) = lab(5, &script);
    let s = script.clone();
    sim.client("node-0", async move {
        let aws = wire("node-0");
        aws.update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await
            .unwrap();
        // Every attempt fails before it is applied: nothing changed, the outcome unknown.
        s.then("UpdateItem", &[fail(Failure::Internal, false); 3]);
        let e = aws
            .update(table::encode_write(&layout(), &heartbeat(1, 5), WALL))
            .await;
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{e:?}");
        assert_eq!(s.count("UpdateItem"), 1 + 3, "three attempts");
        let item = instance(&control, "node-0").await.unwrap();
        assert_eq!(number(&item, table::HEARTBEAT), 0, "not applied");
        // The first attempt is applied and answered 500, the retries fail before applying.
        s.then(
            "UpdateItem",
            &[
                fail(Failure::Internal, true),
                fail(Failure::Unavailable, false),
                fail(Failure::Internal, false),
            ],
        );
        let e = aws
            .update(table::encode_write(&layout(), &heartbeat(1, 6), WALL))
            .await;
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{e:?}");
        assert_eq!(s.count("UpdateItem"), 1 + 3 + 3);
        let item = instance(&control, "node-0").await.unwrap();
        assert_eq!(
            number(&item, table::HEARTBEAT),
            6,
            "applied, though the client saw an error"
        );
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn throttling_is_retried_by_the_sdk() {
    let script = Script::default();
    let (mut sim, control) = lab(6, &script);
    let s = script.clone();
    sim.client("node-0", async move {
        let aws = wire("node-0");
        s.then(
            "UpdateItem",
            &[
                fail(Failure::Throttling, false),
                fail(Failure::OverCapacity, false),
            ],
        );
        let got = aws
            .update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await
            .unwrap();
        assert_eq!(number(&got, table::INCARNATION), 1, "applied once");
        assert_eq!(
            s.count("UpdateItem"),
            3,
            "two throttled attempts, then served"
        );
        let item = instance(&control, "node-0").await.unwrap();
        assert_eq!(number(&item, table::INCARNATION), 1);
        // Throttled on every attempt: the adapter says so.
        s.then("UpdateItem", &[fail(Failure::OverCapacity, false); 3]);
        let e = aws
            .update(table::encode_write(&layout(), &heartbeat(1, 1), WALL))
            .await;
        assert!(
            matches!(
                e,
                Err(BackendError::Throttled {
                    service: "dynamodb",
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(s.count("UpdateItem"), 6);
        // SQS's RequestThrottled is retried too.
        s.then("ListQueues", &[fail(Failure::OverCapacity, false)]);
        let page = aws.list("work".into(), None).await.unwrap();
        assert_eq!(page.urls.len(), 2);
        assert_eq!(s.count("ListQueues"), 2);
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_reset_mid_response_is_retried_and_the_write_applies_twice() {
    let script = Script::default();
    let (mut sim, control) = lab(7, &script);
    let s = script.clone();
    sim.client("node-0", async move {
        let aws = wire("node-0");
        s.then("UpdateItem", &[Fault::Reset]);
        let got = aws
            .update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await
            .unwrap();
        assert_eq!(s.count("UpdateItem"), 2, "the broken answer was retried");
        assert_eq!(
            number(&got, table::INCARNATION),
            2,
            "the first attempt had applied"
        );
        let item = instance(&control, "node-0").await.unwrap();
        assert_eq!(number(&item, table::INCARNATION), 2);
        // Reset on every attempt: an unknown outcome, applied three times.
        s.then("UpdateItem", &[Fault::Reset; 3]);
        let e = aws
            .update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await;
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{e:?}");
        let item = instance(&control, "node-0").await.unwrap();
        assert_eq!(number(&item, table::INCARNATION), 5);
        // A receive is never retried: its messages are in flight, unseen.
        let to = url("work").as_str().to_owned();
        control
            .run(move |f| {
                let now = f.now();
                f.sqs.send(now, "sender", &to, Outgoing::default()).unwrap();
            })
            .await;
        s.then("ReceiveMessage", &[Fault::Reset]);
        let e = aws.receive(receive(&url("work"), Duration::ZERO)).await;
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{e:?}");
        assert_eq!(s.count("ReceiveMessage"), 1);
        let w = url("work");
        let counts = control
            .run(move |f| {
                let now = f.now();
                f.sqs.counts(now, "test", w.as_str()).unwrap()
            })
            .await;
        assert_eq!((counts.visible, counts.not_visible), (0, 1));
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_response_that_never_comes_times_the_attempt_out() {
    let script = Script::default();
    let (mut sim, control, counts) = lab_with_server(8, &script);
    let s = script.clone();
    sim.client("node-0", async move {
        let t = Timeouts::default();
        let aws = wire("node-0");
        aws.update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await
            .unwrap();
        s.then("UpdateItem", &[Fault::Hang { applied: true }]);
        let t0 = Instant::now();
        aws.update(table::encode_write(&layout(), &heartbeat(1, 4), WALL))
            .await
            .unwrap();
        let took = t0.elapsed();
        assert!(
            took >= t.attempt && took < t.attempt * 2,
            "{took:?} (attempt timeout {:?})",
            t.attempt
        );
        assert_eq!(
            s.count("UpdateItem"),
            1 + 2,
            "the hung attempt, then a served one"
        );
        let item = instance(&control, "node-0").await.unwrap();
        assert_eq!(number(&item, table::HEARTBEAT), 4);
        // Hung on every attempt: the operation timeout ends it, unknown.
        s.then("UpdateItem", &[Fault::Hang { applied: false }; 3]);
        let t0 = Instant::now();
        let e = aws
            .update(table::encode_write(&layout(), &heartbeat(1, 5), WALL))
            .await;
        let took = t0.elapsed();
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{e:?}");
        assert!(
            took >= t.operation && took < t.operation + Duration::from_secs(1),
            "{took:?}"
        );
        assert_eq!(
            number(
                &instance(&control, "node-0").await.unwrap(),
                table::HEARTBEAT
            ),
            4
        );
        // A receive's one attempt: its own timeout, never sent again.
        s.then("ReceiveMessage", &[Fault::Hang { applied: false }]);
        let wait = Duration::from_secs(1);
        let t0 = Instant::now();
        let e = aws.receive(receive(&url("work"), wait)).await;
        let took = t0.elapsed();
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{e:?}");
        let limit = t.receive_attempt(wait);
        assert!(
            took >= limit && took < limit + Duration::from_millis(500),
            "{took:?}"
        );
        assert_eq!(s.count("ReceiveMessage"), 1);
        // Five requests were never answered: the hung attempt, the three hung ones, the receive.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let c = *counts.lock().unwrap();
        assert_eq!(c.requests - c.answered, 1 + 3 + 1, "{c:?}");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_delayed_response_arrives_late_or_times_out() {
    let script = Script::default();
    let (mut sim, _control) = lab(9, &script);
    let s = script.clone();
    sim.client("node-0", async move {
        let t = Timeouts::default();
        let aws = wire("node-0");
        let query = table::encode_read(&layout(), &Read::Members)
            .concat()
            .remove(0);
        let delay = Duration::from_millis(1500);
        s.then(
            "Query",
            &[Fault::Delay {
                before: Duration::ZERO,
                after: delay,
            }],
        );
        let t0 = Instant::now();
        let page = aws.query(query.clone(), None).await.unwrap();
        let took = t0.elapsed();
        assert!(page.items.is_empty());
        assert!(took >= delay && took < t.attempt, "{took:?}");
        assert_eq!(s.count("Query"), 1);
        // Later than the attempt timeout: given up on, asked again.
        s.then(
            "Query",
            &[Fault::Delay {
                before: t.attempt,
                after: Duration::ZERO,
            }],
        );
        let t0 = Instant::now();
        aws.query(query, None).await.unwrap();
        let took = t0.elapsed();
        assert!(took >= t.attempt && took < t.attempt * 2, "{took:?}");
        assert_eq!(s.count("Query"), 3);
        Ok(())
    });
    sim.run().unwrap();
}

/// One scenario with jittered retries, a hang and a delay: what each call returned and when
/// (simulated time), and what the server saw.
fn trace(turmoil_seed: u64, rng_seed: u64) -> Vec<String> {
    let script = Script::default();
    let (mut sim, _control) = lab(turmoil_seed, &script);
    seed_thread_rng(rng_seed);
    let out = Arc::new(Mutex::new(Vec::new()));
    let (s, o) = (script.clone(), out.clone());
    sim.client("node-0", async move {
        let aws = wire("node-0");
        let t0 = Instant::now();
        let log = |what: String| o.lock().unwrap().push(format!("{:?} {what}", t0.elapsed()));
        s.then(
            "UpdateItem",
            &[fail(Failure::Throttling, false), Fault::Reset],
        );
        let r = aws
            .update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await;
        log(format!("{r:?}"));
        s.then(
            "UpdateItem",
            &[Fault::Hang { applied: true }, fail(Failure::Internal, true)],
        );
        let r = aws
            .update(table::encode_write(&layout(), &heartbeat(2, 1), WALL))
            .await;
        log(format!("{r:?}"));
        s.then(
            "ListQueues",
            &[Fault::Delay {
                before: Duration::from_millis(300),
                after: Duration::from_millis(700),
            }],
        );
        let r = aws.list(String::new(), None).await;
        log(format!("{r:?}"));
        Ok(())
    });
    sim.run().unwrap();
    let mut out = out.lock().unwrap().clone();
    out.extend(script.seen.lock().unwrap().iter().map(|e| format!("{e:?}")));
    out
}

#[test]
fn the_same_seeds_give_the_same_exchange() {
    let a = trace(11, 11);
    assert_eq!(a, trace(11, 11));
    assert_eq!(a.len(), 3 + 7, "{a:#?}");
    // The SDK's retry jitter comes from the thread's generator, which the seed sets.
    assert_ne!(
        a[..3],
        trace(11, 12)[..3],
        "the backoff did not follow the seed"
    );
}

/// The server on tokio's own listener, spoken to by a bare hyper client.
#[tokio::test]
async fn the_server_serves_a_plain_tokio_listener() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let fakes: Shared = Arc::new(Mutex::new(Fakes::new()));
    setup(&mut lock(&fakes));
    let backend = Arc::new(FakeBackend::new(fakes, "node-0", TABLE, Duration::ZERO));
    let server = Server::new(move |caller| (caller == "node-0").then(|| backend.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(Arc::new(server).serve(listener));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = |caller: &str| {
        hyper::Request::post("/")
            .header("x-amz-target", "AmazonSQS.ListQueues")
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential={caller}/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .body(Full::new(bytes::Bytes::from_static(br#"{"QueueNamePrefix":"work"}"#)))
            .unwrap()
    };
    let r = send.send_request(request("node-0")).await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(
        h["date"], "Thu, 01 Jan 2026 00:00:00 GMT",
        "the simulated clock, not the wall's"
    );
    assert_eq!(h["x-amzn-requestid"], "sim-00000001");
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["QueueUrls"].as_array().map(Vec::len), Some(2), "{v}");
    let r = send.send_request(request("nobody")).await.unwrap();
    assert_eq!(r.status(), 403);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("UnrecognizedClientException"));
    serving.abort();
}

#[test]
fn an_unreachable_server_is_refused_or_times_the_connection_out() {
    let script = Script::default();
    let (mut sim, _control, counts) = lab_with_server(10, &script);
    sim.client("node-0", async move {
        let t = Timeouts::default();
        // Partitioned: turmoil refuses the connection at once; I/O errors, retried.
        turmoil::partition("node-0", "server");
        let aws = wire("node-0");
        let e = aws
            .update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await;
        let text = format!("{e:?}");
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{text}");
        assert!(
            text.contains("ConnectionRefused") && text.contains("kind: Io"),
            "{text}"
        );
        turmoil::repair("node-0", "server");
        // Held: the handshake never completes, and every attempt's connect times out.
        turmoil::hold("node-0", "server");
        let aws = wire("node-0");
        let t0 = Instant::now();
        let e = aws
            .update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await;
        let took = t0.elapsed();
        let text = format!("{e:?}");
        assert!(matches!(e, Err(BackendError::Unknown { .. })), "{text}");
        assert!(
            text.contains("HTTP connect timeout occurred after 1s"),
            "{text}"
        );
        assert!(text.contains("kind: Timeout"), "{text}");
        assert!(took >= t.connect * 3 && took < t.operation, "{took:?}");
        assert_eq!(
            counts.lock().unwrap().requests,
            0,
            "nothing reached the server"
        );
        turmoil::release("node-0", "server");
        let aws = wire("node-0");
        aws.update(table::encode_write(&layout(), &register("node-0"), WALL))
            .await
            .unwrap();
        Ok(())
    });
    sim.run().unwrap();
}

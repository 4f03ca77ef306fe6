//! The production path's faults against the real runtime on the fakes (paused clock): SDK
//! retries and late answers never leave a receive open, or a message handled, past the fence;
//! calls that never answer strand nothing; health says when the table cannot be read.
//! (The reproductions of the review of c34a3e1, turned into regression tests.)

mod common;

use common::faulty::{Faulty, Window, Windows};
use common::{cfg, fakes_with_queues, send, wait_until};
use sqsbalancer_core::table::Key;
use sqsbalancer_runtime::{Balancer, HandlerError, Message, Running};
use sqsbalancer_sim::backend::Fakes;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages handled, by instance: (instance, time ms, message id).
type Handled = Arc<Mutex<Vec<(String, u64, String)>>>;

fn now(fakes: &Arc<Mutex<Fakes>>) -> u64 {
    fakes.lock().expect("not poisoned").now().0
}

/// Starts instance `name` on `backend`, recording every message it handles.
fn start(
    fakes: &Arc<Mutex<Fakes>>,
    name: &str,
    backend: Arc<Faulty>,
    handled: &Handled,
) -> Running {
    let (h, f, me) = (Arc::clone(handled), Arc::clone(fakes), name.to_owned());
    Balancer::new(cfg(name), backend)
        .expect("valid")
        .start(move |m: Message| {
            let (h, f, me) = (Arc::clone(&h), Arc::clone(&f), me.clone());
            async move {
                h.lock()
                    .expect("not poisoned")
                    .push((me, now(&f), m.message_id));
                Ok::<(), HandlerError>(())
            }
        })
        .expect("started")
}

/// Sends one message to `url` every 250 ms, forever.
fn produce(fakes: &Arc<Mutex<Fakes>>, url: &str) {
    let (f, url) = (Arc::clone(fakes), url.to_owned());
    tokio::spawn(async move {
        for i in 0.. {
            send(&f, &url, &format!("m{i}"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}

fn windows_of<'a>(w: &'a [Window], who: &'a str) -> impl Iterator<Item = &'a Window> + 'a {
    w.iter().filter(move |x| x.who == who)
}

/// What happened around a takeover: every receive, every message handled, when b first
/// received, and how many of a's messages came back after its fence.
struct Takeover {
    windows: Vec<Window>,
    handled: Vec<(String, u64, String)>,
    b_first: u64,
    a_fenced_out: u64,
}

/// a owns the only queue; then it loses DynamoDB while SQS still answers it, and its long
/// polls meet `fault`. b takes the queue over once a is condemned.
async fn cut_off_while(fault: impl FnOnce(&Faulty)) -> Takeover {
    let (fakes, urls) = fakes_with_queues(1);
    let windows = Windows::default();
    let handled = Handled::default();
    let a_backend = Faulty::new(&fakes, "a", &windows);
    let a = start(&fakes, "a", Arc::clone(&a_backend), &handled);
    wait_until(Duration::from_secs(60), "a receives q-0", || {
        a.active_queues().len() == 1
    })
    .await;
    let b = start(&fakes, "b", Faulty::new(&fakes, "b", &windows), &handled);
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(a.active_queues().len(), 1, "a still owns q-0");
    produce(&fakes, &urls[0]);
    a_backend.set(|f| f.dynamo_cut = true);
    fault(&a_backend);
    wait_until(Duration::from_secs(120), "b takes q-0 over", || {
        b.active_queues().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let windows = windows.lock().expect("not poisoned").clone();
    let b_first = windows_of(&windows, "b")
        .map(|x| x.start)
        .min()
        .expect("b received");
    let handled = handled.lock().expect("not poisoned").clone();
    Takeover {
        windows,
        handled,
        b_first,
        a_fenced_out: a.stats().fenced_out,
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_retried_as_the_sdk_did_is_never_open_past_the_fence() {
    let t = cut_off_while(|a| a.set(|f| f.retry_receives = 1)).await;
    assert!(
        t.windows.iter().any(|x| x.what == "attempt 2 (retry)"),
        "the retry happened: {:?}",
        t.windows
    );
    assert_no_overrun(&t);
}

/// No receive of a was open, and no message handled by a, once b began receiving.
fn assert_no_overrun(t: &Takeover) {
    let open: Vec<&Window> = windows_of(&t.windows, "a")
        .filter(|x| x.end > t.b_first)
        .collect();
    assert!(
        open.is_empty(),
        "a's receives open after b began at {} ms: {open:?}",
        t.b_first
    );
    let late: Vec<_> = t
        .handled
        .iter()
        .filter(|h| h.0 == "a" && h.1 > t.b_first)
        .collect();
    assert!(
        late.is_empty(),
        "a handled messages after b took over: {late:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_comes_back_after_the_fence_is_never_handled() {
    // Every answer to a's receives is held until just after its fence.
    let t = cut_off_while(|a| a.set(|f| f.answers_after_fence = true)).await;
    assert!(t.a_fenced_out > 0, "no answer came back after the fence");
    assert_no_overrun(&t);
    let ids: BTreeSet<&String> = t.handled.iter().map(|h| &h.2).collect();
    assert_eq!(ids.len(), t.handled.len(), "a message handled twice");
}

/// Longest any queue went without a receive (as its callers saw them) from `from` ms to its
/// last receive that ended (one still open is not logged yet).
fn longest_gap(windows: &[Window], urls: &[String], from: u64) -> u64 {
    let mut longest = 0;
    for u in urls {
        let mut w: Vec<(u64, u64)> = windows
            .iter()
            .filter(|x| x.queue.as_str() == u)
            .map(|x| (x.start, x.end))
            .collect();
        w.sort();
        let mut t = from;
        for (s, e) in w {
            if e <= t {
                continue;
            }
            longest = longest.max(s.saturating_sub(t));
            t = t.max(e);
        }
    }
    longest
}

/// The failover bound of the simulation's options: HeartbeatTimeout + 2 x HeartbeatInterval.
fn failover_bound() -> u64 {
    let c = cfg("x");
    (c.heartbeat_timeout + 2 * c.heartbeat_interval).as_millis() as u64
}

#[tokio::test(start_paused = true)]
async fn a_query_that_never_answers_strands_no_queue() {
    let (fakes, urls) = fakes_with_queues(4);
    let (windows, handled) = (Windows::default(), Handled::default());
    let b = start(&fakes, "b", Faulty::new(&fakes, "b", &windows), &handled);
    wait_until(Duration::from_secs(90), "b receives all 4", || {
        b.active_queues().len() == 4
    })
    .await;
    let a_backend = Faulty::new(&fakes, "a", &windows);
    let a = start(&fakes, "a", Arc::clone(&a_backend), &handled);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // a is registered and has read the table once; its next Query never answers.
    a_backend.set(|f| f.hang_queries = 1);
    wait_until(Duration::from_secs(180), "a receives its half", || {
        a.active_queues().len() == 2 && b.active_queues().len() == 2
    })
    .await;
    for (i, u) in urls.iter().enumerate() {
        send(&fakes, u, &format!("late-{i}"));
    }
    wait_until(Duration::from_secs(60), "every message handled", || {
        handled.lock().expect("not poisoned").len() == urls.len()
    })
    .await;
    assert!(a.health().healthy, "{:?}", a.health());
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_that_never_answers_costs_no_life() {
    let (fakes, urls) = fakes_with_queues(4);
    let (windows, handled) = (Windows::default(), Handled::default());
    let a_backend = Faulty::new(&fakes, "a", &windows);
    let a = start(&fakes, "a", Arc::clone(&a_backend), &handled);
    let b = start(&fakes, "b", Faulty::new(&fakes, "b", &windows), &handled);
    wait_until(Duration::from_secs(300), "2/2", || {
        a.active_queues().len() == 2 && b.active_queues().len() == 2
    })
    .await;
    let life = || {
        let key = Key {
            pk: "app#sim".into(),
            sk: "instance#a".into(),
        };
        let f = &mut *fakes.lock().expect("not poisoned");
        let item = f
            .dynamo
            .get_item("probe", sqsbalancer_sim::TABLE, &key, true);
        item.expect("the table").expect("a's record")["incarnation"].clone()
    };
    let before = life();
    a_backend.set(|f| f.hang_heartbeats = 1);
    let from = now(&fakes);
    tokio::time::sleep(Duration::from_secs(1_200)).await;
    assert_eq!(life(), before, "a lost its life");
    let w = windows.lock().expect("not poisoned").clone();
    let gap = longest_gap(&w, &urls, from);
    assert!(gap < 1_000, "a queue went {gap} ms without a receive");
}

#[tokio::test(start_paused = true)]
async fn a_receive_that_never_answers_strands_no_queue() {
    let (fakes, urls) = fakes_with_queues(1);
    let (windows, handled) = (Windows::default(), Handled::default());
    let b_backend = Faulty::new(&fakes, "b", &windows);
    let b = start(&fakes, "b", Arc::clone(&b_backend), &handled);
    wait_until(Duration::from_secs(90), "b receives q-0", || {
        b.active_queues().len() == 1
    })
    .await;
    b_backend.set(|f| f.hang_receives = 1);
    let from = now(&fakes);
    tokio::time::sleep(Duration::from_secs(5)).await;
    send(&fakes, &urls[0], "after the hang");
    wait_until(
        Duration::from_millis(failover_bound()),
        "the message is handled",
        || handled.lock().expect("not poisoned").len() == 1,
    )
    .await;
    let w = windows.lock().expect("not poisoned").clone();
    let gap = longest_gap(&w, &urls, from);
    let c = cfg("x");
    let attempt = sqsbalancer_runtime::Timeouts::of(&c).receive_attempt(Duration::from_secs(20));
    assert!(
        gap <= failover_bound() + attempt.as_millis() as u64,
        "q-0 went {gap} ms without a receive"
    );
}

#[tokio::test(start_paused = true)]
async fn health_turns_red_when_no_read_completes_within_the_heartbeat_timeout() {
    let (fakes, _) = fakes_with_queues(1);
    let (windows, handled) = (Windows::default(), Handled::default());
    let a_backend = Faulty::new(&fakes, "a", &windows);
    let a = start(&fakes, "a", Arc::clone(&a_backend), &handled);
    wait_until(Duration::from_secs(60), "healthy", || a.health().healthy).await;
    // Heartbeats go on; every read hangs.
    a_backend.set(|f| f.hang_queries = u32::MAX);
    let ht = cfg("x").heartbeat_timeout;
    wait_until(ht + Duration::from_secs(11), "red", || !a.health().healthy).await;
    let h = a.health();
    assert!(h.since_table_read > Some(ht), "{h:?}");
    assert!(
        h.since_table_answered < Some(Duration::from_secs(11)),
        "heartbeats still answered: {h:?}"
    );
    a_backend.set(|f| f.hang_queries = 0);
    wait_until(Duration::from_secs(30), "green again", || {
        a.health().healthy
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_table_read_of_many_slow_pages_completes() {
    // Three pages, each within the driver's deadline and the whole read well beyond it: the
    // deadline bounds a call, not a read, or a big table could never be read.
    let (fakes, urls) = fakes_with_queues(20);
    let (windows, handled) = (Windows::default(), Handled::default());
    let backend = Faulty::new(&fakes, "a", &windows);
    let effect = sqsbalancer_runtime::Timeouts::of(&cfg("a")).effect;
    backend.set(|f| f.slow_pages = Some((7, effect * 3 / 4)));
    let a = start(&fakes, "a", Arc::clone(&backend), &handled);
    // The reconciliation reads the whole table every ten minutes.
    wait_until(Duration::from_secs(1800), "a reads the whole table", || {
        backend.table_reads.load(Ordering::SeqCst) > 0 && a.active_queues().len() == urls.len()
    })
    .await;
}

//! The production path on moto with a fault-injecting proxy in front of each worker (G12):
//! a worker cut off from DynamoDB, its long polls answered 500, receives nothing past its
//! fence; one Query, heartbeat write or receive that never answers strands no queue for longer
//! than HeartbeatTimeout + 2 x HeartbeatInterval + a receive's attempt timeout. In every run no
//! two workers' receives on one queue are open at moto at once.
//!
//! The runs share the machine's two cores with moto and three workers each, so they take turns.

mod common;

use common::proxy::{Hang, Proxy, assert_exclusive, longest_gap, polls};
use common::worker::{APP, TABLE, Worker, config, loads};
use common::{Moto, create_queues, incarnation, owners, send_messages, wait_until};
use sqsbalancer_runtime::Timeouts;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const QUEUES: usize = 9;

/// One run at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Moto, its queues, and workers each behind a proxy of its own.
struct Fleet {
    moto: Moto,
    admin: sqsbalancer_runtime::aws::AwsBackend,
    urls: Vec<String>,
    proxies: Vec<(&'static str, Proxy)>,
    workers: Vec<Worker>,
    printed: Arc<Mutex<BTreeSet<String>>>,
}

impl Fleet {
    /// Moto with the queues, and a proxy for each of `ids`; no worker yet.
    async fn new(ids: &[&'static str]) -> Fleet {
        let moto = Moto::start();
        let admin = moto.backend(TABLE).await;
        let urls = create_queues(&admin, APP, QUEUES).await;
        let mut proxies = Vec::new();
        for id in ids {
            proxies.push((*id, Proxy::start(&moto.endpoint).await));
        }
        Fleet {
            moto,
            admin,
            urls,
            proxies,
            workers: Vec::new(),
            printed: Arc::default(),
        }
    }

    /// Starts the worker behind proxy `i`.
    fn start(&mut self, i: usize) {
        let (id, proxy) = &self.proxies[i];
        self.workers
            .push(Worker::start(&proxy.endpoint, id, &self.printed));
    }

    /// Waits until the owned queue counts are `split`.
    async fn balanced(&self, split: &[usize]) {
        wait_until(Duration::from_secs(60), "balanced", async || {
            loads(&owners(&self.admin, APP).await) == split
        })
        .await;
    }

    /// Waits until proxy `i` holds the call it was told to hang; returns when it arrived.
    async fn hung(&self, i: usize) -> Instant {
        let proxy = &self.proxies[i].1;
        wait_until(Duration::from_secs(30), "the call to hang", async || {
            proxy.hung_at().is_some()
        })
        .await;
        proxy.hung_at().expect("held")
    }

    /// Waits until worker `i` has receives under way on `queues` distinct queues.
    async fn polling(&self, i: usize, queues: usize) {
        let since = Instant::now();
        wait_until(Duration::from_secs(30), "receiving", async || {
            let polls = self.polls();
            let mut on: Vec<&str> = polls
                .iter()
                .filter(|p| p.worker == self.proxies[i].0 && p.from >= since)
                .map(|p| p.queue.as_str())
                .collect();
            on.sort_unstable();
            on.dedup();
            on.len() == queues
        })
        .await;
    }

    /// Every receive so far, of every worker.
    fn polls(&self) -> Vec<common::proxy::Poll> {
        let ps: Vec<(&str, &Proxy)> = self.proxies.iter().map(|(id, p)| (*id, p)).collect();
        polls(&ps)
    }

    /// Waits out `window` after `from`, then asserts that no queue went unpolled for longer
    /// than the bound and that receives stayed exclusive.
    async fn assert_consumed_throughout(&self, from: Instant, window: Duration) {
        tokio::time::sleep_until(from + window).await;
        let polls = self.polls();
        let bound = stranding_bound();
        let (gap, queue) = longest_gap(&polls, &self.urls, from, from + window);
        eprintln!("longest time unconsumed: {gap:?} (bound {bound:?})");
        assert!(
            gap <= bound,
            "{queue} went unconsumed for {gap:?} (bound {bound:?})"
        );
        assert_exclusive(&polls);
    }
}

/// HeartbeatTimeout + 2 x HeartbeatInterval + the attempt timeout of a receive.
fn stranding_bound() -> Duration {
    let cfg = config("any");
    let wait = cfg.sqs.wait_time;
    cfg.heartbeat_timeout + cfg.heartbeat_interval * 2 + Timeouts::of(&cfg).receive_attempt(wait)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_dynamodb_with_failing_long_polls_receives_nothing_past_its_fence() {
    let _turn = TURN.lock().await;
    let mut fleet = Fleet::new(&["w0", "w1", "w2"]).await;
    (0..3).for_each(|i| fleet.start(i));
    fleet.balanced(&[3, 3, 3]).await;
    // The table may name w0 the next owner of a queue before w0 has read it.
    fleet.polling(0, 3).await;
    let cut = &fleet.proxies[0].1;
    cut.cut_dynamo_and_fail_receives();
    let sent = send_messages(&fleet.admin, &fleet.urls, 2, "m").await;
    wait_until(Duration::from_secs(60), "w1 and w2 own all", async || {
        let o = owners(&fleet.admin, APP).await;
        !o.contains_key("w0") && o.values().sum::<usize>() == QUEUES
    })
    .await;

    let cfg = config("w0");
    let last_heartbeat = cut
        .calls()
        .iter()
        .filter(|c| c.applied_write_of("w0"))
        .map(|c| c.arrived)
        .max()
        .expect("w0 heartbeated before the cut");
    let fence = last_heartbeat + cfg.heartbeat_timeout - Timeouts::of(&cfg).request_margin;
    // Long enough past the fence for any receive left open to show.
    tokio::time::sleep_until(fence + cfg.heartbeat_timeout).await;
    let polls = fleet.polls();
    let failed = cut
        .calls()
        .iter()
        .filter(|c| {
            c.action == "ReceiveMessage"
                && matches!(c.answered, Some((at, _)) if at > last_heartbeat)
        })
        .count();
    assert!(
        failed > 0,
        "no receive of w0 was answered after its last heartbeat"
    );
    if let Some(last) = polls
        .iter()
        .filter(|p| p.worker == "w0")
        .map(|p| p.to)
        .max()
    {
        eprintln!(
            "w0's last receive ended {:?} before its fence",
            fence.saturating_duration_since(last)
        );
    }
    for p in polls.iter().filter(|p| p.worker == "w0") {
        assert!(
            p.to <= fence,
            "w0's receive on {} was open {:?} past its fence",
            p.queue,
            p.to - fence
        );
    }
    assert_exclusive(&polls);
    wait_until(
        Duration::from_secs(60),
        "every message handled",
        async || {
            fleet
                .printed
                .lock()
                .expect("not poisoned")
                .is_superset(&sent)
        },
    )
    .await;
    drop(fleet.moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_never_answers_strands_no_queue_of_a_joining_worker() {
    let _turn = TURN.lock().await;
    let mut fleet = Fleet::new(&["w0", "w1", "w2"]).await;
    fleet.start(0);
    fleet.start(1);
    fleet.balanced(&[4, 5]).await;
    fleet.proxies[2].1.hang_next(Hang {
        action: "Query",
        containing: None,
    });
    fleet.start(2);
    let hung = fleet.hung(2).await;
    fleet.balanced(&[3, 3, 3]).await;
    let window = hung.elapsed() + stranding_bound() * 2;
    fleet.assert_consumed_throughout(hung, window).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_write_that_never_answers_costs_neither_a_life_nor_a_queue() {
    let _turn = TURN.lock().await;
    let mut fleet = Fleet::new(&["w0", "w1", "w2"]).await;
    (0..3).for_each(|i| fleet.start(i));
    fleet.balanced(&[3, 3, 3]).await;
    fleet.polling(1, 3).await;
    let life = incarnation(&fleet.admin, APP, "w1").await;
    fleet.proxies[1].1.hang_next(Hang {
        action: "UpdateItem",
        containing: Some("\"instance#w1\"".to_owned()),
    });
    let hung = fleet.hung(1).await;
    fleet
        .assert_consumed_throughout(hung, stranding_bound() * 2)
        .await;
    assert_eq!(
        incarnation(&fleet.admin, APP, "w1").await,
        life,
        "w1 re-registered"
    );
    assert_eq!(owners(&fleet.admin, APP).await.get("w1"), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_check_that_never_answers_at_start_does_not_end_the_worker() {
    let _turn = TURN.lock().await;
    let mut fleet = Fleet::new(&["w0", "w1", "w2"]).await;
    fleet.proxies[0].1.cut_dynamo(true);
    (0..3).for_each(|i| fleet.start(i));
    // w0's start-up check of the table goes unanswered past its whole deadline.
    let deadline = Timeouts::of(&config("w0")).operation;
    let proxy = &fleet.proxies[0].1;
    wait_until(
        Duration::from_secs(30),
        "w0's table check to time out",
        async || {
            let first = proxy
                .calls()
                .iter()
                .find(|c| c.action == "DescribeTable")
                .map(|c| c.arrived);
            first.is_some_and(|t| t.elapsed() > deadline * 2)
        },
    )
    .await;
    fleet.proxies[0].1.cut_dynamo(false);
    let exited = fleet.workers[0].child.try_wait().expect("waitable");
    assert_eq!(exited, None, "w0 gave up on a table that was only slow");
    fleet.balanced(&[3, 3, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_that_never_answers_strands_its_queue_for_one_attempt_at_most() {
    let _turn = TURN.lock().await;
    let mut fleet = Fleet::new(&["w0", "w1", "w2"]).await;
    (0..3).for_each(|i| fleet.start(i));
    fleet.balanced(&[3, 3, 3]).await;
    fleet.polling(1, 3).await;
    fleet.proxies[1].1.hang_next(Hang {
        action: "ReceiveMessage",
        containing: None,
    });
    let hung = fleet.hung(1).await;
    fleet
        .assert_consumed_throughout(hung, stranding_bound() * 2)
        .await;
}

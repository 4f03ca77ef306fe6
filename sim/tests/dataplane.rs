//! The data plane's options end to end, one real instance on a paused clock against the
//! in-memory fakes: visibility extension, failure backoff, handler timeout, FIFO group
//! order, the batch handler, per-queue settings and caps, releasing unstarted messages at
//! shutdown, and the stats and health a running instance reports.

mod common;

use common::{
    backend, backlog, calls, cfg, create_queue, fakes_with_queues, send, send_fifo, wait_until,
};
use sqsbalancer_core::SqsConfig;
use sqsbalancer_runtime::{
    Balancer, BatchOutcome, FailureBackoff, HandlerError, Message, RuntimeError,
};
use sqsbalancer_sim::fake::SqsOp;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

type Log<T> = Arc<Mutex<Vec<T>>>;

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn read<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().expect("not poisoned").clone()
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_keeps_its_message_invisible_until_it_finishes() {
    for extend in [true, false] {
        let (fakes, urls) = fakes_with_queues(1);
        send(&fakes, &urls[0], "slow");
        let deliveries = log::<u32>();
        let seen = Arc::clone(&deliveries);
        let handler = move |m: Message| {
            seen.lock().expect("not poisoned").push(m.receive_count);
            async move {
                // Over three visibility timeouts (30 s).
                tokio::time::sleep(Duration::from_secs(100)).await;
                Ok::<(), HandlerError>(())
            }
        };
        let mut balancer = Balancer::new(cfg("a"), backend(&fakes, "a")).expect("valid");
        if !extend {
            balancer = balancer.without_visibility_extension();
        }
        let running = balancer.start(handler).expect("started");
        if extend {
            wait_until(Duration::from_secs(600), "the queue empty", || {
                backlog(&fakes, &urls) == 0
            })
            .await;
            assert_eq!(read(&deliveries), vec![1], "handled once, never raced");
            let extensions = calls(&fakes, "a", SqsOp::ChangeMessageVisibilityBatch);
            assert!(extensions >= 3, "{extensions} extensions over 100 s");
            running.stop().await.expect("a clean stop");
        } else {
            // Redelivered every 30 s while its handler still runs.
            wait_until(Duration::from_secs(120), "a redelivery", || {
                read(&deliveries).len() >= 2
            })
            .await;
            assert_eq!(calls(&fakes, "a", SqsOp::ChangeMessageVisibilityBatch), 0);
            // And a stop cannot finish the 100 s handlers within the 30 s shutdown timeout.
            assert!(matches!(
                running.stop().await,
                Err(RuntimeError::ShutdownTimeout { .. })
            ));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_extension_is_asked_again_before_the_message_reappears() {
    let (fakes, urls) = fakes_with_queues(1);
    send(&fakes, &urls[0], "slow");
    let windows = common::faulty::Windows::default();
    let a = common::faulty::Faulty::new(&fakes, "a", &windows);
    // The first extension is refused twice (the batch call and its one retry).
    a.set(|f| f.fail_visibility = 2);
    let deliveries = log::<u32>();
    let seen = Arc::clone(&deliveries);
    let handler = move |m: Message| {
        seen.lock().expect("not poisoned").push(m.receive_count);
        async move {
            // Over two visibility timeouts (30 s).
            tokio::time::sleep(Duration::from_secs(70)).await;
            Ok::<(), HandlerError>(())
        }
    };
    let running = Balancer::new(cfg("a"), a)
        .expect("valid")
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(600), "the queue empty", || {
        backlog(&fakes, &urls) == 0
    })
    .await;
    assert_eq!(
        read(&deliveries),
        vec![1],
        "redelivered while its handler ran"
    );
    running.stop().await.expect("a clean stop");
}

#[tokio::test(start_paused = true)]
async fn failure_backoff_retries_sooner_than_the_visibility_timeout() {
    let (fakes, urls) = fakes_with_queues(1);
    send(&fakes, &urls[0], "flaky");
    let attempts = log::<(u32, Instant)>();
    let seen = Arc::clone(&attempts);
    let handler = move |m: Message| {
        seen.lock()
            .expect("not poisoned")
            .push((m.receive_count, Instant::now()));
        async move {
            if m.receive_count < 3 {
                return Err(HandlerError::new("not yet"));
            }
            Ok(())
        }
    };
    let backoff = FailureBackoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let running = Balancer::new(cfg("a"), backend(&fakes, "a"))
        .expect("valid")
        .with_failure_backoff(backoff)
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(120), "the queue empty", || {
        backlog(&fakes, &urls) == 0
    })
    .await;
    let attempts = read(&attempts);
    let counts: Vec<u32> = attempts.iter().map(|a| a.0).collect();
    assert_eq!(counts, vec![1, 2, 3]);
    // 1 s, then 2 s (plus a poll), not the 30 s visibility timeout.
    for (pair, want) in attempts.windows(2).zip([1, 2]) {
        let gap = pair[1].1 - pair[0].1;
        let want = Duration::from_secs(want);
        assert!(
            gap >= want && gap < want + Duration::from_secs(2),
            "{gap:?}"
        );
    }
    let stats = running.stats();
    assert_eq!((stats.failed, stats.succeeded), (2, 1));
    running.stop().await.expect("a clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_handler_past_its_timeout_fails_and_the_message_comes_back() {
    let (fakes, urls) = fakes_with_queues(1);
    send(&fakes, &urls[0], "stuck once");
    let handler = |m: Message| async move {
        if m.receive_count == 1 {
            std::future::pending::<()>().await;
        }
        Ok::<(), HandlerError>(())
    };
    let running = Balancer::new(cfg("a"), backend(&fakes, "a"))
        .expect("valid")
        .with_handler_timeout(Duration::from_secs(2))
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(120), "the queue empty", || {
        backlog(&fakes, &urls) == 0
    })
    .await;
    let stats = running.stats();
    assert_eq!(
        (stats.failed, stats.succeeded, stats.in_handlers),
        (1, 1, 0)
    );
    assert!(running.health().healthy, "{:?}", running.health());
    running.stop().await.expect("a clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_fifo_group_is_handled_in_order_even_across_a_failure() {
    let (fakes, _) = fakes_with_queues(0);
    let url = create_queue(&fakes, "orders.fifo");
    for i in 0..10 {
        for g in 0..3 {
            send_fifo(&fakes, &url, &format!("g{g}"), &format!("g{g}-{i}"));
        }
    }
    let done = log::<String>();
    let seen = Arc::clone(&done);
    let failed_once = Arc::new(Mutex::new(false));
    let handler = move |m: Message| {
        let seen = Arc::clone(&seen);
        let failed_once = Arc::clone(&failed_once);
        async move {
            // Handlers take time, so a group's messages would overtake each other if they
            // ran on several workers at once.
            tokio::time::sleep(Duration::from_millis(10)).await;
            if m.body == "g1-3" && !std::mem::replace(&mut *failed_once.lock().expect("ok"), true) {
                return Err(HandlerError::new("once"));
            }
            seen.lock().expect("not poisoned").push(m.body);
            Ok(())
        }
    };
    let running = Balancer::new(cfg("a"), backend(&fakes, "a"))
        .expect("valid")
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(300), "the queue empty", || {
        backlog(&fakes, std::slice::from_ref(&url)) == 0
    })
    .await;
    let done = read(&done);
    for g in 0..3 {
        let order: Vec<&String> = done
            .iter()
            .filter(|b| b.starts_with(&format!("g{g}-")))
            .collect();
        let want: Vec<String> = (0..10).map(|i| format!("g{g}-{i}")).collect();
        assert_eq!(order, want.iter().collect::<Vec<_>>(), "group g{g}");
    }
    running.stop().await.expect("a clean stop");
}

/// Handlers running now and the most at once, by queue name.
type Concurrency = Arc<Mutex<BTreeMap<String, (usize, usize)>>>;

#[tokio::test(start_paused = true)]
async fn a_queue_s_cap_bounds_its_messages_in_flight_and_leaves_workers_to_the_others() {
    let (fakes, urls) = fakes_with_queues(2);
    for i in 0..40 {
        send(&fakes, &urls[0], &format!("capped-{i}"));
    }
    for i in 0..10 {
        send(&fakes, &urls[1], &format!("free-{i}"));
    }
    let running_now: Concurrency = Arc::default();
    let seen = Arc::clone(&running_now);
    let handler = move |m: Message| {
        let seen = Arc::clone(&seen);
        let queue = m.queue.name().to_owned();
        async move {
            {
                let mut s = seen.lock().expect("not poisoned");
                let (now, most) = s.entry(queue.clone()).or_default();
                *now += 1;
                *most = (*most).max(*now);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            seen.lock()
                .expect("not poisoned")
                .entry(queue)
                .or_default()
                .0 -= 1;
            Ok::<(), HandlerError>(())
        }
    };
    let mut c = cfg("a");
    c.worker_pool_size = 8;
    let mut capped = SqsConfig::default();
    capped.max_in_flight = Some(3);
    let running = Balancer::new(c, backend(&fakes, "a"))
        .expect("valid")
        .with_queue_settings("q-0", capped)
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(300), "the queues empty", || {
        backlog(&fakes, &urls) == 0
    })
    .await;
    let most: BTreeMap<String, usize> = (running_now.lock().expect("not poisoned").iter())
        .map(|(q, (_, most))| (q.clone(), *most))
        .collect();
    assert_eq!(
        most["q-0"], 3,
        "the capped queue at its cap, never past it: {most:?}"
    );
    assert!(
        most["q-1"] > 3,
        "the other queue used the workers left: {most:?}"
    );
    let stats = running.stats();
    assert_eq!(stats.succeeded, 50);
    // 40 handler-seconds on q-0 against 10 on q-1, in the last minute: each queue's load.
    let load = |name: &str| (stats.queue_load.iter()).find(|(q, _)| q.name() == name);
    let (capped, free) = (load("q-0").map(|l| *l.1), load("q-1").map(|l| *l.1));
    assert!(free > Some(0) && capped > free, "{:?}", stats.queue_load);
    running.stop().await.expect("a clean stop");
}

/// Records batch sizes by queue name and fails each `fail` message on its first receive.
fn batch_recorder(
    sizes: Log<(String, usize)>,
    outcomes: Log<(String, bool)>,
) -> impl Fn(Vec<Message>) -> std::future::Ready<BatchOutcome> + Send + Sync + 'static {
    move |batch: Vec<Message>| {
        let queue = batch[0].queue.name().to_owned();
        sizes.lock().expect("ok").push((queue, batch.len()));
        let results: BatchOutcome = batch
            .iter()
            .map(|m| {
                let ok = !(m.body.starts_with("fail") && m.receive_count == 1);
                outcomes.lock().expect("ok").push((m.body.clone(), ok));
                if ok {
                    Ok(())
                } else {
                    Err(HandlerError::new("first time"))
                }
            })
            .collect();
        std::future::ready(results)
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_handler_succeeds_and_fails_messages_alone_with_per_queue_batch_sizes() {
    let (fakes, urls) = fakes_with_queues(2);
    let mut bodies = Vec::new();
    for url in &urls {
        for i in 0..30 {
            let body = format!("{}-{url}-{i}", if i % 5 == 0 { "fail" } else { "ok" });
            send(&fakes, url, &body);
            bodies.push(body);
        }
    }
    let (sizes, outcomes) = (log(), log());
    let mut one_at_a_time = SqsConfig::default();
    one_at_a_time.max_messages = 1;
    let running = Balancer::new(cfg("a"), backend(&fakes, "a"))
        .expect("valid")
        .with_queue_settings("q-1", one_at_a_time)
        .start_batch(batch_recorder(Arc::clone(&sizes), Arc::clone(&outcomes)))
        .expect("started");
    wait_until(Duration::from_secs(300), "the queues empty", || {
        backlog(&fakes, &urls) == 0
    })
    .await;
    let mut largest: BTreeMap<String, usize> = BTreeMap::new();
    for (q, n) in read(&sizes) {
        let l = largest.entry(q).or_default();
        *l = (*l).max(n);
    }
    assert!(largest["q-0"] > 1, "q-0 batches {largest:?}");
    assert_eq!(largest["q-1"], 1, "q-1 is set to one message per receive");
    let outcomes = read(&outcomes);
    for body in &bodies {
        let tries: Vec<bool> = outcomes
            .iter()
            .filter(|(b, _)| b == body)
            .map(|o| o.1)
            .collect();
        let want = if body.starts_with("fail") {
            vec![false, true]
        } else {
            vec![true]
        };
        assert_eq!(tries, want, "{body}");
    }
    let stats = running.stats();
    assert_eq!((stats.succeeded, stats.failed), (60, 12));
    running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn bad_data_plane_options_are_typed_errors_naming_them() {
    let (fakes, _) = fakes_with_queues(0);
    let balancer = || Balancer::new(cfg("a"), backend(&fakes, "a")).expect("valid");
    let start = |b: Balancer<_>| b.start(|_m: Message| async { Ok::<(), HandlerError>(()) });
    let mut too_many = SqsConfig::default();
    too_many.max_messages = 11;
    let Err(RuntimeError::QueueSettings { queue, source }) =
        start(balancer().with_queue_settings("big", too_many))
    else {
        panic!("max_messages 11 was accepted");
    };
    assert_eq!(queue, "big");
    assert!(source.to_string().contains("max_messages"), "{source}");
    let backwards = FailureBackoff::new(Duration::from_secs(10), Duration::from_secs(1));
    assert!(matches!(
        start(balancer().with_failure_backoff(backwards)),
        Err(RuntimeError::Option {
            option: "failure_backoff",
            ..
        })
    ));
    assert!(matches!(
        start(balancer().with_handler_timeout(Duration::ZERO)),
        Err(RuntimeError::Option {
            option: "handler_timeout",
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_makes_unstarted_messages_visible_at_once() {
    let (fakes, urls) = fakes_with_queues(1);
    for i in 0..50 {
        send(&fakes, &urls[0], &format!("m-{i}"));
    }
    let mut c = cfg("a");
    c.worker_pool_size = 1;
    c.work_queue_size = 9;
    let handled = log::<String>();
    let seen = Arc::clone(&handled);
    let handler = move |m: Message| {
        let seen = Arc::clone(&seen);
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            seen.lock().expect("ok").push(m.body);
            Ok::<(), HandlerError>(())
        }
    };
    let running = Balancer::new(c, backend(&fakes, "a"))
        .expect("valid")
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(60), "a message handled", || {
        !read(&handled).is_empty()
    })
    .await;
    running.stop().await.expect("a clean stop");
    let left = backlog(&fakes, &urls);
    assert_eq!(
        left + read(&handled).len(),
        50,
        "nothing lost, nothing handled twice"
    );
    let counts = {
        let mut f = fakes.lock().expect("ok");
        let now = f.now();
        f.sqs.counts(now, "admin", &urls[0]).expect("the queue")
    };
    assert_eq!(
        counts.not_visible, 0,
        "received but unstarted messages were released"
    );
    assert_eq!(counts.visible as usize, left);
}

#[tokio::test(start_paused = true)]
async fn a_stop_past_its_timeout_abandons_running_handlers_and_releases_their_messages() {
    let (fakes, urls) = fakes_with_queues(1);
    for i in 0..5 {
        send(&fakes, &urls[0], &format!("m-{i}"));
    }
    let mut c = cfg("a");
    c.worker_pool_size = 2;
    let finished = log::<String>();
    let done = Arc::clone(&finished);
    let handler = move |m: Message| {
        let done = Arc::clone(&done);
        async move {
            // Past the 30 s shutdown timeout.
            tokio::time::sleep(Duration::from_secs(45)).await;
            done.lock().expect("ok").push(m.body);
            Ok::<(), HandlerError>(())
        }
    };
    let running = Balancer::new(c, backend(&fakes, "a"))
        .expect("valid")
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(60), "two handlers running", || {
        running.stats().in_handlers == 2
    })
    .await;
    let stats = running.stats();
    let stopped = running.stop().await;
    assert!(
        matches!(stopped, Err(RuntimeError::ShutdownTimeout { .. })),
        "{stopped:?}"
    );
    // At once, not after the visibility timeout: every message is visible again, none of the
    // abandoned handlers finished, and none was deleted.
    let counts = {
        let mut f = fakes.lock().expect("ok");
        let now = f.now();
        f.sqs.counts(now, "admin", &urls[0]).expect("the queue")
    };
    assert_eq!((counts.visible, counts.not_visible), (5, 0), "{stats:?}");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(read(&finished).is_empty(), "an abandoned handler ran on");
    assert_eq!(backlog(&fakes, &urls), 5);
}

#[tokio::test(start_paused = true)]
async fn stats_and_health_count_the_fleet_the_workers_and_the_work_queue() {
    let (fakes, urls) = fakes_with_queues(4);
    for url in &urls {
        for i in 0..5 {
            send(&fakes, url, &format!("m{i}"));
        }
    }
    let release = Arc::new(tokio::sync::Notify::new());
    let start = |name: &str| {
        let mut c = cfg(name);
        c.worker_pool_size = 1;
        let wait = Arc::clone(&release);
        let handler = move |_m: Message| {
            let wait = Arc::clone(&wait);
            async move {
                wait.notified().await;
                Ok::<(), HandlerError>(())
            }
        };
        let balancer = Balancer::new(c, backend(&fakes, name)).expect("valid");
        balancer.start(handler).expect("started")
    };
    let (a, b) = (start("a"), start("b"));
    wait_until(
        Duration::from_secs(300),
        "two queues each, a's worker busy",
        || {
            let s = a.stats();
            let settled = s.owned_queues == 2 && b.stats().owned_queues == 2 && s.instances == 2;
            settled && s.busy_workers == 1 && s.work_queue_depth > 0
        },
    )
    .await;
    let s = a.stats();
    assert_eq!(s.instance_id, "a");
    assert_eq!(s.queues, a.active_queues());
    assert_eq!(s.processed, s.succeeded + s.failed);
    assert_eq!(s.in_handlers, 1, "one worker, one message at a time");
    let h = a.health();
    assert_eq!((h.instances, h.queues, h.workers), (2, 2, 1), "{h:?}");
    // Let every handler finish: the work queue empties and the processed count catches up.
    wait_until(Duration::from_secs(600), "every message handled", || {
        release.notify_waiters();
        backlog(&fakes, &urls) == 0
    })
    .await;
    let s = a.stats();
    assert_eq!((s.work_queue_depth, s.busy_workers), (0, 0), "{s:?}");
    assert_eq!(s.processed + b.stats().processed, 20);
    a.stop().await.expect("a clean stop");
    b.stop().await.expect("a clean stop");
}

/// Receives an instance makes on one idle queue over ten simulated minutes, with `idle_pause`.
async fn receives_on_an_idle_queue(idle_pause: Option<Duration>) -> u64 {
    let (fakes, _urls) = fakes_with_queues(1);
    let mut balancer = Balancer::new(cfg("a"), backend(&fakes, "a")).expect("valid");
    if let Some(pause) = idle_pause {
        balancer = balancer.with_idle_pause(pause);
    }
    let running = balancer
        .start(|_: Message| async { Ok(()) })
        .expect("started");
    wait_until(Duration::from_secs(60), "the queue owned", || {
        running.stats().owned_queues == 1
    })
    .await;
    let before = calls(&fakes, "a", SqsOp::ReceiveMessage);
    tokio::time::sleep(Duration::from_secs(600)).await;
    let receives = calls(&fakes, "a", SqsOp::ReceiveMessage) - before;
    running.stop().await.expect("a clean stop");
    receives
}

#[tokio::test(start_paused = true)]
async fn an_idle_pause_cuts_an_idle_queue_s_receives_and_a_message_still_comes_through() {
    // 20 s long polls: three a minute, thirty in ten minutes.
    let always = receives_on_an_idle_queue(None).await;
    assert!((29..=31).contains(&always), "{always}");
    // Three empty receives, then one per 20 s poll plus the 60 s pause.
    let paused = receives_on_an_idle_queue(Some(Duration::from_secs(60))).await;
    assert!((8..=10).contains(&paused), "{paused}");

    // A message on an idle queue waits at most the pause: the receive after it returns at
    // once.
    let (fakes, urls) = fakes_with_queues(1);
    let handled = log::<Instant>();
    let seen = Arc::clone(&handled);
    let handler = move |_: Message| {
        seen.lock().expect("not poisoned").push(Instant::now());
        async { Ok(()) }
    };
    let running = Balancer::new(cfg("a"), backend(&fakes, "a"))
        .expect("valid")
        .with_idle_pause(Duration::from_secs(60))
        .start(handler)
        .expect("started");
    tokio::time::sleep(Duration::from_secs(300)).await;
    let sent = Instant::now();
    send(&fakes, &urls[0], "after a quiet spell");
    wait_until(Duration::from_secs(120), "the message handled", || {
        !read(&handled).is_empty()
    })
    .await;
    let waited = read(&handled)[0] - sent;
    assert!(waited <= Duration::from_secs(61), "{waited:?}");
    running.stop().await.expect("a clean stop");
}

#[test]
fn an_idle_pause_of_zero_or_over_an_hour_is_refused() {
    let (fakes, _urls) = fakes_with_queues(1);
    for pause in [Duration::ZERO, Duration::from_secs(3601)] {
        let balancer = Balancer::new(cfg("a"), backend(&fakes, "a"))
            .expect("valid")
            .with_idle_pause(pause);
        assert!(
            matches!(
                balancer.check(),
                Err(RuntimeError::Option {
                    option: "idle_pause",
                    ..
                })
            ),
            "{pause:?}"
        );
    }
}

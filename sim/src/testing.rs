//! A test kit for a service's own handler: a fleet of real balancers running it against the
//! in-memory SQS and DynamoDB, on a simulated clock, through crashes, restarts and graceful
//! hand-offs, counting what the handler saw. It answers, in `cargo test`, the question every
//! team adopting at-least-once delivery must: does my handler lose or double-apply anything
//! when instances come and go?
//!
//! ```
//! use sqsbalancer_runtime::{HandlerError, Message};
//! use sqsbalancer_sim::testing::FleetTest;
//!
//! let handler = |m: Message| async move {
//!     let _n: u64 = m.body.trim_start_matches("message ").parse()?; // any error fails it
//!     Ok::<(), HandlerError>(())
//! };
//! let report = FleetTest::new(handler).instances(3).messages(200).crashes(2).seed(7).run();
//! assert_eq!(report.lost, 0, "{report}");
//! ```
//!
//! The schedule (when each instance crashes, restarts or stops, and which queue each message
//! goes to) is drawn from the seed. A crash is [`Running::abort`]: no hand-off, so peers wait
//! out the heartbeat timeout, and handlers dropped mid-call, so their messages come back.
//! The fakes make such a message visible again at once rather than after its visibility
//! timeout, and task interleavings follow tokio's scheduler, so two runs of one seed can
//! differ in detail; the seed reproduces the schedule.

use crate::backend::{FakeBackend, Fakes};
use crate::fake::Outgoing;
use crate::world::{TABLE, config};
use sqsbalancer_core::rng::Rng;
use sqsbalancer_runtime::{Balancer, Handler, HandlerError, Message, Running};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod local;

pub use crate::error::SimError;
pub use crate::fake::SqsError;
pub use local::LocalAws;

/// How long after its crash an instance comes back.
const RESTART_AFTER: Duration = Duration::from_secs(20);

/// One simulated fleet running a handler; built with setters, run with [`FleetTest::run`].
#[must_use = "a FleetTest does nothing until run()"]
pub struct FleetTest<H> {
    /// The handler every instance runs.
    handler: Arc<H>,
    /// Instances started at the beginning.
    instances: usize,
    /// Queues the messages are spread over.
    queues: usize,
    /// Messages sent over the first minutes of the run.
    messages: usize,
    /// Crashes, each followed by a restart.
    crashes: usize,
    /// Graceful stops, each followed by a fresh instance.
    stops: usize,
    /// The seed of the schedule.
    seed: u64,
    /// How long the fleet may take, in simulated time, to handle everything after the last
    /// fault.
    settle_within: Duration,
}

/// What a fleet run saw.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetReport {
    /// The seed that drew the schedule.
    pub seed: u64,
    /// Messages sent.
    pub sent: usize,
    /// Calls of the handler, all outcomes.
    pub handled: usize,
    /// Messages the handler succeeded on at least once.
    pub succeeded: usize,
    /// Messages the handler was called with more than once (redeliveries after a crash, a
    /// failure or a hand-off): a handler must be idempotent for these.
    pub duplicates: usize,
    /// Messages still in the queues when the run ended (a handler that keeps failing).
    pub left: usize,
    /// Messages sent that no handler call succeeded on and that are gone from the queues.
    pub lost: usize,
    /// What happened, in order: faults and the end.
    pub events: Vec<String>,
}

impl fmt::Display for FleetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} sent, {} handler calls, {} succeeded, {} duplicates, {} left, {} lost",
            self.seed,
            self.sent,
            self.handled,
            self.succeeded,
            self.duplicates,
            self.left,
            self.lost
        )?;
        for e in &self.events {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl<H: Handler> FleetTest<H> {
    /// Three instances over four queues, 100 messages, one crash and one graceful stop, seed 1.
    pub fn new(handler: H) -> FleetTest<H> {
        FleetTest {
            handler: Arc::new(handler),
            instances: 3,
            queues: 4,
            messages: 100,
            crashes: 1,
            stops: 1,
            seed: 1,
            settle_within: Duration::from_secs(600),
        }
    }

    /// Instances at the start (at least one).
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = n.max(1);
        self
    }

    /// Queues (at least one).
    pub fn queues(mut self, n: usize) -> Self {
        self.queues = n.max(1);
        self
    }

    /// Messages to send.
    pub fn messages(mut self, n: usize) -> Self {
        self.messages = n;
        self
    }

    /// Crashes, each of a random live instance, each followed by its restart.
    pub fn crashes(mut self, n: usize) -> Self {
        self.crashes = n;
        self
    }

    /// Graceful stops, each of a random live instance, each followed by a fresh instance.
    pub fn stops(mut self, n: usize) -> Self {
        self.stops = n;
        self
    }

    /// The seed of the schedule.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How long, in simulated time, the fleet may take to handle everything after the last
    /// fault (ten minutes by default).
    pub fn settle_within(mut self, d: Duration) -> Self {
        self.settle_within = d;
        self
    }

    /// Runs the fleet to the end on a simulated clock and reports what the handler saw.
    pub fn run(self) -> FleetReport {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime builds");
        runtime.block_on(Run::new(self).play())
    }
}

/// The handler calls seen, by message id: (calls, successes).
type Seen = Arc<Mutex<BTreeMap<String, (usize, usize)>>>;

/// The lock of `seen`; a handler that panicked while counting left plain numbers behind.
fn lock(seen: &Seen) -> std::sync::MutexGuard<'_, BTreeMap<String, (usize, usize)>> {
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The user's handler, counting its calls and successes.
struct Counting<H> {
    /// The handler.
    inner: Arc<H>,
    /// What it saw.
    seen: Seen,
}

impl<H: Handler> Handler for Counting<H> {
    fn handle(&self, message: Message) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let (inner, seen) = (Arc::clone(&self.inner), Arc::clone(&self.seen));
        async move {
            let id = message.message_id.clone();
            // Counted as it starts: a call a crash drops mid-way was still a call.
            lock(&seen).entry(id.clone()).or_default().0 += 1;
            let outcome = inner.handle(message).await;
            lock(&seen).entry(id).or_default().1 += usize::from(outcome.is_ok());
            outcome
        }
    }
}

/// One run in progress.
struct Run<H> {
    /// What was asked for.
    test: FleetTest<H>,
    /// The fakes every instance shares.
    fakes: Arc<Mutex<Fakes>>,
    /// The queues' URLs.
    urls: Vec<String>,
    /// The instances running, by name.
    live: BTreeMap<String, Running>,
    /// Instances started so far (names are `i-<n>`).
    started: usize,
    /// What the handler saw.
    seen: Seen,
    /// The schedule's randomness.
    rng: Rng,
    /// What happened.
    events: Vec<String>,
}

impl<H: Handler> Run<H> {
    fn new(test: FleetTest<H>) -> Run<H> {
        let mut fakes = Fakes::new();
        fakes.dynamo.create_table(TABLE).expect("a new table");
        let urls = (0..test.queues)
            .map(|i| (fakes.sqs.create_queue("admin", &format!("q-{i}"))).expect("a new queue"))
            .collect();
        Run {
            rng: Rng::new(test.seed),
            test,
            fakes: Arc::new(Mutex::new(fakes)),
            urls,
            live: BTreeMap::new(),
            started: 0,
            seen: Seen::default(),
            events: Vec::new(),
        }
    }

    /// Starts the fleet, sends the messages while the faults happen, then waits for the
    /// fleet to handle everything and stops it.
    async fn play(mut self) -> FleetReport {
        for _ in 0..self.test.instances {
            self.start();
        }
        let faults = self.schedule();
        let mut sent = 0;
        let total = self.test.messages;
        for (step, fault) in faults.into_iter().enumerate() {
            // Messages go out in as many waves as there are faults, one before each.
            let upto = total * (step + 1) / (self.test.crashes + self.test.stops + 1);
            sent = self.send(sent, upto);
            // The fault comes while the wave is being handled, then the fleet gets time to
            // take the change in.
            tokio::time::sleep(Duration::from_secs(3)).await;
            self.fault(fault).await;
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
        sent = self.send(sent, total);
        self.settle().await;
        for (_, running) in std::mem::take(&mut self.live) {
            if let Err(e) = running.stop().await {
                self.events.push(format!("a stop at the end failed: {e}"));
            }
        }
        self.report(sent)
    }

    /// The faults, in a seeded order: true for a crash, false for a graceful stop.
    fn schedule(&mut self) -> Vec<bool> {
        let mut faults: Vec<bool> = (0..self.test.crashes).map(|_| true).collect();
        faults.extend((0..self.test.stops).map(|_| false));
        for i in (1..faults.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            faults.swap(i, j);
        }
        faults
    }

    /// Starts a new instance.
    fn start(&mut self) {
        let name = format!("i-{}", self.started);
        self.started += 1;
        let mut cfg = config();
        cfg.instance_id = Some(name.clone());
        cfg.seed = self.rng.below(u64::MAX - 1) + 1;
        let backend = FakeBackend::new(
            Arc::clone(&self.fakes),
            &name,
            TABLE,
            Duration::from_millis(2),
        );
        let handler = Counting {
            inner: Arc::clone(&self.test.handler),
            seen: Arc::clone(&self.seen),
        };
        let running = Balancer::new(cfg, Arc::new(backend))
            .and_then(|b| b.start(handler))
            .expect("the kit's configuration is valid");
        self.live.insert(name, running);
    }

    /// Sends messages `from..upto`, each to a queue drawn from the seed.
    fn send(&mut self, from: usize, upto: usize) -> usize {
        for n in from..upto {
            let url = &self.urls[self.rng.below(self.urls.len() as u64) as usize];
            let mut f = self.fakes.lock().expect("the fakes are not poisoned");
            let now = f.now();
            let message = Outgoing {
                body: format!("message {n}"),
                ..Outgoing::default()
            };
            f.sqs.send(now, "producer", url, message).expect("sent");
        }
        upto.max(from)
    }

    /// Crashes (and later restarts) or gracefully stops (and replaces) a live instance.
    async fn fault(&mut self, crash: bool) {
        let names: Vec<String> = self.live.keys().cloned().collect();
        let Some(name) = names
            .get(self.rng.below(names.len() as u64) as usize)
            .cloned()
        else {
            return;
        };
        let Some(running) = self.live.remove(&name) else {
            return;
        };
        if crash {
            running.abort().await;
            self.events.push(format!("{name} crashed"));
            tokio::time::sleep(RESTART_AFTER).await;
        } else {
            let stopped = running.stop().await;
            self.events.push(format!("{name} stopped: {stopped:?}"));
        }
        self.start();
        self.events.push(format!("i-{} started", self.started - 1));
    }

    /// Waits until the queues are empty, or the settling time has passed.
    async fn settle(&mut self) {
        let deadline = tokio::time::Instant::now() + self.test.settle_within;
        while self.left() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.events
            .push(format!("settled with {} left", self.left()));
    }

    /// Messages still in the queues, visible or not.
    fn left(&self) -> usize {
        let f = self.fakes.lock().expect("the fakes are not poisoned");
        self.urls.iter().map(|u| f.sqs.depth(u)).sum()
    }

    fn report(self, sent: usize) -> FleetReport {
        let seen = lock(&self.seen);
        let succeeded = seen.values().filter(|(_, ok)| *ok > 0).count();
        let left = self.left();
        FleetReport {
            seed: self.test.seed,
            sent,
            handled: seen.values().map(|(calls, _)| calls).sum(),
            succeeded,
            duplicates: seen.values().filter(|(calls, _)| *calls > 1).count(),
            left,
            lost: sent.saturating_sub(succeeded + left),
            events: self.events.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotent_handler_loses_nothing_through_crashes_and_hand_offs() {
        // Slow enough that a crash catches some messages mid-call.
        let handler = |_m: Message| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<(), HandlerError>(())
        };
        let report = FleetTest::new(handler)
            .messages(150)
            .crashes(2)
            .stops(1)
            .seed(3)
            .run();
        assert_eq!(
            (report.sent, report.left, report.lost),
            (150, 0, 0),
            "{report}"
        );
        assert_eq!(report.succeeded, 150, "{report}");
        assert_eq!(report.events.len(), 2 * 3 + 1, "{report}");
        assert!(
            report.duplicates > 0,
            "the crashes caught calls mid-way: {report}"
        );
        assert!(
            report.handled >= report.sent + report.duplicates,
            "{report}"
        );
    }

    #[test]
    fn a_handler_that_always_fails_leaves_its_messages_and_loses_none() {
        let handler = |_m: Message| async { Err::<(), HandlerError>(HandlerError::new("down")) };
        let report = FleetTest::new(handler)
            .messages(20)
            .crashes(0)
            .stops(0)
            .settle_within(Duration::from_secs(120))
            .run();
        assert_eq!(
            (report.succeeded, report.left, report.lost),
            (0, 20, 0),
            "{report}"
        );
        assert!(report.duplicates > 0, "failures are redelivered: {report}");
    }
}

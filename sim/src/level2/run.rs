//! The harness of one level-2 run: it steps turmoil, and between steps plays the world around
//! the fleet: once a simulated second it draws the faults (crash, stop, restart, join,
//! partitions, queue churn) and sends the producer's messages; at the calm point every fault
//! stops and every instance comes back; past the end it drains the backlog, then checks the
//! settled state and that nothing was lost.
//!
//! A scripted run (a [`Story`](super::Story)) draws no faults: its caller plays the story's
//! beats between steps ([`Harness::step`]), pacing it against the wall clock and watching it.
//! It sends traffic until its end and has no calm (nothing comes back by itself); past its end
//! it drains the backlog and waits for the fleet to settle.

use super::fleet::fleet;
use super::host;
use super::http::Links;
use super::shared::{Lab, Shared, Slot, Transport, Up, lock};
use crate::chaos::{MAX_GROWTH, queue_name, roll};
use crate::check::{Invariant, drain_over, settled};
use crate::error::SimError;
use crate::fake::{Outgoing, Service};
use crate::report::{Finished, Report};
use crate::scenario::{FaultMix, Level, Scenario};
use sqsbalancer_core::rng::Rng;
use sqsbalancer_core::table;
use sqsbalancer_core::{Millis, QueueId};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Simulated time per turmoil step. Within a step each host runs this long, one after the
/// other, so what one host writes another may see up to one step early: a skew far inside
/// every margin of the protocol (seconds).
const TICK: Duration = Duration::from_millis(10);

/// The harness of one run.
pub(super) struct Harness {
    sc: Scenario,
    sim: turmoil::Sim<'static>,
    lab: Lab,
    rng: Rng,
    end: u64,
    calm_at: u64,
    next_second: u64,
    next_queue: usize,
    /// Hosts registered with turmoil, by slot.
    hosts: usize,
    /// A scripted run: no drawn faults, no calm, instances of weight 1.
    scripted: bool,
    /// Each instance's link, for the HTTP server to call (level 3).
    links: Links,
}

/// Runs `sc` on the real runtime, its instances reaching the fake AWS by `transport`, to its
/// end (and its drain), or to its first violation.
pub(crate) fn run(sc: Scenario, transport: Transport) -> Result<Report, SimError> {
    let mut h = Harness::new(sc, false, transport);
    while !h.step()? {}
    Ok(h.report())
}

impl Harness {
    /// The harness of `sc` with its queues created and its first instances started; a scripted
    /// run when `scripted`.
    pub(super) fn new(sc: Scenario, scripted: bool, transport: Transport) -> Harness {
        let mut rng = Rng::new(sc.seed ^ 0x1e7e_1202);
        let lab = Arc::new(Mutex::new(Shared::new(&sc, rng.next_u64(), transport)));
        let mut builder = turmoil::Builder::new();
        builder
            .rng_seed(rng.next_u64())
            .tick_duration(TICK)
            .simulation_duration(Duration::from_secs(30 * 24 * 3600));
        if transport == Transport::Http {
            // The network's latency, one way: the latency fault's, or 1-2 ms.
            let most = sc.faults.max_latency_ms.max(2);
            builder
                .epoch(crate::level3::clock::sim_epoch())
                .min_message_latency(Duration::from_millis(1))
                .max_message_latency(Duration::from_millis(most))
                // Every long poll holds a connection of its own (HTTP/1.1): a fleet starting
                // at once opens more than turmoil's default backlog of 64 before the server
                // next accepts.
                .tcp_capacity(4_096);
            // The SDK draws its retry jitter from this thread's generator.
            crate::level3::connector::seed_thread_rng(rng.next_u64());
        }
        let mut sim = builder.build();
        let links = Links::default();
        if transport == Transport::Http {
            super::http::serve(&mut sim, &lab, &links);
        }
        let end = sc.duration.as_millis() as u64;
        let calm_at = if scripted {
            u64::MAX
        } else {
            end - sc.calm.as_millis() as u64
        };
        let mut h = Harness {
            sim,
            lab,
            rng,
            end,
            calm_at,
            next_second: 1_000,
            next_queue: 0,
            hosts: 0,
            sc,
            scripted,
            links,
        };
        for _ in 0..h.sc.queues {
            h.add_queue();
        }
        for _ in 0..h.sc.instances {
            let i = h.add_slot();
            h.start(i);
        }
        h
    }

    /// Advances the run by one turmoil step (10 ms of simulated time). True once the run is
    /// over: past its end with the backlog drained (and, when scripted, the fleet settled),
    /// past the drain cap, or at its first violation. Not to be called again after that.
    pub(super) fn step(&mut self) -> Result<bool, SimError> {
        let t = self.sim.elapsed().as_millis() as u64;
        {
            let mut s = lock(&self.lab);
            s.set_clock(t);
            super::landing::serve(&mut s, t);
        }
        if t >= self.next_second {
            self.next_second += 1_000;
            if t >= self.calm_at && !lock(&self.lab).calm {
                self.calm_down();
            }
            self.second();
        }
        // A panic that escapes a runtime task takes the whole simulation step down with it;
        // it is a violation of this seed, not a crash of the harness.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.sim.step())) {
            Ok(stepped) => {
                stepped.map_err(|e| SimError::Host {
                    reason: e.to_string(),
                })?;
                self.after_step();
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                lock(&self.lab).violate(
                    Invariant::NoPanic,
                    format!("a task of the runtime panicked: {what}"),
                );
            }
        }
        let mut s = lock(&self.lab);
        let mut over = !s.checker.violations.is_empty();
        if !over && t >= self.end {
            let sqs = &s.sqs;
            let backlog = s.checker.outstanding(|q| sqs.exists(q.as_str()));
            let settled = !self.scripted || settled(&fleet(&s)).is_none();
            if drain_over(backlog == 0 && settled, t - self.end) {
                s.now();
                finish(&mut s);
                over = true;
            }
        }
        if let Some(v) = s.checker.violations.first().filter(|_| over) {
            let d = format!("{}: {}", v.invariant, v.detail);
            s.emit(None, "violation", || d);
        }
        Ok(over)
    }

    /// The state shared with the hosts.
    pub(super) fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Simulated time, ms.
    pub(super) fn elapsed_ms(&self) -> u64 {
        self.sim.elapsed().as_millis() as u64
    }

    /// A new instance joins now (a scripted join); its slot.
    pub(super) fn join(&mut self) -> usize {
        let i = self.add_slot();
        note(&mut lock(&self.lab), "join", Some(i));
        self.start(i);
        i
    }

    /// A new queue is created now (scripted queue churn).
    pub(super) fn create_queue(&mut self) -> Option<QueueId> {
        let q = self.add_queue()?;
        note(&mut lock(&self.lab), "queue-created", None);
        Some(q)
    }

    /// The queue at `url` is deleted now (scripted queue churn).
    pub(super) fn delete_queue(&mut self, url: &str) {
        let mut s = lock(&self.lab);
        let _ = s.sqs.delete_queue("admin", url);
        note(&mut s, "queue-deleted", None);
    }

    // ----- instances -----

    fn add_slot(&mut self) -> usize {
        let weight = if self.scripted {
            1
        } else {
            1 + u32::from(self.rng.below(4) == 0)
        };
        let mut s = lock(&self.lab);
        let i = s.slots.len();
        s.slots.push(Slot {
            name: format!("node-{i}"),
            weight,
            life: 0,
            up: Up::Down,
            handle: None,
            stop: Arc::new(Notify::new()),
            stop_started: None,
            life_faulted: false,
            stop_faulted: false,
            faulted_at: None,
            slow_until: 0,
            up_since: None,
            started_at: None,
            deleted: 0,
        });
        i
    }

    /// Starts a new life in slot `i`: its host's first start, or a restart.
    fn start(&mut self, i: usize) {
        let name = {
            let mut s = lock(&self.lab);
            let now = s.last_now();
            s.stats.starts += 1;
            let sl = &mut s.slots[i];
            sl.life += 1;
            sl.up = Up::Running;
            sl.handle = None;
            sl.stop = Arc::new(Notify::new());
            sl.stop_started = None;
            sl.life_faulted = false;
            sl.stop_faulted = false;
            sl.faulted_at = None;
            sl.slow_until = 0;
            sl.up_since = Some(now);
            sl.started_at = Some(now);
            sl.name.clone()
        };
        if i < self.hosts {
            self.sim.bounce(name.as_str());
        } else {
            let lab = Arc::clone(&self.lab);
            let links = self.links.clone();
            self.sim.host(name.as_str(), move || {
                host::life(Arc::clone(&lab), links.clone(), i)
            });
            self.hosts += 1;
        }
    }

    /// Ends the life in slot `i` as far as the harness is concerned; the caller then drops
    /// its host's tasks.
    fn end_life(s: &mut Shared, i: usize) -> String {
        let now = s.last_now();
        let sl = &mut s.slots[i];
        if let Some(since) = sl.started_at.take() {
            s.stats.instance_ms += now - since;
        }
        let sl = &mut s.slots[i];
        sl.up = Up::Down;
        sl.handle = None;
        sl.up_since = None;
        sl.name.clone()
    }

    /// Drops every task of host `name` at once. Over HTTP its sockets die silently, as a
    /// machine's do when it loses power: the link to the server is cut for the moment of the
    /// drop. The segments they would send draw on turmoil's random generator in the order tokio
    /// drops the tasks, and that order follows task ids that every runtime of the process
    /// shares: a seed would not replay beside other runs.
    fn drop_host(&mut self, name: &str) {
        let http = lock(&self.lab).transport == Transport::Http;
        if http {
            self.sim.partition(name, super::http::SERVER);
        }
        self.sim.crash(name);
        if http {
            self.sim.repair(name, super::http::SERVER);
        }
    }

    /// Slot `i`'s process dies now, without a word.
    pub(super) fn crash(&mut self, i: usize) {
        let name = {
            let mut s = lock(&self.lab);
            note(&mut s, "crash", Some(i));
            let who = (i, s.slots[i].life);
            let now = s.last_now();
            s.stats.crashed.insert(who, now);
            Self::end_life(&mut s, i)
        };
        // Every task of the process goes at once, mid-call or not.
        self.drop_host(&name);
    }

    /// Slot `i`'s process is asked to stop gracefully now.
    pub(super) fn stop(&mut self, i: usize) {
        let mut s = lock(&self.lab);
        note(&mut s, "stop", Some(i));
        let sl = &mut s.slots[i];
        sl.up = Up::Stopping;
        sl.up_since = None;
        sl.stop.notify_one();
    }

    /// Processes whose stop returned exit (their leftover tasks go with them); a process that
    /// ended without being stopped or crashed died of a panic in the runtime.
    fn after_step(&mut self) {
        let n = lock(&self.lab).slots.len();
        for i in 0..n {
            let (name, up) = {
                let s = lock(&self.lab);
                (s.slots[i].name.clone(), s.slots[i].up)
            };
            let alive = self.sim.is_host_running(name.as_str());
            match up {
                Up::Exited => {
                    {
                        let mut s = lock(&self.lab);
                        s.emit(Some(i), "exit", String::new);
                        Self::end_life(&mut s, i);
                    }
                    self.drop_host(&name);
                    if lock(&self.lab).calm {
                        // The calm brings every instance back, this one too.
                        self.start(i);
                    }
                }
                Up::Running | Up::Stopping if !alive => {
                    let mut s = lock(&self.lab);
                    Self::end_life(&mut s, i);
                    s.violate(
                        Invariant::NoPanic,
                        format!("{name} died by itself: a task of the runtime panicked"),
                    );
                }
                _ => {}
            }
        }
    }

    // ----- the world around the fleet -----

    fn add_queue(&mut self) -> Option<QueueId> {
        let name = queue_name(self.next_queue);
        self.next_queue += 1;
        let url = lock(&self.lab).sqs.create_queue("admin", &name).ok()?;
        QueueId::new(&url).ok()
    }

    /// Whether a fault of `ppm` per instance-second happens now, drawn from the run's generator.
    fn roll(&mut self, ppm: u64) -> bool {
        roll(&mut self.rng, ppm)
    }

    /// One simulated second of faults and traffic (of traffic alone, until the end, when
    /// scripted).
    fn second(&mut self) {
        if self.scripted {
            if self.elapsed_ms() < self.end {
                self.produce();
            }
            return;
        }
        let calm = lock(&self.lab).calm;
        let f = self.sc.faults.clone();
        let n = lock(&self.lab).slots.len();
        for i in 0..n {
            if calm {
                if lock(&self.lab).slots[i].up == Up::Down {
                    self.start(i);
                }
                continue;
            }
            self.membership_fault(i, &f);
            self.partitions(i, &f);
        }
        if calm {
            return;
        }
        self.fleet_faults(&f, n);
        self.produce();
    }

    /// Slot `i` may crash or be stopped while up, or restart while down.
    fn membership_fault(&mut self, i: usize, f: &FaultMix) {
        let up = lock(&self.lab).slots[i].up;
        match up {
            Up::Running if self.roll(f.crash) => self.crash(i),
            Up::Running if self.roll(f.stop) => self.stop(i),
            Up::Down if self.roll(f.restart) => {
                note(&mut lock(&self.lab), "restart", Some(i));
                self.start(i);
            }
            _ => {}
        }
    }

    /// Slot `i` may be cut off from DynamoDB or SQS for 1-20 s, its calls failing or hanging.
    fn partitions(&mut self, i: usize, f: &FaultMix) {
        for (rate, service, kind) in [
            (f.partition_dynamo, Service::Dynamo, "partition-dynamo"),
            (f.partition_sqs, Service::Sqs, "partition-sqs"),
        ] {
            if !self.roll(rate) {
                continue;
            }
            let hang = self.rng.below(2) == 0;
            let secs = 1 + self.rng.below(20);
            let mut s = lock(&self.lab);
            let now = s.last_now();
            let key = (s.slots[i].name.clone(), service);
            s.hooks
                .partition(&key.0, service, Millis(now + secs * 1_000));
            if hang {
                s.hang.insert(key);
            } else {
                s.hang.remove(&key);
            }
            s.faulted(i);
            let how = if hang { "hang" } else { "fail" };
            s.stats.faults.push((now, kind, Some(i)));
            s.emit(Some(i), "fault", || format!("{kind} {secs} s, calls {how}"));
        }
    }

    /// The faults of the fleet as a whole: a TTL deletion, a join (while the fleet of `n`
    /// slots may grow), a queue created or deleted.
    fn fleet_faults(&mut self, f: &FaultMix, n: usize) {
        if self.roll(f.ttl) {
            let rng = &mut self.rng;
            let mut s = lock(&self.lab);
            if let Some(k) = s.dynamo.expire_ended(
                crate::TABLE,
                |i| table::decode_item(i),
                |n| rng.below(n as u64) as usize,
            ) {
                note(&mut s, "ttl", None);
                s.emit(None, "expired", || k.sk.clone());
            }
        }
        if self.roll(f.join) && n < self.sc.instances * MAX_GROWTH {
            self.join();
        }
        if self.roll(f.queue_churn) {
            let urls: Vec<String> = lock(&self.lab).sqs.urls().cloned().collect();
            if self.rng.below(2) == 0 || urls.is_empty() {
                self.create_queue();
            } else {
                let k = self.rng.below(urls.len() as u64) as usize;
                self.delete_queue(&urls[k]);
            }
        }
    }

    /// Sends this second's messages to random queues.
    fn produce(&mut self) {
        let urls: Vec<String> = lock(&self.lab).sqs.urls().cloned().collect();
        if urls.is_empty() {
            return;
        }
        let picks = (self.sc.traffic).pick(&mut self.rng, &urls, self.sc.messages_per_second);
        for url in picks.into_iter().map(|i| &urls[i]) {
            let mut s = lock(&self.lab);
            s.stats.sent += 1;
            let msg = Outgoing {
                body: format!("body-{}", s.stats.sent),
                ..Outgoing::default()
            };
            let now = Millis(s.last_now());
            if let Ok(id) = s.sqs.send(now, "producer", url, msg) {
                let q = QueueId::new(url).expect("fake URLs are valid");
                s.checker.sent(&id, &q);
                s.emit(None, "sent", || format!("{id} to {q}"));
            }
        }
    }

    /// Faults stop, traffic stops, every down instance comes back.
    fn calm_down(&mut self) {
        let mut s = lock(&self.lab);
        s.calm = true;
        s.stats.calm_at = s.last_now();
        s.stats.owners_at_calm = s
            .owners
            .iter()
            .map(|(q, o)| (q.clone(), o.0.clone()))
            .collect();
        s.hooks.calm();
        s.handler_faults = Default::default();
        s.page_items = 0;
        note(&mut s, "calm", None);
    }

    // ----- the report -----

    /// What the run measured (with its violation, if it broke an invariant).
    pub(super) fn report(&self) -> Report {
        let s = lock(&self.lab);
        let level = match s.transport {
            Transport::Link => Level::Runtime,
            Transport::Http => Level::Sdk,
        };
        Report::of(&Finished {
            sc: &self.sc,
            level,
            sim_ms: s.last_now(),
            events: s.events,
            trace: &s.trace,
            trace_hash: Some(s.trace.hash()),
            stats: &s.stats,
            checker: &s.checker,
            dynamo: &s.dynamo,
            sqs: &s.sqs,
            fleet: fleet(&s),
        })
    }
}

/// Records a fault (or the calm) at the current time.
fn note(s: &mut Shared, kind: &'static str, slot: Option<usize>) {
    let now = s.last_now();
    s.stats.faults.push((now, kind, slot));
    s.emit(slot, "fault", || kind.to_owned());
}

/// The end of the run: instance time, then the settled state and no loss.
fn finish(s: &mut Shared) {
    let now = s.last_now();
    for sl in &mut s.slots {
        if let Some(since) = sl.started_at.take() {
            s.stats.instance_ms += now - since;
        }
    }
    if let Some(problem) = settled(&fleet(s)) {
        s.violate(Invariant::Settled, problem);
    }
    if s.checker.violations.is_empty() {
        let sqs = &s.sqs;
        s.checker.check_no_loss(|q| sqs.exists(q.as_str()));
    }
}

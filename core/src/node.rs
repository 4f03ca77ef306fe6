//! The coordination state machine of one instance.

use crate::assignment::{Assignment, Member, assign};
use crate::config::Config;
use crate::discovery::Filter;
use crate::effect::{
    Effect, Input, InstanceRecord, OpId, Outcome, QueueRecord, Read, Reply, Status, Unreadable,
    Write,
};
use crate::error::{Error, Result};
use crate::ids::{InstanceId, Owner, QueueId};
use crate::lease::{AfterStop, Fence, Held, QueueView, names};
use crate::membership::{Liveness, Membership, Verdicts};
use crate::rng::Rng;
use crate::shutdown::{self, Phase, Shutdown, StopOutcome};
use crate::time::Millis;
use crate::timer::Timer;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// How long after an unknown outcome a write is first sent again; the wait doubles with each
/// further unknown, up to one heartbeat interval.
const FIRST_RESEND: Duration = Duration::from_millis(500);

/// A queue write whose outcome is unknown: it may still apply, so it is sent again, the same
/// write, until an answer settles it. Any copy still on its way then fails its condition (the
/// epoch moved, or the record exists), so no late copy can undo what the settled answer shows.
#[derive(Clone, Debug)]
struct Unsettled {
    /// The write, exactly as first sent.
    write: Write,
    /// The record it leaves when applied.
    result: QueueRecord,
    /// When to send it again.
    resend_at: Millis,
    /// Unknown outcomes so far (the wait before the next copy doubles with each).
    unknowns: u32,
}

impl Unsettled {
    fn resend_after(unknowns: u32, interval: Duration) -> Duration {
        FIRST_RESEND
            .saturating_mul(1 << unknowns.saturating_sub(1).min(16))
            .min(interval)
    }
}

/// Where the final deregistration of a graceful stop stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deregistration {
    /// Not sent.
    Idle,
    /// Sent; waiting for its answer.
    InFlight,
    /// Its outcome was unknown: send it again at this time.
    ResendAt(Millis),
}

/// What an issued effect was, kept until its result comes back.
#[derive(Clone, Debug)]
enum Pending {
    Register {
        sent: Millis,
    },
    Heartbeat {
        sent: Millis,
        life: u64,
    },
    Reap {
        owner: Owner,
    },
    Notify {
        to: Owner,
        unknowns: u32,
    },
    Queue {
        write: Write,
        result: QueueRecord,
        unknowns: u32,
    },
    Deregister,
    Read {
        table: bool,
    },
    List,
}

/// One instance's coordination core: membership, assignment, leases, discovery and shutdown.
///
/// # Calling contract
/// - Feed every event with [`Node::handle`]`(now, input)`. `now` is the caller's monotonic clock
///   in milliseconds; it must not go backwards (an earlier `now` is treated as the latest seen).
/// - After each `handle` (and after [`Node::new`]), drain [`Node::poll_effect`] until it returns
///   `None`, and carry out the effects in the order given.
/// - Call `handle(now, Input::Tick)` no later than [`Node::poll_timeout`]; early or extra ticks
///   are harmless.
/// - Report each effect's result exactly once as [`Input::Completed`] (or
///   [`Input::ReceivingStopped`] for [`Effect::StopReceiving`]), within a deadline: a call that
///   has not answered by then is `Unknown`. A write reported `Unknown` may still apply later;
///   the node sends it again until an answer settles it.
/// - Never have a receive call in flight on a queue outside `StartReceiving..StopReceiving`, nor
///   at or after the latest [`Effect::Fence`].
///
/// The node never reads a clock or OS entropy; the same inputs give the same effects.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    filter: Filter,
    me: InstanceId,
    life: Option<u64>,
    life_seq: u64,
    phase: Phase,
    now: Millis,
    next_op: u64,
    ops: BTreeMap<OpId, Pending>,
    effects: VecDeque<Effect>,
    membership: Membership,
    view: QueueView,
    held: BTreeMap<QueueId, Held>,
    /// Queue writes in flight, by queue: nothing else is decided for the queue meanwhile.
    writing: BTreeMap<QueueId, OpId>,
    /// Queue writes whose outcome is unknown, waiting to be sent again; the queue waits too.
    unsettled: BTreeMap<QueueId, Unsettled>,
    /// Notices whose outcome was unknown, to be sent again at a time (with their count of
    /// unknown outcomes so far).
    notices: BTreeMap<Owner, (Millis, u32)>,
    /// Queues whose record the last table read could not decode: never created again, never
    /// received (no record this node can read names it).
    unreadable_queues: BTreeSet<QueueId>,
    reaping: BTreeSet<Owner>,
    read_in_flight: bool,
    want_table: bool,
    /// The slow reconciliation is due: the next heartbeat reads the whole table.
    reconcile_due: bool,
    /// A table read failed: ask again at the next heartbeat tick.
    retry_table: bool,
    /// Each instance's (incarnation, inbox counter) when last read: a change means a queue
    /// changed hands, so this node's view of the queue records is stale.
    inboxes: BTreeMap<InstanceId, (u64, u64)>,
    /// The life whose heartbeat is in flight, if any: a new life does not wait for an old one's.
    heartbeat_in_flight: Option<u64>,
    registering: bool,
    /// The final deregistration of a graceful stop.
    deregistration: Deregistration,
    listing: bool,
    /// A queue listing that came back before the first table read: compared with an empty
    /// view it would try to create every queue the fleet already recorded.
    listed: Option<(OpId, Vec<QueueId>)>,
    counter: u64,
    fence: Fence,
    members: Vec<Member>,
    members_changed_at: Millis,
    target: Option<Assignment>,
    /// What `target` was computed from besides the view: own life, members' lives.
    target_key: (Option<Owner>, Vec<Option<Owner>>),
    /// The view changed since `target` was computed (if only toward it).
    target_behind: bool,
    /// A table read completed: recompute `target` if it is behind.
    retarget: bool,
    /// The view went against `target`: recompute it (at once, or after this node's writes).
    target_stale: bool,
    /// A heartbeat tick passed since the target was last looked at.
    tick_passed: bool,
    /// The liveness verdicts `evaluate` last saw; a read that changes none of them (the
    /// steady-state heartbeat read) leaves the queues as they are.
    verdicts: Verdicts,
    /// Every queue must be decided again (membership, liveness, phase or target changed).
    dirty_all: bool,
    /// These queues must be decided again.
    dirty_queues: BTreeSet<QueueId>,
    /// Queues whose write was rejected, with the sequence number it was rejected at: this
    /// node's record of them is stale (a copy of its own write may have applied, or a peer's),
    /// so nothing is decided for them until a table read sent after the rejection shows what
    /// beat them.
    stale: BTreeMap<QueueId, u64>,
    move_due: Option<Millis>,
    /// Queues targeted here but held by a live peer that has yet to hand them over.
    incoming_queues: BTreeSet<QueueId>,
    /// Queues this node will hand over once the rebalance delay has passed.
    deferred_queues: BTreeSet<QueueId>,
    incoming: bool,
    tick: Timer,
    discovery: Timer,
    reconcile: Timer,
    shutdown: Option<Shutdown>,
    /// The node's randomness, seeded from the configuration: timer spread and the first
    /// incarnation of a record created afresh.
    rng: Rng,
}

impl Node {
    /// Validates `cfg` and starts a node at `now`; its first effect registers the instance.
    ///
    /// `cfg.instance_id` must be set (the runtime fills it in when the user left it empty).
    pub fn new(cfg: Config, now: Millis) -> Result<Node> {
        cfg.validate()?;
        let Some(id) = cfg.instance_id.as_deref() else {
            return Err(Error::InvalidConfig {
                field: "InstanceID",
                rule: "must be set before the node starts".into(),
            });
        };
        let me = InstanceId::new(id)?;
        let filter = Filter::new(cfg.queue_filter_pattern.as_deref())?;
        // Spread the fleet's reconciliations so they do not read the table in lockstep.
        let mut rng = Rng::new(cfg.seed ^ crate::hash::hash64(&[me.as_str().as_bytes()]));
        let spread = crate::time::duration_ms(cfg.reconcile_interval).max(1);
        let first_reconcile =
            now.saturating_add(std::time::Duration::from_millis(rng.below(spread)));
        let mut node = Node {
            tick: Timer::new(
                now.saturating_add(cfg.heartbeat_interval),
                cfg.heartbeat_interval,
            ),
            discovery: Timer::new(now, cfg.queue_discovery_interval),
            reconcile: Timer::new(first_reconcile, cfg.reconcile_interval),
            cfg,
            filter,
            me,
            life: None,
            life_seq: 0,
            phase: Phase::Starting,
            now,
            next_op: 1,
            ops: BTreeMap::new(),
            effects: VecDeque::new(),
            membership: Membership::default(),
            view: QueueView::default(),
            held: BTreeMap::new(),
            writing: BTreeMap::new(),
            unsettled: BTreeMap::new(),
            unreadable_queues: BTreeSet::new(),
            notices: BTreeMap::new(),
            reaping: BTreeSet::new(),
            read_in_flight: false,
            want_table: true,
            reconcile_due: false,
            retry_table: false,
            inboxes: BTreeMap::new(),
            heartbeat_in_flight: None,
            registering: false,
            deregistration: Deregistration::Idle,
            listing: false,
            listed: None,
            counter: 0,
            fence: Fence::default(),
            members: Vec::new(),
            members_changed_at: now,
            target: None,
            target_key: (None, Vec::new()),
            target_behind: false,
            retarget: false,
            target_stale: false,
            tick_passed: false,
            verdicts: Verdicts::default(),
            dirty_all: true,
            dirty_queues: BTreeSet::new(),
            stale: BTreeMap::new(),
            move_due: None,
            incoming_queues: BTreeSet::new(),
            deferred_queues: BTreeSet::new(),
            incoming: false,
            shutdown: None,
            rng,
        };
        node.register();
        Ok(node)
    }

    /// Feeds one event at `now`. See the calling contract on [`Node`].
    pub fn handle(&mut self, now: Millis, input: Input) {
        self.now = self.now.max(now);
        if self.phase.is_stopped() {
            return;
        }
        match input {
            Input::Tick => self.on_tick(),
            Input::Completed { id, outcome } => self.on_completed(id, outcome),
            Input::ReceivingStopped { queue } => self.on_stopped(queue),
            Input::QueueGone { queue } => self.on_gone(queue),
            Input::Shutdown => self.begin_shutdown(),
            Input::DrainFinished => {
                if let Some(s) = &mut self.shutdown {
                    s.drained = true;
                }
            }
        }
        self.evaluate();
        self.advance_shutdown();
        if self.want_table && !self.read_in_flight && self.life.is_some() {
            self.read(Read::Table);
        }
    }

    /// The next effect to carry out, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When the node next wants an [`Input::Tick`], or `None` once stopped.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.phase.is_stopped() {
            return None;
        }
        let mut at = self
            .tick
            .at()
            .min(self.reconcile.at())
            .min(self.discovery.at());
        if let Some(due) = self.move_due {
            at = at.min(due);
        }
        if let Some(u) = self.unsettled.values().map(|u| u.resend_at).min() {
            at = at.min(u);
        }
        if let Some(n) = self.notices.values().map(|n| n.0).min() {
            at = at.min(n);
        }
        if let Deregistration::ResendAt(t) = self.deregistration {
            at = at.min(t);
        }
        if let Some(s) = &self.shutdown {
            at = at.min(s.deadline);
        }
        Some(at.max(self.now))
    }

    /// This node's instance id.
    pub fn instance(&self) -> &InstanceId {
        &self.me
    }

    /// This node's current life, once registered.
    pub fn life(&self) -> Option<Owner> {
        self.life.map(|incarnation| Owner {
            id: self.me.clone(),
            incarnation,
        })
    }

    /// The lifecycle phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The queues whose pollers run, with the epoch they are owned at. Sorted.
    pub fn receiving(&self) -> Vec<(QueueId, u64)> {
        self.held
            .iter()
            .filter_map(|(q, h)| match h {
                Held::Receiving { epoch } => Some((q.clone(), *epoch)),
                Held::Stopping { .. } => None,
            })
            .collect()
    }

    /// The self-fence deadline of this life, if it has one.
    pub fn fence_until(&self) -> Option<Millis> {
        self.fence.until(
            self.cfg.heartbeat_timeout,
            self.cfg.effective_fence_margin(),
        )
    }

    /// The number of queue records this node knows.
    pub fn known_queues(&self) -> usize {
        self.view.len()
    }

    // ----- issuing effects -----

    fn issue(&mut self, pending: Pending) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        self.ops.insert(id, pending);
        id
    }

    fn write(&mut self, pending: Pending, write: Write) {
        let id = self.issue(pending);
        self.effects.push_back(Effect::Write { id, write });
    }

    fn read(&mut self, read: Read) {
        let id = self.issue(Pending::Read {
            table: read == Read::Table,
        });
        self.read_in_flight = true;
        if read == Read::Table {
            self.want_table = false;
            self.reconcile_due = false;
        }
        self.effects.push_back(Effect::Read { id, read });
    }

    fn register(&mut self) {
        self.registering = true;
        let write = Write::Register {
            id: self.me.clone(),
            capacity: self.cfg.capacity,
            first: 1 + self.rng.below(u64::from(u32::MAX)),
        };
        self.write(Pending::Register { sent: self.now }, write);
    }

    fn heartbeat(&mut self) {
        let Some(owner) = self.life() else { return };
        self.heartbeat_in_flight = Some(owner.incarnation);
        self.counter += 1;
        let status = if self.phase.is_shutting_down() {
            Status::Draining
        } else {
            Status::Active
        };
        let write = Write::Heartbeat {
            owner: owner.clone(),
            counter: self.counter,
            status,
        };
        let pending = Pending::Heartbeat {
            sent: self.now,
            life: owner.incarnation,
        };
        self.write(pending, write);
    }

    fn queue_write(&mut self, write: Write, result: QueueRecord) {
        self.send_queue_write(write, result, 0);
    }

    /// Sends a queue write that has had `unknowns` unknown outcomes before.
    fn send_queue_write(&mut self, write: Write, result: QueueRecord, unknowns: u32) {
        let queue = result.queue.clone();
        let id = OpId(self.next_op);
        self.writing.insert(queue, id);
        self.write(
            Pending::Queue {
                write: write.clone(),
                result,
                unknowns,
            },
            write,
        );
    }

    /// Announces a change of hands to `to` (whose inbox counter moves), a notice that had
    /// `unknowns` unknown outcomes before.
    fn notify(&mut self, to: Owner, unknowns: u32) {
        let pending = Pending::Notify {
            to: to.clone(),
            unknowns,
        };
        self.write(pending, Write::Notify { to });
    }

    /// Whether a write to `queue` is in flight, waits to be sent again, or was rejected since
    /// the last table read: nothing else is decided for the queue until it is settled.
    fn busy(&self, queue: &QueueId) -> bool {
        self.writing.contains_key(queue)
            || self.unsettled.contains_key(queue)
            || self.stale.contains_key(queue)
    }

    /// Sends again every unsettled queue write and lost notice that is due.
    fn resend_due(&mut self) {
        let now = self.now;
        let notices: Vec<Owner> = self
            .notices
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(o, _)| o.clone())
            .collect();
        for to in notices {
            if let Some((_, unknowns)) = self.notices.remove(&to) {
                self.notify(to, unknowns);
            }
        }
        let due: Vec<QueueId> = self
            .unsettled
            .iter()
            .filter(|(_, u)| u.resend_at <= now)
            .map(|(q, _)| q.clone())
            .collect();
        for q in due {
            if let Some(u) = self.unsettled.remove(&q) {
                self.send_queue_write(u.write, u.result, u.unknowns);
            }
        }
    }

    fn start(&mut self, queue: QueueId, epoch: u64) {
        self.held.insert(queue.clone(), Held::Receiving { epoch });
        self.effects
            .push_back(Effect::StartReceiving { queue, epoch });
    }

    fn stop(&mut self, queue: &QueueId, then: AfterStop) {
        match self.held.get_mut(queue) {
            Some(h @ Held::Receiving { .. }) => {
                let Held::Receiving { epoch } = *h else {
                    return;
                };
                *h = Held::Stopping { epoch, then };
                self.effects.push_back(Effect::StopReceiving {
                    queue: queue.clone(),
                });
            }
            Some(Held::Stopping { then: t, .. }) => {
                if then == AfterStop::Forget || *t == AfterStop::Forget {
                    *t = AfterStop::Forget;
                } else if then == AfterStop::Retire {
                    *t = AfterStop::Retire;
                }
            }
            None => {}
        }
    }

    fn set_phase(&mut self, phase: Phase) {
        if self.phase != phase {
            self.phase = phase;
            self.dirty_all = true;
            self.effects.push_back(Effect::Phase(phase));
        }
    }

    // ----- inputs -----

    fn on_tick(&mut self) {
        let now = self.now;
        // Reconciliation is never urgent: it turns the next heartbeat's instance read into a
        // table read instead of adding a request.
        if self.reconcile.fire(now) {
            self.reconcile_due = true;
        }
        if (self.incoming && self.tick.at() <= now) || (self.retry_table && self.tick.at() <= now) {
            self.retry_table = false;
            self.want_table = true;
        }
        if self.tick.fire(now) {
            if self.target_stale {
                self.tick_passed = true;
                self.dirty_all = true;
            }
            if self.life.is_none() {
                if !self.registering && !self.phase.is_shutting_down() {
                    self.register();
                }
            } else {
                if self.heartbeat_in_flight != self.life {
                    self.heartbeat();
                }
                if !self.read_in_flight {
                    let kind = if self.want_table || self.reconcile_due {
                        Read::Table
                    } else {
                        Read::Members
                    };
                    self.read(kind);
                }
            }
        }
        self.discover();
        self.resend_due();
        if matches!(self.deregistration, Deregistration::ResendAt(t) if t <= now) {
            self.deregistration = Deregistration::Idle;
        }
        if self.move_due.is_some_and(|d| now >= d) {
            self.move_due = None;
            self.dirty_all = true;
        }
        if let Some(s) = self.shutdown
            && now >= s.deadline
        {
            self.finish(StopOutcome::TimedOut);
        }
    }

    fn on_completed(&mut self, id: OpId, outcome: Outcome) {
        let Some(pending) = self.ops.remove(&id) else {
            return;
        };
        match pending {
            Pending::Register { sent } => self.on_registered(sent, outcome),
            Pending::Heartbeat { sent, life } => {
                if self.heartbeat_in_flight == Some(life) {
                    self.heartbeat_in_flight = None;
                }
                if self.life != Some(life) {
                    return;
                }
                match outcome {
                    Outcome::Applied(_) => self.acked(sent),
                    Outcome::Rejected => self.lose_life(),
                    Outcome::Unknown => {}
                }
            }
            Pending::Reap { owner } => {
                self.reaping.remove(&owner);
                if matches!(outcome, Outcome::Applied(_)) {
                    self.membership.mark_dead(owner);
                    self.dirty_all = true;
                }
            }
            // A lost notice leaves peers on a stale view until their next reconciliation:
            // send it again (a notice twice only costs an extra read).
            Pending::Notify { to, unknowns } => {
                if outcome == Outcome::Unknown {
                    let unknowns = unknowns + 1;
                    let wait = Unsettled::resend_after(unknowns, self.cfg.heartbeat_interval);
                    self.notices
                        .insert(to, (self.now.saturating_add(wait), unknowns));
                }
            }
            Pending::Queue {
                write,
                result,
                unknowns,
            } => self.on_queue_written(id, write, result, unknowns, outcome),
            Pending::Deregister => self.on_deregistered(outcome),
            Pending::Read { table } => {
                self.read_in_flight = false;
                match outcome {
                    Outcome::Applied(Reply::Members {
                        instances,
                        unreadable,
                    }) => {
                        if self.observe(id, &instances, &unreadable.instances) {
                            // Queues changed hands: read the records now, not at reconciliation.
                            self.read(Read::Table);
                        }
                    }
                    Outcome::Applied(Reply::Table {
                        instances,
                        queues,
                        unreadable,
                    }) => self.on_table(id, &instances, queues, unreadable),
                    // A table read that failed is still wanted: retry it on the next tick
                    // (not at once, which would hammer an unreachable table).
                    _ => self.retry_table |= table,
                }
            }
            Pending::List => {
                self.listing = false;
                if let Outcome::Applied(Reply::Queues(listed)) = outcome {
                    if self.view.snapshot() > 0 {
                        self.on_listed(listed);
                    } else {
                        self.listed = Some((id, listed));
                        self.want_table = true;
                    }
                }
            }
        }
    }

    /// The final deregistration answered: applied is a clean stop; rejected means a peer
    /// reaped this life (or a later one registered) first; unknown is sent again.
    fn on_deregistered(&mut self, outcome: Outcome) {
        self.deregistration = Deregistration::Idle;
        let clean = match outcome {
            Outcome::Applied(_) => true,
            Outcome::Rejected => false,
            Outcome::Unknown => {
                let wait = Unsettled::resend_after(1, self.cfg.heartbeat_interval);
                self.deregistration = Deregistration::ResendAt(self.now.saturating_add(wait));
                return;
            }
        };
        self.life = None;
        self.fence.reset();
        self.set_phase(Phase::Deregistered);
        self.finish(if clean {
            StopOutcome::Clean
        } else {
            StopOutcome::LifeLost
        });
    }

    /// Folds in a whole table read, sent as `id`.
    fn on_table(
        &mut self,
        id: OpId,
        instances: &[InstanceRecord],
        queues: Vec<QueueRecord>,
        unreadable: Unreadable,
    ) {
        let _ = self.observe(id, instances, &unreadable.instances);
        self.unreadable_queues = unreadable.queues.into_iter().collect();
        // Queues whose write was rejected before this read was sent are decided again, with
        // those the read shows changed; a reconciliation read of a quiet table costs no
        // decision at all.
        let fresh: Vec<QueueId> = self
            .stale
            .iter()
            .filter(|(_, seq)| **seq <= id.0)
            .map(|(q, _)| q.clone())
            .collect();
        for q in fresh {
            self.stale.remove(&q);
            self.dirty_queues.insert(q);
        }
        self.view.merge_snapshot(id.0, queues);
        self.retarget = true;
        let named: BTreeSet<&Owner> = self
            .view
            .records()
            .filter_map(|r| r.owner.as_ref())
            .collect();
        for o in named {
            self.membership.notice(self.now, o);
        }
        if let Some((list_id, _)) = &self.listed
            && *list_id < id
            && let Some((_, listed)) = self.listed.take()
        {
            self.on_listed(listed);
        }
    }

    fn on_registered(&mut self, sent: Millis, outcome: Outcome) {
        self.registering = false;
        let Outcome::Applied(Reply::Registered { incarnation }) = outcome else {
            return;
        };
        if self.life.is_some_and(|l| l >= incarnation) {
            return;
        }
        self.life = Some(incarnation);
        self.life_seq = self.next_op;
        self.counter = 0;
        if self.phase.is_shutting_down() {
            // Registered after all: deregister it in Releasing rather than leave it to expire.
            return;
        }
        self.acked(sent);
        self.want_table = true;
        self.discovery.due_now(self.now);
        self.set_phase(Phase::Running);
        self.discover();
    }

    /// Lists the queues when discovery is due (skipped while a listing is still running).
    fn discover(&mut self) {
        if self.discovery.fire(self.now) && self.phase == Phase::Running && !self.listing {
            self.listing = true;
            let id = self.issue(Pending::List);
            let prefix = self.filter.prefix().to_owned();
            self.effects.push_back(Effect::ListQueues { id, prefix });
        }
    }

    fn acked(&mut self, sent: Millis) {
        let (ht, margin) = (
            self.cfg.heartbeat_timeout,
            self.cfg.effective_fence_margin(),
        );
        if let Some(until) = self.fence.acked(sent, ht, margin) {
            self.effects.push_back(Effect::Fence { until });
        }
    }

    /// This life is over (a heartbeat was rejected, or a read showed it reaped): stop everything,
    /// close the fence, and register again unless shutting down.
    fn lose_life(&mut self) {
        self.life = None;
        self.fence.reset();
        // Writes of that life need not be settled: a late copy can only name a life that is
        // over, whose queues peers claim as a dead life's.
        self.unsettled.clear();
        self.effects.push_back(Effect::Fence { until: self.now });
        if let Some(s) = &mut self.shutdown {
            s.life_lost = true;
        }
        let queues: Vec<QueueId> = self.held.keys().cloned().collect();
        for q in &queues {
            self.stop(q, AfterStop::Forget);
        }
        self.dirty_all = true;
        if !self.phase.is_shutting_down() {
            self.set_phase(Phase::Starting);
            self.register();
        }
    }

    /// Folds in the instance records of the read sent as `sent`. A read sent after this life
    /// began that shows it ended (reaped, or a later registration of this id) ends it here too.
    /// Takes in a read of the instance records; true when an inbox counter changed since the
    /// last read, i.e. some queue was handed over or claimed.
    #[must_use]
    fn observe(
        &mut self,
        sent: OpId,
        instances: &[InstanceRecord],
        unreadable: &[InstanceId],
    ) -> bool {
        self.membership.observe(self.now, instances, unreadable);
        let verdicts = self.membership.verdicts(self.cfg.heartbeat_timeout);
        if verdicts != self.verdicts {
            self.verdicts = verdicts;
            self.dirty_all = true;
        }
        let mut notified = false;
        for r in instances {
            let now = (r.incarnation, r.inbox);
            let old = self.inboxes.insert(r.id.clone(), now);
            notified |= old.is_some_and(|o| o != now) || (old.is_none() && r.inbox > 0);
        }
        if let Some(life) = self.life
            && sent.0 >= self.life_seq
        {
            let mine = instances.iter().find(|r| r.id == self.me);
            let over = mine.is_some_and(|r| {
                r.incarnation > life || (r.incarnation == life && r.status == Status::Dead)
            });
            if over {
                self.lose_life();
                return false;
            }
        }
        if self.life.is_some() {
            let expired = self
                .membership
                .expired(self.cfg.heartbeat_timeout, &self.me);
            for (owner, counter) in expired {
                if self.reaping.insert(owner.clone()) {
                    self.write(
                        Pending::Reap {
                            owner: owner.clone(),
                        },
                        Write::Reap { owner, counter },
                    );
                }
            }
        }
        notified
    }

    fn on_listed(&mut self, listed: Vec<QueueId>) {
        if self.phase != Phase::Running {
            return;
        }
        let mut listed: Vec<QueueId> = listed
            .into_iter()
            .filter(|q| self.filter.matches(q))
            .collect();
        listed.sort_unstable();
        listed.dedup();
        // Walk the sorted listing and the sorted view side by side: listed but unknown (or
        // retired) is to be created (or revived); known, live and not listed has vanished.
        let mut create: Vec<(QueueId, Option<u64>)> = Vec::new();
        let mut vanished: Vec<QueueRecord> = Vec::new();
        let mut view = self.view.records().peekable();
        // Only queues this node's filter takes can have vanished from its listing: a record
        // outside it may belong to peers with another filter (a configuration rollout).
        let ours = |r: &QueueRecord| !r.retired && self.filter.matches(&r.queue);
        for q in &listed {
            while let Some(r) = view.next_if(|r| r.queue < *q) {
                if ours(r) {
                    vanished.push(r.clone());
                }
            }
            match view.next_if(|r| r.queue == *q) {
                None => create.push((q.clone(), None)),
                Some(r) if r.retired => create.push((q.clone(), Some(r.epoch))),
                Some(_) => {}
            }
        }
        vanished.extend(view.filter(|r| ours(r)).cloned());
        for (q, revive_epoch) in create {
            // An unreadable record exists: creating it again would only be rejected.
            if self.busy(&q) || self.unreadable_queues.contains(&q) {
                continue;
            }
            let result = QueueRecord {
                queue: q.clone(),
                owner: None,
                epoch: revive_epoch.map_or(1, |e| e + 1),
                retired: false,
            };
            self.queue_write(
                Write::CreateQueue {
                    queue: q,
                    revive_epoch,
                },
                result,
            );
        }
        for r in vanished {
            if self.busy(&r.queue) {
                continue;
            }
            let free = match &r.owner {
                None => true,
                Some(o) => self.liveness(o) == Liveness::Dead,
            };
            if free {
                self.retire(&r);
            }
        }
    }

    fn retire(&mut self, r: &QueueRecord) {
        let result = QueueRecord {
            queue: r.queue.clone(),
            owner: None,
            epoch: r.epoch + 1,
            retired: true,
        };
        let write = Write::Retire {
            queue: r.queue.clone(),
            expect_epoch: r.epoch,
        };
        self.queue_write(write, result);
    }

    fn on_queue_written(
        &mut self,
        id: OpId,
        write: Write,
        result: QueueRecord,
        unknowns: u32,
        outcome: Outcome,
    ) {
        let queue = result.queue.clone();
        if self.writing.get(&queue) == Some(&id) {
            self.writing.remove(&queue);
        }
        match outcome {
            Outcome::Applied(_) => {
                // Only an applied write changes what this node knows; after a rejected or
                // unknown one it waits for the table read that want_table asks for.
                self.dirty_queues.insert(queue.clone());
                self.announce(&write);
                let starts = matches!(write, Write::Claim { .. })
                    && self.phase == Phase::Running
                    && names(&result, self.life().as_ref())
                    && !self.held.contains_key(&queue);
                let epoch = result.epoch;
                self.view.apply_local(self.next_op, result);
                if starts {
                    self.start(queue, epoch);
                }
            }
            // The record changed under this write: maybe by a peer, maybe by an earlier copy
            // of it (an SDK retry, a late landing), so it is announced all the same.
            Outcome::Rejected => {
                self.announce(&write);
                self.stale.insert(queue, self.next_op);
                self.want_table = true;
            }
            // It may still apply: send it again until it is settled (a life that is over has
            // nothing to settle).
            Outcome::Unknown if self.life.is_some() => {
                let unknowns = unknowns + 1;
                let wait = Unsettled::resend_after(unknowns, self.cfg.heartbeat_interval);
                let u = Unsettled {
                    write,
                    result,
                    resend_at: self.now.saturating_add(wait),
                    unknowns,
                };
                self.unsettled.insert(queue, u);
            }
            Outcome::Unknown => {}
        }
    }

    /// Announces the change of hands `write` made (or may have made), so the new owner and
    /// every peer read the queue records at their next instance read instead of their next
    /// reconciliation.
    fn announce(&mut self, write: &Write) {
        let to = match write {
            Write::HandOff { to: Some(to), .. } | Write::Claim { new_owner: to, .. } => {
                Some(to.clone())
            }
            Write::HandOff { to: None, .. } | Write::Retire { .. } => self.life(),
            _ => None,
        };
        if let Some(to) = to {
            self.notify(to, 0);
        }
    }

    fn on_stopped(&mut self, queue: QueueId) {
        let Some(Held::Stopping { epoch, then }) = self.held.get(&queue).copied() else {
            return;
        };
        self.held.remove(&queue);
        self.dirty_queues.insert(queue.clone());
        let Some(me) = self.life() else { return };
        let still_mine = self
            .view
            .get(&queue)
            .is_some_and(|r| names(r, Some(&me)) && r.epoch == epoch);
        if !still_mine || self.busy(&queue) {
            return;
        }
        match then {
            AfterStop::Forget => {}
            AfterStop::Retire => {
                let r = QueueRecord {
                    queue,
                    owner: Some(me),
                    epoch,
                    retired: false,
                };
                self.retire(&r);
            }
            AfterStop::HandOff => {
                let to = self.hand_off_target(&queue);
                if to.as_ref() == Some(&me) {
                    if self.phase == Phase::Running {
                        self.start(queue, epoch);
                    }
                    return;
                }
                self.hand_off(queue, me, epoch, to);
            }
        }
    }

    fn hand_off(&mut self, queue: QueueId, from: Owner, epoch: u64, to: Option<Owner>) {
        let result = QueueRecord {
            queue: queue.clone(),
            owner: to.clone(),
            epoch: epoch + 1,
            retired: false,
        };
        let write = Write::HandOff {
            queue,
            from,
            expect_epoch: epoch,
            to,
        };
        self.queue_write(write, result);
    }

    fn on_gone(&mut self, queue: QueueId) {
        if self.held.contains_key(&queue) {
            self.stop(&queue, AfterStop::Retire);
            return;
        }
        let Some(r) = self.view.get(&queue).cloned() else {
            return;
        };
        let free = match &r.owner {
            None => true,
            Some(o) => Some(o) == self.life().as_ref() || self.liveness(o) == Liveness::Dead,
        };
        if free && !r.retired && !self.busy(&queue) && self.life.is_some() {
            self.retire(&r);
        }
    }

    fn begin_shutdown(&mut self) {
        if self.phase.is_shutting_down() {
            return;
        }
        self.shutdown = Some(Shutdown {
            deadline: self.now.saturating_add(self.cfg.shutdown_timeout),
            drained: false,
            life_lost: false,
        });
        self.set_phase(Phase::Draining);
        self.want_table = true;
        let queues: Vec<QueueId> = self.held.keys().cloned().collect();
        for q in &queues {
            self.stop(q, AfterStop::HandOff);
        }
        if self.heartbeat_in_flight != self.life {
            self.heartbeat();
        }
    }

    fn advance_shutdown(&mut self) {
        let Some(s) = self.shutdown else { return };
        if self.phase.is_stopped() {
            return;
        }
        if self.now >= s.deadline {
            self.finish(StopOutcome::TimedOut);
            return;
        }
        loop {
            let next = shutdown::advance(self.phase, !self.held.is_empty(), s.drained);
            if next == self.phase {
                break;
            }
            self.set_phase(next);
            self.evaluate();
        }
        // Writes of unknown outcome matter only while a life could still own their queues;
        // a node that lost its life has nothing left to release and cannot read to find out.
        // And a live node deregisters only from a fresh view (a failed read is retried first)
        // that names it owner of nothing: a peer may have handed it a queue it has not seen yet.
        let me = self.life();
        let names_me = me.is_some()
            && self
                .view
                .records()
                .any(|r| !r.retired && names(r, me.as_ref()));
        let fresh = me.is_none()
            || (!self.want_table && !self.retry_table && !self.read_in_flight && !names_me);
        let settled =
            fresh && self.writing.is_empty() && (self.unsettled.is_empty() || self.life.is_none());
        let send = self.deregistration == Deregistration::Idle;
        if self.phase == Phase::Releasing && settled && send {
            match self.life() {
                Some(owner) => {
                    self.deregistration = Deregistration::InFlight;
                    self.write(Pending::Deregister, Write::Deregister { owner });
                }
                None if s.life_lost => self.finish(StopOutcome::LifeLost),
                None => self.finish(StopOutcome::Clean),
            }
        }
    }

    fn finish(&mut self, outcome: StopOutcome) {
        self.shutdown = None;
        self.set_phase(Phase::Stopped { outcome });
    }

    // ----- deciding -----

    fn liveness(&mut self, owner: &Owner) -> Liveness {
        if Some(owner) == self.life().as_ref() {
            return Liveness::Alive;
        }
        self.membership
            .liveness(self.now, owner, self.cfg.heartbeat_timeout)
    }

    /// Where `queue` should go when this node gives it up: its target, or nobody.
    fn hand_off_target(&mut self, queue: &QueueId) -> Option<Owner> {
        self.refresh_target();
        let id = self.target.as_ref()?.owner_of(queue)?.clone();
        if id == self.me {
            // Targeted here but outside this node's filter: nobody this node knows takes it.
            return self.filter.matches(queue).then(|| self.life()).flatten();
        }
        self.membership.life_of(&id)
    }

    fn refresh_target(&mut self) {
        let me = (self.phase == Phase::Running && self.life.is_some()).then(|| Member {
            id: self.me.clone(),
            weight: self.cfg.capacity,
        });
        let mut members = self
            .membership
            .members(self.cfg.heartbeat_timeout, me.as_ref());
        if me.is_none() {
            // Draining or not yet registered: our own record may still read Active, but a
            // node that is giving queues up must never be their target (it would hand off to
            // itself, forever).
            members.retain(|m| m.id != self.me);
        }
        if members != self.members {
            self.members = members;
            self.members_changed_at = self.now;
            self.want_table = true;
            self.target = None;
        }
        // Queue records that changed since the last look are decided again. A change that
        // carries a queue to its target owner (the moves this target asked for) leaves the
        // target as it is; any other (a new or retired queue, a release, a peer acting on a
        // different target) makes it stale. Recomputing the target costs a pass over every
        // queue, so a burst of claims must not pay it once per claim.
        // Every table read still recomputes a target that any change went by, so that nodes
        // whose targets came from different snapshots converge on the same one.
        self.target_stale |= self.retarget && self.target_behind;
        self.retarget = false;
        for q in self.view.take_changes() {
            self.target_stale |= !self.toward_target(&q);
            self.target_behind = true;
            self.dirty_queues.insert(q);
        }
        // While this node's own writes are in flight (the creates of a listing, say) a stale
        // target waits for the last of them or the next tick: one recompute, not one per write.
        let wait = self.target_stale && !self.writing.is_empty() && !self.tick_passed;
        self.tick_passed = false;
        let key = (
            self.life(),
            self.members
                .iter()
                .map(|m| self.membership.life_of(&m.id))
                .collect::<Vec<_>>(),
        );
        if self.target.is_some() && (!self.target_stale || wait) && self.target_key == key {
            return;
        }
        self.target_key = key;
        self.target_behind = false;
        self.target_stale = false;
        let queues = self.view.live_queues();
        let mut current = BTreeMap::new();
        let life = self.life();
        for r in self.view.records().filter(|r| !r.retired) {
            if let Some(o) = &r.owner {
                let is_member = self.members.binary_search_by(|m| m.id.cmp(&o.id)).is_ok();
                let current_life =
                    Some(o) == life.as_ref() || self.membership.life_of(&o.id).as_ref() == Some(o);
                if is_member && current_life {
                    current.insert(r.queue.clone(), o.id.clone());
                }
            }
        }
        let target = assign(&self.members, &queues, &current);
        // An unchanged target leaves every decision as it was, except those of the queues
        // that changed (already marked).
        if self.target.as_ref() != Some(&target) {
            self.target = Some(target);
            self.dirty_all = true;
        }
    }

    /// Whether `queue`'s record names the owner the current target gives it, in its current life.
    fn toward_target(&self, queue: &QueueId) -> bool {
        let Some(target) = &self.target else {
            return false;
        };
        let Some(r) = self.view.get(queue) else {
            return false;
        };
        let Some(o) = r.owner.as_ref().filter(|_| !r.retired) else {
            return false;
        };
        target.owner_of(queue) == Some(&o.id)
            && (Some(o) == self.life().as_ref()
                || self.membership.life_of(&o.id).as_ref() == Some(o))
    }

    /// Brings holdings and claims in line with the view and the target: every queue after a
    /// change that concerns them all (membership, liveness, phase, a new target), otherwise only
    /// the queues that changed, so a claim completing costs one decision rather than a pass
    /// over every queue.
    fn evaluate(&mut self) {
        if self.phase.is_stopped() {
            return;
        }
        if self.life.is_none() {
            self.dirty_all = false;
            self.dirty_queues.clear();
            return;
        }
        if !self.dirty_all && self.dirty_queues.is_empty() && !self.view.has_changes() {
            return;
        }
        self.refresh_target();
        let Some(me) = self.life() else { return };
        let all = std::mem::take(&mut self.dirty_all);
        let queues: Vec<QueueId> = if all {
            self.dirty_queues.clear();
            self.incoming_queues.clear();
            self.deferred_queues.clear();
            // Only queues named here, targeted here or held here can need anything; walk the
            // view and the target (both sorted by queue) side by side to find them.
            let mut targets = self.target.iter().flat_map(|t| t.iter()).peekable();
            let mut qs: Vec<QueueId> = Vec::new();
            for r in self.view.records() {
                while targets.next_if(|(q, _)| **q < r.queue).is_some() {}
                let wanted = targets.next_if(|(q, _)| **q == r.queue).map(|(_, m)| m);
                if r.owner.as_ref() == Some(&me) || wanted == Some(&self.me) {
                    qs.push(r.queue.clone());
                }
            }
            qs.extend(self.held.keys().cloned());
            qs.sort_unstable();
            qs.dedup();
            qs
        } else {
            std::mem::take(&mut self.dirty_queues).into_iter().collect()
        };
        let move_at = self
            .members_changed_at
            .saturating_add(self.cfg.rebalance_delay);
        let target = self.target.take();
        for q in &queues {
            self.decide(q, &me, target.as_ref(), move_at);
        }
        self.target = target;
        self.incoming = !self.incoming_queues.is_empty();
        self.move_due = (!self.deferred_queues.is_empty()).then_some(move_at);
        if all {
            let referenced: BTreeSet<Owner> = self
                .view
                .records()
                .filter_map(|r| r.owner.clone())
                .collect();
            self.membership.retain_lives(&referenced);
        }
    }

    /// Decides one queue: start or stop receiving, hand it off, claim it, or wait.
    fn decide(&mut self, q: &QueueId, me: &Owner, target: Option<&Assignment>, move_at: Millis) {
        self.incoming_queues.remove(q);
        self.deferred_queues.remove(q);
        let Some((owner, epoch, retired)) = self
            .view
            .get(q)
            .map(|r| (r.owner.clone(), r.epoch, r.retired))
        else {
            // The record is gone from the table: nobody may receive from it.
            if self.held.contains_key(q) {
                self.stop(q, AfterStop::Forget);
            }
            return;
        };
        if self.busy(q) {
            return;
        }
        let running = self.phase == Phase::Running;
        let wanted = target.and_then(|t| t.owner_of(q));
        // A queue outside this node's filter is never received here, whatever the target says
        // (peers with another filter compute the same target during a configuration rollout).
        let allowed = self.filter.matches(q);
        let mine_target = wanted == Some(&self.me) && allowed;
        if owner.as_ref() == Some(me) && !retired && !allowed {
            match self.held.get(q).copied() {
                None => {
                    let to = wanted
                        .filter(|id| **id != self.me)
                        .and_then(|id| self.membership.life_of(id));
                    self.hand_off(q.clone(), me.clone(), epoch, to);
                }
                Some(Held::Receiving { .. }) => self.stop(q, AfterStop::HandOff),
                Some(Held::Stopping { .. }) => {}
            }
            return;
        }
        if owner.as_ref() == Some(me) && !retired {
            let elsewhere = !mine_target && wanted.is_some();
            match self.held.get(q).copied() {
                // Named here but targeted elsewhere (a hand-off that failed, say): pass it on
                // without receiving, or receive it until moves are allowed.
                None if running && elsewhere && self.now >= move_at => {
                    let to = wanted.and_then(|id| self.membership.life_of(id));
                    self.hand_off(q.clone(), me.clone(), epoch, to);
                }
                None if running => {
                    self.start(q.clone(), epoch);
                    if elsewhere {
                        self.deferred_queues.insert(q.clone());
                    }
                }
                None => {
                    let to = wanted.and_then(|id| self.membership.life_of(id));
                    self.hand_off(q.clone(), me.clone(), epoch, to);
                }
                Some(Held::Receiving { epoch: held }) if held != epoch => {
                    // Only a write naming this life can change the record; adopt its epoch.
                    self.held.insert(q.clone(), Held::Receiving { epoch });
                    self.dirty_queues.insert(q.clone());
                }
                Some(Held::Receiving { .. }) if running && elsewhere => {
                    if self.now >= move_at {
                        self.stop(q, AfterStop::HandOff);
                    } else {
                        self.deferred_queues.insert(q.clone());
                    }
                }
                Some(_) => {}
            }
            return;
        }
        if self.held.contains_key(q) {
            self.stop(q, AfterStop::Forget);
            return;
        }
        if !running || !mine_target || retired {
            return;
        }
        let orphan = match &owner {
            None => true,
            Some(o) => self.liveness(o) == Liveness::Dead,
        };
        if orphan {
            let write = Write::Claim {
                queue: q.clone(),
                expect_owner: owner,
                expect_epoch: epoch,
                new_owner: me.clone(),
            };
            let result = QueueRecord {
                queue: q.clone(),
                owner: Some(me.clone()),
                epoch: epoch + 1,
                retired: false,
            };
            self.queue_write(write, result);
        } else {
            self.incoming_queues.insert(q.clone());
        }
    }

    /// Checks the node's own bookkeeping; panics with a description when it is inconsistent.
    /// Used by the fuzz targets and the property tests after every input; not built into
    /// release builds.
    #[cfg(any(fuzzing, debug_assertions))]
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let me = self.life();
        for (q, h) in &self.held {
            if let Held::Receiving { epoch } = h {
                assert!(me.is_some(), "receiving {q} without a life");
                assert_eq!(
                    self.phase,
                    Phase::Running,
                    "receiving {q} while {:?}",
                    self.phase
                );
                assert!(!self.busy(q), "receiving {q} with a write unsettled");
                let r = self.view.get(q);
                assert!(
                    r.is_some_and(|r| names(r, me.as_ref()) && r.epoch == *epoch && !r.retired),
                    "receiving {q} at epoch {epoch} but the view shows {r:?}"
                );
            }
        }
        let reads = self
            .ops
            .values()
            .filter(|p| matches!(p, Pending::Read { .. }))
            .count();
        assert!(reads <= 1, "{reads} reads in flight");
        let beats = self
            .ops
            .values()
            .filter(|p| matches!(p, Pending::Heartbeat { life, .. } if Some(*life) == self.life))
            .count();
        assert!(beats <= 1, "{beats} heartbeats of this life in flight");
        for (q, id) in &self.writing {
            assert!(
                self.ops.contains_key(id),
                "write for {q} tracked but not pending"
            );
        }
        if self.phase.is_stopped() {
            assert!(self.poll_timeout().is_none());
        }
    }
}

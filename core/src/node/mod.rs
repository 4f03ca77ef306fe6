//! The coordination state machine of one instance.
//!
//! The node's state is kept in typed parts, each in the file of its concern: the pending
//! operations (`ops.rs`), the writes on their way to settling (`writes.rs`), the cached target
//! (`target.rs`, recomputed by `retarget.rs`) and the per-queue decision (`decide.rs`); inputs
//! are folded in by `replies.rs`, decisions applied by `evaluate.rs`, and the graceful stop
//! driven by `stop.rs`.

mod decide;
mod evaluate;
mod loads;
mod ops;
mod replies;
mod retarget;
mod stop;
mod target;
mod writes;

use crate::by_id::ById;
use crate::config::{Balance, Config};
use crate::discovery::{Deferred, Filter};
use crate::effect::{Effect, Input, Notice, OpId, QueueRecord, Read, Status, Write};
use crate::error::{Error, Result};
use crate::ids::{InstanceId, Owner, QueueId};
use crate::lease::{AfterStop, Fence, Held, QueueView};
use crate::loads::PublishedLoads;
use crate::membership::{Membership, Verdicts};
use crate::reads::{ReadCause, TableReads};
use crate::rng::Rng;
use crate::shared_targets::SharedTargets;
use crate::shutdown::{Phase, Shutdown, StopOutcome};
use crate::time::{Millis, duration_ms};
use crate::timer::Timers;
use ops::{Ops, Pending};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use target::Target;
use writes::Writes;

/// One registration of this instance, from its answer until it ends.
#[derive(Clone, Copy, Debug)]
struct Life {
    /// The incarnation the table gave it.
    incarnation: u64,
    /// The operation sequence number when it began: only a read sent after it can end it.
    since: u64,
    /// Heartbeats sent in this life (the record's counter; peers watch it move).
    counter: u64,
}

/// What this node knows of its peers besides their liveness.
#[derive(Debug, Default)]
struct Peers {
    /// Every instance record this node has read, and each life's liveness.
    membership: Membership,
    /// Each instance's (incarnation, inbox, news) when last read: a change of this node's
    /// inbox or of anyone's news means its view of the queue records is stale.
    inboxes: ById<(u64, u64, u64)>,
    /// The liveness verdicts `evaluate` last saw; a read that changes none of them (the
    /// steady-state heartbeat read) leaves the queues as they are.
    verdicts: Verdicts,
    /// Lives whose reap is in flight.
    reaping: BTreeSet<Owner>,
    /// Under load balance, the loads each instance record carried at the last read: a change
    /// re-decides every queue, since the target weighs them.
    published: Vec<(InstanceId, Option<PublishedLoads>)>,
}

/// When the next read is to read the whole table rather than the instance records.
#[derive(Debug)]
struct Reads {
    /// Read the table as soon as no read is in flight, for the first cause that asked.
    table_wanted: Option<ReadCause>,
    /// The slow reconciliation is due: the next heartbeat reads the whole table.
    reconcile_due: bool,
    /// A table read failed: ask again at the next heartbeat tick.
    retry: bool,
    /// The next read is to read the records of the queues awaited from their holders, with
    /// the instance records ([`Read::Records`]), unless a table read is wanted.
    records_wanted: bool,
    /// Moves of this life's inbox seen since the last table read that no read of the awaited
    /// records has accounted for (a queue handed here for each): while any is left, only a
    /// table read answers what moved it.
    inbox_unanswered: u64,
    /// Queues a read of awaited records found newly handed here beyond the inbox moves seen
    /// so far: their notices are still to come, and need no read when they do.
    handed_unseen: HandedUnseen,
    /// When the last table read was sent.
    table_sent_at: Millis,
    /// The table reads sent, by cause, and the reads of awaited records.
    sent: TableReads,
}

/// Hand-offs here found before their notices, which then need no read.
#[derive(Clone, Copy, Debug, Default)]
struct HandedUnseen {
    /// How many notices are still to come.
    count: u64,
    /// When the latest of them was found.
    found_at: Millis,
}

impl HandedUnseen {
    /// How many notices are still to come as of `now`: none once `expiry` has passed since
    /// the last hand-off was found. A notice follows its hand-off at once, so a count left
    /// longer is of notices lost with their senders, and would swallow the notice of a later
    /// hand-off here (a queue handed here was then not received until reconciliation).
    fn due(&self, now: Millis, expiry: Duration) -> u64 {
        if now > self.found_at.saturating_add(expiry) {
            0
        } else {
            self.count
        }
    }
}

/// Which queues exist and which of them this node may take.
#[derive(Debug)]
struct Listing {
    /// The queues this node may own (its `QueueFilterPattern`).
    filter: Filter,
    /// A queue listing that came back before the first table read: compared with an empty
    /// view it would try to create every queue the fleet already recorded.
    early: Option<(OpId, Arc<[QueueId]>)>,
    /// Queues whose record the last table read could not decode: never created again, never
    /// received (no record this node can read names it).
    unreadable: BTreeSet<QueueId>,
    /// Listed queues without a live record whose first creator is a peer, with the epoch of
    /// the tombstone to revive, if any: created here only if the view still shows them so
    /// at the time given, one heartbeat interval on (so a fleet started together writes each
    /// record about once, not once per instance).
    deferred: Deferred,
}

/// Which queues must be decided again.
#[derive(Debug)]
struct Dirty {
    /// Every queue (membership, liveness, phase or target changed).
    all: bool,
    /// These queues.
    queues: BTreeSet<QueueId>,
}

/// Queues targeted at or away from this node that cannot move yet.
#[derive(Debug, Default)]
struct Moves {
    /// Queues targeted here but held by a live peer that has yet to hand them over.
    incoming: BTreeSet<QueueId>,
    /// Queues this node will hand over once the rebalance delay has passed.
    deferred: BTreeSet<QueueId>,
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
    /// The validated configuration.
    cfg: Config,
    /// This instance's id.
    me: InstanceId,
    /// The current registration, if any.
    life: Option<Life>,
    /// Where the node is in its lifecycle.
    phase: Phase,
    /// The latest time seen.
    now: Millis,
    /// Effects issued and not yet answered.
    ops: Ops,
    /// Effects for the caller to carry out, in order.
    effects: VecDeque<Effect>,
    /// The peers' records, liveness and inboxes.
    peers: Peers,
    /// The queue records as this node knows them.
    view: QueueView,
    /// The queues whose pollers run (or are stopping) here.
    held: BTreeMap<QueueId, Held>,
    /// Writes not yet settled; a queue with one is busy.
    writes: Writes,
    /// What the next read is to read.
    reads: Reads,
    /// The queue listing's filter and leftovers.
    listing: Listing,
    /// The cached target assignment.
    target: Target,
    /// The queues to decide again.
    dirty: Dirty,
    /// Moves waiting on a peer or on the rebalance delay.
    moves: Moves,
    /// The periodic timers and the deferred moves' due time.
    timers: Timers,
    /// The self-fence of the current life.
    fence: Fence,
    /// The graceful stop under way, if any.
    shutdown: Option<Shutdown>,
    /// The queues' loads measured here and published in this life's record (load balance).
    publisher: loads::Publisher,
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
                field: "instance_id",
                rule: "must be set before the node starts".into(),
            });
        };
        let me = InstanceId::new(id)?;
        let filter = Filter::new(cfg.queue_filter_pattern.as_deref())?;
        let mut rng = Rng::new(cfg.seed ^ crate::hash::hash64(&[me.as_str().as_bytes()]));
        let mut node = Node {
            timers: Timers::new(&cfg, now, &mut rng),
            cfg,
            me,
            life: None,
            phase: Phase::Starting,
            now,
            ops: Ops::default(),
            effects: VecDeque::new(),
            peers: Peers::default(),
            view: QueueView::default(),
            held: BTreeMap::new(),
            writes: Writes::default(),
            reads: Reads {
                table_wanted: Some(ReadCause::Start),
                reconcile_due: false,
                retry: false,
                records_wanted: false,
                inbox_unanswered: 0,
                handed_unseen: HandedUnseen::default(),
                table_sent_at: now,
                sent: TableReads::default(),
            },
            listing: Listing {
                filter,
                early: None,
                unreadable: BTreeSet::new(),
                deferred: Deferred::default(),
            },
            target: Target::new(now),
            dirty: Dirty {
                all: true,
                queues: BTreeSet::new(),
            },
            moves: Moves::default(),
            fence: Fence::default(),
            shutdown: None,
            publisher: loads::Publisher::default(),
            rng,
        };
        node.register();
        Ok(node)
    }

    /// Shares targets with the other nodes given the same `shared`: a node then takes a copy of
    /// a target another one computed from the same inputs instead of computing it again. For a
    /// process that runs many nodes, as the simulator does; the effects are the same either way.
    pub fn share_targets(&mut self, shared: Arc<SharedTargets>) {
        self.target.shared = Some(shared);
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
            Input::QueueLoads { loads } => self.publisher.measured(loads),
        }
        self.evaluate();
        self.advance_shutdown();
        if self.reads.table_wanted.is_some() && !self.ops.reading() && self.life.is_some() {
            self.read(Read::Table);
        }
        self.send_news();
    }

    /// Sends the news notice that writes since the last one call for, unless one is in
    /// flight: sent after those writes applied, it makes every node read them.
    fn send_news(&mut self) {
        let w = &mut self.writes;
        if !w.news_due || w.news_sending {
            return;
        }
        if let Some(me) = self.life() {
            self.writes.news_due = false;
            self.writes.news_sending = true;
            self.notify(me, Notice::News, 0);
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
        let deadlines = [
            self.writes.next_resend(),
            self.listing.deferred.next_due().filter(|at| *at > self.now),
            self.shutdown.and_then(|s| s.deregister_again_at),
            self.shutdown.map(|s| s.deadline),
        ];
        let at = deadlines
            .into_iter()
            .flatten()
            .fold(self.timers.next(), Millis::min);
        Some(at.max(self.now))
    }

    /// This node's instance id.
    pub fn instance(&self) -> &InstanceId {
        &self.me
    }

    /// This node's current life, once registered.
    pub fn life(&self) -> Option<Owner> {
        self.life.map(|l| Owner {
            id: self.me.clone(),
            incarnation: l.incarnation,
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

    /// The table reads this node has sent, by what asked for each (a table read costs every
    /// queue record, so this tells where a fleet's read units go), and its reads of awaited
    /// queue records.
    pub fn table_reads(&self) -> &TableReads {
        &self.reads.sent
    }

    /// The number of live instances the queues are divided among, as this node last saw them
    /// (itself included while running).
    pub fn members(&self) -> usize {
        self.target.members.len()
    }

    /// The incarnation of the current life.
    fn incarnation(&self) -> Option<u64> {
        self.life.map(|l| l.incarnation)
    }

    // ----- issuing effects -----

    fn write(&mut self, pending: Pending, write: Write) -> OpId {
        let id = self.ops.issue(pending);
        self.effects.push_back(Effect::Write { id, write });
        id
    }

    fn read(&mut self, read: Read) {
        match read {
            Read::Table => {
                // Only the reconciliation reads the table without asking first.
                let cause = self
                    .reads
                    .table_wanted
                    .take()
                    .unwrap_or(ReadCause::Reconcile);
                self.reads.sent.count(cause);
                self.reads.reconcile_due = false;
                self.reads.table_sent_at = self.now;
                // Its records will be as fresh as the members seen so far: a change of members
                // among them needs no table read of its own after this one.
                let _ = self.refresh_members();
                self.reads.inbox_unanswered = 0;
            }
            Read::Records(_) => self.reads.sent.count_records(),
            Read::Members => {}
        }
        self.reads.records_wanted = false;
        let id = self.ops.issue(Pending::Read { read: read.clone() });
        self.effects.push_back(Effect::Read { id, read });
    }

    /// A read of the records of the queues awaited from their holders, if any are.
    fn awaited_records(&self) -> Option<Read> {
        let awaited = &self.moves.incoming;
        (!awaited.is_empty()).then(|| Read::Records(awaited.iter().cloned().collect()))
    }

    /// Whether a read of the awaited records may stand in for a table read now: no cause of
    /// a table read is pending, and something is awaited.
    fn may_read_records(&self) -> bool {
        self.reads.table_wanted.is_none()
            && !self.reads.reconcile_due
            && !self.moves.incoming.is_empty()
    }

    /// Whether the awaited hand-offs need a table read rather than a read of their records:
    /// one is overdue (an interval past the move time, as [`Node::nudge_holders`] tests), or
    /// no table read went out for a rebalance delay (a receiver whose view missed a claim
    /// learns of it only from a table read).
    fn awaiting_needs_table(&self) -> bool {
        let overdue = self.move_at().saturating_add(self.cfg.heartbeat_interval);
        let last = self.reads.table_sent_at;
        self.now >= overdue || self.now >= last.saturating_add(self.cfg.rebalance_delay)
    }

    /// Asks for a table read as soon as none is in flight, for `cause` unless another asked
    /// first.
    fn want_table(&mut self, cause: ReadCause) {
        self.reads.table_wanted.get_or_insert(cause);
    }

    fn register(&mut self) {
        let write = Write::Register {
            id: self.me.clone(),
            capacity: self.cfg.capacity,
            first: 1 + self.rng.below(u64::from(u32::MAX)),
        };
        self.write(Pending::Register { sent: self.now }, write);
    }

    fn heartbeat(&mut self) {
        let Some(owner) = self.life() else { return };
        let Some(life) = self.life.as_mut() else {
            return;
        };
        life.counter += 1;
        let status = if self.phase.is_shutting_down() {
            Status::Draining
        } else {
            Status::Active
        };
        let loads = match self.cfg.balance {
            Balance::Load {
                publish_interval, ..
            } => (self.publisher).due(self.now, publish_interval, self.held.keys()),
            Balance::Count => None,
        };
        if let Some(loads) = &loads {
            self.publisher.sent(loads.clone(), self.now);
        }
        let pending = Pending::Heartbeat {
            sent: self.now,
            life: owner.incarnation,
            loads: loads.is_some(),
        };
        let write = Write::Heartbeat {
            counter: life.counter,
            owner: owner.clone(),
            status,
            loads,
        };
        self.write(pending, write);
    }

    /// Sends a heartbeat unless one of this life is in flight already.
    fn heartbeat_unless_in_flight(&mut self) {
        if self
            .incarnation()
            .is_some_and(|l| self.ops.heartbeats(l) == 0)
        {
            self.heartbeat();
        }
    }

    /// Sends a queue write that has had `unknowns` unknown outcomes before.
    fn send_queue_write(&mut self, write: Write, result: QueueRecord, unknowns: u32) {
        let queue = result.queue.clone();
        let pending = Pending::Queue {
            write: write.clone(),
            result,
            unknowns,
        };
        let id = self.write(pending, write);
        self.writes.writing.insert(queue, id);
    }

    /// Announces a change of hands to `to` (whose inbox counter moves), a notice that had
    /// `unknowns` unknown outcomes before.
    fn notify(&mut self, to: Owner, notice: Notice, unknowns: u32) {
        let pending = Pending::Notify {
            to: to.clone(),
            notice,
            unknowns,
        };
        self.write(pending, Write::Notify { to, notice });
    }

    /// Whether a write to `queue` is unsettled: nothing else is decided for it meanwhile.
    fn busy(&self, queue: &QueueId) -> bool {
        self.writes.busy(queue)
    }

    /// Sends again every unsettled queue write and lost notice that is due.
    fn resend_due(&mut self) {
        for ((to, notice), unknowns) in self.writes.take_due_notices(self.now) {
            self.notify(to, notice, unknowns);
        }
        for u in self.writes.take_due_writes(self.now) {
            self.send_queue_write(u.write, u.result, u.unknowns);
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
            self.dirty.all = true;
            self.effects.push_back(Effect::Phase(phase));
        }
    }

    // ----- the clock -----

    fn on_tick(&mut self) {
        let now = self.now;
        // Reconciliation is never urgent: it turns the next heartbeat's instance read into a
        // table read instead of adding a request.
        if self.timers.reconcile.fire(now) {
            self.reads.reconcile_due = true;
        }
        let cause = if self.reads.retry {
            Some(ReadCause::Retry)
        } else {
            (!self.moves.incoming.is_empty()).then_some(ReadCause::AwaitingHandOff)
        };
        if let Some(cause) = cause
            && self.timers.tick.at() <= now
        {
            self.reads.retry = false;
            if cause == ReadCause::AwaitingHandOff && !self.awaiting_needs_table() {
                self.reads.records_wanted = true;
            } else {
                self.want_table(cause);
            }
        }
        if self.timers.tick.fire(now) {
            self.on_heartbeat_tick();
        }
        self.discover();
        let unread = now
            .0
            .saturating_sub(duration_ms(self.cfg.heartbeat_interval));
        self.create_deferred(Millis(unread));
        self.resend_due();
        if let Some(s) = &mut self.shutdown
            && s.deregister_again_at.is_some_and(|t| t <= now)
        {
            s.deregister_again_at = None;
        }
        if self.timers.moves.is_some_and(|d| now >= d) {
            self.timers.moves = None;
            self.dirty.all = true;
        }
        if self.timers.watch.is_some_and(|w| now >= w) {
            self.timers.watch = None;
            self.plan_watch();
            self.read_unless_reading();
        }
        if let Some(s) = self.shutdown
            && now >= s.deadline
        {
            self.finish(StopOutcome::TimedOut);
        }
    }

    /// Once per heartbeat interval: register (without a life), or heartbeat and read.
    fn on_heartbeat_tick(&mut self) {
        if self.target.stale {
            self.target.tick_passed = true;
            self.dirty.all = true;
        }
        if self.life.is_none() {
            if !self.ops.registering() && !self.phase.is_shutting_down() {
                self.register();
            }
            return;
        }
        self.heartbeat_unless_in_flight();
        self.read_unless_reading();
        self.nudge_holders();
    }

    /// Asks the holders of the queues this node has awaited for an interval past its move
    /// time to read the queue records: a holder whose view missed a claim computes another
    /// target and would never hand over (claims send no notice). Once per holder and interval,
    /// and only while something is overdue, so a steady fleet sends none.
    fn nudge_holders(&mut self) {
        let overdue = self.move_at().saturating_add(self.cfg.heartbeat_interval);
        if self.moves.incoming.is_empty() || self.now < overdue {
            return;
        }
        let holders: BTreeSet<Owner> = self
            .moves
            .incoming
            .iter()
            .filter_map(|q| self.view.get(q)?.owner.clone())
            .collect();
        for holder in holders {
            self.notify(holder, Notice::Inbox, 0);
        }
    }

    /// Reads the instance records, or the whole table when one is wanted or due, or the
    /// awaited records when those are wanted, unless a read is in flight.
    fn read_unless_reading(&mut self) {
        if self.ops.reading() {
            return;
        }
        let records = self.reads.records_wanted && self.may_read_records();
        let kind = match self.awaited_records() {
            Some(awaited) if records => awaited,
            _ if self.reads.table_wanted.is_some() || self.reads.reconcile_due => Read::Table,
            _ => Read::Members,
        };
        self.read(kind);
    }

    /// Plans the next extra instance read while the table is about to change hands: every
    /// quarter interval while queues wait for their owners' hand-offs (from one interval before
    /// this node's move time: an owner may have seen the change a read earlier; at once when an
    /// owner is draining, since it hands over without waiting), and while a peer is about to be
    /// condemned (a peer with an earlier view may reap it first). The change then shows within
    /// a quarter interval rather than at the next heartbeat. Costs nothing while the fleet is
    /// steady.
    pub(super) fn plan_watch(&mut self) {
        let interval = self.cfg.heartbeat_interval;
        let failing = self.life.is_some()
            && self
                .peers
                .membership
                .nearly_expired(self.cfg.heartbeat_timeout, interval, &self.me);
        if self.moves.incoming.is_empty() && !failing {
            self.timers.watch = None;
            return;
        }
        let soonest = self.now.saturating_add(interval / 4);
        let at = if failing || self.incoming_from_draining() {
            soonest
        } else {
            let moves_from = self
                .target
                .members_changed_at
                .saturating_add(self.cfg.rebalance_delay.saturating_sub(interval));
            soonest.max(moves_from)
        };
        self.timers.watch = Some(self.timers.watch.map_or(at, |w| w.min(at)));
    }

    /// Whether a queue this node awaits is held by a draining life.
    fn incoming_from_draining(&self) -> bool {
        let membership = &self.peers.membership;
        self.moves.incoming.iter().any(|q| {
            let holder = self.view.get(q).and_then(|r| r.owner.as_ref());
            holder.is_some_and(|o| membership.draining(o))
        })
    }

    /// Lists the queues when discovery is due (skipped while a listing is still running).
    fn discover(&mut self) {
        if self.timers.discovery.fire(self.now)
            && self.phase == Phase::Running
            && !self.ops.listing()
        {
            let id = self.ops.issue(Pending::List);
            let prefix = self.listing.filter.prefix().to_owned();
            self.effects.push_back(Effect::ListQueues { id, prefix });
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
                    r.is_some_and(|r| crate::lease::names(r, me.as_ref())
                        && r.epoch == *epoch
                        && !r.retired),
                    "receiving {q} at epoch {epoch} but the view shows {r:?}"
                );
            }
        }
        let reads = self.ops.reads();
        assert!(reads <= 1, "{reads} reads in flight");
        if let Some(life) = self.incarnation() {
            let beats = self.ops.heartbeats(life);
            assert!(beats <= 1, "{beats} heartbeats of this life in flight");
        }
        for (q, id) in &self.writes.writing {
            assert!(
                self.ops.contains(*id),
                "write for {q} tracked but not pending"
            );
        }
        if self.phase.is_stopped() {
            assert!(self.poll_timeout().is_none());
        }
    }
}

//! The simulated data plane: one poller per owned queue that long-polls within the self-fence,
//! hands each message to a handler (configurable duration and failure rate), and deletes the
//! successes in batches of up to 10. Simple on purpose: it exists so the message-level invariants
//! are checked against the real protocol, not to model the runtime's pipeline.

use crate::fake::{ReceiveRequest, Service, Verdict};
use crate::scenario::Mutation;
use crate::world::{Answer, Batch, Ev, Poller, Recv, RecvResult, World};
use sqsbalancer_core::{Input, Millis, QueueId};
use sqsbalancer_runtime::RelativePlan;
use std::time::Duration;

/// Handler time of a normal message, ms: 5 to 50.
const HANDLER_MS: (u64, u64) = (5, 50);
/// Handler time of a slow message, ms: 25 to 60 s, often past the 30 s visibility timeout.
const SLOW_HANDLER_MS: (u64, u64) = (25_000, 60_000);
/// Back-off after a failed receive, ms.
const RETRY_MS: u64 = 1_000;
/// Shortest long poll worth sending; with less room before the fence the poller waits.
const MIN_WAIT: Duration = Duration::from_secs(1);

/// A receive as it leaves its poller: the call, when it departs (after any hold and pause),
/// how long it polls and when the poller gives up on it.
struct Departure<'a> {
    slot: usize,
    queue: &'a QueueId,
    call: u64,
    /// Global ms.
    depart: u64,
    /// Whether a pause came between the last fence check and the departure.
    paused: bool,
    wait_ms: u64,
    /// How much later than the trip the answer comes back, ms.
    extra: u64,
    /// The poller's deadline, global ms.
    give_up: u64,
}

impl World {
    pub(crate) fn start_receiving(&mut self, i: usize, queue: QueueId) {
        let old = self.slots[i]
            .pollers
            .insert(queue.clone(), Poller::default());
        let mutated = self.sc.mutation == Some(Mutation::IgnoreStop);
        assert!(old.is_none() || mutated, "core started {queue} twice");
        self.try_receive(i, &queue);
    }

    pub(crate) fn stop_receiving(&mut self, i: usize, queue: QueueId) {
        let life = self.slots[i].life;
        let ignore = self.sc.mutation == Some(Mutation::IgnoreStop);
        let Some(p) = self.slots[i].pollers.get_mut(&queue) else {
            return;
        };
        if !ignore {
            p.stopping = true;
        }
        if ignore || p.receiving.is_none() {
            if !ignore {
                self.slots[i].pollers.remove(&queue);
            }
            let input = Input::ReceivingStopped { queue };
            self.push(
                self.now,
                Ev::Input {
                    slot: i,
                    life,
                    input,
                },
            );
        }
    }

    pub(crate) fn fence_moved(&mut self, i: usize) {
        let waiting: Vec<QueueId> = self.slots[i]
            .pollers
            .iter()
            .filter(|(_, p)| p.waiting_fence)
            .map(|(q, _)| q.clone())
            .collect();
        for q in waiting {
            self.try_receive(i, &q);
        }
    }

    /// Sends the next receive of queue `q` on slot `i`, if its poller is idle and the fence
    /// leaves room for a long poll: planned as the runtime plans it ([`Timeouts`]), never sent
    /// past its send-by time, given up on at the fence plus the request margin.
    ///
    /// [`Timeouts`]: sqsbalancer_runtime::Timeouts
    pub(crate) fn try_receive(&mut self, i: usize, q: &QueueId) {
        let local = self.slots[i].local(self.now);
        let Some(plan) = self.plan_receive(i, q, local) else {
            return;
        };
        let at_local = |d: Duration| Millis(local.0 + d.as_millis() as u64);
        let send_by = self.slots[i].global(at_local(plan.send_within));
        let give_up = self.slots[i].global(at_local(plan.give_up_after));
        self.next_call += 1;
        let call = self.next_call;
        if let Some(p) = self.slots[i].pollers.get_mut(q) {
            p.waiting_fence = false;
            p.receiving = Some(call);
        }
        // A slow call: held before it is sent (credentials, a reconnect), answered late.
        let (held, extra) = self.hooks.slowness();
        let depart = self.now + held;
        if held + extra > 0 {
            self.faulted(i);
        }
        if depart > send_by && self.sc.mutation != Some(Mutation::IgnoreSendBy) {
            self.refuse_send(i, q, depart);
            return;
        }
        let pause = self.pause_before_send(i, depart);
        self.send_receive(&Departure {
            slot: i,
            queue: q,
            call,
            depart: depart + pause.unwrap_or(0),
            paused: pause.is_some(),
            wait_ms: plan.wait.as_millis() as u64,
            extra,
            give_up,
        });
    }

    /// The plan of the next receive of `q` on slot `i` at local time `local`; `None` if its
    /// poller is busy or stopping, or if the fence leaves too little room for a long poll
    /// (then the poller waits for the fence to move).
    fn plan_receive(&mut self, i: usize, q: &QueueId, local: Millis) -> Option<RelativePlan> {
        let fence = self.slots[i].fence;
        let wanted = self.cfg.sqs.wait_time;
        let zombie = self.sc.mutation == Some(Mutation::IgnoreStop);
        let p = self.slots[i].pollers.get(q)?;
        if p.stopping || p.receiving.is_some() || p.batch.is_some() {
            return None;
        }
        let left = Duration::from_millis(fence.0.saturating_sub(local.0));
        let plan = if zombie {
            Some(RelativePlan {
                wait: wanted,
                send_within: Duration::from_secs(3_600),
                give_up_after: wanted * 2,
            })
        } else {
            self.timeouts.plan_within(left, wanted)
        };
        let Some(plan) = plan.filter(|p| p.wait >= MIN_WAIT) else {
            if let Some(p) = self.slots[i].pollers.get_mut(q) {
                p.waiting_fence = true;
            }
            return None;
        };
        Some(plan)
    }

    /// A receive held past its send-by time is never sent: the SDK adapter refuses it after
    /// signing, and the poller plans again when the hold ends (`depart`).
    fn refuse_send(&mut self, i: usize, q: &QueueId, depart: u64) {
        if let Some(p) = self.slots[i].pollers.get_mut(q) {
            p.receiving = Some(0);
        }
        let life = self.slots[i].life;
        let queue = q.clone();
        self.push(
            depart,
            Ev::PollerRetry {
                slot: i,
                life,
                queue,
            },
        );
    }

    /// A pause of slot `i` after the last check, before the request leaves at `depart` (the
    /// known limit of client-side fencing), drawn at the scenario's rate: its length, or `None`.
    fn pause_before_send(&mut self, i: usize, depart: u64) -> Option<u64> {
        let pauses = self.sc.faults.pause > 0
            && !self.calm
            && self.rng.below(1_000_000) < self.sc.faults.pause;
        if !pauses {
            return None;
        }
        let margin = self.cfg.effective_fence_margin().as_millis() as u64;
        let pause = 500 + self.rng.below(2 * margin);
        self.slots[i].paused_until = depart + pause;
        self.faulted(i);
        self.stats.pauses += 1;
        self.stats.faults.push((self.now, "pause", Some(i)));
        Some(pause)
    }

    /// Sends a planned receive: the fault hooks decide its fate, which schedules its arrival at
    /// SQS, its failure, or only the poller's give-up.
    fn send_receive(&mut self, d: &Departure<'_>) {
        let i = d.slot;
        let life = self.slots[i].life;
        let fence_global = self.slots[i].global(self.slots[i].fence);
        let name = self.slots[i].name.clone();
        let recv = |answer| Recv {
            slot: i,
            life,
            queue: d.queue.clone(),
            call: d.call,
            answer,
        };
        let back = Answer::Back {
            extra: d.extra,
            deadline: d.give_up,
        };
        let verdict = self.hooks.decide(Millis(d.depart), &name, Service::Sqs);
        // The poller's own deadline, as an event only when the answer might come after it: most
        // answers are certain to come back well before, and an event apiece would cost more
        // than the rest of the receive.
        let latest = d.depart + d.wait_ms + 2 * self.max_latency() + d.extra;
        if !matches!(verdict, Verdict::Serve | Verdict::Late) || latest >= d.give_up {
            self.push(
                d.give_up,
                Ev::PollerGiveUp {
                    slot: i,
                    life,
                    queue: d.queue.clone(),
                    call: d.call,
                },
            );
        }
        let arrive = match verdict {
            // Transit is within the request margin: a request that arrives late is a request
            // held before it was sent, which the send-by check covers.
            Verdict::Serve | Verdict::Late => Some(recv(back)),
            Verdict::TimeoutApplied | Verdict::Hang(true) => Some(recv(Answer::Lost)),
            // Never arrives: the poller gives up at its deadline.
            Verdict::Hang(false) | Verdict::Unreachable | Verdict::TimeoutNotApplied => None,
            Verdict::Throttled | Verdict::ServerError => {
                let at = d.depart + 2 * self.latency();
                let result = RecvResult::Failed;
                self.push(
                    at,
                    Ev::ReceiveDone {
                        recv: recv(Answer::Lost),
                        result,
                    },
                );
                None
            }
        };
        if let Some(recv) = arrive {
            let at = d.depart + self.latency();
            self.push(
                at,
                Ev::ReceiveArrive {
                    recv,
                    wait_ms: d.wait_ms,
                    paused: d.paused,
                    fence_global,
                },
            );
        }
    }

    pub(crate) fn receive_arrive(
        &mut self,
        recv: Recv,
        wait_ms: u64,
        paused: bool,
        fence_global: u64,
    ) {
        let who = (recv.slot, recv.life);
        let late = paused && self.now + wait_ms >= fence_global;
        self.checker
            .receive_start(&recv.queue, who, recv.call, late, fence_global);
        let slots = &self.slots;
        let up_since = |old: usize, t: u64| {
            slots.iter().enumerate().any(|(k, s)| {
                k != old && s.up() && s.stop_started.is_none() && s.up_since.is_some_and(|u| u <= t)
            })
        };
        self.stats
            .receive_started(self.now, &recv.queue, who, up_since);
        let name = self.slots[recv.slot].name.clone();
        let req = ReceiveRequest {
            url: recv.queue.as_str().to_owned(),
            max: self.cfg.sqs.max_messages,
            visibility_secs: self.cfg.sqs.visibility_secs(),
            wait_ms,
            attribute_names: self.cfg.sqs.message_attribute_names.clone(),
        };
        match self.sqs.receive_or_park(Millis(self.now), &name, req) {
            Ok(Ok(msgs)) => self.receive_returned(recv, RecvResult::Messages(msgs)),
            Ok(Err(wait)) => {
                self.parked.insert(wait, recv);
                self.arm_wake();
            }
            Err(crate::fake::SqsError::QueueDoesNotExist { .. }) => {
                self.receive_returned(recv, RecvResult::Gone)
            }
            Err(_) => self.receive_returned(recv, RecvResult::Failed),
        }
    }

    /// The receive ended at SQS; its reply travels back (or is lost).
    pub(crate) fn receive_returned(&mut self, recv: Recv, result: RecvResult) {
        self.checker.receive_end(&recv.queue, recv.call);
        self.stats
            .receive_ended(self.now, &recv.queue, (recv.slot, recv.life));
        if let RecvResult::Messages(m) = &result
            && !m.is_empty()
        {
            self.arm_wake();
        }
        if let Answer::Back { extra, .. } = recv.answer {
            let at = self.now + self.latency() + extra;
            self.push(at, Ev::ReceiveDone { recv, result });
        }
    }

    pub(crate) fn receive_done(&mut self, recv: Recv, result: RecvResult) {
        let i = recv.slot;
        if self.slots[i].life != recv.life {
            return;
        }
        let q = recv.queue.clone();
        let Some(p) = self.slots[i].pollers.get_mut(&q) else {
            return;
        };
        if p.receiving != Some(recv.call) {
            // Given up on: whatever it took comes back after its visibility timeout.
            return;
        }
        p.receiving = None;
        let stopping = p.stopping;
        let local = self.slots[i].local(self.now);
        let fenced = local >= self.slots[i].fence;
        match result {
            RecvResult::Messages(msgs) if !msgs.is_empty() && fenced => self.fence_out(i, &q, msgs),
            RecvResult::Messages(msgs) if !msgs.is_empty() => self.handle_batch(i, &q, msgs),
            RecvResult::Messages(_) => {}
            RecvResult::Gone => {
                let life = self.slots[i].life;
                let input = Input::QueueGone { queue: q.clone() };
                self.push(
                    self.now,
                    Ev::Input {
                        slot: i,
                        life,
                        input,
                    },
                );
            }
            RecvResult::Failed => {
                if !stopping {
                    let life = self.slots[i].life;
                    let at = self.now + RETRY_MS;
                    let queue = q.clone();
                    self.push(
                        at,
                        Ev::PollerRetry {
                            slot: i,
                            life,
                            queue,
                        },
                    );
                    if let Some(p) = self.slots[i].pollers.get_mut(&q) {
                        p.receiving = Some(0);
                    }
                }
            }
        }
        let Some(p) = self.slots[i].pollers.get_mut(&q) else {
            return;
        };
        if p.receiving == Some(0) {
            // Backing off; PollerRetry clears the marker.
            return;
        }
        if stopping {
            self.slots[i].pollers.remove(&q);
            let life = self.slots[i].life;
            let input = Input::ReceivingStopped { queue: q };
            self.push(
                self.now,
                Ev::Input {
                    slot: i,
                    life,
                    input,
                },
            );
        } else {
            self.try_receive(i, &q);
        }
    }

    /// The poller's deadline for receive `call` passed with no answer: the receive ended at
    /// SQS by the fence, so the poller is free again (to stop, or to receive again).
    pub(crate) fn poller_give_up(&mut self, i: usize, q: &QueueId, call: u64) {
        let Some(p) = self.slots[i].pollers.get_mut(q) else {
            return;
        };
        if p.receiving != Some(call) {
            return;
        }
        p.receiving = None;
        self.faulted(i);
        self.poller_retry(i, q);
    }

    /// A receive came back after the self-fence: its messages are never handed to a handler,
    /// and are made visible again at once.
    fn fence_out(&mut self, i: usize, q: &QueueId, msgs: Vec<crate::fake::Received>) {
        self.emit(Some(i), "fenced-out", || {
            format!("{q} {} messages", msgs.len())
        });
        let receipts = msgs.into_iter().map(|m| m.receipt).collect();
        let at = self.now + self.latency();
        let queue = q.clone();
        self.push(
            at,
            Ev::ReleaseArrive {
                slot: i,
                queue,
                receipts,
            },
        );
    }

    pub(crate) fn release_arrive(&mut self, i: usize, q: &QueueId, receipts: &[String]) {
        let name = self.slots[i].name.clone();
        for chunk in receipts.chunks(10) {
            let entries: Vec<(String, u32)> = chunk.iter().map(|r| (r.clone(), 0)).collect();
            let now = Millis(self.now);
            let _ = self
                .sqs
                .change_visibility_batch(now, &name, q.as_str(), &entries);
        }
        self.arm_wake();
    }

    pub(crate) fn poller_retry(&mut self, i: usize, q: &QueueId) {
        let Some(p) = self.slots[i].pollers.get_mut(q) else {
            return;
        };
        if p.receiving == Some(0) {
            p.receiving = None;
        }
        if p.stopping {
            self.slots[i].pollers.remove(q);
            let life = self.slots[i].life;
            let input = Input::ReceivingStopped { queue: q.clone() };
            self.push(
                self.now,
                Ev::Input {
                    slot: i,
                    life,
                    input,
                },
            );
        } else {
            self.try_receive(i, q);
        }
    }

    fn handle_batch(&mut self, i: usize, q: &QueueId, msgs: Vec<crate::fake::Received>) {
        self.next_batch += 1;
        let id = self.next_batch;
        let life = self.slots[i].life;
        let mut left = 0;
        let f = self.sc.faults.clone();
        for m in msgs {
            if self.sc.mutation == Some(Mutation::DropRedelivered) && m.receive_count > 1 {
                continue;
            }
            let slow =
                !self.calm && f.slow_handler > 0 && self.rng.below(1_000_000) < f.slow_handler;
            let (lo, hi) = if slow { SLOW_HANDLER_MS } else { HANDLER_MS };
            let mut took = lo + self.rng.below(hi - lo + 1);
            // A slow queue's handler is ten times slower than the others'; a slow-handler
            // fault's is slow already (past the visibility timeout), not ten times that.
            if !slow && (self.sc.traffic).slow(self.sc.seed, q.name()) {
                took *= crate::traffic::SLOWDOWN;
            }
            let meter = self.slots[i].meters.entry(q.clone()).or_default();
            meter.add(Duration::from_millis(self.now), Duration::from_millis(took));
            if !self.calm && self.now >= self.sc.work_share_from_ms() {
                self.stats.worked(i, q, took);
                let dwell = self.now.saturating_sub(m.sent.0);
                self.stats
                    .dwell_ms
                    .entry(q.clone())
                    .or_default()
                    .push(dwell);
            }
            if slow {
                let s = &mut self.slots[i];
                s.slow_until = s.slow_until.max(self.now + took);
            }
            let fails = !self.calm
                && f.failing_handler > 0
                && self.rng.below(1_000_000) < f.failing_handler;
            left += 1;
            self.stats.handled += 1;
            self.push(
                self.now + took,
                Ev::HandlerDone {
                    slot: i,
                    batch: id,
                    message_id: m.message_id,
                    receipt: m.receipt,
                    ok: !fails,
                },
            );
        }
        if left == 0 {
            return;
        }
        self.batches.insert(
            id,
            Batch {
                slot: i,
                life,
                queue: q.clone(),
                left,
                delete: Vec::new(),
            },
        );
        self.slots[i].open_batches += 1;
        if let Some(p) = self.slots[i].pollers.get_mut(q) {
            p.batch = Some(id);
        }
    }

    pub(crate) fn handler_done(
        &mut self,
        batch: u64,
        message_id: String,
        receipt: String,
        ok: bool,
    ) {
        let Some(b) = self.batches.get_mut(&batch) else {
            return;
        };
        let (i, life) = (b.slot, b.life);
        if self.slots[i].life != life {
            // The process died with the handler; the message comes back after its visibility.
            self.batches.remove(&batch);
            return;
        }
        b.left -= 1;
        let delete = ok || self.sc.mutation == Some(Mutation::DeleteFailures);
        if delete {
            b.delete.push((message_id.clone(), receipt.clone()));
        }
        if !ok {
            self.stats.failed += 1;
        }
        self.checker.handled(&message_id, &receipt, ok);
        if b.left > 0 {
            return;
        }
        let b = self.batches.remove(&batch).expect("batch exists");
        let name = self.slots[i].name.clone();
        for chunk in b.delete.chunks(10) {
            match self.hooks.decide(Millis(self.now), &name, Service::Sqs) {
                Verdict::Serve | Verdict::TimeoutApplied => {
                    let at = self.now + self.latency();
                    self.push(
                        at,
                        Ev::DeleteArrive {
                            slot: i,
                            queue: b.queue.clone(),
                            entries: chunk.to_vec(),
                        },
                    );
                }
                // Not deleted: the messages come back after their visibility timeout.
                _ => self.stats.deletes_failed += chunk.len() as u64,
            }
        }
        self.slots[i].open_batches -= 1;
        if let Some(p) = self.slots[i].pollers.get_mut(&b.queue)
            && p.batch == Some(batch)
        {
            p.batch = None;
            let q = b.queue.clone();
            self.try_receive(i, &q);
        }
        self.maybe_drained(i);
    }

    pub(crate) fn delete_arrive(&mut self, i: usize, q: &QueueId, entries: Vec<(String, String)>) {
        let name = self.slots[i].name.clone();
        let receipts: Vec<String> = entries.iter().map(|(_, r)| r.clone()).collect();
        match self.sqs.delete_batch(&name, q.as_str(), &receipts) {
            Ok(results) => {
                for ((id, receipt), r) in entries.iter().zip(results) {
                    match r {
                        Ok(()) => self.checker.deleted(id, receipt),
                        Err(_) => self.stats.deletes_failed += 1,
                    }
                }
            }
            Err(_) => self.stats.deletes_failed += entries.len() as u64,
        }
        if self.sc.trace {
            let d = format!("{q} {} entries", entries.len());
            self.trace.emit(self.now, Some(&name), "delete", &d);
        }
    }
}

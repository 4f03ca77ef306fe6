//! Counters the simulators fill as they run, from which a run's [`Report`](crate::Report) is
//! made.

use crate::check::Who;
use crate::lookup::Lookup;
use sqsbalancer_core::{Owner, QueueId, TableReads};
use std::collections::BTreeMap;

/// How often the cost counters are sampled, ms.
pub const SAMPLE_MS: u64 = 30_000;
/// Quiet time (no fault, no change of hands) before cost counts as steady state, ms: the
/// rebalance delay passes and the last reads triggered by a change finish.
pub const STEADY_AFTER_MS: u64 = 120_000;

/// One sample of the cost counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sample {
    pub t: u64,
    pub dynamo_requests: u64,
    pub up: usize,
}

/// Counters the simulator fills as it runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub starts: u64,
    pub instance_ms: u64,
    pub stops_timed_out: u64,
    pub stops_life_lost: u64,
    pub stops_clean: u64,
    pub stop_ms: Vec<u64>,
    /// Every change of a queue record's owner: time, queue, new owner's slot.
    pub ownership: Vec<(u64, QueueId, Option<usize>)>,
    pub voluntary_moves: u64,
    /// Hand-offs: the queue and the giving life, to the receiving life, and when written.
    pub handed_off: BTreeMap<(QueueId, Who), (Option<Who>, u64)>,
    /// Crashed lives and when.
    pub crashed: BTreeMap<Who, u64>,
    pub pauses: u64,
    pub faults: Vec<(u64, &'static str, Option<usize>)>,
    pub handled: u64,
    pub failed: u64,
    pub deletes_failed: u64,
    pub sent: u64,
    pub calm_at: u64,
    pub owners_at_calm: BTreeMap<QueueId, Option<Owner>>,
    pub moves_after_calm: u64,
    /// Each queue's last receive: who sent it and when (looked up for every long poll).
    last_receive: Lookup<QueueId, (Who, u64)>,
    pub failovers: Vec<u64>,
    pub handoffs: Vec<u64>,
    pub takeovers: Vec<u64>,
    /// Gaps after a crash that left no other instance up: they end when one comes back.
    pub outages: Vec<u64>,
    pub samples: Vec<Sample>,
    /// The table reads of every level-1 node's lives, by cause (added as each life ends).
    pub table_reads: TableReads,
    /// Handler time started by each instance slot in the second half of the run before the
    /// calm (after convergence), ms: the work each did.
    pub work_ms: Vec<u64>,
    /// Over the same time, the handler time of each queue's messages, ms.
    pub queue_work_ms: BTreeMap<QueueId, u64>,
    /// Over the same time, each queue's dwell times: send to handler start, ms.
    pub dwell_ms: BTreeMap<QueueId, Vec<u64>>,
}

impl Stats {
    /// Instance slot `slot` started a handler of a message of `queue` that takes `ms`.
    pub fn worked(&mut self, slot: usize, queue: &QueueId, ms: u64) {
        if self.work_ms.len() <= slot {
            self.work_ms.resize(slot + 1, 0);
        }
        self.work_ms[slot] += ms;
        *self.queue_work_ms.entry(queue.clone()).or_default() += ms;
    }

    /// A receive of `who` reached SQS on `q`. `up_since(slot, t)` says whether an instance
    /// other than `slot` has been up and not stopping since `t`: a failover is only measured
    /// against the bound when one was there to take over.
    pub fn receive_started(
        &mut self,
        t: u64,
        q: &QueueId,
        who: Who,
        up_since: impl Fn(usize, u64) -> bool,
    ) {
        if let Some(&(prev, last)) = self.last_receive.get(q)
            && prev != who
        {
            let handed = self.handed_off.get(&(q.clone(), prev)).copied();
            if let Some((Some(to), written)) = handed
                && to == who
            {
                // From the later of the old owner's last receive and its hand-off: a rest the
                // old owner took between polls before the move is its polling, not the move.
                let last = last.max(written);
                self.handoffs.push(t.saturating_sub(last));
            } else if let Some(&crash) = self.crashed.get(&prev) {
                let gap = t.saturating_sub(crash);
                if up_since(prev.0, crash) {
                    self.failovers.push(gap);
                } else {
                    self.outages.push(gap);
                }
            } else if up_since(prev.0, last) {
                self.takeovers.push(t.saturating_sub(last));
            } else {
                // Nobody else was up to take it: the fleet was down, not slow.
                self.outages.push(t.saturating_sub(last));
            }
        }
        self.last_receive.insert(q.clone(), (who, t));
    }

    /// A receive of `who` on `q` returned at SQS.
    pub fn receive_ended(&mut self, t: u64, q: &QueueId, who: Who) {
        if let Some(e) = self.last_receive.get_mut(q)
            && e.0 == who
        {
            e.1 = t;
        }
    }
}

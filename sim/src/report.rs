//! What a run measured: failover and hand-off gaps, moves, balance, cost and messages, and the
//! settled-state check at the end.
//!
//! Gaps are measured at the fake, between the last receive of one instance life on a queue and
//! the first receive of the next: a *failover* when the previous life crashed (measured from the
//! crash, as G4 states it), a *hand-off* when the previous life handed the queue over (measured
//! from its last receive), and a *takeover* otherwise (an instance cut off or whose stop timed
//! out lost the queue to a peer).

use crate::check::{Invariant, Violation};
use crate::stats::{STEADY_AFTER_MS, Sample, Stats};
use crate::world::World;
use serde_json::{Value as Json, json};
use sqsbalancer_core::{Member, Phase, QueueId, assign, share_bounds};
use std::collections::BTreeMap;

impl World {
    /// Records a cost sample; called every [`SAMPLE_MS`](crate::stats::SAMPLE_MS).
    pub(crate) fn record_sample(&mut self) {
        record_sample(self);
    }

    /// Checks the settled state now ([`check_settled`]).
    pub(crate) fn check_settled(&mut self) {
        check_settled(self);
    }
}

/// Records a cost sample of `w`.
fn record_sample(w: &mut World) {
    let dynamo_requests = w
        .dynamo
        .usage_by_caller()
        .iter()
        .filter(|(c, _)| c.starts_with("node-"))
        .map(|(_, u)| u.total_requests())
        .sum();
    let up = w.slots.iter().filter(|s| s.node.is_some()).count();
    w.stats.samples.push(Sample {
        t: w.now,
        dynamo_requests,
        up,
    });
}

/// The settled-state invariant: every existing queue polled by exactly one running instance
/// whose life the queue record names, every running instance within floor/ceil of its weighted
/// share, and no more moves made than the optimum from the calm point.
fn check_settled(w: &mut World) {
    if let Some(detail) = settled_problem(w) {
        w.checker.violate(Invariant::Settled, detail);
    }
}

fn settled_problem(w: &World) -> Option<String> {
    let running: Vec<usize> = (0..w.slots.len())
        .filter(|&i| {
            w.slots[i]
                .node
                .as_ref()
                .is_some_and(|n| n.phase() == Phase::Running)
        })
        .collect();
    if running.is_empty() {
        return None;
    }
    let queues: Vec<QueueId> = w.sqs.urls().filter_map(|u| QueueId::new(u).ok()).collect();
    for q in &queues {
        let who: Vec<usize> = running
            .iter()
            .copied()
            .filter(|&i| w.slots[i].pollers.get(q).is_some_and(|p| !p.stopping))
            .collect();
        if who.len() != 1 {
            return Some(format!("{q} polled by slots {who:?}"));
        }
        let life = w.slots[who[0]].node.as_ref().and_then(|n| n.life());
        let rec = w.owners.get(q).cloned().flatten();
        if rec != life {
            return Some(format!(
                "{q}: record names {rec:?} but node-{} ({life:?}) polls it",
                who[0]
            ));
        }
    }
    let members: Vec<Member> = running
        .iter()
        .map(|&i| Member {
            id: w.slots[i].id.clone(),
            weight: w.slots[i].weight,
        })
        .collect();
    let target = assign(&members, &queues, &BTreeMap::new()).load();
    let total_w: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let n = queues.len();
    for &i in &running {
        let s = &w.slots[i];
        let held = s.pollers.len();
        let wgt = s.weight;
        let (lo, hi) = share_bounds(n, wgt, total_w);
        let want = target.get(&s.id).copied().unwrap_or(0);
        if held < lo.min(want) || held > hi.max(want) {
            return Some(format!(
                "{} (weight {wgt}) polls {held}, share {lo}..={hi} of {n}",
                s.name
            ));
        }
    }
    None
}

/// Simple order statistics of a list of durations, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    /// How many.
    pub count: usize,
    /// The median.
    pub p50: u64,
    /// The 99th percentile (nearest rank).
    pub p99: u64,
    /// The largest.
    pub max: u64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(values: &[u64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |p: u64| {
            if v.is_empty() {
                0
            } else {
                let k = (p * v.len() as u64).div_ceil(100).max(1) as usize;
                v[k - 1]
            }
        };
        Spread {
            count: v.len(),
            p50: rank(50),
            p99: rank(99),
            max: v.last().copied().unwrap_or(0),
        }
    }

    /// As JSON.
    pub fn json(&self) -> Json {
        json!({"count": self.count, "p50_ms": self.p50, "p99_ms": self.p99, "max_ms": self.max})
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The command that runs this scenario again.
    pub replay: String,
    /// Instances at the start.
    pub instances: usize,
    /// Queues at the start.
    pub queues: usize,
    /// Simulated time, ms.
    pub sim_ms: u64,
    /// The fault kinds that were on.
    pub faults: Vec<&'static str>,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// Events processed.
    pub events: u64,
    /// The hash of the trace, when it was kept (tracing costs time, so swarms skip it).
    pub trace_hash: Option<u64>,
    /// The trace lines, if kept.
    pub trace: Option<String>,
    /// Process starts (first starts, restarts, joins).
    pub starts: u64,
    /// Instance-minutes of process lifetime.
    pub instance_minutes: f64,
    /// Messages sent, handled (handler runs), failed, deleted; successes beyond the first.
    pub messages: Messages,
    /// Failover gaps: crash to first receive by the next owner.
    pub failover: Vec<u64>,
    /// Hand-off gaps: last receive of the old owner to first of the new.
    pub handoff: Vec<u64>,
    /// Gaps after a takeover from a live but cut-off or timed-out owner.
    pub takeover: Vec<u64>,
    /// Gaps after a crash that left no instance up (they end with a restart).
    pub outage: Vec<u64>,
    /// Owner changes of queue records, all in the run.
    pub moves: u64,
    /// Owner changes after the calm point.
    pub settle_moves: u64,
    /// Queues whose owner at the end differs from the one at the calm point: the fewest moves
    /// settling could make.
    pub settle_optimum: u64,
    /// Largest minus smallest number of queues held per unit of weight at the end.
    pub balance_spread: f64,
    /// Graceful stops that finished, and their durations.
    pub stop_ms: Vec<u64>,
    /// Graceful stops that timed out (faults hit them).
    pub stops_timed_out: u64,
    /// Graceful stops whose life peers reaped first (the table was out of reach).
    pub stops_life_lost: u64,
    /// Overlaps caused by process pauses past the fence margin (reported, not violations).
    pub excused_overlaps: u64,
    /// DynamoDB requests, read units and write units, whole run, all instances.
    pub dynamo: (u64, f64, u64),
    /// Steady-state DynamoDB requests per instance per minute (after the calm point).
    pub steady_dynamo_per_instance_minute: Option<f64>,
    /// SQS calls by the instances, whole run.
    pub sqs_calls: u64,
    /// Instance slots used (started, joined).
    pub slots: usize,
    /// Every change of a queue record's owner: time in ms, queue, the new owner's slot.
    pub ownership: Vec<(u64, QueueId, Option<usize>)>,
    /// Every fault: time in ms, kind, the slot it hit.
    pub fault_marks: Vec<(u64, &'static str, Option<usize>)>,
}

/// Message counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Messages {
    /// Sent by the producer.
    pub sent: u64,
    /// Handler runs.
    pub handled: u64,
    /// Handler failures.
    pub failed: u64,
    /// Deleted.
    pub deleted: u64,
    /// Handled successfully more than once.
    pub duplicates: u64,
    /// Sent to a queue that still exists and never deleted.
    pub lost: u64,
}

impl Report {
    /// Builds the report of a finished world.
    pub(crate) fn of(w: &World) -> Report {
        let node_callers = |c: &String| c.starts_with("node-");
        let mut dynamo = (0, 0.0, 0);
        for (_, u) in w
            .dynamo
            .usage_by_caller()
            .iter()
            .filter(|(c, _)| node_callers(c))
        {
            dynamo.0 += u.total_requests();
            dynamo.1 += u.read_half_units as f64 / 2.0;
            dynamo.2 += u.write_units;
        }
        let sqs_calls = w
            .sqs
            .calls()
            .iter()
            .filter(|(c, _)| node_callers(c))
            .flat_map(|(_, ops)| ops.values())
            .sum();
        let violation = w.checker.violations.first().cloned();
        let lost = w.checker.outstanding(|q| w.sqs.exists(q.as_str())) as u64;
        Report {
            seed: w.sc.seed,
            replay: w.sc.replay.clone().unwrap_or_else(|| {
                crate::scenario::replay_command(
                    crate::scenario::Level::Core,
                    w.sc.seed,
                    &crate::scenario::SwarmLimits::default(),
                )
            }),
            instances: w.sc.instances,
            queues: w.sc.queues,
            sim_ms: w.now,
            faults: w.sc.faults.kinds().iter().map(|k| k.name()).collect(),
            violation,
            events: w.events,
            trace_hash: w.sc.trace.then(|| w.trace.hash()),
            trace: w.sc.trace.then(|| w.trace.text().to_owned()),
            starts: w.stats.starts,
            instance_minutes: w.stats.instance_ms as f64 / 60_000.0,
            messages: Messages {
                sent: w.checker.sent,
                handled: w.stats.handled,
                failed: w.stats.failed,
                deleted: w.checker.deleted,
                duplicates: w.checker.duplicates,
                lost,
            },
            failover: w.stats.failovers.clone(),
            handoff: w.stats.handoffs.clone(),
            takeover: w.stats.takeovers.clone(),
            outage: w.stats.outages.clone(),
            moves: w.stats.ownership.iter().filter(|m| m.2.is_some()).count() as u64,
            settle_moves: w.stats.moves_after_calm,
            settle_optimum: settle_optimum(w),
            balance_spread: balance_spread(w),
            stop_ms: w.stats.stop_ms.clone(),
            stops_timed_out: w.stats.stops_timed_out,
            stops_life_lost: w.stats.stops_life_lost,
            excused_overlaps: w.checker.excused_overlaps,
            dynamo,
            steady_dynamo_per_instance_minute: steady_rate(&w.stats),
            sqs_calls,
            slots: w.slots.len(),
            ownership: w.stats.ownership.clone(),
            fault_marks: w.stats.faults.clone(),
        }
    }

    /// The command that replays this run's seed.
    pub fn replay_command(&self) -> String {
        self.replay.clone()
    }

    /// `x` per instance-minute of the run (zero for a run without instance time).
    pub fn per_instance_minute(&self, x: f64) -> f64 {
        if self.instance_minutes > 0.0 {
            x / self.instance_minutes
        } else {
            0.0
        }
    }

    /// DynamoDB requests, read units and write units per instance-minute.
    pub fn dynamo_per_instance_minute(&self) -> (f64, f64, f64) {
        let per_min = |x| self.per_instance_minute(x);
        (
            per_min(self.dynamo.0 as f64),
            per_min(self.dynamo.1),
            per_min(self.dynamo.2 as f64),
        )
    }

    /// As one JSON object.
    pub fn json(&self) -> Json {
        let m = &self.messages;
        let (requests, read_units, write_units) = self.dynamo_per_instance_minute();
        json!({
            "seed": self.seed,
            "instances": self.instances,
            "queues": self.queues,
            "sim_ms": self.sim_ms,
            "faults": self.faults,
            "violations": u64::from(self.violation.is_some()),
            "violation": self.violation.as_ref().map(|v| json!({
                "event": v.event, "t_ms": v.t, "invariant": v.invariant.name(),
                "detail": v.detail, "replay": self.replay_command(),
            })),
            "events": self.events,
            "trace_hash": self.trace_hash.map(|h| format!("{h:016x}")),
            "messages": {"sent": m.sent, "handled": m.handled, "failed": m.failed,
                "deleted": m.deleted, "duplicates": m.duplicates, "lost": m.lost},
            "failover": Spread::of(&self.failover).json(),
            "handoff": Spread::of(&self.handoff).json(),
            "takeover": Spread::of(&self.takeover).json(),
            "outage": Spread::of(&self.outage).json(),
            "moves": self.moves,
            "settle_moves": self.settle_moves,
            "settle_optimum": self.settle_optimum,
            "balance_spread": self.balance_spread,
            "stops": {"clean": self.stop_ms.len(), "timed_out": self.stops_timed_out,
                "life_lost": self.stops_life_lost,
                "max_ms": self.stop_ms.iter().max().copied().unwrap_or(0)},
            "excused_overlaps": self.excused_overlaps,
            "instance_minutes": self.instance_minutes,
            "dynamo_per_instance_minute": {
                "requests": requests,
                "read_units": read_units,
                "write_units": write_units,
                "steady_requests": self.steady_dynamo_per_instance_minute,
            },
            "sqs_calls_per_instance_minute": self.per_instance_minute(self.sqs_calls as f64),
        })
    }
}

fn settle_optimum(w: &World) -> u64 {
    w.owners
        .iter()
        .filter(|(q, now)| {
            w.sqs.exists(q.as_str())
                && w.stats
                    .owners_at_calm
                    .get(*q)
                    .is_some_and(|then| then != *now)
        })
        .count() as u64
}

fn balance_spread(w: &World) -> f64 {
    let per_weight: Vec<f64> = w
        .slots
        .iter()
        .filter(|s| s.node.as_ref().is_some_and(|n| n.phase() == Phase::Running))
        .map(|s| s.pollers.len() as f64 / f64::from(s.weight))
        .collect();
    let max = per_weight.iter().copied().fold(f64::MIN, f64::max);
    let min = per_weight.iter().copied().fold(f64::MAX, f64::min);
    if per_weight.is_empty() {
        0.0
    } else {
        max - min
    }
}

/// DynamoDB requests per instance-minute between the first sample [`STEADY_AFTER_MS`] into
/// the final quiet stretch and the last sample.
fn steady_rate(s: &Stats) -> Option<f64> {
    // Steady: no fault and no change of hands for STEADY_AFTER_MS. In a run without faults
    // that is soon after the first convergence, so the window spans many reconciliations.
    let quiet_since = s
        .faults
        .iter()
        .filter(|f| f.1 != "calm")
        .map(|f| f.0)
        .chain(s.ownership.iter().map(|o| o.0))
        .max()
        .unwrap_or(0);
    let first = s
        .samples
        .iter()
        .find(|x| x.t >= quiet_since + STEADY_AFTER_MS)?;
    let last = s.samples.last()?;
    if last.t <= first.t || last.up == 0 {
        return None;
    }
    let minutes = (last.t - first.t) as f64 / 60_000.0;
    Some((last.dynamo_requests - first.dynamo_requests) as f64 / (last.up as f64 * minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_nearest_rank() {
        let s = Spread::of(&(1..=200).collect::<Vec<u64>>());
        assert_eq!((s.count, s.p50, s.p99, s.max), (200, 100, 198, 200));
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(Spread::of(&[7]).p99, 7);
    }

    #[test]
    fn gaps_are_classified_by_what_happened_to_the_previous_owner() {
        let q = QueueId::new("https://x/1/q").unwrap();
        let mut s = Stats::default();
        let up = |_: usize, _: u64| true;
        s.receive_started(0, &q, (0, 1), up);
        s.receive_ended(100, &q, (0, 1));
        s.crashed.insert((0, 1), 150);
        s.receive_started(1_150, &q, (1, 1), up);
        s.receive_ended(2_000, &q, (1, 1));
        s.handed_off.insert((q.clone(), (1, 1)), Some((2, 1)));
        s.receive_started(2_300, &q, (2, 1), up);
        s.receive_ended(2_400, &q, (2, 1));
        s.receive_started(2_900, &q, (0, 3), up);
        s.crashed.insert((0, 3), 3_000);
        s.receive_started(9_000, &q, (1, 2), |_, _| false);
        s.receive_ended(9_100, &q, (1, 2));
        // Released with nobody else up: an outage too, not a slow takeover.
        s.receive_started(12_000, &q, (2, 2), |_, _| false);
        assert_eq!(s.outages, vec![6_000, 2_900]);
        assert_eq!(s.failovers, vec![1_000]);
        assert_eq!(s.handoffs, vec![300]);
        assert_eq!(s.takeovers, vec![500]);
    }
}

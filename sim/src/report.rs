//! What a run measured: failover and hand-off gaps, moves, balance, cost and messages,
//! assembled once, for every level, from what the run leaves behind (`Finished`).
//!
//! Gaps are measured at the fake, between the last receive of one instance life on a queue and
//! the first receive of the next: a *failover* when the previous life crashed (measured from the
//! crash, as G4 states it), a *hand-off* when the previous life handed the queue over (measured
//! from its last receive), and a *takeover* otherwise (an instance cut off or whose stop timed
//! out lost the queue to a peer).

use crate::check::{Checker, Fleet, Violation, spread};
use crate::fake::{FakeDynamo, FakeSqs};
use crate::scenario::{Level, Scenario, SwarmLimits, replay_command};
use crate::stats::{STEADY_AFTER_MS, Stats};
use crate::trace::Trace;
use serde::Serialize;
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::{Owner, QueueId, TableReads};
use std::collections::BTreeMap;

/// Simple order statistics of a list of durations, ms (in JSON: `count`, `p50_ms`, `p99_ms`,
/// `max_ms`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// How many.
    pub count: usize,
    /// The median.
    #[serde(rename = "p50_ms")]
    pub p50: u64,
    /// The 99th percentile (nearest rank).
    #[serde(rename = "p99_ms")]
    pub p99: u64,
    /// The largest.
    #[serde(rename = "max_ms")]
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
}

/// How evenly the instances running at the end shared the work (G14), per unit of weight:
/// the most and the least over the mean.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WorkShare {
    /// The traffic shape (`Traffic::name`).
    pub traffic: &'static str,
    /// What the targets balanced: `count` or `load`.
    pub balance: &'static str,
    /// Queues that changed owner while the work share counted, per hour, in percent of the
    /// queues (G14 asks for at most 1 under steady traffic).
    pub moved_percent_per_hour: f64,
    /// Handler time started in the second half of the run before the calm: the most.
    pub handler_max_over_mean: f64,
    /// … and the least.
    pub handler_min_over_mean: f64,
    /// The busiest queue's handler time on the heaviest instance: the least the most loaded
    /// instance can have under any assignment that gives each queue to one instance (one
    /// queue alone can be above the goal).
    pub largest_queue_over_mean: f64,
    /// Queues owned at the end (what count balance evens out): the most.
    pub queues_max_over_mean: f64,
    /// … and the least.
    pub queues_min_over_mean: f64,
}

impl WorkShare {
    /// The share of `fleet`'s running instances in a run of `sc`, with `stats.work_ms` their
    /// handler time by slot.
    fn of(sc: &Scenario, fleet: &Fleet, stats: &Stats) -> Option<WorkShare> {
        let (from, to) = (sc.work_share_from_ms(), sc.calm_at_ms());
        let moved = (stats.ownership.iter())
            .filter(|(at, _, who)| who.is_some() && (from..to).contains(at))
            .count() as f64;
        let hours = to.saturating_sub(from).max(1) as f64 / 3_600_000.0;
        let queue_count = fleet.queues.len().max(1) as f64;
        let work_ms = &stats.work_ms;
        let weight = |i: &crate::check::Instance| f64::from(i.weight.max(1));
        let handler: Vec<f64> = (fleet.running())
            .map(|(slot, i)| work_ms.get(slot).copied().unwrap_or(0) as f64 / weight(i))
            .collect();
        let queues: Vec<f64> = (fleet.running())
            .map(|(_, i)| i.receiving.len() as f64 / weight(i))
            .collect();
        let (handler_max_over_mean, handler_min_over_mean) = over_mean(&handler)?;
        let mean = handler.iter().sum::<f64>() / handler.len() as f64;
        // Per unit of weight, the busiest queue weighs least on the heaviest member.
        let heaviest = (fleet.running())
            .map(|(_, i)| weight(i))
            .fold(1.0, f64::max);
        let largest = stats.queue_work_ms.values().copied().max().unwrap_or(0) as f64 / heaviest;
        let (queues_max_over_mean, queues_min_over_mean) = over_mean(&queues)?;
        Some(WorkShare {
            traffic: sc.traffic.name(),
            balance: match sc.balance {
                Balance::Load { .. } => "load",
                _ => "count",
            },
            moved_percent_per_hour: 100.0 * moved / queue_count / hours,
            handler_max_over_mean,
            handler_min_over_mean,
            largest_queue_over_mean: largest / mean,
            queues_max_over_mean,
            queues_min_over_mean,
        })
    }
}

/// How long messages waited from their send to their handler's start (level 1), over the
/// time the work share counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Dwell {
    /// Every message's.
    pub all: Spread,
    /// The 99th percentile of the queue where it is highest.
    pub worst_queue_p99_ms: u64,
}

impl Dwell {
    fn of(by_queue: &BTreeMap<QueueId, Vec<u64>>) -> Option<Dwell> {
        let all: Vec<u64> = by_queue.values().flatten().copied().collect();
        (!all.is_empty()).then(|| Dwell {
            all: Spread::of(&all),
            worst_queue_p99_ms: (by_queue.values())
                .map(|v| Spread::of(v).p99)
                .max()
                .unwrap_or(0),
        })
    }
}

/// The largest and the smallest of `v` over its mean; `None` if empty or all zero.
fn over_mean(v: &[f64]) -> Option<(f64, f64)> {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    if v.is_empty() || mean <= 0.0 {
        return None;
    }
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    Some((max / mean, min / mean))
}

/// What a finished run of any level leaves behind, lent to [`Report::of`].
pub(crate) struct Finished<'a> {
    /// The scenario run.
    pub sc: &'a Scenario,
    /// The level that ran it (for the replay command of a scenario that has none).
    pub level: Level,
    /// Simulated time at the end, ms.
    pub sim_ms: u64,
    /// Events processed.
    pub events: u64,
    /// The trace.
    pub trace: &'a Trace,
    /// The trace's hash, when the level kept it.
    pub trace_hash: Option<u64>,
    /// The run's counters.
    pub stats: &'a Stats,
    /// The invariant checker, with its message ledger.
    pub checker: &'a Checker,
    /// The fake DynamoDB, for its bill.
    pub dynamo: &'a FakeDynamo,
    /// The fake SQS, for its calls and which queues exist.
    pub sqs: &'a FakeSqs,
    /// The fleet at the end.
    pub fleet: Fleet,
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
    /// Partition keys the run asks to spread the queue records over (at levels 2 and 3 the
    /// odd instances ask for one, and the fleet follows whichever layout is recorded first).
    pub queue_partition_keys: u32,
    /// Partition keys the run asks to spread the instance records over.
    pub instance_partition_keys: u32,
    /// Simulated time, ms.
    pub sim_ms: u64,
    /// The fault kinds that were on.
    pub faults: Vec<&'static str>,
    /// The scripted membership events (`none`, or a [`crate::scenario::Schedule`]'s name).
    pub schedule: &'static str,
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
    /// How evenly the instances shared the handler time and the queues (every level).
    pub work_share: Option<WorkShare>,
    /// How long messages waited for a handler (level 1 only).
    pub dwell: Option<Dwell>,
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
    /// The busiest partition key's read and write units a second, in its busiest minute.
    pub partition_peak: crate::fake::dynamo::PartitionPeak,
    /// Steady-state DynamoDB requests per instance per minute (after the calm point).
    pub steady_dynamo_per_instance_minute: Option<f64>,
    /// Whole-table reads by what asked for them, all lives (level 1; the runtime's nodes of
    /// levels 2 and 3 are not counted).
    pub table_reads: Option<TableReads>,
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
#[derive(Clone, Copy, Debug, Default, Serialize)]
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
    /// Builds the report of a finished run of any level.
    pub(crate) fn of(f: &Finished<'_>) -> Report {
        let sc = f.sc;
        let exists = |q: &QueueId| f.sqs.exists(q.as_str());
        Report {
            seed: sc.seed,
            replay: sc
                .replay
                .clone()
                .unwrap_or_else(|| replay_command(f.level, sc.seed, &SwarmLimits::default())),
            instances: sc.instances,
            queues: sc.queues,
            queue_partition_keys: sc.queue_partition_keys,
            instance_partition_keys: sc.instance_partition_keys,
            sim_ms: f.sim_ms,
            faults: sc.faults.kinds().iter().map(|k| k.name()).collect(),
            schedule: sc.schedule.name(),
            violation: f.checker.violations.first().cloned(),
            events: f.events,
            trace_hash: f.trace_hash,
            trace: sc.trace.then(|| f.trace.text().to_owned()),
            starts: f.stats.starts,
            instance_minutes: f.stats.instance_ms as f64 / 60_000.0,
            messages: messages(f.stats, f.checker, exists),
            failover: f.stats.failovers.clone(),
            handoff: f.stats.handoffs.clone(),
            takeover: f.stats.takeovers.clone(),
            outage: f.stats.outages.clone(),
            moves: f.stats.ownership.iter().filter(|m| m.2.is_some()).count() as u64,
            settle_moves: f.stats.moves_after_calm,
            settle_optimum: settle_optimum(&f.fleet.records, &f.stats.owners_at_calm, exists),
            balance_spread: spread(&f.fleet),
            work_share: WorkShare::of(sc, &f.fleet, f.stats),
            dwell: Dwell::of(&f.stats.dwell_ms),
            stop_ms: f.stats.stop_ms.clone(),
            stops_timed_out: f.stats.stops_timed_out,
            stops_life_lost: f.stats.stops_life_lost,
            excused_overlaps: f.checker.excused_overlaps,
            dynamo: dynamo_usage(f.dynamo),
            partition_peak: f.dynamo.partition_peak(),
            steady_dynamo_per_instance_minute: steady_rate(f.stats),
            table_reads: (f.level == Level::Core).then_some(f.stats.table_reads),
            sqs_calls: sqs_calls(f.sqs),
            slots: f.fleet.instances.len(),
            ownership: f.stats.ownership.clone(),
            fault_marks: f.stats.faults.clone(),
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
    pub fn json(&self) -> crate::summary::ReportJson<'_> {
        crate::summary::ReportJson::of(self)
    }
}

/// Whether `caller` is an instance (not the producer or the harness).
fn is_node(caller: &str) -> bool {
    caller.starts_with("node-")
}

/// DynamoDB requests, read units and write units of the instances.
fn dynamo_usage(dynamo: &FakeDynamo) -> (u64, f64, u64) {
    let mut sum = (0, 0.0, 0);
    for (_, u) in dynamo.usage_by_caller().iter().filter(|(c, _)| is_node(c)) {
        sum.0 += u.total_requests();
        sum.1 += u.read_half_units as f64 / 2.0;
        sum.2 += u.write_units;
    }
    sum
}

/// SQS calls made by the instances.
fn sqs_calls(sqs: &FakeSqs) -> u64 {
    sqs.calls()
        .iter()
        .filter(|(c, _)| is_node(c))
        .flat_map(|(_, ops)| ops.values())
        .sum()
}

/// The message counts, from the checker's ledger and the handler counters.
fn messages(stats: &Stats, checker: &Checker, exists: impl Fn(&QueueId) -> bool) -> Messages {
    Messages {
        sent: checker.sent,
        handled: stats.handled,
        failed: stats.failed,
        deleted: checker.deleted,
        duplicates: checker.duplicates,
        lost: checker.outstanding(exists) as u64,
    }
}

/// Queues that still exist whose owner now differs from the one at the calm point: the fewest
/// moves settling could make.
fn settle_optimum(
    now: &BTreeMap<QueueId, Option<Owner>>,
    at_calm: &BTreeMap<QueueId, Option<Owner>>,
    exists: impl Fn(&QueueId) -> bool,
) -> u64 {
    now.iter()
        .filter(|(q, owner)| exists(q) && at_calm.get(*q).is_some_and(|then| then != *owner))
        .count() as u64
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
        s.handed_off
            .insert((q.clone(), (1, 1)), (Some((2, 1)), 2_100));
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
        assert_eq!(
            s.handoffs,
            vec![200],
            "from the hand-off, after the last receive"
        );
        assert_eq!(s.takeovers, vec![500]);
    }
}

//! The JSON shapes of a run's report and a swarm's summary (`sim run --json`, `sim swarm
//! --json`): plain structs that serde writes, one field per key.

use crate::report::{Messages, Report, Spread};
use crate::swarm::SwarmSummary;
use serde::Serialize;
use sqsbalancer_core::ReadCause;
use std::collections::BTreeMap;

/// A broken invariant in a run's JSON.
#[derive(Serialize)]
pub struct ViolationJson<'a> {
    /// The event it was found at.
    pub event: u64,
    /// Simulated time, ms.
    pub t_ms: u64,
    /// The invariant's name.
    pub invariant: &'static str,
    /// Its class: safety, liveness or crash.
    pub class: &'static str,
    /// What was seen.
    pub detail: &'a str,
    /// The command that replays the run.
    pub replay: String,
}

/// Graceful stops in a run's JSON.
#[derive(Serialize)]
pub struct StopsJson {
    /// Stops that finished.
    pub clean: usize,
    /// Stops that timed out.
    pub timed_out: u64,
    /// Stops whose life peers reaped first.
    pub life_lost: u64,
    /// The longest finished stop, ms.
    pub max_ms: u64,
}

/// DynamoDB's cost per instance-minute in a run's JSON.
#[derive(Serialize)]
pub struct DynamoJson {
    /// Requests.
    pub requests: f64,
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Requests after the calm point.
    pub steady_requests: Option<f64>,
}

/// The gaps in receiving, by cause, each as its spread.
#[derive(Serialize)]
pub struct GapsJson {
    /// From a crash to the next owner's first receive.
    pub failover: Spread,
    /// From the old owner's last receive to the new owner's first, at a hand-off.
    pub handoff: Spread,
    /// After a takeover from a live but cut-off owner.
    pub takeover: Spread,
    /// After a crash that left no instance up.
    pub outage: Spread,
}

impl GapsJson {
    /// The spreads of the four lists of gaps, ms.
    fn of(failover: &[u64], handoff: &[u64], takeover: &[u64], outage: &[u64]) -> GapsJson {
        GapsJson {
            failover: Spread::of(failover),
            handoff: Spread::of(handoff),
            takeover: Spread::of(takeover),
            outage: Spread::of(outage),
        }
    }
}

/// One run's report as JSON.
#[derive(Serialize)]
pub struct ReportJson<'a> {
    /// The seed.
    pub seed: u64,
    /// Instances at the start.
    pub instances: usize,
    /// Queues at the start.
    pub queues: usize,
    /// Partition keys the run asks to spread the queue records over.
    pub queue_partition_keys: u32,
    /// Partition keys the run asks to spread the instance records over.
    pub instance_partition_keys: u32,
    /// Simulated time, ms.
    pub sim_ms: u64,
    /// The fault kinds that were on.
    pub faults: &'a [&'static str],
    /// The scripted membership events.
    pub schedule: &'static str,
    /// 1 when an invariant broke, else 0.
    pub violations: u64,
    /// The broken invariant.
    pub violation: Option<ViolationJson<'a>>,
    /// Events processed.
    pub events: u64,
    /// The trace's hash, in hex, when it was kept.
    pub trace_hash: Option<String>,
    /// Message counts.
    pub messages: Messages,
    /// The gaps in receiving, by cause.
    #[serde(flatten)]
    pub gaps: GapsJson,
    /// Owner changes in all.
    pub moves: u64,
    /// Owner changes after the calm point.
    pub settle_moves: u64,
    /// The fewest moves settling could make.
    pub settle_optimum: u64,
    /// Largest minus smallest queues per unit of weight at the end.
    pub balance_spread: f64,
    /// How evenly the instances shared the handler time and the queues (every level).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_share: Option<crate::report::WorkShare>,
    /// How long messages waited for a handler (level 1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell: Option<crate::report::Dwell>,
    /// Graceful stops.
    pub stops: StopsJson,
    /// Overlaps excused by pauses past the fence margin.
    pub excused_overlaps: u64,
    /// Instance-minutes of process lifetime.
    pub instance_minutes: f64,
    /// DynamoDB's cost.
    pub dynamo_per_instance_minute: DynamoJson,
    /// The busiest partition key's load in its busiest simulated minute, against DynamoDB's
    /// per-partition limits.
    pub partition_peak: crate::fake::dynamo::PartitionPeak,
    /// Whole-table reads per instance-hour by what asked for them (level 1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_reads_per_instance_hour: Option<BTreeMap<&'static str, f64>>,
    /// Level 1: reads of the records of queues awaited from their holders, each in place of
    /// a table read, per instance-hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_reads_per_instance_hour: Option<f64>,
    /// Level 1: of the queue records the table reads brought back, the share that had
    /// appeared, changed or vanished since the reader's read before (docs/design.md §4.12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_read_changed_share: Option<f64>,
    /// SQS calls per instance-minute.
    pub sqs_calls_per_instance_minute: f64,
}

impl<'a> ReportJson<'a> {
    /// The JSON of `r`.
    pub fn of(r: &'a Report) -> ReportJson<'a> {
        let (requests, read_units, write_units) = r.dynamo_per_instance_minute();
        let violation = r.violation.as_ref().map(|v| ViolationJson {
            event: v.event,
            t_ms: v.t,
            invariant: v.invariant.name(),
            class: v.invariant.class().name(),
            detail: &v.detail,
            replay: r.replay_command(),
        });
        ReportJson {
            seed: r.seed,
            instances: r.instances,
            queues: r.queues,
            queue_partition_keys: r.queue_partition_keys,
            instance_partition_keys: r.instance_partition_keys,
            sim_ms: r.sim_ms,
            faults: &r.faults,
            schedule: r.schedule,
            violations: u64::from(r.violation.is_some()),
            violation,
            events: r.events,
            trace_hash: r.trace_hash.map(|h| format!("{h:016x}")),
            messages: r.messages,
            gaps: GapsJson::of(&r.failover, &r.handoff, &r.takeover, &r.outage),
            moves: r.moves,
            settle_moves: r.settle_moves,
            settle_optimum: r.settle_optimum,
            balance_spread: r.balance_spread,
            work_share: r.work_share,
            dwell: r.dwell,
            stops: StopsJson {
                clean: r.stop_ms.len(),
                timed_out: r.stops_timed_out,
                life_lost: r.stops_life_lost,
                max_ms: r.stop_ms.iter().max().copied().unwrap_or(0),
            },
            excused_overlaps: r.excused_overlaps,
            instance_minutes: r.instance_minutes,
            dynamo_per_instance_minute: DynamoJson {
                requests,
                read_units,
                write_units,
                steady_requests: r.steady_dynamo_per_instance_minute,
            },
            partition_peak: r.partition_peak,
            table_reads_per_instance_hour: r.table_reads.map(|t| {
                ReadCause::ALL
                    .iter()
                    .map(|&c| (c.name(), r.per_instance_minute(t.get(c) as f64) * 60.0))
                    .collect()
            }),
            records_reads_per_instance_hour: r
                .table_reads
                .map(|t| r.per_instance_minute(t.records() as f64) * 60.0),
            table_read_changed_share: r.table_reads.map(|t| {
                let (returned, changed) = t.answers();
                changed as f64 / returned.max(1) as f64
            }),
            sqs_calls_per_instance_minute: r.per_instance_minute(r.sqs_calls as f64),
        }
    }
}

/// A failing seed in a swarm's JSON.
#[derive(Serialize)]
pub struct FailingJson<'a> {
    /// The seed.
    pub seed: u64,
    /// The broken invariant's name.
    pub invariant: Option<&'static str>,
    /// Its class.
    pub class: Option<&'static str>,
    /// What was seen.
    pub detail: Option<&'a str>,
    /// The command that replays it.
    pub replay: String,
}

/// A swarm's message counts.
#[derive(Serialize)]
pub struct SwarmMessagesJson {
    /// Sent.
    pub sent: u64,
    /// Lost.
    pub lost: u64,
    /// Handled successfully more than once.
    pub duplicates: u64,
}

/// The spread of the runs' steady DynamoDB requests per instance-minute.
#[derive(Serialize)]
pub struct SteadyJson {
    /// Runs that measured it.
    pub runs: usize,
    /// The median.
    pub p50: f64,
    /// The largest.
    pub max: f64,
}

/// A swarm's summary as JSON; `violations` is the count of failing seeds.
#[derive(Serialize)]
pub struct SwarmJson<'a> {
    /// The first seed.
    pub from: u64,
    /// Seeds run.
    pub seeds: u64,
    /// Failing seeds.
    pub violations: usize,
    /// Each failing seed.
    pub failing: Vec<FailingJson<'a>>,
    /// Runs each fault kind was on in.
    pub fault_kinds: &'a BTreeMap<&'static str, u64>,
    /// The gaps in receiving, by cause.
    #[serde(flatten)]
    pub gaps: GapsJson,
    /// Events.
    pub events: u64,
    /// Simulated time, ms.
    pub sim_ms: u64,
    /// Message counts.
    pub messages: SwarmMessagesJson,
    /// Overlaps excused by pauses past the fence margin.
    pub excused_overlaps: u64,
    /// Moves after the calm point.
    pub settle_moves: u64,
    /// The fewest that could have been made.
    pub settle_optimum: u64,
    /// Steady DynamoDB requests per instance-minute.
    pub steady_dynamo_requests_per_instance_minute: SteadyJson,
}

impl<'a> SwarmJson<'a> {
    /// The JSON of `s`.
    pub fn of(s: &'a SwarmSummary) -> SwarmJson<'a> {
        // Hundredths, so the spread's whole-number percentiles keep two decimals.
        let hundredths: Vec<u64> = s
            .steady_dynamo
            .iter()
            .map(|x| (x * 100.0).round() as u64)
            .collect();
        let steady = Spread::of(&hundredths);
        let failing = (s.failing.iter())
            .map(|r| FailingJson {
                seed: r.seed,
                invariant: r.violation.as_ref().map(|v| v.invariant.name()),
                class: r.violation.as_ref().map(|v| v.invariant.class().name()),
                detail: r.violation.as_ref().map(|v| v.detail.as_str()),
                replay: r.replay_command(),
            })
            .collect();
        SwarmJson {
            from: s.from,
            seeds: s.seeds,
            violations: s.violations(),
            failing,
            fault_kinds: &s.kinds,
            gaps: GapsJson::of(&s.failover, &s.handoff, &s.takeover, &s.outage),
            events: s.events,
            sim_ms: s.sim_ms,
            messages: SwarmMessagesJson {
                sent: s.sent,
                lost: s.lost,
                duplicates: s.duplicates,
            },
            excused_overlaps: s.excused_overlaps,
            settle_moves: s.settle_moves.0,
            settle_optimum: s.settle_moves.1,
            steady_dynamo_requests_per_instance_minute: SteadyJson {
                runs: steady.count,
                p50: steady.p50 as f64 / 100.0,
                max: steady.max as f64 / 100.0,
            },
        }
    }
}

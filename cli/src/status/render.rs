//! The two ways a status report is printed: compact aligned tables for people, one JSON object
//! for scripts.

use super::watch::{Report, UnownedRow};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// The report as tables: instances, owners, unowned queues, then one summary line and what
/// the watch could not tell.
pub fn to_table(r: &Report) -> String {
    let mut out = instances_table(r);
    if let Some(owners) = owners_table(r) {
        out.push('\n');
        out.push_str(&owners);
    }
    if !r.unowned.is_empty() {
        let mut rows = vec![row(&["UNOWNED", "RECORD NAMES", "WHY", "FOR"])];
        rows.extend(r.unowned.iter().map(unowned_row));
        out.push('\n');
        out.push_str(&crate::table::render(&rows, &[]));
    }
    if let Some(listed) = r.unrecorded.as_ref().filter(|l| !l.is_empty()) {
        let names: Vec<&str> = listed.iter().map(|q| q.name()).collect();
        let _ = writeln!(out, "\nlisted, no record yet: {}", names.join(" "));
    }
    out.push('\n');
    push_summary(&mut out, r);
    out
}

/// One row per instance: its life, heartbeat, whether the heartbeat moved, and its share.
fn instances_table(r: &Report) -> String {
    let mut rows = vec![row(&[
        "INSTANCE",
        "INC",
        "HEARTBEAT",
        "ADVANCED",
        "STATUS",
        "CAPACITY",
        "QUEUES",
        "FAIR",
    ])];
    for i in &r.instances {
        let advanced = match i.advanced {
            None => "-".to_owned(),
            Some(true) => "yes".to_owned(),
            Some(false) => format!("no, {}", secs(i.unchanged_for)),
        };
        rows.push(vec![
            i.life.id.to_string(),
            i.life.incarnation.to_string(),
            i.heartbeat.to_string(),
            advanced,
            i.liveness.word(i.status).to_owned(),
            i.capacity.to_string(),
            i.queues.len().to_string(),
            i.fair.map_or("-".to_owned(), |f| f.to_string()),
        ]);
    }
    crate::table::render(&rows, &[1, 2, 5, 6, 7])
}

/// The queues each owning instance holds, by name; `None` when no instance owns any.
fn owners_table(r: &Report) -> Option<String> {
    let owners: Vec<Vec<String>> = r
        .instances
        .iter()
        .filter(|i| !i.queues.is_empty())
        .map(|i| {
            let names: Vec<&str> = i.queues.iter().map(|q| q.name()).collect();
            vec![i.life.to_string(), names.join(" ")]
        })
        .collect();
    if owners.is_empty() {
        return None;
    }
    Some(crate::table::render(
        &[vec!["OWNER".to_owned(), "QUEUES".to_owned()]]
            .into_iter()
            .chain(owners)
            .collect::<Vec<_>>(),
        &[],
    ))
}

/// `n` partition keys, in words.
fn keys(n: u32) -> String {
    if n == 1 {
        "1 partition key".to_owned()
    } else {
        format!("{n} partition keys")
    }
}

/// The summary line (counts, balance, unowned, reads), then a hint when the watch was too
/// short to see a heartbeat go stale.
fn push_summary(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "{} queues ({} retired, over {}), {} instances{}; ",
        r.queues,
        r.retired,
        keys(r.queue_partition_keys),
        r.instances.len(),
        match r.instance_partition_keys {
            1 => String::new(),
            n => format!(" (over {})", keys(n)),
        }
    );
    match r.balance {
        Some(b) => {
            let _ = write!(
                out,
                "load {}..{}, fair {}..{}, {}; ",
                b.owned_min,
                b.owned_max,
                b.fair_min,
                b.fair_max,
                if b.balanced { "balanced" } else { "unbalanced" }
            );
        }
        None => out.push_str("no instance takes queues; "),
    }
    let _ = writeln!(
        out,
        "{} unowned, {} past the failover bound of {}; {} reads over {}",
        r.unowned.len(),
        r.stuck().len(),
        secs(r.timing.failover_bound()),
        r.reads,
        secs(r.window)
    );
    if !r.staleness_observed() {
        let _ = writeln!(
            out,
            "staleness not observed: watch at least two heartbeat intervals (--watch {})",
            secs(r.timing.stale_after())
        );
    }
}

fn unowned_row(u: &UnownedRow) -> Vec<String> {
    vec![
        u.queue.name().to_owned(),
        u.owner.as_ref().map_or("-".to_owned(), ToString::to_string),
        u.why.words().to_owned(),
        format!(
            "{}{}",
            secs(u.unowned_for),
            if u.past_bound { " (past bound)" } else { "" }
        ),
    ]
}

/// One instance in the JSON report.
#[derive(Serialize)]
struct InstanceJson<'a> {
    /// Its id.
    id: &'a str,
    /// Its current life.
    incarnation: u64,
    /// `id#incarnation`.
    life: String,
    /// Its heartbeat counter at the last read.
    heartbeat: u64,
    /// Whether the heartbeat moved during the watch (`None`: one read only).
    heartbeat_advanced: Option<bool>,
    /// How long the heartbeat has not moved, ms.
    unchanged_ms: u64,
    /// Its status as judged.
    status: &'a str,
    /// Whether its liveness was observed (the watch was long enough).
    observed: bool,
    /// Its capacity weight.
    capacity: u32,
    /// Queues it owns.
    queues: usize,
    /// Its fair share of queues.
    fair: Option<usize>,
}

/// One unowned queue in the JSON report.
#[derive(Serialize)]
struct UnownedJson<'a> {
    /// The queue's URL.
    queue: &'a str,
    /// The life its record names, if any.
    owner: Option<String>,
    /// Why it is unowned.
    why: &'a str,
    /// For how long, ms.
    unowned_ms: u64,
    /// Whether that is past the failover bound.
    past_bound: bool,
}

/// The balance in the JSON report.
#[derive(Serialize)]
struct BalanceJson {
    /// The fewest queues an instance owns.
    owned_min: usize,
    /// The most.
    owned_max: usize,
    /// The smallest fair share.
    fair_min: usize,
    /// The largest.
    fair_max: usize,
    /// Whether every instance owns its fair share.
    balanced: bool,
}

/// The report as `--json` prints it.
#[derive(Serialize)]
struct ReportJson<'a> {
    /// Reads of the table.
    reads: usize,
    /// How long the watch lasted, ms.
    window_ms: u64,
    /// Whether the watch was long enough to see a heartbeat go stale.
    staleness_observed: bool,
    /// The fleet's heartbeat interval, ms.
    heartbeat_interval_ms: u64,
    /// Its heartbeat timeout, ms.
    heartbeat_timeout_ms: u64,
    /// Its failover bound, ms.
    failover_bound_ms: u64,
    /// Queue records.
    queues: usize,
    /// Retired queue records.
    retired: usize,
    /// Partition keys the queue records are spread over.
    queue_partition_keys: u32,
    /// Partition keys the instance records are spread over.
    instance_partition_keys: u32,
    /// Every instance.
    instances: Vec<InstanceJson<'a>>,
    /// The queue URLs each owning instance holds.
    owners: BTreeMap<&'a str, Vec<&'a str>>,
    /// The balance, when any instance takes queues.
    balance: Option<BalanceJson>,
    /// Queues without a live owner.
    unowned: Vec<UnownedJson<'a>>,
    /// How many of them are past the failover bound.
    unowned_past_bound: usize,
    /// Queues listed by SQS with no record yet (with `--queue-pattern`).
    unrecorded: Option<Vec<&'a str>>,
}

/// The report as one JSON object.
pub fn to_json(r: &Report) -> String {
    let instances = (r.instances.iter())
        .map(|i| InstanceJson {
            id: i.life.id.as_str(),
            incarnation: i.life.incarnation,
            life: i.life.to_string(),
            heartbeat: i.heartbeat,
            heartbeat_advanced: i.advanced,
            unchanged_ms: millis(i.unchanged_for),
            status: i.liveness.word(i.status).trim_end_matches('?'),
            observed: i.liveness != super::watch::Liveness::Unobserved,
            capacity: i.capacity,
            queues: i.queues.len(),
            fair: i.fair,
        })
        .collect();
    let owners = (r.instances.iter())
        .filter(|i| !i.queues.is_empty())
        .map(|i| {
            (
                i.life.id.as_str(),
                i.queues.iter().map(|q| q.as_str()).collect(),
            )
        })
        .collect();
    let unowned = (r.unowned.iter())
        .map(|u| UnownedJson {
            queue: u.queue.as_str(),
            owner: u.owner.as_ref().map(ToString::to_string),
            why: u.why.words(),
            unowned_ms: millis(u.unowned_for),
            past_bound: u.past_bound,
        })
        .collect();
    let balance = r.balance.map(|b| BalanceJson {
        owned_min: b.owned_min,
        owned_max: b.owned_max,
        fair_min: b.fair_min,
        fair_max: b.fair_max,
        balanced: b.balanced,
    });
    let report = ReportJson {
        reads: r.reads,
        window_ms: millis(r.window),
        staleness_observed: r.staleness_observed(),
        heartbeat_interval_ms: millis(r.timing.interval),
        heartbeat_timeout_ms: millis(r.timing.timeout),
        failover_bound_ms: millis(r.timing.failover_bound()),
        queues: r.queues,
        retired: r.retired,
        queue_partition_keys: r.queue_partition_keys,
        instance_partition_keys: r.instance_partition_keys,
        instances,
        owners,
        balance,
        unowned,
        unowned_past_bound: r.stuck().len(),
        unrecorded: (r.unrecorded.as_ref()).map(|l| l.iter().map(|q| q.as_str()).collect()),
    };
    serde_json::to_string(&report).expect("plain data serializes")
}

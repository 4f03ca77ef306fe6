//! The two ways a status report is printed: compact aligned tables for people, one JSON object
//! for scripts.

use super::watch::{Report, UnownedRow};
use serde_json::{Value, json};
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

/// The summary line (counts, balance, unowned, reads), then a hint when the watch was too
/// short to see a heartbeat go stale.
fn push_summary(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "{} queues ({} retired), {} instances; ",
        r.queues,
        r.retired,
        r.instances.len()
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

/// The report as one JSON object.
pub fn to_json(r: &Report) -> Value {
    let instances: Vec<Value> = r
        .instances
        .iter()
        .map(|i| {
            json!({
                "id": i.life.id.as_str(),
                "incarnation": i.life.incarnation,
                "life": i.life.to_string(),
                "heartbeat": i.heartbeat,
                "heartbeat_advanced": i.advanced,
                "unchanged_ms": millis(i.unchanged_for),
                "status": i.liveness.word(i.status).trim_end_matches('?'),
                "observed": i.liveness != super::watch::Liveness::Unobserved,
                "capacity": i.capacity,
                "queues": i.queues.len(),
                "fair": i.fair,
            })
        })
        .collect();
    let owners: serde_json::Map<String, Value> = r
        .instances
        .iter()
        .filter(|i| !i.queues.is_empty())
        .map(|i| {
            let urls: Vec<&str> = i.queues.iter().map(|q| q.as_str()).collect();
            (i.life.id.as_str().to_owned(), json!(urls))
        })
        .collect();
    let unowned: Vec<Value> = r
        .unowned
        .iter()
        .map(|u| {
            json!({
                "queue": u.queue.as_str(),
                "owner": u.owner.as_ref().map(ToString::to_string),
                "why": u.why.words(),
                "unowned_ms": millis(u.unowned_for),
                "past_bound": u.past_bound,
            })
        })
        .collect();
    let balance = r.balance.map(|b| {
        json!({
            "owned_min": b.owned_min,
            "owned_max": b.owned_max,
            "fair_min": b.fair_min,
            "fair_max": b.fair_max,
            "balanced": b.balanced,
        })
    });
    json!({
        "reads": r.reads,
        "window_ms": millis(r.window),
        "staleness_observed": r.staleness_observed(),
        "heartbeat_interval_ms": millis(r.timing.interval),
        "heartbeat_timeout_ms": millis(r.timing.timeout),
        "failover_bound_ms": millis(r.timing.failover_bound()),
        "queues": r.queues,
        "retired": r.retired,
        "instances": instances,
        "owners": owners,
        "balance": balance,
        "unowned": unowned,
        "unowned_past_bound": r.stuck().len(),
        "unrecorded": r.unrecorded.as_ref().map(|l| l.iter().map(|q| q.as_str()).collect::<Vec<_>>()),
    })
}

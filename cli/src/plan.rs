//! `sqsbalancer plan`: the target assignment for a fleet, computed offline from plain files.
//!
//! Members file: one instance id per line, optionally followed by whitespace and an integer
//! weight (default 1). Queues file: one queue URL or name per line. In both, a line starting with
//! `#` is a comment; blank lines are skipped in the members file and refused in the queues file
//! (a blank queue line is almost always a broken export). The optional current-owner file is the
//! JSON an earlier `plan --json` printed, whole or just its `"assignment"` object. The optional
//! loads file gives queues' loads, one queue and a whole number per line (`#` comments and blank
//! lines skipped, an unlisted queue's load 0): the plan then balances load, not counts.

use crate::error::CliError;
use serde_json::{Map, Value};
use sqsbalancer_core::{Assignment, Band, InstanceId, Member, QueueId, assign, assign_by_load};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

fn line_err(path: &Path, line: usize, reason: impl Into<String>) -> CliError {
    CliError::Line {
        path: path.to_owned(),
        line,
        reason: reason.into(),
    }
}

/// The lines of a members or loads file that say something: each one's 1-based number, its
/// first field and the fields after it. Blank lines and `#` comments are skipped.
fn records(text: &str) -> impl Iterator<Item = (usize, &str, std::str::SplitWhitespace<'_>)> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next()?;
        Some((i + 1, first, fields))
    })
}

/// Parses a members file.
pub fn parse_members(path: &Path, text: &str) -> Result<Vec<Member>, CliError> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<InstanceId, usize> = BTreeMap::new();
    for (n, name, mut fields) in records(text) {
        let id = InstanceId::new(name).map_err(|e| line_err(path, n, e.to_string()))?;
        let weight = match fields.next() {
            None => 1,
            Some(w) => match w.parse::<u32>() {
                Ok(0) => {
                    return Err(line_err(
                        path,
                        n,
                        format!("weight of {name} must be at least 1, got 0"),
                    ));
                }
                Ok(w) if w > sqsbalancer_core::config::MAX_CAPACITY => {
                    return Err(line_err(
                        path,
                        n,
                        format!("weight of {name} must be at most 1000000, got {w}"),
                    ));
                }
                Ok(w) => w,
                Err(_) => {
                    return Err(line_err(
                        path,
                        n,
                        format!("weight of {name} must be a positive integer, got {w:?}"),
                    ));
                }
            },
        };
        if let Some(extra) = fields.next() {
            return Err(line_err(
                path,
                n,
                format!("unexpected {extra:?} after the weight (one member per line)"),
            ));
        }
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(line_err(
                path,
                n,
                format!("duplicate member {id} (first on line {first})"),
            ));
        }
        out.push(Member::new(id, weight));
    }
    Ok(out)
}

/// Parses a queues file.
pub fn parse_queues(path: &Path, text: &str) -> Result<Vec<QueueId>, CliError> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<QueueId, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            return Err(line_err(
                path,
                n,
                "blank queue line (one queue URL or name per line)",
            ));
        }
        let q = QueueId::new(line).map_err(|e| line_err(path, n, e.to_string()))?;
        if let Some(first) = seen.insert(q.clone(), n) {
            return Err(line_err(
                path,
                n,
                format!("duplicate queue {q} (first on line {first})"),
            ));
        }
        out.push(q);
    }
    Ok(out)
}

/// Parses a loads file against the queues it may name.
pub fn parse_loads(
    path: &Path,
    text: &str,
    queues: &[QueueId],
) -> Result<BTreeMap<QueueId, u64>, CliError> {
    let known: BTreeSet<&QueueId> = queues.iter().collect();
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<QueueId, usize> = BTreeMap::new();
    for (n, name, mut fields) in records(text) {
        let q = QueueId::new(name).map_err(|e| line_err(path, n, e.to_string()))?;
        let load = match (fields.next(), fields.next()) {
            (Some(l), None) => l.parse::<u64>().map_err(|_| {
                line_err(
                    path,
                    n,
                    format!("load of {q} must be a whole number, got {l:?}"),
                )
            })?,
            (None, _) => return Err(line_err(path, n, format!("no load after {q}"))),
            (Some(_), Some(extra)) => {
                let reason = format!("unexpected {extra:?} after the load (one queue per line)");
                return Err(line_err(path, n, reason));
            }
        };
        if !known.contains(&q) {
            return Err(line_err(path, n, format!("{q} is not in the queues file")));
        }
        if let Some(first) = seen.insert(q.clone(), n) {
            let reason = format!("duplicate queue {q} (first on line {first})");
            return Err(line_err(path, n, reason));
        }
        out.insert(q, load);
    }
    Ok(out)
}

/// The 1-based line where `needle` first appears in `text` (1 if it does not).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map_or(1, |at| text[..at].matches('\n').count() + 1)
}

/// Parses a current-owner file: `{"queue": "owner", ...}` or a whole earlier `--json` output.
pub fn parse_current(path: &Path, text: &str) -> Result<BTreeMap<QueueId, InstanceId>, CliError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| line_err(path, e.line().max(1), format!("malformed JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(line_err(
            path,
            1,
            "expected a JSON object mapping queue to owner",
        ));
    };
    let map = match top.remove("assignment") {
        Some(Value::Object(inner)) => inner,
        Some(other) => {
            top.insert("assignment".into(), other);
            top
        }
        None => top,
    };
    let mut out = BTreeMap::new();
    for (q, owner) in map {
        let at = line_of(text, &format!("{q:?}"));
        let Value::String(owner) = owner else {
            return Err(line_err(
                path,
                at,
                format!("owner of {q} must be a string, got {owner}"),
            ));
        };
        let queue = QueueId::new(&q).map_err(|e| line_err(path, at, e.to_string()))?;
        let id = InstanceId::new(&owner).map_err(|e| line_err(path, at, e.to_string()))?;
        out.insert(queue, id);
    }
    Ok(out)
}

/// The inputs of one plan.
pub struct PlanInput {
    /// The live members.
    pub members: Vec<Member>,
    /// Every queue to assign.
    pub queues: Vec<QueueId>,
    /// The owners before, if known.
    pub current: BTreeMap<QueueId, InstanceId>,
    /// The queues' loads and the band, when the plan balances load rather than counts.
    pub loads: Option<(BTreeMap<QueueId, u64>, Band)>,
}

/// The plan's input files.
pub struct PlanFiles<'a> {
    /// The members file.
    pub members: &'a Path,
    /// The queues file.
    pub queues: &'a Path,
    /// The current-owner file, if any.
    pub current: Option<&'a Path>,
    /// The loads file, if any.
    pub loads: Option<&'a Path>,
}

/// Reads and checks the files; `band` applies when there is a loads file.
pub fn load(files: &PlanFiles<'_>, band: Band) -> Result<PlanInput, CliError> {
    let members = parse_members(files.members, &read(files.members)?)?;
    let queues = parse_queues(files.queues, &read(files.queues)?)?;
    let current = match files.current {
        Some(p) => parse_current(p, &read(p)?)?,
        None => BTreeMap::new(),
    };
    let loads = match files.loads {
        Some(p) => Some((parse_loads(p, &read(p)?, &queues)?, band)),
        None => None,
    };
    Ok(PlanInput {
        members,
        queues,
        current,
        loads,
    })
}

/// Each member's work, the sum of its queues' loads (every member listed), when there are
/// loads.
fn work(a: &Assignment, input: &PlanInput) -> Option<BTreeMap<InstanceId, u64>> {
    let (loads, _) = input.loads.as_ref()?;
    let mut out: BTreeMap<InstanceId, u64> =
        a.members().iter().map(|m| (m.id.clone(), 0)).collect();
    for (q, m) in a.iter() {
        let load = loads.get(q).copied().unwrap_or(0);
        out.entry(m.clone())
            .and_modify(|w| *w = w.saturating_add(load));
    }
    Some(out)
}

/// The plan as one JSON object: `assignment`, `load` (queues per member) and `moved`, and with
/// loads `work` (the sum of each member's queues' loads).
pub fn to_json(a: &Assignment, input: &PlanInput) -> Value {
    let current = &input.current;
    let assignment: Map<String, Value> = a
        .iter()
        .map(|(q, m)| (q.to_string(), Value::String(m.to_string())))
        .collect();
    let load: Map<String, Value> = a
        .load()
        .into_iter()
        .map(|(m, n)| (m.to_string(), Value::from(n)))
        .collect();
    let moved: Vec<Value> = a
        .moved(current)
        .into_iter()
        .map(|q| Value::String(q.to_string()))
        .collect();
    let mut out = Map::new();
    out.insert("assignment".into(), Value::Object(assignment));
    out.insert("load".into(), Value::Object(load));
    out.insert("moved".into(), Value::Array(moved));
    if let Some(work) = work(a, input) {
        let work = work
            .into_iter()
            .map(|(m, w)| (m.to_string(), Value::from(w)));
        out.insert("work".into(), Value::Object(work.collect()));
    }
    Value::Object(out)
}

/// The plan as a readable table: one row per member, then one per queue, then totals.
pub fn to_table(a: &Assignment, input: &PlanInput) -> String {
    let moved: BTreeSet<QueueId> = a.moved(&input.current).into_iter().collect();
    let work = work(a, input);
    let load = a.load();
    let mut moved_in: BTreeMap<&InstanceId, usize> = BTreeMap::new();
    for (q, m) in a.iter() {
        if moved.contains(q) {
            *moved_in.entry(m).or_default() += 1;
        }
    }
    let mut header = ["INSTANCE", "WEIGHT", "QUEUES", "MOVED IN"]
        .map(str::to_owned)
        .to_vec();
    header.extend(work.is_some().then(|| "WORK".to_owned()));
    let members = a.members().iter().map(|m| {
        let moved = moved_in.get(&m.id).unwrap_or(&0);
        let cells = [m.weight as usize, load[&m.id], *moved].map(|n| n.to_string());
        let done = work.as_ref().map(|w| w[&m.id].to_string());
        (std::iter::once(m.id.to_string()).chain(cells).chain(done)).collect()
    });
    let rows: Vec<Vec<String>> = std::iter::once(header).chain(members).collect();
    let mut s = crate::table::render(&rows, &[1, 2, 3, 4]);
    let owners = a.iter().map(|(q, m)| {
        let mark = if moved.contains(q) { "  (moved)" } else { "" };
        vec![q.to_string(), format!("{m}{mark}")]
    });
    let header = vec!["QUEUE".to_owned(), "OWNER".to_owned()];
    let rows: Vec<Vec<String>> = std::iter::once(header).chain(owners).collect();
    s.push('\n');
    s.push_str(&crate::table::render(&rows, &[]));
    let min = load.values().min().copied().unwrap_or(0);
    let max = load.values().max().copied().unwrap_or(0);
    let _ = write!(
        s,
        "\n{} queues, {} members, {} moved, load {min}..{max}",
        a.len(),
        a.members().len(),
        moved.len()
    );
    if let Some(work) = &work {
        let min = work.values().min().copied().unwrap_or(0);
        let max = work.values().max().copied().unwrap_or(0);
        let _ = write!(s, ", work {min}..{max}");
    }
    s.push('\n');
    s
}

/// Computes the plan for `input`: by load when it has loads, else by count.
pub fn plan(input: &PlanInput) -> Assignment {
    match &input.loads {
        Some((loads, band)) => {
            assign_by_load(&input.members, &input.queues, &input.current, loads, *band)
        }
        None => assign(&input.members, &input.queues, &input.current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("f.txt")
    }

    fn line(e: CliError) -> usize {
        match e {
            CliError::Line { line, .. } => line,
            other => panic!("expected a line error, got {other}"),
        }
    }

    #[test]
    fn members_take_optional_weights_comments_and_blank_lines() {
        let m = parse_members(p(), "# fleet\na\n\nb 3\n  c\t2  \n").unwrap();
        let got: Vec<(&str, u32)> = m.iter().map(|m| (m.id.as_str(), m.weight)).collect();
        assert_eq!(got, [("a", 1), ("b", 3), ("c", 2)]);
    }

    #[test]
    fn bad_members_name_their_line() {
        assert_eq!(line(parse_members(p(), "a\nb\na\n").unwrap_err()), 3);
        assert_eq!(line(parse_members(p(), "a 0\n").unwrap_err()), 1);
        assert_eq!(line(parse_members(p(), "a\nb x\n").unwrap_err()), 2);
        assert_eq!(line(parse_members(p(), "a 1.5\n").unwrap_err()), 1);
        assert_eq!(line(parse_members(p(), "a 1 2\n").unwrap_err()), 1);
        assert_eq!(line(parse_members(p(), "\n\nbad#id\n").unwrap_err()), 3);
        let msg = parse_members(p(), "a\na\n").unwrap_err().to_string();
        assert_eq!(msg, "f.txt:2: duplicate member a (first on line 1)");
    }

    #[test]
    fn bad_queues_name_their_line() {
        assert_eq!(parse_queues(p(), "q1\nq2\n").unwrap().len(), 2);
        assert_eq!(line(parse_queues(p(), "q1\n\nq2\n").unwrap_err()), 2);
        assert_eq!(line(parse_queues(p(), "q1\n   \n").unwrap_err()), 2);
        assert_eq!(line(parse_queues(p(), "q1\nq1\n").unwrap_err()), 2);
    }

    #[test]
    fn current_accepts_a_map_or_a_whole_plan() {
        let a = parse_current(p(), r#"{"q1": "a", "q2": "b"}"#).unwrap();
        assert_eq!(a.len(), 2);
        let b = parse_current(
            p(),
            r#"{"assignment": {"q1": "a"}, "load": {"a": 1}, "moved": []}"#,
        )
        .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(
            line(parse_current(p(), "{\n\"q1\": \"a\",\n}").unwrap_err()),
            3
        );
        assert_eq!(
            line(parse_current(p(), "{\n\"q1\": \"a\",\n\"q2\": 7}").unwrap_err()),
            3
        );
        assert_eq!(line(parse_current(p(), "[1]").unwrap_err()), 1);
    }

    #[test]
    fn json_lists_every_queue_and_member_and_the_moves() {
        let input = PlanInput {
            members: parse_members(p(), "a\nb\n").unwrap(),
            queues: parse_queues(p(), "q1\nq2\nq3\n").unwrap(),
            current: parse_current(p(), r#"{"q1": "a"}"#).unwrap(),
            loads: None,
        };
        let a = plan(&input);
        let v = to_json(&a, &input);
        assert_eq!(v["assignment"].as_object().unwrap().len(), 3);
        assert_eq!(v["assignment"]["q1"], "a");
        let loads: Vec<u64> = v["load"]
            .as_object()
            .unwrap()
            .values()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(loads.iter().sum::<u64>(), 3);
        assert_eq!(v["moved"].as_array().unwrap().len(), 2);
        assert!(v.get("work").is_none());
        let table = to_table(&a, &input);
        assert!(
            table.contains("3 queues, 2 members, 2 moved, load 1..2"),
            "{table}"
        );
    }

    #[test]
    fn bad_loads_name_their_line() {
        let queues = parse_queues(p(), "q1\nq2\n").unwrap();
        let ok = parse_loads(p(), "# loads\nq1 5\n\nq2\t0\n", &queues).unwrap();
        assert_eq!(ok.values().copied().collect::<Vec<_>>(), [5, 0]);
        let err = |text| parse_loads(p(), text, &queues).unwrap_err();
        assert_eq!(line(err("q1 5\nq1 6\n")), 2);
        assert_eq!(line(err("q1\n")), 1);
        assert_eq!(line(err("q1 -1\n")), 1);
        assert_eq!(line(err("q1 1.5\n")), 1);
        assert_eq!(line(err("q1 1 2\n")), 1);
        let msg = err("q1 1\nq3 4\n").to_string();
        assert_eq!(msg, "f.txt:2: q3 is not in the queues file");
    }

    #[test]
    fn a_plan_with_loads_balances_work_and_reports_it() {
        // q1 carries as much as the other four together: it gets a member to itself.
        let input = PlanInput {
            members: parse_members(p(), "a\nb\n").unwrap(),
            queues: parse_queues(p(), "q1\nq2\nq3\nq4\nq5\n").unwrap(),
            current: BTreeMap::new(),
            loads: None,
        };
        let loads = parse_loads(p(), "q1 39\nq2 9\nq3 9\nq4 9\nq5 9\n", &input.queues).unwrap();
        let input = PlanInput {
            loads: Some((loads, Band::percent(5).unwrap())),
            ..input
        };
        let a = plan(&input);
        let v = to_json(&a, &input);
        let work: Vec<u64> = (v["work"].as_object().unwrap().values())
            .map(|x| x.as_u64().unwrap())
            .collect();
        let mut work = work;
        work.sort_unstable();
        assert_eq!(work, [36, 39]);
        let table = to_table(&a, &input);
        assert!(table.contains("WORK"), "{table}");
        assert!(
            table.ends_with("5 queues, 2 members, 5 moved, load 1..4, work 36..39\n"),
            "{table}"
        );
    }
}

//! `sqsbalancer plan`: the target assignment for a fleet, computed offline from plain files.
//!
//! Members file: one instance id per line, optionally followed by whitespace and an integer
//! weight (default 1). Queues file: one queue URL or name per line. In both, a line starting with
//! `#` is a comment; blank lines are skipped in the members file and refused in the queues file
//! (a blank queue line is almost always a broken export). The optional current-owner file is the
//! JSON an earlier `plan --json` printed, whole or just its `"assignment"` object.

use crate::error::CliError;
use serde_json::{Map, Value};
use sqsbalancer_core::{Assignment, InstanceId, Member, QueueId, assign};
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

/// Parses a members file.
pub fn parse_members(path: &Path, text: &str) -> Result<Vec<Member>, CliError> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<InstanceId, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap_or_default();
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
}

/// Reads and checks the three files.
pub fn load(members: &Path, queues: &Path, current: Option<&Path>) -> Result<PlanInput, CliError> {
    let m = parse_members(members, &read(members)?)?;
    let q = parse_queues(queues, &read(queues)?)?;
    let c = match current {
        Some(p) => parse_current(p, &read(p)?)?,
        None => BTreeMap::new(),
    };
    Ok(PlanInput {
        members: m,
        queues: q,
        current: c,
    })
}

/// The plan as one JSON object: `assignment`, `load` and `moved`.
pub fn to_json(a: &Assignment, current: &BTreeMap<QueueId, InstanceId>) -> Value {
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
    Value::Object(out)
}

/// The plan as a readable table: one row per member, then one per queue, then totals.
pub fn to_table(a: &Assignment, current: &BTreeMap<QueueId, InstanceId>) -> String {
    let moved: BTreeSet<QueueId> = a.moved(current).into_iter().collect();
    let load = a.load();
    let mut moved_in: BTreeMap<&InstanceId, usize> = BTreeMap::new();
    for (q, m) in a.iter() {
        if moved.contains(q) {
            *moved_in.entry(m).or_default() += 1;
        }
    }
    let header = ["INSTANCE", "WEIGHT", "QUEUES", "MOVED IN"].map(str::to_owned);
    let members = a.members().iter().map(|m| {
        let moved = moved_in.get(&m.id).unwrap_or(&0);
        let cells = [m.weight as usize, load[&m.id], *moved].map(|n| n.to_string());
        std::iter::once(m.id.to_string()).chain(cells).collect()
    });
    let rows: Vec<Vec<String>> = std::iter::once(header.to_vec()).chain(members).collect();
    let mut s = crate::table::render(&rows, &[1, 2, 3]);
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
    let _ = writeln!(
        s,
        "\n{} queues, {} members, {} moved, load {min}..{max}",
        a.len(),
        a.members().len(),
        moved.len()
    );
    s
}

/// Computes the plan for `input`.
pub fn plan(input: &PlanInput) -> Assignment {
    assign(&input.members, &input.queues, &input.current)
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
        };
        let a = plan(&input);
        let v = to_json(&a, &input.current);
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
        let table = to_table(&a, &input.current);
        assert!(
            table.contains("3 queues, 2 members, 2 moved, load 1..2"),
            "{table}"
        );
    }
}

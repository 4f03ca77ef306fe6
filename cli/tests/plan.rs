//! The `sqsbalancer plan` binary end to end, on files in a scratch directory.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("sqsbalancer-plan-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn plan(members: &Path, queues: &Path, current: Option<&Path>, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqsbalancer"));
    cmd.arg("plan")
        .arg("--members")
        .arg(members)
        .arg("--queues")
        .arg(queues);
    if let Some(c) = current {
        cmd.arg("--current").arg(c);
    }
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn queues_text(n: usize) -> String {
    (0..n)
        .map(|i| format!("https://sqs.us-east-1.amazonaws.com/1/orders-{i}\n"))
        .collect()
}

#[test]
fn a_plan_fed_back_moves_nothing_and_a_leave_moves_only_the_leavers() {
    let s = Scratch::new();
    let members = s.file("members", "i-a\ni-b 2\ni-c\n");
    let queues = s.file("queues", &queues_text(40));
    let first = json(&plan(&members, &queues, None, true));
    assert_eq!(first["assignment"].as_object().unwrap().len(), 40);
    assert_eq!(first["moved"].as_array().unwrap().len(), 40);
    assert_eq!(first["load"]["i-b"], 20);
    let current = s.file("current.json", &first.to_string());
    let again = json(&plan(&members, &queues, Some(&current), true));
    assert_eq!(again["moved"].as_array().unwrap().len(), 0);
    assert_eq!(again["assignment"], first["assignment"]);

    let fewer = s.file("members2", "i-a\ni-b 2\n");
    let left = json(&plan(&fewer, &queues, Some(&current), true));
    let moved: Vec<&str> = left["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(moved.len(), 10);
    assert!(moved.iter().all(|q| first["assignment"][*q] == "i-c"));
}

#[test]
fn the_table_shows_members_queues_and_totals() {
    let s = Scratch::new();
    let out = plan(
        &s.file("m", "i-a\ni-b\ni-c\n"),
        &s.file("q", &queues_text(10)),
        None,
        false,
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("INSTANCE"), "{text}");
    assert!(text.contains("orders-9"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("10 queues, 3 members, 10 moved, load 3..4"),
        "{text}"
    );
}

#[test]
fn bad_input_fails_with_one_line_naming_file_and_line() {
    let s = Scratch::new();
    let good_m = s.file("good-members", "i-a\ni-b\n");
    let good_q = s.file("good-queues", "q1\nq2\n");
    let cases: Vec<(PathBuf, PathBuf, Option<PathBuf>, &str)> = vec![
        (s.file("dup", "i-a\ni-a\n"), good_q.clone(), None, "dup:2:"),
        (s.file("zero", "i-a 0\n"), good_q.clone(), None, "zero:1:"),
        (
            s.file("frac", "i-a\ni-b 1.5\n"),
            good_q.clone(),
            None,
            "frac:2:",
        ),
        (
            good_m.clone(),
            s.file("blank", "q1\n\nq2\n"),
            None,
            "blank:2:",
        ),
        (
            good_m.clone(),
            good_q.clone(),
            Some(s.file("bad.json", "{\n\"q1\": \"i-a\",\n")),
            "bad.json:3:",
        ),
        (
            s.0.join("missing"),
            good_q.clone(),
            None,
            "missing: cannot read",
        ),
    ];
    for (m, q, c, want) in cases {
        let out = plan(&m, &q, c.as_deref(), true);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{want}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "want {want:?} in {err:?}"
        );
        assert!(out.stdout.is_empty());
    }
}

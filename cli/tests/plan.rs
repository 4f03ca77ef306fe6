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

/// Runs `plan --json` with `extra` arguments after the members and queues files.
fn plan_with(members: &Path, queues: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqsbalancer"));
    cmd.arg("plan").arg("--members").arg(members);
    cmd.arg("--queues").arg(queues).args(extra).arg("--json");
    cmd.output().unwrap()
}

#[test]
fn a_plan_with_loads_evens_out_work_that_counts_leave_uneven() {
    let s = Scratch::new();
    let members = s.file("members", "i-a\ni-b\ni-c\ni-d\n");
    let queues = s.file("queues", &queues_text(200));
    // Zipf-like: queue i carries 100,000 / (i + 1).
    let text: String = (0..200)
        .map(|i| {
            format!(
                "https://sqs.us-east-1.amazonaws.com/1/orders-{i} {}\n",
                100_000 / (i + 1)
            )
        })
        .collect();
    let loads = s.file("loads", &text);
    let spread = |v: &Value| {
        let work: Vec<f64> = (v["work"].as_object().unwrap().values())
            .map(|w| w.as_f64().unwrap())
            .collect();
        let mean = work.iter().sum::<f64>() / work.len() as f64;
        let (min, max) = work
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), w| (lo.min(*w), hi.max(*w)));
        (min / mean, max / mean)
    };
    let by_load = json(&plan_with(
        &members,
        &queues,
        &["--loads".as_ref(), loads.as_ref()],
    ));
    let current = s.file("current.json", &by_load.to_string());
    let again = plan_with(
        &members,
        &queues,
        &[
            "--loads".as_ref(),
            loads.as_ref(),
            "--current".as_ref(),
            current.as_ref(),
        ],
    );
    assert_eq!(json(&again)["moved"].as_array().unwrap().len(), 0);
    // The counts' plan, weighed with the same loads: `--band 100` tolerates anything, so fed
    // the count plan as current it keeps it.
    let counts = json(&plan(&members, &queues, None, true));
    let counted = s.file("counted.json", &counts.to_string());
    let kept = json(&plan_with(
        &members,
        &queues,
        &[
            "--loads".as_ref(),
            loads.as_ref(),
            "--band".as_ref(),
            "100".as_ref(),
            "--current".as_ref(),
            counted.as_ref(),
        ],
    ));
    assert_eq!(kept["assignment"], counts["assignment"]);
    let (lo, hi) = spread(&by_load);
    let (count_lo, count_hi) = spread(&kept);
    assert!(lo > 0.9 && hi < 1.1, "by load {lo:.3}..{hi:.3}");
    assert!(
        count_hi - count_lo > hi - lo,
        "counts {count_lo:.3}..{count_hi:.3}"
    );
}

#[test]
fn a_bad_loads_file_or_band_is_refused() {
    let s = Scratch::new();
    let members = s.file("members", "i-a\ni-b\n");
    let queues = s.file("queues", "q1\nq2\n");
    let loads = s.file("loads", "q1 4\nq9 1\n");
    let out = plan_with(&members, &queues, &["--loads".as_ref(), loads.as_ref()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("loads:2: q9 is not in the queues file"),
        "{err}"
    );
    let good = s.file("good", "q1 4\n");
    for band in [
        [
            "--loads".as_ref(),
            good.as_ref(),
            "--band".as_ref(),
            "101".as_ref(),
        ]
        .as_slice(),
        &["--band".as_ref(), "5".as_ref()],
    ] {
        let out = plan_with(&members, &queues, band);
        assert!(!out.status.success(), "{band:?} was accepted");
        assert!(String::from_utf8(out.stderr).unwrap().contains("--band"));
    }
}

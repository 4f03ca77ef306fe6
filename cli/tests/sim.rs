//! The `sqsbalancer sim` commands end to end: flags, exit codes and the JSON summary.

use serde_json::Value;
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
        .arg("sim")
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The last line of stdout as JSON, after checking the command succeeded.
fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().expect("some output");
    serde_json::from_str(last).expect("the last line is one JSON object")
}

fn kinds(v: &Value) -> Vec<String> {
    v["faults"]
        .as_array()
        .expect("a fault list")
        .iter()
        .map(|k| k.as_str().expect("a kind name").to_owned())
        .collect()
}

/// `sim run` at `level` of seed `seed`, 3 instances and 12 queues for 10 minutes, with `extra`.
fn small_run(level: &str, seed: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "--level",
        level,
        "--seed",
        seed,
        "--instances",
        "3",
        "--queues",
        "12",
        "--duration",
        "10m",
    ];
    args.extend(extra);
    sim(&args)
}

#[test]
fn a_run_prints_a_summary_with_zero_violations() {
    let v = summary(&small_run("1", "7", &["--json"]));
    assert_eq!(v["violations"], 0);
    assert_eq!(v["instances"], 3);
    assert_eq!(v["messages"]["lost"], 0);
    // Level 1 counts each table read under what asked for it; every life reads once to start.
    let reads = v["table_reads_per_instance_hour"]
        .as_object()
        .expect("table reads by cause");
    assert_eq!(reads.len(), 10, "{reads:?}");
    assert!(reads["start"].as_f64() > Some(0.0), "{reads:?}");
    assert!(
        v["records_reads_per_instance_hour"].as_f64() >= Some(0.0),
        "{v}"
    );
    // The first reads find every record new, later ones few: a share strictly between.
    let share = v["table_read_changed_share"].as_f64().expect("a share");
    assert!(share > 0.0 && share < 1.0, "{v}");
}

#[test]
fn fault_scale_zero_turns_the_faults_off_but_keeps_recovery() {
    let args = |scale: &'static str| {
        vec![
            "run",
            "--seed",
            "3",
            "--queues",
            "5",
            "--duration",
            "5m",
            "--faults",
            "crash,restart",
            "--fault-scale",
            scale,
            "--json",
        ]
    };
    let on = kinds(&summary(&sim(&args("1"))));
    assert!(on.contains(&"crash".to_owned()), "{on:?}");
    let off = kinds(&summary(&sim(&args("0"))));
    assert!(!off.contains(&"crash".to_owned()), "{off:?}");
    assert!(off.contains(&"restart".to_owned()), "{off:?}");
}

#[test]
fn progress_prints_a_line_each_simulated_minute_on_stderr_only() {
    let out = small_run("1", "7", &["--json", "--progress"]);
    assert_eq!(summary(&out)["violations"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert_eq!(lines.len(), 10, "{err}");
    assert!(
        lines[9].starts_with("progress: 10 of 10 simulated min (100%), "),
        "{err}"
    );
    let level2 = small_run("2", "7", &["--progress"]);
    assert_eq!(level2.status.code(), Some(2));
    let err = String::from_utf8_lossy(&level2.stderr);
    assert!(
        err.contains("--progress") && err.contains("level 2"),
        "{err}"
    );
}

#[test]
fn zipf_traffic_reports_the_work_share_at_levels_one_and_two() {
    let out = small_run("1", "7", &["--json", "--traffic", "zipf", "--rate", "50"]);
    let v = summary(&out);
    assert_eq!(v["violations"], 0);
    assert_eq!(v["work_share"]["traffic"], "zipf", "{v}");
    let most = v["work_share"]["handler_max_over_mean"].as_f64();
    assert!(most.is_some_and(|x| x >= 1.0), "{v}");
    let level2 = summary(&small_run("2", "7", &["--json", "--traffic", "zipf"]));
    assert_eq!(level2["violations"], 0);
    assert_eq!(level2["work_share"]["traffic"], "zipf", "{level2}");
}

#[test]
fn a_bad_fault_scale_duration_schedule_or_traffic_is_named_and_exits_2() {
    for (flag, value) in [
        ("--fault-scale", "lots"),
        ("--duration", "5 parsecs"),
        ("--schedule", "thursday"),
        ("--traffic", "bursty"),
    ] {
        let out = sim(&["run", "--seed", "1", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains(value), "{err}");
    }
}

#[test]
fn level_two_runs_the_real_runtime_without_the_level_one_only_faults() {
    let v = summary(&sim(&[
        "run",
        "--level",
        "2",
        "--seed",
        "4",
        "--instances",
        "2",
        "--queues",
        "6",
        "--duration",
        "6m",
        "--faults",
        "crash,restart,failing-handler,pause",
        "--json",
    ]));
    assert_eq!(v["violations"], 0);
    assert_eq!(v["instances"], 2);
    assert_eq!(v["messages"]["lost"], 0);
    assert!(v["messages"]["deleted"].as_u64() > Some(0), "{v}");
    // Pauses are level 1 only: asked for at level 2, they are left out.
    assert!(!kinds(&v).contains(&"pause".to_owned()), "{v}");
    assert!(v.get("table_reads_per_instance_hour").is_none(), "{v}");
    assert!(v.get("records_reads_per_instance_hour").is_none(), "{v}");
    assert!(v.get("table_read_changed_share").is_none(), "{v}");
}

#[test]
fn a_level_two_swarm_sums_its_seeds_and_a_replay_prints_the_trace() {
    let out = sim(&["swarm", "--level", "2", "--seeds", "2", "--json"]);
    let v = summary(&out);
    assert_eq!(
        (v["seeds"].as_u64(), v["violations"].as_u64()),
        (Some(2), Some(0))
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("level-2 swarm: seeds 0..2"));
    let replay = sim(&["replay", "--level", "2", "--seed", "1"]);
    assert!(replay.status.success());
    let text = String::from_utf8_lossy(&replay.stdout);
    let first: Value = serde_json::from_str(text.lines().next().expect("a trace")).expect("JSON");
    assert_eq!(first["ev"], "start");
}

/// [`small_run`] with `bug` planted, under `faults`.
fn planted(level: &str, seed: &str, faults: &str, bug: &str) -> Output {
    small_run(level, seed, &["--faults", faults, "--plant", bug])
}

#[test]
fn each_class_of_broken_invariant_exits_with_its_own_status() {
    for (out, code, invariant) in [
        (
            planted("1", "1", "join,stop", "ignore-stop"),
            3,
            "exclusive-receive",
        ),
        (
            planted("1", "0", "none", "wrong-capacity"),
            4,
            "settled-balance",
        ),
        (planted("2", "0", "join", "panic-in-runtime"), 5, "no-panic"),
    ] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{stdout}");
        assert!(
            stdout.contains(&format!("VIOLATION {invariant}")),
            "{stdout}"
        );
        assert!(
            stdout.contains("--plant"),
            "the replay plants the bug too: {stdout}"
        );
    }
}

#[test]
fn the_help_names_the_exit_status_of_each_class() {
    for cmd in ["run", "swarm", "replay"] {
        let out = sim(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        for class in ["3 safety", "4 liveness", "5 crash"] {
            assert!(help.contains(class), "sim {cmd} --help: {help}");
        }
    }
}

//! `sqsbalancer demo` end to end: a short story at full speed loses nothing, measures its
//! failover and hand-off, writes its timeline, and bad flags are refused.

use serde_json::Value;
use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
        .arg("demo")
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn a_short_story_at_full_speed_loses_nothing_and_draws_its_timeline() {
    let dir = std::env::temp_dir().join(format!("sqsbalancer-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let svg = dir.join("story.svg");
    let svg_arg = svg.to_str().expect("a UTF-8 temporary path");
    let out = demo(&[
        "--duration",
        "2m",
        "--speed",
        "max",
        "--json",
        "--svg",
        svg_arg,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("some output");
    let v: Value = serde_json::from_str(last).expect("the last line is one JSON object");
    assert_eq!(v["lost"], 0, "{v}");
    assert!(v["handled"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["violation"].is_null(), "{v}");
    assert!(v["failover_s"].as_f64().is_some_and(|s| s > 0.0), "{v}");
    assert!(v["handoff_s"].as_f64().is_some(), "{v}");
    assert!(v["moves"].as_u64().is_some_and(|n| n >= 30), "{v}");
    assert_eq!(v["chapters"].as_array().map(Vec::len), Some(5), "{v}");
    assert_eq!(v["svg"], svg_arg);
    // Not a terminal: no live table on stdout, a line per beat on stderr.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stderr.contains("crash: node-"), "{stderr}");
    let drawn = std::fs::read_to_string(&svg).expect("the timeline was written");
    assert!(
        drawn.starts_with("<svg") || drawn.starts_with("<?xml"),
        "{drawn:.80}"
    );
    std::fs::remove_dir_all(&dir).expect("the temporary directory is removed");
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    let out = demo(&["--speed", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a speed"));
    let out = demo(&["--instances", "60", "--svg", "/nonexistent/never.svg"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 50 instances"), "{err}");
}

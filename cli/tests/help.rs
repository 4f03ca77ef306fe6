//! The help of `sqsbalancer` and of each subcommand fits an 80-column terminal, and the
//! worker's and status's help name the environment variable of every option.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

/// `sqsbalancer <words> --help` as an 80-column terminal shows it.
fn help(words: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sqsbalancer"))
        .args(words)
        .arg("--help")
        // Not a terminal, so clap takes the width from COLUMNS.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .env("COLUMNS", "80")
        .output()
        .expect("the command runs");
    assert!(out.status.success(), "{words:?} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// The long flags `text` lists.
fn flags(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("--")
                .or_else(|| l.split(", --").nth(1))
        })
        .filter_map(|l| l.split([' ', '=', ',']).next())
        .filter(|f| !f.is_empty() && *f != "help" && *f != "version")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_help_fits_an_80_column_terminal() {
    let commands: [&[&str]; 9] = [
        &[],
        &["plan"],
        &["sim"],
        &["sim", "run"],
        &["sim", "swarm"],
        &["sim", "replay"],
        &["worker"],
        &["status"],
        &["demo"],
    ];
    for words in commands {
        let text = help(words);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{words:?}: {line}");
        }
    }
}

#[test]
fn the_worker_and_status_help_name_every_option_s_environment_variable() {
    for words in [["worker"], ["status"]] {
        let text = help(&words);
        let flags = flags(&text);
        assert!(flags.len() > 5, "{words:?}: too few flags found: {flags:?}");
        for flag in flags {
            let var = format!("SQSBALANCER_{}", flag.to_uppercase().replace('-', "_"));
            if words == ["status"] && matches!(flag.as_str(), "watch" | "json") {
                continue;
            }
            // `VAR=`, so that SQSBALANCER_TABLE is not found inside SQSBALANCER_TABLE_CAPACITY.
            let shown = format!("{var}=");
            assert!(text.contains(&shown), "{words:?}: --{flag} names no {var}");
        }
    }
}

//! Replays the committed fuzz corpus on stable, so every input the fuzzers kept is a test.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "corpus input {} fails", f.display());
    }
}

#[test]
fn node_corpus_replays_clean() {
    replay("node", sqsbalancer_core::fuzzing::drive_node);
}

#[test]
fn assign_corpus_replays_clean() {
    replay("assign", sqsbalancer_core::fuzzing::check_fleet);
}

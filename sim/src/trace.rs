//! The JSON-lines trace of a run and its hash.
//!
//! One line per event: `{"t":<ms>,"node":<name or null>,"ev":<kind>,"detail":<text>}`. The hash
//! (FNV-1a, 64 bits, over every byte of every line) is what CI compares across two runs of one
//! seed.

use std::fmt::Write as _;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The trace of one run.
#[derive(Clone, Debug)]
pub struct Trace {
    keep: bool,
    text: String,
    line: String,
    hash: u64,
    lines: u64,
}

impl Trace {
    /// A trace; `keep` holds the lines in memory, otherwise only the hash is kept.
    pub fn new(keep: bool) -> Trace {
        Trace {
            keep,
            text: String::new(),
            line: String::new(),
            hash: FNV_OFFSET,
            lines: 0,
        }
    }

    /// Adds one line.
    pub fn emit(&mut self, t: u64, node: Option<&str>, ev: &str, detail: &str) {
        self.line.clear();
        let node = node.map_or_else(|| "null".to_owned(), json_str);
        let _ = writeln!(
            self.line,
            "{{\"t\":{t},\"node\":{node},\"ev\":{},\"detail\":{}}}",
            json_str(ev),
            json_str(detail)
        );
        for b in self.line.bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.lines += 1;
        if self.keep {
            self.text.push_str(&self.line);
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Lines so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The kept lines (empty unless kept).
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_the_hash_covers_them() {
        let mut a = Trace::new(true);
        a.emit(5, Some("node-1"), "write", "Claim { queue: \"q\" }");
        a.emit(6, None, "crash", "");
        for line in a.text().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["t"].is_u64());
        }
        let mut b = Trace::new(false);
        b.emit(5, Some("node-1"), "write", "Claim { queue: \"q\" }");
        b.emit(6, None, "crash", "");
        assert_eq!(a.hash(), b.hash());
        assert!(b.text().is_empty());
        b.emit(7, None, "crash", "");
        assert_ne!(a.hash(), b.hash());
    }
}

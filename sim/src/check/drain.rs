//! The drain before the no-loss check: past its end a run goes on, with no faults and no
//! traffic, until nothing is left to wait for or the cap is reached, so that no-loss checks
//! delivery rather than speed.

/// Longest a run of any level goes on past its end to drain a backlog, ms. A backlog left
/// after this is lost: no-loss fails.
pub const DRAIN_CAP_MS: u64 = 3_600_000;

/// Whether a run `past_end_ms` beyond its end stops: nothing is left to wait for (`done`: the
/// backlog is gone and whatever else the level waits for), or the cap is reached.
pub fn drain_over(done: bool, past_end_ms: u64) -> bool {
    done || past_end_ms >= DRAIN_CAP_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_drains_until_done_or_capped() {
        assert!(drain_over(true, 0));
        assert!(!drain_over(false, DRAIN_CAP_MS - 1));
        assert!(drain_over(false, DRAIN_CAP_MS));
    }
}

//! The swarm: many seeds, each drawing its own size and fault mix, run on a few threads and
//! summed up in seed order so the summary does not depend on scheduling.

use crate::check::{Class, Violation};
use crate::report::Report;
use crate::scenario::FaultKind;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a swarm measured.
#[derive(Clone, Debug, Default)]
pub struct SwarmSummary {
    /// The first seed.
    pub from: u64,
    /// Seeds run.
    pub seeds: u64,
    /// The runs that broke an invariant, by seed.
    pub failing: Vec<Report>,
    /// Runs each fault kind was on in.
    pub kinds: BTreeMap<&'static str, u64>,
    /// Every failover gap, ms.
    pub failover: Vec<u64>,
    /// Every hand-off gap, ms.
    pub handoff: Vec<u64>,
    /// Every takeover gap, ms.
    pub takeover: Vec<u64>,
    /// Every gap after a crash that left no instance up, ms.
    pub outage: Vec<u64>,
    /// Events, simulated ms, messages sent and lost, duplicates, excused overlaps.
    pub events: u64,
    /// Simulated time over all runs, ms.
    pub sim_ms: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages lost.
    pub lost: u64,
    /// Messages handled successfully more than once.
    pub duplicates: u64,
    /// Overlaps caused by pauses past the fence margin.
    pub excused_overlaps: u64,
    /// Moves made after the calm point, and the fewest that could have been made.
    pub settle_moves: (u64, u64),
    /// Steady-state DynamoDB requests per instance-minute of each run that measured it.
    pub steady_dynamo: Vec<f64>,
}

impl SwarmSummary {
    fn add(&mut self, r: Report) {
        self.seeds += 1;
        for k in &r.faults {
            *self.kinds.entry(k).or_default() += 1;
        }
        self.failover.extend(&r.failover);
        self.handoff.extend(&r.handoff);
        self.takeover.extend(&r.takeover);
        self.outage.extend(&r.outage);
        self.events += r.events;
        self.sim_ms += r.sim_ms;
        self.sent += r.messages.sent;
        self.lost += r.messages.lost;
        self.duplicates += r.messages.duplicates;
        self.excused_overlaps += r.excused_overlaps;
        self.settle_moves.0 += r.settle_moves;
        self.settle_moves.1 += r.settle_optimum;
        self.steady_dynamo
            .extend(r.steady_dynamo_per_instance_minute);
        if r.violation.is_some() {
            self.failing.push(r);
        }
    }

    /// The number of runs that broke an invariant.
    pub fn violations(&self) -> usize {
        self.failing.len()
    }

    /// The most serious class of invariant any run broke, if one did.
    pub fn class(&self) -> Option<Class> {
        worst(self.failing.iter().filter_map(|r| r.violation.as_ref()))
    }

    /// As one JSON object; `"violations"` is the count of failing seeds.
    pub fn json(&self) -> crate::summary::SwarmJson<'_> {
        crate::summary::SwarmJson::of(self)
    }

    /// Fault kinds that no run had on.
    pub fn kinds_missing(&self) -> Vec<&'static str> {
        FaultKind::ALL
            .iter()
            .map(|k| k.name())
            .filter(|n| !self.kinds.contains_key(n))
            .collect()
    }
}

/// The most serious class among `violations` (safety before liveness before crash).
fn worst<'a>(violations: impl Iterator<Item = &'a Violation>) -> Option<Class> {
    violations.map(|v| v.invariant.class()).min()
}

/// Runs `run` for seeds `from..from + seeds` on `threads` threads, calling `on_done` after
/// each (in completion order), and sums the reports in seed order: the swarm of any level.
pub(crate) fn run_seeds(
    from: u64,
    seeds: u64,
    threads: usize,
    run: impl Fn(u64) -> Report + Sync,
    on_done: impl Fn(&Report) + Sync,
) -> SwarmSummary {
    let next = AtomicU64::new(from);
    let end = from.saturating_add(seeds);
    let results: Mutex<BTreeMap<u64, Report>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let report = run(seed);
                    on_done(&report);
                    results
                        .lock()
                        .expect("no run panics while holding the lock")
                        .insert(seed, report);
                }
            });
        }
    });
    let mut summary = SwarmSummary {
        from,
        ..SwarmSummary::default()
    };
    let results = results.into_inner().expect("threads joined");
    for (_, r) in results {
        summary.add(r);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Invariant;

    #[test]
    fn a_swarm_is_as_bad_as_its_worst_violation() {
        let broke = |invariant| Violation {
            event: 1,
            t: 1,
            invariant,
            detail: String::new(),
        };
        let vs = [broke(Invariant::NoPanic), broke(Invariant::NoLoss)];
        assert_eq!(worst(vs.iter()), Some(Class::Liveness));
        let vs = [broke(Invariant::Settled), broke(Invariant::Exclusive)];
        assert_eq!(worst(vs.iter()), Some(Class::Safety));
        assert_eq!(worst([].iter()), None);
    }
}

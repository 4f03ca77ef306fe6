//! The graceful-stop invariant: a stop ends within its limit and cleanly, unless a fault hit
//! it, and a clean stop leaves nothing running and no queue it held named its own.

use sqsbalancer_core::{Owner, QueueId};

/// How long after it hit a fault may still hold a graceful stop up, ms: a receive that never
/// answered is given up on only at its fence plus the request margin, about a heartbeat
/// timeout later. A stop that times out within this of a fault had one in its way.
pub const FAULT_LINGER_MS: u64 = 40_000;

/// How a graceful stop ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopEnd {
    /// It released everything and deregistered.
    Clean,
    /// Its timeout ran out first.
    TimedOut,
    /// Peers reaped its life while it drained.
    LifeLost,
    /// It failed some other way (level 2: the runtime's error).
    Failed(String),
}

/// One finished graceful stop, as its level saw it.
#[derive(Clone, Debug)]
pub struct Stop<'a> {
    /// The instance's name.
    pub name: &'a str,
    /// How it ended.
    pub end: StopEnd,
    /// How long it took, ms.
    pub took: u64,
    /// How long a clean stop may take, ms.
    pub limit: u64,
    /// A fault hit it while it stopped (or a slow handler was still running).
    pub stop_faulted: bool,
    /// A fault hit its life at some point.
    pub life_faulted: bool,
    /// Pollers still running when it ended.
    pub pollers_left: usize,
    /// A queue whose record named its life from before the stop began, and still does.
    pub still_named: Option<&'a QueueId>,
}

/// What is wrong with `stop`, or `None` if it ended as it should.
pub fn stop_problem(stop: &Stop<'_>) -> Option<String> {
    let took = stop.took;
    let problem = match &stop.end {
        StopEnd::TimedOut if !stop.stop_faulted => {
            format!("timed out after {took} ms with no fault in the way")
        }
        StopEnd::LifeLost if !stop.life_faulted => {
            format!("lost its life after {took} ms with no fault in the way")
        }
        StopEnd::Failed(e) => format!("stop failed: {e}"),
        StopEnd::Clean if stop.pollers_left > 0 => {
            format!("stopped with {} pollers running", stop.pollers_left)
        }
        StopEnd::Clean if stop.still_named.is_some() => format!(
            "stopped cleanly still named owner of {}",
            stop.still_named.map_or("?", |q| q.as_str())
        ),
        StopEnd::Clean if took > stop.limit => {
            format!("a clean stop took {took} ms, limit {} ms", stop.limit)
        }
        _ => return None,
    };
    Some(format!("{}: {problem}", stop.name))
}

/// The first queue whose record names `life` and has since before `started` ms: given each
/// record's owner, and `since`, when a queue's record last changed. A queue handed to a
/// stopping life (a peer had not yet seen it draining) is left to peers, which claim a
/// deregistered life's queues at once. `since` is asked only of the records naming `life`:
/// looking it up for every record of 100,000 at each stop was a seventh of a rolling
/// 1,000-node fleet's time.
pub fn still_named<'a>(
    records: impl IntoIterator<Item = (&'a QueueId, Option<&'a Owner>)>,
    since: impl Fn(&QueueId) -> u64,
    life: Option<&Owner>,
    started: u64,
) -> Option<&'a QueueId> {
    let life = life?;
    // Incarnations first: they differ for nearly every other life, without comparing ids.
    let names = |o: &Owner| o.incarnation == life.incarnation && o == life;
    records
        .into_iter()
        .find(|(q, owner)| owner.is_some_and(names) && since(q) < started)
        .map(|(q, _)| q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fleet::fixtures::{life, queue};

    fn clean() -> Stop<'static> {
        Stop {
            name: "node-0",
            end: StopEnd::Clean,
            took: 1_000,
            limit: 30_000,
            stop_faulted: false,
            life_faulted: false,
            pollers_left: 0,
            still_named: None,
        }
    }

    #[test]
    fn a_prompt_clean_stop_and_a_faulted_timeout_pass() {
        assert_eq!(stop_problem(&clean()), None);
        let faulted = Stop {
            end: StopEnd::TimedOut,
            stop_faulted: true,
            ..clean()
        };
        assert_eq!(stop_problem(&faulted), None);
    }

    #[test]
    fn an_unfaulted_timeout_a_late_or_unclean_stop_fail() {
        let q = queue(0);
        let bad = [
            Stop {
                end: StopEnd::TimedOut,
                ..clean()
            },
            Stop {
                end: StopEnd::LifeLost,
                ..clean()
            },
            Stop {
                end: StopEnd::Failed("boom".to_owned()),
                ..clean()
            },
            Stop {
                pollers_left: 1,
                ..clean()
            },
            Stop {
                still_named: Some(&q),
                ..clean()
            },
            Stop {
                took: 30_001,
                ..clean()
            },
        ];
        for stop in bad {
            let p = stop_problem(&stop).unwrap_or_else(|| panic!("{stop:?} passed"));
            assert!(p.starts_with("node-0: "), "{p}");
        }
    }

    #[test]
    fn only_records_named_since_before_the_stop_count() {
        let (a, b) = (queue(0), queue(1));
        let me = life(0);
        let other = life(1);
        let records = [(&a, Some(&other)), (&b, Some(&me))];
        let since = |q: &QueueId| if *q == a { 10 } else { 500 };
        assert_eq!(still_named(records, since, Some(&me), 400), None);
        assert_eq!(still_named(records, since, Some(&me), 600), Some(&b));
        assert_eq!(still_named(records, since, None, 600), None);
    }
}

//! The end of a graceful stop at levels 2 and 3: `Running::stop` returned, so the stop is
//! counted, checked ([`stop_problem`]) and the process marked exited.

use super::shared::{Shared, Up};
use crate::check::{Invariant, Stop, StopEnd, Who, still_named, stop_problem};
use sqsbalancer_core::QueueId;
use sqsbalancer_runtime::RuntimeError;
use std::time::Duration;

/// How much longer than its timeout a clean stop may take (the last hand-offs and the
/// deregistration after the drain).
const STOP_SLACK_MS: u64 = 5_000;

/// `Running::stop` of life `who`, begun at `started` ms, returned `outcome`: it must have ended
/// within its timeout, cleanly unless a fault hit it, and left no queue it held named its own.
pub(crate) fn stopped(
    s: &mut Shared,
    who: Who,
    started: u64,
    timeout: Duration,
    outcome: Result<(), RuntimeError>,
) {
    let took = s.last_now().saturating_sub(started);
    let slot = &s.slots[who.0];
    let records = s.owners.iter().map(|(q, (o, _))| (q, o.as_ref()));
    let since = |q: &QueueId| s.owners.get(q).map_or(u64::MAX, |(_, t)| *t);
    let stop = Stop {
        name: &slot.name,
        end: match &outcome {
            Ok(()) => StopEnd::Clean,
            Err(RuntimeError::ShutdownTimeout { .. }) => StopEnd::TimedOut,
            Err(RuntimeError::LifeLost) => StopEnd::LifeLost,
            Err(e) => StopEnd::Failed(e.to_string()),
        },
        took,
        limit: timeout.as_millis() as u64 + STOP_SLACK_MS,
        stop_faulted: slot.stop_faulted,
        life_faulted: slot.life_faulted,
        pollers_left: 0,
        still_named: still_named(records, since, s.lives.get(&who), started),
    };
    let problem = stop_problem(&stop);
    match &outcome {
        Ok(()) => s.stats.stop_ms.push(took),
        Err(RuntimeError::LifeLost) => s.stats.stops_life_lost += 1,
        Err(_) => s.stats.stops_timed_out += 1,
    }
    s.emit(Some(who.0), "stopped", || match &outcome {
        Ok(()) => format!("clean after {took} ms"),
        Err(e) => format!("{e} after {took} ms"),
    });
    let slot = &mut s.slots[who.0];
    slot.up = Up::Exited;
    slot.handle = None;
    if let Some(p) = problem {
        s.violate(Invariant::GracefulStop, p);
    }
}

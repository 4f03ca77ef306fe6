//! The checks that need the runtime's own view, on top of the shared [`Checker`]
//! (exclusive receive, receive within the fence, delete after success, epoch growth and no
//! loss are checked there, at the fake, as calls happen).
//!
//! [`Checker`]: crate::check::Checker

use super::shared::{Shared, Up};
use crate::check::{Invariant, Who};
use sqsbalancer_core::{InstanceId, Member, Phase, QueueId, assign, share_bounds};
use sqsbalancer_runtime::RuntimeError;
use std::collections::BTreeMap;
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
    let now = s.last_now();
    let took = now.saturating_sub(started);
    let limit = timeout.as_millis() as u64 + STOP_SLACK_MS;
    let slot = &s.slots[who.0];
    let (name, life_faulted, stop_faulted) =
        (slot.name.clone(), slot.life_faulted, slot.stop_faulted);
    let life = s.lives.get(&who).cloned();
    let held = s
        .owners
        .iter()
        .find(|(_, (owner, since))| owner.is_some() && *owner == life && *since < started)
        .map(|(q, _)| q.clone());
    let problem = match &outcome {
        Ok(()) if took > limit => Some(format!("a clean stop took {took} ms, limit {limit} ms")),
        Ok(()) => held.map(|q| format!("stopped cleanly still named owner of {q}")),
        Err(RuntimeError::ShutdownTimeout { .. }) if !stop_faulted => Some(format!(
            "timed out after {took} ms with no fault in the way"
        )),
        Err(RuntimeError::LifeLost) if !life_faulted => Some(format!(
            "lost its life after {took} ms with no fault in the way"
        )),
        Err(RuntimeError::ShutdownTimeout { .. } | RuntimeError::LifeLost) => None,
        Err(e) => Some(format!("stop failed: {e}")),
    };
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
        s.violate(Invariant::GracefulStop, format!("{name}: {p}"));
    }
}

/// The settled state, once membership has been stable long enough: every queue received by
/// exactly one running instance, the one its record names, and every running instance holding
/// the floor or the ceiling of its weighted share. `None` when it holds.
pub(crate) fn settled(s: &Shared) -> Option<String> {
    let running: Vec<(usize, BTreeMap<QueueId, u64>)> = s
        .slots
        .iter()
        .enumerate()
        .filter(|(_, sl)| sl.up == Up::Running)
        .filter_map(|(i, sl)| {
            let h = sl.handle.as_ref()?;
            (h.phase() == Phase::Running).then(|| (i, h.receiving()))
        })
        .collect();
    if running.is_empty() {
        return Some("no instance is running".to_owned());
    }
    let queues: Vec<QueueId> = s.sqs.urls().filter_map(|u| QueueId::new(u).ok()).collect();
    for q in &queues {
        let who: Vec<usize> = running
            .iter()
            .filter(|(_, r)| r.contains_key(q))
            .map(|(i, _)| *i)
            .collect();
        let [one] = who[..] else {
            return Some(format!("{q} received by slots {who:?}"));
        };
        let life = s.lives.get(&(one, s.slots[one].life));
        let record = s.owners.get(q).and_then(|o| o.0.as_ref());
        if record != life {
            return Some(format!(
                "{q}: record names {record:?} but {} ({life:?}) receives it",
                s.slots[one].name
            ));
        }
    }
    let members: Vec<Member> = running
        .iter()
        .map(|(i, _)| Member {
            id: InstanceId::new(&s.slots[*i].name).expect("slot names are valid instance ids"),
            weight: s.slots[*i].weight,
        })
        .collect();
    let target = assign(&members, &queues, &BTreeMap::new()).load();
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let n = queues.len();
    for (m, (_, receiving)) in members.iter().zip(&running) {
        let held = receiving.len();
        let w = m.weight;
        let (lo, hi) = share_bounds(n, w, total);
        let want = target.get(&m.id).copied().unwrap_or(0);
        if held < lo.min(want) || held > hi.max(want) {
            return Some(format!(
                "{} (weight {w}) receives {held} queues, share {lo}..={hi} of {n}",
                m.id
            ));
        }
    }
    None
}

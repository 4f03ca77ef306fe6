//! One instance as a turmoil host: the real runtime ([`Balancer`]) over the life's [`Link`],
//! running a handler that tells the checker every outcome, until the harness asks it to stop.
//!
//! A crash is turmoil's: the host's runtime is dropped with every task in it, exactly an
//! abort without `stop`. A graceful stop is [`Running::stop`](sqsbalancer_runtime::Running);
//! the process then exits, and the harness drops whatever tasks are left.

use super::acked::Acked;
use super::http::Links;
use super::link::Link;
use super::shared::{Lab, Transport, lock};
use super::stopped::stopped;
use crate::check::{FAULT_LINGER_MS, Who};
use crate::scenario::Mutation;
use sqsbalancer_core::hash::hash64;
use sqsbalancer_core::rng::Rng;
use sqsbalancer_runtime::{Balancer, Handler, HandlerError, Message};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Handler time of a normal message, ms: 5 to 50.
const HANDLER_MS: (u64, u64) = (5, 50);
/// Handler time of a slow message, ms: 25 to 60 s, often past the 30 s visibility timeout.
const SLOW_HANDLER_MS: (u64, u64) = (25_000, 60_000);

/// The software of slot `slot`'s host: one life of the instance, from start to exit.
pub(crate) async fn life(lab: Lab, links: Links, slot: usize) -> turmoil::Result {
    let (cfg, who, name, stop) = {
        let mut s = lock(&lab);
        s.now();
        let seed = s.seed;
        let sl = &s.slots[slot];
        let who = (slot, sl.life);
        let mut cfg = crate::config();
        cfg.instance_id = Some(sl.name.clone());
        cfg.capacity = sl.weight;
        cfg.balance = s.balance;
        // Odd slots ask for one key whatever the run asks for: instances configured apart (an
        // option changed in a rolling deploy) must still follow the layout recorded first.
        cfg.queue_partition_keys = if slot % 2 == 1 {
            1
        } else {
            s.queue_partition_keys
        };
        cfg.instance_partition_keys = if slot % 2 == 1 {
            1
        } else {
            s.instance_partition_keys
        };
        cfg.seed = hash64(&[
            &seed.to_le_bytes(),
            &who.0.to_le_bytes(),
            &who.1.to_le_bytes(),
        ]);
        let out = (cfg, who, sl.name.clone(), Arc::clone(&sl.stop));
        s.emit(Some(slot), "start", || format!("life {}", who.1));
        out
    };
    let timeout = cfg.shutdown_timeout;
    let link = Arc::new(Link::new(Arc::clone(&lab), who, name.clone()));
    let handler = Recorder {
        lab: Arc::clone(&lab),
        who,
    };
    let transport = lock(&lab).transport;
    let running = match transport {
        Transport::Link => {
            let backend = Acked::new(link, Arc::clone(&lab), who, &name);
            Balancer::new(cfg, Arc::new(backend))?.start(handler)?
        }
        Transport::Http => {
            links.register(&name, link);
            let aws = super::http::backend(&lab, &cfg, slot);
            let backend = Acked::new(Arc::new(aws), Arc::clone(&lab), who, &name);
            Balancer::new(cfg, Arc::new(backend))?.start(handler)?
        }
    };
    lock(&lab).slots[slot].handle = Some(running.handle().clone());
    stop.notified().await;
    let started = {
        let mut s = lock(&lab);
        let now = s.now();
        let sl = &mut s.slots[slot];
        sl.stop_started = Some(now);
        sl.up_since = None;
        sl.stop_faulted |=
            sl.slow_until > now || sl.faulted_at.is_some_and(|t| now < t + FAULT_LINGER_MS);
        s.emit(Some(slot), "stopping", String::new);
        now
    };
    let outcome = running.stop().await;
    {
        let mut s = lock(&lab);
        s.now();
        stopped(&mut s, who, started, timeout, outcome);
    }
    // The process exits when the harness next sees the stop returned, and its leftover tasks
    // (pooled connections, say) go with it then, all at once. Returning here would leave them
    // running: turmoil only drops the tasks of a host whose software is still running, and a
    // restart would drop them later in task-id order, which depends on what else ran in the
    // process.
    std::future::pending().await
}

/// The handler: takes a while, sometimes fails (half the time by panicking) or outlives the
/// visibility timeout, as the run's handler faults draw it from the message and its receive
/// count, and records every outcome before the runtime acts on it.
struct Recorder {
    lab: Lab,
    who: Who,
}

impl Handler for Recorder {
    fn handle(&self, m: Message) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let (took, fail, panics) = {
            let mut s = lock(&self.lab);
            let now = s.now();
            let h = hash64(&[
                &s.seed.to_le_bytes(),
                m.message_id.as_bytes(),
                &m.receive_count.to_le_bytes(),
            ]);
            let mut rng = Rng::new(h);
            let faults = s.handler_faults;
            let fail = rng.below(1_000_000) < faults.fail;
            // Half the failures are panics, which the runtime must contain.
            let panics = fail && rng.below(2) == 0 && s.mutation != Some(Mutation::DeleteFailures);
            let slow = rng.below(1_000_000) < faults.slow;
            let (lo, hi) = if slow { SLOW_HANDLER_MS } else { HANDLER_MS };
            let mut took = lo + rng.below(hi - lo + 1);
            // As at level 1: a slow queue's handler ten times slower, a slow fault as it is.
            if !slow && s.traffic.slow(s.seed, m.queue.name()) {
                took *= crate::traffic::SLOWDOWN;
            }
            if !s.calm && now >= s.work_share_from {
                s.stats.worked(self.who.0, &m.queue, took);
            }
            if slow {
                let sl = &mut s.slots[self.who.0];
                sl.slow_until = sl.slow_until.max(now + took);
                sl.stop_faulted |= sl.stop_started.is_some();
            }
            (took, fail, panics)
        };
        let lab = Arc::clone(&self.lab);
        let who = self.who;
        async move {
            tokio::time::sleep(Duration::from_millis(took)).await;
            let mut s = lock(&lab);
            s.now();
            let mutation = s.mutation;
            if mutation == Some(Mutation::DropRedelivered) && m.receive_count > 1 {
                s.emit(Some(who.0), "dropped", || m.message_id.clone());
                return Err(HandlerError::new("dropped a redelivery on purpose"));
            }
            s.checker.handled(&m.message_id, &m.receipt, !fail);
            s.stats.handled += 1;
            s.stats.failed += u64::from(fail);
            let outcome = match (fail, panics) {
                (false, _) => "ok",
                (true, false) => "failed",
                (true, true) => "panicked",
            };
            s.emit(Some(who.0), "handled", || {
                format!("{} {outcome}", m.message_id)
            });
            drop(s);
            if panics {
                // A panic without the panic hook's message on stderr, once per failure.
                std::panic::resume_unwind(Box::new("panicking on purpose"));
            }
            if fail && mutation != Some(Mutation::DeleteFailures) {
                Err(HandlerError::new("failing on purpose"))
            } else {
                Ok(())
            }
        }
    }
}

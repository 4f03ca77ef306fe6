//! Fault injection and traffic: once a simulated second, each instance may crash, stop, be cut
//! off or come back, queues may appear or vanish, new instances may join; a producer sends
//! messages to random queues. At the calm point every fault stops and every down instance comes
//! back, so the run can show it settles.

use crate::fake::{Outgoing, Service};
use crate::world::{Ev, World};
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::rng::Rng;
use sqsbalancer_core::table::Item;
use sqsbalancer_core::{Input, Millis, QueueId};
use std::sync::Arc;

/// Most instances a run grows to by joins, as a multiple of its starting size.
pub(crate) const MAX_GROWTH: usize = 2;

/// Whether an event of `ppm` parts per million happens on this draw of `rng` (none at 0).
pub(crate) fn roll(rng: &mut Rng, ppm: u64) -> bool {
    ppm > 0 && rng.below(1_000_000) < ppm
}

/// The name of the `n`th queue a run creates.
pub(crate) fn queue_name(n: usize) -> String {
    format!("q-{n:05}")
}

impl World {
    pub(crate) fn add_queue(&mut self) -> Option<QueueId> {
        let name = queue_name(self.next_queue);
        self.next_queue += 1;
        let url = self.sqs.create_queue("admin", &name).ok()?;
        QueueId::new(&url).ok()
    }

    fn note(&mut self, kind: &'static str, slot: Option<usize>) {
        self.stats.faults.push((self.now, kind, slot));
        self.emit(slot, "fault", || kind.to_owned());
    }

    pub(crate) fn crash(&mut self, i: usize) {
        self.note("crash", Some(i));
        let who = self.slots[i].who();
        self.stats.crashed.insert(who, self.now);
        self.end_life(i);
    }

    pub(crate) fn stop(&mut self, i: usize) {
        self.note("stop", Some(i));
        let life = self.slots[i].life;
        self.slots[i].stop_started = Some(self.now);
        self.push(
            self.now,
            Ev::Input {
                slot: i,
                life,
                input: Input::Shutdown,
            },
        );
    }

    pub(crate) fn chaos(&mut self) {
        if self.calm {
            return;
        }
        let f = self.sc.faults.clone();
        let roll = |w: &mut World, ppm: u64| roll(&mut w.rng, ppm);
        for i in 0..self.slots.len() {
            let up = self.slots[i].node.is_some();
            if up && self.slots[i].stop_started.is_none() {
                if roll(self, f.crash) {
                    self.crash(i);
                    continue;
                }
                if roll(self, f.stop) {
                    self.stop(i);
                }
            } else if !up && roll(self, f.restart) {
                self.note("restart", Some(i));
                self.start(i);
            }
            for (rate, service, kind) in [
                (f.partition_dynamo, Service::Dynamo, "partition-dynamo"),
                (f.partition_sqs, Service::Sqs, "partition-sqs"),
            ] {
                if roll(self, rate) {
                    let until = self.now + 1_000 + self.rng.below(19_000);
                    let name = self.slots[i].name.clone();
                    self.hooks.partition(&name, service, Millis(until));
                    self.faulted(i);
                    self.note(kind, Some(i));
                }
            }
        }
        if roll(self, f.ttl) {
            let (rng, decoded, ids) = (&mut self.rng, &mut self.decoded, &mut self.ids);
            let decode = |item: &Arc<Item>| decoded.decode(item, ids);
            if let Some(k) = self
                .dynamo
                .expire_ended(crate::TABLE, decode, |n| rng.below(n as u64) as usize)
            {
                self.note("ttl", None);
                self.emit(None, "expired", || k.sk.clone());
            }
        }
        if roll(self, f.join) && self.slots.len() < self.sc.instances * MAX_GROWTH {
            let weight = 1 + u32::from(self.rng.below(4) == 0);
            let i = self.add_slot(weight);
            self.note("join", Some(i));
            self.start(i);
        }
        if roll(self, f.queue_churn) {
            let urls: Vec<String> = self.sqs.urls().cloned().collect();
            if self.rng.below(2) == 0 || urls.is_empty() {
                if self.add_queue().is_some() {
                    self.note("queue-created", None);
                }
            } else {
                let k = self.rng.below(urls.len() as u64) as usize;
                let _ = self.sqs.delete_queue("admin", &urls[k]);
                self.arm_wake();
                self.note("queue-deleted", None);
            }
        }
        self.push(self.now + 1_000, Ev::Chaos);
    }

    /// Sends this second's messages to random queues.
    pub(crate) fn produce(&mut self) {
        if self.calm {
            return;
        }
        let urls: Vec<&String> = self.sqs.urls().collect();
        if !urls.is_empty() {
            let picks: Vec<String> = (self.sc.traffic)
                .pick(&mut self.rng, &urls, self.sc.messages_per_second)
                .into_iter()
                .map(|i| urls[i].clone())
                .collect();
            for url in picks {
                self.stats.sent += 1;
                let body = format!("body-{}", self.stats.sent);
                let msg = Outgoing {
                    body,
                    ..Outgoing::default()
                };
                if let Ok(id) = self.sqs.send(Millis(self.now), "producer", &url, msg) {
                    let q = QueueId::new(&url).expect("fake URLs are valid");
                    self.checker.sent(&id, &q);
                }
            }
            self.arm_wake();
        }
        self.push(self.now + 1_000, Ev::Produce);
    }

    /// Faults stop, traffic stops, every down instance comes back.
    pub(crate) fn calm_down(&mut self) {
        self.calm = true;
        if matches!(self.sc.balance, Balance::Load { .. }) {
            self.calm_loads = Some(self.loads_now());
        }
        self.stats.calm_at = self.now;
        self.stats.owners_at_calm = self.owners.clone();
        self.hooks.calm();
        self.note("calm", None);
        for i in 0..self.slots.len() {
            if self.slots[i].node.is_none() {
                self.start(i);
            }
        }
    }
}

//! Scripted level-2 runs: a fixed story of scale-outs, crashes, graceful stops and queue churn
//! played on the real runtime of a fleet, instead of faults drawn from a seed. The caller steps
//! the run ([`Live::step`]) so that it can pace it against the wall clock and watch it
//! ([`Live::view`]); `sqsbalancer demo` is built on it.
//!
//! Each beat of the story is a membership or queue change, and each is measured against the
//! fewest moves an exact balance needs from the ownership at that moment ([`Chapter`]).

use super::run::Harness;
use super::shared::{Shared, Transport, Up, lock};
use crate::error::SimError;
use crate::report::Report;
use crate::scenario::Scenario;
use sqsbalancer_core::QueueId;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

/// Messages the demo's producer sends each simulated second, over all queues.
pub const DEMO_RATE: u64 = 20;

/// One thing that happens in a story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Act {
    /// This many new instances join.
    Join(usize),
    /// The running instance receiving the most queues (the lowest slot of a tie) crashes:
    /// its process dies without stopping, whenever in the story it comes.
    Crash,
    /// The running instance receiving the most queues (the lowest slot of a tie) stops
    /// gracefully (`Running::stop`), handing its queues over.
    Stop,
    /// Queues come and go.
    Churn {
        /// New queues created.
        add: usize,
        /// Existing queues deleted (the first ones by URL).
        delete: usize,
    },
}

/// An act and when it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beat {
    /// Simulated time from the start of the run.
    pub at: Duration,
    /// What happens.
    pub act: Act,
}

/// A scripted run: the fleet and queues at the start, steady traffic, and the beats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Story {
    /// The seed of the run (message placement, handler times, the hosts' schedulers).
    pub seed: u64,
    /// Instances at the start, in slots `0..instances`; each join takes the next slot.
    pub instances: usize,
    /// Queues at the start.
    pub queues: usize,
    /// Messages sent each simulated second, to queues drawn at random, until the end.
    pub messages_per_second: u64,
    /// Length of the story; past it the run drains the backlog and waits for the fleet to
    /// settle.
    pub duration: Duration,
    /// The beats, in time order.
    pub beats: Vec<Beat>,
}

impl Story {
    /// The demo's story: `instances` instances on `queues` queues with steady traffic; at 20%
    /// of `duration` two more join; at 40% the busiest instance crashes; at 60% the busiest
    /// left stops gracefully; at 75% a fifth as many queues are created and a tenth deleted;
    /// the rest is calm, so that everything settles.
    pub fn demo(instances: usize, queues: usize, duration: Duration) -> Story {
        let at = |percent: u32| duration * percent / 100;
        Story {
            seed: 1,
            instances,
            queues,
            messages_per_second: DEMO_RATE,
            duration,
            beats: vec![
                Beat {
                    at: at(20),
                    act: Act::Join(2),
                },
                Beat {
                    at: at(40),
                    act: Act::Crash,
                },
                Beat {
                    at: at(60),
                    act: Act::Stop,
                },
                Beat {
                    at: at(75),
                    act: Act::Churn {
                        add: (queues / 5).max(1),
                        delete: queues / 10,
                    },
                },
            ],
        }
    }

    /// Checks that the story can be played: the sizes level 2 runs, beats in time order within
    /// the duration, an instance left running after every crash and stop (so that the fleet
    /// can settle), and no more queues deleted than exist.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad =
            |field: &'static str, rule: String| Err(SimError::InvalidScenario { field, rule });
        self.scenario().validate()?;
        let mut running = self.instances;
        let (mut slots, mut queues, mut most_queues) = (self.instances, self.queues, self.queues);
        let mut last = Duration::ZERO;
        for b in &self.beats {
            if b.at < last || b.at >= self.duration {
                return bad(
                    "story",
                    format!(
                        "beats must be in time order within the duration, {:?} is not",
                        b.at
                    ),
                );
            }
            last = b.at;
            match b.act {
                Act::Join(n) => {
                    running += n;
                    slots += n;
                }
                Act::Crash | Act::Stop => {
                    if running < 2 {
                        return bad(
                            "story",
                            format!("would leave no instance running at {:?}", b.at),
                        );
                    }
                    running -= 1;
                }
                Act::Churn { add, delete } => {
                    if delete > queues {
                        return bad(
                            "story",
                            format!("cannot delete {delete} of {queues} queues at {:?}", b.at),
                        );
                    }
                    queues = queues - delete + add;
                    most_queues = most_queues.max(queues);
                }
            }
        }
        super::entry::check_size(slots, most_queues)
    }

    /// The level-2 scenario the story runs in: its size, seed, length and traffic, no faults.
    fn scenario(&self) -> Scenario {
        let mut sc = Scenario::new(self.seed, &BTreeSet::new());
        sc.instances = self.instances;
        sc.queues = self.queues;
        sc.duration = self.duration;
        sc.calm = Duration::ZERO;
        sc.messages_per_second = self.messages_per_second;
        sc.replay = Some(format!(
            "sqsbalancer demo --instances {} --queues {} --duration {}s",
            self.instances,
            self.queues,
            self.duration.as_secs()
        ));
        sc
    }
}

/// One beat (or the start) as it was played, and what the fleet did until the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chapter {
    /// When, ms of simulated time.
    pub at_ms: u64,
    /// The act (`None`: the start).
    pub act: Option<Act>,
    /// What happened, in words.
    pub what: String,
    /// Queue records given to an instance from this beat until the next (or the end).
    pub moves: u64,
    /// The fewest such moves that reach an exact balance over the instances running after
    /// the beat, from the queue records' owners at the beat: every queue of an instance that
    /// left, every new queue, and every queue above a remaining instance's floor or ceiling.
    pub optimum: u64,
    /// Failover gaps measured from this beat until the next, ms: from a crash to the first
    /// receive of each of its queues by the next owner (a slow one may land in the chapter
    /// after the crash's).
    pub failover: Vec<u64>,
    /// Hand-off gaps measured from this beat until the next, ms: from the last receive of a
    /// queue by an instance that handed it over (rebalancing or stopping) to the first
    /// receive by its new owner.
    pub handoff: Vec<u64>,
}

/// How an instance slot is doing, for the live view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// Its process is up and its balancer not started yet.
    Starting,
    /// Running.
    Running,
    /// Stopping gracefully.
    Stopping,
    /// Stopped gracefully and gone.
    Stopped,
    /// Crashed and gone.
    Crashed,
}

impl InstanceState {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Crashed => "crashed",
        }
    }
}

/// One instance slot in the live view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceView {
    /// Its name, `node-<slot>`.
    pub name: String,
    /// How it is doing.
    pub state: InstanceState,
    /// Queues it receives from now.
    pub queues: usize,
    /// Messages it has deleted (handled successfully), all its lives together.
    pub deleted: u64,
}

/// The fleet at one moment of a run, for a live display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Simulated time, ms.
    pub t_ms: u64,
    /// Every instance slot used so far.
    pub instances: Vec<InstanceView>,
    /// Queues that exist.
    pub queues: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Messages sent to existing queues and not deleted yet.
    pub backlog: usize,
    /// Queue records given to an instance so far.
    pub moves: u64,
    /// The beats played so far, the start first, moves counted up to now.
    pub chapters: Vec<Chapter>,
}

/// A story's run once it is over.
#[derive(Clone, Debug)]
pub struct Told {
    /// What the run measured and checked, as any level-2 run reports it.
    pub report: Report,
    /// The start and every beat, with their moves against the optimum.
    pub chapters: Vec<Chapter>,
}

/// A story being played, one step at a time.
pub struct Live {
    h: Harness,
    beats: VecDeque<Beat>,
    chapters: Vec<Chapter>,
    /// Failover and hand-off gaps measured before each chapter began.
    marks: Vec<(usize, usize)>,
    over: bool,
}

impl Live {
    /// Starts `story`: its queues are created and its first instances started.
    pub fn start(story: Story) -> Result<Live, SimError> {
        story.validate()?;
        let h = Harness::new(story.scenario(), true, Transport::Link);
        let mut live = Live {
            h,
            beats: story.beats.into(),
            chapters: Vec::new(),
            marks: Vec::new(),
            over: false,
        };
        let what = format!(
            "start: {} on {}",
            count(story.instances, "instance"),
            count(story.queues, "queue")
        );
        live.chapter(None, what);
        Ok(live)
    }

    /// Plays the beats now due and advances the run by one step (10 ms of simulated time).
    /// True once the run is over: the story told, the backlog drained and the fleet settled,
    /// or an invariant broken (see [`Told::report`]).
    pub fn step(&mut self) -> Result<bool, SimError> {
        if self.over {
            return Ok(true);
        }
        let now = self.h.elapsed_ms();
        while let Some(b) = self.beats.front() {
            if b.at.as_millis() as u64 > now {
                break;
            }
            let act = b.act.clone();
            self.beats.pop_front();
            self.play(act);
        }
        self.over = self.h.step()?;
        Ok(self.over)
    }

    /// Simulated time, ms.
    pub fn now_ms(&self) -> u64 {
        self.h.elapsed_ms()
    }

    /// The fleet now.
    pub fn view(&self) -> View {
        let s = lock(self.h.lab());
        let instances = s
            .slots
            .iter()
            .enumerate()
            .map(|(i, sl)| {
                let state = match (sl.up, &sl.handle) {
                    (Up::Running, None) => InstanceState::Starting,
                    (Up::Running, Some(_)) => InstanceState::Running,
                    (Up::Stopping | Up::Exited, _) => InstanceState::Stopping,
                    (Up::Down, _) if s.stats.crashed.contains_key(&(i, sl.life)) => {
                        InstanceState::Crashed
                    }
                    (Up::Down, _) => InstanceState::Stopped,
                };
                InstanceView {
                    name: sl.name.clone(),
                    state,
                    queues: sl.handle.as_ref().map_or(0, |h| h.receiving().len()),
                    deleted: sl.deleted,
                }
            })
            .collect();
        let sqs = &s.sqs;
        let st = &s.stats;
        View {
            t_ms: s.last_now(),
            instances,
            queues: sqs.urls().count(),
            sent: s.checker.sent,
            deleted: s.checker.deleted,
            backlog: s.checker.outstanding(|q| sqs.exists(q.as_str())),
            moves: st.ownership.iter().filter(|o| o.2.is_some()).count() as u64,
            chapters: self.counted(&st.ownership, &st.failovers, &st.handoffs),
        }
    }

    /// Ends the run: what it measured, and every chapter with its moves.
    pub fn finish(self) -> Told {
        let report = self.h.report();
        let chapters = self.counted(&report.ownership, &report.failover, &report.handoff);
        Told { report, chapters }
    }

    /// The chapters with what each one's span saw of `ownership` changes and of the
    /// `failover` and `handoff` gaps (in the order they were measured).
    fn counted(
        &self,
        ownership: &[(u64, QueueId, Option<usize>)],
        failover: &[u64],
        handoff: &[u64],
    ) -> Vec<Chapter> {
        let n = self.chapters.len();
        (0..n)
            .map(|k| {
                let c = &self.chapters[k];
                let until = self.chapters.get(k + 1).map_or(u64::MAX, |next| next.at_ms);
                let (f0, h0) = self.marks[k];
                let (f1, h1) = self
                    .marks
                    .get(k + 1)
                    .copied()
                    .unwrap_or((failover.len(), handoff.len()));
                Chapter {
                    moves: ownership
                        .iter()
                        .filter(|(t, _, owner)| owner.is_some() && (c.at_ms..until).contains(t))
                        .count() as u64,
                    failover: failover[f0..f1].to_vec(),
                    handoff: handoff[h0..h1].to_vec(),
                    ..c.clone()
                }
            })
            .collect()
    }

    /// Plays `act` now and opens its chapter.
    fn play(&mut self, act: Act) {
        let what = match act.clone() {
            Act::Join(n) => {
                let names: Vec<String> = (0..n)
                    .map(|_| {
                        let i = self.h.join();
                        lock(self.h.lab()).slots[i].name.clone()
                    })
                    .collect();
                format!("scale out: {} join", names.join(" and "))
            }
            Act::Crash => {
                let (i, held) = self.busiest();
                self.h.crash(i);
                format!("crash: node-{i} (receiving {held}) dies")
            }
            Act::Stop => {
                let (i, held) = self.busiest();
                self.h.stop(i);
                format!("graceful stop of node-{i} (receiving {held})")
            }
            Act::Churn { add, delete } => {
                let doomed: Vec<String> = lock(self.h.lab())
                    .sqs
                    .urls()
                    .take(delete)
                    .cloned()
                    .collect();
                for url in &doomed {
                    self.h.delete_queue(url);
                }
                let added = (0..add).filter(|_| self.h.create_queue().is_some()).count();
                format!("queues: {added} created, {} deleted", doomed.len())
            }
        };
        self.chapter(Some(act), what);
    }

    /// The running instance receiving the most queues, the lowest slot of a tie, and how many
    /// it receives. [`Story::validate`] made sure one is running.
    fn busiest(&self) -> (usize, usize) {
        let s = lock(self.h.lab());
        s.slots
            .iter()
            .enumerate()
            .filter(|(_, sl)| sl.up == Up::Running)
            .map(|(i, sl)| (i, sl.handle.as_ref().map_or(0, |h| h.receiving().len())))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .expect("the story was validated: an instance is running")
    }

    /// Opens a chapter now, its optimum taken from the ownership at this moment.
    fn chapter(&mut self, act: Option<Act>, what: String) {
        let s = lock(self.h.lab());
        self.marks
            .push((s.stats.failovers.len(), s.stats.handoffs.len()));
        let optimum = optimum(&s);
        drop(s);
        self.chapters.push(Chapter {
            at_ms: self.h.elapsed_ms(),
            act,
            what,
            moves: 0,
            optimum,
            failover: Vec::new(),
            handoff: Vec::new(),
        });
    }
}

/// `n` and `noun`, plural unless `n` is one.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The fewest queue records that must change owners for the queues that exist to be split
/// exactly over the running instances (weight 1 each, as in a story): each instance keeps at
/// most its floor or ceiling share of what its record names, the largest holders getting the
/// ceilings; every other queue moves.
fn optimum(s: &Shared) -> u64 {
    let queues: Vec<QueueId> = s.sqs.urls().filter_map(|u| QueueId::new(u).ok()).collect();
    let mut held: Vec<u64> = s
        .slots
        .iter()
        .enumerate()
        .filter(|(_, sl)| sl.up == Up::Running)
        .map(|(i, sl)| {
            let life = s.lives.get(&(i, sl.life));
            queues
                .iter()
                .filter(|q| {
                    let owner = s.owners.get(*q).and_then(|o| o.0.as_ref());
                    owner.is_some() && owner == life
                })
                .count() as u64
        })
        .collect();
    if held.is_empty() {
        return 0;
    }
    held.sort_unstable_by(|a, b| b.cmp(a));
    let (n, m) = (queues.len() as u64, held.len() as u64);
    let kept: u64 = held
        .iter()
        .zip(0..)
        .map(|(h, k)| (*h).min(n / m + u64::from(k < n % m)))
        .sum();
    n - kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_story_is_playable_and_bad_ones_are_refused() {
        let demo = Story::demo(3, 30, Duration::from_secs(300));
        demo.validate().expect("the demo story is valid");
        assert_eq!(demo.beats[2].at, Duration::from_secs(180));
        Story::demo(1, 0, Duration::from_secs(60))
            .validate()
            .expect("one instance, no queue");
        let mut alone = demo.clone();
        alone.instances = 1;
        alone.beats[0].act = Act::Crash;
        let e = alone.validate().unwrap_err().to_string();
        assert!(e.contains("no instance running"), "{e}");
        let mut late = demo.clone();
        late.beats[0].at = Duration::from_secs(300);
        assert!(late.validate().is_err());
        let mut big = demo;
        big.beats[0].act = Act::Join(50);
        assert!(big.validate().is_err());
    }
}

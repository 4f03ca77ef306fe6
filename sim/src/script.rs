//! The membership events a [`Schedule`] scripts on top of the drawn faults: at level 1 they
//! arrive as [`Ev::Script`] events, planned when the run starts.

use crate::scenario::Schedule;
use crate::world::{Ev, World};

/// A share of the fleet, in tenths: the crash and each batch of the rolling restart.
const TENTH: usize = 10;

/// One scripted step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A tenth of the running instances crash.
    Crash,
    /// The instances the crash took down come back.
    Recover,
    /// Batch `n` (0..10) of the rolling restart: stopped, each restarted when its stop ends.
    Roll(usize),
}

/// When each step of `schedule` happens in a run whose faults stop at `calm_at` (ms).
pub(crate) fn plan(schedule: Schedule, calm_at: u64) -> Vec<(u64, Step)> {
    match schedule {
        Schedule::Drawn => Vec::new(),
        Schedule::CrashAndRoll => {
            let at = |num: u64, den: u64| calm_at * num / den;
            let mut steps = vec![(at(1, 4), Step::Crash), (at(1, 3), Step::Recover)];
            let (from, to) = (at(5, 12), at(3, 4));
            let every = (to - from) / TENTH as u64;
            steps.extend((0..TENTH).map(|n| (from + every * n as u64, Step::Roll(n))));
            steps
        }
    }
}

/// The slots of batch `n` of `slots` cut into tenths: contiguous, every slot in exactly one.
fn batch(n: usize, slots: usize) -> std::ops::Range<usize> {
    slots * n / TENTH..slots * (n + 1) / TENTH
}

impl World {
    /// Plans the scenario's scripted steps.
    pub(crate) fn schedule_script(&mut self, calm_at: u64) {
        for (at, step) in plan(self.sc.schedule, calm_at) {
            self.push(at, Ev::Script(step));
        }
    }

    /// Carries out one scripted step (none once the calm phase began).
    pub(crate) fn script(&mut self, step: Step) {
        if self.calm {
            return;
        }
        match step {
            Step::Crash => {
                let mut up: Vec<usize> =
                    (0..self.slots.len()).filter(|&i| self.running(i)).collect();
                for _ in 0..up.len().div_ceil(TENTH) {
                    let pick = up.swap_remove(self.rng.below(up.len() as u64) as usize);
                    self.crash(pick);
                    self.script_crashed.push(pick);
                }
            }
            Step::Recover => {
                for i in std::mem::take(&mut self.script_crashed) {
                    if self.slots[i].node.is_none() {
                        self.start(i);
                    }
                }
            }
            Step::Roll(n) => {
                for i in batch(n, self.slots.len()) {
                    if self.running(i) {
                        self.rolling.insert(i);
                        self.stop(i);
                    }
                }
            }
        }
    }

    /// Whether slot `i` is up and not stopping.
    fn running(&self, i: usize) -> bool {
        self.slots[i].node.is_some() && self.slots[i].stop_started.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batches_cover_every_slot_once() {
        for slots in [1, 3, 9, 10, 11, 997] {
            let covered: Vec<usize> = (0..TENTH).flat_map(|n| batch(n, slots)).collect();
            assert_eq!(covered, (0..slots).collect::<Vec<_>>(), "{slots} slots");
        }
    }

    #[test]
    fn the_steps_are_in_order_and_before_the_calm() {
        let steps = plan(Schedule::CrashAndRoll, 3_360_000);
        assert_eq!(steps.len(), 12);
        assert!(steps.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(steps[0], (840_000, Step::Crash));
        assert!(steps.last().is_some_and(|(at, _)| *at < 3_360_000 * 3 / 4));
        assert!(plan(Schedule::Drawn, 3_360_000).is_empty());
    }
}

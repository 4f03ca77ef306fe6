//! The work queue between the pollers and the workers: received jobs wait here, one lane per
//! queue, and a free worker takes the next one, either in arrival order or fairly across queues
//! by handler time ([`PlaneSettings::fair_scheduling`]).
//!
//! Fair order is start-time fair queuing over handler time: each lane has a virtual time, the
//! handler time its jobs have used. A worker takes the head job of the waiting lane with the
//! least, charged at once with the lane's estimate (so the next worker, a moment later, sees
//! it) and corrected when the job ends. A lane that starts waiting again catches up to the
//! virtual time of the last job served, so an idle queue banks no credit. A noisy queue (a
//! backlog, a slow handler) then gets the same handler time as any other queue with work while
//! they all have work, rather than a worker per job it received.
//!
//! [`PlaneSettings::fair_scheduling`]: super::PlaneSettings::fair_scheduling

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Duration;

/// The work queue of one data plane: [`Lanes`] behind a lock, and a count of the jobs waiting
/// that workers wait on.
pub(super) struct WorkQueue<J> {
    /// The jobs by lane.
    lanes: Mutex<Lanes<J>>,
    /// One permit per job waiting: a worker takes one before it pops.
    waiting: Semaphore,
}

impl<J> WorkQueue<J> {
    /// An empty work queue, fair across queues or in arrival order.
    pub(super) fn new(fair: bool) -> WorkQueue<J> {
        WorkQueue {
            lanes: Mutex::new(Lanes::new(fair)),
            waiting: Semaphore::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes<J>> {
        // The lanes hold plain data; a panic elsewhere leaves them consistent.
        self.lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new lane, for one poller life: the number to push its jobs under.
    pub(super) fn open(&self) -> u64 {
        self.lock().open()
    }

    /// Queues `jobs` of lane `lane`, each of `len(job)` messages, in order; once closed,
    /// hands them back.
    pub(super) fn push_all(&self, lane: u64, jobs: Vec<J>, len: impl Fn(&J) -> usize) -> Vec<J> {
        let mut queued = 0;
        let mut refused = Vec::new();
        {
            let mut lanes = self.lock();
            for job in jobs {
                match lanes.push(lane, len(&job), job) {
                    Ok(()) => queued += 1,
                    Err(job) => refused.push(job),
                }
            }
        }
        self.waiting.add_permits(queued);
        refused
    }

    /// Waits for the next job; `None` only if the queue was closed meanwhile.
    pub(super) async fn pop(&self) -> Option<Taken<J>> {
        // The semaphore is never closed, and the permit stands for a job pushed.
        self.waiting.acquire().await.ok()?.forget();
        self.lock().pop()
    }

    /// A job of `n` messages of `lane`, charged `charged`, ended after `took`: the lane's
    /// charge is corrected. Returns the next job if one waits, taken under the same lock.
    pub(super) fn done(
        &self,
        lane: u64,
        n: usize,
        charged: Duration,
        took: Duration,
    ) -> Option<Taken<J>> {
        let next = self.waiting.try_acquire().ok();
        let mut lanes = self.lock();
        lanes.done(lane, n, charged, took);
        next?.forget();
        lanes.pop()
    }

    /// The poller life of `lane` ended: its lane goes once its last job has.
    pub(super) fn end(&self, lane: u64) {
        self.lock().end(lane);
    }

    /// Closes the queue: no job is queued from now on, and those waiting are returned.
    pub(super) fn close(&self) -> Vec<J> {
        self.lock().close()
    }
}

/// A job taken from the queue, with the handler time its lane was charged for it.
pub(super) struct Taken<J> {
    /// The job.
    pub(super) job: J,
    /// The charge to correct when it ends.
    pub(super) charged: Duration,
}

/// One poller life's jobs and the handler time they have used.
struct Lane<J> {
    /// Jobs waiting, each with its arrival number and its messages.
    jobs: VecDeque<(u64, usize, J)>,
    /// Handler time used (or charged ahead), ns: what fair order serves the least of.
    used: u64,
    /// Jobs of this lane running now: the lane is kept while any run.
    running: usize,
    /// Its poller life ended: the lane goes once it has no jobs.
    ended: bool,
}

/// The lanes and the order they are served in, without locks or waiting: what
/// [`WorkQueue`] applies.
pub(super) struct Lanes<J> {
    /// Serve by handler time used (else in arrival order).
    fair: bool,
    /// No more jobs are taken.
    closed: bool,
    /// The next job's arrival number.
    next: u64,
    /// Virtual time: the handler time its lane had used when the last job served started, ns.
    clock: u64,
    /// Estimated handler time per message, ns (a moving average over every job): a job's
    /// charge until it ends.
    per_message: u64,
    /// Each lane (a poller life: `Origin::lane`) by its number, until it ended and has no
    /// jobs: a slot list rather than a map, as the workers look lanes up several times a job.
    slots: Vec<Option<Lane<J>>>,
    /// Slots free for the next lane opened.
    free: Vec<usize>,
    /// The lanes with jobs waiting, least first by (handler time used, or zero in arrival
    /// order; the head job's arrival number; the lane). Each lane waiting has an entry at or
    /// below its key: a lane whose key rose keeps its old entry, moved up when it comes up,
    /// and one whose head job left leaves an entry behind, dropped when it comes up (a heap
    /// keeps its memory, where a tree allocated a node for each lane that started waiting).
    ready: BinaryHeap<Reverse<Key>>,
}

/// A waiting lane's place in the order: (handler time used, or zero in arrival order; the head
/// job's arrival number; the lane).
type Key = (u64, u64, u64);

impl<J> Lanes<J> {
    pub(super) fn new(fair: bool) -> Lanes<J> {
        Lanes {
            fair,
            closed: false,
            next: 0,
            clock: 0,
            per_message: 0,
            slots: Vec::new(),
            free: Vec::new(),
            ready: BinaryHeap::new(),
        }
    }

    /// Opens a lane: a free slot, or a new one. A slot reused keeps no stale place in the
    /// order, as a heap entry names its head job's arrival number, which no other job has.
    pub(super) fn open(&mut self) -> u64 {
        let lane = Lane {
            jobs: VecDeque::new(),
            used: self.clock,
            running: 0,
            ended: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(lane);
                slot
            }
            None => {
                self.slots.push(Some(lane));
                self.slots.len() - 1
            }
        };
        slot as u64
    }

    /// Lane `id`, if open.
    fn get(&self, id: u64) -> Option<&Lane<J>> {
        self.slots.get(usize::try_from(id).ok()?)?.as_ref()
    }

    /// Lane `id`, if open, to change.
    fn get_mut(&mut self, id: u64) -> Option<&mut Lane<J>> {
        self.slots.get_mut(usize::try_from(id).ok()?)?.as_mut()
    }

    /// Closes lane `id`: its slot is free for the next lane.
    fn remove(&mut self, id: u64) {
        if let Some(slot) = usize::try_from(id).ok().and_then(|i| self.slots.get_mut(i))
            && slot.take().is_some()
        {
            self.free.push(id as usize);
        }
    }

    /// The lanes open.
    fn open_lanes(&self) -> impl Iterator<Item = (u64, &Lane<J>)> {
        (self.slots.iter().enumerate()).filter_map(|(i, l)| Some((i as u64, l.as_ref()?)))
    }

    /// Where lane `id` stands among the ready lanes, if it has jobs waiting.
    fn key(&self, id: u64, lane: &Lane<J>) -> Option<Key> {
        let (head, _, _) = lane.jobs.front()?;
        let used = if self.fair { lane.used } else { 0 };
        Some((used, *head, id))
    }

    /// Lane `id`'s key now, if it has jobs waiting.
    fn key_of(&self, id: u64) -> Option<Key> {
        self.key(id, self.get(id)?)
    }

    /// Enters lane `id` at its key now, if it has jobs waiting; rebuilds the heap when old
    /// entries outnumber the lanes, so it never grows past a few entries a lane.
    fn enter(&mut self, id: u64) {
        let Some(key) = self.key_of(id) else {
            return;
        };
        self.ready.push(Reverse(key));
        if self.ready.len() > 2 * (self.slots.len() - self.free.len()) + 64 {
            let keys: Vec<Reverse<Key>> = (self.open_lanes())
                .filter_map(|(id, lane)| self.key(id, lane).map(Reverse))
                .collect();
            self.ready = BinaryHeap::from(keys);
        }
    }

    pub(super) fn push(&mut self, id: u64, n: usize, job: J) -> Result<(), J> {
        if self.closed {
            return Err(job);
        }
        let seq = self.next;
        self.next += 1;
        let clock = self.clock;
        let Some(lane) = self.get_mut(id) else {
            return Err(job);
        };
        let starts_waiting = lane.jobs.is_empty();
        if starts_waiting {
            lane.used = lane.used.max(clock);
        }
        lane.jobs.push_back((seq, n, job));
        if starts_waiting {
            self.enter(id);
        }
        Ok(())
    }

    /// The next job to run: the head of the first ready lane, charged to it.
    pub(super) fn pop(&mut self) -> Option<Taken<J>> {
        let (used, id) = loop {
            let Reverse(key @ (used, head, id)) = self.ready.pop()?;
            match self.key_of(id) {
                Some(now) if now == key => break (used, id),
                Some(now @ (_, now_head, _)) if now_head == head => self.ready.push(Reverse(now)),
                _ => {}
            }
        };
        if self.fair {
            self.clock = self.clock.max(used);
        }
        let per_message = self.per_message;
        let lane = self.get_mut(id)?;
        let (_, n, job) = lane.jobs.pop_front()?;
        let estimate = per_message.saturating_mul(n as u64);
        lane.used = lane.used.saturating_add(estimate);
        lane.running += 1;
        self.enter(id);
        Some(Taken {
            job,
            charged: Duration::from_nanos(estimate),
        })
    }

    /// A job of `n` messages of lane `id`, charged `charged`, ended after `took`.
    pub(super) fn done(&mut self, id: u64, n: usize, charged: Duration, took: Duration) {
        let took_ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let per = took_ns / n.max(1) as u64;
        self.per_message = if self.per_message == 0 {
            per
        } else {
            (self.per_message / 8)
                .saturating_mul(7)
                .saturating_add(per / 8)
        };
        let Some(lane) = self.get(id) else {
            return;
        };
        let old = self.key(id, lane);
        let lane = self.get_mut(id).expect("just found");
        let charged = u64::try_from(charged.as_nanos()).unwrap_or(u64::MAX);
        lane.used = lane.used.saturating_sub(charged).saturating_add(took_ns);
        lane.running = lane.running.saturating_sub(1);
        if lane.ended && lane.jobs.is_empty() && lane.running == 0 {
            self.remove(id);
            return;
        }
        // A key that fell needs its entry now; one that rose is moved when its entry comes up.
        if let (Some(old), Some(now)) = (old, self.key_of(id))
            && now < old
        {
            self.enter(id);
        }
    }

    pub(super) fn end(&mut self, id: u64) {
        let Some(lane) = self.get_mut(id) else {
            return;
        };
        lane.ended = true;
        if lane.jobs.is_empty() && lane.running == 0 {
            self.remove(id);
        }
    }

    pub(super) fn close(&mut self) -> Vec<J> {
        self.closed = true;
        self.ready.clear();
        let slots = std::mem::take(&mut self.slots);
        self.free.clear();
        let mut jobs: Vec<(u64, usize, J)> =
            slots.into_iter().flatten().flat_map(|l| l.jobs).collect();
        jobs.sort_by_key(|(seq, _, _)| *seq);
        jobs.into_iter().map(|(_, _, j)| j).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(i: u8) -> u64 {
        u64::from(i)
    }

    /// Lanes with five lanes open: `q(0)` to `q(4)`.
    fn opened<J>(fair: bool) -> Lanes<J> {
        let mut lanes = Lanes::new(fair);
        for i in 0..5 {
            assert_eq!(lanes.open(), q(i));
        }
        lanes
    }

    /// What a test does to the lanes.
    #[derive(Clone, Debug)]
    enum Step {
        /// Push a job of queue `q`.
        Push(u8),
        /// Pop a job, if any, and run it for this many ms (ended by a later `End`).
        Pop(u16),
        /// End the oldest running job.
        End,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            3 => (0u8..5).prop_map(Step::Push),
            2 => (1u16..500).prop_map(Step::Pop),
            2 => Just(Step::End),
        ];
        proptest::collection::vec(step, 0..200)
    }

    /// Runs `steps` on lanes whose jobs are (queue, arrival number), checking at each pop
    /// what holds for all inputs; returns the jobs in the order they were taken.
    fn run(fair: bool, steps: &[Step]) -> Vec<(u8, u64)> {
        let mut lanes = opened(fair);
        let mut pushed = 0u64;
        let mut running: VecDeque<(u8, Duration, Duration)> = VecDeque::new();
        let mut taken = Vec::new();
        for step in steps {
            match *step {
                Step::Push(i) => {
                    lanes.push(q(i), 1, (i, pushed)).expect("open");
                    pushed += 1;
                }
                Step::Pop(ms) => {
                    // The lane served: least handler time used (when fair), then the oldest
                    // head job.
                    let first = (lanes.open_lanes())
                        .filter_map(|(id, l)| {
                            let (head, _, _) = l.jobs.front()?;
                            Some((if fair { l.used } else { 0 }, *head, id))
                        })
                        .min();
                    let Some(t) = lanes.pop() else {
                        assert!(first.is_none(), "a lane was waiting");
                        continue;
                    };
                    let (i, seq) = t.job;
                    let (_, head, lane) = first.expect("a job came from a waiting lane");
                    assert_eq!((lane, head), (q(i), seq), "the first waiting lane serves");
                    taken.push((i, seq));
                    running.push_back((i, t.charged, Duration::from_millis(u64::from(ms))));
                }
                Step::End => {
                    if let Some((i, charged, took)) = running.pop_front() {
                        lanes.done(q(i), 1, charged, took);
                    }
                }
            }
        }
        taken
    }

    proptest! {
        #[test]
        fn each_queue_is_served_in_arrival_order(fair: bool, steps in steps()) {
            let taken = run(fair, &steps);
            for i in 0..5u8 {
                let mine: Vec<u64> = taken.iter().filter(|(j, _)| *j == i).map(|(_, s)| *s).collect();
                prop_assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
            }
        }

        #[test]
        fn without_fairness_jobs_are_served_in_arrival_order(steps in steps()) {
            let taken = run(false, &steps);
            prop_assert!(taken.windows(2).all(|w| w[0].1 < w[1].1), "{taken:?}");
        }
    }

    #[test]
    fn a_slow_queue_gets_the_handler_time_of_a_fast_one() {
        let mut lanes = opened(true);
        // Queue 0 takes 100 ms a message, queue 1 takes 10 ms; both always have work.
        for _ in 0..200 {
            lanes.push(q(0), 1, 0u8).expect("open");
            lanes.push(q(1), 1, 1u8).expect("open");
        }
        let mut time = [Duration::ZERO; 2];
        for _ in 0..110 {
            let t = lanes.pop().expect("work left");
            let took = Duration::from_millis(if t.job == 0 { 100 } else { 10 });
            time[usize::from(t.job)] += took;
            lanes.done(q(t.job), 1, t.charged, took);
        }
        let (slow, fast) = (time[0].as_millis(), time[1].as_millis());
        assert!(slow.abs_diff(fast) <= 100, "slow {slow} ms, fast {fast} ms");
    }

    #[test]
    fn a_queue_back_from_idle_banks_no_credit() {
        let mut lanes = opened(true);
        for _ in 0..20 {
            lanes.push(q(0), 1, 0u8).expect("open");
        }
        for _ in 0..10 {
            let t = lanes.pop().expect("work left");
            lanes.done(q(0), 1, t.charged, Duration::from_millis(10));
        }
        // Queue 1 was idle all along: it is served next, then the two alternate.
        for _ in 0..3 {
            lanes.push(q(1), 1, 1u8).expect("open");
        }
        let mut order = Vec::new();
        for _ in 0..6 {
            let t = lanes.pop().expect("work left");
            order.push(t.job);
            lanes.done(q(t.job), 1, t.charged, Duration::from_millis(10));
        }
        assert_eq!(order, vec![1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn a_lane_goes_once_its_poller_ended_and_its_last_job_did() {
        let mut lanes = opened(true);
        lanes.push(q(0), 1, 0u8).expect("open");
        let t = lanes.pop().expect("a job");
        lanes.done(q(0), 1, t.charged, Duration::from_millis(1));
        assert!(lanes.get(q(0)).is_some(), "kept while its poller lives");
        lanes.push(q(0), 1, 0u8).expect("open");
        let t = lanes.pop().expect("a job");
        lanes.end(q(0));
        assert!(lanes.get(q(0)).is_some(), "kept while its job runs");
        lanes.done(q(0), 1, t.charged, Duration::from_millis(1));
        assert!(lanes.get(q(0)).is_none());
        assert_eq!(lanes.open(), q(0), "its slot is the next lane's");
    }

    #[test]
    fn old_entries_never_outnumber_the_lanes_by_much() {
        let mut lanes = opened(true);
        for _ in 0..300 {
            lanes.push(q(0), 1, 0u8).expect("open");
            lanes.push(q(1), 1, 1u8).expect("open");
        }
        let taken: Vec<Taken<u8>> = (0..200).map(|_| lanes.pop().expect("a job")).collect();
        // Each end moves its lane's key while it has jobs waiting: an old entry each.
        for (k, t) in taken.into_iter().enumerate() {
            let took = Duration::from_millis(1 + k as u64 % 7);
            lanes.done(q(t.job), 1, t.charged, took);
            assert!(lanes.ready.len() <= 2 * lanes.open_lanes().count() + 65);
        }
        let mut served = [0usize; 2];
        while let Some(t) = lanes.pop() {
            served[usize::from(t.job)] += 1;
            lanes.done(q(t.job), 1, t.charged, Duration::from_millis(1));
        }
        assert_eq!(served[0] + served[1], 400, "every job left is served once");
    }

    #[test]
    fn a_closed_queue_hands_back_its_jobs_and_takes_no_more() {
        let mut lanes = opened(true);
        for i in 0..4u8 {
            lanes.push(q(i % 2), 1, i).expect("open");
        }
        assert_eq!(lanes.close(), vec![0, 1, 2, 3]);
        assert_eq!(lanes.push(q(0), 1, 9), Err(9));
        assert!(lanes.pop().is_none());
    }
}

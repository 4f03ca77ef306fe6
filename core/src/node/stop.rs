//! The graceful stop, driven from the node: drain, finish, release, deregister
//! (docs/design.md §7; the phases themselves are in [`crate::shutdown`]).

use super::Node;
use super::ops::Pending;
use super::writes::resend_after;
use crate::effect::{Outcome, Write};
use crate::ids::QueueId;
use crate::lease::AfterStop;
use crate::reads::ReadCause;
use crate::shutdown::{self, Phase, Shutdown, StopOutcome};

impl Node {
    /// Starts a graceful stop: hand off every queue as its pollers stop.
    pub(super) fn begin_shutdown(&mut self) {
        if self.phase.is_shutting_down() {
            return;
        }
        self.shutdown = Some(Shutdown {
            deadline: self.now.saturating_add(self.cfg.shutdown_timeout),
            drained: false,
            life_lost: false,
            deregister_again_at: None,
        });
        self.set_phase(Phase::Draining);
        self.want_table(ReadCause::Shutdown);
        let queues: Vec<QueueId> = self.held.keys().cloned().collect();
        for q in &queues {
            self.stop(q, AfterStop::HandOff);
        }
        self.heartbeat_unless_in_flight();
    }

    /// Moves the stop on as far as what is outstanding allows; deregisters once settled.
    pub(super) fn advance_shutdown(&mut self) {
        let Some(s) = self.shutdown else { return };
        if self.phase.is_stopped() {
            return;
        }
        if self.now >= s.deadline {
            self.finish(StopOutcome::TimedOut);
            return;
        }
        loop {
            let next = shutdown::advance(self.phase, !self.held.is_empty(), s.drained);
            if next == self.phase {
                break;
            }
            self.set_phase(next);
            self.evaluate();
        }
        let send = s.deregister_again_at.is_none() && !self.ops.deregistering();
        if self.phase == Phase::Releasing && self.settled_for_deregistration() && send {
            match self.life() {
                Some(owner) => {
                    self.write(Pending::Deregister, Write::Deregister { owner });
                }
                None if s.life_lost => self.finish(StopOutcome::LifeLost),
                None => self.finish(StopOutcome::Clean),
            }
        }
    }

    /// Writes of unknown outcome matter only while a life could still own their queues; a
    /// node that lost its life has nothing left to release and cannot read to find out. And a
    /// live node deregisters only from a fresh view (a failed read is retried first) that
    /// names it owner of nothing: a peer may have handed it a queue it has not seen yet.
    fn settled_for_deregistration(&self) -> bool {
        let unsettled = self.writes.unsettled.is_empty() || self.life.is_none();
        let settled = self.writes.writing.is_empty() && unsettled;
        let Some(me) = self.life() else {
            return settled;
        };
        let reads = &self.reads;
        let fresh = reads.table_wanted.is_none() && !reads.retry && !self.ops.reading();
        // Looked at last, by owner slot rather than record: it passes over every queue, and a
        // releasing node asks after each of its inputs (a scan of the records was 5% of a
        // rolling restart of 1,000 instances).
        settled && fresh && !self.view.names_any(&me)
    }

    /// The final deregistration answered: applied is a clean stop; rejected means a peer
    /// reaped this life (or a later one registered) first; unknown is sent again.
    pub(super) fn on_deregistered(&mut self, outcome: Outcome) {
        let clean = match outcome {
            Outcome::Applied(_) => true,
            Outcome::Rejected => false,
            Outcome::Unknown => {
                let wait = resend_after(1, self.cfg.heartbeat_interval);
                if let Some(s) = &mut self.shutdown {
                    s.deregister_again_at = Some(self.now.saturating_add(wait));
                }
                return;
            }
        };
        self.life = None;
        self.fence.reset();
        self.set_phase(Phase::Deregistered);
        self.finish(if clean {
            StopOutcome::Clean
        } else {
            StopOutcome::LifeLost
        });
    }

    /// Ends the node with `outcome`.
    pub(super) fn finish(&mut self, outcome: StopOutcome) {
        self.shutdown = None;
        self.set_phase(Phase::Stopped { outcome });
    }
}

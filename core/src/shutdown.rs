//! The lifecycle phases of a node, graceful shutdown included.
//!
//! `Starting -> Running -> Draining -> Finishing -> Releasing -> Deregistered -> Stopped`.
//! Draining stops every poller; Finishing waits for the runtime's handlers and deletes
//! ([`crate::Input::DrainFinished`]); Releasing waits for the hand-offs to land; Deregistered
//! marks this life dead so no peer waits out its heartbeat timeout. One improvement on the
//! reference order: each queue is handed off as soon as its own pollers stop, not after every
//! handler finished, so peers resume it while slow handlers of other queues still run (messages
//! already received stay invisible to the new owner, so this never double-delivers).

use crate::time::Millis;

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Registering its instance record.
    Starting,
    /// Heartbeating, claiming and receiving.
    Running,
    /// Stopping every poller; takes nothing new.
    Draining,
    /// Pollers stopped; waiting for in-flight handlers and delete flushes.
    Finishing,
    /// Waiting for the last hand-offs to be written.
    Releasing,
    /// The instance record is marked dead.
    Deregistered,
    /// Done; `outcome` tells how.
    Stopped {
        /// Whether the node released its queues itself.
        outcome: StopOutcome,
    },
}

/// How a shutdown ended. Exhaustive on purpose: a stop either handed everything off, ran out
/// of time, or lost its lease; there is no fourth way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StopOutcome {
    /// Every queue handed off and the instance record marked dead.
    Clean,
    /// The shutdown timeout passed first; peers fail over what was still held.
    TimedOut,
    /// Peers reaped this life while it drained (the table was out of reach for longer than
    /// the heartbeat timeout); they fail over what it had not handed off yet.
    LifeLost,
}

impl Phase {
    /// Whether a shutdown has begun.
    pub fn is_shutting_down(self) -> bool {
        self >= Phase::Draining
    }

    /// Whether the node is done and ignores every further input.
    pub fn is_stopped(self) -> bool {
        matches!(self, Phase::Stopped { .. })
    }
}

/// What the shutdown is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shutdown {
    /// When it gives up.
    pub deadline: Millis,
    /// The runtime reported [`crate::Input::DrainFinished`].
    pub drained: bool,
    /// Peers reaped this life before it deregistered.
    pub life_lost: bool,
    /// The deregistration's outcome was unknown: send it again at this time.
    pub deregister_again_at: Option<crate::time::Millis>,
}

/// The next phase, given what is still outstanding; `phase` unchanged when nothing moved.
/// Releasing ends when the deregistration write completes, which the node tracks itself.
pub(crate) fn advance(phase: Phase, pollers_running: bool, drained: bool) -> Phase {
    match phase {
        Phase::Draining if !pollers_running => Phase::Finishing,
        Phase::Finishing if drained => Phase::Releasing,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_advance_only_when_their_wait_is_over() {
        assert_eq!(advance(Phase::Draining, true, true), Phase::Draining);
        assert_eq!(advance(Phase::Draining, false, false), Phase::Finishing);
        assert_eq!(advance(Phase::Finishing, false, false), Phase::Finishing);
        assert_eq!(advance(Phase::Finishing, false, true), Phase::Releasing);
        assert_eq!(advance(Phase::Releasing, false, true), Phase::Releasing);
        assert_eq!(advance(Phase::Running, false, true), Phase::Running);
    }

    #[test]
    fn order_puts_every_shutdown_phase_after_running() {
        assert!(!Phase::Running.is_shutting_down());
        let clean = Phase::Stopped {
            outcome: StopOutcome::Clean,
        };
        assert!(clean.is_shutting_down());
        assert!(
            Phase::Stopped {
                outcome: StopOutcome::TimedOut
            }
            .is_stopped()
        );
        assert!(!Phase::Deregistered.is_stopped());
    }
}

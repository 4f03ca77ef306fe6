//! The invariants of docs/design.md §6, their classes, and a broken one.

use std::fmt;

/// What kind of bug a broken invariant reveals; the CLI exits with a code per class, so a
/// script (or CI) tells a protocol bug from a stuck fleet from a crashed process. Ordered most
/// serious first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Something bad happened: two receivers at once, a receive past the fence, a delete
    /// without a success, an epoch that did not grow.
    Safety,
    /// Something good never happened: a message never deleted, a fleet that never settled, a
    /// graceful stop that did not finish cleanly.
    Liveness,
    /// A process died by itself: a panic in the runtime.
    Crash,
}

impl Class {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Safety => "safety",
            Class::Liveness => "liveness",
            Class::Crash => "crash",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// No two instances have receive calls in flight on one queue at once.
    Exclusive,
    /// No receive call is in flight at SQS at or after the fence its instance had when it
    /// sent it (the lease the instance held then has run out).
    Fenced,
    /// Every message sent to a queue that still exists is deleted by the end.
    NoLoss,
    /// A message is deleted only with the receipt of a receive whose handler succeeded.
    DeleteAfterSuccess,
    /// A queue record's fencing epoch grows with every write.
    EpochGrows,
    /// Once faults stop, every queue is polled by exactly one live instance that the record
    /// names, and every instance holds floor or ceil of its weighted share.
    Settled,
    /// A graceful stop ends within its timeout (unless faults hit it) and holds nothing.
    GracefulStop,
    /// No instance dies by itself (level 2: a panic in the runtime ends its host's process).
    NoPanic,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 8] = [
        Invariant::Exclusive,
        Invariant::Fenced,
        Invariant::NoLoss,
        Invariant::DeleteAfterSuccess,
        Invariant::EpochGrows,
        Invariant::Settled,
        Invariant::GracefulStop,
        Invariant::NoPanic,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Exclusive => "exclusive-receive",
            Invariant::Fenced => "receive-within-fence",
            Invariant::NoLoss => "no-loss",
            Invariant::DeleteAfterSuccess => "delete-after-success",
            Invariant::EpochGrows => "epoch-grows",
            Invariant::Settled => "settled-balance",
            Invariant::GracefulStop => "graceful-stop",
            Invariant::NoPanic => "no-panic",
        }
    }

    /// Its class: what kind of bug breaking it reveals.
    pub fn class(self) -> Class {
        match self {
            Invariant::Exclusive
            | Invariant::Fenced
            | Invariant::DeleteAfterSuccess
            | Invariant::EpochGrows => Class::Safety,
            Invariant::NoLoss | Invariant::Settled | Invariant::GracefulStop => Class::Liveness,
            Invariant::NoPanic => Class::Crash,
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The index of the event after which it was seen.
    pub event: u64,
    /// Simulated time, ms.
    pub t: u64,
    /// Which invariant.
    pub invariant: Invariant,
    /// What happened.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invariant_has_a_name_and_a_class() {
        let safety = Invariant::ALL
            .iter()
            .filter(|i| i.class() == Class::Safety)
            .count();
        assert_eq!(safety, 4);
        assert_eq!(Invariant::NoPanic.class(), Class::Crash);
        assert_eq!(Invariant::Settled.class(), Class::Liveness);
        assert!(Class::Safety < Class::Liveness && Class::Liveness < Class::Crash);
    }
}

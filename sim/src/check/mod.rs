//! The invariants of docs/design.md §6 and their checkers, one file each, shared by every
//! simulation level (level 3 runs level 2's harness, so it is checked by the same calls).
//!
//! * `invariant.rs`: the [`Invariant`]s and their [`Class`] (safety, liveness, crash).
//! * `events.rs`: the [`Checker`], fed as calls happen at the fake: exclusive receive, receive
//!   within the fence, delete after success, epoch growth; and the ledger no-loss counts.
//! * `fleet.rs`: [`Fleet`], the snapshot each level builds for the checks below.
//! * `settled.rs`: [`settled`], one receiver per queue, the life its record names.
//! * `balance.rs`: [`unbalanced`], floor/ceil of the weighted share; the [`spread`] reported.
//! * `stop.rs`: [`stop_problem`], a graceful stop ends in time, cleanly, holding nothing.
//! * `drain.rs`: [`drain_over`], how long a run drains before no-loss is judged.
//!
//! No-panic is raised where a level sees a process die by itself (level 2's harness); level 1
//! has no runtime tasks that could.

mod balance;
mod drain;
mod events;
mod fleet;
mod invariant;
mod settled;
mod stop;

pub use balance::{spread, unbalanced};
pub use drain::{DRAIN_CAP_MS, drain_over};
pub use events::{Checker, Who};
pub use fleet::{Fleet, Instance};
pub use invariant::{Class, Invariant, Violation};
pub use settled::settled;
pub use stop::{FAULT_LINGER_MS, Stop, StopEnd, still_named, stop_problem};

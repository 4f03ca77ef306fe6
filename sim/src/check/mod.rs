//! The invariants of docs/design.md §6 and their checkers, one file each, shared by every
//! simulation level (level 3 runs level 2's harness, so it is checked by the same calls).
//!
//! | file | checks | levels |
//! |---|---|---|
//! | `invariant.rs` | the [`Invariant`]s, their [`Class`] (safety, liveness, crash) | 1, 2, 3 |
//! | `events.rs` | [`Checker`], as calls happen at the fake: exclusive receive, receive within the fence, delete after success, epoch growth; the ledger no-loss counts | 1, 2, 3 |
//! | `fleet.rs` | [`Fleet`], the snapshot each level builds for the checks below | 1, 2, 3 |
//! | `settled.rs` | [`settled`]: one receiver per queue, the life its record names | 1, 2, 3 |
//! | `balance.rs` | [`unbalanced`]: floor/ceil of the weighted share; the [`spread`] reported | 1, 2, 3 |
//! | `stop.rs` | [`stop_problem`]: a graceful stop ends in time, cleanly, holding nothing | 1, 2, 3 |
//! | `drain.rs` | [`drain_over`]: how long a run drains before no-loss is judged | 1, 2, 3 |
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

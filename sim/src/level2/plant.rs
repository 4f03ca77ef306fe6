//! Deliberate bugs planted around the real runtime, so the tests can show the level-2 checker
//! catches each kind of breakage. The runtime itself is never changed: the bugs sit in the
//! link (what reaches the table and SQS) and in the handler (see `host`).

use super::shared::Shared;
use crate::check::Who;
use crate::scenario::Mutation;
use sqsbalancer_core::table::{self, Cond, Item, TableWrite, Update, Value};

/// What a planted bug does to a write of life `who` (instance `name`): changes `write` in
/// place, or answers it as applied without applying it (`Some(item as it would be)`).
pub(crate) fn write(s: &mut Shared, who: Who, name: &str, write: &mut TableWrite) -> Option<Item> {
    let releasing = releases(write, name);
    match s.mutation? {
        // The first instance registers twice its capacity.
        Mutation::WrongCapacity if who.0 == 0 => {
            for u in &mut write.updates {
                if let Update::Set(n, Value::N(v)) = u
                    && *n == table::CAPACITY
                {
                    let c: u64 = v.parse().unwrap_or(1);
                    *v = (2 * c).to_string();
                }
            }
            None
        }
        // Hand-offs write the epoch they expected instead of the next one.
        Mutation::HandOffKeepsEpoch if releasing => {
            let expected = expected_epoch(write.cond.as_ref()?)?;
            for u in &mut write.updates {
                if let Update::Set(n, v) = u
                    && *n == table::EPOCH
                {
                    *v = Value::num(expected);
                }
            }
            None
        }
        // Hand-offs while stopping are answered as applied but never sent.
        Mutation::SkipReleaseOnStop if releasing && s.slots[who.0].stop_started.is_some() => {
            let now = s.dynamo.get_item("planted", crate::TABLE, &write.key, true);
            let now = now.ok().flatten();
            table::apply_updates(&write.key, now.as_ref(), &write.updates).ok()
        }
        _ => None,
    }
}

/// Whether `write` takes a queue record from instance `name`: its condition names `name` as
/// the owner and it sets another owner (or none).
fn releases(write: &TableWrite, name: &str) -> bool {
    let owner_is =
        |c: &Cond| matches!(c, Cond::Eq(n, Value::S(id)) if *n == table::OWNER_ID && id == name);
    let keeps = write
        .updates
        .iter()
        .any(|u| matches!(u, Update::Set(n, Value::S(id)) if *n == table::OWNER_ID && id == name));
    write.key.sk.starts_with(table::QUEUE_PREFIX)
        && !keeps
        && write.cond.as_ref().is_some_and(|c| any(c, &owner_is))
}

fn any(c: &Cond, f: &impl Fn(&Cond) -> bool) -> bool {
    f(c) || matches!(c, Cond::And(parts) | Cond::Or(parts) if parts.iter().any(|p| any(p, f)))
}

/// The epoch a conditional write expects (`epoch = e` in its condition).
fn expected_epoch(c: &Cond) -> Option<u64> {
    match c {
        Cond::Eq(n, Value::N(e)) if *n == table::EPOCH => e.parse().ok(),
        Cond::And(parts) | Cond::Or(parts) => parts.iter().find_map(expected_epoch),
        _ => None,
    }
}

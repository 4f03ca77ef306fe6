//! The cached target assignment and what it was computed from ([`super::retarget`] decides
//! when to compute it again).

use crate::SharedTargets;
use crate::assignment::{Assignment, Member};
use crate::ids::{InstanceId, Owner};
use crate::loads::PublishedLoads;
use crate::time::Millis;
use std::sync::Arc;

/// The cached target and what it was computed from.
#[derive(Debug)]
pub(super) struct Target {
    /// The members the target divides the queues among, sorted by id.
    pub members: Vec<Member>,
    /// When `members` last changed: moves wait the rebalance delay from then.
    pub members_changed_at: Millis,
    /// The membership version and whether this node was a member, as `members` was last
    /// computed: the same pair gives the same members.
    pub members_from: Option<(u64, bool)>,
    /// The target, once computed for the current members.
    pub assignment: Option<Assignment>,
    /// What `assignment` was computed from besides the view: own life, members' lives, and
    /// under load balance the members' published loads.
    pub key: (
        Option<Owner>,
        Vec<Option<Owner>>,
        Vec<Option<PublishedLoads>>,
    ),
    /// The membership version `key`'s lives were looked up at, while `members` stay the same.
    pub key_from: Option<u64>,
    /// The view changed since `assignment` was computed (if only toward it).
    pub behind: bool,
    /// A table read completed: recompute the target if it is behind.
    pub retarget: bool,
    /// The view went against `assignment`: recompute it (at once, or after this node's writes).
    pub stale: bool,
    /// A heartbeat tick passed since the target was last looked at.
    pub tick_passed: bool,
    /// Members silent for one and a half intervals but not expired: probably gone. Sorted.
    pub suspects: Vec<InstanceId>,
    /// The target among the members but the suspects, for the orphans `assignment` gives to a
    /// suspect; computed when first needed while anyone is suspected.
    pub fallback: Option<Assignment>,
    /// The targets this node shares with other nodes of its process, if any.
    pub shared: Option<Arc<SharedTargets>>,
}

impl Target {
    /// No target yet, with members unchanged since `now`.
    pub fn new(now: Millis) -> Target {
        Target {
            members: Vec::new(),
            members_changed_at: now,
            members_from: None,
            assignment: None,
            key: (None, Vec::new(), Vec::new()),
            key_from: None,
            behind: false,
            retarget: false,
            stale: false,
            tick_passed: false,
            suspects: Vec::new(),
            fallback: None,
            shared: None,
        }
    }
}

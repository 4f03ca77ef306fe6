//! How the protocol is stored in DynamoDB: item layout, and each [`Write`] and [`Read`] as one
//! DynamoDB request with its condition.
//!
//! Kept in the core (pure data, no I/O) so that the AWS adapter and the simulator's fake table
//! execute exactly the same requests, and so that a malformed item is rejected by one decoder.
//!
//! Layout ([`Layout`] says which partition key holds which record):
//! - `pk = layout#<application>`, `sk = layout`: `queue_partition_keys` N, written once by the
//!   first instance of the application and followed by every other.
//!
//! Under `pk = app#<application>`, and for queue records with more than one queue partition
//! key under `pk = app#<application>#<k>` (`k` from a pinned hash of the queue's name):
//! - `sk = instance#<id>`: `incarnation` N, `heartbeat` N, `status` S (`active`, `draining`,
//!   `dead`), `capacity` N, `loads` S (its queues' loads as last published; removed by each
//!   registration), `ttl` N (epoch seconds; DynamoDB deletes the item some time after).
//! - `sk = queue#<queue url>`: `owner_id` S and `owner_inc` N (both absent when unowned),
//!   `epoch` N, `retired` BOOL, and on a tombstone (retired) `ttl` N: DynamoDB deletes it a day
//!   after the queue was found gone, so a fleet whose queues churn does not read ever more
//!   records. A queue created again after that starts a new record at epoch 1: no life that
//!   could have held the old one is still within its fence a day later.

use crate::effect::{InstanceRecord, Notice, QueueRecord, Read, Reply, Status, Unreadable, Write};
use crate::ids::{InstanceId, Owner, QueueId};
use crate::loads::PublishedLoads;
use crate::page::QueuePage;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

mod layout;
pub use layout::{
    INSTANCE_PARTITION_KEYS, Layout, MAX_INSTANCE_PARTITION_KEYS, MAX_QUEUE_PARTITION_KEYS,
    QUEUE_PARTITION_KEYS, to_record,
};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// TTL attribute (the table's TTL setting points at it).
pub const TTL: &str = "ttl";
/// Attribute name.
pub const INCARNATION: &str = "incarnation";
/// Attribute name.
pub const HEARTBEAT: &str = "heartbeat";
/// Attribute name.
pub const STATUS: &str = "status";
/// Attribute name.
pub const CAPACITY: &str = "capacity";
/// Attribute name: the hand-off notice counter of an instance record (absent means 0).
pub const INBOX: &str = "inbox";
/// Attribute name: the release notice counter of an instance record (absent means 0).
pub const NEWS: &str = "news";
/// Attribute name: the latest incarnation known to have ended (absent means 0).
pub const ENDED: &str = "ended";
/// Attribute name: every incarnation up to this one is past its fence (absent means 0).
pub const LAPSED: &str = "lapsed";
/// Attribute name: the incarnation the latest registration superseded (absent means 0).
pub const PRIOR_LIFE: &str = "prior_life";
/// Attribute name: the heartbeat counter that superseded life had reached (absent means 0).
pub const PRIOR_HEARTBEAT: &str = "prior_heartbeat";
/// Attribute name: the loads of the queues an instance's life holds, as it last published
/// them ([`PublishedLoads::encode`]; absent: none published).
pub const LOADS: &str = "loads";
/// Attribute name.
pub const OWNER_ID: &str = "owner_id";
/// Attribute name.
pub const OWNER_INC: &str = "owner_inc";
/// Attribute name.
pub const EPOCH: &str = "epoch";
/// Attribute name.
pub const RETIRED: &str = "retired";

/// Sort-key prefix of instance records.
pub const INSTANCE_PREFIX: &str = "instance#";
/// Sort-key prefix of queue records.
pub const QUEUE_PREFIX: &str = "queue#";

/// How long an instance record outlives its last heartbeat before DynamoDB's TTL may delete it.
pub const LIVE_TTL_SECS: u64 = 7 * 24 * 3600;
/// How long a dead instance record, or a tombstone, is kept.
pub const DEAD_TTL_SECS: u64 = 24 * 3600;

/// One attribute value, as DynamoDB types it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// String.
    S(String),
    /// Number, in DynamoDB's decimal text form.
    N(String),
    /// Boolean.
    Bool(bool),
}

impl Value {
    /// A number value.
    pub fn num(n: u64) -> Value {
        Value::N(n.to_string())
    }

    /// The size DynamoDB charges for this value, in bytes.
    pub fn size(&self) -> usize {
        match self {
            Value::S(s) => s.len(),
            // DynamoDB: roughly one byte per two significant digits, plus one.
            Value::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
            Value::Bool(_) => 1,
        }
    }
}

/// An item: attribute name to value.
pub type Item = BTreeMap<String, Value>;

/// The size DynamoDB charges for an item: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// The primary key of one item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
}

/// A condition expression over the item as stored (an absent item has no attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    /// `attribute_exists(name)`.
    Exists(&'static str),
    /// `attribute_not_exists(name)`.
    NotExists(&'static str),
    /// `name = value`.
    Eq(&'static str, Value),
    /// `name <> value` (also true when the attribute is absent).
    Ne(&'static str, Value),
    /// `name < value` (false when the attribute is absent).
    Lt(&'static str, Value),
    /// `name > value` (false when the attribute is absent).
    Gt(&'static str, Value),
    /// Every part holds.
    And(Vec<Cond>),
    /// Some part holds.
    Or(Vec<Cond>),
}

/// One clause of an update expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// `SET name = value`.
    Set(&'static str, Value),
    /// `ADD name n` (an absent attribute counts as 0).
    Add(&'static str, i64),
    /// `SET name = if_not_exists(name, absent) + 1`: a counter that starts above `absent`.
    Increment(&'static str, u64),
    /// `REMOVE name`.
    Remove(&'static str),
    /// `SET name = if_not_exists(from, absent)`: the value `from` had before this write.
    Copy(&'static str, &'static str, u64),
}

/// One conditional write request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableWrite {
    /// The item written.
    pub key: Key,
    /// The update clauses (the item is created if absent, as UpdateItem does).
    pub updates: Vec<Update>,
    /// The condition; a failed condition changes nothing.
    pub cond: Option<Cond>,
}

/// One read request: a strongly consistent Query of the application's partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableQuery {
    /// The partition key.
    pub pk: String,
    /// `begins_with(sk, prefix)`, if any.
    pub sk_prefix: Option<String>,
    /// Read in descending sort-key order (`ScanIndexForward = false`), pages included: the
    /// one query of a single-key table read then reads the queue records before the instance
    /// records ([`Read::Table`]).
    pub backward: bool,
}

/// The partition key of an application.
pub fn partition(application: &str) -> String {
    format!("app#{application}")
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Active => "active",
        Status::Draining => "draining",
        Status::Dead => "dead",
    }
}

fn is_life(owner: &Owner) -> Vec<Cond> {
    vec![Cond::Eq(INCARNATION, Value::num(owner.incarnation))]
}

fn names_owner(owner: &Option<Owner>) -> Cond {
    match owner {
        None => Cond::NotExists(OWNER_ID),
        Some(o) => Cond::And(vec![
            Cond::Eq(OWNER_ID, Value::S(o.id.as_str().to_owned())),
            Cond::Eq(OWNER_INC, Value::num(o.incarnation)),
        ]),
    }
}

/// The updates that leave a queue record owned by `owner` at `epoch`: live (kept for good),
/// or, with `tombstone_ttl`, a tombstone DynamoDB deletes once that TTL passes.
fn queue_state(owner: &Option<Owner>, epoch: u64, tombstone_ttl: Option<Update>) -> Vec<Update> {
    let mut u = match owner {
        None => vec![Update::Remove(OWNER_ID), Update::Remove(OWNER_INC)],
        Some(o) => vec![
            Update::Set(OWNER_ID, Value::S(o.id.as_str().to_owned())),
            Update::Set(OWNER_INC, Value::num(o.incarnation)),
        ],
    };
    u.push(Update::Set(EPOCH, Value::num(epoch)));
    match tombstone_ttl {
        None => {
            u.push(Update::Set(RETIRED, Value::Bool(false)));
            u.push(Update::Remove(TTL));
        }
        Some(ttl) => {
            u.push(Update::Set(RETIRED, Value::Bool(true)));
            u.push(ttl);
        }
    }
    u
}

/// The DynamoDB request for `write`. `wall_secs` is the current wall-clock time in epoch
/// seconds; it is used only for the records' TTL.
pub fn encode_write(layout: &Layout, write: &Write, wall_secs: u64) -> TableWrite {
    let live_ttl = Update::Set(TTL, Value::num(wall_secs + LIVE_TTL_SECS));
    let dead_ttl = Update::Set(TTL, Value::num(wall_secs + DEAD_TTL_SECS));
    let not_dead = Cond::Ne(STATUS, Value::S("dead".to_owned()));
    match write {
        Write::Register {
            id,
            capacity,
            first,
        } => register(layout, id, *capacity, *first, live_ttl),
        Write::Heartbeat {
            owner,
            counter,
            status,
            loads,
        } => heartbeat(layout, (owner, *counter, *status), loads.as_ref(), live_ttl),
        Write::Notify { to, notice } => TableWrite {
            key: layout.instance_key(&to.id),
            updates: vec![Update::Add(
                match notice {
                    Notice::Inbox => INBOX,
                    Notice::News => NEWS,
                },
                1,
            )],
            cond: Some(Cond::And([is_life(to), vec![not_dead]].concat())),
        },
        Write::Reap { owner, counter } => reap(layout, owner, *counter, dead_ttl, not_dead),
        Write::Lapse { owner } => lapse(layout, owner),
        Write::Deregister { owner } => TableWrite {
            cond: Some(Cond::And(is_life(owner))),
            ..end_life(layout, owner, dead_ttl)
        },
        Write::CreateQueue {
            queue,
            revive_epoch,
        } => create_queue(layout, queue, *revive_epoch),
        Write::Claim {
            queue,
            expect_owner,
            expect_epoch,
            new_owner,
        } => {
            let also = vec![
                Cond::Eq(RETIRED, Value::Bool(false)),
                names_owner(expect_owner),
            ];
            let to = Some(new_owner.clone());
            move_queue(layout, queue, *expect_epoch, also, &to)
        }
        Write::HandOff {
            queue,
            from,
            expect_epoch,
            to,
        } => {
            let also = vec![names_owner(&Some(from.clone()))];
            move_queue(layout, queue, *expect_epoch, also, to)
        }
        Write::Retire {
            queue,
            expect_epoch,
        } => TableWrite {
            key: layout.queue_key(queue),
            updates: queue_state(&None, expect_epoch + 1, Some(dead_ttl)),
            cond: Some(Cond::Eq(EPOCH, Value::num(*expect_epoch))),
        },
    }
}

/// The request that starts a new life of `id`: the next incarnation (`first` for a record
/// created afresh), active, with a heartbeat counter back at zero. Unconditioned: a
/// registration always applies.
/// The request that beats for `life` (`owner`, counter, status) if the record still shows it,
/// publishing `loads` if given.
fn heartbeat(
    layout: &Layout,
    (owner, counter, status): (&Owner, u64, Status),
    loads: Option<&PublishedLoads>,
    live_ttl: Update,
) -> TableWrite {
    let beat = [
        Update::Set(HEARTBEAT, Value::num(counter)),
        Update::Set(STATUS, Value::S(status_text(status).to_owned())),
        live_ttl,
    ];
    let loads = loads.map(|l| Update::Set(LOADS, Value::S(l.encode())));
    let not_dead = Cond::Ne(STATUS, Value::S("dead".to_owned()));
    TableWrite {
        key: layout.instance_key(&owner.id),
        updates: beat.into_iter().chain(loads).collect(),
        cond: Some(Cond::And(
            [is_life(owner), vec![Cond::Exists(PK), not_dead]].concat(),
        )),
    }
}

fn register(
    layout: &Layout,
    id: &InstanceId,
    capacity: u32,
    first: u64,
    live_ttl: Update,
) -> TableWrite {
    TableWrite {
        key: layout.instance_key(id),
        updates: vec![
            Update::Increment(INCARNATION, first.saturating_sub(1)),
            Update::Copy(PRIOR_LIFE, INCARNATION, 0),
            Update::Copy(PRIOR_HEARTBEAT, HEARTBEAT, 0),
            Update::Set(HEARTBEAT, Value::num(0)),
            Update::Set(STATUS, Value::S("active".to_owned())),
            Update::Set(CAPACITY, Value::num(u64::from(capacity))),
            // The superseded life's loads were of queues this one does not hold.
            Update::Remove(LOADS),
            live_ttl,
        ],
        cond: None,
    }
}

/// The request that marks `owner`'s life dead and lapsed if its counter still stands at
/// `counter`.
fn reap(
    layout: &Layout,
    owner: &Owner,
    counter: u64,
    dead_ttl: Update,
    not_dead: Cond,
) -> TableWrite {
    let mut reap = end_life(layout, owner, dead_ttl);
    reap.updates
        .push(Update::Set(LAPSED, Value::num(owner.incarnation)));
    reap.cond = Some(Cond::And(
        [
            is_life(owner),
            vec![Cond::Eq(HEARTBEAT, Value::num(counter)), not_dead],
        ]
        .concat(),
    ));
    reap
}

/// The request that records the ghost `owner` as lapsed: only on a record showing a later
/// life, and only ever raising `lapsed`.
fn lapse(layout: &Layout, owner: &Owner) -> TableWrite {
    let life = Value::num(owner.incarnation);
    TableWrite {
        key: layout.instance_key(&owner.id),
        updates: vec![Update::Set(LAPSED, life.clone())],
        cond: Some(Cond::And(vec![
            Cond::Gt(INCARNATION, life.clone()),
            Cond::Or(vec![Cond::NotExists(LAPSED), Cond::Lt(LAPSED, life)]),
        ])),
    }
}

/// The unconditioned request that marks `owner`'s life over (reap or deregistration): dead,
/// its incarnation recorded as ended, kept a day.
fn end_life(layout: &Layout, owner: &Owner, dead_ttl: Update) -> TableWrite {
    TableWrite {
        key: layout.instance_key(&owner.id),
        updates: vec![
            Update::Set(STATUS, Value::S("dead".to_owned())),
            Update::Set(ENDED, Value::num(owner.incarnation)),
            dead_ttl,
        ],
        cond: None,
    }
}

/// The request that gives `queue`'s record, at `expect_epoch` and where `also` holds, to `to`
/// (nobody when `None`) at the next epoch: a claim or a hand-off.
fn move_queue(
    layout: &Layout,
    queue: &QueueId,
    expect_epoch: u64,
    also: Vec<Cond>,
    to: &Option<Owner>,
) -> TableWrite {
    let at_epoch = vec![Cond::Eq(EPOCH, Value::num(expect_epoch))];
    TableWrite {
        key: layout.queue_key(queue),
        updates: queue_state(to, expect_epoch + 1, None),
        cond: Some(Cond::And([at_epoch, also].concat())),
    }
}

/// The request that creates a queue's record, or revives its tombstone at `revive_epoch`.
fn create_queue(layout: &Layout, queue: &QueueId, revive_epoch: Option<u64>) -> TableWrite {
    let (cond, epoch) = match revive_epoch {
        None => (Cond::NotExists(PK), 1),
        Some(e) => (
            Cond::And(vec![
                Cond::Eq(RETIRED, Value::Bool(true)),
                Cond::Eq(EPOCH, Value::num(e)),
            ]),
            e + 1,
        ),
    };
    TableWrite {
        key: layout.queue_key(queue),
        updates: queue_state(&None, epoch, None),
        cond: Some(cond),
    }
}

/// The reply to an applied `write`, from the item as it stands after the write.
pub fn write_reply(write: &Write, after: &Item) -> Result<Reply, DecodeError> {
    match write {
        Write::Register { .. } => Ok(Reply::Registered {
            incarnation: number(after, INCARNATION)?,
        }),
        _ => Ok(Reply::Done),
    }
}

/// The queries that together make `read`, in phases ([`Layout::queries`]): every query of a
/// phase answers before the next phase is sent (and all of them after the [`record_keys`] of
/// a [`Read::Records`]).
pub fn encode_read(layout: &Layout, read: &Read) -> Vec<Vec<TableQuery>> {
    layout.queries(read)
}

/// The most keys one BatchGetItem request may ask for.
pub const MAX_BATCH_GET: usize = 100;

/// The keys of the queue records `read` fetches one by one (BatchGetItem, strongly
/// consistent, at most [`MAX_BATCH_GET`] a request), all of them before its queries: empty
/// unless it is a [`Read::Records`].
pub fn record_keys(layout: &Layout, read: &Read) -> Vec<Key> {
    match read {
        Read::Records(queues) => queues.iter().map(|q| layout.queue_key(q)).collect(),
        Read::Members | Read::Table => Vec::new(),
    }
}

/// Why an item was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("item {sk:?}: {reason}")]
pub struct DecodeError {
    /// The item's sort key (truncated to 80 characters), or empty if it has none.
    pub sk: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The records decoded from a page of items, and the items skipped as malformed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Instance records, in the order read.
    pub instances: Vec<InstanceRecord>,
    /// Queue records, page by page in the order read.
    pub queues: Vec<QueuePage>,
    /// Items that could not be read; the caller logs them and carries on.
    pub skipped: Vec<DecodeError>,
    /// The instances and queues those items are the records of, where their keys say.
    pub unreadable: Unreadable,
}

/// Decodes every item of a query result, skipping (and reporting) malformed ones.
pub fn decode_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Decoded {
    collect_records(items.into_iter().map(|i| (i, decode_item(i))))
}

/// Gathers items, each beside what [`decode_item`] makes of it, into a [`Decoded`] whose queue
/// records are one page: for a caller that keeps the records of items it decoded before (the
/// simulator, whose nodes read the same stored items over and over).
pub fn collect_records<'a>(
    items: impl IntoIterator<Item = (&'a Item, Result<Record, DecodeError>)>,
) -> Decoded {
    let mut out = Decoded::default();
    let mut queues = Vec::new();
    for (item, record) in items {
        match record {
            Ok(Record::Instance(r)) => out.instances.push(r),
            Ok(Record::Queue(r)) => queues.push(r),
            Err(e) => {
                let sk = match item.get(SK) {
                    Some(Value::S(sk)) => sk.as_str(),
                    _ => "",
                };
                if let Some(id) = sk.strip_prefix(INSTANCE_PREFIX) {
                    out.unreadable.instances.extend(InstanceId::new(id).ok());
                } else if let Some(q) = sk.strip_prefix(QUEUE_PREFIX) {
                    out.unreadable.queues.extend(QueueId::new(q).ok());
                }
                out.skipped.push(e);
            }
        }
    }
    out.unreadable.instances.sort();
    out.unreadable.queues.sort();
    if !queues.is_empty() {
        out.queues.push(QueuePage::new(queues));
    }
    out
}

/// The reply to `read` from decoded records.
pub fn read_reply(read: &Read, decoded: Decoded) -> Reply {
    match read {
        Read::Members => Reply::Members {
            instances: decoded.instances,
            unreadable: Unreadable {
                queues: Vec::new(),
                ..decoded.unreadable
            },
        },
        Read::Table => Reply::Table {
            instances: decoded.instances,
            pages: decoded.queues,
            unreadable: decoded.unreadable,
        },
        Read::Records(_) => Reply::Records {
            instances: decoded.instances,
            queues: (decoded.queues.iter())
                .flat_map(|p| p.records().iter().cloned())
                .collect(),
            unreadable: decoded.unreadable,
        },
    }
}

/// One decoded item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// An instance record.
    Instance(InstanceRecord),
    /// A queue record, shared: the simulator hands one decoded record to every node that
    /// reads its item, so a thousand views of a table hold one copy of each record.
    Queue(Arc<QueueRecord>),
}

fn sk_of(item: &Item) -> String {
    match item.get(SK) {
        Some(Value::S(s)) => s.chars().take(80).collect(),
        _ => String::new(),
    }
}

fn fail<T>(item: &Item, reason: String) -> Result<T, DecodeError> {
    Err(DecodeError {
        sk: sk_of(item),
        reason,
    })
}

fn number(item: &Item, name: &str) -> Result<u64, DecodeError> {
    match item.get(name) {
        Some(Value::N(n)) => match n.parse::<u64>() {
            Ok(v) => Ok(v),
            Err(_) => fail(item, format!("{name} is not a whole number: {n:.20}")),
        },
        Some(_) => fail(item, format!("{name} is not a number")),
        None => fail(item, format!("{name} is missing")),
    }
}

/// The number `name` of `item`, 0 when absent.
fn optional_number(item: &Item, name: &str) -> Result<u64, DecodeError> {
    match item.get(name) {
        None => Ok(0),
        Some(_) => number(item, name),
    }
}

/// Decodes one item of the coordination table.
pub fn decode_item(item: &Item) -> Result<Record, DecodeError> {
    let Some(Value::S(sk)) = item.get(SK) else {
        return fail(item, "sort key missing or not a string".to_owned());
    };
    if let Some(id) = sk.strip_prefix(INSTANCE_PREFIX) {
        let id = InstanceId::new(id).or_else(|e| fail(item, e.to_string()))?;
        let status = match item.get(STATUS) {
            Some(Value::S(s)) if s == "active" => Status::Active,
            Some(Value::S(s)) if s == "draining" => Status::Draining,
            Some(Value::S(s)) if s == "dead" => Status::Dead,
            _ => return fail(item, "status is missing or unknown".to_owned()),
        };
        let capacity = number(item, CAPACITY)?;
        if capacity == 0 || capacity > u64::from(crate::config::MAX_CAPACITY) {
            return fail(item, format!("capacity {capacity} out of range"));
        }
        Ok(Record::Instance(InstanceRecord {
            id,
            incarnation: number(item, INCARNATION)?,
            heartbeat: number(item, HEARTBEAT)?,
            status,
            capacity: capacity as u32,
            inbox: optional_number(item, INBOX)?,
            news: optional_number(item, NEWS)?,
            ended: optional_number(item, ENDED)?,
            lapsed: optional_number(item, LAPSED)?,
            prior: (
                optional_number(item, PRIOR_LIFE)?,
                optional_number(item, PRIOR_HEARTBEAT)?,
            ),
            loads: match item.get(LOADS) {
                Some(Value::S(text)) => PublishedLoads::decode(text),
                _ => None,
            },
        }))
    } else if let Some(q) = sk.strip_prefix(QUEUE_PREFIX) {
        let queue = QueueId::new(q).or_else(|e| fail(item, e.to_string()))?;
        let owner = match (item.get(OWNER_ID), item.contains_key(OWNER_INC)) {
            (None, false) => None,
            (Some(Value::S(id)), true) => Some(Owner {
                id: InstanceId::new(id).or_else(|e| fail(item, e.to_string()))?,
                incarnation: number(item, OWNER_INC)?,
            }),
            _ => return fail(item, "owner_id and owner_inc must come together".to_owned()),
        };
        let retired = match item.get(RETIRED) {
            Some(Value::Bool(b)) => *b,
            _ => return fail(item, "retired is missing or not a boolean".to_owned()),
        };
        Ok(Record::Queue(Arc::new(QueueRecord {
            queue,
            owner,
            epoch: number(item, EPOCH)?,
            retired,
        })))
    } else {
        fail(item, "unknown sort key prefix".to_owned())
    }
}

/// Whether `cond` holds on `item` (`None`: the item is absent).
pub fn holds(cond: &Cond, item: Option<&Item>) -> bool {
    let get = |name: &str| item.and_then(|i| i.get(name));
    match cond {
        Cond::Exists(n) => get(n).is_some(),
        Cond::NotExists(n) => get(n).is_none(),
        Cond::Eq(n, v) => get(n).is_some_and(|x| same(x, v)),
        Cond::Ne(n, v) => !get(n).is_some_and(|x| same(x, v)),
        Cond::Lt(n, v) => get(n).is_some_and(|x| order(x, v) == Some(Ordering::Less)),
        Cond::Gt(n, v) => get(n).is_some_and(|x| order(x, v) == Some(Ordering::Greater)),
        Cond::And(cs) => cs.iter().all(|c| holds(c, item)),
        Cond::Or(cs) => cs.iter().any(|c| holds(c, item)),
    }
}

/// Why a conditional write changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The condition did not hold on the item as stored (ConditionalCheckFailedException).
    #[error("the condition did not hold")]
    Condition,
    /// An update could not be applied (ValidationException).
    #[error(transparent)]
    Update(#[from] UpdateError),
}

/// The item `request` leaves on `old` (`None`: absent), as UpdateItem does: its condition is
/// checked against the item as stored, then its updates applied. The one execution of the
/// write conditions: the simulator's fake table and the core's test tables both call it.
pub fn update(request: &TableWrite, old: Option<&Item>) -> Result<Item, Refused> {
    if request.cond.as_ref().is_some_and(|c| !holds(c, old)) {
        return Err(Refused::Condition);
    }
    Ok(apply_updates(&request.key, old, &request.updates)?)
}

/// Order as DynamoDB compares: numbers by value, strings by their bytes; other pairs (and
/// mixed types) do not compare, so a condition on them is false.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::N(x), Value::N(y)) => Some(x.parse::<i128>().ok()?.cmp(&y.parse::<i128>().ok()?)),
        (Value::S(x), Value::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

/// Equality as DynamoDB compares: numbers by value, everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::N(x), Value::N(y)) => match (x.parse::<i128>(), y.parse::<i128>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// Why an update could not be applied (DynamoDB's ValidationException).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot ADD to {attribute}: {reason}")]
pub struct UpdateError {
    /// The attribute.
    pub attribute: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

/// Applies `updates` to `item` (created with its key if absent), as UpdateItem does.
pub fn apply_updates(
    key: &Key,
    item: Option<&Item>,
    updates: &[Update],
) -> Result<Item, UpdateError> {
    let mut out = item.cloned().unwrap_or_else(|| {
        let mut i = Item::new();
        i.insert(PK.to_owned(), Value::S(key.pk.clone()));
        i.insert(SK.to_owned(), Value::S(key.sk.clone()));
        i
    });
    for u in updates {
        match u {
            // Every action reads the item as it was before the write, as on DynamoDB.
            Update::Copy(n, from, absent) => {
                let v = item.and_then(|i| i.get(*from)).cloned();
                out.insert((*n).to_owned(), v.unwrap_or_else(|| Value::num(*absent)));
            }
            Update::Set(n, v) => {
                out.insert((*n).to_owned(), v.clone());
            }
            Update::Remove(n) => {
                out.remove(*n);
            }
            Update::Add(n, d) => {
                let old = item.map_or(Ok(None), |i| integer(i, n))?.unwrap_or(0);
                let new = old.checked_add(i128::from(*d)).ok_or(UpdateError {
                    attribute: n,
                    reason: "overflow",
                })?;
                out.insert((*n).to_owned(), Value::N(new.to_string()));
            }
            Update::Increment(n, absent) => {
                let before = item.map_or(Ok(None), |i| integer(i, n))?;
                let old = before.unwrap_or(i128::from(*absent));
                out.insert((*n).to_owned(), Value::N((old + 1).to_string()));
            }
        }
    }
    Ok(out)
}

/// The integer attribute `n` of `item`, if present.
fn integer(item: &Item, n: &'static str) -> Result<Option<i128>, UpdateError> {
    match item.get(n) {
        None => Ok(None),
        Some(Value::N(x)) => x.parse::<i128>().map(Some).map_err(|_| UpdateError {
            attribute: n,
            reason: "not an integer",
        }),
        Some(_) => Err(UpdateError {
            attribute: n,
            reason: "not a number",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str, inc: u64) -> Owner {
        Owner {
            id: InstanceId::new(id).unwrap(),
            incarnation: inc,
        }
    }

    fn q() -> QueueId {
        QueueId::new("https://sqs.local/1/q-1").unwrap()
    }

    /// Runs a write against an optional stored item like the table would.
    fn run(w: &Write, item: Option<Item>) -> Option<Item> {
        let tw = encode_write(&Layout::single("app"), w, 1_000);
        match update(&tw, item.as_ref()) {
            Ok(item) => Some(item),
            Err(Refused::Condition) => None,
            Err(e) => panic!("{w:?} cannot apply: {e}"),
        }
    }

    /// The queue record `item` decodes to, if it decodes to one.
    fn queue_record(item: &Item) -> Option<QueueRecord> {
        match decode_item(item) {
            Ok(Record::Queue(r)) => Some(Arc::unwrap_or_clone(r)),
            _ => None,
        }
    }

    #[test]
    fn register_then_heartbeat_round_trips() {
        let id = InstanceId::new("a").unwrap();
        let reg = Write::Register {
            id: id.clone(),
            capacity: 3,
            first: 1,
        };
        let item = run(&reg, None).unwrap();
        assert_eq!(
            write_reply(&reg, &item),
            Ok(Reply::Registered { incarnation: 1 })
        );
        let again = run(&reg, Some(item)).unwrap();
        assert_eq!(
            write_reply(&reg, &again),
            Ok(Reply::Registered { incarnation: 2 })
        );
        let q = QueueId::new("q-1").unwrap();
        let loads = PublishedLoads::summarize([(&q, 250)]);
        let hb = |inc| Write::Heartbeat {
            owner: owner("a", inc),
            counter: 7,
            status: Status::Draining,
            loads: Some(loads.clone()),
        };
        assert!(
            run(&hb(1), Some(again.clone())).is_none(),
            "old life fenced"
        );
        let beat = run(&hb(2), Some(again)).unwrap();
        assert_eq!(
            decode_item(&beat),
            Ok(Record::Instance(InstanceRecord {
                id,
                incarnation: 2,
                heartbeat: 7,
                status: Status::Draining,
                capacity: 3,
                inbox: 0,
                news: 0,
                ended: 0,
                lapsed: 0,
                prior: (1, 0),
                loads: Some(loads.clone()),
            }))
        );
        let reaped = run(
            &Write::Reap {
                owner: owner("a", 2),
                counter: 7,
            },
            Some(beat),
        )
        .unwrap();
        match decode_item(&reaped) {
            Ok(Record::Instance(r)) => {
                assert_eq!((r.status, r.ended, r.lapsed), (Status::Dead, 2, 2));
            }
            other => panic!("not an instance: {other:?}"),
        }
        let again = run(
            &Write::Register {
                id: InstanceId::new("a").unwrap(),
                capacity: 3,
                first: 1,
            },
            Some(reaped.clone()),
        )
        .unwrap();
        match decode_item(&again) {
            Ok(Record::Instance(r)) => {
                assert_eq!((r.incarnation, r.ended), (3, 2), "kept");
                assert_eq!(r.prior, (2, 7), "the superseded life's last counter");
                assert_eq!(r.loads, None, "the superseded life's loads");
            }
            other => panic!("not an instance: {other:?}"),
        }
        assert!(run(&hb(2), Some(reaped)).is_none(), "dead life fenced");
        assert!(run(&hb(1), None).is_none(), "heartbeat never creates");
    }

    #[test]
    fn a_lapse_only_raises_lapsed_on_a_record_showing_a_later_life() {
        let lapse = |inc| Write::Lapse {
            owner: owner("a", inc),
        };
        let mut item = Item::new();
        item.insert(PK.into(), Value::S(partition("app")));
        item.insert(SK.into(), Value::S(format!("{INSTANCE_PREFIX}a")));
        item.insert(INCARNATION.into(), Value::num(5));
        assert!(run(&lapse(5), Some(item.clone())).is_none(), "current life");
        assert!(run(&lapse(6), Some(item.clone())).is_none(), "a later life");
        assert!(run(&lapse(3), None).is_none(), "never creates");
        let lapsed = run(&lapse(3), Some(item)).unwrap();
        assert_eq!(lapsed.get(LAPSED), Some(&Value::num(3)));
        assert!(run(&lapse(3), Some(lapsed.clone())).is_none(), "once");
        assert!(
            run(&lapse(2), Some(lapsed.clone())).is_none(),
            "never lower"
        );
        let higher = run(&lapse(4), Some(lapsed)).unwrap();
        assert_eq!(higher.get(LAPSED), Some(&Value::num(4)));
    }

    #[test]
    fn every_update_reads_the_item_as_it_was_before_the_write() {
        let key = Key {
            pk: "p".into(),
            sk: "s".into(),
        };
        let mut item = Item::new();
        item.insert("a".into(), Value::num(7));
        let updates = [
            Update::Set("a", Value::num(0)),
            Update::Copy("b", "a", 9),
            Update::Increment("a2", 4),
        ];
        let out = apply_updates(&key, Some(&item), &updates).unwrap();
        assert_eq!(out.get("b"), Some(&Value::num(7)), "copied before the set");
        assert_eq!(out.get("a2"), Some(&Value::num(5)));
        let fresh = apply_updates(&key, None, &updates).unwrap();
        assert_eq!(fresh.get("b"), Some(&Value::num(9)), "absent: the default");
    }

    #[test]
    fn order_conditions_compare_numbers_by_value_and_fail_on_absence() {
        let mut item = Item::new();
        item.insert("n".into(), Value::N("10".into()));
        item.insert("s".into(), Value::S("b".into()));
        let holds_on = |c: Cond| holds(&c, Some(&item));
        assert!(holds_on(Cond::Gt("n", Value::num(9))));
        assert!(!holds_on(Cond::Gt("n", Value::num(10))));
        assert!(holds_on(Cond::Lt("n", Value::num(11))));
        assert!(holds_on(Cond::Lt("s", Value::S("c".into()))));
        assert!(
            !holds_on(Cond::Lt("n", Value::S("z".into()))),
            "mixed types"
        );
        assert!(!holds_on(Cond::Lt("absent", Value::num(1))));
        assert!(!holds_on(Cond::Gt("absent", Value::num(0))));
    }

    #[test]
    fn queue_writes_check_owner_and_epoch() {
        let create = Write::CreateQueue {
            queue: q(),
            revive_epoch: None,
        };
        let rec = run(&create, None).unwrap();
        assert!(run(&create, Some(rec.clone())).is_none(), "create once");
        let claim = |expect_owner, expect_epoch| Write::Claim {
            queue: q(),
            expect_owner,
            expect_epoch,
            new_owner: owner("b", 1),
        };
        assert!(run(&claim(Some(owner("x", 1)), 1), Some(rec.clone())).is_none());
        assert!(run(&claim(None, 2), Some(rec.clone())).is_none());
        let held = run(&claim(None, 1), Some(rec)).unwrap();
        assert_eq!(
            decode_item(&held),
            Ok(Record::Queue(Arc::new(QueueRecord {
                queue: q(),
                owner: Some(owner("b", 1)),
                epoch: 2,
                retired: false,
            })))
        );
        let hand = |from| Write::HandOff {
            queue: q(),
            from,
            expect_epoch: 2,
            to: None,
        };
        assert!(run(&hand(owner("b", 2)), Some(held.clone())).is_none());
        let free = run(&hand(owner("b", 1)), Some(held)).unwrap();
        let retire = Write::Retire {
            queue: q(),
            expect_epoch: 3,
        };
        let tomb = run(&retire, Some(free)).unwrap();
        assert_eq!(
            tomb.get(TTL),
            Some(&Value::num(1_000 + DEAD_TTL_SECS)),
            "a tombstone expires"
        );
        assert!(matches!(
            queue_record(&tomb),
            Some(QueueRecord {
                epoch: 4,
                retired: true,
                owner: None,
                ..
            })
        ));
        assert!(
            run(&claim(None, 4), Some(tomb.clone())).is_none(),
            "no claim of a tombstone"
        );
        let revive = Write::CreateQueue {
            queue: q(),
            revive_epoch: Some(4),
        };
        let back = run(&revive, Some(tomb)).unwrap();
        assert_eq!(back.get(TTL), None, "a revived record is kept for good");
        assert!(matches!(
            queue_record(&back),
            Some(QueueRecord {
                epoch: 5,
                retired: false,
                ..
            })
        ));
    }

    #[test]
    fn a_record_created_afresh_starts_at_the_registration_s_first_incarnation() {
        let reg = |first| Write::Register {
            id: InstanceId::new("a").unwrap(),
            capacity: 1,
            first,
        };
        let item = run(&reg(1_000_000), None).unwrap();
        assert_eq!(
            write_reply(&reg(5), &item),
            Ok(Reply::Registered {
                incarnation: 1_000_000
            })
        );
        // An existing record counts on, whatever the registration drew.
        let again = run(&reg(5), Some(item)).unwrap();
        assert_eq!(
            write_reply(&reg(5), &again),
            Ok(Reply::Registered {
                incarnation: 1_000_001
            })
        );
    }

    #[test]
    fn malformed_items_are_reported_not_decoded() {
        let base = run(
            &Write::Register {
                id: InstanceId::new("a").unwrap(),
                capacity: 1,
                first: 1,
            },
            None,
        )
        .unwrap();
        type Breakage = Box<dyn Fn(&mut Item)>;
        let cases: Vec<(&str, Breakage)> = vec![
            (
                "status",
                Box::new(|i| {
                    i.remove(STATUS);
                }),
            ),
            (
                "heartbeat",
                Box::new(|i| {
                    i.insert(HEARTBEAT.into(), Value::S("x".into()));
                }),
            ),
            (
                "capacity",
                Box::new(|i| {
                    i.insert(CAPACITY.into(), Value::num(0));
                }),
            ),
            (
                "prefix",
                Box::new(|i| {
                    i.insert(SK.into(), Value::S("lease#z".into()));
                }),
            ),
            (
                "instance id",
                Box::new(|i| {
                    i.insert(
                        SK.into(),
                        Value::S(format!("instance#{}", "x".repeat(50_000))),
                    );
                }),
            ),
            (
                "sort key",
                Box::new(|i| {
                    i.remove(SK);
                }),
            ),
        ];
        for (what, break_it) in cases {
            let mut item = base.clone();
            break_it(&mut item);
            let d = decode_items([&item, &base]);
            assert_eq!(d.instances.len(), 1, "{what}: the good item survives");
            assert_eq!(d.skipped.len(), 1, "{what}: the bad item is reported");
            assert!(d.skipped[0].sk.len() <= 80, "{what}: report stays short");
        }
    }
}

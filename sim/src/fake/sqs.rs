//! An in-memory SQS: standard and FIFO queues, visibility timeouts, receive counts, batches,
//! listing with pagination, and long polls that wait in simulated time.
//!
//! Clock-free: every call takes `now`. A receive that finds nothing and may wait is parked with
//! [`FakeSqs::receive_or_park`]; the caller asks [`FakeSqs::next_wake`] when something may be ready and calls
//! [`FakeSqs::wake`] then, which completes every parked receive that got messages or reached the
//! end of its wait.

use crate::lookup::Lookup;
use sqsbalancer_core::Millis;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The URL prefix of every fake queue.
pub const URL_PREFIX: &str = "https://sqs.sim.local/000000000000/";
/// How long a FIFO deduplication id is remembered.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// The longest visibility timeout SQS allows, in seconds.
pub const MAX_VISIBILITY_SECS: u32 = 43_200;

/// What the fake SQS refuses, named as SQS names it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqsError {
    /// The queue does not exist (or was deleted).
    #[error("AWS.SimpleQueueService.NonExistentQueue: {url}")]
    QueueDoesNotExist {
        /// The URL asked for.
        url: String,
    },
    /// A parameter is out of range or malformed.
    #[error("InvalidParameterValue: {reason}")]
    InvalidParameter {
        /// What is wrong.
        reason: String,
    },
}

/// Why one entry of a batch failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The receipt handle is not the latest one issued for its message.
    ReceiptHandleIsInvalid,
    /// The message is not in flight (ChangeMessageVisibility only).
    MessageNotInflight,
}

/// Operations counted per caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SqsOp {
    /// SendMessage.
    SendMessage,
    /// SendMessageBatch.
    SendMessageBatch,
    /// ReceiveMessage.
    ReceiveMessage,
    /// DeleteMessage.
    DeleteMessage,
    /// DeleteMessageBatch.
    DeleteMessageBatch,
    /// ChangeMessageVisibility.
    ChangeMessageVisibility,
    /// ChangeMessageVisibilityBatch.
    ChangeMessageVisibilityBatch,
    /// GetQueueAttributes.
    GetQueueAttributes,
    /// ListQueues (one per page).
    ListQueues,
    /// CreateQueue.
    CreateQueue,
    /// DeleteQueue.
    DeleteQueue,
}

/// One message to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// The body.
    pub body: String,
    /// Message attributes (string-typed).
    pub attributes: BTreeMap<String, String>,
    /// FIFO: MessageGroupId (required on FIFO queues).
    pub group: Option<String>,
    /// FIFO: MessageDeduplicationId (the body is used when absent).
    pub dedup: Option<String>,
    /// DelaySeconds.
    pub delay_secs: u32,
}

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// MessageId.
    pub message_id: String,
    /// The handle to delete or change visibility with; only the latest one is valid.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// ApproximateReceiveCount, including this receive.
    pub receive_count: u32,
    /// Message attributes, filtered by the names asked for.
    pub attributes: BTreeMap<String, String>,
    /// FIFO: the group.
    pub group: Option<String>,
    /// When it was sent (SQS's SentTimestamp, on the fake's clock).
    pub sent: Millis,
}

/// A ReceiveMessage request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveRequest {
    /// The queue.
    pub url: String,
    /// MaxNumberOfMessages (1..=10).
    pub max: u32,
    /// VisibilityTimeout in seconds.
    pub visibility_secs: u32,
    /// WaitTimeSeconds, in milliseconds of simulated time (0..=20 s).
    pub wait_ms: u64,
    /// MessageAttributeNames (`All` for every one).
    pub attribute_names: Vec<String>,
}

/// Approximate counts of GetQueueAttributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// ApproximateNumberOfMessages: visible now.
    pub visible: u64,
    /// ApproximateNumberOfMessagesNotVisible: in flight.
    pub not_visible: u64,
    /// ApproximateNumberOfMessagesDelayed.
    pub delayed: u64,
}

/// One page of ListQueues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuePage {
    /// Queue URLs.
    pub urls: Vec<String>,
    /// The token for the next page, when MaxResults was given and more remain.
    pub next_token: Option<String>,
}

/// Every queue URL a ListQueues walk returns, its pages followed to the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The URLs in order, shared with every walk of the same prefix while no queue was
    /// created or deleted.
    pub urls: Arc<[String]>,
    /// The calls the walk took (billed to its caller).
    pub pages: u64,
}

/// Names one parked receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WaitId(pub u64);

#[derive(Clone, Debug)]
struct Msg {
    id: String,
    body: String,
    attributes: BTreeMap<String, String>,
    group: Option<String>,
    receive_count: u32,
    /// When it becomes visible (or deliverable, for a delayed message).
    visible_at: Millis,
    /// When it was sent.
    sent: Millis,
}

#[derive(Debug, Default)]
struct Queue {
    fifo: bool,
    /// Index of the queue in receipt handles.
    index: u64,
    messages: BTreeMap<u64, Msg>,
    ready: BTreeSet<u64>,
    hidden: BTreeSet<(Millis, u64)>,
    in_flight_groups: BTreeMap<String, u32>,
    dedup: BTreeMap<String, (Millis, String)>,
    waiters: VecDeque<WaitId>,
}

struct Waiter {
    caller: String,
    req: ReceiveRequest,
    deadline: Millis,
}

/// The in-memory SQS.
#[derive(Default)]
pub struct FakeSqs {
    /// The queues by URL (each long poll looks its queue up three times).
    queues: Lookup<String, Queue>,
    /// Every queue's URL, in order: what listings walk.
    urls: BTreeSet<String>,
    next_index: u64,
    next_message: u64,
    calls: BTreeMap<String, BTreeMap<SqsOp, u64>>,
    waiters: BTreeMap<WaitId, Waiter>,
    deadlines: BTreeSet<(Millis, WaitId)>,
    /// Queues whose parked receives should look again (a send, a deletion).
    dirty: BTreeSet<String>,
    /// When some message of a queue (by index) may become visible; stale entries are harmless.
    hints: BTreeSet<(Millis, u64)>,
    names: BTreeMap<u64, String>,
    next_wait: u64,
    /// Bumped by every creation and deletion of a queue.
    generation: u64,
    /// The last walk of each prefix ([`FakeSqs::list_all`]) and the generation it saw.
    listings: BTreeMap<String, (u64, Listing)>,
}

fn invalid<T>(reason: String) -> Result<T, SqsError> {
    Err(SqsError::InvalidParameter { reason })
}

fn gone<T>(url: &str) -> Result<T, SqsError> {
    Err(SqsError::QueueDoesNotExist {
        url: url.to_owned(),
    })
}

impl Queue {
    /// Moves messages whose time has come back to ready.
    fn expire(&mut self, now: Millis) {
        while let Some(&(t, seq)) = self.hidden.first() {
            if t > now {
                break;
            }
            self.hidden.pop_first();
            let m = &self.messages[&seq];
            if m.receive_count > 0
                && let Some(g) = &m.group
            {
                let n = self.in_flight_groups.get_mut(g).expect("group counted");
                *n -= 1;
                if *n == 0 {
                    self.in_flight_groups.remove(g);
                }
            }
            self.ready.insert(seq);
        }
    }

    fn hide(&mut self, seq: u64, until: Millis) {
        let m = self.messages.get_mut(&seq).expect("message exists");
        m.visible_at = until;
        self.hidden.insert((until, seq));
        if let Some(g) = &m.group {
            *self.in_flight_groups.entry(g.clone()).or_default() += 1;
        }
    }

    fn take(&mut self, now: Millis, req: &ReceiveRequest) -> Vec<Received> {
        self.expire(now);
        let mut picked = Vec::new();
        let mut blocked: BTreeSet<&str> = BTreeSet::new();
        for &seq in &self.ready {
            if picked.len() >= req.max as usize {
                break;
            }
            let m = &self.messages[&seq];
            if let Some(g) = &m.group
                && (self.in_flight_groups.contains_key(g) || blocked.contains(g.as_str()))
            {
                // Later messages of a group wait for the one in flight; taking them in sequence
                // order keeps each group's order within one receive.
                blocked.insert(g);
                continue;
            }
            picked.push(seq);
        }
        let until = Millis(now.0 + u64::from(req.visibility_secs) * 1000);
        let all = req.attribute_names.iter().any(|n| n == "All" || n == ".*");
        let mut out = Vec::with_capacity(picked.len());
        for seq in picked {
            self.ready.remove(&seq);
            let m = self.messages.get_mut(&seq).expect("ready message exists");
            m.receive_count += 1;
            let attributes = m
                .attributes
                .iter()
                .filter(|(k, _)| all || req.attribute_names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.push(Received {
                message_id: m.id.clone(),
                receipt: format!("{}:{}:{}", self.index, seq, m.receive_count),
                body: m.body.clone(),
                receive_count: m.receive_count,
                attributes,
                group: m.group.clone(),
                sent: m.sent,
            });
            self.hide(seq, until);
        }
        out
    }

    fn take_hinted(
        &mut self,
        now: Millis,
        req: &ReceiveRequest,
        hints: &mut BTreeSet<(Millis, u64)>,
    ) -> Vec<Received> {
        let got = self.take(now, req);
        if !got.is_empty() {
            hints.insert((
                Millis(now.0 + u64::from(req.visibility_secs) * 1000),
                self.index,
            ));
        }
        got
    }

    /// The message a receipt handle names, if the handle is its latest.
    fn check_receipt(&self, receipt: &str) -> Result<Option<u64>, EntryError> {
        let mut parts = receipt.split(':').map(|p| p.parse::<u64>());
        let (Some(Ok(index)), Some(Ok(seq)), Some(Ok(count)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EntryError::ReceiptHandleIsInvalid);
        };
        if index != self.index {
            return Err(EntryError::ReceiptHandleIsInvalid);
        }
        match self.messages.get(&seq) {
            // Deleting a deleted message succeeds, as in SQS.
            None => Ok(None),
            Some(m) if u64::from(m.receive_count) == count => Ok(Some(seq)),
            Some(_) => Err(EntryError::ReceiptHandleIsInvalid),
        }
    }

    fn remove(&mut self, seq: u64) {
        let m = self.messages.remove(&seq).expect("message exists");
        if !self.ready.remove(&seq) {
            self.hidden.remove(&(m.visible_at, seq));
            if m.receive_count > 0
                && let Some(g) = &m.group
                && let Some(n) = self.in_flight_groups.get_mut(g)
            {
                *n -= 1;
                if *n == 0 {
                    self.in_flight_groups.remove(g);
                }
            }
        }
    }
}

impl FakeSqs {
    /// An SQS with no queues.
    pub fn new() -> FakeSqs {
        FakeSqs::default()
    }

    fn count(&mut self, caller: &str, op: SqsOp) {
        let c = match self.calls.get_mut(caller) {
            Some(c) => c,
            None => self.calls.entry(caller.to_owned()).or_default(),
        };
        *c.entry(op).or_default() += 1;
    }

    /// Calls by operation, per caller.
    pub fn calls(&self) -> &BTreeMap<String, BTreeMap<SqsOp, u64>> {
        &self.calls
    }

    /// Calls of one caller, all operations.
    pub fn calls_of(&self, caller: &str) -> u64 {
        self.calls.get(caller).map_or(0, |c| c.values().sum())
    }

    fn queue(&mut self, url: &str) -> Result<&mut Queue, SqsError> {
        match self.queues.get_mut(url) {
            Some(q) => Ok(q),
            None => gone(url),
        }
    }

    /// The URL a queue name has.
    pub fn url_of(name: &str) -> String {
        format!("{URL_PREFIX}{name}")
    }

    /// CreateQueue: FIFO when the name ends in `.fifo`; creating an existing queue returns it.
    pub fn create_queue(&mut self, caller: &str, name: &str) -> Result<String, SqsError> {
        self.count(caller, SqsOp::CreateQueue);
        let base = name.strip_suffix(".fifo").unwrap_or(name);
        if base.is_empty()
            || name.len() > 80
            || !base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid(format!(
                "queue name {name:?} must be 1-80 letters, digits, '-' or '_' (FIFO: ending in .fifo)"
            ));
        }
        let url = Self::url_of(name);
        if !self.queues.contains_key(&url) {
            self.next_index += 1;
            let q = Queue {
                fifo: name.ends_with(".fifo"),
                index: self.next_index,
                ..Queue::default()
            };
            self.names.insert(self.next_index, url.clone());
            self.urls.insert(url.clone());
            self.queues.insert(url.clone(), q);
            self.generation += 1;
        }
        Ok(url)
    }

    /// DeleteQueue: the queue and its messages are gone; parked receives on it fail.
    pub fn delete_queue(&mut self, caller: &str, url: &str) -> Result<(), SqsError> {
        self.count(caller, SqsOp::DeleteQueue);
        let Some(q) = self.queues.remove(url) else {
            return gone(url);
        };
        self.urls.remove(url);
        self.names.remove(&q.index);
        self.generation += 1;
        self.dirty.insert(url.to_owned());
        Ok(())
    }

    /// Whether the queue exists.
    pub fn exists(&self, url: &str) -> bool {
        self.queues.contains_key(url)
    }

    /// ListQueues: names starting with `prefix`, in URL order. `max_results` (1..=1000) pages
    /// with a NextToken; without it at most 1,000 URLs come back and no token, as in SQS.
    pub fn list_queues(
        &mut self,
        caller: &str,
        prefix: &str,
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<QueuePage, SqsError> {
        self.count(caller, SqsOp::ListQueues);
        if let Some(m) = max_results
            && !(1..=1000).contains(&m)
        {
            return invalid(format!("MaxResults must be 1..=1000, {m} given"));
        }
        if next_token.is_some() && max_results.is_none() {
            return invalid("NextToken needs MaxResults".to_owned());
        }
        let start = match next_token {
            None => URL_PREFIX.to_owned() + prefix,
            Some(t) => match t.strip_prefix("after:") {
                Some(u) => u.to_owned(),
                None => return invalid(format!("invalid NextToken {t:?}")),
            },
        };
        let limit = max_results.unwrap_or(1000) as usize;
        let full_prefix = URL_PREFIX.to_owned() + prefix;
        let mut it = self
            .urls
            .range(start.clone()..)
            .filter(|u| next_token.is_none() || **u != start)
            .take_while(|u| u.starts_with(&full_prefix));
        let urls: Vec<String> = it.by_ref().take(limit).cloned().collect();
        let more = it.next().is_some();
        let next_token = (more && max_results.is_some())
            .then(|| format!("after:{}", urls.last().expect("a full page")));
        Ok(QueuePage { urls, next_token })
    }

    /// ListQueues with MaxResults 1,000, following NextToken to the end as the runtime does:
    /// each page is billed as a call. A walk of a prefix while no queue was created or deleted
    /// since the last returns the same URLs without copying them (a thousand simulated nodes
    /// list a hundred thousand queues each minute).
    pub fn list_all(&mut self, caller: &str, prefix: &str) -> Listing {
        let generation = self.generation;
        let listing = match self.listings.get(prefix) {
            Some((g, l)) if *g == generation => l.clone(),
            _ => {
                let full_prefix = URL_PREFIX.to_owned() + prefix;
                let urls: Arc<[String]> = self
                    .urls
                    .range(full_prefix.clone()..)
                    .take_while(|u| u.starts_with(&full_prefix))
                    .cloned()
                    .collect();
                let pages = urls.len().div_ceil(1000).max(1) as u64;
                let l = Listing { urls, pages };
                self.listings
                    .insert(prefix.to_owned(), (generation, l.clone()));
                l
            }
        };
        for _ in 0..listing.pages {
            self.count(caller, SqsOp::ListQueues);
        }
        listing
    }

    /// SendMessage; returns the MessageId (the earlier one for a FIFO duplicate).
    pub fn send(
        &mut self,
        now: Millis,
        caller: &str,
        url: &str,
        msg: Outgoing,
    ) -> Result<String, SqsError> {
        self.count(caller, SqsOp::SendMessage);
        self.enqueue(now, url, msg)
    }

    /// SendMessageBatch of 1..=10 messages; all or nothing here.
    pub fn send_batch(
        &mut self,
        now: Millis,
        caller: &str,
        url: &str,
        msgs: Vec<Outgoing>,
    ) -> Result<Vec<String>, SqsError> {
        self.count(caller, SqsOp::SendMessageBatch);
        if msgs.is_empty() || msgs.len() > 10 {
            return invalid(format!(
                "a batch holds 1..=10 entries, {} given",
                msgs.len()
            ));
        }
        msgs.into_iter()
            .map(|m| self.enqueue(now, url, m))
            .collect()
    }

    fn enqueue(&mut self, now: Millis, url: &str, msg: Outgoing) -> Result<String, SqsError> {
        if msg.delay_secs > 900 {
            return invalid(format!(
                "DelaySeconds must be 0..=900, {} given",
                msg.delay_secs
            ));
        }
        self.next_message += 1;
        let seq = self.next_message;
        let Some(q) = self.queues.get_mut(url) else {
            return gone(url);
        };
        if q.fifo != msg.group.is_some() {
            return invalid("MessageGroupId is required on FIFO queues and only there".to_owned());
        }
        let id = format!("m-{seq:08}");
        if q.fifo {
            let key = msg.dedup.clone().unwrap_or_else(|| msg.body.clone());
            q.dedup
                .retain(|_, (t, _)| now.0 < t.0.saturating_add(DEDUP_WINDOW_MS));
            if let Some((_, old)) = q.dedup.get(&key) {
                return Ok(old.clone());
            }
            q.dedup.insert(key, (now, id.clone()));
        }
        let visible_at = Millis(now.0 + u64::from(msg.delay_secs) * 1000);
        q.messages.insert(
            seq,
            Msg {
                id: id.clone(),
                body: msg.body,
                attributes: msg.attributes,
                group: msg.group,
                receive_count: 0,
                visible_at,
                sent: now,
            },
        );
        if visible_at > now {
            q.hidden.insert((visible_at, seq));
            self.hints.insert((visible_at, q.index));
        } else {
            q.ready.insert(seq);
        }
        if !q.waiters.is_empty() {
            self.dirty.insert(url.to_owned());
        }
        Ok(id)
    }

    fn check_receive(req: &ReceiveRequest) -> Result<(), SqsError> {
        if !(1..=10).contains(&req.max) {
            return invalid(format!(
                "MaxNumberOfMessages must be 1..=10, {} given",
                req.max
            ));
        }
        if req.visibility_secs > MAX_VISIBILITY_SECS {
            return invalid(format!(
                "VisibilityTimeout {} over 12 h",
                req.visibility_secs
            ));
        }
        if req.wait_ms > 20_000 {
            return invalid(format!("WaitTimeSeconds over 20 s ({} ms)", req.wait_ms));
        }
        Ok(())
    }

    /// ReceiveMessage without waiting: whatever is visible now (possibly nothing).
    pub fn receive(
        &mut self,
        now: Millis,
        caller: &str,
        req: &ReceiveRequest,
    ) -> Result<Vec<Received>, SqsError> {
        self.count(caller, SqsOp::ReceiveMessage);
        Self::check_receive(req)?;
        let q = match self.queues.get_mut(&req.url) {
            Some(q) => q,
            None => return gone(&req.url),
        };
        Ok(q.take_hinted(now, req, &mut self.hints))
    }

    /// The rest of a long poll already counted by [`FakeSqs::receive`]: whatever became
    /// visible since, without counting another call. For callers that wait on their own clock.
    pub fn receive_more(
        &mut self,
        now: Millis,
        req: &ReceiveRequest,
    ) -> Result<Vec<Received>, SqsError> {
        Self::check_receive(req)?;
        let q = match self.queues.get_mut(&req.url) {
            Some(q) => q,
            None => return gone(&req.url),
        };
        Ok(q.take_hinted(now, req, &mut self.hints))
    }

    /// ReceiveMessage with a long poll: `Ok(Ok(messages))` at once if any are visible or the
    /// wait is zero, else `Ok(Err(id))`: parked until [`FakeSqs::wake`] completes it.
    pub fn receive_or_park(
        &mut self,
        now: Millis,
        caller: &str,
        req: ReceiveRequest,
    ) -> Result<Result<Vec<Received>, WaitId>, SqsError> {
        let got = self.receive(now, caller, &req)?;
        if !got.is_empty() || req.wait_ms == 0 {
            return Ok(Ok(got));
        }
        self.next_wait += 1;
        let id = WaitId(self.next_wait);
        let deadline = Millis(now.0 + req.wait_ms);
        self.queue(&req.url)?.waiters.push_back(id);
        self.deadlines.insert((deadline, id));
        self.waiters.insert(
            id,
            Waiter {
                caller: caller.to_owned(),
                req,
                deadline,
            },
        );
        Ok(Err(id))
    }

    /// When [`FakeSqs::wake`] may next complete a parked receive, if any is parked.
    pub fn next_wake(&self, now: Millis) -> Option<Millis> {
        if self.waiters.is_empty() {
            return None;
        }
        if !self.dirty.is_empty() {
            return Some(now);
        }
        let deadline = self.deadlines.first().map(|d| d.0);
        let hint = self.hints.first().map(|h| h.0);
        match (deadline, hint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Completes parked receives that have messages or reached their deadline, in park order.
    pub fn wake(&mut self, now: Millis) -> Vec<(WaitId, String, Result<Vec<Received>, SqsError>)> {
        let mut out = Vec::new();
        let mut look: BTreeSet<String> = std::mem::take(&mut self.dirty);
        while let Some(&(t, index)) = self.hints.first() {
            if t > now {
                break;
            }
            self.hints.pop_first();
            if let Some(url) = self.names.get(&index)
                && !self.queues[url].waiters.is_empty()
            {
                look.insert(url.clone());
            }
        }
        for url in look {
            let Some(q) = self.queues.get_mut(&url) else {
                // Deleted: every receive parked on it fails.
                let ids: Vec<WaitId> = self
                    .waiters
                    .iter()
                    .filter(|(_, w)| w.req.url == url)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    let w = self.waiters.remove(&id).expect("waiter exists");
                    self.deadlines.remove(&(w.deadline, id));
                    out.push((id, w.caller, gone(&url)));
                }
                continue;
            };
            while let Some(&id) = q.waiters.front() {
                let w = &self.waiters[&id];
                let got = q.take_hinted(now, &w.req, &mut self.hints);
                if got.is_empty() {
                    break;
                }
                q.waiters.pop_front();
                let w = self.waiters.remove(&id).expect("waiter exists");
                self.deadlines.remove(&(w.deadline, id));
                out.push((id, w.caller, Ok(got)));
            }
        }
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            let w = self.waiters.remove(&id).expect("waiter exists");
            if let Some(q) = self.queues.get_mut(&w.req.url) {
                q.waiters.retain(|x| *x != id);
            }
            out.push((id, w.caller, Ok(Vec::new())));
        }
        out.sort_by_key(|(id, _, _)| *id);
        out
    }

    /// DeleteMessage.
    pub fn delete(
        &mut self,
        caller: &str,
        url: &str,
        receipt: &str,
    ) -> Result<Result<(), EntryError>, SqsError> {
        self.count(caller, SqsOp::DeleteMessage);
        let q = self.queue(url)?;
        Ok(q.check_receipt(receipt).map(|seq| {
            if let Some(seq) = seq {
                q.remove(seq);
            }
        }))
    }

    /// DeleteMessageBatch of 1..=10 receipt handles; each entry succeeds or fails alone.
    pub fn delete_batch(
        &mut self,
        caller: &str,
        url: &str,
        receipts: &[String],
    ) -> Result<Vec<Result<(), EntryError>>, SqsError> {
        self.count(caller, SqsOp::DeleteMessageBatch);
        if receipts.is_empty() || receipts.len() > 10 {
            return invalid(format!(
                "a batch holds 1..=10 entries, {} given",
                receipts.len()
            ));
        }
        let q = self.queue(url)?;
        Ok(receipts
            .iter()
            .map(|r| {
                q.check_receipt(r).map(|seq| {
                    if let Some(seq) = seq {
                        q.remove(seq);
                    }
                })
            })
            .collect())
    }

    /// ChangeMessageVisibilityBatch: each in-flight message becomes visible `secs` from now.
    pub fn change_visibility_batch(
        &mut self,
        now: Millis,
        caller: &str,
        url: &str,
        entries: &[(String, u32)],
    ) -> Result<Vec<Result<(), EntryError>>, SqsError> {
        self.count(caller, SqsOp::ChangeMessageVisibilityBatch);
        if entries.is_empty() || entries.len() > 10 {
            return invalid(format!(
                "a batch holds 1..=10 entries, {} given",
                entries.len()
            ));
        }
        if let Some((_, s)) = entries.iter().find(|(_, s)| *s > MAX_VISIBILITY_SECS) {
            return invalid(format!("VisibilityTimeout {s} over 12 h"));
        }
        let Some(q) = self.queues.get_mut(url) else {
            return gone(url);
        };
        let hints = &mut self.hints;
        q.expire(now);
        let out: Vec<_> = entries
            .iter()
            .map(|(r, secs)| {
                let seq = q
                    .check_receipt(r)?
                    .ok_or(EntryError::ReceiptHandleIsInvalid)?;
                let m = &q.messages[&seq];
                if q.ready.contains(&seq) || m.receive_count == 0 {
                    return Err(EntryError::MessageNotInflight);
                }
                let old = m.visible_at;
                q.hidden.remove(&(old, seq));
                let until = Millis(now.0 + u64::from(*secs) * 1000);
                q.messages.get_mut(&seq).expect("exists").visible_at = until;
                q.hidden.insert((until, seq));
                hints.insert((until, q.index));
                Ok(())
            })
            .collect();
        if !q.waiters.is_empty() {
            self.dirty.insert(url.to_owned());
        }
        Ok(out)
    }

    /// ChangeMessageVisibility of one message.
    pub fn change_visibility(
        &mut self,
        now: Millis,
        caller: &str,
        url: &str,
        receipt: &str,
        secs: u32,
    ) -> Result<Result<(), EntryError>, SqsError> {
        let r = self.change_visibility_batch(now, caller, url, &[(receipt.to_owned(), secs)]);
        // Count it as the single call it was.
        let c = self.calls.get_mut(caller).expect("counted above");
        *c.get_mut(&SqsOp::ChangeMessageVisibilityBatch)
            .expect("counted") -= 1;
        *c.entry(SqsOp::ChangeMessageVisibility).or_default() += 1;
        Ok(r?.pop().expect("one entry"))
    }

    /// GetQueueAttributes: the approximate counts.
    pub fn counts(
        &mut self,
        now: Millis,
        caller: &str,
        url: &str,
    ) -> Result<QueueCounts, SqsError> {
        self.count(caller, SqsOp::GetQueueAttributes);
        let q = self.queue(url)?;
        q.expire(now);
        let mut c = QueueCounts {
            visible: q.ready.len() as u64,
            ..QueueCounts::default()
        };
        for (_, seq) in &q.hidden {
            if q.messages[seq].receive_count == 0 {
                c.delayed += 1;
            } else {
                c.not_visible += 1;
            }
        }
        Ok(c)
    }

    /// Messages still in a queue (visible, in flight or delayed); 0 for a missing queue.
    pub fn depth(&self, url: &str) -> usize {
        self.queues.get(url).map_or(0, |q| q.messages.len())
    }

    /// Every queue URL, in order.
    pub fn urls(&self) -> impl Iterator<Item = &String> {
        self.urls.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str, max: u32, wait_ms: u64) -> ReceiveRequest {
        ReceiveRequest {
            url: url.to_owned(),
            max,
            visibility_secs: 30,
            wait_ms,
            attribute_names: vec!["All".to_owned()],
        }
    }

    fn body(b: &str) -> Outgoing {
        Outgoing {
            body: b.to_owned(),
            ..Outgoing::default()
        }
    }

    #[test]
    fn visibility_redelivery_and_stale_receipts() {
        let mut s = FakeSqs::new();
        let u = s.create_queue("c", "q1").unwrap();
        s.send(Millis(0), "p", &u, body("a")).unwrap();
        let first = s.receive(Millis(0), "c", &req(&u, 10, 0)).unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            s.receive(Millis(29_999), "c", &req(&u, 10, 0))
                .unwrap()
                .is_empty()
        );
        let again = s.receive(Millis(30_000), "c", &req(&u, 10, 0)).unwrap();
        assert_eq!(again[0].receive_count, 2);
        let r = s
            .delete_batch("c", &u, &[first[0].receipt.clone(), "junk".to_owned()])
            .unwrap();
        assert_eq!(
            r,
            vec![
                Err(EntryError::ReceiptHandleIsInvalid),
                Err(EntryError::ReceiptHandleIsInvalid)
            ]
        );
        assert_eq!(s.depth(&u), 1);
        assert_eq!(s.delete("c", &u, &again[0].receipt).unwrap(), Ok(()));
        assert_eq!(s.depth(&u), 0);
        assert_eq!(
            s.delete("c", &u, &again[0].receipt).unwrap(),
            Ok(()),
            "idempotent"
        );
        assert_eq!(s.calls()["c"][&SqsOp::ReceiveMessage], 3);
    }

    #[test]
    fn fifo_withholds_a_group_while_one_is_in_flight() {
        let mut s = FakeSqs::new();
        let u = s.create_queue("c", "f.fifo").unwrap();
        for (g, b) in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3")] {
            let m = Outgoing {
                group: Some(g.to_owned()),
                ..body(b)
            };
            s.send(Millis(0), "p", &u, m).unwrap();
        }
        let dup = Outgoing {
            group: Some("a".to_owned()),
            ..body("a1")
        };
        s.send(Millis(1), "p", &u, dup).unwrap();
        let one = s.receive(Millis(0), "c", &req(&u, 1, 0)).unwrap();
        assert_eq!(one[0].body, "a1");
        let next = s.receive(Millis(0), "c", &req(&u, 10, 0)).unwrap();
        let bodies: Vec<_> = next.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["b1"], "group a is blocked behind a1");
        s.delete("c", &u, &one[0].receipt).unwrap().unwrap();
        let rest = s.receive(Millis(0), "c", &req(&u, 10, 0)).unwrap();
        let bodies: Vec<_> = rest.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["a2", "a3"]);
        assert!(s.send(Millis(0), "p", &u, body("no group")).is_err());
    }

    #[test]
    fn long_polls_wait_in_simulated_time() {
        let mut s = FakeSqs::new();
        let u = s.create_queue("c", "q").unwrap();
        let v = s.create_queue("c", "v").unwrap();
        let a = s
            .receive_or_park(Millis(0), "c1", req(&u, 10, 20_000))
            .unwrap()
            .unwrap_err();
        let b = s
            .receive_or_park(Millis(0), "c2", req(&v, 10, 5_000))
            .unwrap()
            .unwrap_err();
        assert_eq!(s.next_wake(Millis(0)), Some(Millis(5_000)));
        s.send(Millis(100), "p", &u, body("x")).unwrap();
        assert_eq!(s.next_wake(Millis(100)), Some(Millis(100)));
        let done = s.wake(Millis(100));
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].0, done[0].2.as_ref().unwrap().len()), (a, 1));
        let done = s.wake(Millis(5_000));
        assert_eq!(done[0].0, b);
        assert!(done[0].2.as_ref().unwrap().is_empty());
        // A parked receive on a queue that is deleted fails with QueueDoesNotExist.
        let c = s
            .receive_or_park(Millis(5_000), "c2", req(&v, 10, 5_000))
            .unwrap()
            .unwrap_err();
        s.delete_queue("admin", &v).unwrap();
        let done = s.wake(Millis(5_001));
        assert_eq!(done[0].0, c);
        assert!(matches!(done[0].2, Err(SqsError::QueueDoesNotExist { .. })));
        assert!(matches!(
            s.receive(Millis(6_000), "c", &req(&v, 10, 0)),
            Err(SqsError::QueueDoesNotExist { .. })
        ));
        // Visibility expiry wakes a parked receive too.
        let m = s.receive(Millis(6_000), "c", &req(&u, 10, 0)).unwrap();
        assert!(m.is_empty(), "x is in flight until 30.1 s");
        s.receive_or_park(Millis(20_000), "c1", req(&u, 10, 20_000))
            .unwrap()
            .unwrap_err();
        assert_eq!(s.next_wake(Millis(20_000)), Some(Millis(30_100)));
        let done = s.wake(Millis(30_100));
        assert_eq!(done[0].2.as_ref().unwrap()[0].receive_count, 2);
    }

    /// Every URL of `prefix`, paged `max` at a time as `caller`.
    fn walk(s: &mut FakeSqs, caller: &str, prefix: &str, max: u32) -> Vec<String> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let p = s
                .list_queues(caller, prefix, Some(max), token.as_deref())
                .unwrap();
            all.extend(p.urls);
            match p.next_token {
                Some(t) => token = Some(t),
                None => return all,
            }
        }
    }

    #[test]
    fn list_queues_pages_with_max_results_and_caps_without() {
        let mut s = FakeSqs::new();
        for i in 0..1_150 {
            s.create_queue("admin", &format!("t-{i:04}")).unwrap();
        }
        s.create_queue("admin", "other").unwrap();
        let capped = s.list_queues("c", "t-", None, None).unwrap();
        assert_eq!(
            (capped.urls.len(), capped.next_token.is_none()),
            (1_000, true)
        );
        let all = walk(&mut s, "c", "t-", 400);
        assert_eq!(all.len(), 1_150);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.calls()["c"][&SqsOp::ListQueues], 4);
        assert!(s.list_queues("c", "", Some(0), None).is_err());
        assert!(s.create_queue("c", "bad name").is_err());
    }

    #[test]
    fn a_whole_listing_is_the_paged_walk_billed_per_page_and_shared_until_the_set_changes() {
        let mut s = FakeSqs::new();
        for i in 0..2_000 {
            s.create_queue("admin", &format!("t-{i:04}")).unwrap();
        }
        s.create_queue("admin", "other").unwrap();
        let first = s.list_all("c", "t-");
        assert_eq!((first.urls.len(), first.pages), (2_000, 2));
        assert_eq!(&*first.urls, walk(&mut s, "d", "t-", 1000).as_slice());
        assert_eq!(
            s.calls()["c"][&SqsOp::ListQueues],
            s.calls()["d"][&SqsOp::ListQueues]
        );
        let again = s.list_all("c", "t-");
        assert!(Arc::ptr_eq(&first.urls, &again.urls));
        assert_eq!(s.calls()["c"][&SqsOp::ListQueues], 4);
        s.create_queue("admin", "t-9999").unwrap();
        let grown = s.list_all("c", "t-");
        assert_eq!((grown.urls.len(), grown.pages), (2_001, 3));
        s.delete_queue("admin", &FakeSqs::url_of("t-0000")).unwrap();
        let shrunk = s.list_all("c", "t-");
        assert_eq!(shrunk.urls.len(), 2_000);
        assert!(!shrunk.urls.contains(&FakeSqs::url_of("t-0000")));
        assert_eq!(s.list_all("c", "none-").pages, 1);
    }

    #[test]
    fn change_visibility_and_counts() {
        let mut s = FakeSqs::new();
        let u = s.create_queue("c", "q").unwrap();
        s.send(Millis(0), "p", &u, body("a")).unwrap();
        s.send(
            Millis(0),
            "p",
            &u,
            Outgoing {
                delay_secs: 10,
                ..body("b")
            },
        )
        .unwrap();
        let m = s.receive(Millis(0), "c", &req(&u, 10, 0)).unwrap();
        assert_eq!(m.len(), 1);
        let c = s.counts(Millis(1), "c", &u).unwrap();
        assert_eq!(
            c,
            QueueCounts {
                visible: 0,
                not_visible: 1,
                delayed: 1
            }
        );
        s.change_visibility(Millis(1_000), "c", &u, &m[0].receipt, 0)
            .unwrap()
            .unwrap();
        let back = s.receive(Millis(1_000), "c", &req(&u, 10, 0)).unwrap();
        assert_eq!(back[0].receive_count, 2);
        assert_eq!(
            s.change_visibility(Millis(1_000), "c", &u, &m[0].receipt, 5)
                .unwrap(),
            Err(EntryError::ReceiptHandleIsInvalid)
        );
        assert_eq!(s.calls()["c"][&SqsOp::ChangeMessageVisibility], 2);
    }
}

//! Each life's fence as the checker reckons it, from what its runtime saw: a wrapper around the
//! instance's backend, on the runtime's side of every call, that notes when each heartbeat (or
//! registration) the runtime had acknowledged was sent. The life's fence is then that send
//! time plus the lease (HeartbeatTimeout less the margin); the runtime's own counts from a send
//! no later, so the checker's is never earlier than the runtime's.
//!
//! Why the runtime's side: an answer the fake sent may never reach the runtime (a reset, a
//! hang), and only what the runtime heard moves its fence.

use super::shared::{Lab, lock};
use crate::check::Who;
use sqsbalancer_core::QueueId;
use sqsbalancer_core::table::{self, Item, Key, TableQuery, TableWrite};
use sqsbalancer_runtime::{
    BackendError, Batch, Message, Page, QueueList, QueuePage, Receive, Sqs, Store,
};
use std::future::Future;
use std::sync::Arc;

/// Life `who`'s backend `B`, watched for acknowledged heartbeats.
pub(crate) struct Acked<B> {
    inner: Arc<B>,
    lab: Lab,
    who: Who,
    /// The sort key of this instance's record.
    record: String,
}

impl<B> Acked<B> {
    /// `inner`, the backend of life `who` of instance `name`.
    pub fn new(inner: Arc<B>, lab: Lab, who: Who, name: &str) -> Acked<B> {
        Acked {
            inner,
            lab,
            who,
            record: format!("{}{name}", table::INSTANCE_PREFIX),
        }
    }

    /// Whether `write` is this life's heartbeat or registration (both set the counter).
    fn moves_fence(&self, write: &TableWrite) -> bool {
        write.key.sk == self.record
            && write
                .updates
                .iter()
                .any(|u| matches!(u, table::Update::Set(table::HEARTBEAT, _)))
    }
}

impl<B: Store> Store for Acked<B> {
    fn update(&self, write: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
        let beat = self.moves_fence(&write);
        let (lab, who) = (Arc::clone(&self.lab), self.who);
        let call = self.inner.update(write);
        async move {
            let sent = lock(&lab).now();
            let out = call.await;
            if beat && out.is_ok() {
                let c = crate::config();
                let lease = c.heartbeat_timeout - c.effective_fence_margin();
                lock(&lab).acked(who, sent + lease.as_millis() as u64);
            }
            out
        }
    }

    fn query(
        &self,
        query: TableQuery,
        start: Option<Key>,
    ) -> impl Future<Output = Result<Page, BackendError>> + Send {
        self.inner.query(query, start)
    }

    fn batch_get(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
        self.inner.batch_get(keys)
    }
}

impl<B: QueueList> QueueList for Acked<B> {
    fn list(
        &self,
        prefix: String,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<QueuePage, BackendError>> + Send {
        self.inner.list(prefix, next_token)
    }
}

impl<B: Sqs> Sqs for Acked<B> {
    fn receive(
        &self,
        request: Receive,
    ) -> impl Future<Output = Result<Vec<Message>, BackendError>> + Send {
        self.inner.receive(request)
    }

    fn delete_batch(
        &self,
        queue: QueueId,
        receipts: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        self.inner.delete_batch(queue, receipts)
    }

    fn change_visibility_batch(
        &self,
        queue: QueueId,
        entries: Vec<(String, u32)>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send {
        self.inner.change_visibility_batch(queue, entries)
    }
}

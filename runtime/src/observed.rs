//! A backend wrapper that watches every coordination call: its outcome feeds [`Health`]
//! and the `sqsbalancer.api.calls` metric.
//!
//! [`Health`]: crate::Health

use crate::backend::{Page, QueueList, QueuePage, Store};
use crate::error::BackendError;
use crate::status::HealthTracker;
use sqsbalancer_core::table::{Item, Key, TableQuery, TableWrite};
use std::sync::Arc;

/// `S` with each call's outcome recorded.
pub(crate) struct Observed<S> {
    inner: Arc<S>,
    health: Arc<HealthTracker>,
}

impl<S> Observed<S> {
    pub(crate) fn new(inner: Arc<S>, health: Arc<HealthTracker>) -> Observed<S> {
        Observed { inner, health }
    }

    fn record<T>(&self, operation: &'static str, r: &Result<T, BackendError>) {
        match r {
            Ok(_) | Err(BackendError::ConditionFailed) => self.health.answered(),
            Err(e) => self.health.failed(e),
        }
        crate::telemetry::api_call(
            operation,
            matches!(r, Ok(_) | Err(BackendError::ConditionFailed)),
        );
    }
}

impl<S: Store> Store for Observed<S> {
    async fn update(&self, write: TableWrite) -> Result<Item, BackendError> {
        let r = self.inner.update(write).await;
        self.record("UpdateItem", &r);
        r
    }

    async fn query(&self, query: TableQuery, start: Option<Key>) -> Result<Page, BackendError> {
        let r = self.inner.query(query, start).await;
        self.record("Query", &r);
        r
    }
}

impl<L: QueueList> QueueList for Observed<L> {
    async fn list(
        &self,
        prefix: String,
        next_token: Option<String>,
    ) -> Result<QueuePage, BackendError> {
        let r = self.inner.list(prefix, next_token).await;
        crate::telemetry::api_call("ListQueues", r.is_ok());
        if let Err(e) = &r {
            self.health.failed(e);
        }
        r
    }
}

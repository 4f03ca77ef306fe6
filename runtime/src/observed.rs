//! A backend wrapper that bounds and watches every coordination call: each has the driver's
//! deadline ([`Timeouts::effect`]), and its outcome feeds [`Health`] and the
//! `sqsbalancer.api.calls` metric.
//!
//! The deadline is per call, not per effect: a read of many pages (a big table, DynamoDB pages
//! hold 1 MB) takes as long as its pages need, while a page that never answers is given up on
//! like a write that never answers.
//!
//! [`Health`]: crate::Health
//! [`Timeouts::effect`]: crate::Timeouts::effect

use crate::backend::{Batch, Page, QueueList, QueuePage, Store};
use crate::error::BackendError;
use crate::status::HealthTracker;
use sqsbalancer_core::table::{Item, Key, TableQuery, TableWrite};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// `S` with each call bounded and its outcome recorded.
pub(crate) struct Observed<S> {
    inner: Arc<S>,
    health: Arc<HealthTracker>,
    /// How long one call may take before its outcome is unknown.
    deadline: Duration,
}

impl<S> Observed<S> {
    pub(crate) fn new(
        inner: Arc<S>,
        health: Arc<HealthTracker>,
        deadline: Duration,
    ) -> Observed<S> {
        Observed {
            inner,
            health,
            deadline,
        }
    }

    /// `call` to `service`, or [`BackendError::Unknown`] past the deadline (the call is dropped).
    async fn bounded<T>(
        &self,
        service: &'static str,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        tokio::time::timeout(self.deadline, call)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(
                    service,
                    deadline_ms = self.deadline.as_millis() as u64,
                    "a coordination call found no answer by its deadline"
                );
                Err(BackendError::Unknown {
                    service,
                    reason: format!("no answer within {:?}", self.deadline),
                })
            })
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
    /// Not bounded by the call deadline: creating a table takes as long as DynamoDB needs
    /// (each of its calls is bounded by the client's timeouts, the wait for it by a minute).
    async fn prepare(&self) -> Result<(), BackendError> {
        let r = self.inner.prepare().await;
        self.record("PrepareTable", &r);
        r
    }

    fn table_name(&self) -> Option<&str> {
        self.inner.table_name()
    }

    async fn update(&self, write: TableWrite) -> Result<Item, BackendError> {
        let r = self.bounded("dynamodb", self.inner.update(write)).await;
        self.record("UpdateItem", &r);
        r
    }

    async fn query(&self, query: TableQuery, start: Option<Key>) -> Result<Page, BackendError> {
        let r = self
            .bounded("dynamodb", self.inner.query(query, start))
            .await;
        self.record("Query", &r);
        r
    }

    async fn batch_get(&self, keys: Vec<Key>) -> Result<Batch, BackendError> {
        let r = self.bounded("dynamodb", self.inner.batch_get(keys)).await;
        self.record("BatchGetItem", &r);
        r
    }
}

impl<L: QueueList> QueueList for Observed<L> {
    async fn list(
        &self,
        prefix: String,
        next_token: Option<String>,
    ) -> Result<QueuePage, BackendError> {
        let r = self
            .bounded("sqs", self.inner.list(prefix, next_token))
            .await;
        crate::telemetry::api_call("ListQueues", r.is_ok());
        if let Err(e) = &r {
            self.health.failed(e);
        }
        r
    }
}

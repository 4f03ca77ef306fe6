//! The backend traits: the DynamoDB and SQS calls the driver needs, in the shape of the
//! services' own APIs, so that an AWS adapter is a thin translation and the in-memory fakes
//! implement the same contract.

use crate::error::BackendError;
use sqsbalancer_core::table::{Item, Key, TableQuery, TableWrite};
use std::future::Future;

/// One page of a Query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The items, in sort-key order.
    pub items: Vec<Item>,
    /// Where the next page starts (`LastEvaluatedKey`); `None` on the last page.
    pub last_key: Option<Key>,
}

/// One page of ListQueues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuePage {
    /// Queue URLs.
    pub urls: Vec<String>,
    /// The token for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// The coordination table: conditional updates and strongly consistent queries.
pub trait Store: Send + Sync + 'static {
    /// UpdateItem with the write's condition; returns the item as written (`ALL_NEW`).
    fn update(&self, write: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send;

    /// One page of a strongly consistent Query, from `start` (exclusive).
    fn query(
        &self,
        query: TableQuery,
        start: Option<Key>,
    ) -> impl Future<Output = Result<Page, BackendError>> + Send;
}

/// Queue discovery.
pub trait QueueList: Send + Sync + 'static {
    /// One page of ListQueues with `QueueNamePrefix` = `prefix` and `MaxResults` = 1000.
    fn list(
        &self,
        prefix: String,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<QueuePage, BackendError>> + Send;
}

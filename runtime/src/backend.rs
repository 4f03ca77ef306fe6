//! The backend traits: the DynamoDB and SQS calls the driver needs, in the shape of the
//! services' own APIs, so that an AWS adapter is a thin translation and the in-memory fakes
//! implement the same contract.

use crate::error::BackendError;
use sqsbalancer_core::QueueId;
use sqsbalancer_core::table::{Item, Key, TableQuery, TableWrite};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

/// One page of a Query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The items, in sort-key order.
    pub items: Vec<Item>,
    /// Where the next page starts (`LastEvaluatedKey`); `None` on the last page.
    pub last_key: Option<Key>,
}

/// One BatchGetItem answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The items found, in no particular order; a key with no item has none here.
    pub items: Vec<Item>,
    /// The keys DynamoDB did not get to (`UnprocessedKeys`: throttling, or the 16 MB answer
    /// limit), to be asked again.
    pub unprocessed: Vec<Key>,
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

    /// One strongly consistent BatchGetItem of 1 to 100 keys of this table: the runtime reads
    /// the records of the queues an instance awaits with it.
    fn batch_get(&self, keys: Vec<Key>)
    -> impl Future<Output = Result<Batch, BackendError>> + Send;

    /// Makes the store ready for the first write: the AWS backend creates its table when it is
    /// missing (unless told not to) and checks its key schema. The driver asks again, every
    /// heartbeat interval, until it succeeds or the balancer is stopped.
    fn prepare(&self) -> impl Future<Output = Result<(), BackendError>> + Send {
        std::future::ready(Ok(()))
    }

    /// The name of the table this store writes to, when it has one: the balancer refuses a
    /// configuration that names another (`dynamodb_table_name` is the one source of the name).
    fn table_name(&self) -> Option<&str> {
        None
    }
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

/// One message as received, with everything SQS returned about it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The queue it came from.
    pub queue: QueueId,
    /// SQS's MessageId.
    pub message_id: String,
    /// The handle to delete it with (only the latest receive's handle is valid).
    pub receipt: String,
    /// The body.
    pub body: String,
    /// ApproximateReceiveCount, this receive included.
    pub receive_count: u32,
    /// Message attributes, typed as they were sent, by name (those asked for).
    pub attributes: BTreeMap<String, AttributeValue>,
    /// System attributes as SQS returned them, by name: `SentTimestamp`,
    /// `ApproximateFirstReceiveTimestamp`, `SenderId`, `AWSTraceHeader`,
    /// `MessageDeduplicationId`, `SequenceNumber` and the rest (all are asked for).
    pub system: BTreeMap<String, String>,
    /// FIFO queues: the MessageGroupId.
    pub group: Option<String>,
}

impl Message {
    /// A message received once, with no attributes: a backend sets the other fields after.
    pub fn new(queue: QueueId, message_id: String, receipt: String, body: String) -> Message {
        Message {
            queue,
            message_id,
            receipt,
            body,
            receive_count: 1,
            attributes: BTreeMap::new(),
            system: BTreeMap::new(),
            group: None,
        }
    }

    /// The text of string or number attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name)?.as_str()
    }

    /// System attribute `name` as SQS returned it.
    pub fn system_attribute(&self, name: &str) -> Option<&str> {
        self.system.get(name).map(String::as_str)
    }

    /// When SQS accepted the message (`SentTimestamp`).
    pub fn sent_at(&self) -> Option<SystemTime> {
        self.timestamp("SentTimestamp")
    }

    /// When the message was first received (`ApproximateFirstReceiveTimestamp`).
    pub fn first_received_at(&self) -> Option<SystemTime> {
        self.timestamp("ApproximateFirstReceiveTimestamp")
    }

    /// The X-Ray trace header the sender attached (`AWSTraceHeader`).
    pub fn trace_header(&self) -> Option<&str> {
        self.system_attribute("AWSTraceHeader")
    }

    /// System attribute `name` read as epoch milliseconds.
    fn timestamp(&self, name: &str) -> Option<SystemTime> {
        let ms: u64 = self.system_attribute(name)?.parse().ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }
}

/// One message attribute, as SQS holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeValue {
    /// `String`, `Number` or `Binary`, with any custom suffix as sent (`Number.float`).
    pub data_type: String,
    /// The value.
    pub value: AttributeData,
}

/// The value of a message attribute. Exhaustive: SQS holds every attribute value as text or
/// as bytes, whatever its data type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeData {
    /// A `String` or `Number` attribute's text.
    Text(String),
    /// A `Binary` attribute's bytes.
    Binary(Vec<u8>),
}

impl AttributeValue {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> AttributeValue {
        AttributeValue {
            data_type: "String".to_owned(),
            value: AttributeData::Text(value.into()),
        }
    }

    /// The text of a `String` or `Number` attribute.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            AttributeData::Text(t) => Some(t),
            AttributeData::Binary(_) => None,
        }
    }

    /// The bytes of a `Binary` attribute.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            AttributeData::Binary(b) => Some(b),
            AttributeData::Text(_) => None,
        }
    }
}

/// One ReceiveMessage call, planned by the data plane so that its long poll ends before the
/// self-fence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receive {
    /// The queue.
    pub queue: QueueId,
    /// MaxNumberOfMessages (1..=10).
    pub max: u32,
    /// VisibilityTimeout, seconds.
    pub visibility_secs: u32,
    /// WaitTimeSeconds as a duration (at most 20 s; the driver shortens it to the fence).
    pub wait: Duration,
    /// MessageAttributeNames.
    pub attribute_names: Vec<String>,
    /// The request must not be sent after this instant on the runtime's clock
    /// ([`crate::clock::now`], which counts a suspend): a backend that cannot send it by then
    /// fails with [`BackendError::NotSent`]. The request is never retried.
    pub send_by: tokio::time::Instant,
    /// How long the one attempt may take, from its start to its answer.
    pub attempt_timeout: Duration,
}

/// The SQS calls the data plane makes.
pub trait Sqs: Send + Sync + 'static {
    /// ReceiveMessage (a long poll of `wait`).
    fn receive(
        &self,
        request: Receive,
    ) -> impl Future<Output = Result<Vec<Message>, BackendError>> + Send;

    /// DeleteMessageBatch of 1..=10 receipt handles; each entry succeeds or fails alone (the
    /// failure's message in `Err`).
    fn delete_batch(
        &self,
        queue: QueueId,
        receipts: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send;

    /// ChangeMessageVisibilityBatch of 1..=10 `(receipt handle, seconds from now)` entries:
    /// extends messages still being handled, releases unstarted ones (0), or backs off
    /// failures; each entry succeeds or fails alone.
    fn change_visibility_batch(
        &self,
        queue: QueueId,
        entries: Vec<(String, u32)>,
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, BackendError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_its_typed_and_system_attributes() {
        let mut m = Message {
            queue: QueueId::new("https://sqs.local/1/q").unwrap(),
            message_id: "m".into(),
            receipt: "r".into(),
            body: String::new(),
            receive_count: 1,
            attributes: BTreeMap::new(),
            system: BTreeMap::new(),
            group: None,
        };
        m.attributes
            .insert("kind".into(), AttributeValue::string("order"));
        let blob = AttributeValue {
            data_type: "Binary.gzip".into(),
            value: AttributeData::Binary(vec![0x1f, 0x8b]),
        };
        m.attributes.insert("payload".into(), blob);
        m.system
            .insert("SentTimestamp".into(), "1700000000123".into());
        m.system
            .insert("AWSTraceHeader".into(), "Root=1-5e1b-abc".into());
        assert_eq!(m.attribute("kind"), Some("order"));
        assert_eq!(
            m.attribute("payload"),
            None,
            "a binary attribute has no text"
        );
        assert_eq!(m.attributes["payload"].as_bytes(), Some(&[0x1f, 0x8b][..]));
        let sent = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(m.sent_at(), Some(sent));
        assert_eq!(m.first_received_at(), None);
        assert_eq!(m.trace_header(), Some("Root=1-5e1b-abc"));
    }
}

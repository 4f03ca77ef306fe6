//! The DynamoDB (`awsJson1_0`, `X-Amz-Target: DynamoDB_20120810.<Op>`) and SQS JSON
//! (`awsJson1_0`, `X-Amz-Target: AmazonSQS.<Op>`) wire protocols of the calls the runtime's AWS
//! adapter makes, as pure functions: a request (its target and JSON body) decodes into a
//! [`Call`] on the backend traits, and each result or [`BackendError`] encodes into the
//! [`Answer`] the service would give. No I/O, no clock: the caller passes `now`.
//!
//! The expression grammar is the inverse of what `runtime/src/aws/expr.rs` emits, and nothing
//! more: `SET #a = :v`, `SET #a = if_not_exists(#a, :v) + :one`, `SET #a = if_not_exists(#b,
//! :v)`, `ADD #a :v`, `REMOVE #a`; `attribute_exists`, `attribute_not_exists`, `=`, `<`, `>`,
//! the spelled-out `<>` idiom
//! `(attribute_not_exists(#a) OR #a <> :v)`, and parenthesized `AND`/`OR` groups; for queries
//! `#pk = :v [AND begins_with(#sk, :p)]`. Anything else is a 400 `ValidationException` naming
//! what could not be parsed, as are placeholders that are missing or unused (DynamoDB's rules).
//!
//! Two things the text cannot carry are restored by convention: the order of the updates
//! (expr.rs groups them by clause, but numbers their names `#n0`, `#n1`, ... in update order,
//! so they are sorted back by that number), and whether a parenthesized group of one part was
//! an `AND` or an `OR` (it is read as `AND`; both mean the same).

use aws_smithy_types::base64;
use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::Value as Json;
use sqsbalancer_core::QueueId;
use sqsbalancer_core::table::{
    CAPACITY, Cond, ENDED, EPOCH, HEARTBEAT, INBOX, INCARNATION, Item, Key, LAPSED, MAX_BATCH_GET,
    OWNER_ID, OWNER_INC, PK, PRIOR_HEARTBEAT, PRIOR_LIFE, RETIRED, SK, STATUS, TTL, TableQuery,
    TableWrite, Update, Value,
};
use sqsbalancer_runtime::{
    AttributeData, AttributeValue, BackendError, Batch, Message, Page, QueuePage, Receive,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// The target prefix of DynamoDB operations.
pub const DYNAMODB_TARGET: &str = "DynamoDB_20120810.";
/// The target prefix of SQS operations.
pub const SQS_TARGET: &str = "AmazonSQS.";
/// The content type of both protocols.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// How far in the future a decoded receive's send-by time and attempt timeout lie: the
/// request has arrived, so neither means anything to the server.
pub const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

const DYNAMODB_ERROR: &str = "com.amazonaws.dynamodb.v20120810#";
const SQS_ERROR: &str = "com.amazonaws.sqs#";

/// Which service a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// DynamoDB.
    DynamoDb,
    /// SQS.
    Sqs,
}

impl Service {
    /// `dynamodb` or `sqs`, as the backend errors name them.
    pub fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::Sqs => "sqs",
        }
    }
}

/// Splits an `X-Amz-Target` header into the service and the operation name.
pub fn target(header: &str) -> Option<(Service, &str)> {
    if let Some(op) = header.strip_prefix(DYNAMODB_TARGET) {
        Some((Service::DynamoDb, op))
    } else {
        header.strip_prefix(SQS_TARGET).map(|op| (Service::Sqs, op))
    }
}

/// The access key id of a SigV4 `Authorization` header (`... Credential=<key>/<scope>, ...`).
pub fn access_key(authorization: &str) -> Option<&str> {
    let (_, rest) = authorization.split_once("Credential=")?;
    let (key, _) = rest.split_once('/')?;
    (!key.is_empty()).then_some(key)
}

/// What UpdateItem returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnValues {
    /// `NONE` (or absent): nothing.
    None,
    /// `ALL_NEW`: the item as written.
    AllNew,
}

/// One decoded request: a call on the backend traits, with what its answer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// DynamoDB UpdateItem.
    UpdateItem {
        /// `TableName`.
        table: String,
        /// The write, as the core encoded it.
        write: TableWrite,
        /// `ReturnValues`.
        return_values: ReturnValues,
    },
    /// DynamoDB Query.
    Query {
        /// `TableName`.
        table: String,
        /// The key condition.
        query: TableQuery,
        /// `ExclusiveStartKey`.
        start: Option<Key>,
    },
    /// DynamoDB BatchGetItem of one table's keys, strongly consistent.
    BatchGetItem {
        /// The one table of `RequestItems`.
        table: String,
        /// Its `Keys`, in request order.
        keys: Vec<Key>,
    },
    /// SQS ReceiveMessage.
    ReceiveMessage {
        /// The receive (send-by time and attempt timeout [`FAR`] from `now`).
        receive: Receive,
        /// `MessageSystemAttributeNames` (or the older `AttributeNames`), as asked.
        system_attributes: Vec<String>,
    },
    /// SQS DeleteMessageBatch.
    DeleteMessageBatch {
        /// `QueueUrl`.
        queue: QueueId,
        /// `(Id, ReceiptHandle)` per entry, in request order.
        entries: Vec<(String, String)>,
    },
    /// SQS ChangeMessageVisibilityBatch.
    ChangeMessageVisibilityBatch {
        /// `QueueUrl`.
        queue: QueueId,
        /// `(Id, ReceiptHandle, VisibilityTimeout)` per entry, in request order.
        entries: Vec<(String, String, u32)>,
    },
    /// SQS ListQueues.
    ListQueues {
        /// `QueueNamePrefix` (empty when absent).
        prefix: String,
        /// `MaxResults`.
        max_results: Option<u32>,
        /// `NextToken`.
        next_token: Option<String>,
    },
}

impl Call {
    /// The service the call is for.
    pub fn service(&self) -> Service {
        match self {
            Call::UpdateItem { .. } | Call::Query { .. } | Call::BatchGetItem { .. } => {
                Service::DynamoDb
            }
            _ => Service::Sqs,
        }
    }
}

/// What a backend call returned, by call.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// UpdateItem: the item as written.
    Item(Item),
    /// Query: one page.
    Page(Page),
    /// BatchGetItem: the items found and the keys left unprocessed.
    Batch(Batch),
    /// ReceiveMessage: the messages.
    Messages(Vec<Message>),
    /// A batch: one result per entry, in request order.
    Entries(Vec<Result<(), String>>),
    /// ListQueues: one page.
    Queues(QueuePage),
}

/// An HTTP answer: status, headers and a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Headers beyond `content-type`, `content-length`, `date` and the request id, which the
    /// server adds.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
}

impl Answer {
    fn json(service: Service, status: u16, body: &impl Serialize) -> Answer {
        let body = serde_json::to_string(body).expect("plain data serializes");
        let mut headers = Vec::new();
        if service == Service::DynamoDb {
            // DynamoDB checksums every response body (the Rust SDK does not check it).
            headers.push(("x-amz-crc32", crc32(body.as_bytes()).to_string()));
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The error code (`__type` without its namespace), if this is an error answer.
    pub fn error_code(&self) -> Option<String> {
        let v: Json = serde_json::from_str(&self.body).ok()?;
        let t = v.get("__type")?.as_str()?;
        Some(t.rsplit('#').next().unwrap_or(t).to_owned())
    }
}

/// An error answer in `service`'s JSON protocol: `__type` (namespaced) and `message`, and for
/// SQS the query-compatible code (`x-amzn-query-error: <code>;<Sender|Receiver>`) that the SDK
/// matches its modelled errors by.
pub fn error_answer(
    service: Service,
    status: u16,
    code: &str,
    message: &str,
    query_code: Option<&str>,
) -> Answer {
    let namespace = match service {
        Service::DynamoDb => DYNAMODB_ERROR,
        Service::Sqs => SQS_ERROR,
    };
    let body = ErrorBody {
        kind: format!("{namespace}{code}"),
        message,
    };
    let mut a = Answer::json(service, status, &body);
    if service == Service::Sqs {
        let fault = if status >= 500 { "Receiver" } else { "Sender" };
        let q = query_code.unwrap_or(code);
        a.headers
            .push(("x-amzn-query-error", format!("{q};{fault}")));
    }
    a
}

/// A failure the server injects instead of (or after) serving a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// 500: DynamoDB `InternalServerError`, SQS `InternalError`.
    Internal,
    /// 503: `ServiceUnavailable`.
    Unavailable,
    /// 400 `ThrottlingException` (both services).
    Throttling,
    /// 400: DynamoDB `ProvisionedThroughputExceededException`, SQS `RequestThrottled`.
    OverCapacity,
}

/// The answer of an injected failure.
pub fn failure(service: Service, f: Failure) -> Answer {
    match (service, f) {
        (Service::DynamoDb, Failure::Internal) => error_answer(
            service,
            500,
            "InternalServerError",
            "Internal server error",
            None,
        ),
        (Service::Sqs, Failure::Internal) => error_answer(
            service,
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
            None,
        ),
        (_, Failure::Unavailable) => error_answer(
            service,
            503,
            "ServiceUnavailable",
            "The service is unavailable. Please try again shortly.",
            None,
        ),
        (_, Failure::Throttling) => error_answer(
            service,
            400,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
            None,
        ),
        (Service::DynamoDb, Failure::OverCapacity) => error_answer(
            service,
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
            None,
        ),
        (Service::Sqs, Failure::OverCapacity) => {
            error_answer(service, 400, "RequestThrottled", "Rate exceeded", None)
        }
    }
}

/// 400 `UnknownOperationException`: a target this server does not serve.
pub fn unknown_operation(service: Option<Service>, target: &str) -> Answer {
    let message = format!("unknown operation {target:?}");
    match service {
        Some(s) => error_answer(s, 400, "UnknownOperationException", &message, None),
        None => Answer {
            status: 400,
            headers: Vec::new(),
            body: serde_json::to_string(&ErrorBody {
                kind: "UnknownOperationException".to_owned(),
                message: &message,
            })
            .expect("plain data serializes"),
        },
    }
}

fn validation(service: Service, message: &str) -> Answer {
    match service {
        Service::DynamoDb => error_answer(service, 400, "ValidationException", message, None),
        Service::Sqs => error_answer(service, 400, "InvalidParameterValue", message, None),
    }
}

/// Decodes a request for `operation` of `service` with JSON `body`, received at `now`; a
/// request it cannot decode is answered as the service would (400).
pub fn decode(
    service: Service,
    operation: &str,
    body: &[u8],
    now: tokio::time::Instant,
) -> Result<Call, Answer> {
    let known = match service {
        Service::DynamoDb => ["UpdateItem", "Query", "BatchGetItem"].contains(&operation),
        Service::Sqs => [
            "ReceiveMessage",
            "DeleteMessageBatch",
            "ChangeMessageVisibilityBatch",
            "ListQueues",
        ]
        .contains(&operation),
    };
    if !known {
        let prefix = match service {
            Service::DynamoDb => DYNAMODB_TARGET,
            Service::Sqs => SQS_TARGET,
        };
        return Err(unknown_operation(
            Some(service),
            &format!("{prefix}{operation}"),
        ));
    }
    let request: Json = match serde_json::from_slice(body) {
        Ok(Json::Object(m)) => Json::Object(m),
        Ok(_) => return Err(serialization(service, "the body is not a JSON object")),
        Err(e) => {
            return Err(serialization(
                service,
                &format!("the body is not JSON: {e}"),
            ));
        }
    };
    let r = Req(&request);
    match (service, operation) {
        (Service::DynamoDb, "UpdateItem") => update_item(&r),
        (Service::DynamoDb, "Query") => query(&r).map_err(|m| validation(service, &m)),
        (Service::DynamoDb, "BatchGetItem") => {
            batch_get_item(&r).map_err(|m| validation(service, &m))
        }
        (_, "ReceiveMessage") => receive_message(&r, now),
        (_, "DeleteMessageBatch") => {
            let (queue, raw) = batch(&r)?;
            let entries = raw
                .iter()
                .map(|e| Ok((entry_id(e)?, receipt(e)?)))
                .collect::<Result<Vec<_>, Answer>>()?;
            check_ids(entries.iter().map(|e| e.0.as_str()))?;
            Ok(Call::DeleteMessageBatch { queue, entries })
        }
        (_, "ChangeMessageVisibilityBatch") => {
            let (queue, raw) = batch(&r)?;
            let entries = raw
                .iter()
                .map(|e| {
                    let secs = Req(e)
                        .count("VisibilityTimeout")?
                        .ok_or_else(|| missing_sqs("VisibilityTimeout"))?;
                    Ok((entry_id(e)?, receipt(e)?, secs))
                })
                .collect::<Result<Vec<_>, Answer>>()?;
            check_ids(entries.iter().map(|e| e.0.as_str()))?;
            Ok(Call::ChangeMessageVisibilityBatch { queue, entries })
        }
        _ => list_queues(&r),
    }
}

fn serialization(service: Service, message: &str) -> Answer {
    error_answer(service, 400, "SerializationException", message, None)
}

fn missing_sqs(field: &str) -> Answer {
    error_answer(
        Service::Sqs,
        400,
        "MissingParameter",
        &format!("The request must contain the parameter {field}."),
        None,
    )
}

/// A request body (a JSON object).
struct Req<'a>(&'a Json);

impl Req<'_> {
    fn get(&self, field: &str) -> Option<&Json> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<Option<&str>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{field} must be a string, not {other}")),
        }
    }

    fn required(&self, field: &str) -> Result<&str, String> {
        self.string(field)?.ok_or_else(|| {
            format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy \
                 constraint: Member must not be null"
            )
        })
    }

    /// A non-negative integer of SQS.
    fn count(&self, field: &str) -> Result<Option<u32>, Answer> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => Ok(Some(n)),
                None => Err(validation(
                    Service::Sqs,
                    &format!("Value {v} for parameter {field} is invalid."),
                )),
            },
        }
    }

    fn strings(&self, field: &str) -> Result<Vec<String>, Answer> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        serialization(Service::Sqs, &format!("{field} must hold strings"))
                    })
                })
                .collect(),
            Some(_) => Err(serialization(
                Service::Sqs,
                &format!("{field} must be a list"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB requests.

/// The attribute names the core writes; any other name is interned (at most
/// [`MAX_INTERNED`] of them) since the core's updates and conditions name `&'static str`s.
const KNOWN_NAMES: [&str; 16] = [
    PK,
    SK,
    TTL,
    INCARNATION,
    HEARTBEAT,
    STATUS,
    CAPACITY,
    INBOX,
    ENDED,
    LAPSED,
    PRIOR_LIFE,
    PRIOR_HEARTBEAT,
    OWNER_ID,
    OWNER_INC,
    EPOCH,
    RETIRED,
];

/// How many attribute names outside the core's a server process will learn.
const MAX_INTERNED: usize = 256;

static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

fn static_name(name: &str) -> Result<&'static str, String> {
    if let Some(k) = KNOWN_NAMES.iter().find(|k| **k == name) {
        return Ok(k);
    }
    let mut interned = INTERNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(k) = interned.get(name) {
        return Ok(k);
    }
    if interned.len() >= MAX_INTERNED {
        return Err(format!(
            "attribute name {name:?}: the simulation knows the core's names and at most \
             {MAX_INTERNED} others"
        ));
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    interned.insert(leaked);
    Ok(leaked)
}

/// An attribute value of the types the core uses (S, N, BOOL).
pub fn value_from_json(v: &Json) -> Result<Value, String> {
    let Some(m) = v.as_object().filter(|m| m.len() == 1) else {
        return Err(format!(
            "an attribute value must name exactly one type: {v}"
        ));
    };
    let (t, inner) = m.iter().next().expect("one entry");
    match (t.as_str(), inner) {
        ("S", Json::String(s)) => Ok(Value::S(s.clone())),
        ("N", Json::String(n)) => {
            let digits = n.strip_prefix('-').unwrap_or(n);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if numeric(int) && numeric(frac) {
                Ok(Value::N(n.clone()))
            } else {
                Err(format!("the number {n:?} is not a decimal number"))
            }
        }
        ("BOOL", Json::Bool(b)) => Ok(Value::Bool(*b)),
        ("S" | "N" | "BOOL", other) => Err(format!("a {t} value is malformed: {other}")),
        _ => Err(format!(
            "attribute value type {t} is not supported by the simulation (S, N and BOOL are)"
        )),
    }
}

/// An attribute value as DynamoDB writes it: `{"S": ..}`, `{"N": ..}` or `{"BOOL": ..}`.
#[derive(Serialize)]
pub enum ValueJson<'a> {
    /// A string.
    S(&'a str),
    /// A number, as its text.
    N(&'a str),
    /// A boolean.
    #[serde(rename = "BOOL")]
    Bool(bool),
}

impl<'a> ValueJson<'a> {
    /// The JSON form of `v`.
    pub fn of(v: &'a Value) -> ValueJson<'a> {
        match v {
            Value::S(s) => ValueJson::S(s),
            Value::N(n) => ValueJson::N(n),
            Value::Bool(b) => ValueJson::Bool(*b),
        }
    }
}

/// An item as DynamoDB writes it, attributes in name order.
fn item_json(item: &Item) -> BTreeMap<&str, ValueJson<'_>> {
    item.iter()
        .map(|(k, v)| (k.as_str(), ValueJson::of(v)))
        .collect()
}

/// A key as DynamoDB writes it.
fn key_json(key: &Key) -> BTreeMap<&'static str, ValueJson<'_>> {
    BTreeMap::from([(PK, ValueJson::S(&key.pk)), (SK, ValueJson::S(&key.sk))])
}

fn key_from_json(v: &Json, field: &str) -> Result<Key, String> {
    let wrong = || format!("{field}: the provided key element does not match the schema");
    let m = v.as_object().ok_or_else(wrong)?;
    if m.len() != 2 {
        return Err(wrong());
    }
    match (
        m.get(PK).map(value_from_json),
        m.get(SK).map(value_from_json),
    ) {
        (Some(Ok(Value::S(pk))), Some(Ok(Value::S(sk)))) => Ok(Key { pk, sk }),
        _ => Err(wrong()),
    }
}

/// A request's `ExpressionAttributeNames` and `ExpressionAttributeValues`, and which of them
/// the expressions used.
struct Placeholders {
    names: BTreeMap<String, String>,
    values: BTreeMap<String, Value>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl Placeholders {
    fn of(r: &Req<'_>) -> Result<Placeholders, String> {
        let mut names = BTreeMap::new();
        if let Some(v) = r.get("ExpressionAttributeNames") {
            let m = v
                .as_object()
                .ok_or("ExpressionAttributeNames must be a map")?;
            if m.is_empty() {
                return Err("ExpressionAttributeNames must not be empty".to_owned());
            }
            for (k, n) in m {
                let n = n
                    .as_str()
                    .ok_or_else(|| format!("ExpressionAttributeNames {k} must be a string"))?;
                names.insert(k.clone(), n.to_owned());
            }
        }
        let mut values = BTreeMap::new();
        if let Some(v) = r.get("ExpressionAttributeValues") {
            let m = v
                .as_object()
                .ok_or("ExpressionAttributeValues must be a map")?;
            if m.is_empty() {
                return Err("ExpressionAttributeValues must not be empty".to_owned());
            }
            for (k, val) in m {
                let val = value_from_json(val)
                    .map_err(|e| format!("ExpressionAttributeValues {k}: {e}"))?;
                values.insert(k.clone(), val);
            }
        }
        Ok(Placeholders {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        })
    }

    fn name(&mut self, placeholder: &str) -> Result<&'static str, String> {
        let n = self.names.get(placeholder).ok_or_else(|| {
            format!(
                "An expression attribute name used in the document path is not defined; \
                 attribute name: {placeholder}"
            )
        })?;
        let n = static_name(n)?;
        self.used_names.insert(placeholder.to_owned());
        Ok(n)
    }

    fn value(&mut self, placeholder: &str) -> Result<Value, String> {
        let v = self.values.get(placeholder).cloned().ok_or_else(|| {
            format!(
                "An expression attribute value used in expression is not defined; \
                 attribute value: {placeholder}"
            )
        })?;
        self.used_values.insert(placeholder.to_owned());
        Ok(v)
    }

    /// DynamoDB refuses placeholders that no expression uses.
    fn all_used(&self) -> Result<(), String> {
        let unused = |all: Vec<&String>, used: &BTreeSet<String>| -> Vec<String> {
            all.into_iter()
                .filter(|k| !used.contains(*k))
                .cloned()
                .collect()
        };
        let names = unused(self.names.keys().collect(), &self.used_names);
        if !names.is_empty() {
            return Err(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                names.join(", ")
            ));
        }
        let values = unused(self.values.keys().collect(), &self.used_values);
        if !values.is_empty() {
            return Err(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                values.join(", ")
            ));
        }
        Ok(())
    }
}

/// One token of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open,
    Close,
    Comma,
    Equals,
    NotEquals,
    Less,
    Greater,
    Plus,
    /// A keyword or function name.
    Word(&'a str),
    /// `#name`.
    Name(&'a str),
    /// `:value`.
    Val(&'a str),
}

impl std::fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Open => f.write_str("("),
            Tok::Close => f.write_str(")"),
            Tok::Comma => f.write_str(","),
            Tok::Equals => f.write_str("="),
            Tok::NotEquals => f.write_str("<>"),
            Tok::Less => f.write_str("<"),
            Tok::Greater => f.write_str(">"),
            Tok::Plus => f.write_str("+"),
            Tok::Word(w) | Tok::Name(w) | Tok::Val(w) => f.write_str(w),
        }
    }
}

fn tokens(text: &str) -> Result<Vec<Tok<'_>>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        let single = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Some(Tok::Open),
            b')' => Some(Tok::Close),
            b',' => Some(Tok::Comma),
            b'=' => Some(Tok::Equals),
            b'+' => Some(Tok::Plus),
            b'>' => Some(Tok::Greater),
            b'<' if bytes.get(i + 1) != Some(&b'>') => Some(Tok::Less),
            _ => None,
        };
        if let Some(t) = single {
            out.push(t);
            i += 1;
            continue;
        }
        if b == b'<' {
            out.push(Tok::NotEquals);
            i += 2;
            continue;
        }
        let start = i;
        if b == b'#' || b == b':' {
            i += 1;
        }
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &text[start..i];
        let tok = match b {
            b'#' if word.len() > 1 => Tok::Name(word),
            b':' if word.len() > 1 => Tok::Val(word),
            _ if ident(b) => Tok::Word(word),
            _ => {
                let c = text[start..].chars().next().unwrap_or(' ');
                return Err(format!("unexpected character {c:?} at position {start}"));
            }
        };
        out.push(tok);
    }
    Ok(out)
}

/// A cursor over the tokens of one expression.
struct Parser<'a, 'p> {
    what: &'static str,
    toks: Vec<Tok<'a>>,
    at: usize,
    p: &'p mut Placeholders,
}

impl<'a> Parser<'a, '_> {
    fn new<'p>(
        what: &'static str,
        text: &'a str,
        p: &'p mut Placeholders,
    ) -> Result<Parser<'a, 'p>, String> {
        let toks = tokens(text).map_err(|e| format!("Invalid {what}: {e}"))?;
        Ok(Parser {
            what,
            toks,
            at: 0,
            p,
        })
    }

    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.at).copied()
    }

    fn fail<T>(&self, expected: &str) -> Result<T, String> {
        let found = match self.peek() {
            Some(t) => format!("{t:?} at token {}", self.at + 1),
            None => "the end".to_owned(),
        };
        Err(format!(
            "Invalid {}: expected {expected}, found {found}",
            self.what
        ))
    }

    fn next(&mut self) -> Option<Tok<'a>> {
        let t = self.peek();
        if t.is_some() {
            self.at += 1;
        }
        t
    }

    fn expect(&mut self, t: Tok<'_>) -> Result<(), String> {
        if self.peek() == Some(t) {
            self.at += 1;
            Ok(())
        } else {
            self.fail(&format!("{t:?}"))
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    /// A `#name` placeholder: the attribute, and the placeholder's text.
    fn name(&mut self) -> Result<(&'static str, &'a str), String> {
        match self.peek() {
            Some(Tok::Name(n)) => {
                self.at += 1;
                Ok((self.p.name(n)?, n))
            }
            _ => self.fail("an attribute name placeholder (#name)"),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(Tok::Val(v)) => {
                self.at += 1;
                self.p.value(v)
            }
            _ => self.fail("a value placeholder (:value)"),
        }
    }

    fn end(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("the end of the expression"),
        }
    }
}

fn number<T: std::str::FromStr>(v: &Value, what: &str) -> Result<T, String> {
    match v {
        Value::N(n) => n
            .parse()
            .map_err(|_| format!("{what}: {n} is not a whole number in range")),
        other => Err(format!(
            "Incorrect operand type for operator or function; {what}, operand type: {}",
            match other {
                Value::S(_) => "S",
                Value::Bool(_) => "BOOL",
                Value::N(_) => "N",
            }
        )),
    }
}

/// Parses an UpdateExpression into the core's updates, in the order their names were numbered.
fn parse_update(text: &str, p: &mut Placeholders) -> Result<Vec<Update>, String> {
    let mut parser = Parser::new("UpdateExpression", text, p)?;
    // (the name placeholder, the update) in text order.
    let mut parsed: Vec<(&str, Update)> = Vec::new();
    let mut seen_clauses = BTreeSet::new();
    while parser.peek().is_some() {
        let clause = parse_clause(&mut parser, &mut seen_clauses)?;
        loop {
            let (name, placeholder) = parser.name()?;
            let update = parse_action(&mut parser, &clause, name)?;
            if parsed.iter().any(|(_, u)| update_name(u) == name) {
                return Err(format!(
                    "Invalid UpdateExpression: Two document paths overlap with each other; \
                     must remove or rewrite one of these paths; path one: [{name}], path two: \
                     [{name}]"
                ));
            }
            parsed.push((placeholder, update));
            if parser.peek() == Some(Tok::Comma) {
                parser.at += 1;
            } else {
                break;
            }
        }
    }
    if parsed.is_empty() {
        return Err("Invalid UpdateExpression: The expression can not be empty".to_owned());
    }
    Ok(in_numbered_order(parsed))
}

/// The keyword opening a clause (SET, ADD, REMOVE, upper-cased); each may come only once, as
/// on DynamoDB.
fn parse_clause(
    parser: &mut Parser<'_, '_>,
    seen: &mut BTreeSet<String>,
) -> Result<String, String> {
    let clause = match parser.next() {
        Some(Tok::Word(w)) => w.to_ascii_uppercase(),
        _ => {
            parser.at -= 1;
            return parser.fail("SET, ADD or REMOVE");
        }
    };
    if !seen.insert(clause.clone()) {
        return Err(format!(
            "Invalid UpdateExpression: The \"{clause}\" section can only be used once in an \
             update expression"
        ));
    }
    Ok(clause)
}

/// One action of `clause` on the attribute `name`, whose placeholder has just been read.
fn parse_action(
    parser: &mut Parser<'_, '_>,
    clause: &str,
    name: &'static str,
) -> Result<Update, String> {
    match clause {
        "SET" => {
            parser.expect(Tok::Equals)?;
            if parser.keyword("if_not_exists") {
                parse_if_not_exists(parser, name)
            } else {
                Ok(Update::Set(name, parser.value()?))
            }
        }
        "ADD" => Ok(Update::Add(
            name,
            number(&parser.value()?, "operator: ADD")?,
        )),
        "REMOVE" => Ok(Update::Remove(name)),
        other => Err(format!(
            "Invalid UpdateExpression: the simulation understands SET, ADD and \
             REMOVE, not {other}"
        )),
    }
}

/// The rest of `SET #a = if_not_exists(#b, :v)` after `if_not_exists`, in the two forms the
/// core writes: `#b` another attribute (a copy of its value before the write), or `#a` itself
/// followed by `+ 1` (a counter starting at `:v`).
fn parse_if_not_exists(parser: &mut Parser<'_, '_>, name: &'static str) -> Result<Update, String> {
    parser.expect(Tok::Open)?;
    let (from, _) = parser.name()?;
    parser.expect(Tok::Comma)?;
    let absent = parser.value()?;
    parser.expect(Tok::Close)?;
    if from != name {
        return Ok(Update::Copy(
            name,
            from,
            number(&absent, "function: if_not_exists")?,
        ));
    }
    parser.expect(Tok::Plus)?;
    let one = parser.value()?;
    if number::<u64>(&one, "operator: +")? != 1 {
        return Err("Invalid UpdateExpression: the simulation understands \
             if_not_exists(#a, :v) + 1 only"
            .to_owned());
    }
    Ok(Update::Increment(
        name,
        number(&absent, "function: if_not_exists")?,
    ))
}

/// The updates in the order expr.rs numbered their names, when every name is `#n<number>`;
/// else in text order.
fn in_numbered_order(parsed: Vec<(&str, Update)>) -> Vec<Update> {
    let order: Option<Vec<u64>> = parsed
        .iter()
        .map(|(ph, _)| ph.strip_prefix("#n").and_then(|d| d.parse().ok()))
        .collect();
    let mut indexed: Vec<(u64, Update)> = match order {
        Some(o) => o
            .into_iter()
            .zip(parsed.into_iter().map(|(_, u)| u))
            .collect(),
        None => (0..).zip(parsed.into_iter().map(|(_, u)| u)).collect(),
    };
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, u)| u).collect()
}

fn update_name(u: &Update) -> &'static str {
    match u {
        Update::Set(n, _)
        | Update::Add(n, _)
        | Update::Increment(n, _)
        | Update::Remove(n)
        | Update::Copy(n, _, _) => n,
    }
}

/// A condition as parsed, before the groups are resolved.
enum Node {
    Atom(Cond),
    /// `#a <> :v`: only understood as the second half of `(attribute_not_exists(#a) OR ...)`.
    BareNe(&'static str, Value),
    And(Vec<Node>),
    Or(Vec<Node>),
    Group(Box<Node>),
}

fn parse_or(parser: &mut Parser<'_, '_>) -> Result<Node, String> {
    let mut parts = vec![parse_and(parser)?];
    while parser.keyword("OR") {
        parts.push(parse_and(parser)?);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Node::Or(parts)
    })
}

fn parse_and(parser: &mut Parser<'_, '_>) -> Result<Node, String> {
    let mut parts = vec![parse_primary(parser)?];
    while parser.keyword("AND") {
        parts.push(parse_primary(parser)?);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Node::And(parts)
    })
}

fn parse_primary(parser: &mut Parser<'_, '_>) -> Result<Node, String> {
    if parser.peek() == Some(Tok::Open) {
        parser.at += 1;
        if parser.peek() == Some(Tok::Close) {
            return parser.fail("a condition inside the parentheses");
        }
        let inner = parse_or(parser)?;
        parser.expect(Tok::Close)?;
        return Ok(Node::Group(Box::new(inner)));
    }
    for (function, exists) in [("attribute_exists", true), ("attribute_not_exists", false)] {
        if parser.keyword(function) {
            parser.expect(Tok::Open)?;
            let (n, _) = parser.name()?;
            parser.expect(Tok::Close)?;
            return Ok(Node::Atom(if exists {
                Cond::Exists(n)
            } else {
                Cond::NotExists(n)
            }));
        }
    }
    if matches!(parser.peek(), Some(Tok::Name(_))) {
        let (n, _) = parser.name()?;
        return match parser.next() {
            Some(Tok::Equals) => Ok(Node::Atom(Cond::Eq(n, parser.value()?))),
            Some(Tok::NotEquals) => Ok(Node::BareNe(n, parser.value()?)),
            Some(Tok::Less) => Ok(Node::Atom(Cond::Lt(n, parser.value()?))),
            Some(Tok::Greater) => Ok(Node::Atom(Cond::Gt(n, parser.value()?))),
            _ => {
                parser.at -= 1;
                parser.fail("=, <>, < or >")
            }
        };
    }
    parser.fail("attribute_exists(#a), attribute_not_exists(#a), #a = :v or a parenthesized group")
}

fn resolve(node: Node) -> Result<Cond, String> {
    let parts = |nodes: Vec<Node>| {
        nodes
            .into_iter()
            .map(resolve)
            .collect::<Result<Vec<_>, _>>()
    };
    match node {
        Node::Atom(c) => Ok(c),
        Node::BareNe(n, _) => Err(format!(
            "Invalid ConditionExpression: the simulation understands <> only as \
             (attribute_not_exists(#a) OR #a <> :v), here on {n}"
        )),
        Node::And(nodes) => Ok(Cond::And(parts(nodes)?)),
        Node::Or(nodes) => Ok(Cond::Or(parts(nodes)?)),
        Node::Group(inner) => match *inner {
            Node::And(nodes) => Ok(Cond::And(parts(nodes)?)),
            Node::Or(mut nodes) => {
                if let [Node::Atom(Cond::NotExists(a)), Node::BareNe(b, _)] = nodes.as_slice()
                    && a == b
                {
                    let Some(Node::BareNe(n, v)) = nodes.pop() else {
                        unreachable!("matched above")
                    };
                    return Ok(Cond::Ne(n, v));
                }
                Ok(Cond::Or(parts(nodes)?))
            }
            // A group of one part: expr.rs writes And and Or of one part alike.
            single => Ok(Cond::And(vec![resolve(single)?])),
        },
    }
}

fn parse_condition(text: &str, p: &mut Placeholders) -> Result<Cond, String> {
    let mut parser = Parser::new("ConditionExpression", text, p)?;
    let node = parse_or(&mut parser)?;
    parser.end()?;
    resolve(node)
}

fn parse_key_condition(text: &str, p: &mut Placeholders) -> Result<TableQuery, String> {
    let mut parser = Parser::new("KeyConditionExpression", text, p)?;
    let (pk, _) = parser.name()?;
    if pk != PK {
        return Err(format!(
            "Query condition missed key schema element: {PK} (the condition names {pk})"
        ));
    }
    parser.expect(Tok::Equals)?;
    let Value::S(pk) = parser.value()? else {
        return Err(
            "One or more parameter values were invalid: Condition parameter type \
                    does not match schema type"
                .to_owned(),
        );
    };
    let mut sk_prefix = None;
    if parser.keyword("AND") {
        if !parser.keyword("begins_with") {
            return parser
                .fail("begins_with (the simulation understands no other sort-key condition)");
        }
        parser.expect(Tok::Open)?;
        let (sk, _) = parser.name()?;
        if sk != SK {
            return Err(format!(
                "Query key condition not supported: begins_with on {sk}, not the sort key {SK}"
            ));
        }
        parser.expect(Tok::Comma)?;
        let Value::S(prefix) = parser.value()? else {
            return Err(
                "One or more parameter values were invalid: Condition parameter type \
                        does not match schema type"
                    .to_owned(),
            );
        };
        parser.expect(Tok::Close)?;
        sk_prefix = Some(prefix);
    }
    parser.end()?;
    Ok(TableQuery {
        pk,
        sk_prefix,
        backward: false,
    })
}

/// Fields of a request the simulation does not implement, and which would change its meaning.
fn refuse_fields(r: &Req<'_>, fields: &[&str]) -> Result<(), String> {
    for f in fields {
        if r.get(f).is_some() {
            return Err(format!("{f} is not supported by the simulation"));
        }
    }
    Ok(())
}

fn update_item(r: &Req<'_>) -> Result<Call, Answer> {
    let inner = || -> Result<Call, String> {
        let table = r.required("TableName")?.to_owned();
        refuse_fields(
            r,
            &[
                "AttributeUpdates",
                "Expected",
                "ConditionalOperator",
                "ReturnValuesOnConditionCheckFailure",
            ],
        )?;
        let key = key_from_json(r.get("Key").ok_or("Key is required")?, "Key")?;
        let return_values = match r.string("ReturnValues")? {
            None | Some("NONE") => ReturnValues::None,
            Some("ALL_NEW") => ReturnValues::AllNew,
            Some(other) => {
                return Err(format!(
                    "ReturnValues {other} is not supported by the simulation (NONE and ALL_NEW are)"
                ));
            }
        };
        let mut p = Placeholders::of(r)?;
        let text = r.required("UpdateExpression")?;
        let updates = parse_update(text, &mut p)?;
        let cond = match r.string("ConditionExpression")? {
            None => None,
            Some(c) => Some(parse_condition(c, &mut p)?),
        };
        p.all_used()?;
        Ok(Call::UpdateItem {
            table,
            write: TableWrite { key, updates, cond },
            return_values,
        })
    };
    inner().map_err(|m| validation(Service::DynamoDb, &m))
}

fn query(r: &Req<'_>) -> Result<Call, String> {
    let table = r.required("TableName")?.to_owned();
    refuse_fields(
        r,
        &[
            "IndexName",
            "Limit",
            "FilterExpression",
            "ProjectionExpression",
            "Select",
            "KeyConditions",
            "QueryFilter",
            "AttributesToGet",
        ],
    )?;
    let backward = match r.get("ScanIndexForward") {
        None | Some(Json::Bool(true)) => false,
        Some(Json::Bool(false)) => true,
        Some(_) => return Err("ScanIndexForward must be a boolean".to_owned()),
    };
    let mut p = Placeholders::of(r)?;
    let query = TableQuery {
        backward,
        ..parse_key_condition(r.required("KeyConditionExpression")?, &mut p)?
    };
    p.all_used()?;
    let start = match r.get("ExclusiveStartKey") {
        None => None,
        Some(k) => Some(key_from_json(k, "ExclusiveStartKey")?),
    };
    if let Some(k) = &start
        && k.pk != query.pk
    {
        return Err(
            "The provided starting key is invalid: it is not in the partition queried".to_owned(),
        );
    }
    Ok(Call::Query {
        table,
        query,
        start,
    })
}

/// A BatchGetItem of one table, strongly consistent (an eventually consistent read would be
/// served fresher than DynamoDB serves it), of 1..=100 distinct keys.
fn batch_get_item(r: &Req<'_>) -> Result<Call, String> {
    refuse_fields(r, &["ReturnConsumedCapacity"])?;
    let tables = r
        .get("RequestItems")
        .and_then(Json::as_object)
        .ok_or("RequestItems must be a map of table names to keys")?;
    let [(table, asked)] = tables.iter().collect::<Vec<_>>()[..] else {
        return Err(format!(
            "the simulation serves one table a request, not {}",
            tables.len()
        ));
    };
    let asked = Req(asked);
    refuse_fields(
        &asked,
        &[
            "ProjectionExpression",
            "AttributesToGet",
            "ExpressionAttributeNames",
        ],
    )?;
    if asked.get("ConsistentRead") != Some(&Json::Bool(true)) {
        return Err(
            "ConsistentRead must be true: the coordination table is read strongly consistent"
                .to_owned(),
        );
    }
    let keys = match asked.get("Keys") {
        Some(Json::Array(keys)) => keys
            .iter()
            .map(|k| key_from_json(k, "Keys"))
            .collect::<Result<Vec<Key>, String>>()?,
        _ => return Err("Keys must be a list of keys".to_owned()),
    };
    if keys.is_empty() || keys.len() > MAX_BATCH_GET {
        return Err(format!(
            "Too many items requested for the BatchGetItem call: {} keys, 1 to {} allowed",
            keys.len(),
            MAX_BATCH_GET
        ));
    }
    if keys.iter().collect::<BTreeSet<_>>().len() != keys.len() {
        return Err("Provided list of item keys contains duplicates".to_owned());
    }
    Ok(Call::BatchGetItem {
        table: table.clone(),
        keys,
    })
}

// ---------------------------------------------------------------------------------------------
// SQS requests.

fn queue_url(r: &Req<'_>) -> Result<QueueId, Answer> {
    let url = r
        .string("QueueUrl")
        .map_err(|m| serialization(Service::Sqs, &m))?
        .ok_or_else(|| missing_sqs("QueueUrl"))?;
    QueueId::new(url).map_err(|e| {
        error_answer(
            Service::Sqs,
            400,
            "InvalidAddress",
            &format!("The address {url} is not valid for this endpoint: {e}"),
            None,
        )
    })
}

fn receive_message(r: &Req<'_>, now: tokio::time::Instant) -> Result<Call, Answer> {
    let queue = queue_url(r)?;
    let max = r.count("MaxNumberOfMessages")?.unwrap_or(1);
    // SQS's defaults: the queue's visibility timeout (30 s) and receive wait (0 s).
    let visibility_secs = r.count("VisibilityTimeout")?.unwrap_or(30);
    let wait = Duration::from_secs(u64::from(r.count("WaitTimeSeconds")?.unwrap_or(0)));
    let attribute_names = r.strings("MessageAttributeNames")?;
    let mut system_attributes = r.strings("MessageSystemAttributeNames")?;
    system_attributes.extend(r.strings("AttributeNames")?);
    Ok(Call::ReceiveMessage {
        receive: Receive {
            queue,
            max,
            visibility_secs,
            wait,
            attribute_names,
            send_by: now + FAR,
            attempt_timeout: FAR,
        },
        system_attributes,
    })
}

fn batch<'a>(r: &'a Req<'a>) -> Result<(QueueId, &'a Vec<Json>), Answer> {
    let queue = queue_url(r)?;
    let entries = match r.get("Entries") {
        None => return Err(missing_sqs("Entries")),
        Some(Json::Array(a)) => a,
        Some(_) => return Err(serialization(Service::Sqs, "Entries must be a list")),
    };
    if entries.is_empty() {
        return Err(error_answer(
            Service::Sqs,
            400,
            "EmptyBatchRequest",
            "There should be at least one SendMessageBatchRequestEntry in the request.",
            Some("AWS.SimpleQueueService.EmptyBatchRequest"),
        ));
    }
    if entries.len() > 10 {
        return Err(error_answer(
            Service::Sqs,
            400,
            "TooManyEntriesInBatchRequest",
            &format!(
                "Maximum number of entries per request are 10. You have sent {}.",
                entries.len()
            ),
            Some("AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
        ));
    }
    Ok((queue, entries))
}

fn entry_id(e: &Json) -> Result<String, Answer> {
    let entry = Req(e);
    let id = entry
        .string("Id")
        .map_err(|m| serialization(Service::Sqs, &m))?
        .ok_or_else(|| missing_sqs("Id"))?;
    let valid = !id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(error_answer(
            Service::Sqs,
            400,
            "InvalidBatchEntryId",
            "A batch entry id can only contain alphanumeric characters, hyphens and \
             underscores. It can be at most 80 letters long.",
            Some("AWS.SimpleQueueService.InvalidBatchEntryId"),
        ));
    }
    Ok(id.to_owned())
}

fn receipt(e: &Json) -> Result<String, Answer> {
    let entry = Req(e);
    Ok(entry
        .string("ReceiptHandle")
        .map_err(|m| serialization(Service::Sqs, &m))?
        .ok_or_else(|| missing_sqs("ReceiptHandle"))?
        .to_owned())
}

fn check_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), Answer> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(error_answer(
                Service::Sqs,
                400,
                "BatchEntryIdsNotDistinct",
                &format!("Id {id} repeated."),
                Some("AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
            ));
        }
    }
    Ok(())
}

fn list_queues(r: &Req<'_>) -> Result<Call, Answer> {
    let text = |f| {
        r.string(f)
            .map(|s| s.map(str::to_owned))
            .map_err(|m| serialization(Service::Sqs, &m))
    };
    let prefix = text("QueueNamePrefix")?.unwrap_or_default();
    let next_token = text("NextToken")?;
    let max_results = r.count("MaxResults")?;
    match max_results {
        None if next_token.is_some() => {
            return Err(validation(
                Service::Sqs,
                "MaxResults is a mandatory parameter when you provide a value for NextToken.",
            ));
        }
        Some(m) if !(1..=1000).contains(&m) => {
            return Err(validation(
                Service::Sqs,
                &format!(
                    "Value {m} for parameter MaxResults is invalid. Reason: must be between 1 and 1000."
                ),
            ));
        }
        // The backend trait pages by 1,000 only.
        Some(m) if m != 1000 => {
            return Err(validation(
                Service::Sqs,
                &format!("MaxResults {m}: the simulation serves pages of 1000 only"),
            ));
        }
        _ => {}
    }
    Ok(Call::ListQueues {
        prefix,
        max_results,
        next_token,
    })
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// The answer to `call` given what the backend returned.
pub fn encode(call: &Call, result: Result<Outcome, BackendError>) -> Answer {
    let service = call.service();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return backend_error(service, &e),
    };
    match (call, outcome) {
        (Call::UpdateItem { return_values, .. }, Outcome::Item(item)) => {
            let attributes = match return_values {
                ReturnValues::AllNew => Some(item_json(&item)),
                ReturnValues::None => None,
            };
            Answer::json(service, 200, &UpdateItemOutput { attributes })
        }
        (Call::Query { .. }, Outcome::Page(page)) => Answer::json(
            service,
            200,
            &QueryOutput {
                count: page.items.len(),
                items: page.items.iter().map(item_json).collect(),
                last_evaluated_key: page.last_key.as_ref().map(key_json),
                scanned_count: page.items.len(),
            },
        ),
        (Call::BatchGetItem { table, .. }, Outcome::Batch(batch)) => batch_answer(table, &batch),
        (
            Call::ReceiveMessage {
                system_attributes, ..
            },
            Outcome::Messages(ms),
        ) => {
            let messages = ms.iter().map(|m| MessageJson::of(m, system_attributes));
            Answer::json(
                service,
                200,
                &ReceiveMessageOutput {
                    messages: messages.collect(),
                },
            )
        }
        (Call::DeleteMessageBatch { entries, .. }, Outcome::Entries(results)) => Answer::json(
            service,
            200,
            &BatchOutput::of(entries.iter().map(|e| e.0.as_str()), &results),
        ),
        (Call::ChangeMessageVisibilityBatch { entries, .. }, Outcome::Entries(results)) => {
            Answer::json(
                service,
                200,
                &BatchOutput::of(entries.iter().map(|e| e.0.as_str()), &results),
            )
        }
        (Call::ListQueues { max_results, .. }, Outcome::Queues(page)) => {
            // Without MaxResults SQS answers at most 1,000 URLs and no token.
            let next_token = max_results.and(page.next_token.as_deref());
            Answer::json(
                service,
                200,
                &ListQueuesOutput {
                    next_token,
                    queue_urls: &page.urls,
                },
            )
        }
        (call, outcome) => error_answer(
            service,
            500,
            "InternalFailure",
            &format!("the backend answered {call:?} with {outcome:?}"),
            None,
        ),
    }
}

/// Whether a system attribute was asked for by its name or by `All`.
fn asked(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n == name || n == "All")
}

/// A message attribute as SQS writes it.
#[derive(Serialize)]
struct MessageAttributeJson<'a> {
    /// Its bytes, in base64, for a `Binary` attribute.
    #[serde(rename = "BinaryValue", skip_serializing_if = "Option::is_none")]
    binary: Option<String>,
    /// Its data type as sent.
    #[serde(rename = "DataType")]
    data_type: &'a str,
    /// Its text, for a `String` or `Number` attribute.
    #[serde(rename = "StringValue", skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

/// A received message as SQS writes it (keys in the order SQS sends them: sorted).
#[derive(Serialize)]
struct MessageJson<'a> {
    /// The system attributes asked for.
    #[serde(rename = "Attributes", skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<&'static str, String>,
    /// The body.
    #[serde(rename = "Body")]
    body: &'a str,
    /// The MD5 of the body, in hex.
    #[serde(rename = "MD5OfBody")]
    md5_of_body: String,
    /// The MD5 of the message attributes, when there are any.
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    md5_of_message_attributes: Option<String>,
    /// The message attributes, when there are any.
    #[serde(rename = "MessageAttributes", skip_serializing_if = "Option::is_none")]
    message_attributes: Option<BTreeMap<&'a str, MessageAttributeJson<'a>>>,
    /// The message id.
    #[serde(rename = "MessageId")]
    message_id: &'a str,
    /// The receipt handle.
    #[serde(rename = "ReceiptHandle")]
    receipt_handle: &'a str,
}

impl<'a> MessageJson<'a> {
    /// `m` with the system attributes `system` names.
    fn of(m: &'a Message, system: &[String]) -> MessageJson<'a> {
        let mut attributes = BTreeMap::new();
        if asked(system, "ApproximateReceiveCount") {
            attributes.insert("ApproximateReceiveCount", m.receive_count.to_string());
        }
        if let Some(g) = &m.group
            && asked(system, "MessageGroupId")
        {
            attributes.insert("MessageGroupId", g.clone());
        }
        let md5_of_message_attributes = md5_of_message_attributes(&m.attributes);
        let message_attributes = md5_of_message_attributes.is_some().then(|| {
            (m.attributes.iter())
                .map(|(k, v)| {
                    let (text, binary) = match &v.value {
                        AttributeData::Text(t) => (Some(t.as_str()), None),
                        AttributeData::Binary(b) => (None, Some(base64::encode(b))),
                    };
                    let data_type = v.data_type.as_str();
                    (
                        k.as_str(),
                        MessageAttributeJson {
                            binary,
                            data_type,
                            text,
                        },
                    )
                })
                .collect()
        });
        MessageJson {
            attributes,
            body: &m.body,
            md5_of_body: md5_hex(m.body.as_bytes()),
            md5_of_message_attributes,
            message_attributes,
            message_id: &m.message_id,
            receipt_handle: &m.receipt,
        }
    }
}

/// The code and message of a failed batch entry from the backend's text: `Code: message` (as
/// the AWS adapter writes it) or a bare code (as the fakes write it).
pub fn entry_failure(text: &str) -> (String, String) {
    let is_code = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
    };
    if let Some((code, message)) = text.split_once(": ")
        && is_code(code)
    {
        return (code.to_owned(), message.to_owned());
    }
    if is_code(text) {
        let message = match text {
            "ReceiptHandleIsInvalid" => "The input receipt handle is invalid.",
            "MessageNotInflight" => "The message referred to isn't in flight.",
            _ => text,
        };
        return (text.to_owned(), message.to_owned());
    }
    ("InternalError".to_owned(), text.to_owned())
}

/// A failed entry of a batch call as SQS writes it.
#[derive(Serialize)]
struct FailedEntry<'a> {
    /// The error code.
    #[serde(rename = "Code")]
    code: String,
    /// The entry's id.
    #[serde(rename = "Id")]
    id: &'a str,
    /// The error message.
    #[serde(rename = "Message")]
    message: String,
    /// Whether the caller was at fault.
    #[serde(rename = "SenderFault")]
    sender_fault: bool,
}

/// A succeeded entry of a batch call.
#[derive(Serialize)]
struct SucceededEntry<'a> {
    /// The entry's id.
    #[serde(rename = "Id")]
    id: &'a str,
}

/// The answer to DeleteMessageBatch or ChangeMessageVisibilityBatch.
#[derive(Serialize)]
struct BatchOutput<'a> {
    /// The entries that failed.
    #[serde(rename = "Failed")]
    failed: Vec<FailedEntry<'a>>,
    /// The entries that succeeded.
    #[serde(rename = "Successful")]
    successful: Vec<SucceededEntry<'a>>,
}

impl<'a> BatchOutput<'a> {
    /// The entries `ids` with the backend's `results`, in order.
    fn of(ids: impl Iterator<Item = &'a str>, results: &[Result<(), String>]) -> BatchOutput<'a> {
        let mut out = BatchOutput {
            failed: Vec::new(),
            successful: Vec::new(),
        };
        for (i, id) in ids.enumerate() {
            let (code, message) = match results.get(i) {
                Some(Ok(())) => {
                    out.successful.push(SucceededEntry { id });
                    continue;
                }
                Some(Err(text)) => entry_failure(text),
                None => (
                    "InternalError".to_owned(),
                    "the backend gave no result for this entry".to_owned(),
                ),
            };
            let sender_fault = code != "InternalError";
            out.failed.push(FailedEntry {
                code,
                id,
                message,
                sender_fault,
            });
        }
        out
    }
}

/// AWS's JSON error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    /// The namespaced error code.
    #[serde(rename = "__type")]
    kind: String,
    /// What went wrong.
    message: &'a str,
}

/// The answer to UpdateItem.
#[derive(Serialize)]
struct UpdateItemOutput<'a> {
    /// The item as written, when asked for.
    #[serde(rename = "Attributes", skip_serializing_if = "Option::is_none")]
    attributes: Option<BTreeMap<&'a str, ValueJson<'a>>>,
}

/// The answer to a BatchGetItem of `table`: the items found, and the keys left unprocessed
/// (the map is empty when none is).
fn batch_answer(table: &str, batch: &Batch) -> Answer {
    let items = batch.items.iter().map(item_json).collect();
    let unprocessed = (!batch.unprocessed.is_empty()).then(|| KeysJson {
        keys: batch.unprocessed.iter().map(key_json).collect(),
        consistent_read: true,
    });
    let output = BatchGetItemOutput {
        responses: BTreeMap::from([(table, items)]),
        unprocessed_keys: unprocessed
            .map(|u| BTreeMap::from([(table, u)]))
            .unwrap_or_default(),
    };
    Answer::json(Service::DynamoDb, 200, &output)
}

/// The answer to BatchGetItem.
#[derive(Serialize)]
struct BatchGetItemOutput<'a> {
    /// The items found, by table.
    #[serde(rename = "Responses")]
    responses: BTreeMap<&'a str, Vec<BTreeMap<&'a str, ValueJson<'a>>>>,
    /// The keys left unread, by table (empty when none).
    #[serde(rename = "UnprocessedKeys")]
    unprocessed_keys: BTreeMap<&'a str, KeysJson<'a>>,
}

/// Keys of one table, as BatchGetItem's `UnprocessedKeys` gives them.
#[derive(Serialize)]
struct KeysJson<'a> {
    /// The keys.
    #[serde(rename = "Keys")]
    keys: Vec<BTreeMap<&'static str, ValueJson<'a>>>,
    /// As the request asked.
    #[serde(rename = "ConsistentRead")]
    consistent_read: bool,
}

/// The answer to Query.
#[derive(Serialize)]
struct QueryOutput<'a> {
    /// Items in the page.
    #[serde(rename = "Count")]
    count: usize,
    /// The items.
    #[serde(rename = "Items")]
    items: Vec<BTreeMap<&'a str, ValueJson<'a>>>,
    /// Where the next page starts.
    #[serde(rename = "LastEvaluatedKey", skip_serializing_if = "Option::is_none")]
    last_evaluated_key: Option<BTreeMap<&'static str, ValueJson<'a>>>,
    /// Items examined.
    #[serde(rename = "ScannedCount")]
    scanned_count: usize,
}

/// The answer to ReceiveMessage: no key at all when nothing came.
#[derive(Serialize)]
struct ReceiveMessageOutput<'a> {
    /// The messages.
    #[serde(rename = "Messages", skip_serializing_if = "Vec::is_empty")]
    messages: Vec<MessageJson<'a>>,
}

/// The answer to ListQueues.
#[derive(Serialize)]
struct ListQueuesOutput<'a> {
    /// The token for the next page.
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    next_token: Option<&'a str>,
    /// The queue URLs.
    #[serde(rename = "QueueUrls")]
    queue_urls: &'a [String],
}

/// The answer of a backend error, as `service` reports that kind of trouble.
pub fn backend_error(service: Service, e: &BackendError) -> Answer {
    match (service, e) {
        (Service::DynamoDb, BackendError::ConditionFailed) => error_answer(
            service,
            400,
            "ConditionalCheckFailedException",
            "The conditional request failed",
            None,
        ),
        (Service::DynamoDb, BackendError::Throttled { message, .. }) => {
            error_answer(service, 400, "ThrottlingException", message, None)
        }
        (Service::Sqs, BackendError::Throttled { message, .. }) => {
            error_answer(service, 400, "RequestThrottled", message, None)
        }
        (Service::Sqs, BackendError::QueueDoesNotExist { url }) => error_answer(
            service,
            400,
            "QueueDoesNotExist",
            &format!("The specified queue does not exist: {url}"),
            Some("AWS.SimpleQueueService.NonExistentQueue"),
        ),
        (_, BackendError::Refused { reason, .. }) => validation(service, reason),
        (Service::DynamoDb, other) => error_answer(
            service,
            500,
            "InternalServerError",
            &other.to_string(),
            None,
        ),
        (Service::Sqs, other) => {
            error_answer(service, 500, "InternalError", &other.to_string(), None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checksums.

/// The lowercase hex MD5 of `bytes` (SQS's `MD5OfBody`).
pub fn md5_hex(bytes: &[u8]) -> String {
    let digest = Md5::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SQS's `MD5OfMessageAttributes`: per attribute in name order, the 4-byte big-endian length
/// and bytes of the name, of the data type, the transport type byte (1 for string and number
/// values, 2 for binary), and the length and bytes of the value. `None` without attributes.
pub fn md5_of_message_attributes(attributes: &BTreeMap<String, AttributeValue>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    fn field(buf: &mut Vec<u8>, b: &[u8]) {
        buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
        buf.extend_from_slice(b);
    }
    let mut buf = Vec::new();
    for (name, value) in attributes {
        field(&mut buf, name.as_bytes());
        field(&mut buf, value.data_type.as_bytes());
        let (transport, bytes) = match &value.value {
            AttributeData::Text(t) => (1, t.as_bytes()),
            AttributeData::Binary(b) => (2, b.as_slice()),
        };
        buf.push(transport);
        field(&mut buf, bytes);
    }
    Some(md5_hex(&buf))
}

/// CRC-32 (IEEE), as DynamoDB's `x-amz-crc32` header carries it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::body::SdkBody;
    use sqsbalancer_core::effect::{Notice, Read, Status, Write};
    use sqsbalancer_core::table::{Layout, apply_updates, encode_read, encode_write};
    use sqsbalancer_core::{InstanceId, Owner};
    use sqsbalancer_runtime::aws::AwsBackend;
    use sqsbalancer_runtime::{QueueList, Sqs, Store};
    use std::sync::Arc;

    type Answerer = dyn Fn(&Call) -> Answer + Send + Sync;

    /// An SDK HTTP client that hands every request to [`decode`], records the call, and
    /// answers what `answer` makes of it (a decoding error is answered as decoded).
    #[derive(Clone)]
    struct Loopback {
        calls: Arc<Mutex<Vec<Result<Call, Answer>>>>,
        answer: Arc<Answerer>,
    }

    impl std::fmt::Debug for Loopback {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Loopback")
        }
    }

    impl Loopback {
        fn new(answer: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> Loopback {
            Loopback {
                calls: Arc::default(),
                answer: Arc::new(answer),
            }
        }

        /// The last call decoded.
        fn last(&self) -> Call {
            match self.calls.lock().unwrap().last() {
                Some(Ok(c)) => c.clone(),
                other => panic!("no call decoded: {other:?}"),
            }
        }

        /// Clients of both services on this loopback, without retries, as `node-0`.
        fn backend(&self) -> AwsBackend {
            let creds = Credentials::new("node-0", "secret", None, None, "test");
            let dynamo = aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(creds.clone())
                .retry_config(RetryConfig::disabled())
                .http_client(self.clone())
                .build();
            let sqs = aws_sdk_sqs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(creds)
                .retry_config(RetryConfig::disabled())
                .http_client(self.clone())
                .build();
            AwsBackend::from_clients(
                aws_sdk_dynamodb::Client::from_conf(dynamo),
                aws_sdk_sqs::Client::from_conf(sqs),
                "coordination",
            )
        }
    }

    impl HttpConnector for Loopback {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let t = request
                .headers()
                .get("x-amz-target")
                .unwrap_or_default()
                .to_owned();
            let body = request.body().bytes().unwrap_or_default().to_vec();
            let (service, op) = target(&t).expect("a known target");
            let decoded = decode(service, op, &body, tokio::time::Instant::now());
            let answer = match &decoded {
                Ok(c) => (self.answer)(c),
                Err(a) => a.clone(),
            };
            self.calls.lock().unwrap().push(decoded);
            let mut r = http::Response::builder()
                .status(answer.status)
                .header("content-type", CONTENT_TYPE);
            for (k, v) in answer.headers {
                r = r.header(k, v);
            }
            let r = r.body(SdkBody::from(answer.body)).expect("a response");
            HttpConnectorFuture::ready(Ok(HttpResponse::try_from(r).expect("converts")))
        }
    }

    impl HttpClient for Loopback {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    fn owner(id: &str, incarnation: u64) -> Owner {
        Owner {
            id: InstanceId::new(id).unwrap(),
            incarnation,
        }
    }

    fn queue(n: u32) -> QueueId {
        QueueId::new(&format!(
            "https://sqs.us-east-1.amazonaws.com/123456789012/q-{n}"
        ))
        .unwrap()
    }

    /// Every variant of the core's writes, with each option both ways.
    /// Loads a heartbeat publishes.
    fn published_loads() -> sqsbalancer_core::loads::PublishedLoads {
        let q = QueueId::new("q-7").unwrap();
        sqsbalancer_core::loads::PublishedLoads::summarize([(&q, 420)])
    }

    fn writes() -> Vec<Write> {
        vec![
            Write::Register {
                id: InstanceId::new("node-0").unwrap(),
                capacity: 3,
                first: 1,
            },
            Write::Register {
                id: InstanceId::new("node-1").unwrap(),
                capacity: 1,
                first: 987_654_321,
            },
            Write::Heartbeat {
                owner: owner("node-0", 4),
                counter: 17,
                status: Status::Active,
                loads: None,
            },
            Write::Heartbeat {
                owner: owner("node-0", 4),
                counter: 18,
                status: Status::Draining,
                loads: Some(published_loads()),
            },
            Write::Notify {
                to: owner("node-1", 2),
                notice: Notice::Inbox,
            },
            Write::Notify {
                to: owner("node-0", 4),
                notice: Notice::News,
            },
            Write::Reap {
                owner: owner("node-1", 2),
                counter: 9,
            },
            Write::Lapse {
                owner: owner("node-1", 1),
            },
            Write::CreateQueue {
                queue: queue(1),
                revive_epoch: None,
            },
            Write::CreateQueue {
                queue: queue(1),
                revive_epoch: Some(7),
            },
            Write::Claim {
                queue: queue(2),
                expect_owner: None,
                expect_epoch: 1,
                new_owner: owner("node-0", 4),
            },
            Write::Claim {
                queue: queue(2),
                expect_owner: Some(owner("node-1", 2)),
                expect_epoch: 5,
                new_owner: owner("node-0", 4),
            },
            Write::HandOff {
                queue: queue(3),
                from: owner("node-0", 4),
                expect_epoch: 6,
                to: Some(owner("node-1", 3)),
            },
            Write::HandOff {
                queue: queue(3),
                from: owner("node-0", 4),
                expect_epoch: 7,
                to: None,
            },
            Write::Retire {
                queue: queue(4),
                expect_epoch: 2,
            },
            Write::Deregister {
                owner: owner("node-0", 4),
            },
        ]
    }

    /// Answers an UpdateItem with the item its updates make of nothing, anything else 500.
    fn apply_to_nothing(call: &Call) -> Answer {
        match call {
            Call::UpdateItem { write, .. } => {
                let item = apply_updates(&write.key, None, &write.updates).expect("applies");
                encode(call, Ok(Outcome::Item(item)))
            }
            other => encode(other, Err(BackendError::ConditionFailed)),
        }
    }

    #[tokio::test]
    async fn every_core_write_decodes_to_the_request_the_core_encoded() {
        let l = Loopback::new(apply_to_nothing);
        let aws = l.backend();
        for w in writes() {
            let tw = encode_write(&Layout::single("app"), &w, 1_700_000_000);
            let got = aws.update(tw.clone()).await.expect("applied");
            let Call::UpdateItem {
                table,
                write,
                return_values,
            } = l.last()
            else {
                panic!("not an UpdateItem");
            };
            assert_eq!(write, tw, "{w:?}");
            assert_eq!(table, "coordination");
            assert_eq!(return_values, ReturnValues::AllNew);
            let item = apply_updates(&tw.key, None, &tw.updates).unwrap();
            assert_eq!(got, item, "ALL_NEW comes back as written: {w:?}");
        }
    }

    #[tokio::test]
    async fn writes_beyond_the_core_s_round_trip_too() {
        let l = Loopback::new(apply_to_nothing);
        let aws = l.backend();
        let key = Key {
            pk: "app#x".into(),
            sk: "instance#a".into(),
        };
        let cases = vec![
            (
                vec![
                    Update::Remove(TTL),
                    Update::Increment(INCARNATION, 0),
                    Update::Add(INBOX, -3),
                    Update::Set(STATUS, Value::S("dead".into())),
                    Update::Set(RETIRED, Value::Bool(true)),
                    Update::Set("custom_attribute", Value::N("-1.5".into())),
                ],
                Some(Cond::Or(vec![
                    Cond::And(vec![Cond::Exists(PK), Cond::Eq(EPOCH, Value::num(3))]),
                    Cond::Ne(STATUS, Value::S("dead".into())),
                    Cond::And(vec![Cond::And(vec![Cond::NotExists(OWNER_ID)])]),
                ])),
            ),
            (vec![Update::Remove(OWNER_ID)], None),
            (
                vec![Update::Set(HEARTBEAT, Value::num(1))],
                Some(Cond::Ne(HEARTBEAT, Value::num(1))),
            ),
        ];
        for (updates, cond) in cases {
            let tw = TableWrite {
                key: key.clone(),
                updates,
                cond,
            };
            aws.update(tw.clone()).await.expect("applied");
            match l.last() {
                Call::UpdateItem { write, .. } => assert_eq!(write, tw),
                other => panic!("{other:?}"),
            }
        }
        // A group of one part reads as And: the text is the same for Or.
        let one = TableWrite {
            key,
            updates: vec![Update::Remove(TTL)],
            cond: Some(Cond::Or(vec![Cond::Exists(PK)])),
        };
        aws.update(one.clone()).await.expect("applied");
        match l.last() {
            Call::UpdateItem { write, .. } => {
                assert_eq!(write.cond, Some(Cond::And(vec![Cond::Exists(PK)])));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn queries_and_their_pages_round_trip() {
        let item = |sk: &str| {
            let mut i = Item::new();
            i.insert(PK.into(), Value::S("app#app".into()));
            i.insert(SK.into(), Value::S(sk.into()));
            i.insert(EPOCH.into(), Value::num(4));
            i.insert(RETIRED.into(), Value::Bool(false));
            i
        };
        let page = Page {
            items: vec![item("queue#a"), item("queue#b")],
            last_key: Some(Key {
                pk: "app#app".into(),
                sk: "queue#b".into(),
            }),
        };
        let answer = page.clone();
        let l = Loopback::new(move |call| encode(call, Ok(Outcome::Page(answer.clone()))));
        let aws = l.backend();
        let layouts = [Layout::single("app"), Layout::new("app", 3)];
        let queries = layouts
            .iter()
            .flat_map(|l| [Read::Members, Read::Table].map(|r| encode_read(l, &r).concat()))
            .flatten();
        for q in queries {
            for start in [
                None,
                Some(Key {
                    pk: q.pk.clone(),
                    sk: "instance#z".into(),
                }),
            ] {
                let got = aws.query(q.clone(), start.clone()).await.expect("a page");
                assert_eq!(got, page);
                assert_eq!(
                    l.last(),
                    Call::Query {
                        table: "coordination".into(),
                        query: q.clone(),
                        start,
                    }
                );
            }
        }
        let last = encode(
            &l.last(),
            Ok(Outcome::Page(Page {
                items: Vec::new(),
                last_key: None,
            })),
        );
        assert_eq!(last.body, r#"{"Count":0,"Items":[],"ScannedCount":0}"#);
        assert!(last.headers.iter().any(|(k, _)| *k == "x-amz-crc32"));
    }

    fn message(n: u32, group: Option<&str>, attributes: &[(&str, &str)]) -> Message {
        let mut m = Message::new(
            queue(1),
            format!("m-{n:08}"),
            format!("r-{n}"),
            format!("body {n} ✓"),
        );
        m.receive_count = n;
        m.attributes = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttributeValue::string(*v)))
            .collect();
        m.system = [("ApproximateReceiveCount".to_owned(), n.to_string())]
            .into_iter()
            .chain(group.map(|g| ("MessageGroupId".to_owned(), g.to_owned())))
            .collect();
        m.group = group.map(str::to_owned);
        m
    }

    #[tokio::test]
    async fn receives_and_their_messages_round_trip() {
        let mut typed = message(1, Some("g-1"), &[("trace", "t-1"), ("a", "")]);
        let blob = AttributeValue {
            data_type: "Binary.gzip".into(),
            value: AttributeData::Binary(vec![0x1f, 0x8b, 0, 255]),
        };
        typed.attributes.insert("blob".into(), blob);
        let count = AttributeValue {
            data_type: "Number".into(),
            value: AttributeData::Text("12.5".into()),
        };
        typed.attributes.insert("count".into(), count);
        let messages = vec![typed, message(2, None, &[])];
        let answer = messages.clone();
        let l = Loopback::new(move |call| encode(call, Ok(Outcome::Messages(answer.clone()))));
        let aws = l.backend();
        let now = tokio::time::Instant::now();
        let request = Receive {
            queue: queue(1),
            max: 7,
            visibility_secs: 45,
            wait: Duration::from_secs(3),
            attribute_names: vec!["trace".into(), "a".into(), "blob".into(), "count".into()],
            send_by: now + Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(10),
        };
        let got = aws.receive(request.clone()).await.expect("messages");
        assert_eq!(got, messages);
        let Call::ReceiveMessage {
            receive,
            system_attributes,
        } = l.last()
        else {
            panic!("not a receive");
        };
        assert_eq!(
            Receive {
                send_by: request.send_by,
                attempt_timeout: request.attempt_timeout,
                ..receive.clone()
            },
            request
        );
        assert!(receive.send_by >= now + FAR);
        assert_eq!(system_attributes, vec!["All"]);
        // The answer carries both checksums; an empty receive is an empty object.
        let a = encode(&l.last(), Ok(Outcome::Messages(messages.clone())));
        let v: Json = serde_json::from_str(&a.body).unwrap();
        let first = &v["Messages"][0];
        assert_eq!(first["MD5OfBody"], md5_hex(messages[0].body.as_bytes()));
        assert_eq!(
            first["MD5OfMessageAttributes"],
            md5_of_message_attributes(&messages[0].attributes).unwrap()
        );
        assert_eq!(first["MessageAttributes"]["trace"]["DataType"], "String");
        assert_eq!(first["Attributes"]["ApproximateReceiveCount"], "1");
        assert!(v["Messages"][1].get("MessageAttributes").is_none());
        let empty = encode(&l.last(), Ok(Outcome::Messages(Vec::new())));
        assert_eq!(empty.body, "{}");
    }

    #[tokio::test]
    async fn batches_answer_each_entry() {
        let l = Loopback::new(|call| {
            let results = vec![
                Ok(()),
                Err("ReceiptHandleIsInvalid".to_owned()),
                Err("MessageNotInflight: gone".to_owned()),
            ];
            encode(call, Ok(Outcome::Entries(results)))
        });
        let aws = l.backend();
        let receipts = vec!["r-1".to_owned(), "r-2".to_owned(), "r-3".to_owned()];
        let got = aws
            .delete_batch(queue(1), receipts.clone())
            .await
            .expect("answered");
        assert_eq!(
            got,
            vec![
                Ok(()),
                Err("ReceiptHandleIsInvalid: The input receipt handle is invalid.".to_owned()),
                Err("MessageNotInflight: gone".to_owned()),
            ]
        );
        assert_eq!(
            l.last(),
            Call::DeleteMessageBatch {
                queue: queue(1),
                entries: (0..3)
                    .map(|i| (i.to_string(), receipts[i].clone()))
                    .collect(),
            }
        );
        let entries: Vec<(String, u32)> = vec![("r-1".into(), 0), ("r-2".into(), 43_200)];
        let got = aws
            .change_visibility_batch(queue(1), entries)
            .await
            .expect("answered");
        assert_eq!(got.len(), 2, "one result per entry asked");
        assert_eq!(
            l.last(),
            Call::ChangeMessageVisibilityBatch {
                queue: queue(1),
                entries: vec![
                    ("0".into(), "r-1".into(), 0),
                    ("1".into(), "r-2".into(), 43_200)
                ],
            }
        );
    }

    #[tokio::test]
    async fn listings_round_trip_with_their_token() {
        let page = QueuePage {
            urls: (0..3).map(|i| queue(i).as_str().to_owned()).collect(),
            next_token: Some("after:x".into()),
        };
        let answer = page.clone();
        let l = Loopback::new(move |call| encode(call, Ok(Outcome::Queues(answer.clone()))));
        let aws = l.backend();
        let got = aws
            .list("q-".into(), Some("after:w".into()))
            .await
            .expect("a page");
        assert_eq!(got, page);
        assert_eq!(
            l.last(),
            Call::ListQueues {
                prefix: "q-".into(),
                max_results: Some(1000),
                next_token: Some("after:w".into()),
            }
        );
        // Without MaxResults SQS gives no token.
        let bare = Call::ListQueues {
            prefix: String::new(),
            max_results: None,
            next_token: None,
        };
        let a = encode(&bare, Ok(Outcome::Queues(page)));
        assert!(!a.body.contains("NextToken"), "{}", a.body);
    }

    #[tokio::test]
    async fn errors_reach_the_adapter_as_their_kinds() {
        type Check = fn(&BackendError) -> bool;
        let cases: Vec<(BackendError, Check)> = vec![
            (BackendError::ConditionFailed, |e| {
                *e == BackendError::ConditionFailed
            }),
            (
                BackendError::Throttled {
                    service: "dynamodb",
                    message: "Rate exceeded".into(),
                },
                |e| matches!(e, BackendError::Throttled { .. }),
            ),
            (
                BackendError::Refused {
                    service: "dynamodb",
                    reason: "bad".into(),
                },
                |e| matches!(e, BackendError::Refused { .. }),
            ),
            (
                BackendError::Unknown {
                    service: "dynamodb",
                    reason: "lost".into(),
                },
                |e| matches!(e, BackendError::Unknown { .. }),
            ),
        ];
        for (error, check) in cases {
            let answer = error.clone();
            let l = Loopback::new(move |call| encode(call, Err(answer.clone())));
            let tw = encode_write(&Layout::single("app"), &writes()[2], 1);
            let e = l.backend().update(tw).await.expect_err("an error");
            assert!(check(&e), "{error:?} came back as {e:?}");
        }
        let gone = BackendError::QueueDoesNotExist {
            url: queue(9).as_str().to_owned(),
        };
        let l = Loopback::new(move |call| encode(call, Err(gone.clone())));
        let aws = l.backend();
        let e = aws
            .delete_batch(queue(9), vec!["r".into()])
            .await
            .expect_err("gone");
        assert_eq!(
            e,
            BackendError::QueueDoesNotExist {
                url: queue(9).as_str().to_owned()
            }
        );
        let throttled = BackendError::Throttled {
            service: "sqs",
            message: "slow".into(),
        };
        let l = Loopback::new(move |call| encode(call, Err(throttled.clone())));
        let e = l
            .backend()
            .list(String::new(), None)
            .await
            .expect_err("throttled");
        assert!(matches!(e, BackendError::Throttled { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn injected_failures_reach_the_adapter_as_their_kinds() {
        use Failure::*;
        let unknown = |e: &BackendError| matches!(e, BackendError::Unknown { .. });
        let throttled = |e: &BackendError| matches!(e, BackendError::Throttled { .. });
        for (f, dynamo_ok, sqs_ok) in [
            (
                Internal,
                unknown as fn(&BackendError) -> bool,
                unknown as fn(&BackendError) -> bool,
            ),
            (Unavailable, unknown, unknown),
            (OverCapacity, throttled, throttled),
            // SQS's ThrottlingException, which its model does not name: a throttle by its code.
            (Throttling, throttled, throttled),
        ] {
            let l = Loopback::new(move |call| failure(call.service(), f));
            let aws = l.backend();
            let tw = encode_write(&Layout::single("app"), &writes()[2], 1);
            let e = aws.update(tw).await.expect_err("failed");
            assert!(dynamo_ok(&e), "DynamoDB {f:?}: {e:?}");
            let e = aws.list(String::new(), None).await.expect_err("failed");
            assert!(sqs_ok(&e), "SQS {f:?}: {e:?}");
        }
    }

    fn dynamo(op: &str, body: &str) -> Result<Call, Answer> {
        decode(
            Service::DynamoDb,
            op,
            body.as_bytes(),
            tokio::time::Instant::now(),
        )
    }

    fn sqs(op: &str, body: &str) -> Result<Call, Answer> {
        decode(
            Service::Sqs,
            op,
            body.as_bytes(),
            tokio::time::Instant::now(),
        )
    }

    const KEY: &str = r#""Key":{"pk":{"S":"app#a"},"sk":{"S":"instance#a"}}"#;

    /// UpdateItem bodies the simulated DynamoDB refuses, each with words its refusal must
    /// contain.
    fn malformed_updates() -> Vec<(String, &'static str)> {
        let update = |rest: &str| format!(r#"{{"TableName":"t",{KEY},{rest}}}"#);
        let names = r##""ExpressionAttributeNames":{"#n0":"status","#n1":"epoch"}"##;
        vec![
            (update(&format!(r##"{names},"UpdateExpression":"SET #n0 = :v0""##)), "attribute value: :v0"),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status"},"ExpressionAttributeValues":{":v0":{"S":"x"},":v1":{"S":"y"}},"UpdateExpression":"SET #n0 = :v0""##),
                "unused in expressions: keys: {:v1}",
            ),
            (
                update(&format!(r##"{names},"ExpressionAttributeValues":{{":v0":{{"S":"x"}}}},"UpdateExpression":"SET #n0 = :v0""##)),
                "ExpressionAttributeNames unused in expressions: keys: {#n1}",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"UpdateExpression":"DELETE #n0 :v0""##),
                "understands SET, ADD and REMOVE, not DELETE",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"UpdateExpression":"SET #n0 = :v0","ConditionExpression":"#n0 <> :v0""##),
                "understands <> only as (attribute_not_exists(#a) OR #a <> :v)",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"UpdateExpression":"SET #n0 = :v0","ConditionExpression":"NOT attribute_exists(#n0)""##),
                "expected attribute_exists(#a)",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"UpdateExpression":"SET #n0 = :v0","ConditionExpression":"()""##),
                "a condition inside the parentheses",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status"},"ExpressionAttributeValues":{":v0":{"SS":["x"]}},"UpdateExpression":"SET #n0 = :v0""##),
                "type SS is not supported",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"UpdateExpression":"SET #n0 = :v0, #n0 = :v0""##),
                "Two document paths overlap",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"status","#n1":"epoch"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"UpdateExpression":"SET #n0 = :v0 SET #n1 = :v0""##),
                "can only be used once",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"epoch"},"ExpressionAttributeValues":{":v0":{"N":"1"},":v1":{"N":"2"}},"UpdateExpression":"SET #n0 = if_not_exists(#n0, :v0) + :v1""##),
                "if_not_exists(#a, :v) + 1 only",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"epoch"},"ExpressionAttributeValues":{":v0":{"S":"1"}},"UpdateExpression":"ADD #n0 :v0""##),
                "operator: ADD, operand type: S",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"epoch"},"ExpressionAttributeValues":{":v0":{"N":"1"}},"UpdateExpression":"SET #n0 = :v0 ; DROP""##),
                "unexpected character ';' at position 14",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"epoch"},"ExpressionAttributeValues":{":v0":{"N":"1x"}},"UpdateExpression":"SET #n0 = :v0""##),
                "not a decimal number",
            ),
            (
                update(r##""ExpressionAttributeNames":{"#n0":"epoch"},"ExpressionAttributeValues":{":v0":{"N":"1"}},"UpdateExpression":"SET #n0 = :v0","ReturnValues":"ALL_OLD""##),
                "ReturnValues ALL_OLD is not supported",
            ),
            (
                update(r#""ExpressionAttributeNames":{},"UpdateExpression":"REMOVE #n0""#),
                "ExpressionAttributeNames must not be empty",
            ),
            (
                r##"{"TableName":"t","Key":{"pk":{"S":"a"}},"UpdateExpression":"REMOVE #n0","ExpressionAttributeNames":{"#n0":"ttl"}}"##.to_owned(),
                "does not match the schema",
            ),
            (
                format!(r##"{{{KEY},"UpdateExpression":"REMOVE #n0","ExpressionAttributeNames":{{"#n0":"ttl"}}}}"##),
                "Value null at 'TableName'",
            ),
        ]
    }

    /// Query bodies the simulated DynamoDB refuses, each with words its refusal must contain.
    fn malformed_queries() -> Vec<(String, &'static str)> {
        let query = |rest: &str| format!(r#"{{"TableName":"t",{rest}}}"#);
        vec![
            (
                query(
                    r##""KeyConditionExpression":"#n0 = :v0","ExpressionAttributeNames":{"#n0":"sk"},"ExpressionAttributeValues":{":v0":{"S":"x"}}"##,
                ),
                "missed key schema element: pk",
            ),
            (
                query(
                    r##""KeyConditionExpression":"#n0 = :v0 AND #n1 = :v1","ExpressionAttributeNames":{"#n0":"pk","#n1":"sk"},"ExpressionAttributeValues":{":v0":{"S":"x"},":v1":{"S":"y"}}"##,
                ),
                "expected begins_with",
            ),
            (
                query(
                    r##""KeyConditionExpression":"#n0 = :v0","ExpressionAttributeNames":{"#n0":"pk"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"Limit":5"##,
                ),
                "Limit is not supported",
            ),
            (
                query(
                    r##""KeyConditionExpression":"#n0 = :v0","ExpressionAttributeNames":{"#n0":"pk"},"ExpressionAttributeValues":{":v0":{"N":"1"}}"##,
                ),
                "Condition parameter type does not match schema type",
            ),
            (
                query(
                    r##""KeyConditionExpression":"#n0 = :v0","ExpressionAttributeNames":{"#n0":"pk"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"ExclusiveStartKey":{"pk":{"S":"y"},"sk":{"S":"z"}}"##,
                ),
                "not in the partition queried",
            ),
            (
                query(
                    r##""KeyConditionExpression":"#n0 = :v0","ExpressionAttributeNames":{"#n0":"pk"},"ExpressionAttributeValues":{":v0":{"S":"x"}},"ScanIndexForward":"no""##,
                ),
                "ScanIndexForward must be a boolean",
            ),
        ]
    }

    /// Asserts that the refusal `a` of `body` is a ValidationException naming `expected`.
    fn assert_validation_error(a: &Answer, body: &str, expected: &str) {
        assert_eq!(
            a.error_code().as_deref(),
            Some("ValidationException"),
            "{body}"
        );
        assert!(
            a.body.contains(expected),
            "{body}\n  answered {}\n  expected {expected}",
            a.body
        );
    }

    #[test]
    fn batch_gets_are_strongly_consistent_reads_of_one_table_and_answer_unprocessed_keys() {
        let key = |n: usize| format!(r#"{{"pk":{{"S":"app"}},"sk":{{"S":"queue#q{n}"}}}}"#);
        let body = |keys: &[usize], consistent: &str| {
            let keys: Vec<String> = keys.iter().map(|n| key(*n)).collect();
            format!(
                r#"{{"RequestItems":{{"t":{{"Keys":[{}]{consistent}}}}}}}"#,
                keys.join(",")
            )
        };
        let strong = r#","ConsistentRead":true"#;
        let call = dynamo("BatchGetItem", &body(&[1, 2], strong)).expect("a valid request");
        let Call::BatchGetItem { table, keys } = &call else {
            panic!("{call:?}")
        };
        assert_eq!((table.as_str(), keys.len()), ("t", 2));
        for (bad, expected) in [
            (body(&[1, 2], ""), "ConsistentRead must be true"),
            (body(&[], strong), "Too many items requested"),
            (body(&(0..101).collect::<Vec<_>>(), strong), "101 keys"),
            (body(&[1, 1], strong), "duplicates"),
            (r#"{"RequestItems":{}}"#.to_owned(), "one table a request"),
        ] {
            let a = dynamo("BatchGetItem", &bad).expect_err(&bad);
            assert_validation_error(&a, &bad, expected);
        }
        let got = Batch {
            items: Vec::new(),
            unprocessed: keys[1..].to_vec(),
        };
        let a = encode(&call, Ok(Outcome::Batch(got)));
        assert_eq!(a.status, 200);
        assert_eq!(
            a.body,
            r#"{"Responses":{"t":[]},"UnprocessedKeys":{"t":{"Keys":[{"pk":{"S":"app"},"sk":{"S":"queue#q2"}}],"ConsistentRead":true}}}"#
        );
    }

    #[test]
    fn malformed_dynamodb_requests_are_refused_naming_the_problem() {
        for (body, expected) in malformed_updates() {
            let a = dynamo("UpdateItem", &body).expect_err(&body);
            assert_eq!(a.status, 400, "{body}");
            assert_validation_error(&a, &body, expected);
        }
        for (body, expected) in malformed_queries() {
            let a = dynamo("Query", &body).expect_err(&body);
            assert_validation_error(&a, &body, expected);
        }
        let a = dynamo("UpdateItem", "not json").expect_err("not JSON");
        assert_eq!(a.error_code().as_deref(), Some("SerializationException"));
        let a = dynamo("DeleteTable", "{}").expect_err("unknown");
        assert_eq!(a.error_code().as_deref(), Some("UnknownOperationException"));
        assert!(
            a.body.contains("DynamoDB_20120810.DeleteTable"),
            "{}",
            a.body
        );
    }

    /// An SQS request, the error code its refusal must carry and the `x-amzn-query-error`
    /// header naming it.
    type SqsCase = (&'static str, String, &'static str, &'static str);

    /// Batch requests SQS refuses: empty, too many entries, ids repeated or invalid, a
    /// visibility missing or out of range.
    fn malformed_batches() -> Vec<SqsCase> {
        let url = r#""QueueUrl":"https://sqs.us-east-1.amazonaws.com/1/q""#;
        let entry = |id: &str| format!(r#"{{"Id":"{id}","ReceiptHandle":"r"}}"#);
        let many: Vec<String> = (0..11).map(|i| entry(&i.to_string())).collect();
        vec![
            (
                "DeleteMessageBatch",
                format!(r#"{{{url},"Entries":[]}}"#),
                "EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest;Sender",
            ),
            (
                "DeleteMessageBatch",
                format!(r#"{{{url},"Entries":[{}]}}"#, many.join(",")),
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender",
            ),
            (
                "DeleteMessageBatch",
                format!(r#"{{{url},"Entries":[{},{}]}}"#, entry("a"), entry("a")),
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct;Sender",
            ),
            (
                "DeleteMessageBatch",
                format!(r#"{{{url},"Entries":[{}]}}"#, entry("a b")),
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId;Sender",
            ),
            (
                "ChangeMessageVisibilityBatch",
                format!(r#"{{{url},"Entries":[{}]}}"#, entry("a")),
                "MissingParameter",
                "MissingParameter;Sender",
            ),
            (
                "ChangeMessageVisibilityBatch",
                format!(
                    r#"{{{url},"Entries":[{{"Id":"a","ReceiptHandle":"r","VisibilityTimeout":-1}}]}}"#
                ),
                "InvalidParameterValue",
                "InvalidParameterValue;Sender",
            ),
        ]
    }

    /// Receives, listings and operations SQS refuses: no queue or an invalid one, a token or
    /// page size the listing does not take, an operation the simulation does not serve.
    fn malformed_calls() -> Vec<SqsCase> {
        vec![
            (
                "ReceiveMessage",
                "{}".to_owned(),
                "MissingParameter",
                "MissingParameter;Sender",
            ),
            (
                "ReceiveMessage",
                r#"{"QueueUrl":"a b"}"#.to_owned(),
                "InvalidAddress",
                "InvalidAddress;Sender",
            ),
            (
                "ListQueues",
                r#"{"NextToken":"t"}"#.to_owned(),
                "InvalidParameterValue",
                "InvalidParameterValue;Sender",
            ),
            (
                "ListQueues",
                r#"{"MaxResults":10}"#.to_owned(),
                "InvalidParameterValue",
                "InvalidParameterValue;Sender",
            ),
            (
                "ListQueues",
                r#"{"MaxResults":1001}"#.to_owned(),
                "InvalidParameterValue",
                "InvalidParameterValue;Sender",
            ),
            (
                "SendMessage",
                "{}".to_owned(),
                "UnknownOperationException",
                "UnknownOperationException;Sender",
            ),
        ]
    }

    #[test]
    fn malformed_sqs_requests_are_refused_naming_the_problem() {
        for (op, body, code, header) in malformed_batches().into_iter().chain(malformed_calls()) {
            let a = sqs(op, &body).expect_err(&body);
            assert_eq!(a.status, 400, "{op} {body}");
            assert_eq!(
                a.error_code().as_deref(),
                Some(code),
                "{op} {body}: {}",
                a.body
            );
            assert!(
                a.headers
                    .contains(&("x-amzn-query-error", header.to_owned())),
                "{op} {body}: {:?}",
                a.headers
            );
        }
        assert_eq!(
            sqs("ListQueues", "{}"),
            Ok(Call::ListQueues {
                prefix: String::new(),
                max_results: None,
                next_token: None
            })
        );
    }

    #[test]
    fn headers_checksums_and_entry_failures() {
        assert_eq!(
            target("DynamoDB_20120810.Query"),
            Some((Service::DynamoDb, "Query"))
        );
        assert_eq!(
            target("AmazonSQS.ListQueues"),
            Some((Service::Sqs, "ListQueues"))
        );
        assert_eq!(target("AmazonSNS.Publish"), None);
        let auth = "AWS4-HMAC-SHA256 Credential=node-7/20260101/us-east-1/sqs/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(access_key(auth), Some("node-7"));
        assert_eq!(access_key("Bearer x"), None);
        assert_eq!(access_key("Credential=/x"), None);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(md5_of_message_attributes(&BTreeMap::new()), None);
        assert_eq!(
            entry_failure("ReceiptHandleIsInvalid"),
            (
                "ReceiptHandleIsInvalid".into(),
                "The input receipt handle is invalid.".into()
            )
        );
        assert_eq!(
            entry_failure("MessageNotInflight: gone"),
            ("MessageNotInflight".into(), "gone".into())
        );
        assert_eq!(
            entry_failure("the disk is on fire"),
            ("InternalError".into(), "the disk is on fire".into())
        );
        for (s, f) in [
            (Service::DynamoDb, Failure::Internal),
            (Service::Sqs, Failure::Unavailable),
        ] {
            assert!(failure(s, f).status >= 500);
        }
        assert_eq!(failure(Service::Sqs, Failure::OverCapacity).status, 400);
    }
}

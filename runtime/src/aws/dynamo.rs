//! The coordination table on DynamoDB: conditional updates, strongly consistent queries, and
//! creating the table when it is missing.

#![allow(
    clippy::disallowed_types,
    reason = "the SDK's maps are HashMaps; they are converted to BTreeMaps at once, so no order leaks"
)]

use super::backend::{AwsBackend, Billing};
use super::expr;
use super::sdk_error::sdk_error;
use crate::backend::{Batch, Page, Store};
use crate::error::{BackendError, RuntimeError};
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata};
use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ProvisionedThroughput, ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use sqsbalancer_core::table::{Item, Key, PK, SK, TTL, TableQuery, TableWrite, Value};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

fn to_aws(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.clone()),
        Value::Bool(b) => AttributeValue::Bool(*b),
    }
}

/// An item as the core reads it. Attributes of other types than string, number and boolean
/// are left out: the decoder then reports the item as malformed and it is skipped.
fn from_aws(item: &HashMap<String, AttributeValue>) -> Item {
    item.iter()
        .filter_map(|(k, v)| {
            let v = match v {
                AttributeValue::S(s) => Value::S(s.clone()),
                AttributeValue::N(n) => Value::N(n.clone()),
                AttributeValue::Bool(b) => Value::Bool(*b),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect()
}

fn key_map(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn placeholders(e: &expr::Expr) -> (HashMap<String, String>, HashMap<String, AttributeValue>) {
    let names = e
        .names
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let values = e
        .values
        .iter()
        .map(|(k, v)| (k.clone(), to_aws(v)))
        .collect();
    (names, values)
}

impl Store for AwsBackend {
    fn table_name(&self) -> Option<&str> {
        Some(&self.table)
    }

    fn prepare(&self) -> impl Future<Output = Result<(), BackendError>> + Send {
        let aws = self.clone();
        async move { prepare_table(&aws).await }
    }

    fn update(&self, write: TableWrite) -> impl Future<Output = Result<Item, BackendError>> + Send {
        let client = self.dynamo.clone();
        let table = self.table.clone();
        async move {
            let e = expr::update(&write.updates, write.cond.as_ref());
            let (names, values) = placeholders(&e);
            let out = client
                .update_item()
                .table_name(table)
                .set_key(Some(key_map(&write.key)))
                .update_expression(e.text)
                .set_condition_expression(e.condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values((!values.is_empty()).then_some(values))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(o) => Ok(o.attributes().map(from_aws).unwrap_or_default()),
                Err(err) => {
                    if err
                        .as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception())
                    {
                        return Err(BackendError::ConditionFailed);
                    }
                    Err(sdk_error("dynamodb", &err))
                }
            }
        }
    }

    fn query(
        &self,
        query: TableQuery,
        start: Option<Key>,
    ) -> impl Future<Output = Result<Page, BackendError>> + Send {
        let client = self.dynamo.clone();
        let table = self.table.clone();
        async move {
            let e = expr::query(&query);
            let (names, values) = placeholders(&e);
            let out = client
                .query()
                .table_name(table)
                .key_condition_expression(e.text)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .consistent_read(true)
                .scan_index_forward(!query.backward)
                .set_exclusive_start_key(start.as_ref().map(key_map))
                .send()
                .await
                .map_err(|err| sdk_error("dynamodb", &err))?;
            Ok(Page {
                items: out.items().iter().map(from_aws).collect(),
                last_key: out.last_evaluated_key().and_then(key_from_aws),
            })
        }
    }

    fn batch_get(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Batch, BackendError>> + Send {
        let client = self.dynamo.clone();
        let table = self.table.clone();
        async move {
            let asked = KeysAndAttributes::builder()
                .set_keys(Some(keys.iter().map(key_map).collect()))
                .consistent_read(true)
                .build()
                .map_err(|e| BackendError::Refused {
                    service: "dynamodb",
                    reason: format!("BatchGetItem not built: {e}"),
                })?;
            let out = client
                .batch_get_item()
                .request_items(table.clone(), asked)
                .send()
                .await
                .map_err(|err| sdk_error("dynamodb", &err))?;
            let items = out.responses().and_then(|r| r.get(&table));
            let unprocessed = out.unprocessed_keys().and_then(|u| u.get(&table));
            Ok(Batch {
                items: items.into_iter().flatten().map(from_aws).collect(),
                unprocessed: unprocessed
                    .map(|u| u.keys().iter().filter_map(key_from_aws).collect())
                    .unwrap_or_default(),
            })
        }
    }
}

/// The key of `item`, when it has string `pk` and `sk` attributes.
fn key_from_aws(item: &HashMap<String, AttributeValue>) -> Option<Key> {
    let item = from_aws(item);
    match (item.get(PK), item.get(SK)) {
        (Some(Value::S(pk)), Some(Value::S(sk))) => Some(Key {
            pk: pk.clone(),
            sk: sk.clone(),
        }),
        _ => None,
    }
}

/// Creates the coordination table if it is missing (pk/sk strings, TTL on `ttl`) and waits
/// until it is active; an existing table must have exactly that key schema. The balancer does
/// this itself before it starts (see [`AwsBackend::without_table_creation`]).
pub async fn ensure_table(aws: &AwsBackend, billing: Billing) -> Result<(), RuntimeError> {
    ready_table(aws, Some(billing)).await
}

/// Checks the table's key schema, creating the table billed as `create` when it is missing
/// (or failing, when `create` is `None`), then waits until it is active with TTL on.
async fn ready_table(aws: &AwsBackend, create: Option<Billing>) -> Result<(), RuntimeError> {
    let table = || aws.table.clone();
    let unavailable = |source| RuntimeError::TableUnavailable {
        table: table(),
        source,
    };
    let unusable = |reason| RuntimeError::Table {
        table: table(),
        reason,
    };
    let described = aws
        .dynamo
        .describe_table()
        .table_name(&aws.table)
        .send()
        .await;
    match described {
        Ok(d) => check_key_schema(&d).map_err(unusable)?,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let Some(billing) = create else {
                return Err(unusable("does not exist, and table creation is off".into()));
            };
            create_table(aws, billing).await.map_err(unavailable)?;
        }
        Err(e) => return Err(unavailable(management_error(&e))),
    }
    enable_ttl_once_active(aws).await.map_err(unavailable)
}

/// What [`Store::prepare`] does on AWS: the table ready, as a backend error when it is not.
async fn prepare_table(aws: &AwsBackend) -> Result<(), BackendError> {
    match ready_table(aws, aws.create_table).await {
        Ok(()) => Ok(()),
        Err(RuntimeError::TableUnavailable { source, .. }) => Err(source),
        Err(e) => Err(BackendError::Refused {
            service: "dynamodb",
            reason: e.to_string(),
        }),
    }
}

/// A table-management call's error as a backend error (throttles told apart by their code).
fn management_error<E>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> BackendError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    sdk_error("dynamodb", e)
}

/// A request that could not be built: a bug or a bad argument, never worth retrying.
fn unbuildable(e: BuildError) -> BackendError {
    BackendError::Refused {
        service: "dynamodb",
        reason: e.to_string(),
    }
}

/// Why an existing table cannot serve as the coordination table: its key schema is not pk
/// (HASH) and sk (RANGE).
fn check_key_schema(d: &DescribeTableOutput) -> Result<(), String> {
    let schema: Vec<(String, String)> = d
        .table()
        .map(|t| {
            t.key_schema()
                .iter()
                .map(|k| {
                    (
                        k.attribute_name().to_owned(),
                        k.key_type().as_str().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let want = [
        (PK.to_owned(), "HASH".to_owned()),
        (SK.to_owned(), "RANGE".to_owned()),
    ];
    if schema != want {
        return Err(format!(
            "exists with key schema {schema:?}; sqsbalancer needs pk (HASH) and sk (RANGE), both strings"
        ));
    }
    Ok(())
}

/// The attribute definitions and key schema of the coordination table: pk (HASH) and sk
/// (RANGE), both strings.
fn key_definitions() -> Result<(Vec<AttributeDefinition>, Vec<KeySchemaElement>), BuildError> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    Ok((
        vec![attr(PK)?, attr(SK)?],
        vec![key(PK, KeyType::Hash)?, key(SK, KeyType::Range)?],
    ))
}

/// Creates the coordination table billed as `billing`; one that another instance created
/// first does as well.
async fn create_table(aws: &AwsBackend, billing: Billing) -> Result<(), BackendError> {
    let (attrs, keys) = key_definitions().map_err(unbuildable)?;
    let mut create = aws
        .dynamo
        .create_table()
        .table_name(&aws.table)
        .set_attribute_definitions(Some(attrs))
        .set_key_schema(Some(keys));
    create = match billing {
        Billing::OnDemand => create.billing_mode(BillingMode::PayPerRequest),
        Billing::Provisioned { read, write } => {
            let throughput = ProvisionedThroughput::builder()
                .read_capacity_units(read)
                .write_capacity_units(write)
                .build()
                .map_err(unbuildable)?;
            create
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(throughput)
        }
    };
    match create.send().await {
        Ok(_) => Ok(()),
        // Another instance created it first.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(management_error(&e)),
    }
}

/// Waits until the table is active (for up to 60 s), then makes sure TTL is on, so expired
/// records go.
async fn enable_ttl_once_active(aws: &AwsBackend) -> Result<(), BackendError> {
    for _ in 0..300 {
        let d = aws
            .dynamo
            .describe_table()
            .table_name(&aws.table)
            .send()
            .await
            .map_err(|e| management_error(&e))?;
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(unbuildable)?;
            // Already enabled is an error on AWS; either way TTL is on afterwards.
            let _ = aws
                .dynamo
                .update_time_to_live()
                .table_name(&aws.table)
                .time_to_live_specification(spec)
                .send()
                .await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BackendError::Unknown {
        service: "dynamodb",
        reason: "the table did not become active within 60 s".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::canned::{backend, error};
    use sqsbalancer_core::table::{Key, Update, Value};

    fn write() -> TableWrite {
        TableWrite {
            key: Key {
                pk: "app".into(),
                sk: "instance#a".into(),
            },
            updates: vec![Update::Set("hb", Value::num(1))],
            cond: None,
        }
    }

    #[tokio::test]
    async fn a_failed_condition_a_throttle_and_a_lost_connection_map_to_their_kinds() {
        let events = vec![
            error(
                400,
                "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                "no",
            ),
            error(
                400,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "slow down",
            ),
        ];
        let aws = backend(Vec::new(), events);
        assert_eq!(
            aws.update(write()).await,
            Err(BackendError::ConditionFailed)
        );
        let e = aws.update(write()).await.expect_err("throttled");
        assert!(
            matches!(
                e,
                BackendError::Throttled {
                    service: "dynamodb",
                    ..
                }
            ),
            "{e:?}"
        );
        // No third answer: the connection fails, and the write may or may not have applied.
        let e = aws.update(write()).await.expect_err("no connection");
        assert!(
            matches!(
                e,
                BackendError::Unknown {
                    service: "dynamodb",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

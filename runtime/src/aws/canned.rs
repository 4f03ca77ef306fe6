//! Canned HTTP answers for the adapters' tests: clients whose every request gets the next
//! prepared response, with retries off so one answer is one call.

use super::backend::AwsBackend;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_sqs::config::Credentials;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;

/// A response with `status`, extra `headers` and a JSON `body` (both services speak JSON 1.0).
fn response(status: u16, headers: &[(&str, &str)], body: &str) -> ReplayEvent {
    let request = http::Request::builder()
        .uri("https://aws.example/")
        .body(SdkBody::empty())
        .expect("a request");
    let mut response = http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0");
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    let response = response
        .body(SdkBody::from(body.to_owned()))
        .expect("a response");
    ReplayEvent::new(request, response)
}

/// A 200 with `body`.
pub(super) fn ok(body: &str) -> ReplayEvent {
    response(200, &[], body)
}

/// An error answer of type `kind` (as `__type`), the way AWS JSON services send them.
pub(super) fn error(status: u16, kind: &str, message: &str) -> ReplayEvent {
    let body = format!("{{\"__type\":\"{kind}\",\"message\":\"{message}\"}}");
    response(status, &[], &body)
}

/// A 400 of JSON error type `kind` that also carries SQS's query-compatible error code in the
/// `x-amzn-query-error` header, as SQS sends it.
pub(super) fn error_with_header(kind: &str, query_error: &str) -> ReplayEvent {
    let body = format!("{{\"__type\":\"{kind}\",\"message\":\"refused\"}}");
    response(400, &[("x-amzn-query-error", query_error)], &body)
}

/// Both clients on canned answers, with fixed credentials.
pub(super) fn backend(sqs: Vec<ReplayEvent>, dynamo: Vec<ReplayEvent>) -> AwsBackend {
    let creds = Credentials::new("id", "secret", None, None, "test");
    backend_with(
        StaticReplayClient::new(sqs),
        dynamo,
        SharedCredentialsProvider::new(creds),
    )
}

/// Both clients on canned answers (SQS's replay client given, to inspect its requests).
pub(super) fn backend_with(
    sqs: StaticReplayClient,
    dynamo: Vec<ReplayEvent>,
    creds: SharedCredentialsProvider,
) -> AwsBackend {
    let sqs = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds.clone())
        .retry_config(RetryConfig::disabled())
        .http_client(sqs)
        .build();
    let dynamo = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .retry_config(RetryConfig::disabled())
        .http_client(StaticReplayClient::new(dynamo))
        .build();
    AwsBackend::from_clients(
        aws_sdk_dynamodb::Client::from_conf(dynamo),
        aws_sdk_sqs::Client::from_conf(sqs),
        "coordination",
    )
}

/// Both clients built as production builds them ([`super::client`]: retries on, timeouts
/// of `Timeouts::default()`), on canned answers.
pub(super) fn production_backend(
    sqs: StaticReplayClient,
    creds: SharedCredentialsProvider,
) -> AwsBackend {
    let shared = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .http_client(sqs)
        .build();
    let t = crate::Timeouts::default();
    AwsBackend::from_clients(
        aws_sdk_dynamodb::Client::from_conf(super::client::dynamodb_config(&shared, &t)),
        aws_sdk_sqs::Client::from_conf(super::client::sqs_config(&shared, &t)),
        "coordination",
    )
}

/// A credentials provider that takes `stall` to answer each time it is asked, as IMDS or STS
/// may while credentials are refreshed.
#[derive(Debug)]
pub(super) struct StallingCredentials {
    pub(super) stall: std::time::Duration,
}

impl ProvideCredentials for StallingCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let stall = self.stall;
        future::ProvideCredentials::new(async move {
            tokio::time::sleep(stall).await;
            Ok(Credentials::new("id", "secret", None, None, "stalling"))
        })
    }
}

/// A credentials provider that never has any, as on a host with no role or profile.
#[derive(Debug)]
pub(super) struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded("no profile, no role")))
    }
}

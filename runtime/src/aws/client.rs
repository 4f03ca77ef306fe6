//! The SDK clients' retry and timeout settings, owned by this project and built by one function
//! for production, the CLI and the level-3 simulation alike.
//!
//! | call | SDK attempts | attempt timeout | operation timeout |
//! |---|---|---|---|
//! | DynamoDB UpdateItem, Query, BatchGetItem; SQS ListQueues page, DeleteMessageBatch, ChangeMessageVisibilityBatch | 3 (standard: 5xx, throttling, connection errors; 100 ms backoff doubling to 2 s) | `Timeouts::attempt`: a third of the driver's deadline (`Timeouts::effect`, four fifths of the heartbeat interval) | `Timeouts::operation`: nine tenths of the driver's deadline, which is the backstop |
//! | SQS ReceiveMessage | 1: never retried (a second attempt is a second long poll nobody planned against the fence) | margin + wait + margin | the same |
//!
//! Connecting is bounded by `Timeouts::connect` (half the request margin). A receive also
//! carries its send-by time: an interceptor (`SendBy`) refuses to let it leave once that has passed (a
//! credentials refresh, a reconnect or a starved runtime held it after the fence check), so its
//! long poll always ends at SQS before the fence.

use crate::backend::Receive;
use crate::timeouts::Timeouts;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use std::fmt;
use std::time::Duration;

/// The retry policy of every call but a receive.
fn retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(2))
}

/// The client-wide timeouts of `t`.
fn timeouts(t: &Timeouts) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(t.connect)
        .operation_attempt_timeout(t.attempt)
        .operation_timeout(t.operation)
        .build()
}

/// The DynamoDB client's configuration: `shared` (region, credentials, endpoint, HTTP client)
/// with this project's retries and timeouts.
pub fn dynamodb_config(shared: &SdkConfig, t: &Timeouts) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_config(retries())
        .timeout_config(timeouts(t))
        .build()
}

/// The SQS client's configuration, as [`dynamodb_config`]; each receive overrides it
/// (retries off, one attempt of its own length).
pub fn sqs_config(shared: &SdkConfig, t: &Timeouts) -> aws_sdk_sqs::Config {
    aws_sdk_sqs::config::Builder::from(shared)
        .retry_config(retries())
        .timeout_config(timeouts(t))
        .build()
}

/// What one receive changes: no retries, and one attempt of its own length.
pub(super) fn receive_override(request: &Receive) -> aws_sdk_sqs::config::Builder {
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(request.attempt_timeout)
        .operation_timeout(request.attempt_timeout)
        .build();
    aws_sdk_sqs::config::Builder::default()
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
}

/// Refuses to transmit a request after its send-by time: checked after signing (credentials
/// resolved), the last hook before the request leaves.
#[derive(Clone, Copy)]
pub(super) struct SendBy(pub(super) tokio::time::Instant);

impl fmt::Debug for SendBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendBy")
    }
}

/// The error [`SendBy`] fails a request with; the adapter maps it to
/// [`BackendError::NotSent`](crate::BackendError::NotSent).
#[derive(Debug)]
pub(super) struct SendByPassed {
    late: Duration,
}

impl fmt::Display for SendByPassed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request was ready {:?} after its send-by time (the self-fence was too close)",
            self.late
        )
    }
}

impl std::error::Error for SendByPassed {}

impl Intercept for SendBy {
    fn name(&self) -> &'static str {
        "sqsbalancer::SendBy"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let now = crate::clock::now();
        if now > self.0 {
            return Err(Box::new(SendByPassed { late: now - self.0 }));
        }
        Ok(())
    }
}

//! The production backends on the AWS SDK: DynamoDB for the coordination table, SQS for
//! discovery and messages. One client each, built from the standard configuration chain
//! (region, credentials) with an optional endpoint override for emulators, and this project's
//! retries and timeouts ([`client`]).

#[cfg(test)]
mod canned;
pub mod client;
mod dynamo;
mod expr;
mod sqs;

pub use client::{dynamodb_config, sqs_config};
pub use dynamo::{Billing, ensure_table};

use crate::timeouts::Timeouts;
use aws_config::{BehaviorVersion, Region};

/// The AWS clients one balancer uses, and its coordination table.
#[derive(Clone, Debug)]
pub struct AwsBackend {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    table: String,
}

/// Where and how to connect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// An endpoint for both services instead of AWS's (moto, LocalStack).
    pub endpoint_url: Option<String>,
    /// The region; `None` takes it from the environment and profile, as the SDK does.
    pub region: Option<String>,
    /// Fixed credentials (access key id, secret) instead of the standard chain: for
    /// emulators, which accept any.
    pub static_credentials: Option<(String, String)>,
    /// The calls' deadlines: [`Timeouts::of`] the balancer's configuration.
    pub timeouts: Timeouts,
}

impl AwsBackend {
    /// Clients from the standard configuration chain and `settings`, for `table`.
    pub async fn connect(settings: &AwsSettings, table: &str) -> AwsBackend {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &settings.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(u) = &settings.endpoint_url {
            loader = loader.endpoint_url(u.clone());
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "sqsbalancer-static",
            ));
        }
        let shared = loader.load().await;
        AwsBackend {
            dynamo: aws_sdk_dynamodb::Client::from_conf(dynamodb_config(
                &shared,
                &settings.timeouts,
            )),
            sqs: aws_sdk_sqs::Client::from_conf(sqs_config(&shared, &settings.timeouts)),
            table: table.to_owned(),
        }
    }

    /// A backend on clients configured elsewhere (a custom HTTP client, retry policy or
    /// interceptors), for `table`. Build their configurations with [`dynamodb_config`] and
    /// [`sqs_config`] to keep this project's retries and timeouts; whatever they say, a
    /// receive is never retried and never sent past its send-by time.
    pub fn from_clients(
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        table: &str,
    ) -> AwsBackend {
        AwsBackend {
            dynamo,
            sqs,
            table: table.to_owned(),
        }
    }

    /// The DynamoDB client (for table management).
    pub fn dynamo(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamo
    }

    /// The SQS client.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }
}

/// Maps an SDK error onto the backend's kinds: `throttled` says whether the service error is a
/// throttle; a request that may have reached the service without an answer is unknown.
fn sdk_error<E>(
    service: &'static str,
    e: &aws_sdk_dynamodb::error::SdkError<E>,
    throttled: impl Fn(&E) -> bool,
) -> crate::error::BackendError
where
    E: std::error::Error + 'static,
{
    use crate::error::BackendError;
    use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
    let reason = DisplayErrorContext(e).to_string();
    if caused_by::<client::SendByPassed>(e) {
        return BackendError::NotSent { service, reason };
    }
    if caused_by::<aws_credential_types::provider::error::CredentialsError>(e) {
        return BackendError::Credentials { service, reason };
    }
    match e {
        SdkError::ServiceError(s) if throttled(s.err()) => BackendError::Throttled {
            service,
            message: reason,
        },
        // A 5xx is the service's trouble, not the request's: a write may have applied.
        SdkError::ServiceError(s) if s.raw().status().is_server_error() => {
            BackendError::Unknown { service, reason }
        }
        SdkError::ServiceError(_) | SdkError::ConstructionFailure(_) => {
            BackendError::Refused { service, reason }
        }
        _ => BackendError::Unknown { service, reason },
    }
}

/// Whether `e` or any error under it is an `E`: a credentials provider's failure (none found,
/// expired, the provider unreachable) or a send-by time that passed; either way the request
/// was never sent.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<E>().is_some() {
            return true;
        }
        next = err.source();
    }
    false
}

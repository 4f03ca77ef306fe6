//! How an AWS SDK error maps onto the backend's error kinds.

/// The error codes with which SQS and DynamoDB (and the AWS services behind them, KMS for an
/// encrypted queue) ask the caller to slow down, whatever the operation: the SDK models some
/// of them per operation and leaves the rest unmodelled, so they are told apart by code.
const THROTTLE_CODES: [&str; 10] = [
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "TooManyRequestsException",
    "KmsThrottled",
    // The same as SQS's query-compatible header names it, the code the SDK then reports.
    "KMS.ThrottlingException",
    // ReceiveMessage past the in-flight limit: back off until messages are deleted.
    "OverLimit",
];

/// Maps an SDK error onto the backend's kinds: a throttle by its code, a request that may have
/// reached the service without an answer as unknown.
pub(super) fn sdk_error<E>(
    service: &'static str,
    e: &aws_sdk_dynamodb::error::SdkError<E>,
) -> crate::error::BackendError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    use crate::error::BackendError;
    use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    let reason = DisplayErrorContext(e).to_string();
    if caused_by::<super::client::SendByPassed>(e) {
        return BackendError::NotSent { service, reason };
    }
    if caused_by::<aws_credential_types::provider::error::CredentialsError>(e) {
        return BackendError::Credentials { service, reason };
    }
    match e {
        SdkError::ServiceError(_) if e.code().is_some_and(|c| THROTTLE_CODES.contains(&c)) => {
            BackendError::Throttled {
                service,
                message: reason,
            }
        }
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

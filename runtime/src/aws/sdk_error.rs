//! How an AWS SDK error maps onto the backend's error kinds.

/// Maps an SDK error onto the backend's kinds: `throttled` says whether the service error is a
/// throttle; a request that may have reached the service without an answer is unknown.
pub(super) fn sdk_error<E>(
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
    if caused_by::<super::client::SendByPassed>(e) {
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

//! SDK failures as the store's error kinds.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use uploadgate_core::StoreError;

/// Maps an SDK failure onto the store's error kinds: unreachable or timed
/// out, throttled (after the SDK's own retries), or anything else.
pub(crate) fn store_error<E>(err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            StoreError::Unavailable(Box::new(err))
        }
        SdkError::ResponseError(_) => StoreError::Unavailable(Box::new(err)),
        SdkError::ServiceError(e) => classify(e.into_err()),
        other => StoreError::Backend(Box::new(other)),
    }
}

pub(crate) fn classify<E>(err: E) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err.code() {
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "LimitExceededException",
        ) => StoreError::Throttled(Box::new(err)),
        _ if err.code().is_none() => StoreError::Unavailable(Box::new(err)),
        _ => StoreError::Backend(Box::new(err)),
    }
}

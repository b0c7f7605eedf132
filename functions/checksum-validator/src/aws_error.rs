//! Classifies AWS SDK errors into what the validator does about them.
//!
//! Floor 0: imports nothing of the crate.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// What an AWS call failure means for the record being processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// 404, `NoSuchKey`, `NoSuchVersion`: the thing is not there.
    #[error("not found")]
    NotFound,
    /// Throttling, 5xx, timeouts, connection failures: retry with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Access denied, missing bucket, bad request: retrying will not help.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
    /// A `HeadObject` answered 400 Bad Request: what S3 answers for an SSE-C object read
    /// without its customer key ("If you encrypt an object by using server-side encryption
    /// with customer-provided encryption keys (SSE-C) ... you must use the following
    /// headers ... 400 Bad Request error", S3 API Reference, `HeadObject`).
    #[error("400 Bad Request to a HEAD: an SSE-C object read without its customer key")]
    CustomerKeyRequired,
}

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    // KMS behind an SSE-KMS object, queue or topic: AWS does not document which code S3
    // passes on, so every plausible spelling is transient (SQS documents `KmsThrottled`,
    // SNS `KMSThrottling`, KMS itself `ThrottlingException` and `KMSInternalException`).
    "KmsThrottled",
    "KMSThrottling",
    "KMS.ThrottlingException",
    "KMS.KMSInternalException",
    "KMSInternalException",
    "DependencyTimeoutException",
];

/// Classifies any SDK error by its HTTP status and error code.
pub fn classify<E, R>(err: &SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error,
    R: HasStatus + std::fmt::Debug,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AwsError::Transient(format!("{err}"))
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status_u16();
            let code = ctx.err().code().unwrap_or("").to_string();
            let message = ctx.err().message().unwrap_or("").to_string();
            classify_parts(status, &code, &message)
        }
        _ => AwsError::Permanent {
            code: "ClientError".into(),
            message: format!("{err:?}"),
        },
    }
}

/// The status/code classification, separate for testing.
pub fn classify_parts(status: u16, code: &str, message: &str) -> AwsError {
    if matches!(code, "NoSuchKey" | "NoSuchVersion" | "NotFound")
        || status == 404 && code.is_empty()
    {
        return AwsError::NotFound;
    }
    if status == 429 || status >= 500 || THROTTLING.contains(&code) {
        return AwsError::Transient(format!(
            "{} (HTTP {status})",
            if code.is_empty() {
                "server error"
            } else {
                code
            }
        ));
    }
    AwsError::Permanent {
        code: if code.is_empty() {
            format!("HTTP{status}")
        } else {
            code.to_string()
        },
        message: message.to_string(),
    }
}

/// Access to a raw response's status code.
pub trait HasStatus {
    fn status_u16(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api_shim::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Re-export path for the SDK's raw HTTP response type.
mod aws_smithy_runtime_api_shim {
    pub use aws_sdk_s3::config::http::HttpResponse;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(404, "", AwsError::NotFound)]
    #[case(404, "NoSuchKey", AwsError::NotFound)]
    #[case(404, "NoSuchVersion", AwsError::NotFound)]
    #[case(503, "SlowDown", AwsError::Transient("SlowDown (HTTP 503)".into()))]
    #[case(500, "", AwsError::Transient("server error (HTTP 500)".into()))]
    #[case(400, "ThrottlingException", AwsError::Transient("ThrottlingException (HTTP 400)".into()))]
    #[case(400, "KMS.ThrottlingException", AwsError::Transient("KMS.ThrottlingException (HTTP 400)".into()))]
    #[case(400, "KmsThrottled", AwsError::Transient("KmsThrottled (HTTP 400)".into()))]
    #[case(403, "AccessDenied", AwsError::Permanent { code: "AccessDenied".into(), message: "m".into() })]
    #[case(404, "NoSuchBucket", AwsError::Permanent { code: "NoSuchBucket".into(), message: "m".into() })]
    #[case(403, "", AwsError::Permanent { code: "HTTP403".into(), message: "m".into() })]
    fn classifies(#[case] status: u16, #[case] code: &str, #[case] want: AwsError) {
        assert_eq!(classify_parts(status, code, "m"), want);
    }
}

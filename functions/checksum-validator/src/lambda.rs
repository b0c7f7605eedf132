//! The glue both Lambda binaries share: their logging, the SDK configuration they load, a
//! batch's origin and an invocation's deadline.
//!
//! Floor 0: imports nothing of the crate.

/// The default log filter when `RUST_LOG` is unset: `info`, without the S3 SDK's warning
/// on every `HeadObject` of a multipart object. S3 reports such an object's checksum as a
/// composite, checksum-of-checksums with a `-N` part count
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html#large-object-checksums>);
/// the SDK cannot check a composite against a body, so it skips and warns, and a `HeadObject`
/// has no body anyway. The validator compares composites as values (`decision.rs`).
pub const DEFAULT_LOG_FILTER: &str = "info,aws_sdk_s3::http_response_checksum=error";

/// JSON logs on stdout for CloudWatch, one object per line; `RUST_LOG` sets the level
/// (default [`DEFAULT_LOG_FILTER`]). Shared by both Lambda binaries.
pub fn init_lambda_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

/// A batch's size and its event source ARN (the first record's: one mapping delivers from
/// one queue), as both functions' `batch answered` log line names them.
pub fn batch_origin(event: &aws_lambda_events::event::sqs::SqsEvent) -> (usize, String) {
    let source = event
        .records
        .first()
        .and_then(|r| r.event_source_arn.clone())
        .unwrap_or_default();
    (event.records.len(), source)
}

/// The `Instant` of a Lambda invocation's deadline (`Context::deadline`: milliseconds since
/// the Unix epoch). Shared by both Lambda binaries.
pub fn deadline_of(deadline_epoch_ms: u64) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    std::time::Instant::now()
        + std::time::Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}

/// The SDK configuration both Lambda binaries load: the environment's (region, credentials,
/// endpoint) with bounded calls. A stalled endpoint fails an attempt after 20 s and a call
/// (with the SDK's retries) after 60 s, so a record ends as a transient error the queue
/// retries instead of an invocation hanging until Lambda stops it; connecting gets 3 s.
pub async fn lambda_sdk_config() -> aws_config::SdkConfig {
    use std::time::Duration;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 8 (partial): the functions' SDK calls are bounded (3 s to connect, 20 s an
    /// attempt, 60 s a call with retries), well inside a function timeout of 60 s or more
    /// per batch; a stalled dependency ends in an error, not a hung invocation.
    #[tokio::test]
    async fn the_functions_sdk_calls_are_bounded() {
        let sdk = lambda_sdk_config().await;
        let t = sdk.timeout_config().expect("a timeout configuration");
        assert_eq!(t.connect_timeout(), Some(std::time::Duration::from_secs(3)));
        assert_eq!(
            t.operation_attempt_timeout(),
            Some(std::time::Duration::from_secs(20))
        );
        assert_eq!(
            t.operation_timeout(),
            Some(std::time::Duration::from_secs(60))
        );
    }

    /// `EnvFilter::new` drops a directive it cannot parse without a word: the default must
    /// parse whole, keep `info` for the functions, and hold the SDK's checksum module at
    /// `error` only.
    #[test]
    fn the_default_log_filter_parses_and_quiets_only_the_checksum_warning() {
        let f = tracing_subscriber::EnvFilter::try_new(DEFAULT_LOG_FILTER).expect("parses");
        let shown = f.to_string();
        assert!(
            shown.contains("aws_sdk_s3::http_response_checksum=error"),
            "{shown}"
        );
        assert_eq!(
            f.max_level_hint(),
            Some(tracing::level_filters::LevelFilter::INFO)
        );
    }

    #[test]
    fn a_batch_is_named_by_its_size_and_first_source() {
        use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
        let mut event = SqsEvent::default();
        assert_eq!(batch_origin(&event), (0, String::new()));
        for arn in [
            "arn:aws:sqs:us-east-1:1:validation",
            "arn:aws:sqs:us-east-1:1:other",
        ] {
            let mut m = SqsMessage::default();
            m.event_source_arn = Some(arn.into());
            event.records.push(m);
        }
        assert_eq!(
            batch_origin(&event),
            (2, "arn:aws:sqs:us-east-1:1:validation".to_string())
        );
    }

    #[test]
    fn a_deadline_is_that_far_ahead() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left =
            deadline_of(now_ms + 10_000).saturating_duration_since(std::time::Instant::now());
        assert!(
            left > std::time::Duration::from_secs(8) && left <= std::time::Duration::from_secs(10),
            "{left:?}"
        );
        // A deadline already past is now.
        assert!(deadline_of(0) <= std::time::Instant::now());
    }
}

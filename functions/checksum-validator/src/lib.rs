//! checksum-validator: decides whether each S3 replica is an exact copy of its primary.
//!
//! Layout: [`event`] parses message bodies; [`facts`], [`coverage`] and [`decision`] are the
//! pure decision core; [`s3`] is the S3 adapter; [`handler`] runs a batch and acts on decisions;
//! [`failure_record`] is the message a failure travels in; [`config`] reads the environment;
//! [`text`] makes untrusted text (keys, details, bodies) safe to show in alerts and logs.

pub mod aws_error;
pub mod config;
pub mod coverage;
pub mod decision;
pub mod event;
pub mod facts;
pub mod failure_record;
pub mod handler;
pub mod retry;
pub mod s3;
pub mod text;

pub use config::ValidatorConfig;
pub use decision::Outcome;
pub use handler::{BatchReport, RecordReport, Validator};

/// JSON logs on stdout for CloudWatch, one object per line; `RUST_LOG` sets the level
/// (default `info`). Shared by both Lambda binaries.
pub fn init_lambda_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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

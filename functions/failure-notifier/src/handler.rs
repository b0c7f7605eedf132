//! The Lambda handler: publishes one alert per record; a publish failure is a batch item
//! failure, so the record is retried and finally lands in the failure DLQ. Never dropped.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;

use crate::alert::{compose, Alert, Origin};

/// The notifier's configuration, from documented environment variables.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `SNS_TOPIC_ARN` | required | where alerts are published |
/// | `PROJECT_NAME` | `autobackup` | prefix of every alert subject |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub topic_arn: String,
    pub project: String,
}

/// A missing or invalid setting.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is required: {1}")]
pub struct ConfigError(pub &'static str, pub &'static str);

impl NotifierConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let topic_arn = std::env::var("SNS_TOPIC_ARN")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError("SNS_TOPIC_ARN", "the ARN of the failure topic"))?;
        let project = std::env::var("PROJECT_NAME")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "autobackup".into());
        Ok(NotifierConfig { topic_arn, project })
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotifyReport {
    pub message_id: String,
    pub alert: Alert,
    /// `None` when published; the error otherwise (the record is then retried).
    pub publish_error: Option<String>,
}

/// The failure notifier with its SNS client.
pub struct Notifier {
    config: NotifierConfig,
    sns: aws_sdk_sns::Client,
}

impl Notifier {
    pub fn new(config: NotifierConfig, sdk: &aws_config::SdkConfig) -> Notifier {
        Notifier {
            config,
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }

    /// The Lambda entry point.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_with_report(event).await.0
    }

    /// Handles a batch and reports each record's alert and publish result.
    pub async fn handle_with_report(
        &self,
        event: SqsEvent,
    ) -> (SqsBatchResponse, Vec<NotifyReport>) {
        let reports: Vec<NotifyReport> = futures::stream::iter(event.records)
            .map(|msg| self.notify(msg))
            .buffered(8)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for r in &reports {
            if r.publish_error.is_some() {
                response.add_failure(r.message_id.clone());
            }
        }
        (response, reports)
    }

    async fn notify(&self, msg: SqsMessage) -> NotifyReport {
        let origin = origin_of(&msg);
        let alert = compose(
            msg.body.as_deref().unwrap_or(""),
            &origin,
            &self.config.project,
        );
        let published = tokio::time::timeout(
            Duration::from_secs(20),
            self.sns
                .publish()
                .topic_arn(&self.config.topic_arn)
                .subject(&alert.subject)
                .message(&alert.message)
                .send(),
        )
        .await;
        let publish_error = match published {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("{}", aws_sdk_sns::error::DisplayErrorContext(&e))),
            Err(_) => Some("publish timed out after 20s".into()),
        };
        match &publish_error {
            None => tracing::info!(
                target: "failure_notifier",
                message_id = %origin.message_id,
                queue = %origin.queue,
                subject = %alert.subject,
                "alert published"
            ),
            Some(e) => tracing::error!(
                target: "failure_notifier",
                message_id = %origin.message_id,
                queue = %origin.queue,
                subject = %alert.subject,
                error = %e,
                "alert publish failed; the record will be retried"
            ),
        }
        NotifyReport {
            message_id: origin.message_id,
            alert,
            publish_error,
        }
    }
}

/// Reads the record's origin from its SQS metadata.
pub fn origin_of(msg: &SqsMessage) -> Origin {
    let queue = msg
        .event_source_arn
        .as_deref()
        .and_then(|arn| arn.rsplit(':').next())
        .unwrap_or("unknown-queue")
        .to_string();
    let sent_at = msg
        .attributes
        .get("SentTimestamp")
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Origin {
        queue,
        message_id: msg.message_id.clone().unwrap_or_default(),
        receive_count: msg
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok()),
        sent_at,
    }
}

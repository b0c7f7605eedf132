//! The Lambda handler: publishes one alert per record; a publish failure is a batch item
//! failure, so the record is retried and finally lands in the failure DLQ. Never dropped.
//!
//! Floor 1: may import floor 0.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use checksum_validator::failure_record::FailureRecord;
use checksum_validator::text::escape;
use futures::StreamExt;

use crate::alert::{compose, Alert, Origin};
use crate::ledger::{Claim, Ledger};

/// The notifier's configuration, from documented environment variables.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `SNS_TOPIC_ARN` | required | where alerts are published |
/// | `PROJECT_NAME` | `autobackup` | prefix of every alert subject |
/// | `ALERT_LEDGER_BUCKET` | none | S3 bucket of the alert ledger (see [`crate::ledger`]): one alert per idempotency key; without it a replayed record alerts again |
/// | `LEDGER_CLAIM_SECONDS` | 120 | how long a claim protects a publish in progress (at least the function timeout) |
/// | `S3_FORCE_PATH_STYLE` | false | path-style S3 addressing for the ledger (local engines) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub topic_arn: String,
    pub project: String,
    pub ledger_bucket: Option<String>,
    pub claim_period: Duration,
    pub force_path_style: bool,
}

/// A missing or invalid setting.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is required: {1}")]
pub struct ConfigError(pub &'static str, pub &'static str);

impl NotifierConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The configuration from `get` (an environment): a variable set to blanks only counts
    /// as unset.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let topic_arn = var("SNS_TOPIC_ARN")
            .ok_or(ConfigError("SNS_TOPIC_ARN", "the ARN of the failure topic"))?;
        let project = var("PROJECT_NAME").unwrap_or_else(|| "autobackup".into());
        let claim_period = match var("LEDGER_CLAIM_SECONDS") {
            None => Duration::from_secs(120),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map(|s| Duration::from_secs(s.into()))
                .map_err(|_| ConfigError("LEDGER_CLAIM_SECONDS", "a whole number of seconds"))?,
        };
        let force_path_style = match var("S3_FORCE_PATH_STYLE").as_deref().map(str::trim) {
            None => false,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(_) => return Err(ConfigError("S3_FORCE_PATH_STYLE", "true or false")),
        };
        Ok(NotifierConfig {
            topic_arn,
            project,
            ledger_bucket: var("ALERT_LEDGER_BUCKET"),
            claim_period,
            force_path_style,
        })
    }
}

/// What the alert ledger said about a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "ledger", content = "detail")]
pub enum LedgerUse {
    /// No ledger is configured.
    Off,
    /// The key was claimed by this invocation.
    Claimed,
    /// The alert for this key was already published: this record is a duplicate.
    Duplicate,
    /// Another invocation holds the claim: retried later.
    HeldElsewhere,
    /// The ledger failed; published without it.
    Unavailable(String),
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotifyReport {
    pub message_id: String,
    pub alert: Alert,
    /// `None` when published (or suppressed as a duplicate); the error otherwise (the
    /// record is then retried).
    pub publish_error: Option<String>,
    /// The idempotency key and what the ledger said.
    pub key: String,
    pub ledger: LedgerUse,
}

/// The failure notifier with its SNS client and alert ledger.
pub struct Notifier {
    config: NotifierConfig,
    sns: aws_sdk_sns::Client,
    ledger: Option<Ledger>,
}

impl Notifier {
    pub fn new(config: NotifierConfig, sdk: &aws_config::SdkConfig) -> Notifier {
        let ledger = config.ledger_bucket.clone().map(|bucket| {
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(config.force_path_style)
                    .build(),
            );
            Ledger::new(s3, bucket, config.claim_period)
        });
        Notifier {
            sns: aws_sdk_sns::Client::new(sdk),
            ledger,
            config,
        }
    }

    /// The Lambda entry point; `deadline` is the invocation's (`Context::deadline`).
    pub async fn handle(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        self.handle_with_report(event, deadline).await.0
    }

    /// Handles a batch and reports each record's alert and publish result.
    pub async fn handle_with_report(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> (SqsBatchResponse, Vec<NotifyReport>) {
        let (size, source) = checksum_validator::batch_origin(&event);
        let reports: Vec<NotifyReport> = futures::stream::iter(event.records)
            .map(|msg| async move {
                let origin = origin_of(&msg);
                let report = self.notify(msg, deadline).await;
                log_report(&origin, &report);
                report
            })
            .buffered(8)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for r in &reports {
            if r.publish_error.is_some() {
                response.add_failure(r.message_id.clone());
            }
        }
        tracing::info!(
            target: "failure_notifier",
            event_source_arn = %escape(&source),
            messages = size,
            batch_item_failures = response.batch_item_failures.len(),
            "batch answered"
        );
        (response, reports)
    }

    async fn notify(&self, msg: SqsMessage, deadline: Option<Instant>) -> NotifyReport {
        let origin = origin_of(&msg);
        let body = msg.body.as_deref().unwrap_or("");
        let alert = compose(body, &origin, &self.config.project);
        let LedgerKey { key, disagreeing } = ledger_key(body, &origin);
        if let Some(claimed) = &disagreeing {
            tracing::warn!(target: "failure_notifier", message_id = %escape(&origin.message_id), claimed = %escape(claimed), key = %escape(&key), "the record's idempotency_key does not match its fields; using the key recomputed from them");
        }
        let report = |publish_error: Option<String>, ledger: LedgerUse| NotifyReport {
            message_id: origin.message_id.clone(),
            alert: alert.clone(),
            publish_error,
            key: key.clone(),
            ledger,
        };
        let claim = match &self.ledger {
            Some(l) => l.claim(&key).await,
            None => Claim::Unavailable(String::new()),
        };
        let ledger = match claim {
            Claim::AlreadyPublished { at } => {
                tracing::info!(target: "failure_notifier", message_id = %escape(&origin.message_id), key = %escape(&key), first_published = %at, "duplicate alert suppressed");
                return report(None, LedgerUse::Duplicate);
            }
            Claim::HeldElsewhere { since } => {
                return report(
                    Some(format!(
                        "another invocation is publishing this alert (claimed {since}); retried"
                    )),
                    LedgerUse::HeldElsewhere,
                );
            }
            Claim::Owned => LedgerUse::Claimed,
            Claim::Unavailable(_) if self.ledger.is_none() => LedgerUse::Off,
            Claim::Unavailable(why) => {
                tracing::warn!(target: "failure_notifier", key = %escape(&key), error = %escape(&why), "the alert ledger failed; publishing without it");
                LedgerUse::Unavailable(why)
            }
        };
        // Leave time to answer before the invocation's deadline.
        let budget = deadline
            .map(|d| {
                d.saturating_duration_since(Instant::now())
                    .saturating_sub(Duration::from_millis(250))
            })
            .unwrap_or(Duration::from_secs(20))
            .min(Duration::from_secs(20));
        let published = tokio::time::timeout(
            budget,
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
            Err(_) => Some(format!(
                "publish timed out after {:.1}s",
                budget.as_secs_f64()
            )),
        };
        if let (Some(l), LedgerUse::Claimed) = (&self.ledger, &ledger) {
            match publish_error {
                None => l.published(&key).await,
                Some(_) => l.release(&key).await,
            }
        }
        match &publish_error {
            None => tracing::info!(
                target: "failure_notifier",
                message_id = %escape(&origin.message_id),
                queue = %escape(&origin.queue),
                subject = %alert.subject,
                "alert published"
            ),
            Some(e) => tracing::error!(
                target: "failure_notifier",
                message_id = %escape(&origin.message_id),
                queue = %escape(&origin.queue),
                subject = %alert.subject,
                error = %e,
                "alert publish failed; the record will be retried"
            ),
        }
        report(publish_error, ledger)
    }
}

/// One structured log line per record: where it came from (queue name, receive count) and
/// the whole report as JSON (`report`, escaped like every untrusted text: a reader unescapes
/// it with `checksum_validator::text::unescape`, then parses it).
fn log_report(origin: &Origin, r: &NotifyReport) {
    if !tracing::enabled!(target: "failure_notifier", tracing::Level::INFO) {
        return;
    }
    tracing::info!(
        target: "failure_notifier",
        message_id = %escape(&r.message_id),
        queue = %escape(&origin.queue),
        receive_count = origin.receive_count.map(i64::from).unwrap_or(-1),
        report = %escape(&serde_json::to_string(r).unwrap_or_default()),
        "record notified"
    );
}

/// The ledger key of one record and what its body claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerKey {
    /// The key the ledger is asked about.
    pub key: String,
    /// The body's own `idempotency_key` when it disagrees with the recomputed one (it was
    /// ignored).
    pub disagreeing: Option<String>,
}

/// The key one alert is sent per. For a failure record: its decision's key recomputed from
/// the record's own fields ([`FailureRecord::computed_key`]: object, version, event time,
/// outcome, what it resolves, final or first alert), the same for a replayed delivery or a
/// duplicate S3 event. The body's `idempotency_key` field is never trusted: a sender to the
/// failure queue could copy another record's key into a record of its own and, by claiming
/// it first, suppress that record's real alert. A record whose fields differ is another
/// alert and gets another key. For anything else (a dead letter): the SQS message id,
/// which a message keeps when its redrive policy moves it to a DLQ.
pub fn ledger_key(body: &str, origin: &Origin) -> LedgerKey {
    match FailureRecord::parse(body) {
        Some(record) => {
            let computed = record.computed_key();
            let disagreeing = record.idempotency_key.filter(|k| *k != computed);
            LedgerKey {
                key: format!("record-{computed}"),
                disagreeing,
            }
        }
        None => LedgerKey {
            key: format!("message-{}", origin.message_id),
            disagreeing: None,
        },
    }
}

/// [`ledger_key`]'s key alone.
pub fn idempotency_key(body: &str, origin: &Origin) -> String {
    ledger_key(body, origin).key
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
        attributes: msg
            .message_attributes
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value.clone()?)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use checksum_validator::decision::Outcome;
    use checksum_validator::failure_record::{
        idempotency_key as decision_key, ObjectRef, FAILURE_RECORD_SCHEMA,
    };

    use super::*;

    fn object(key: &str) -> ObjectRef {
        ObjectRef {
            bucket: "autobackup-documents-primary-dev-t".into(),
            key: key.into(),
            version_id: Some(format!("v-{key}")),
            category: Some("documents".into()),
        }
    }

    /// A record as the validator writes it: its key from its own fields.
    fn record(key: &str, outcome: Outcome, attempts: u32) -> FailureRecord {
        let object = object(key);
        let first_seen = "2026-01-01T00:00:00Z".parse().ok();
        FailureRecord {
            schema: FAILURE_RECORD_SCHEMA.into(),
            idempotency_key: Some(decision_key(&object, first_seen, outcome, None, false)),
            outcome,
            detail: format!("{} after {attempts} attempts", outcome.as_str()),
            object,
            replica: None,
            replicas: Vec::new(),
            evidence: Vec::new(),
            attempts,
            first_seen,
            decided_at: chrono::Utc::now(),
            source_message_id: Some(format!("source-{attempts}")),
            resolves: None,
            final_alert: false,
        }
    }

    fn body(r: &FailureRecord) -> String {
        serde_json::to_string(r).unwrap_or_default()
    }

    fn origin(message_id: &str) -> Origin {
        Origin {
            queue: "autobackup-failures-dev-t".into(),
            message_id: message_id.into(),
            ..Origin::default()
        }
    }

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            set.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_configuration_reads_its_variables() {
        let c = NotifierConfig::from_vars(vars(&[
            ("SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
            ("PROJECT_NAME", "acme"),
            ("ALERT_LEDGER_BUCKET", "ledger"),
            ("LEDGER_CLAIM_SECONDS", " 300 "),
            ("S3_FORCE_PATH_STYLE", "yes"),
        ]))
        .expect("valid");
        assert_eq!(
            c,
            NotifierConfig {
                topic_arn: "arn:aws:sns:us-east-1:1:t".into(),
                project: "acme".into(),
                ledger_bucket: Some("ledger".into()),
                claim_period: Duration::from_secs(300),
                force_path_style: true,
            }
        );
        let defaults =
            NotifierConfig::from_vars(vars(&[("SNS_TOPIC_ARN", "t"), ("PROJECT_NAME", "  ")]))
                .expect("valid");
        assert_eq!(defaults.project, "autobackup");
        assert_eq!(defaults.ledger_bucket, None);
        assert_eq!(defaults.claim_period, Duration::from_secs(120));
        assert!(!defaults.force_path_style);
    }

    #[rstest::rstest]
    #[case(&[], "SNS_TOPIC_ARN")]
    #[case(&[("SNS_TOPIC_ARN", " ")], "SNS_TOPIC_ARN")]
    #[case(&[("SNS_TOPIC_ARN", "t"), ("LEDGER_CLAIM_SECONDS", "2m")], "LEDGER_CLAIM_SECONDS")]
    #[case(&[("SNS_TOPIC_ARN", "t"), ("S3_FORCE_PATH_STYLE", "maybe")], "S3_FORCE_PATH_STYLE")]
    fn a_bad_setting_is_named(#[case] set: &[(&str, &str)], #[case] name: &str) {
        let e = NotifierConfig::from_vars(vars(set)).expect_err("invalid");
        assert_eq!(e.0, name);
    }

    #[test]
    fn the_origin_comes_from_the_sqs_metadata() {
        let mut msg = SqsMessage::default();
        msg.message_id = Some("m-7".into());
        msg.event_source_arn = Some("arn:aws:sqs:us-east-1:1:autobackup-failures-dev".into());
        msg.attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        msg.attributes
            .insert("SentTimestamp".into(), "1764547200000".into());
        let mut attr = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
        attr.string_value = Some("SQS.AccessDeniedException".into());
        msg.message_attributes.insert("ERROR_CODE".into(), attr);
        let o = origin_of(&msg);
        assert_eq!(o.queue, "autobackup-failures-dev");
        assert_eq!(o.message_id, "m-7");
        assert_eq!(o.receive_count, Some(4));
        assert_eq!(o.sent_at.as_deref(), Some("2025-12-01T00:00:00Z"));
        assert_eq!(
            o.attributes.get("ERROR_CODE").map(String::as_str),
            Some("SQS.AccessDeniedException")
        );
        assert_eq!(origin_of(&SqsMessage::default()).queue, "unknown-queue");
    }

    /// A notifier whose AWS endpoint refuses connections: every publish fails fast.
    async fn offline_notifier(ledger_bucket: Option<&str>) -> Notifier {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:9")
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let config = NotifierConfig::from_vars(vars(&[
            ("SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:000000000000:alerts"),
            ("ALERT_LEDGER_BUCKET", ledger_bucket.unwrap_or("")),
            ("S3_FORCE_PATH_STYLE", "true"),
        ]))
        .expect("valid");
        Notifier::new(config, &sdk)
    }

    fn batch(ids: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for id in ids {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.to_string());
            m.body = Some(body(&record(id, Outcome::Mismatch, 1)));
            event.records.push(m);
        }
        event
    }

    /// Nothing is dropped: a record whose alert could not be published is a batch item
    /// failure, so SQS delivers it again and finally moves it to the failure DLQ.
    #[tokio::test]
    async fn an_unpublished_alert_is_retried() {
        let n = offline_notifier(None).await;
        let answer = n.handle(batch(&["a", "b"]), None).await;
        let failed: Vec<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["a", "b"]);
    }

    /// The report says whether a ledger was used: off without a bucket, unavailable (and
    /// the alert tried anyway) when the bucket cannot be reached.
    #[tokio::test]
    async fn the_report_says_what_the_ledger_did() {
        let (_, off) = offline_notifier(None)
            .await
            .handle_with_report(batch(&["a"]), None)
            .await;
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].ledger, LedgerUse::Off);
        assert!(off[0].publish_error.is_some());
        assert!(
            off[0].alert.subject.contains("MISMATCH"),
            "{:?}",
            off[0].alert
        );

        let (answer, down) = offline_notifier(Some("ledger"))
            .await
            .handle_with_report(batch(&["a"]), None)
            .await;
        assert!(
            matches!(down[0].ledger, LedgerUse::Unavailable(ref why) if !why.is_empty()),
            "{:?}",
            down[0].ledger
        );
        assert_eq!(answer.batch_item_failures.len(), 1);
    }

    /// The ledger's decision for a sequence of deliveries, as the notifier makes it: the
    /// first delivery of a key alerts, any later one is a duplicate.
    fn alerted(deliveries: &[(String, Origin)]) -> Vec<bool> {
        let mut claimed = HashSet::new();
        deliveries
            .iter()
            .map(|(body, origin)| claimed.insert(idempotency_key(body, origin)))
            .collect()
    }

    #[test]
    fn a_forged_key_does_not_suppress_the_real_alert() {
        let real = record("reports/q1.txt", Outcome::Mismatch, 1);
        // Any sender to the failure queue: a record about a harmless object carrying the
        // real record's key, sent before the real one.
        let mut forged = record("tmp/noise.txt", Outcome::Mismatch, 1);
        forged.idempotency_key = real.idempotency_key.clone();
        let forged_key = ledger_key(&body(&forged), &origin("m-forged"));
        assert_ne!(
            forged_key.key,
            idempotency_key(&body(&real), &origin("m-real"))
        );
        assert_eq!(forged_key.disagreeing, real.idempotency_key);
        assert_eq!(
            alerted(&[
                (body(&forged), origin("m-forged")),
                (body(&real), origin("m-real")),
            ]),
            [true, true]
        );
        // The same with another outcome on the real object: still another alert.
        let mut other_outcome = record("reports/q1.txt", Outcome::ReplicaMissing, 1);
        other_outcome.idempotency_key = real.idempotency_key.clone();
        assert_eq!(
            alerted(&[
                (body(&other_outcome), origin("m-forged")),
                (body(&real), origin("m-real")),
            ]),
            [true, true]
        );
    }

    #[test]
    fn duplicate_deliveries_still_alert_once() {
        let first = record("reports/q1.txt", Outcome::Mismatch, 1);
        // A replayed decision: another message, other attempts, another decision time.
        let replay = record("reports/q1.txt", Outcome::Mismatch, 3);
        let verdict = alerted(&[
            (body(&first), origin("m-1")),
            (body(&first), origin("m-1")),
            (body(&replay), origin("m-2")),
        ]);
        assert_eq!(verdict, [true, false, false]);
        // The validator's own key agrees with the recomputed one: nothing is logged.
        let key = ledger_key(&body(&first), &origin("m-1"));
        assert_eq!(key.disagreeing, None);
        assert_eq!(
            key.key,
            format!(
                "record-{}",
                first.idempotency_key.clone().unwrap_or_default()
            )
        );
        // A record without the field dedupes on its fields too.
        let mut bare = first.clone();
        bare.idempotency_key = None;
        assert_eq!(
            alerted(&[(body(&first), origin("m-1")), (body(&bare), origin("m-3"))]),
            [true, false]
        );
    }

    #[test]
    fn first_final_and_resolved_alerts_of_one_object_are_three_alerts() {
        let first = record("reports/q1.txt", Outcome::ReplicationOverdue, 2);
        let mut last = first.clone();
        last.final_alert = true;
        let mut resolved = record("reports/q1.txt", Outcome::Validated, 4);
        resolved.resolves = Some(Outcome::ReplicationOverdue);
        assert_eq!(
            alerted(&[
                (body(&first), origin("m-1")),
                (body(&last), origin("m-2")),
                (body(&resolved), origin("m-3")),
            ]),
            [true, true, true]
        );
    }

    #[test]
    fn a_dead_letter_is_keyed_by_its_message_id() {
        let dead = r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#;
        assert_eq!(
            alerted(&[
                (dead.to_string(), origin("m-1")),
                (dead.to_string(), origin("m-1")),
                (dead.to_string(), origin("m-2")),
            ]),
            [true, false, true]
        );
    }
}

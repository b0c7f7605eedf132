//! The Lambda handler: one SQS batch in, a partial batch response out.
//!
//! Each record is processed on its own (concurrently, a panic caught per record), so one
//! bad record never touches another; only failed records are listed in
//! `batchItemFailures`. What happens to a record follows from its decision:
//!
//! | outcome | action |
//! |---|---|
//! | validated, superseded | done: the event source mapping deletes it |
//! | lagging, transient-error | retried with backoff via `ChangeMessageVisibility`; on the last receive before the DLQ, re-queued with a delay instead; a record sharing its message with others is re-queued alone at once (below) |
//! | mismatch, replica-missing, replication-failed, replication-overdue, error, unverifiable (when alerting) | a failure record goes to the failure queue, then done |
//! | acknowledged (an `s3:TestEvent`, a deletion event) | done: nothing was created to validate |
//! | malformed (not an S3 event, more than `MAX_RECORDS_PER_BODY` records, an event time in the future) | left on the queue: after `maxReceiveCount` receives SQS moves it to the DLQ, which the notifier also consumes and alerts on |
//! | deferred (the invocation's deadline was near) | left for the next delivery |
//!
//! **Under a deadline.** Lambda stops an invocation at its timeout and then reads no
//! `batchItemFailures`: the whole batch returns to the queue (Lambda Developer Guide, "Using
//! Lambda with Amazon SQS"). So the handler starts no record within `DEADLINE_MARGIN_MS` of
//! the deadline, cuts a record still running at a quarter of that margin, and reports both
//! as batch item failures: the answer always gets back in time.
//!
//! **One record per re-queued message.** S3 sends one record per message (see
//! [`crate::event::MAX_RECORDS_PER_BODY`]), but a sender may put up to that cap in one body.
//! A record of such a body that needs another look is re-queued at once as a message of its
//! own holding only that record (its [`ObjectEvent::record_body`], with the attempts so far),
//! and the original is deleted: the body's final records (a failure sent, validated) are
//! never judged or alerted again, and a body never re-queues copies of itself. Only when a
//! re-queue fails does the whole message come back (a batch item failure); its records are
//! then judged again, and the failure records they repeat carry the same `idempotency_key`.
//!
//! **At most once per delivery.** A record whose side effect happened (a failure record or a
//! fresh copy sent) is deleted from its queue by the handler right away, so a later overrun
//! of the same invocation cannot replay it. What can still repeat (a record cut between its
//! send and its delete, a duplicate S3 event) carries the same `idempotency_key` in its
//! failure record, which the notifier recomputes from the record's fields: one alert per key.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::aws_error::{classify, AwsError};
use crate::config::ValidatorConfig;
use crate::decision::{
    decide, judge, AtDestination, Comparison, Decision, Outcome, PrimaryState, ReplicaState,
    Replication, Timing,
};
use crate::event::{parse_body, ObjectEvent};
use crate::failure_record::{FailureRecord, ObjectRef, FAILURE_RECORD_SCHEMA};
use crate::retry::backoff;
use crate::s3::S3Lookup;
use crate::text::escape;

/// Message attribute carrying the attempts made before a lagging message was re-queued.
pub const ATTEMPTS_ATTRIBUTE: &str = "autobackup-attempts";
/// The most attempts a message may carry in [`ATTEMPTS_ATTRIBUTE`]: far above what the
/// lag budget and the overdue cap ever reach (the backoff is at its maximum long before),
/// low enough that no sum overflows.
pub const MAX_CARRIED_ATTEMPTS: u32 = 1_000;
/// Message attribute set on a message whose `replication-overdue` alert was sent: it is
/// watched until the replica validates (a resolved notice follows) or the cap is reached.
pub const OVERDUE_ATTRIBUTE: &str = "autobackup-overdue-alerted";

/// What the handler did with a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "detail")]
pub enum Action {
    /// Nothing more to do: the record is deleted.
    Done,
    /// A failure record went to the failure queue; the original is deleted.
    FailureSent,
    /// The overdue alert went to the failure queue and the message was re-queued with
    /// this delay to keep watching for the replica; the original is deleted.
    AlertedAndRequeued(#[serde(with = "secs")] Duration),
    /// A late replica validated after its overdue alert: a resolved notice went to the
    /// failure queue; the original is deleted.
    ResolvedSent,
    /// Reported as a batch item failure, visible again after this delay.
    RetryAfter(#[serde(with = "secs")] Duration),
    /// Re-sent to the queue with this delay, as a message holding only this record (its
    /// receive count was exhausted, or it shared its message with other records); the
    /// original is deleted.
    Requeued(#[serde(with = "secs")] Duration),
    /// Reported as a batch item failure so SQS retries it and finally moves it to the DLQ.
    LeftOnQueue(String),
    /// Not (fully) processed before the invocation's deadline: a batch item failure, seen
    /// again after the visibility timeout.
    Deferred(String),
}

impl Action {
    /// Whether the record must be listed in `batchItemFailures`.
    pub fn is_batch_failure(&self) -> bool {
        matches!(
            self,
            Action::RetryAfter(_) | Action::LeftOnQueue(_) | Action::Deferred(_)
        )
    }

    /// Whether the action had a side effect outside the record's own queue message (a
    /// failure record or a fresh copy sent), after which the original must not replay.
    fn has_side_effect(&self) -> bool {
        matches!(
            self,
            Action::FailureSent
                | Action::AlertedAndRequeued(_)
                | Action::ResolvedSent
                | Action::Requeued(_)
        )
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        let secs = <f64 as serde::Deserialize>::deserialize(d)?;
        std::time::Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Which primary version was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionSource {
    /// The version id named by the event.
    Event,
    /// The event named none (an unversioned bucket, which S3 replication does not
    /// support); the current version was judged.
    CurrentVersion,
}

/// The validator's report on one object of one record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordReport {
    pub message_id: String,
    pub object: Option<ObjectRef>,
    pub outcome: Outcome,
    pub detail: String,
    pub evidence: Vec<Comparison>,
    pub attempt: u32,
    pub action: Action,
    pub version_source: Option<VersionSource>,
    /// The replica looked up at each destination (by the source's version id).
    pub replicas: Vec<ObjectRef>,
    pub duration_ms: u64,
}

/// The handler's answer for one batch plus what it decided for each record.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub response: SqsBatchResponse,
    pub records: Vec<RecordReport>,
}

/// The checksum validator with its AWS clients and caches.
pub struct Validator {
    config: ValidatorConfig,
    s3: S3Lookup,
    sqs: aws_sdk_sqs::Client,
    queue_urls: Mutex<HashMap<String, String>>,
    /// Queue ARN -> the `maxReceiveCount` of its redrive policy (`None`: no policy).
    receive_limits: Mutex<HashMap<String, Option<u32>>>,
}

impl Validator {
    /// Builds the validator from a loaded AWS configuration.
    pub fn new(config: ValidatorConfig, sdk: &aws_config::SdkConfig) -> Validator {
        Validator {
            s3: S3Lookup::new(
                sdk,
                config.force_path_style,
                config.replica_region.clone(),
                config.replica_bucket_map.clone(),
            ),
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_urls: Mutex::new(HashMap::new()),
            receive_limits: Mutex::new(HashMap::new()),
            config,
        }
    }

    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }

    /// Handles one SQS batch: the Lambda entry point. `deadline` is the invocation's
    /// (`Context::deadline`); `None` runs without one.
    pub async fn handle(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        self.handle_with_report(event, deadline).await.response
    }

    /// Handles one SQS batch and returns the per-record report with the response.
    pub async fn handle_with_report(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> BatchReport {
        let (size, source) = crate::batch_origin(&event);
        let margin = self.config.deadline_margin;
        let start_by = deadline.map(|d| d.checked_sub(margin).unwrap_or(d));
        let finish_by = deadline.map(|d| d.checked_sub(margin / 4).unwrap_or(d));
        let jobs = event.records.into_iter().map(|msg| {
            let id = msg.message_id.clone().unwrap_or_default();
            async move {
                if start_by.is_some_and(|t| Instant::now() >= t) {
                    return vec![deferred(
                        &msg,
                        "not started: the invocation's deadline is near",
                    )];
                }
                let run = AssertUnwindSafe(self.process_message(msg.clone())).catch_unwind();
                let ran = match finish_by {
                    Some(t) => match tokio::time::timeout_at(t.into(), run).await {
                        Ok(r) => r,
                        Err(_) => {
                            return vec![deferred(
                                &msg,
                                "cut at the invocation's deadline before it finished",
                            )]
                        }
                    },
                    None => run.await,
                };
                match ran {
                    Ok(reports) => reports,
                    Err(panic) => {
                        let why = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "unknown panic".into());
                        tracing::error!(message_id = %escape(&id), panic = %escape(&why), "record handler panicked");
                        vec![RecordReport {
                            message_id: id,
                            object: None,
                            outcome: Outcome::Error,
                            detail: format!("handler panicked: {why}"),
                            evidence: Vec::new(),
                            attempt: 0,
                            action: Action::LeftOnQueue("handler panicked".into()),
                            version_source: None,
                            replicas: Vec::new(),
                            duration_ms: 0,
                        }]
                    }
                }
            }
        });
        let records: Vec<RecordReport> = futures::stream::iter(jobs)
            .buffered(self.config.record_concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut response = SqsBatchResponse::default();
        let mut failed: Vec<&str> = Vec::new();
        for r in &records {
            if r.action.is_batch_failure() && !failed.contains(&r.message_id.as_str()) {
                failed.push(&r.message_id);
            }
        }
        for id in failed {
            response.add_failure(id);
        }
        tracing::info!(
            target: "checksum_validator",
            event_source_arn = %escape(&source),
            messages = size,
            batch_item_failures = response.batch_item_failures.len(),
            "batch answered"
        );
        BatchReport { response, records }
    }

    /// Processes one message; once a side effect of it happened and nothing of it is left
    /// to retry, deletes it from its queue at once (see the module docs).
    async fn process_message(&self, msg: SqsMessage) -> Vec<RecordReport> {
        let reports = self.process_records(&msg).await;
        let retried = reports.iter().any(|r| r.action.is_batch_failure());
        if !retried && reports.iter().any(|r| r.action.has_side_effect()) {
            self.delete_now(&msg).await;
        }
        reports
    }

    async fn delete_now(&self, msg: &SqsMessage) {
        let (Some(receipt), Some(url)) = (msg.receipt_handle.as_deref(), self.queue_url(msg).await)
        else {
            return;
        };
        if let Err(e) = self
            .sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            // The event source mapping deletes it when the invocation answers in time.
            tracing::warn!(error = %classify(&e), "deleting a processed message early failed");
        }
    }

    async fn process_records(&self, msg: &SqsMessage) -> Vec<RecordReport> {
        let msg = msg.clone();
        let started = Instant::now();
        let message_id = msg.message_id.clone().unwrap_or_default();
        let (receive_count, attempt) = attempts_of(&msg);
        let body = msg.body.as_deref().unwrap_or("");

        if let Some(why) = crate::event::acknowledged(body) {
            let report = RecordReport {
                message_id,
                object: None,
                outcome: Outcome::Acknowledged,
                detail: why,
                evidence: Vec::new(),
                attempt,
                action: Action::Done,
                version_source: None,
                replicas: Vec::new(),
                duration_ms: started.elapsed().as_millis() as u64,
            };
            log_report(&report);
            return vec![report];
        }
        let events = match parse_body(body) {
            Ok(events) => events,
            Err(why) => {
                let report = RecordReport {
                    message_id,
                    object: None,
                    outcome: Outcome::Malformed,
                    detail: why.to_string(),
                    evidence: Vec::new(),
                    attempt,
                    action: Action::LeftOnQueue(match self.receive_limit(&msg).await {
                        Some(n) => format!("malformed; SQS moves it to the DLQ after {n} receives"),
                        None => "malformed; the queue has no redrive policy, so it stays".into(),
                    }),
                    version_source: None,
                    replicas: Vec::new(),
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                log_report(&report);
                return vec![report];
            }
        };

        // A record sharing its message is re-queued alone, never as the whole body (see the
        // module docs).
        let shared = events.len() > 1;
        let mut reports = Vec::with_capacity(events.len());
        for event in events {
            let judged = self.judge_object(&event).await;
            let object = ObjectRef {
                bucket: event.bucket.clone(),
                key: judged.key.clone(),
                version_id: judged.version_id.clone().or(event.version_id.clone()),
                category: self.s3.category(&event.bucket).await,
            };
            let action = self
                .act(
                    &msg,
                    &judged,
                    &object,
                    &event,
                    Attempt {
                        attempt,
                        receive_count,
                        shared,
                    },
                    &message_id,
                )
                .await;
            let report = RecordReport {
                message_id: message_id.clone(),
                object: Some(object),
                outcome: judged.decision.outcome,
                detail: judged.decision.detail.clone(),
                evidence: judged.decision.evidence.clone(),
                attempt,
                action,
                version_source: judged.version_source,
                replicas: judged.replicas.clone(),
                duration_ms: started.elapsed().as_millis() as u64,
            };
            log_report(&report);
            reports.push(report);
        }
        reports
    }

    async fn judge_object(&self, event: &ObjectEvent) -> Judged {
        let age = event
            .time
            .map(|t| (Utc::now() - t).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::ZERO);
        let timing = Timing {
            age,
            lag_budget: self.config.lag_budget,
        };
        // EventBridge `Object Created` events of versioned buckets name the version
        // (`detail.object.version-id`, S3 User Guide, "EventBridge event message
        // structure"); S3 replication requires versioning on both buckets.
        let version_source = Some(if event.version_id.is_some() {
            VersionSource::Event
        } else {
            VersionSource::CurrentVersion
        });
        let version_id = event.version_id.clone();
        let fail = |e: AwsError, what: &str| {
            let decision = match e {
                AwsError::Transient(why) if age <= self.config.lag_budget => Decision {
                    outcome: Outcome::TransientError,
                    evidence: Vec::new(),
                    detail: format!("{what}: {why}"),
                },
                AwsError::Transient(why) => Decision {
                    outcome: Outcome::Error,
                    evidence: Vec::new(),
                    detail: format!("{what}: still failing after the lag budget: {why}"),
                },
                AwsError::Permanent { code, message } => Decision {
                    outcome: Outcome::Error,
                    evidence: Vec::new(),
                    detail: format!("{what}: {code}: {message}"),
                },
                AwsError::NotFound => Decision {
                    outcome: Outcome::Error,
                    evidence: Vec::new(),
                    detail: format!("{what}: not found"),
                },
                AwsError::CustomerKeyRequired => Decision {
                    outcome: Outcome::Unverifiable,
                    evidence: Vec::new(),
                    detail: format!(
                        "{what}: unverifiable (SSE-C): S3 answered 400 to a HEAD without the customer key, and the validator holds no customer keys, so it cannot compare content"
                    ),
                },
            };
            Judged {
                decision,
                version_source,
                version_id: None,
                replicas: Vec::new(),
                key: event.key.clone(),
            }
        };

        // The key as the version exists under it: the first candidate reading of the event's
        // key (see `event`) that holds the event's version.
        let mut resolved: Option<(String, crate::facts::ObjectFacts)> = None;
        for candidate in &event.key_candidates {
            match self
                .s3
                .describe_primary(&event.bucket, candidate, version_id.as_deref())
                .await
            {
                Ok(Some(facts)) => {
                    resolved = Some((candidate.clone(), facts));
                    break;
                }
                Ok(None) => {}
                Err(e) => return fail(e, "reading the primary object"),
            }
        }
        let Some((key, primary)) = resolved else {
            let mut decision = decide(
                &PrimaryState::Gone,
                &Replication::Destinations(Vec::new()),
                timing,
            );
            if event.key_candidates.len() > 1 {
                decision.detail = format!(
                    "no such version under any reading of the event's key (tried {}): deleted, or the key is encoded in a way none of these decodes",
                    event
                        .key_candidates
                        .iter()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                tracing::warn!(bucket = %escape(&event.bucket), detail = %escape(&decision.detail), "superseded under every key reading");
            }
            return Judged {
                decision,
                version_source,
                version_id: None,
                replicas: Vec::new(),
                key: event.key.clone(),
            };
        };
        if key != event.key {
            tracing::info!(bucket = %escape(&event.bucket), key = %escape(&key), first_reading = %escape(&event.key), "the event's key resolved to another reading");
        }
        let event = &ObjectEvent {
            key,
            ..event.clone()
        };
        let version = primary.version_id.clone();
        let found = PrimaryState::Found(primary.clone());
        // "Amazon S3 returns the x-amz-replication-status header if the object in your
        // request is eligible for replication" (S3 User Guide, "Getting replication status
        // information"): no header, or REPLICA, means no rule will ever copy this version.
        if matches!(
            primary.replication_status,
            None | Some(crate::facts::ReplicationStatus::Replica)
        ) {
            let why = self
                .s3
                .uncovered(&event.bucket, &event.key, version.as_deref(), &primary)
                .await;
            return Judged {
                decision: decide(&found, &Replication::Uncovered(why), timing),
                version_source,
                version_id: version,
                replicas: Vec::new(),
                key: event.key.clone(),
            };
        }
        let destinations = match self
            .s3
            .destinations(&event.bucket, &event.key, version.as_deref(), &primary)
            .await
        {
            Ok(Ok(d)) => d,
            Ok(Err(why)) => {
                // The source reports a status, yet no rule the validator can read covers it.
                return fail(
                    AwsError::Permanent {
                        code: "NoMatchingReplicationRule".into(),
                        message: format!(
                            "the source reports replication status {} but {}",
                            primary
                                .replication_status
                                .map(|s| format!("{s:?}").to_ascii_uppercase())
                                .unwrap_or_default(),
                            why.explain()
                        ),
                    },
                    "finding the replica destinations",
                );
            }
            Err(e) => return fail(e, "finding the replica destinations"),
        };
        let mut at = Vec::with_capacity(destinations.len());
        let mut replicas = Vec::with_capacity(destinations.len());
        for dest in &destinations {
            let state = match self.s3.replica(dest, &event.key, version.as_deref()).await {
                Ok(state) => state,
                Err(e) => return fail(e, "reading the replica"),
            };
            replicas.push(ObjectRef {
                bucket: dest.bucket.clone(),
                key: event.key.clone(),
                version_id: match &state {
                    ReplicaState::Found(f) => f.version_id.clone(),
                    ReplicaState::Missing => None,
                },
                category: None,
            });
            at.push(AtDestination {
                bucket: dest.bucket.clone(),
                state,
            });
        }
        let replication = Replication::Destinations(at);
        let mut decision = decide(&found, &replication, timing);
        let too_large =
            u64::try_from(primary.size).unwrap_or(0) > self.config.deep_verify_max_bytes;
        if decision.outcome == Outcome::Unverifiable && self.config.deep_verify && too_large {
            decision.detail = format!(
                "{}; unverifiable: too large for deep mode ({} bytes > DEEP_VERIFY_MAX_BYTES {})",
                decision.detail, primary.size, self.config.deep_verify_max_bytes
            );
        }
        if decision.outcome == Outcome::Unverifiable && self.config.deep_verify && !too_large {
            let mut streamed = Vec::new();
            for (dest, replica) in destinations.iter().zip(&replicas) {
                if replica.version_id.is_none() {
                    continue;
                }
                match self
                    .deep_compare(event, &primary, &dest.region, replica)
                    .await
                {
                    Ok(mut c) => {
                        if destinations.len() > 1 {
                            c.destination = Some(dest.bucket.clone());
                        }
                        streamed.push(c);
                    }
                    Err(e) => return fail(e, "deep verification"),
                }
            }
            decision.evidence.extend(streamed);
            decision.outcome = judge(&decision.evidence);
            decision.detail = match decision.outcome {
                Outcome::Validated => {
                    "replica is an exact copy (streamed-sha256, deep mode)".into()
                }
                Outcome::Mismatch => "replica differs (streamed-sha256, deep mode)".into(),
                _ => decision.detail,
            };
        }
        Judged {
            decision,
            version_source,
            version_id: version,
            replicas,
            key: event.key.clone(),
        }
    }

    /// Deep mode: streams both versions and compares their SHA-256.
    async fn deep_compare(
        &self,
        event: &ObjectEvent,
        primary: &crate::facts::ObjectFacts,
        replica_region: &str,
        replica: &ObjectRef,
    ) -> Result<Comparison, AwsError> {
        let (p, r) = futures::try_join!(
            self.s3.stream_sha256(
                None,
                &event.bucket,
                &event.key,
                primary.version_id.as_deref()
            ),
            self.s3.stream_sha256(
                Some(replica_region),
                &replica.bucket,
                &replica.key,
                replica.version_id.as_deref()
            ),
        )?;
        Ok(Comparison {
            kind: crate::decision::EvidenceKind::StreamedSha256,
            verdict: if p == r {
                crate::decision::Verdict::Match
            } else {
                crate::decision::Verdict::Differ
            },
            primary: p.0,
            replica: r.0,
            destination: None,
        })
    }

    async fn act(
        &self,
        msg: &SqsMessage,
        judged: &Judged,
        object: &ObjectRef,
        event: &ObjectEvent,
        at: Attempt,
        message_id: &str,
    ) -> Action {
        let attempt = at.attempt;
        let outcome = judged.decision.outcome;
        let alerted = msg.message_attributes.contains_key(OVERDUE_ATTRIBUTE);
        let past_cap = judged.decision.outcome == Outcome::ReplicationOverdue
            && event
                .time
                .and_then(|t| (Utc::now() - t).to_std().ok())
                .is_some_and(|age| age > self.config.overdue_cap);
        let record = |outcome: Outcome, detail: String, resolves: Option<Outcome>| FailureRecord {
            idempotency_key: Some(crate::failure_record::idempotency_key(
                object, event.time, outcome, resolves, past_cap,
            )),
            schema: FAILURE_RECORD_SCHEMA.to_string(),
            outcome,
            detail,
            object: object.clone(),
            replica: judged.replicas.first().cloned(),
            replicas: if judged.replicas.len() > 1 {
                judged.replicas.clone()
            } else {
                Vec::new()
            },
            evidence: judged.decision.evidence.clone(),
            attempts: attempt,
            first_seen: event.time,
            decided_at: Utc::now(),
            source_message_id: Some(message_id.to_string()),
            resolves,
            final_alert: past_cap,
        };
        match outcome {
            Outcome::Lagging | Outcome::TransientError => self.retry(msg, event, at).await,
            // Overdue is not final: without RTC "the majority of objects replicate within 15
            // minutes, but they can sometimes take a couple of hours" (S3 User Guide,
            // "Troubleshooting replication"). Alert once, then keep watching up to the cap.
            Outcome::ReplicationOverdue if past_cap => {
                let detail = format!(
                    "{}; gave up watching after {}s (OVERDUE_CAP_SECONDS)",
                    judged.decision.detail,
                    self.config.overdue_cap.as_secs()
                );
                self.send_failure(&record(outcome, detail, None)).await
            }
            Outcome::ReplicationOverdue if alerted => self.retry(msg, event, at).await,
            Outcome::ReplicationOverdue => {
                let sent = self
                    .send_failure(&record(outcome, judged.decision.detail.clone(), None))
                    .await;
                if sent != Action::FailureSent {
                    return sent;
                }
                match self.requeue(msg, &event.record_body, attempt, true).await {
                    Ok(delay) => Action::AlertedAndRequeued(delay),
                    Err(e) => {
                        tracing::warn!(error = %e, "re-queueing an overdue message failed; it is not watched further");
                        Action::FailureSent
                    }
                }
            }
            Outcome::Validated if alerted => {
                let detail = format!(
                    "the replica arrived after the overdue alert and validated: {}",
                    judged.decision.detail
                );
                match self
                    .send_failure(&record(outcome, detail, Some(Outcome::ReplicationOverdue)))
                    .await
                {
                    Action::FailureSent => Action::ResolvedSent,
                    other => other,
                }
            }
            o if o.is_failure(self.config.alert_on_unverifiable) => {
                self.send_failure(&record(o, judged.decision.detail.clone(), None))
                    .await
            }
            _ => Action::Done,
        }
    }

    async fn send_failure(&self, record: &FailureRecord) -> Action {
        let Some(url) = self.config.failure_queue_url.as_deref() else {
            return Action::LeftOnQueue("FAILURE_QUEUE_URL is not set".into());
        };
        let body = match serde_json::to_string(record) {
            Ok(b) => b,
            Err(e) => return Action::LeftOnQueue(format!("cannot encode failure record: {e}")),
        };
        match self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
        {
            Ok(_) => Action::FailureSent,
            Err(e) => Action::LeftOnQueue(format!(
                "sending the failure record failed: {}",
                classify(&e)
            )),
        }
    }

    /// Gives the record of `event` another look later: the message back on its queue after
    /// the backoff delay, or a fresh message holding only this record when the message has
    /// other records too or one more failed receive would move it to the DLQ.
    async fn retry(&self, msg: &SqsMessage, event: &ObjectEvent, at: Attempt) -> Action {
        let delay = self.retry_delay(at.attempt);
        let Some(queue_url) = self.queue_url(msg).await else {
            return Action::RetryAfter(delay);
        };
        if at.shared
            || self
                .receive_limit(msg)
                .await
                .is_some_and(|limit| at.receive_count >= limit)
        {
            // Shared: the other records of the message must not be judged again. Exhausted:
            // one more failed receive would move it to the DLQ. Either way, a fresh copy of
            // this record alone.
            let alerted = msg.message_attributes.contains_key(OVERDUE_ATTRIBUTE);
            return match self
                .requeue(msg, &event.record_body, at.attempt, alerted)
                .await
            {
                Ok(delay) => Action::Requeued(delay),
                Err(e) => {
                    tracing::warn!(error = %e, "re-queueing a lagging message failed");
                    Action::RetryAfter(delay)
                }
            };
        }
        if let Some(receipt) = msg.receipt_handle.as_deref() {
            if let Err(e) = self
                .sqs
                .change_message_visibility()
                .queue_url(&queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(delay.as_secs() as i32)
                .send()
                .await
            {
                tracing::warn!(error = %classify(&e), "changing message visibility failed");
            }
        }
        Action::RetryAfter(delay)
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        backoff(
            attempt,
            self.config.retry_base,
            self.config.retry_max,
            rand::random::<f64>(),
        )
    }

    /// Sends `body` (one record of `msg`: [`ObjectEvent::record_body`]) to the queue of
    /// `msg` with the retry delay (at most SQS's 900 s), carrying the attempts so far and,
    /// when `alerted`, the overdue mark. The caller reports the original as done, so the
    /// event source mapping deletes it.
    async fn requeue(
        &self,
        msg: &SqsMessage,
        body: &str,
        attempt: u32,
        alerted: bool,
    ) -> Result<Duration, AwsError> {
        let delay = self.retry_delay(attempt).min(Duration::from_secs(900));
        let queue_url = self
            .queue_url(msg)
            .await
            .ok_or_else(|| AwsError::Permanent {
                code: "UnknownQueue".into(),
                message: "the record's source queue URL could not be resolved".into(),
            })?;
        let attr = |v: String, ty: &str| {
            MessageAttributeValue::builder()
                .data_type(ty)
                .string_value(v)
                .build()
                .expect("data type is set")
        };
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .delay_seconds(delay.as_secs() as i32)
            .message_attributes(ATTEMPTS_ATTRIBUTE, attr(attempt.to_string(), "Number"));
        if alerted {
            let since = msg
                .message_attributes
                .get(OVERDUE_ATTRIBUTE)
                .and_then(|a| a.string_value.clone())
                .unwrap_or_else(|| Utc::now().to_rfc3339());
            send = send.message_attributes(OVERDUE_ATTRIBUTE, attr(since, "String"));
        }
        send.send().await.map(|_| delay).map_err(|e| classify(&e))
    }

    /// The `maxReceiveCount` of the record's queue, read from its `RedrivePolicy` (cached per
    /// queue): SQS moves a message to the DLQ "when the ReceiveCount for a message exceeds
    /// the maxReceiveCount" (SQS Developer Guide, dead-letter queues). `None` when the queue
    /// has no redrive policy; `MAX_RECEIVE_COUNT` when the policy cannot be read.
    async fn receive_limit(&self, msg: &SqsMessage) -> Option<u32> {
        let Some(arn) = msg.event_source_arn.clone() else {
            return Some(self.config.max_receive_count);
        };
        if let Some(limit) = self.receive_limits.lock().await.get(&arn) {
            return *limit;
        }
        let Some(url) = self.queue_url(msg).await else {
            return Some(self.config.max_receive_count);
        };
        let read = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .send()
            .await;
        match read {
            Ok(out) => {
                let limit = out
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy))
                    .and_then(|p| max_receive_count_of(p));
                self.receive_limits.lock().await.insert(arn, limit);
                limit
            }
            Err(e) => {
                tracing::warn!(error = %classify(&e), "reading the queue's redrive policy failed; using MAX_RECEIVE_COUNT");
                Some(self.config.max_receive_count)
            }
        }
    }

    /// The URL of the queue a record came from, from its `eventSourceARN` (cached).
    async fn queue_url(&self, msg: &SqsMessage) -> Option<String> {
        let arn = msg.event_source_arn.as_deref()?;
        if let Some(url) = self.queue_urls.lock().await.get(arn) {
            return Some(url.clone());
        }
        let mut parts = arn.split(':');
        let (account, name) = (parts.nth(4)?, parts.next()?);
        let url = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .ok()?
            .queue_url()?
            .to_string();
        self.queue_urls
            .lock()
            .await
            .insert(arn.to_string(), url.clone());
        Some(url)
    }
}

/// `maxReceiveCount` of a `RedrivePolicy` attribute (a number, or a string as some SDKs
/// write it).
pub fn max_receive_count_of(policy: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    let n = v.get("maxReceiveCount")?;
    n.as_u64()
        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
        .and_then(|n| u32::try_from(n).ok())
}

/// `(receive_count, attempt)` of a message: SQS's `ApproximateReceiveCount` and the attempt
/// number, which adds the attempts carried in [`ATTEMPTS_ATTRIBUTE`] by a re-queued copy.
/// Anyone allowed to `SendMessage` to the queue can set that attribute, so it is read as
/// untrusted: a value that is not a whole number counts as 0, one above
/// [`MAX_CARRIED_ATTEMPTS`] as that cap, and the sum saturates instead of overflowing.
pub fn attempts_of(msg: &SqsMessage) -> (u32, u32) {
    let receive_count: u32 = msg
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1);
    let carried: u32 = msg
        .message_attributes
        .get(ATTEMPTS_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| n.min(u64::from(MAX_CARRIED_ATTEMPTS)) as u32)
        .unwrap_or(0);
    (receive_count, carried.saturating_add(receive_count))
}

/// The report of a record left for the next delivery because of the deadline.
fn deferred(msg: &SqsMessage, why: &str) -> RecordReport {
    let report = RecordReport {
        message_id: msg.message_id.clone().unwrap_or_default(),
        object: None,
        outcome: Outcome::Deferred,
        detail: why.to_string(),
        evidence: Vec::new(),
        attempt: attempts_of(msg).1,
        action: Action::Deferred(why.to_string()),
        version_source: None,
        replicas: Vec::new(),
        duration_ms: 0,
    };
    log_report(&report);
    report
}

/// Where a record stands in its message's delivery.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// The attempt number ([`attempts_of`]).
    attempt: u32,
    /// SQS's `ApproximateReceiveCount` of the message.
    receive_count: u32,
    /// Whether the message holds other records too.
    shared: bool,
}

struct Judged {
    decision: Decision,
    version_source: Option<VersionSource>,
    version_id: Option<String>,
    replicas: Vec<ObjectRef>,
    /// The key the version was found under (the event's first reading when not found).
    key: String,
}

/// One structured log line per record: outcome, evidence, attempt, duration, and the whole
/// report as JSON (`report`, what a reader of the logs rebuilds it from: unescape it with
/// [`crate::text::unescape`], then parse). Every text field passes through [`escape`]: keys
/// and details are untrusted (see [`crate::text`]), and a raw line break would forge a log
/// line in a text-format log.
fn log_report(r: &RecordReport) {
    if !tracing::enabled!(target: "checksum_validator", tracing::Level::INFO) {
        return;
    }
    let evidence = serde_json::to_string(&r.evidence).unwrap_or_default();
    let action = serde_json::to_string(&r.action).unwrap_or_default();
    let (bucket, key, version) = match &r.object {
        Some(o) => (
            o.bucket.as_str(),
            o.key.as_str(),
            o.version_id.as_deref().unwrap_or(""),
        ),
        None => ("", "", ""),
    };
    tracing::info!(
        target: "checksum_validator",
        message_id = %escape(&r.message_id),
        outcome = %r.outcome,
        bucket = %escape(bucket),
        key = %escape(key),
        version_id = %escape(version),
        attempt = r.attempt,
        duration_ms = r.duration_ms,
        evidence = %escape(&evidence),
        action = %escape(&action),
        detail = %escape(&r.detail),
        report = %escape(&serde_json::to_string(r).unwrap_or_default()),
        "record decided"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/engine-events");

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_string());
        m.receipt_handle = Some(format!("receipt-{id}"));
        m.body = Some(body.to_string());
        m.attributes
            .insert("ApproximateReceiveCount".into(), "1".into());
        m
    }

    /// A validator whose AWS endpoint refuses connections: every AWS call fails fast as a
    /// transient error, so the batch logic is exercised without an engine.
    async fn offline_validator() -> Validator {
        validator_at("http://127.0.0.1:9").await
    }

    async fn validator_at(endpoint: &str) -> Validator {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let config = ValidatorConfig {
            // The fixture events are days old: keep them inside the lag budget.
            lag_budget: Duration::from_secs(10 * 365 * 24 * 3600),
            ..ValidatorConfig::default()
        };
        Validator::new(config, &sdk)
    }

    #[tokio::test]
    async fn each_record_of_a_batch_is_decided_on_its_own() {
        let v = offline_validator().await;
        let mut event = SqsEvent::default();
        for (id, file) in [
            ("ls", "localstack-4.13.1-event-1.json"),
            ("ms", "ministack-1.5.33-event-2.json"),
        ] {
            let body = std::fs::read_to_string(format!("{EVENTS}/{file}")).unwrap();
            event.records.push(message(id, &body));
        }
        event.records.push(message("poison", "not json at all"));
        event.records.push(message(
            "deleted",
            &std::fs::read_to_string(format!("{EVENTS}/localstack-4.13.1-event-4.json")).unwrap(),
        ));
        let report = v.handle_with_report(event, None).await;

        let by_id = |id: &str| report.records.iter().find(|r| r.message_id == id).unwrap();
        assert_eq!(report.records.len(), 4);
        assert_eq!(by_id("poison").outcome, Outcome::Malformed);
        // A deletion announces nothing to validate: acknowledged, not a poison pill.
        assert_eq!(by_id("deleted").outcome, Outcome::Acknowledged);
        assert_eq!(by_id("deleted").action, Action::Done);
        // Real engine events parse; the unreachable endpoint makes them transient errors,
        // retried, never a verdict on the replica.
        for id in ["ls", "ms"] {
            let r = by_id(id);
            assert_eq!(r.outcome, Outcome::TransientError, "{r:?}");
            assert!(matches!(r.action, Action::RetryAfter(_)));
            assert_eq!(r.object.as_ref().unwrap().bucket, "evb-t3-src");
        }
        assert_eq!(
            by_id("ls").object.as_ref().unwrap().key,
            "reports/Q1 summary+final é.txt"
        );
        let mut failed: Vec<&str> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        failed.sort();
        assert_eq!(failed, vec!["ls", "ms", "poison"]);
    }

    #[test]
    fn reads_the_redrive_policy() {
        assert_eq!(
            max_receive_count_of(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq","maxReceiveCount":5}"#
            ),
            Some(5)
        );
        assert_eq!(
            max_receive_count_of(r#"{"deadLetterTargetArn":"x","maxReceiveCount":"7"}"#),
            Some(7)
        );
        assert_eq!(max_receive_count_of("{}"), None);
        assert_eq!(max_receive_count_of("not json"), None);
    }

    fn batch_of_real_events(n: usize) -> SqsEvent {
        let body =
            std::fs::read_to_string(format!("{EVENTS}/localstack-4.13.1-event-1.json")).unwrap();
        let mut event = SqsEvent::default();
        for i in 0..n {
            event.records.push(message(&format!("m{i}"), &body));
        }
        event
    }

    #[tokio::test]
    async fn nothing_starts_within_the_deadline_margin() {
        let v = offline_validator().await;
        let deadline = Instant::now() + Duration::from_millis(500);
        let report = v
            .handle_with_report(batch_of_real_events(3), Some(deadline))
            .await;
        assert_eq!(report.records.len(), 3);
        for r in &report.records {
            assert_eq!(r.outcome, Outcome::Deferred, "{r:?}");
            assert!(r.action.is_batch_failure());
        }
        assert_eq!(report.response.batch_item_failures.len(), 3);
    }

    /// An endpoint that accepts connections and never answers (a stalled S3): records still
    /// running near the deadline are cut, and the batch answers before the deadline.
    #[tokio::test]
    async fn a_stalled_dependency_never_makes_the_batch_overrun() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let v = validator_at(&endpoint).await;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(2000);
        let report = v
            .handle_with_report(batch_of_real_events(2), Some(deadline))
            .await;
        let took = started.elapsed();
        hold.abort();
        assert!(
            took < Duration::from_millis(2000),
            "answered after {took:?}"
        );
        assert!(
            took >= Duration::from_millis(1000),
            "cut too early: {took:?}"
        );
        for r in &report.records {
            assert_eq!(r.outcome, Outcome::Deferred, "{r:?}");
            assert!(r.detail.contains("cut"), "{}", r.detail);
        }
        assert_eq!(report.response.batch_item_failures.len(), 2);
    }

    /// An S3 that answers every request 400 with no body, as S3 answers a HEAD of an SSE-C
    /// object without its customer key: the record is `unverifiable (SSE-C)`, not an error.
    #[tokio::test]
    async fn a_head_answering_400_is_unverifiable_sse_c() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let _ = socket
                            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                });
            }
        });
        let v = validator_at(&endpoint).await;
        let report = v.handle_with_report(batch_of_real_events(1), None).await;
        server.abort();
        let r = &report.records[0];
        assert_eq!(r.outcome, Outcome::Unverifiable, "{r:?}");
        assert!(r.detail.contains("SSE-C"), "{}", r.detail);
    }

    /// What [`FakeAws`] saw: one `(operation, JSON request)` per SQS call.
    type SqsCalls = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;

    /// A local AWS endpoint for the handler's queue logic: answers the SQS calls the handler
    /// makes (JSON protocol, `X-Amz-Target: AmazonSQS.<Operation>`) and records them, with
    /// a redrive policy of `max_receive_count`; answers every S3 request (no target header)
    /// with the status `s3_status` gives for its path.
    struct FakeAws {
        endpoint: String,
        calls: SqsCalls,
        server: tokio::task::JoinHandle<()>,
    }

    impl FakeAws {
        async fn start(max_receive_count: u32, s3_status: fn(&str) -> u16) -> FakeAws {
            use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let calls = SqsCalls::default();
            let (seen, base) = (calls.clone(), endpoint.clone());
            let server = tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let (seen, base) = (seen.clone(), base.clone());
                    tokio::spawn(async move {
                        let mut socket = BufReader::new(socket);
                        loop {
                            let mut request_line = String::new();
                            if socket.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                            let (mut length, mut target) = (0usize, None::<String>);
                            loop {
                                let mut line = String::new();
                                if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                let line = line.trim_end();
                                if line.is_empty() {
                                    break;
                                }
                                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                                match name.to_ascii_lowercase().as_str() {
                                    "content-length" => length = value.trim().parse().unwrap(),
                                    "x-amz-target" => target = Some(value.trim().to_string()),
                                    _ => {}
                                }
                            }
                            let mut body = vec![0u8; length];
                            socket.read_exact(&mut body).await.unwrap();
                            let response = match target {
                                None => format!(
                                    "HTTP/1.1 {} Fake\r\ncontent-length: 0\r\n\r\n",
                                    s3_status(&path)
                                ),
                                Some(target) => {
                                    let op = target.trim_start_matches("AmazonSQS.").to_string();
                                    let request: serde_json::Value =
                                        serde_json::from_slice(&body).unwrap_or_default();
                                    let answer = match op.as_str() {
                                        "GetQueueUrl" => serde_json::json!({
                                            "QueueUrl": format!("{base}/123456789012/{}", request["QueueName"].as_str().unwrap_or(""))
                                        }),
                                        "GetQueueAttributes" => serde_json::json!({"Attributes": {
                                            "RedrivePolicy": serde_json::json!({
                                                "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:validation-dlq",
                                                "maxReceiveCount": max_receive_count,
                                            }).to_string()
                                        }}),
                                        "SendMessage" => serde_json::json!({"MessageId": "fake"}),
                                        _ => serde_json::json!({}),
                                    }
                                    .to_string();
                                    seen.lock().unwrap().push((op, request));
                                    format!(
                                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{answer}",
                                        answer.len()
                                    )
                                }
                            };
                            if socket.write_all(response.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            FakeAws {
                endpoint,
                calls,
                server,
            }
        }

        /// The validator under test, its failure queue on this endpoint.
        async fn validator(&self) -> Validator {
            let mut v = validator_at(&self.endpoint).await;
            v.config.failure_queue_url = Some(format!("{}/123456789012/failure", self.endpoint));
            v
        }

        /// The messages sent to the queue named `queue`: (body, attributes).
        fn sent_to(&self, queue: &str) -> Vec<(String, serde_json::Value)> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(op, r)| {
                    op == "SendMessage"
                        && r["QueueUrl"]
                            .as_str()
                            .is_some_and(|u| u.ends_with(&format!("/{queue}")))
                })
                .map(|(_, r)| {
                    (
                        r["MessageBody"].as_str().unwrap_or("").to_string(),
                        r["MessageAttributes"].clone(),
                    )
                })
                .collect()
        }

        fn count(&self, operation: &str) -> usize {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(op, _)| op == operation)
                .count()
        }
    }

    impl Drop for FakeAws {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    /// A message from the `validation` queue holding one S3 notification record per key.
    fn multi_record_message(keys: &[&str], receive_count: u32) -> SqsMessage {
        let records: Vec<_> = keys
            .iter()
            .map(|k| crate::event::test_record("src", k, Utc::now()))
            .collect();
        let body = serde_json::json!({ "Records": records }).to_string();
        let mut m = message("multi", &body);
        m.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:validation".into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        m
    }

    /// Finding #12: a body of 3 records that all reach `maxReceiveCount` is re-queued as 3
    /// messages holding 1 record each (each with the attempts so far), never as 3 copies of
    /// the 3-record body; the original is deleted.
    #[tokio::test]
    async fn a_lagging_multi_record_body_is_requeued_one_record_per_message() {
        let aws = FakeAws::start(5, |_| 503).await;
        let v = aws.validator().await;
        let mut event = SqsEvent::default();
        event
            .records
            .push(multi_record_message(&["k0", "k1", "k2"], 5));
        let report = v.handle_with_report(event, None).await;

        assert_eq!(report.records.len(), 3);
        for r in &report.records {
            assert_eq!(r.outcome, Outcome::TransientError, "{r:?}");
            assert!(matches!(r.action, Action::Requeued(_)), "{r:?}");
        }
        assert!(report.response.batch_item_failures.is_empty());
        let requeued = aws.sent_to("validation");
        assert_eq!(requeued.len(), 3, "{requeued:?}");
        let mut keys: Vec<String> = requeued
            .iter()
            .map(|(body, attributes)| {
                let events = parse_body(body).unwrap();
                assert_eq!(
                    events.len(),
                    1,
                    "a re-queued message holds one record: {body}"
                );
                assert_eq!(
                    attributes[ATTEMPTS_ATTRIBUTE]["StringValue"].as_str(),
                    Some("5"),
                    "{attributes}"
                );
                events[0].key.clone()
            })
            .collect();
        keys.sort();
        assert_eq!(keys, ["k0", "k1", "k2"]);
        assert_eq!(aws.count("DeleteMessage"), 1);
        assert_eq!(aws.count("ChangeMessageVisibility"), 0);
    }

    /// Finding #12: a record that is final within its body (its failure record sent) is
    /// not judged again: only the lagging records of the body are re-queued, each alone,
    /// even before the receive count runs out.
    #[tokio::test]
    async fn a_final_record_of_a_body_is_never_requeued() {
        // `final.txt` answers its HEAD 400 (unverifiable: an alert); the others 503.
        let aws =
            FakeAws::start(5, |path| if path.contains("final.txt") { 400 } else { 503 }).await;
        let v = aws.validator().await;
        let mut event = SqsEvent::default();
        event
            .records
            .push(multi_record_message(&["a.txt", "final.txt", "b.txt"], 1));
        let report = v.handle_with_report(event, None).await;

        let outcome = |key: &str| {
            report
                .records
                .iter()
                .find(|r| r.object.as_ref().unwrap().key == key)
                .unwrap()
        };
        assert_eq!(outcome("final.txt").action, Action::FailureSent);
        assert!(matches!(outcome("a.txt").action, Action::Requeued(_)));
        assert!(matches!(outcome("b.txt").action, Action::Requeued(_)));
        assert!(report.response.batch_item_failures.is_empty());
        assert_eq!(aws.sent_to("failure").len(), 1);
        let mut keys: Vec<String> = aws
            .sent_to("validation")
            .iter()
            .map(|(body, _)| {
                let events = parse_body(body).unwrap();
                assert_eq!(events.len(), 1, "{body}");
                events[0].key.clone()
            })
            .collect();
        keys.sort();
        assert_eq!(keys, ["a.txt", "b.txt"]);
        assert_eq!(aws.count("DeleteMessage"), 1);
    }

    /// A body of one record still retries with `ChangeMessageVisibility` until its last
    /// receive, and is then re-queued exactly as it arrived.
    #[tokio::test]
    async fn a_single_record_body_keeps_its_retry_path() {
        let aws = FakeAws::start(5, |_| 503).await;
        let v = aws.validator().await;
        let mut event = SqsEvent::default();
        event.records.push(multi_record_message(&["k"], 1));
        let report = v.handle_with_report(event, None).await;
        assert!(matches!(report.records[0].action, Action::RetryAfter(_)));
        assert_eq!(aws.count("ChangeMessageVisibility"), 1);
        assert!(aws.sent_to("validation").is_empty());

        let last = multi_record_message(&["k"], 5);
        let body = last.body.clone().unwrap();
        let mut event = SqsEvent::default();
        event.records.push(last);
        let report = v.handle_with_report(event, None).await;
        assert!(matches!(report.records[0].action, Action::Requeued(_)));
        let sent = aws.sent_to("validation");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, body);
    }

    fn with_carried_attempts(mut m: SqsMessage, carried: &str) -> SqsMessage {
        let mut attr = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
        attr.string_value = Some(carried.into());
        attr.data_type = Some("Number".into());
        m.message_attributes.insert(ATTEMPTS_ATTRIBUTE.into(), attr);
        m
    }

    /// Finding #24: `autobackup-attempts` is set by whoever sends the message. `u32::MAX`
    /// once overflowed `carried + receive_count` (a panic in debug builds, a wrap to a small
    /// attempt in release builds); now it is clamped and the sum saturates.
    #[tokio::test]
    async fn a_hostile_attempts_attribute_neither_panics_nor_wraps() {
        let v = offline_validator().await;
        let body =
            std::fs::read_to_string(format!("{EVENTS}/localstack-4.13.1-event-1.json")).unwrap();
        let mut event = SqsEvent::default();
        event.records.push(with_carried_attempts(
            message("max", &body),
            &u32::MAX.to_string(),
        ));
        let report = v.handle_with_report(event, None).await;
        let r = &report.records[0];
        assert!(!r.detail.contains("panicked"), "{r:?}");
        assert_eq!(r.outcome, Outcome::TransientError, "{r:?}");
        assert_eq!(r.attempt, MAX_CARRIED_ATTEMPTS + 1);
    }

    #[test]
    fn carried_attempts_are_clamped_and_never_overflow() {
        let of = |carried: &str, receives: &str| {
            let mut m = with_carried_attempts(message("m", "{}"), carried);
            m.attributes
                .insert("ApproximateReceiveCount".into(), receives.into());
            attempts_of(&m)
        };
        assert_eq!(of("2", "3"), (3, 5));
        assert_eq!(
            of(&u32::MAX.to_string(), "1"),
            (1, MAX_CARRIED_ATTEMPTS + 1)
        );
        assert_eq!(of("99999999999999999999999", "1"), (1, 1));
        assert_eq!(
            of(&u64::MAX.to_string(), "2"),
            (2, MAX_CARRIED_ATTEMPTS + 2)
        );
        assert_eq!(of("-5", "1"), (1, 1));
        assert_eq!(of("not a number", "1"), (1, 1));
        assert_eq!(
            of(&u32::MAX.to_string(), &u32::MAX.to_string()),
            (u32::MAX, u32::MAX)
        );
    }

    /// Finding #31: a key and a detail holding line breaks, C1 controls and bidi overrides
    /// stay on the record's one log line, even in a text-format log (which, unlike the
    /// JSON one, writes `%` values raw).
    #[test]
    fn record_logs_cannot_be_forged() {
        #[derive(Clone, Default)]
        struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Capture::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let report = RecordReport {
            message_id: "m".into(),
            object: Some(ObjectRef {
                bucket: "b".into(),
                key: "k\nINFO forged: validated".into(),
                version_id: Some("v\r\n1".into()),
                category: None,
            }),
            outcome: Outcome::Mismatch,
            detail: "differs\nINFO record decided outcome=validated\u{85}\u{2028}\u{202E}".into(),
            evidence: Vec::new(),
            attempt: 1,
            action: Action::Done,
            version_source: None,
            replicas: Vec::new(),
            duration_ms: 0,
        };
        tracing::subscriber::with_default(subscriber, || log_report(&report));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.trim_end().chars().any(crate::text::is_unsafe),
            "{text:?}"
        );
        assert!(text.contains("k\\nINFO forged"), "{text}");
    }

    #[tokio::test]
    async fn an_empty_batch_reports_no_failures() {
        let v = offline_validator().await;
        let r = v.handle(SqsEvent::default(), None).await;
        assert!(r.batch_item_failures.is_empty());
    }
}

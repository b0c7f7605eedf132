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
//!
//! Floor 5: may import floors 0-4.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{FutureExt, StreamExt};

use crate::attempts::{attempts_of, Attempt};
use crate::aws_error::classify;
use crate::decision::Outcome;
use crate::event::parse_body;
use crate::failure_record::ObjectRef;
use crate::report::{log_report, Action, BatchReport, RecordReport};
use crate::text::escape;
use crate::validator::Validator;

impl Validator {
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
        let (size, source) = crate::lambda::batch_origin(&event);
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
        if delete_at_once(&reports) {
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

/// Whether a message is deleted as soon as its records are processed: when one of them
/// had a side effect and none is left to retry. A message with a record still to retry
/// stays, so that record is retried.
pub(crate) fn delete_at_once(reports: &[RecordReport]) -> bool {
    let retried = reports.iter().any(|r| r.action.is_batch_failure());
    !retried && reports.iter().any(|r| r.action.has_side_effect())
}

#[cfg(test)]
mod tests;

//! A decision carried out: a failure record sent, a retry through the message's visibility or
//! a fresh re-queued copy, the overdue watch and its resolved notice; and the queue facts those
//! need (its URL, its redrive policy's `maxReceiveCount`).
//!
//! Floor 6: may import floors 0-5.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;

use crate::attempts::{max_receive_count_of, Attempt, ATTEMPTS_ATTRIBUTE, OVERDUE_ATTRIBUTE};
use crate::aws_error::{classify, AwsError};
use crate::decision::Outcome;
use crate::event::ObjectEvent;
use crate::failure_record::{FailureRecord, ObjectRef, FAILURE_RECORD_SCHEMA};
use crate::judge::Judged;
use crate::report::Action;
use crate::retry::backoff;
use crate::validator::Validator;

/// What a decision asks of the queues, before any call: the pure half of
/// [`Validator::act`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Look again later: the replica is lagging, a call failed transiently, or an overdue
    /// version was alerted already and is still watched.
    Retry,
    /// The last word on an overdue version past `OVERDUE_CAP_SECONDS`: a final alert, and
    /// watching stops.
    GiveUp,
    /// The first overdue alert, then keep watching. Overdue is not final: without RTC "the
    /// majority of objects replicate within 15 minutes, but they can sometimes take a couple
    /// of hours" (S3 User Guide, "Troubleshooting replication").
    AlertAndWatch,
    /// The replica arrived after the overdue alert: a RESOLVED notice.
    Resolve,
    /// A failure record for the notifier.
    Alert,
    /// Nothing more: the message is done.
    Done,
}

/// The plan for `outcome`, given whether the message carries the overdue mark (`alerted`),
/// whether watching is past its cap, and whether `unverifiable` alerts.
pub(crate) fn plan(
    outcome: Outcome,
    alerted: bool,
    past_cap: bool,
    alert_on_unverifiable: bool,
) -> Plan {
    match outcome {
        Outcome::Lagging | Outcome::TransientError => Plan::Retry,
        Outcome::ReplicationOverdue if past_cap => Plan::GiveUp,
        Outcome::ReplicationOverdue if alerted => Plan::Retry,
        Outcome::ReplicationOverdue => Plan::AlertAndWatch,
        Outcome::Validated if alerted => Plan::Resolve,
        o if o.is_failure(alert_on_unverifiable) => Plan::Alert,
        _ => Plan::Done,
    }
}

/// Whether watching an overdue version is over: it is overdue and older than `cap`.
pub(crate) fn past_cap(outcome: Outcome, age: Option<Duration>, cap: Duration) -> bool {
    outcome == Outcome::ReplicationOverdue && age.is_some_and(|age| age > cap)
}

impl Validator {
    pub(crate) async fn act(
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
        let age = event.time.and_then(|t| (Utc::now() - t).to_std().ok());
        let past_cap = past_cap(outcome, age, self.config.overdue_cap);
        let record = |outcome: Outcome, detail: String, resolves: Option<Outcome>| FailureRecord {
            idempotency_key: Some(crate::failure_record::idempotency_key(
                object, event.time, outcome, resolves, past_cap,
            )),
            schema: FAILURE_RECORD_SCHEMA.to_string(),
            outcome,
            detail,
            object: object.clone(),
            replica: judged.replicas.first().cloned(),
            replicas: every_destination(&judged.replicas),
            evidence: judged.decision.evidence.clone(),
            attempts: attempt,
            first_seen: event.time,
            decided_at: Utc::now(),
            source_message_id: Some(message_id.to_string()),
            resolves,
            final_alert: past_cap,
        };
        match plan(
            outcome,
            alerted,
            past_cap,
            self.config.alert_on_unverifiable,
        ) {
            Plan::Retry => self.retry(msg, event, at).await,
            Plan::GiveUp => {
                let detail = format!(
                    "{}; gave up watching after {}s (OVERDUE_CAP_SECONDS)",
                    judged.decision.detail,
                    self.config.overdue_cap.as_secs()
                );
                self.send_failure(&record(outcome, detail, None)).await
            }
            Plan::AlertAndWatch => {
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
            Plan::Resolve => {
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
            Plan::Alert => {
                self.send_failure(&record(outcome, judged.decision.detail.clone(), None))
                    .await
            }
            Plan::Done => Action::Done,
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

    pub(crate) fn retry_delay(&self, attempt: u32) -> Duration {
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
    pub(crate) async fn receive_limit(&self, msg: &SqsMessage) -> Option<u32> {
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
    pub(crate) async fn queue_url(&self, msg: &SqsMessage) -> Option<String> {
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

/// The record's `replicas`: every destination's replica when there is more than one (the
/// `replica` field holds the first); empty for a single destination, as the record's schema
/// says.
pub(crate) fn every_destination(replicas: &[ObjectRef]) -> Vec<ObjectRef> {
    if replicas.len() > 1 {
        replicas.to_vec()
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    use Outcome::*;
    use Plan::*;

    /// Every outcome with and without the overdue mark, within the cap; `unverifiable`
    /// alerting (the default). The plans follow the outcome's meaning (decision.rs) and the
    /// overdue watch: alert once, keep watching, RESOLVED when the replica comes.
    #[rstest]
    #[case(Validated, false, Done)]
    #[case(Validated, true, Resolve)]
    #[case(Lagging, false, Retry)]
    #[case(Lagging, true, Retry)]
    #[case(TransientError, false, Retry)]
    #[case(TransientError, true, Retry)]
    #[case(ReplicationOverdue, false, AlertAndWatch)]
    #[case(ReplicationOverdue, true, Retry)]
    #[case(Mismatch, false, Alert)]
    #[case(Mismatch, true, Alert)]
    #[case(ReplicaMissing, false, Alert)]
    #[case(ReplicationFailed, false, Alert)]
    #[case(ReplicationFailed, true, Alert)]
    #[case(NotReplicated, false, Alert)]
    #[case(Error, false, Alert)]
    #[case(Unverifiable, false, Alert)]
    #[case(Superseded, false, Done)]
    #[case(Superseded, true, Done)]
    #[case(Malformed, false, Done)]
    #[case(Acknowledged, false, Done)]
    #[case(Deferred, false, Done)]
    fn each_outcome_has_its_plan(
        #[case] outcome: Outcome,
        #[case] alerted: bool,
        #[case] want: Plan,
    ) {
        assert_eq!(plan(outcome, alerted, false, true), want);
    }

    #[test]
    fn past_the_cap_an_overdue_version_gets_its_final_alert() {
        assert_eq!(plan(ReplicationOverdue, false, true, true), GiveUp);
        assert_eq!(plan(ReplicationOverdue, true, true, true), GiveUp);
    }

    #[test]
    fn unverifiable_alerts_only_when_configured_to() {
        assert_eq!(plan(Unverifiable, false, false, false), Done);
        assert_eq!(plan(Unverifiable, false, false, true), Alert);
    }

    #[test]
    fn the_cap_counts_only_for_overdue_versions_older_than_it() {
        let cap = Duration::from_secs(3600);
        let over = Some(cap + Duration::from_secs(1));
        assert!(past_cap(ReplicationOverdue, over, cap));
        assert!(!past_cap(ReplicationOverdue, Some(cap), cap));
        assert!(!past_cap(ReplicationOverdue, Some(Duration::ZERO), cap));
        // No event time: the age is unknown, watching goes on.
        assert!(!past_cap(ReplicationOverdue, None, cap));
        assert!(!past_cap(Lagging, over, cap));
        assert!(!past_cap(Mismatch, over, cap));
    }

    #[test]
    fn the_record_lists_replicas_only_for_several_destinations() {
        let at = |bucket: &str| ObjectRef {
            bucket: bucket.into(),
            key: "k".into(),
            version_id: Some("v".into()),
            category: None,
        };
        assert!(every_destination(&[]).is_empty());
        assert!(every_destination(&[at("a")]).is_empty());
        assert_eq!(every_destination(&[at("a"), at("b")]), [at("a"), at("b")]);
    }
}

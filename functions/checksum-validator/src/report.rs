//! What the validator did with each record, and the structured log line that carries it: the
//! [`Action`] taken, the [`RecordReport`] of one object, the [`BatchReport`] of a batch.
//!
//! Floor 4: may import floors 0-3.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde::{Deserialize, Serialize};

use crate::decision::{Comparison, Outcome};
use crate::failure_record::ObjectRef;
use crate::text::escape;

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
    pub(crate) fn has_side_effect(&self) -> bool {
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

/// One structured log line per record: outcome, evidence, attempt, duration, and the whole
/// report as JSON (`report`, what a reader of the logs rebuilds it from: unescape it with
/// [`crate::text::unescape`], then parse). Every text field passes through [`escape`]: keys
/// and details are untrusted (see [`crate::text`]), and a raw line break would forge a log
/// line in a text-format log.
pub(crate) fn log_report(r: &RecordReport) {
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
    use rstest::rstest;

    const D: Duration = Duration::from_millis(1500);

    /// Which actions list the record in `batchItemFailures` and which had a side effect
    /// after which the original message must not replay.
    #[rstest]
    #[case(Action::Done, false, false)]
    #[case(Action::FailureSent, false, true)]
    #[case(Action::AlertedAndRequeued(D), false, true)]
    #[case(Action::ResolvedSent, false, true)]
    #[case(Action::RetryAfter(D), true, false)]
    #[case(Action::Requeued(D), false, true)]
    #[case(Action::LeftOnQueue("poison".into()), true, false)]
    #[case(Action::Deferred("deadline".into()), true, false)]
    fn each_action_says_what_it_did(
        #[case] action: Action,
        #[case] batch_failure: bool,
        #[case] side_effect: bool,
    ) {
        assert_eq!(action.is_batch_failure(), batch_failure, "{action:?}");
        assert_eq!(action.has_side_effect(), side_effect, "{action:?}");
    }

    /// Delays are written as seconds and read back to the millisecond.
    #[test]
    fn actions_round_trip_through_json() {
        let json = serde_json::to_string(&Action::RetryAfter(D)).unwrap();
        assert_eq!(json, r#"{"action":"retry-after","detail":1.5}"#);
        assert_eq!(
            serde_json::from_str::<Action>(&json).unwrap(),
            Action::RetryAfter(D)
        );
        assert!(serde_json::from_str::<Action>(r#"{"action":"retry-after","detail":-1}"#).is_err());
    }
}

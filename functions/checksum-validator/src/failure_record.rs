//! The structured record a decided failure travels in, from the validator to the notifier.
//!
//! A message left in a DLQ carries only its original body; a failure record carries the
//! reason, the evidence, the attempts and when the object was first seen. A record with
//! `resolves` set is a resolved notice for an earlier alert (a late replica validated).
//!
//! Floor 3: may import floors 0-2.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decision::{Comparison, Outcome};

/// `schema` value of every failure record.
pub const FAILURE_RECORD_SCHEMA: &str = "autobackup.validation-failure/1";

/// The object a failure is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl ObjectRef {
    pub fn s3_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// A decided validation failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub schema: String,
    /// The same for every record about the same decision on the same version (a replayed
    /// delivery, a duplicate S3 event): [`idempotency_key`] over this record's own fields
    /// (see [`FailureRecord::computed_key`]). The notifier sends one alert per key, and
    /// recomputes it rather than trusting this field: anyone who can send to the failure
    /// queue could otherwise claim another record's key and suppress its alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub outcome: Outcome,
    pub detail: String,
    pub object: ObjectRef,
    /// The replica at the (first) destination, looked up by the source's version id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ObjectRef>,
    /// Every destination's replica, when the object has more than one destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ObjectRef>,
    #[serde(default)]
    pub evidence: Vec<Comparison>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<Utc>>,
    pub decided_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_message_id: Option<String>,
    /// Set on a resolved notice: the earlier alert this record resolves (the outcome is
    /// then the new, healthy one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolves: Option<Outcome>,
    /// Set on the final alert of an overdue record, sent when the validator gives up
    /// watching it (`OVERDUE_CAP_SECONDS`): another alert than the first overdue one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_alert: bool,
}

/// The idempotency key of a decision: SHA-256 over the version (bucket, key, version id,
/// and the event time, which tells apart the writes of an unversioned key), the outcome,
/// what it resolves, and whether it is the final alert after the watch cap; hex, 32 digits.
pub fn idempotency_key(
    object: &ObjectRef,
    event_time: Option<DateTime<Utc>>,
    outcome: Outcome,
    resolves: Option<Outcome>,
    final_alert: bool,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        object.bucket.as_str(),
        object.key.as_str(),
        object.version_id.as_deref().unwrap_or(""),
        &event_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
        outcome.as_str(),
        resolves.map(Outcome::as_str).unwrap_or(""),
        if final_alert { "final" } else { "first" },
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl FailureRecord {
    /// Parses a body as a failure record, if it is one.
    pub fn parse(body: &str) -> Option<FailureRecord> {
        let record: FailureRecord = serde_json::from_str(body).ok()?;
        (record.schema == FAILURE_RECORD_SCHEMA).then_some(record)
    }

    /// The [`idempotency_key`] of this record's decision, from its own fields (object,
    /// `first_seen`, which is the event time, outcome, `resolves`, `final_alert`), whatever
    /// its `idempotency_key` field says.
    pub fn computed_key(&self) -> String {
        idempotency_key(
            &self.object,
            self.first_seen,
            self.outcome,
            self.resolves,
            self.final_alert,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(version: Option<&str>) -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version.map(str::to_string),
            category: None,
        }
    }

    #[test]
    fn one_key_per_decision_on_one_version() {
        let t = "2026-01-01T00:00:00Z".parse().ok();
        let key = |o: &ObjectRef, t, outcome, resolves, fin| {
            idempotency_key(o, t, outcome, resolves, fin)
        };
        let base = key(&object(Some("v1")), t, Outcome::Mismatch, None, false);
        // A replay of the same decision: the same key.
        assert_eq!(
            base,
            key(&object(Some("v1")), t, Outcome::Mismatch, None, false)
        );
        assert_eq!(base.len(), 32);
        // Anything that makes it another alert: another key.
        let others = [
            key(&object(Some("v2")), t, Outcome::Mismatch, None, false),
            key(&object(None), t, Outcome::Mismatch, None, false),
            key(&object(Some("v1")), None, Outcome::Mismatch, None, false),
            key(&object(Some("v1")), t, Outcome::ReplicaMissing, None, false),
            key(
                &object(Some("v1")),
                t,
                Outcome::Mismatch,
                Some(Outcome::ReplicationOverdue),
                false,
            ),
            key(&object(Some("v1")), t, Outcome::Mismatch, None, true),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(&base, other, "variant {i}");
        }
        // Fields are length-prefixed: moving a character across a boundary changes the key.
        let a = ObjectRef {
            bucket: "ab".into(),
            key: "c".into(),
            ..object(None)
        };
        let b = ObjectRef {
            bucket: "a".into(),
            key: "bc".into(),
            ..object(None)
        };
        assert_ne!(
            key(&a, t, Outcome::Mismatch, None, false),
            key(&b, t, Outcome::Mismatch, None, false)
        );
    }

    #[test]
    fn the_computed_key_is_the_decision_key_and_final_alert_is_optional() {
        let t: Option<DateTime<Utc>> = "2026-01-01T00:00:00Z".parse().ok();
        let body = |extra: &str| {
            format!(
                r#"{{"schema":"{FAILURE_RECORD_SCHEMA}","outcome":"replication-overdue","detail":"d",
                "object":{{"bucket":"b","key":"k","version_id":"v1"}},"attempts":1,
                "first_seen":"2026-01-01T00:00:00Z","decided_at":"2026-01-01T00:01:00Z"{extra}}}"#
            )
        };
        let first = FailureRecord::parse(&body("")).expect("a record");
        assert!(!first.final_alert);
        assert_eq!(
            first.computed_key(),
            idempotency_key(
                &object(Some("v1")),
                t,
                Outcome::ReplicationOverdue,
                None,
                false
            )
        );
        let last = FailureRecord::parse(&body(r#","final_alert":true"#)).expect("a record");
        assert_eq!(
            last.computed_key(),
            idempotency_key(
                &object(Some("v1")),
                t,
                Outcome::ReplicationOverdue,
                None,
                true
            )
        );
        // A first alert's JSON does not carry the field.
        let json = serde_json::to_string(&first).unwrap_or_default();
        assert!(!json.contains("final_alert"), "{json}");
    }

    #[test]
    fn an_object_is_named_by_its_s3_uri() {
        assert_eq!(object(None).s3_uri(), "s3://b/k");
    }
}

//! The structured record a decided failure travels in, from the validator to the notifier.
//!
//! A message left in a DLQ carries only its original body; a failure record carries the
//! reason, the evidence, the attempts and when the object was first seen. A record with
//! `resolves` set is a resolved notice for an earlier alert (a late replica validated).

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
}

impl FailureRecord {
    /// Parses a body as a failure record, if it is one.
    pub fn parse(body: &str) -> Option<FailureRecord> {
        let record: FailureRecord = serde_json::from_str(body).ok()?;
        (record.schema == FAILURE_RECORD_SCHEMA).then_some(record)
    }
}

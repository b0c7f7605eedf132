//! The steps of a scenario file (`[[step]]` tables): one type per step kind, as serde reads
//! them, plus the validator options and [`LocatedStep`] (a step with its line). The checks
//! serde cannot express live in `super::check`; the agent's step types in [`crate::agent`].
//!
//! Floor 5: may import floors 0-4 (up to the runtime); pure parsing, nothing of scenario play.

use std::collections::BTreeMap;

use checksum_validator::Outcome;
use serde::{Deserialize, Deserializer};

use crate::agent::tree::TreeSpec;
use crate::agent::{BackupStep, CostStep, RestoreStep};
use crate::fidelity::faults::Service;
use crate::fidelity::replicator::Fault;

/// The largest generated upload a scenario may ask for (held in memory while uploaded).
pub const MAX_UPLOAD_SIZE: u64 = 512 << 20;

/// A value a scenario names by one of a fixed set of words (a queue role, a storage class,
/// a service, an outcome). Read from a string; an unknown word is refused with every
/// accepted one, and serde places the error at the value's line and column.
pub trait Named: Sized + Copy + PartialEq + 'static {
    /// What the value is, for the error: `queue`, `storage class`, ...
    const WHAT: &'static str;
    /// Every accepted value with its word, in the order the error lists them.
    const ALL: &'static [(&'static str, Self)];

    /// The value a word names.
    fn parse(word: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let words: Vec<&str> = Self::ALL.iter().map(|(w, _)| *w).collect();
                format!(
                    "unknown {} {word:?} (one of {})",
                    Self::WHAT,
                    words.join(", ")
                )
            })
    }

    /// The word of the value, as a scenario writes it.
    fn word(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(w, _)| *w)
            .expect("ALL lists every value")
    }
}

/// `deserialize_with` for a [`Named`] value.
fn named<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<T, D::Error> {
    let word = String::deserialize(d)?;
    T::parse(&word).map_err(serde::de::Error::custom)
}

/// `deserialize_with` for an optional [`Named`] value (with `#[serde(default)]`).
fn named_opt<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<Option<T>, D::Error> {
    named(d).map(Some)
}

/// A queue of the topology, by its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    Validation,
    ValidationDlq,
    Failure,
    FailureDlq,
    EventsDlq,
}

impl Named for QueueRole {
    const WHAT: &'static str = "queue";
    const ALL: &'static [(&'static str, Self)] = &[
        ("validation", QueueRole::Validation),
        ("validation-dlq", QueueRole::ValidationDlq),
        ("failure", QueueRole::Failure),
        ("failure-dlq", QueueRole::FailureDlq),
        ("events-dlq", QueueRole::EventsDlq),
    ];
}

impl QueueRole {
    /// The role's name in [`crate::topology::Queues::by_role`].
    pub fn as_str(self) -> &'static str {
        self.word()
    }
}

impl<'de> Deserialize<'de> for QueueRole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named(d)
    }
}

/// An S3 storage class an upload may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageClass {
    Standard,
    StandardIa,
    OnezoneIa,
    IntelligentTiering,
    GlacierIr,
    Glacier,
    DeepArchive,
}

impl Named for StorageClass {
    const WHAT: &'static str = "storage class";
    const ALL: &'static [(&'static str, Self)] = &[
        ("STANDARD", StorageClass::Standard),
        ("STANDARD_IA", StorageClass::StandardIa),
        ("ONEZONE_IA", StorageClass::OnezoneIa),
        ("INTELLIGENT_TIERING", StorageClass::IntelligentTiering),
        ("GLACIER_IR", StorageClass::GlacierIr),
        ("GLACIER", StorageClass::Glacier),
        ("DEEP_ARCHIVE", StorageClass::DeepArchive),
    ];
}

impl StorageClass {
    /// The class as S3 spells it.
    pub fn as_str(self) -> &'static str {
        self.word()
    }

    /// GLACIER and DEEP_ARCHIVE: objects S3 replication does not replicate.
    pub fn is_cold(self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }
}

impl<'de> Deserialize<'de> for StorageClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named(d)
    }
}

/// An outage's service: one the fidelity layer can fail (its SigV4 signing name).
impl Named for Service {
    const WHAT: &'static str = "service";
    const ALL: &'static [(&'static str, Self)] = &[
        ("s3", Service::S3),
        ("sqs", Service::Sqs),
        ("sns", Service::Sns),
        ("kms", Service::Kms),
        ("events", Service::Events),
    ];
}

/// An outcome a wait may name, as the validator writes it.
impl Named for Outcome {
    const WHAT: &'static str = "outcome";
    const ALL: &'static [(&'static str, Self)] = &[
        ("validated", Outcome::Validated),
        ("lagging", Outcome::Lagging),
        ("mismatch", Outcome::Mismatch),
        ("replica-missing", Outcome::ReplicaMissing),
        ("replication-failed", Outcome::ReplicationFailed),
        ("replication-overdue", Outcome::ReplicationOverdue),
        ("not-replicated", Outcome::NotReplicated),
        ("superseded", Outcome::Superseded),
        ("unverifiable", Outcome::Unverifiable),
        ("malformed", Outcome::Malformed),
        ("acknowledged", Outcome::Acknowledged),
        ("error", Outcome::Error),
        ("transient-error", Outcome::TransientError),
        ("deferred", Outcome::Deferred),
    ];
}

/// Validator settings a scenario may change (its Lambda environment).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorOptions {
    /// `DEEP_VERIFY`: stream and hash both objects when no comparable checksum exists.
    #[serde(default)]
    pub deep: bool,
    /// `ALERT_ON_UNVERIFIABLE` (default true).
    #[serde(default)]
    pub alert_on_unverifiable: Option<bool>,
}

/// A step with the line of its `[[step]]` header.
#[derive(Debug, Clone)]
pub struct LocatedStep {
    pub line: usize,
    pub step: Step,
}

/// One step of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Put an object into a category's primary bucket.
    Upload(Upload),
    /// Send a raw message to one of the topology's queues.
    Send(SendMessage),
    /// Control the harness replicator.
    Replication(ReplicationControl),
    /// Wait until a condition holds.
    Wait(Wait),
    /// Move every message from one queue to another (the seed's DLQ redrive).
    Redrive(Redrive),
    /// Delete an object: a delete marker, or the current version for good.
    Delete(Delete),
    /// Send an AWS-shaped `Object Created` event for an object's current version (a
    /// duplicate delivery, as S3's at-least-once delivery allows).
    SendEvent(SendEvent),
    /// Pause or resume a function's trigger (like disabling its event source mapping), or
    /// make its next invocations overrun their timeout or be throttled.
    Trigger(Trigger),
    /// Make the next requests to a service fail with 503 (through the fidelity layer): the
    /// same as a `fault` with effect `unavailable` and a count.
    Outage(Outage),
    /// Inject an API fault through the fidelity layer (see `fidelity::faults`).
    Fault(crate::fidelity::faults::FaultSpec),
    /// Generate a directory tree for the agent (deterministic content, modes and times).
    Tree(TreeSpec),
    /// Run `autobackup backup` on a tree into a category's primary bucket.
    Backup(BackupStep),
    /// Run `autobackup restore` into a fresh directory and compare it with a tree.
    Restore(RestoreStep),
    /// Run `autobackup cost` on a category's primary bucket.
    Cost(CostStep),
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Upload(_) => "upload",
            Step::Send(_) => "send",
            Step::Replication(_) => "replication",
            Step::Wait(_) => "wait",
            Step::Redrive(_) => "redrive",
            Step::Delete(_) => "delete",
            Step::SendEvent(_) => "send-event",
            Step::Trigger(_) => "trigger",
            Step::Outage(_) => "outage",
            Step::Fault(_) => "fault",
            Step::Tree(_) => "tree",
            Step::Backup(_) => "backup",
            Step::Restore(_) => "restore",
            Step::Cost(_) => "cost",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    pub category: String,
    pub key: String,
    /// Inline text content.
    #[serde(default)]
    pub text: Option<String>,
    /// A file under `fixtures/`.
    #[serde(default)]
    pub fixture: Option<String>,
    /// Generated content of this many bytes (deterministic, seeded by the key).
    #[serde(default)]
    pub size: Option<u64>,
    /// Upload as multipart with parts of this many bytes (at least 5 MiB but the last),
    /// declaring CRC32 on the upload and every part.
    #[serde(default)]
    pub part_size: Option<u64>,
    /// Encrypt with SSE-KMS under the topology's S3 key (`Topology::s3_key_arn`, a key of
    /// its own in the primary region) instead of the bucket default.
    #[serde(default)]
    pub sse_kms: bool,
    /// Storage class, e.g. STANDARD_IA or GLACIER (default: the bucket's, STANDARD).
    #[serde(default)]
    pub storage_class: Option<StorageClass>,
    /// Upload as a client that sends no checksum (`request_checksum_calculation =
    /// when_required`, as older SDKs and many tools do): S3 then stores its default CRC64NVME.
    #[serde(default)]
    pub without_checksum: bool,
    /// The S3 error code the upload must be refused with (`KeyTooLongError` for a key over
    /// 1,024 bytes): the step passes only when S3 refuses it so, and the transcript's header
    /// lists the refusal.
    #[serde(default)]
    pub refused_with: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    /// `category/key`.
    pub object: String,
    /// Delete the current version itself (it no longer exists) instead of adding a marker.
    #[serde(default)]
    pub permanent: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEvent {
    /// `category/key`.
    pub object: String,
    /// How the key is written into the body (`raw`, `percent`, `form`); the engine's own
    /// way when absent.
    #[serde(default)]
    pub encoding: Option<crate::engine::gaps::KeyEncoding>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub function: crate::topology::FunctionName,
    pub action: TriggerAction,
    /// How many invocations `overrun` / `throttle` affect (default 1).
    #[serde(default)]
    pub count: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerAction {
    Pause,
    Resume,
    /// The next invocations do their work, then overrun the function's timeout: Lambda
    /// reads no answer and the whole batch returns to the queue.
    Overrun,
    /// The next invocations are throttled: their messages are received (the receive count
    /// rises) but the function never runs.
    Throttle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Signing name of the service, e.g. `sns`, `s3`, `sqs`.
    #[serde(deserialize_with = "named")]
    pub service: Service,
    /// How many requests fail (the SDK retries a call up to 3 times).
    pub failures: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// validation, validation-dlq, failure, failure-dlq or events-dlq.
    pub queue: QueueRole,
    /// The body; `{run}` stands for the run's suffix (as in resource names).
    pub body: String,
    /// String message attributes (e.g. what EventBridge writes on a dead letter).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicationAction {
    Pause,
    Resume,
    Delay,
    Fault,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationControl {
    pub action: ReplicationAction,
    /// Key the delay or fault applies to (`*` for all); for `delay` and `fault`.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub fault: Option<Fault>,
    /// For `fault`: the destination it hits (1 = the replica bucket, 2 = the second one);
    /// every destination when absent.
    #[serde(default)]
    pub destination: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitFor {
    /// The validator reached `outcome` for `object`.
    Outcome,
    /// At least `count` alerts arrived.
    Alerts,
    /// Every queue is empty and nothing happened for a moment.
    Idle,
    /// `queue` holds at least `count` visible messages.
    Queue,
    /// The harness replicator has copied (or decided) every version it knows.
    Replicated,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    #[serde(rename = "for")]
    pub what: WaitFor,
    /// `category/key`.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default, deserialize_with = "named_opt")]
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub count: Option<usize>,
    /// For `queue`: validation, validation-dlq, failure, failure-dlq or events-dlq.
    #[serde(default)]
    pub queue: Option<QueueRole>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
}

fn default_timeout() -> f64 {
    60.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redrive {
    pub from: QueueRole,
    pub to: QueueRole,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Named + std::fmt::Debug>() {
        for (word, value) in T::ALL {
            assert_eq!(T::parse(word), Ok(*value));
            assert_eq!(value.word(), *word);
        }
        let err = T::parse("nope").unwrap_err();
        assert!(
            err.starts_with(&format!("unknown {} \"nope\" (one of ", T::WHAT)),
            "{err}"
        );
        assert!(T::ALL.iter().all(|(w, _)| err.contains(w)), "{err}");
    }

    #[test]
    fn every_word_names_its_value_and_an_unknown_one_lists_them_all() {
        round_trips::<QueueRole>();
        round_trips::<StorageClass>();
        round_trips::<Service>();
        round_trips::<Outcome>();
    }

    /// The words are the ones the validator and the fidelity layer use themselves.
    #[test]
    fn words_match_the_validator_and_the_fidelity_layer() {
        for (word, outcome) in Outcome::ALL {
            assert_eq!(outcome.as_str(), *word);
        }
        for (word, service) in Service::ALL {
            assert_eq!(Service::from_signing_name(word), Some(*service));
        }
    }
}

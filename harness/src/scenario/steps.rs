//! The steps of a scenario file (`[[step]]` tables): one type per step kind, as serde reads
//! them, plus the validator options and [`LocatedStep`] (a step with its line). The checks
//! serde cannot express live in [`super::check`]; the agent's step types in [`crate::agent`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::agent::tree::TreeSpec;
use crate::agent::{BackupStep, CostStep, RestoreStep};
use crate::replication::Fault;

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
    /// Inject an API fault through the fidelity layer (see `engine::faults`).
    Fault(crate::engine::faults::FaultSpec),
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
    pub storage_class: Option<String>,
    /// Upload as a client that sends no checksum (`request_checksum_calculation =
    /// when_required`, as older SDKs and many tools do): S3 then stores its default CRC64NVME.
    #[serde(default)]
    pub without_checksum: bool,
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
    pub function: crate::system::FunctionName,
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
    pub service: String,
    /// How many requests fail (the SDK retries a call up to 3 times).
    pub failures: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// validation, validation-dlq, failure, failure-dlq or events-dlq.
    pub queue: String,
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
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub count: Option<usize>,
    /// For `queue`: validation, validation-dlq, failure or failure-dlq.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
}

fn default_timeout() -> f64 {
    60.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redrive {
    pub from: String,
    pub to: String,
}

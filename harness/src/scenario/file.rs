//! Scenario files (`scenarios/*.toml`): parsing with line and column in every error.
//!
//! ```toml
//! description = "what this scenario proves"
//! profile = "fast"                       # timing profile from fixtures/topology.toml
//!
//! [timing]                               # optional overrides, shown in the outcome
//! validation_visibility_seconds = 2
//!
//! [[step]]
//! upload = { category = "documents", key = "report.txt", text = "hello" }
//!
//! [[step]]
//! wait = { for = "outcome", object = "documents/report.txt", outcome = "validated" }
//!
//! [expect]
//! alerts = 0
//! outcomes = { "documents/report.txt" = "validated" }
//! ```
//!
//! The agent's steps (`tree`, `backup`, `restore`, `cost`) are described in
//! [`crate::agent`]; `[agent]` holds flags for every backup run.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::agent::tree::TreeSpec;
use crate::agent::{AgentOptions, BackupStep, CostStep, RestoreStep};
use crate::errors::FileError;
use crate::replication::Fault;
use crate::topology::TimingOverrides;

/// A parsed, checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    pub profile: String,
    /// Line and column of `profile` (of the file's start when it is the default).
    pub profile_at: (usize, usize),
    pub timing: TimingOverrides,
    pub steps: Vec<LocatedStep>,
    pub expect: Expect,
    pub validator: ValidatorOptions,
    pub agent: AgentOptions,
    /// `[topology]`: changes to the provisioned topology (replication rules).
    pub topology: crate::topology::TopologyOverrides,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    name: Option<Spanned<String>>,
    description: String,
    #[serde(default = "default_profile")]
    profile: Spanned<String>,
    #[serde(default)]
    timing: TimingOverrides,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<Step>>,
    #[serde(default)]
    expect: RawExpect,
    #[serde(default)]
    validator: ValidatorOptions,
    #[serde(default)]
    agent: AgentOptions,
    #[serde(default)]
    topology: RawTopology,
}

/// `[expect]` as written, with the place of every entry a check may refuse.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    alerts: Option<usize>,
    #[serde(default)]
    outcomes: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    largest_batch: Option<usize>,
    #[serde(default)]
    largest_batch_failures: Option<usize>,
    #[serde(default)]
    agent_notifications: Option<BTreeMap<Spanned<String>, usize>>,
    #[serde(default)]
    backups: BTreeMap<Spanned<String>, usize>,
    #[serde(default)]
    backups_validated: Option<usize>,
    #[serde(default)]
    violations: Vec<super::invariants::Invariant>,
}

impl From<RawExpect> for Expect {
    fn from(raw: RawExpect) -> Expect {
        let plain = |m: BTreeMap<Spanned<String>, usize>| {
            m.into_iter().map(|(k, v)| (k.into_inner(), v)).collect()
        };
        Expect {
            alerts: raw.alerts,
            outcomes: raw
                .outcomes
                .into_iter()
                .map(|(k, v)| (k.into_inner(), v.into_inner()))
                .collect(),
            largest_batch: raw.largest_batch,
            largest_batch_failures: raw.largest_batch_failures,
            agent_notifications: raw.agent_notifications.map(plain),
            backups: plain(raw.backups),
            backups_validated: raw.backups_validated,
            violations: raw.violations,
        }
    }
}

/// `[topology]` as written: [`crate::topology::TopologyOverrides`] with the place of
/// `destinations`, the one value a check may refuse.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(default)]
    replication: RawReplication,
}

/// `[topology.replication]`: the fields of [`crate::topology::spec::ReplicationOverrides`]
/// (keep the two in step).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    sse_kms: Option<bool>,
    delete_markers: Option<bool>,
    prefix: Option<String>,
    destinations: Option<Spanned<u32>>,
    rtc: Option<bool>,
}

impl From<RawTopology> for crate::topology::TopologyOverrides {
    fn from(raw: RawTopology) -> Self {
        let r = raw.replication;
        crate::topology::TopologyOverrides {
            replication: crate::topology::spec::ReplicationOverrides {
                sse_kms: r.sse_kms,
                delete_markers: r.delete_markers,
                prefix: r.prefix,
                destinations: r.destinations.map(Spanned::into_inner),
                rtc: r.rtc,
            },
        }
    }
}

fn default_profile() -> Spanned<String> {
    Spanned::new(0..0, "fast".into())
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

/// What the scenario expects at the end (checked before the snapshot).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exact number of alerts received.
    #[serde(default)]
    pub alerts: Option<usize>,
    /// Final validator outcome per object (`category/key`).
    #[serde(default)]
    pub outcomes: BTreeMap<String, String>,
    /// The largest batch the validator received had exactly this many records.
    #[serde(default)]
    pub largest_batch: Option<usize>,
    /// ... and reported exactly this many batch item failures.
    #[serde(default)]
    pub largest_batch_failures: Option<usize>,
    /// Notifications the agent sent, by event (`success`, `failure`, `anomaly`): exact
    /// counts; an event left out must not occur.
    #[serde(default)]
    pub agent_notifications: Option<BTreeMap<String, usize>>,
    /// Current backups under `backups/<category>/` in the category's primary at the end.
    #[serde(default)]
    pub backups: BTreeMap<String, usize>,
    /// Every backup the agent stored was finally decided `validated`, and there were this many.
    #[serde(default)]
    pub backups_validated: Option<usize>,
    /// Invariants this scenario breaks on purpose (see [`super::invariants`]).
    #[serde(default)]
    pub violations: Vec<super::invariants::Invariant>,
}

/// Storage classes an upload may name.
const STORAGE_CLASSES: [&str; 7] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
];

/// Events of the agent's notifications.
pub const AGENT_EVENTS: [&str; 3] = ["success", "failure", "anomaly"];

/// Backups and restores may only name trees an earlier step generated.
fn check_tree_references(
    steps: &[(usize, LocatedStep)],
) -> Result<(), (usize, String, &'static str)> {
    let mut generated: Vec<&str> = Vec::new();
    for (offset, s) in steps {
        let used = match &s.step {
            Step::Tree(t) => {
                generated.push(&t.name);
                None
            }
            Step::Backup(b) => b.tree.as_deref(),
            Step::Restore(r) => r.compare.as_deref(),
            _ => None,
        };
        if let Some(name) = used {
            if !generated.contains(&name) {
                return Err((
                    *offset,
                    format!("tree {name:?} is not generated by an earlier step"),
                    "add a step like tree = { name = \"docs\", files = 4, bytes = 4096 } before it",
                ));
            }
        }
    }
    Ok(())
}

/// Queue roles a scenario may name.
pub const QUEUE_ROLES: [&str; 5] = [
    "validation",
    "validation-dlq",
    "failure",
    "failure-dlq",
    "events-dlq",
];

/// An outcome name as the validator writes it (`validated`, `not-replicated`, ...).
pub fn parse_outcome(name: &str) -> Option<checksum_validator::Outcome> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// `category/key#N` -> (`category/key`, Some(N)): the N-th upload of the key (from 1).
pub fn split_version(object: &str) -> (&str, Option<usize>) {
    match object.rsplit_once('#') {
        Some((o, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            (o, n.parse().ok())
        }
        _ => (object, None),
    }
}

/// Turns a TOML error into a file error with line and column.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error, hint: &str) -> FileError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    FileError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message: e.message().to_string(),
        hint: hint.to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

impl Scenario {
    /// Loads a scenario file; `categories` are the topology's categories.
    pub fn load(path: &Path, categories: &[String]) -> Result<Scenario, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let fixtures = crate::paths::repo_root().join("fixtures");
        Scenario::parse_with_fixtures(path, &text, categories, Some(&fixtures))
    }

    /// Parses and checks a scenario without looking at the file system (fixture paths are
    /// checked only lexically; [`Scenario::load`] also checks they name files).
    pub fn parse(path: &Path, text: &str, categories: &[String]) -> Result<Scenario, FileError> {
        Scenario::parse_with_fixtures(path, text, categories, None)
    }

    /// Parses and checks a scenario; with `fixtures` (the `fixtures/` directory), every
    /// upload's fixture must be a file in it.
    pub fn parse_with_fixtures(
        path: &Path,
        text: &str,
        categories: &[String],
        fixtures: Option<&Path>,
    ) -> Result<Scenario, FileError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            toml_error(
                path,
                text,
                &e,
                "see README.md, section \"Scenario files\", for every key",
            )
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let invalid = |offset: usize, message: String, hint: &str| {
            let (line, column) = line_col(text, offset);
            FileError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
                hint: hint.to_string(),
            }
        };
        if let Some(n) = &raw.name {
            if n.get_ref() != &stem {
                return Err(invalid(
                    n.span().start,
                    format!("name {:?} differs from the file name {stem:?}", n.get_ref()),
                    "drop `name` or rename the file",
                ));
            }
        }
        let mut steps = Vec::new();
        for s in raw.steps {
            let offset = s.span().start;
            let line = line_col(text, offset).0;
            let step = s.into_inner();
            check_step(&step, categories).map_err(|(m, h)| invalid(offset, m, h))?;
            if let (
                Step::Upload(Upload {
                    fixture: Some(f), ..
                }),
                Some(dir),
            ) = (&step, fixtures)
            {
                check_fixture_file(dir, f).map_err(|(m, h)| invalid(offset, m, h))?;
            }
            steps.push((offset, LocatedStep { line, step }));
        }
        for (object, outcome) in &raw.expect.outcomes {
            let at = object.span().start;
            let (name, nth) = split_version(object.get_ref());
            check_object(name, categories)
                .map_err(|(m, h)| invalid(at, format!("[expect] {m}"), h))?;
            if nth == Some(0) {
                return Err(invalid(
                    at,
                    format!("[expect] {name}#0: versions count from 1"),
                    "name the first upload of a key as category/key#1",
                ));
            }
            if parse_outcome(outcome.get_ref()).is_none() {
                return Err(invalid(
                    outcome.span().start,
                    format!("[expect] unknown outcome {:?}", outcome.get_ref()),
                    "one of validated, lagging, mismatch, replica-missing, replication-failed, replication-overdue, not-replicated, superseded, unverifiable, malformed, acknowledged, error",
                ));
            }
        }
        if let Some(d) = &raw.topology.replication.destinations {
            if !(1..=2).contains(d.get_ref()) {
                return Err(invalid(
                    d.span().start,
                    format!(
                        "[topology.replication] destinations = {} is not supported",
                        d.get_ref()
                    ),
                    "use 1 or 2",
                ));
            }
        }
        if let Some(n) = &raw.expect.agent_notifications {
            for event in n.keys() {
                if !AGENT_EVENTS.contains(&event.get_ref().as_str()) {
                    return Err(invalid(
                        event.span().start,
                        format!("[expect] unknown agent notification {:?}", event.get_ref()),
                        "one of success, failure, anomaly",
                    ));
                }
            }
        }
        for category in raw.expect.backups.keys() {
            if !categories.iter().any(|c| c == category.get_ref()) {
                return Err(invalid(
                    category.span().start,
                    format!(
                        "[expect] backups: unknown category {:?}",
                        category.get_ref()
                    ),
                    "use a category from fixtures/topology.toml",
                ));
            }
        }
        check_tree_references(&steps).map_err(|(offset, m, h)| invalid(offset, m, h))?;
        let steps = steps.into_iter().map(|(_, s)| s).collect();
        Ok(Scenario {
            name: stem,
            path: path.to_path_buf(),
            description: raw.description,
            profile_at: line_col(text, raw.profile.span().start),
            profile: raw.profile.into_inner(),
            timing: raw.timing,
            steps,
            expect: raw.expect.into(),
            validator: raw.validator,
            agent: raw.agent,
            topology: raw.topology.into(),
        })
    }

    /// Checks the scenario against the topology it will run on, before any engine starts:
    /// its timing profile must be one the topology defines.
    pub fn check_against(&self, spec: &crate::topology::TopologySpec) -> Result<(), FileError> {
        if spec.profile(&self.profile).is_some() {
            return Ok(());
        }
        let (line, column) = self.profile_at;
        Err(FileError::Invalid {
            path: self.path.clone(),
            line,
            column,
            message: format!("unknown timing profile {:?}", self.profile),
            hint: format!(
                "use a profile from fixtures/topology.toml: {}",
                spec.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Whether any step runs the backup agent (its runs and notifications join the transcript).
    pub fn uses_agent(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.step,
                Step::Tree(_) | Step::Backup(_) | Step::Restore(_) | Step::Cost(_)
            )
        })
    }

    /// Whether any step controls replication (delay, pause, faults).
    pub fn controls_replication(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.step, Step::Replication(_)))
    }
}

fn check_object(object: &str, categories: &[String]) -> Result<(), (String, &'static str)> {
    match object.split_once('/') {
        Some((c, k)) if categories.iter().any(|x| x == c) && !k.is_empty() => Ok(()),
        _ => Err((
            format!(
                "object {object:?} is not `category/key` with a known category ({})",
                categories.join(", ")
            ),
            "write objects as category/key, e.g. documents/report.txt",
        )),
    }
}

fn check_category(category: &str, categories: &[String]) -> Result<(), (String, &'static str)> {
    if categories.iter().any(|c| c == category) {
        Ok(())
    } else {
        Err((
            format!(
                "unknown category {category:?} (known: {})",
                categories.join(", ")
            ),
            "use a category from fixtures/topology.toml",
        ))
    }
}

/// The largest generated upload a scenario may ask for (held in memory while uploaded).
pub const MAX_UPLOAD_SIZE: u64 = 512 << 20;

/// A finite, non-negative number of seconds of at most a day (what a scenario may wait or
/// delay; `inf`, `nan` and negative values are refused, never a panic).
fn is_duration(s: f64) -> bool {
    s.is_finite() && (0.0..=86_400.0).contains(&s)
}

/// A fixture path stays inside `fixtures/`: relative, no `..`, no root or drive.
fn check_fixture_path(path: &str) -> Result<(), (String, &'static str)> {
    let p = std::path::Path::new(path);
    let escapes = path.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err((
            format!("fixture {path:?} is not a path inside fixtures/"),
            "use a relative path such as objects/sample.bin",
        ));
    }
    // `.`, `./.` or `objects/`: the directory itself or a directory, never a file.
    if path.ends_with('/') || !p.components().any(|c| matches!(c, Component::Normal(_))) {
        return Err((
            format!("fixture {path:?} names a directory, not a file"),
            FIXTURE_FILE_HINT,
        ));
    }
    Ok(())
}

const FIXTURE_FILE_HINT: &str = "name a file under fixtures/, such as objects/q3-summary.txt";

/// A fixture names a file (not a directory) under `fixtures`, checked when the scenario is
/// loaded rather than when the upload step runs.
fn check_fixture_file(fixtures: &Path, path: &str) -> Result<(), (String, &'static str)> {
    let full = fixtures.join(path);
    match std::fs::metadata(&full) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err((
            format!("fixture {path:?} is a directory, not a file"),
            FIXTURE_FILE_HINT,
        )),
        Ok(_) => Err((
            format!("fixture {path:?} is not a regular file"),
            FIXTURE_FILE_HINT,
        )),
        Err(e) => Err((
            format!("fixture {path:?} cannot be read: {e}"),
            FIXTURE_FILE_HINT,
        )),
    }
}

fn check_step(step: &Step, categories: &[String]) -> Result<(), (String, &'static str)> {
    match step {
        Step::Upload(u) => {
            check_category(&u.category, categories)?;
            if let Some(class) = &u.storage_class {
                if !STORAGE_CLASSES.contains(&class.as_str()) {
                    return Err((
                        format!("unknown storage class {class:?}"),
                        "one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE",
                    ));
                }
            }
            if u.key.is_empty() {
                return Err(("upload key is empty".into(), "give the object a key"));
            }
            let sources = [u.text.is_some(), u.fixture.is_some(), u.size.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if sources != 1 {
                return Err((
                    "an upload needs exactly one of `text`, `fixture`, `size`".into(),
                    "e.g. upload = { category = \"documents\", key = \"a.txt\", text = \"hello\" }",
                ));
            }
            if let Some(p) = u.part_size {
                if p < 5 * 1024 * 1024 {
                    return Err((
                        "part_size is below S3's 5 MiB minimum".into(),
                        "use part_size >= 5242880",
                    ));
                }
            }
            if u.size.is_some_and(|n| n > MAX_UPLOAD_SIZE) {
                return Err((
                    format!(
                        "size is over the {} MiB a scenario may upload",
                        MAX_UPLOAD_SIZE >> 20
                    ),
                    "use a smaller size (generated content is held in memory)",
                ));
            }
            if let Some(f) = &u.fixture {
                check_fixture_path(f)?;
            }
            Ok(())
        }
        Step::Send(s) => {
            if QUEUE_ROLES.contains(&s.queue.as_str()) {
                Ok(())
            } else {
                Err((
                    format!("unknown queue {:?}", s.queue),
                    "one of validation, validation-dlq, failure, failure-dlq, events-dlq",
                ))
            }
        }
        Step::Replication(r) if r.seconds.is_some_and(|s| !is_duration(s)) => Err((
            format!("seconds = {} is not a duration", r.seconds.unwrap_or(0.0)),
            "use 0 to 86400 seconds",
        )),
        Step::Wait(w) if !is_duration(w.timeout_seconds) || w.timeout_seconds == 0.0 => Err((
            format!("timeout_seconds = {} is not a duration", w.timeout_seconds),
            "use more than 0 and at most 86400 seconds",
        )),
        Step::Replication(r) => match r.action {
            ReplicationAction::Delay if r.seconds.is_none() || r.key.is_none() => Err((
                "replication delay needs `key` and `seconds`".into(),
                "e.g. replication = { action = \"delay\", key = \"*\", seconds = 3 }",
            )),
            ReplicationAction::Fault if r.fault.is_none() || r.key.is_none() => Err((
                "replication fault needs `key` and `fault`".into(),
                "e.g. replication = { action = \"fault\", key = \"a.txt\", fault = \"corrupt\" }",
            )),
            _ => Ok(()),
        },
        Step::Wait(w) => match w.what {
            WaitFor::Outcome => {
                let Some(o) = &w.object else {
                    return Err((
                        "wait for outcome needs `object`".into(),
                        "e.g. object = \"documents/a.txt\"",
                    ));
                };
                check_object(o, categories)?;
                match &w.outcome {
                    Some(x) if parse_outcome(x).is_some() => Ok(()),
                    _ => Err((
                        "wait for outcome needs a known `outcome`".into(),
                        "e.g. outcome = \"validated\"",
                    )),
                }
            }
            WaitFor::Alerts if w.count.is_none() => {
                Err(("wait for alerts needs `count`".into(), "e.g. count = 1"))
            }
            WaitFor::Queue
                if w.count.is_none()
                    || !w.queue.as_deref().is_some_and(|q| QUEUE_ROLES.contains(&q)) =>
            {
                Err((
                    "wait for queue needs `queue` and `count`".into(),
                    "e.g. wait = { for = \"queue\", queue = \"validation\", count = 5 }",
                ))
            }
            _ => Ok(()),
        },
        Step::Delete(d) => check_object(&d.object, categories),
        Step::SendEvent(e) => check_object(&e.object, categories),
        Step::Trigger(t) => match (t.action, t.count) {
            (TriggerAction::Pause | TriggerAction::Resume, Some(_)) => Err((
                "`count` applies to overrun and throttle only".to_string(),
                "remove count, or use action = \"overrun\" / \"throttle\"",
            )),
            (_, Some(n)) if !(1..=100).contains(&n) => Err((
                format!("count = {n} is out of range"),
                "use 1 to 100 invocations",
            )),
            _ => Ok(()),
        },
        Step::Tree(t) => {
            if t.name.is_empty() || t.name.contains(['/', '\\']) || t.name.starts_with('.') {
                return Err((
                    format!("tree name {:?} is not a plain name", t.name),
                    "use a name like docs or awkward-names",
                ));
            }
            if t.files == 0 && !t.awkward {
                return Err((
                    "a tree needs `files` or `awkward = true`".into(),
                    "e.g. tree = { name = \"docs\", files = 4, bytes = 4096 }",
                ));
            }
            Ok(())
        }
        Step::Backup(b) => {
            check_category(&b.category, categories)?;
            match (&b.tree, &b.source) {
                (Some(_), None) | (None, Some(_)) => Ok(()),
                _ => Err((
                    "a backup needs exactly one of `tree`, `source`".into(),
                    "e.g. backup = { tree = \"docs\", category = \"documents\" }",
                )),
            }
        }
        Step::Restore(r) => check_category(&r.category, categories),
        Step::Cost(c) => check_category(&c.category, categories),
        Step::Outage(o) => {
            if ["s3", "sqs", "sns", "kms", "events"].contains(&o.service.as_str()) {
                Ok(())
            } else {
                Err((
                    format!("unknown service {:?}", o.service),
                    "one of s3, sqs, sns, kms, events",
                ))
            }
        }
        Step::Fault(f) => f.check(),
        Step::Redrive(r) => {
            for q in [&r.from, &r.to] {
                if !QUEUE_ROLES.contains(&q.as_str()) {
                    return Err((
                        format!("unknown queue {q:?}"),
                        "one of validation, validation-dlq, failure, failure-dlq, events-dlq",
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Every scenario file in `dir`, sorted by name.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn cats() -> Vec<String> {
        vec!["documents".into(), "media".into(), "database".into()]
    }

    fn parse(text: &str) -> Result<Scenario, FileError> {
        Scenario::parse(Path::new("scenarios/x.toml"), text, &cats())
    }

    /// A profile the topology does not define is refused with its line, before any engine
    /// starts; the default profile and a defined one pass.
    #[test]
    fn an_unknown_profile_is_refused_at_parse_time() {
        let spec =
            crate::topology::TopologySpec::load(&crate::topology::TopologySpec::default_path())
                .expect("the seed topology");
        let wait = "\n[[step]]\nwait = { for = \"idle\" }\n";
        let bad = parse(&format!("description = \"x\"\nprofile = \"fsat\"\n{wait}")).unwrap();
        let e = bad.check_against(&spec).unwrap_err().to_string();
        assert!(
            e.starts_with("scenarios/x.toml:2:11: unknown timing profile \"fsat\""),
            "{e}"
        );
        assert!(
            e.contains("fast") && e.contains("seed"),
            "names the profiles: {e}"
        );
        for ok in ["", "profile = \"seed\"\n"] {
            let s = parse(&format!("description = \"x\"\n{ok}{wait}")).unwrap();
            s.check_against(&spec).unwrap();
        }
    }

    #[test]
    fn parses_every_step_kind() {
        let s = parse(
            r#"
description = "all steps"
[timing]
validation_visibility_seconds = 2
[[step]]
upload = { category = "documents", key = "a b.txt", text = "hi" }
[[step]]
send = { queue = "validation", body = "poison" }
[[step]]
replication = { action = "delay", key = "*", seconds = 2 }
[[step]]
wait = { for = "outcome", object = "documents/a b.txt", outcome = "validated" }
[[step]]
redrive = { from = "validation-dlq", to = "failure" }
[expect]
alerts = 0
outcomes = { "documents/a b.txt" = "validated" }
"#,
        )
        .unwrap();
        assert_eq!(s.steps.len(), 5);
        let agent = parse(
            r#"
description = "agent steps"
[agent]
backup_args = ["--duration-floor-secs", "30"]
[[step]]
tree = { name = "docs", files = 2, bytes = 10, awkward = true }
[[step]]
backup = { tree = "docs", category = "documents", keep = 3, args = ["--level", "1"] }
[[step]]
backup = { source = "missing", category = "documents", exit = 3 }
[[step]]
restore = { category = "documents", compare = "docs" }
[[step]]
cost = { category = "documents" }
[expect]
agent_notifications = { success = 1, failure = 1 }
backups = { documents = 1 }
backups_validated = 1
"#,
        )
        .unwrap();
        let kinds: Vec<&str> = agent.steps.iter().map(|s| s.step.kind()).collect();
        assert_eq!(kinds, ["tree", "backup", "backup", "restore", "cost"]);
        assert_eq!(agent.agent.backup_args.len(), 2);
        assert_eq!(agent.expect.backups_validated, Some(1));
        // The line of the step's `[[step]]` header.
        assert_eq!(s.steps[0].line, 5);
        assert!(s.controls_replication());
        assert_eq!(s.timing.describe(), vec!["validation_visibility_seconds=2"]);
    }

    #[rstest]
    #[case::typo_in_key("description = \"x\"\n[[step]]\nuplod = { category = \"documents\", key = \"a\", text = \"b\" }\n", 3, "uplod")]
    #[case::unknown_category("description = \"x\"\n\n[[step]]\nupload = { category = \"photos\", key = \"a\", text = \"b\" }\n", 3, "photos")]
    #[case::two_sources("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", text = \"b\", size = 3 }\n", 2, "exactly one")]
    #[case::bad_queue(
        "description = \"x\"\n[[step]]\nsend = { queue = \"nope\", body = \"b\" }\n",
        2,
        "unknown queue"
    )]
    #[case::missing_description(
        "[[step]]\nsend = { queue = \"validation\", body = \"b\" }\n",
        1,
        "description"
    )]
    #[case::infinite_delay("description = \"x\"\n[[step]]\nreplication = { action = \"delay\", key = \"*\", seconds = inf }\n", 2, "not a duration")]
    #[case::nan_wait(
        "description = \"x\"\n[[step]]\nwait = { for = \"idle\", timeout_seconds = nan }\n",
        2,
        "not a duration"
    )]
    #[case::negative_wait(
        "description = \"x\"\n[[step]]\nwait = { for = \"idle\", timeout_seconds = -1 }\n",
        2,
        "not a duration"
    )]
    #[case::huge_upload("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", size = 99999999999 }\n", 2, "MiB a scenario may upload")]
    #[case::fixture_escapes("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \"../../etc/passwd\" }\n", 2, "not a path inside fixtures/")]
    #[case::fixture_absolute("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \"/etc/passwd\" }\n", 2, "not a path inside fixtures/")]
    #[case::fault_without_budget(
        "description = \"x\"\n[[step]]\nfault = { service = \"s3\", effect = \"throttle\" }\n",
        2,
        "needs a budget"
    )]
    #[case::overrun_count_on_pause("description = \"x\"\n[[step]]\ntrigger = { function = \"validator\", action = \"pause\", count = 2 }\n", 2, "`count` applies")]
    #[case::tree_not_generated("description = \"x\"\n[[step]]\ntree = { name = \"a\", files = 1 }\n[[step]]\nbackup = { tree = \"b\", category = \"media\" }\n", 4, "tree \"b\" is not generated")]
    #[case::backup_two_sources("description = \"x\"\n[[step]]\ntree = { name = \"a\", files = 1 }\n[[step]]\nbackup = { tree = \"a\", source = \"s\", category = \"media\" }\n", 4, "exactly one of `tree`, `source`")]
    #[case::empty_tree(
        "description = \"x\"\n[[step]]\ntree = { name = \"a\" }\n",
        2,
        "`files` or `awkward"
    )]
    #[case::tree_path(
        "description = \"x\"\n[[step]]\ntree = { name = \"../up\", files = 1 }\n",
        2,
        "not a plain name"
    )]
    #[case::restore_category(
        "description = \"x\"\n[[step]]\nrestore = { category = \"photos\" }\n",
        2,
        "photos"
    )]
    #[case::storage_class("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", text = \"b\", storage_class = \"COLD\" }\n", 2, "storage class")]
    #[case::agent_event(
        "description = \"x\"\n[expect]\nagent_notifications = { sucess = 1 }\n",
        3,
        "unknown agent notification"
    )]
    #[case::name_mismatch(
        "description = \"x\"\n\nname = \"y\"\n",
        3,
        "differs from the file name"
    )]
    #[case::expect_object(
        "description = \"x\"\n[expect]\nalerts = 0\n\n[expect.outcomes]\n\"documents/a\" = \"validated\"\n\"photos/a\" = \"validated\"\n",
        7,
        "[expect] object \"photos/a\""
    )]
    #[case::expect_version_zero(
        "description = \"x\"\n[expect]\noutcomes = { \"documents/a#0\" = \"validated\" }\n",
        3,
        "versions count from 1"
    )]
    #[case::expect_outcome(
        "description = \"x\"\n[expect.outcomes]\n\"documents/a\" = \"validated\"\n\"documents/b\" = \"fine\"\n",
        4,
        "[expect] unknown outcome"
    )]
    #[case::expect_backups(
        "description = \"x\"\n[expect]\nalerts = 0\nbackups = { photos = 1 }\n",
        4,
        "backups: unknown category"
    )]
    #[case::destinations(
        "description = \"x\"\n[topology.replication]\nsse_kms = true\ndestinations = 3\n",
        4,
        "destinations = 3 is not supported"
    )]
    #[case::fixture_dot("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \".\" }\n", 2, "names a directory")]
    #[case::fixture_trailing_slash("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \"objects/\" }\n", 2, "names a directory")]
    #[case::bad_wait("description = \"x\"\n[[step]]\nwait = { for = \"outcome\", object = \"documents/a\", outcome = \"fine\" }\n", 2, "known `outcome`")]
    fn errors_name_the_line(#[case] text: &str, #[case] line: usize, #[case] says: &str) {
        let err = parse(text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("scenarios/x.toml:{line}:")),
            "{msg}"
        );
        assert!(msg.contains(says), "{msg}");
        assert!(msg.contains("hint:"), "{msg}");
    }

    /// The repository's `fixtures/`.
    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
    }

    #[rstest]
    #[case::a_directory("objects", "is a directory")]
    #[case::a_directory_through_dot("./objects/.", "is a directory")]
    #[case::missing("objects/none.bin", "cannot be read")]
    fn a_fixture_must_be_a_file(#[case] fixture: &str, #[case] says: &str) {
        let text = format!(
            "description = \"x\"\n\n[[step]]\nupload = {{ category = \"media\", key = \"a\", fixture = \"{fixture}\" }}\n"
        );
        let path = Path::new("scenarios/x.toml");
        // Lexically fine: only the file system tells.
        assert!(Scenario::parse(path, &text, &cats()).is_ok());
        let err = Scenario::parse_with_fixtures(path, &text, &cats(), Some(&fixtures()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("scenarios/x.toml:3:"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(err.contains("hint: name a file"), "{err}");
        let fine = text.replace(fixture, "objects/q3-summary.txt");
        assert!(Scenario::parse_with_fixtures(path, &fine, &cats(), Some(&fixtures())).is_ok());
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn parser_never_panics_on_tomlish(lines in prop::collection::vec(prop_oneof![
            Just("description = \"d\"".to_string()),
            Just("[[step]]".to_string()),
            Just("[expect]".to_string()),
            Just("[timing]".to_string()),
            "upload = \\{ category = \"(documents|x)\", key = \"[a-z]{0,3}\", (text|size) = (\"a\"|1) \\}",
            "wait = \\{ for = \"(outcome|alerts|idle|x)\", count = [0-9] \\}",
            "tree = \\{ name = \"[a-z.]{0,3}\", files = [0-9] \\}",
            "backup = \\{ (tree|source) = \"[a-z]{0,3}\", category = \"(media|x)\", exit = [0-9] \\}",
            "restore = \\{ category = \"(media|x)\", compare = \"[a-z]{0,2}\" \\}",
            "[a-z_]{1,8} = [0-9]{1,3}",
        ], 0..10)) {
            let _ = parse(&lines.join("\n"));
        }
    }
}

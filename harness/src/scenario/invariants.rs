//! The system's promises, checked after every run from what the harness observed.
//!
//! A scenario's `[expect]` says what its author thought of; these hold for every run, so
//! every scenario (and every generated workload) gets them for free:
//!
//! - [`Invariant::OneFinalOutcome`]: every version the harness uploaded ends with exactly
//!   one final outcome (`validated`, a named failure, `superseded`, `not-replicated`), none
//!   is left undecided once the system is quiet;
//! - [`Invariant::NoFalseAlert`]: no failure alert names a version whose replica is
//!   byte-identical and on time;
//! - [`Invariant::InjectedFailureAlertsOnce`]: every injected failure (a corrupt replica,
//!   FAILED, a replica that never arrives, an ineligible version) raises exactly one alert
//!   naming that object and version, and no version is alerted twice (duplicate deliveries
//!   never duplicate alerts);
//! - [`Invariant::DeadLettersAlert`]: every message that reached a dead-letter queue raised
//!   an alert that was delivered;
//! - [`Invariant::QueuesDrain`]: every queue and DLQ is empty at the end, nothing in flight
//!   or delayed;
//! - [`Invariant::ValidatedHasEvidence`]: `validated` is never reported without content
//!   evidence that matches the bytes the harness uploaded, nor for a version whose replica
//!   the harness corrupted, failed or withheld;
//! - [`Invariant::FinalOutcomeIsExplained`]: the final decision is one the ground truth
//!   explains ([`explained_outcomes`]): a corrupted replica ends `mismatch`, a FAILED one
//!   `replication-failed`, one that never arrives `replication-overdue`, an ineligible
//!   version `not-replicated`, a byte-identical one `validated`. A diagnosis that still
//!   alerts but names the wrong cause (`unverifiable` for a corrupted replica) is caught
//!   here: on-call engineers act on the diagnosis.
//!
//! Ground truth is the harness's own ([`UploadTruth`]: the bytes it uploaded and the faults
//! it injected), never the validator's decision, or the check would restate the
//! implementation. A scenario whose point is a violation declares it
//! (`[expect] violations = ["queues-drain"]`); [`compare`] turns the rest into unmet
//! expectations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use checksum_validator::decision::{EvidenceKind, Verdict};
use checksum_validator::report::Action;
use checksum_validator::{Outcome, RecordReport};

use crate::observe::Observation;
use crate::scenario::transcript::Depth;

use super::file::Invariant;

/// Why S3 would never replicate a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligibility {
    /// Stored in GLACIER or DEEP_ARCHIVE.
    ColdStorage,
    /// SSE-KMS, under a rule that does not opt in to SSE-KMS objects.
    SseKmsNotOptedIn,
    /// Outside the rule's key prefix.
    OutsidePrefix,
}

/// What the harness did to a version's replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Nothing: the replica arrives byte-identical.
    Nothing,
    /// The replica arrives with a flipped byte.
    Corrupt,
    /// The source is marked FAILED, no replica.
    Failed,
    /// The replica never arrives (the source stays PENDING).
    Never,
    /// Byte-identical, written with another part layout.
    Relayout,
    /// Another part layout and a flipped byte: only deep mode can tell.
    RelayoutCorrupt,
    /// S3 would never replicate it.
    Ineligible(Ineligibility),
}

impl Injected {
    /// Whether the replica ends byte-identical to what was uploaded.
    pub fn replica_identical(self) -> bool {
        matches!(self, Injected::Nothing | Injected::Relayout)
    }

    /// A failure the system must report.
    pub fn is_failure(self) -> bool {
        !self.replica_identical()
    }
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injected::Nothing => f.write_str("nothing"),
            Injected::Corrupt => f.write_str("corrupt replica"),
            Injected::Failed => f.write_str("replication FAILED"),
            Injected::Never => f.write_str("replica never arrives"),
            Injected::Relayout => f.write_str("replica re-laid out (byte-identical)"),
            Injected::RelayoutCorrupt => f.write_str("replica re-laid out with a flipped byte"),
            Injected::Ineligible(why) => write!(f, "ineligible ({why:?})"),
        }
    }
}

/// Every value S3 could show as content evidence of some bytes: their size and digests
/// (CRC32 full object and composite, CRC32C, CRC64NVME, SHA-256 hex and base64, the MD5
/// ETag single-part and multipart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    pub size: u64,
    pub digests: BTreeSet<String>,
}

impl Content {
    /// The evidence values of `bytes`, uploaded in parts of `part_size` when given.
    pub fn of(bytes: &[u8], part_size: Option<u64>) -> Content {
        use crc_fast::CrcAlgorithm::{Crc32Iscsi, Crc32IsoHdlc, Crc64Nvme};
        use md5::Digest as _;
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        let crc32 = |a, d: &[u8]| (crc_fast::checksum(a, d) as u32).to_be_bytes();
        let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut digests = BTreeSet::new();
        digests.insert(b64(&crc32(Crc32IsoHdlc, bytes)));
        digests.insert(b64(&crc32(Crc32Iscsi, bytes)));
        digests.insert(b64(&crc_fast::checksum(Crc64Nvme, bytes).to_be_bytes()));
        let sha = <sha2::Sha256 as sha2::Digest>::digest(bytes);
        digests.insert(hex(&sha));
        digests.insert(b64(&sha));
        digests.insert(hex(&md5::Md5::digest(bytes)));
        if let Some(part) = part_size.filter(|p| *p > 0) {
            let parts: Vec<&[u8]> = bytes.chunks(part as usize).collect();
            let n = parts.len();
            for a in [Crc32IsoHdlc, Crc32Iscsi] {
                let joined: Vec<u8> = parts.iter().flat_map(|p| crc32(a, p)).collect();
                digests.insert(format!("{}-{n}", b64(&crc32(a, &joined))));
            }
            let joined: Vec<u8> = parts.iter().flat_map(md5::Md5::digest).collect();
            digests.insert(format!("{}-{n}", hex(&md5::Md5::digest(&joined))));
        }
        Content {
            size: bytes.len() as u64,
            digests,
        }
    }

    fn knows(&self, value: &str) -> bool {
        self.digests.contains(value.trim_matches('"'))
    }
}

/// What the harness knows about one version it uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTruth {
    pub bucket: String,
    pub key: String,
    pub version: String,
    /// `category/key#n` as a scenario names it.
    pub label: String,
    pub content: Content,
    pub injected: Injected,
    /// Its replica may land after the lag budget (delayed or paused replication): one
    /// overdue alert and one resolved notice are then allowed.
    pub late: bool,
    /// An S3 error fault could hit the validator's reads of it: an `error` outcome with one
    /// alert is allowed.
    pub api_errors: bool,
    /// The version was deleted for good: `superseded` is allowed and its alert may be gone.
    pub deleted: bool,
}

/// What a run left behind, for checking.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    pub uploads: &'a [UploadTruth],
    pub observations: &'a [Observation],
    /// Queue depths at the end, by role.
    pub depths: &'a [(&'static str, Depth)],
    /// The validator's `DEEP_VERIFY`.
    pub deep_verify: bool,
    /// The validator's `ALERT_ON_UNVERIFIABLE`.
    pub alert_on_unverifiable: bool,
}

/// One broken promise, with the timeline of what it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    /// The object version (`category/key#n`) or queue it concerns.
    pub subject: String,
    pub message: String,
    pub timeline: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} violated for {}: {}",
            self.invariant, self.subject, self.message
        )?;
        if !self.timeline.is_empty() {
            f.write_str("\n    timeline:")?;
            for t in &self.timeline {
                write!(f, "\n      - {t}")?;
            }
        }
        Ok(())
    }
}

/// The queues a message reaches when everything else gave up on it.
const DLQS: [&str; 3] = ["validation-dlq", "events-dlq", "failure-dlq"];

/// What an alert is, from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlertKind {
    /// "Replica validation failed: ..."
    Failure,
    /// "Resolved: the earlier ... alert"
    Resolved,
    /// An event EventBridge could not deliver, or a dead-lettered message.
    DeadLetter,
}

#[derive(Debug, Clone)]
struct ParsedAlert<'a> {
    kind: AlertKind,
    subject: &'a str,
    object: Option<&'a str>,
    version: Option<&'a str>,
}

fn labelled<'a>(message: &'a str, label: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
}

fn parse_alert<'a>(subject: &'a str, message: &'a str) -> ParsedAlert<'a> {
    let kind = if message.starts_with("Resolved:") {
        AlertKind::Resolved
    } else if message.starts_with("Replica validation failed:") {
        AlertKind::Failure
    } else {
        AlertKind::DeadLetter
    };
    ParsedAlert {
        kind,
        subject,
        object: labelled(message, "Object:"),
        version: labelled(message, "Version:"),
    }
}

/// The pipeline's alerts (the agent's own notifications left out).
fn alerts(obs: &[Observation]) -> Vec<ParsedAlert<'_>> {
    obs.iter()
        .filter_map(|o| match o {
            Observation::Alert {
                subject,
                message,
                attributes,
            } if crate::agent::agent_event(attributes).is_none() => {
                Some(parse_alert(subject, message))
            }
            _ => None,
        })
        .collect()
}

impl UploadTruth {
    fn uri(&self) -> String {
        checksum_validator::text::escape(&format!("s3://{}/{}", self.bucket, self.key)).into_owned()
    }

    fn names(&self, r: &RecordReport) -> bool {
        r.object.as_ref().is_some_and(|o| {
            o.bucket == self.bucket
                && o.key == self.key
                && o.version_id.as_deref() == Some(self.version.as_str())
        })
    }

    fn named_by(&self, a: &ParsedAlert<'_>) -> bool {
        a.object == Some(self.uri().as_str()) && a.version == Some(self.version.as_str())
    }
}

/// Final decisions: a verdict on the version that nothing will revisit (a record the
/// validator retries, re-queues or keeps watching is not).
fn is_final(r: &RecordReport) -> bool {
    if !matches!(
        r.action,
        Action::Done | Action::FailureSent | Action::ResolvedSent
    ) {
        return false;
    }
    match r.outcome {
        Outcome::Validated
        | Outcome::Mismatch
        | Outcome::ReplicaMissing
        | Outcome::ReplicationFailed
        | Outcome::NotReplicated
        | Outcome::Superseded
        | Outcome::Unverifiable
        | Outcome::Error => true,
        Outcome::ReplicationOverdue => true,
        Outcome::Lagging
        | Outcome::Malformed
        | Outcome::Acknowledged
        | Outcome::TransientError
        | Outcome::Deferred => false,
    }
}

fn describe_decision(r: &RecordReport) -> String {
    format!(
        "decision attempt {}: {} ({:?}){}",
        r.attempt,
        r.outcome,
        r.action,
        if r.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", r.detail)
        }
    )
}

/// Everything observed about one version, in order, after what the harness knows.
fn timeline(u: &UploadTruth, obs: &[Observation]) -> Vec<String> {
    let mut out = vec![format!(
        "uploaded {} bytes as version {}; injected: {}{}{}{}",
        u.content.size,
        u.version,
        u.injected,
        if u.late { "; may be late" } else { "" },
        if u.api_errors {
            "; S3 error faults"
        } else {
            ""
        },
        if u.deleted { "; deleted" } else { "" },
    )];
    let uri = u.uri();
    for o in obs {
        match o {
            Observation::Decision { report, .. } if u.names(report) => {
                out.push(describe_decision(report))
            }
            Observation::Alert {
                subject, message, ..
            } => {
                let a = parse_alert(subject, message);
                if u.named_by(&a) || (a.object == Some(uri.as_str()) && a.version.is_none()) {
                    out.push(format!("alert: {subject}"));
                }
            }
            _ => {}
        }
    }
    out
}

/// Checks every invariant; an empty answer means the run kept every promise.
pub fn check(facts: &RunFacts<'_>) -> Vec<Violation> {
    let obs = facts.observations;
    let alerts = alerts(obs);
    let mut out = Vec::new();
    for u in facts.uploads {
        let decisions: Vec<&RecordReport> = obs
            .iter()
            .filter_map(|o| match o {
                Observation::Decision { report, .. } if u.names(report) => Some(report),
                _ => None,
            })
            .collect();
        let finals: Vec<&RecordReport> =
            decisions.iter().copied().filter(|r| is_final(r)).collect();
        let final_outcomes: BTreeSet<&'static str> =
            finals.iter().map(|r| r.outcome.as_str()).collect();
        let failure_alerts = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::Failure && u.named_by(a))
            .count();
        let resolved = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::Resolved && u.named_by(a))
            .count();
        let mut violate = |invariant, message: String| {
            out.push(Violation {
                invariant,
                subject: u.label.clone(),
                message,
                timeline: timeline(u, obs),
            })
        };

        // One final outcome.
        let superseded_after_delete = u.deleted
            && final_outcomes
                .iter()
                .all(|o| *o == "validated" || *o == "superseded");
        match finals.last() {
            None => violate(
                Invariant::OneFinalOutcome,
                match decisions.last() {
                    Some(r) => format!("undecided once quiet: the last decision was {}", r.outcome),
                    None => "the validator never decided it".to_string(),
                },
            ),
            Some(_) if final_outcomes.len() > 1 && !superseded_after_delete => violate(
                Invariant::OneFinalOutcome,
                format!(
                    "conflicting final outcomes: {}",
                    final_outcomes
                        .iter()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(_) => {}
        }

        // No alert for a byte-identical replica that arrived on time.
        let unverifiable_alert_allowed = u.injected == Injected::Relayout
            && !facts.deep_verify
            && facts.alert_on_unverifiable
            && final_outcomes.contains("unverifiable");
        let error_allowed = u.api_errors && final_outcomes.contains("error");
        if u.injected.replica_identical()
            && failure_alerts > 0
            && !u.late
            && !unverifiable_alert_allowed
            && !error_allowed
        {
            violate(
                Invariant::NoFalseAlert,
                format!(
                    "{failure_alerts} failure alert(s) for a version whose replica is byte-identical"
                ),
            );
        }
        if resolved > failure_alerts {
            violate(
                Invariant::NoFalseAlert,
                format!("{resolved} resolved notice(s) after {failure_alerts} failure alert(s)"),
            );
        }

        // Every injected failure alerts exactly once; nothing alerts twice.
        if failure_alerts > 1 || resolved > 1 {
            violate(
                Invariant::InjectedFailureAlertsOnce,
                format!(
                    "alerted more than once: {failure_alerts} failure alert(s), {resolved} resolved notice(s)"
                ),
            );
        } else if u.injected.is_failure()
            && failure_alerts == 0
            && !u.deleted
            // Unverifiable alerts turned off and no deep mode: nothing is configured to
            // report what only deep mode could see.
            && !(u.injected == Injected::RelayoutCorrupt
                && !facts.deep_verify
                && !facts.alert_on_unverifiable)
        {
            violate(
                Invariant::InjectedFailureAlertsOnce,
                format!("injected {} but no alert names this version", u.injected),
            );
        }

        // The final decision is one the ground truth explains.
        if let Some(last) = finals.last() {
            let allowed = explained_outcomes(u, facts);
            if !allowed.contains(&last.outcome) {
                violate(
                    Invariant::FinalOutcomeIsExplained,
                    format!(
                        "ended {}, but the harness {} (explained: {})",
                        last.outcome,
                        match u.injected {
                            Injected::Nothing => "injected nothing".to_string(),
                            other => format!("injected {other}"),
                        },
                        allowed
                            .iter()
                            .map(|o| o.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }

        // Validated only on content evidence that matches the uploaded bytes.
        for r in decisions.iter().filter(|r| r.outcome == Outcome::Validated) {
            if !u.injected.replica_identical() {
                violate(
                    Invariant::ValidatedHasEvidence,
                    format!("validated, but the harness injected {}", u.injected),
                );
                continue;
            }
            if let Some(why) = evidence_problem(r, &u.content) {
                violate(Invariant::ValidatedHasEvidence, why);
            }
        }
    }

    // Every dead letter alerts, and that alert was delivered.
    let mut dead: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::new();
    for o in obs {
        if let Observation::Notified { queue, report, .. } = o {
            if DLQS.contains(&queue.as_str()) {
                let e = dead
                    .entry(report.message_id.as_str())
                    .or_insert((queue.as_str(), Vec::new()));
                e.1.push(report.alert.subject.as_str());
            }
        }
    }
    for (id, (queue, subjects)) in dead {
        let delivered = alerts.iter().any(|a| subjects.contains(&a.subject));
        if !delivered {
            out.push(Violation {
                invariant: Invariant::DeadLettersAlert,
                subject: format!("{queue} message {id}"),
                message: "reached a dead-letter queue, but no alert for it was delivered".into(),
                timeline: subjects
                    .iter()
                    .map(|s| format!("notifier composed: {s}"))
                    .collect(),
            });
        }
    }

    // Queues drain.
    for (role, d) in facts.depths {
        if d.total() > 0 {
            out.push(Violation {
                invariant: Invariant::QueuesDrain,
                subject: format!("queue {role}"),
                message: format!(
                    "not drained at the end: {} visible, {} in flight, {} delayed",
                    d.visible, d.in_flight, d.delayed
                ),
                timeline: Vec::new(),
            });
        }
    }
    out
}

/// The final outcomes AWS-faithful code may reach for `u`, from the harness's ground truth
/// alone (what it uploaded and injected, what the replication rule says), never from the
/// validator's own reading:
/// - a byte-identical replica: `validated`; a relayout one also `unverifiable` when deep
///   verification is off (part checksums of different layouts cannot be compared);
/// - a corrupted replica: `mismatch`; a FAILED one: `replication-failed`; one that never
///   arrives: `replication-overdue`; an ineligible version: `not-replicated`;
/// - a late replica may also end `replication-overdue` (it is validated once it lands);
///   a version deleted for good `superseded`; one whose reads an S3 fault hit `error`.
pub fn explained_outcomes(u: &UploadTruth, facts: &RunFacts<'_>) -> Vec<Outcome> {
    let mut allowed = match u.injected {
        Injected::Nothing => vec![Outcome::Validated],
        Injected::Relayout if !facts.deep_verify => vec![Outcome::Validated, Outcome::Unverifiable],
        Injected::Relayout => vec![Outcome::Validated],
        Injected::Corrupt => vec![Outcome::Mismatch],
        // Without deep mode nothing stored can tell the two layouts apart.
        Injected::RelayoutCorrupt if !facts.deep_verify => vec![Outcome::Unverifiable],
        Injected::RelayoutCorrupt => vec![Outcome::Mismatch],
        Injected::Failed => vec![Outcome::ReplicationFailed],
        Injected::Never => vec![Outcome::ReplicationOverdue],
        Injected::Ineligible(_) => vec![Outcome::NotReplicated],
    };
    if u.late {
        allowed.push(Outcome::ReplicationOverdue);
    }
    if u.deleted {
        allowed.push(Outcome::Superseded);
    }
    if u.api_errors {
        allowed.push(Outcome::Error);
    }
    allowed
}

/// Why a `validated` decision is not backed by the uploaded content, if it is not.
fn evidence_problem(r: &RecordReport, content: &Content) -> Option<String> {
    if let Some(c) = r.evidence.iter().find(|c| c.verdict == Verdict::Differ) {
        return Some(format!(
            "validated although {} differs ({} | {})",
            c.kind, c.primary, c.replica
        ));
    }
    for c in r.evidence.iter().filter(|c| c.kind == EvidenceKind::Size) {
        if c.primary.parse::<u64>().ok() != Some(content.size) {
            return Some(format!(
                "validated on size {} but the harness uploaded {} bytes",
                c.primary, content.size
            ));
        }
    }
    let content_matches: Vec<_> = r
        .evidence
        .iter()
        .filter(|c| c.kind != EvidenceKind::Size && c.verdict == Verdict::Match)
        .collect();
    if content_matches.is_empty() {
        return Some("validated without any matching content evidence".into());
    }
    if !content_matches.iter().any(|c| content.knows(&c.primary)) {
        return Some(format!(
            "validated on {} which the uploaded bytes do not have",
            content_matches
                .iter()
                .map(|c| format!("{} {}", c.kind, c.primary))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    None
}

/// Unmet expectations: each violation the scenario did not declare, and each declared
/// one that did not occur.
pub fn compare(declared: &[Invariant], found: &[Violation]) -> Vec<String> {
    let mut unmet: Vec<String> = found
        .iter()
        .filter(|v| !declared.contains(&v.invariant))
        .map(|v| v.to_string())
        .collect();
    for d in declared {
        if !found.iter().any(|v| v.invariant == *d) {
            unmet.push(format!("declared violation `{d}` did not occur"));
        }
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;
    use checksum_validator::decision::Comparison;
    use checksum_validator::failure_record::ObjectRef;
    use failure_notifier::{Alert, LedgerUse, NotifyReport};
    use proptest::prelude::*;
    use rstest::rstest;
    use serde::Deserialize;
    use std::time::Duration;

    const BYTES: &[u8] = b"hello";

    fn truth(injected: Injected) -> UploadTruth {
        UploadTruth {
            bucket: "primary".into(),
            key: "dir/a file.txt".into(),
            version: "v1".into(),
            label: "documents/dir/a file.txt#1".into(),
            content: Content::of(BYTES, None),
            injected,
            late: false,
            api_errors: false,
            deleted: false,
        }
    }

    fn sha_hex(b: &[u8]) -> String {
        <sha2::Sha256 as sha2::Digest>::digest(b)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn compare_on(kind: EvidenceKind, primary: &str, verdict: Verdict) -> Comparison {
        Comparison {
            kind,
            primary: primary.into(),
            replica: primary.into(),
            verdict,
            destination: None,
        }
    }

    fn decision(outcome: Outcome, action: Action, evidence: Vec<Comparison>) -> Observation {
        Observation::Decision {
            queue: "validation".into(),
            report: RecordReport {
                message_id: "m1".into(),
                object: Some(ObjectRef {
                    bucket: "primary".into(),
                    key: "dir/a file.txt".into(),
                    version_id: Some("v1".into()),
                    category: Some("documents".into()),
                }),
                outcome,
                detail: String::new(),
                evidence,
                attempt: 1,
                action,
                version_source: None,
                replicas: Vec::new(),
                duration_ms: 1,
            },
        }
    }

    /// A `validated` decision on the true content.
    fn validated() -> Observation {
        decision(
            Outcome::Validated,
            Action::Done,
            vec![
                compare_on(EvidenceKind::Size, "5", Verdict::Match),
                compare_on(
                    EvidenceKind::StreamedSha256,
                    &sha_hex(BYTES),
                    Verdict::Match,
                ),
            ],
        )
    }

    fn failed(outcome: Outcome) -> Observation {
        decision(outcome, Action::FailureSent, Vec::new())
    }

    fn lagging() -> Observation {
        decision(
            Outcome::Lagging,
            Action::RetryAfter(Duration::from_secs(1)),
            Vec::new(),
        )
    }

    fn overdue() -> Observation {
        decision(
            Outcome::ReplicationOverdue,
            Action::AlertedAndRequeued(Duration::from_secs(1)),
            Vec::new(),
        )
    }

    fn alert(first: &str) -> Observation {
        Observation::Alert {
            subject: format!("[autobackup] {first}"),
            message: format!(
                "{first}\n\nObject:      s3://primary/dir/a file.txt\nVersion:     v1\nQueue:       q\n"
            ),
            attributes: Default::default(),
        }
    }

    fn failure_alert() -> Observation {
        alert("Replica validation failed: mismatch")
    }

    fn resolved_alert() -> Observation {
        alert("Resolved: the earlier replication-overdue alert for this version")
    }

    fn notified(queue: &str, subject: &str) -> Observation {
        Observation::Notified {
            queue: queue.into(),
            receive_count: Some(6),
            report: NotifyReport {
                message_id: "dl-1".into(),
                alert: Alert {
                    subject: subject.into(),
                    message: "A message could not be processed".into(),
                },
                publish_error: None,
                key: "k".into(),
                ledger: LedgerUse::Claimed,
            },
        }
    }

    fn dead_letter_alert(subject: &str) -> Observation {
        Observation::Alert {
            subject: subject.into(),
            message: "A message could not be processed and was dead-lettered.\n".into(),
            attributes: Default::default(),
        }
    }

    fn violated(
        uploads: &[UploadTruth],
        obs: &[Observation],
        depths: &[(&'static str, Depth)],
    ) -> BTreeSet<Invariant> {
        check(&RunFacts {
            uploads,
            observations: obs,
            depths,
            deep_verify: false,
            alert_on_unverifiable: true,
        })
        .into_iter()
        .map(|v| v.invariant)
        .collect()
    }

    use Invariant::*;

    #[rstest]
    #[case::healthy_validated(Injected::Nothing, vec![lagging(), validated()], &[])]
    #[case::duplicate_delivery_validates_twice(Injected::Nothing, vec![validated(), validated()], &[])]
    #[case::never_decided(Injected::Nothing, vec![], &[OneFinalOutcome])]
    #[case::left_lagging(Injected::Nothing, vec![lagging()], &[OneFinalOutcome])]
    #[case::false_mismatch(Injected::Nothing, vec![failed(Outcome::Mismatch), failure_alert()], &[NoFalseAlert, FinalOutcomeIsExplained])]
    #[case::conflicting(Injected::Nothing, vec![validated(), failed(Outcome::Mismatch)], &[OneFinalOutcome, FinalOutcomeIsExplained])]
    #[case::corrupt_alerted_once(Injected::Corrupt, vec![failed(Outcome::Mismatch), failure_alert()], &[])]
    #[case::corrupt_silent(Injected::Corrupt, vec![failed(Outcome::Mismatch)], &[InjectedFailureAlertsOnce])]
    #[case::corrupt_alerted_twice(Injected::Corrupt, vec![failed(Outcome::Mismatch), failure_alert(), failure_alert()], &[InjectedFailureAlertsOnce])]
    #[case::corrupt_validated(Injected::Corrupt, vec![validated()], &[InjectedFailureAlertsOnce, ValidatedHasEvidence, FinalOutcomeIsExplained])]
    // Issue 24's planted bug: a corrupted replica called `unverifiable` still alerts (every
    // other invariant holds), but names the wrong cause.
    #[case::corrupt_called_unverifiable(Injected::Corrupt, vec![failed(Outcome::Unverifiable), failure_alert()], &[FinalOutcomeIsExplained])]
    // Without deep mode (these facts) a re-laid-out corrupted replica can only be
    // unverifiable; called validated, it is a silent miss.
    #[case::relayout_corrupt_unverifiable(Injected::RelayoutCorrupt, vec![failed(Outcome::Unverifiable), failure_alert()], &[])]
    #[case::relayout_corrupt_validated(Injected::RelayoutCorrupt, vec![validated()], &[InjectedFailureAlertsOnce, ValidatedHasEvidence, FinalOutcomeIsExplained])]
    #[case::failed_called_mismatch(Injected::Failed, vec![failed(Outcome::Mismatch), failure_alert()], &[FinalOutcomeIsExplained])]
    #[case::ineligible_called_missing(Injected::Ineligible(Ineligibility::ColdStorage), vec![failed(Outcome::ReplicaMissing), failure_alert()], &[FinalOutcomeIsExplained])]
    #[case::failed_alerted(Injected::Failed, vec![failed(Outcome::ReplicationFailed), failure_alert()], &[])]
    #[case::ineligible_alerted(Injected::Ineligible(Ineligibility::ColdStorage), vec![failed(Outcome::NotReplicated), failure_alert()], &[])]
    #[case::ineligible_silent(Injected::Ineligible(Ineligibility::OutsidePrefix), vec![failed(Outcome::NotReplicated)], &[InjectedFailureAlertsOnce])]
    #[case::resolved_without_failure(Injected::Nothing, vec![validated(), resolved_alert()], &[NoFalseAlert])]
    #[case::overdue_requeued_is_not_final(Injected::Never, vec![overdue(), failure_alert()], &[OneFinalOutcome])]
    fn invariants_on_one_version(
        #[case] injected: Injected,
        #[case] obs: Vec<Observation>,
        #[case] want: &[Invariant],
    ) {
        let got = violated(&[truth(injected)], &obs, &[]);
        assert_eq!(got, want.iter().copied().collect::<BTreeSet<_>>());
    }

    #[rstest]
    #[case::late_overdue_then_resolved(vec![overdue(), failure_alert(), validated(), resolved_alert()], &[])]
    #[case::late_on_time(vec![validated()], &[])]
    #[case::late_resolved_twice(vec![overdue(), failure_alert(), validated(), resolved_alert(), resolved_alert()], &[NoFalseAlert, InjectedFailureAlertsOnce])]
    fn a_late_replica_may_alert_overdue_once(
        #[case] obs: Vec<Observation>,
        #[case] want: &[Invariant],
    ) {
        let t = UploadTruth {
            late: true,
            ..truth(Injected::Nothing)
        };
        assert_eq!(
            violated(&[t], &obs, &[]),
            want.iter().copied().collect::<BTreeSet<_>>()
        );
    }

    #[rstest]
    #[case::size_only(vec![compare_on(EvidenceKind::Size, "5", Verdict::Match)])]
    #[case::wrong_size(vec![
        compare_on(EvidenceKind::Size, "6", Verdict::Match),
        compare_on(EvidenceKind::StreamedSha256, &sha_hex(BYTES), Verdict::Match),
    ])]
    #[case::digest_of_other_bytes(vec![compare_on(EvidenceKind::StreamedSha256, &sha_hex(b"other"), Verdict::Match)])]
    #[case::a_differing_comparison(vec![
        compare_on(EvidenceKind::StreamedSha256, &sha_hex(BYTES), Verdict::Match),
        compare_on(EvidenceKind::Etag, "x", Verdict::Differ),
    ])]
    #[case::inconclusive_only(vec![compare_on(EvidenceKind::Etag, "x-2", Verdict::Inconclusive("layout".into()))])]
    fn validated_needs_evidence_of_the_uploaded_bytes(#[case] evidence: Vec<Comparison>) {
        let obs = [decision(Outcome::Validated, Action::Done, evidence)];
        assert_eq!(
            violated(&[truth(Injected::Nothing)], &obs, &[]),
            BTreeSet::from([ValidatedHasEvidence])
        );
    }

    #[rstest]
    #[case::crc32("NhCmhg==")]
    #[case::md5_etag("\"5d41402abc4b2a76b9719d911017c592\"")]
    #[case::sha256(&sha_hex(BYTES))]
    fn content_knows_what_s3_would_show(#[case] value: &str) {
        assert!(Content::of(BYTES, None).knows(value));
    }

    #[rstest]
    #[case::alerted(vec![notified("validation-dlq", "[a] DEAD-LETTER"), dead_letter_alert("[a] DEAD-LETTER")], &[])]
    #[case::never_delivered(vec![notified("events-dlq", "[a] UNDELIVERED EVENT")], &[DeadLettersAlert])]
    #[case::not_a_dlq(vec![notified("failure", "[a] MISMATCH")], &[])]
    fn dead_letters_alert(#[case] obs: Vec<Observation>, #[case] want: &[Invariant]) {
        assert_eq!(
            violated(&[], &obs, &[]),
            want.iter().copied().collect::<BTreeSet<_>>()
        );
    }

    #[rstest]
    #[case::empty(Depth { visible: 0, in_flight: 0, delayed: 0 }, &[])]
    #[case::visible(Depth { visible: 1, in_flight: 0, delayed: 0 }, &[QueuesDrain])]
    #[case::in_flight(Depth { visible: 0, in_flight: 2, delayed: 0 }, &[QueuesDrain])]
    #[case::delayed(Depth { visible: 0, in_flight: 0, delayed: 1 }, &[QueuesDrain])]
    fn queues_drain(#[case] d: Depth, #[case] want: &[Invariant]) {
        assert_eq!(
            violated(&[], &[], &[("validation-dlq", d)]),
            want.iter().copied().collect::<BTreeSet<_>>()
        );
    }

    #[test]
    fn a_violation_shows_the_timeline() {
        let v = check(&RunFacts {
            uploads: &[truth(Injected::Corrupt)],
            observations: &[lagging(), failed(Outcome::Mismatch)],
            depths: &[],
            deep_verify: false,
            alert_on_unverifiable: true,
        });
        let text = v[0].to_string();
        assert!(text.contains("injected-failure-alerts-once"), "{text}");
        assert!(text.contains("documents/dir/a file.txt#1"), "{text}");
        assert!(
            text.contains("uploaded 5 bytes as version v1; injected: corrupt replica"),
            "{text}"
        );
        assert!(text.contains("decision attempt 1: lagging"), "{text}");
    }

    #[test]
    fn declared_violations_are_met_and_missing_ones_reported() {
        let found = check(&RunFacts {
            uploads: &[],
            observations: &[],
            depths: &[(
                "validation",
                Depth {
                    visible: 1,
                    in_flight: 0,
                    delayed: 0,
                },
            )],
            deep_verify: false,
            alert_on_unverifiable: true,
        });
        assert!(compare(&[QueuesDrain], &found).is_empty());
        assert_eq!(compare(&[], &found).len(), 1);
        let unmet = compare(&[QueuesDrain, NoFalseAlert], &found);
        assert_eq!(
            unmet,
            vec!["declared violation `no-false-alert` did not occur"]
        );
    }

    #[test]
    fn invariant_names_parse_from_scenario_files() {
        #[derive(Deserialize)]
        struct E {
            violations: Vec<Invariant>,
        }
        for i in Invariant::ALL {
            let e: E = toml::from_str(&format!("violations = [\"{i}\"]")).expect("parses");
            assert_eq!(e.violations, vec![i]);
        }
        assert!(toml::from_str::<E>("violations = [\"no-such\"]").is_err());
    }

    proptest! {
        /// However often a healthy version's event is delivered and however long it lags
        /// first, validating it each time keeps every promise; a corrupt one alerted once
        /// keeps them whatever the number of deliveries, and alerting it more than once
        /// never does.
        #[test]
        fn duplicate_deliveries_never_duplicate_alerts(
            lags in 0usize..4,
            deliveries in 1usize..6,
            alerts in 0usize..4,
        ) {
            let mut healthy: Vec<Observation> = (0..lags).map(|_| lagging()).collect();
            healthy.extend((0..deliveries).map(|_| validated()));
            prop_assert!(violated(&[truth(Injected::Nothing)], &healthy, &[]).is_empty());

            let mut corrupt: Vec<Observation> = (0..lags).map(|_| lagging()).collect();
            corrupt.extend((0..deliveries).map(|_| failed(Outcome::Mismatch)));
            corrupt.extend((0..alerts).map(|_| failure_alert()));
            let got = violated(&[truth(Injected::Corrupt)], &corrupt, &[]);
            prop_assert_eq!(got.is_empty(), alerts == 1);
        }
    }
}

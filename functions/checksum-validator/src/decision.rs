//! The decision core: what the validator concludes from two object descriptions.
//!
//! Pure functions only: no I/O, no clocks, no AWS types. `handler.rs` gathers the facts
//! (`s3.rs`) and the timing, calls [`decide`], and acts on the [`Decision`].
//!
//! Floor 2: may import floors 0-1.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::coverage::Uncovered;
use crate::facts::{ChecksumAlgorithm, ChecksumScope, ObjectFacts, ReplicationStatus};

/// Every conclusion the validator can reach for one event record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The replica is an exact copy, proven by matching content evidence.
    Validated,
    /// The replica is not there yet and replication may still deliver it: retry later.
    Lagging,
    /// Content evidence differs: the replica is not an exact copy.
    Mismatch,
    /// The source says replication completed, but the replica version is not there.
    ReplicaMissing,
    /// The source says replication FAILED (S3 does not retry it).
    ReplicationFailed,
    /// Still no replica after the lag budget.
    ReplicationOverdue,
    /// No replication rule covers the version (the source reports no replication status):
    /// it will never be replicated.
    NotReplicated,
    /// The version named by the event no longer exists (overwritten and expired, or deleted).
    Superseded,
    /// Both sides exist and sizes match, but no comparable content evidence exists.
    Unverifiable,
    /// The message is not an S3 object-created event.
    Malformed,
    /// The message is one S3 sends that announces nothing to validate (the `s3:TestEvent`
    /// of a new notification configuration, a deletion): acknowledged.
    Acknowledged,
    /// A permanent AWS error (access denied, missing bucket, ...) prevented validation.
    Error,
    /// Throttling, a 5xx or a timeout: retried with backoff, not a verdict on the replica.
    TransientError,
    /// Not judged in this invocation: it was too close to its deadline to start (or finish)
    /// the record, which is left for the next delivery. The handler's, never `decide`'s.
    Deferred,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Validated => "validated",
            Outcome::Lagging => "lagging",
            Outcome::Mismatch => "mismatch",
            Outcome::ReplicaMissing => "replica-missing",
            Outcome::ReplicationFailed => "replication-failed",
            Outcome::ReplicationOverdue => "replication-overdue",
            Outcome::NotReplicated => "not-replicated",
            Outcome::Superseded => "superseded",
            Outcome::Unverifiable => "unverifiable",
            Outcome::Malformed => "malformed",
            Outcome::Acknowledged => "acknowledged",
            Outcome::Error => "error",
            Outcome::TransientError => "transient-error",
            Outcome::Deferred => "deferred",
        }
    }

    /// Whether this outcome is a failure that must reach the notifier.
    pub fn is_failure(self, alert_on_unverifiable: bool) -> bool {
        match self {
            Outcome::Mismatch
            | Outcome::ReplicaMissing
            | Outcome::ReplicationFailed
            | Outcome::ReplicationOverdue
            | Outcome::NotReplicated
            | Outcome::Error => true,
            Outcome::Unverifiable => alert_on_unverifiable,
            Outcome::Validated
            | Outcome::Lagging
            | Outcome::Superseded
            | Outcome::Malformed
            | Outcome::Acknowledged
            | Outcome::TransientError
            | Outcome::Deferred => false,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one piece of evidence was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "algorithm")]
pub enum EvidenceKind {
    Size,
    Checksum(ChecksumAlgorithm),
    Etag,
    /// Both objects streamed and hashed with SHA-256 (deep mode).
    StreamedSha256,
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceKind::Size => f.write_str("size"),
            EvidenceKind::Checksum(a) => write!(f, "checksum-{}", a.as_str()),
            EvidenceKind::Etag => f.write_str("etag"),
            EvidenceKind::StreamedSha256 => f.write_str("streamed-sha256"),
        }
    }
}

/// The verdict of one comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Match,
    Differ,
    /// The values cannot prove anything about content (e.g. different part layouts).
    Inconclusive(String),
}

/// One comparison of primary and replica evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    pub kind: EvidenceKind,
    pub primary: String,
    pub replica: String,
    pub verdict: Verdict,
    /// The destination bucket compared, when the object has more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// Lookup result for the primary version named by the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryState {
    Found(ObjectFacts),
    /// The version no longer exists.
    Gone,
}

/// Lookup result for the replica of that version at one destination: the replica's
/// version with the source's version id, as S3 replication keeps it ("Replicas have the
/// same key names and the same metadata, for example creation time, user-defined metadata,
/// and version ID", S3 User Guide, Replication). Any other version is a different upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaState {
    Found(ObjectFacts),
    Missing,
}

/// One destination bucket and what it holds of the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtDestination {
    pub bucket: String,
    pub state: ReplicaState,
}

/// What replication owes the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// No rule covers it (the source reports no status, or is itself a replica).
    Uncovered(Uncovered),
    /// Every destination it must reach (at least one), and what each holds.
    Destinations(Vec<AtDestination>),
}

impl Replication {
    /// The single-destination case.
    pub fn one(bucket: &str, state: ReplicaState) -> Replication {
        Replication::Destinations(vec![AtDestination {
            bucket: bucket.to_string(),
            state,
        }])
    }
}

/// Time facts for the lag budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long ago the object was created (event time to now).
    pub age: Duration,
    /// How long replication may take before it is overdue.
    pub lag_budget: Duration,
}

/// The validator's conclusion with the evidence that led to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub evidence: Vec<Comparison>,
    pub detail: String,
}

/// Compares every piece of evidence both sides offer.
pub fn compare(primary: &ObjectFacts, replica: &ObjectFacts) -> Vec<Comparison> {
    let mut out = vec![Comparison {
        kind: EvidenceKind::Size,
        primary: primary.size.to_string(),
        replica: replica.size.to_string(),
        verdict: if primary.size == replica.size {
            Verdict::Match
        } else {
            Verdict::Differ
        },
        destination: None,
    }];

    for algorithm in ChecksumAlgorithm::ALL {
        let (Some(p), Some(r)) = (primary.checksum(algorithm), replica.checksum(algorithm)) else {
            continue;
        };
        let verdict = match (p.scope, r.scope) {
            (ChecksumScope::FullObject, ChecksumScope::FullObject) => {
                if p.value == r.value {
                    Verdict::Match
                } else {
                    Verdict::Differ
                }
            }
            (ChecksumScope::Composite { parts: a }, ChecksumScope::Composite { parts: b })
                if a == b && a > 0 =>
            {
                if p.value == r.value {
                    Verdict::Match
                } else {
                    Verdict::Inconclusive(
                        "composite checksums differ, part sizes may differ".to_string(),
                    )
                }
            }
            _ => Verdict::Inconclusive("composite checksums of different part layouts".into()),
        };
        out.push(Comparison {
            kind: EvidenceKind::Checksum(algorithm),
            primary: describe_checksum(p.value.as_str(), p.scope),
            replica: describe_checksum(r.value.as_str(), r.scope),
            verdict,
            destination: None,
        });
    }

    if let (Some(pe), Some(re)) = (primary.etag.as_deref(), replica.etag.as_deref()) {
        let verdict = if primary.etag_is_content_md5() && replica.etag_is_content_md5() {
            if pe == re {
                Verdict::Match
            } else {
                Verdict::Differ
            }
        } else if primary.etag_parts().is_some()
            && primary.etag_parts() == replica.etag_parts()
            && pe == re
            && primary.etag_is_part_md5s()
            && replica.etag_is_part_md5s()
        {
            // Same multipart ETag of plaintext or SSE-S3 objects: the same part MD5s, so the
            // same bytes in the same layout. Under SSE-KMS or SSE-C the ETag "is not an MD5
            // digest of the object data" (S3 API Reference, `Object`), so equal ETags prove
            // nothing and fall through to inconclusive.
            Verdict::Match
        } else if [primary, replica].iter().any(|f| {
            // Encrypted with SSE-KMS or SSE-C: neither a content MD5 nor part MD5s.
            !f.etag_is_content_md5() && !f.etag_is_part_md5s()
        }) {
            Verdict::Inconclusive("etag of an SSE-KMS or SSE-C object is not a content hash".into())
        } else {
            Verdict::Inconclusive("multipart etags depend on the part layout".into())
        };
        out.push(Comparison {
            kind: EvidenceKind::Etag,
            primary: pe.to_string(),
            replica: re.to_string(),
            verdict,
            destination: None,
        });
    }
    out
}

fn describe_checksum(value: &str, scope: ChecksumScope) -> String {
    match scope {
        ChecksumScope::FullObject => value.to_string(),
        ChecksumScope::Composite { parts } => format!("{value}-{parts}"),
    }
}

/// Turns a list of comparisons into an outcome: any difference is a mismatch; otherwise any
/// content match (size alone never counts) validates; otherwise the copy is unverifiable.
pub fn judge(comparisons: &[Comparison]) -> Outcome {
    if comparisons.iter().any(|c| c.verdict == Verdict::Differ) {
        return Outcome::Mismatch;
    }
    let content_match = comparisons
        .iter()
        .any(|c| c.kind != EvidenceKind::Size && c.verdict == Verdict::Match);
    if content_match {
        Outcome::Validated
    } else {
        Outcome::Unverifiable
    }
}

/// Decides one record from the primary lookup, what replication owes it and the time facts.
///
/// The source's replication status is consulted in every branch: FAILED is a failure even
/// when some replica matches (S3 reports FAILED when any destination failed), COMPLETED
/// with a missing replica is `replica-missing`, PENDING with a missing replica is lag (then
/// overdue), and no status at all means no rule covers the version (`not-replicated`).
pub fn decide(primary: &PrimaryState, replication: &Replication, timing: Timing) -> Decision {
    let primary = match primary {
        PrimaryState::Gone => {
            return Decision {
                outcome: Outcome::Superseded,
                evidence: Vec::new(),
                detail: "the version named by the event no longer exists".into(),
            }
        }
        PrimaryState::Found(facts) => facts,
    };
    let destinations = match replication {
        Replication::Uncovered(why) => {
            return Decision {
                outcome: Outcome::NotReplicated,
                evidence: Vec::new(),
                detail: format!("not covered by replication: {}", why.explain()),
            }
        }
        Replication::Destinations(d) if d.is_empty() => {
            return Decision {
                outcome: Outcome::NotReplicated,
                evidence: Vec::new(),
                detail: format!(
                    "not covered by replication: {}",
                    Uncovered::Filtered.explain()
                ),
            }
        }
        Replication::Destinations(d) => d,
    };
    let status = primary.replication_status;
    let several = destinations.len() > 1;
    let mut evidence = Vec::new();
    let mut verdicts: Vec<(Outcome, String)> = Vec::new();
    for at in destinations {
        let (outcome, detail) = match &at.state {
            ReplicaState::Found(replica) => {
                let mut found = compare(primary, replica);
                if several {
                    for c in &mut found {
                        c.destination = Some(at.bucket.clone());
                    }
                }
                let outcome = judge(&found);
                let detail = match outcome {
                    Outcome::Validated => format!(
                        "replica is an exact copy ({})",
                        kinds(&found, |c| c.verdict == Verdict::Match
                            && c.kind != EvidenceKind::Size)
                    ),
                    Outcome::Mismatch => format!(
                        "replica differs ({})",
                        kinds(&found, |c| c.verdict == Verdict::Differ)
                    ),
                    _ => "sizes match but no comparable content evidence exists".into(),
                };
                evidence.extend(found);
                (outcome, detail)
            }
            ReplicaState::Missing => missing(status, timing),
        };
        verdicts.push((
            outcome,
            if several {
                format!("{}: {detail}", at.bucket)
            } else {
                detail
            },
        ));
    }
    let pick = |o: Outcome| {
        verdicts
            .iter()
            .filter(|(v, _)| *v == o)
            .map(|(_, d)| d.clone())
            .collect::<Vec<_>>()
    };
    let order = [
        Outcome::Mismatch,
        Outcome::ReplicationFailed,
        Outcome::ReplicaMissing,
        Outcome::ReplicationOverdue,
        Outcome::Lagging,
        Outcome::Unverifiable,
        Outcome::Validated,
    ];
    let mut outcome = order
        .into_iter()
        .find(|o| verdicts.iter().any(|(v, _)| v == o))
        .unwrap_or(Outcome::Validated);
    let mut detail = pick(outcome).join("; ");
    if status == Some(ReplicationStatus::Failed)
        && outcome != Outcome::Mismatch
        && outcome != Outcome::ReplicationFailed
    {
        // Every replica found matched (or is pending), yet S3 says a destination failed.
        detail = format!(
            "source replication status is FAILED although {} ({detail}); S3 does not retry it",
            if several {
                "the replicas found match"
            } else {
                "a replica was found"
            }
        );
        outcome = Outcome::ReplicationFailed;
    }
    Decision {
        outcome,
        evidence,
        detail,
    }
}

fn kinds(evidence: &[Comparison], pred: impl Fn(&Comparison) -> bool) -> String {
    let mut by: Vec<String> = Vec::new();
    for c in evidence.iter().filter(|c| pred(c)) {
        let k = c.kind.to_string();
        if !by.contains(&k) {
            by.push(k);
        }
    }
    by.join(", ")
}

/// The verdict for a destination that does not hold the version, by the source status.
fn missing(status: Option<ReplicationStatus>, timing: Timing) -> (Outcome, String) {
    match status {
        Some(ReplicationStatus::Failed) => (
            Outcome::ReplicationFailed,
            "source replication status is FAILED; S3 does not retry it".to_string(),
        ),
        Some(ReplicationStatus::Completed) => (
            Outcome::ReplicaMissing,
            "source says replication COMPLETED but the replica version is absent".to_string(),
        ),
        status if timing.age > timing.lag_budget => (
            Outcome::ReplicationOverdue,
            format!(
                "no replica after {}s (lag budget {}s, source status {})",
                timing.age.as_secs(),
                timing.lag_budget.as_secs(),
                status_name(status)
            ),
        ),
        status => (
            Outcome::Lagging,
            format!(
                "replica not there yet (source status {})",
                status_name(status)
            ),
        ),
    }
}

fn status_name(status: Option<ReplicationStatus>) -> &'static str {
    match status {
        None => "not reported",
        Some(ReplicationStatus::Pending) => "PENDING",
        Some(ReplicationStatus::Completed) => "COMPLETED",
        Some(ReplicationStatus::Failed) => "FAILED",
        Some(ReplicationStatus::Replica) => "REPLICA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Checksum, Encryption};
    use proptest::prelude::*;
    use rstest::rstest;

    const SOON: Timing = Timing {
        age: Duration::from_secs(5),
        lag_budget: Duration::from_secs(900),
    };
    const LATE: Timing = Timing {
        age: Duration::from_secs(1000),
        lag_budget: Duration::from_secs(900),
    };

    fn with_checksum(mut f: ObjectFacts, alg: ChecksumAlgorithm, raw: &str) -> ObjectFacts {
        f.checksums.push(Checksum::from_header(alg, raw, None));
        f
    }

    fn kms(mut f: ObjectFacts) -> ObjectFacts {
        f.encryption = Encryption::SseKms;
        f
    }

    #[rstest]
    #[case::same_single_part_etag(
        ObjectFacts::simple(5, "aa"),
        ObjectFacts::simple(5, "aa"),
        Outcome::Validated
    )]
    #[case::different_single_part_etag(
        ObjectFacts::simple(5, "aa"),
        ObjectFacts::simple(5, "bb"),
        Outcome::Mismatch
    )]
    #[case::size_differs(
        ObjectFacts::simple(5, "aa"),
        ObjectFacts::simple(6, "aa"),
        Outcome::Mismatch
    )]
    #[case::kms_etags_prove_nothing(
        kms(ObjectFacts::simple(5, "aa")),
        kms(ObjectFacts::simple(5, "aa")),
        Outcome::Unverifiable
    )]
    #[case::kms_with_matching_checksum(
        with_checksum(kms(ObjectFacts::simple(5, "aa")), ChecksumAlgorithm::Crc64nvme, "x"),
        with_checksum(kms(ObjectFacts::simple(5, "bb")), ChecksumAlgorithm::Crc64nvme, "x"),
        Outcome::Validated
    )]
    #[case::checksum_differs(
        with_checksum(ObjectFacts::simple(5, "aa-2"), ChecksumAlgorithm::Crc32, "x"),
        with_checksum(ObjectFacts::simple(5, "bb-3"), ChecksumAlgorithm::Crc32, "y"),
        Outcome::Mismatch
    )]
    #[case::different_part_layouts_same_full_checksum(
        with_checksum(ObjectFacts::simple(5, "aa-2"), ChecksumAlgorithm::Crc64nvme, "x"),
        with_checksum(ObjectFacts::simple(5, "bb-3"), ChecksumAlgorithm::Crc64nvme, "x"),
        Outcome::Validated
    )]
    #[case::different_part_layouts_no_checksum(
        ObjectFacts::simple(5, "aa-2"),
        ObjectFacts::simple(5, "bb-3"),
        Outcome::Unverifiable
    )]
    #[case::same_multipart_etag(
        ObjectFacts::simple(5, "aa-2"),
        ObjectFacts::simple(5, "aa-2"),
        Outcome::Validated
    )]
    #[case::kms_multipart_etags_prove_nothing(
        kms(ObjectFacts::simple(5, "aa-2")),
        kms(ObjectFacts::simple(5, "aa-2")),
        Outcome::Unverifiable
    )]
    #[case::md5_checksum_proves_a_kms_copy(
        with_checksum(kms(ObjectFacts::simple(5, "aa")), ChecksumAlgorithm::Md5, "m"),
        with_checksum(kms(ObjectFacts::simple(5, "bb")), ChecksumAlgorithm::Md5, "m"),
        Outcome::Validated
    )]
    #[case::composite_vs_composite_other_layout(
        with_checksum(ObjectFacts::simple(5, "aa-2"), ChecksumAlgorithm::Crc32, "x-2"),
        with_checksum(ObjectFacts::simple(5, "bb-3"), ChecksumAlgorithm::Crc32, "y-3"),
        Outcome::Unverifiable
    )]
    #[case::different_algorithms(
        with_checksum(kms(ObjectFacts::simple(5, "aa")), ChecksumAlgorithm::Crc32, "x"),
        with_checksum(kms(ObjectFacts::simple(5, "aa")), ChecksumAlgorithm::Sha256, "x"),
        Outcome::Unverifiable
    )]
    fn judges_evidence(#[case] p: ObjectFacts, #[case] r: ObjectFacts, #[case] want: Outcome) {
        let d = decide(
            &PrimaryState::Found(p),
            &Replication::one("r", ReplicaState::Found(r)),
            SOON,
        );
        assert_eq!(d.outcome, want, "{d:?}");
    }

    #[rstest]
    #[case::pending_is_lag(Some(ReplicationStatus::Pending), SOON, Outcome::Lagging)]
    #[case::failed_is_failure(Some(ReplicationStatus::Failed), SOON, Outcome::ReplicationFailed)]
    #[case::completed_but_absent(Some(ReplicationStatus::Completed), SOON, Outcome::ReplicaMissing)]
    #[case::overdue(Some(ReplicationStatus::Pending), LATE, Outcome::ReplicationOverdue)]
    #[case::failed_beats_overdue(Some(ReplicationStatus::Failed), LATE, Outcome::ReplicationFailed)]
    fn missing_replica(
        #[case] status: Option<ReplicationStatus>,
        #[case] timing: Timing,
        #[case] want: Outcome,
    ) {
        let mut p = ObjectFacts::simple(1, "a");
        p.replication_status = status;
        let d = decide(
            &PrimaryState::Found(p),
            &Replication::one("r", ReplicaState::Missing),
            timing,
        );
        assert_eq!(d.outcome, want);
    }

    #[test]
    fn gone_primary_is_superseded() {
        let d = decide(
            &PrimaryState::Gone,
            &Replication::one("r", ReplicaState::Missing),
            SOON,
        );
        assert_eq!(d.outcome, Outcome::Superseded);
    }

    fn status(mut f: ObjectFacts, s: ReplicationStatus) -> ObjectFacts {
        f.replication_status = Some(s);
        f
    }

    fn two(a: ReplicaState, b: ReplicaState) -> Replication {
        Replication::Destinations(vec![
            AtDestination {
                bucket: "west".into(),
                state: a,
            },
            AtDestination {
                bucket: "east".into(),
                state: b,
            },
        ])
    }

    #[test]
    fn uncovered_is_not_replicated_at_once() {
        for why in [
            Uncovered::Filtered,
            Uncovered::SseKmsNotOptedIn,
            Uncovered::ArchivedStorageClass("GLACIER".into()),
            Uncovered::IsReplica,
        ] {
            let d = decide(
                &PrimaryState::Found(ObjectFacts::simple(1, "a")),
                &Replication::Uncovered(why.clone()),
                SOON,
            );
            assert_eq!(d.outcome, Outcome::NotReplicated);
            assert!(d.detail.contains(&why.explain()), "{}", d.detail);
        }
    }

    /// An identical re-upload whose replication FAILED: a matching replica of the same
    /// version id cannot hide the FAILED status (S3 reports FAILED when any destination failed).
    #[test]
    fn failed_status_is_a_failure_even_when_a_replica_matches() {
        let p = status(ObjectFacts::simple(5, "aa"), ReplicationStatus::Failed);
        let d = decide(
            &PrimaryState::Found(p),
            &Replication::one("r", ReplicaState::Found(ObjectFacts::simple(5, "aa"))),
            SOON,
        );
        assert_eq!(d.outcome, Outcome::ReplicationFailed, "{d:?}");
    }

    #[test]
    fn a_difference_beats_failed() {
        let p = status(ObjectFacts::simple(5, "aa"), ReplicationStatus::Failed);
        let d = decide(
            &PrimaryState::Found(p),
            &Replication::one("r", ReplicaState::Found(ObjectFacts::simple(5, "bb"))),
            SOON,
        );
        assert_eq!(d.outcome, Outcome::Mismatch);
    }

    #[rstest]
    #[case::both_copies(
        ReplicationStatus::Completed,
        ReplicaState::Found(ObjectFacts::simple(5, "aa")),
        Outcome::Validated
    )]
    #[case::one_pending(ReplicationStatus::Pending, ReplicaState::Missing, Outcome::Lagging)]
    #[case::one_failed(
        ReplicationStatus::Failed,
        ReplicaState::Missing,
        Outcome::ReplicationFailed
    )]
    #[case::one_lost(
        ReplicationStatus::Completed,
        ReplicaState::Missing,
        Outcome::ReplicaMissing
    )]
    #[case::one_differs(
        ReplicationStatus::Pending,
        ReplicaState::Found(ObjectFacts::simple(5, "bb")),
        Outcome::Mismatch
    )]
    fn every_destination_counts(
        #[case] s: ReplicationStatus,
        #[case] east: ReplicaState,
        #[case] want: Outcome,
    ) {
        let p = status(ObjectFacts::simple(5, "aa"), s);
        let d = decide(
            &PrimaryState::Found(p),
            &two(ReplicaState::Found(ObjectFacts::simple(5, "aa")), east),
            SOON,
        );
        assert_eq!(d.outcome, want, "{d:?}");
        if want != Outcome::Validated {
            assert!(
                d.detail.contains("east"),
                "names the destination: {}",
                d.detail
            );
        }
    }

    fn arb_facts() -> impl Strategy<Value = ObjectFacts> {
        let checksum = (
            0..ChecksumAlgorithm::ALL.len(),
            "[ab]{1}",
            prop::option::of(1u32..4),
        )
            .prop_map(|(i, v, parts)| {
                let raw = match parts {
                    Some(n) => format!("{v}-{n}"),
                    None => v,
                };
                Checksum::from_header(ChecksumAlgorithm::ALL[i], &raw, None)
            });
        (
            0i64..3,
            prop::option::of(("[ab]", prop::option::of(1u32..4))),
            prop::collection::vec(checksum, 0..3),
            0..4usize,
        )
            .prop_map(|(size, etag, checksums, enc)| ObjectFacts {
                size,
                etag: etag.map(|(e, parts)| match parts {
                    Some(n) => format!("{e}-{n}"),
                    None => e,
                }),
                checksums,
                encryption: [
                    Encryption::None,
                    Encryption::SseS3,
                    Encryption::SseKms,
                    Encryption::SseC,
                ][enc],
                parts: None,
                replication_status: None,
                version_id: None,
                storage_class: None,
            })
    }

    proptest! {
        /// Never `validated` without a matching piece of content evidence, and never when sizes differ.
        #[test]
        fn never_validated_without_matching_evidence(p in arb_facts(), r in arb_facts()) {
            let d = decide(&PrimaryState::Found(p.clone()), &Replication::one("r", ReplicaState::Found(r.clone())), SOON);
            if d.outcome == Outcome::Validated {
                prop_assert_eq!(p.size, r.size);
                let full_match = ChecksumAlgorithm::ALL.iter().any(|a| {
                    matches!((p.checksum(*a), r.checksum(*a)), (Some(x), Some(y)) if x.value == y.value && x.scope == y.scope)
                });
                // AWS's rule, stated independently of the implementation: an ETag is content
                // evidence only for plaintext or SSE-S3 objects (S3 API Reference, `Object`);
                // equal strings then carry the same part count too.
                let plain = |f: &ObjectFacts| matches!(f.encryption, Encryption::None | Encryption::SseS3);
                let etag_match = p.etag.is_some() && p.etag == r.etag && plain(&p) && plain(&r);
                prop_assert!(full_match || etag_match, "validated without evidence: {:?}", d);
                prop_assert!(d.evidence.iter().all(|c| c.verdict != Verdict::Differ));
            }
        }

        /// Swapping primary and replica never changes the outcome: the judgement is symmetric.
        #[test]
        fn judgement_is_symmetric(p in arb_facts(), r in arb_facts()) {
            let a = decide(&PrimaryState::Found(p.clone()), &Replication::one("r", ReplicaState::Found(r.clone())), SOON);
            let b = decide(&PrimaryState::Found(r), &Replication::one("r", ReplicaState::Found(p)), SOON);
            prop_assert_eq!(a.outcome, b.outcome);
        }
    }

    // Mutation testing (cargo-mutants) found the cases below unchecked.

    /// Which outcomes reach the notifier: every named failure; `unverifiable` only when
    /// configured to; never a validation, a retry, an acknowledgement or a deferral.
    #[rstest]
    #[case(Outcome::Validated, false)]
    #[case(Outcome::Lagging, false)]
    #[case(Outcome::Mismatch, true)]
    #[case(Outcome::ReplicaMissing, true)]
    #[case(Outcome::ReplicationFailed, true)]
    #[case(Outcome::ReplicationOverdue, true)]
    #[case(Outcome::NotReplicated, true)]
    #[case(Outcome::Superseded, false)]
    #[case(Outcome::Malformed, false)]
    #[case(Outcome::Acknowledged, false)]
    #[case(Outcome::Error, true)]
    #[case(Outcome::TransientError, false)]
    #[case(Outcome::Deferred, false)]
    fn failures_are_the_named_ones(#[case] o: Outcome, #[case] failure: bool) {
        assert_eq!(o.is_failure(true), failure);
        assert_eq!(o.is_failure(false), failure);
    }

    #[test]
    fn unverifiable_is_a_failure_only_when_configured() {
        assert!(Outcome::Unverifiable.is_failure(true));
        assert!(!Outcome::Unverifiable.is_failure(false));
    }

    #[test]
    fn outcomes_and_evidence_display_their_wire_names() {
        assert_eq!(
            Outcome::ReplicationOverdue.to_string(),
            "replication-overdue"
        );
        assert_eq!(Outcome::Mismatch.to_string(), "mismatch");
        assert_eq!(EvidenceKind::Size.to_string(), "size");
        assert_eq!(
            EvidenceKind::Checksum(ChecksumAlgorithm::Crc32).to_string(),
            "checksum-crc32"
        );
        assert_eq!(EvidenceKind::Etag.to_string(), "etag");
        assert_eq!(EvidenceKind::StreamedSha256.to_string(), "streamed-sha256");
    }

    fn crc32_comparison(p: &str, r: &str) -> Comparison {
        let p = with_checksum(ObjectFacts::simple(5, "aa-2"), ChecksumAlgorithm::Crc32, p);
        let r = with_checksum(ObjectFacts::simple(5, "bb-3"), ChecksumAlgorithm::Crc32, r);
        compare(&p, &r)
            .into_iter()
            .find(|c| c.kind == EvidenceKind::Checksum(ChecksumAlgorithm::Crc32))
            .expect("both sides declare CRC32")
    }

    /// Composite checksums prove the copy only with the same part count; different values
    /// of the same layout may still be the same bytes cut differently: never `Differ`.
    #[test]
    fn composite_checksums_compare_only_within_one_layout() {
        let same = crc32_comparison("AAAA-3", "AAAA-3");
        assert_eq!(same.verdict, Verdict::Match);
        assert_eq!(
            (same.primary.as_str(), same.replica.as_str()),
            ("AAAA-3", "AAAA-3")
        );
        assert!(matches!(
            crc32_comparison("AAAA-3", "BBBB-3").verdict,
            Verdict::Inconclusive(_)
        ));
        assert!(matches!(
            crc32_comparison("AAAA-3", "AAAA-4").verdict,
            Verdict::Inconclusive(_)
        ));
        assert!(matches!(
            crc32_comparison("AAAA-0", "AAAA-0").verdict,
            Verdict::Inconclusive(_)
        ));
        assert!(matches!(
            crc32_comparison("AAAA", "AAAA-3").verdict,
            Verdict::Inconclusive(_)
        ));
        let full = crc32_comparison("AAAA", "AAAA");
        assert_eq!(full.verdict, Verdict::Match);
        assert_eq!(full.primary, "AAAA");
    }

    /// An SSE-KMS ETag and a multipart ETag are inconclusive for different reasons, and the
    /// evidence says which.
    #[test]
    fn inconclusive_etags_say_why() {
        let etag = |p: ObjectFacts, r: ObjectFacts| {
            compare(&p, &r)
                .into_iter()
                .find(|c| c.kind == EvidenceKind::Etag)
                .expect("both have an etag")
                .verdict
        };
        let sse = Verdict::Inconclusive(
            "etag of an SSE-KMS or SSE-C object is not a content hash".into(),
        );
        let layout = Verdict::Inconclusive("multipart etags depend on the part layout".into());
        assert_eq!(
            etag(
                kms(ObjectFacts::simple(5, "aa")),
                ObjectFacts::simple(5, "aa")
            ),
            sse
        );
        assert_eq!(
            etag(
                ObjectFacts::simple(5, "aa"),
                kms(ObjectFacts::simple(5, "aa"))
            ),
            sse
        );
        assert_eq!(
            etag(
                ObjectFacts::simple(5, "aa-2"),
                ObjectFacts::simple(5, "aa-3")
            ),
            layout
        );
        assert_eq!(
            etag(
                ObjectFacts::simple(5, "aa-2"),
                ObjectFacts::simple(5, "aa-2")
            ),
            Verdict::Match
        );
        // A plaintext single-part copy of a multipart upload: both ETags are MD5-based, so
        // the layout is why, not the encryption.
        assert_eq!(
            etag(ObjectFacts::simple(5, "aa"), ObjectFacts::simple(5, "aa-2")),
            layout
        );
    }

    #[test]
    fn no_destination_is_not_replicated() {
        let d = decide(
            &PrimaryState::Found(ObjectFacts::simple(5, "aa")),
            &Replication::Destinations(Vec::new()),
            SOON,
        );
        assert_eq!(d.outcome, Outcome::NotReplicated);
        assert!(
            d.detail.starts_with("not covered by replication: "),
            "{}",
            d.detail
        );
    }

    /// One destination: the evidence names no bucket and the detail says what proved or
    /// disproved the copy.
    #[test]
    fn details_name_the_evidence() {
        let one = |replica: ObjectFacts| {
            decide(
                &PrimaryState::Found(ObjectFacts::simple(5, "aa")),
                &Replication::one("r", ReplicaState::Found(replica)),
                SOON,
            )
        };
        let ok = one(ObjectFacts::simple(5, "aa"));
        assert_eq!(ok.detail, "replica is an exact copy (etag)");
        assert!(ok.evidence.iter().all(|c| c.destination.is_none()));
        let bad = one(ObjectFacts::simple(6, "bb"));
        assert_eq!(bad.detail, "replica differs (size, etag)");
        let unproven = one(kms(ObjectFacts::simple(5, "aa")));
        assert_eq!(unproven.outcome, Outcome::Unverifiable);
        assert_eq!(
            unproven.detail,
            "sizes match but no comparable content evidence exists"
        );
    }

    /// The lag budget is a bound: at exactly the budget the replica is still lagging.
    #[test]
    fn overdue_starts_after_the_budget_and_names_the_status() {
        let at = |secs: u64, status: Option<ReplicationStatus>| {
            let mut p = ObjectFacts::simple(5, "aa");
            p.replication_status = status;
            decide(
                &PrimaryState::Found(p),
                &Replication::one("r", ReplicaState::Missing),
                Timing {
                    age: Duration::from_secs(secs),
                    lag_budget: Duration::from_secs(900),
                },
            )
        };
        assert_eq!(
            at(900, Some(ReplicationStatus::Pending)).outcome,
            Outcome::Lagging
        );
        let late = at(901, Some(ReplicationStatus::Pending));
        assert_eq!(late.outcome, Outcome::ReplicationOverdue);
        assert_eq!(
            late.detail,
            "no replica after 901s (lag budget 900s, source status PENDING)"
        );
        assert!(at(901, None)
            .detail
            .ends_with("source status not reported)"));
    }
}

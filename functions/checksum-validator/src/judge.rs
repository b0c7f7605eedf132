//! One object judged: its primary version found under the event's key, its replica at every
//! destination, and the pure decision ([`crate::decision`]) over those facts, with deep mode's
//! streamed comparison when the stored checksums cannot tell.
//!
//! Floor 5: may import floors 0-4.

use std::time::Duration;

use chrono::Utc;

use crate::aws_error::AwsError;
use crate::decision::{
    decide, judge, AtDestination, Comparison, Decision, EvidenceKind, Outcome, PrimaryState,
    ReplicaState, Replication, Timing, Verdict,
};
use crate::event::ObjectEvent;
use crate::failure_record::ObjectRef;
use crate::report::VersionSource;
use crate::text::escape;
use crate::validator::Validator;

pub(crate) struct Judged {
    pub(crate) decision: Decision,
    pub(crate) version_source: Option<VersionSource>,
    pub(crate) version_id: Option<String>,
    pub(crate) replicas: Vec<ObjectRef>,
    /// The key the version was found under (the event's first reading when not found).
    pub(crate) key: String,
}

impl Validator {
    pub(crate) async fn judge_object(&self, event: &ObjectEvent) -> Judged {
        let age = event
            .time
            .map(|t| (Utc::now() - t).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::ZERO);
        let timing = Timing {
            age,
            lag_budget: self.config.lag_budget,
        };
        // EventBridge `Object Created` events of versioned buckets name the version
        // (`detail.object.version-id`, S3 User Guide, "EventBridge event message
        // structure"); S3 replication requires versioning on both buckets.
        let version_source = Some(if event.version_id.is_some() {
            VersionSource::Event
        } else {
            VersionSource::CurrentVersion
        });
        let version_id = event.version_id.clone();
        let fail = |e: AwsError, what: &str| Judged {
            decision: failed_call(e, what, timing),
            version_source,
            version_id: None,
            replicas: Vec::new(),
            key: event.key.clone(),
        };

        // The key as the version exists under it: the first candidate reading of the event's
        // key (see `event`) that holds the event's version.
        let mut resolved: Option<(String, crate::facts::ObjectFacts)> = None;
        for candidate in &event.key_candidates {
            match self
                .s3
                .describe_primary(&event.bucket, candidate, version_id.as_deref())
                .await
            {
                Ok(Some(facts)) => {
                    resolved = Some((candidate.clone(), facts));
                    break;
                }
                Ok(None) => {}
                Err(e) => return fail(e, "reading the primary object"),
            }
        }
        let Some((key, primary)) = resolved else {
            let mut decision = decide(
                &PrimaryState::Gone,
                &Replication::Destinations(Vec::new()),
                timing,
            );
            if let Some(detail) = unresolved_detail(&event.key_candidates) {
                decision.detail = detail;
                tracing::warn!(bucket = %escape(&event.bucket), detail = %escape(&decision.detail), "superseded under every key reading");
            }
            return Judged {
                decision,
                version_source,
                version_id: None,
                replicas: Vec::new(),
                key: event.key.clone(),
            };
        };
        log_other_reading(event, &key);
        let event = &ObjectEvent {
            key,
            ..event.clone()
        };
        let version = primary.version_id.clone();
        let found = PrimaryState::Found(primary.clone());
        // "Amazon S3 returns the x-amz-replication-status header if the object in your
        // request is eligible for replication" (S3 User Guide, "Getting replication status
        // information"): no header, or REPLICA, means no rule will ever copy this version.
        if matches!(
            primary.replication_status,
            None | Some(crate::facts::ReplicationStatus::Replica)
        ) {
            let why = self
                .s3
                .uncovered(&event.bucket, &event.key, version.as_deref(), &primary)
                .await;
            return Judged {
                decision: decide(&found, &Replication::Uncovered(why), timing),
                version_source,
                version_id: version,
                replicas: Vec::new(),
                key: event.key.clone(),
            };
        }
        let destinations = match self
            .s3
            .destinations(&event.bucket, &event.key, version.as_deref(), &primary)
            .await
        {
            Ok(Ok(d)) => d,
            Ok(Err(why)) => {
                // The source reports a status, yet no rule the validator can read covers it.
                return fail(
                    AwsError::Permanent {
                        code: "NoMatchingReplicationRule".into(),
                        message: format!(
                            "the source reports replication status {} but {}",
                            primary
                                .replication_status
                                .map(|s| format!("{s:?}").to_ascii_uppercase())
                                .unwrap_or_default(),
                            why.explain()
                        ),
                    },
                    "finding the replica destinations",
                );
            }
            Err(e) => return fail(e, "finding the replica destinations"),
        };
        let mut at = Vec::with_capacity(destinations.len());
        let mut replicas = Vec::with_capacity(destinations.len());
        for dest in &destinations {
            let state = match self.s3.replica(dest, &event.key, version.as_deref()).await {
                Ok(state) => state,
                Err(e) => return fail(e, "reading the replica"),
            };
            replicas.push(ObjectRef {
                bucket: dest.bucket.clone(),
                key: event.key.clone(),
                version_id: match &state {
                    ReplicaState::Found(f) => f.version_id.clone(),
                    ReplicaState::Missing => None,
                },
                category: None,
            });
            at.push(AtDestination {
                bucket: dest.bucket.clone(),
                state,
            });
        }
        let replication = Replication::Destinations(at);
        let mut decision = decide(&found, &replication, timing);
        let deep = deep_step(
            decision.outcome,
            self.config.deep_verify,
            primary.size,
            self.config.deep_verify_max_bytes,
        );
        match deep {
            Deep::Skip => {}
            Deep::TooLarge => {
                decision.detail = format!(
                    "{}; unverifiable: too large for deep mode ({} bytes > DEEP_VERIFY_MAX_BYTES {})",
                    decision.detail, primary.size, self.config.deep_verify_max_bytes
                );
            }
            Deep::Stream => {
                let mut streamed = Vec::new();
                for (dest, replica) in destinations.iter().zip(&replicas) {
                    if replica.version_id.is_none() {
                        continue;
                    }
                    match self
                        .deep_compare(event, &primary, &dest.region, replica)
                        .await
                    {
                        Ok((p, r)) => streamed.push(streamed_comparison(
                            p,
                            r,
                            &dest.bucket,
                            destinations.len(),
                        )),
                        Err(e) => return fail(e, "deep verification"),
                    }
                }
                decision = with_streamed(decision, streamed);
            }
        }
        Judged {
            decision,
            version_source,
            version_id: version,
            replicas,
            key: event.key.clone(),
        }
    }

    /// Deep mode: streams both versions and compares their SHA-256.
    async fn deep_compare(
        &self,
        event: &ObjectEvent,
        primary: &crate::facts::ObjectFacts,
        replica_region: &str,
        replica: &ObjectRef,
    ) -> Result<(String, String), AwsError> {
        let (p, r) = futures::try_join!(
            self.s3.stream_sha256(
                None,
                &event.bucket,
                &event.key,
                primary.version_id.as_deref()
            ),
            self.s3.stream_sha256(
                Some(replica_region),
                &replica.bucket,
                &replica.key,
                replica.version_id.as_deref()
            ),
        )?;
        Ok((p.0, r.0))
    }
}

/// One destination's streamed SHA-256s as evidence, named by its bucket when the source
/// replicates to more than one.
pub(crate) fn streamed_comparison(
    primary: String,
    replica: String,
    bucket: &str,
    destinations: usize,
) -> Comparison {
    Comparison {
        kind: EvidenceKind::StreamedSha256,
        verdict: if primary == replica {
            Verdict::Match
        } else {
            Verdict::Differ
        },
        primary,
        replica,
        destination: (destinations > 1).then(|| bucket.to_string()),
    }
}

/// An unverifiable decision judged again with deep mode's streamed evidence added.
pub(crate) fn with_streamed(mut decision: Decision, streamed: Vec<Comparison>) -> Decision {
    decision.evidence.extend(streamed);
    decision.outcome = judge(&decision.evidence);
    decision.detail = match decision.outcome {
        Outcome::Validated => "replica is an exact copy (streamed-sha256, deep mode)".into(),
        Outcome::Mismatch => "replica differs (streamed-sha256, deep mode)".into(),
        _ => decision.detail,
    };
    decision
}

/// Logs a key found under a reading other than the event's first: a log line only, which
/// `.cargo/mutants.toml` names as such.
fn log_other_reading(event: &ObjectEvent, key: &str) {
    if key != event.key {
        tracing::info!(bucket = %escape(&event.bucket), key = %escape(key), first_reading = %escape(&event.key), "the event's key resolved to another reading");
    }
}

/// The decision when an AWS call about the object failed: a transient failure is retried
/// while the event is inside the lag budget and an error after it; a permanent failure or a
/// missing bucket is an error at once; an SSE-C object (a HEAD answered 400 without the
/// customer key) is unverifiable, as no customer key is held.
pub(crate) fn failed_call(e: AwsError, what: &str, timing: Timing) -> Decision {
    let (outcome, detail) = match e {
        AwsError::Transient(why) if timing.age <= timing.lag_budget => {
            (Outcome::TransientError, format!("{what}: {why}"))
        }
        AwsError::Transient(why) => (
            Outcome::Error,
            format!("{what}: still failing after the lag budget: {why}"),
        ),
        AwsError::Permanent { code, message } => {
            (Outcome::Error, format!("{what}: {code}: {message}"))
        }
        AwsError::NotFound => (Outcome::Error, format!("{what}: not found")),
        AwsError::CustomerKeyRequired => (
            Outcome::Unverifiable,
            format!(
                "{what}: unverifiable (SSE-C): S3 answered 400 to a HEAD without the customer key, and the validator holds no customer keys, so it cannot compare content"
            ),
        ),
    };
    Decision {
        outcome,
        evidence: Vec::new(),
        detail,
    }
}

/// Why no version was found when the event's key had more than one reading; `None` for a
/// key with a single reading (the decision's own detail says it).
pub(crate) fn unresolved_detail(candidates: &[String]) -> Option<String> {
    (candidates.len() > 1).then(|| {
        format!(
            "no such version under any reading of the event's key (tried {}): deleted, or the key is encoded in a way none of these decodes",
            candidates
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// What deep mode (`DEEP_VERIFY`) does with a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deep {
    /// Deep mode is off, or the stored checksums decided.
    Skip,
    /// Unverifiable, and larger than `DEEP_VERIFY_MAX_BYTES`: said in the detail.
    TooLarge,
    /// Unverifiable and small enough: both versions are streamed and hashed.
    Stream,
}

/// Only an unverifiable decision is streamed, and only an object of at most `max_bytes`.
pub(crate) fn deep_step(outcome: Outcome, deep_verify: bool, size: i64, max_bytes: u64) -> Deep {
    if outcome != Outcome::Unverifiable || !deep_verify {
        Deep::Skip
    } else if u64::try_from(size).unwrap_or(0) > max_bytes {
        Deep::TooLarge
    } else {
        Deep::Stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const BUDGET: Duration = Duration::from_secs(900);

    fn at(age_secs: u64) -> Timing {
        Timing {
            age: Duration::from_secs(age_secs),
            lag_budget: BUDGET,
        }
    }

    #[rstest]
    #[case(AwsError::Transient("timeout".into()), 900, Outcome::TransientError, "reading: timeout")]
    #[case(AwsError::Transient("timeout".into()), 901, Outcome::Error, "reading: still failing after the lag budget: timeout")]
    #[case(AwsError::Permanent { code: "AccessDenied".into(), message: "no".into() }, 0, Outcome::Error, "reading: AccessDenied: no")]
    #[case(AwsError::NotFound, 0, Outcome::Error, "reading: not found")]
    #[case(
        AwsError::CustomerKeyRequired,
        0,
        Outcome::Unverifiable,
        "reading: unverifiable (SSE-C)"
    )]
    fn a_failed_call_is_decided_by_its_kind_and_the_lag_budget(
        #[case] e: AwsError,
        #[case] age: u64,
        #[case] outcome: Outcome,
        #[case] detail: &str,
    ) {
        let d = failed_call(e, "reading", at(age));
        assert_eq!(d.outcome, outcome);
        assert!(d.detail.starts_with(detail), "{}", d.detail);
        assert!(d.evidence.is_empty());
    }

    #[test]
    fn only_a_key_of_several_readings_lists_them() {
        assert_eq!(unresolved_detail(&["a b".into()]), None);
        assert_eq!(
            unresolved_detail(&["a+b".into(), "a b".into()]).as_deref(),
            Some("no such version under any reading of the event's key (tried \"a+b\", \"a b\"): deleted, or the key is encoded in a way none of these decodes")
        );
    }

    #[rstest]
    #[case(Outcome::Unverifiable, true, 10, Deep::Stream)]
    #[case(Outcome::Unverifiable, true, 9, Deep::Stream)]
    #[case(Outcome::Unverifiable, true, 11, Deep::TooLarge)]
    #[case(Outcome::Unverifiable, true, -1, Deep::Stream)]
    #[case(Outcome::Unverifiable, false, 5, Deep::Skip)]
    #[case(Outcome::Mismatch, true, 5, Deep::Skip)]
    #[case(Outcome::Validated, true, 5, Deep::Skip)]
    fn deep_mode_streams_only_small_unverifiable_objects(
        #[case] outcome: Outcome,
        #[case] deep: bool,
        #[case] size: i64,
        #[case] step: Deep,
    ) {
        assert_eq!(deep_step(outcome, deep, size, 10), step);
    }

    #[test]
    fn streamed_hashes_name_the_destination_only_among_several() {
        let one = streamed_comparison("aa".into(), "aa".into(), "replica", 1);
        assert_eq!(one.verdict, Verdict::Match);
        assert_eq!(one.kind, EvidenceKind::StreamedSha256);
        assert_eq!(one.destination, None);
        let two = streamed_comparison("aa".into(), "bb".into(), "replica-2", 2);
        assert_eq!(two.verdict, Verdict::Differ);
        assert_eq!((two.primary.as_str(), two.replica.as_str()), ("aa", "bb"));
        assert_eq!(two.destination.as_deref(), Some("replica-2"));
        assert_eq!(
            streamed_comparison("a".into(), "a".into(), "r", 0).destination,
            None
        );
    }

    #[test]
    fn deep_mode_decides_on_the_streamed_hashes() {
        let unverifiable = || Decision {
            outcome: Outcome::Unverifiable,
            evidence: Vec::new(),
            detail: "stored checksums cannot tell".into(),
        };
        let same = with_streamed(
            unverifiable(),
            vec![streamed_comparison("a".into(), "a".into(), "r", 1)],
        );
        assert_eq!(same.outcome, Outcome::Validated);
        assert_eq!(
            same.detail,
            "replica is an exact copy (streamed-sha256, deep mode)"
        );
        let differ = with_streamed(
            unverifiable(),
            vec![streamed_comparison("a".into(), "b".into(), "r", 1)],
        );
        assert_eq!(differ.outcome, Outcome::Mismatch);
        assert_eq!(
            differ.detail,
            "replica differs (streamed-sha256, deep mode)"
        );
        assert_eq!(differ.evidence.len(), 1);
        // Nothing streamed (no replica version to read): the decision stands.
        let none = with_streamed(unverifiable(), Vec::new());
        assert_eq!(none.outcome, Outcome::Unverifiable);
        assert_eq!(none.detail, "stored checksums cannot tell");
    }
}

//! One object judged: its primary version found under the event's key, its replica at every
//! destination, and the pure decision ([`crate::decision`]) over those facts, with deep mode's
//! streamed comparison when the stored checksums cannot tell.
//!
//! Floor 5: may import floors 0-4.

use std::time::Duration;

use chrono::Utc;

use crate::aws_error::AwsError;
use crate::decision::{
    decide, judge, AtDestination, Comparison, Decision, Outcome, PrimaryState, ReplicaState,
    Replication, Timing,
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
        let fail = |e: AwsError, what: &str| {
            let decision = match e {
                AwsError::Transient(why) if age <= self.config.lag_budget => Decision {
                    outcome: Outcome::TransientError,
                    evidence: Vec::new(),
                    detail: format!("{what}: {why}"),
                },
                AwsError::Transient(why) => Decision {
                    outcome: Outcome::Error,
                    evidence: Vec::new(),
                    detail: format!("{what}: still failing after the lag budget: {why}"),
                },
                AwsError::Permanent { code, message } => Decision {
                    outcome: Outcome::Error,
                    evidence: Vec::new(),
                    detail: format!("{what}: {code}: {message}"),
                },
                AwsError::NotFound => Decision {
                    outcome: Outcome::Error,
                    evidence: Vec::new(),
                    detail: format!("{what}: not found"),
                },
                AwsError::CustomerKeyRequired => Decision {
                    outcome: Outcome::Unverifiable,
                    evidence: Vec::new(),
                    detail: format!(
                        "{what}: unverifiable (SSE-C): S3 answered 400 to a HEAD without the customer key, and the validator holds no customer keys, so it cannot compare content"
                    ),
                },
            };
            Judged {
                decision,
                version_source,
                version_id: None,
                replicas: Vec::new(),
                key: event.key.clone(),
            }
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
            if event.key_candidates.len() > 1 {
                decision.detail = format!(
                    "no such version under any reading of the event's key (tried {}): deleted, or the key is encoded in a way none of these decodes",
                    event
                        .key_candidates
                        .iter()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
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
        if key != event.key {
            tracing::info!(bucket = %escape(&event.bucket), key = %escape(&key), first_reading = %escape(&event.key), "the event's key resolved to another reading");
        }
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
        let too_large =
            u64::try_from(primary.size).unwrap_or(0) > self.config.deep_verify_max_bytes;
        if decision.outcome == Outcome::Unverifiable && self.config.deep_verify && too_large {
            decision.detail = format!(
                "{}; unverifiable: too large for deep mode ({} bytes > DEEP_VERIFY_MAX_BYTES {})",
                decision.detail, primary.size, self.config.deep_verify_max_bytes
            );
        }
        if decision.outcome == Outcome::Unverifiable && self.config.deep_verify && !too_large {
            let mut streamed = Vec::new();
            for (dest, replica) in destinations.iter().zip(&replicas) {
                if replica.version_id.is_none() {
                    continue;
                }
                match self
                    .deep_compare(event, &primary, &dest.region, replica)
                    .await
                {
                    Ok(mut c) => {
                        if destinations.len() > 1 {
                            c.destination = Some(dest.bucket.clone());
                        }
                        streamed.push(c);
                    }
                    Err(e) => return fail(e, "deep verification"),
                }
            }
            decision.evidence.extend(streamed);
            decision.outcome = judge(&decision.evidence);
            decision.detail = match decision.outcome {
                Outcome::Validated => {
                    "replica is an exact copy (streamed-sha256, deep mode)".into()
                }
                Outcome::Mismatch => "replica differs (streamed-sha256, deep mode)".into(),
                _ => decision.detail,
            };
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
    ) -> Result<Comparison, AwsError> {
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
        Ok(Comparison {
            kind: crate::decision::EvidenceKind::StreamedSha256,
            verdict: if p == r {
                crate::decision::Verdict::Match
            } else {
                crate::decision::Verdict::Differ
            },
            primary: p.0,
            replica: r.0,
            destination: None,
        })
    }
}

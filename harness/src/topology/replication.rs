//! Replication as data: who replicates in a run ([`mode`], [`ReplicationMode`]: only a real
//! AWS endpoint natively; on a local engine the fidelity layer's replicator) and the
//! replication configuration of a primary bucket, as the fidelity layer holds it: the
//! rules provisioning writes, what `GetBucketReplication` answers through the layer, and
//! which versions the harness replicator copies where.
//!
//! Eligibility follows the S3 User Guide, written here independently of the validator's
//! reading of the same rules (`checksum_validator::coverage`), so each checks the other:
//! - "What does Amazon S3 replicate?"
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html>):
//!   SSE-KMS objects only when the rule opts in (`SourceSelectionCriteria.
//!   SseKmsEncryptedObjects`, with `EncryptionConfiguration.ReplicaKmsKeyID` on the
//!   destination); never objects stored in GLACIER or DEEP_ARCHIVE; never replicas; delete
//!   markers only with `DeleteMarkerReplication` enabled; permanent version deletes never.
//! - "Replication configuration file elements": a filter is a prefix, a tag, or an `And` of
//!   both; with several rules for one destination the highest priority wins.

use serde::Serialize;

use crate::engine::Capabilities;

/// One replication rule (V2 schema: a filter, one destination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSpec {
    pub id: String,
    pub priority: i32,
    pub prefix: String,
    pub tags: Vec<(String, String)>,
    pub delete_markers: bool,
    /// `ReplicaKmsKeyID` when the rule opts in to SSE-KMS objects.
    pub replica_kms_key: Option<String>,
    /// Destination bucket name.
    pub destination: String,
    /// Replication Time Control and replication metrics on this rule's destination.
    pub rtc: bool,
}

/// The whole configuration of one primary bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketReplication {
    pub primary: String,
    pub role: String,
    pub rules: Vec<RuleSpec>,
}

/// What S3 replication owes one source version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    /// Copy to each destination (with the replica KMS key for SSE-KMS objects).
    Replicate(Vec<Target>),
    /// No rule covers it: S3 reports no replication status and copies nothing.
    Ineligible(Ineligible),
}

/// Why S3 replication does not copy a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    /// A replica is not replicated again (S3 User Guide, "What is replicated").
    Replica,
    /// GLACIER and DEEP_ARCHIVE objects are not replicated ("What isn't replicated").
    Archived,
    /// No rule's filter (prefix, tags) matches the key.
    NoRuleMatches,
    /// A delete marker, and no matching rule replicates delete markers.
    DeleteMarkersOff,
    /// An SSE-KMS object, and no matching rule opted in (`SseKmsEncryptedObjects`).
    SseKmsNotOptedIn,
}

impl Ineligible {
    pub const ALL: [Ineligible; 5] = [
        Ineligible::Replica,
        Ineligible::Archived,
        Ineligible::NoRuleMatches,
        Ineligible::DeleteMarkersOff,
        Ineligible::SseKmsNotOptedIn,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            Ineligible::Replica => "a replica is not replicated again",
            Ineligible::Archived => "GLACIER and DEEP_ARCHIVE objects are not replicated",
            Ineligible::NoRuleMatches => "no rule's filter matches",
            Ineligible::DeleteMarkersOff => "delete-marker replication is off",
            Ineligible::SseKmsNotOptedIn => "SSE-KMS objects need the rule's opt-in",
        }
    }
}

/// One destination of an eligible version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    pub kms_key: Option<String>,
}

/// What the replicator knows of a source version when it decides.
#[derive(Debug, Clone, Default)]
pub struct SourceVersion<'a> {
    pub key: &'a str,
    pub tags: &'a [(String, String)],
    pub sse_kms: bool,
    pub storage_class: Option<&'a str>,
    pub delete_marker: bool,
    /// The version is itself a replica.
    pub replica: bool,
}

impl BucketReplication {
    pub fn eligibility(&self, v: &SourceVersion<'_>) -> Eligibility {
        if v.replica {
            return Eligibility::Ineligible(Ineligible::Replica);
        }
        if !v.delete_marker && matches!(v.storage_class, Some("GLACIER" | "DEEP_ARCHIVE")) {
            return Eligibility::Ineligible(Ineligible::Archived);
        }
        // Per destination, the highest-priority rule whose filter matches decides.
        let mut deciding: Vec<&RuleSpec> = Vec::new();
        for r in &self.rules {
            let matches = v.key.starts_with(&r.prefix) && r.tags.iter().all(|t| v.tags.contains(t));
            if !matches {
                continue;
            }
            match deciding.iter_mut().find(|d| d.destination == r.destination) {
                Some(d) if r.priority > d.priority => *d = r,
                Some(_) => {}
                None => deciding.push(r),
            }
        }
        if deciding.is_empty() {
            return Eligibility::Ineligible(Ineligible::NoRuleMatches);
        }
        let targets: Vec<Target> = deciding
            .into_iter()
            .filter(|r| !v.delete_marker || r.delete_markers)
            .filter(|r| !v.sse_kms || r.replica_kms_key.is_some())
            .map(|r| Target {
                bucket: r.destination.clone(),
                kms_key: if v.sse_kms {
                    r.replica_kms_key.clone()
                } else {
                    None
                },
            })
            .collect();
        if targets.is_empty() {
            return Eligibility::Ineligible(if v.delete_marker {
                Ineligible::DeleteMarkersOff
            } else {
                Ineligible::SseKmsNotOptedIn
            });
        }
        Eligibility::Replicate(targets)
    }

    /// Every destination bucket of the configuration.
    pub fn destinations(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            if !out.contains(&r.destination) {
                out.push(r.destination.clone());
            }
        }
        out
    }

    /// The `GetBucketReplication` answer S3 gives for this configuration.
    pub fn to_xml(&self) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ReplicationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        x.push_str(&format!("<Role>{}</Role>", esc(&self.role)));
        for r in &self.rules {
            x.push_str("<Rule>");
            x.push_str(&format!(
                "<ID>{}</ID><Priority>{}</Priority><Status>Enabled</Status>",
                esc(&r.id),
                r.priority
            ));
            x.push_str("<Filter>");
            let tags: String = r
                .tags
                .iter()
                .map(|(k, v)| format!("<Tag><Key>{}</Key><Value>{}</Value></Tag>", esc(k), esc(v)))
                .collect();
            if r.tags.is_empty() {
                x.push_str(&format!("<Prefix>{}</Prefix>", esc(&r.prefix)));
            } else {
                x.push_str(&format!(
                    "<And><Prefix>{}</Prefix>{tags}</And>",
                    esc(&r.prefix)
                ));
            }
            x.push_str("</Filter>");
            if r.replica_kms_key.is_some() {
                x.push_str("<SourceSelectionCriteria><SseKmsEncryptedObjects><Status>Enabled</Status></SseKmsEncryptedObjects></SourceSelectionCriteria>");
            }
            x.push_str(&format!(
                "<DeleteMarkerReplication><Status>{}</Status></DeleteMarkerReplication>",
                if r.delete_markers {
                    "Enabled"
                } else {
                    "Disabled"
                }
            ));
            x.push_str(&format!(
                "<Destination><Bucket>arn:aws:s3:::{}</Bucket>",
                esc(&r.destination)
            ));
            if let Some(k) = &r.replica_kms_key {
                x.push_str(&format!("<EncryptionConfiguration><ReplicaKmsKeyID>{}</ReplicaKmsKeyID></EncryptionConfiguration>", esc(k)));
            }
            if r.rtc {
                x.push_str("<ReplicationTime><Status>Enabled</Status><Time><Minutes>15</Minutes></Time></ReplicationTime><Metrics><Status>Enabled</Status><EventThreshold><Minutes>15</Minutes></EventThreshold></Metrics>");
            }
            x.push_str("</Destination></Rule>");
        }
        x.push_str("</ReplicationConfiguration>");
        x
    }

    /// The same configuration as SDK types, for `PutBucketReplication` where the engine
    /// replicates itself (real AWS).
    pub fn to_sdk(&self) -> Result<aws_sdk_s3::types::ReplicationConfiguration, String> {
        use aws_sdk_s3::types as t;
        let mut rules = Vec::new();
        for r in &self.rules {
            let filter = if r.tags.is_empty() {
                t::ReplicationRuleFilter::builder()
                    .prefix(&r.prefix)
                    .build()
            } else {
                let mut and = t::ReplicationRuleAndOperator::builder().prefix(&r.prefix);
                for (k, v) in &r.tags {
                    and = and.tags(
                        t::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .map_err(|e| e.to_string())?,
                    );
                }
                t::ReplicationRuleFilter::builder().and(and.build()).build()
            };
            let mut dest =
                t::Destination::builder().bucket(format!("arn:aws:s3:::{}", r.destination));
            if let Some(k) = &r.replica_kms_key {
                dest = dest.encryption_configuration(
                    t::EncryptionConfiguration::builder()
                        .replica_kms_key_id(k)
                        .build(),
                );
            }
            if r.rtc {
                let minutes = || t::ReplicationTimeValue::builder().minutes(15).build();
                dest = dest
                    .replication_time(
                        t::ReplicationTime::builder()
                            .status(t::ReplicationTimeStatus::Enabled)
                            .time(minutes())
                            .build()
                            .map_err(|e| e.to_string())?,
                    )
                    .metrics(
                        t::Metrics::builder()
                            .status(t::MetricsStatus::Enabled)
                            .event_threshold(minutes())
                            .build()
                            .map_err(|e| e.to_string())?,
                    );
            }
            let mut rule = t::ReplicationRule::builder()
                .id(&r.id)
                .priority(r.priority)
                .status(t::ReplicationRuleStatus::Enabled)
                .filter(filter)
                .delete_marker_replication(
                    t::DeleteMarkerReplication::builder()
                        .status(if r.delete_markers {
                            t::DeleteMarkerReplicationStatus::Enabled
                        } else {
                            t::DeleteMarkerReplicationStatus::Disabled
                        })
                        .build(),
                )
                .destination(dest.build().map_err(|e| e.to_string())?);
            if r.replica_kms_key.is_some() {
                rule = rule.source_selection_criteria(
                    t::SourceSelectionCriteria::builder()
                        .sse_kms_encrypted_objects(
                            t::SseKmsEncryptedObjects::builder()
                                .status(t::SseKmsEncryptedObjectsStatus::Enabled)
                                .build()
                                .map_err(|e| e.to_string())?,
                        )
                        .build(),
                );
            }
            rules.push(rule.build().map_err(|e| e.to_string())?);
        }
        t::ReplicationConfiguration::builder()
            .role(&self.role)
            .set_rules(Some(rules))
            .build()
            .map_err(|e| e.to_string())
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Who copies primary versions to the replicas in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", content = "reason", rename_all = "lowercase")]
pub enum ReplicationMode {
    /// The engine replicates (from the primaries' replication configuration).
    Native,
    /// The harness replicator (`fidelity::replicator::Replicator`) copies new versions and delete markers.
    Emulated(String),
}

impl ReplicationMode {
    pub fn is_emulated(&self) -> bool {
        matches!(self, ReplicationMode::Emulated(_))
    }
}

impl std::fmt::Display for ReplicationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicationMode::Native => f.write_str("native (the engine replicates)"),
            ReplicationMode::Emulated(why) => write!(f, "emulated by the harness ({why})"),
        }
    }
}

/// Decides native vs emulated replication for a run.
///
/// - Real AWS replicates as AWS does: native.
/// - Every local engine: emulated. LocalStack copies nothing; MiniStack copies inside
///   `PutObject`, gives replicas new version ids, never reports PENDING and copies what AWS
///   would not (SSE-KMS without the opt-in, GLACIER). The primaries then carry no
///   replication configuration on the engine (the fidelity layer serves it).
pub fn mode(caps: &Capabilities) -> ReplicationMode {
    if caps.faithful_replication {
        ReplicationMode::Native
    } else if caps.native_replication {
        ReplicationMode::Emulated(
            "the engine's replication is synchronous and gives replicas new version ids".into(),
        )
    } else {
        ReplicationMode::Emulated(
            "the engine stores replication configuration but copies nothing".into(),
        )
    }
}

/// Whether the engine must carry the replication configuration: only where it replicates
/// as AWS does.
pub fn configure_on_engine(mode: &ReplicationMode) -> bool {
    !mode.is_emulated()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn config(rules: Vec<RuleSpec>) -> BucketReplication {
        BucketReplication {
            primary: "p".into(),
            role: "arn:aws:iam::000000000000:role/r".into(),
            rules,
        }
    }

    fn rule(prefix: &str, dest: &str, kms: bool) -> RuleSpec {
        RuleSpec {
            id: format!("{dest}-rule"),
            priority: 1,
            prefix: prefix.into(),
            tags: Vec::new(),
            delete_markers: true,
            replica_kms_key: kms.then(|| "arn:aws:kms:us-west-2:0:key/k".to_string()),
            destination: dest.into(),
            rtc: false,
        }
    }

    fn v(key: &str) -> SourceVersion<'_> {
        SourceVersion {
            key,
            ..SourceVersion::default()
        }
    }

    #[rstest]
    #[case::plain(rule("", "r", false), v("a"), true)]
    #[case::prefix_miss(rule("logs/", "r", false), v("a"), false)]
    #[case::kms_without_opt_in(rule("", "r", false), SourceVersion { sse_kms: true, ..v("a") }, false)]
    #[case::kms_with_opt_in(rule("", "r", true), SourceVersion { sse_kms: true, ..v("a") }, true)]
    #[case::glacier(rule("", "r", false), SourceVersion { storage_class: Some("GLACIER"), ..v("a") }, false)]
    #[case::deep_archive(rule("", "r", false), SourceVersion { storage_class: Some("DEEP_ARCHIVE"), ..v("a") }, false)]
    #[case::standard_ia(rule("", "r", false), SourceVersion { storage_class: Some("STANDARD_IA"), ..v("a") }, true)]
    #[case::replica(rule("", "r", false), SourceVersion { replica: true, ..v("a") }, false)]
    #[case::marker(rule("", "r", false), SourceVersion { delete_marker: true, ..v("a") }, true)]
    fn eligibility(
        #[case] r: RuleSpec,
        #[case] version: SourceVersion<'_>,
        #[case] replicates: bool,
    ) {
        let got = config(vec![r]).eligibility(&version);
        assert_eq!(
            matches!(got, Eligibility::Replicate(_)),
            replicates,
            "{got:?}"
        );
    }

    #[test]
    fn markers_need_delete_marker_replication() {
        let mut r = rule("", "r", false);
        r.delete_markers = false;
        let got = config(vec![r]).eligibility(&SourceVersion {
            delete_marker: true,
            ..v("a")
        });
        assert_eq!(got, Eligibility::Ineligible(Ineligible::DeleteMarkersOff));
    }

    #[test]
    fn every_destination_gets_a_copy_and_kms_uses_the_replica_key() {
        let c = config(vec![rule("", "r1", true), rule("", "r2", true)]);
        let Eligibility::Replicate(t) = c.eligibility(&SourceVersion {
            sse_kms: true,
            ..v("a")
        }) else {
            panic!("eligible")
        };
        assert_eq!(
            t.iter().map(|t| t.bucket.as_str()).collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        assert!(t.iter().all(|t| t.kms_key.is_some()));
    }

    #[test]
    fn tags_filter() {
        let mut r = rule("", "r", false);
        r.tags = vec![("replicate".into(), "yes".into())];
        let c = config(vec![r]);
        let tags = vec![("replicate".to_string(), "yes".to_string())];
        assert!(matches!(
            c.eligibility(&SourceVersion {
                tags: &tags,
                ..v("a")
            }),
            Eligibility::Replicate(_)
        ));
        assert!(matches!(c.eligibility(&v("a")), Eligibility::Ineligible(_)));
    }

    /// The served XML escapes values and carries the opt-in and RTC elements; that the SDK
    /// parses it into the same rules is proven end to end (`harness/tests/fidelity.rs`).
    #[test]
    fn xml_carries_every_element_escaped() {
        let mut r = rule("docs/", "r", true);
        r.tags = vec![("a&b".into(), "<c>".into())];
        r.rtc = true;
        let c = config(vec![r, rule("", "r2", false)]);
        let xml = c.to_xml();
        assert_eq!(xml.matches("<Rule>").count(), 2);
        assert!(xml.contains("<SseKmsEncryptedObjects><Status>Enabled</Status>"));
        assert!(xml.contains("<ReplicationTime><Status>Enabled</Status>"));
        assert!(xml.contains("<ReplicaKmsKeyID>arn:aws:kms:us-west-2:0:key/k</ReplicaKmsKeyID>"));
        assert!(xml.contains("<Key>a&amp;b</Key><Value>&lt;c&gt;</Value>"));
        c.to_sdk().expect("valid SDK configuration");
    }
}

#[cfg(test)]
mod mode_tests {
    use super::*;
    use crate::engine::Flavor;

    #[test]
    fn only_aws_replicates_natively() {
        let ls = Flavor::Localstack.capabilities();
        let ms = Flavor::Ministack.capabilities();
        let aws = Flavor::Aws.capabilities();
        assert!(mode(&ls).is_emulated());
        assert!(mode(&ms).is_emulated());
        assert_eq!(mode(&aws), ReplicationMode::Native);
        assert!(!configure_on_engine(&mode(&ms)));
        assert!(configure_on_engine(&mode(&aws)));
    }
}

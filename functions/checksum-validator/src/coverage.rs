//! Which replication rules cover an object version, and so which destinations must hold
//! its replica. Pure: the S3 adapter turns `GetBucketReplication` into [`Rule`]s.
//!
//! The rules, as AWS documents them (S3 User Guide, "What does Amazon S3 replicate?",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html>,
//! and "Replication configuration file elements",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-add-config.html>):
//! - only `Enabled` rules replicate; a rule's filter is a prefix, one tag, or an `And` of a
//!   prefix and tags, all of which must match;
//! - objects encrypted with SSE-KMS (or DSSE-KMS) replicate only through a rule with
//!   `SourceSelectionCriteria.SseKmsEncryptedObjects` enabled;
//! - objects stored in S3 Glacier Flexible Retrieval (`GLACIER`) or Glacier Deep Archive
//!   (`DEEP_ARCHIVE`) are not replicated;
//! - replicas are not replicated again (they report `REPLICA`);
//! - several rules may name several destinations: the object must reach every one ("the
//!   header of the source object only returns COMPLETED when replication is successful to
//!   all destinations", "Getting replication status information",
//!   <https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html>);
//!   for one destination, the highest-priority matching rule applies.
//!
//! Floor 1: may import floor 0.

use serde::Serialize;

use crate::facts::{Encryption, ObjectFacts};

/// One enabled or disabled replication rule, as far as coverage is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub priority: i32,
    /// Key prefix of the filter ("" for every key).
    pub prefix: String,
    /// Tags the filter requires (all of them).
    pub tags: Vec<(String, String)>,
    /// `SourceSelectionCriteria.SseKmsEncryptedObjects` is `Enabled`.
    pub sse_kms_opt_in: bool,
    /// The destination bucket's name (from its ARN).
    pub destination: String,
}

/// Why no rule covers an object version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum Uncovered {
    /// The bucket has no replication configuration at all.
    NoConfiguration,
    /// No enabled rule's filter (prefix, tags) matches the object.
    Filtered,
    /// The object is SSE-KMS encrypted and no matching rule opts in to SSE-KMS objects.
    SseKmsNotOptedIn,
    /// The object is stored in an archive storage class S3 does not replicate.
    ArchivedStorageClass(String),
    /// The object is itself a replica (status `REPLICA`).
    IsReplica,
    /// The source reports no status but the rules seem to cover it (for example a tag
    /// filter the validator could not check): S3 decides eligibility, not the validator.
    Unexplained,
}

impl Uncovered {
    /// One sentence for alerts and logs.
    pub fn explain(&self) -> String {
        match self {
            Uncovered::NoConfiguration => "the bucket has no replication configuration".into(),
            Uncovered::Filtered => {
                "no enabled replication rule's filter (prefix or tags) matches this object".into()
            }
            Uncovered::SseKmsNotOptedIn => {
                "the object is SSE-KMS encrypted and no matching rule opts in \
                 (SourceSelectionCriteria.SseKmsEncryptedObjects with a ReplicaKmsKeyID)"
                    .into()
            }
            Uncovered::ArchivedStorageClass(class) => {
                format!("the object is stored in {class}, which S3 replication never copies")
            }
            Uncovered::IsReplica => {
                "the object is itself a replica; S3 does not replicate replicas again".into()
            }
            Uncovered::Unexplained => {
                "S3 reports no replication status for it, so no rule covers it \
                 (a filter, the encryption or the storage class excludes it)"
                    .into()
            }
        }
    }
}

/// Storage classes S3 replication does not copy.
pub const ARCHIVED_CLASSES: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

/// Whether a rule's filter matches a key and its tags.
pub fn filter_matches(rule: &Rule, key: &str, tags: &[(String, String)]) -> bool {
    key.starts_with(&rule.prefix) && rule.tags.iter().all(|t| tags.contains(t))
}

/// The destinations an object version must reach, or why none.
///
/// `tags` are the object's tags (only consulted when a rule filters on tags).
pub fn destinations(
    rules: &[Rule],
    key: &str,
    tags: &[(String, String)],
    object: &ObjectFacts,
) -> Result<Vec<String>, Uncovered> {
    if let Some(class) = object
        .storage_class
        .as_deref()
        .filter(|c| ARCHIVED_CLASSES.contains(c))
    {
        return Err(Uncovered::ArchivedStorageClass(class.to_string()));
    }
    let matching: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.enabled && filter_matches(r, key, tags))
        .collect();
    if matching.is_empty() {
        return Err(if rules.is_empty() {
            Uncovered::NoConfiguration
        } else {
            Uncovered::Filtered
        });
    }
    let kms = matches!(object.encryption, Encryption::SseKms);
    let mut out: Vec<(i32, String, bool)> = Vec::new();
    for r in matching {
        match out.iter_mut().find(|(_, d, _)| *d == r.destination) {
            // One destination: the highest-priority rule decides.
            Some(slot) if r.priority > slot.0 => {
                *slot = (r.priority, r.destination.clone(), r.sse_kms_opt_in)
            }
            Some(_) => {}
            None => out.push((r.priority, r.destination.clone(), r.sse_kms_opt_in)),
        }
    }
    let eligible: Vec<String> = out
        .into_iter()
        .filter(|(_, _, opt_in)| !kms || *opt_in)
        .map(|(_, d, _)| d)
        .collect();
    if eligible.is_empty() {
        return Err(Uncovered::SseKmsNotOptedIn);
    }
    Ok(eligible)
}

/// Why the rules leave an object unreplicated, for a source that reports no status.
pub fn explain_missing_status(
    rules: &[Rule],
    key: &str,
    tags: &[(String, String)],
    object: &ObjectFacts,
) -> Uncovered {
    destinations(rules, key, tags, object)
        .err()
        .unwrap_or(Uncovered::Unexplained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn rule(prefix: &str, dest: &str, priority: i32) -> Rule {
        Rule {
            id: format!("r-{dest}"),
            enabled: true,
            priority,
            prefix: prefix.into(),
            tags: Vec::new(),
            sse_kms_opt_in: true,
            destination: dest.into(),
        }
    }

    fn object() -> ObjectFacts {
        ObjectFacts::simple(1, "a")
    }

    fn kms() -> ObjectFacts {
        let mut o = object();
        o.encryption = Encryption::SseKms;
        o
    }

    fn class(c: &str) -> ObjectFacts {
        let mut o = object();
        o.storage_class = Some(c.into());
        o
    }

    #[rstest]
    #[case::everything(vec![rule("", "b", 1)], "k", object(), Ok(vec!["b".to_string()]))]
    #[case::prefix_excludes(vec![rule("logs/", "b", 1)], "k", object(), Err(Uncovered::Filtered))]
    #[case::no_rules(vec![], "k", object(), Err(Uncovered::NoConfiguration))]
    #[case::glacier(vec![rule("", "b", 1)], "k", class("GLACIER"), Err(Uncovered::ArchivedStorageClass("GLACIER".into())))]
    #[case::deep_archive(vec![rule("", "b", 1)], "k", class("DEEP_ARCHIVE"), Err(Uncovered::ArchivedStorageClass("DEEP_ARCHIVE".into())))]
    #[case::glacier_ir_replicates(vec![rule("", "b", 1)], "k", class("GLACIER_IR"), Ok(vec!["b".to_string()]))]
    #[case::two_destinations(vec![rule("", "b", 1), rule("", "c", 2)], "k", object(), Ok(vec!["b".to_string(), "c".to_string()]))]
    #[case::kms_opted_in(vec![rule("", "b", 1)], "k", kms(), Ok(vec!["b".to_string()]))]
    fn covers(
        #[case] rules: Vec<Rule>,
        #[case] key: &str,
        #[case] o: ObjectFacts,
        #[case] want: Result<Vec<String>, Uncovered>,
    ) {
        assert_eq!(destinations(&rules, key, &[], &o), want);
    }

    #[test]
    fn kms_needs_the_opt_in_of_the_deciding_rule() {
        let mut low = rule("", "b", 1);
        let mut high = rule("", "b", 2);
        low.sse_kms_opt_in = true;
        high.sse_kms_opt_in = false;
        assert_eq!(
            destinations(&[low, high], "k", &[], &kms()),
            Err(Uncovered::SseKmsNotOptedIn)
        );
    }

    /// "The higher the number, the higher the priority" (S3 API Reference,
    /// `ReplicationRule`, `Priority`), whatever order the rules are listed in.
    #[test]
    fn the_higher_priority_decides_in_either_order() {
        let mut low = rule("", "b", 1);
        let mut high = rule("", "b", 2);
        low.sse_kms_opt_in = true;
        high.sse_kms_opt_in = false;
        assert_eq!(
            destinations(&[high.clone(), low.clone()], "k", &[], &kms()),
            Err(Uncovered::SseKmsNotOptedIn)
        );
        (low.sse_kms_opt_in, high.sse_kms_opt_in) = (false, true);
        for rules in [[low.clone(), high.clone()], [high, low]] {
            assert_eq!(
                destinations(&rules, "k", &[], &kms()),
                Ok(vec!["b".to_string()])
            );
        }
    }

    /// Each reason names its cause, as an on-call engineer reads it in the alert.
    #[rstest]
    #[case(Uncovered::NoConfiguration, "no replication configuration")]
    #[case(Uncovered::Filtered, "filter (prefix or tags)")]
    #[case(Uncovered::SseKmsNotOptedIn, "SseKmsEncryptedObjects")]
    #[case(Uncovered::ArchivedStorageClass("DEEP_ARCHIVE".into()), "stored in DEEP_ARCHIVE")]
    #[case(Uncovered::IsReplica, "itself a replica")]
    #[case(Uncovered::Unexplained, "reports no replication status")]
    fn each_reason_explains_itself(#[case] why: Uncovered, #[case] names: &str) {
        assert!(why.explain().contains(names), "{}", why.explain());
    }

    #[test]
    fn disabled_rules_cover_nothing() {
        let mut r = rule("", "b", 1);
        r.enabled = false;
        assert_eq!(
            destinations(&[r], "k", &[], &object()),
            Err(Uncovered::Filtered)
        );
    }

    #[test]
    fn tag_filters_need_every_tag() {
        let mut r = rule("", "b", 1);
        r.tags = vec![("replicate".into(), "yes".into())];
        let yes = vec![("replicate".to_string(), "yes".to_string())];
        assert!(filter_matches(&r, "k", &yes));
        assert!(!filter_matches(&r, "k", &[]));
    }

    #[test]
    fn a_status_with_covering_rules_is_unexplained() {
        let rules = vec![rule("", "b", 1)];
        assert_eq!(
            explain_missing_status(&rules, "k", &[], &object()),
            Uncovered::Unexplained
        );
        assert_eq!(
            explain_missing_status(&rules, "k", &[], &class("GLACIER")),
            Uncovered::ArchivedStorageClass("GLACIER".into())
        );
    }
}

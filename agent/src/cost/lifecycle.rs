//! Lifecycle rules as data, and what they do to one object version over time. Pure.
//!
//! [`Rule`] mirrors the S3 `LifecycleRule` (the adapter in [`crate::s3`] converts the SDK
//! type). [`timeline`] applies the enabled rules that match a version and returns the storage
//! classes it will be in and when it goes away, following the AWS documentation:
//!
//! - current versions: `Transition` after `Days` (or on `Date`) since creation, `Expiration`
//!   after `Days`/on `Date`: deletion in an unversioned bucket, a delete marker in a
//!   versioned one (the version then becomes noncurrent at that moment);
//! - noncurrent versions: `NoncurrentVersionTransition` / `NoncurrentVersionExpiration` after
//!   `NoncurrentDays` since the version became noncurrent, sparing the
//!   `NewerNoncurrentVersions` newest noncurrent versions;
//! - several matching rules: the earliest expiration wins; transitions only go to colder
//!   classes; S3 never moves an object back to a warmer one;
//! - objects smaller than 128 KiB are not transitioned (the default
//!   `TransitionDefaultMinimumObjectSize` since September 2024) unless the rule's filter sets
//!   `ObjectSizeGreaterThan` explicitly;
//! - rules filtering on tags cannot be evaluated from a listing and are reported, not applied.
//!
//! Simplification: S3 runs lifecycle actions asynchronously, rounded to the next midnight
//! UTC; the timeline uses the exact instant.
//!
//! Floor 0: may import nothing of the crate (a leaf).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Default minimum object size for transitions (`all_storage_classes_128K`).
pub const TRANSITION_MIN_SIZE: i64 = 128 * 1024;

/// When a current-version action fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    Days(u32),
    Date(DateTime<Utc>),
}

impl When {
    fn at(&self, created: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::Days(d) => created + Duration::days(i64::from(*d)),
            When::Date(t) => *t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Filter {
    pub prefix: String,
    /// Tag filters (key, value); a rule with tags cannot be evaluated from a listing.
    pub tags: Vec<(String, String)>,
    pub size_greater_than: Option<i64>,
    pub size_less_than: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub when: When,
    pub storage_class: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoncurrentAction {
    pub noncurrent_days: u32,
    /// For transitions; `None` for the expiration.
    pub storage_class: Option<String>,
    /// How many newer noncurrent versions are spared.
    pub newer_noncurrent_versions: Option<u32>,
}

/// One lifecycle rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub filter: Filter,
    pub transitions: Vec<Transition>,
    pub expiration: Option<When>,
    pub expired_object_delete_marker: bool,
    pub noncurrent_transitions: Vec<NoncurrentAction>,
    pub noncurrent_expiration: Option<NoncurrentAction>,
    pub abort_incomplete_multipart_days: Option<u32>,
}

/// How much of a key prefix a rule's filter covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    All,
    Some,
    None,
}

impl Rule {
    /// Whether this rule applies to a version of `key` with `size` bytes; `None` when it
    /// depends on tags (unknown from a listing).
    pub fn matches(&self, key: &str, size: i64) -> Option<bool> {
        if !self.enabled || !key.starts_with(&self.filter.prefix) {
            return Some(false);
        }
        if self.filter.size_greater_than.is_some_and(|gt| size <= gt)
            || self.filter.size_less_than.is_some_and(|lt| size >= lt)
        {
            return Some(false);
        }
        if !self.filter.tags.is_empty() {
            return None;
        }
        Some(true)
    }

    /// Whether the rule covers every key under `prefix`, some of them, or none.
    pub fn covers(&self, prefix: &str) -> Coverage {
        if !self.enabled {
            return Coverage::None;
        }
        let p = &self.filter.prefix;
        let narrowed = !self.filter.tags.is_empty()
            || self.filter.size_greater_than.is_some()
            || self.filter.size_less_than.is_some();
        if prefix.starts_with(p.as_str()) {
            if narrowed {
                Coverage::Some
            } else {
                Coverage::All
            }
        } else if p.starts_with(prefix) {
            Coverage::Some
        } else {
            Coverage::None
        }
    }
}

/// Storage classes from warm to cold; transitions only move right.
pub fn coldness(class: &str) -> u8 {
    match class {
        "STANDARD" | "REDUCED_REDUNDANCY" | "EXPRESS_ONEZONE" => 0,
        "INTELLIGENT_TIERING" => 1,
        "STANDARD_IA" => 2,
        "ONEZONE_IA" => 3,
        "GLACIER_IR" => 4,
        "GLACIER" => 5,
        "DEEP_ARCHIVE" => 6,
        _ => 0,
    }
}

/// One object version as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    pub key: String,
    pub version_id: Option<String>,
    pub size: i64,
    pub storage_class: String,
    pub last_modified: DateTime<Utc>,
    pub is_latest: bool,
    /// When it became noncurrent (the next newer version or delete marker was written).
    pub noncurrent_since: Option<DateTime<Utc>>,
    /// Noncurrent versions of the same key newer than this one.
    pub newer_noncurrent: u32,
}

/// A span of time spent in one storage class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub from: DateTime<Utc>,
    pub storage_class: String,
}

/// What will happen to a version: its classes over time and when (if ever) it is deleted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// First segment starts at `last_modified` in the listed class; later ones at transitions.
    pub segments: Vec<Segment>,
    /// Permanent deletion (expiration of an unversioned object or of a noncurrent version).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Expiration of the current version in a versioned bucket: a delete marker at this time.
    pub becomes_noncurrent_at: Option<DateTime<Utc>>,
    /// Ids of rules whose tag filters could not be evaluated.
    pub unevaluated_rules: Vec<String>,
}

impl Timeline {
    /// The storage class in effect at `t` (`None` once deleted).
    pub fn class_at(&self, t: DateTime<Utc>) -> Option<&str> {
        if self.deleted_at.is_some_and(|d| t >= d) {
            return None;
        }
        self.segments
            .iter()
            .rev()
            .find(|s| s.from <= t)
            .or(self.segments.first())
            .map(|s| s.storage_class.as_str())
    }
}

/// Applies `rules` to `v` in a bucket with versioning `versioned`.
pub fn timeline(v: &Version, rules: &[Rule], versioned: bool) -> Timeline {
    let mut unevaluated = Vec::new();
    let matching: Vec<&Rule> = rules
        .iter()
        .filter(|r| match r.matches(&v.key, v.size) {
            Some(m) => m,
            None => {
                unevaluated.push(r.id.clone());
                false
            }
        })
        .collect();
    let may_transition =
        |r: &Rule| v.size >= TRANSITION_MIN_SIZE || r.filter.size_greater_than.is_some();

    // Candidate transitions (time, class), from the current and the noncurrent phase.
    let mut moves: Vec<(DateTime<Utc>, String)> = Vec::new();
    let mut deleted_at: Option<DateTime<Utc>> = None;
    let mut becomes_noncurrent_at = None;

    let noncurrent_since = if v.is_latest {
        let expiry = matching
            .iter()
            .filter_map(|r| r.expiration.as_ref().map(|w| w.at(v.last_modified)))
            .min();
        // Current-version transitions apply only while the version is current.
        for r in &matching {
            if may_transition(r) {
                for t in &r.transitions {
                    let at = t.when.at(v.last_modified);
                    if expiry.is_none_or(|e| at < e) {
                        moves.push((at, t.storage_class.clone()));
                    }
                }
            }
        }
        match (expiry, versioned) {
            (Some(t), true) => {
                becomes_noncurrent_at = Some(t);
                Some(t)
            }
            (Some(t), false) => {
                deleted_at = Some(t);
                None
            }
            (None, _) => None,
        }
    } else {
        v.noncurrent_since.or(Some(v.last_modified))
    };

    if let Some(since) = noncurrent_since {
        // A version that becomes noncurrent in the future is then the newest noncurrent one.
        let newer = if v.is_latest { 0 } else { v.newer_noncurrent };
        let spared = |a: &NoncurrentAction| a.newer_noncurrent_versions.is_some_and(|n| newer < n);
        for r in &matching {
            if may_transition(r) {
                for a in r.noncurrent_transitions.iter().filter(|a| !spared(a)) {
                    if let Some(class) = &a.storage_class {
                        moves.push((
                            since + Duration::days(i64::from(a.noncurrent_days)),
                            class.clone(),
                        ));
                    }
                }
            }
        }
        let nc_expiry = matching
            .iter()
            .filter_map(|r| r.noncurrent_expiration.as_ref())
            .filter(|a| !spared(a))
            .map(|a| since + Duration::days(i64::from(a.noncurrent_days)))
            .min();
        if let Some(t) = nc_expiry {
            deleted_at = Some(deleted_at.map_or(t, |d| d.min(t)));
        }
    }

    moves.sort();
    let mut segments = vec![Segment {
        from: v.last_modified,
        storage_class: v.storage_class.clone(),
    }];
    for (at, class) in moves {
        if deleted_at.is_some_and(|d| at >= d) {
            continue;
        }
        let current = segments
            .last()
            .map(|s| s.storage_class.as_str())
            .unwrap_or("STANDARD");
        if coldness(&class) > coldness(current) {
            // A transition scheduled before the version's creation fires at once.
            segments.push(Segment {
                from: at.max(v.last_modified),
                storage_class: class,
            });
        }
    }
    Timeline {
        segments,
        deleted_at,
        becomes_noncurrent_at,
        unevaluated_rules: unevaluated,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn version(size: i64, latest: bool, noncurrent_since: Option<DateTime<Utc>>) -> Version {
        Version {
            key: "backups/documents/x.tar.gz".into(),
            version_id: Some("v".into()),
            size,
            storage_class: "STANDARD".into(),
            last_modified: t0(),
            is_latest: latest,
            noncurrent_since,
            newer_noncurrent: 0,
        }
    }

    /// The topology's rule: noncurrent -> GLACIER_IR after 30 days, expire after 90.
    pub(crate) fn topology_rule() -> Rule {
        Rule {
            id: "documents-lifecycle-rule".into(),
            enabled: true,
            noncurrent_transitions: vec![NoncurrentAction {
                noncurrent_days: 30,
                storage_class: Some("GLACIER_IR".into()),
                newer_noncurrent_versions: None,
            }],
            noncurrent_expiration: Some(NoncurrentAction {
                noncurrent_days: 90,
                storage_class: None,
                newer_noncurrent_versions: None,
            }),
            abort_incomplete_multipart_days: Some(7),
            ..Rule::default()
        }
    }

    /// The seed's policy: IA at 30 days, Glacier at 90, delete at 365.
    fn seed_rule() -> Rule {
        Rule {
            id: "seed".into(),
            enabled: true,
            transitions: vec![
                Transition {
                    when: When::Days(90),
                    storage_class: "GLACIER".into(),
                },
                Transition {
                    when: When::Days(30),
                    storage_class: "STANDARD_IA".into(),
                },
            ],
            expiration: Some(When::Days(365)),
            ..Rule::default()
        }
    }

    #[test]
    fn current_version_follows_the_seed_policy_unversioned() {
        let tl = timeline(&version(1 << 20, true, None), &[seed_rule()], false);
        assert_eq!(tl.class_at(t0() + Duration::days(10)), Some("STANDARD"));
        assert_eq!(tl.class_at(t0() + Duration::days(31)), Some("STANDARD_IA"));
        assert_eq!(tl.class_at(t0() + Duration::days(100)), Some("GLACIER"));
        assert_eq!(tl.deleted_at, Some(t0() + Duration::days(365)));
        assert_eq!(tl.class_at(t0() + Duration::days(366)), None);
    }

    #[test]
    fn expiration_in_a_versioned_bucket_makes_a_noncurrent_version() {
        let mut rule = seed_rule();
        rule.noncurrent_expiration = Some(NoncurrentAction {
            noncurrent_days: 30,
            storage_class: None,
            newer_noncurrent_versions: None,
        });
        let tl = timeline(&version(1 << 20, true, None), &[rule], true);
        assert_eq!(tl.becomes_noncurrent_at, Some(t0() + Duration::days(365)));
        assert_eq!(tl.deleted_at, Some(t0() + Duration::days(395)));
    }

    #[test]
    fn noncurrent_version_moves_then_expires() {
        let since = t0() + Duration::days(2);
        let tl = timeline(
            &version(1 << 20, false, Some(since)),
            &[topology_rule()],
            true,
        );
        assert_eq!(tl.class_at(since + Duration::days(29)), Some("STANDARD"));
        assert_eq!(tl.class_at(since + Duration::days(31)), Some("GLACIER_IR"));
        assert_eq!(tl.deleted_at, Some(since + Duration::days(90)));
    }

    #[test]
    fn current_version_is_untouched_by_noncurrent_rules() {
        let tl = timeline(&version(1 << 20, true, None), &[topology_rule()], true);
        assert_eq!(tl.segments.len(), 1);
        assert_eq!(tl.deleted_at, None);
    }

    #[test]
    fn small_objects_are_not_transitioned_but_do_expire() {
        let since = t0();
        let tl = timeline(&version(1000, false, Some(since)), &[topology_rule()], true);
        assert_eq!(tl.segments.len(), 1);
        assert_eq!(tl.deleted_at, Some(since + Duration::days(90)));
        let mut explicit = topology_rule();
        explicit.filter.size_greater_than = Some(0);
        let tl = timeline(&version(1000, false, Some(since)), &[explicit], true);
        assert_eq!(tl.segments.len(), 2);
    }

    #[test]
    fn newer_noncurrent_versions_are_spared() {
        let mut rule = topology_rule();
        rule.noncurrent_expiration
            .as_mut()
            .unwrap()
            .newer_noncurrent_versions = Some(2);
        let mut v = version(1 << 20, false, Some(t0()));
        v.newer_noncurrent = 1;
        assert_eq!(
            timeline(&v, std::slice::from_ref(&rule), true).deleted_at,
            None
        );
        v.newer_noncurrent = 2;
        assert!(timeline(&v, &[rule], true).deleted_at.is_some());
    }

    #[test]
    fn disabled_other_prefix_and_tag_rules() {
        let mut off = seed_rule();
        off.enabled = false;
        let mut other = seed_rule();
        other.filter.prefix = "logs/".into();
        let mut tagged = seed_rule();
        tagged.id = "tagged".into();
        tagged.filter.tags = vec![("k".into(), "v".into())];
        let tl = timeline(&version(1 << 20, true, None), &[off, other, tagged], false);
        assert_eq!(tl.segments.len(), 1);
        assert_eq!(tl.deleted_at, None);
        assert_eq!(tl.unevaluated_rules, vec!["tagged".to_string()]);
    }

    #[test]
    fn transitions_never_go_warmer() {
        let mut r = seed_rule();
        r.transitions.push(Transition {
            when: When::Days(120),
            storage_class: "STANDARD_IA".into(),
        });
        let tl = timeline(&version(1 << 20, true, None), &[r], false);
        let classes: Vec<&str> = tl
            .segments
            .iter()
            .map(|s| s.storage_class.as_str())
            .collect();
        assert_eq!(classes, ["STANDARD", "STANDARD_IA", "GLACIER"]);
    }

    #[test]
    fn coverage_of_a_prefix() {
        let mut r = topology_rule();
        assert_eq!(r.covers("backups/documents/"), Coverage::All);
        r.filter.prefix = "backups/".into();
        assert_eq!(r.covers("backups/documents/"), Coverage::All);
        r.filter.prefix = "backups/documents/2026".into();
        assert_eq!(r.covers("backups/documents/"), Coverage::Some);
        r.filter.prefix = "logs/".into();
        assert_eq!(r.covers("backups/documents/"), Coverage::None);
        r.filter.prefix = String::new();
        r.filter.tags = vec![("a".into(), "b".into())];
        assert_eq!(r.covers("backups/documents/"), Coverage::Some);
    }
}

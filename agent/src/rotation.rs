//! Rotation: which backups to keep and which to delete, and what deleting them means in the
//! bucket. Pure; the S3 calls are in [`crate::s3`].
//!
//! Only keys that follow the layout ([`crate::layout::parse_key`]) of the category are
//! candidates; anything else under the prefix is left alone. The backup just written is
//! never deleted, whatever the clocks say.
//!
//! Backups are ordered by when S3 stored them (`LastModified`, the server's clock), the
//! time in the key breaking ties: one run with its clock in the future (an RTC failure
//! before NTP sync, or a planted key) would otherwise name a backup that sorts first
//! forever, stays `latest` and is never rotated out. Keys dated more than
//! [`FUTURE_TOLERANCE`] ahead of now are reported in [`Plan::future`].
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `cost::lifecycle`, `layout`,
//! `notify`.

use chrono::{DateTime, Utc};

use crate::cost::lifecycle::{Coverage, Rule};
use crate::layout::{self, BackupKey, Category};
use serde::Serialize;

/// How far ahead of this host's clock a key's time may be before it is reported.
pub const FUTURE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// An object under the backup prefix as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    /// When S3 stored it (absent only from odd endpoints).
    pub last_modified: Option<DateTime<Utc>>,
}

impl Object {
    pub fn new(key: impl Into<String>, last_modified: Option<DateTime<Utc>>) -> Object {
        Object {
            key: key.into(),
            last_modified,
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Newest first.
    pub keep: Vec<String>,
    /// Oldest last.
    pub delete: Vec<String>,
    /// Keys under the prefix that do not follow the layout (never deleted).
    pub ignored: Vec<String>,
    /// Backups whose key time lies more than [`FUTURE_TOLERANCE`] ahead of now (clock
    /// skew or a planted key); ordered by `LastModified` like the others.
    pub future: Vec<String>,
}

/// One candidate with the times it is ordered by.
struct Candidate {
    key: BackupKey,
    /// `LastModified`, or the key time (not after now) when the listing has none.
    stored: DateTime<Utc>,
}

/// Newest first: by `LastModified`, then key time, then key.
fn newest_first(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.stored
        .cmp(&a.stored)
        .then_with(|| b.key.taken_at.cmp(&a.key.taken_at))
        .then_with(|| b.key.key.cmp(&a.key.key))
}

/// Keeps the `keep` newest backups of `category` among `objects` (at least one), newest by
/// `LastModified` with the key time as tie-breaker, always including `protect` when it is
/// among them; `now` decides which keys are future-dated.
pub fn plan(
    objects: &[Object],
    category: Category,
    keep: usize,
    protect: Option<&str>,
    now: DateTime<Utc>,
) -> Plan {
    let keep = keep.max(1);
    let mut backups: Vec<Candidate> = Vec::new();
    let mut ignored = Vec::new();
    for o in objects {
        match layout::parse_key(&o.key) {
            Some(b) if b.category == category => backups.push(Candidate {
                stored: o.last_modified.unwrap_or_else(|| b.taken_at.min(now)),
                key: b,
            }),
            _ => ignored.push(o.key.clone()),
        }
    }
    backups.sort_by(newest_first);
    backups.dedup_by(|a, b| a.key.key == b.key.key);
    let future: Vec<String> = backups
        .iter()
        .filter(|b| b.key.taken_at > now + FUTURE_TOLERANCE)
        .map(|b| b.key.key.clone())
        .collect();
    if let Some(p) = protect {
        if let Some(i) = backups.iter().position(|b| b.key.key == p) {
            let b = backups.remove(i);
            backups.insert(0, b);
        }
    }
    let split = keep.min(backups.len());
    let delete: Vec<String> = backups
        .split_off(split)
        .into_iter()
        .map(|b| b.key.key)
        .collect();
    // Report the kept ones newest first even when the protected one was moved up.
    backups.sort_by(newest_first);
    Plan {
        keep: backups.into_iter().map(|b| b.key.key).collect(),
        delete,
        ignored,
        future,
    }
}

/// A warning line about future-dated keys for the rotation report (none when there are
/// none).
pub fn future_warning(future: &[String]) -> Option<String> {
    if future.is_empty() {
        return None;
    }
    Some(format!(
        "WARNING: {} backup key(s) are dated more than a day ahead of this host's clock (clock skew, or a key written by someone else): {}; they are ordered by the time S3 stored them, not by their name",
        future.len(),
        crate::notify::join_some(future, 5)
    ))
}

/// The bucket's versioning state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Versioning {
    /// Never enabled.
    Off,
    Enabled,
    Suspended,
}

impl Versioning {
    pub fn name(self) -> &'static str {
        match self {
            Versioning::Off => "off",
            Versioning::Enabled => "enabled",
            Versioning::Suspended => "suspended",
        }
    }
}

/// What deleting `deleted` backups under `prefix` does, in words, given versioning and the
/// bucket's lifecycle rules.
pub fn explain(
    deleted: usize,
    prefix: &str,
    versioning: Versioning,
    rules: &[Rule],
) -> Vec<String> {
    if deleted == 0 {
        return vec!["nothing to delete".to_string()];
    }
    let mut lines = Vec::new();
    match versioning {
        Versioning::Off => {
            lines.push(format!(
                "versioning is off: the {deleted} deleted backup(s) are gone for good and no longer billed"
            ));
            return lines;
        }
        Versioning::Enabled => lines.push(format!(
            "versioning is enabled: each of the {deleted} deleted backup(s) got a delete marker; its data \
             stays as a noncurrent version (still billed, still restorable with --at VERSION)"
        )),
        Versioning::Suspended => lines.push(format!(
            "versioning is suspended: each of the {deleted} deleted backup(s) got a delete marker with \
             version id null; versions written while versioning was enabled stay as noncurrent \
             versions (still billed)"
        )),
    }
    let applicable: Vec<(&Rule, Coverage)> = rules
        .iter()
        .map(|r| (r, r.covers(prefix)))
        .filter(|(_, c)| *c != Coverage::None)
        .collect();
    let mut expires = false;
    for (r, coverage) in &applicable {
        let scope = match coverage {
            Coverage::All => "",
            _ => " (for the keys its filter selects)",
        };
        for t in &r.noncurrent_transitions {
            if let Some(class) = &t.storage_class {
                lines.push(format!(
                    "lifecycle rule '{}' moves noncurrent versions to {class} {} day(s) after they become noncurrent{scope}{}",
                    r.id,
                    t.noncurrent_days,
                    spare(t.newer_noncurrent_versions)
                ));
            }
        }
        if let Some(e) = &r.noncurrent_expiration {
            expires |= *coverage == Coverage::All;
            lines.push(format!(
                "lifecycle rule '{}' permanently deletes noncurrent versions {} day(s) after they become noncurrent{scope}{}",
                r.id,
                e.noncurrent_days,
                spare(e.newer_noncurrent_versions)
            ));
        }
        if r.expired_object_delete_marker {
            lines.push(format!(
                "lifecycle rule '{}' removes delete markers once no versions remain behind them",
                r.id
            ));
        }
    }
    if !expires {
        lines.push(
            "WARNING: no enabled lifecycle rule expires noncurrent versions under this prefix: deleted \
             backups are kept and billed until someone deletes their versions"
                .to_string(),
        );
    }
    lines
}

fn spare(n: Option<u32>) -> String {
    match n {
        Some(n) if n > 0 => format!(", sparing the {n} newest noncurrent version(s) per key"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::lifecycle::NoncurrentAction;
    use crate::layout::key_for;
    use chrono::{Duration, TimeZone, Utc};
    use proptest::prelude::*;
    use rstest::rstest;

    fn keys(n: usize) -> Vec<String> {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        (0..n)
            .map(|i| key_for(Category::Documents, t0 + Duration::hours(i as i64)))
            .collect()
    }

    /// The keys as listed, stored a second after their key time (junk: at a fixed time).
    fn objs(keys: &[String]) -> Vec<Object> {
        keys.iter()
            .map(|k| {
                let t = layout::parse_key(k)
                    .map(|b| b.taken_at)
                    .unwrap_or_else(|| Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
                Object::new(k.clone(), Some(t + Duration::seconds(1)))
            })
            .collect()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
    }

    /// Finding 20: a key dated 2100 (written first, by a host with a broken clock) is
    /// ordered by when S3 stored it: it is not kept as the newest, it rotates out, and it
    /// is reported.
    #[test]
    fn a_future_dated_key_is_ordered_by_last_modified_and_reported() {
        let normal = keys(5);
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let future = key_for(
            Category::Documents,
            Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
        );
        let mut listed = vec![Object::new(
            future.clone(),
            Some(t0 - Duration::minutes(30)),
        )];
        listed.extend(objs(&normal));
        let p = plan(&listed, Category::Documents, 2, None, now());
        assert_eq!(p.keep, vec![normal[4].clone(), normal[3].clone()]);
        assert_eq!(p.delete.len(), 4);
        assert!(p.delete.contains(&future));
        assert_eq!(p.future, vec![future.clone()]);
        let w = future_warning(&p.future).unwrap();
        assert!(w.contains("1 backup key(s)") && w.contains(&future), "{w}");
        assert_eq!(future_warning(&[]), None);
    }

    #[test]
    fn equal_last_modified_falls_back_to_the_key_time() {
        let k = keys(3);
        let same = Some(Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap());
        let listed: Vec<Object> = k.iter().map(|k| Object::new(k.clone(), same)).collect();
        let p = plan(&listed, Category::Documents, 1, None, now());
        assert_eq!(p.keep, vec![k[2].clone()]);
        assert!(p.future.is_empty());
    }

    #[rstest]
    #[case(6, 5, 5, 1)]
    #[case(5, 5, 5, 0)]
    #[case(3, 5, 3, 0)]
    #[case(0, 5, 0, 0)]
    #[case(4, 0, 1, 3)]
    fn counts(#[case] n: usize, #[case] keep: usize, #[case] kept: usize, #[case] deleted: usize) {
        let p = plan(&objs(&keys(n)), Category::Documents, keep, None, now());
        assert_eq!((p.keep.len(), p.delete.len()), (kept, deleted));
    }

    #[test]
    fn deletes_the_oldest_and_ignores_foreign_keys() {
        let mut k = keys(7);
        k.push("backups/documents/README.txt".into());
        k.push(key_for(Category::Media, Utc::now()));
        k.reverse();
        let p = plan(&objs(&k), Category::Documents, 5, None, now());
        let all = keys(7);
        assert_eq!(p.delete, vec![all[1].clone(), all[0].clone()]);
        assert_eq!(p.keep[0], all[6]);
        assert_eq!(p.ignored.len(), 2);
    }

    #[test]
    fn the_protected_key_survives_even_if_its_clock_was_behind() {
        let k = keys(6);
        let p = plan(&objs(&k), Category::Documents, 2, Some(&k[0]), now());
        assert!(p.keep.contains(&k[0]));
        assert!(p.keep.contains(&k[5]));
        assert_eq!(p.keep.len(), 2);
        assert!(!p.delete.contains(&k[0]));
    }

    fn rule(prefix: &str, expire: bool) -> Rule {
        Rule {
            id: "r".into(),
            enabled: true,
            filter: crate::cost::lifecycle::Filter {
                prefix: prefix.into(),
                ..Default::default()
            },
            noncurrent_transitions: vec![NoncurrentAction {
                noncurrent_days: 30,
                storage_class: Some("GLACIER_IR".into()),
                newer_noncurrent_versions: None,
            }],
            noncurrent_expiration: expire.then_some(NoncurrentAction {
                noncurrent_days: 90,
                storage_class: None,
                newer_noncurrent_versions: Some(2),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn explains_versioned_deletes_with_lifecycle() {
        let text = explain(
            1,
            "backups/documents/",
            Versioning::Enabled,
            &[rule("", true)],
        )
        .join("\n");
        assert!(text.contains("delete marker"));
        assert!(text.contains("GLACIER_IR 30 day(s)"));
        assert!(text.contains("permanently deletes noncurrent versions 90 day(s)"));
        assert!(text.contains("sparing the 2 newest"));
        assert!(!text.contains("WARNING"));
    }

    #[rstest]
    #[case(Versioning::Enabled, vec![rule("", false)], true)]
    #[case(Versioning::Enabled, vec![rule("logs/", true)], true)]
    #[case(Versioning::Enabled, vec![], true)]
    #[case(Versioning::Suspended, vec![], true)]
    #[case(Versioning::Off, vec![], false)]
    fn warns_when_noncurrent_versions_live_forever(
        #[case] v: Versioning,
        #[case] rules: Vec<Rule>,
        #[case] warns: bool,
    ) {
        let text = explain(2, "backups/documents/", v, &rules).join("\n");
        assert_eq!(text.contains("WARNING"), warns, "{text}");
    }

    proptest! {
        #[test]
        fn rotation_invariants(n in 0usize..40, keep in 0usize..12, shuffle in any::<u64>(), protect_idx in any::<prop::sample::Index>(), junk in 0usize..4) {
            let mut k = keys(n);
            for j in 0..junk {
                k.push(format!("backups/documents/junk-{j}"));
            }
            // Deterministic shuffle.
            let len = k.len();
            for i in (1..len).rev() {
                let j = (shuffle.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
                k.swap(i, j);
            }
            let protect = (n > 0).then(|| keys(n)[protect_idx.index(n)].clone());
            let p = plan(&objs(&k), Category::Documents, keep, protect.as_deref(), now());
            let expected_kept = keep.max(1).min(n);
            prop_assert_eq!(p.keep.len(), expected_kept);
            prop_assert_eq!(p.delete.len(), n - expected_kept);
            prop_assert_eq!(p.ignored.len(), junk);
            // Nothing is both kept and deleted; nothing foreign is deleted.
            for d in &p.delete {
                prop_assert!(!p.keep.contains(d));
                prop_assert!(layout::parse_key(d).is_some());
            }
            if let Some(pk) = &protect {
                prop_assert!(p.keep.contains(pk));
            }
            // Without protection pulling an old key up, every kept key is newer than every deleted one.
            if let (Some(oldest_kept), Some(newest_deleted)) = (p.keep.iter().filter(|k| Some(*k) != protect.as_ref()).min(), p.delete.iter().max()) {
                prop_assert!(oldest_kept > newest_deleted);
            }
        }
    }
}

//! The month-by-month cost projection: today's versions, aged by the bucket's own lifecycle
//! rules, against keeping every one of them in STANDARD. Pure.
//!
//! A month is 365/12 days. Each version contributes `GB × price(class) × days/month` for the
//! days it spends in each class inside the month, plus minimum-duration charges when a
//! lifecycle action moves or deletes it before the class's minimum (billed in the month of
//! the action). Only the objects stored now are projected: future backups are not modelled.
//!
//! Floor 3: may import modules of floors 0 to 2 only; it imports `cost::lifecycle`, `cost::prices`.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::lifecycle::{timeline, Rule, Version};
use super::prices::{PriceTable, GIB};

pub const MONTH_DAYS: f64 = 365.0 / 12.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthCost {
    /// 1-based.
    pub month: u32,
    pub start: DateTime<Utc>,
    /// With the lifecycle rules applied (including minimum-duration charges).
    pub lifecycle_usd: f64,
    /// Everything kept in STANDARD, nothing deleted.
    pub standard_usd: f64,
    /// Minimum-duration charges included in `lifecycle_usd`.
    pub early_charges_usd: f64,
    /// Bytes still stored at the end of the month.
    pub stored_bytes_end: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub months: Vec<MonthCost>,
    pub lifecycle_total_usd: f64,
    pub standard_total_usd: f64,
    pub saving_usd: f64,
    /// Saving as a percentage of the STANDARD total (0 when that is 0).
    pub saving_pct: f64,
    pub notes: Vec<String>,
}

fn days(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 86_400_000.0
}

/// Projects `months` months from `now`.
pub fn project(
    versions: &[Version],
    rules: &[Rule],
    versioned: bool,
    prices: &PriceTable,
    now: DateTime<Utc>,
    months: u32,
) -> Projection {
    let month = Duration::milliseconds((MONTH_DAYS * 86_400_000.0) as i64);
    let starts: Vec<DateTime<Utc>> = (0..=months).map(|m| now + month * m as i32).collect();
    let mut out: Vec<MonthCost> = (0..months as usize)
        .map(|m| MonthCost {
            month: m as u32 + 1,
            start: starts[m],
            lifecycle_usd: 0.0,
            standard_usd: 0.0,
            early_charges_usd: 0.0,
            stored_bytes_end: 0,
        })
        .collect();
    let mut unevaluated: Vec<String> = Vec::new();
    let mut small_not_moved = 0usize;
    let mut unknown_classes: Vec<String> = Vec::new();
    let horizon = starts[months as usize];

    for v in versions {
        let gb = v.size.max(0) as f64 / GIB;
        let tl = timeline(v, rules, versioned);
        for id in &tl.unevaluated_rules {
            if !unevaluated.contains(id) {
                unevaluated.push(id.clone());
            }
        }
        if v.size < super::lifecycle::TRANSITION_MIN_SIZE
            && tl.segments.len() == 1
            && has_transition(rules)
        {
            small_not_moved += 1;
        }
        for s in &tl.segments {
            if !prices.knows(&s.storage_class) && !unknown_classes.contains(&s.storage_class) {
                unknown_classes.push(s.storage_class.clone());
            }
        }
        // Segment boundaries: [start_i, end_i).
        let end_of = |i: usize| -> Option<DateTime<Utc>> {
            let next = tl.segments.get(i + 1).map(|s| s.from);
            match (next, tl.deleted_at) {
                (Some(n), Some(d)) => Some(n.min(d)),
                (Some(n), None) => Some(n),
                (None, d) => d,
            }
        };
        for (m, mc) in out.iter_mut().enumerate() {
            let (a, b) = (starts[m], starts[m + 1]);
            mc.standard_usd += gb * prices.price("STANDARD");
            for (i, s) in tl.segments.iter().enumerate() {
                let seg_end = end_of(i).unwrap_or(horizon.max(b));
                let from = s.from.max(a);
                let to = seg_end.min(b);
                if to > from {
                    mc.lifecycle_usd +=
                        gb * prices.price(&s.storage_class) * days(to - from) / MONTH_DAYS;
                }
                // Minimum storage duration: an action inside this month that ends the segment early.
                if let Some(e) = end_of(i) {
                    if e >= a && e < b {
                        let min = f64::from(prices.min_days(&s.storage_class));
                        let stayed = days(e - s.from);
                        if stayed < min {
                            let charge =
                                gb * prices.price(&s.storage_class) * (min - stayed) / MONTH_DAYS;
                            mc.lifecycle_usd += charge;
                            mc.early_charges_usd += charge;
                        }
                    }
                }
            }
            if tl.class_at(b).is_some() {
                mc.stored_bytes_end += v.size.max(0) as u64;
            }
        }
    }

    let lifecycle_total_usd: f64 = out.iter().map(|m| m.lifecycle_usd).sum();
    let standard_total_usd: f64 = out.iter().map(|m| m.standard_usd).sum();
    let saving_usd = standard_total_usd - lifecycle_total_usd;
    let mut notes =
        vec!["projects the versions stored now; future backups are not modelled".to_string()];
    if rules.iter().all(|r| !r.enabled) {
        notes.push(
            "the bucket has no enabled lifecycle rule: the projection equals today's cost".into(),
        );
    }
    if !unevaluated.is_empty() {
        notes.push(format!(
            "rules filtering on object tags were not applied (tags are not in a listing): {}",
            unevaluated.join(", ")
        ));
    }
    if small_not_moved > 0 {
        notes.push(format!(
            "{small_not_moved} version(s) under 128 KiB are never transitioned (S3's default minimum object size for transitions)"
        ));
    }
    if !unknown_classes.is_empty() {
        notes.push(format!(
            "no price for storage class(es) {}: priced as STANDARD",
            unknown_classes.join(", ")
        ));
    }
    Projection {
        months: out,
        lifecycle_total_usd,
        standard_total_usd,
        saving_usd,
        saving_pct: if standard_total_usd > 0.0 {
            100.0 * saving_usd / standard_total_usd
        } else {
            0.0
        },
        notes,
    }
}

fn has_transition(rules: &[Rule]) -> bool {
    rules
        .iter()
        .any(|r| r.enabled && (!r.transitions.is_empty() || !r.noncurrent_transitions.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::lifecycle::{NoncurrentAction, Transition, When};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
    }

    fn gib_version(
        latest: bool,
        created_days_ago: i64,
        noncurrent_days_ago: Option<i64>,
    ) -> Version {
        Version {
            key: "backups/media/x.tar.gz".into(),
            version_id: None,
            size: 1 << 30,
            storage_class: "STANDARD".into(),
            last_modified: now() - Duration::days(created_days_ago),
            is_latest: latest,
            noncurrent_since: noncurrent_days_ago.map(|d| now() - Duration::days(d)),
            newer_noncurrent: 0,
        }
    }

    fn seed_rule() -> Rule {
        Rule {
            id: "seed".into(),
            enabled: true,
            transitions: vec![
                Transition {
                    when: When::Days(30),
                    storage_class: "STANDARD_IA".into(),
                },
                Transition {
                    when: When::Days(90),
                    storage_class: "GLACIER".into(),
                },
            ],
            expiration: Some(When::Days(365)),
            ..Rule::default()
        }
    }

    #[test]
    fn no_rules_means_lifecycle_equals_standard() {
        let p = project(
            &[gib_version(true, 0, None)],
            &[],
            true,
            &PriceTable::default(),
            now(),
            12,
        );
        assert_eq!(p.months.len(), 12);
        for m in &p.months {
            assert!((m.lifecycle_usd - 0.023).abs() < 1e-9, "{m:?}");
            assert!((m.standard_usd - 0.023).abs() < 1e-9);
        }
        assert!(p.saving_usd.abs() < 1e-9);
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("no enabled lifecycle rule")));
    }

    #[test]
    fn seed_policy_on_a_fresh_gib() {
        let p = project(
            &[gib_version(true, 0, None)],
            &[seed_rule()],
            false,
            &PriceTable::default(),
            now(),
            12,
        );
        // First month: 30 of 30.42 days in STANDARD, the rest in STANDARD_IA.
        let m1 = &p.months[0];
        let expected = 0.023 * 30.0 / MONTH_DAYS + 0.0125 * (MONTH_DAYS - 30.0) / MONTH_DAYS;
        assert!((m1.lifecycle_usd - expected).abs() < 1e-6, "{m1:?}");
        // Month 6 is entirely in GLACIER.
        assert!((p.months[5].lifecycle_usd - 0.004).abs() < 1e-6);
        // Expired at day 365 (the horizon ends at 365 days too): still stored at the end of month 11.
        assert_eq!(p.months[10].stored_bytes_end, 1 << 30);
        assert!(
            p.saving_usd > 0.0 && p.saving_pct > 50.0 && p.saving_pct < 90.0,
            "{p:?}"
        );
        // The seed claims ~63% saving for this policy on steady monthly backups.
        assert!(p.lifecycle_total_usd < p.standard_total_usd);
    }

    #[test]
    fn early_deletion_from_glacier_ir_is_billed_to_ninety_days() {
        // Noncurrent since now; GLACIER_IR at 0 days, expired at 30 days: 60 days of minimum charge.
        let rule = Rule {
            id: "fast".into(),
            enabled: true,
            noncurrent_transitions: vec![NoncurrentAction {
                noncurrent_days: 0,
                storage_class: Some("GLACIER_IR".into()),
                newer_noncurrent_versions: None,
            }],
            noncurrent_expiration: Some(NoncurrentAction {
                noncurrent_days: 30,
                storage_class: None,
                newer_noncurrent_versions: None,
            }),
            ..Rule::default()
        };
        let p = project(
            &[gib_version(false, 10, Some(0))],
            &[rule],
            true,
            &PriceTable::default(),
            now(),
            3,
        );
        let m1 = &p.months[0];
        let expected_early = 0.004 * 60.0 / MONTH_DAYS;
        assert!(
            (m1.early_charges_usd - expected_early).abs() < 1e-6,
            "{m1:?}"
        );
        assert_eq!(m1.stored_bytes_end, 0);
        assert!(p.months[1].lifecycle_usd.abs() < 1e-12);
    }

    #[test]
    fn small_objects_and_unknown_classes_are_noted() {
        let mut small = gib_version(true, 0, None);
        small.size = 1000;
        let mut odd = gib_version(true, 0, None);
        odd.storage_class = "OUTPOSTS".into();
        let p = project(
            &[small, odd],
            &[seed_rule()],
            false,
            &PriceTable::default(),
            now(),
            12,
        );
        assert!(p.notes.iter().any(|n| n.contains("under 128 KiB")));
        assert!(p.notes.iter().any(|n| n.contains("OUTPOSTS")));
    }
}

//! The human-readable cost report (the default output of `autobackup cost`). Pure.
//!
//! Floor 5: may import modules of floors 0 to 4 only; it imports `anomaly`, `cost`,
//! `cost::inventory`, `cost::lifecycle`, `cost::prices`, `rotation`, `units`.

use std::fmt::Write as _;

use super::lifecycle::{Rule, When};
use super::Analysis;
use crate::anomaly::{Check, Direction};
use crate::units;

fn usd(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

fn rule_summary(r: &Rule) -> String {
    let mut parts = Vec::new();
    for t in &r.transitions {
        match &t.when {
            When::Days(d) => parts.push(format!("-> {} at {d}d", t.storage_class)),
            When::Date(at) => parts.push(format!("-> {} on {}", t.storage_class, at.date_naive())),
        }
    }
    match &r.expiration {
        Some(When::Days(d)) => parts.push(format!("expire at {d}d")),
        Some(When::Date(at)) => parts.push(format!("expire on {}", at.date_naive())),
        None => {}
    }
    for t in &r.noncurrent_transitions {
        if let Some(c) = &t.storage_class {
            parts.push(format!("noncurrent -> {c} at {}d", t.noncurrent_days));
        }
    }
    if let Some(e) = &r.noncurrent_expiration {
        parts.push(format!("noncurrent expire at {}d", e.noncurrent_days));
    }
    if let Some(d) = r.abort_incomplete_multipart_days {
        parts.push(format!("abort incomplete uploads at {d}d"));
    }
    let prefix = if r.filter.prefix.is_empty() {
        "(whole bucket)".to_string()
    } else {
        format!("prefix {}", r.filter.prefix)
    };
    format!(
        "{} [{}] {prefix}: {}",
        r.id,
        if r.enabled { "enabled" } else { "disabled" },
        if parts.is_empty() {
            "no actions".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// Renders the report.
pub fn table(a: &Analysis) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Bucket {} (versioning {}), {} UTC, prices {}",
        a.bucket,
        a.versioning.name(),
        a.time.format("%Y-%m-%d %H:%M"),
        a.price_region
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<20} {:>8} {:>12} {:>11} {:>12} {:>10} {:>11}",
        "storage class", "current", "bytes", "noncurrent", "bytes", "$/GB-mo", "$/month"
    );
    for c in &a.classes {
        let _ = writeln!(
            s,
            "{:<20} {:>8} {:>12} {:>11} {:>12} {:>10} {:>11}",
            c.storage_class,
            c.current_objects,
            units::bytes(c.current_bytes),
            c.noncurrent_objects,
            units::bytes(c.noncurrent_bytes),
            format!("{:.5}", c.usd_per_gb_month),
            usd(c.monthly_usd)
        );
    }
    let _ = writeln!(
        s,
        "{:<20} {:>8} {:>12} {:>11} {:>12} {:>10} {:>11}",
        "total",
        a.classes.iter().map(|c| c.current_objects).sum::<u64>(),
        units::bytes(a.current_bytes),
        a.classes.iter().map(|c| c.noncurrent_objects).sum::<u64>(),
        units::bytes(a.noncurrent_bytes),
        "",
        usd(a.monthly_usd)
    );
    let _ = writeln!(s, "delete markers: {}", a.delete_markers);
    let _ = writeln!(s);
    let _ = writeln!(s, "Lifecycle rules:");
    if a.lifecycle_rules.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for r in &a.lifecycle_rules {
        let _ = writeln!(s, "  {}", rule_summary(r));
    }
    let _ = writeln!(s);
    let p = &a.projection;
    let _ = writeln!(s, "{}-month projection:", p.months.len());
    let _ = writeln!(
        s,
        "{:>5} {:>12} {:>12} {:>12} {:>12}",
        "month", "lifecycle", "all STANDARD", "early fees", "stored at end"
    );
    for m in &p.months {
        let _ = writeln!(
            s,
            "{:>5} {:>12} {:>12} {:>12} {:>12}",
            m.month,
            usd(m.lifecycle_usd),
            usd(m.standard_usd),
            usd(m.early_charges_usd),
            units::bytes(m.stored_bytes_end)
        );
    }
    let _ = writeln!(
        s,
        "total {:>12} {:>12}   saving {} ({:.1}%)",
        usd(p.lifecycle_total_usd),
        usd(p.standard_total_usd),
        usd(p.saving_usd),
        p.saving_pct
    );
    for n in &p.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if let Some(trend) = &a.cost_trend {
        let _ = writeln!(s);
        let _ = match trend {
            Check::Insufficient { have, need } => writeln!(
                s,
                "cost trend: {have} earlier run(s) in history, {need} needed to judge growth"
            ),
            Check::Normal(f) => writeln!(
                s,
                "cost trend: normal ({} vs mean {}, limit {})",
                usd(f.current),
                usd(f.mean),
                usd(f.upper)
            ),
            Check::Anomaly(f) => writeln!(
                s,
                "cost trend: ANOMALY, monthly cost {} {} mean {} + {}σ (σ = {}, limit {})",
                usd(f.current),
                if f.direction == Some(Direction::Above) {
                    "above"
                } else {
                    "below"
                },
                usd(f.mean),
                f.sigma,
                usd(f.std_dev),
                usd(f.upper)
            ),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::inventory::Listed;
    use crate::cost::prices::PriceTable;
    use crate::rotation::Versioning;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn report_snapshot() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let listing: Vec<Listed> = (0..6)
            .map(|i| Listed {
                key: format!("backups/documents/{i}.tar.gz"),
                version_id: Some(format!("v{i}")),
                size: 300 << 20,
                storage_class: if i == 0 {
                    "GLACIER_IR".into()
                } else {
                    "STANDARD".into()
                },
                last_modified: now - Duration::days(40 - i),
                is_latest: i != 0,
                delete_marker: false,
            })
            .chain(std::iter::once(Listed {
                key: "backups/documents/0.tar.gz".into(),
                version_id: Some("dm".into()),
                size: 0,
                storage_class: String::new(),
                last_modified: now - Duration::days(35),
                is_latest: true,
                delete_marker: true,
            }))
            .collect();
        let rule = crate::cost::lifecycle::tests::topology_rule();
        let mut a = crate::cost::analyze(
            "autobackup-documents-primary-dev-x",
            &listing,
            vec![rule],
            Versioning::Enabled,
            &PriceTable::default(),
            now,
            12,
        );
        a.cost_trend = Some(crate::anomaly::check(
            "monthly cost",
            "USD",
            &[0.01, 0.011, 0.012],
            a.monthly_usd,
            &crate::anomaly::Thresholds::default(),
            crate::anomaly::Side::Above,
            crate::anomaly::Floor::NONE,
        ));
        insta::assert_snapshot!(table(&a));
    }
}

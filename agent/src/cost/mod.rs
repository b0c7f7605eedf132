//! Storage cost analysis, pure given a listing and the bucket's lifecycle rules.
//!
//! | module | owns |
//! |---|---|
//! | [`prices`] | the price table (seed us-east-1 defaults, TOML overrides) |
//! | [`inventory`] | bytes and counts per storage class, current vs noncurrent versions |
//! | [`lifecycle`] | lifecycle rules as data and what they do to one version over time |
//! | [`projection`] | the 12-month projection against keeping everything in STANDARD |
//! | [`report`] | the human table |
//! | [`chart`] | the SVG chart |
//!
//! The S3 calls that feed it (`ListObjectVersions`, `GetBucketLifecycleConfiguration`,
//! `GetBucketVersioning`) are in [`crate::s3`].
//!
//! Floor 4: may import modules of floors 0 to 3 only; it imports `anomaly`, `cost::inventory`,
//! `cost::lifecycle`, `cost::prices`, `cost::projection`, `rotation`.

pub mod chart;
pub mod inventory;
pub mod lifecycle;
pub mod prices;
pub mod projection;
pub mod report;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::anomaly::Check;
use crate::rotation::Versioning;
use inventory::Listed;
use lifecycle::Rule;
use prices::PriceTable;
use projection::Projection;

/// One row of the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassLine {
    pub storage_class: String,
    pub current_objects: u64,
    pub current_bytes: u64,
    pub noncurrent_objects: u64,
    pub noncurrent_bytes: u64,
    pub usd_per_gb_month: f64,
    pub monthly_usd: f64,
}

/// Everything `autobackup cost` reports (`--json` prints this).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub bucket: String,
    pub time: DateTime<Utc>,
    pub versioning: Versioning,
    pub price_region: String,
    pub classes: Vec<ClassLine>,
    pub delete_markers: u64,
    pub current_bytes: u64,
    pub noncurrent_bytes: u64,
    pub objects: u64,
    pub monthly_usd: f64,
    pub lifecycle_rules: Vec<Rule>,
    pub projection: Projection,
    /// Monthly cost against earlier `cost` runs (upper side only); set by the command.
    pub cost_trend: Option<Check>,
}

/// Analyses a bucket from its listing and lifecycle rules.
pub fn analyze(
    bucket: &str,
    listing: &[Listed],
    rules: Vec<Rule>,
    versioning: Versioning,
    prices: &PriceTable,
    now: DateTime<Utc>,
    months: u32,
) -> Analysis {
    let inv = inventory::inventory(listing);
    let classes: Vec<ClassLine> = inv
        .by_class
        .iter()
        .map(|(class, u)| ClassLine {
            storage_class: class.clone(),
            current_objects: u.current_objects,
            current_bytes: u.current_bytes,
            noncurrent_objects: u.noncurrent_objects,
            noncurrent_bytes: u.noncurrent_bytes,
            usd_per_gb_month: prices.price(class),
            monthly_usd: prices.monthly(class, u.current_bytes + u.noncurrent_bytes),
        })
        .collect();
    let versioned = versioning != Versioning::Off;
    let projection = projection::project(&inv.versions, &rules, versioned, prices, now, months);
    Analysis {
        bucket: bucket.to_string(),
        time: now,
        versioning,
        price_region: prices.region.clone(),
        monthly_usd: classes.iter().map(|c| c.monthly_usd).sum(),
        classes,
        delete_markers: inv.delete_markers,
        current_bytes: inv.current_bytes(),
        noncurrent_bytes: inv.noncurrent_bytes(),
        objects: inv.objects(),
        lifecycle_rules: rules,
        projection,
        cost_trend: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn analysis_sums_classes_and_projects_twelve_months() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let listing = vec![
            Listed {
                key: "backups/documents/a.tar.gz".into(),
                version_id: Some("1".into()),
                size: 1 << 30,
                storage_class: "STANDARD".into(),
                last_modified: now - Duration::days(1),
                is_latest: true,
                delete_marker: false,
            },
            Listed {
                key: "backups/documents/b.tar.gz".into(),
                version_id: Some("2".into()),
                size: 1 << 30,
                storage_class: "GLACIER_IR".into(),
                last_modified: now - Duration::days(40),
                is_latest: false,
                delete_marker: false,
            },
        ];
        let a = analyze(
            "b",
            &listing,
            vec![],
            Versioning::Enabled,
            &PriceTable::default(),
            now,
            12,
        );
        assert_eq!(a.classes.len(), 2);
        assert!((a.monthly_usd - (0.023 + 0.004)).abs() < 1e-9);
        assert_eq!(a.projection.months.len(), 12);
        assert_eq!(
            (a.current_bytes, a.noncurrent_bytes, a.objects),
            (1 << 30, 1 << 30, 2)
        );
    }
}

//! What the bucket holds, from a `ListObjectVersions` listing: bytes and object counts per
//! storage class, current and noncurrent versions apart, and each version's history (when it
//! became noncurrent, how many newer noncurrent versions it has). Pure.
//!
//! Floor 1: may import modules of floors 0 to 0 only; it imports `cost::lifecycle`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lifecycle::Version;

/// One entry of a `ListObjectVersions` listing (a version or a delete marker).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub key: String,
    pub version_id: Option<String>,
    pub size: i64,
    pub storage_class: String,
    pub last_modified: DateTime<Utc>,
    pub is_latest: bool,
    pub delete_marker: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassUsage {
    pub current_objects: u64,
    pub current_bytes: u64,
    pub noncurrent_objects: u64,
    pub noncurrent_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    pub by_class: BTreeMap<String, ClassUsage>,
    pub delete_markers: u64,
    #[serde(skip)]
    pub versions: Vec<Version>,
}

impl Inventory {
    pub fn current_bytes(&self) -> u64 {
        self.by_class.values().map(|c| c.current_bytes).sum()
    }
    pub fn noncurrent_bytes(&self) -> u64 {
        self.by_class.values().map(|c| c.noncurrent_bytes).sum()
    }
    pub fn objects(&self) -> u64 {
        self.by_class
            .values()
            .map(|c| c.current_objects + c.noncurrent_objects)
            .sum()
    }
}

/// Builds the inventory; `listing` in any order.
pub fn inventory(listing: &[Listed]) -> Inventory {
    let mut by_key: HashMap<&str, Vec<&Listed>> = HashMap::new();
    for l in listing {
        by_key.entry(l.key.as_str()).or_default().push(l);
    }
    let mut inv = Inventory::default();
    let mut keys: Vec<&&str> = by_key.keys().collect();
    keys.sort();
    for key in keys {
        let mut entries = by_key[*key].clone();
        // Newest first; the one S3 marks latest wins a tie.
        entries.sort_by(|a, b| {
            b.last_modified
                .cmp(&a.last_modified)
                .then_with(|| b.is_latest.cmp(&a.is_latest))
        });
        let mut newer_noncurrent = 0u32;
        for (i, e) in entries.iter().enumerate() {
            if e.delete_marker {
                inv.delete_markers += 1;
                continue;
            }
            let usage = inv.by_class.entry(e.storage_class.clone()).or_default();
            let size = e.size.max(0) as u64;
            if e.is_latest {
                usage.current_objects += 1;
                usage.current_bytes += size;
            } else {
                usage.noncurrent_objects += 1;
                usage.noncurrent_bytes += size;
            }
            let noncurrent_since = (!e.is_latest).then(|| {
                if i > 0 {
                    entries[i - 1].last_modified
                } else {
                    e.last_modified
                }
            });
            inv.versions.push(Version {
                key: e.key.clone(),
                version_id: e.version_id.clone(),
                size: e.size,
                storage_class: e.storage_class.clone(),
                last_modified: e.last_modified,
                is_latest: e.is_latest,
                noncurrent_since,
                newer_noncurrent: if e.is_latest { 0 } else { newer_noncurrent },
            });
            if !e.is_latest {
                newer_noncurrent += 1;
            }
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap() + Duration::days(d)
    }

    fn v(key: &str, day: i64, size: i64, class: &str, latest: bool) -> Listed {
        Listed {
            key: key.into(),
            version_id: Some(format!("{key}@{day}")),
            size,
            storage_class: class.into(),
            last_modified: at(day),
            is_latest: latest,
            delete_marker: false,
        }
    }

    fn marker(key: &str, day: i64, latest: bool) -> Listed {
        Listed {
            key: key.into(),
            version_id: Some(format!("dm@{day}")),
            size: 0,
            storage_class: String::new(),
            last_modified: at(day),
            is_latest: latest,
            delete_marker: true,
        }
    }

    #[test]
    fn splits_current_and_noncurrent_per_class() {
        let listing = vec![
            v("a", 0, 100, "STANDARD", false),
            v("a", 3, 200, "STANDARD", true),
            v("b", 1, 50, "GLACIER_IR", false),
            marker("b", 4, true),
            v("c", 2, 7, "STANDARD_IA", true),
        ];
        let inv = inventory(&listing);
        assert_eq!(
            inv.by_class["STANDARD"],
            ClassUsage {
                current_objects: 1,
                current_bytes: 200,
                noncurrent_objects: 1,
                noncurrent_bytes: 100
            }
        );
        assert_eq!(inv.by_class["GLACIER_IR"].noncurrent_bytes, 50);
        assert_eq!(inv.by_class["STANDARD_IA"].current_objects, 1);
        assert_eq!(inv.delete_markers, 1);
        assert_eq!(inv.current_bytes(), 207);
        assert_eq!(inv.noncurrent_bytes(), 150);
        assert_eq!(inv.objects(), 4);
    }

    #[test]
    fn noncurrent_since_is_when_the_next_newer_entry_arrived() {
        let listing = vec![
            v("k", 0, 1, "STANDARD", false),
            v("k", 2, 1, "STANDARD", false),
            marker("k", 5, true),
        ];
        let inv = inventory(&listing);
        let by_day = |d: i64| {
            inv.versions
                .iter()
                .find(|x| x.last_modified == at(d))
                .unwrap()
        };
        assert_eq!(by_day(2).noncurrent_since, Some(at(5)));
        assert_eq!(by_day(2).newer_noncurrent, 0);
        assert_eq!(by_day(0).noncurrent_since, Some(at(2)));
        assert_eq!(by_day(0).newer_noncurrent, 1);
    }
}

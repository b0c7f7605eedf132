//! The price table: USD per GB-month per storage class and minimum storage durations.
//! Pure apart from [`PriceTable::load`].
//!
//! Defaults are us-east-1: the seed's figures for STANDARD ($0.023), STANDARD_IA ($0.0125)
//! and GLACIER ($0.004), AWS list prices for the other classes. A GB is 2^30 bytes, as AWS
//! bills. Override any of them with a TOML file:
//!
//! ```toml
//! region = "eu-west-1"
//! [per_gb_month]
//! STANDARD = 0.024
//! GLACIER_IR = 0.005
//! [min_days]
//! GLACIER_IR = 90
//! ```
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `errors`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::errors::AgentError;

pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub region: String,
    /// USD per GB-month.
    pub per_gb_month: BTreeMap<String, f64>,
    /// Minimum storage duration in days: deleting or transitioning earlier is billed as if
    /// the object had stayed that long.
    pub min_days: BTreeMap<String, u32>,
}

impl Default for PriceTable {
    fn default() -> Self {
        let per_gb_month = [
            ("STANDARD", 0.023),
            ("STANDARD_IA", 0.0125),
            ("GLACIER", 0.004),
            ("ONEZONE_IA", 0.01),
            ("GLACIER_IR", 0.004),
            ("DEEP_ARCHIVE", 0.00099),
            ("INTELLIGENT_TIERING", 0.023),
            ("REDUCED_REDUNDANCY", 0.024),
            ("EXPRESS_ONEZONE", 0.11),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let min_days = [
            ("STANDARD_IA", 30),
            ("ONEZONE_IA", 30),
            ("INTELLIGENT_TIERING", 0),
            ("GLACIER_IR", 90),
            ("GLACIER", 90),
            ("DEEP_ARCHIVE", 180),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        PriceTable {
            region: "us-east-1".into(),
            per_gb_month,
            min_days,
        }
    }
}

/// The override file: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    region: Option<String>,
    #[serde(default)]
    per_gb_month: BTreeMap<String, f64>,
    #[serde(default)]
    min_days: BTreeMap<String, u32>,
}

impl PriceTable {
    /// USD per GB-month of `class`; unknown classes are priced as STANDARD.
    pub fn price(&self, class: &str) -> f64 {
        self.per_gb_month
            .get(class)
            .or_else(|| self.per_gb_month.get("STANDARD"))
            .copied()
            .unwrap_or(0.023)
    }

    pub fn knows(&self, class: &str) -> bool {
        self.per_gb_month.contains_key(class)
    }

    pub fn min_days(&self, class: &str) -> u32 {
        self.min_days.get(class).copied().unwrap_or(0)
    }

    /// Applies overrides from TOML text on top of the defaults.
    pub fn with_overrides(mut self, toml_text: &str) -> Result<PriceTable, String> {
        let o: Overrides = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        if let Some((class, p)) = o
            .per_gb_month
            .iter()
            .find(|(_, p)| !p.is_finite() || **p < 0.0)
        {
            return Err(format!(
                "price of {class} must be a non-negative number, got {p}"
            ));
        }
        if let Some(r) = o.region {
            self.region = r;
        }
        self.per_gb_month.extend(o.per_gb_month);
        self.min_days.extend(o.min_days);
        Ok(self)
    }

    /// The defaults, overridden by `path` when given.
    pub fn load(path: Option<&Path>) -> Result<PriceTable, AgentError> {
        let Some(path) = path else {
            return Ok(PriceTable::default());
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| AgentError::local("price table", path, e))?;
        PriceTable::default()
            .with_overrides(&text)
            .map_err(|e| AgentError::local("price table", path, e))
    }

    /// Monthly cost of `bytes` in `class`.
    pub fn monthly(&self, class: &str, bytes: u64) -> f64 {
        bytes as f64 / GIB * self.price(class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_prices() {
        let p = PriceTable::default();
        assert_eq!(p.price("STANDARD"), 0.023);
        assert_eq!(p.price("STANDARD_IA"), 0.0125);
        assert_eq!(p.price("GLACIER"), 0.004);
        assert_eq!(p.price("SOMETHING_NEW"), 0.023);
        assert!(!p.knows("SOMETHING_NEW"));
        // The seed's example: 100 GB in STANDARD is $2.30 a month.
        assert!((p.monthly("STANDARD", 100 * 1024 * 1024 * 1024) - 2.3).abs() < 1e-9);
    }

    #[test]
    fn overrides_merge_over_defaults() {
        let p = PriceTable::default()
            .with_overrides("region = \"eu-west-1\"\n[per_gb_month]\nSTANDARD = 0.024\n[min_days]\nGLACIER_IR = 91\n")
            .unwrap();
        assert_eq!(p.region, "eu-west-1");
        assert_eq!(p.price("STANDARD"), 0.024);
        assert_eq!(p.price("STANDARD_IA"), 0.0125);
        assert_eq!(p.min_days("GLACIER_IR"), 91);
    }

    #[test]
    fn bad_overrides_are_rejected() {
        assert!(PriceTable::default()
            .with_overrides("[per_gb_month]\nSTANDARD = -1.0\n")
            .is_err());
        assert!(PriceTable::default().with_overrides("typo = 1\n").is_err());
        assert!(PriceTable::default()
            .with_overrides("[per_gb_month]\nSTANDARD = \"x\"\n")
            .is_err());
    }

    #[test]
    fn load_reports_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.toml");
        std::fs::write(&path, "[per_gb_month]\nGLACIER = 0.0036\n").unwrap();
        assert_eq!(
            PriceTable::load(Some(&path)).unwrap().price("GLACIER"),
            0.0036
        );
        let err = PriceTable::load(Some(&dir.path().join("missing.toml"))).unwrap_err();
        assert_eq!(err.exit_code(), 12);
    }
}

//! Anomaly detection from history: mean and sample standard deviation of earlier runs, and
//! whether the current value falls outside `mean ± k·σ`. Pure.
//!
//! Both sides count for backups: a backup far *smaller* than usual is the truncated-backup
//! case (a source that vanished, a mount that was not there), a far larger or slower one is
//! unexpected growth or trouble on the way. Cost uses the upper side only (growth).
//!
//! The band is `max(k·σ, floor_fraction·|mean|, floor_abs)`: with a perfectly steady history
//! σ is 0 and any jitter would alert, so small floors are configurable (set both to 0 for a
//! pure `k·σ` test). With fewer than `min_history` earlier runs nothing is judged.
//!
//! The baseline ([`baseline`]) leaves out earlier runs that were flagged on the same metric:
//! one outlier would otherwise widen the band enough to hide the next (a backup ten times
//! larger followed by a truncated one). When the most recent `min_history` runs were all
//! flagged, the level has changed for good (the tree grew) and they become the baseline.
//!
//! Floor 0: may import nothing of the crate (a leaf).

use serde::Serialize;

/// Mean and sample standard deviation (n − 1) of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub std_dev: f64,
}

/// Summary statistics; `None` for an empty series or one with non-finite values.
pub fn stats(xs: &[f64]) -> Option<Stats> {
    if xs.is_empty() || xs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let std_dev = if n < 2 {
        0.0
    } else {
        let ss: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
        (ss / (n as f64 - 1.0)).sqrt()
    };
    Some(Stats { n, mean, std_dev })
}

/// Which deviations alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Both,
    Above,
    Below,
}

/// Configurable thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// k in `mean ± k·σ`.
    pub sigma: f64,
    /// Earlier runs needed before anything is judged.
    pub min_history: usize,
    /// Only the most recent `window` earlier runs count.
    pub window: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            sigma: 2.0,
            min_history: 3,
            window: 30,
        }
    }
}

/// Minimum half-width of the band for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Floor {
    /// Fraction of |mean|.
    pub fraction: f64,
    /// Absolute, in the metric's unit.
    pub absolute: f64,
}

impl Floor {
    pub const NONE: Floor = Floor {
        fraction: 0.0,
        absolute: 0.0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
}

/// The verdict on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Check {
    /// Not enough history to judge.
    Insufficient {
        have: usize,
        need: usize,
    },
    Normal(Finding),
    Anomaly(Finding),
}

/// Everything a notification needs to explain a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub metric: String,
    pub unit: String,
    pub current: f64,
    pub mean: f64,
    pub std_dev: f64,
    pub n: usize,
    /// k.
    pub sigma: f64,
    pub lower: f64,
    pub upper: f64,
    /// (current − mean) / σ, when σ > 0.
    pub z: Option<f64>,
    /// Set on anomalies.
    pub direction: Option<Direction>,
}

impl Check {
    pub fn is_anomaly(&self) -> bool {
        matches!(self, Check::Anomaly(_))
    }

    pub fn finding(&self) -> Option<&Finding> {
        match self {
            Check::Normal(f) | Check::Anomaly(f) => Some(f),
            Check::Insufficient { .. } => None,
        }
    }
}

/// The earlier values a new run is judged against: `(value, flagged on this metric)`
/// oldest first. Flagged runs are left out, unless the most recent `min_history` runs were
/// all flagged: then the level has changed and exactly those runs are the baseline.
pub fn baseline(history: &[(f64, bool)], min_history: usize) -> Vec<f64> {
    let need = min_history.max(1);
    let recent = &history[history.len().saturating_sub(need)..];
    if recent.len() == need && recent.iter().all(|(_, flagged)| *flagged) {
        return recent.iter().map(|(v, _)| *v).collect();
    }
    history
        .iter()
        .filter(|(_, flagged)| !flagged)
        .map(|(v, _)| *v)
        .collect()
}

/// Judges `current` against `history` (oldest first; only the last `window` count).
pub fn check(
    metric: &str,
    unit: &str,
    history: &[f64],
    current: f64,
    t: &Thresholds,
    side: Side,
    floor: Floor,
) -> Check {
    let window = &history[history.len().saturating_sub(t.window.max(1))..];
    let need = t.min_history.max(1);
    let Some(s) = stats(window).filter(|s| s.n >= need) else {
        return Check::Insufficient {
            have: window.len(),
            need,
        };
    };
    let band = (t.sigma * s.std_dev)
        .max(floor.fraction * s.mean.abs())
        .max(floor.absolute);
    let (lower, upper) = (s.mean - band, s.mean + band);
    let direction = if current > upper && side != Side::Below {
        Some(Direction::Above)
    } else if current < lower && side != Side::Above {
        Some(Direction::Below)
    } else {
        None
    };
    let finding = Finding {
        metric: metric.to_string(),
        unit: unit.to_string(),
        current,
        mean: s.mean,
        std_dev: s.std_dev,
        n: s.n,
        sigma: t.sigma,
        lower,
        upper,
        z: (s.std_dev > 0.0).then(|| (current - s.mean) / s.std_dev),
        direction,
    };
    if direction.is_some() {
        Check::Anomaly(finding)
    } else {
        Check::Normal(finding)
    }
}

/// What an operator should do about an anomaly, by metric and direction.
pub fn suggested_action(metric: &str, direction: Direction) -> &'static str {
    match (metric, direction) {
        ("size", Direction::Below) => {
            "The backup is much smaller than usual: check that the source is complete (unmounted \
             volume, deleted files, permissions), then restore it to a scratch directory and compare."
        }
        ("size", Direction::Above) => {
            "The backup is much larger than usual: look for new large files, dumps left behind, or \
             data that no longer compresses (ransomware encrypts files)."
        }
        ("duration", Direction::Above) => {
            "The backup took much longer than usual: check endpoint latency, network and disk load, \
             and whether the tree grew."
        }
        ("duration", Direction::Below) => {
            "The backup finished much faster than usual: make sure the whole source was read \
             (compare file counts with earlier runs)."
        }
        ("monthly cost", Direction::Above) => {
            "Storage cost grew beyond its usual range: check rotation (kept count), lifecycle rules \
             for noncurrent versions, and incomplete multipart uploads."
        }
        (_, Direction::Above) => "The value is unusually high: investigate the latest run.",
        (_, Direction::Below) => "The value is unusually low: investigate the latest run.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    const T: Thresholds = Thresholds {
        sigma: 2.0,
        min_history: 3,
        window: 30,
    };

    #[test]
    fn an_outlier_does_not_hide_the_next() {
        // Four similar backups, one ten times larger (flagged), then a truncated one.
        let history = [
            (100.0, false),
            (104.0, false),
            (98.0, false),
            (102.0, false),
            (1010.0, true),
        ];
        let base = baseline(&history, 3);
        assert_eq!(base, vec![100.0, 104.0, 98.0, 102.0]);
        let c = check("size", "bytes", &base, 10.0, &T, Side::Both, Floor::NONE);
        assert_eq!(c.finding().unwrap().direction, Some(Direction::Below));
        // With the outlier in the baseline the truncated backup would pass.
        let all: Vec<f64> = history.iter().map(|(v, _)| *v).collect();
        assert!(!check("size", "bytes", &all, 10.0, &T, Side::Both, Floor::NONE).is_anomaly());
    }

    #[test]
    fn a_lasting_change_becomes_the_baseline() {
        let history = [
            (100.0, false),
            (101.0, false),
            (99.0, false),
            (1000.0, true),
            (1010.0, true),
            (990.0, true),
        ];
        assert_eq!(baseline(&history, 3), vec![1000.0, 1010.0, 990.0]);
        assert!(!check(
            "size",
            "bytes",
            &baseline(&history, 3),
            1005.0,
            &T,
            Side::Both,
            Floor::NONE
        )
        .is_anomaly());
        // Two flagged runs are not yet a new level.
        assert_eq!(baseline(&history[..5], 3), vec![100.0, 101.0, 99.0]);
        assert!(baseline(&[], 3).is_empty());
    }

    proptest! {
        #[test]
        fn baseline_is_drawn_from_history(h in prop::collection::vec((0.0f64..1e9, any::<bool>()), 0..40), k in 1usize..6) {
            let b = baseline(&h, k);
            prop_assert!(b.len() <= h.len());
            prop_assert!(b.iter().all(|v| h.iter().any(|(x, _)| x == v)));
            if h.iter().all(|(_, f)| !f) {
                prop_assert_eq!(b.len(), h.len());
            }
        }
    }

    #[test]
    fn stats_of_a_known_series() {
        let s = stats(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        // Sample standard deviation: sqrt(32 / 7).
        assert!((s.std_dev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(stats(&[]), None);
        assert_eq!(stats(&[1.0, f64::NAN]), None);
        assert_eq!(stats(&[3.0]).unwrap().std_dev, 0.0);
    }

    #[rstest]
    // history 10, 12, 11 -> mean 11, sd 1, band 2 -> [9, 13]
    #[case(11.0, Side::Both, None)]
    #[case(13.0, Side::Both, None)]
    #[case(13.5, Side::Both, Some(Direction::Above))]
    #[case(8.5, Side::Both, Some(Direction::Below))]
    #[case(8.5, Side::Above, None)]
    #[case(13.5, Side::Below, None)]
    #[case(0.0, Side::Below, Some(Direction::Below))]
    fn band_and_sides(
        #[case] current: f64,
        #[case] side: Side,
        #[case] expected: Option<Direction>,
    ) {
        let c = check(
            "size",
            "bytes",
            &[10.0, 12.0, 11.0],
            current,
            &T,
            side,
            Floor::NONE,
        );
        let f = c.finding().unwrap();
        assert!((f.lower - 9.0).abs() < 1e-9 && (f.upper - 13.0).abs() < 1e-9);
        assert_eq!(f.direction, expected);
        assert_eq!(c.is_anomaly(), expected.is_some());
    }

    #[test]
    fn too_little_history_judges_nothing() {
        let c = check(
            "size",
            "bytes",
            &[1.0, 1.0],
            1000.0,
            &T,
            Side::Both,
            Floor::NONE,
        );
        assert_eq!(c, Check::Insufficient { have: 2, need: 3 });
    }

    #[test]
    fn window_keeps_only_the_most_recent_runs() {
        let t = Thresholds { window: 3, ..T };
        // Old runs were huge; the last three are ~10: 10.5 is normal for the window.
        let c = check(
            "size",
            "bytes",
            &[1e9, 1e9, 10.0, 11.0, 10.0],
            10.5,
            &t,
            Side::Both,
            Floor::NONE,
        );
        assert!(!c.is_anomaly());
        assert_eq!(c.finding().unwrap().n, 3);
    }

    #[test]
    fn floors_widen_a_zero_variance_band() {
        let h = [100.0, 100.0, 100.0];
        assert!(check("size", "bytes", &h, 100.5, &T, Side::Both, Floor::NONE).is_anomaly());
        let f = Floor {
            fraction: 0.01,
            absolute: 0.0,
        };
        assert!(!check("size", "bytes", &h, 100.5, &T, Side::Both, f).is_anomaly());
        assert!(check("size", "bytes", &h, 98.0, &T, Side::Both, f).is_anomaly());
        let abs = Floor {
            fraction: 0.0,
            absolute: 5.0,
        };
        assert!(!check("duration", "s", &h, 104.0, &T, Side::Both, abs).is_anomaly());
    }

    #[test]
    fn truncated_backup_is_caught() {
        let sizes = [5.0e8, 5.1e8, 4.9e8, 5.05e8, 4.95e8];
        let c = check("size", "bytes", &sizes, 1.2e7, &T, Side::Both, Floor::NONE);
        let f = c.finding().unwrap();
        assert_eq!(f.direction, Some(Direction::Below));
        assert!(f.z.unwrap() < -2.0);
        assert!(suggested_action("size", Direction::Below).contains("smaller"));
    }

    fn series() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(-1.0e6f64..1.0e6, 3..=30)
    }

    proptest! {
        #[test]
        fn mean_lies_within_min_and_max(xs in series()) {
            let s = stats(&xs).unwrap();
            let min = xs.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(s.mean >= min - 1e-6 && s.mean <= max + 1e-6);
            prop_assert!(s.std_dev >= 0.0);
        }

        #[test]
        fn std_dev_is_shift_invariant_and_scales(xs in series(), shift in -1.0e5f64..1.0e5, k in 0.1f64..10.0) {
            let s = stats(&xs).unwrap();
            let shifted: Vec<f64> = xs.iter().map(|x| x + shift).collect();
            let scaled: Vec<f64> = xs.iter().map(|x| x * k).collect();
            let tol = 1e-6 * (1.0 + s.std_dev);
            prop_assert!((stats(&shifted).unwrap().std_dev - s.std_dev).abs() < tol * 10.0);
            prop_assert!((stats(&scaled).unwrap().std_dev - k * s.std_dev).abs() < tol * 10.0 * k);
        }

        #[test]
        fn inside_the_band_never_alerts_outside_always_does(xs in series(), frac in -0.999f64..0.999, beyond in 1.001f64..10.0) {
            let s = stats(&xs).unwrap();
            prop_assume!(s.std_dev > 1e-3);
            let band = T.sigma * s.std_dev;
            let inside = s.mean + frac * band;
            prop_assert!(!check("m", "u", &xs, inside, &T, Side::Both, Floor::NONE).is_anomaly());
            let above = s.mean + beyond * band;
            let below = s.mean - beyond * band;
            let a = check("m", "u", &xs, above, &T, Side::Both, Floor::NONE);
            let b = check("m", "u", &xs, below, &T, Side::Both, Floor::NONE);
            prop_assert_eq!(a.finding().unwrap().direction, Some(Direction::Above));
            prop_assert_eq!(b.finding().unwrap().direction, Some(Direction::Below));
            // One-sided checks ignore the other side.
            prop_assert!(!check("m", "u", &xs, below, &T, Side::Above, Floor::NONE).is_anomaly());
            prop_assert!(!check("m", "u", &xs, above, &T, Side::Below, Floor::NONE).is_anomaly());
        }

        #[test]
        fn band_is_symmetric_and_contains_the_mean(xs in series(), fr in 0.0f64..0.5, ab in 0.0f64..100.0) {
            let c = check("m", "u", &xs, 0.0, &T, Side::Both, Floor { fraction: fr, absolute: ab });
            let f = c.finding().unwrap();
            prop_assert!(((f.upper - f.mean) - (f.mean - f.lower)).abs() < 1e-6 * (1.0 + f.mean.abs()));
            prop_assert!(f.lower <= f.mean && f.mean <= f.upper);
            prop_assert!(f.upper - f.mean >= ab - 1e-9);
        }
    }
}

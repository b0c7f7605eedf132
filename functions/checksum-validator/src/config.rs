//! The validator's configuration, read from documented environment variables.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FAILURE_QUEUE_URL` | none | where decided failures go as structured failure records; without it a failure is left on the validation queue (it then reaches the DLQ and still alerts) |
//! | `REPLICA_AWS_REGION` | the bucket's own location | region of the replica buckets |
//! | `REPLICA_BUCKET_MAP` | none | `primary=replica,...`: explicit destinations, overriding the replication configuration |
//! | `LAG_BUDGET_SECONDS` | 900 | how long replication may lag before a `replication-overdue` alert. 900 s is S3 Replication Time Control's 15-minute SLA (99.99 % of objects); without RTC "the majority of objects replicate within 15 minutes, but they can sometimes take a couple of hours" (S3 User Guide, "Troubleshooting replication"), so raise it or enable RTC. Overdue is not final: the message keeps being watched |
//! | `OVERDUE_CAP_SECONDS` | 86400 | how long after the upload an overdue version is still watched; a replica that validates before then sends a resolved notice, after it a final overdue alert |
//! | `RETRY_BASE_SECONDS` | 5 | first retry delay for lag and transient errors; doubles per attempt |
//! | `RETRY_MAX_SECONDS` | 300 | cap of the retry delay |
//! | `MAX_RECEIVE_COUNT` | 5 | used only when the queue's `RedrivePolicy` cannot be read: the validator reads `maxReceiveCount` from the queue itself (cached) and re-queues a lagging message before it reaches it. AWS asks for at least 5 on a Lambda event source queue, since throttled receives count too (Lambda Developer Guide, "Using Lambda with Amazon SQS") |
//! | `ALERT_ON_UNVERIFIABLE` | true | whether `unverifiable` is sent to the notifier |
//! | `RECORD_CONCURRENCY` | 8 | records of one batch processed at once |
//! | `S3_FORCE_PATH_STYLE` | false | path-style S3 addressing (local engines) |
//! | `DEADLINE_MARGIN_MS` | 1000 | no record is started this close to the invocation's deadline (and one still running at a quarter of it is cut): the batch answer gets back before Lambda's timeout, with the rest as batch item failures |
//! | `DEEP_VERIFY` | false | when no comparable checksum exists, stream both objects and compare SHA-256 |
//! | `DEEP_VERIFY_MAX_BYTES` | 1073741824 | deep mode streams objects up to this size; a larger one stays `unverifiable: too large for deep mode` (two streams of it must fit the function's timeout) |
//!
//! Floor 0: imports nothing of the crate.

use std::collections::HashMap;
use std::time::Duration;

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {why}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidatorConfig {
    pub failure_queue_url: Option<String>,
    pub replica_region: Option<String>,
    pub replica_bucket_map: HashMap<String, String>,
    pub lag_budget: Duration,
    pub overdue_cap: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_receive_count: u32,
    pub alert_on_unverifiable: bool,
    pub record_concurrency: usize,
    pub force_path_style: bool,
    pub deep_verify: bool,
    pub deep_verify_max_bytes: u64,
    pub deadline_margin: Duration,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            failure_queue_url: None,
            replica_region: None,
            replica_bucket_map: HashMap::new(),
            lag_budget: Duration::from_secs(900),
            overdue_cap: Duration::from_secs(86_400),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            max_receive_count: 5,
            alert_on_unverifiable: true,
            record_concurrency: 8,
            force_path_style: false,
            deep_verify: false,
            deep_verify_max_bytes: 1 << 30,
            deadline_margin: Duration::from_millis(1000),
        }
    }
}

impl ValidatorConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `get` (testable without touching the environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = ValidatorConfig::default();
        let nonempty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        Ok(ValidatorConfig {
            failure_queue_url: nonempty("FAILURE_QUEUE_URL"),
            replica_region: nonempty("REPLICA_AWS_REGION"),
            replica_bucket_map: match nonempty("REPLICA_BUCKET_MAP") {
                Some(v) => parse_bucket_map(&v).map_err(|why| ConfigError {
                    name: "REPLICA_BUCKET_MAP",
                    value: v.clone(),
                    why,
                })?,
                None => HashMap::new(),
            },
            lag_budget: secs(&get, "LAG_BUDGET_SECONDS", d.lag_budget)?,
            overdue_cap: secs(&get, "OVERDUE_CAP_SECONDS", d.overdue_cap)?,
            retry_base: secs(&get, "RETRY_BASE_SECONDS", d.retry_base)?,
            retry_max: secs(&get, "RETRY_MAX_SECONDS", d.retry_max)?,
            max_receive_count: number(&get, "MAX_RECEIVE_COUNT", d.max_receive_count)?,
            alert_on_unverifiable: boolean(&get, "ALERT_ON_UNVERIFIABLE", d.alert_on_unverifiable)?,
            record_concurrency: number(&get, "RECORD_CONCURRENCY", d.record_concurrency as u32)?
                .max(1) as usize,
            force_path_style: boolean(&get, "S3_FORCE_PATH_STYLE", d.force_path_style)?,
            deep_verify: boolean(&get, "DEEP_VERIFY", d.deep_verify)?,
            deep_verify_max_bytes: match get("DEEP_VERIFY_MAX_BYTES")
                .filter(|v| !v.trim().is_empty())
            {
                None => d.deep_verify_max_bytes,
                Some(v) => v.trim().parse::<u64>().map_err(|e| ConfigError {
                    name: "DEEP_VERIFY_MAX_BYTES",
                    value: v.clone(),
                    why: e.to_string(),
                })?,
            },
            deadline_margin: Duration::from_millis(u64::from(number(
                &get,
                "DEADLINE_MARGIN_MS",
                d.deadline_margin.as_millis() as u32,
            )?)),
        })
    }
}

/// Parses `a=b,c=d` into a map.
pub fn parse_bucket_map(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((from, to)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not `primary=replica`"));
        };
        let (from, to) = (from.trim(), to.trim());
        if from.is_empty() || to.is_empty() {
            return Err(format!("`{pair}` has an empty bucket name"));
        }
        map.insert(from.to_string(), to.to_string());
    }
    Ok(map)
}

fn secs(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && (0.0..=1e9).contains(s))
            .map(Duration::from_secs_f64)
            .ok_or_else(|| ConfigError {
                name,
                value: v,
                why: "expected a number of seconds from 0 to 1000000000".into(),
            }),
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u32>().map_err(|e| ConfigError {
            name,
            value: v,
            why: e.to_string(),
        }),
    }
}

fn boolean(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError {
                name,
                value: v,
                why: "expected true or false".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_environment() {
        assert_eq!(
            ValidatorConfig::from_lookup(|_| None).unwrap(),
            ValidatorConfig::default()
        );
    }

    #[test]
    fn reads_every_variable() {
        let env: HashMap<&str, &str> = [
            ("FAILURE_QUEUE_URL", "http://q"),
            ("REPLICA_BUCKET_MAP", "a=b, c=d"),
            ("LAG_BUDGET_SECONDS", "1.5"),
            ("ALERT_ON_UNVERIFIABLE", "no"),
            ("MAX_RECEIVE_COUNT", "7"),
        ]
        .into_iter()
        .collect();
        let c = ValidatorConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.failure_queue_url.as_deref(), Some("http://q"));
        assert_eq!(c.replica_bucket_map["c"], "d");
        assert_eq!(c.lag_budget, Duration::from_millis(1500));
        assert!(!c.alert_on_unverifiable);
        assert_eq!(c.max_receive_count, 7);
    }

    fn only(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| (k == name).then(|| value.to_string())
    }

    /// A variable set to blanks counts as unset, for every kind of setting.
    #[rstest::rstest]
    #[case("FAILURE_QUEUE_URL")]
    #[case("REPLICA_BUCKET_MAP")]
    #[case("LAG_BUDGET_SECONDS")]
    #[case("MAX_RECEIVE_COUNT")]
    #[case("DEEP_VERIFY")]
    #[case("DEEP_VERIFY_MAX_BYTES")]
    fn blank_is_unset(#[case] name: &'static str) {
        assert_eq!(
            ValidatorConfig::from_lookup(only(name, "  ")).unwrap(),
            ValidatorConfig::default()
        );
    }

    #[rstest::rstest]
    #[case("1", true)]
    #[case("true", true)]
    #[case("YES", true)]
    #[case(" on ", true)]
    #[case("0", false)]
    #[case("False", false)]
    #[case("no", false)]
    #[case("off", false)]
    fn booleans_read_the_usual_spellings(#[case] value: &'static str, #[case] want: bool) {
        let c = ValidatorConfig::from_lookup(only("DEEP_VERIFY", value)).unwrap();
        assert_eq!(c.deep_verify, want);
        let c = ValidatorConfig::from_lookup(only("ALERT_ON_UNVERIFIABLE", value)).unwrap();
        assert_eq!(c.alert_on_unverifiable, want);
        assert!(ValidatorConfig::from_lookup(only("DEEP_VERIFY", "maybe")).is_err());
    }

    #[rstest::rstest]
    #[case("a=")]
    #[case("=b")]
    #[case(" = ")]
    #[case("a=b,c")]
    fn a_bucket_map_names_both_buckets(#[case] raw: &str) {
        assert!(parse_bucket_map(raw).is_err(), "{raw}");
    }

    #[test]
    fn huge_or_odd_durations_are_errors_not_panics() {
        for v in ["1e30", "inf", "NaN", "-1"] {
            let err =
                ValidatorConfig::from_lookup(|k| (k == "RETRY_MAX_SECONDS").then(|| v.into()))
                    .unwrap_err();
            assert!(err.to_string().contains("RETRY_MAX_SECONDS"), "{v}: {err}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err =
            ValidatorConfig::from_lookup(|k| (k == "LAG_BUDGET_SECONDS").then(|| "soon".into()))
                .unwrap_err();
        assert!(err.to_string().contains("LAG_BUDGET_SECONDS"));
        assert!(parse_bucket_map("a").is_err());
    }
}

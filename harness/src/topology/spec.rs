//! The topology file (`fixtures/topology.toml`) and timing profiles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::errors::FileError;

/// The whole topology declaration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    pub project: String,
    pub environment: String,
    pub primary_region: String,
    pub replica_region: String,
    pub categories: Vec<String>,
    pub buckets: BucketSpec,
    pub queues: QueueSpec,
    #[serde(default)]
    pub replication: ReplicationSpec,
    /// What each role's inline policy allows, as the posture check expects it.
    pub iam: IamSpec,
    #[serde(default)]
    pub functions: FunctionSpec,
    pub profiles: BTreeMap<String, Timing>,
}

/// The actions each role's inline policy allows (`[iam]`): what the posture check of
/// `harness gate` compares the live roles with, both ways (a missing action and an extra
/// one both fail). Declared here, apart from the documents `policy.rs` builds, so a
/// policy that grows an action fails the check until this declaration says so.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IamSpec {
    /// The checksum-validator's role.
    pub validator: BTreeSet<String>,
    /// The failure-notifier's role.
    pub notifier: BTreeSet<String>,
    /// Each primary's replication role (`s3-crr-role-<primary>`).
    pub replication: BTreeSet<String>,
}

/// The Lambda functions' settings besides their timing (`[functions]`): what
/// `--functions deployed` creates them with.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionSpec {
    /// `MemorySize` of both functions, in MB (Lambda allows 128 to 10240).
    pub memory_mb: u32,
}

impl Default for FunctionSpec {
    fn default() -> Self {
        FunctionSpec { memory_mb: 128 }
    }
}

/// The replication rules of every category (one rule per destination).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSpec {
    /// Replicate SSE-KMS objects: `SourceSelectionCriteria.SseKmsEncryptedObjects` plus a
    /// replica-region CMK as `ReplicaKmsKeyID`. Without it S3 leaves them unreplicated.
    pub sse_kms: bool,
    /// `DeleteMarkerReplication`.
    pub delete_markers: bool,
    /// Key prefix the rules cover ("" for every key).
    pub prefix: String,
    /// Destinations per category: 1 is the replica bucket; 2 adds `<..>-replica2-<..>`.
    pub destinations: u32,
    /// S3 Replication Time Control (15-minute SLA) and replication metrics.
    pub rtc: bool,
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        ReplicationSpec {
            sse_kms: true,
            delete_markers: true,
            prefix: String::new(),
            destinations: 1,
            rtc: false,
        }
    }
}

/// A scenario's changes to the replication rules (`[topology.replication]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationOverrides {
    pub sse_kms: Option<bool>,
    pub delete_markers: Option<bool>,
    pub prefix: Option<String>,
    pub destinations: Option<u32>,
    pub rtc: Option<bool>,
}

/// A scenario's changes to the topology (`[topology]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyOverrides {
    #[serde(default)]
    pub replication: ReplicationOverrides,
}

impl TopologyOverrides {
    /// The spec with these overrides applied.
    pub fn apply(&self, spec: &TopologySpec) -> TopologySpec {
        let mut out = spec.clone();
        let r = &self.replication;
        let rep = &mut out.replication;
        if let Some(v) = r.sse_kms {
            rep.sse_kms = v;
        }
        if let Some(v) = r.delete_markers {
            rep.delete_markers = v;
        }
        if let Some(v) = &r.prefix {
            rep.prefix = v.clone();
        }
        if let Some(v) = r.destinations {
            rep.destinations = v;
        }
        if let Some(v) = r.rtc {
            rep.rtc = v;
        }
        out
    }

    /// `replication.name=value` for each override that is set, in a fixed order.
    pub fn describe(&self) -> Vec<String> {
        let r = &self.replication;
        let mut out = Vec::new();
        if let Some(v) = r.sse_kms {
            out.push(format!("replication.sse_kms={v}"));
        }
        if let Some(v) = r.delete_markers {
            out.push(format!("replication.delete_markers={v}"));
        }
        if let Some(v) = &r.prefix {
            out.push(format!("replication.prefix={v:?}"));
        }
        if let Some(v) = r.destinations {
            out.push(format!("replication.destinations={v}"));
        }
        if let Some(v) = r.rtc {
            out.push(format!("replication.rtc={v}"));
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    pub encryption: String,
    pub noncurrent_to_glacier_ir_days: i32,
    pub noncurrent_expire_days: i32,
    pub abort_incomplete_multipart_days: i32,
    /// The public access block provisioning puts on every bucket (all four flags on unless
    /// a flag is set to false here: a deliberate misconfiguration for the posture check).
    #[serde(default)]
    pub public_access_block: PublicAccessBlock,
}

/// The four flags of an S3 public access block (`PutPublicAccessBlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl Default for PublicAccessBlock {
    /// All four on, as the seed sets them.
    fn default() -> Self {
        PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: true,
            restrict_public_buckets: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub max_receive_count: u32,
    pub retention_seconds: u32,
    /// Retention of the DLQs: longer than the source queues', since "the expiration of a
    /// message is always based on its original enqueue timestamp" (SQS Developer Guide,
    /// "Configuring a dead-letter queue retention period").
    pub dlq_retention_seconds: u32,
    pub max_message_size: u32,
    pub kms_data_key_reuse_seconds: u32,
    pub batch_size: u32,
}

/// Timing values a profile sets and a scenario may override.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    pub validation_visibility_seconds: u32,
    pub failure_visibility_seconds: u32,
    pub long_poll_seconds: u32,
    pub retry_base_seconds: f64,
    pub retry_max_seconds: f64,
    pub lag_budget_seconds: f64,
    /// The harness replicator's copy lands this long after the first validation attempt of
    /// the version's event finished (so a first attempt never sees its replica, as on AWS
    /// where replication takes longer than event delivery).
    pub replication_lag_seconds: f64,
    /// ... or this long after the version appeared, when no event reaches the validator.
    pub replication_fallback_seconds: f64,
    /// Both functions' Lambda timeout: an invocation still running after it is stopped and
    /// its whole batch fails (no `batchItemFailures` is read). Lambda refuses an SQS event
    /// source whose visibility timeout is shorter (Lambda Developer Guide, "Using Lambda
    /// with Amazon SQS").
    #[serde(default = "default_function_timeout")]
    pub function_timeout_seconds: f64,
    /// The mappings' `MaximumBatchingWindowInSeconds`: how long a poller gathers records
    /// before invoking with a batch smaller than the batch size (0: invoke at once).
    #[serde(default)]
    pub batching_window_seconds: f64,
}

fn default_function_timeout() -> f64 {
    60.0
}

impl Timing {
    /// What AWS refuses or cannot mean: non-finite or negative seconds, a function timeout
    /// outside Lambda's 1-900 s or longer than a visibility timeout of the queues it reads
    /// ("If your function's timeout is longer than the queue's visibility timeout, Lambda
    /// returns an error when creating the event source mapping"), a batching window over
    /// 300 s.
    pub fn check(&self) -> Result<(), String> {
        let secs = [
            ("retry_base_seconds", self.retry_base_seconds),
            ("retry_max_seconds", self.retry_max_seconds),
            ("lag_budget_seconds", self.lag_budget_seconds),
            ("replication_lag_seconds", self.replication_lag_seconds),
            (
                "replication_fallback_seconds",
                self.replication_fallback_seconds,
            ),
            ("function_timeout_seconds", self.function_timeout_seconds),
            ("batching_window_seconds", self.batching_window_seconds),
        ];
        for (name, v) in secs {
            if !v.is_finite() || !(0.0..=1e7).contains(&v) {
                return Err(format!(
                    "{name} = {v} is not a duration in seconds (0 to 10000000)"
                ));
            }
        }
        if !(1.0..=900.0).contains(&self.function_timeout_seconds) {
            return Err(format!(
                "function_timeout_seconds = {} is outside Lambda's 1 to 900 seconds",
                self.function_timeout_seconds
            ));
        }
        let shortest = self
            .validation_visibility_seconds
            .min(self.failure_visibility_seconds);
        if self.function_timeout_seconds > f64::from(shortest) {
            return Err(format!(
                "function_timeout_seconds = {} is longer than a queue visibility timeout ({shortest} s): Lambda refuses such an event source mapping",
                self.function_timeout_seconds
            ));
        }
        // SQS API Reference: ReceiveMessage `WaitTimeSeconds` 0-20; `VisibilityTimeout`
        // 0-43,200 (12 hours).
        if self.long_poll_seconds > 20 {
            return Err(format!(
                "long_poll_seconds = {} is over SQS's 20 seconds (ReceiveMessage WaitTimeSeconds)",
                self.long_poll_seconds
            ));
        }
        for (name, v) in [
            (
                "validation_visibility_seconds",
                self.validation_visibility_seconds,
            ),
            (
                "failure_visibility_seconds",
                self.failure_visibility_seconds,
            ),
        ] {
            if v > 43_200 {
                return Err(format!(
                    "{name} = {v} is over SQS's 43200 seconds (12 hours)"
                ));
            }
        }
        if self.batching_window_seconds > 300.0 {
            return Err(format!(
                "batching_window_seconds = {} is over Lambda's 300 seconds",
                self.batching_window_seconds
            ));
        }
        Ok(())
    }
}

/// A scenario's overrides on top of its profile; each set value shows in the outcome.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimingOverrides {
    pub validation_visibility_seconds: Option<u32>,
    pub failure_visibility_seconds: Option<u32>,
    pub long_poll_seconds: Option<u32>,
    pub retry_base_seconds: Option<f64>,
    pub retry_max_seconds: Option<f64>,
    pub lag_budget_seconds: Option<f64>,
    pub replication_lag_seconds: Option<f64>,
    pub replication_fallback_seconds: Option<f64>,
    pub function_timeout_seconds: Option<f64>,
    pub batching_window_seconds: Option<f64>,
}

impl TimingOverrides {
    pub fn apply(&self, base: &Timing) -> Timing {
        Timing {
            validation_visibility_seconds: self
                .validation_visibility_seconds
                .unwrap_or(base.validation_visibility_seconds),
            failure_visibility_seconds: self
                .failure_visibility_seconds
                .unwrap_or(base.failure_visibility_seconds),
            long_poll_seconds: self.long_poll_seconds.unwrap_or(base.long_poll_seconds),
            retry_base_seconds: self.retry_base_seconds.unwrap_or(base.retry_base_seconds),
            retry_max_seconds: self.retry_max_seconds.unwrap_or(base.retry_max_seconds),
            lag_budget_seconds: self.lag_budget_seconds.unwrap_or(base.lag_budget_seconds),
            replication_lag_seconds: self
                .replication_lag_seconds
                .unwrap_or(base.replication_lag_seconds),
            replication_fallback_seconds: self
                .replication_fallback_seconds
                .unwrap_or(base.replication_fallback_seconds),
            function_timeout_seconds: self
                .function_timeout_seconds
                .unwrap_or(base.function_timeout_seconds),
            batching_window_seconds: self
                .batching_window_seconds
                .unwrap_or(base.batching_window_seconds),
        }
    }

    /// `name=value` for each override that is set, in a fixed order.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        macro_rules! push {
            ($f:ident) => {
                if let Some(v) = self.$f {
                    out.push(format!("{}={}", stringify!($f), v));
                }
            };
        }
        push!(validation_visibility_seconds);
        push!(failure_visibility_seconds);
        push!(long_poll_seconds);
        push!(retry_base_seconds);
        push!(retry_max_seconds);
        push!(lag_budget_seconds);
        push!(replication_lag_seconds);
        push!(replication_fallback_seconds);
        push!(function_timeout_seconds);
        push!(batching_window_seconds);
        out
    }
}

impl TopologySpec {
    /// Loads and checks a topology file.
    pub fn load(path: &Path) -> Result<TopologySpec, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<TopologySpec, FileError> {
        let spec: TopologySpec = toml::from_str(text).map_err(|e| {
            crate::errors::toml_error(path, text, &e, "see fixtures/topology.toml for every field")
        })?;
        let invalid = |message: String, hint: &str| FileError::Invalid {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message,
            hint: hint.into(),
        };
        if spec.categories.is_empty() {
            return Err(invalid(
                "no categories".into(),
                "list at least one, e.g. categories = [\"documents\"]",
            ));
        }
        for c in &spec.categories {
            if c.is_empty()
                || !c
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            {
                return Err(invalid(
                    format!("category {c:?} is not usable in a bucket name"),
                    "use lowercase letters, digits and '-'",
                ));
            }
        }
        if !(1..=2).contains(&spec.replication.destinations) {
            return Err(invalid(
                format!(
                    "[replication] destinations = {} is not supported",
                    spec.replication.destinations
                ),
                "use 1 or 2",
            ));
        }
        for p in ["seed", "fast"] {
            if !spec.profiles.contains_key(p) {
                return Err(invalid(
                    format!("profile `{p}` is missing"),
                    "define [profiles.seed] and [profiles.fast]",
                ));
            }
        }
        for (name, timing) in &spec.profiles {
            timing.check().map_err(|why| {
                invalid(
                    format!("[profiles.{name}]: {why}"),
                    "fix the value in the topology file",
                )
            })?;
        }
        Ok(spec)
    }

    /// The default topology file of the repository.
    pub fn default_path() -> std::path::PathBuf {
        crate::paths::repo_root()
            .join("fixtures")
            .join("topology.toml")
    }

    pub fn profile(&self, name: &str) -> Option<&Timing> {
        self.profiles.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 25 (partial): timings SQS would refuse are refused when the file is read.
    #[test]
    fn sqs_limits_on_long_polls_and_visibility_are_checked() {
        let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
        let fast = spec.profiles["fast"].clone();
        assert!(fast.check().is_ok());
        let mut long = fast.clone();
        long.long_poll_seconds = 21;
        assert!(long.check().unwrap_err().contains("20 seconds"));
        let mut visible = fast.clone();
        visible.validation_visibility_seconds = 43_201;
        assert!(visible.check().unwrap_err().contains("43200"));
        let mut failure = fast;
        failure.failure_visibility_seconds = 43_201;
        assert!(failure
            .check()
            .unwrap_err()
            .contains("failure_visibility_seconds"));
    }
}

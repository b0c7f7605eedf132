//! The backup topology: names, provisioning and teardown, mirroring the seed deployment
//! (`../shared/notes/seed-topology.md`) resource by resource.
//!
//! Floor 2: may import floors 0-1 (ground, engine).

pub mod error;
pub mod ownership;
pub mod policy;
pub mod provision;
pub mod replication;
pub mod spec;
pub mod teardown;
pub mod template;

use serde::Serialize;

pub use error::ProvisionError;
pub use spec::{
    IamSpec, PublicAccessBlock, ReplicationSpec, Timing, TimingOverrides, TopologyOverrides,
    TopologySpec,
};

/// A queue's name, URL and ARN.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueRef {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// One category's bucket pair.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryBuckets {
    pub category: String,
    pub primary: String,
    pub replica: String,
    /// Further destinations (`[replication] destinations` > 1), in the replica region.
    pub extra_replicas: Vec<String>,
}

impl CategoryBuckets {
    /// Every destination bucket, the replica first.
    pub fn destinations(&self) -> Vec<String> {
        std::iter::once(self.replica.clone())
            .chain(self.extra_replicas.iter().cloned())
            .collect()
    }
}

/// The queues of the topology.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Queues {
    pub validation: QueueRef,
    pub validation_dlq: QueueRef,
    pub failure: QueueRef,
    pub failure_dlq: QueueRef,
    /// The EventBridge target's dead-letter queue: events the rule could not deliver.
    pub events_dlq: QueueRef,
    /// Subscribed to the failure topic in place of the seed's e-mail address.
    pub alerts: QueueRef,
}

impl Queues {
    /// (role, queue) pairs in a fixed order, for reports.
    pub fn all(&self) -> [(&'static str, &QueueRef); 6] {
        [
            ("validation", &self.validation),
            ("validation-dlq", &self.validation_dlq),
            ("failure", &self.failure),
            ("failure-dlq", &self.failure_dlq),
            ("events-dlq", &self.events_dlq),
            ("alerts", &self.alerts),
        ]
    }

    pub fn by_role(&self, role: &str) -> Option<&QueueRef> {
        self.all()
            .into_iter()
            .find(|(r, _)| *r == role)
            .map(|(_, q)| q)
    }
}

/// What a key is for: each gets its own key policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// SSE-KMS of the queues. EventBridge sends to the encrypted validation queue, so the
    /// service needs the key (EventBridge User Guide, "Amazon SQS permissions").
    Sqs,
    /// SSE of the failure topic: only its publisher (the notifier) uses it.
    Sns,
    /// SSE-KMS of primary objects (`sse_kms = true` uploads), in the primary region. S3
    /// uses it on behalf of its callers, so no service principal: the uploader is the
    /// account (root statement), the readers are the roles, each only through S3 in that
    /// region (`kms:ViaService`).
    S3,
    /// SSE-KMS of the replicas, used by the replication roles through S3.
    Replica,
}

/// One CMK of the topology: what it is for and its alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyName<'a> {
    pub purpose: KeyPurpose,
    pub alias: &'a str,
    pub description: &'static str,
}

impl KeyName<'_> {
    /// Whether the key lives in the replica region (else the primary region).
    pub fn in_replica_region(&self) -> bool {
        self.purpose == KeyPurpose::Replica
    }
}

/// Every name of one run, derived from the spec and the run suffix.
#[derive(Debug, Clone, Serialize)]
pub struct Names {
    pub suffix: String,
    pub buckets: Vec<CategoryBuckets>,
    pub validation_queue: String,
    pub validation_dlq: String,
    pub failure_queue: String,
    pub failure_dlq: String,
    pub events_dlq: String,
    pub alerts_queue: String,
    pub topic: String,
    /// The notifier's alert ledger (one alert per idempotency key): unversioned, entries
    /// expire after a day.
    pub alert_ledger: String,
    pub rule: String,
    pub sqs_key_alias: String,
    pub sns_key_alias: String,
    /// The primary-region CMK of SSE-KMS primaries (`sse_kms = true` uploads).
    pub s3_key_alias: String,
    /// The replica-region CMK for SSE-KMS replicas (`ReplicaKmsKeyID`).
    pub replica_key_alias: String,
    pub validator_role: String,
    pub notifier_role: String,
    /// `--via cloudformation --functions deployed`: the run's bucket of function zips, the
    /// primary stack's `ArtifactBucket`.
    pub artifacts: String,
}

impl Names {
    pub fn new(spec: &TopologySpec, suffix: &str) -> Names {
        let (p, e) = (&spec.project, &spec.environment);
        Names {
            suffix: suffix.to_string(),
            buckets: spec
                .categories
                .iter()
                .map(|c| CategoryBuckets {
                    category: c.clone(),
                    primary: format!("{p}-{c}-primary-{e}-{suffix}"),
                    replica: format!("{p}-{c}-replica-{e}-{suffix}"),
                    extra_replicas: (2..=spec.replication.destinations)
                        .map(|n| format!("{p}-{c}-replica{n}-{e}-{suffix}"))
                        .collect(),
                })
                .collect(),
            validation_queue: format!("{p}-validation-queue-{e}-{suffix}"),
            validation_dlq: format!("{p}-validation-dlq-{e}-{suffix}"),
            failure_queue: format!("{p}-failure-queue-{e}-{suffix}"),
            failure_dlq: format!("{p}-failure-dlq-{e}-{suffix}"),
            events_dlq: format!("{p}-events-dlq-{e}-{suffix}"),
            alerts_queue: format!("{p}-alerts-{e}-{suffix}"),
            topic: format!("{p}-failure-topic-{e}-{suffix}"),
            alert_ledger: format!("{p}-alert-ledger-{e}-{suffix}"),
            rule: format!("{p}-s3-upload-trigger-{e}-{suffix}"),
            sqs_key_alias: format!("alias/{p}-sqs-key-{e}-{suffix}"),
            sns_key_alias: format!("alias/{p}-sns-key-{e}-{suffix}"),
            s3_key_alias: format!("alias/{p}-s3-key-{e}-{suffix}"),
            replica_key_alias: format!("alias/{p}-replica-key-{e}-{suffix}"),
            validator_role: format!("{p}-checksum-validator-role-{e}-{suffix}"),
            notifier_role: format!("{p}-failure-notifier-role-{e}-{suffix}"),
            artifacts: format!("{p}-artifacts-{e}-{suffix}"),
        }
    }

    /// Every CMK of the topology, in the order provisioning returns their ARNs: what
    /// provisioning creates and teardown schedules for deletion.
    pub fn keys(&self) -> [KeyName<'_>; 4] {
        [
            KeyName {
                purpose: KeyPurpose::Sqs,
                alias: &self.sqs_key_alias,
                description: "SQS encryption key",
            },
            KeyName {
                purpose: KeyPurpose::Sns,
                alias: &self.sns_key_alias,
                description: "SNS encryption key",
            },
            KeyName {
                purpose: KeyPurpose::S3,
                alias: &self.s3_key_alias,
                description: "SSE-KMS key of primary objects",
            },
            KeyName {
                purpose: KeyPurpose::Replica,
                alias: &self.replica_key_alias,
                description: "SSE-KMS replica key (replica region)",
            },
        ]
    }

    /// `s3-crr-role-<primary>` (IAM role names are at most 64 characters).
    pub fn crr_role(primary: &str) -> String {
        let mut n = format!("s3-crr-role-{primary}");
        n.truncate(64);
        n
    }
}

/// A random run suffix: six lowercase letters and digits.
pub fn new_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A provisioned topology: everything a function or a client needs to find.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub names: Names,
    pub primary_region: String,
    pub replica_region: String,
    pub account: String,
    pub timing: Timing,
    pub queues: Queues,
    pub topic_arn: String,
    pub rule_arn: String,
    pub sqs_key_arn: String,
    pub sns_key_arn: String,
    /// The primary-region CMK `sse_kms = true` uploads are encrypted with (its own key, not
    /// the queues').
    pub s3_key_arn: String,
    /// The replica-region CMK SSE-KMS replicas are encrypted with.
    pub replica_key_arn: String,
    /// Each primary's replication configuration (on the engine, or held by the fidelity
    /// layer where the harness replicates).
    pub replication: Vec<crate::topology::replication::BucketReplication>,
    /// Whether the primaries carry a replication configuration on the engine.
    pub replication_on_engine: bool,
    pub batch_size: u32,
    pub max_receive_count: u32,
    /// Both functions' `MemorySize` (MB), for `--functions deployed`.
    pub function_memory_mb: u32,
    /// The functions and their event source mappings are the primary stack's (`--via
    /// cloudformation --functions deployed`), not the harness's to create.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub functions_in_stack: bool,
}

impl Topology {
    pub fn buckets(&self) -> &[CategoryBuckets] {
        &self.names.buckets
    }

    pub fn category(&self, name: &str) -> Option<&CategoryBuckets> {
        self.names.buckets.iter().find(|b| b.category == name)
    }

    /// Every replica bucket (all destinations).
    pub fn replica_buckets(&self) -> Vec<String> {
        self.names
            .buckets
            .iter()
            .flat_map(|b| b.destinations())
            .collect()
    }
}

/// The queues each function consumes, by queue role: one event source mapping each, in
/// the harness's own mapping (`esm`), under `--functions deployed`, and in the
/// CloudFormation template.
pub const MAPPINGS: [(FunctionName, &str); 5] = [
    (FunctionName::Validator, "validation"),
    (FunctionName::Notifier, "failure"),
    (FunctionName::Notifier, "validation-dlq"),
    (FunctionName::Notifier, "events-dlq"),
    (FunctionName::Notifier, "failure-dlq"),
];

/// The two functions, for pausing and resuming their triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FunctionName {
    Validator,
    Notifier,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 22(f): SSE-KMS primaries get a key of their own in the primary region, which
    /// provisioning creates and teardown removes with the others (both walk `keys()`).
    #[test]
    fn every_key_has_its_own_alias_and_region() {
        let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
        let names = Names::new(&spec, "t3st01");
        let keys = names.keys();
        let aliases: std::collections::BTreeSet<&str> = keys.iter().map(|k| k.alias).collect();
        assert_eq!(aliases.len(), keys.len(), "{aliases:?}");
        let s3 = keys
            .iter()
            .find(|k| k.purpose == KeyPurpose::S3)
            .expect("an S3 key");
        assert_eq!(s3.alias, "alias/autobackup-s3-key-dev-t3st01");
        assert!(!s3.in_replica_region());
        assert_ne!(s3.alias, names.sqs_key_alias);
        let in_replica: Vec<&str> = keys
            .iter()
            .filter(|k| k.in_replica_region())
            .map(|k| k.alias)
            .collect();
        assert_eq!(in_replica, [names.replica_key_alias.as_str()]);
        for k in &keys {
            assert!(k.alias.ends_with("-t3st01"), "{k:?}");
        }
    }
}

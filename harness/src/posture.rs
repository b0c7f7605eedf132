//! Posture checks of a provisioned topology (`harness gate`): what the seed deployment
//! promised about its configuration, read back from the live resources with the SDK, one
//! [`Check`] per setting of one resource.
//!
//! The seed (`../shared/seeds/event-driven-backup-system.md`) ran Checkov over its
//! Terraform before deploying: a static scan of what was *declared*. These checks read what
//! was *provisioned*, so a provisioning bug, an engine that drops a setting, or a
//! deliberate override (`[buckets.public_access_block]` in the topology file) shows up as a
//! failed check naming the resource and the setting. The requirements are the seed's
//! (`../shared/notes/seed-topology.md`), not the topology file's, except the IAM action
//! sets, which the topology declares (`[iam]`) apart from the documents `policy.rs` builds:
//!
//! | check | resource, setting | requirement | AWS API |
//! |---|---|---|---|
//! | `bucket-versioning` | each of the six backup buckets, `Status` | `Enabled` | [GetBucketVersioning](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketVersioning.html) |
//! | `bucket-encryption` | every bucket, `SSEAlgorithm` | a default-encryption rule (`AES256`, `aws:kms`, `aws:kms:dsse`) | [GetBucketEncryption](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketEncryption.html) |
//! | `bucket-public-access-block` | every bucket, each of `BlockPublicAcls`, `IgnorePublicAcls`, `BlockPublicPolicy`, `RestrictPublicBuckets` | `true` | [GetPublicAccessBlock](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetPublicAccessBlock.html) |
//! | `replication-coverage` | each primary, `Rule` | every destination has an `Enabled` rule whose filter covers every key | [GetBucketReplication](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketReplication.html) |
//! | `replication-delete-markers` | each primary, `DeleteMarkerReplication` | `Enabled` on every rule | same |
//! | `replication-sse-kms` | each primary, `SourceSelectionCriteria.SseKmsEncryptedObjects` | `Enabled` with the replica CMK as `ReplicaKmsKeyID`, where the topology opts in (`[replication] sse_kms`) | same |
//! | `queue-encryption` | the validation and failure queues and the three DLQs, `KmsMasterKeyId` | the topology's SQS CMK | [GetQueueAttributes](https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html) |
//! | `queue-dlq` | the validation and failure queues, `RedrivePolicy` | `deadLetterTargetArn` = its DLQ, `maxReceiveCount` = the topology's | same |
//! | `rule-target-dlq` | the EventBridge rule's target, `DeadLetterConfig.Arn` | the events DLQ | [ListTargetsByRule](https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_ListTargetsByRule.html) |
//! | `topic-encryption` | the failure topic, `KmsMasterKeyId` | the topology's SNS CMK | [GetTopicAttributes](https://docs.aws.amazon.com/sns/latest/api/API_GetTopicAttributes.html) |
//! | `role-actions` | each role, `Action` | exactly the topology's `[iam]` set for that role | [GetRolePolicy](https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRolePolicy.html) (URL-encoded per RFC 3986) |
//! | `role-resources` | each role, `Resource` | no `*` resource and no wildcard account, region or service | same |
//! | `role-trust` | each role, `Principal` | no `*` principal in the trust policy | [GetRole](https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRole.html) |
//! | `queue-policy` | each queue with an access policy, `Principal` | no `*` principal | GetQueueAttributes `Policy` |
//! | `key-policy` | each CMK, `Principal` | no `*` principal (a key policy's `"Resource": "*"` means the key itself, the only form AWS accepts) | [GetKeyPolicy](https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyPolicy.html) |
//!
//! Not checked, on purpose: the alert ledger's versioning (bookkeeping the notifier owns,
//! unversioned by design) and the alerts queue's encryption (the stand-in for the seed's
//! e-mail subscription, not part of the seed). The topology sets no topic policy: AWS's
//! default one admits only the owning account.
//!
//! Replication is read through the fidelity layer where the harness replicates (every
//! local engine holds no replication configuration; the layer answers
//! `GetBucketReplication` with the rules the harness applies), so the check reads what a
//! client of the system sees, as it would on AWS.
//!
//! The comparisons are pure functions ([`Verdict`]s from found values), unit-tested with
//! tables; [`read`] makes the SDK calls and [`run`] provisions a topology for them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName as QA;
use serde_json::Value;

use crate::aws::Clients;
use crate::engine::proxy::GapProxy;
use crate::engine::{Engine, EngineKind};
use crate::errors::{sdk, ProvisionError};
use crate::replication::{ReplicationTiming, Replicator};
use crate::report::case::Check;
use crate::topology::provision::provision_for_engine;
use crate::topology::{new_suffix, Topology, TopologySpec};

/// Which posture check a [`Check`] is (its `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckId {
    BucketVersioning,
    BucketEncryption,
    BucketPublicAccessBlock,
    ReplicationCoverage,
    ReplicationDeleteMarkers,
    ReplicationSseKms,
    QueueEncryption,
    QueueDlq,
    RuleTargetDlq,
    TopicEncryption,
    RoleActions,
    RoleResources,
    RoleTrust,
    QueuePolicy,
    KeyPolicy,
}

impl CheckId {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::BucketVersioning => "bucket-versioning",
            CheckId::BucketEncryption => "bucket-encryption",
            CheckId::BucketPublicAccessBlock => "bucket-public-access-block",
            CheckId::ReplicationCoverage => "replication-coverage",
            CheckId::ReplicationDeleteMarkers => "replication-delete-markers",
            CheckId::ReplicationSseKms => "replication-sse-kms",
            CheckId::QueueEncryption => "queue-encryption",
            CheckId::QueueDlq => "queue-dlq",
            CheckId::RuleTargetDlq => "rule-target-dlq",
            CheckId::TopicEncryption => "topic-encryption",
            CheckId::RoleActions => "role-actions",
            CheckId::RoleResources => "role-resources",
            CheckId::RoleTrust => "role-trust",
            CheckId::QueuePolicy => "queue-policy",
            CheckId::KeyPolicy => "key-policy",
        }
    }
}

/// The four public-access-block flags, as S3 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicAccessFlag {
    BlockPublicAcls,
    IgnorePublicAcls,
    BlockPublicPolicy,
    RestrictPublicBuckets,
}

impl PublicAccessFlag {
    pub const ALL: [PublicAccessFlag; 4] = [
        PublicAccessFlag::BlockPublicAcls,
        PublicAccessFlag::IgnorePublicAcls,
        PublicAccessFlag::BlockPublicPolicy,
        PublicAccessFlag::RestrictPublicBuckets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PublicAccessFlag::BlockPublicAcls => "BlockPublicAcls",
            PublicAccessFlag::IgnorePublicAcls => "IgnorePublicAcls",
            PublicAccessFlag::BlockPublicPolicy => "BlockPublicPolicy",
            PublicAccessFlag::RestrictPublicBuckets => "RestrictPublicBuckets",
        }
    }

    fn of(self, c: &aws_sdk_s3::types::PublicAccessBlockConfiguration) -> Option<bool> {
        match self {
            PublicAccessFlag::BlockPublicAcls => c.block_public_acls(),
            PublicAccessFlag::IgnorePublicAcls => c.ignore_public_acls(),
            PublicAccessFlag::BlockPublicPolicy => c.block_public_policy(),
            PublicAccessFlag::RestrictPublicBuckets => c.restrict_public_buckets(),
        }
    }
}

/// The outcome of one comparison: whether it holds, and what was found (and required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub detail: String,
}

impl Verdict {
    fn pass(detail: impl Into<String>) -> Verdict {
        Verdict {
            passed: true,
            detail: detail.into(),
        }
    }

    fn fail(detail: impl Into<String>) -> Verdict {
        Verdict {
            passed: false,
            detail: detail.into(),
        }
    }
}

/// A public-access-block flag: it must be set and true.
pub fn public_access_flag(found: Option<bool>) -> Verdict {
    match found {
        Some(true) => Verdict::pass("true"),
        Some(false) => Verdict::fail("false (required: true)"),
        None => Verdict::fail("not set (required: true)"),
    }
}

/// Bucket versioning: `Enabled` (a never-versioned bucket reports no status; a suspended
/// one keeps old versions but makes no new ones).
pub fn versioning(status: Option<&str>) -> Verdict {
    match status {
        Some("Enabled") => Verdict::pass("Enabled"),
        Some(other) => Verdict::fail(format!("{other} (required: Enabled)")),
        None => Verdict::fail("never enabled (required: Enabled)"),
    }
}

/// Default encryption: at least one rule with a server-side algorithm.
pub fn default_encryption(algorithms: &[String]) -> Verdict {
    const KNOWN: [&str; 3] = ["AES256", "aws:kms", "aws:kms:dsse"];
    match algorithms.iter().find(|a| KNOWN.contains(&a.as_str())) {
        Some(a) => Verdict::pass(a.clone()),
        None if algorithms.is_empty() => {
            Verdict::fail("no default encryption rule (required: AES256 or aws:kms)")
        }
        None => Verdict::fail(format!(
            "{} (required: AES256 or aws:kms)",
            algorithms.join(", ")
        )),
    }
}

/// A CMK setting (`KmsMasterKeyId`): the topology's key, named by its ARN, its key id, its
/// alias or its alias ARN (AWS accepts each and answers what was set).
pub fn kms_key(found: Option<&str>, key_arn: &str, alias: &str) -> Verdict {
    let Some(found) = found.filter(|f| !f.is_empty()) else {
        return Verdict::fail(format!("not set (required: {key_arn})"));
    };
    let key_id = key_arn.rsplit('/').next().unwrap_or(key_arn);
    let alias_arn_suffix = format!(":{alias}");
    if found == key_arn || found == key_id || found == alias || found.ends_with(&alias_arn_suffix) {
        Verdict::pass(found)
    } else {
        Verdict::fail(format!("{found} (required: {key_arn})"))
    }
}

/// A queue's `RedrivePolicy`: its DLQ and the receive count.
pub fn redrive(found: Option<&str>, dlq_arn: &str, max_receive_count: u32) -> Verdict {
    let Some(text) = found.filter(|f| !f.is_empty()) else {
        return Verdict::fail(format!("no redrive policy (required: {dlq_arn})"));
    };
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Verdict::fail(format!("not JSON: {text}"));
    };
    let target = v["deadLetterTargetArn"].as_str().unwrap_or_default();
    // SQS answers the count as a number; some engines as a string.
    let count = v["maxReceiveCount"]
        .as_u64()
        .or_else(|| v["maxReceiveCount"].as_str().and_then(|s| s.parse().ok()));
    let detail = format!(
        "deadLetterTargetArn {target}, maxReceiveCount {}",
        count.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
    );
    if target == dlq_arn && count == Some(u64::from(max_receive_count)) {
        Verdict::pass(detail)
    } else {
        Verdict::fail(format!(
            "{detail} (required: {dlq_arn}, {max_receive_count})"
        ))
    }
}

/// A policy document as IAM returns it: URL-encoded (RFC 3986) by the API, plain JSON from
/// some engines and SDK paths.
pub fn decode_policy(text: &str) -> Result<Value, String> {
    let plain = if text.trim_start().starts_with('{') {
        text.to_string()
    } else {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map_err(|e| format!("not UTF-8 after URL decoding: {e}"))?
            .into_owned()
    };
    serde_json::from_str(&plain).map_err(|e| format!("not a JSON policy document: {e}"))
}

fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![&doc["Statement"]],
        _ => Vec::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every action the `Allow` statements of `doc` grant. A `NotAction` statement grants
/// everything but its list, so it shows as `NotAction:<action>` and never equals a set.
pub fn allowed_actions(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in statements(doc) {
        if s["Effect"] != "Allow" {
            continue;
        }
        out.extend(strings(&s["Action"]));
        out.extend(
            strings(&s["NotAction"])
                .into_iter()
                .map(|a| format!("NotAction:{a}")),
        );
    }
    out
}

/// The actions found against the expected set: equal, or what is missing and extra.
pub fn compare_actions(found: &BTreeSet<String>, expected: &BTreeSet<String>) -> Verdict {
    let missing: Vec<&str> = expected.difference(found).map(String::as_str).collect();
    let extra: Vec<&str> = found.difference(expected).map(String::as_str).collect();
    if missing.is_empty() && extra.is_empty() {
        return Verdict::pass(format!("{} actions, as expected", found.len()));
    }
    let mut parts = Vec::new();
    if !extra.is_empty() {
        parts.push(format!("not expected: {}", extra.join(", ")));
    }
    if !missing.is_empty() {
        parts.push(format!("missing: {}", missing.join(", ")));
    }
    Verdict::fail(parts.join("; "))
}

/// A resource that names nothing in particular: `*`, or an ARN whose partition, service,
/// region or account is `*`, or whose resource part is `*` alone.
fn wildcard_resource(r: &str) -> bool {
    if r == "*" {
        return true;
    }
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    parts.len() == 6 && (parts[1..5].contains(&"*") || parts[5] == "*")
}

/// The wildcard resources of the `Allow` statements of a role policy (and any
/// `NotResource`, which grants everything else).
pub fn wildcard_resources(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for s in statements(doc) {
        if s["Effect"] != "Allow" {
            continue;
        }
        out.extend(
            strings(&s["Resource"])
                .into_iter()
                .filter(|r| wildcard_resource(r)),
        );
        out.extend(
            strings(&s["NotResource"])
                .into_iter()
                .map(|r| format!("NotResource:{r}")),
        );
    }
    out
}

/// The `*` principals of the `Allow` statements of a resource or trust policy:
/// `"Principal": "*"` or `{"AWS": "*"}` (anyone), and any `NotPrincipal`.
pub fn wildcard_principals(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for s in statements(doc) {
        if s["Effect"] != "Allow" {
            continue;
        }
        match &s["Principal"] {
            Value::String(p) if p == "*" => out.push("*".to_string()),
            Value::Object(m) => {
                for (kind, v) in m {
                    if strings(v).iter().any(|p| p == "*") {
                        out.push(format!("{kind}: *"));
                    }
                }
            }
            _ => {}
        }
        if !s["NotPrincipal"].is_null() {
            out.push(format!("NotPrincipal {}", s["NotPrincipal"]));
        }
    }
    out
}

fn none_of(found: Vec<String>, what: &str) -> Verdict {
    if found.is_empty() {
        Verdict::pass(format!("no {what}"))
    } else {
        Verdict::fail(format!("{what}: {}", found.join(", ")))
    }
}

/// One replication rule as read back, reduced to what the checks look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleView {
    pub id: String,
    pub enabled: bool,
    /// The filter's prefix (`None` with no filter at all: every key).
    pub prefix: Option<String>,
    /// Whether the filter also requires tags (then it covers only tagged objects).
    pub tagged: bool,
    /// Destination bucket ARN.
    pub destination: String,
    pub delete_markers: bool,
    pub sse_kms: bool,
    pub replica_kms_key: Option<String>,
}

impl RuleView {
    fn covers_every_key(&self) -> bool {
        !self.tagged && self.prefix.as_deref().unwrap_or_default().is_empty()
    }

    fn from_sdk(r: &aws_sdk_s3::types::ReplicationRule) -> RuleView {
        use aws_sdk_s3::types::{
            DeleteMarkerReplicationStatus, ReplicationRuleStatus, SseKmsEncryptedObjectsStatus,
        };
        let filter = r.filter();
        #[allow(deprecated)]
        let prefix = filter
            .and_then(|f| {
                f.prefix()
                    .or_else(|| f.and().and_then(|a| a.prefix()))
                    .map(str::to_string)
            })
            .or_else(|| r.prefix().map(str::to_string));
        let tagged = filter
            .is_some_and(|f| f.tag().is_some() || f.and().is_some_and(|a| !a.tags().is_empty()));
        let destination = r.destination();
        RuleView {
            id: r.id().unwrap_or_default().to_string(),
            enabled: r.status() == &ReplicationRuleStatus::Enabled,
            prefix,
            tagged,
            destination: destination
                .map(|d| d.bucket().to_string())
                .unwrap_or_default(),
            delete_markers: r
                .delete_marker_replication()
                .and_then(|d| d.status())
                .is_some_and(|s| s == &DeleteMarkerReplicationStatus::Enabled),
            sse_kms: r
                .source_selection_criteria()
                .and_then(|c| c.sse_kms_encrypted_objects())
                .is_some_and(|s| s.status() == &SseKmsEncryptedObjectsStatus::Enabled),
            replica_kms_key: destination
                .and_then(|d| d.encryption_configuration())
                .and_then(|e| e.replica_kms_key_id())
                .map(str::to_string),
        }
    }
}

fn describe_rules(rules: &[RuleView]) -> String {
    if rules.is_empty() {
        return "no rules".into();
    }
    rules
        .iter()
        .map(|r| {
            format!(
                "{} ({}, prefix {:?}{}) -> {}",
                r.id,
                if r.enabled { "Enabled" } else { "Disabled" },
                r.prefix.as_deref().unwrap_or_default(),
                if r.tagged { ", tags" } else { "" },
                r.destination
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every destination (bucket names) has an enabled rule covering every key.
pub fn replication_coverage(rules: &[RuleView], destinations: &[String]) -> Verdict {
    let uncovered: Vec<&String> = destinations
        .iter()
        .filter(|d| {
            let arn = format!("arn:aws:s3:::{d}");
            !rules
                .iter()
                .any(|r| r.enabled && r.covers_every_key() && r.destination == arn)
        })
        .collect();
    let found = describe_rules(rules);
    if uncovered.is_empty() {
        Verdict::pass(found)
    } else {
        Verdict::fail(format!(
            "{found} (not every key replicated to {})",
            uncovered
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Every enabled rule replicates delete markers.
pub fn replication_delete_markers(rules: &[RuleView]) -> Verdict {
    let off: Vec<&str> = rules
        .iter()
        .filter(|r| r.enabled && !r.delete_markers)
        .map(|r| r.id.as_str())
        .collect();
    if rules.is_empty() {
        Verdict::fail("no rules")
    } else if off.is_empty() {
        Verdict::pass("Enabled on every rule")
    } else {
        Verdict::fail(format!(
            "Disabled on {} (required: Enabled)",
            off.join(", ")
        ))
    }
}

/// Every enabled rule opts in to SSE-KMS objects with the replica CMK.
pub fn replication_sse_kms(rules: &[RuleView], replica_key_arn: &str) -> Verdict {
    let wrong: Vec<String> = rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| {
            if !r.sse_kms {
                Some(format!("{}: SseKmsEncryptedObjects not Enabled", r.id))
            } else if r.replica_kms_key.as_deref() != Some(replica_key_arn) {
                Some(format!(
                    "{}: ReplicaKmsKeyID {} (required: {replica_key_arn})",
                    r.id,
                    r.replica_kms_key.as_deref().unwrap_or("not set")
                ))
            } else {
                None
            }
        })
        .collect();
    if rules.is_empty() {
        Verdict::fail("no rules")
    } else if wrong.is_empty() {
        Verdict::pass(format!("Enabled, ReplicaKmsKeyID {replica_key_arn}"))
    } else {
        Verdict::fail(wrong.join("; "))
    }
}

/// Collects checks of one engine.
struct Sheet {
    engine: EngineKind,
    checks: Vec<Check>,
}

impl Sheet {
    fn add(&mut self, id: CheckId, resource: &str, setting: &str, v: Verdict) {
        self.checks.push(Check {
            engine: self.engine,
            id: id.as_str().to_string(),
            resource: resource.to_string(),
            setting: setting.to_string(),
            passed: v.passed,
            detail: v.detail,
        });
    }

    fn failed_call(&mut self, id: CheckId, resource: &str, setting: &str, call: &str, e: String) {
        self.add(
            id,
            resource,
            setting,
            Verdict::fail(format!("{call} failed: {e}")),
        );
    }
}

/// Reads every posture setting of `topology` through `clients` (the fidelity layer's view
/// where the harness replicates) and judges it.
pub async fn read(
    clients: &Clients,
    topology: &Topology,
    spec: &TopologySpec,
    engine: EngineKind,
) -> Vec<Check> {
    let mut sheet = Sheet {
        engine,
        checks: Vec::new(),
    };
    buckets(&mut sheet, clients, topology).await;
    replication(&mut sheet, clients, topology, spec).await;
    queues(&mut sheet, clients, topology, spec).await;
    topic_and_rule(&mut sheet, clients, topology).await;
    roles(&mut sheet, clients, topology, spec).await;
    keys(&mut sheet, clients, topology).await;
    sheet.checks
}

async fn buckets(sheet: &mut Sheet, clients: &Clients, topology: &Topology) {
    let mut all: Vec<(String, bool, bool)> = Vec::new(); // (bucket, replica region, versioned)
    for b in topology.buckets() {
        all.push((b.primary.clone(), false, true));
        for d in b.destinations() {
            all.push((d, true, true));
        }
    }
    all.push((topology.names.alert_ledger.clone(), false, false));
    for (bucket, in_replica, versioned) in all {
        let s3 = if in_replica {
            &clients.s3_replica
        } else {
            &clients.s3
        };
        if versioned {
            match s3.get_bucket_versioning().bucket(&bucket).send().await {
                Ok(v) => sheet.add(
                    CheckId::BucketVersioning,
                    &bucket,
                    "Status",
                    versioning(v.status().map(|s| s.as_str())),
                ),
                Err(e) => sheet.failed_call(
                    CheckId::BucketVersioning,
                    &bucket,
                    "Status",
                    "GetBucketVersioning",
                    sdk(e),
                ),
            }
        }
        match s3.get_bucket_encryption().bucket(&bucket).send().await {
            Ok(out) => {
                let algorithms: Vec<String> = out
                    .server_side_encryption_configuration()
                    .map(|c| {
                        c.rules()
                            .iter()
                            .filter_map(|r| r.apply_server_side_encryption_by_default())
                            .map(|d| d.sse_algorithm().as_str().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                sheet.add(
                    CheckId::BucketEncryption,
                    &bucket,
                    "SSEAlgorithm",
                    default_encryption(&algorithms),
                );
            }
            Err(e) => sheet.failed_call(
                CheckId::BucketEncryption,
                &bucket,
                "SSEAlgorithm",
                "GetBucketEncryption",
                sdk(e),
            ),
        }
        match s3.get_public_access_block().bucket(&bucket).send().await {
            Ok(out) => {
                for flag in PublicAccessFlag::ALL {
                    let found = out
                        .public_access_block_configuration()
                        .and_then(|c| flag.of(c));
                    sheet.add(
                        CheckId::BucketPublicAccessBlock,
                        &bucket,
                        flag.as_str(),
                        public_access_flag(found),
                    );
                }
            }
            Err(e) => {
                let e = sdk(e);
                for flag in PublicAccessFlag::ALL {
                    sheet.failed_call(
                        CheckId::BucketPublicAccessBlock,
                        &bucket,
                        flag.as_str(),
                        "GetPublicAccessBlock",
                        e.clone(),
                    );
                }
            }
        }
    }
}

async fn replication(
    sheet: &mut Sheet,
    clients: &Clients,
    topology: &Topology,
    spec: &TopologySpec,
) {
    for b in topology.buckets() {
        let primary = &b.primary;
        let rules: Vec<RuleView> = match clients
            .s3
            .get_bucket_replication()
            .bucket(primary)
            .send()
            .await
        {
            Ok(out) => out
                .replication_configuration()
                .map(|c| c.rules().iter().map(RuleView::from_sdk).collect())
                .unwrap_or_default(),
            Err(e) => {
                let e = sdk(e);
                sheet.failed_call(
                    CheckId::ReplicationCoverage,
                    primary,
                    "Rule",
                    "GetBucketReplication",
                    e.clone(),
                );
                sheet.failed_call(
                    CheckId::ReplicationDeleteMarkers,
                    primary,
                    "DeleteMarkerReplication",
                    "GetBucketReplication",
                    e.clone(),
                );
                if spec.replication.sse_kms {
                    sheet.failed_call(
                        CheckId::ReplicationSseKms,
                        primary,
                        "SourceSelectionCriteria.SseKmsEncryptedObjects",
                        "GetBucketReplication",
                        e,
                    );
                }
                continue;
            }
        };
        sheet.add(
            CheckId::ReplicationCoverage,
            primary,
            "Rule",
            replication_coverage(&rules, &b.destinations()),
        );
        sheet.add(
            CheckId::ReplicationDeleteMarkers,
            primary,
            "DeleteMarkerReplication",
            replication_delete_markers(&rules),
        );
        if spec.replication.sse_kms {
            sheet.add(
                CheckId::ReplicationSseKms,
                primary,
                "SourceSelectionCriteria.SseKmsEncryptedObjects",
                replication_sse_kms(&rules, &topology.replica_key_arn),
            );
        }
    }
}

async fn queues(sheet: &mut Sheet, clients: &Clients, topology: &Topology, spec: &TopologySpec) {
    let q = &topology.queues;
    let dlq_of = |role: &str| match role {
        "validation" => Some(&q.validation_dlq),
        "failure" => Some(&q.failure_dlq),
        _ => None,
    };
    for (role, queue) in q.all() {
        let attrs = match clients
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QA::All)
            .send()
            .await
        {
            Ok(out) => out.attributes().cloned().unwrap_or_default(),
            Err(e) => {
                sheet.failed_call(
                    CheckId::QueueEncryption,
                    &queue.name,
                    "KmsMasterKeyId",
                    "GetQueueAttributes",
                    sdk(e),
                );
                continue;
            }
        };
        // The alerts queue stands in for the seed's e-mail subscription (module docs).
        if role != "alerts" {
            sheet.add(
                CheckId::QueueEncryption,
                &queue.name,
                "KmsMasterKeyId",
                kms_key(
                    attrs.get(&QA::KmsMasterKeyId).map(String::as_str),
                    &topology.sqs_key_arn,
                    &topology.names.sqs_key_alias,
                ),
            );
        }
        if let Some(dlq) = dlq_of(role) {
            sheet.add(
                CheckId::QueueDlq,
                &queue.name,
                "RedrivePolicy",
                redrive(
                    attrs.get(&QA::RedrivePolicy).map(String::as_str),
                    &dlq.arn,
                    spec.queues.max_receive_count,
                ),
            );
        }
        if let Some(policy) = attrs.get(&QA::Policy).filter(|p| !p.is_empty()) {
            let v = match decode_policy(policy) {
                Ok(doc) => none_of(wildcard_principals(&doc), "`*` principal"),
                Err(e) => Verdict::fail(e),
            };
            sheet.add(CheckId::QueuePolicy, &queue.name, "Principal", v);
        }
    }
}

async fn topic_and_rule(sheet: &mut Sheet, clients: &Clients, topology: &Topology) {
    let topic = &topology.topic_arn;
    match clients
        .sns
        .get_topic_attributes()
        .topic_arn(topic)
        .send()
        .await
    {
        Ok(out) => sheet.add(
            CheckId::TopicEncryption,
            topic,
            "KmsMasterKeyId",
            kms_key(
                out.attributes()
                    .and_then(|a| a.get("KmsMasterKeyId"))
                    .map(String::as_str),
                &topology.sns_key_arn,
                &topology.names.sns_key_alias,
            ),
        ),
        Err(e) => sheet.failed_call(
            CheckId::TopicEncryption,
            topic,
            "KmsMasterKeyId",
            "GetTopicAttributes",
            sdk(e),
        ),
    }
    let rule = &topology.names.rule;
    match clients
        .events
        .list_targets_by_rule()
        .rule(rule)
        .send()
        .await
    {
        Ok(out) => {
            let to_queue = out
                .targets()
                .iter()
                .find(|t| t.arn() == topology.queues.validation.arn);
            let v = match to_queue {
                None => Verdict::fail(format!(
                    "no target {} (required: the validation queue)",
                    topology.queues.validation.arn
                )),
                Some(t) => match t.dead_letter_config().and_then(|d| d.arn()) {
                    Some(a) if a == topology.queues.events_dlq.arn => Verdict::pass(a),
                    Some(a) => Verdict::fail(format!(
                        "{a} (required: {})",
                        topology.queues.events_dlq.arn
                    )),
                    None => Verdict::fail(format!(
                        "not set (required: {})",
                        topology.queues.events_dlq.arn
                    )),
                },
            };
            sheet.add(CheckId::RuleTargetDlq, rule, "DeadLetterConfig.Arn", v);
        }
        Err(e) => sheet.failed_call(
            CheckId::RuleTargetDlq,
            rule,
            "DeadLetterConfig.Arn",
            "ListTargetsByRule",
            sdk(e),
        ),
    }
}

async fn roles(sheet: &mut Sheet, clients: &Clients, topology: &Topology, spec: &TopologySpec) {
    let names = &topology.names;
    let mut roles = vec![
        (names.validator_role.clone(), &spec.iam.validator),
        (names.notifier_role.clone(), &spec.iam.notifier),
    ];
    for b in topology.buckets() {
        roles.push((
            crate::topology::Names::crr_role(&b.primary),
            &spec.iam.replication,
        ));
    }
    for (role, expected) in roles {
        match clients.iam.get_role().role_name(&role).send().await {
            Ok(out) => {
                let doc = out
                    .role()
                    .and_then(|r| r.assume_role_policy_document())
                    .unwrap_or_default();
                let v = match decode_policy(doc) {
                    Ok(doc) => none_of(wildcard_principals(&doc), "`*` principal"),
                    Err(e) => Verdict::fail(e),
                };
                sheet.add(CheckId::RoleTrust, &role, "Principal", v);
            }
            Err(e) => {
                sheet.failed_call(CheckId::RoleTrust, &role, "Principal", "GetRole", sdk(e));
            }
        }
        let listed = match clients
            .iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await
        {
            Ok(out) => out.policy_names().to_vec(),
            Err(e) => {
                let e = sdk(e);
                sheet.failed_call(
                    CheckId::RoleActions,
                    &role,
                    "Action",
                    "ListRolePolicies",
                    e.clone(),
                );
                sheet.failed_call(
                    CheckId::RoleResources,
                    &role,
                    "Resource",
                    "ListRolePolicies",
                    e,
                );
                continue;
            }
        };
        let mut actions = BTreeSet::new();
        let mut wildcards = Vec::new();
        let mut problems = Vec::new();
        for policy in &listed {
            match clients
                .iam
                .get_role_policy()
                .role_name(&role)
                .policy_name(policy)
                .send()
                .await
            {
                Ok(out) => match decode_policy(out.policy_document()) {
                    Ok(doc) => {
                        actions.extend(allowed_actions(&doc));
                        wildcards.extend(
                            wildcard_resources(&doc)
                                .into_iter()
                                .map(|r| format!("{r} (in {policy})")),
                        );
                    }
                    Err(e) => problems.push(format!("{policy}: {e}")),
                },
                Err(e) => problems.push(format!("GetRolePolicy {policy} failed: {}", sdk(e))),
            }
        }
        if !problems.is_empty() {
            let detail = problems.join("; ");
            sheet.add(
                CheckId::RoleActions,
                &role,
                "Action",
                Verdict::fail(detail.clone()),
            );
            sheet.add(
                CheckId::RoleResources,
                &role,
                "Resource",
                Verdict::fail(detail),
            );
            continue;
        }
        sheet.add(
            CheckId::RoleActions,
            &role,
            "Action",
            compare_actions(&actions, expected),
        );
        sheet.add(
            CheckId::RoleResources,
            &role,
            "Resource",
            none_of(wildcards, "wildcard resource"),
        );
    }
}

async fn keys(sheet: &mut Sheet, clients: &Clients, topology: &Topology) {
    let keys = [
        (&topology.sqs_key_arn, &clients.kms),
        (&topology.sns_key_arn, &clients.kms),
        (&topology.s3_key_arn, &clients.kms),
        (&topology.replica_key_arn, &clients.kms_replica),
    ];
    for (arn, kms) in keys {
        match kms
            .get_key_policy()
            .key_id(arn.as_str())
            .policy_name("default")
            .send()
            .await
        {
            Ok(out) => {
                let v = match decode_policy(out.policy().unwrap_or_default()) {
                    Ok(doc) => none_of(wildcard_principals(&doc), "`*` principal"),
                    Err(e) => Verdict::fail(e),
                };
                sheet.add(CheckId::KeyPolicy, arn, "Principal", v);
            }
            Err(e) => {
                sheet.failed_call(CheckId::KeyPolicy, arn, "Principal", "GetKeyPolicy", sdk(e))
            }
        }
    }
}

/// Provisions a topology of its own on `engine` (a fresh suffix, the `seed` profile), reads
/// its posture through what clients see (the fidelity layer where the harness replicates),
/// and tears it down. Provisioning failing is an error (the engine cannot host the
/// topology); a setting that cannot be read is a failed check.
pub async fn run(engine: &Engine, spec: &TopologySpec) -> Result<Vec<Check>, ProvisionError> {
    let clients = Clients::new(engine, &spec.primary_region, &spec.replica_region).await;
    let caps = engine.capabilities();
    let timing = spec
        .profile("seed")
        .cloned()
        .ok_or_else(|| ProvisionError::new("posture", "the topology has no `seed` profile"))?;
    let suffix = new_suffix();
    let (topology, _report, mode) =
        provision_for_engine(&clients, spec, &suffix, timing, &caps).await?;
    let checks = if mode.is_emulated() {
        match GapProxy::start(&clients.endpoint).await {
            Ok(proxy) => {
                let replicator = Arc::new(Replicator::new(
                    clients.clone(),
                    topology.replication.clone(),
                    ReplicationTiming {
                        lag: Duration::ZERO,
                        fallback: Duration::ZERO,
                    },
                ));
                proxy.set_replicator(replicator).await;
                let view = Clients::for_endpoint(
                    &proxy.endpoint,
                    clients.kind,
                    &spec.primary_region,
                    &spec.replica_region,
                )
                .await;
                read(&view, &topology, spec, engine.kind).await
            }
            Err(e) => {
                crate::topology::teardown::teardown(&clients, spec, &suffix).await;
                return Err(ProvisionError::new("posture: fidelity layer", e));
            }
        }
    } else {
        read(&clients, &topology, spec, engine.kind).await
    };
    let removed = crate::topology::teardown::teardown(&clients, spec, &suffix).await;
    for p in &removed.problems {
        tracing::warn!(problem = %p, "posture teardown");
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[rstest]
    #[case::on(Some(true), true, "true")]
    #[case::off(Some(false), false, "false (required: true)")]
    #[case::absent(None, false, "not set (required: true)")]
    fn a_public_access_flag_must_be_true(
        #[case] found: Option<bool>,
        #[case] passed: bool,
        #[case] detail: &str,
    ) {
        assert_eq!(
            public_access_flag(found),
            Verdict {
                passed,
                detail: detail.into()
            }
        );
    }

    #[rstest]
    #[case::enabled(Some("Enabled"), true)]
    #[case::suspended(Some("Suspended"), false)]
    #[case::never(None, false)]
    fn versioning_must_be_enabled(#[case] status: Option<&str>, #[case] passed: bool) {
        assert_eq!(versioning(status).passed, passed);
    }

    #[rstest]
    #[case::sse_s3(&["AES256"], true)]
    #[case::sse_kms(&["aws:kms"], true)]
    #[case::none(&[], false)]
    #[case::unknown(&["ROT13"], false)]
    fn default_encryption_needs_a_known_algorithm(#[case] found: &[&str], #[case] passed: bool) {
        let found: Vec<String> = found.iter().map(|s| s.to_string()).collect();
        assert_eq!(default_encryption(&found).passed, passed);
    }

    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd";
    const ALIAS: &str = "alias/autobackup-sqs-key-dev-x";

    #[rstest]
    #[case::arn(Some(KEY), true)]
    #[case::key_id(Some("1234abcd"), true)]
    #[case::alias(Some(ALIAS), true)]
    #[case::alias_arn(
        Some("arn:aws:kms:us-east-1:123456789012:alias/autobackup-sqs-key-dev-x"),
        true
    )]
    #[case::aws_managed(Some("alias/aws/sqs"), false)]
    #[case::other_key(Some("arn:aws:kms:us-east-1:123456789012:key/ffff"), false)]
    #[case::unset(None, false)]
    #[case::empty(Some(""), false)]
    fn a_cmk_setting_names_the_topologys_key(#[case] found: Option<&str>, #[case] passed: bool) {
        let v = kms_key(found, KEY, ALIAS);
        assert_eq!(v.passed, passed, "{v:?}");
        if !passed {
            assert!(v.detail.contains(KEY), "{v:?}");
        }
    }

    const DLQ: &str = "arn:aws:sqs:us-east-1:123456789012:dlq";

    #[rstest]
    #[case::wired(Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":5}"#), true)]
    #[case::count_as_string(Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":"5"}"#), true)]
    #[case::wrong_count(Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":3}"#), false)]
    #[case::wrong_dlq(Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:other","maxReceiveCount":5}"#), false)]
    #[case::none(None, false)]
    #[case::garbage(Some("nope"), false)]
    fn a_redrive_policy_points_at_its_dlq(#[case] found: Option<&str>, #[case] passed: bool) {
        assert_eq!(redrive(found, DLQ, 5).passed, passed);
    }

    #[test]
    fn policies_decode_from_url_encoding_and_plain_json() {
        let plain = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject"}]}"#;
        let encoded: String =
            percent_encoding::utf8_percent_encode(plain, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(
            decode_policy(plain).unwrap(),
            decode_policy(&encoded).unwrap()
        );
        assert!(decode_policy("%7Bnot json").is_err());
    }

    #[rstest]
    #[case::equal(&["s3:GetObject", "sqs:SendMessage"], &["sqs:SendMessage", "s3:GetObject"], true, "2 actions, as expected")]
    #[case::extra(&["s3:GetObject", "s3:*"], &["s3:GetObject"], false, "not expected: s3:*")]
    #[case::missing(&["s3:GetObject"], &["s3:GetObject", "sns:Publish"], false, "missing: sns:Publish")]
    #[case::both(&["kms:*"], &["kms:Decrypt"], false, "not expected: kms:*; missing: kms:Decrypt")]
    fn actions_must_equal_the_expected_set(
        #[case] found: &[&str],
        #[case] expected: &[&str],
        #[case] passed: bool,
        #[case] detail: &str,
    ) {
        assert_eq!(
            compare_actions(&set(found), &set(expected)),
            Verdict {
                passed,
                detail: detail.into()
            }
        );
    }

    #[test]
    fn allowed_actions_read_every_allow_statement() {
        let doc = json!({"Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "arn:aws:s3:::b"},
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:us-east-1:1:t"},
            {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
        ]});
        assert_eq!(
            allowed_actions(&doc),
            set(&[
                "NotAction:iam:*",
                "s3:GetObject",
                "s3:ListBucket",
                "sns:Publish"
            ])
        );
    }

    #[rstest]
    #[case::star("*", true)]
    #[case::any_account("arn:aws:sqs:us-east-1:*:queue", true)]
    #[case::any_region("arn:aws:sqs:*:123456789012:queue", true)]
    #[case::every_resource_of_a_service("arn:aws:sns:us-east-1:123456789012:*", true)]
    #[case::named_bucket("arn:aws:s3:::bucket", false)]
    #[case::objects_of_a_bucket("arn:aws:s3:::bucket/*", false)]
    #[case::log_streams_of_a_group(
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:*",
        false
    )]
    fn wildcard_resources_are_found(#[case] resource: &str, #[case] wildcard: bool) {
        let doc =
            json!({"Statement": [{"Effect": "Allow", "Action": "x:Y", "Resource": [resource]}]});
        assert_eq!(!wildcard_resources(&doc).is_empty(), wildcard);
    }

    #[rstest]
    #[case::anyone(json!("*"), true)]
    #[case::any_aws(json!({"AWS": "*"}), true)]
    #[case::any_aws_in_a_list(json!({"AWS": ["arn:aws:iam::1:root", "*"]}), true)]
    #[case::a_service(json!({"Service": "s3.amazonaws.com"}), false)]
    #[case::the_account(json!({"AWS": "arn:aws:iam::123456789012:root"}), false)]
    fn wildcard_principals_are_found(#[case] principal: Value, #[case] wildcard: bool) {
        let doc = json!({"Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sqs:SendMessage"}]});
        assert_eq!(!wildcard_principals(&doc).is_empty(), wildcard);
    }

    #[test]
    fn a_deny_with_a_star_principal_is_not_an_opening() {
        let doc = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "*"}]});
        assert!(wildcard_principals(&doc).is_empty());
    }

    fn rule(id: &str, destination: &str) -> RuleView {
        RuleView {
            id: id.into(),
            enabled: true,
            prefix: Some(String::new()),
            tagged: false,
            destination: format!("arn:aws:s3:::{destination}"),
            delete_markers: true,
            sse_kms: true,
            replica_kms_key: Some(KEY.into()),
        }
    }

    #[rstest]
    #[case::covered(vec![rule("r", "replica")], true)]
    #[case::no_filter(vec![RuleView { prefix: None, ..rule("r", "replica") }], true)]
    #[case::prefix_only(vec![RuleView { prefix: Some("reports/".into()), ..rule("r", "replica") }], false)]
    #[case::tagged(vec![RuleView { tagged: true, ..rule("r", "replica") }], false)]
    #[case::disabled(vec![RuleView { enabled: false, ..rule("r", "replica") }], false)]
    #[case::elsewhere(vec![rule("r", "other")], false)]
    #[case::none(vec![], false)]
    fn replication_covers_every_key_to_every_destination(
        #[case] rules: Vec<RuleView>,
        #[case] passed: bool,
    ) {
        let v = replication_coverage(&rules, &["replica".to_string()]);
        assert_eq!(v.passed, passed, "{v:?}");
    }

    #[rstest]
    #[case::on(vec![rule("a", "r"), rule("b", "r2")], true)]
    #[case::one_off(vec![rule("a", "r"), RuleView { delete_markers: false, ..rule("b", "r2") }], false)]
    #[case::none(vec![], false)]
    fn delete_markers_replicate_on_every_rule(#[case] rules: Vec<RuleView>, #[case] passed: bool) {
        assert_eq!(replication_delete_markers(&rules).passed, passed);
    }

    #[rstest]
    #[case::opted_in(rule("a", "r"), true)]
    #[case::not_opted_in(RuleView { sse_kms: false, ..rule("a", "r") }, false)]
    #[case::no_replica_key(RuleView { replica_kms_key: None, ..rule("a", "r") }, false)]
    #[case::another_key(RuleView { replica_kms_key: Some("arn:aws:kms:us-west-2:1:key/x".into()), ..rule("a", "r") }, false)]
    fn sse_kms_objects_replicate_with_the_replica_key(#[case] r: RuleView, #[case] passed: bool) {
        assert_eq!(replication_sse_kms(&[r], KEY).passed, passed);
    }

    /// The replication configuration the fidelity layer serves parses back into rules that
    /// pass every replication check: the layer's XML and this module agree.
    #[test]
    fn the_layers_replication_answer_passes_the_checks() {
        let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
        let names = crate::topology::Names::new(&spec, "p0stur");
        let b = &names.buckets[0];
        let config = crate::topology::provision::replication_config(
            &spec,
            b,
            "arn:aws:iam::1:role/crr".into(),
            KEY,
        );
        let sdk = config.to_sdk().expect("sdk config");
        let rules: Vec<RuleView> = sdk.rules().iter().map(RuleView::from_sdk).collect();
        assert!(replication_coverage(&rules, &b.destinations()).passed);
        assert!(replication_delete_markers(&rules).passed);
        assert!(replication_sse_kms(&rules, KEY).passed);
    }

    /// The documents provisioning puts on the roles allow exactly the topology's `[iam]`
    /// sets and name every resource: the live check can pass, and a policy that grows an
    /// action fails here before any engine runs.
    #[test]
    fn the_provisioned_role_policies_match_the_declared_action_sets() {
        use crate::topology::policy;
        let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
        let names = crate::topology::Names::new(&spec, "p0stur");
        let inputs = policy::sample_inputs(&names);
        let mut docs = vec![
            ("validator", policy::validator(&inputs), &spec.iam.validator),
            ("notifier", policy::notifier(&inputs), &spec.iam.notifier),
        ];
        for b in &names.buckets {
            docs.push((
                "replication",
                policy::replication(&inputs, b),
                &spec.iam.replication,
            ));
        }
        for (role, doc, expected) in docs {
            let v = compare_actions(&allowed_actions(&doc), expected);
            assert!(v.passed, "{role}: {}", v.detail);
            assert!(wildcard_resources(&doc).is_empty(), "{role}");
        }
        let trust = policy::trust("lambda.amazonaws.com", "123456789012", &[]);
        assert!(wildcard_principals(&trust).is_empty());
    }
}

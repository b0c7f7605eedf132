//! Posture checks of a provisioned topology (`harness gate`): what the seed deployment
//! promised about its configuration, read back from the live resources with the SDK, one
//! [`Check`](crate::report::case::Check) per setting of one resource.
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
//! | `mapping-batch-item-failures` | each event source mapping of a deployed function (on each queue it consumes), `FunctionResponseTypes` | `ReportBatchItemFailures`: without it Lambda ignores the partial batch response and retries the whole batch, successes included (Lambda Developer Guide, "Handling errors for an SQS event source") | [ListEventSourceMappings](https://docs.aws.amazon.com/lambda/latest/api/API_ListEventSourceMappings.html); only where the functions exist in the engine (a stack with `ArtifactBucket`, `--functions deployed`) |
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
//! tables; [`read::read`] makes the SDK calls and [`read::run`] provisions a topology for them.
//!
//! Floor 7: may import floors 0-6 (up to scenario play).

pub mod read;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde_json::Value;

/// Which posture check a [`Check`](crate::report::case::Check) is (its `id`).
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
    MappingBatchItemFailures,
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
            CheckId::MappingBatchItemFailures => "mapping-batch-item-failures",
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

/// A mapping's `FunctionResponseTypes`: it must hold `ReportBatchItemFailures`; `None` when
/// the queue has no mapping to the function at all.
pub fn batch_item_failures(found: Option<&[String]>) -> Verdict {
    match found {
        Some(types) if types.iter().any(|t| t == "ReportBatchItemFailures") => {
            Verdict::pass("ReportBatchItemFailures")
        }
        Some(types) => Verdict::fail(format!(
            "[{}] (required: ReportBatchItemFailures; without it a partial batch failure retries the whole batch)",
            types.join(", ")
        )),
        None => Verdict::fail("no mapping from this queue to the function"),
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

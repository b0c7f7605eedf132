//! The topology as CloudFormation: the two templates a team deploys to AWS
//! (`deploy/cloudformation/`), generated from the same [`TopologySpec`] and the same policy
//! documents ([`super::policy`]) that direct provisioning uses, so the template the gate
//! plays against and the one that is deployed are one artifact. `harness template` writes
//! them; a test fails when the committed files differ from what the topology file gives.
//!
//! CloudFormation is regional (AWS CloudFormation User Guide, "Working with stacks"), so
//! the topology is two stacks:
//! - **replica** (deployed first, in the replica region): the replica buckets and the
//!   replica CMK. S3 replication needs the destination buckets to exist, versioned, before
//!   a replication configuration names them (S3 User Guide, "Requirements and
//!   considerations for replication").
//! - **primary** (in the primary region): everything else, taking the replica CMK's ARN as
//!   the `ReplicaKeyArn` parameter.
//!
//! Names are the harness's ([`Names`]) with `${Environment}` and `${Suffix}` in place of
//! the environment and the run suffix; every string holding a `${...}` becomes an
//! `Fn::Sub`. Role inline policies are `AWS::IAM::Policy` resources of their own, so a
//! key policy can name a role and the role's policy the key without a dependency cycle.
//!
//! Differences from direct provisioning, each deliberate:
//! - the replica CMK's policy has no statement for the replication roles: they live in the
//!   primary stack, created after it, and a key policy naming a role that does not exist
//!   is refused (KMS Developer Guide, "Key policies": principals must exist). The account
//!   root statement delegates to IAM, so the roles' own policies grant their use;
//! - the alert address is an e-mail subscription (`AlertEmail`); the harness subscribes a
//!   queue of its own to observe alerts instead;
//! - the functions, their mappings and log groups exist only when `ArtifactBucket` is set
//!   (where the harness runs the functions itself, it leaves it empty);
//! - every bucket denies requests without TLS (`aws:SecureTransport`), and each DLQ has an
//!   alarm on its depth that notifies the failure topic.
//!
//! Floor 2: may import floors 0-1 (ground, engine).

use serde_json::{json, Map, Value};

mod skips;

use super::policy::{self, PolicyInputs};
use super::{CategoryBuckets, KeyPurpose, Names, Timing, TopologySpec};
use skips::*;

/// Which of the two stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackPart {
    /// The replica region's: replica buckets and the replica CMK.
    Replica,
    /// The primary region's: everything else.
    Primary,
}

impl StackPart {
    pub const ALL: [StackPart; 2] = [StackPart::Replica, StackPart::Primary];

    /// The committed file's name under `deploy/cloudformation/`.
    pub fn file_name(self) -> &'static str {
        match self {
            StackPart::Replica => "autobackup-replica.yaml",
            StackPart::Primary => "autobackup-primary.yaml",
        }
    }

    /// `replica` or `primary`.
    pub fn name(self) -> &'static str {
        match self {
            StackPart::Replica => "replica",
            StackPart::Primary => "primary",
        }
    }

    /// The stack's name for a run (`<project>-<part>-<environment>-<suffix>`).
    pub fn stack_name(self, spec: &TopologySpec, suffix: &str) -> String {
        format!(
            "{}-{}-{}-{suffix}",
            spec.project,
            self.name(),
            spec.environment
        )
    }
}

/// The seed names no log retention; 30 days keeps a month of decisions.
pub const LOG_RETENTION_DAYS: u32 = 30;

/// The committed templates' directory.
pub fn default_dir() -> std::path::PathBuf {
    crate::paths::repo_root()
        .join("deploy")
        .join("cloudformation")
}

/// `documents` -> `Documents` (logical ids are alphanumeric).
fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The logical id of a bucket of `b`: `DocumentsPrimaryBucket`, `DocumentsReplicaBucket`,
/// `DocumentsReplica2Bucket`.
pub fn bucket_id(b: &CategoryBuckets, destination: Option<usize>) -> String {
    match destination {
        None => format!("{}PrimaryBucket", camel(&b.category)),
        Some(0) => format!("{}ReplicaBucket", camel(&b.category)),
        Some(n) => format!("{}Replica{}Bucket", camel(&b.category), n + 1),
    }
}

/// The logical id of the queue of `role` (`validation-dlq` -> `ValidationDlq`).
pub fn queue_id(role: &str) -> String {
    let id = camel(role);
    if id.ends_with("Dlq") {
        id
    } else {
        format!("{id}Queue")
    }
}

/// The names with CloudFormation placeholders for the environment and the suffix.
pub fn placeholder_names(spec: &TopologySpec) -> Names {
    let mut s = spec.clone();
    s.environment = "${Environment}".into();
    Names::new(&s, "${Suffix}")
}

/// Turns every string holding `${` into `{"Fn::Sub": ...}` (object keys stay as they are).
fn substitute(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains("${") => json!({ "Fn::Sub": s }),
        Value::Array(a) => Value::Array(a.into_iter().map(substitute).collect()),
        Value::Object(o) => {
            // An intrinsic already written out is left alone.
            if o.keys().any(|k| k.starts_with("Fn::") || k == "Ref") {
                return Value::Object(o);
            }
            Value::Object(o.into_iter().map(|(k, v)| (k, substitute(v))).collect())
        }
        other => other,
    }
}

/// A bucket's own tags. Everything else carries the stack's tags, which CloudFormation
/// propagates to every resource that takes tags (CloudFormation User Guide, "Resource
/// tag"): the harness tags its stacks with its ownership tags, a team with its own.
fn tags(spec: &TopologySpec, category: &str) -> Value {
    json!([
        {"Key": "Project", "Value": spec.project},
        {"Key": "Environment", "Value": {"Ref": "Environment"}},
        {"Key": "Category", "Value": category},
    ])
}

fn skip(mut resource: Value, skips: &[(&str, &str)]) -> Value {
    resource["Metadata"] = json!({"checkov": {"skip": skips
        .iter()
        .map(|(id, comment)| json!({"id": id, "comment": comment}))
        .collect::<Vec<_>>()}});
    resource
}

fn common_parameters(spec: &TopologySpec) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert(
        "Environment".into(),
        json!({"Type": "String", "Default": spec.environment, "AllowedPattern": "^[a-z0-9]{1,8}$",
               "Description": "Environment name in every resource name (dev, staging, prod)"}),
    );
    p.insert(
        "Suffix".into(),
        json!({"Type": "String", "AllowedPattern": "^[a-z0-9]{1,12}$",
               "Description": "Last part of every resource name; the same in both stacks"}),
    );
    p
}

/// What a bucket of the topology gets: versioning, default encryption, public access
/// block, the lifecycle rule, tags; `category` labels the lifecycle rule.
fn bucket(spec: &TopologySpec, name: &str, category: &str) -> Value {
    let pab = &spec.buckets.public_access_block;
    let b = &spec.buckets;
    json!({
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketName": name,
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": b.encryption}}
            ]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": pab.block_public_acls,
                "IgnorePublicAcls": pab.ignore_public_acls,
                "BlockPublicPolicy": pab.block_public_policy,
                "RestrictPublicBuckets": pab.restrict_public_buckets,
            },
            "LifecycleConfiguration": {"Rules": [{
                "Id": format!("{category}-lifecycle-rule"),
                "Status": "Enabled",
                "Prefix": "",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": b.abort_incomplete_multipart_days},
                "NoncurrentVersionTransitions": [{"StorageClass": "GLACIER_IR", "TransitionInDays": b.noncurrent_to_glacier_ir_days}],
                "NoncurrentVersionExpiration": {"NoncurrentDays": b.noncurrent_expire_days},
            }]},
            "Tags": tags(spec, category),
        }
    })
}

/// A bucket policy denying every request made without TLS (S3 User Guide, "Enforce
/// encryption in transit": `aws:SecureTransport`).
fn tls_only(bucket_id: &str, name: &str) -> Value {
    json!({
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": bucket_id},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{name}"), format!("arn:aws:s3:::{name}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }]}
        }
    })
}

fn key(description: &str, policy: Value) -> Value {
    json!({
        "Type": "AWS::KMS::Key",
        "Properties": {
            "Description": description,
            "EnableKeyRotation": true,
            "PendingWindowInDays": 7,
            "KeyPolicy": policy,
        }
    })
}

fn alias(name: &str, key_id: &str) -> Value {
    json!({"Type": "AWS::KMS::Alias", "Properties": {"AliasName": name, "TargetKeyId": {"Ref": key_id}}})
}

/// The timing of a profile as the primary template's parameters (name, value): the
/// committed template's defaults are the `seed` profile's; the gate passes a scenario's
/// profile through these, so every profile plays the one template.
pub fn timing_parameters(t: &Timing) -> Vec<(&'static str, String)> {
    let secs = |s: f64| {
        if s.fract() == 0.0 {
            format!("{}", s as i64)
        } else {
            format!("{s}")
        }
    };
    vec![
        (
            "ValidationVisibilityTimeout",
            t.validation_visibility_seconds.to_string(),
        ),
        (
            "FailureVisibilityTimeout",
            t.failure_visibility_seconds.to_string(),
        ),
        (
            "FunctionTimeout",
            (t.function_timeout_seconds.ceil().max(1.0) as u32).to_string(),
        ),
        (
            "BatchingWindow",
            (t.batching_window_seconds.round() as u32).to_string(),
        ),
        ("LagBudgetSeconds", secs(t.lag_budget_seconds)),
        ("RetryBaseSeconds", secs(t.retry_base_seconds)),
        ("RetryMaxSeconds", secs(t.retry_max_seconds)),
    ]
}

fn timing_parameter_specs(seed: &Timing) -> Map<String, Value> {
    let about = |name: &str| match name {
        "ValidationVisibilityTimeout" => (
            "Number",
            "The validation queue's visibility timeout (s): at least FunctionTimeout",
        ),
        "FailureVisibilityTimeout" => (
            "Number",
            "The failure queue's and the DLQs' visibility timeout (s): at least FunctionTimeout",
        ),
        "FunctionTimeout" => ("Number", "Both functions' timeout (s)"),
        "BatchingWindow" => ("Number", "The mappings' MaximumBatchingWindowInSeconds"),
        "LagBudgetSeconds" => (
            "String",
            "How long the validator waits for a replica before it alerts (s)",
        ),
        "RetryBaseSeconds" => ("String", "The validator's first retry delay (s)"),
        _ => ("String", "The validator's longest retry delay (s)"),
    };
    timing_parameters(seed)
        .into_iter()
        .map(|(name, default)| {
            let (ty, description) = about(name);
            (
                name.to_string(),
                json!({"Type": ty, "Default": default, "Description": description}),
            )
        })
        .collect()
}

/// The replica-region template.
pub fn replica(spec: &TopologySpec) -> Value {
    let n = placeholder_names(spec);
    let mut r = Map::new();
    let key_name = n
        .keys()
        .into_iter()
        .find(|k| k.purpose == KeyPurpose::Replica)
        .expect("the replica key");
    r.insert(
        "ReplicaKey".into(),
        key(
            key_name.description,
            policy::key_policy(
                "${AWS::AccountId}",
                "${AWS::Region}",
                KeyPurpose::Replica,
                &[],
            ),
        ),
    );
    r.insert(
        "ReplicaKeyAlias".into(),
        alias(key_name.alias, "ReplicaKey"),
    );
    let mut outputs = Map::new();
    outputs.insert(
        "ReplicaKeyArn".into(),
        json!({"Value": {"Fn::GetAtt": ["ReplicaKey", "Arn"]},
               "Description": "The primary stack's ReplicaKeyArn parameter"}),
    );
    for b in &n.buckets {
        for (i, d) in b.destinations().iter().enumerate() {
            let id = bucket_id(b, Some(i));
            r.insert(
                id.clone(),
                skip(
                    bucket(spec, d, &b.category),
                    &[ACCESS_LOGGING, KMS_DEFAULT_ENCRYPTION, REPLICA_EVENTS],
                ),
            );
            r.insert(format!("{id}Policy"), tls_only(&id, d));
            outputs.insert(id.clone(), json!({"Value": {"Ref": id}}));
        }
    }
    let params = common_parameters(spec);
    substitute(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("{}: replica region (generated by `harness template` from fixtures/topology.toml; do not edit)", spec.project),
        "Parameters": params,
        "Resources": r,
        "Outputs": outputs,
    }))
}

fn queue(spec: &TopologySpec, name: &str, visibility: Value, redrive_to: Option<&str>) -> Value {
    let q = &spec.queues;
    let mut p = json!({
        "QueueName": name,
        "KmsMasterKeyId": {"Ref": "SqsKey"},
        "KmsDataKeyReusePeriodSeconds": q.kms_data_key_reuse_seconds,
        "VisibilityTimeout": visibility,
    });
    match redrive_to {
        Some(dlq) => {
            p["DelaySeconds"] = json!(0);
            p["MaximumMessageSize"] = json!(q.max_message_size);
            p["MessageRetentionPeriod"] = json!(q.retention_seconds);
            p["RedrivePolicy"] = json!({
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                "maxReceiveCount": q.max_receive_count,
            });
        }
        None => p["MessageRetentionPeriod"] = json!(q.dlq_retention_seconds),
    }
    json!({"Type": "AWS::SQS::Queue", "Properties": p})
}

fn role(name: &str, trust: Value) -> Value {
    json!({"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": name, "AssumeRolePolicyDocument": trust
    }})
}

fn role_policy(role_id: &str, policy_name: &str, doc: Value) -> Value {
    // `AWS::IAM::Policy` with `Roles` is the role's inline policy (PutRolePolicy), as
    // `AWS::IAM::RolePolicy` is; engines know the older type better.
    json!({"Type": "AWS::IAM::Policy", "Properties": {
        "Roles": [{"Ref": role_id}], "PolicyName": policy_name, "PolicyDocument": doc
    }})
}

/// The validator's environment in the template: what the topology decides (the rest keep
/// the function's documented defaults). A test checks each against the harness's own
/// `validator_env`.
pub fn validator_env(spec: &TopologySpec, n: &Names) -> Value {
    let map: Vec<String> = n
        .buckets
        .iter()
        .map(|b| format!("{}={}", b.primary, b.replica))
        .collect();
    json!({
        "FAILURE_QUEUE_URL": {"Ref": "FailureQueue"},
        "REPLICA_AWS_REGION": {"Ref": "ReplicaRegion"},
        "REPLICA_BUCKET_MAP": map.join(","),
        "LAG_BUDGET_SECONDS": {"Ref": "LagBudgetSeconds"},
        "RETRY_BASE_SECONDS": {"Ref": "RetryBaseSeconds"},
        "RETRY_MAX_SECONDS": {"Ref": "RetryMaxSeconds"},
        "MAX_RECEIVE_COUNT": spec.queues.max_receive_count.to_string(),
    })
}

/// The notifier's environment in the template.
pub fn notifier_env(spec: &TopologySpec, n: &Names) -> Value {
    json!({
        "SNS_TOPIC_ARN": {"Ref": "FailureTopic"},
        "PROJECT_NAME": spec.project,
        "ALERT_LEDGER_BUCKET": n.alert_ledger,
    })
}

/// The primary-region template.
///
/// `seed` gives the timing parameters' defaults (the `seed` profile).
pub fn primary(spec: &TopologySpec, seed: &Timing) -> Value {
    let n = placeholder_names(spec);
    let inputs = PolicyInputs {
        names: &n,
        account: "${AWS::AccountId}",
        region: "${AWS::Region}",
        replica_region: "${ReplicaRegion}",
        sqs_key: "${SqsKey.Arn}",
        sns_key: "${SnsKey.Arn}",
        s3_key: "${S3Key.Arn}",
        replica_key: "${ReplicaKeyArn}",
    };
    let mut r = Map::new();
    let mut outputs = Map::new();
    let mut out = |id: &str, v: Value| {
        outputs.insert(id.to_string(), json!({ "Value": v }));
    };

    // Roles first (trust only); their policies are resources of their own.
    let account = "${AWS::AccountId}";
    let validator_role = "${ValidatorRole.Arn}".to_string();
    let notifier_role = "${NotifierRole.Arn}".to_string();
    r.insert(
        "ValidatorRole".into(),
        role(
            &n.validator_role,
            policy::trust("lambda.amazonaws.com", account, &[]),
        ),
    );
    r.insert(
        "ValidatorPolicy".into(),
        role_policy(
            "ValidatorRole",
            "checksum-validator",
            policy::validator(&inputs),
        ),
    );
    r.insert(
        "NotifierRole".into(),
        role(
            &n.notifier_role,
            policy::trust("lambda.amazonaws.com", account, &[]),
        ),
    );
    r.insert(
        "NotifierPolicy".into(),
        role_policy(
            "NotifierRole",
            "failure-notifier",
            policy::notifier(&inputs),
        ),
    );
    let mut replication_roles = Vec::new();
    for b in &n.buckets {
        let id = format!("{}ReplicationRole", camel(&b.category));
        r.insert(
            id.clone(),
            role(
                &format!("s3-crr-role-{}", b.primary),
                policy::trust(
                    "s3.amazonaws.com",
                    account,
                    &[format!("arn:aws:s3:::{}", b.primary)],
                ),
            ),
        );
        r.insert(
            format!("{}ReplicationPolicy", camel(&b.category)),
            role_policy(&id, "replication", policy::replication(&inputs, b)),
        );
        replication_roles.push(format!("${{{id}.Arn}}"));
    }
    out(
        "ValidatorRoleArn",
        json!({"Fn::GetAtt": ["ValidatorRole", "Arn"]}),
    );
    out(
        "NotifierRoleArn",
        json!({"Fn::GetAtt": ["NotifierRole", "Arn"]}),
    );

    // Keys, each with its own policy naming the roles that use it.
    for k in n.keys().iter().filter(|k| !k.in_replica_region()) {
        let id = match k.purpose {
            KeyPurpose::Sqs => "SqsKey",
            KeyPurpose::Sns => "SnsKey",
            KeyPurpose::S3 => "S3Key",
            KeyPurpose::Replica => unreachable!("filtered out"),
        };
        let users = policy::key_users(
            k.purpose,
            &validator_role,
            &notifier_role,
            &replication_roles,
        );
        r.insert(
            id.into(),
            key(
                k.description,
                policy::key_policy(account, "${AWS::Region}", k.purpose, &users),
            ),
        );
        r.insert(format!("{id}Alias"), alias(k.alias, id));
        out(&format!("{id}Arn"), json!({"Fn::GetAtt": [id, "Arn"]}));
    }

    // Buckets: the primaries (EventBridge notifications, replication) and the ledger.
    for b in &n.buckets {
        let id = bucket_id(b, None);
        let mut bucket = bucket(spec, &b.primary, &b.category);
        bucket["Properties"]["NotificationConfiguration"] =
            json!({"EventBridgeConfiguration": {"EventBridgeEnabled": true}});
        let config = super::provision::replication_config(
            spec,
            b,
            format!("${{{}ReplicationRole.Arn}}", camel(&b.category)),
            "${ReplicaKeyArn}",
        );
        let rules: Vec<Value> = config
            .rules
            .iter()
            .map(|rule| {
                let mut destination = json!({"Bucket": format!("arn:aws:s3:::{}", rule.destination)});
                if let Some(k) = &rule.replica_kms_key {
                    destination["EncryptionConfiguration"] = json!({"ReplicaKmsKeyID": k});
                }
                if rule.rtc {
                    destination["ReplicationTime"] =
                        json!({"Status": "Enabled", "Time": {"Minutes": 15}});
                    destination["Metrics"] =
                        json!({"Status": "Enabled", "EventThreshold": {"Minutes": 15}});
                }
                let mut v = json!({
                    "Id": rule.id, "Priority": rule.priority, "Status": "Enabled",
                    "Filter": {"Prefix": rule.prefix},
                    "DeleteMarkerReplication": {"Status": if rule.delete_markers { "Enabled" } else { "Disabled" }},
                    "Destination": destination,
                });
                if rule.replica_kms_key.is_some() {
                    v["SourceSelectionCriteria"] =
                        json!({"SseKmsEncryptedObjects": {"Status": "Enabled"}});
                }
                v
            })
            .collect();
        bucket["Properties"]["ReplicationConfiguration"] =
            json!({"Role": config.role, "Rules": rules});
        r.insert(
            id.clone(),
            skip(bucket, &[ACCESS_LOGGING, KMS_DEFAULT_ENCRYPTION]),
        );
        r.insert(format!("{id}Policy"), tls_only(&id, &b.primary));
        out(&id, json!({"Ref": id}));
    }
    let ledger = json!({
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": n.alert_ledger,
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": spec.buckets.encryption}}
            ]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": true, "IgnorePublicAcls": true,
                "BlockPublicPolicy": true, "RestrictPublicBuckets": true,
            },
            "LifecycleConfiguration": {"Rules": [{
                "Id": "expire-ledger-entries", "Status": "Enabled", "Prefix": "alerts/", "ExpirationInDays": 1,
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }]},
            "Tags": [
                {"Key": "Project", "Value": spec.project},
                {"Key": "Environment", "Value": {"Ref": "Environment"}},
            ],
        }
    });
    r.insert(
        "AlertLedgerBucket".into(),
        skip(
            ledger,
            &[
                ACCESS_LOGGING,
                LEDGER_VERSIONING,
                KMS_DEFAULT_ENCRYPTION,
                LEDGER_EVENTS,
                LEDGER_REPLICATION,
                LEDGER_ABORT,
            ],
        ),
    );
    r.insert(
        "AlertLedgerBucketPolicy".into(),
        tls_only("AlertLedgerBucket", &n.alert_ledger),
    );
    out("AlertLedgerBucket", json!({"Ref": "AlertLedgerBucket"}));

    // Queues: the DLQs, then the queues redriving to them.
    let dlq_visibility = json!({"Ref": "FailureVisibilityTimeout"});
    for (role, name) in [
        ("validation-dlq", &n.validation_dlq),
        ("failure-dlq", &n.failure_dlq),
        ("events-dlq", &n.events_dlq),
    ] {
        r.insert(
            queue_id(role),
            queue(spec, name, dlq_visibility.clone(), None),
        );
    }
    r.insert(
        queue_id("validation"),
        queue(
            spec,
            &n.validation_queue,
            json!({"Ref": "ValidationVisibilityTimeout"}),
            Some("ValidationDlq"),
        ),
    );
    r.insert(
        queue_id("failure"),
        queue(
            spec,
            &n.failure_queue,
            json!({"Ref": "FailureVisibilityTimeout"}),
            Some("FailureDlq"),
        ),
    );
    for role in [
        "validation",
        "validation-dlq",
        "failure",
        "failure-dlq",
        "events-dlq",
    ] {
        let id = queue_id(role);
        out(&format!("{id}Url"), json!({"Ref": id}));
        out(&format!("{id}Arn"), json!({"Fn::GetAtt": [id, "Arn"]}));
    }

    // The topic, and the alert address when given.
    r.insert(
        "FailureTopic".into(),
        json!({"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": n.topic, "KmsMasterKeyId": {"Ref": "SnsKey"}
        }}),
    );
    r.insert(
        "AlertEmailSubscription".into(),
        json!({"Type": "AWS::SNS::Subscription", "Condition": "HasAlertEmail", "Properties": {
            "TopicArn": {"Ref": "FailureTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlertEmail"}
        }}),
    );
    out("FailureTopicArn", json!({"Ref": "FailureTopic"}));

    // The rule: uploads to the primaries, to the validation queue, retried for a day and
    // then to the events DLQ (EventBridge User Guide, "Event retry policy and using
    // dead-letter queues").
    let primaries: Vec<String> = n
        .buckets
        .iter()
        .map(|b| format!("arn:aws:s3:::{}", b.primary))
        .collect();
    r.insert(
        "UploadRule".into(),
        json!({"Type": "AWS::Events::Rule", "Properties": {
            "Name": n.rule,
            "State": "ENABLED",
            "EventPattern": {"source": ["aws.s3"], "detail-type": ["Object Created"], "resources": primaries},
            "Targets": [{
                "Id": "SendToValidationQueue",
                "Arn": {"Fn::GetAtt": ["ValidationQueue", "Arn"]},
                "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
                "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["EventsDlq", "Arn"]}},
            }],
        }}),
    );
    out(
        "UploadRuleArn",
        json!({"Fn::GetAtt": ["UploadRule", "Arn"]}),
    );
    for (id, queue) in [
        ("ValidationQueuePolicy", "ValidationQueue"),
        ("EventsDlqPolicy", "EventsDlq"),
    ] {
        r.insert(
            id.into(),
            json!({"Type": "AWS::SQS::QueuePolicy", "Properties": {
                "Queues": [{"Ref": queue}],
                "PolicyDocument": policy::queue_send(
                    "events.amazonaws.com",
                    &format!("${{{queue}.Arn}}"),
                    "${UploadRule.Arn}",
                ),
            }}),
        );
    }

    // Each DLQ's depth alarms on the topic: a message there is one the system gave up on.
    for role in ["validation-dlq", "failure-dlq", "events-dlq"] {
        let id = queue_id(role);
        r.insert(
            format!("{id}DepthAlarm"),
            json!({"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "AlarmName": format!("${{{id}.QueueName}}-not-empty"),
                "AlarmDescription": format!("Messages in the {role} queue: records the system could not process"),
                "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [id, "QueueName"]}}],
                "Statistic": "Maximum", "Period": 300, "EvaluationPeriods": 1,
                "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": "FailureTopic"}],
            }}),
        );
    }

    // The functions, their log groups and mappings (when the zips are given).
    for (f, id, role_id, zip, env) in [
        (
            super::FunctionName::Validator,
            "ValidatorFunction",
            "ValidatorRole",
            "ValidatorZipKey",
            validator_env(spec, &n),
        ),
        (
            super::FunctionName::Notifier,
            "NotifierFunction",
            "NotifierRole",
            "NotifierZipKey",
            notifier_env(spec, &n),
        ),
    ] {
        let role_name = match f {
            super::FunctionName::Validator => &n.validator_role,
            super::FunctionName::Notifier => &n.notifier_role,
        };
        let name = policy::function_of(role_name);
        let log_id = format!("{}LogGroup", id.trim_end_matches("Function"));
        r.insert(
            log_id.clone(),
            skip(
                json!({"Type": "AWS::Logs::LogGroup", "Condition": "DeployFunctions", "Properties": {
                    "LogGroupName": format!("/aws/lambda/{name}"), "RetentionInDays": LOG_RETENTION_DAYS
                }}),
                &[LOG_GROUP_KMS, LOG_RETENTION],
            ),
        );
        r.insert(
            id.into(),
            skip(
                json!({"Type": "AWS::Lambda::Function", "Condition": "DeployFunctions",
                       "DependsOn": [log_id, format!("{}Policy", role_id.trim_end_matches("Role"))],
                       "Properties": {
                    "FunctionName": name,
                    "Runtime": "provided.al2023",
                    "Handler": "bootstrap",
                    "Architectures": [{"Ref": "Architecture"}],
                    "Code": {"S3Bucket": {"Ref": "ArtifactBucket"}, "S3Key": {"Ref": zip}},
                    "Role": {"Fn::GetAtt": [role_id, "Arn"]},
                    "Timeout": {"Ref": "FunctionTimeout"},
                    "MemorySize": spec.functions.memory_mb,
                    "Environment": {"Variables": env},
                }}),
                &[
                    FUNCTION_DLQ,
                    FUNCTION_VPC,
                    FUNCTION_CONCURRENCY,
                    FUNCTION_ENV_KMS,
                    FUNCTION_SIGNING,
                    FUNCTION_TRACING,
                ],
            ),
        );
        out(
            &format!("{id}Name"),
            json!({"Fn::If": ["DeployFunctions", {"Ref": id}, ""]}),
        );
    }
    for (f, role) in super::MAPPINGS {
        let function = match f {
            super::FunctionName::Validator => "ValidatorFunction",
            super::FunctionName::Notifier => "NotifierFunction",
        };
        let props = json!({
            "EventSourceArn": {"Fn::GetAtt": [queue_id(role), "Arn"]},
            "FunctionName": {"Ref": function},
            "BatchSize": spec.queues.batch_size,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumBatchingWindowInSeconds": {"Ref": "BatchingWindow"},
            "Enabled": true,
        });
        r.insert(
            format!("{}{}Mapping", function.trim_end_matches("Function"), queue_id(role)),
            json!({"Type": "AWS::Lambda::EventSourceMapping", "Condition": "DeployFunctions", "Properties": props}),
        );
    }

    let mut params = common_parameters(spec);
    params.extend(timing_parameter_specs(seed));
    params.insert(
        "ReplicaRegion".into(),
        json!({"Type": "String", "Default": spec.replica_region,
               "Description": "Region of the replica stack"}),
    );
    params.insert(
        "ReplicaKeyArn".into(),
        json!({"Type": "String", "AllowedPattern": "^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$",
               "Description": "The replica stack's ReplicaKeyArn output"}),
    );
    params.insert(
        "AlertEmail".into(),
        json!({"Type": "String", "Default": "",
               "Description": "Address subscribed to the failure topic (confirm the e-mail AWS sends); empty for none"}),
    );
    params.insert(
        "ArtifactBucket".into(),
        json!({"Type": "String", "Default": "",
               "Description": "Bucket holding the `harness package` zips; empty deploys no functions"}),
    );
    params.insert(
        "ValidatorZipKey".into(),
        json!({"Type": "String", "Default": crate::package::artifact_key(crate::package::FUNCTIONS[0])}),
    );
    params.insert(
        "NotifierZipKey".into(),
        json!({"Type": "String", "Default": crate::package::artifact_key(crate::package::FUNCTIONS[1])}),
    );
    params.insert(
        "Architecture".into(),
        json!({"Type": "String", "Default": "arm64", "AllowedValues": ["arm64", "x86_64"]}),
    );
    substitute(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("{}: primary region (generated by `harness template` from fixtures/topology.toml; do not edit)", spec.project),
        "Parameters": params,
        "Conditions": {
            "HasAlertEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]},
            "DeployFunctions": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ArtifactBucket"}, ""]}]},
        },
        "Resources": r,
        "Outputs": outputs,
    }))
}

/// One part's template.
pub fn template(spec: &TopologySpec, seed: &Timing, part: StackPart) -> Value {
    match part {
        StackPart::Replica => replica(spec),
        StackPart::Primary => primary(spec, seed),
    }
}

/// The template as the committed YAML file (a header comment, then the document).
pub fn render(spec: &TopologySpec, seed: &Timing, part: StackPart) -> String {
    let body =
        serde_norway::to_string(&template(spec, seed, part)).expect("a JSON value serializes");
    format!(
        "# Generated by `harness template` from fixtures/topology.toml: edit the topology and\n\
         # regenerate (`make template`); a test fails when this file and the topology differ.\n\
         {body}"
    )
}

#[cfg(test)]
mod tests;

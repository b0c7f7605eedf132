//! The topology's IAM and KMS policy documents, as pure functions of the run's names,
//! account and key ARNs, so they can be checked without an engine (engines do not enforce
//! them; AWS does).
//!
//! Least privilege as the seed describes it:
//! - every resource is named (no `"*"` in role policies; a key policy's `"Resource": "*"`
//!   means "this key", which is the only form AWS accepts there);
//! - ARNs carry the concrete account (no `:*:` account wildcards);
//! - trust policies carry `aws:SourceAccount` (and the CRR role `aws:SourceArn`) against
//!   the confused-deputy problem
//!   (<https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html>);
//! - KMS permissions in role policies name the key and the service it is used through
//!   (`kms:ViaService`, <https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service>);
//! - each key has its own key policy: the account root (so IAM policies can delegate, as
//!   AWS's default key policy does), the roles the seed names, and a service principal only
//!   where a service itself uses the key, with `aws:SourceAccount`. No `kms:CreateGrant`
//!   for services: none of these flows needs it.
//!
//! Harness additions beyond the seed, used by the code: the validator's `sqs:SendMessage`,
//! `ChangeMessageVisibility` and `GetQueueUrl` on the validation queue (its re-queue and
//! retry backoff), and the notifier's reads on the DLQs it drains and its alert ledger.

use serde_json::{json, Value};

use super::{CategoryBuckets, KeyPurpose, Names};

/// What the documents are built from.
pub struct PolicyInputs<'a> {
    pub names: &'a Names,
    pub account: &'a str,
    pub region: &'a str,
    pub replica_region: &'a str,
    pub sqs_key: &'a str,
    pub sns_key: &'a str,
    /// The primary-region CMK of SSE-KMS primaries (the scenarios' `sse_kms = true`
    /// uploads): the source key replication decrypts with.
    pub s3_key: &'a str,
    pub replica_key: &'a str,
}

/// The account id in an ARN (`arn:aws:kms:us-east-1:123456789012:key/...`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The Lambda function a role belongs to (`...-checksum-validator-role-dev-x` ->
/// `...-checksum-validator-dev-x`).
pub fn function_of(role: &str) -> String {
    role.replacen("-role-", "-", 1)
}

/// A trust policy for `service`, limited to this account (and to `source_arns`, if any).
pub fn trust(service: &str, account: &str, source_arns: &[String]) -> Value {
    let mut condition = json!({"StringEquals": {"aws:SourceAccount": account}});
    if !source_arns.is_empty() {
        condition["ArnLike"] = json!({ "aws:SourceArn": source_arns });
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                       "Action": "sts:AssumeRole", "Condition": condition}]
    })
}

fn queue(i: &PolicyInputs, name: &str) -> String {
    format!("arn:aws:sqs:{}:{}:{name}", i.region, i.account)
}

fn logs(i: &PolicyInputs, role: &str) -> Value {
    json!({"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "Resource": [
        format!("arn:aws:logs:{}:{}:log-group:/aws/lambda/{}", i.region, i.account, function_of(role)),
        format!("arn:aws:logs:{}:{}:log-group:/aws/lambda/{}:*", i.region, i.account, function_of(role)),
    ]})
}

fn via(service: &str, region: &str) -> Value {
    json!({"StringEquals": {"kms:ViaService": format!("{service}.{region}.amazonaws.com")}})
}

fn every_bucket(names: &Names) -> Vec<String> {
    names
        .buckets
        .iter()
        .flat_map(|b| std::iter::once(b.primary.clone()).chain(b.destinations()))
        .collect()
}

/// The checksum-validator's role policy.
pub fn validator(i: &PolicyInputs) -> Value {
    let n = i.names;
    let buckets = every_bucket(n);
    json!({"Version": "2012-10-17", "Statement": [
        logs(i, &n.validator_role),
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAttributes", "s3:GetObjectTagging", "s3:GetObjectVersionTagging"],
         "Resource": buckets.iter().map(|b| format!("arn:aws:s3:::{b}/*")).collect::<Vec<_>>()},
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetReplicationConfiguration", "s3:GetBucketLocation", "s3:GetBucketTagging"],
         "Resource": buckets.iter().map(|b| format!("arn:aws:s3:::{b}")).collect::<Vec<_>>()},
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ChangeMessageVisibility", "sqs:SendMessage"],
         "Resource": queue(i, &n.validation_queue)},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue(i, &n.failure_queue)},
        // The validation and failure queues are SSE-KMS with the SQS key.
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": i.sqs_key,
         "Condition": via("sqs", i.region)},
        // Deep mode reads SSE-KMS objects: primaries (the S3 key) and replicas (the replica
        // key).
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": i.s3_key, "Condition": via("s3", i.region)},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": i.replica_key, "Condition": via("s3", i.replica_region)}
    ]})
}

/// The failure-notifier's role policy.
pub fn notifier(i: &PolicyInputs) -> Value {
    let n = i.names;
    json!({"Version": "2012-10-17", "Statement": [
        logs(i, &n.notifier_role),
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
         "Resource": [queue(i, &n.failure_queue), queue(i, &n.validation_dlq), queue(i, &n.events_dlq), queue(i, &n.failure_dlq)]},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue(i, &n.failure_dlq)},
        {"Effect": "Allow", "Action": "sns:Publish",
         "Resource": format!("arn:aws:sns:{}:{}:{}", i.region, i.account, n.topic)},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": format!("arn:aws:s3:::{}/alerts/*", n.alert_ledger)},
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": i.sqs_key,
         "Condition": via("sqs", i.region)},
        // The seed: the notifier's role on the SNS key.
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
         "Resource": i.sns_key, "Condition": via("sns", i.region)}
    ]})
}

/// One primary's replication role policy (S3 User Guide, "Setting up permissions" and
/// "Replicating encrypted objects": `kms:Decrypt` on the source object's key, here the S3
/// key, and `kms:Encrypt` on the replica key, each through S3 in its region and for the
/// objects of its bucket only).
pub fn replication(i: &PolicyInputs, b: &CategoryBuckets) -> Value {
    let destinations = b.destinations();
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetReplicationConfiguration"],
         "Resource": format!("arn:aws:s3:::{}", b.primary)},
        {"Effect": "Allow", "Action": ["s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionForReplication", "s3:GetObjectVersionTagging"],
         "Resource": format!("arn:aws:s3:::{}/*", b.primary)},
        {"Effect": "Allow", "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
         "Resource": destinations.iter().map(|d| format!("arn:aws:s3:::{d}/*")).collect::<Vec<_>>()},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": i.s3_key,
         "Condition": {"StringEquals": {"kms:ViaService": format!("s3.{}.amazonaws.com", i.region)},
                       "StringLike": {"kms:EncryptionContext:aws:s3:arn": format!("arn:aws:s3:::{}/*", b.primary)}}},
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey"], "Resource": i.replica_key,
         "Condition": {"StringEquals": {"kms:ViaService": format!("s3.{}.amazonaws.com", i.replica_region)},
                       "StringLike": {"kms:EncryptionContext:aws:s3:arn": destinations.iter().map(|d| format!("arn:aws:s3:::{d}/*")).collect::<Vec<_>>()}}}
    ]})
}

/// A queue policy letting `service` send to `queue_arn` on behalf of `source_arn` only
/// (the SNS topic or the EventBridge rule that delivers there).
pub fn queue_send(service: &str, queue_arn: &str, source_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sqs:SendMessage",
                       "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}}}]
    })
}

/// Which roles use a key of `purpose`, from the validator's, the notifier's and the
/// replication roles' ARNs.
pub fn key_users(
    purpose: KeyPurpose,
    validator: &str,
    notifier: &str,
    replication: &[String],
) -> Vec<String> {
    match purpose {
        KeyPurpose::Sqs => vec![validator.to_string(), notifier.to_string()],
        KeyPurpose::Sns => vec![notifier.to_string()],
        // Deep mode reads SSE-KMS primaries; replication decrypts its source objects.
        KeyPurpose::S3 => std::iter::once(validator.to_string())
            .chain(replication.iter().cloned())
            .collect(),
        KeyPurpose::Replica => replication.to_vec(),
    }
}

/// A key's policy. `roles` are the role ARNs that use the key; `region` is the key's.
pub fn key_policy(account: &str, region: &str, purpose: KeyPurpose, roles: &[String]) -> Value {
    let mut statements = vec![json!({
        "Sid": "AccountRoot", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
        "Action": "kms:*", "Resource": "*"
    })];
    let role_actions = match purpose {
        KeyPurpose::Sqs => json!(["kms:Decrypt", "kms:GenerateDataKey"]),
        KeyPurpose::Sns => json!([
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:DescribeKey"
        ]),
        KeyPurpose::S3 => json!(["kms:Decrypt"]),
        KeyPurpose::Replica => json!(["kms:Encrypt", "kms:GenerateDataKey"]),
    };
    if !roles.is_empty() {
        let mut roles_statement = json!({
            "Sid": "Roles", "Effect": "Allow", "Principal": {"AWS": roles},
            "Action": role_actions, "Resource": "*"
        });
        if purpose == KeyPurpose::S3 {
            roles_statement["Condition"] = via("s3", region);
        }
        statements.push(roles_statement);
    }
    if purpose == KeyPurpose::Sqs {
        statements.push(json!({
            "Sid": "EventBridgeToEncryptedQueue", "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }));
    }
    if purpose == KeyPurpose::Sns {
        // The DLQ alarms notify the encrypted topic: CloudWatch publishes with the key
        // ("Amazon SNS: the key policy must allow CloudWatch", CloudWatch User Guide,
        // "Using Amazon CloudWatch alarms", encrypted topics).
        statements.push(json!({
            "Sid": "CloudWatchAlarmsToEncryptedTopic", "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Policy inputs for account 123456789012 in us-east-1/us-west-2 (the tests' fixture, also
/// posture's).
#[cfg(test)]
pub(crate) fn sample_inputs(names: &Names) -> PolicyInputs<'_> {
    PolicyInputs {
        names,
        account: "123456789012",
        region: "us-east-1",
        replica_region: "us-west-2",
        sqs_key: "arn:aws:kms:us-east-1:123456789012:key/sqs",
        sns_key: "arn:aws:kms:us-east-1:123456789012:key/sns",
        s3_key: "arn:aws:kms:us-east-1:123456789012:key/s3",
        replica_key: "arn:aws:kms:us-west-2:123456789012:key/replica",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::TopologySpec;

    const ACCOUNT: &str = "123456789012";

    fn inputs(names: &Names) -> PolicyInputs<'_> {
        sample_inputs(names)
    }

    fn names() -> Names {
        let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
        Names::new(&spec, "t3st01")
    }

    /// Every `Resource` string of a policy document.
    fn resources(doc: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for s in doc["Statement"].as_array().unwrap() {
            match &s["Resource"] {
                Value::String(r) => out.push(r.clone()),
                Value::Array(rs) => out.extend(rs.iter().map(|r| r.as_str().unwrap().to_string())),
                other => panic!("no Resource in {s}: {other}"),
            }
        }
        out
    }

    fn role_documents(n: &Names) -> Vec<(String, Value)> {
        let i = inputs(n);
        let mut docs = vec![
            ("validator".to_string(), validator(&i)),
            ("notifier".to_string(), notifier(&i)),
        ];
        for b in &n.buckets {
            docs.push((format!("replication {}", b.primary), replication(&i, b)));
        }
        docs
    }

    /// Finding 13: no `*` resource and no account wildcard in any role policy; every KMS
    /// statement names its key and the service it goes through.
    #[test]
    fn role_policies_name_every_resource() {
        let n = names();
        for (what, doc) in role_documents(&n) {
            for r in resources(&doc) {
                assert_ne!(r, "*", "{what}: a `*` resource");
                assert!(!r.contains(":*:"), "{what}: account wildcard in {r}");
            }
            for s in doc["Statement"].as_array().unwrap() {
                let actions = s["Action"].to_string();
                if actions.contains("kms:") {
                    assert!(
                        s["Resource"].as_str().is_some_and(|r| r.contains(":key/")),
                        "{what}: KMS on {}",
                        s["Resource"]
                    );
                    assert!(
                        s["Condition"].to_string().contains("kms:ViaService"),
                        "{what}: KMS without kms:ViaService: {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn trust_policies_are_limited_to_the_account() {
        let t = trust("lambda.amazonaws.com", ACCOUNT, &[]);
        assert_eq!(
            t["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
            ACCOUNT
        );
        let crr = trust(
            "s3.amazonaws.com",
            ACCOUNT,
            &["arn:aws:s3:::primary".to_string()],
        );
        assert_eq!(
            crr["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"][0],
            "arn:aws:s3:::primary"
        );
    }

    /// Finding 22: the account is the caller's, every service statement has a condition,
    /// no service gets `kms:CreateGrant`, and the keys' policies differ by purpose.
    #[test]
    fn key_policies_are_per_key_and_conditioned() {
        let roles = vec![format!("arn:aws:iam::{ACCOUNT}:role/r")];
        let policies: Vec<Value> = [
            KeyPurpose::Sqs,
            KeyPurpose::Sns,
            KeyPurpose::Replica,
            KeyPurpose::S3,
        ]
        .into_iter()
        .map(|p| key_policy(ACCOUNT, "us-east-1", p, &roles))
        .collect();
        for p in &policies {
            let text = p.to_string();
            assert!(!text.contains("000000000000"), "{text}");
            assert!(text.contains(&format!("arn:aws:iam::{ACCOUNT}:root")));
            for s in p["Statement"].as_array().unwrap() {
                if s["Principal"].get("Service").is_some() {
                    assert!(s.get("Condition").is_some(), "unconditioned service: {s}");
                    assert!(!s["Action"].to_string().contains("CreateGrant"), "{s}");
                }
            }
        }
        for (a, b) in [(0, 1), (1, 2), (0, 3), (1, 3), (2, 3)] {
            assert_ne!(policies[a], policies[b], "purposes {a} and {b}");
        }
        // The SNS key: its publisher with the seed's actions, and CloudWatch (the DLQ
        // alarms publish to the encrypted topic) with Decrypt and GenerateDataKey* only.
        let sns = policies[1].to_string();
        assert!(sns.contains("kms:ReEncrypt*"));
        let services: Vec<&Value> = policies[1]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Principal"].get("Service").is_some())
            .collect();
        assert_eq!(services.len(), 1, "{sns}");
        assert_eq!(
            services[0]["Principal"]["Service"],
            "cloudwatch.amazonaws.com"
        );
        assert_eq!(
            services[0]["Action"],
            json!(["kms:Decrypt", "kms:GenerateDataKey*"])
        );
    }

    /// Finding 22(f): SSE-KMS primaries have a key of their own, not the SQS key. Its
    /// policy lets the validator and the replication roles decrypt only through S3 in the
    /// primary region, and the roles decrypt their source objects with it (and encrypt
    /// replicas with the replica key): no role policy uses the SQS key through S3.
    #[test]
    fn sse_kms_primaries_have_their_own_key() {
        let n = names();
        let i = inputs(&n);
        let validator_role = format!("arn:aws:iam::{ACCOUNT}:role/validator");
        let notifier_role = format!("arn:aws:iam::{ACCOUNT}:role/notifier");
        let crr = vec![format!("arn:aws:iam::{ACCOUNT}:role/crr")];
        let users = key_users(KeyPurpose::S3, &validator_role, &notifier_role, &crr);
        assert_eq!(users, [validator_role.clone(), crr[0].clone()]);
        let p = key_policy(ACCOUNT, "us-east-1", KeyPurpose::S3, &users);
        let statements = p["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2, "{p}");
        let roles = &statements[1];
        assert_eq!(roles["Action"], json!(["kms:Decrypt"]));
        assert_eq!(
            roles["Condition"]["StringEquals"]["kms:ViaService"],
            "s3.us-east-1.amazonaws.com"
        );
        assert!(
            statements
                .iter()
                .all(|s| s["Principal"].get("Service").is_none()),
            "no service principal: {p}"
        );
        assert!(!p.to_string().contains(&notifier_role), "{p}");

        let kms = |doc: &Value, action: &str, via: &str| -> Vec<String> {
            doc["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["Action"].to_string().contains(action))
                .filter(|s| s["Condition"].to_string().contains(via))
                .filter_map(|s| s["Resource"].as_str().map(str::to_string))
                .collect()
        };
        for b in &n.buckets {
            let doc = replication(&i, b);
            assert_eq!(
                kms(&doc, "kms:Decrypt", "s3.us-east-1.amazonaws.com"),
                [i.s3_key]
            );
            assert_eq!(
                kms(&doc, "kms:Encrypt", "s3.us-west-2.amazonaws.com"),
                [i.replica_key]
            );
        }
        assert_eq!(
            kms(&validator(&i), "kms:Decrypt", "s3.us-east-1.amazonaws.com"),
            [i.s3_key]
        );
        for (what, doc) in role_documents(&n) {
            for s in doc["Statement"].as_array().unwrap() {
                if s["Resource"] == i.sqs_key {
                    assert!(
                        !s["Condition"].to_string().contains("s3."),
                        "{what} uses the SQS key through S3: {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn queue_policies_name_their_one_source() {
        let p = queue_send(
            "events.amazonaws.com",
            "arn:aws:sqs:us-east-1:123456789012:q",
            "arn:aws:events:us-east-1:123456789012:rule/r",
        );
        let s = &p["Statement"][0];
        assert_eq!(s["Resource"], "arn:aws:sqs:us-east-1:123456789012:q");
        assert_eq!(
            s["Condition"]["ArnEquals"]["aws:SourceArn"],
            "arn:aws:events:us-east-1:123456789012:rule/r"
        );
    }

    #[test]
    fn the_account_and_function_come_from_arns_and_roles() {
        assert_eq!(
            account_of("arn:aws:kms:us-east-1:123456789012:key/abc"),
            Some(ACCOUNT)
        );
        assert_eq!(account_of("not-an-arn"), None);
        assert_eq!(
            function_of("autobackup-checksum-validator-role-dev-x"),
            "autobackup-checksum-validator-dev-x"
        );
    }
}

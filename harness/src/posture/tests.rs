//! The posture checks' unit tests.

use rstest::rstest;
use serde_json::json;

use super::*;
use crate::topology::TopologySpec;

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
#[case::wired(
    Some(
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":5}"#
    ),
    true
)]
#[case::count_as_string(
    Some(
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":"5"}"#
    ),
    true
)]
#[case::wrong_count(
    Some(
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":3}"#
    ),
    false
)]
#[case::wrong_dlq(
    Some(
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:other","maxReceiveCount":5}"#
    ),
    false
)]
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
    let doc = json!({"Statement": [{"Effect": "Allow", "Action": "x:Y", "Resource": [resource]}]});
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

//! The deployed mode's unit tests.

use super::*;

#[test]
fn env_overrides_parse_or_say_why() {
    let o: EnvOverride = "validator:LAG_BUDGET_SECONDS=soon".parse().unwrap();
    assert_eq!(o.function, FunctionName::Validator);
    assert_eq!(
        (o.name.as_str(), o.value.as_str()),
        ("LAG_BUDGET_SECONDS", "soon")
    );
    let o: EnvOverride = "notifier:SNS_TOPIC_ARN=".parse().unwrap();
    assert_eq!(o.value, "");
    for bad in [
        "LAG=1",
        "other:A=1",
        "validator:A",
        "validator:=1",
        "validator:A B=1",
    ] {
        let e = bad.parse::<EnvOverride>().unwrap_err().to_string();
        assert!(e.contains(bad), "{e}");
    }
}

/// The environment a deploy sets reads back, through the function's own parser, as the
/// configuration the in-process function gets.
#[test]
fn the_validator_environment_reads_back_as_its_configuration() {
    let c = ValidatorConfig {
        failure_queue_url: Some("http://127.0.0.1:4566/000000000000/failures".into()),
        replica_region: Some("us-west-2".into()),
        replica_bucket_map: [("a".to_string(), "b".to_string())].into_iter().collect(),
        lag_budget: Duration::from_secs(60),
        retry_base: Duration::from_millis(1500),
        retry_max: Duration::from_secs(2),
        max_receive_count: 5,
        alert_on_unverifiable: false,
        record_concurrency: 8,
        force_path_style: true,
        deep_verify: true,
        deadline_margin: Duration::from_millis(500),
        ..ValidatorConfig::default()
    };
    let env = validator_env(&c);
    let back = ValidatorConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn the_notifier_environment_names_its_topic_and_ledger() {
    let c = NotifierConfig {
        topic_arn: "arn:aws:sns:us-east-1:000000000000:alerts".into(),
        project: "autobackup".into(),
        ledger_bucket: Some("ledger".into()),
        claim_period: Duration::from_secs(4),
        force_path_style: true,
    };
    let env = notifier_env(&c);
    assert_eq!(env["SNS_TOPIC_ARN"], c.topic_arn);
    assert_eq!(env["ALERT_LEDGER_BUCKET"], "ledger");
    assert_eq!(env["LEDGER_CLAIM_SECONDS"], "4");
    assert_eq!(env["S3_FORCE_PATH_STYLE"], "true");
}

#[test]
fn localstack_is_refused_naming_the_engines_that_can() {
    let e = check_kind(EngineKind::Localstack).unwrap_err().to_string();
    assert!(e.contains("Docker"), "{e}");
    assert!(e.contains("ministack"), "{e}");
    assert!(check_kind(EngineKind::Ministack).is_ok());
}

/// Lines as the deployed validator wrote them on MiniStack (captured from a run).
#[test]
fn reads_what_the_functions_log() {
    let lines = include_str!("../../../fixtures/lambda-logs/ministack-1.5.33-validator.log");
    let parsed: Vec<LogLine> = lines.lines().filter_map(parse_line).collect();
    let decisions: Vec<&RecordReport> = parsed
        .iter()
        .filter_map(|l| match l {
            LogLine::Decision(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect();
    assert!(!decisions.is_empty(), "{lines}");
    assert!(decisions
        .iter()
        .any(|r| r.outcome == checksum_validator::Outcome::Validated));
    assert!(parsed
        .iter()
        .any(|l| matches!(l, LogLine::Batch { size, .. } if *size >= 1)));
    assert!(parse_line("START RequestId: 1 Version: $LATEST").is_none());
    assert!(parse_line(r#"{"fields":{"message":"other"}}"#).is_none());
}

/// MiniStack 1.5.33 writes a failed Init phase only to its own log, quoting the
/// bootstrap's output (captured from a run with `LAG_BUDGET_SECONDS=soon`).
#[test]
fn a_failed_init_is_read_from_the_engine_log_for_its_own_function() {
    let log = include_str!("../../../fixtures/lambda-logs/ministack-1.5.33-engine-init-error.log");
    let ours = |f: FunctionName| match f {
        FunctionName::Validator => "autobackup-checksum-validator-dev-75xoxw".to_string(),
        FunctionName::Notifier => "autobackup-failure-notifier-dev-75xoxw".to_string(),
    };
    let found = engine_log_init_errors(log, ours);
    assert!(!found.is_empty());
    for (f, e) in &found {
        assert_eq!(*f, FunctionName::Validator);
        assert!(e.contains(r#"LAG_BUDGET_SECONDS="soon" is invalid"#), "{e}");
    }
    let others = |f: FunctionName| format!("{f:?}-of-another-run");
    assert!(engine_log_init_errors(log, others).is_empty());
}

#[test]
fn a_configuration_error_is_read_with_its_variable() {
    let line = r#"{"timestamp":"x","level":"ERROR","fields":{"message":"invalid configuration; the function cannot start","error":"environment variable LAG_BUDGET_SECONDS=\"soon\" is invalid: expected a number of seconds from 0 to 1000000000"},"target":"checksum_validator"}"#;
    match parse_line(line) {
        Some(LogLine::InvalidConfiguration(e)) => {
            assert!(e.contains("LAG_BUDGET_SECONDS"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

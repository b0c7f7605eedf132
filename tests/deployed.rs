//! `make e2e-deployed`: the core scenarios played with `--functions deployed` on MiniStack
//! (the x86_64 zips of `make package` created in its Lambda service, run by its own event
//! source mappings, decisions read from the functions' CloudWatch logs), compared with the
//! SAME reviewed snapshots as the in-process runs (`tests/snapshots/scenarios__<name>.snap`).
//!
//! [`SCENARIOS`] is the list. Every core scenario is in it: none needs an outcome only an
//! emulator shows. Scenarios left out of deployed mode, and why: those that stop or throttle
//! an invocation (`trigger` overrun/throttle: the engine's Lambda runs the invocations, the
//! harness cannot cut one), and those whose event bodies need the delivery hook's key or
//! version-id rewrite before the function sees them (`key-encodings`, several versions of
//! one key: see `harness/src/engine/gaps.rs`).
//!
//! Three of them play again with `--via cloudformation`, where the functions and mappings
//! are the primary stack's own (the zips in the run's `ArtifactBucket`): the deployed
//! template's functions, not the harness's description of them.
//!
//! Also here: a deliberately wrong environment variable makes the run fail with the
//! function's own configuration error read from its log (the binary ran, with the deployed
//! configuration), and `harness invoke` answers AWS's sample SQS event with both messages as
//! batch item failures.

use std::sync::OnceLock;

use harness::deployed::{EnvOverride, FunctionsMode};
use harness::engine::{Engine, EngineKind, StartOptions};
use harness::package::{self, Arch};
use harness::probe;
use harness::scenario::ScenarioError;
use harness::scenario::{self, RunOptions, Scenario};
use harness::topology::provision::Via;
use harness::topology::FunctionName;
use harness::topology::TopologySpec;

/// The scenarios `make e2e-deployed` plays (all of them match the in-process snapshots).
pub const SCENARIOS: [&str; 7] = [
    "happy-path",
    "replication-lag",
    "poison-pill",
    "mixed-batch",
    "corrupt-replica",
    "notifier-publish-failure",
    "duplicate-event",
];

mod common;
use common::runtime;

/// The x86_64 zips, built once (a no-op build when `make package` made them).
fn zips() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| match package::locate(Arch::X86_64) {
            Ok(_) => Ok(()),
            Err(_) => package::build(Arch::X86_64)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        })
        .clone()
        .expect("the x86_64 zips (make package)");
}

fn ministack() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        runtime()
            .block_on(probe::start(
                EngineKind::Ministack,
                &StartOptions {
                    lambda: true,
                    ..StartOptions::default()
                },
            ))
            .expect("MiniStack starts")
    })
}

fn run_via(
    name: &str,
    function_env: Vec<EnvOverride>,
    via: Via,
) -> Result<scenario::RunOutcome, ScenarioError> {
    zips();
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
    let path = scenario::find(&scenario::dir(), name).expect("scenario file");
    let scenario = Scenario::load(&path, &spec.categories).expect("valid scenario");
    runtime().block_on(scenario::run(
        ministack(),
        &spec,
        &scenario,
        &RunOptions {
            functions: FunctionsMode::Deployed,
            function_env,
            via,
            ..RunOptions::default()
        },
    ))
}

fn matches_its_snapshot(name: &str) {
    matches_its_snapshot_via(name, Via::Direct)
}

fn matches_its_snapshot_via(name: &str, via: Via) {
    let outcome = run_via(name, Vec::new(), via).unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!(
        "{name} deployed ({via}) on ministack: {:.2}s total (provision {:.2}s, steps {:.2}s, settle {:.2}s)",
        outcome.timings.total.as_secs_f64(),
        outcome.timings.provision.as_secs_f64(),
        outcome.timings.steps.as_secs_f64(),
        outcome.timings.settle.as_secs_f64(),
    );
    assert!(
        outcome.unmet.is_empty(),
        "{name}: expectations not met with the deployed functions:\n  {}\n--- outcome ---\n{}",
        outcome.unmet.join("\n  "),
        outcome.transcript
    );
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
        description => format!("scenario {name}"),
    }, {
        insta::assert_snapshot!(format!("scenarios__{name}"), outcome.transcript);
    });
}

#[test]
fn happy_path() {
    matches_its_snapshot(SCENARIOS[0]);
}

#[test]
fn replication_lag() {
    matches_its_snapshot(SCENARIOS[1]);
}

#[test]
fn poison_pill() {
    matches_its_snapshot(SCENARIOS[2]);
}

#[test]
fn mixed_batch() {
    matches_its_snapshot(SCENARIOS[3]);
}

#[test]
fn corrupt_replica() {
    matches_its_snapshot(SCENARIOS[4]);
}

#[test]
fn notifier_publish_failure() {
    matches_its_snapshot(SCENARIOS[5]);
}

#[test]
fn duplicate_event() {
    matches_its_snapshot(SCENARIOS[6]);
}

/// The stack's own functions and mappings (`--via cloudformation`: the zips in the run's
/// `ArtifactBucket`, the template's role, timeout, memory, environment and mappings) play
/// the core scenarios to the same snapshots.
#[test]
fn happy_path_through_the_stack() {
    matches_its_snapshot_via(SCENARIOS[0], Via::Cloudformation);
}

#[test]
fn poison_pill_through_the_stack() {
    matches_its_snapshot_via(SCENARIOS[2], Via::Cloudformation);
}

#[test]
fn corrupt_replica_through_the_stack() {
    matches_its_snapshot_via(SCENARIOS[4], Via::Cloudformation);
}

/// Plays happy-path with `name=value` set on the validator, a value its own parser refuses:
/// the run must fail at once with the function's own error, read from its CloudWatch log.
fn fails_with_the_functions_own_error(via: Via, name: &str, value: &str) {
    let wrong = EnvOverride {
        function: FunctionName::Validator,
        name: name.into(),
        value: value.into(),
    };
    match run_via("happy-path", vec![wrong], via) {
        Err(ScenarioError::FunctionFailed(why)) => {
            assert!(why.starts_with("checksum-validator cannot start"), "{why}");
            let quoted = format!(r#"environment variable {name}="{value}" is invalid"#);
            assert!(why.contains(&quoted), "{why}");
        }
        Err(other) => panic!("failed, but not with the function's error: {other}"),
        Ok(outcome) => panic!(
            "ran although the validator cannot start:\n{}",
            outcome.transcript
        ),
    }
}

/// A `--function-env` override reaches the stack's function too, and the binary the stack
/// made is what runs.
#[test]
fn an_override_reaches_the_stacks_function() {
    fails_with_the_functions_own_error(Via::Cloudformation, "RETRY_BASE_SECONDS", "often");
}

/// The binary ran, with the environment the deploy gave it.
#[test]
fn a_wrong_environment_variable_fails_with_the_functions_own_error() {
    fails_with_the_functions_own_error(Via::Direct, "LAG_BUDGET_SECONDS", "soon");
}

/// A template whose function sets a variable otherwise than the topology (here the
/// validator's `MAX_RECEIVE_COUNT`, which must match the queue's redrive policy) is refused
/// before anything plays, naming the variable and both values.
#[test]
fn a_function_environment_the_topology_disagrees_with_is_refused() {
    zips();
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
    let path = scenario::find(&scenario::dir(), "happy-path").expect("scenario file");
    let scenario = Scenario::load(&path, &spec.categories).expect("valid scenario");
    let [replica, primary] = committed_templates();
    let mut doc: serde_json::Value = serde_norway::from_str(&primary).expect("template parses");
    doc["Resources"]["ValidatorFunction"]["Properties"]["Environment"]["Variables"]
        ["MAX_RECEIVE_COUNT"] = "9".into();
    let primary = serde_norway::to_string(&doc).expect("serializes");
    let played = runtime().block_on(scenario::run(
        ministack(),
        &spec,
        &scenario,
        &RunOptions {
            functions: FunctionsMode::Deployed,
            via: Via::Cloudformation,
            templates: Some([replica, primary]),
            ..RunOptions::default()
        },
    ));
    let want = spec.queues.max_receive_count.to_string();
    match played {
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(r#"the stack sets MAX_RECEIVE_COUNT="9""#)
                    && text.contains(&format!(r#"MAX_RECEIVE_COUNT="{want}""#))
                    && text.contains("autobackup-checksum-validator-dev-"),
                "{text}"
            );
        }
        Ok(outcome) => panic!(
            "played although the template's validator disagrees with the topology:\n{}",
            outcome.transcript
        ),
    }
}

/// `harness invoke validator` with AWS's documented sample SQS event (two "Test message."
/// bodies): the real binary answers both as batch item failures and logs its decisions.
#[test]
fn invoke_answers_the_aws_sample_event() {
    zips();
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
    let timing = spec.profile("fast").cloned().expect("fast profile");
    let sample = include_str!("../fixtures/events/sqs-standard-queue.json");
    let out = runtime()
        .block_on(harness::cli::invoke::invoke_on(
            ministack(),
            &spec,
            timing,
            FunctionName::Validator,
            sample,
        ))
        .expect("invoked");
    assert_eq!(out.invoked.status, 200);
    assert_eq!(out.invoked.function_error, None, "{}", out.invoked.payload);
    let response: serde_json::Value =
        serde_json::from_str(&out.invoked.payload).expect("a JSON response");
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "059f36b4-87a3-44ab-83d2-661975830a7d",
            "2e1424d4-f796-459a-8184-9c92662be6da"
        ]
    );
    assert!(
        out.log
            .iter()
            .any(|l| l.contains("record decided") && l.contains("malformed")),
        "{:#?}",
        out.log
    );
}

/// The committed templates (replica, primary).
fn committed_templates() -> [String; 2] {
    use harness::topology::template::{self, StackPart};
    StackPart::ALL.map(|part| {
        std::fs::read_to_string(template::default_dir().join(part.file_name()))
            .expect("the committed template")
    })
}

/// The primary template with the functions in it (the x86_64 zips uploaded to an artifact
/// bucket on the engine, `ArtifactBucket` set), with `edit` applied.
fn with_functions(bucket: &str, edit: impl FnOnce(&mut serde_json::Value)) -> [String; 2] {
    let [replica, primary] = committed_templates();
    let mut doc: serde_json::Value = serde_norway::from_str(&primary).expect("template parses");
    doc["Parameters"]["ArtifactBucket"]["Default"] = bucket.into();
    doc["Parameters"]["Architecture"]["Default"] = "x86_64".into();
    edit(&mut doc);
    [replica, serde_norway::to_string(&doc).expect("serializes")]
}

/// The third deliberately broken template: with the functions and their mappings in the
/// stack (MiniStack's CloudFormation makes them), the committed mappings pass the posture
/// check; one without `ReportBatchItemFailures` fails it, naming the queue and the function.
#[test]
fn a_mapping_without_batch_item_failures_fails_the_gate() {
    zips();
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
    let engine = ministack();
    runtime().block_on(async {
        let clients = engine
            .clients(&spec.primary_region, &spec.replica_region)
            .await;
        let bucket = format!("autobackup-artifacts-{}", harness::topology::new_suffix());
        clients
            .s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("artifact bucket");
        for p in package::locate(Arch::X86_64).expect("x86_64 zips") {
            clients
                .s3
                .put_object()
                .bucket(&bucket)
                .key(package::artifact_key(p.function))
                .body(p.bytes().expect("zip").into())
                .send()
                .await
                .expect("zip uploaded");
        }
        let failed = |checks: &[harness::report::case::Check]| -> Vec<(String, String)> {
            checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| (c.id.clone(), c.resource.clone()))
                .collect()
        };
        let checks = harness::posture::read::run_with(
            engine,
            &spec,
            Via::Cloudformation,
            Some(with_functions(&bucket, |_| {})),
        )
        .await
        .expect("posture on the stacks");
        let mappings = checks
            .iter()
            .filter(|c| c.id == "mapping-batch-item-failures")
            .count();
        assert_eq!(mappings, 5, "one check per mapping: {checks:#?}");
        assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));

        let checks = harness::posture::read::run_with(
            engine,
            &spec,
            Via::Cloudformation,
            Some(with_functions(&bucket, |doc| {
                doc["Resources"]["ValidatorValidationQueueMapping"]["Properties"]
                    .as_object_mut()
                    .expect("mapping properties")
                    .remove("FunctionResponseTypes");
            })),
        )
        .await
        .expect("posture on the stacks");
        let failures = failed(&checks);
        assert_eq!(failures.len(), 1, "{failures:#?}");
        assert_eq!(failures[0].0, "mapping-batch-item-failures");
        let resource = &failures[0].1;
        assert!(
            resource.starts_with("mapping autobackup-validation-queue-dev-")
                && resource.contains("-> autobackup-checksum-validator-dev-"),
            "{resource}"
        );
        let _ = harness::topology::teardown::delete_bucket(&clients.s3, &bucket).await;
    });
}

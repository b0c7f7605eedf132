//! End to end: the posture checks of `harness gate` on a topology provisioned from the
//! CloudFormation templates (`--via cloudformation`). The committed template passes every
//! check on each engine; a deliberately broken copy (a queue's redrive policy removed, a
//! bucket's public access block turned off) makes exactly the check of that setting fail,
//! naming the resource, and nothing else. (The third break, a mapping without
//! `ReportBatchItemFailures`, needs the functions in the stack: `tests/deployed.rs`.)
//!
//! Engines: `E2E_ENGINES` (default `localstack,ministack`).

#![cfg(feature = "e2e")]

use harness::engine::{EngineKind, StartOptions};
use harness::posture;
use harness::probe;
use harness::report::case::Check;
use harness::topology::provision::Via;
use harness::topology::template::{self, StackPart};
use harness::topology::TopologySpec;
use serde_json::Value;

fn enabled(kind: EngineKind) -> bool {
    std::env::var("E2E_ENGINES")
        .unwrap_or_else(|_| "localstack,ministack".into())
        .split(',')
        .any(|e| e.trim() == kind.name())
}

/// The committed template files (replica, primary), as a team would deploy them.
fn committed() -> [String; 2] {
    StackPart::ALL.map(|part| {
        std::fs::read_to_string(template::default_dir().join(part.file_name()))
            .expect("the committed template")
    })
}

/// The primary template with `edit` applied to its parsed document.
fn broken(edit: impl FnOnce(&mut Value)) -> [String; 2] {
    let [replica, primary] = committed();
    let mut doc: Value = serde_norway::from_str(&primary).expect("the template parses");
    edit(&mut doc);
    [
        replica,
        serde_norway::to_string(&doc).expect("the template serializes"),
    ]
}

fn failed(checks: &[Check]) -> Vec<(String, String, String)> {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| (c.id.clone(), c.resource.clone(), c.setting.clone()))
        .collect()
}

async fn broken_templates_fail_the_named_check(kind: EngineKind) {
    if !enabled(kind) {
        eprintln!("{kind} not in E2E_ENGINES: not run");
        return;
    }
    let engine = probe::start(
        kind,
        &StartOptions {
            // A MiniStack serves CloudFormation only with its Lambda service.
            lambda: kind == EngineKind::Ministack,
            ..StartOptions::default()
        },
    )
    .await
    .expect("engine starts");
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology file");

    let checks = posture::read::run_with(&engine, &spec, Via::Cloudformation, Some(committed()))
        .await
        .expect("posture checks on the stacks");
    assert!(
        failed(&checks).is_empty(),
        "every check holds on the committed template: {:#?}",
        failed(&checks)
    );
    assert!(checks.len() > 40, "{} checks", checks.len());

    let no_redrive = broken(|doc| {
        doc["Resources"]["ValidationQueue"]["Properties"]
            .as_object_mut()
            .expect("queue properties")
            .remove("RedrivePolicy");
    });
    let checks = posture::read::run_with(&engine, &spec, Via::Cloudformation, Some(no_redrive))
        .await
        .expect("posture checks on the stacks");
    let failures = failed(&checks);
    let dlq: Vec<&Check> = checks.iter().filter(|c| c.id == "queue-dlq").collect();
    assert_eq!(failures.len(), 1, "{failures:#?} {dlq:#?}");
    let (id, resource, setting) = &failures[0];
    assert_eq!(id, "queue-dlq");
    assert!(
        resource.starts_with("autobackup-validation-queue-dev-"),
        "{resource}"
    );
    assert_eq!(setting, "RedrivePolicy");

    let public = broken(|doc| {
        doc["Resources"]["DocumentsPrimaryBucket"]["Properties"]
            ["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = Value::Bool(false);
    });
    let checks = posture::read::run_with(&engine, &spec, Via::Cloudformation, Some(public))
        .await
        .expect("posture checks on the stacks");
    let failures = failed(&checks);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    let (id, resource, setting) = &failures[0];
    assert_eq!(id, "bucket-public-access-block");
    assert!(
        resource.starts_with("autobackup-documents-primary-dev-"),
        "{resource}"
    );
    assert_eq!(setting, "BlockPublicPolicy");
}

#[tokio::test(flavor = "multi_thread")]
async fn localstack_broken_templates_fail_the_named_check() {
    broken_templates_fail_the_named_check(EngineKind::Localstack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ministack_broken_templates_fail_the_named_check() {
    broken_templates_fail_the_named_check(EngineKind::Ministack).await;
}

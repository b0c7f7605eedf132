//! End to end: the posture checks on a provisioned topology. On the default topology every
//! check holds; provisioned with one public-access-block flag turned off
//! (`[buckets.public_access_block]`), exactly that check fails, on every bucket, naming the
//! bucket and the flag, and nothing else changes.

#![cfg(feature = "e2e")]

use std::collections::BTreeSet;

use harness::engine::{EngineKind, StartOptions};
use harness::posture;
use harness::probe;
use harness::report::case::Check;
use harness::topology::provision::Via;
use harness::topology::TopologySpec;

fn failed(checks: &[Check]) -> Vec<&Check> {
    checks.iter().filter(|c| !c.passed).collect()
}

async fn posture_holds_and_names_one_disabled_flag(kind: EngineKind) {
    let engine = probe::start(kind, &StartOptions::default())
        .await
        .expect("engine starts");
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology file");

    let checks = posture::read::run(&engine, &spec, Via::Direct)
        .await
        .expect("posture checks");
    assert!(
        failed(&checks).is_empty(),
        "every check holds on the default topology: {:#?}",
        failed(&checks)
    );
    let ids: BTreeSet<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    for id in [
        posture::CheckId::BucketVersioning,
        posture::CheckId::BucketEncryption,
        posture::CheckId::BucketPublicAccessBlock,
        posture::CheckId::ReplicationCoverage,
        posture::CheckId::ReplicationDeleteMarkers,
        posture::CheckId::ReplicationSseKms,
        posture::CheckId::QueueEncryption,
        posture::CheckId::QueueDlq,
        posture::CheckId::RuleTargetDlq,
        posture::CheckId::TopicEncryption,
        posture::CheckId::RoleActions,
        posture::CheckId::RoleResources,
        posture::CheckId::RoleTrust,
        posture::CheckId::QueuePolicy,
        posture::CheckId::KeyPolicy,
    ] {
        assert!(ids.contains(id.as_str()), "{} never checked", id.as_str());
    }
    // Every bucket (six backup buckets and the alert ledger) has all four flags checked.
    let flagged: BTreeSet<&str> = checks
        .iter()
        .filter(|c| c.id == "bucket-public-access-block")
        .map(|c| c.resource.as_str())
        .collect();
    assert_eq!(flagged.len(), 7, "{flagged:?}");

    let mut open = spec.clone();
    open.buckets.public_access_block.ignore_public_acls = false;
    let again = posture::read::run(&engine, &open, Via::Direct)
        .await
        .expect("posture checks");
    assert_eq!(again.len(), checks.len());
    let red = failed(&again);
    assert_eq!(red.len(), flagged.len(), "one failure per bucket: {red:#?}");
    for c in &red {
        assert_eq!(
            (c.id.as_str(), c.setting.as_str()),
            ("bucket-public-access-block", "IgnorePublicAcls"),
            "{c:#?}"
        );
        assert!(
            c.resource.starts_with("autobackup-"),
            "names the bucket: {c:#?}"
        );
        assert_eq!(c.detail, "false (required: true)");
    }
    let red_buckets: BTreeSet<String> = red
        .iter()
        .map(|c| c.resource.rsplit_once('-').unwrap().0.to_string())
        .collect();
    let all_buckets: BTreeSet<String> = flagged
        .iter()
        .map(|b| b.rsplit_once('-').unwrap().0.to_string())
        .collect();
    assert_eq!(
        red_buckets, all_buckets,
        "every bucket, minus its run suffix"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn posture_on_ministack() {
    posture_holds_and_names_one_disabled_flag(EngineKind::Ministack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn posture_on_localstack() {
    posture_holds_and_names_one_disabled_flag(EngineKind::Localstack).await;
}

//! End to end: provisioning is idempotent (a second run with the same suffix creates
//! nothing and succeeds) and teardown removes everything, on each engine; and the
//! replicator's full discovery pages through a real engine's ListObjectVersions.

#![cfg(feature = "e2e")]

use harness::engine::{EngineKind, StartOptions};
use harness::probe;
use harness::topology::provision::{provision, ProvisionOptions};
use harness::topology::replication;
use harness::topology::teardown::teardown;
use harness::topology::{new_suffix, TopologySpec};

async fn provision_twice(kind: EngineKind) {
    let engine = probe::start(kind, &StartOptions::default())
        .await
        .expect("engine starts");
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology file");
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let caps = engine.capabilities();
    let mode = replication::mode(&caps);
    let opts = ProvisionOptions {
        timing: spec.profile("seed").unwrap().clone(),
        replication_on_engine: replication::configure_on_engine(&mode),
        via: harness::topology::provision::Via::Direct,
        stack: Default::default(),
    };
    let suffix = new_suffix();
    let (first_topology, first) = provision(&clients, &spec, &suffix, &opts)
        .await
        .expect("first provision");
    let (second_topology, second) = provision(&clients, &spec, &suffix, &opts)
        .await
        .expect("second provision");
    assert_eq!(
        first.created(),
        first.steps.len(),
        "a new suffix creates everything:\n{}",
        first.render()
    );
    assert_eq!(
        second.created(),
        0,
        "the second run creates nothing:\n{}",
        second.render()
    );
    assert_eq!(first.steps.len(), second.steps.len());
    assert_eq!(
        first_topology.queues.validation.url,
        second_topology.queues.validation.url
    );
    assert_eq!(first_topology.topic_arn, second_topology.topic_arn);
    // 6 buckets and the notifier's alert ledger, 6 queues, 4 keys (SQS, SNS, the S3 key of
    // SSE-KMS primaries, the replica-region CMK), 5 roles, topic,
    // subscription, rule, 3 notifications; 3 replication configurations only where the
    // engine replicates as AWS does (on a local engine the fidelity layer holds them).
    let on_engine = if first_topology.replication_on_engine {
        3
    } else {
        0
    };
    assert_eq!(
        first.steps.len(),
        6 + 1 + 6 + 4 + 5 + 1 + 1 + 1 + 3 + on_engine
    );
    assert_eq!(first_topology.replication.len(), 3);

    let removed = teardown(&clients, &spec, &suffix).await;
    assert!(removed.problems.is_empty(), "{:?}", removed.problems);
    let again = teardown(&clients, &spec, &suffix).await;
    assert!(
        again.removed.is_empty(),
        "second teardown finds nothing: {:?}",
        again.removed
    );
    for b in first_topology.buckets() {
        assert!(clients
            .s3
            .head_bucket()
            .bucket(&b.primary)
            .send()
            .await
            .is_err());
    }
    assert!(
        clients
            .s3
            .head_bucket()
            .bucket(&first_topology.names.alert_ledger)
            .send()
            .await
            .is_err(),
        "teardown removes the alert ledger"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_is_idempotent_on_ministack() {
    provision_twice(EngineKind::Ministack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_is_idempotent_on_localstack() {
    provision_twice(EngineKind::Localstack).await;
}

/// Finding 14: a same-named bucket and queue that are not this run's (no ownership tags:
/// a real deployment whose suffix collides, something made by hand) are never reconfigured
/// by provisioning nor deleted by teardown, and both say so.
async fn foreign_resources_are_left_alone(kind: EngineKind) {
    let engine = probe::start(kind, &StartOptions::default())
        .await
        .expect("engine starts");
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology file");
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let suffix = new_suffix();
    let names = harness::topology::Names::new(&spec, &suffix);
    let bucket = names.buckets[0].primary.clone();
    clients
        .s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("a bucket made by hand");
    clients
        .s3
        .put_object()
        .bucket(&bucket)
        .key("precious.txt")
        .body(b"not the harness's".to_vec().into())
        .send()
        .await
        .expect("an object in it");
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(&names.validation_queue)
        .send()
        .await
        .expect("a queue made by hand")
        .queue_url()
        .unwrap_or_default()
        .to_string();

    let caps = engine.capabilities();
    let mode = replication::mode(&caps);
    let opts = ProvisionOptions {
        timing: spec.profile("seed").unwrap().clone(),
        replication_on_engine: replication::configure_on_engine(&mode),
        via: harness::topology::provision::Via::Direct,
        stack: Default::default(),
    };
    let Err(refused) = provision(&clients, &spec, &suffix, &opts).await else {
        panic!("provisioning must refuse a bucket it does not own");
    };
    assert!(
        refused.to_string().contains("without this run's tags"),
        "{refused}"
    );

    let report = teardown(&clients, &spec, &suffix).await;
    for (kind, name) in [
        ("s3 bucket", &bucket),
        ("sqs queue", &names.validation_queue),
    ] {
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(name.as_str()) && p.contains("left untouched")),
            "teardown reports {name} as not its own: {:?}",
            report.problems
        );
        assert!(
            !report.removed.contains(&format!("{kind} {name}")),
            "{name} removed: {:?}",
            report.removed
        );
    }
    let kept = clients
        .s3
        .get_object()
        .bucket(&bucket)
        .key("precious.txt")
        .send()
        .await
        .expect("the object survives teardown");
    assert_eq!(kept.content_length(), Some(17));
    assert!(clients
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .send()
        .await
        .is_ok());

    // Clean up what the test made by hand (and whatever provisioning created before it
    // stopped, which teardown removed as its own).
    let _ = harness::topology::teardown::delete_bucket(&clients.s3, &bucket).await;
    let _ = clients.sqs.delete_queue().queue_url(&queue).send().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_resources_are_left_alone_on_ministack() {
    foreign_resources_are_left_alone(EngineKind::Ministack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_resources_are_left_alone_on_localstack() {
    foreign_resources_are_left_alone(EngineKind::Localstack).await;
}

/// The replicator's full discovery reads a bucket one ListObjectVersions page at a time and
/// never splits a key's versions over two batches: with two keys per page, every version
/// is seen once, and each key's versions arrive together, oldest first, as uploaded.
async fn discovery_pages_keep_each_key_whole(kind: EngineKind) {
    let engine = probe::start(kind, &StartOptions::default())
        .await
        .expect("engine starts");
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology file");
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let bucket = format!("paging-{}", new_suffix());
    let s3 = &clients.s3;
    let mut create = s3.create_bucket().bucket(&bucket);
    if spec.primary_region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(spec.primary_region.as_str().into())
                .build(),
        );
    }
    create.send().await.expect("bucket created");
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning on");
    // a: 3 versions, b: 2, c: 4, d: 1, uploaded interleaved.
    let plan = ["a", "b", "c", "a", "c", "d", "b", "a", "c", "c"];
    let mut uploaded: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (i, key) in plan.iter().enumerate() {
        let put = s3
            .put_object()
            .bucket(&bucket)
            .key(*key)
            .body(format!("{key} {i}").into_bytes().into())
            .send()
            .await
            .expect("upload");
        uploaded
            .entry(key.to_string())
            .or_default()
            .push(put.version_id().expect("a version id").to_string());
        // Distinct LastModified seconds, so oldest-first is well defined.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let batches = harness::fidelity::replicator::discovery_batches(s3, &bucket, 2)
        .await
        .expect("listing");
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for batch in &batches {
        let keys: std::collections::BTreeSet<&String> = batch.iter().map(|(k, _)| k).collect();
        for key in keys {
            assert!(
                !seen.contains_key(key),
                "{key}'s versions came in two batches: {batches:?}"
            );
        }
        for (key, id) in batch {
            seen.entry(key.clone()).or_default().push(id.clone());
        }
    }
    assert_eq!(seen, uploaded, "batches: {batches:?}");
    assert!(
        batches.len() > 1,
        "two keys per page must take more than one page: {batches:?}"
    );
    let _ = harness::topology::teardown::delete_bucket(s3, &bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_pages_keep_each_key_whole_on_ministack() {
    discovery_pages_keep_each_key_whole(EngineKind::Ministack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_pages_keep_each_key_whole_on_localstack() {
    discovery_pages_keep_each_key_whole(EngineKind::Localstack).await;
}

//! End to end: a MiniStack the harness starts serves only what the topology and the
//! in-process functions use. Its Lambda service (which runs any client's `provided.*`
//! bootstrap as a local process of this user) is on only when `--functions deployed` asks
//! for it (security review 2, M1). On the same engine: the event source mapping reads each
//! failed entry of a `DeleteMessageBatch` answer (finding 23).

#![cfg(feature = "e2e")]

use harness::engine::{EngineKind, StartOptions};
use harness::probe;

async fn list_functions(engine: &harness::engine::Engine) -> Result<usize, String> {
    let clients = engine.clients("us-east-1", "us-west-2").await;
    let lambda = aws_sdk_lambda::Client::new(&clients.sdk);
    lambda
        .list_functions()
        .send()
        .await
        .map(|r| r.functions().len())
        .map_err(harness::errors::sdk)
}

#[tokio::test(flavor = "multi_thread")]
async fn ministack_runs_no_lambda_unless_deployed_functions_ask_for_it() {
    let plain = probe::start(
        EngineKind::Ministack,
        &StartOptions {
            fresh: true,
            ..StartOptions::default()
        },
    )
    .await
    .expect("MiniStack starts");
    assert!(!plain.lambda);
    // L7: the engine's run directory, log and owner record are this user's only.
    {
        use std::os::unix::fs::MetadataExt;
        let log = plain.log.clone().expect("a host engine has a log");
        let run_dir = log.parent().expect("its run directory");
        let run = run_dir.parent().expect("the run root");
        for (path, closed) in [(run, 0o077), (log.as_path(), 0o077)] {
            let mode = std::fs::metadata(path).expect("exists").mode();
            assert_eq!(
                mode & closed,
                0,
                "{} is mode {:o}",
                path.display(),
                mode & 0o777
            );
        }
        let owner = run_dir.join("owner.json");
        if owner.exists() {
            assert_eq!(std::fs::metadata(&owner).unwrap().mode() & 0o077, 0);
        }
    }
    let refused = list_functions(&plain).await;
    assert!(
        refused.is_err(),
        "a MiniStack started for in-process functions answered lambda:ListFunctions: {refused:?}"
    );
    // The services the topology needs still answer.
    let clients = plain.clients("us-east-1", "us-west-2").await;
    clients
        .sqs
        .list_queues()
        .send()
        .await
        .expect("SQS is served");
    // Finding 23 (partial): a DeleteMessageBatch entry the engine refuses is answered, not
    // dropped (the call itself succeeds).
    let url = clients
        .sqs
        .create_queue()
        .queue_name("esm-delete-check")
        .send()
        .await
        .expect("a queue")
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let not_deleted =
        harness::esm::delete_receipts(&clients.sqs, &url, ["not-a-receipt-handle"].into_iter())
            .await
            .expect("the call succeeds");
    assert_eq!(not_deleted.len(), 1, "{not_deleted:?}");
    assert_eq!(not_deleted[0].code, "ReceiptHandleIsInvalid");
    let deploy = harness::deployed::check_engine(&plain).expect_err("deployed mode is refused");
    assert!(deploy.to_string().contains("--lambda"), "{deploy}");
    // Nor CloudFormation: a stack's event source mapping runs its function whether or not
    // Lambda is served.
    let stacks = aws_sdk_cloudformation::Client::new(&clients.sdk)
        .list_stacks()
        .send()
        .await;
    assert!(stacks.is_err(), "CloudFormation answered: {stacks:?}");
    let cfn = harness::topology::provision::stack::check_engine(&plain)
        .expect_err("--via cloudformation is refused");
    assert!(cfn.to_string().contains("--lambda"), "{cfn}");
    plain.stop();

    let with_lambda = probe::start(
        EngineKind::Ministack,
        &StartOptions {
            fresh: true,
            lambda: true,
            ..StartOptions::default()
        },
    )
    .await
    .expect("MiniStack starts with Lambda");
    assert!(with_lambda.lambda);
    assert_eq!(list_functions(&with_lambda).await, Ok(0));
    harness::deployed::check_engine(&with_lambda).expect("deployed mode is allowed");
    let clients = with_lambda.clients("us-east-1", "us-west-2").await;
    aws_sdk_cloudformation::Client::new(&clients.sdk)
        .list_stacks()
        .send()
        .await
        .expect("CloudFormation is served with Lambda");
}

#[test]
fn the_services_filter_adds_lambda_only_when_asked() {
    let plain = harness::engine::process::ministack_services(false);
    assert!(!plain.split(',').any(|s| s == "lambda"), "{plain}");
    assert!(!plain.split(',').any(|s| s == "cloudformation"), "{plain}");
    for needed in ["s3", "sqs", "sns", "events", "kms", "iam", "sts"] {
        assert!(plain.split(',').any(|s| s == needed), "{needed} in {plain}");
    }
    let deployed = harness::engine::process::ministack_services(true);
    assert!(deployed.split(',').any(|s| s == "lambda"), "{deployed}");
    assert!(deployed.split(',').any(|s| s == "logs"), "{deployed}");
    assert!(
        deployed.split(',').any(|s| s == "cloudformation"),
        "{deployed}"
    );
}

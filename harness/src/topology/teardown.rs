//! Teardown: removes every resource a run created (found again by its names), buckets with
//! all their versions and delete markers. Missing resources are fine: teardown is
//! idempotent too. A resource is deleted only if it carries this run's ownership tags
//! (`ownership.rs`); a same-named one without them is left alone and reported.

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::ownership::{self, Ownership};
use super::{Names, TopologySpec};
use crate::aws::Clients;
use crate::errors::sdk;
use crate::s3util::{listed_key, xml_can_carry, LISTING_ENCODING};

/// What teardown removed.
#[derive(Debug, Default)]
pub struct TeardownReport {
    pub removed: Vec<String>,
    pub problems: Vec<String>,
    pub total: Duration,
}

/// Removes the topology of `suffix`.
pub async fn teardown(clients: &Clients, spec: &TopologySpec, suffix: &str) -> TeardownReport {
    let started = Instant::now();
    let names = Names::new(spec, suffix);
    let mut report = TeardownReport::default();

    // A `--via cloudformation` run's stacks first (they retain the buckets, removed below
    // with the rest of what the run owns).
    let (removed, problems) = super::provision::stack::delete_stacks(clients, spec, suffix).await;
    report.removed.extend(removed);
    report.problems.extend(problems);

    // Functions a kept `--functions deployed` run left, with their mappings (LocalStack
    // runs here without Lambda: nothing to ask it).
    if clients.kind != crate::engine::EngineKind::Localstack {
        let (removed, problems) = teardown_functions(&clients.sdk, &names, suffix).await;
        report.removed.extend(removed);
        report.problems.extend(problems);
    }

    let bucket_jobs = names
        .buckets
        .iter()
        .flat_map(|b| {
            std::iter::once((b.primary.clone(), &clients.s3)).chain(
                b.destinations()
                    .into_iter()
                    .map(|d| (d, &clients.s3_replica)),
            )
        })
        .chain([
            (names.alert_ledger.clone(), &clients.s3),
            (names.artifacts.clone(), &clients.s3),
        ]);
    let results = futures::future::join_all(bucket_jobs.map(|(name, s3)| async move {
        if s3.head_bucket().bucket(&name).send().await.is_err() {
            return (name, Ok(false));
        }
        if let Ownership::Foreign(why) = ownership::bucket(s3, &name, suffix).await {
            return (name, Err(why));
        }
        let r = empty_and_delete(s3, &name).await.map(|()| true);
        (name, r)
    }))
    .await;
    for (name, r) in results {
        match r {
            Ok(true) => report.removed.push(format!("s3 bucket {name}")),
            Ok(false) => {}
            Err(e) => report.problems.push(format!("s3 bucket {name}: {e}")),
        }
    }

    // EventBridge rule (targets first).
    let rule = clients
        .events
        .describe_rule()
        .name(&names.rule)
        .send()
        .await
        .ok();
    let rule_owned = match rule.as_ref().and_then(|r| r.arn()) {
        Some(arn) => match ownership::rule(clients, arn, suffix).await {
            Ownership::Ours => true,
            Ownership::Foreign(why) => {
                report
                    .problems
                    .push(format!("eventbridge rule {}: {why}", names.rule));
                false
            }
        },
        None => false,
    };
    if rule_owned {
        let _ = clients
            .events
            .remove_targets()
            .rule(&names.rule)
            .ids("SendToValidationQueue")
            .send()
            .await;
        match clients.events.delete_rule().name(&names.rule).send().await {
            Ok(_) => report
                .removed
                .push(format!("eventbridge rule {}", names.rule)),
            Err(e) => report
                .problems
                .push(format!("rule {}: {}", names.rule, sdk(e))),
        }
    }

    for q in [
        &names.validation_queue,
        &names.validation_dlq,
        &names.failure_queue,
        &names.failure_dlq,
        &names.events_dlq,
        &names.alerts_queue,
    ] {
        if let Ok(found) = clients.sqs.get_queue_url().queue_name(q).send().await {
            let url = found.queue_url().unwrap_or_default().to_string();
            if let Ownership::Foreign(why) = ownership::queue(clients, &url, suffix).await {
                report.problems.push(format!("sqs queue {q}: {why}"));
                continue;
            }
            match clients.sqs.delete_queue().queue_url(url).send().await {
                Ok(_) => report.removed.push(format!("sqs queue {q}")),
                Err(e) => report.problems.push(format!("queue {q}: {}", sdk(e))),
            }
        }
    }

    if let Ok(topics) = clients.sns.list_topics().send().await {
        for t in topics.topics() {
            let Some(arn) = t.topic_arn() else { continue };
            if arn.ends_with(&format!(":{}", names.topic)) {
                if let Ownership::Foreign(why) = ownership::topic(clients, arn, suffix).await {
                    report
                        .problems
                        .push(format!("sns topic {}: {why}", names.topic));
                    continue;
                }
                match clients.sns.delete_topic().topic_arn(arn).send().await {
                    Ok(_) => report.removed.push(format!("sns topic {}", names.topic)),
                    Err(e) => report.problems.push(format!("topic: {}", sdk(e))),
                }
            }
        }
    }

    let mut roles = vec![names.validator_role.clone(), names.notifier_role.clone()];
    roles.extend(names.buckets.iter().map(|b| Names::crr_role(&b.primary)));
    for role in roles {
        if clients
            .iam
            .get_role()
            .role_name(&role)
            .send()
            .await
            .is_err()
        {
            continue;
        }
        if let Ownership::Foreign(why) = ownership::role(clients, &role, suffix).await {
            report.problems.push(format!("iam role {role}: {why}"));
            continue;
        }
        if let Ok(policies) = clients
            .iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await
        {
            for p in policies.policy_names() {
                let _ = clients
                    .iam
                    .delete_role_policy()
                    .role_name(&role)
                    .policy_name(p)
                    .send()
                    .await;
            }
        }
        match clients.iam.delete_role().role_name(&role).send().await {
            Ok(_) => report.removed.push(format!("iam role {role}")),
            Err(e) => report.problems.push(format!("role {role}: {}", sdk(e))),
        }
    }

    for key in names.keys() {
        let (alias, kms) = if key.in_replica_region() {
            (key.alias, &clients.kms_replica)
        } else {
            (key.alias, &clients.kms)
        };
        if let Ok(found) = kms.describe_key().key_id(alias).send().await {
            let key_id = found
                .key_metadata()
                .map(|m| m.key_id().to_string())
                .unwrap_or_default();
            if let Ownership::Foreign(why) = ownership::key(kms, &key_id, suffix).await {
                report.problems.push(format!("kms key {alias}: {why}"));
                continue;
            }
            let _ = kms.delete_alias().alias_name(alias).send().await;
            let _ = kms
                .schedule_key_deletion()
                .key_id(&key_id)
                .pending_window_in_days(7)
                .send()
                .await;
            report
                .removed
                .push(format!("kms key {alias} (deletion scheduled)"));
        }
    }
    report.total = started.elapsed();
    report
}

/// Empties (every version and delete marker) and deletes a bucket. `Ok(false)` when absent.
/// Callers check ownership first (teardown does); this only deletes.
pub async fn delete_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, String> {
    if s3.head_bucket().bucket(bucket).send().await.is_err() {
        return Ok(false);
    }
    empty_and_delete(s3, bucket).await.map(|()| true)
}

/// Deletes every version and delete marker of an existing bucket, then the bucket.
async fn empty_and_delete(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .encoding_type(LISTING_ENCODING)
            .send()
            .await
            .map_err(sdk)?;
        let encoding = page.encoding_type();
        let listed = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            );
        let mut ids: Vec<ObjectIdentifier> = Vec::new();
        let mut one_by_one: Vec<(String, String)> = Vec::new();
        for (k, id) in listed {
            let (Some(k), Some(id)) = (k, id) else {
                continue;
            };
            let key = listed_key(k, encoding);
            if xml_can_carry(&key) {
                ids.push(
                    ObjectIdentifier::builder()
                        .key(key)
                        .version_id(id)
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            } else {
                one_by_one.push((key, id.to_string()));
            }
        }
        if ids.is_empty() && one_by_one.is_empty() {
            break;
        }
        // A key XML 1.0 cannot carry cannot be named in a DeleteObjects body.
        for (key, id) in &one_by_one {
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .version_id(id)
                .send()
                .await
                .map_err(sdk)?;
        }
        for chunk in ids.chunks(1000) {
            s3.delete_objects()
                .bucket(bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(chunk.to_vec()))
                        .quiet(true)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .send()
                .await
                .map_err(sdk)?;
        }
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(sdk)?;
    Ok(())
}

/// Teardown of the functions a kept run left (`--keep`): each function of `suffix` that
/// carries this run's ownership tags (`ManagedBy=harness`, `HarnessRun=<suffix>`) goes with
/// its event source mappings and log group; one without them is reported, not touched. An
/// engine without a Lambda service (or no such function) is nothing to do.
pub async fn teardown_functions(
    sdk: &aws_config::SdkConfig,
    names: &Names,
    suffix: &str,
) -> (Vec<String>, Vec<String>) {
    // One attempt per call: an engine without Lambda answers at once, nothing to retry.
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let logs = aws_sdk_cloudwatchlogs::Client::new(sdk);
    let (mut removed, mut problems) = (Vec::new(), Vec::new());
    for role in [&names.validator_role, &names.notifier_role] {
        let name = super::policy::function_of(role);
        let Ok(f) = lambda.get_function().function_name(&name).send().await else {
            continue;
        };
        let tags = f.tags().cloned().unwrap_or_default();
        let ours = tags.get("ManagedBy").map(String::as_str) == Some("harness")
            && tags.get("HarnessRun").map(String::as_str) == Some(suffix);
        if !ours {
            problems.push(format!(
                "lambda function {name}: not tagged as this run's (ManagedBy=harness, HarnessRun={suffix}); left alone"
            ));
            continue;
        }
        if let Ok(m) = lambda
            .list_event_source_mappings()
            .function_name(&name)
            .send()
            .await
        {
            for uuid in m.event_source_mappings().iter().filter_map(|m| m.uuid()) {
                let _ = lambda.delete_event_source_mapping().uuid(uuid).send().await;
            }
        }
        match lambda.delete_function().function_name(&name).send().await {
            Ok(_) => removed.push(format!("lambda function {name}")),
            Err(e) => problems.push(format!("lambda function {name}: {}", crate::errors::sdk(e))),
        }
        let _ = logs
            .delete_log_group()
            .log_group_name(format!("/aws/lambda/{name}"))
            .send()
            .await;
    }
    (removed, problems)
}

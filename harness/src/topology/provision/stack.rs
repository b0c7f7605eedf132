//! `--via cloudformation`: the topology provisioned from its CloudFormation templates
//! ([`crate::topology::template`]) with `CreateStack`, the replica stack first, then the
//! primary stack with the replica CMK's ARN; the run's [`Topology`] is read from the stacks'
//! outputs. A stack that fails is reported with its failed events (logical id, type,
//! reason), then deleted.
//!
//! What an engine's CloudFormation accepts but does not apply is read back after the stacks
//! complete and applied with the harness's direct calls, each named in the report as a
//! `filled` step (`engine/gaps.rs`, "CloudFormation" rows): the check is by setting, not by
//! engine, so an engine that applies it needs no fill. Replication is not filled: on local
//! engines the harness replicator applies the same rules ([`super::replication_config`],
//! the function the template's `ReplicationConfiguration` is generated from).
//!
//! The harness adds one thing no deployment has: a queue of its own subscribed to the
//! failure topic, in place of the alert e-mail, so a run can observe the alerts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus, Tag};

use super::ensure::{
    category_lifecycle, ensure_private_encrypted, ensure_queue, ensure_subscription, put_lifecycle,
};
use super::options::ProvisionOptions;
use super::report::{fail, record, Log, Status};
use super::ProvisionReport;
use crate::aws::Clients;
use crate::errors::sdk;
use crate::topology::template::{self, StackPart};
use crate::topology::{
    ownership, policy, Names, ProvisionError, QueueRef, Queues, Topology, TopologySpec,
};

/// How long a stack may take to create or delete.
const STACK_TIMEOUT: Duration = Duration::from_secs(600);

/// Refuses an engine that serves no CloudFormation: a MiniStack serves it only with its
/// Lambda service (its stacks can make and run functions), which the harness turns on for
/// `--via cloudformation` when it starts the engine.
pub fn check_engine(engine: &crate::engine::Engine) -> Result<(), ProvisionError> {
    if engine.flavor == crate::engine::Flavor::Ministack && !engine.lambda {
        return Err(ProvisionError::new(
            "--via cloudformation",
            "this MiniStack was started without CloudFormation (the harness serves it only with \
             the Lambda service, since a stack can run code as you): let the command start its \
             own, or start it with `engine up --lambda`",
        ));
    }
    Ok(())
}

fn cfn(clients: &Clients, part: StackPart) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(match part {
        StackPart::Replica => &clients.replica_sdk,
        StackPart::Primary => &clients.sdk,
    })
}

fn param(k: &str, v: impl Into<String>) -> Parameter {
    Parameter::builder()
        .parameter_key(k)
        .parameter_value(v)
        .build()
}

/// The failed events of a stack, newest last: `logical id (type): status: reason`.
pub async fn failed_events(cf: &aws_sdk_cloudformation::Client, stack: &str) -> Vec<String> {
    let Ok(out) = cf.describe_stack_events().stack_name(stack).send().await else {
        return Vec::new();
    };
    let mut lines: Vec<String> = out
        .stack_events()
        .iter()
        .filter(|e| {
            e.resource_status()
                .is_some_and(|s| s.as_str().ends_with("_FAILED"))
        })
        .map(|e| {
            format!(
                "{} ({}): {}: {}",
                e.logical_resource_id().unwrap_or("?"),
                e.resource_type().unwrap_or("?"),
                e.resource_status().map(|s| s.as_str()).unwrap_or("?"),
                e.resource_status_reason().unwrap_or("no reason given")
            )
        })
        .collect();
    lines.reverse();
    lines
}

/// Waits until `stack` leaves its `*_IN_PROGRESS` states; its final status.
async fn settle(
    cf: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Option<StackStatus>, String> {
    let started = Instant::now();
    loop {
        let status = match cf.describe_stacks().stack_name(stack).send().await {
            Ok(out) => out.stacks().first().and_then(|s| s.stack_status().cloned()),
            // DescribeStacks on a deleted stack name answers ValidationError.
            Err(e) if sdk(&e).contains("does not exist") => return Ok(None),
            Err(e) => return Err(sdk(e)),
        };
        match status {
            Some(s) if s.as_str().ends_with("_IN_PROGRESS") => {}
            other => return Ok(other),
        }
        if started.elapsed() > STACK_TIMEOUT {
            return Err(format!(
                "still in progress after {}s",
                STACK_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates (or finds complete) one stack and returns its outputs.
#[allow(clippy::too_many_arguments)]
async fn create(
    clients: &Clients,
    spec: &TopologySpec,
    part: StackPart,
    name: &str,
    body: String,
    params: Vec<Parameter>,
    suffix: &str,
    log: &Log,
) -> Result<HashMap<String, String>, ProvisionError> {
    let t = Instant::now();
    let step = format!("cloudformation stack {name}");
    let f = fail(&step);
    let cf = cfn(clients, part);
    let existing = settle(&cf, name).await.ok().flatten();
    let status = match existing {
        Some(s) if s == StackStatus::CreateComplete || s == StackStatus::UpdateComplete => {
            Status::Exists
        }
        Some(s) => {
            return Err(f(format!(
                "exists in state {} (remove it: harness teardown --suffix {suffix})",
                s.as_str()
            )))
        }
        None => {
            let mut call = cf
                .create_stack()
                .stack_name(name)
                .template_body(body)
                .set_parameters(Some(params))
                .capabilities(Capability::CapabilityNamedIam)
                .on_failure(aws_sdk_cloudformation::types::OnFailure::DoNothing);
            // Stack tags reach every resource that takes tags (the ownership tags
            // teardown looks for), as a team's `--tags` would.
            for (k, v) in ownership::tags(suffix).into_iter().chain([
                ("Project".to_string(), spec.project.clone()),
                ("Environment".to_string(), spec.environment.clone()),
            ]) {
                call = call.tags(Tag::builder().key(k).value(v).build());
            }
            call.send().await.map_err(|e| f(sdk(e)))?;
            match settle(&cf, name).await.map_err(&f)? {
                Some(StackStatus::CreateComplete) => Status::Created,
                other => {
                    let events = failed_events(&cf, name).await;
                    let state = other.map(|s| s.as_str().to_string()).unwrap_or_default();
                    let _ = cf.delete_stack().stack_name(name).send().await;
                    let _ = settle(&cf, name).await;
                    return Err(f(format!(
                        "{state}; failed resources:\n    {}",
                        if events.is_empty() {
                            "(the engine reported no failed event)".to_string()
                        } else {
                            events.join("\n    ")
                        }
                    )));
                }
            }
        }
    };
    let out = cf
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    let outputs = out
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(resources) = cf.describe_stack_resources().stack_name(name).send().await {
        for r in resources.stack_resources() {
            record(
                log,
                format!(
                    "{} {} (stack {})",
                    r.resource_type().unwrap_or("?"),
                    r.logical_resource_id().unwrap_or("?"),
                    part.name()
                ),
                Status::Stack,
                t,
            )
            .await;
        }
    }
    record(log, step.clone(), status, t).await;
    Ok(outputs)
}

/// The template body of `part`: the options' own, or the one the spec gives.
fn body(
    opts: &ProvisionOptions,
    spec: &TopologySpec,
    seed: &crate::topology::Timing,
    part: StackPart,
) -> String {
    match (&opts.stack.templates, part) {
        (Some([replica, _]), StackPart::Replica) => replica.clone(),
        (Some([_, primary]), StackPart::Primary) => primary.clone(),
        (None, part) => template::render(spec, seed, part),
    }
}

fn output<'a>(
    outputs: &'a HashMap<String, String>,
    key: &str,
    stack: &str,
) -> Result<&'a str, ProvisionError> {
    outputs
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ProvisionError::new(
                format!("cloudformation stack {stack}"),
                format!("no output {key}"),
            )
        })
}

/// Provisions the topology of `suffix` through the two stacks.
pub async fn provision(
    clients: &Clients,
    spec: &TopologySpec,
    suffix: &str,
    opts: &ProvisionOptions,
) -> Result<(Topology, ProvisionReport), ProvisionError> {
    let started = Instant::now();
    let names = Names::new(spec, suffix);
    let log: Log = tokio::sync::Mutex::new(Vec::new());
    let seed = spec.profile("seed").unwrap_or(&opts.timing);
    let common = || {
        vec![
            param("Environment", spec.environment.clone()),
            param("Suffix", suffix),
        ]
    };

    let bodies = StackPart::ALL.map(|part| body(opts, spec, seed, part));
    let replica_stack = StackPart::Replica.stack_name(spec, suffix);
    let replica_out = create(
        clients,
        spec,
        StackPart::Replica,
        &replica_stack,
        bodies[0].clone(),
        common(),
        suffix,
        &log,
    )
    .await?;
    let replica_key = output(&replica_out, "ReplicaKeyArn", &replica_stack)?.to_string();

    let primary_stack = StackPart::Primary.stack_name(spec, suffix);
    let mut params = common();
    params.push(param("ReplicaRegion", spec.replica_region.clone()));
    params.push(param("ReplicaKeyArn", replica_key.clone()));
    for (k, v) in template::timing_parameters(&opts.timing) {
        params.push(param(k, v));
    }
    if opts.stack.functions {
        upload_artifacts(clients, spec, &names, suffix, &log).await?;
        params.push(param("ArtifactBucket", names.artifacts.clone()));
        // The engine runs the functions on this machine (`engine/gaps.rs`).
        params.push(param("Architecture", "x86_64"));
    }
    let out = create(
        clients,
        spec,
        StackPart::Primary,
        &primary_stack,
        bodies[1].clone(),
        params,
        suffix,
        &log,
    )
    .await?;
    let get = |k: &str| output(&out, k, &primary_stack).map(str::to_string);
    let queue = |role: &str, name: &str| -> Result<QueueRef, ProvisionError> {
        let id = template::queue_id(role);
        Ok(QueueRef {
            name: name.to_string(),
            url: get(&format!("{id}Url"))?,
            arn: get(&format!("{id}Arn"))?,
        })
    };
    let sqs_key = get("SqsKeyArn")?;
    let account = policy::account_of(&sqs_key)
        .ok_or_else(|| ProvisionError::new("kms key", format!("no account in {sqs_key}")))?
        .to_string();
    let topic_arn = get("FailureTopicArn")?;
    if opts.stack.functions {
        // Both functions are the stack's (an empty output is refused by `output`).
        get("ValidatorFunctionName")?;
        get("NotifierFunctionName")?;
    }

    // The harness's observer: a queue on the failure topic in place of the alert e-mail.
    let alerts = ensure_queue(clients, suffix, &names.alerts_queue, HashMap::new(), &log).await?;
    ensure_subscription(clients, &topic_arn, &alerts, &log).await?;

    fill_bucket_gaps(clients, spec, &names, &log).await?;
    for (part, text) in StackPart::ALL.iter().zip(&bodies) {
        let doc: serde_json::Value = serde_norway::from_str(text)
            .map_err(|e| ProvisionError::new(format!("{} template", part.name()), e.to_string()))?;
        let s3 = match part {
            StackPart::Replica => &clients.s3_replica,
            StackPart::Primary => &clients.s3,
        };
        fill_public_access_blocks(s3, &doc, spec, suffix, &log).await?;
    }
    fill_topic_key(clients, &topic_arn, &get("SnsKeyArn")?, &log).await?;
    if !opts.replication_on_engine {
        remove_engine_replication(clients, &names, &log).await?;
    }

    let configs = names
        .buckets
        .iter()
        .map(|b| {
            super::replication_config(
                spec,
                b,
                format!(
                    "arn:aws:iam::{account}:role/{}",
                    Names::crr_role(&b.primary)
                ),
                &replica_key,
            )
        })
        .collect();
    let mut steps = log.into_inner();
    steps.sort_by(|a, b| a.resource.cmp(&b.resource));
    let topology = Topology {
        primary_region: spec.primary_region.clone(),
        replica_region: spec.replica_region.clone(),
        timing: opts.timing.clone(),
        queues: Queues {
            validation: queue("validation", &names.validation_queue)?,
            validation_dlq: queue("validation-dlq", &names.validation_dlq)?,
            failure: queue("failure", &names.failure_queue)?,
            failure_dlq: queue("failure-dlq", &names.failure_dlq)?,
            events_dlq: queue("events-dlq", &names.events_dlq)?,
            alerts,
        },
        topic_arn,
        rule_arn: get("UploadRuleArn")?,
        sqs_key_arn: sqs_key,
        sns_key_arn: get("SnsKeyArn")?,
        s3_key_arn: get("S3KeyArn")?,
        replica_key_arn: replica_key,
        replication: configs,
        replication_on_engine: opts.replication_on_engine,
        batch_size: spec.queues.batch_size,
        max_receive_count: spec.queues.max_receive_count,
        function_memory_mb: spec.functions.memory_mb,
        functions_in_stack: opts.stack.functions,
        account,
        names,
    };
    Ok((
        topology,
        ProvisionReport {
            steps,
            total: started.elapsed(),
        },
    ))
}

/// `--functions deployed`: the x86_64 zips (`harness package`) in a bucket of the run's own,
/// private and encrypted as every bucket of the topology, for the primary stack's
/// functions (`ArtifactBucket`, the keys the template's `*ZipKey` parameters default to).
/// Teardown removes it with the topology's buckets.
async fn upload_artifacts(
    clients: &Clients,
    spec: &TopologySpec,
    names: &Names,
    suffix: &str,
    log: &Log,
) -> Result<(), ProvisionError> {
    let t = Instant::now();
    let bucket = &names.artifacts;
    let step = format!("s3 bucket {bucket} (the function zips, x86_64, for the primary stack)");
    let f = fail(&step);
    let packages =
        crate::package::locate(crate::package::Arch::X86_64).map_err(|e| f(e.to_string()))?;
    let status = ensure_private_encrypted(
        &clients.s3,
        spec,
        bucket,
        &spec.primary_region,
        suffix,
        &[],
        &f,
    )
    .await?;
    for p in &packages {
        let bytes = p
            .bytes()
            .map_err(|e| f(format!("{}: {e}", p.path.display())))?;
        clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(crate::package::artifact_key(p.function))
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| f(sdk(e)))?;
    }
    record(log, step.clone(), status, t).await;
    Ok(())
}

/// Reads back each bucket's lifecycle rule, default encryption and ownership tags, which
/// the templates declare, and applies the ones missing with direct calls (a `filled` step
/// each).
async fn fill_bucket_gaps(
    clients: &Clients,
    spec: &TopologySpec,
    names: &Names,
    log: &Log,
) -> Result<(), ProvisionError> {
    let jobs = names
        .buckets
        .iter()
        .flat_map(|b| {
            std::iter::once((b.primary.clone(), &clients.s3, Some(b.category.clone()))).chain(
                b.destinations()
                    .into_iter()
                    .map(|d| (d, &clients.s3_replica, Some(b.category.clone()))),
            )
        })
        .chain(std::iter::once((
            names.alert_ledger.clone(),
            &clients.s3,
            None,
        )));
    futures::future::try_join_all(jobs.map(|(bucket, s3, category)| async move {
        let t = Instant::now();
        let step = format!(
            "s3 lifecycle {bucket} (the engine's CloudFormation dropped LifecycleConfiguration)"
        );
        let f = fail(&step);
        let has_lifecycle = s3
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
            .is_ok_and(|l| !l.rules().is_empty());
        if !has_lifecycle {
            let rule = match &category {
                Some(c) => category_lifecycle(spec, c).map_err(&f)?,
                None => super::ensure::ledger_lifecycle().map_err(&f)?,
            };
            put_lifecycle(s3, &bucket, rule, &f).await?;
            record(log, step.clone(), Status::Filled, t).await;
        }
        let t = Instant::now();
        let step = format!(
            "s3 encryption {bucket} (the engine's CloudFormation dropped BucketEncryption)"
        );
        let f = fail(&step);
        let algorithm = s3
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await
            .ok()
            .and_then(|e| {
                e.server_side_encryption_configuration()?
                    .rules()
                    .first()?
                    .apply_server_side_encryption_by_default()
                    .map(|d| d.sse_algorithm().as_str().to_string())
            });
        if algorithm.as_deref() != Some(spec.buckets.encryption.as_str()) {
            super::ensure::put_encryption(s3, spec, &bucket, &f).await?;
            record(log, step.clone(), Status::Filled, t).await;
        }
        let t = Instant::now();
        let step = format!("s3 tags {bucket} (the engine's CloudFormation dropped Tags)");
        let f = fail(&step);
        let suffix = names.suffix.as_str();
        if !matches!(
            ownership::bucket(s3, &bucket, suffix).await,
            ownership::Ownership::Ours
        ) {
            let extra: Vec<(&str, &str)> = category
                .as_deref()
                .map(|c| vec![("Category", c)])
                .unwrap_or_default();
            super::ensure::tag_bucket(s3, spec, &bucket, suffix, &extra, &f).await?;
            record(log, step.clone(), Status::Filled, t).await;
        }
        Ok::<_, ProvisionError>(())
    }))
    .await?;
    Ok(())
}

/// A name as the template writes it (`Fn::Sub` of `${Environment}` and `${Suffix}`).
fn resolve(v: &serde_json::Value, spec: &TopologySpec, suffix: &str) -> Option<String> {
    let s = v.as_str().or_else(|| v.get("Fn::Sub")?.as_str())?;
    Some(
        s.replace("${Environment}", &spec.environment)
            .replace("${Suffix}", suffix),
    )
}

/// Each bucket's public access block as the template declares it, read back and put where
/// the engine differs (from the template, not the topology file: a template turning a flag
/// off stays off, and the posture check names it).
async fn fill_public_access_blocks(
    s3: &aws_sdk_s3::Client,
    doc: &serde_json::Value,
    spec: &TopologySpec,
    suffix: &str,
    log: &Log,
) -> Result<(), ProvisionError> {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration as Pab;
    let Some(resources) = doc["Resources"].as_object() else {
        return Ok(());
    };
    for r in resources.values() {
        if r["Type"] != "AWS::S3::Bucket" {
            continue;
        }
        let props = &r["Properties"];
        let (Some(name), Some(declared)) = (
            resolve(&props["BucketName"], spec, suffix),
            props.get("PublicAccessBlockConfiguration"),
        ) else {
            continue;
        };
        let flag = |k: &str| declared[k].as_bool().unwrap_or(false);
        let want = Pab::builder()
            .block_public_acls(flag("BlockPublicAcls"))
            .ignore_public_acls(flag("IgnorePublicAcls"))
            .block_public_policy(flag("BlockPublicPolicy"))
            .restrict_public_buckets(flag("RestrictPublicBuckets"))
            .build();
        let found = s3
            .get_public_access_block()
            .bucket(&name)
            .send()
            .await
            .ok()
            .and_then(|o| o.public_access_block_configuration().cloned());
        let same = found.as_ref().is_some_and(|f| {
            f.block_public_acls() == want.block_public_acls()
                && f.ignore_public_acls() == want.ignore_public_acls()
                && f.block_public_policy() == want.block_public_policy()
                && f.restrict_public_buckets() == want.restrict_public_buckets()
        });
        if !same {
            let t = Instant::now();
            let step = format!(
                "s3 public access block {name} (the engine's CloudFormation did not apply PublicAccessBlockConfiguration)"
            );
            s3.put_public_access_block()
                .bucket(&name)
                .public_access_block_configuration(want)
                .send()
                .await
                .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
            record(log, step, Status::Filled, t).await;
        }
    }
    Ok(())
}

/// The failure topic's CMK (`KmsMasterKeyId`), read back and set where the engine's
/// CloudFormation dropped it.
async fn fill_topic_key(
    clients: &Clients,
    topic_arn: &str,
    key_arn: &str,
    log: &Log,
) -> Result<(), ProvisionError> {
    let t = Instant::now();
    let step = format!(
        "sns topic {} KmsMasterKeyId (the engine's CloudFormation dropped it)",
        super::ensure::short(topic_arn)
    );
    let found = clients
        .sns
        .get_topic_attributes()
        .topic_arn(topic_arn)
        .send()
        .await
        .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
    let set = found
        .attributes()
        .and_then(|a| a.get("KmsMasterKeyId"))
        .is_some_and(|k| !k.is_empty());
    if !set {
        clients
            .sns
            .set_topic_attributes()
            .topic_arn(topic_arn)
            .attribute_name("KmsMasterKeyId")
            .attribute_value(key_arn)
            .send()
            .await
            .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
        record(log, step, Status::Filled, t).await;
    }
    Ok(())
}

/// Where the harness replicates, no primary may keep a replication configuration on the
/// engine (two copiers would race): one the engine's CloudFormation applied from the
/// template is removed (a `filled` step). The harness replicator applies the same rules.
async fn remove_engine_replication(
    clients: &Clients,
    names: &Names,
    log: &Log,
) -> Result<(), ProvisionError> {
    for b in &names.buckets {
        let t = Instant::now();
        if clients
            .s3
            .get_bucket_replication()
            .bucket(&b.primary)
            .send()
            .await
            .is_ok()
        {
            let step = format!(
                "s3 replication {} (removed from the engine: the harness replicator applies its rules)",
                b.primary
            );
            clients
                .s3
                .delete_bucket_replication()
                .bucket(&b.primary)
                .send()
                .await
                .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
            record(log, step, Status::Filled, t).await;
        }
    }
    Ok(())
}

/// Deletes run `suffix`'s stacks (the primary first), waiting for each; what was removed
/// and what went wrong. Stacks that do not exist are fine; a stack without the run's tags
/// is left alone. Buckets are retained by their `DeletionPolicy` (a stack deleted on AWS
/// never takes backups with it): the caller's teardown removes them.
pub async fn delete_stacks(
    clients: &Clients,
    spec: &TopologySpec,
    suffix: &str,
) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut problems) = (Vec::new(), Vec::new());
    for part in [StackPart::Primary, StackPart::Replica] {
        let name = part.stack_name(spec, suffix);
        let cf = cfn(clients, part);
        let Ok(found) = cf.describe_stacks().stack_name(&name).send().await else {
            continue;
        };
        let Some(stack) = found.stacks().first() else {
            continue;
        };
        if stack.stack_status() == Some(&StackStatus::DeleteComplete) {
            continue;
        }
        let tags = stack
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)));
        if !ownership::owns(tags, suffix) {
            problems.push(format!(
                "cloudformation stack {name}: not tagged as run {suffix}; left alone"
            ));
            continue;
        }
        let t = Instant::now();
        if let Err(e) = cf.delete_stack().stack_name(&name).send().await {
            problems.push(format!("cloudformation stack {name}: {}", sdk(e)));
            continue;
        }
        match settle(&cf, &name).await {
            Ok(None) | Ok(Some(StackStatus::DeleteComplete)) => removed.push(format!(
                "cloudformation stack {name} ({:.1}s)",
                t.elapsed().as_secs_f64()
            )),
            Ok(Some(s)) => {
                let events = failed_events(&cf, &name).await;
                problems.push(format!(
                    "cloudformation stack {name}: {}: {}",
                    s.as_str(),
                    events.join("; ")
                ));
            }
            Err(e) => problems.push(format!("cloudformation stack {name}: {e}")),
        }
    }
    (removed, problems)
}

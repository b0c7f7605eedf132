//! The posture checks' reading half: the SDK calls that read each setting back from the
//! live resources, judged by the pure comparisons of [`super`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName as QA;

use super::*;
use crate::aws::Clients;
use crate::engine::{Engine, EngineKind};
use crate::errors::sdk;
use crate::fidelity::proxy::GapProxy;
use crate::fidelity::replicator::{ReplicationTiming, Replicator};
use crate::report::case::Check;
use crate::topology::ProvisionError;
use crate::topology::{new_suffix, Topology, TopologySpec};

/// Collects checks of one engine.
struct Sheet {
    engine: EngineKind,
    checks: Vec<Check>,
}

impl Sheet {
    fn add(&mut self, id: CheckId, resource: &str, setting: &str, v: Verdict) {
        self.checks.push(Check {
            engine: self.engine,
            id: id.as_str().to_string(),
            resource: resource.to_string(),
            setting: setting.to_string(),
            passed: v.passed,
            detail: v.detail,
        });
    }

    fn failed_call(&mut self, id: CheckId, resource: &str, setting: &str, call: &str, e: String) {
        self.add(
            id,
            resource,
            setting,
            Verdict::fail(format!("{call} failed: {e}")),
        );
    }
}

/// Reads every posture setting of `topology` through `clients` (the fidelity layer's view
/// where the harness replicates) and judges it.
pub async fn read(
    clients: &Clients,
    topology: &Topology,
    spec: &TopologySpec,
    engine: EngineKind,
) -> Vec<Check> {
    let mut sheet = Sheet {
        engine,
        checks: Vec::new(),
    };
    buckets(&mut sheet, clients, topology).await;
    replication(&mut sheet, clients, topology, spec).await;
    queues(&mut sheet, clients, topology, spec).await;
    topic_and_rule(&mut sheet, clients, topology).await;
    roles(&mut sheet, clients, topology, spec).await;
    keys(&mut sheet, clients, topology).await;
    mappings(&mut sheet, clients, topology).await;
    sheet.checks
}

/// The event source mappings of the functions, where the engine holds the functions (a
/// stack made with `ArtifactBucket`, `--functions deployed`); none is read otherwise.
async fn mappings(sheet: &mut Sheet, clients: &Clients, topology: &Topology) {
    use crate::topology::{policy, FunctionName};
    let lambda = aws_sdk_lambda::Client::new(&clients.sdk);
    for (function, role) in crate::topology::MAPPINGS {
        let name = policy::function_of(match function {
            FunctionName::Validator => &topology.names.validator_role,
            FunctionName::Notifier => &topology.names.notifier_role,
        });
        if lambda
            .get_function()
            .function_name(&name)
            .send()
            .await
            .is_err()
        {
            continue;
        }
        let Some(queue) = topology.queues.by_role(role) else {
            continue;
        };
        let resource = format!("mapping {} -> {name}", queue.name);
        match lambda
            .list_event_source_mappings()
            .function_name(&name)
            .event_source_arn(&queue.arn)
            .send()
            .await
        {
            Ok(out) => {
                let found: Option<Vec<String>> = out.event_source_mappings().first().map(|m| {
                    m.function_response_types()
                        .iter()
                        .map(|t| t.as_str().to_string())
                        .collect()
                });
                sheet.add(
                    CheckId::MappingBatchItemFailures,
                    &resource,
                    "FunctionResponseTypes",
                    super::batch_item_failures(found.as_deref()),
                );
            }
            Err(e) => sheet.failed_call(
                CheckId::MappingBatchItemFailures,
                &resource,
                "FunctionResponseTypes",
                "ListEventSourceMappings",
                crate::errors::sdk(e),
            ),
        }
    }
}

async fn buckets(sheet: &mut Sheet, clients: &Clients, topology: &Topology) {
    let mut all: Vec<(String, bool, bool)> = Vec::new(); // (bucket, replica region, versioned)
    for b in topology.buckets() {
        all.push((b.primary.clone(), false, true));
        for d in b.destinations() {
            all.push((d, true, true));
        }
    }
    all.push((topology.names.alert_ledger.clone(), false, false));
    for (bucket, in_replica, versioned) in all {
        let s3 = if in_replica {
            &clients.s3_replica
        } else {
            &clients.s3
        };
        if versioned {
            match s3.get_bucket_versioning().bucket(&bucket).send().await {
                Ok(v) => sheet.add(
                    CheckId::BucketVersioning,
                    &bucket,
                    "Status",
                    versioning(v.status().map(|s| s.as_str())),
                ),
                Err(e) => sheet.failed_call(
                    CheckId::BucketVersioning,
                    &bucket,
                    "Status",
                    "GetBucketVersioning",
                    sdk(e),
                ),
            }
        }
        match s3.get_bucket_encryption().bucket(&bucket).send().await {
            Ok(out) => {
                let algorithms: Vec<String> = out
                    .server_side_encryption_configuration()
                    .map(|c| {
                        c.rules()
                            .iter()
                            .filter_map(|r| r.apply_server_side_encryption_by_default())
                            .map(|d| d.sse_algorithm().as_str().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                sheet.add(
                    CheckId::BucketEncryption,
                    &bucket,
                    "SSEAlgorithm",
                    default_encryption(&algorithms),
                );
            }
            Err(e) => sheet.failed_call(
                CheckId::BucketEncryption,
                &bucket,
                "SSEAlgorithm",
                "GetBucketEncryption",
                sdk(e),
            ),
        }
        match s3.get_public_access_block().bucket(&bucket).send().await {
            Ok(out) => {
                for flag in PublicAccessFlag::ALL {
                    let found = out
                        .public_access_block_configuration()
                        .and_then(|c| flag.of(c));
                    sheet.add(
                        CheckId::BucketPublicAccessBlock,
                        &bucket,
                        flag.as_str(),
                        public_access_flag(found),
                    );
                }
            }
            Err(e) => {
                let e = sdk(e);
                for flag in PublicAccessFlag::ALL {
                    sheet.failed_call(
                        CheckId::BucketPublicAccessBlock,
                        &bucket,
                        flag.as_str(),
                        "GetPublicAccessBlock",
                        e.clone(),
                    );
                }
            }
        }
    }
}

async fn replication(
    sheet: &mut Sheet,
    clients: &Clients,
    topology: &Topology,
    spec: &TopologySpec,
) {
    for b in topology.buckets() {
        let primary = &b.primary;
        let rules: Vec<RuleView> = match clients
            .s3
            .get_bucket_replication()
            .bucket(primary)
            .send()
            .await
        {
            Ok(out) => out
                .replication_configuration()
                .map(|c| c.rules().iter().map(RuleView::from_sdk).collect())
                .unwrap_or_default(),
            Err(e) => {
                let e = sdk(e);
                sheet.failed_call(
                    CheckId::ReplicationCoverage,
                    primary,
                    "Rule",
                    "GetBucketReplication",
                    e.clone(),
                );
                sheet.failed_call(
                    CheckId::ReplicationDeleteMarkers,
                    primary,
                    "DeleteMarkerReplication",
                    "GetBucketReplication",
                    e.clone(),
                );
                if spec.replication.sse_kms {
                    sheet.failed_call(
                        CheckId::ReplicationSseKms,
                        primary,
                        "SourceSelectionCriteria.SseKmsEncryptedObjects",
                        "GetBucketReplication",
                        e,
                    );
                }
                continue;
            }
        };
        sheet.add(
            CheckId::ReplicationCoverage,
            primary,
            "Rule",
            replication_coverage(&rules, &b.destinations()),
        );
        sheet.add(
            CheckId::ReplicationDeleteMarkers,
            primary,
            "DeleteMarkerReplication",
            replication_delete_markers(&rules),
        );
        if spec.replication.sse_kms {
            sheet.add(
                CheckId::ReplicationSseKms,
                primary,
                "SourceSelectionCriteria.SseKmsEncryptedObjects",
                replication_sse_kms(&rules, &topology.replica_key_arn),
            );
        }
    }
}

async fn queues(sheet: &mut Sheet, clients: &Clients, topology: &Topology, spec: &TopologySpec) {
    let q = &topology.queues;
    let dlq_of = |role: &str| match role {
        "validation" => Some(&q.validation_dlq),
        "failure" => Some(&q.failure_dlq),
        _ => None,
    };
    for (role, queue) in q.all() {
        let attrs = match clients
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QA::All)
            .send()
            .await
        {
            Ok(out) => out.attributes().cloned().unwrap_or_default(),
            Err(e) => {
                sheet.failed_call(
                    CheckId::QueueEncryption,
                    &queue.name,
                    "KmsMasterKeyId",
                    "GetQueueAttributes",
                    sdk(e),
                );
                continue;
            }
        };
        // The alerts queue stands in for the seed's e-mail subscription (module docs).
        if role != "alerts" {
            sheet.add(
                CheckId::QueueEncryption,
                &queue.name,
                "KmsMasterKeyId",
                kms_key(
                    attrs.get(&QA::KmsMasterKeyId).map(String::as_str),
                    &topology.sqs_key_arn,
                    &topology.names.sqs_key_alias,
                ),
            );
        }
        if let Some(dlq) = dlq_of(role) {
            sheet.add(
                CheckId::QueueDlq,
                &queue.name,
                "RedrivePolicy",
                redrive(
                    attrs.get(&QA::RedrivePolicy).map(String::as_str),
                    &dlq.arn,
                    spec.queues.max_receive_count,
                ),
            );
        }
        if let Some(policy) = attrs.get(&QA::Policy).filter(|p| !p.is_empty()) {
            let v = match decode_policy(policy) {
                Ok(doc) => none_of(wildcard_principals(&doc), "`*` principal"),
                Err(e) => Verdict::fail(e),
            };
            sheet.add(CheckId::QueuePolicy, &queue.name, "Principal", v);
        }
    }
}

async fn topic_and_rule(sheet: &mut Sheet, clients: &Clients, topology: &Topology) {
    let topic = &topology.topic_arn;
    match clients
        .sns
        .get_topic_attributes()
        .topic_arn(topic)
        .send()
        .await
    {
        Ok(out) => sheet.add(
            CheckId::TopicEncryption,
            topic,
            "KmsMasterKeyId",
            kms_key(
                out.attributes()
                    .and_then(|a| a.get("KmsMasterKeyId"))
                    .map(String::as_str),
                &topology.sns_key_arn,
                &topology.names.sns_key_alias,
            ),
        ),
        Err(e) => sheet.failed_call(
            CheckId::TopicEncryption,
            topic,
            "KmsMasterKeyId",
            "GetTopicAttributes",
            sdk(e),
        ),
    }
    let rule = &topology.names.rule;
    match clients
        .events
        .list_targets_by_rule()
        .rule(rule)
        .send()
        .await
    {
        Ok(out) => {
            let to_queue = out
                .targets()
                .iter()
                .find(|t| t.arn() == topology.queues.validation.arn);
            let v = match to_queue {
                None => Verdict::fail(format!(
                    "no target {} (required: the validation queue)",
                    topology.queues.validation.arn
                )),
                Some(t) => match t.dead_letter_config().and_then(|d| d.arn()) {
                    Some(a) if a == topology.queues.events_dlq.arn => Verdict::pass(a),
                    Some(a) => Verdict::fail(format!(
                        "{a} (required: {})",
                        topology.queues.events_dlq.arn
                    )),
                    None => Verdict::fail(format!(
                        "not set (required: {})",
                        topology.queues.events_dlq.arn
                    )),
                },
            };
            sheet.add(CheckId::RuleTargetDlq, rule, "DeadLetterConfig.Arn", v);
        }
        Err(e) => sheet.failed_call(
            CheckId::RuleTargetDlq,
            rule,
            "DeadLetterConfig.Arn",
            "ListTargetsByRule",
            sdk(e),
        ),
    }
}

async fn roles(sheet: &mut Sheet, clients: &Clients, topology: &Topology, spec: &TopologySpec) {
    let names = &topology.names;
    let mut roles = vec![
        (names.validator_role.clone(), &spec.iam.validator),
        (names.notifier_role.clone(), &spec.iam.notifier),
    ];
    for b in topology.buckets() {
        roles.push((
            crate::topology::Names::crr_role(&b.primary),
            &spec.iam.replication,
        ));
    }
    for (role, expected) in roles {
        match clients.iam.get_role().role_name(&role).send().await {
            Ok(out) => {
                let doc = out
                    .role()
                    .and_then(|r| r.assume_role_policy_document())
                    .unwrap_or_default();
                let v = match decode_policy(doc) {
                    Ok(doc) => none_of(wildcard_principals(&doc), "`*` principal"),
                    Err(e) => Verdict::fail(e),
                };
                sheet.add(CheckId::RoleTrust, &role, "Principal", v);
            }
            Err(e) => {
                sheet.failed_call(CheckId::RoleTrust, &role, "Principal", "GetRole", sdk(e));
            }
        }
        let listed = match clients
            .iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await
        {
            Ok(out) => out.policy_names().to_vec(),
            Err(e) => {
                let e = sdk(e);
                sheet.failed_call(
                    CheckId::RoleActions,
                    &role,
                    "Action",
                    "ListRolePolicies",
                    e.clone(),
                );
                sheet.failed_call(
                    CheckId::RoleResources,
                    &role,
                    "Resource",
                    "ListRolePolicies",
                    e,
                );
                continue;
            }
        };
        let mut actions = BTreeSet::new();
        let mut wildcards = Vec::new();
        let mut problems = Vec::new();
        for policy in &listed {
            match clients
                .iam
                .get_role_policy()
                .role_name(&role)
                .policy_name(policy)
                .send()
                .await
            {
                Ok(out) => match decode_policy(out.policy_document()) {
                    Ok(doc) => {
                        actions.extend(allowed_actions(&doc));
                        wildcards.extend(
                            wildcard_resources(&doc)
                                .into_iter()
                                .map(|r| format!("{r} (in {policy})")),
                        );
                    }
                    Err(e) => problems.push(format!("{policy}: {e}")),
                },
                Err(e) => problems.push(format!("GetRolePolicy {policy} failed: {}", sdk(e))),
            }
        }
        if !problems.is_empty() {
            let detail = problems.join("; ");
            sheet.add(
                CheckId::RoleActions,
                &role,
                "Action",
                Verdict::fail(detail.clone()),
            );
            sheet.add(
                CheckId::RoleResources,
                &role,
                "Resource",
                Verdict::fail(detail),
            );
            continue;
        }
        sheet.add(
            CheckId::RoleActions,
            &role,
            "Action",
            compare_actions(&actions, expected),
        );
        sheet.add(
            CheckId::RoleResources,
            &role,
            "Resource",
            none_of(wildcards, "wildcard resource"),
        );
    }
}

async fn keys(sheet: &mut Sheet, clients: &Clients, topology: &Topology) {
    let keys = [
        (&topology.sqs_key_arn, &clients.kms),
        (&topology.sns_key_arn, &clients.kms),
        (&topology.s3_key_arn, &clients.kms),
        (&topology.replica_key_arn, &clients.kms_replica),
    ];
    for (arn, kms) in keys {
        match kms
            .get_key_policy()
            .key_id(arn.as_str())
            .policy_name("default")
            .send()
            .await
        {
            Ok(out) => {
                let v = match decode_policy(out.policy().unwrap_or_default()) {
                    Ok(doc) => none_of(wildcard_principals(&doc), "`*` principal"),
                    Err(e) => Verdict::fail(e),
                };
                sheet.add(CheckId::KeyPolicy, arn, "Principal", v);
            }
            Err(e) => {
                sheet.failed_call(CheckId::KeyPolicy, arn, "Principal", "GetKeyPolicy", sdk(e))
            }
        }
    }
}

/// Provisions a topology of its own on `engine` (a fresh suffix, the `seed` profile), reads
/// its posture through what clients see (the fidelity layer where the harness replicates),
/// and tears it down. Provisioning failing is an error (the engine cannot host the
/// topology); a setting that cannot be read is a failed check.
pub async fn run(
    engine: &Engine,
    spec: &TopologySpec,
    via: crate::topology::provision::Via,
) -> Result<Vec<Check>, ProvisionError> {
    run_with(engine, spec, via, None).await
}

/// [`run`] on a topology provisioned from these template bodies (replica, primary): a
/// team's edited copy, or a test's deliberately broken one.
pub async fn run_with(
    engine: &Engine,
    spec: &TopologySpec,
    via: crate::topology::provision::Via,
    templates: Option<[String; 2]>,
) -> Result<Vec<Check>, ProvisionError> {
    if via == crate::topology::provision::Via::Cloudformation {
        crate::topology::provision::stack::check_engine(engine)?;
    }
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let caps = engine.capabilities();
    let timing = spec
        .profile("seed")
        .cloned()
        .ok_or_else(|| ProvisionError::new("posture", "the topology has no `seed` profile"))?;
    let suffix = new_suffix();
    let (topology, _report, mode) = crate::topology::provision::provision_for_engine_with(
        &clients,
        spec,
        &suffix,
        timing,
        &caps,
        via,
        crate::topology::provision::StackInputs {
            templates,
            functions: false,
        },
    )
    .await?;
    let checks = if mode.is_emulated() {
        match GapProxy::start(&clients.endpoint).await {
            Ok(proxy) => {
                let replicator = Arc::new(Replicator::new(
                    clients.clone(),
                    topology.replication.clone(),
                    ReplicationTiming {
                        lag: Duration::ZERO,
                        fallback: Duration::ZERO,
                    },
                ));
                proxy.set_replicator(replicator).await;
                let view = Clients::for_endpoint(
                    &proxy.endpoint,
                    clients.kind,
                    &spec.primary_region,
                    &spec.replica_region,
                )
                .await;
                read(&view, &topology, spec, engine.kind).await
            }
            Err(e) => {
                crate::topology::teardown::teardown(&clients, spec, &suffix).await;
                return Err(ProvisionError::new("posture: fidelity layer", e));
            }
        }
    } else {
        read(&clients, &topology, spec, engine.kind).await
    };
    let removed = crate::topology::teardown::teardown(&clients, spec, &suffix).await;
    for p in &removed.problems {
        tracing::warn!(problem = %p, "posture teardown");
    }
    Ok(checks)
}

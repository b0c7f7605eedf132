//! Idempotent provisioning: every resource is looked up first and created only when
//! missing, then its configuration is (re)applied, so a second run changes nothing and
//! succeeds. Independent resources are provisioned concurrently.

mod ensure;
mod options;
mod report;
pub mod stack;

pub use ensure::replication_config;
pub use options::{ProvisionOptions, StackInputs, Via};
pub use report::{ProvisionReport, Status, StepReport};

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_sqs::types::QueueAttributeName as QA;
use futures::future::try_join_all;
use serde_json::json;
use tokio::sync::Mutex;

use super::ownership::{self};
use super::ProvisionError;
use super::{policy, CategoryBuckets, Names, QueueRef, Queues, Timing, Topology, TopologySpec};
use crate::aws::Clients;
use ensure::*;
use report::Log;

/// A provisioned topology, what provisioning did, and who replicates.
pub type Provisioned = (
    Topology,
    ProvisionReport,
    crate::topology::replication::ReplicationMode,
);

/// Decides who replicates in this run (`replication::mode`) and provisions to match: the
/// one sequence every command and the scenario runner use.
pub async fn provision_for_engine(
    clients: &Clients,
    spec: &TopologySpec,
    suffix: &str,
    timing: Timing,
    caps: &crate::engine::Capabilities,
    via: Via,
) -> Result<Provisioned, ProvisionError> {
    provision_for_engine_with(
        clients,
        spec,
        suffix,
        timing,
        caps,
        via,
        StackInputs::default(),
    )
    .await
}

/// [`provision_for_engine`] with the caller's [`StackInputs`] for `Via::Cloudformation`
/// (ignored on the direct path).
pub async fn provision_for_engine_with(
    clients: &Clients,
    spec: &TopologySpec,
    suffix: &str,
    timing: Timing,
    caps: &crate::engine::Capabilities,
    via: Via,
    stack: StackInputs,
) -> Result<Provisioned, ProvisionError> {
    let mode = crate::topology::replication::mode(caps);
    let opts = ProvisionOptions {
        timing,
        replication_on_engine: crate::topology::replication::configure_on_engine(&mode),
        via,
        stack,
    };
    let (topology, report) = match via {
        Via::Direct => provision(clients, spec, suffix, &opts).await?,
        Via::Cloudformation => stack::provision(clients, spec, suffix, &opts).await?,
    };
    Ok((topology, report, mode))
}

/// Provisions (or re-applies) the whole topology for `suffix`.
pub async fn provision(
    clients: &Clients,
    spec: &TopologySpec,
    suffix: &str,
    opts: &ProvisionOptions,
) -> Result<(Topology, ProvisionReport), ProvisionError> {
    let started = Instant::now();
    let names = Names::new(spec, suffix);
    let log: Log = Mutex::new(Vec::new());
    let suffix = names.suffix.as_str();

    // Phase 1: keys, roles, buckets and the queues nothing else depends on.
    let keys = names.keys();
    let arns = try_join_all(keys.iter().map(|k| {
        let kms = if k.in_replica_region() {
            &clients.kms_replica
        } else {
            &clients.kms
        };
        ensure_key(kms, suffix, k.alias, k.description, &log)
    }));
    let bucket_jobs = names.buckets.iter().flat_map(|b| {
        std::iter::once((
            b.primary.clone(),
            spec.primary_region.clone(),
            b.category.clone(),
        ))
        .chain(
            b.destinations()
                .into_iter()
                .map(|d| (d, spec.replica_region.clone(), b.category.clone())),
        )
    });
    let buckets = try_join_all(bucket_jobs.map(|(name, region, category)| {
        let log = &log;
        async move { ensure_bucket(clients, spec, &name, &region, &category, suffix, log).await }
    }));
    // The DLQs keep messages longer than their sources, and the ones the notifier consumes
    // get its visibility timeout (they are Lambda event sources too).
    let dlq_attrs = |key: &str| {
        HashMap::from([
            (QA::KmsMasterKeyId, key.to_string()),
            (
                QA::MessageRetentionPeriod,
                spec.queues.dlq_retention_seconds.to_string(),
            ),
            (
                QA::VisibilityTimeout,
                opts.timing.failure_visibility_seconds.to_string(),
            ),
        ])
    };
    let [sqs_key, sns_key, s3_key, replica_key]: [String; 4] =
        arns.await?.try_into().map_err(|got: Vec<String>| {
            ProvisionError::new("kms keys", format!("{} keys, not 4", got.len()))
        })?;
    let dlqs = futures::future::try_join4(
        ensure_queue(
            clients,
            suffix,
            &names.validation_dlq,
            dlq_attrs(&sqs_key),
            &log,
        ),
        ensure_queue(
            clients,
            suffix,
            &names.failure_dlq,
            dlq_attrs(&sqs_key),
            &log,
        ),
        ensure_queue(
            clients,
            suffix,
            &names.events_dlq,
            dlq_attrs(&sqs_key),
            &log,
        ),
        ensure_queue(clients, suffix, &names.alerts_queue, HashMap::new(), &log),
    );
    let account = policy::account_of(&sqs_key)
        .ok_or_else(|| {
            ProvisionError::new("kms key", format!("no account in the key ARN {sqs_key}"))
        })?
        .to_string();
    let inputs = policy::PolicyInputs {
        names: &names,
        account: &account,
        region: &spec.primary_region,
        replica_region: &spec.replica_region,
        sqs_key: &sqs_key,
        sns_key: &sns_key,
        s3_key: &s3_key,
        replica_key: &replica_key,
    };
    let roles = ensure_roles(clients, &inputs, &log);
    let ledger = ensure_ledger_bucket(clients, spec, &names.alert_ledger, suffix, &log);
    let (_, (validation_dlq, failure_dlq, events_dlq, alerts), role_arns, ()) =
        futures::try_join!(buckets, dlqs, roles, ledger)?;
    let key_arns = [&sqs_key, &sns_key, &s3_key, &replica_key];
    put_key_policies(
        &account,
        keys.iter().zip(key_arns).map(|(k, arn)| {
            if k.in_replica_region() {
                (
                    arn.as_str(),
                    &clients.kms_replica,
                    spec.replica_region.as_str(),
                    k.purpose,
                )
            } else {
                (
                    arn.as_str(),
                    &clients.kms,
                    spec.primary_region.as_str(),
                    k.purpose,
                )
            }
        }),
        &role_arns,
    )
    .await?;

    // Phase 2: main queues (redrive to the DLQs) and the topic.
    let main_attrs = |visibility: u32, dlq: &QueueRef| {
        HashMap::from([
            (QA::DelaySeconds, "0".to_string()),
            (QA::MaximumMessageSize, spec.queues.max_message_size.to_string()),
            (QA::MessageRetentionPeriod, spec.queues.retention_seconds.to_string()),
            (QA::VisibilityTimeout, visibility.to_string()),
            (QA::KmsMasterKeyId, sqs_key.clone()),
            (
                QA::KmsDataKeyReusePeriodSeconds,
                spec.queues.kms_data_key_reuse_seconds.to_string(),
            ),
            (
                QA::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": spec.queues.max_receive_count})
                    .to_string(),
            ),
        ])
    };
    let (validation, failure, topic_arn) = futures::try_join!(
        ensure_queue(
            clients,
            suffix,
            &names.validation_queue,
            main_attrs(opts.timing.validation_visibility_seconds, &validation_dlq),
            &log
        ),
        ensure_queue(
            clients,
            suffix,
            &names.failure_queue,
            main_attrs(opts.timing.failure_visibility_seconds, &failure_dlq),
            &log
        ),
        ensure_topic(
            clients,
            suffix,
            &names.topic,
            &sns_key,
            &account,
            spec,
            &log
        ),
    )?;

    // Phase 3: wiring.
    let primary_arns: Vec<String> = names
        .buckets
        .iter()
        .map(|b| format!("arn:aws:s3:::{}", b.primary))
        .collect();
    let rule_arn = ensure_rule(
        clients,
        suffix,
        &names.rule,
        &primary_arns,
        &validation,
        &events_dlq,
        &log,
    );
    let subscription = ensure_subscription(clients, &topic_arn, &alerts, &log);
    let notifications = try_join_all(names.buckets.iter().map(|b| {
        let log = &log;
        async move { ensure_eventbridge_notifications(clients, &b.primary, log).await }
    }));
    let configs: Vec<crate::topology::replication::BucketReplication> = names
        .buckets
        .iter()
        .map(|b| {
            replication_config(
                spec,
                b,
                role_arns
                    .replication
                    .get(&b.primary)
                    .cloned()
                    .unwrap_or_default(),
                &replica_key,
            )
        })
        .collect();
    let replication = try_join_all(configs.iter().map(|c| {
        let log = &log;
        let on = opts.replication_on_engine;
        async move {
            if on {
                ensure_replication(clients, c, log).await
            } else {
                Ok(())
            }
        }
    }));
    let (rule_arn, _, _, _) =
        futures::try_join!(rule_arn, subscription, notifications, replication)?;

    let mut steps = log.into_inner();
    steps.sort_by(|a, b| a.resource.cmp(&b.resource));
    let report = ProvisionReport {
        steps,
        total: started.elapsed(),
    };
    let topology = Topology {
        names,
        primary_region: spec.primary_region.clone(),
        replica_region: spec.replica_region.clone(),
        account,
        timing: opts.timing.clone(),
        queues: Queues {
            validation,
            validation_dlq,
            failure,
            failure_dlq,
            events_dlq,
            alerts,
        },
        topic_arn,
        rule_arn,
        sqs_key_arn: sqs_key,
        sns_key_arn: sns_key,
        s3_key_arn: s3_key,
        replica_key_arn: replica_key,
        replication: configs,
        replication_on_engine: opts.replication_on_engine,
        batch_size: spec.queues.batch_size,
        function_memory_mb: spec.functions.memory_mb,
        functions_in_stack: false,
        max_receive_count: spec.queues.max_receive_count,
    };
    Ok((topology, report))
}

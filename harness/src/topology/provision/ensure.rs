//! One resource at a time: each `ensure_*` looks the resource up, creates it when missing
//! and (re)applies its configuration.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_s3::types as s3t;
use aws_sdk_sqs::types::QueueAttributeName as QA;
use futures::future::try_join_all;
use serde_json::json;

use super::ownership::{self, Ownership};
use super::report::{fail, record, Log, Status};
use super::ProvisionError;
use super::{policy, CategoryBuckets, Names, QueueRef, TopologySpec};
use crate::aws::Clients;
use crate::errors::sdk;

pub(super) async fn ensure_key(
    kms: &aws_sdk_kms::Client,
    suffix: &str,
    alias: &str,
    description: &str,
    log: &Log,
) -> Result<String, ProvisionError> {
    let t = Instant::now();
    let region = kms
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let step = format!("kms key {alias} ({region})");
    if let Ok(found) = kms.describe_key().key_id(alias).send().await {
        if let Some(arn) = found.key_metadata().and_then(|m| m.arn()) {
            if let Ownership::Foreign(why) = ownership::key(kms, arn, suffix).await {
                return Err(ProvisionError::new(&step, why));
            }
            record(log, step, Status::Exists, t).await;
            return Ok(arn.to_string());
        }
    }
    // Created with AWS's default key policy (the account root); the topology's own policy
    // is put once the roles that use the key exist (`put_key_policies`).
    let mut create = kms.create_key().description(description);
    for (k, v) in ownership::tags(suffix) {
        create = create.tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| ProvisionError::new(&step, e.to_string()))?,
        );
    }
    let created = create
        .send()
        .await
        .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
    let meta = created
        .key_metadata()
        .ok_or_else(|| ProvisionError::new(&step, "no key metadata"))?;
    let key_id = meta.key_id().to_string();
    let arn = meta.arn().unwrap_or_default().to_string();
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(&key_id)
        .send()
        .await
        .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
    // Rotation on, as in the seed (best effort: not every engine implements it).
    let _ = kms.enable_key_rotation().key_id(&key_id).send().await;
    record(log, step, Status::Created, t).await;
    Ok(arn)
}

pub(super) async fn ensure_role(
    clients: &Clients,
    suffix: &str,
    name: &str,
    trust: serde_json::Value,
    policies: Vec<(&str, serde_json::Value)>,
    log: &Log,
) -> Result<String, ProvisionError> {
    let t = Instant::now();
    let step = format!("iam role {name}");
    let (arn, status) = match clients.iam.get_role().role_name(name).send().await {
        Ok(found) => {
            if let Ownership::Foreign(why) = ownership::role(clients, name, suffix).await {
                return Err(ProvisionError::new(&step, why));
            }
            (
                found
                    .role()
                    .map(|r| r.arn().to_string())
                    .unwrap_or_default(),
                Status::Exists,
            )
        }
        Err(_) => {
            let mut create = clients
                .iam
                .create_role()
                .role_name(name)
                .assume_role_policy_document(trust.to_string());
            for (k, v) in ownership::tags(suffix) {
                create = create.tags(
                    aws_sdk_iam::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .map_err(|e| ProvisionError::new(&step, e.to_string()))?,
                );
            }
            let created = create
                .send()
                .await
                .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
            (
                created
                    .role()
                    .map(|r| r.arn().to_string())
                    .unwrap_or_default(),
                Status::Created,
            )
        }
    };
    for (policy_name, doc) in policies {
        clients
            .iam
            .put_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .policy_document(doc.to_string())
            .send()
            .await
            .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
    }
    record(log, step.clone(), status, t).await;
    Ok(arn)
}

/// The role ARNs provisioning created.
pub(super) struct RoleArns {
    pub(super) validator: String,
    pub(super) notifier: String,
    /// primary bucket -> its replication role.
    pub(super) replication: HashMap<String, String>,
}

/// The seed's roles with least-privilege inline policies (engines do not enforce them, but
/// they are created so the topology is complete; `policy.rs` has the documents).
pub(super) async fn ensure_roles(
    clients: &Clients,
    inputs: &policy::PolicyInputs<'_>,
    log: &Log,
) -> Result<RoleArns, ProvisionError> {
    let names = inputs.names;
    let account = inputs.account;
    let validator = ensure_role(
        clients,
        names.suffix.as_str(),
        &names.validator_role,
        policy::trust("lambda.amazonaws.com", account, &[]),
        vec![("checksum-validator", policy::validator(inputs))],
        log,
    );
    let notifier = ensure_role(
        clients,
        names.suffix.as_str(),
        &names.notifier_role,
        policy::trust("lambda.amazonaws.com", account, &[]),
        vec![("failure-notifier", policy::notifier(inputs))],
        log,
    );
    let crr = try_join_all(names.buckets.iter().map(|b| async move {
        let role = Names::crr_role(&b.primary);
        let arn = ensure_role(
            clients,
            names.suffix.as_str(),
            &role,
            policy::trust(
                "s3.amazonaws.com",
                account,
                &[format!("arn:aws:s3:::{}", b.primary)],
            ),
            vec![("replication", policy::replication(inputs, b))],
            log,
        )
        .await?;
        Ok::<_, ProvisionError>((b.primary.clone(), arn))
    }));
    let (validator, notifier, crr) = futures::try_join!(validator, notifier, crr)?;
    Ok(RoleArns {
        validator,
        notifier,
        replication: crr.into_iter().collect(),
    })
}

/// Puts each key's own policy (on new and existing keys alike, so a re-apply converges).
/// Part of each key's step in the report (not a resource of its own).
pub(super) async fn put_key_policies<'a>(
    account: &str,
    keys: impl Iterator<
        Item = (
            &'a str,
            &'a aws_sdk_kms::Client,
            &'a str,
            crate::topology::KeyPurpose,
        ),
    >,
    roles: &RoleArns,
) -> Result<(), ProvisionError> {
    let replication: Vec<String> = roles.replication.values().cloned().collect();
    let replication = &replication;
    try_join_all(keys.map(|(arn, kms, region, purpose)| async move {
        let step = format!("kms key policy {}", short(arn));
        let users = policy::key_users(purpose, &roles.validator, &roles.notifier, replication);
        kms.put_key_policy()
            .key_id(arn)
            .policy_name("default")
            .policy(policy::key_policy(account, region, purpose, &users).to_string())
            .send()
            .await
            .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
        Ok::<_, ProvisionError>(())
    }))
    .await?;
    Ok(())
}

/// Creates `name` in `region` unless it exists, tags it as this run's, blocks public
/// access (all four flags, unless the spec turns one off) and sets the topology's default encryption: what every bucket of the topology
/// gets. An existing bucket without this run's tags is refused, never reconfigured.
pub(super) async fn ensure_private_encrypted(
    s3: &aws_sdk_s3::Client,
    spec: &TopologySpec,
    name: &str,
    region: &str,
    suffix: &str,
    extra_tags: &[(&str, &str)],
    f: &impl Fn(String) -> ProvisionError,
) -> Result<Status, ProvisionError> {
    let status = match s3.head_bucket().bucket(name).send().await {
        Ok(_) => match ownership::bucket(s3, name, suffix).await {
            Ownership::Ours => Status::Exists,
            Ownership::Foreign(why) => return Err(f(why)),
        },
        Err(_) => {
            let mut req = s3.create_bucket().bucket(name);
            if region != "us-east-1" {
                req = req.create_bucket_configuration(
                    s3t::CreateBucketConfiguration::builder()
                        .location_constraint(s3t::BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            let created = match req.send().await {
                Ok(_) => true,
                Err(e) if sdk(&e).contains("BucketAlreadyOwnedByYou") => {
                    match ownership::bucket(s3, name, suffix).await {
                        Ownership::Ours => false,
                        Ownership::Foreign(why) => return Err(f(why)),
                    }
                }
                Err(e) => return Err(f(sdk(e))),
            };
            if created {
                tag_bucket(s3, spec, name, suffix, extra_tags, f).await?;
                Status::Created
            } else {
                Status::Exists
            }
        }
    };

    let pab = &spec.buckets.public_access_block;
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            s3t::PublicAccessBlockConfiguration::builder()
                .block_public_acls(pab.block_public_acls)
                .block_public_policy(pab.block_public_policy)
                .ignore_public_acls(pab.ignore_public_acls)
                .restrict_public_buckets(pab.restrict_public_buckets)
                .build(),
        )
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    put_encryption(s3, spec, name, f).await?;
    Ok(status)
}

/// Sets the topology's default encryption on a bucket.
pub(super) async fn put_encryption(
    s3: &aws_sdk_s3::Client,
    spec: &TopologySpec,
    name: &str,
    f: &impl Fn(String) -> ProvisionError,
) -> Result<(), ProvisionError> {
    let sse = s3t::ServerSideEncryptionConfiguration::builder()
        .rules(
            s3t::ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    s3t::ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(s3t::ServerSideEncryption::from(
                            spec.buckets.encryption.as_str(),
                        ))
                        .build()
                        .map_err(|e| f(e.to_string()))?,
                )
                .build(),
        )
        .build()
        .map_err(|e| f(e.to_string()))?;
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(sse)
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    Ok(())
}

/// Tags a bucket this run created: the project's tags and the ownership tags.
pub(super) async fn tag_bucket(
    s3: &aws_sdk_s3::Client,
    spec: &TopologySpec,
    name: &str,
    suffix: &str,
    extra_tags: &[(&str, &str)],
    f: &impl Fn(String) -> ProvisionError,
) -> Result<(), ProvisionError> {
    let tag = |k: &str, v: &str| s3t::Tag::builder().key(k).value(v).build();
    let mut tags = vec![
        tag("Project", &spec.project).map_err(|e| f(e.to_string()))?,
        tag("Environment", &spec.environment).map_err(|e| f(e.to_string()))?,
    ];
    for (k, v) in ownership::tags(suffix) {
        tags.push(tag(&k, &v).map_err(|e| f(e.to_string()))?);
    }
    for (k, v) in extra_tags {
        tags.push(tag(k, v).map_err(|e| f(e.to_string()))?);
    }
    s3.put_bucket_tagging()
        .bucket(name)
        .tagging(
            s3t::Tagging::builder()
                .set_tag_set(Some(tags))
                .build()
                .map_err(|e| f(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    Ok(())
}

/// Sets `rule` as the bucket's lifecycle configuration.
pub(super) async fn put_lifecycle(
    s3: &aws_sdk_s3::Client,
    name: &str,
    rule: s3t::LifecycleRule,
    f: &impl Fn(String) -> ProvisionError,
) -> Result<(), ProvisionError> {
    s3.put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(
            s3t::BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| f(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    Ok(())
}

/// The notifier's alert ledger: not versioned (its entries are bookkeeping, not backups),
/// default-encrypted, private, entries expiring after a day, no event notifications.
pub(super) async fn ensure_ledger_bucket(
    clients: &Clients,
    spec: &TopologySpec,
    name: &str,
    suffix: &str,
    log: &Log,
) -> Result<(), ProvisionError> {
    let t = Instant::now();
    let step = format!("s3 bucket {name} (alert ledger)");
    let f = fail(&step);
    let s3 = &clients.s3;
    let status =
        ensure_private_encrypted(s3, spec, name, &spec.primary_region, suffix, &[], &f).await?;
    let rule = ledger_lifecycle().map_err(&f)?;
    put_lifecycle(s3, name, rule, &f).await?;
    record(log, step.clone(), status, t).await;
    Ok(())
}

pub(super) async fn ensure_bucket(
    clients: &Clients,
    spec: &TopologySpec,
    name: &str,
    region: &str,
    category: &str,
    suffix: &str,
    log: &Log,
) -> Result<(), ProvisionError> {
    let t = Instant::now();
    let step = format!("s3 bucket {name} ({region})");
    let f = fail(&step);
    let s3 = if region == spec.primary_region {
        &clients.s3
    } else {
        &clients.s3_replica
    };
    let status = ensure_private_encrypted(
        s3,
        spec,
        name,
        region,
        suffix,
        &[("Category", category)],
        &f,
    )
    .await?;
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            s3t::VersioningConfiguration::builder()
                .status(s3t::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    let rule = category_lifecycle(spec, category).map_err(&f)?;
    put_lifecycle(s3, name, rule, &f).await?;
    record(log, step.clone(), status, t).await;
    Ok(())
}

/// The ledger's lifecycle rule: entries expire after a day.
pub(super) fn ledger_lifecycle() -> Result<s3t::LifecycleRule, String> {
    s3t::LifecycleRule::builder()
        .id("expire-ledger-entries")
        .status(s3t::ExpirationStatus::Enabled)
        .filter(
            s3t::LifecycleRuleFilter::builder()
                .prefix("alerts/")
                .build(),
        )
        .expiration(s3t::LifecycleExpiration::builder().days(1).build())
        .abort_incomplete_multipart_upload(
            s3t::AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())
}

/// A category bucket's lifecycle rule (the seed's: noncurrent versions to Glacier IR, then
/// expired; incomplete multipart uploads aborted).
pub(super) fn category_lifecycle(
    spec: &TopologySpec,
    category: &str,
) -> Result<s3t::LifecycleRule, String> {
    s3t::LifecycleRule::builder()
        .id(format!("{category}-lifecycle-rule"))
        .status(s3t::ExpirationStatus::Enabled)
        .filter(s3t::LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(
            s3t::AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(spec.buckets.abort_incomplete_multipart_days)
                .build(),
        )
        .noncurrent_version_transitions(
            s3t::NoncurrentVersionTransition::builder()
                .noncurrent_days(spec.buckets.noncurrent_to_glacier_ir_days)
                .storage_class(s3t::TransitionStorageClass::GlacierIr)
                .build(),
        )
        .noncurrent_version_expiration(
            s3t::NoncurrentVersionExpiration::builder()
                .noncurrent_days(spec.buckets.noncurrent_expire_days)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())
}

pub(super) async fn ensure_eventbridge_notifications(
    clients: &Clients,
    bucket: &str,
    log: &Log,
) -> Result<(), ProvisionError> {
    let t = Instant::now();
    let step = format!("s3 notifications {bucket} -> eventbridge");
    let current = clients
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
    let status = if current.event_bridge_configuration().is_some() {
        Status::Exists
    } else {
        clients
            .s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                s3t::NotificationConfiguration::builder()
                    .event_bridge_configuration(s3t::EventBridgeConfiguration::builder().build())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
        Status::Created
    };
    record(log, step.clone(), status, t).await;
    Ok(())
}

/// The replication rules of one category: one rule per destination, covering the spec's
/// prefix, replicating delete markers and (when on) SSE-KMS objects with the replica CMK.
pub fn replication_config(
    spec: &TopologySpec,
    b: &CategoryBuckets,
    role_arn: String,
    replica_key_arn: &str,
) -> crate::topology::replication::BucketReplication {
    let r = &spec.replication;
    crate::topology::replication::BucketReplication {
        primary: b.primary.clone(),
        role: role_arn,
        rules: b
            .destinations()
            .into_iter()
            .enumerate()
            .map(|(i, destination)| crate::topology::replication::RuleSpec {
                id: if i == 0 {
                    format!("{}-replication-rule", b.category)
                } else {
                    format!("{}-replication-rule-{}", b.category, i + 1)
                },
                priority: i as i32 + 1,
                prefix: r.prefix.clone(),
                tags: Vec::new(),
                delete_markers: r.delete_markers,
                replica_kms_key: r.sse_kms.then(|| replica_key_arn.to_string()),
                destination,
                rtc: r.rtc,
            })
            .collect(),
    }
}

pub(super) async fn ensure_replication(
    clients: &Clients,
    config: &crate::topology::replication::BucketReplication,
    log: &Log,
) -> Result<(), ProvisionError> {
    let t = Instant::now();
    let step = format!("s3 replication {}", config.primary);
    let f = fail(&step);
    let status = match clients
        .s3
        .get_bucket_replication()
        .bucket(&config.primary)
        .send()
        .await
    {
        Ok(_) => Status::Exists,
        Err(_) => Status::Created,
    };
    clients
        .s3
        .put_bucket_replication()
        .bucket(&config.primary)
        .replication_configuration(config.to_sdk().map_err(&f)?)
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    record(log, step.clone(), status, t).await;
    Ok(())
}

pub(super) async fn ensure_queue(
    clients: &Clients,
    suffix: &str,
    name: &str,
    attributes: HashMap<QA, String>,
    log: &Log,
) -> Result<QueueRef, ProvisionError> {
    let t = Instant::now();
    let step = format!("sqs queue {name}");
    let f = fail(&step);
    let (url, status) = match clients.sqs.get_queue_url().queue_name(name).send().await {
        Ok(found) => {
            let url = found.queue_url().unwrap_or_default().to_string();
            if let Ownership::Foreign(why) = ownership::queue(clients, &url, suffix).await {
                return Err(f(why));
            }
            if !attributes.is_empty() {
                clients
                    .sqs
                    .set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|e| f(sdk(e)))?;
            }
            (url, Status::Exists)
        }
        Err(_) => {
            let created = clients
                .sqs
                .create_queue()
                .queue_name(name)
                .set_attributes(Some(attributes))
                .set_tags(Some(
                    ownership::tags(suffix)
                        .into_iter()
                        .chain([("RedrivePolicyEnforced".into(), "true".into())])
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| f(sdk(e)))?;
            (
                created.queue_url().unwrap_or_default().to_string(),
                Status::Created,
            )
        }
    };
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QA::QueueArn)
        .send()
        .await
        .map_err(|e| f(sdk(e)))?
        .attributes()
        .and_then(|a| a.get(&QA::QueueArn).cloned())
        .ok_or_else(|| f("no QueueArn attribute".into()))?;
    record(log, step.clone(), status, t).await;
    Ok(QueueRef {
        name: name.to_string(),
        url,
        arn,
    })
}

pub(super) async fn ensure_topic(
    clients: &Clients,
    suffix: &str,
    name: &str,
    key_arn: &str,
    account: &str,
    spec: &TopologySpec,
    log: &Log,
) -> Result<String, ProvisionError> {
    let t = Instant::now();
    let step = format!("sns topic {name}");
    let expected = format!("arn:aws:sns:{}:{account}:{name}", spec.primary_region);
    let existed = clients
        .sns
        .get_topic_attributes()
        .topic_arn(&expected)
        .send()
        .await
        .is_ok();
    if existed {
        if let Ownership::Foreign(why) = ownership::topic(clients, &expected, suffix).await {
            return Err(ProvisionError::new(&step, why));
        }
    }
    let mut create = clients
        .sns
        .create_topic()
        .name(name)
        .attributes("KmsMasterKeyId", key_arn);
    for (k, v) in ownership::tags(suffix) {
        create = create.tags(
            aws_sdk_sns::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProvisionError::new(&step, e.to_string()))?,
        );
    }
    let created = create
        .send()
        .await
        .map_err(|e| ProvisionError::new(&step, sdk(e)))?;
    let arn = created.topic_arn().unwrap_or(&expected).to_string();
    record(
        log,
        step.clone(),
        if existed {
            Status::Exists
        } else {
            Status::Created
        },
        t,
    )
    .await;
    Ok(arn)
}

pub(super) async fn ensure_subscription(
    clients: &Clients,
    topic_arn: &str,
    alerts: &QueueRef,
    log: &Log,
) -> Result<(), ProvisionError> {
    let t = Instant::now();
    let step = format!("sns subscription {} -> {}", short(topic_arn), alerts.name);
    let f = fail(&step);
    let policy = policy::queue_send("sns.amazonaws.com", &alerts.arn, topic_arn);
    put_queue_policy(clients, alerts, &policy, &f).await?;
    let existing = clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    let exists = existing
        .subscriptions()
        .iter()
        .any(|s| s.endpoint() == Some(alerts.arn.as_str()));
    if !exists {
        clients
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&alerts.arn)
            .send()
            .await
            .map_err(|e| f(sdk(e)))?;
    }
    record(
        log,
        step.clone(),
        if exists {
            Status::Exists
        } else {
            Status::Created
        },
        t,
    )
    .await;
    Ok(())
}

pub(super) async fn ensure_rule(
    clients: &Clients,
    suffix: &str,
    name: &str,
    primary_arns: &[String],
    target: &QueueRef,
    dlq: &QueueRef,
    log: &Log,
) -> Result<String, ProvisionError> {
    let t = Instant::now();
    let step = format!("eventbridge rule {name} -> {}", target.name);
    let f = fail(&step);
    let existing = clients.events.describe_rule().name(name).send().await.ok();
    let existed = existing.is_some();
    if let Some(arn) = existing.as_ref().and_then(|r| r.arn()) {
        if let Ownership::Foreign(why) = ownership::rule(clients, arn, suffix).await {
            return Err(f(why));
        }
    }
    let pattern = json!({
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "resources": primary_arns,
    });
    let rule = clients
        .events
        .put_rule()
        .name(name)
        .event_pattern(pattern.to_string())
        .state(aws_sdk_eventbridge::types::RuleState::Enabled)
        .set_tags(if existed {
            None
        } else {
            Some(
                ownership::tags(suffix)
                    .into_iter()
                    .map(|(k, v)| {
                        aws_sdk_eventbridge::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| f(e.to_string()))?,
            )
        })
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    let rule_arn = rule.rule_arn().unwrap_or_default().to_string();
    clients
        .events
        .put_targets()
        .rule(name)
        .targets(
            // An event EventBridge cannot deliver is retried for up to 24 hours, 185 times
            // (the defaults, written out), then goes to the target's dead-letter queue
            // instead of being dropped (EventBridge User Guide, "Event retry policy and
            // using dead-letter queues").
            aws_sdk_eventbridge::types::Target::builder()
                .id("SendToValidationQueue")
                .arn(&target.arn)
                .retry_policy(
                    aws_sdk_eventbridge::types::RetryPolicy::builder()
                        .maximum_retry_attempts(185)
                        .maximum_event_age_in_seconds(86_400)
                        .build(),
                )
                .dead_letter_config(
                    aws_sdk_eventbridge::types::DeadLetterConfig::builder()
                        .arn(&dlq.arn)
                        .build(),
                )
                .build()
                .map_err(|e| f(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    // The queue, and its dead-letter queue, take EventBridge's messages for this rule only.
    for q in [target, dlq] {
        let policy = policy::queue_send("events.amazonaws.com", &q.arn, &rule_arn);
        put_queue_policy(clients, q, &policy, &f).await?;
    }
    record(
        log,
        step.clone(),
        if existed {
            Status::Exists
        } else {
            Status::Created
        },
        t,
    )
    .await;
    Ok(rule_arn)
}

/// Sets a queue's access policy.
pub(super) async fn put_queue_policy(
    clients: &Clients,
    queue: &QueueRef,
    policy: &serde_json::Value,
    f: &impl Fn(String) -> ProvisionError,
) -> Result<(), ProvisionError> {
    clients
        .sqs
        .set_queue_attributes()
        .queue_url(&queue.url)
        .attributes(QA::Policy, policy.to_string())
        .send()
        .await
        .map_err(|e| f(sdk(e)))?;
    Ok(())
}

pub(super) fn short(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

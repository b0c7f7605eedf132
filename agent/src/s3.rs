//! AWS adapter, part 2: the S3 calls behind rotation, restore lookup and cost analysis, and
//! the conversions from SDK types into the pure core's types.
//!
//! Floor 4: may import modules of floors 0 to 3 only; it imports `aws`, `compat`,
//! `cost::inventory`, `cost::lifecycle`, `errors`, `rotation`, `test_support`.

use aws_sdk_s3::primitives::DateTime as SdkDateTime;
use aws_sdk_s3::types::{self as s3t, BucketVersioningStatus};
use chrono::{DateTime, Utc};

use crate::aws::{aws_error, classify};
use crate::cost::inventory::Listed;
use crate::cost::lifecycle::{Filter, NoncurrentAction, Rule, Transition, When};
use crate::errors::AgentError;
use crate::rotation::Versioning;

pub fn to_chrono(t: &SdkDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos()).unwrap_or_default()
}

/// `bucket/key[?versionId=v]` for `x-amz-copy-source`, percent-encoded.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let mut s = format!("{}/{}", encode(bucket, true), encode(key, true));
    if let Some(v) = version_id {
        s.push_str("?versionId=");
        s.push_str(&encode(v, false));
    }
    s
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every current object under `prefix` (`ListObjectsV2`): key and storage class.
pub async fn list_current(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, AgentError> {
    Ok(list_current_objects(s3, bucket, prefix)
        .await?
        .into_iter()
        .map(|(k, class, _)| (k, class))
        .collect())
}

/// Every current object under `prefix` as rotation and `latest` see it: key and
/// `LastModified`.
pub async fn list_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<crate::rotation::Object>, AgentError> {
    Ok(list_current_objects(s3, bucket, prefix)
        .await?
        .into_iter()
        .map(|(k, _, t)| crate::rotation::Object::new(k, t))
        .collect())
}

/// `ListObjectsV2` of `prefix`: key, storage class and `LastModified` of every object.
#[allow(clippy::type_complexity)]
async fn list_current_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, String, Option<DateTime<Utc>>)>, AgentError> {
    let mut out = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| aws_error("S3", "ListObjectsV2", format!("s3://{bucket}/{prefix}"), &e))?;
        out.extend(page.contents().iter().filter_map(|o| {
            let class = o
                .storage_class()
                .map(|c| c.as_str().to_string())
                .unwrap_or_else(|| "STANDARD".into());
            o.key()
                .map(|k| (k.to_string(), class, o.last_modified().map(to_chrono)))
        }));
    }
    Ok(out)
}

/// Every key under `prefix`.
pub async fn list_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, AgentError> {
    Ok(list_current(s3, bucket, prefix)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Every version under `prefix` with the storage class the endpoint stores it in. Where
/// `ListObjectsV2` contradicts `ListObjectVersions` on a current object
/// ([`crate::compat::version_classes_contradicted`]), current versions take their class from
/// `ListObjectsV2` and the others from `HeadObject`; on AWS the two agree and nothing more is
/// read.
pub async fn list_versions_with_classes(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Listed>, AgentError> {
    let mut listing = list_versions(s3, bucket, prefix).await?;
    let current: std::collections::HashMap<String, String> = list_current(s3, bucket, prefix)
        .await?
        .into_iter()
        .collect();
    if !crate::compat::version_classes_contradicted(&listing, &current) {
        return Ok(listing);
    }
    let mut heads = 0;
    for v in listing.iter_mut().filter(|v| !v.delete_marker) {
        v.storage_class = match (v.is_latest, current.get(&v.key)) {
            (true, Some(c)) => c.clone(),
            _ => {
                heads += 1;
                version_storage_class(s3, bucket, &v.key, v.version_id.as_deref()).await?
            }
        };
    }
    tracing::warn!(
        heads,
        "the endpoint's ListObjectVersions reports storage classes that ListObjectsV2 contradicts; \
         classes of current versions come from ListObjectsV2, the others from HeadObject"
    );
    Ok(listing)
}

/// Storage class of one version, as `HeadObject` reports it (absent means STANDARD).
pub async fn version_storage_class(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<String, AgentError> {
    let h = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| aws_error("S3", "HeadObject", format!("s3://{bucket}/{key}"), &e))?;
    Ok(h.storage_class()
        .map(|c| c.as_str().to_string())
        .unwrap_or_else(|| "STANDARD".into()))
}

/// Result of deleting keys (without version ids).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub deleted: Vec<String>,
    /// How many of the deletions created a delete marker (versioned bucket).
    pub delete_markers: usize,
    pub errors: Vec<(String, String)>,
}

/// Deletes `keys` (current versions; a versioned bucket answers with delete markers).
pub async fn delete_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
) -> Result<Deleted, AgentError> {
    let mut out = Deleted::default();
    for batch in keys.chunks(1000) {
        let objects: Vec<s3t::ObjectIdentifier> = batch
            .iter()
            .map(|k| s3t::ObjectIdentifier::builder().key(k).build())
            .collect::<Result<_, _>>()
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let delete = s3t::Delete::builder()
            .set_objects(Some(objects))
            .quiet(false)
            .build()
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let r = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| aws_error("S3", "DeleteObjects", format!("s3://{bucket}"), &e))?;
        for d in r.deleted() {
            if let Some(k) = d.key() {
                out.deleted.push(k.to_string());
            }
            if d.delete_marker() == Some(true) {
                out.delete_markers += 1;
            }
        }
        for e in r.errors() {
            out.errors.push((
                e.key().unwrap_or_default().to_string(),
                format!(
                    "{}: {}",
                    e.code().unwrap_or("error"),
                    e.message().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(out)
}

pub async fn versioning(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Versioning, AgentError> {
    let r = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| aws_error("S3", "GetBucketVersioning", bucket, &e))?;
    Ok(match r.status() {
        Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
        Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
        _ => Versioning::Off,
    })
}

/// The bucket's lifecycle rules (none configured: empty).
pub async fn lifecycle_rules(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Vec<Rule>, AgentError> {
    match s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(r) => Ok(r.rules().iter().map(rule_from_sdk).collect()),
        Err(e) => {
            let f = classify(&e);
            if f.code() == Some("NoSuchLifecycleConfiguration") || f.status() == Some(404) {
                Ok(Vec::new())
            } else {
                Err(aws_error(
                    "S3",
                    "GetBucketLifecycleConfiguration",
                    bucket,
                    &e,
                ))
            }
        }
    }
}

fn days(d: Option<i32>) -> u32 {
    d.unwrap_or(0).max(0) as u32
}

/// Converts an SDK lifecycle rule into the core's [`Rule`].
pub fn rule_from_sdk(r: &s3t::LifecycleRule) -> Rule {
    let mut filter = Filter::default();
    #[allow(deprecated)]
    if let Some(p) = r.prefix() {
        filter.prefix = p.to_string();
    }
    if let Some(f) = r.filter() {
        if let Some(p) = f.prefix() {
            filter.prefix = p.to_string();
        }
        if let Some(t) = f.tag() {
            filter
                .tags
                .push((t.key().to_string(), t.value().to_string()));
        }
        filter.size_greater_than = f.object_size_greater_than();
        filter.size_less_than = f.object_size_less_than();
        if let Some(and) = f.and() {
            if let Some(p) = and.prefix() {
                filter.prefix = p.to_string();
            }
            for t in and.tags() {
                filter
                    .tags
                    .push((t.key().to_string(), t.value().to_string()));
            }
            filter.size_greater_than = and.object_size_greater_than().or(filter.size_greater_than);
            filter.size_less_than = and.object_size_less_than().or(filter.size_less_than);
        }
    }
    let when = |days: Option<i32>, date: Option<&SdkDateTime>| match (days, date) {
        (Some(d), _) => Some(When::Days(d.max(0) as u32)),
        (None, Some(t)) => Some(When::Date(to_chrono(t))),
        (None, None) => None,
    };
    Rule {
        id: r.id().unwrap_or("(unnamed)").to_string(),
        enabled: *r.status() == s3t::ExpirationStatus::Enabled,
        filter,
        transitions: r
            .transitions()
            .iter()
            .filter_map(|t| {
                Some(Transition {
                    when: when(t.days(), t.date())?,
                    storage_class: t.storage_class()?.as_str().to_string(),
                })
            })
            .collect(),
        expiration: r.expiration().and_then(|e| when(e.days(), e.date())),
        expired_object_delete_marker: r
            .expiration()
            .and_then(|e| e.expired_object_delete_marker())
            .unwrap_or(false),
        noncurrent_transitions: r
            .noncurrent_version_transitions()
            .iter()
            .map(|t| NoncurrentAction {
                noncurrent_days: days(t.noncurrent_days()),
                storage_class: t.storage_class().map(|c| c.as_str().to_string()),
                newer_noncurrent_versions: t.newer_noncurrent_versions().map(|n| n.max(0) as u32),
            })
            .collect(),
        noncurrent_expiration: r.noncurrent_version_expiration().map(|e| NoncurrentAction {
            noncurrent_days: days(e.noncurrent_days()),
            storage_class: None,
            newer_noncurrent_versions: e.newer_noncurrent_versions().map(|n| n.max(0) as u32),
        }),
        abort_incomplete_multipart_days: r
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation())
            .map(|d| d.max(0) as u32),
    }
}

/// Every version and delete marker under `prefix` (works on unversioned buckets too: one
/// `null` version per key).
pub async fn list_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Listed>, AgentError> {
    let mut out = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let r = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "S3",
                    "ListObjectVersions",
                    format!("s3://{bucket}/{prefix}"),
                    &e,
                )
            })?;
        for v in r.versions() {
            out.push(Listed {
                key: v.key().unwrap_or_default().to_string(),
                version_id: v.version_id().map(str::to_string),
                size: v.size().unwrap_or(0),
                storage_class: v
                    .storage_class()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_else(|| "STANDARD".into()),
                last_modified: v.last_modified().map(to_chrono).unwrap_or_default(),
                is_latest: v.is_latest().unwrap_or(false),
                delete_marker: false,
            });
        }
        for m in r.delete_markers() {
            out.push(Listed {
                key: m.key().unwrap_or_default().to_string(),
                version_id: m.version_id().map(str::to_string),
                size: 0,
                storage_class: String::new(),
                last_modified: m.last_modified().map(to_chrono).unwrap_or_default(),
                is_latest: m.is_latest().unwrap_or(false),
                delete_marker: true,
            });
        }
        let next_key = r.next_key_marker().map(str::to_string);
        let next_version = r.next_version_id_marker().map(str::to_string);
        // Guard against an endpoint that says "truncated" without moving the markers.
        if r.is_truncated() != Some(true)
            || next_key.is_none()
            || (next_key == key_marker && next_version == version_marker)
        {
            break;
        }
        key_marker = next_key;
        version_marker = next_version;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{Aws, EXPECTED_OWNER_HEADER, SOURCE_EXPECTED_OWNER_HEADER};
    use crate::test_support::stub::{happy, StubS3};

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(
            copy_source("b", "backups/documents/20260101T000000.000Z.tar.gz", None),
            "b/backups/documents/20260101T000000.000Z.tar.gz"
        );
        assert_eq!(
            copy_source("b", "a b/ü", Some("x+y=")),
            "b/a%20b/%C3%BC?versionId=x%2By%3D"
        );
    }

    #[test]
    fn sdk_rules_convert() {
        let rule = s3t::LifecycleRule::builder()
            .id("documents-lifecycle-rule")
            .status(s3t::ExpirationStatus::Enabled)
            .filter(
                s3t::LifecycleRuleFilter::builder()
                    .prefix("backups/")
                    .build(),
            )
            .transitions(
                s3t::Transition::builder()
                    .days(30)
                    .storage_class(s3t::TransitionStorageClass::StandardIa)
                    .build(),
            )
            .expiration(s3t::LifecycleExpiration::builder().days(365).build())
            .noncurrent_version_transitions(
                s3t::NoncurrentVersionTransition::builder()
                    .noncurrent_days(30)
                    .storage_class(s3t::TransitionStorageClass::GlacierIr)
                    .build(),
            )
            .noncurrent_version_expiration(
                s3t::NoncurrentVersionExpiration::builder()
                    .noncurrent_days(90)
                    .newer_noncurrent_versions(2)
                    .build(),
            )
            .abort_incomplete_multipart_upload(
                s3t::AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(7)
                    .build(),
            )
            .build()
            .unwrap();
        let r = rule_from_sdk(&rule);
        assert!(r.enabled);
        assert_eq!(r.filter.prefix, "backups/");
        assert_eq!(r.transitions[0].when, When::Days(30));
        assert_eq!(r.transitions[0].storage_class, "STANDARD_IA");
        assert_eq!(r.expiration, Some(When::Days(365)));
        assert_eq!(
            r.noncurrent_transitions[0].storage_class.as_deref(),
            Some("GLACIER_IR")
        );
        assert_eq!(
            r.noncurrent_expiration
                .as_ref()
                .unwrap()
                .newer_noncurrent_versions,
            Some(2)
        );
        assert_eq!(r.abort_incomplete_multipart_days, Some(7));
    }

    /// Finding 21: with an expected owner every bucket and object request carries
    /// x-amz-expected-bucket-owner (copies also the source header); ListBuckets does not.
    #[tokio::test]
    async fn every_s3_request_carries_the_expected_owner() {
        let stub = StubS3::start(happy).await;
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let plain = Aws::from_config(sdk, true, stub.endpoint.clone());
        let plain = Aws {
            s3: stub.client(),
            ..plain
        };
        let owned = plain.with_expected_owner(Some("111122223333"));
        let s3 = &owned.s3;
        s3.head_bucket().bucket("b").send().await.unwrap();
        s3.list_buckets().send().await.unwrap();
        s3.put_object()
            .bucket("b")
            .key("backups/k")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        s3.copy_object()
            .bucket("b")
            .key("backups/k")
            .copy_source("b/backups/k")
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket("b")
            .key("backups/k")
            .send()
            .await
            .unwrap();
        lifecycle_rules(s3, "b").await.unwrap();
        // The same calls without an owner send no header.
        plain.s3.head_bucket().bucket("b").send().await.unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 7);
        for s in &seen[..6] {
            let header = s.header(EXPECTED_OWNER_HEADER);
            if s.op() == "ListBuckets" {
                assert_eq!(header, None, "{s:?}");
            } else {
                assert_eq!(header, Some("111122223333"), "{}: {s:?}", s.op());
            }
            let source = s.header(SOURCE_EXPECTED_OWNER_HEADER);
            assert_eq!(source.is_some(), s.op() == "CopyObject", "{}", s.op());
        }
        assert_eq!(seen[6].header(EXPECTED_OWNER_HEADER), None);
    }
}

//! Which backup a restore fetches ([`At`], [`resolve`], [`latest_of`]) and what it is
//! verified against ([`Expected`]).
//!
//! Floor 5: may import modules of floors 0 to 4 only; it imports `aws`, `compat`, `digest`,
//! `errors`, `layout`, `rotation`, `s3`.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_s3::types::ChecksumMode;

use crate::aws::classify;
use crate::compat::{self, Stored};
use crate::digest::Checksums;
use crate::errors::AgentError;
use crate::layout::{self, meta, Category};

/// Which backup to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    Latest,
    Key(String),
    Version(String),
}

impl FromStr for At {
    type Err = String;
    fn from_str(s: &str) -> Result<At, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty value; use latest, a key (backups/...) or a version id".into());
        }
        Ok(if s == "latest" {
            At::Latest
        } else if s.starts_with(layout::ROOT) {
            At::Key(s.to_string())
        } else {
            At::Version(s.to_string())
        })
    }
}

/// A backup found in the bucket.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub metadata: HashMap<String, String>,
    pub stored: Stored,
}

/// The checksum a restore is verified against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expected {
    Sha256 { hex: String, source: String },
    Crc64nvme { base64: String, source: String },
    Nothing,
}

impl Expected {
    /// Picks the strongest available reference (see the module docs for the order):
    /// the history's SHA-256, then the object metadata's only if `trust_metadata`, then
    /// S3's full-object CRC64NVME.
    pub fn choose(target: &Target, history_sha256: Option<&str>, trust_metadata: bool) -> Expected {
        let metadata = target
            .metadata
            .get(meta::SHA256)
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase());
        if let Some(h) = history_sha256.filter(|h| !h.is_empty()) {
            let h = h.to_ascii_lowercase();
            if metadata.as_ref().is_some_and(|m| *m != h) {
                tracing::warn!(
                    key = %target.key,
                    "the object's sha256 metadata differs from the history; verifying against the history"
                );
            }
            return Expected::Sha256 {
                hex: h,
                source: "history".into(),
            };
        }
        if let Some(h) = metadata.filter(|_| trust_metadata) {
            tracing::warn!(
                key = %target.key,
                "no history record for this backup: verifying against the object's sha256 metadata, which anyone who can write the bucket can set"
            );
            return Expected::Sha256 {
                hex: h,
                source: "object metadata".into(),
            };
        }
        if let Stored::FullObject(v) = &target.stored {
            return Expected::Crc64nvme {
                base64: v.clone(),
                source: "S3 full-object checksum".into(),
            };
        }
        Expected::Nothing
    }

    /// Compares with what was downloaded; `Ok(description)` or a checksum error.
    pub fn verify(&self, got: &Checksums, what: &str) -> Result<String, AgentError> {
        match self {
            Expected::Sha256 { hex, source } if *hex == got.sha256 => {
                Ok(format!("SHA-256 matches ({source})"))
            }
            Expected::Sha256 { hex, source } => Err(AgentError::Checksum {
                what: format!("{what} (SHA-256 from {source})"),
                expected: hex.clone(),
                actual: got.sha256.clone(),
            }),
            Expected::Crc64nvme { base64, source } if *base64 == got.crc64nvme => {
                Ok(format!("CRC64NVME matches ({source})"))
            }
            Expected::Crc64nvme { base64, source } => Err(AgentError::Checksum {
                what: format!("{what} (CRC64NVME from {source})"),
                expected: base64.clone(),
                actual: got.crc64nvme.clone(),
            }),
            Expected::Nothing => Ok("NOT VERIFIED (no reference checksum)".into()),
        }
    }
}

/// Finds the backup to restore.
pub async fn resolve(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    category: Category,
    at: &At,
) -> Result<Target, AgentError> {
    resolve_preferring(s3, bucket, category, at, None, &HashMap::new()).await
}

/// Which backup `latest` is among the listed `objects`: the history's last successful
/// backup (`history_latest`) while it is still there, since a key in the bucket may have
/// been written by a host with a skewed clock or by someone else; otherwise the newest by
/// `LastModified` (see [`crate::rotation::plan`]).
pub fn latest_of(
    objects: &[crate::rotation::Object],
    category: Category,
    history_latest: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let plan = crate::rotation::plan(objects, category, 1, None, now);
    if let Some(w) = crate::rotation::future_warning(&plan.future) {
        tracing::warn!("{w}");
    }
    let newest = plan.keep.into_iter().next();
    match history_latest {
        Some(h) if objects.iter().any(|o| o.key == h) => {
            if newest.as_deref().is_some_and(|n| n != h) {
                tracing::warn!(
                    history = h,
                    bucket_newest = newest.as_deref().unwrap_or_default(),
                    "the bucket's newest backup is not the history's last successful one; restoring the history's (pass --at KEY for the other)"
                );
            }
            Some(h.to_string())
        }
        _ => newest,
    }
}

/// [`resolve`], with `latest` preferring the history's last successful backup of the
/// category in this bucket (see [`latest_of`]), and a key the history recorded (`recorded`:
/// key -> version id) pinned to the version the history recorded, so that a newer version
/// someone else put under the key is not what gets restored (a warning names it).
/// A recorded version that is gone is replaced by the current one, with a warning (the
/// history's checksum still has to match it).
pub async fn resolve_preferring(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    category: Category,
    at: &At,
    history_latest: Option<&str>,
    recorded: &HashMap<String, String>,
) -> Result<Target, AgentError> {
    let prefix = layout::prefix(category);
    let (key, version) = match at {
        At::Latest => {
            let objects = crate::s3::list_objects(s3, bucket, &prefix).await?;
            let key = latest_of(&objects, category, history_latest, chrono::Utc::now())
                .ok_or_else(|| AgentError::NotFound {
                    what: format!("no backup under s3://{bucket}/{prefix}"),
                })?;
            (key, None)
        }
        At::Key(k) => (k.clone(), None),
        At::Version(v) => {
            let listing = crate::s3::list_versions(s3, bucket, &prefix).await?;
            let found = listing
                .iter()
                .find(|l| l.version_id.as_deref() == Some(v.as_str()))
                .ok_or_else(|| AgentError::NotFound {
                    what: format!("no version {v} under s3://{bucket}/{prefix}"),
                })?;
            if found.delete_marker {
                return Err(AgentError::NotFound {
                    what: format!("version {v} of {} is a delete marker", found.key),
                });
            }
            (found.key.clone(), Some(v.clone()))
        }
    };
    let pinned = match (at, &version) {
        (At::Latest | At::Key(_), None) => recorded
            .get(&key)
            .filter(|v| !v.is_empty() && v.as_str() != "null")
            .cloned(),
        _ => None,
    };
    let mut version = version;
    if let Some(v) = &pinned {
        match head(s3, bucket, &key, Some(v.clone())).await {
            Ok(_) => {
                match head(s3, bucket, &key, None).await {
                    Ok(cur) if cur.version_id() == Some(v.as_str()) => {}
                    Ok(cur) => tracing::warn!(
                        key = %key,
                        recorded = %v,
                        current = cur.version_id().unwrap_or("-"),
                        "the key's current version is not the one this host's history recorded; restoring the recorded version (pass --at VERSION for another)"
                    ),
                    Err(_) => tracing::warn!(
                        key = %key,
                        recorded = %v,
                        "the key has no current version (a delete marker?); restoring the version this host's history recorded"
                    ),
                }
                version = Some(v.clone());
            }
            Err(e) if classify(&e).is_not_found() => tracing::warn!(
                key = %key,
                recorded = %v,
                "the version this host's history recorded is gone; restoring the current version (it must still match the history's checksum)"
            ),
            Err(_) => version = Some(v.clone()),
        }
    }
    let h = head(s3, bucket, &key, version.clone())
        .await
        .map_err(|e| {
            let f = classify(&e);
            if f.is_not_found() {
                AgentError::NotFound {
                    what: format!("s3://{bucket}/{key} does not exist (or its current version is a delete marker)"),
                }
            } else {
                AgentError::Aws {
                    service: "S3",
                    op: "HeadObject",
                    target: format!("s3://{bucket}/{key}"),
                    why: f.text(),
                }
            }
        })?;
    Ok(Target {
        bucket: bucket.to_string(),
        key,
        version_id: version.or_else(|| h.version_id().map(str::to_string)),
        size: h.content_length().unwrap_or(0).max(0) as u64,
        metadata: h.metadata().cloned().unwrap_or_default(),
        stored: compat::stored_crc64(h.checksum_type(), h.checksum_crc64_nvme()),
    })
}

/// `HeadObject` of `key` (of `version` when given), with its checksum.
async fn head(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<String>,
) -> Result<
    aws_sdk_s3::operation::head_object::HeadObjectOutput,
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::head_object::HeadObjectError>,
> {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
}

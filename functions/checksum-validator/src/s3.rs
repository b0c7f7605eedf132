//! The S3 adapter: turns `HeadObject` and bucket configuration into [`ObjectFacts`], and
//! finds where an object's replica lives.
//!
//! The destination comes from the primary bucket's replication configuration (cached per
//! bucket), or from an explicit `REPLICA_BUCKET_MAP` entry; never from rewriting names.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_s3::types::{ChecksumMode, ServerSideEncryption};
use aws_sdk_s3::Client;
use tokio::sync::Mutex;

use crate::aws_error::{classify, AwsError};
use crate::decision::{compare, judge, Outcome};
use crate::facts::{
    normalise_etag, Checksum, ChecksumAlgorithm, Encryption, ObjectFacts, ReplicationStatus,
};

/// Where a primary bucket's objects are replicated to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub bucket: String,
    pub region: String,
    /// Key prefix the rule covers ("" for all objects).
    pub prefix: String,
}

/// How the replica version was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaMatch {
    /// Same version id as the source, as S3 replication keeps it.
    SameVersionId,
    /// Matched among the replica's versions of the key (engines that assign new ids).
    ByContent,
    /// The replica's current version of the key (nothing matched by id or content).
    Current,
}

/// Looks objects up in the primary and replica buckets.
pub struct S3Lookup {
    primary: Client,
    base: aws_sdk_s3::config::Builder,
    replica_region: Option<String>,
    overrides: HashMap<String, String>,
    clients: Mutex<HashMap<String, Client>>,
    destinations: Mutex<HashMap<String, Arc<Destination>>>,
    categories: Mutex<HashMap<String, Option<String>>>,
}

impl S3Lookup {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
        replica_region: Option<String>,
        overrides: HashMap<String, String>,
    ) -> S3Lookup {
        let base = aws_sdk_s3::config::Builder::from(sdk).force_path_style(force_path_style);
        S3Lookup {
            primary: Client::from_conf(base.clone().build()),
            base,
            replica_region,
            overrides,
            clients: Mutex::new(HashMap::new()),
            destinations: Mutex::new(HashMap::new()),
            categories: Mutex::new(HashMap::new()),
        }
    }

    async fn client_for(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().await;
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                Client::from_conf(
                    self.base
                        .clone()
                        .region(aws_sdk_s3::config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }

    /// Describes one version (or the current version) of a primary object.
    pub async fn describe_primary(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectFacts>, AwsError> {
        describe(&self.primary, bucket, key, version_id).await
    }

    /// For an event without a version id: the version of `key` whose ETag (and size) match
    /// the event's, so each upload is judged on its own even when the key was overwritten
    /// since. `Ok(None)` when no version matches (the caller falls back to the current one).
    pub async fn version_by_etag(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        size: Option<i64>,
    ) -> Result<Option<String>, AwsError> {
        let etag = normalise_etag(etag);
        let out = self
            .primary
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .max_keys(100)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let found = out
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .filter(|v| v.e_tag().map(normalise_etag).as_deref() == Some(etag.as_str()))
            .filter(|v| size.is_none() || v.size() == size)
            .find_map(|v| v.version_id().map(str::to_string));
        Ok(found)
    }

    /// Streams one object version and returns its SHA-256 (hex) and length: deep mode.
    pub async fn stream_sha256(
        &self,
        region: Option<&str>,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(String, u64), AwsError> {
        use sha2::{Digest, Sha256};
        let client = match region {
            Some(r) => self.client_for(r).await,
            None => self.primary.clone(),
        };
        let out = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let mut body = out.body;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| AwsError::Transient(format!("reading {bucket}/{key}: {e}")))?
        {
            len += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let digest = hasher.finalize();
        Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), len))
    }

    /// The category tag of a primary bucket (cached), if it has one.
    pub async fn category(&self, bucket: &str) -> Option<String> {
        if let Some(c) = self.categories.lock().await.get(bucket) {
            return c.clone();
        }
        let found = match self
            .primary
            .get_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out
                .tag_set()
                .iter()
                .find(|t| t.key().eq_ignore_ascii_case("category"))
                .map(|t| t.value().to_string()),
            Err(_) => None,
        };
        self.categories
            .lock()
            .await
            .insert(bucket.to_string(), found.clone());
        found
    }

    /// The replica destination of `bucket` for `key`.
    pub async fn destination(&self, bucket: &str, key: &str) -> Result<Arc<Destination>, AwsError> {
        if let Some(d) = self.destinations.lock().await.get(bucket) {
            if key.starts_with(&d.prefix) {
                return Ok(d.clone());
            }
        }
        let (dest_bucket, prefix) = match self.overrides.get(bucket) {
            Some(b) => (b.clone(), String::new()),
            None => {
                self.destination_from_replication_config(bucket, key)
                    .await?
            }
        };
        let region = match &self.replica_region {
            Some(r) => r.clone(),
            None => self.bucket_region(&dest_bucket).await?,
        };
        let d = Arc::new(Destination {
            bucket: dest_bucket,
            region,
            prefix,
        });
        self.destinations
            .lock()
            .await
            .insert(bucket.to_string(), d.clone());
        Ok(d)
    }

    async fn destination_from_replication_config(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(String, String), AwsError> {
        let out = self
            .primary
            .get_bucket_replication()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| match classify(&e) {
                AwsError::NotFound => AwsError::Permanent {
                    code: "ReplicationConfigurationNotFound".into(),
                    message: format!("bucket {bucket} has no replication configuration"),
                },
                AwsError::Permanent { code, message }
                    if code == "ReplicationConfigurationNotFoundError" =>
                {
                    AwsError::Permanent {
                        code,
                        message: format!(
                            "bucket {bucket} has no replication configuration: {message}"
                        ),
                    }
                }
                other => other,
            })?;
        let Some(config) = out.replication_configuration() else {
            return Err(AwsError::Permanent {
                code: "ReplicationConfigurationNotFound".into(),
                message: format!("bucket {bucket} has no replication configuration"),
            });
        };
        let mut best: Option<(i32, String, String)> = None;
        for rule in config.rules() {
            if rule.status().as_str() != "Enabled" {
                continue;
            }
            #[allow(deprecated)]
            let prefix = rule
                .filter()
                .and_then(|f| {
                    f.prefix()
                        .map(str::to_string)
                        .or_else(|| f.and().and_then(|a| a.prefix()).map(str::to_string))
                })
                .or_else(|| rule.prefix().map(str::to_string))
                .unwrap_or_default();
            if !key.starts_with(&prefix) {
                continue;
            }
            let Some(arn) = rule.destination().map(|d| d.bucket()) else {
                continue;
            };
            let dest = arn.rsplit(':').next().unwrap_or(arn).to_string();
            let priority = rule.priority().unwrap_or(0);
            if best.as_ref().is_none_or(|(p, _, _)| priority > *p) {
                best = Some((priority, dest, prefix));
            }
        }
        best.map(|(_, d, p)| (d, p))
            .ok_or_else(|| AwsError::Permanent {
                code: "NoReplicationRule".into(),
                message: format!("no enabled replication rule of {bucket} covers key {key:?}"),
            })
    }

    async fn bucket_region(&self, bucket: &str) -> Result<String, AwsError> {
        let out = self
            .primary
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| match classify(&e) {
                AwsError::NotFound => AwsError::Permanent {
                    code: "NoSuchBucket".into(),
                    message: format!("replica bucket {bucket} does not exist"),
                },
                other => other,
            })?;
        Ok(match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(r) => r.to_string(),
        })
    }

    /// Finds the replica of `primary` in `dest`: same version id first (what S3 replication
    /// keeps), then the replica version whose content evidence matches, then the current one.
    pub async fn find_replica(
        &self,
        dest: &Destination,
        key: &str,
        primary: &ObjectFacts,
    ) -> Result<Option<(ObjectFacts, ReplicaMatch)>, AwsError> {
        let client = self.client_for(&dest.region).await;
        if let Some(v) = primary.version_id.as_deref() {
            match describe(&client, &dest.bucket, key, Some(v)).await {
                Ok(Some(facts)) => return Ok(Some((facts, ReplicaMatch::SameVersionId))),
                Ok(None) => {}
                // Engines that assign new version ids reject a foreign id as invalid.
                Err(AwsError::Permanent { code, .. }) if code == "InvalidArgument" => {}
                Err(e) => return Err(e),
            }
        }
        let versions = client
            .list_object_versions()
            .bucket(&dest.bucket)
            .prefix(key)
            .max_keys(50)
            .send()
            .await
            .map_err(|e| match classify(&e) {
                AwsError::NotFound => AwsError::Permanent {
                    code: "NoSuchBucket".into(),
                    message: format!("replica bucket {} does not exist", dest.bucket),
                },
                other => other,
            })?;
        let mut candidates: Vec<(bool, String)> = versions
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .filter_map(|v| {
                v.version_id()
                    .map(|id| (v.is_latest().unwrap_or(false), id.to_string()))
            })
            .collect();
        if candidates.is_empty() {
            // The key's current state may be a delete marker; or nothing arrived yet.
            return Ok(None);
        }
        candidates.sort_by_key(|(latest, _)| !*latest);
        let mut current: Option<ObjectFacts> = None;
        for (latest, id) in candidates.into_iter().take(10) {
            let Some(facts) = describe(&client, &dest.bucket, key, Some(&id)).await? else {
                continue;
            };
            if judge(&compare(primary, &facts)) == Outcome::Validated {
                return Ok(Some((facts, ReplicaMatch::ByContent)));
            }
            if latest || current.is_none() {
                current = Some(facts);
            }
        }
        Ok(current.map(|f| (f, ReplicaMatch::Current)))
    }
}

/// `HeadObject` with checksums, turned into facts. `Ok(None)` when the version is not there.
pub async fn describe(
    client: &Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<ObjectFacts>, AwsError> {
    let out = match client
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            return match classify(&e) {
                AwsError::NotFound => Ok(None),
                // A HEAD of a delete marker answers 405 MethodNotAllowed.
                AwsError::Permanent { code, .. }
                    if code == "HTTP405" || code == "MethodNotAllowed" =>
                {
                    Ok(None)
                }
                other => Err(other),
            };
        }
    };
    let type_header = out.checksum_type().map(|t| t.as_str().to_string());
    let mut checksums = Vec::new();
    let pairs = [
        (ChecksumAlgorithm::Crc64nvme, out.checksum_crc64_nvme()),
        (ChecksumAlgorithm::Sha256, out.checksum_sha256()),
        (ChecksumAlgorithm::Sha1, out.checksum_sha1()),
        (ChecksumAlgorithm::Crc32c, out.checksum_crc32_c()),
        (ChecksumAlgorithm::Crc32, out.checksum_crc32()),
    ];
    for (alg, value) in pairs {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            checksums.push(Checksum::from_header(alg, v, type_header.as_deref()));
        }
    }
    let encryption = if out.sse_customer_algorithm().is_some() {
        Encryption::SseC
    } else {
        match out.server_side_encryption() {
            Some(ServerSideEncryption::AwsKms) | Some(ServerSideEncryption::AwsKmsDsse) => {
                Encryption::SseKms
            }
            Some(ServerSideEncryption::Aes256) => Encryption::SseS3,
            Some(_) => Encryption::SseKms,
            None => Encryption::None,
        }
    };
    let etag = out.e_tag().map(normalise_etag);
    let mut facts = ObjectFacts {
        size: out.content_length().unwrap_or(0),
        etag,
        checksums,
        encryption,
        parts: out.parts_count().and_then(|p| u32::try_from(p).ok()),
        replication_status: out
            .replication_status()
            .and_then(|s| ReplicationStatus::parse(s.as_str())),
        version_id: out.version_id().map(str::to_string),
    };
    if facts.parts.is_none() {
        facts.parts = facts.etag_parts();
    }
    Ok(Some(facts))
}

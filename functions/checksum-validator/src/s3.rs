//! The S3 adapter: turns `HeadObject` and bucket configuration into [`ObjectFacts`], and
//! finds where an object's replicas live.
//!
//! The destinations come from the primary bucket's replication configuration (cached per
//! bucket, read by [`coverage`]'s rules), or from an explicit `REPLICA_BUCKET_MAP` entry;
//! never from rewriting names. A replica is looked up by the source's version id only.
//!
//! Floor 3: may import floors 0-2.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_s3::types::{ChecksumMode, ServerSideEncryption};
use aws_sdk_s3::Client;
use tokio::sync::Mutex;

use crate::aws_error::{classify, AwsError};
use crate::coverage::{self, Rule, Uncovered};
use crate::decision::ReplicaState;
use crate::facts::{
    normalise_etag, Checksum, ChecksumAlgorithm, Encryption, ObjectFacts, ReplicationStatus,
};

/// One destination bucket of a primary's replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub bucket: String,
    pub region: String,
}

/// Looks objects up in the primary and replica buckets.
pub struct S3Lookup {
    primary: Client,
    base: aws_sdk_s3::config::Builder,
    replica_region: Option<String>,
    overrides: HashMap<String, String>,
    clients: Mutex<HashMap<String, Client>>,
    rules: Mutex<HashMap<String, Arc<Vec<Rule>>>>,
    regions: Mutex<HashMap<String, String>>,
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
            rules: Mutex::new(HashMap::new()),
            regions: Mutex::new(HashMap::new()),
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

    /// The destinations a primary version must reach, or why no rule covers it. An
    /// explicit `REPLICA_BUCKET_MAP` entry names the one destination; otherwise the
    /// bucket's replication configuration decides ([`coverage`]).
    pub async fn destinations(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        facts: &ObjectFacts,
    ) -> Result<Result<Vec<Destination>, Uncovered>, AwsError> {
        let names = match self.overrides.get(bucket) {
            Some(b) => Ok(vec![b.clone()]),
            None => {
                let rules = self.rules(bucket).await?;
                let tags = self.tags_if_needed(&rules, bucket, key, version_id).await?;
                coverage::destinations(&rules, key, &tags, facts)
            }
        };
        let names = match names {
            Ok(n) => n,
            Err(why) => return Ok(Err(why)),
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let region = match &self.replica_region {
                Some(r) => r.clone(),
                None => self.bucket_region(&name).await?,
            };
            out.push(Destination {
                bucket: name,
                region,
            });
        }
        Ok(Ok(out))
    }

    /// Why a version whose source reports no replication status (or `REPLICA`) is not
    /// covered, as far as the rules tell.
    pub async fn uncovered(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        facts: &ObjectFacts,
    ) -> Uncovered {
        if facts.replication_status == Some(ReplicationStatus::Replica) {
            return Uncovered::IsReplica;
        }
        if self.overrides.contains_key(bucket) {
            return Uncovered::Unexplained;
        }
        let Ok(rules) = self.rules(bucket).await else {
            return Uncovered::Unexplained;
        };
        let tags = self
            .tags_if_needed(&rules, bucket, key, version_id)
            .await
            .unwrap_or_default();
        coverage::explain_missing_status(&rules, key, &tags, facts)
    }

    /// The object's tags, fetched only when some rule filters on tags.
    async fn tags_if_needed(
        &self,
        rules: &[Rule],
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, AwsError> {
        if rules.iter().all(|r| r.tags.is_empty()) {
            return Ok(Vec::new());
        }
        let out = self
            .primary
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    /// The replication rules of a primary bucket (cached); none when it has no
    /// configuration.
    pub async fn rules(&self, bucket: &str) -> Result<Arc<Vec<Rule>>, AwsError> {
        if let Some(r) = self.rules.lock().await.get(bucket) {
            return Ok(r.clone());
        }
        let out = match self
            .primary
            .get_bucket_replication()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Some(out),
            Err(e) => match classify(&e) {
                AwsError::NotFound => None,
                AwsError::Permanent { code, .. }
                    if code == "ReplicationConfigurationNotFoundError" =>
                {
                    None
                }
                other => return Err(other),
            },
        };
        let rules = Arc::new(
            out.as_ref()
                .and_then(|o| o.replication_configuration())
                .map(rules_of)
                .unwrap_or_default(),
        );
        self.rules
            .lock()
            .await
            .insert(bucket.to_string(), rules.clone());
        Ok(rules)
    }

    async fn bucket_region(&self, bucket: &str) -> Result<String, AwsError> {
        if let Some(r) = self.regions.lock().await.get(bucket) {
            return Ok(r.clone());
        }
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
        let region = match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(r) => r.to_string(),
        };
        self.regions
            .lock()
            .await
            .insert(bucket.to_string(), region.clone());
        Ok(region)
    }

    /// The replica of a primary version at `dest`: the replica's version with the same
    /// version id, which S3 replication keeps. A miss is `Missing` (not replicated yet, or
    /// lost): another version of the key is a different upload and never stands in for it.
    pub async fn replica(
        &self,
        dest: &Destination,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ReplicaState, AwsError> {
        let client = self.client_for(&dest.region).await;
        Ok(
            match describe(&client, &dest.bucket, key, version_id).await? {
                Some(facts) => ReplicaState::Found(facts),
                None => ReplicaState::Missing,
            },
        )
    }
}

/// The coverage view of a replication configuration: V1 rules (`Prefix`), V2 filters
/// (`Prefix`, `Tag`, `And`).
pub fn rules_of(config: &aws_sdk_s3::types::ReplicationConfiguration) -> Vec<Rule> {
    config
        .rules()
        .iter()
        .map(|rule| {
            let filter = rule.filter();
            #[allow(deprecated)]
            let prefix = filter
                .and_then(|f| {
                    f.prefix()
                        .map(str::to_string)
                        .or_else(|| f.and().and_then(|a| a.prefix()).map(str::to_string))
                })
                .or_else(|| rule.prefix().map(str::to_string))
                .unwrap_or_default();
            let mut tags: Vec<(String, String)> = Vec::new();
            if let Some(t) = filter.and_then(|f| f.tag()) {
                tags.push((t.key().to_string(), t.value().to_string()));
            }
            if let Some(and) = filter.and_then(|f| f.and()) {
                tags.extend(
                    and.tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().to_string())),
                );
            }
            let arn = rule.destination().map(|d| d.bucket()).unwrap_or_default();
            Rule {
                id: rule.id().unwrap_or_default().to_string(),
                enabled: rule.status().as_str() == "Enabled",
                priority: rule.priority().unwrap_or(0),
                prefix,
                tags,
                sse_kms_opt_in: rule
                    .source_selection_criteria()
                    .and_then(|c| c.sse_kms_encrypted_objects())
                    .is_some_and(|k| k.status().as_str() == "Enabled"),
                destination: arn.rsplit(':').next().unwrap_or(arn).to_string(),
            }
        })
        .collect()
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
                // A HEAD has no body, so a 400 carries no code: on an existing version it
                // is the SSE-C case.
                AwsError::Permanent { code, .. } if code == "HTTP400" || code == "BadRequest" => {
                    Err(AwsError::CustomerKeyRequired)
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
        (ChecksumAlgorithm::Md5, out.checksum_md5()),
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
        storage_class: out.storage_class().map(|c| c.as_str().to_string()),
    };
    if facts.parts.is_none() {
        facts.parts = facts.etag_parts();
    }
    Ok(Some(facts))
}

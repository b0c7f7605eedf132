//! Discovery: listing the primaries' versions page by page and tracking the new ones
//! (with their eligibility under the bucket's rules).

use std::time::Instant;

use aws_sdk_s3::types::ServerSideEncryption;

use super::state::*;
use crate::errors::sdk;
use crate::s3util::{listed_key, LISTING_ENCODING};
use crate::topology::replication::{BucketReplication, Eligibility, SourceVersion};

impl Replicator {
    /// Discovers versions not seen yet, and decides their eligibility.
    pub async fn discover(&self) -> Result<(), String> {
        let _one = self.pass_lock.lock().await;
        self.discover_locked().await
    }

    /// Discovers the versions of one key (one listing call, not the whole buckets). It does
    /// not wait for a running pass: tracking is idempotent (see `track_new`).
    pub async fn discover_key(&self, bucket: &str, key: &str) -> Result<(), String> {
        let Some(config) = self.configs.get(bucket) else {
            return Ok(());
        };
        let found = list_versions(&self.clients.s3, bucket, Some(key)).await?;
        self.track_new(bucket, config, found.into_iter().filter(|v| v.key == key))
            .await
    }

    pub(super) async fn discover_locked(&self) -> Result<(), String> {
        self.discover_all().await
    }

    /// Lists every version of every primary, one page at a time. It needs no pass lock:
    /// tracking is idempotent (see `track_new`).
    pub(super) async fn discover_all(&self) -> Result<(), String> {
        for (primary, config) in &self.configs {
            let mut pager = VersionPager::new(&self.clients.s3, primary, None);
            while let Some(batch) = pager.next_batch().await? {
                self.track_new(primary, config, batch.into_iter()).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn track_new(
        &self,
        primary: &str,
        config: &BucketReplication,
        found: impl Iterator<Item = ListedVersion>,
    ) -> Result<(), String> {
        {
            let primary = primary.to_string();
            for v in found {
                if self.state.lock().await.knows(&primary, &v.version_id) {
                    continue;
                }
                let tracked = self.track(&primary, config, v).await?;
                let mut st = self.state.lock().await;
                // A concurrent discovery may have tracked it meanwhile: the first one wins.
                if st.knows(&primary, &tracked.version_id) {
                    continue;
                }
                st.add_version(&primary, &tracked.key, &tracked.version_id);
                if tracked.settled {
                    // Ineligible: settled from the start.
                    st.settle(&primary, &tracked.version_id, Settled::of(&tracked));
                } else {
                    let k = (primary.clone(), tracked.version_id.clone());
                    st.order.push(k.clone());
                    st.versions.insert(k, tracked);
                }
            }
        }
        Ok(())
    }

    pub(super) async fn track(
        &self,
        primary: &str,
        config: &BucketReplication,
        v: ListedVersion,
    ) -> Result<Tracked, String> {
        // The storage class comes from HeadObject: LocalStack 4.14 lists every version as
        // STANDARD (see `engine::gaps`).
        let (sse_kms, tags, storage_class) = if v.delete_marker {
            (false, Vec::new(), None)
        } else {
            let head = self
                .clients
                .s3
                .head_object()
                .bucket(primary)
                .key(&v.key)
                .version_id(&v.version_id)
                .send()
                .await;
            let sse_kms = head.as_ref().is_ok_and(|h| {
                matches!(
                    h.server_side_encryption(),
                    Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
                )
            });
            let storage_class = match &head {
                Ok(h) => h.storage_class().map(|c| c.as_str().to_string()),
                Err(_) => v.storage_class.clone(),
            };
            let needs_tags = config.rules.iter().any(|r| !r.tags.is_empty());
            let tags = if needs_tags {
                self.clients
                    .s3
                    .get_object_tagging()
                    .bucket(primary)
                    .key(&v.key)
                    .version_id(&v.version_id)
                    .send()
                    .await
                    .map(|t| {
                        t.tag_set()
                            .iter()
                            .map(|t| (t.key().to_string(), t.value().to_string()))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            (sse_kms, tags, storage_class)
        };
        let eligibility = config.eligibility(&SourceVersion {
            key: &v.key,
            tags: &tags,
            sse_kms,
            storage_class: storage_class.as_deref(),
            delete_marker: v.delete_marker,
            replica: false,
        });
        let now = Instant::now();
        let st = self.state.lock().await;
        let explicit = st
            .delays
            .get(&v.key)
            .or_else(|| st.delays.get("*"))
            .copied();
        let (targets, ineligible) = match eligibility {
            Eligibility::Replicate(t) => (t, None),
            Eligibility::Ineligible(why) => (Vec::new(), Some(why)),
        };
        let due = match explicit {
            Some(d) => Some(now + d),
            // No event reaches the validator for a delete marker.
            None if v.delete_marker => Some(now + self.timing.lag),
            None => None,
        };
        Ok(Tracked {
            primary: primary.to_string(),
            copied: vec![false; targets.len()],
            settled: ineligible.is_some(),
            status: ineligible.is_none().then_some(Status::Pending),
            key: v.key,
            version_id: v.version_id,
            etag: v.etag,
            size: v.size,
            delete_marker: v.delete_marker,
            sse_kms,
            targets,
            ineligible,
            due,
            fallback: now + self.timing.fallback,
            claimed: false,
            errors: 0,
        })
    }
}

pub(super) struct ListedVersion {
    pub(super) key: String,
    pub(super) version_id: String,
    pub(super) etag: String,
    pub(super) size: i64,
    pub(super) storage_class: Option<String>,
    pub(super) delete_marker: bool,
    pub(super) modified: i64,
}

/// Every version and delete marker of a bucket (under `prefix`), oldest first.
pub(super) async fn list_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Vec<ListedVersion>, String> {
    let mut pager = VersionPager::new(s3, bucket, prefix);
    let mut out = Vec::new();
    while let Some(batch) = pager.next_batch().await? {
        out.extend(batch);
    }
    out.sort_by_key(|v| v.modified);
    Ok(out)
}

/// The (key, version id) batches a full discovery of `bucket` hands to tracking, with
/// `page_size` keys per ListObjectVersions page: each key's versions in one batch, oldest
/// first. For tests of the paging (real pages of 1,000 rarely split a key).
pub async fn discovery_batches(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    page_size: i32,
) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut pager = VersionPager::new(s3, bucket, None);
    pager.page_size = Some(page_size);
    let mut out = Vec::new();
    while let Some(batch) = pager.next_batch().await? {
        out.push(batch.into_iter().map(|v| (v.key, v.version_id)).collect());
    }
    Ok(out)
}

/// ListObjectVersions one page at a time, so a full discovery holds one page of a bucket in
/// memory, never the whole bucket. Each batch holds whole keys only: the versions of the
/// key a truncated page stops in (its `NextKeyMarker`) are held back until the page where
/// that key ends, so every key's versions are ordered together, oldest first.
pub(super) struct VersionPager<'a> {
    pub(super) s3: &'a aws_sdk_s3::Client,
    pub(super) bucket: &'a str,
    pub(super) prefix: Option<&'a str>,
    pub(super) key_marker: Option<String>,
    pub(super) version_marker: Option<String>,
    /// `MaxKeys` per page (the API's default, 1,000, when `None`).
    pub(super) page_size: Option<i32>,
    pub(super) carry: Vec<ListedVersion>,
    pub(super) done: bool,
}

impl<'a> VersionPager<'a> {
    pub(super) fn new(
        s3: &'a aws_sdk_s3::Client,
        bucket: &'a str,
        prefix: Option<&'a str>,
    ) -> Self {
        VersionPager {
            s3,
            bucket,
            prefix,
            key_marker: None,
            version_marker: None,
            page_size: None,
            carry: Vec::new(),
            done: false,
        }
    }

    /// The next batch (oldest first), `None` after the last page.
    pub(super) async fn next_batch(&mut self) -> Result<Option<Vec<ListedVersion>>, String> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .s3
            .list_object_versions()
            .bucket(self.bucket)
            .set_prefix(self.prefix.map(str::to_string))
            .set_key_marker(self.key_marker.clone())
            .set_version_id_marker(self.version_marker.clone())
            .set_max_keys(self.page_size)
            .encoding_type(LISTING_ENCODING)
            .send()
            .await
            .map_err(sdk)?;
        let encoding = page.encoding_type();
        let mut batch = std::mem::take(&mut self.carry);
        for (i, v) in page.versions().iter().enumerate() {
            if let (Some(k), Some(id)) = (v.key(), v.version_id()) {
                batch.push(ListedVersion {
                    key: listed_key(k, encoding),
                    version_id: id.to_string(),
                    etag: v.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                    size: v.size().unwrap_or(0),
                    storage_class: v.storage_class().map(|c| c.as_str().to_string()),
                    delete_marker: false,
                    modified: v.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0)
                        - i as i64,
                });
            }
        }
        for (i, m) in page.delete_markers().iter().enumerate() {
            if let (Some(k), Some(id)) = (m.key(), m.version_id()) {
                batch.push(ListedVersion {
                    key: listed_key(k, encoding),
                    version_id: id.to_string(),
                    etag: String::new(),
                    size: 0,
                    storage_class: None,
                    delete_marker: true,
                    modified: m.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0)
                        - i as i64,
                });
            }
        }
        let next_key = page
            .next_key_marker()
            .filter(|_| page.is_truncated() == Some(true))
            .map(|k| listed_key(k, encoding));
        match next_key {
            Some(key) => {
                let (carry, whole): (Vec<_>, Vec<_>) =
                    batch.into_iter().partition(|v| v.key == key);
                self.carry = carry;
                batch = whole;
                self.key_marker = Some(key);
                self.version_marker = page.next_version_id_marker().map(str::to_string);
            }
            None => self.done = true,
        }
        // Listing order is newest first per key; replicate oldest first.
        batch.sort_by_key(|v| v.modified);
        Ok(Some(batch))
    }
}

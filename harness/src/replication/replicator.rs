//! The harness replicator: copies new primary versions and delete markers to the replica,
//! as S3 replication would, with per-object delay, pause/resume and fault modes.
//!
//! It discovers versions by listing the primaries, so objects uploaded by any client are
//! replicated. It keeps the source's multipart layout (part by part) and its checksum.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, CompletedMultipartUpload, CompletedPart};
use tokio::sync::Mutex;

use crate::aws::Clients;
use crate::errors::sdk;

/// A deliberate replication fault for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The replica never arrives.
    Never,
    /// The replica arrives with one byte flipped (same size).
    Corrupt,
}

#[derive(Debug, Clone)]
struct Pending {
    primary: String,
    replica: String,
    key: String,
    version_id: String,
    delete_marker: bool,
    due: Instant,
}

#[derive(Default)]
struct State {
    paused: bool,
    /// key (or "*") -> delay applied to new versions of it.
    delays: HashMap<String, Duration>,
    faults: HashMap<String, Fault>,
    seen: HashSet<(String, String)>,
    held: Vec<Pending>,
    copied: usize,
}

/// Emulated S3 replication for a set of primary -> replica bucket pairs.
pub struct Replicator {
    clients: Clients,
    pairs: Vec<(String, String)>,
    state: Mutex<State>,
    /// Serialises passes so a version is never copied twice.
    pass_lock: Mutex<()>,
}

impl Replicator {
    pub fn new(clients: Clients, pairs: Vec<(String, String)>) -> Replicator {
        Replicator {
            clients,
            pairs,
            state: Mutex::new(State::default()),
            pass_lock: Mutex::new(()),
        }
    }

    pub async fn pause(&self) {
        self.state.lock().await.paused = true;
    }

    pub async fn resume(&self) {
        self.state.lock().await.paused = false;
    }

    /// Delays new versions of `key` ("*" for every key) by `delay`.
    pub async fn delay(&self, key: &str, delay: Duration) {
        self.state
            .lock()
            .await
            .delays
            .insert(key.to_string(), delay);
    }

    pub async fn fault(&self, key: &str, fault: Fault) {
        self.state
            .lock()
            .await
            .faults
            .insert(key.to_string(), fault);
    }

    /// Versions waiting (paused or delayed).
    pub async fn held(&self) -> usize {
        self.state.lock().await.held.len()
    }

    pub async fn copied(&self) -> usize {
        self.state.lock().await.copied
    }

    /// Makes sure the version named by an event has been handled (copied, or deliberately
    /// held) before the validator sees the event, as on an engine whose replication is done
    /// by the time the event is delivered.
    pub async fn ensure_processed(&self, bucket: &str, version_id: Option<&str>) {
        if !self.pairs.iter().any(|(p, _)| p == bucket) {
            return;
        }
        if let Some(v) = version_id {
            if self
                .state
                .lock()
                .await
                .seen
                .contains(&(bucket.to_string(), v.to_string()))
            {
                return;
            }
        }
        if let Err(e) = self.pass().await {
            tracing::warn!(error = %e, "replication pass failed");
        }
    }

    /// Runs forever: a pass every `interval` (picks up uploads from any client and releases
    /// delayed versions).
    pub async fn run(&self, interval: Duration) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "replication pass failed");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// One pass: discover new versions, copy what is due.
    pub async fn pass(&self) -> Result<(), String> {
        let _one = self.pass_lock.lock().await;
        for (primary, replica) in &self.pairs {
            let found = list_versions(&self.clients.s3, primary).await?;
            let mut st = self.state.lock().await;
            for v in found {
                if !st.seen.insert((primary.clone(), v.version_id.clone())) {
                    continue;
                }
                let delay = st
                    .delays
                    .get(&v.key)
                    .or_else(|| st.delays.get("*"))
                    .copied()
                    .unwrap_or(Duration::ZERO);
                st.held.push(Pending {
                    primary: primary.clone(),
                    replica: replica.clone(),
                    key: v.key,
                    version_id: v.version_id,
                    delete_marker: v.delete_marker,
                    due: Instant::now() + delay,
                });
            }
        }
        let due: Vec<Pending> = {
            let mut st = self.state.lock().await;
            if st.paused {
                return Ok(());
            }
            let now = Instant::now();
            let (due, later): (Vec<Pending>, Vec<Pending>) =
                st.held.drain(..).partition(|p| p.due <= now);
            st.held = later;
            due
        };
        for p in due {
            let fault = self.state.lock().await.faults.get(&p.key).copied();
            let result = match fault {
                Some(Fault::Never) => Ok(()),
                _ if p.delete_marker => self.copy_delete_marker(&p).await,
                f => self.copy_version(&p, f == Some(Fault::Corrupt)).await,
            };
            match result {
                Ok(()) => {
                    self.state.lock().await.copied += 1;
                    tracing::debug!(key = %p.key, "replicated");
                }
                Err(e) => {
                    tracing::warn!(key = %p.key, error = %e, "replication of a version failed; retrying");
                    let mut st = self.state.lock().await;
                    st.held.push(Pending {
                        due: Instant::now() + Duration::from_millis(500),
                        ..p
                    });
                }
            }
        }
        Ok(())
    }

    async fn copy_delete_marker(&self, p: &Pending) -> Result<(), String> {
        self.clients
            .s3_replica
            .delete_object()
            .bucket(&p.replica)
            .key(&p.key)
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }

    async fn copy_version(&self, p: &Pending, corrupt: bool) -> Result<(), String> {
        let s3 = &self.clients.s3;
        let head = match s3
            .head_object()
            .bucket(&p.primary)
            .key(&p.key)
            .version_id(&p.version_id)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(h) => h,
            // Deleted (permanently) before we got to it: nothing to replicate.
            Err(e) if sdk(&e).contains("404") || sdk(&e).contains("NotFound") => return Ok(()),
            Err(e) => return Err(sdk(e)),
        };
        let parts = head
            .parts_count()
            .filter(|n| *n > 1)
            .or_else(|| {
                head.e_tag()
                    .and_then(|e| e.trim_matches('"').rsplit_once('-'))
                    .and_then(|(_, n)| n.parse().ok())
            })
            .unwrap_or(1);
        let dst = &self.clients.s3_replica;
        let metadata = head.metadata().cloned();
        let content_type = head.content_type().map(str::to_string);
        if parts <= 1 {
            let body = s3
                .get_object()
                .bucket(&p.primary)
                .key(&p.key)
                .version_id(&p.version_id)
                .send()
                .await
                .map_err(sdk)?
                .body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .into_bytes();
            let mut bytes = body.to_vec();
            if corrupt {
                flip(&mut bytes);
            }
            let mut put = dst
                .put_object()
                .bucket(&p.replica)
                .key(&p.key)
                .set_metadata(metadata)
                .set_content_type(content_type)
                .body(ByteStream::from(bytes));
            // Keep the source's full-object checksum, as S3 replication does.
            if !corrupt {
                if let Some(v) = head.checksum_crc64_nvme() {
                    put = put.checksum_crc64_nvme(v);
                } else if let Some(v) = head.checksum_sha256() {
                    put = put.checksum_sha256(v);
                } else if let Some(v) = head.checksum_crc32_c() {
                    put = put.checksum_crc32_c(v);
                } else if let Some(v) = head.checksum_crc32() {
                    put = put.checksum_crc32(v);
                }
            }
            put.send().await.map_err(sdk)?;
            return Ok(());
        }
        // Multipart: same part boundaries as the source.
        let upload = dst
            .create_multipart_upload()
            .bucket(&p.replica)
            .key(&p.key)
            .set_metadata(metadata)
            .set_content_type(content_type)
            .send()
            .await
            .map_err(sdk)?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let mut completed = Vec::new();
        for n in 1..=parts {
            let part = s3
                .get_object()
                .bucket(&p.primary)
                .key(&p.key)
                .version_id(&p.version_id)
                .part_number(n)
                .send()
                .await
                .map_err(sdk)?
                .body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .into_bytes();
            let mut bytes = part.to_vec();
            if corrupt && n == 1 {
                flip(&mut bytes);
            }
            let out = dst
                .upload_part()
                .bucket(&p.replica)
                .key(&p.key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(sdk)?;
            completed.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            );
        }
        dst.complete_multipart_upload()
            .bucket(&p.replica)
            .key(&p.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }
}

fn flip(bytes: &mut [u8]) {
    if let Some(b) = bytes.first_mut() {
        *b ^= 0xff;
    }
}

struct ListedVersion {
    key: String,
    version_id: String,
    delete_marker: bool,
    modified: i64,
}

/// Every version and delete marker of a bucket, oldest first.
async fn list_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Vec<ListedVersion>, String> {
    let mut out = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(sdk)?;
        for (i, v) in page.versions().iter().enumerate() {
            if let (Some(k), Some(id)) = (v.key(), v.version_id()) {
                out.push(ListedVersion {
                    key: k.to_string(),
                    version_id: id.to_string(),
                    delete_marker: false,
                    modified: v.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0)
                        - i as i64,
                });
            }
        }
        for (i, m) in page.delete_markers().iter().enumerate() {
            if let (Some(k), Some(id)) = (m.key(), m.version_id()) {
                out.push(ListedVersion {
                    key: k.to_string(),
                    version_id: id.to_string(),
                    delete_marker: true,
                    modified: m.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0)
                        - i as i64,
                });
            }
        }
        if page.is_truncated() == Some(true) {
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        } else {
            break;
        }
    }
    // Listing order is newest first per key; replicate oldest first.
    out.sort_by_key(|v| v.modified);
    Ok(out)
}

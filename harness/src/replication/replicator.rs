//! The harness replicator: copies new primary versions and delete markers to the replica,
//! as S3 replication would, with per-object delay, pause/resume and fault modes.
//!
//! It discovers versions by listing the primaries, so objects uploaded by any client are
//! replicated. It keeps the source's multipart layout (part by part) and its checksum.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use tokio::sync::Mutex;

use crate::aws::Clients;
use crate::errors::sdk;
use crate::s3util::{put_multipart, PutOptions};

/// A deliberate replication fault for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The replica never arrives; the source stays PENDING.
    Never,
    /// The replica never arrives and the source is marked FAILED.
    Failed,
    /// The replica arrives with its first byte flipped (same size).
    Corrupt,
    /// The replica arrives byte-identical but written with a different part layout.
    Relayout,
}

/// Part size of a relayout copy: different from the 5 MiB parts clients commonly use.
const RELAYOUT_PART: usize = 6 * 1024 * 1024;

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
    /// (primary bucket, version id) -> replication status as S3 would report it.
    statuses: HashMap<(String, String), &'static str>,
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

    /// The replication status S3 would report for a source version, if tracked.
    pub async fn status(&self, bucket: &str, version_id: &str) -> Option<&'static str> {
        self.state
            .lock()
            .await
            .statuses
            .get(&(bucket.to_string(), version_id.to_string()))
            .copied()
    }

    /// Makes sure the version named by an event has been handled (copied, or deliberately
    /// held) before the validator sees the event, as on an engine whose replication is done
    /// by the time the event is delivered.
    pub async fn ensure_processed(&self, bucket: &str, version_id: Option<&str>) {
        if !self.pairs.iter().any(|(p, _)| p == bucket) {
            return;
        }
        if let Some(v) = version_id {
            let st = self.state.lock().await;
            let key = (bucket.to_string(), v.to_string());
            let decided = st.statuses.get(&key).is_some_and(|s| *s != "PENDING");
            // Held on purpose (paused, or delayed into the future): the event sees no replica.
            let now = Instant::now();
            let held = st
                .held
                .iter()
                .any(|h| h.primary == bucket && h.version_id == v && (st.paused || h.due > now));
            if decided || held {
                return;
            }
        }
        // Not handled yet, or a pass is copying it right now: a pass of our own waits for
        // that one (passes are serialised) and handles whatever is still due. An engine may
        // deliver the event a moment before the version shows in listings: look again
        // briefly until the named version is known.
        for _ in 0..30 {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "replication pass failed");
            }
            let Some(v) = version_id else { return };
            let st = self.state.lock().await;
            if st
                .statuses
                .contains_key(&(bucket.to_string(), v.to_string()))
            {
                return;
            }
            drop(st);
            tokio::time::sleep(Duration::from_millis(100)).await;
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
                st.statuses
                    .insert((primary.clone(), v.version_id.clone()), "PENDING");
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
            let fault = {
                let st = self.state.lock().await;
                st.faults
                    .get(&p.key)
                    .or_else(|| st.faults.get("*"))
                    .copied()
            };
            let result = match fault {
                Some(Fault::Never) => Ok("PENDING"),
                Some(Fault::Failed) => Ok("FAILED"),
                _ if p.delete_marker => self.copy_delete_marker(&p).await.map(|_| "COMPLETED"),
                f => self.copy_version(&p, f).await.map(|_| "COMPLETED"),
            };
            match result {
                Ok(status) => {
                    let mut st = self.state.lock().await;
                    st.statuses
                        .insert((p.primary.clone(), p.version_id.clone()), status);
                    if status == "COMPLETED" {
                        st.copied += 1;
                    }
                    tracing::debug!(key = %p.key, status, "replication handled");
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

    async fn copy_version(&self, p: &Pending, fault: Option<Fault>) -> Result<(), String> {
        let corrupt = fault == Some(Fault::Corrupt);
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
        let opts = PutOptions {
            metadata: head.metadata().cloned(),
            content_type: head.content_type().map(str::to_string),
            kms_key: None,
            // No destination storage class in the replication rule: replicas keep the source's.
            storage_class: head.storage_class().cloned(),
        };
        let algorithm = if head.checksum_crc64_nvme().is_some() {
            ChecksumAlgorithm::Crc64Nvme
        } else if head.checksum_sha256().is_some() {
            ChecksumAlgorithm::Sha256
        } else if head.checksum_crc32_c().is_some() {
            ChecksumAlgorithm::Crc32C
        } else {
            ChecksumAlgorithm::Crc32
        };
        // The whole source version, read once.
        let mut whole = read_version(s3, p).await?;
        if parts <= 1 && fault != Some(Fault::Relayout) {
            let mut bytes = whole;
            if corrupt {
                flip(&mut bytes);
            }
            let mut put = dst
                .put_object()
                .bucket(&p.replica)
                .key(&p.key)
                .set_metadata(opts.metadata)
                .set_content_type(opts.content_type)
                .set_storage_class(opts.storage_class)
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
        // Multipart: learn the source's part layout, then write the replica with the same
        // part boundaries (or with other ones for a relayout fault).
        let total = whole.len();
        let mut sizes = Vec::new();
        for n in 1..=parts {
            let part = s3
                .head_object()
                .bucket(&p.primary)
                .key(&p.key)
                .version_id(&p.version_id)
                .part_number(n)
                .send()
                .await
                .map_err(sdk)?;
            sizes.push(part.content_length().unwrap_or(0).max(0) as usize);
        }
        let first = if sizes.iter().sum::<usize>() == total {
            sizes.first().copied().unwrap_or(total)
        } else {
            // Engine gap (MiniStack): part numbers are ignored on reads, so infer the layout.
            infer_part_size(total, parts as usize)
        };
        if corrupt {
            flip(&mut whole);
        }
        let part_size = if fault == Some(Fault::Relayout) {
            RELAYOUT_PART
        } else {
            first
        };
        put_multipart(dst, &p.replica, &p.key, &whole, part_size, algorithm, &opts).await
    }
}

/// The part size of an `n`-part upload of `total` bytes with equal parts but the last:
/// 5 MiB (the SDKs' and CLI's usual size, and S3's minimum) when that fits, else the
/// smallest whole MiB that does.
pub fn infer_part_size(total: usize, n: usize) -> usize {
    const MIB: usize = 1024 * 1024;
    let fits = |p: usize| n > 0 && (n - 1) * p < total && total <= n * p;
    if fits(5 * MIB) {
        return 5 * MIB;
    }
    let mut p = total.div_ceil(n.max(1)).div_ceil(MIB) * MIB;
    while p > MIB && fits(p - MIB) {
        p -= MIB;
    }
    p.max(1)
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

/// Reads a source version whole. S3 replicates an object as it is written, whatever its
/// storage class; an engine that (like AWS for clients) refuses to read a version stored in
/// GLACIER or DEEP_ARCHIVE (`InvalidObjectState`, LocalStack) gets a restore request first.
/// LocalStack completes restores at once; this waits up to 10 s for it.
async fn read_version(s3: &aws_sdk_s3::Client, p: &Pending) -> Result<Vec<u8>, String> {
    let get = || {
        s3.get_object()
            .bucket(&p.primary)
            .key(&p.key)
            .version_id(&p.version_id)
            .send()
    };
    let out = match get().await {
        Ok(o) => o,
        Err(e) if sdk(&e).contains("InvalidObjectState") => {
            crate::engine::gaps::restore_archived(s3, &p.primary, &p.key, &p.version_id).await?;
            get().await.map_err(sdk)?
        }
        Err(e) => return Err(sdk(e)),
    };
    Ok(out
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_common_layouts() {
        const MIB: usize = 1024 * 1024;
        assert_eq!(infer_part_size(12 * MIB, 3), 5 * MIB);
        assert_eq!(infer_part_size(100 * MIB, 4), 25 * MIB);
        assert_eq!(infer_part_size(10 * MIB, 2), 5 * MIB);
    }
}

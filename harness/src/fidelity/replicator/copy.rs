//! The copy paths: a delete marker, a version whole, streamed in one part, or part by part
//! in the source's multipart layout; each with the source's checksum and the injected faults.

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ServerSideEncryption};
use aws_smithy_types::error::display::DisplayErrorContext;

use super::state::*;
use crate::errors::sdk;
use crate::observe::{Arrival, Observation};
use crate::s3util::{MultipartUpload, PutOptions};
use crate::topology::replication::Target;

impl Replicator {
    /// One pass: discover new versions, copy what is due.
    pub async fn pass(&self) -> Result<(), String> {
        let _one = self.pass_lock.lock().await;
        self.discover_locked().await?;
        self.copy_due().await;
        Ok(())
    }

    /// Copies every version that is due (the caller holds the pass lock). The versions of
    /// one key go in their order, one per pass: a later version (a delete marker is due at
    /// once) waits for an earlier one still lagging, so the replica's current version is the
    /// source's once replication settles.
    pub(super) async fn copy_due(&self) {
        let due: Vec<(Tracked, Option<TargetedFault>)> = {
            let mut st = self.state.lock().await;
            if st.paused {
                return;
            }
            let State {
                order, versions, ..
            } = &mut *st;
            order.retain(|k| versions.get(k).is_some_and(|t| !t.settled));
            let now = Instant::now();
            let mut waiting: std::collections::HashSet<(&str, &str)> = Default::default();
            let mut out = Vec::new();
            for t in st.order.iter().filter_map(|k| st.versions.get(k)) {
                if t.settled {
                    continue;
                }
                // Whether due or not, nothing newer of this key goes before it.
                if !waiting.insert((t.primary.as_str(), t.key.as_str())) {
                    continue;
                }
                if t.due.map_or(t.fallback <= now, |d| d <= now) {
                    let fault = st
                        .faults
                        .get(&t.key)
                        .or_else(|| st.faults.get("*"))
                        .copied();
                    out.push((t.clone(), fault));
                }
            }
            out
        };
        for (t, fault) in due {
            self.replicate(t, fault).await;
        }
    }

    /// Copies one version to every destination it has not reached, applying its fault.
    pub(super) async fn replicate(&self, t: Tracked, fault: Option<TargetedFault>) {
        let k = (t.primary.clone(), t.version_id.clone());
        let mut failed = false;
        let mut never = false;
        let mut retry: Option<String> = None;
        let mut results: Vec<(usize, String, String)> = Vec::new();
        // What each destination got, for the observer.
        let mut arrivals: Vec<(String, Arrival)> = Vec::new();
        for (i, target) in t.targets.iter().enumerate() {
            if t.copied[i] {
                continue;
            }
            let hit = fault.and_then(|(f, at)| at.is_none_or(|n| n == i + 1).then_some(f));
            match hit {
                Some(Fault::Failed) => {
                    failed = true;
                    arrivals.push((target.bucket.clone(), Arrival::Failed));
                    continue;
                }
                Some(Fault::Never) => {
                    never = true;
                    arrivals.push((target.bucket.clone(), Arrival::Withheld));
                    continue;
                }
                _ => {}
            }
            let copy = if t.delete_marker {
                self.copy_delete_marker(&t, target).await
            } else {
                self.copy_version(&t, target, hit).await
            };
            match copy {
                Ok(Some(engine_id)) => {
                    arrivals.push((
                        target.bucket.clone(),
                        match (t.delete_marker, hit) {
                            (true, _) => Arrival::DeleteMarker,
                            (false, Some(Fault::Corrupt | Fault::RelayoutCorrupt)) => {
                                Arrival::Corrupted
                            }
                            (false, Some(Fault::Relayout)) => Arrival::Relayout,
                            (false, _) => Arrival::Copied,
                        },
                    ));
                    results.push((i, target.bucket.clone(), engine_id))
                }
                // Deleted (permanently) before we got to it: nothing to replicate.
                Ok(None) => results.push((i, target.bucket.clone(), String::new())),
                Err(e) => {
                    retry = Some(e);
                    break;
                }
            }
        }
        // A copy error is retried unless it was the last attempt (see below): then every
        // destination not reached failed; otherwise only those reached so far arrived.
        let gave_up = retry.is_some() && retry_after(t.errors + 1, 0.0).is_none();
        if gave_up {
            for (i, target) in t.targets.iter().enumerate() {
                if !t.copied[i] && !results.iter().any(|r| r.0 == i) {
                    arrivals.push((target.bucket.clone(), Arrival::Failed));
                }
            }
        }
        if retry.is_some() && !gave_up {
            // The failed and withheld destinations are recorded when the version settles.
            arrivals.retain(|(b, _)| results.iter().any(|r| &r.1 == b));
        }
        self.record_arrivals(&t, arrivals).await;
        let mut st = self.state.lock().await;
        for (_, bucket, engine_id) in &results {
            if !engine_id.is_empty() {
                st.map_ids(bucket, &t.version_id, engine_id);
            }
        }
        st.copied += results.iter().filter(|r| !r.2.is_empty()).count();
        let Some(tracked) = st.versions.get_mut(&k) else {
            return;
        };
        for (i, _, _) in &results {
            tracked.copied[*i] = true;
        }
        if let Some(e) = retry {
            tracked.errors += 1;
            match retry_after(tracked.errors, rand::random::<f64>()) {
                Some(backoff) => {
                    tracked.due = Some(Instant::now() + backoff);
                    tracing::warn!(key = %tracked.key, error = %e, attempt = tracked.errors, "replication of a version failed; retrying");
                    return;
                }
                None => {
                    // S3 reports a replication it gave up on as FAILED, and does not retry
                    // it (S3 User Guide, "Getting replication status information";
                    // re-replicating takes S3 Batch Replication).
                    tracing::warn!(key = %tracked.key, error = %e, attempts = tracked.errors, "replication of a version failed for good: FAILED");
                    failed = true;
                }
            }
        }
        tracked.settled = true;
        tracked.status = Some(if failed {
            Status::Failed
        } else if never {
            Status::Pending
        } else {
            Status::Completed
        });
        tracing::debug!(key = %tracked.key, status = ?tracked.status, "replication handled");
        // What a settled version still needs is its status, ETag and size (for HEADs and
        // events): it moves to the compact history.
        let settled = Settled::of(tracked);
        st.versions.remove(&k);
        st.settle(&k.0, &k.1, settled);
    }

    /// Tells the observer (if any) what each destination got.
    pub(super) async fn record_arrivals(&self, t: &Tracked, arrivals: Vec<(String, Arrival)>) {
        let observer = self.observer.lock().expect("not poisoned").clone();
        let Some(obs) = observer else { return };
        for (destination, arrival) in arrivals {
            obs.push(Observation::Replica {
                primary: t.primary.clone(),
                key: t.key.clone(),
                version_id: t.version_id.clone(),
                destination,
                arrival,
            })
            .await;
        }
    }

    /// Replicates a delete marker: the replica gets one of its own. Returns its engine id.
    pub(super) async fn copy_delete_marker(
        &self,
        t: &Tracked,
        target: &Target,
    ) -> Result<Option<String>, String> {
        let out = self
            .clients
            .s3_replica
            .delete_object()
            .bucket(&target.bucket)
            .key(&t.key)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out.version_id().map(str::to_string))
    }

    /// Copies a version; returns the engine's version id of the copy (`None` when the
    /// source version is gone).
    pub(super) async fn copy_version(
        &self,
        p: &Tracked,
        target: &Target,
        fault: Option<Fault>,
    ) -> Result<Option<String>, String> {
        let corrupt = matches!(fault, Some(Fault::Corrupt | Fault::RelayoutCorrupt));
        let relayout = matches!(fault, Some(Fault::Relayout | Fault::RelayoutCorrupt));
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
            Err(e) if sdk(&e).contains("404") || sdk(&e).contains("NotFound") => return Ok(None),
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
        // Replicas keep the source's metadata and storage class (no destination storage
        // class in the rule), and are encrypted "using the same type of server-side
        // encryption that was used for the source object": SSE-KMS with the rule's replica key.
        let opts = PutOptions {
            metadata: head.metadata().cloned(),
            content_type: head.content_type().map(str::to_string),
            kms_key: if p.sse_kms {
                target.kms_key.clone()
            } else {
                None
            },
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
        // A version S3 gave a default CRC64NVME (uploaded without a checksum): its replicas
        // carry the CRC64NVME of their own bytes (`fidelity::checksums`).
        let default = self.default_checksum(&p.primary, &p.version_id);
        let total = head.content_length().unwrap_or(0).max(0) as u64;
        if parts <= 1 && !relayout {
            if total > WHOLE_COPY_LIMIT {
                return self
                    .stream_single(p, target, &head, opts, corrupt, default.is_some())
                    .await
                    .map(Some);
            }
            let mut bytes = read_version(s3, p).await?;
            if corrupt {
                flip(&mut bytes);
            }
            let replica_crc64 = default
                .is_some()
                .then(|| crate::fidelity::checksums::Crc64::of(&bytes));
            let put = replica_put(dst, target, &p.key, opts, &head, corrupt)
                .body(ByteStream::from(bytes));
            let out = put.send().await.map_err(sdk)?;
            let id = out.version_id().unwrap_or_default().to_string();
            if let (Some(crc), Some(store)) = (replica_crc64, self.default_checksums()) {
                store.record(&target.bucket, &id, crc);
            }
            return Ok(Some(id));
        }
        // Multipart: learn the source's part layout, then write the replica with the same
        // part boundaries (or with other ones for a relayout fault), one part in memory at
        // a time: each part is a ranged GET of the source version.
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
            sizes.push(part.content_length().unwrap_or(0).max(0) as u64);
        }
        let first = if sizes.iter().sum::<u64>() == total {
            sizes.first().copied().unwrap_or(total)
        } else {
            // Engine gap (MiniStack): part numbers are ignored on reads, so infer the layout.
            infer_part_size(total as usize, parts as usize) as u64
        };
        let part_size = if relayout {
            RELAYOUT_PART as u64
        } else {
            first.max(1)
        };
        let mut upload =
            MultipartUpload::create(dst, &target.bucket, &p.key, Some(algorithm), &opts).await?;
        let mut crc = crate::fidelity::checksums::Crc64::default();
        if let Err(e) = copy_parts(s3, p, total, part_size, corrupt, &mut crc, &mut upload).await {
            upload.abort().await;
            return Err(e);
        }
        let id = upload.complete().await?.unwrap_or_default();
        if let (Some(_), Some(store)) = (&default, self.default_checksums()) {
            store.record(&target.bucket, &id, crc.base64());
        }
        Ok(Some(id))
    }

    /// Copies a single-part version larger than [`WHOLE_COPY_LIMIT`] as one PutObject whose
    /// body is the source's GetObject body, passed through as it arrives: the replica keeps
    /// the source's single-part form (and so its ETag) and no more than the transport's
    /// buffers are held. The source's checksum value is declared when it has one; the
    /// client computes none (a streaming body would need aws-chunked trailers). Returns
    /// the replica's engine id.
    pub(super) async fn stream_single(
        &self,
        p: &Tracked,
        target: &Target,
        head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
        opts: PutOptions,
        corrupt: bool,
        default: bool,
    ) -> Result<String, String> {
        use http_body_util::BodyExt;
        let src = get_version(&self.clients.s3, p, None).await?;
        let length = src.content_length().unwrap_or(0);
        let crc = std::sync::Arc::new(std::sync::Mutex::new(
            crate::fidelity::checksums::Crc64::default(),
        ));
        let seen = crc.clone();
        let mut flip_next = corrupt;
        let body = src.body.into_inner().map_frame(move |frame| {
            frame.map_data(|data| {
                let data = if flip_next && !data.is_empty() {
                    flip_next = false;
                    let mut v = data.to_vec();
                    flip(&mut v);
                    bytes::Bytes::from(v)
                } else {
                    data
                };
                if default {
                    if let Ok(mut c) = seen.lock() {
                        c.update(&data);
                    }
                }
                data
            })
        });
        let dst = crate::aws::without_checksums(&self.clients.s3_replica);
        let put = replica_put(&dst, target, &p.key, opts, head, corrupt)
            .content_length(length)
            .body(ByteStream::from_body_1_x(body));
        let out = put.send().await.map_err(sdk)?;
        let id = out.version_id().unwrap_or_default().to_string();
        if let (true, Some(store), Ok(c)) = (default, self.default_checksums(), crc.lock()) {
            store.record(&target.bucket, &id, c.base64());
        }
        Ok(id)
    }
}

/// Reads the source version in one GetObject and writes it as parts of `part_size` bytes
/// as the body arrives, holding at most one part. The body waits while a part uploads, and
/// an engine may drop a response left unread that long: the read then resumes where it
/// stopped with a ranged GetObject (at most [`MAX_RESUMES`] times), skipping what it
/// already has when the engine answers a range with the whole object. `corrupt` flips the
/// first byte; `crc` sees every byte written.
pub(super) async fn copy_parts(
    s3: &aws_sdk_s3::Client,
    p: &Tracked,
    total: u64,
    part_size: u64,
    corrupt: bool,
    crc: &mut crate::fidelity::checksums::Crc64,
    upload: &mut MultipartUpload<'_>,
) -> Result<(), String> {
    let mut body = get_version(s3, p, None).await?.body;
    let part_size = part_size.max(1) as usize;
    let mut part = Vec::with_capacity(part_size.min(total as usize));
    let mut read = 0u64;
    // Bytes of the current body to drop before reading on (a resumed read the engine
    // answered from the start).
    let mut skip = 0u64;
    let mut resumes = 0;
    let mut flip_next = corrupt;
    let mut emit = |mut bytes: Vec<u8>, crc: &mut crate::fidelity::checksums::Crc64| {
        if std::mem::take(&mut flip_next) {
            flip(&mut bytes);
        }
        crc.update(&bytes);
        bytes
    };
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) if resumes < MAX_RESUMES && read < total => {
                resumes += 1;
                tracing::debug!(key = %p.key, read, error = %DisplayErrorContext(&e), "source read dropped; resuming");
                let out = get_version(s3, p, Some(read)).await?;
                skip = match out.content_length() {
                    Some(n) if n as u64 == total - read => 0,
                    _ => read,
                };
                body = out.body;
                continue;
            }
            Err(e) => return Err(format!("{}: {}", p.key, DisplayErrorContext(&e))),
        };
        let dropped = skip.min(chunk.len() as u64) as usize;
        skip -= dropped as u64;
        let mut rest = &chunk[dropped..];
        read += rest.len() as u64;
        while !rest.is_empty() {
            let take = (part_size - part.len()).min(rest.len());
            part.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if part.len() == part_size {
                let full = std::mem::replace(&mut part, Vec::with_capacity(part_size));
                upload.part(emit(full, crc)).await?;
            }
        }
    }
    if read != total {
        return Err(format!("{}: read {read} of {total} bytes", p.key));
    }
    if !part.is_empty() || total == 0 {
        upload.part(emit(part, crc)).await?;
    }
    Ok(())
}

/// How often [`copy_parts`] resumes a dropped source read before the copy fails (and is
/// retried as a whole with backoff).
pub(super) const MAX_RESUMES: u32 = 5;

/// A replica's PutObject (body still to be set): the source's metadata, content type and
/// storage class, SSE-KMS with the rule's key when the source has it, and the source's
/// full-object checksum unless the copy is corrupted on purpose.
pub(super) fn replica_put(
    dst: &aws_sdk_s3::Client,
    target: &Target,
    key: &str,
    opts: PutOptions,
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
    corrupt: bool,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    let mut put = dst
        .put_object()
        .bucket(&target.bucket)
        .key(key)
        .set_metadata(opts.metadata)
        .set_content_type(opts.content_type)
        .set_storage_class(opts.storage_class);
    if let Some(k) = &opts.kms_key {
        put = put
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(k);
    }
    if corrupt {
        put
    } else {
        with_source_checksum(put, head)
    }
}

/// Declares the source's full-object checksum on a replica's PutObject, as S3 replication
/// keeps it.
pub(super) fn with_source_checksum(
    put: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    if let Some(v) = head.checksum_crc64_nvme() {
        put.checksum_crc64_nvme(v)
    } else if let Some(v) = head.checksum_sha256() {
        put.checksum_sha256(v)
    } else if let Some(v) = head.checksum_crc32_c() {
        put.checksum_crc32_c(v)
    } else if let Some(v) = head.checksum_crc32() {
        put.checksum_crc32(v)
    } else {
        put
    }
}

/// Single-part versions up to this size are copied through memory; larger ones stream
/// (`stream_single`). Multipart versions are copied a part at a time whatever their size.
pub const WHOLE_COPY_LIMIT: u64 = 8 * 1024 * 1024;

/// The part size of an `n`-part upload of `total` bytes with equal parts but the last:
/// 5 MiB (the SDKs' and CLI's usual size, and S3's minimum) when that fits, else the
/// smallest whole MiB that does.
pub fn infer_part_size(total: usize, n: usize) -> usize {
    pub(super) const MIB: usize = 1024 * 1024;
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

pub(super) fn flip(bytes: &mut [u8]) {
    if let Some(b) = bytes.first_mut() {
        *b ^= 0xff;
    }
}

/// GetObject of a source version, from byte `from` on when given (its body still to be
/// read).
pub(super) async fn get_version(
    s3: &aws_sdk_s3::Client,
    p: &Tracked,
    from: Option<u64>,
) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, String> {
    s3.get_object()
        .bucket(&p.primary)
        .key(&p.key)
        .version_id(&p.version_id)
        .set_range(from.map(|n| format!("bytes={n}-")))
        .send()
        .await
        .map_err(sdk)
}

/// Reads a source version whole (single-part versions up to [`WHOLE_COPY_LIMIT`]).
pub(super) async fn read_version(s3: &aws_sdk_s3::Client, p: &Tracked) -> Result<Vec<u8>, String> {
    Ok(get_version(s3, p, None)
        .await?
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_vec())
}

//! Streaming upload: consumes the archive's chunk channel and stores it under one key with a
//! bounded number of parts in flight, so memory stays at roughly
//! `(channel capacity + in-flight parts + 2) × part size` whatever the archive size.
//!
//! - An archive that fits in the first part goes up with one `PutObject` carrying all the
//!   metadata and the full-object CRC64NVME (S3 verifies it).
//! - Otherwise a multipart upload: `CreateMultipartUpload` declares CRC64NVME with
//!   `ChecksumType=FULL_OBJECT`, every `UploadPart` carries its part's CRC64NVME, and
//!   `CompleteMultipartUpload` lists the part checksums plus the whole-object value computed
//!   while streaming, so S3 checks the assembled bytes. Any failure aborts the upload.
//!   Because user metadata can only be set when an upload starts and the archive's digests
//!   are known only at its end, the object is then *sealed*: copied onto itself with the
//!   final metadata (`CopyObject`, or `UploadPartCopy` above 5 GiB). In a versioned
//!   bucket that leaves the intermediate version (same bytes, first metadata) behind as a
//!   noncurrent version. By default it stays there for the bucket's lifecycle
//!   (`NoncurrentVersionExpiration`) to remove and is reported
//!   ([`Uploaded::leftover_version`]): the agent then never needs `s3:DeleteObjectVersion`,
//!   the permission that would let a stolen agent credential destroy every backup version.
//!   With [`UploadSpec::delete_intermediate`] (`--delete-intermediate`) the agent deletes it
//!   by version id; a refusal (AccessDenied) is reported the same way and never fails the
//!   backup.
//! - A stored object whose checksum does not match is hidden again: by default with a
//!   plain `DeleteObject` (a delete marker in a versioned bucket, so it can never become the
//!   latest backup), with `--delete-intermediate` by deleting that version.
//! - Finally `HeadObject` with `ChecksumMode=ENABLED` checks the size and what the endpoint
//!   stored against the agent's own CRC64NVME ([`crate::compat`] classifies it).
//!
//! Part sizes start at `part_size` and double every 2,000 parts (never beyond S3's 5 GiB
//! part limit), so the 10,000-part limit allows ~484 GiB with 8 MiB parts. Before
//! anything is uploaded, [`plan_part_size`] compares an upper bound of the archive's size
//! (from [`crate::archive::estimate`], a pre-walk summing the regular files' sizes) with
//! what 10,000 parts hold: it raises the starting part size when they would not be enough,
//! and refuses an archive above S3's 5 TiB object limit, so a too-large source fails at
//! once instead of after hundreds of GiB were uploaded.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    MetadataDirective,
};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::archive::ArchiveSummary;
use crate::aws::classify;
use crate::compat::{self, MultipartChecksum, S3Check};
use crate::digest::crc64nvme_base64;
use crate::errors::AgentError;
use crate::layout::{self, meta};
use crate::signals::Cancel;

// The S3 limits below are those of "Amazon S3 multipart upload limits",
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html: parts of 5 MiB to
// 5 GiB (the last part may be smaller), part numbers 1 to 10,000, objects up to 5 TiB.

/// S3's minimum part size (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's maximum part size.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// S3's maximum number of parts.
pub const MAX_PARTS: i32 = 10_000;
/// S3's maximum object size.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Largest object `CopyObject` can copy in one request.
pub const COPY_OBJECT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;
/// Part size of a multipart copy when sealing objects above [`COPY_OBJECT_LIMIT`].
pub const COPY_PART_SIZE: u64 = 1024 * 1024 * 1024;

/// Target size of part `n` (1-based): doubles every 2,000 parts, at most [`MAX_PART_SIZE`].
pub fn part_size_for(n: i32, base: usize) -> usize {
    let doublings = ((n.max(1) - 1) / 2000).min(4) as u32;
    base.clamp(MIN_PART_SIZE, MAX_PART_SIZE)
        .saturating_mul(1 << doublings)
        .min(MAX_PART_SIZE)
}

/// How many bytes the 10,000 parts of an upload starting at part size `base` hold.
pub fn capacity(base: usize) -> u64 {
    (0..5)
        .map(|block| 2000 * part_size_for(block * 2000 + 1, base) as u64)
        .sum()
}

/// An archive S3 cannot store as one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the archive may reach {bound} bytes ({files} files, {bytes} bytes of file data), more than S3's largest object ({MAX_OBJECT_SIZE} bytes, 5 TiB); back up smaller directories")]
pub struct TooLarge {
    /// Upper bound of the archive's size.
    pub bound: u64,
    pub files: u64,
    pub bytes: u64,
}

/// The starting part size for an archive of `estimate`: `base` when 10,000 parts of the
/// doubling schedule hold [`crate::archive::Estimate::archive_bound`], otherwise the
/// smallest whole number of MiB above it that does (at most [`MAX_PART_SIZE`]); an
/// archive above [`MAX_OBJECT_SIZE`] is refused.
pub fn plan_part_size(base: usize, estimate: &crate::archive::Estimate) -> Result<usize, TooLarge> {
    let bound = estimate.archive_bound();
    let base = base.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    if bound > MAX_OBJECT_SIZE {
        return Err(TooLarge {
            bound,
            files: estimate.files,
            bytes: estimate.bytes,
        });
    }
    if capacity(base) >= bound {
        return Ok(base);
    }
    // capacity is monotonic in the part size and 10,000 × 5 GiB > 5 TiB: bisect in MiB.
    const MIB: usize = 1 << 20;
    let (mut lo, mut hi) = (base / MIB, MAX_PART_SIZE / MIB);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if capacity(mid * MIB) >= bound {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi * MIB)
}

/// What to upload where.
#[derive(Debug, Clone)]
pub struct UploadSpec {
    pub bucket: String,
    pub key: String,
    /// Metadata known before streaming starts (category, tool, source name).
    pub metadata: Vec<(String, String)>,
    pub part_size: usize,
    pub max_in_flight: usize,
    /// Objects above this size are sealed with a multipart copy (default [`COPY_OBJECT_LIMIT`]).
    pub copy_object_limit: u64,
    /// Delete the intermediate version of a sealed upload, and a mismatching stored
    /// version, by version id (needs `s3:DeleteObjectVersion`). Off by default: the
    /// intermediate version is left for lifecycle and reported.
    pub delete_intermediate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    PutObject,
    Multipart,
}

/// What was stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Uploaded {
    pub method: Method,
    pub parts: i32,
    pub version_id: Option<String>,
    pub s3_check: S3Check,
    pub multipart_checksum: Option<MultipartChecksum>,
    pub summary: ArchiveSummary,
    /// The intermediate version of a sealed upload, when it stays in the bucket as a
    /// noncurrent version: always without [`UploadSpec::delete_intermediate`] (lifecycle's
    /// `NoncurrentVersionExpiration` removes it), or because deleting it was refused.
    pub leftover_version: Option<String>,
}

/// All metadata of a finished archive.
pub fn final_metadata(base: &[(String, String)], s: &ArchiveSummary) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = base.iter().cloned().collect();
    m.insert(meta::SHA256.into(), s.checksums.sha256.clone());
    m.insert(meta::CRC64NVME.into(), s.checksums.crc64nvme.clone());
    m.insert(meta::FILES.into(), s.files.to_string());
    m.insert(
        meta::UNCOMPRESSED_BYTES.into(),
        s.uncompressed_bytes.to_string(),
    );
    m.insert(meta::TOOL.into(), layout::tool_version());
    m
}

/// Sizes `spec` for an archive of `estimate` with [`plan_part_size`] before anything is
/// uploaded: raises [`UploadSpec::part_size`] when 10,000 parts would not hold it (and
/// says so), or fails with the upload error of step "size estimate" (exit 8).
pub fn size_for(
    spec: &mut UploadSpec,
    estimate: &crate::archive::Estimate,
) -> Result<(), AgentError> {
    let planned = plan_part_size(spec.part_size, estimate)
        .map_err(|e| upload_err(spec, "size estimate", e.to_string()))?;
    if planned != spec.part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE) {
        tracing::warn!(
            files = estimate.files,
            bytes = estimate.bytes,
            bound = estimate.archive_bound(),
            from_mib = spec.part_size >> 20,
            to_mib = planned >> 20,
            "the archive may not fit in {MAX_PARTS} parts of the chosen size: part size raised (memory grows with it)"
        );
    }
    spec.part_size = planned;
    Ok(())
}

/// Reads chunks until `size` bytes or the end of the stream; `(data, ended)`.
async fn next_part(rx: &mut mpsc::Receiver<Bytes>, size: usize) -> (Vec<Bytes>, usize, bool) {
    let mut chunks = Vec::new();
    let mut len = 0;
    while len < size {
        match rx.recv().await {
            Some(c) => {
                len += c.len();
                chunks.push(c);
            }
            None => return (chunks, len, true),
        }
    }
    (chunks, len, false)
}

fn concat(chunks: Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.into_iter().next().unwrap_or_default();
    }
    let mut b = BytesMut::with_capacity(len);
    for c in chunks {
        b.extend_from_slice(&c);
    }
    b.freeze()
}

fn upload_err(spec: &UploadSpec, step: &'static str, why: impl Into<String>) -> AgentError {
    AgentError::Upload {
        bucket: spec.bucket.clone(),
        key: spec.key.clone(),
        step,
        why: why.into(),
    }
}

/// The multipart uploads (ids) an upload has created and neither completed nor aborted
/// yet: what a cancelled upload must abort.
#[derive(Debug, Default)]
pub struct Uploads(std::sync::Mutex<Vec<String>>);

impl Uploads {
    fn ids(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add(&self, id: &str) {
        self.ids().push(id.to_string());
    }

    pub fn remove(&self, id: &str) {
        self.ids().retain(|i| i != id);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.ids())
    }
}

/// Uploads the stream and returns once the object is stored, sealed and checked. When
/// `cancel` is triggered the upload stops where it is: part requests in flight are
/// dropped, the archive thread stops at its next chunk, every multipart upload begun is
/// aborted (see [`abort`]) and the result is [`AgentError::Interrupted`].
pub async fn upload_stream(
    s3: &aws_sdk_s3::Client,
    spec: &UploadSpec,
    mut rx: mpsc::Receiver<Bytes>,
    archive: tokio::task::JoinHandle<Result<ArchiveSummary, AgentError>>,
    cancel: &Cancel,
) -> Result<Uploaded, AgentError> {
    let uploads = Uploads::default();
    // The select drops the upload (and its part tasks) before the aborts go out.
    let outcome = tokio::select! {
        r = upload_all(s3, spec, &mut rx, archive, &uploads) => Ok(r),
        s = cancel.cancelled() => Err(s),
    };
    match outcome {
        Ok(r) => r,
        Err(signal) => {
            drop(rx);
            let pending = uploads.take();
            tracing::warn!(signal = signal.name(), uploads = pending.len(), key = %spec.key, "upload interrupted; aborting");
            for id in pending {
                abort(s3, spec, &id).await;
            }
            Err(Cancel::error(signal))
        }
    }
}

async fn upload_all(
    s3: &aws_sdk_s3::Client,
    spec: &UploadSpec,
    rx: &mut mpsc::Receiver<Bytes>,
    archive: tokio::task::JoinHandle<Result<ArchiveSummary, AgentError>>,
    uploads: &Uploads,
) -> Result<Uploaded, AgentError> {
    let first_size = part_size_for(1, spec.part_size);
    let (chunks, len, ended) = next_part(rx, first_size).await;
    if ended {
        // The whole archive is in memory already (< one part): one PutObject.
        let summary = crate::archive::join(archive).await?;
        let body = concat(chunks, len);
        let metadata = final_metadata(&spec.metadata, &summary);
        let r = s3
            .put_object()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .content_type(layout::CONTENT_TYPE)
            .set_metadata(Some(metadata))
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(&summary.checksums.crc64nvme)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| upload_err(spec, "PutObject", classify(&e).text()))?;
        let version_id = r.version_id().map(str::to_string);
        let s3_check = verify_or_discard(s3, spec, version_id.as_deref(), &summary).await?;
        return Ok(Uploaded {
            method: Method::PutObject,
            parts: 1,
            version_id,
            s3_check,
            multipart_checksum: None,
            summary,
            leftover_version: None,
        });
    }

    let created = s3
        .create_multipart_upload()
        .bucket(&spec.bucket)
        .key(&spec.key)
        .content_type(layout::CONTENT_TYPE)
        .set_metadata(Some(spec.metadata.iter().cloned().collect()))
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .map_err(|e| upload_err(spec, "CreateMultipartUpload", classify(&e).text()))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| upload_err(spec, "CreateMultipartUpload", "no upload id in the answer"))?
        .to_string();
    uploads.add(&upload_id);
    let mode = compat::multipart_checksum(created.checksum_type());
    if !mode.send_full_object() {
        tracing::info!("endpoint answered COMPOSITE to a FULL_OBJECT multipart checksum request: parts are verified one by one, the whole-object value is checked by the agent only");
    }

    let result = stream_parts(s3, spec, &upload_id, rx, (chunks, len)).await;
    let parts = match result {
        Ok(p) => p,
        Err(e) => {
            rx.close();
            abort(s3, spec, &upload_id).await;
            uploads.remove(&upload_id);
            // An archive that failed on its own is the root cause; one that stopped
            // because we stopped reading is not.
            return Err(match crate::archive::join(archive).await {
                Err(AgentError::ArchiveAbandoned { .. }) | Ok(_) => e,
                Err(archive_err) => archive_err,
            });
        }
    };
    let summary = match crate::archive::join(archive).await {
        Ok(s) => s,
        Err(e) => {
            abort(s3, spec, &upload_id).await;
            uploads.remove(&upload_id);
            return Err(e);
        }
    };
    let part_count = parts.len() as i32;
    let mut complete = s3
        .complete_multipart_upload()
        .bucket(&spec.bucket)
        .key(&spec.key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        );
    if mode.send_full_object() {
        complete = complete
            .checksum_type(ChecksumType::FullObject)
            .checksum_crc64_nvme(&summary.checksums.crc64nvme)
            .mpu_object_size(summary.checksums.bytes as i64);
    }
    let done = match complete.send().await {
        Ok(d) => {
            uploads.remove(&upload_id);
            d
        }
        Err(e) => {
            let f = classify(&e);
            abort(s3, spec, &upload_id).await;
            uploads.remove(&upload_id);
            if f.code() == Some("BadDigest") {
                return Err(AgentError::Checksum {
                    what: format!("s3://{}/{} (assembled by S3)", spec.bucket, spec.key),
                    expected: summary.checksums.crc64nvme.clone(),
                    actual: f.text(),
                });
            }
            return Err(upload_err(spec, "CompleteMultipartUpload", f.text()));
        }
    };
    let uploaded_version = done.version_id().map(str::to_string);
    let metadata = final_metadata(&spec.metadata, &summary);
    let (version_id, leftover_version) = seal(
        s3,
        spec,
        uploaded_version.as_deref(),
        summary.checksums.bytes,
        metadata,
        mode,
        uploads,
    )
    .await?;
    let s3_check = verify_or_discard(s3, spec, version_id.as_deref(), &summary).await?;
    Ok(Uploaded {
        method: Method::Multipart,
        parts: part_count,
        version_id,
        s3_check,
        multipart_checksum: Some(mode),
        summary,
        leftover_version,
    })
}

/// Uploads every part, `max_in_flight` at a time; returns the completed parts in order.
async fn stream_parts(
    s3: &aws_sdk_s3::Client,
    spec: &UploadSpec,
    upload_id: &str,
    rx: &mut mpsc::Receiver<Bytes>,
    first: (Vec<Bytes>, usize),
) -> Result<Vec<CompletedPart>, AgentError> {
    let mut in_flight: JoinSet<Result<CompletedPart, AgentError>> = JoinSet::new();
    let mut done: Vec<CompletedPart> = Vec::new();
    let mut pending = Some(first);
    let mut n: i32 = 0;
    loop {
        let (chunks, len) = match pending.take() {
            Some(p) => p,
            None => {
                let (c, l, _) = next_part(rx, part_size_for(n + 1, spec.part_size)).await;
                (c, l)
            }
        };
        if len == 0 {
            break;
        }
        n += 1;
        if n > MAX_PARTS {
            in_flight.abort_all();
            return Err(upload_err(
                spec,
                "UploadPart",
                format!("archive needs more than {MAX_PARTS} parts; raise --part-size-mib"),
            ));
        }
        while in_flight.len() >= spec.max_in_flight.max(1) {
            if let Some(r) = in_flight.join_next().await {
                done.push(joined(spec, r)?);
            }
        }
        let body = concat(chunks, len);
        let (s3, bucket, key, upload_id) = (
            s3.clone(),
            spec.bucket.clone(),
            spec.key.clone(),
            upload_id.to_string(),
        );
        let spec_c = spec.clone();
        in_flight.spawn(async move {
            let crc = crc64nvme_base64(&body);
            let r = s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(n)
                .content_length(body.len() as i64)
                .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                .checksum_crc64_nvme(&crc)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| {
                    upload_err(
                        &spec_c,
                        "UploadPart",
                        format!("part {n}: {}", classify(&e).text()),
                    )
                })?;
            Ok(CompletedPart::builder()
                .part_number(n)
                .set_e_tag(r.e_tag().map(str::to_string))
                .checksum_crc64_nvme(crc)
                .build())
        });
        tracing::debug!(part = n, bytes = len, "part queued");
    }
    while let Some(r) = in_flight.join_next().await {
        done.push(joined(spec, r)?);
    }
    done.sort_by_key(|p| p.part_number());
    Ok(done)
}

fn joined(
    spec: &UploadSpec,
    r: Result<Result<CompletedPart, AgentError>, tokio::task::JoinError>,
) -> Result<CompletedPart, AgentError> {
    r.map_err(|e| upload_err(spec, "UploadPart", format!("part task: {e}")))?
}

/// Aborts a multipart upload, then checks with `ListParts`: parts whose requests were
/// still in flight can arrive after the abort (AWS documents that the abort may have to
/// be repeated), so when the abort failed or parts remain it is tried once more.
pub async fn abort(s3: &aws_sdk_s3::Client, spec: &UploadSpec, upload_id: &str) {
    for attempt in 1..=2 {
        let aborted = match s3
            .abort_multipart_upload()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(upload_id, attempt, "multipart upload aborted");
                true
            }
            Err(e) => {
                let f = classify(&e);
                if f.code() == Some("NoSuchUpload") {
                    return;
                }
                tracing::warn!(upload_id, attempt, error = %f.text(), "could not abort the multipart upload");
                false
            }
        };
        let remaining = match s3
            .list_parts()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(r) => Some(r.parts().len()),
            // Gone (NoSuchUpload) is what a successful abort leaves.
            Err(e)
                if classify(&e).is_not_found() || classify(&e).code() == Some("NoSuchUpload") =>
            {
                Some(0)
            }
            Err(_) => None,
        };
        match remaining {
            Some(0) | None if aborted => return,
            Some(n) if n > 0 && attempt == 1 => {
                tracing::warn!(
                    upload_id,
                    parts = n,
                    "the upload still has parts after the abort; aborting again"
                )
            }
            _ => {}
        }
    }
    tracing::warn!(
        upload_id,
        "the multipart upload may not be fully aborted; the bucket's AbortIncompleteMultipartUpload rule will clean it up"
    );
}

/// Rewrites the object's metadata in place (copy onto itself); in a versioned bucket the
/// intermediate version is deleted only with [`UploadSpec::delete_intermediate`]. Returns
/// (final version id, intermediate version left in the bucket).
pub async fn seal(
    s3: &aws_sdk_s3::Client,
    spec: &UploadSpec,
    version_id: Option<&str>,
    size: u64,
    metadata: HashMap<String, String>,
    mode: MultipartChecksum,
    uploads: &Uploads,
) -> Result<(Option<String>, Option<String>), AgentError> {
    let source = crate::s3::copy_source(&spec.bucket, &spec.key, version_id);
    let new_version = if size <= spec.copy_object_limit {
        let r = s3
            .copy_object()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .copy_source(&source)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(metadata))
            .content_type(layout::CONTENT_TYPE)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .send()
            .await
            .map_err(|e| upload_err(spec, "CopyObject (seal metadata)", classify(&e).text()))?;
        r.version_id().map(str::to_string)
    } else {
        multipart_copy(s3, spec, &source, size, metadata, mode, uploads).await?
    };
    // Only a bucket that kept the first write as a separate version has anything left.
    let leftover = match (version_id, new_version.as_deref()) {
        (Some(old), Some(new)) if old != new && old != "null" && !spec.delete_intermediate => {
            tracing::info!(version = old, "intermediate version left as a noncurrent version for lifecycle (NoncurrentVersionExpiration) to remove; --delete-intermediate deletes it");
            Some(old.to_string())
        }
        (Some(old), Some(new)) if old != new && old != "null" => {
            match s3
                .delete_object()
                .bucket(&spec.bucket)
                .key(&spec.key)
                .version_id(old)
                .send()
                .await
            {
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(version = old, error = %classify(&e).text(), "could not delete the intermediate version; it stays as a noncurrent version until lifecycle expires it");
                    Some(old.to_string())
                }
            }
        }
        _ => None,
    };
    Ok((new_version, leftover))
}

async fn multipart_copy(
    s3: &aws_sdk_s3::Client,
    spec: &UploadSpec,
    source: &str,
    size: u64,
    metadata: HashMap<String, String>,
    mode: MultipartChecksum,
    uploads: &Uploads,
) -> Result<Option<String>, AgentError> {
    let step = "multipart copy (seal metadata)";
    let created = s3
        .create_multipart_upload()
        .bucket(&spec.bucket)
        .key(&spec.key)
        .content_type(layout::CONTENT_TYPE)
        .set_metadata(Some(metadata.clone()))
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .map_err(|e| upload_err(spec, step, classify(&e).text()))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| upload_err(spec, step, "no upload id in the answer"))?
        .to_string();
    uploads.add(&upload_id);
    let copy_part = if spec.copy_object_limit < COPY_PART_SIZE {
        // Tests lower the limit; keep parts above S3's minimum.
        (MIN_PART_SIZE as u64).max(spec.copy_object_limit)
    } else {
        COPY_PART_SIZE
    };
    let mut parts = Vec::new();
    let mut start = 0u64;
    let mut n = 0;
    while start < size {
        n += 1;
        let end = (start + copy_part).min(size) - 1;
        let r = s3
            .upload_part_copy()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .upload_id(&upload_id)
            .part_number(n)
            .copy_source(source)
            .copy_source_range(format!("bytes={start}-{end}"))
            .send()
            .await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                abort(s3, spec, &upload_id).await;
                uploads.remove(&upload_id);
                return Err(upload_err(spec, step, classify(&e).text()));
            }
        };
        let res = r.copy_part_result();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(res.and_then(|p| p.e_tag()).map(str::to_string))
                .set_checksum_crc64_nvme(
                    res.and_then(|p| p.checksum_crc64_nvme())
                        .map(str::to_string),
                )
                .build(),
        );
        start = end + 1;
    }
    let mut complete = s3
        .complete_multipart_upload()
        .bucket(&spec.bucket)
        .key(&spec.key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        );
    if mode.send_full_object() {
        if let Some(crc) = metadata.get(meta::CRC64NVME) {
            complete = complete
                .checksum_type(ChecksumType::FullObject)
                .checksum_crc64_nvme(crc)
                .mpu_object_size(size as i64);
        }
    }
    let r = complete.send().await;
    if r.is_err() {
        abort(s3, spec, &upload_id).await;
    }
    uploads.remove(&upload_id);
    r.map(|d| d.version_id().map(str::to_string))
        .map_err(|e| upload_err(spec, step, classify(&e).text()))
}

/// [`verify`]; an object whose stored bytes are not ours is hidden again, so it can never
/// become the "latest" backup: with [`UploadSpec::delete_intermediate`] that version is
/// deleted, otherwise (and when that is refused) a plain `DeleteObject` puts a delete
/// marker on it in a versioned bucket (removes it in an unversioned one).
async fn verify_or_discard(
    s3: &aws_sdk_s3::Client,
    spec: &UploadSpec,
    version_id: Option<&str>,
    summary: &ArchiveSummary,
) -> Result<S3Check, AgentError> {
    let result = verify(s3, spec, version_id, summary).await;
    if let Err(AgentError::Checksum { .. }) = &result {
        let versioned = version_id.filter(|v| *v != "null" && spec.delete_intermediate);
        if let Some(v) = versioned {
            match s3
                .delete_object()
                .bucket(&spec.bucket)
                .key(&spec.key)
                .version_id(v)
                .send()
                .await
            {
                Ok(_) => {
                    tracing::warn!(key = %spec.key, version = v, "the stored object did not match the archive; that version was deleted");
                    return result;
                }
                Err(e) => {
                    tracing::warn!(key = %spec.key, version = v, error = %classify(&e).text(), "could not delete the mismatching version; hiding it behind a delete marker instead")
                }
            }
        }
        match s3
            .delete_object()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .send()
            .await
        {
            Ok(_) => {
                tracing::warn!(key = %spec.key, "the stored object did not match the archive and was deleted (in a versioned bucket: hidden behind a delete marker)")
            }
            Err(e) => {
                tracing::error!(key = %spec.key, error = %classify(&e).text(), "the stored object does not match the archive and could not be deleted")
            }
        }
    }
    result
}

/// Checks size and stored checksum of the final object.
async fn verify(
    s3: &aws_sdk_s3::Client,
    spec: &UploadSpec,
    version_id: Option<&str>,
    summary: &ArchiveSummary,
) -> Result<S3Check, AgentError> {
    let h = s3
        .head_object()
        .bucket(&spec.bucket)
        .key(&spec.key)
        .set_version_id(version_id.map(str::to_string))
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| upload_err(spec, "HeadObject (verify)", classify(&e).text()))?;
    let size = h.content_length().unwrap_or(-1);
    if size != summary.checksums.bytes as i64 {
        return Err(AgentError::Checksum {
            what: format!("size of s3://{}/{}", spec.bucket, spec.key),
            expected: summary.checksums.bytes.to_string(),
            actual: size.to_string(),
        });
    }
    let stored = compat::stored_crc64(h.checksum_type(), h.checksum_crc64_nvme());
    let check = S3Check::judge(&stored, &summary.checksums.crc64nvme);
    if let S3Check::Differs { stored, ours } = &check {
        return Err(AgentError::Checksum {
            what: format!(
                "s3://{}/{} (CRC64NVME stored by the endpoint)",
                spec.bucket, spec.key
            ),
            expected: ours.clone(),
            actual: stored.clone(),
        });
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(1, 8, 8)]
    #[case(2000, 8, 8)]
    #[case(2001, 8, 16)]
    #[case(4001, 8, 32)]
    #[case(10000, 8, 128)]
    #[case(1, 1, 5)]
    fn part_sizes(#[case] n: i32, #[case] base_mib: usize, #[case] expected_mib: usize) {
        assert_eq!(part_size_for(n, base_mib << 20), expected_mib << 20);
    }

    /// S3 parts are at most 5 GiB: the doubling schedule stops there.
    #[test]
    fn no_part_is_larger_than_s3_allows() {
        assert_eq!(part_size_for(10_000, 5120 << 20), MAX_PART_SIZE);
        assert_eq!(part_size_for(2001, 4096 << 20), MAX_PART_SIZE);
        assert_eq!(part_size_for(1, usize::MAX), MAX_PART_SIZE);
        assert_eq!(capacity(MAX_PART_SIZE), 10_000 * MAX_PART_SIZE as u64);
    }

    fn estimate_of(bytes: u64) -> crate::archive::Estimate {
        crate::archive::Estimate {
            entries: 1,
            files: 1,
            bytes,
            tar_bytes: bytes + 512,
        }
    }

    /// Finding 18: a source that 10,000 parts of the chosen size cannot hold gets a larger
    /// part size before the upload starts; one S3 cannot store at all is refused.
    #[rstest]
    #[case(8, 1 << 30, 8)]
    #[case(8, 400 << 30, 8)]
    #[case(8, 600 << 30, 10)]
    #[case(5, 1 << 40, 17)]
    #[case(64, 4 << 40, 68)]
    fn the_part_size_grows_with_the_estimate(
        #[case] base_mib: usize,
        #[case] bytes: u64,
        #[case] expected_mib: usize,
    ) {
        let est = estimate_of(bytes);
        let planned = plan_part_size(base_mib << 20, &est).unwrap();
        assert_eq!(planned >> 20, expected_mib);
        assert!(capacity(planned) >= est.archive_bound());
        if planned > base_mib << 20 {
            // The smallest whole MiB that is enough.
            assert!(capacity(planned - (1 << 20)) < est.archive_bound());
        }
    }

    #[test]
    fn an_archive_above_five_tib_is_refused_before_uploading() {
        let e = plan_part_size(8 << 20, &estimate_of(MAX_OBJECT_SIZE)).unwrap_err();
        assert!(e.bound > MAX_OBJECT_SIZE);
        assert!(e.to_string().contains("5 TiB"), "{e}");
        let mut sp = spec(false);
        let err = size_for(&mut sp, &estimate_of(6 << 40)).unwrap_err();
        match &err {
            AgentError::Upload { step, why, .. } => {
                assert_eq!(*step, "size estimate");
                assert!(why.contains("largest object"), "{why}");
            }
            other => panic!("{other}"),
        }
        assert_eq!(err.exit_code(), 8);
        let mut sp = spec(false);
        size_for(&mut sp, &estimate_of(600 << 30)).unwrap();
        assert_eq!(sp.part_size, 10 << 20);
    }

    #[test]
    fn the_part_schedule_reaches_far_beyond_eighty_gib() {
        let total: u64 = (1..=MAX_PARTS)
            .map(|n| part_size_for(n, 8 << 20) as u64)
            .sum();
        assert_eq!(total, (2000 * (8 + 16 + 32 + 64 + 128)) << 20);
    }

    #[tokio::test]
    async fn next_part_accumulates_until_size_or_end() {
        let (tx, mut rx) = mpsc::channel(8);
        for _ in 0..3 {
            tx.send(Bytes::from_static(b"abcd")).await.unwrap();
        }
        drop(tx);
        let (c, len, ended) = next_part(&mut rx, 6).await;
        assert_eq!((c.len(), len, ended), (2, 8, false));
        assert_eq!(concat(c, len), Bytes::from_static(b"abcdabcd"));
        let (c, len, ended) = next_part(&mut rx, 6).await;
        assert_eq!((c.len(), len, ended), (1, 4, true));
    }

    #[test]
    fn final_metadata_has_every_field() {
        let s = ArchiveSummary {
            files: 3,
            dirs: 1,
            symlinks: 0,
            uncompressed_bytes: 99,
            checksums: crate::digest::Digests::new().finish(),
            skipped: vec![],
            changed: vec![],
            hard_links: 0,
            other_file_systems: vec![],
            vanished: vec![],
            unreadable: vec![],
            sparse: vec![],
        };
        let m = final_metadata(&[("category".into(), "media".into())], &s);
        for k in [
            meta::SHA256,
            meta::CRC64NVME,
            meta::FILES,
            meta::UNCOMPRESSED_BYTES,
            meta::TOOL,
            "category",
        ] {
            assert!(m.contains_key(k), "{k}");
        }
        assert_eq!(m[meta::FILES], "3");
        assert_eq!(m[meta::UNCOMPRESSED_BYTES], "99");
    }

    use crate::test_support::stub::{happy, Reply, Seen, StubS3};

    fn spec(delete_intermediate: bool) -> UploadSpec {
        UploadSpec {
            bucket: "b".into(),
            key: "backups/documents/20260101T000000.000Z.tar.gz".into(),
            metadata: vec![],
            part_size: MIN_PART_SIZE,
            max_in_flight: 2,
            copy_object_limit: COPY_OBJECT_LIMIT,
            delete_intermediate,
        }
    }

    type ArchiveHandle = tokio::task::JoinHandle<Result<ArchiveSummary, AgentError>>;

    /// An archive of `total` bytes sent in 1 MiB chunks, as `archive::spawn` would; the
    /// handle fails like the real archiver (BrokenPipe) when the receiver goes away.
    fn fake_archive(total: usize) -> (mpsc::Receiver<Bytes>, ArchiveHandle) {
        let (tx, rx) = mpsc::channel(2);
        let handle = tokio::spawn(async move {
            let mut digests = crate::digest::Digests::new();
            let mut sent = 0;
            while sent < total {
                let n = (1 << 20).min(total - sent);
                let chunk = Bytes::from(vec![(sent % 251) as u8; n]);
                digests.update(&chunk);
                if tx.send(chunk).await.is_err() {
                    return Err(AgentError::ArchiveAbandoned {
                        path: "/src/some/file".into(),
                    });
                }
                sent += n;
            }
            Ok(ArchiveSummary {
                files: 1,
                dirs: 0,
                symlinks: 0,
                uncompressed_bytes: total as u64,
                checksums: digests.finish(),
                skipped: vec![],
                changed: vec![],
                hard_links: 0,
                other_file_systems: vec![],
                vanished: vec![],
                unreadable: vec![],
                sparse: vec![],
            })
        });
        (rx, handle)
    }

    fn versioned_deletes(stub: &StubS3) -> Vec<Seen> {
        stub.of("DeleteObject")
            .into_iter()
            .filter(|s| s.has_query("versionId"))
            .collect()
    }

    /// Finding 15: by default the agent never deletes a version: the sealed upload's
    /// intermediate version is left (for lifecycle) and reported.
    #[tokio::test]
    async fn the_intermediate_version_is_left_for_lifecycle_by_default() {
        let stub = StubS3::start(happy).await;
        let (rx, handle) = fake_archive(6 << 20);
        let u = upload_stream(&stub.client(), &spec(false), rx, handle, &Cancel::new())
            .await
            .unwrap();
        assert_eq!(u.method, Method::Multipart);
        assert_eq!(u.version_id.as_deref(), Some("v2"));
        assert_eq!(u.leftover_version.as_deref(), Some("v1"));
        assert!(versioned_deletes(&stub).is_empty(), "{:?}", stub.seen());
        assert_eq!(stub.of("CopyObject").len(), 1);
    }

    /// Finding 15: with --delete-intermediate, an AccessDenied on the versioned delete (a
    /// bucket policy denying s3:DeleteObjectVersion) does not fail the backup; the version
    /// is reported as left behind.
    #[tokio::test]
    async fn an_access_denied_versioned_delete_does_not_fail_the_backup() {
        let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
            if s.op() == "DeleteObject" && s.has_query("versionId") {
                Reply::error(403, "AccessDenied", "Access Denied")
            } else {
                happy(s, earlier)
            }
        })
        .await;
        let (rx, handle) = fake_archive(6 << 20);
        let u = upload_stream(&stub.client(), &spec(true), rx, handle, &Cancel::new())
            .await
            .unwrap();
        assert_eq!(u.leftover_version.as_deref(), Some("v1"));
        let deletes = versioned_deletes(&stub);
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0].query_value("versionId").as_deref(), Some("v1"));
    }

    /// Finding 15: a stored object that does not verify is hidden with a plain delete (a
    /// delete marker), not by deleting its version, unless --delete-intermediate.
    #[tokio::test]
    async fn a_mismatching_object_is_hidden_without_deleting_a_version() {
        let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
            if s.op() == "HeadObject" {
                Reply::status(200).header("content-length", "1")
            } else {
                happy(s, earlier)
            }
        })
        .await;
        let (rx, handle) = fake_archive(6 << 20);
        let e = upload_stream(&stub.client(), &spec(false), rx, handle, &Cancel::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 9, "{e}");
        let deletes = stub.of("DeleteObject");
        assert_eq!(deletes.len(), 1);
        assert!(!deletes[0].has_query("versionId"));
    }

    /// Finding 19: cancelling (a signal) while parts are in flight drops them, aborts the
    /// multipart upload, checks ListParts, and ends in Interrupted (exit 130 for SIGINT).
    #[tokio::test]
    async fn a_cancelled_upload_aborts_its_multipart_upload() {
        use crate::signals::Signal;
        let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
            if s.op() == "UploadPart" {
                Reply::Hang
            } else {
                happy(s, earlier)
            }
        })
        .await;
        let (rx, handle) = fake_archive(12 << 20);
        let (s3, sp, cancel) = (stub.client(), spec(false), Cancel::new());
        let up = upload_stream(&s3, &sp, rx, handle, &cancel);
        tokio::pin!(up);
        let started = std::time::Instant::now();
        while stub.of("UploadPart").is_empty() {
            assert!(started.elapsed().as_secs() < 20, "no part was sent");
            tokio::select! {
                r = &mut up => panic!("the upload ended: {r:?}"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
            }
        }
        cancel.trigger(Signal::Interrupt);
        let e = up.await.unwrap_err();
        assert!(matches!(e, AgentError::Interrupted { .. }), "{e}");
        assert_eq!(e.exit_code(), 130);
        let aborts = stub.of("AbortMultipartUpload");
        assert_eq!(aborts.len(), 1, "{:?}", stub.seen());
        assert_eq!(aborts[0].query_value("uploadId").as_deref(), Some("u1"));
        assert_eq!(stub.of("ListParts").len(), 1);
        assert!(stub.of("CompleteMultipartUpload").is_empty());
    }

    /// Finding 19: parts that arrive after the abort (requests still in flight) make the
    /// agent abort once more.
    #[tokio::test]
    async fn abort_is_repeated_once_while_parts_remain() {
        let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
            let listed = earlier.iter().filter(|e| e.op() == "ListParts").count();
            if s.op() == "ListParts" && listed == 0 {
                Reply::xml(
                    200,
                    "<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId>\
                     <Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag><Size>5</Size></Part></ListPartsResult>",
                )
            } else {
                happy(s, earlier)
            }
        })
        .await;
        abort(&stub.client(), &spec(false), "u1").await;
        assert_eq!(stub.of("AbortMultipartUpload").len(), 2);
        assert_eq!(stub.of("ListParts").len(), 2);

        let clean = StubS3::start(happy).await;
        abort(&clean.client(), &spec(false), "u1").await;
        assert_eq!(clean.of("AbortMultipartUpload").len(), 1);
    }

    /// Finding 18: when UploadPart 2 of a larger tree fails, the upload error (with the
    /// service's message) is reported, not the archive's "uploader stopped reading".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_part_failure_is_the_reported_root_cause() {
        let dir = tempfile::tempdir().unwrap();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let noise: Vec<u8> = (0..(24usize << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.path().join("big"), noise).unwrap();
        let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
            if s.op() == "UploadPart" && s.query_value("partNumber").as_deref() == Some("2") {
                Reply::error(403, "AccessDenied", "KMS key access denied")
            } else {
                happy(s, earlier)
            }
        })
        .await;
        let opts = crate::archive::ArchiveOptions {
            chunk_size: 1 << 20,
            level: 0,
            ..Default::default()
        };
        let (rx, handle) = crate::archive::spawn(dir.path().to_path_buf(), opts, 2);
        let sp = UploadSpec {
            max_in_flight: 1,
            ..spec(false)
        };
        let e = upload_stream(&stub.client(), &sp, rx, handle, &Cancel::new())
            .await
            .unwrap_err();
        match &e {
            AgentError::Upload { step, why, .. } => {
                assert_eq!(*step, "UploadPart");
                assert!(
                    why.contains("part 2") && why.contains("AccessDenied"),
                    "{why}"
                );
                assert!(why.contains("KMS key access denied"), "{why}");
            }
            other => panic!("expected the upload error, got: {other}"),
        }
        assert_eq!(stub.of("AbortMultipartUpload").len(), 1);
    }
}

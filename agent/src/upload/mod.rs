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
//!
//! Floor 9: may import modules of floors 0 to 8 only; it imports `archive`, `aws`, `compat`,
//! `digest`, `errors`, `layout`, `signals`, `upload::abort`, `upload::parts`, `upload::seal`,
//! `upload::spec`.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use abort::{abort, Uploads};
pub use parts::{
    capacity, part_size_for, plan_part_size, TooLarge, COPY_OBJECT_LIMIT, COPY_PART_SIZE,
    MAX_OBJECT_SIZE, MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE,
};
pub use seal::seal;
pub use spec::{final_metadata, size_for, Method, UploadSpec, Uploaded};

use crate::archive::ArchiveSummary;
use crate::aws::classify;
use crate::compat;
use crate::digest::crc64nvme_base64;
use crate::errors::AgentError;
use crate::layout;
use crate::signals::Cancel;
use seal::verify_or_discard;
use spec::upload_err;

mod abort;
mod parts;
mod seal;
mod spec;
/// The timeouts of one UploadPart of `len` bytes: the client's 300 s an attempt fits parts
/// of up to about 300 MB at 1 MB/s, but a part may be 5 GiB (S3's limit), so a part's
/// attempt gets 60 s plus a second per MiB (at least the client's 300 s, at most two
/// hours), and the call three attempts of that (security review 2, finding 8).
pub fn part_timeouts(len: u64) -> aws_sdk_s3::config::Builder {
    let attempt = part_attempt_timeout(len);
    aws_sdk_s3::config::Builder::default().timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt.saturating_mul(3))
            .build(),
    )
}

/// The attempt timeout of an UploadPart of `len` bytes (see [`part_timeouts`]).
pub fn part_attempt_timeout(len: u64) -> std::time::Duration {
    let secs = (60 + len / (1024 * 1024)).clamp(300, 7200);
    std::time::Duration::from_secs(secs)
}

#[cfg(test)]
mod tests;

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
            let len = body.len();
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
                .customize()
                .config_override(part_timeouts(len as u64))
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

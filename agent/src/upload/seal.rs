//! After the bytes are stored: sealing the final metadata onto the object ([`seal`]) and
//! checking what S3 stored against the archive (`verify`), hiding a mismatch.
//!
//! Floor 8: may import modules of floors 0 to 7 only; it imports `archive`, `aws`, `compat`,
//! `errors`, `layout`, `s3`, `upload::abort`, `upload::parts`, `upload::spec`.

use std::collections::HashMap;

use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    MetadataDirective,
};

use super::abort::{abort, Uploads};
use super::parts::{COPY_PART_SIZE, MIN_PART_SIZE};
use super::spec::{upload_err, UploadSpec};
use crate::archive::ArchiveSummary;
use crate::aws::classify;
use crate::compat::{self, MultipartChecksum, S3Check};
use crate::errors::AgentError;
use crate::layout::{self, meta};

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

pub(super) async fn multipart_copy(
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
pub(super) async fn verify_or_discard(
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
pub(super) async fn verify(
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

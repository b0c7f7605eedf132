//! What to upload where ([`UploadSpec`]), what was stored ([`Uploaded`]), the final
//! metadata and the sizing of a spec for an archive ([`size_for`]).
//!
//! Floor 6: may import modules of floors 0 to 5 only; it imports `archive`, `archive::estimate`,
//! `compat`, `errors`, `layout`, `upload::parts`.

use std::collections::HashMap;

use super::parts::{plan_part_size, MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::archive::ArchiveSummary;
use crate::compat::{MultipartChecksum, S3Check};
use crate::errors::AgentError;
use crate::layout::{self, meta};

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

pub(super) fn upload_err(
    spec: &UploadSpec,
    step: &'static str,
    why: impl Into<String>,
) -> AgentError {
    AgentError::Upload {
        bucket: spec.bucket.clone(),
        key: spec.key.clone(),
        step,
        why: why.into(),
    }
}

//! S3's part and object limits and the part-size schedule ([`part_size_for`],
//! [`plan_part_size`]).
//!
//! Floor 5: may import modules of floors 0 to 4 only; it imports `archive::estimate`.

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

//! Default checksums: what S3 stores for an object uploaded without a checksum.
//!
//! "When you upload an object without a checksum, Amazon S3 automatically calculates a
//! CRC-64/NVME checksum for the object" and multipart uploads without one get a full-object
//! CRC64NVME (S3 User Guide, "Checking object integrity in Amazon S3", since December 2024).
//! An engine that stores none (MiniStack 1.5.33) leaves such objects without content
//! evidence. The fidelity layer computes the CRC64NVME of every `PutObject` body that
//! carries no checksum as it streams through, and of every `CompleteMultipartUpload`
//! whose upload declared none (read back once), keyed by bucket and the engine's version
//! id; the replicator records the CRC64NVME of the bytes it writes for such a version's
//! replicas ("replicas have the same ... metadata", and the checksum is the data's). On
//! `HeadObject` / `GetObject` with checksum mode the layer then answers with that
//! checksum (`x-amz-checksum-crc64nvme`, `x-amz-checksum-type: FULL_OBJECT`) instead of
//! whatever the engine keeps, as S3 would.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine as _;

use crate::history::{self, History, Table};

/// A CRC64NVME digest fed in chunks.
pub struct Crc64 {
    digest: crc_fast::Digest,
    bytes: u64,
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64 {
            digest: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
            bytes: 0,
        }
    }
}

impl Crc64 {
    pub fn update(&mut self, chunk: &[u8]) {
        self.digest.update(chunk);
        self.bytes += chunk.len() as u64;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The checksum as S3 writes it: base64 of the big-endian 8 bytes.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.digest.finalize().to_be_bytes())
    }

    /// The checksum of `data` in one go.
    pub fn of(data: &[u8]) -> String {
        let mut c = Crc64::default();
        c.update(data);
        c.base64()
    }
}

/// Default checksums the layer knows, and the multipart uploads that will get one.
#[derive(Default)]
pub struct DefaultChecksums {
    /// (bucket, engine version id) -> base64 CRC64NVME, in the run's [`History`] (a file
    /// for `harness up`: one entry per version ever uploaded without a checksum).
    stored: Mutex<History>,
    /// Upload ids of multipart uploads created without a checksum algorithm (until they
    /// complete).
    uploads: Mutex<HashSet<String>>,
}

impl DefaultChecksums {
    /// Keeps the checksums in `history` instead of memory.
    pub fn with_history(history: History) -> DefaultChecksums {
        DefaultChecksums {
            stored: Mutex::new(history),
            uploads: Mutex::default(),
        }
    }

    pub fn record(&self, bucket: &str, version: &str, crc64: String) {
        self.stored.lock().expect("not poisoned").put(
            Table::Checksums,
            history::key(bucket, version),
            crc64.as_bytes(),
        );
    }

    pub fn get(&self, bucket: &str, version: &str) -> Option<String> {
        let bytes = self
            .stored
            .lock()
            .expect("not poisoned")
            .get(Table::Checksums, history::key(bucket, version))?;
        String::from_utf8(bytes).ok()
    }

    pub fn upload_without_checksum(&self, upload_id: &str) {
        self.uploads
            .lock()
            .expect("not poisoned")
            .insert(upload_id.to_string());
    }

    /// Whether `upload_id` was created without a checksum (forgotten once asked).
    pub fn take_upload(&self, upload_id: &str) -> bool {
        self.uploads.lock().expect("not poisoned").remove(upload_id)
    }
}

/// Whether a request's headers declare a checksum of their own (a value, an algorithm, or
/// a trailer), or encode the body in a way the layer does not read (`aws-chunked`).
pub fn declares_checksum(headers: &hyper::HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k.starts_with("x-amz-checksum-")
            || k == "x-amz-sdk-checksum-algorithm"
            || k == "x-amz-trailer"
    }) || headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("aws-chunked"))
        || headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("STREAMING-"))
}

/// The `UploadId` of a `CreateMultipartUpload` answer.
pub fn upload_id_of(xml: &str) -> Option<&str> {
    let start = xml.find("<UploadId>")? + "<UploadId>".len();
    let end = xml[start..].find("</UploadId>")? + start;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64nvme_matches_the_reference_check_value() {
        // The CRC-64/NVME check value of "123456789" is 0xAE8B14860A799888.
        let want = base64::engine::general_purpose::STANDARD
            .encode(0xAE8B_1486_0A79_9888u64.to_be_bytes());
        assert_eq!(Crc64::of(b"123456789"), want);
        let mut c = Crc64::default();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.base64(), want);
        assert_eq!(c.bytes(), 9);
    }

    /// The value LocalStack 4.14 stores for these bytes uploaded without a checksum (and a
    /// bit-by-bit reference implementation agrees): the layer must write what S3 writes.
    #[test]
    fn agrees_with_an_engine_that_stores_the_default() {
        let data: Vec<u8> = (0..40).flat_map(|_| 0..=255u8).collect();
        assert_eq!(Crc64::of(&data), "4XY+hejrRZk=");
    }

    #[test]
    fn knows_which_requests_bring_their_own_checksum() {
        let mut h = hyper::HeaderMap::new();
        assert!(!declares_checksum(&h));
        h.insert("x-amz-checksum-crc32", "AAAAAA==".parse().unwrap());
        assert!(declares_checksum(&h));
        let mut h = hyper::HeaderMap::new();
        h.insert("content-encoding", "aws-chunked".parse().unwrap());
        assert!(declares_checksum(&h));
    }

    #[test]
    fn reads_the_upload_id() {
        let xml = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u-1</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(upload_id_of(xml), Some("u-1"));
        assert_eq!(upload_id_of("<x/>"), None);
    }
}

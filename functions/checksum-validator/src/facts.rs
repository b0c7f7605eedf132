//! What the validator knows about one stored object version: the evidence it compares.
//!
//! These types carry no AWS SDK types so the decision core stays pure; `s3.rs` fills them
//! from `HeadObject` responses.
//!
//! Floor 0: imports nothing of the crate.

use serde::{Deserialize, Serialize};

/// Checksum algorithms S3 stores, in the order the validator prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Crc64nvme,
    Sha256,
    Sha1,
    Crc32c,
    Crc32,
    /// `x-amz-checksum-md5`: "only present if the object was uploaded with the MD5
    /// checksum algorithm" (S3 API Reference, `ChecksumMD5`). A full-object MD5 of the
    /// bytes whatever the encryption, unlike an SSE-KMS ETag.
    Md5,
}

impl ChecksumAlgorithm {
    /// Preference order: strongest and S3's default first.
    pub const ALL: [ChecksumAlgorithm; 6] = [
        ChecksumAlgorithm::Crc64nvme,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Md5,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc64nvme => "crc64nvme",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Crc32c => "crc32c",
            ChecksumAlgorithm::Crc32 => "crc32",
            ChecksumAlgorithm::Md5 => "md5",
        }
    }
}

/// Whether a checksum covers the whole object or is a checksum of part checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumScope {
    FullObject,
    /// `checksum-of-checksums-N`: depends on the part layout.
    Composite {
        parts: u32,
    },
}

/// One stored checksum value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// The base64 value without any `-N` part suffix.
    pub value: String,
    pub scope: ChecksumScope,
}

impl Checksum {
    /// Builds a checksum from S3's header value and its `x-amz-checksum-type`.
    ///
    /// S3 writes composite checksums as `base64-N`; a value with that suffix is composite even
    /// when the type header is missing (the `-N` suffix is how S3 writes a checksum of part
    /// checksums: S3 User Guide, "Checking object integrity", composite checksums).
    pub fn from_header(
        algorithm: ChecksumAlgorithm,
        raw: &str,
        type_header: Option<&str>,
    ) -> Checksum {
        let (value, suffix_parts) = match raw.rsplit_once('-') {
            Some((v, n))
                if !v.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() =>
            {
                (v.to_string(), n.parse::<u32>().ok())
            }
            _ => (raw.to_string(), None),
        };
        let scope = match (type_header.map(|t| t.to_ascii_uppercase()), suffix_parts) {
            (_, Some(parts)) => ChecksumScope::Composite { parts },
            (Some(t), None) if t == "COMPOSITE" => ChecksumScope::Composite { parts: 0 },
            _ => ChecksumScope::FullObject,
        };
        Checksum {
            algorithm,
            value,
            scope,
        }
    }
}

/// How an object is encrypted at rest: decides whether its ETag is a content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    None,
    SseS3,
    SseKms,
    SseC,
}

/// `x-amz-replication-status` as S3 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReplicationStatus {
    Pending,
    Completed,
    Failed,
    Replica,
}

impl ReplicationStatus {
    pub fn parse(raw: &str) -> Option<ReplicationStatus> {
        match raw.to_ascii_uppercase().as_str() {
            "PENDING" => Some(ReplicationStatus::Pending),
            // The API's enum lists both spellings (S3 API Reference, HeadObject,
            // `x-amz-replication-status`: COMPLETE | PENDING | FAILED | REPLICA | COMPLETED).
            "COMPLETED" | "COMPLETE" => Some(ReplicationStatus::Completed),
            "FAILED" => Some(ReplicationStatus::Failed),
            "REPLICA" => Some(ReplicationStatus::Replica),
            _ => None,
        }
    }
}

/// Everything `HeadObject` told us about one object version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectFacts {
    pub size: i64,
    /// ETag without surrounding quotes.
    pub etag: Option<String>,
    pub checksums: Vec<Checksum>,
    pub encryption: Encryption,
    /// Number of parts for multipart objects (from `PartsCount` or the ETag suffix).
    pub parts: Option<u32>,
    pub replication_status: Option<ReplicationStatus>,
    pub version_id: Option<String>,
    /// `x-amz-storage-class` (absent for STANDARD).
    pub storage_class: Option<String>,
}

impl ObjectFacts {
    /// A plain single-part object: handy for tests.
    pub fn simple(size: i64, etag: &str) -> ObjectFacts {
        ObjectFacts {
            size,
            etag: Some(etag.to_string()),
            checksums: Vec::new(),
            encryption: Encryption::SseS3,
            parts: None,
            replication_status: None,
            version_id: None,
            storage_class: None,
        }
    }

    pub fn checksum(&self, algorithm: ChecksumAlgorithm) -> Option<&Checksum> {
        self.checksums.iter().find(|c| c.algorithm == algorithm)
    }

    /// Parts implied by the ETag's `-N` suffix, if any.
    pub fn etag_parts(&self) -> Option<u32> {
        let etag = self.etag.as_deref()?;
        let (_, n) = etag.rsplit_once('-')?;
        n.parse().ok()
    }

    /// Whether a multipart ETag is the MD5 of the part MD5s (plaintext or SSE-S3 only).
    pub fn etag_is_part_md5s(&self) -> bool {
        self.etag_parts().is_some()
            && matches!(self.encryption, Encryption::None | Encryption::SseS3)
    }

    /// Whether the ETag is the MD5 of the bytes (AWS: single-part, plaintext or SSE-S3).
    pub fn etag_is_content_md5(&self) -> bool {
        self.etag.is_some()
            && self.etag_parts().is_none()
            && matches!(self.encryption, Encryption::None | Encryption::SseS3)
    }
}

/// Strips the quotes S3 puts around ETags.
pub fn normalise_etag(raw: &str) -> String {
    raw.trim().trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_suffix_is_detected_without_type_header() {
        let c = Checksum::from_header(ChecksumAlgorithm::Crc64nvme, "abc=-3", None);
        assert_eq!(c.scope, ChecksumScope::Composite { parts: 3 });
        assert_eq!(c.value, "abc=");
    }

    #[test]
    fn full_object_is_the_default() {
        let c = Checksum::from_header(ChecksumAlgorithm::Crc32, "AAAAAA==", Some("FULL_OBJECT"));
        assert_eq!(c.scope, ChecksumScope::FullObject);
    }

    #[test]
    fn multipart_etag_is_not_a_content_hash() {
        let mut f = ObjectFacts::simple(10, "abc-2");
        assert!(!f.etag_is_content_md5());
        f.etag = Some("abc".into());
        assert!(f.etag_is_content_md5());
        f.encryption = Encryption::SseKms;
        assert!(!f.etag_is_content_md5());
    }

    #[rstest::rstest]
    #[case("AAAA", None, "AAAA", ChecksumScope::FullObject)]
    #[case("AAAA-3", None, "AAAA", ChecksumScope::Composite { parts: 3 })]
    #[case("AAAA-", None, "AAAA-", ChecksumScope::FullObject)]
    #[case("-3", None, "-3", ChecksumScope::FullObject)]
    #[case("AA-x3", None, "AA-x3", ChecksumScope::FullObject)]
    #[case("AAAA", Some("composite"), "AAAA", ChecksumScope::Composite { parts: 0 })]
    #[case("AAAA", Some("FULL_OBJECT"), "AAAA", ChecksumScope::FullObject)]
    fn checksum_headers_are_read_with_their_scope(
        #[case] raw: &str,
        #[case] type_header: Option<&str>,
        #[case] value: &str,
        #[case] scope: ChecksumScope,
    ) {
        let c = Checksum::from_header(ChecksumAlgorithm::Crc32, raw, type_header);
        assert_eq!((c.value.as_str(), c.scope), (value, scope));
    }

    /// Every value of `x-amz-replication-status` (S3 API Reference, `HeadObject`), in any
    /// case; anything else is no status.
    #[rstest::rstest]
    #[case("PENDING", Some(ReplicationStatus::Pending))]
    #[case("completed", Some(ReplicationStatus::Completed))]
    #[case("COMPLETE", Some(ReplicationStatus::Completed))]
    #[case("FAILED", Some(ReplicationStatus::Failed))]
    #[case("Replica", Some(ReplicationStatus::Replica))]
    #[case("DONE", None)]
    fn replication_statuses_parse(#[case] raw: &str, #[case] status: Option<ReplicationStatus>) {
        assert_eq!(ReplicationStatus::parse(raw), status);
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(normalise_etag("\"d41d8cd9\""), "d41d8cd9");
        assert_eq!(normalise_etag(" \"abc-2\" "), "abc-2");
        assert_eq!(normalise_etag("plain"), "plain");
    }
}

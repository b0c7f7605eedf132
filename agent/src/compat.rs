//! Where local engines differ from AWS, and the one place the agent deals with it.
//!
//! The agent codes to AWS's documented behaviour and detects differences from what an
//! endpoint *answers*, never from its name:
//!
//! | behaviour | AWS | LocalStack 4.14 | MiniStack 1.5 | handled by |
//! |---|---|---|---|---|
//! | `CreateMultipartUpload` with CRC64NVME + `ChecksumType=FULL_OBJECT` answers | `FULL_OBJECT` | `FULL_OBJECT` | `COMPOSITE` | [`multipart_checksum`] |
//! | full-object CRC64NVME sent with `CompleteMultipartUpload` | verified | verified | rejected as `BadDigest` even when right | [`MultipartChecksum::send_full_object`] |
//! | checksum stored for a multipart CRC64NVME object | full object | full object | composite `…-N` | [`stored_crc64`] |
//! | `CopyObject` of a composite object | new full-object value | new full-object value | keeps the composite value, labels it `FULL_OBJECT` | [`stored_crc64`] (a `-N` suffix is composite whatever the label) |
//! | `PutObject` response checksum headers | present | present | absent | the agent verifies with `HeadObject` instead |
//! | `StorageClass` in `ListObjectVersions` | the version's class | `STANDARD` for every version | the version's class | [`version_classes_contradicted`]: when `ListObjectsV2` contradicts it, `s3::list_versions_with_classes` reads classes with `HeadObject` |
//!
//! Whatever an engine stores, the agent records its own SHA-256 of the archive (object
//! metadata and history) and checks it on restore, so a restore is verified everywhere.
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `cost::inventory`.

use aws_sdk_s3::types::ChecksumType;
use serde::Serialize;

/// How a multipart upload's whole-object checksum can be handed to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MultipartChecksum {
    /// As AWS documents: send the full-object CRC64NVME with `CompleteMultipartUpload`, S3
    /// verifies it against the assembled object.
    FullObject,
    /// The endpoint only does composite checksums (it answered `COMPOSITE` to a
    /// `FULL_OBJECT` request): each part is still verified with its own CRC64NVME, the
    /// whole-object value is not sent (it would be rejected).
    CompositeOnly,
}

impl MultipartChecksum {
    pub fn send_full_object(self) -> bool {
        self == MultipartChecksum::FullObject
    }
}

/// Decides from the `ChecksumType` in the `CreateMultipartUpload` response. A missing value
/// is treated as AWS behaviour.
pub fn multipart_checksum(answered: Option<&ChecksumType>) -> MultipartChecksum {
    match answered {
        Some(ChecksumType::Composite) => MultipartChecksum::CompositeOnly,
        _ => MultipartChecksum::FullObject,
    }
}

/// A CRC64NVME checksum as stored by the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Stored {
    FullObject(String),
    Composite(String),
    Absent,
}

/// Classifies what `HeadObject`/`GetObject` with `ChecksumMode=ENABLED` returned.
pub fn stored_crc64(checksum_type: Option<&ChecksumType>, value: Option<&str>) -> Stored {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Stored::Absent;
    };
    if is_composite_value(v) || checksum_type == Some(&ChecksumType::Composite) {
        Stored::Composite(v.to_string())
    } else {
        Stored::FullObject(v.to_string())
    }
}

/// `base64-N`: a checksum of part checksums over N parts.
pub fn is_composite_value(v: &str) -> bool {
    match v.rsplit_once('-') {
        Some((head, n)) => {
            !head.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// What the endpoint's stored checksum says about the bytes the agent sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum S3Check {
    /// The endpoint holds a full-object CRC64NVME equal to the agent's.
    Matches { crc64nvme: String },
    /// The endpoint holds a different full-object value: the stored bytes are not ours.
    Differs { stored: String, ours: String },
    /// Only a composite value (per-part checksums were verified on upload).
    CompositeOnly { stored: String },
    /// The endpoint stores no checksum.
    NotStored,
}

impl S3Check {
    pub fn judge(stored: &Stored, ours: &str) -> S3Check {
        match stored {
            Stored::FullObject(v) if v == ours => S3Check::Matches {
                crc64nvme: v.clone(),
            },
            Stored::FullObject(v) => S3Check::Differs {
                stored: v.clone(),
                ours: ours.to_string(),
            },
            Stored::Composite(v) => S3Check::CompositeOnly { stored: v.clone() },
            Stored::Absent => S3Check::NotStored,
        }
    }

    /// One line for logs and history.
    pub fn describe(&self) -> String {
        match self {
            S3Check::Matches { crc64nvme } => {
                format!("full-object CRC64NVME {crc64nvme} stored and equal to ours")
            }
            S3Check::Differs { stored, ours } => {
                format!("full-object CRC64NVME differs: stored {stored}, ours {ours}")
            }
            S3Check::CompositeOnly { stored } => format!(
                "endpoint stores only a composite CRC64NVME ({stored}); parts were verified on upload, \
                 own SHA-256 recorded for restore"
            ),
            S3Check::NotStored => {
                "endpoint stores no checksum; own SHA-256 recorded for restore".to_string()
            }
        }
    }
}

/// Whether `ListObjectVersions` reported a storage class for a current version that
/// `ListObjectsV2` contradicts (`current`: key -> class). AWS never does; LocalStack 4.14
/// lists every version as STANDARD. When it does, no class from that listing can be trusted.
pub fn version_classes_contradicted(
    listing: &[crate::cost::inventory::Listed],
    current: &std::collections::HashMap<String, String>,
) -> bool {
    listing
        .iter()
        .filter(|v| v.is_latest && !v.delete_marker)
        .any(|v| current.get(&v.key).is_some_and(|c| *c != v.storage_class))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn listed(key: &str, class: &str, latest: bool) -> crate::cost::inventory::Listed {
        crate::cost::inventory::Listed {
            key: key.into(),
            version_id: Some(format!("v-{key}-{latest}")),
            size: 1,
            storage_class: class.into(),
            last_modified: chrono::Utc::now(),
            is_latest: latest,
            delete_marker: false,
        }
    }

    #[test]
    fn contradicted_version_classes() {
        let current: std::collections::HashMap<String, String> = [
            ("a".to_string(), "GLACIER".to_string()),
            ("b".to_string(), "STANDARD".to_string()),
        ]
        .into();
        // LocalStack: every version listed as STANDARD.
        let lying = [listed("a", "STANDARD", true), listed("b", "STANDARD", true)];
        assert!(version_classes_contradicted(&lying, &current));
        // AWS: the listing agrees; noncurrent versions are not compared.
        let honest = [
            listed("a", "GLACIER", true),
            listed("a", "STANDARD", false),
            listed("b", "STANDARD", true),
        ];
        assert!(!version_classes_contradicted(&honest, &current));
        // A key gone from the current listing (deleted meanwhile) proves nothing.
        assert!(!version_classes_contradicted(
            &[listed("c", "STANDARD", true)],
            &current
        ));
    }

    #[rstest]
    #[case(Some(ChecksumType::FullObject), MultipartChecksum::FullObject)]
    #[case(Some(ChecksumType::Composite), MultipartChecksum::CompositeOnly)]
    #[case(None, MultipartChecksum::FullObject)]
    fn multipart_mode_from_the_create_answer(
        #[case] t: Option<ChecksumType>,
        #[case] m: MultipartChecksum,
    ) {
        assert_eq!(multipart_checksum(t.as_ref()), m);
        assert_eq!(m.send_full_object(), m == MultipartChecksum::FullObject);
    }

    #[rstest]
    // LocalStack / AWS after a full-object multipart upload or a copy.
    #[case(Some(ChecksumType::FullObject), Some("lxEfyBfrA5I="), Stored::FullObject("lxEfyBfrA5I=".into()))]
    // MiniStack after a multipart upload.
    #[case(Some(ChecksumType::Composite), Some("OM6UrDfo3hI=-2"), Stored::Composite("OM6UrDfo3hI=-2".into()))]
    // MiniStack after a copy: composite value labelled FULL_OBJECT.
    #[case(Some(ChecksumType::FullObject), Some("OM6UrDfo3hI=-2"), Stored::Composite("OM6UrDfo3hI=-2".into()))]
    #[case(None, Some("lxEfyBfrA5I="), Stored::FullObject("lxEfyBfrA5I=".into()))]
    #[case(None, None, Stored::Absent)]
    #[case(Some(ChecksumType::FullObject), Some(""), Stored::Absent)]
    fn stored_checksums(
        #[case] t: Option<ChecksumType>,
        #[case] v: Option<&str>,
        #[case] expected: Stored,
    ) {
        assert_eq!(stored_crc64(t.as_ref(), v), expected);
    }

    #[rstest]
    #[case("abc=-2", true)]
    #[case("abc=-10000", true)]
    #[case("abc=", false)]
    #[case("abc=-", false)]
    #[case("-2", false)]
    #[case("abc=-2x", false)]
    fn composite_values(#[case] v: &str, #[case] composite: bool) {
        assert_eq!(is_composite_value(v), composite);
    }

    #[test]
    fn judging_stored_against_ours() {
        let ours = "lxEfyBfrA5I=";
        assert!(matches!(
            S3Check::judge(&Stored::FullObject(ours.into()), ours),
            S3Check::Matches { .. }
        ));
        assert!(matches!(
            S3Check::judge(&Stored::FullObject("x".into()), ours),
            S3Check::Differs { .. }
        ));
        assert!(matches!(
            S3Check::judge(&Stored::Composite("x-2".into()), ours),
            S3Check::CompositeOnly { .. }
        ));
        assert_eq!(S3Check::judge(&Stored::Absent, ours), S3Check::NotStored);
        assert!(S3Check::NotStored.describe().contains("SHA-256"));
    }
}

//! The object layout in the bucket: categories, key names, timestamps and the user metadata
//! a backup carries. Pure.
//!
//! Keys are `backups/<category>/<UTC timestamp>.tar.gz`, the timestamp in ISO 8601 basic
//! format with milliseconds (`20261122T025312.123Z`), so keys sort by time as strings and
//! never contain characters that need escaping.
//!
//! Floor 0: may import nothing of the crate (a leaf).

use chrono::{DateTime, NaiveDateTime, Utc};

/// What kind of data a backup holds; one prefix (and, in the topology, one bucket) each.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Documents,
    Media,
    Database,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::Documents, Category::Media, Category::Database];

    pub fn name(self) -> &'static str {
        match self {
            Category::Documents => "documents",
            Category::Media => "media",
            Category::Database => "database",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Top-level prefix of every backup key.
pub const ROOT: &str = "backups/";
/// Archive extension (gzip-compressed tar).
pub const EXTENSION: &str = "tar.gz";
/// Content type stored with every archive.
pub const CONTENT_TYPE: &str = "application/gzip";
const TS_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// User metadata names (sent as `x-amz-meta-<name>`).
pub mod meta {
    /// Hex SHA-256 of the archive bytes, computed by the agent while streaming.
    pub const SHA256: &str = "sha256";
    /// Base64 CRC64NVME of the archive bytes (what S3 calls the full-object checksum).
    pub const CRC64NVME: &str = "crc64nvme";
    /// Regular files in the archive.
    pub const FILES: &str = "files";
    /// Sum of the regular files' sizes before compression.
    pub const UNCOMPRESSED_BYTES: &str = "uncompressed-bytes";
    /// `autobackup <version>`.
    pub const TOOL: &str = "tool";
    pub const CATEGORY: &str = "category";
    /// Name of the directory backed up (not its full path).
    pub const SOURCE_NAME: &str = "source-name";
}

/// The tool version recorded in metadata and history.
pub fn tool_version() -> String {
    format!("autobackup {}", env!("CARGO_PKG_VERSION"))
}

/// `backups/<category>/`.
pub fn prefix(category: Category) -> String {
    format!("{ROOT}{category}/")
}

/// The key of a backup taken at `at`.
pub fn key_for(category: Category, at: DateTime<Utc>) -> String {
    format!("{}{}.{EXTENSION}", prefix(category), at.format(TS_FORMAT))
}

/// A key that follows the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupKey {
    pub key: String,
    pub category: Category,
    pub taken_at: DateTime<Utc>,
}

/// Parses a key made by [`key_for`]; anything else (other prefixes, foreign files, keys
/// with a suffix) is `None` and is never touched by rotation.
pub fn parse_key(key: &str) -> Option<BackupKey> {
    let rest = key.strip_prefix(ROOT)?;
    let (cat, file) = rest.split_once('/')?;
    let category = Category::parse(cat)?;
    let stamp = file.strip_suffix(&format!(".{EXTENSION}"))?;
    // Reject anything chrono would accept loosely: the stamp must round-trip exactly.
    let naive = NaiveDateTime::parse_from_str(stamp, TS_FORMAT).ok()?;
    let taken_at = naive.and_utc();
    if taken_at.format(TS_FORMAT).to_string() != stamp {
        return None;
    }
    Some(BackupKey {
        key: key.to_string(),
        category,
        taken_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rstest::rstest;

    #[test]
    fn key_round_trips_with_milliseconds() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 2, 53, 12).unwrap()
            + chrono::Duration::milliseconds(7);
        let key = key_for(Category::Media, at);
        assert_eq!(key, "backups/media/20261122T025312.007Z.tar.gz");
        let parsed = parse_key(&key).unwrap();
        assert_eq!(parsed.category, Category::Media);
        assert_eq!(parsed.taken_at, at);
    }

    #[rstest]
    #[case("backups/media/20261122T025312.007Z.tar.gz", true)]
    #[case("backups/media/20261122T025312Z.tar.gz", false)]
    #[case("backups/media/20261122T025312.007Z.tar.gz.bak", false)]
    #[case("backups/other/20261122T025312.007Z.tar.gz", false)]
    #[case("backups/media/sub/20261122T025312.007Z.tar.gz", false)]
    #[case("media/20261122T025312.007Z.tar.gz", false)]
    #[case("backups/media/20261322T025312.007Z.tar.gz", false)]
    #[case("backups/media/notes.txt", false)]
    fn only_layout_keys_parse(#[case] key: &str, #[case] ok: bool) {
        assert_eq!(parse_key(key).is_some(), ok, "{key}");
    }

    #[test]
    fn keys_sort_by_time() {
        let a = Utc.with_ymd_and_hms(2026, 1, 9, 23, 59, 59).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
        assert!(key_for(Category::Database, a) < key_for(Category::Database, b));
    }
}

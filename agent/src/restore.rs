//! Restore: find the backup (`latest`, a key or a version id), stream it from S3 into a
//! blocking unpacker while hashing it, and move the tree into place only if the archive's
//! checksum matches. A backup that cannot be restored is no backup.
//!
//! The tree is unpacked into a hidden staging directory next to the target; on a checksum
//! mismatch or any error it is removed and the target is untouched. An existing non-empty
//! target is refused unless `force`, in which case it is replaced only after a verified
//! unpack. The expected checksum comes, in this order, from the object's `sha256` metadata,
//! the history record of the key, or S3's full-object CRC64NVME; with none of them the
//! restore fails unless unverified restores are allowed. Entries that would land outside
//! the target (absolute paths, `..`) are refused by the tar reader.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::aws::classify;
use crate::compat::{self, Stored};
use crate::digest::{Checksums, Digests};
use crate::errors::AgentError;
use crate::layout::{self, meta, Category};

/// Which backup to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    Latest,
    Key(String),
    Version(String),
}

impl FromStr for At {
    type Err = String;
    fn from_str(s: &str) -> Result<At, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty value; use latest, a key (backups/...) or a version id".into());
        }
        Ok(if s == "latest" {
            At::Latest
        } else if s.starts_with(layout::ROOT) {
            At::Key(s.to_string())
        } else {
            At::Version(s.to_string())
        })
    }
}

/// A backup found in the bucket.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub metadata: HashMap<String, String>,
    pub stored: Stored,
}

/// The checksum a restore is verified against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expected {
    Sha256 { hex: String, source: String },
    Crc64nvme { base64: String, source: String },
    Nothing,
}

impl Expected {
    /// Picks the best available reference.
    pub fn choose(target: &Target, history_sha256: Option<&str>) -> Expected {
        if let Some(h) = target.metadata.get(meta::SHA256).filter(|h| !h.is_empty()) {
            return Expected::Sha256 {
                hex: h.to_ascii_lowercase(),
                source: "object metadata".into(),
            };
        }
        if let Some(h) = history_sha256.filter(|h| !h.is_empty()) {
            return Expected::Sha256 {
                hex: h.to_ascii_lowercase(),
                source: "history".into(),
            };
        }
        if let Stored::FullObject(v) = &target.stored {
            return Expected::Crc64nvme {
                base64: v.clone(),
                source: "S3 full-object checksum".into(),
            };
        }
        Expected::Nothing
    }

    /// Compares with what was downloaded; `Ok(description)` or a checksum error.
    pub fn verify(&self, got: &Checksums, what: &str) -> Result<String, AgentError> {
        match self {
            Expected::Sha256 { hex, source } if *hex == got.sha256 => {
                Ok(format!("SHA-256 matches ({source})"))
            }
            Expected::Sha256 { hex, source } => Err(AgentError::Checksum {
                what: format!("{what} (SHA-256 from {source})"),
                expected: hex.clone(),
                actual: got.sha256.clone(),
            }),
            Expected::Crc64nvme { base64, source } if *base64 == got.crc64nvme => {
                Ok(format!("CRC64NVME matches ({source})"))
            }
            Expected::Crc64nvme { base64, source } => Err(AgentError::Checksum {
                what: format!("{what} (CRC64NVME from {source})"),
                expected: base64.clone(),
                actual: got.crc64nvme.clone(),
            }),
            Expected::Nothing => Ok("NOT VERIFIED (no reference checksum)".into()),
        }
    }
}

/// Finds the backup to restore.
pub async fn resolve(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    category: Category,
    at: &At,
) -> Result<Target, AgentError> {
    let prefix = layout::prefix(category);
    let (key, version) = match at {
        At::Latest => {
            let keys = crate::s3::list_keys(s3, bucket, &prefix).await?;
            let plan = crate::rotation::plan(&keys, category, 1, None);
            let key = plan
                .keep
                .into_iter()
                .next()
                .ok_or_else(|| AgentError::NotFound {
                    what: format!("no backup under s3://{bucket}/{prefix}"),
                })?;
            (key, None)
        }
        At::Key(k) => (k.clone(), None),
        At::Version(v) => {
            let listing = crate::s3::list_versions(s3, bucket, &prefix).await?;
            let found = listing
                .iter()
                .find(|l| l.version_id.as_deref() == Some(v.as_str()))
                .ok_or_else(|| AgentError::NotFound {
                    what: format!("no version {v} under s3://{bucket}/{prefix}"),
                })?;
            if found.delete_marker {
                return Err(AgentError::NotFound {
                    what: format!("version {v} of {} is a delete marker", found.key),
                });
            }
            (found.key.clone(), Some(v.clone()))
        }
    };
    let h = s3
        .head_object()
        .bucket(bucket)
        .key(&key)
        .set_version_id(version.clone())
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| {
            let f = classify(&e);
            if f.is_not_found() {
                AgentError::NotFound {
                    what: format!("s3://{bucket}/{key} does not exist (or its current version is a delete marker)"),
                }
            } else {
                AgentError::Aws {
                    service: "S3",
                    op: "HeadObject",
                    target: format!("s3://{bucket}/{key}"),
                    why: f.text(),
                }
            }
        })?;
    Ok(Target {
        bucket: bucket.to_string(),
        key,
        version_id: version.or_else(|| h.version_id().map(str::to_string)),
        size: h.content_length().unwrap_or(0).max(0) as u64,
        metadata: h.metadata().cloned().unwrap_or_default(),
        stored: compat::stored_crc64(h.checksum_type(), h.checksum_crc64_nvme()),
    })
}

/// What is at the target path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Absent,
    EmptyDir,
    /// Exists and will be replaced (`force`).
    Replace,
}

/// Refuses to overwrite unless `force`.
pub fn check_target(to: &Path, force: bool) -> Result<TargetState, AgentError> {
    match fs::symlink_metadata(to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TargetState::Absent),
        Err(e) => Err(AgentError::local("restore target", to, e)),
        Ok(m) if m.is_dir() => {
            let empty = fs::read_dir(to)
                .map_err(|e| AgentError::local("restore target", to, e))?
                .next()
                .is_none();
            if empty {
                Ok(TargetState::EmptyDir)
            } else if force {
                Ok(TargetState::Replace)
            } else {
                Err(AgentError::TargetExists {
                    path: to.to_path_buf(),
                })
            }
        }
        Ok(_) if force => Ok(TargetState::Replace),
        Ok(_) => Err(AgentError::TargetExists {
            path: to.to_path_buf(),
        }),
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Unpacked {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// Reads chunks from a channel (blocking), hashing them.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
    digests: Digests,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    self.digests.update(&b);
                    self.current = b;
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Unpacks a gzip'd tar read from `rx` into `dir` (which must exist), then drains the rest
/// of the stream so the checksums cover every byte. Blocking.
pub fn unpack_stream(
    rx: mpsc::Receiver<Result<Bytes, String>>,
    dir: &Path,
) -> io::Result<(Unpacked, Checksums)> {
    let mut reader = ChannelReader {
        rx,
        current: Bytes::new(),
        digests: Digests::new(),
    };
    let mut stats = Unpacked::default();
    {
        let gz = flate2::read::GzDecoder::new(&mut reader);
        let mut archive = tar::Archive::new(gz);
        archive.set_preserve_mtime(true);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(false);
        archive.set_unpack_xattrs(false);
        // Directories last (deepest first), so read-only ones do not block their contents
        // and their mtimes survive, as tar::Archive::unpack does.
        let mut dirs = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                stats.dirs += 1;
                dirs.push(entry);
                continue;
            }
            if kind.is_file() {
                stats.files += 1;
                stats.bytes += entry.size();
            } else if kind.is_symlink() {
                stats.symlinks += 1;
            }
            let path = entry.path()?.into_owned();
            if !entry.unpack_in(dir)? {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "entry {} would land outside the target; refused",
                        path.display()
                    ),
                ));
            }
        }
        dirs.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
        for mut d in dirs {
            d.unpack_in(dir)?;
        }
        // The gzip trailer (and anything after the tar end marker) still has to be read and
        // hashed: read the decoder to its end, which also checks the gzip CRC.
        let mut gz = archive.into_inner();
        io::copy(&mut gz, &mut io::sink())?;
    }
    io::copy(&mut reader, &mut io::sink())?;
    Ok((stats, reader.digests.finish()))
}

/// Result of a restore.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub key: String,
    pub version_id: Option<String>,
    pub to: PathBuf,
    pub archive_bytes: u64,
    pub unpacked: Unpacked,
    pub verified: String,
    pub sha256: String,
}

fn staging_path(to: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "restore".into());
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    parent.join(format!(
        ".{name}.autobackup-partial-{}-{nanos}",
        std::process::id()
    ))
}

/// Downloads, verifies and unpacks `target` into `to`.
pub async fn restore(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    expected: &Expected,
    to: &Path,
    state: TargetState,
) -> Result<Restored, AgentError> {
    let what = format!("s3://{}/{}", target.bucket, target.key);
    let staging = staging_path(to);
    fs::create_dir_all(&staging)
        .map_err(|e| AgentError::local("staging directory", &staging, e))?;
    let result = download_and_unpack(s3, target, &staging).await;
    let (unpacked, sums) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let verified = match expected.verify(&sums, &what) {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if let Err(e) = put_in_place(&staging, to, state) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(Restored {
        key: target.key.clone(),
        version_id: target.version_id.clone(),
        to: to.to_path_buf(),
        archive_bytes: sums.bytes,
        unpacked,
        verified,
        sha256: sums.sha256,
    })
}

async fn download_and_unpack(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    staging: &Path,
) -> Result<(Unpacked, Checksums), AgentError> {
    let what = format!("s3://{}/{}", target.bucket, target.key);
    let resp = s3
        .get_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .set_version_id(target.version_id.clone())
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| AgentError::Aws {
            service: "S3",
            op: "GetObject",
            target: what.clone(),
            why: classify(&e).text(),
        })?;
    let mut body = resp.body;
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let dir = staging.to_path_buf();
    let unpacker = tokio::task::spawn_blocking(move || unpack_stream(rx, &dir));
    let mut download_error: Option<String> = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => {
                if tx.send(Ok(b)).await.is_err() {
                    // The unpacker stopped (it failed); its error tells why.
                    break;
                }
            }
            Err(e) => {
                let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                let _ = tx.send(Err(text.clone())).await;
                download_error = Some(text);
                break;
            }
        }
    }
    drop(tx);
    let unpacked = unpacker
        .await
        .map_err(|e| AgentError::Internal(format!("unpack thread: {e}")))?;
    if let Some(e) = download_error {
        // The SDK validates S3's full-object checksum while streaming the body.
        if e.to_ascii_lowercase().contains("checksum") {
            return Err(AgentError::Checksum {
                what: what.clone(),
                expected: "the checksum S3 stored".into(),
                actual: e,
            });
        }
        return Err(AgentError::Aws {
            service: "S3",
            op: "GetObject (body)",
            target: what,
            why: e,
        });
    }
    unpacked.map_err(|e| AgentError::Unpack {
        key: target.key.clone(),
        path: staging.to_path_buf(),
        why: e.to_string(),
    })
}

fn put_in_place(staging: &Path, to: &Path, state: TargetState) -> Result<(), AgentError> {
    let local = |what, p: &Path, e: io::Error| AgentError::local(what, p, e);
    match state {
        TargetState::Absent => {
            if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .map_err(|e| local("restore target parent", parent, e))?;
            }
            fs::rename(staging, to).map_err(|e| local("restore target", to, e))
        }
        TargetState::EmptyDir => {
            fs::remove_dir(to).map_err(|e| local("restore target", to, e))?;
            fs::rename(staging, to).map_err(|e| local("restore target", to, e))
        }
        TargetState::Replace => {
            let old = staging.with_extension("old");
            fs::rename(to, &old).map_err(|e| local("restore target", to, e))?;
            if let Err(e) = fs::rename(staging, to) {
                // Put the previous tree back.
                let _ = fs::rename(&old, to);
                return Err(local("restore target", to, e));
            }
            let removed = if old.is_dir() {
                fs::remove_dir_all(&old)
            } else {
                fs::remove_file(&old)
            };
            if let Err(e) = removed {
                tracing::warn!(path = %old.display(), error = %e, "could not remove the replaced tree");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{write_archive, ArchiveOptions};
    use rstest::rstest;

    #[rstest]
    #[case("latest", At::Latest)]
    #[case("backups/media/20260101T000000.000Z.tar.gz", At::Key("backups/media/20260101T000000.000Z.tar.gz".into()))]
    #[case("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", At::Version("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()))]
    fn parses_at(#[case] s: &str, #[case] at: At) {
        assert_eq!(s.parse::<At>().unwrap(), at);
    }

    fn target(meta_sha: Option<&str>, stored: Stored) -> Target {
        Target {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            size: 0,
            metadata: meta_sha
                .map(|s| HashMap::from([(meta::SHA256.to_string(), s.to_string())]))
                .unwrap_or_default(),
            stored,
        }
    }

    #[test]
    fn expected_checksum_preference() {
        let full = Stored::FullObject("crc".into());
        assert!(
            matches!(Expected::choose(&target(Some("AA"), full.clone()), Some("bb")), Expected::Sha256 { hex, source } if hex == "aa" && source == "object metadata")
        );
        assert!(
            matches!(Expected::choose(&target(None, full.clone()), Some("bb")), Expected::Sha256 { source, .. } if source == "history")
        );
        assert!(matches!(
            Expected::choose(&target(None, full), None),
            Expected::Crc64nvme { .. }
        ));
        assert_eq!(
            Expected::choose(&target(None, Stored::Composite("x-2".into())), None),
            Expected::Nothing
        );
    }

    #[test]
    fn target_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        assert_eq!(check_target(&p, false).unwrap(), TargetState::Absent);
        fs::create_dir(&p).unwrap();
        assert_eq!(check_target(&p, false).unwrap(), TargetState::EmptyDir);
        fs::write(p.join("f"), b"x").unwrap();
        assert_eq!(check_target(&p, false).unwrap_err().exit_code(), 10);
        assert_eq!(check_target(&p, true).unwrap(), TargetState::Replace);
    }

    fn archive_bytes(root: &Path) -> (Vec<u8>, crate::archive::ArchiveSummary) {
        let (tx, mut rx) = mpsc::channel(4096);
        let s = write_archive(
            root,
            ArchiveOptions {
                chunk_size: 1000,
                level: 6,
            },
            tx,
        )
        .unwrap();
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.extend_from_slice(&c);
        }
        (out, s)
    }

    fn feed(bytes: Vec<u8>) -> mpsc::Receiver<Result<Bytes, String>> {
        let (tx, rx) = mpsc::channel(4096);
        for c in bytes.chunks(777) {
            tx.try_send(Ok(Bytes::copy_from_slice(c))).unwrap();
        }
        rx
    }

    #[test]
    fn local_round_trip_of_awkward_names_read_only_dirs_and_links() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let root = src.path();
        let long = "d".repeat(120);
        fs::create_dir_all(root.join("with space/ünï cødé/日本").join(&long)).unwrap();
        fs::write(
            root.join("with space/ünï cødé/日本/file name.txt"),
            "こんにちは",
        )
        .unwrap();
        fs::write(
            root.join("with space").join(&long).with_extension("x"),
            b"long",
        )
        .unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("empty", root.join("link to empty")).unwrap();
        fs::create_dir(root.join("ro")).unwrap();
        fs::write(root.join("ro/inside"), b"data").unwrap();
        fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();

        let (bytes, summary) = archive_bytes(root);
        let out = tempfile::tempdir().unwrap();
        let (stats, sums) = unpack_stream(feed(bytes), out.path()).unwrap();
        assert_eq!(sums, summary.checksums);
        assert_eq!(
            (stats.files, stats.symlinks),
            (summary.files, summary.symlinks)
        );
        assert_eq!(stats.bytes, summary.uncompressed_bytes);
        assert_eq!(
            fs::read_to_string(out.path().join("with space/ünï cødé/日本/file name.txt")).unwrap(),
            "こんにちは"
        );
        assert_eq!(
            fs::read_link(out.path().join("link to empty")).unwrap(),
            Path::new("empty")
        );
        assert_eq!(fs::read(out.path().join("ro/inside")).unwrap(), b"data");
        let mode = fs::metadata(out.path().join("ro"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o555);
        // Let the temp dirs clean up.
        fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(out.path().join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn entries_escaping_the_target_are_refused() {
        // A hand-made archive with ../evil (bypassing the builder's own checks).
        let mut raw = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_old();
            let name = b"../evil";
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_size(4);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &b"evil"[..]).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        fs::create_dir(&out).unwrap();
        let err = unpack_stream(feed(raw), &out).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!parent.path().join("evil").exists());
    }

    #[test]
    fn corrupted_bytes_fail_or_mismatch() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), vec![7u8; 10_000]).unwrap();
        let (mut bytes, summary) = archive_bytes(src.path());
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        let out = tempfile::tempdir().unwrap();
        match unpack_stream(feed(bytes), out.path()) {
            // gzip's own CRC usually catches it...
            Err(_) => {}
            // ...and when it does not, the SHA-256 comparison does.
            Ok((_, sums)) => {
                let exp = Expected::Sha256 {
                    hex: summary.checksums.sha256.clone(),
                    source: "test".into(),
                };
                assert_eq!(exp.verify(&sums, "x").unwrap_err().exit_code(), 9);
            }
        }
    }

    #[test]
    fn put_in_place_replaces_only_after_success() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("t");
        fs::create_dir(&to).unwrap();
        fs::write(to.join("old"), b"old").unwrap();
        let staging = staging_path(&to);
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("new"), b"new").unwrap();
        put_in_place(&staging, &to, TargetState::Replace).unwrap();
        assert!(to.join("new").exists() && !to.join("old").exists());
        assert!(!staging.exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}

//! Restore: find the backup (`latest`, a key or a version id), stream it from S3 into a
//! blocking unpacker while hashing it, and move the tree into place only if the archive's
//! checksum matches. A backup that cannot be restored is no backup.
//!
//! **Staging.** The tree is unpacked into a hidden staging directory next to the target,
//! `.NAME.autobackup-partial-PID-NANOS-RANDOM`, created exclusively with mode 0700, so no
//! other user can reach anything inside while it is unpacked, and no leftover of an earlier
//! (crashed) run gets in the way; leftovers found are reported as warnings. Inside,
//! directories are created 0700 and files 0600; the archived modes, owners and directory
//! times are applied only after the checksum verified. On a mismatch or any error the
//! staging tree is removed (read-only directories are made writable first) and the target
//! is untouched; a removal that fails is reported in the error, with the path left behind.
//! An existing non-empty target is refused unless `force`, in which case it is moved to
//! the staging name plus `.old` (unique per run) only after a verified unpack, then removed.
//!
//! **Modes and owners.** Without `preserve_owner`, modes are masked with 0o777: setuid,
//! setgid and sticky bits are never restored (the count of entries that lost one is in
//! [`Unpacked::special_bits_stripped`]), and everything belongs to the caller. With it
//! (root only), owners come from the archive's uid/gid and the full mode is restored.
//!
//! **Limits.** [`Limits`] bound the number of entries, the total file bytes, path and link
//! lengths, and the size of GNU long-name/PAX extension headers, which are read by this
//! module within their limit (the tar reader would buffer any size). Exceeding one fails
//! the restore with [`AgentError::UnpackLimit`] (exit 15) and removes the staging tree.
//! Entries that would land outside the target (absolute paths are made relative, `..` is
//! refused), paths through a symlink, and entry types other than files, directories,
//! symlinks and hard links (devices, FIFOs, GNU sparse files) are refused.
//!
//! **Reference checksum**, in this order ([`Expected::choose`]):
//! 1. the SHA-256 in the agent's local history for that bucket and key: the one reference
//!    someone who can write the bucket cannot change;
//! 2. the object's `sha256` metadata, only when the caller trusts it (`--trust-metadata`,
//!    which warns: whoever can PutObject also writes the metadata);
//! 3. S3's stored full-object CRC64NVME (also checked by the SDK while streaming): it
//!    proves the bytes are the ones S3 stored, not that the agent wrote them;
//! 4. nothing: the restore fails unless unverified restores are allowed.
//!
//! When the history and the metadata disagree, the history wins and a warning is logged.

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
    /// Picks the strongest available reference (see the module docs for the order):
    /// the history's SHA-256, then the object metadata's only if `trust_metadata`, then
    /// S3's full-object CRC64NVME.
    pub fn choose(target: &Target, history_sha256: Option<&str>, trust_metadata: bool) -> Expected {
        let metadata = target
            .metadata
            .get(meta::SHA256)
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase());
        if let Some(h) = history_sha256.filter(|h| !h.is_empty()) {
            let h = h.to_ascii_lowercase();
            if metadata.as_ref().is_some_and(|m| *m != h) {
                tracing::warn!(
                    key = %target.key,
                    "the object's sha256 metadata differs from the history; verifying against the history"
                );
            }
            return Expected::Sha256 {
                hex: h,
                source: "history".into(),
            };
        }
        if let Some(h) = metadata.filter(|_| trust_metadata) {
            tracing::warn!(
                key = %target.key,
                "no history record for this backup: verifying against the object's sha256 metadata, which anyone who can write the bucket can set"
            );
            return Expected::Sha256 {
                hex: h,
                source: "object metadata".into(),
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
    resolve_preferring(s3, bucket, category, at, None).await
}

/// Which backup `latest` is among the listed `objects`: the history's last successful
/// backup (`history_latest`) while it is still there, since a key in the bucket may have
/// been written by a host with a skewed clock or by someone else; otherwise the newest by
/// `LastModified` (see [`crate::rotation::plan`]).
pub fn latest_of(
    objects: &[crate::rotation::Object],
    category: Category,
    history_latest: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let plan = crate::rotation::plan(objects, category, 1, None, now);
    if let Some(w) = crate::rotation::future_warning(&plan.future) {
        tracing::warn!("{w}");
    }
    let newest = plan.keep.into_iter().next();
    match history_latest {
        Some(h) if objects.iter().any(|o| o.key == h) => {
            if newest.as_deref().is_some_and(|n| n != h) {
                tracing::warn!(
                    history = h,
                    bucket_newest = newest.as_deref().unwrap_or_default(),
                    "the bucket's newest backup is not the history's last successful one; restoring the history's (pass --at KEY for the other)"
                );
            }
            Some(h.to_string())
        }
        _ => newest,
    }
}

/// [`resolve`], with `latest` preferring the history's last successful backup of the
/// category in this bucket (see [`latest_of`]).
pub async fn resolve_preferring(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    category: Category,
    at: &At,
    history_latest: Option<&str>,
) -> Result<Target, AgentError> {
    let prefix = layout::prefix(category);
    let (key, version) = match at {
        At::Latest => {
            let objects = crate::s3::list_objects(s3, bucket, &prefix).await?;
            let key = latest_of(&objects, category, history_latest, chrono::Utc::now())
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
    /// Files and directories whose setuid, setgid or sticky bit was not restored (every
    /// one that had one, unless `--preserve-owner`).
    #[serde(default)]
    pub special_bits_stripped: u64,
}

/// Bounds on what one unpack may create, against hostile or broken archives. The
/// defaults are far above any backup this agent writes; each has a command-line flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries of any kind (files, directories, links, extension headers).
    pub max_entries: u64,
    /// Sum of the regular files' sizes.
    pub max_bytes: u64,
    /// Length of an entry's path or link target, in bytes.
    pub max_path: u64,
    /// Size of one GNU long-name/long-link or PAX extension payload (held in memory).
    pub max_extension: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000_000,
            max_bytes: 1 << 40,
            max_path: 4096,
            max_extension: 1 << 20,
        }
    }
}

/// How an unpack treats what the archive says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    pub limits: Limits,
    /// Restore owners (uid/gid from the archive) and setuid/setgid/sticky bits. Needs
    /// root; without it modes are masked with 0o777 and files belong to the caller.
    pub preserve_owner: bool,
}

/// Which limit an archive exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Entries,
    Bytes,
    Path,
    Extension,
}

impl Limit {
    pub fn what(self) -> &'static str {
        match self {
            Limit::Entries => "the number of entries",
            Limit::Bytes => "the total size of the files (bytes)",
            Limit::Path => "the length of a path or link target (bytes)",
            Limit::Extension => "the size of a long-name or PAX extension header (bytes)",
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Limit::Entries => "--max-entries",
            Limit::Bytes => "--max-bytes",
            Limit::Path => "--max-path-bytes",
            Limit::Extension => "--max-extension-bytes",
        }
    }
}

/// Why an unpack failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// An entry the unpacker does not create (outside the target, through a symlink, an
    /// unsupported type, a malformed header).
    #[error("{0}")]
    Refused(String),
    #[error("{} exceeds the limit of {max} (raise it with {})", limit.what(), limit.flag())]
    Limit { limit: Limit, max: u64 },
}

impl UnpackError {
    /// The agent error for an unpack of `key` into `dir`.
    pub fn into_agent(self, key: &str, dir: &Path) -> AgentError {
        match self {
            UnpackError::Limit { limit, max } => AgentError::UnpackLimit {
                key: key.to_string(),
                what: limit.what().to_string(),
                max,
                flag: limit.flag(),
            },
            other => AgentError::Unpack {
                key: key.to_string(),
                path: dir.to_path_buf(),
                why: other.to_string(),
            },
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// The final owner, mode and time of one unpacked entry, applied only after the archive
/// verified.
#[derive(Debug, Clone)]
struct Final {
    /// Relative to the unpack directory; empty for the directory itself.
    path: PathBuf,
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Option<u64>,
}

/// The modes, owners and directory times an unpack deferred (see [`Pending::apply`]).
#[derive(Debug, Default)]
pub struct Pending {
    entries: Vec<Final>,
}

impl Pending {
    /// Applies the archived modes (masked with 0o777 unless `preserve_owner`), owners (only
    /// with `preserve_owner`) and directory times to the tree in `dir`, deepest entries
    /// first so that a read-only directory does not block its contents. The root of `dir`
    /// gets the mode a new directory would get (0o777 minus the umask) unless the archive
    /// has an entry for it. Call only after the checksum verified.
    pub fn apply(mut self, dir: &Path, preserve_owner: bool) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777 & !umask()))?;
        self.entries.sort_by(|a, b| {
            b.path
                .as_os_str()
                .as_bytes()
                .cmp(a.path.as_os_str().as_bytes())
        });
        for e in self.entries {
            let p = if e.path.as_os_str().is_empty() {
                dir.to_path_buf()
            } else {
                dir.join(&e.path)
            };
            if preserve_owner {
                let id = |v: u64| {
                    u32::try_from(v).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("id {v} is too large"))
                    })
                };
                // Owner first: chown clears setuid/setgid bits, the chmod below sets them.
                std::os::unix::fs::lchown(&p, Some(id(e.uid)?), Some(id(e.gid)?))?;
            }
            if e.kind == Kind::Symlink {
                continue;
            }
            let keep = if preserve_owner { 0o7777 } else { 0o777 };
            fs::set_permissions(&p, fs::Permissions::from_mode(e.mode & keep))?;
            if e.kind == Kind::Dir {
                if let Some(t) = e.mtime {
                    set_times_nofollow(&p, t)?;
                }
            }
        }
        Ok(())
    }
}

/// The process umask, read from /proc (setting it to read it races with other threads);
/// 0o022 when unknown.
fn umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
        & 0o777
}

/// Sets atime and mtime of `path` (not following a symlink) to `secs` (0 becomes 1, as
/// tar-rs does, for tools that treat 0 as missing).
fn set_times_nofollow(path: &Path, secs: u64) -> io::Result<()> {
    let t = filetime::FileTime::from_unix_time(i64::try_from(secs.max(1)).unwrap_or(i64::MAX), 0);
    filetime::set_symlink_file_times(path, t, t)
}

/// Turns an archive path into a relative path of normal components: leading `/` and `.`
/// parts are dropped (as tar does), `..` and NUL bytes are refused.
fn relative(bytes: &[u8]) -> Result<PathBuf, UnpackError> {
    use std::os::unix::ffi::OsStrExt;
    use std::path::Component;
    let shown = String::from_utf8_lossy(bytes);
    if bytes.contains(&0) {
        return Err(UnpackError::Refused(format!(
            "entry {shown:?} has a NUL byte in its name; refused"
        )));
    }
    let mut out = PathBuf::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(bytes)).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                return Err(UnpackError::Refused(format!(
                    "entry {shown} would land outside the target; refused"
                )))
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Creates the missing parents of `rel` inside `dir` (0700) and refuses a path that goes
/// through anything but a real directory (a symlink in particular). Returns the full path.
fn prepare_parent(dir: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut cur = dir.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(UnpackError::Refused(format!(
                    "entry {} goes through {}, which is not a directory; refused",
                    rel.display(),
                    cur.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o700).create(&cur)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(dir.join(rel))
}

fn system_time(secs: u64) -> Option<std::time::SystemTime> {
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs.max(1)))
}

/// One entry's metadata after its extension headers were applied.
struct Described {
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    uid: u64,
    gid: u64,
    mtime: Option<u64>,
}

/// Reads an extension payload of `size` bytes after checking it against the limit.
fn read_extension(r: &mut impl Read, size: u64, limits: &Limits) -> Result<Vec<u8>, UnpackError> {
    if size > limits.max_extension {
        return Err(UnpackError::Limit {
            limit: Limit::Extension,
            max: limits.max_extension,
        });
    }
    let mut data = Vec::with_capacity(size as usize);
    r.take(size).read_to_end(&mut data)?;
    if (data.len() as u64) < size {
        return Err(UnpackError::Refused(
            "archive ends inside an extension header".into(),
        ));
    }
    Ok(data)
}

fn strip_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn pax_number(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    // mtime may carry a fraction; the whole seconds are enough here.
    s.split('.').next()?.trim().parse().ok()
}

/// Unpacks a gzip'd tar read from `rx` into `dir` (which must exist and be private to the
/// caller), then drains the rest of the stream so the checksums cover every byte. Blocking.
///
/// Everything is created no more open than 0700 (directories) and 0600 (files); the
/// archived modes, owners and directory times are returned in [`Unpack::pending`], to be
/// applied once the checksum verified. Extension headers (GNU long names and links, PAX)
/// are read here, within [`Limits::max_extension`], rather than by the tar reader, which
/// would buffer any size. Regular files, directories, symbolic links and hard links are
/// created; any other type (devices, FIFOs, GNU sparse files), paths with `..`, and paths
/// through a symlink are refused.
pub fn unpack_stream(
    rx: mpsc::Receiver<Result<Bytes, String>>,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<Unpack, UnpackError> {
    let mut reader = ChannelReader {
        rx,
        current: Bytes::new(),
        digests: Digests::new(),
    };
    let (stats, pending) = {
        let gz = flate2::read::GzDecoder::new(&mut reader);
        let mut archive = tar::Archive::new(gz);
        let r = unpack_entries(&mut archive, dir, opts)?;
        // The gzip trailer (and anything after the tar end marker) still has to be read and
        // hashed: read the decoder to its end, which also checks the gzip CRC.
        let mut gz = archive.into_inner();
        io::copy(&mut gz, &mut io::sink())?;
        r
    };
    io::copy(&mut reader, &mut io::sink())?;
    Ok(Unpack {
        stats,
        checksums: reader.digests.finish(),
        pending,
    })
}

/// What [`unpack_stream`] produced.
#[derive(Debug)]
pub struct Unpack {
    pub stats: Unpacked,
    pub checksums: Checksums,
    /// Final modes, owners and directory times, not yet applied.
    pub pending: Pending,
}

fn unpack_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<(Unpacked, Pending), UnpackError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let limits = &opts.limits;
    let mut stats = Unpacked::default();
    let mut pending = Pending::default();
    let mut count: u64 = 0;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax: Option<Vec<u8>> = None;
    // Raw: the tar reader would read extension payloads of any size into memory.
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        count += 1;
        if count > limits.max_entries {
            return Err(UnpackError::Limit {
                limit: Limit::Entries,
                max: limits.max_entries,
            });
        }
        let header = entry.header().clone();
        let kind = header.entry_type();
        let size = entry.size();
        let twice =
            || UnpackError::Refused("two extension headers of one kind for one entry".into());
        if kind.is_gnu_longname() {
            if long_name.is_some() {
                return Err(twice());
            }
            long_name = Some(strip_nul(read_extension(&mut entry, size, limits)?));
            continue;
        }
        if kind.is_gnu_longlink() {
            if long_link.is_some() {
                return Err(twice());
            }
            long_link = Some(strip_nul(read_extension(&mut entry, size, limits)?));
            continue;
        }
        if kind.is_pax_local_extensions() {
            if pax.is_some() {
                return Err(twice());
            }
            pax = Some(read_extension(&mut entry, size, limits)?);
            continue;
        }
        if kind.is_pax_global_extensions() {
            // Read within the limit and ignored (nothing in it matters here).
            read_extension(&mut entry, size, limits)?;
            continue;
        }
        let mut d = Described {
            path: long_name
                .take()
                .unwrap_or_else(|| header.path_bytes().into_owned()),
            link: long_link
                .take()
                .or_else(|| header.link_name_bytes().map(|c| c.into_owned())),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            mtime: header.mtime().ok(),
        };
        if let Some(p) = pax.take() {
            for ext in tar::PaxExtensions::new(&p) {
                let ext = ext.map_err(|e| UnpackError::Refused(format!("bad PAX header: {e}")))?;
                let v = ext.value_bytes();
                match ext.key_bytes() {
                    b"path" => d.path = v.to_vec(),
                    b"linkpath" => d.link = Some(v.to_vec()),
                    b"uid" => d.uid = pax_number(v).unwrap_or(d.uid),
                    b"gid" => d.gid = pax_number(v).unwrap_or(d.gid),
                    b"mtime" => d.mtime = pax_number(v).or(d.mtime),
                    // The raw reader sized the data by the header; a different PAX size
                    // would be read differently by other tools.
                    b"size" if pax_number(v) != Some(size) => {
                        return Err(UnpackError::Refused(
                            "PAX size differs from the header size; refused".into(),
                        ))
                    }
                    _ => {}
                }
            }
        }
        let too_long = |n: usize| n as u64 > limits.max_path;
        if too_long(d.path.len()) || d.link.as_ref().is_some_and(|l| too_long(l.len())) {
            return Err(UnpackError::Limit {
                limit: Limit::Path,
                max: limits.max_path,
            });
        }
        let rel = relative(&d.path)?;
        let shown = rel.display().to_string();
        let mode = header.mode().unwrap_or(0o600);
        let special = mode & 0o7000 != 0;
        let created = if kind.is_dir() {
            if !rel.as_os_str().is_empty() {
                let p = prepare_parent(dir, &rel)?;
                match fs::DirBuilder::new().mode(0o700).create(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if !fs::symlink_metadata(&p)?.is_dir() {
                            return Err(UnpackError::Refused(format!(
                                "directory entry {shown} collides with another entry; refused"
                            )));
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                stats.dirs += 1;
            }
            Some(Kind::Dir)
        } else if kind.is_file() || kind.is_contiguous() {
            if rel.as_os_str().is_empty() {
                return Err(UnpackError::Refused(
                    "a file entry without a name; refused".into(),
                ));
            }
            if stats.bytes.saturating_add(size) > limits.max_bytes {
                return Err(UnpackError::Limit {
                    limit: Limit::Bytes,
                    max: limits.max_bytes,
                });
            }
            let p = prepare_parent(dir, &rel)?;
            // create_new (O_EXCL) never opens an existing file or follows a symlink.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&p)
                .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
            let n = io::copy(&mut (&mut entry).take(size), &mut f)?;
            if n != size {
                return Err(UnpackError::Refused(format!(
                    "archive ends inside {shown} ({n} of {size} bytes)"
                )));
            }
            if let Some(t) = d.mtime.and_then(system_time) {
                f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))?;
            }
            stats.files += 1;
            stats.bytes += size;
            Some(Kind::File)
        } else if kind.is_symlink() {
            let target = d.link.clone().filter(|l| !l.is_empty()).ok_or_else(|| {
                UnpackError::Refused(format!("symlink {shown} has no target; refused"))
            })?;
            if rel.as_os_str().is_empty() {
                return Err(UnpackError::Refused(
                    "a symlink entry without a name; refused".into(),
                ));
            }
            let p = prepare_parent(dir, &rel)?;
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &p)
                .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
            if let Some(t) = d.mtime {
                set_times_nofollow(&p, t)?;
            }
            stats.symlinks += 1;
            Some(Kind::Symlink)
        } else if kind.is_hard_link() {
            let src_rel = relative(d.link.as_deref().unwrap_or_default())?;
            if src_rel.as_os_str().is_empty() || rel.as_os_str().is_empty() {
                return Err(UnpackError::Refused(format!(
                    "hard link {shown} without a name or target; refused"
                )));
            }
            // The source must be an entry already unpacked here, reached through real
            // directories only.
            let src = prepare_parent(dir, &src_rel)?;
            if fs::symlink_metadata(&src).is_err() {
                return Err(UnpackError::Refused(format!(
                    "hard link {shown} to {}, which is not in the archive before it; refused",
                    src_rel.display()
                )));
            }
            let p = prepare_parent(dir, &rel)?;
            fs::hard_link(&src, &p)
                .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
            stats.files += 1;
            // The linked inode gets its mode from its own entry.
            None
        } else {
            return Err(UnpackError::Refused(format!(
                "entry {shown} has a type this agent does not restore ({kind:?}); refused"
            )));
        };
        if let Some(kind) = created {
            if special && !opts.preserve_owner && kind != Kind::Symlink {
                stats.special_bits_stripped += 1;
            }
            pending.entries.push(Final {
                path: rel,
                kind,
                mode,
                uid: d.uid,
                gid: d.gid,
                mtime: d.mtime,
            });
        }
    }
    if long_name.is_some() || long_link.is_some() || pax.is_some() {
        return Err(UnpackError::Refused(
            "an extension header at the end of the archive describes no entry".into(),
        ));
    }
    Ok((stats, pending))
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
    /// Things the restore could not tidy up (a replaced tree left behind, leftover staging
    /// directories of earlier runs); the restore itself succeeded.
    #[serde(default)]
    pub warnings: Vec<String>,
}

const STAGING_MARK: &str = ".autobackup-partial-";

fn target_name(to: &Path) -> String {
    to.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "restore".into())
}

fn parent_dir(to: &Path) -> &Path {
    to.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A fresh staging name next to `to`: pid, time and a random part, so no two runs (and no
/// leftover of a crashed one) share it.
fn staging_path(to: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    parent_dir(to).join(format!(
        ".{}{STAGING_MARK}{}-{nanos}-{:08x}",
        target_name(to),
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// The name the replaced tree is moved to: the staging name plus `.old`, unique per run.
fn old_path(staging: &Path) -> PathBuf {
    let mut s = staging.as_os_str().to_owned();
    s.push(".old");
    PathBuf::from(s)
}

/// Creates the staging directory, exclusively and 0700, and lists leftovers of earlier runs.
fn create_staging(to: &Path) -> Result<(PathBuf, Vec<String>), AgentError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let parent = parent_dir(to);
    fs::create_dir_all(parent)
        .map_err(|e| AgentError::local("restore target parent", parent, e))?;
    let mut attempt = 0;
    let staging = loop {
        let p = staging_path(to);
        match fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => break p,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(AgentError::local("staging directory", &p, e)),
        }
    };
    // The umask can only narrow 0700; make sure the owner can work in it.
    if let Err(e) = fs::set_permissions(&staging, fs::Permissions::from_mode(0o700)) {
        let _ = fs::remove_dir(&staging);
        return Err(AgentError::local("staging directory", &staging, e));
    }
    let prefix = format!(".{}{STAGING_MARK}", target_name(to));
    let mut warnings = Vec::new();
    if let Ok(rd) = fs::read_dir(parent) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && e.path() != staging {
                let w = format!(
                    "leftover of an earlier restore: {} (remove it once no restore runs)",
                    e.path().display()
                );
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
    }
    Ok((staging, warnings))
}

/// Removes `path` and everything under it, giving the owner rwx on each directory first
/// so that read-only trees go too. Symlinks are removed, never followed.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let m = fs::symlink_metadata(path)?;
    if !m.is_dir() {
        return fs::remove_file(path);
    }
    let mode = m.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode((mode | 0o700) & 0o7777))?;
    }
    for e in fs::read_dir(path)? {
        remove_tree(&e?.path())?;
    }
    fs::remove_dir(path)
}

/// Adds a failed removal of `staging` to `error`; a staging dir already gone is fine.
fn with_cleanup(error: AgentError, staging: &Path) -> AgentError {
    match remove_tree(staging) {
        Ok(()) => error,
        Err(e) if e.kind() == io::ErrorKind::NotFound => error,
        Err(e) => {
            tracing::error!(path = %staging.display(), error = %e, "could not remove the staging directory");
            AgentError::Cleanup {
                error: Box::new(error),
                path: staging.to_path_buf(),
                why: e.to_string(),
            }
        }
    }
}

/// What a local restore produced.
#[derive(Debug)]
pub struct Placed {
    pub unpacked: Unpacked,
    pub checksums: Checksums,
    pub verified: String,
    pub warnings: Vec<String>,
}

/// Everything after the download starts: unpacks the stream into a fresh private staging
/// directory next to `to`, verifies the checksum, applies the final modes and owners,
/// and moves the tree into place. On any failure the staging tree is removed (a failed
/// removal is part of the error) and the target is untouched. Blocking.
pub fn unpack_verify_place(
    rx: mpsc::Receiver<Result<Bytes, String>>,
    key: &str,
    what: &str,
    expected: &Expected,
    to: &Path,
    state: TargetState,
    opts: &UnpackOptions,
) -> Result<Placed, AgentError> {
    let (staging, mut warnings) = create_staging(to)?;
    let run = || -> Result<Placed, AgentError> {
        let u = unpack_stream(rx, &staging, opts).map_err(|e| e.into_agent(key, &staging))?;
        let verified = expected.verify(&u.checksums, what)?;
        u.pending
            .apply(&staging, opts.preserve_owner)
            .map_err(|e| AgentError::Unpack {
                key: key.to_string(),
                path: staging.clone(),
                why: format!("applying modes and owners: {e}"),
            })?;
        warnings.extend(put_in_place(&staging, to, state)?);
        Ok(Placed {
            unpacked: u.stats,
            checksums: u.checksums,
            verified,
            warnings: std::mem::take(&mut warnings),
        })
    };
    run().map_err(|e| with_cleanup(e, &staging))
}

/// Refuses `--preserve-owner` unless the effective uid is 0.
pub fn check_preserve_owner(euid: u32) -> Result<(), AgentError> {
    if euid == 0 {
        Ok(())
    } else {
        Err(AgentError::Config(format!(
            "--preserve-owner restores owners and setuid/setgid bits, which needs root (effective uid 0); this process runs as uid {euid}"
        )))
    }
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Downloads, verifies and unpacks `target` into `to`. When `cancel` is triggered the
/// download stops, the unpacker fails on the interrupted stream and removes its staging
/// tree (the target is untouched), and the result is [`AgentError::Interrupted`] (inside
/// [`AgentError::Cleanup`] if the staging tree could not be removed).
#[allow(clippy::too_many_arguments)]
pub async fn restore(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    expected: &Expected,
    to: &Path,
    state: TargetState,
    opts: &UnpackOptions,
    cancel: &crate::signals::Cancel,
) -> Result<Restored, AgentError> {
    let what = format!("s3://{}/{}", target.bucket, target.key);
    let get = s3
        .get_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .set_version_id(target.version_id.clone())
        .checksum_mode(ChecksumMode::Enabled)
        .send();
    let resp = tokio::select! {
        r = get => r,
        s = cancel.cancelled() => return Err(crate::signals::Cancel::error(s)),
    }
    .map_err(|e| AgentError::Aws {
        service: "S3",
        op: "GetObject",
        target: what.clone(),
        why: classify(&e).text(),
    })?;
    let mut body = resp.body;
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let unpacker = {
        let (key, what, expected, to, opts) = (
            target.key.clone(),
            what.clone(),
            expected.clone(),
            to.to_path_buf(),
            *opts,
        );
        tokio::task::spawn_blocking(move || {
            unpack_verify_place(rx, &key, &what, &expected, &to, state, &opts)
        })
    };
    let mut download_error: Option<String> = None;
    let mut interrupted = None;
    loop {
        let next = tokio::select! {
            c = body.next() => c,
            s = cancel.cancelled() => {
                // The unpacker fails on this and removes its staging tree.
                let _ = tx.send(Err(format!("interrupted by {s}"))).await;
                interrupted = Some(s);
                break;
            }
        };
        let Some(chunk) = next else { break };
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
    let placed = unpacker
        .await
        .map_err(|e| AgentError::Internal(format!("unpack thread: {e}")))?;
    let placed = match (placed, download_error, interrupted) {
        (Ok(p), _, _) => p,
        (Err(unpack_error), _, Some(s)) => {
            let err = crate::signals::Cancel::error(s);
            tracing::warn!(
                signal = s.name(),
                "restore interrupted; the target is untouched"
            );
            return Err(match unpack_error {
                AgentError::Cleanup { path, why, .. } => AgentError::Cleanup {
                    error: Box::new(err),
                    path,
                    why,
                },
                _ => err,
            });
        }
        (Err(unpack_error), Some(e), None) => {
            // The SDK validates S3's full-object checksum while streaming the body.
            let err = if e.to_ascii_lowercase().contains("checksum") {
                AgentError::Checksum {
                    what: what.clone(),
                    expected: "the checksum S3 stored".into(),
                    actual: e,
                }
            } else {
                AgentError::Aws {
                    service: "S3",
                    op: "GetObject (body)",
                    target: what,
                    why: e,
                }
            };
            // Keep a failed cleanup visible under the download error.
            return Err(match unpack_error {
                AgentError::Cleanup { path, why, .. } => AgentError::Cleanup {
                    error: Box::new(err),
                    path,
                    why,
                },
                _ => err,
            });
        }
        (Err(e), None, None) => return Err(e),
    };
    Ok(Restored {
        key: target.key.clone(),
        version_id: target.version_id.clone(),
        to: to.to_path_buf(),
        archive_bytes: placed.checksums.bytes,
        unpacked: placed.unpacked,
        verified: placed.verified,
        sha256: placed.checksums.sha256,
        warnings: placed.warnings,
    })
}

/// Moves the verified staging tree to `to`. Returns warnings for what it could not tidy
/// (the replaced tree left behind).
fn put_in_place(staging: &Path, to: &Path, state: TargetState) -> Result<Vec<String>, AgentError> {
    let local = |what, p: &Path, e: io::Error| AgentError::local(what, p, e);
    match state {
        TargetState::Absent => {
            fs::rename(staging, to).map_err(|e| local("restore target", to, e))?;
            Ok(Vec::new())
        }
        TargetState::EmptyDir => {
            fs::remove_dir(to).map_err(|e| local("restore target", to, e))?;
            fs::rename(staging, to).map_err(|e| local("restore target", to, e))?;
            Ok(Vec::new())
        }
        TargetState::Replace => {
            let old = old_path(staging);
            fs::rename(to, &old).map_err(|e| local("restore target", to, e))?;
            if let Err(e) = fs::rename(staging, to) {
                // Put the previous tree back.
                if let Err(back) = fs::rename(&old, to) {
                    return Err(AgentError::Cleanup {
                        error: Box::new(local("restore target", to, e)),
                        path: old,
                        why: format!("the previous tree could not be moved back: {back}"),
                    });
                }
                return Err(local("restore target", to, e));
            }
            match remove_tree(&old) {
                Ok(()) => Ok(Vec::new()),
                Err(e) => {
                    tracing::warn!(path = %old.display(), error = %e, "could not remove the replaced tree");
                    Ok(vec![format!(
                        "the replaced tree was left at {}: {e} (remove it by hand)",
                        old.display()
                    )])
                }
            }
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
        // The history wins over the metadata, trusted or not.
        for trust in [false, true] {
            assert!(
                matches!(Expected::choose(&target(Some("AA"), full.clone()), Some("BB"), trust), Expected::Sha256 { hex, source } if hex == "bb" && source == "history")
            );
        }
        // Metadata only when trusted...
        assert!(
            matches!(Expected::choose(&target(Some("AA"), full.clone()), None, true), Expected::Sha256 { hex, source } if hex == "aa" && source == "object metadata")
        );
        // ...otherwise S3's full-object checksum, or nothing.
        assert!(matches!(
            Expected::choose(&target(Some("AA"), full.clone()), None, false),
            Expected::Crc64nvme { .. }
        ));
        assert!(matches!(
            Expected::choose(&target(None, full), None, true),
            Expected::Crc64nvme { .. }
        ));
        assert_eq!(
            Expected::choose(
                &target(Some("AA"), Stored::Composite("x-2".into())),
                None,
                false
            ),
            Expected::Nothing
        );
    }

    /// Finding 5: an object replaced together with matching metadata must not verify when
    /// the history knows the original SHA-256.
    #[test]
    fn replaced_object_with_matching_metadata_fails_against_the_history() {
        let evil = Checksums {
            sha256: "ee".repeat(32),
            crc64nvme: "evil".into(),
            bytes: 1,
        };
        let t = target(Some(&"ee".repeat(32)), Stored::FullObject("evil".into()));
        let exp = Expected::choose(&t, Some(&"aa".repeat(32)), false);
        assert_eq!(exp.verify(&evil, "x").unwrap_err().exit_code(), 9);
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
                ..ArchiveOptions::default()
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
        let u = unpack_stream(feed(bytes), out.path(), &UnpackOptions::default()).unwrap();
        let (stats, sums) = (u.stats, u.checksums);
        u.pending.apply(out.path(), false).unwrap();
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
        let err = unpack_stream(feed(raw), &out, &UnpackOptions::default()).unwrap_err();
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
        match unpack_stream(feed(bytes), out.path(), &UnpackOptions::default()) {
            // gzip's own CRC usually catches it...
            Err(_) => {}
            // ...and when it does not, the SHA-256 comparison does.
            Ok(u) => {
                let sums = u.checksums;
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
        assert!(put_in_place(&staging, &to, TargetState::Replace)
            .unwrap()
            .is_empty());
        assert!(to.join("new").exists() && !to.join("old").exists());
        assert!(!staging.exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A gzip'd tar of hand-made entries: (path, type, mode, data).
    fn crafted(entries: &[(&str, tar::EntryType, u32, &[u8])]) -> Vec<u8> {
        let mut raw = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            for (path, kind, mode, data) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(*kind);
                h.set_mode(*mode);
                h.set_uid(1234);
                h.set_gid(2345);
                h.set_mtime(1_600_000_000);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            b.into_inner().unwrap().finish().unwrap();
        }
        raw
    }

    fn sha_of(bytes: &[u8]) -> Expected {
        let mut d = Digests::new();
        d.update(bytes);
        Expected::Sha256 {
            hex: d.finish().sha256,
            source: "test".into(),
        }
    }

    fn setuid_archive() -> Vec<u8> {
        use tar::EntryType::{Directory, Regular};
        crafted(&[
            ("sgid-dir", Directory, 0o2755, b""),
            ("sgid-dir/tool", Regular, 0o4755, b"#!/bin/sh\n"),
            ("sticky", Directory, 0o1777, b""),
            ("plain", Regular, 0o640, b"x"),
        ])
    }

    /// Finding 1: setuid/setgid/sticky bits are not restored by default, and counted.
    #[test]
    fn special_bits_are_stripped_without_preserve_owner() {
        let parent = tempfile::tempdir().unwrap();
        let to = parent.path().join("t");
        let bytes = setuid_archive();
        let placed = unpack_verify_place(
            feed(bytes.clone()),
            "k",
            "x",
            &sha_of(&bytes),
            &to,
            TargetState::Absent,
            &UnpackOptions::default(),
        )
        .unwrap();
        assert_eq!(mode_of(&to.join("sgid-dir/tool")), 0o755);
        assert_eq!(mode_of(&to.join("sgid-dir")), 0o755);
        assert_eq!(mode_of(&to.join("sticky")), 0o777);
        assert_eq!(mode_of(&to.join("plain")), 0o640);
        assert_eq!(placed.unpacked.special_bits_stripped, 3);
        // Owned by the caller, not by the archive's uid.
        assert_eq!(fs::metadata(to.join("plain")).unwrap().uid(), euid());
    }

    /// Finding 1: with --preserve-owner (root), owners and special bits come back.
    #[test]
    fn preserve_owner_restores_owners_and_special_bits() {
        if euid() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let parent = tempfile::tempdir().unwrap();
        let to = parent.path().join("t");
        let bytes = setuid_archive();
        let opts = UnpackOptions {
            preserve_owner: true,
            ..UnpackOptions::default()
        };
        let placed = unpack_verify_place(
            feed(bytes.clone()),
            "k",
            "x",
            &sha_of(&bytes),
            &to,
            TargetState::Absent,
            &opts,
        )
        .unwrap();
        assert_eq!(placed.unpacked.special_bits_stripped, 0);
        assert_eq!(mode_of(&to.join("sgid-dir/tool")), 0o4755);
        assert_eq!(mode_of(&to.join("sgid-dir")), 0o2755);
        assert_eq!(mode_of(&to.join("sticky")), 0o1777);
        let m = fs::metadata(to.join("sgid-dir/tool")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 2345));
    }

    #[test]
    fn preserve_owner_is_refused_unless_root() {
        let e = check_preserve_owner(1000).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("needs root"), "{e}");
        check_preserve_owner(0).unwrap();
    }

    /// Finding 2: the staging dir is 0700, entries stay 0700/0600 until the checksum
    /// verified, and the final modes come only with `apply`.
    #[test]
    fn staging_is_private_and_final_modes_wait_for_verification() {
        use tar::EntryType::{Directory, Regular};
        let parent = tempfile::tempdir().unwrap();
        let to = parent.path().join("t");
        let (staging, _) = create_staging(&to).unwrap();
        assert_eq!(mode_of(&staging), 0o700);
        let bytes = crafted(&[
            ("open", Directory, 0o777, b""),
            ("open/public", Regular, 0o666, b"p"),
            ("open/exec", Regular, 0o755, b"e"),
        ]);
        let u = unpack_stream(feed(bytes), &staging, &UnpackOptions::default()).unwrap();
        assert_eq!(mode_of(&staging), 0o700);
        assert_eq!(mode_of(&staging.join("open")), 0o700);
        assert_eq!(mode_of(&staging.join("open/public")), 0o600);
        assert_eq!(mode_of(&staging.join("open/exec")), 0o600);
        u.pending.apply(&staging, false).unwrap();
        assert_eq!(mode_of(&staging.join("open")), 0o777);
        assert_eq!(mode_of(&staging.join("open/public")), 0o666);
        assert_eq!(mode_of(&staging.join("open/exec")), 0o755);
        assert_eq!(mode_of(&staging), 0o777 & !umask());
        let mtime = fs::metadata(staging.join("open")).unwrap().mtime();
        assert_eq!(mtime, 1_600_000_000);
        remove_tree(&staging).unwrap();
    }

    /// Finding 2/3: a checksum mismatch leaves nothing behind, not even a read-only tree.
    #[test]
    fn a_mismatch_removes_the_staging_tree_and_keeps_the_target() {
        use tar::EntryType::{Directory, Regular};
        let parent = tempfile::tempdir().unwrap();
        let to = parent.path().join("t");
        fs::create_dir(&to).unwrap();
        fs::write(to.join("mine"), b"mine").unwrap();
        let bytes = crafted(&[
            ("ro", Directory, 0o555, b""),
            ("ro/f", Regular, 0o444, b"f"),
        ]);
        let wrong = Expected::Sha256 {
            hex: "00".repeat(32),
            source: "test".into(),
        };
        let e = unpack_verify_place(
            feed(bytes),
            "k",
            "x",
            &wrong,
            &to,
            TargetState::Replace,
            &UnpackOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 9, "{e}");
        let names: Vec<_> = fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["t"]);
        assert_eq!(fs::read(to.join("mine")).unwrap(), b"mine");
    }

    /// Finding 3: replacing a target twice, with read-only directories in it and
    /// leftovers of earlier runs (the old fixed `.t.old` name, a crashed run's staging dir)
    /// next to it, works and reports the leftovers.
    #[test]
    fn replacing_twice_with_read_only_dirs_and_leftovers_works() {
        use tar::EntryType::{Directory, Regular};
        let parent = tempfile::tempdir().unwrap();
        let to = parent.path().join("t");
        for leftover in [".t.old", ".t.autobackup-partial-1-2"] {
            let p = parent.path().join(leftover);
            fs::create_dir_all(p.join("ro")).unwrap();
            fs::write(p.join("ro/f"), b"f").unwrap();
            fs::set_permissions(p.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        }
        fs::create_dir(&to).unwrap();
        fs::write(to.join("old"), b"old").unwrap();
        let bytes = crafted(&[
            ("ro", Directory, 0o555, b""),
            ("ro/f", Regular, 0o444, b"new"),
        ]);
        for round in 0..2 {
            let placed = unpack_verify_place(
                feed(bytes.clone()),
                "k",
                "x",
                &sha_of(&bytes),
                &to,
                TargetState::Replace,
                &UnpackOptions::default(),
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(fs::read(to.join("ro/f")).unwrap(), b"new");
            assert_eq!(mode_of(&to.join("ro")), 0o555);
            assert!(
                placed
                    .warnings
                    .iter()
                    .any(|w| w.contains(".t.autobackup-partial-1-2")),
                "{:?}",
                placed.warnings
            );
        }
        let mut names: Vec<_> = fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".t.autobackup-partial-1-2", ".t.old", "t"]);
        for leftover in [".t.old", ".t.autobackup-partial-1-2", "t"] {
            remove_tree(&parent.path().join(leftover)).unwrap();
        }
    }

    #[test]
    fn staging_and_old_names_are_unique_per_run() {
        let to = Path::new("/srv/t");
        let (a, b) = (staging_path(to), staging_path(to));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!(".t.autobackup-partial-{}-", std::process::id())));
        assert_eq!(
            old_path(&a).file_name().unwrap().to_string_lossy(),
            format!("{name}.old")
        );
    }

    /// Finding 3: `remove_tree` removes read-only trees that `remove_dir_all` cannot (as a
    /// non-root user: as root the test re-runs itself as nobody).
    #[test]
    fn remove_tree_removes_read_only_trees() {
        if !crate::test_support::runs_as_non_root(
            "restore::tests::remove_tree_removes_read_only_trees",
        ) {
            return;
        }
        let build = |root: &Path| {
            fs::create_dir_all(root.join("ro/none")).unwrap();
            fs::write(root.join("ro/f"), b"f").unwrap();
            fs::write(root.join("ro/none/g"), b"g").unwrap();
            fs::set_permissions(root.join("ro/none"), fs::Permissions::from_mode(0o000)).unwrap();
            fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        };
        let base = tempfile::tempdir().unwrap();
        let a = base.path().join("a");
        build(&a);
        if euid() != 0 {
            // What the restore used before: fails on a read-only tree.
            assert!(fs::remove_dir_all(&a).is_err());
        }
        remove_tree(&a).unwrap();
        assert!(!a.exists());
    }

    /// Finding 4: each limit stops a crafted archive with a typed error (exit 15), and the
    /// staging tree is removed.
    #[rstest]
    #[case::entries(Limit::Entries)]
    #[case::bytes(Limit::Bytes)]
    #[case::path(Limit::Path)]
    #[case::extension(Limit::Extension)]
    fn limits_stop_crafted_archives(#[case] which: Limit) {
        use tar::EntryType::Regular;
        let low = Limits {
            max_entries: 10,
            max_bytes: 100,
            max_path: 200,
            max_extension: 1024,
        };
        let bytes = match which {
            Limit::Entries => {
                let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
                let entries: Vec<_> = names
                    .iter()
                    .map(|n| (n.as_str(), Regular, 0o644, &b"x"[..]))
                    .collect();
                crafted(&entries)
            }
            Limit::Bytes => crafted(&[("big", Regular, 0o644, &[0u8; 1000][..])]),
            // 301 bytes: a GNU long name, within the extension limit.
            Limit::Path => crafted(&[(&format!("{}f", "dd/".repeat(100)), Regular, 0o644, b"x")]),
            Limit::Extension => {
                // One GNU long-name header declaring 1 GiB, and no data: the tar reader
                // would try to buffer all of it.
                let mut raw = Vec::new();
                {
                    use std::io::Write;
                    let mut gz =
                        flate2::write::GzEncoder::new(&mut raw, flate2::Compression::fast());
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::GNULongName);
                    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
                    h.set_size(1 << 30);
                    h.set_mode(0o644);
                    h.set_cksum();
                    gz.write_all(h.as_bytes()).unwrap();
                    gz.finish().unwrap();
                }
                raw
            }
        };
        // Within the defaults, each of them unpacks (or fails for another reason).
        let parent = tempfile::tempdir().unwrap();
        let to = parent.path().join("t");
        let opts = UnpackOptions {
            limits: low,
            preserve_owner: false,
        };
        let started = std::time::Instant::now();
        let e = unpack_verify_place(
            feed(bytes.clone()),
            "k",
            "x",
            &sha_of(&bytes),
            &to,
            TargetState::Absent,
            &opts,
        )
        .unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        match &e {
            AgentError::UnpackLimit { flag, .. } => assert_eq!(*flag, which.flag(), "{e}"),
            other => panic!("expected a limit error, got {other}"),
        }
        assert_eq!(e.exit_code(), 15);
        assert_eq!(
            fs::read_dir(parent.path()).unwrap().count(),
            0,
            "staging left behind"
        );
        if which != Limit::Extension {
            let to2 = parent.path().join("t2");
            unpack_verify_place(
                feed(bytes.clone()),
                "k",
                "x",
                &sha_of(&bytes),
                &to2,
                TargetState::Absent,
                &UnpackOptions::default(),
            )
            .unwrap();
        }
    }

    #[test]
    fn special_entry_types_and_paths_through_symlinks_are_refused() {
        use tar::EntryType::{Fifo, Regular, Symlink};
        let mut link = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut link, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(Symlink);
            h.set_size(0);
            b.append_link(&mut h, "escape", "/tmp").unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(Regular);
            h.set_size(1);
            h.set_mode(0o644);
            b.append_data(&mut h, "escape/planted", &b"x"[..]).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let fifo = crafted(&[("pipe", Fifo, 0o644, b"")]);
        for (bytes, want) in [(link, "not a directory"), (fifo, "type")] {
            let out = tempfile::tempdir().unwrap();
            let err = unpack_stream(feed(bytes), out.path(), &UnpackOptions::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        assert!(!Path::new("/tmp/planted").exists());
    }

    /// Incompressible bytes (xorshift), so an archive of them is as large as they are.
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Finding 19: a restore cancelled mid-download (SIGTERM) removes its staging tree,
    /// leaves the target alone and ends in exit 143.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_restore_removes_its_staging_and_leaves_the_target_alone() {
        use crate::signals::{Cancel, Signal};
        use crate::test_support::stub::{Reply, StubS3};
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), b"first").unwrap();
        fs::write(src.path().join("big"), noise(2 << 20)).unwrap();
        let (bytes, _) = tokio::task::block_in_place(|| archive_bytes(src.path()));
        let len = bytes.len();
        let half = Bytes::copy_from_slice(&bytes[..len / 2]);
        let stub = StubS3::start(move |s, _| {
            if s.op() == "GetObject" {
                Reply::Stall {
                    status: 200,
                    headers: vec![("content-length".into(), len.to_string())],
                    first: half.clone(),
                }
            } else {
                Reply::error(404, "NoSuchKey", "no")
            }
        })
        .await;
        let parent = tempfile::tempdir().unwrap();
        let to = parent.path().join("t");
        let cancel = Cancel::new();
        let task = {
            let (s3, c, to) = (stub.client(), cancel.clone(), to.clone());
            tokio::spawn(async move {
                let t = target(None, Stored::Absent);
                restore(
                    &s3,
                    &t,
                    &Expected::Nothing,
                    &to,
                    TargetState::Absent,
                    &UnpackOptions::default(),
                    &c,
                )
                .await
            })
        };
        // Wait until the unpack has started writing into its staging tree.
        let staging = || {
            fs::read_dir(parent.path())
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().contains(STAGING_MARK))
                .map(|e| e.path())
        };
        let started = std::time::Instant::now();
        while !staging().is_some_and(|p| fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())) {
            assert!(started.elapsed().as_secs() < 20, "the unpack never started");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        cancel.trigger(Signal::Terminate);
        let r = tokio::time::timeout(std::time::Duration::from_secs(20), task)
            .await
            .expect("the cancelled restore did not stop")
            .unwrap();
        let e = r.unwrap_err();
        assert_eq!(e.exit_code(), 143, "{e}");
        assert!(staging().is_none(), "staging left behind");
        assert!(!to.exists());
    }

    /// Finding 20: `latest` is the history's last success while it exists, otherwise the
    /// newest by LastModified, never a future-dated name.
    #[test]
    fn latest_prefers_the_history_then_last_modified() {
        use crate::rotation::Object;
        use chrono::{TimeZone, Utc};
        let t = |y, h| Utc.with_ymd_and_hms(y, 3, 1, h, 0, 0).unwrap();
        let k = |y, h| layout::key_for(Category::Documents, t(y, h));
        let listed = vec![
            Object::new(k(2100, 0), Some(t(2026, 0))),
            Object::new(k(2026, 1), Some(t(2026, 1))),
            Object::new(k(2026, 2), Some(t(2026, 2))),
        ];
        let now = t(2026, 3);
        assert_eq!(
            latest_of(&listed, Category::Documents, None, now),
            Some(k(2026, 2))
        );
        assert_eq!(
            latest_of(&listed, Category::Documents, Some(&k(2026, 1)), now),
            Some(k(2026, 1))
        );
        // A history key rotated away (or from another bucket) is not used.
        assert_eq!(
            latest_of(&listed, Category::Documents, Some(&k(2025, 1)), now),
            Some(k(2026, 2))
        );
        assert_eq!(latest_of(&[], Category::Documents, None, now), None);
    }

    /// Finding 30: hard links inside the tree survive a backup and restore as links.
    #[test]
    fn hard_links_round_trip() {
        use std::os::unix::fs::MetadataExt;
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), b"shared").unwrap();
        fs::create_dir(src.path().join("sub")).unwrap();
        fs::hard_link(src.path().join("a"), src.path().join("sub/b")).unwrap();
        let (bytes, summary) = archive_bytes(src.path());
        assert_eq!((summary.files, summary.hard_links), (1, 1));
        let dst = tempfile::tempdir().unwrap();
        let u = unpack_stream(feed(bytes), dst.path(), &UnpackOptions::default()).unwrap();
        u.pending.apply(dst.path(), false).unwrap();
        let a = fs::metadata(dst.path().join("a")).unwrap();
        let b = fs::metadata(dst.path().join("sub/b")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.nlink(), 2);
        assert_eq!(fs::read(dst.path().join("sub/b")).unwrap(), b"shared");
    }
}

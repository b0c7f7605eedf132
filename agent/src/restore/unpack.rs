//! Unpacking the downloaded stream into the staging directory ([`unpack_stream`]) within
//! [`Limits`], refusing what the module docs of [`super`] list.
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `digest`, `errors`,
//! `restore::pending`.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::pending::{set_times_nofollow, Final, Kind, Pending};
use crate::digest::{Checksums, Digests};
use crate::errors::AgentError;

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
    /// Bytes the target's file system must keep free: a file that would leave less is
    /// refused before it is written (security review 2, finding 4: an archive that
    /// decompresses past the disk must not fill it for every other user of the host).
    pub min_free: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000_000,
            max_bytes: 1 << 40,
            max_path: 4096,
            max_extension: 1 << 20,
            min_free: 64 << 20,
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
    /// The paths held for the deferred modes ([`super::Pending`]), in bytes:
    /// [`PENDING_BYTES_PER_ENTRY`] per entry `--max-entries` allows.
    Pending,
}

/// Path bytes the unpack may hold for deferred modes per entry [`Limits::max_entries`]
/// allows: the memory kept until the archive verified is bounded by the entry limit
/// (2.5 GB at the default 10 million), whatever the archive's names.
pub const PENDING_BYTES_PER_ENTRY: u64 = 256;

impl Limit {
    pub fn what(self) -> &'static str {
        match self {
            Limit::Entries => "the number of entries",
            Limit::Bytes => "the total size of the files (bytes)",
            Limit::Path => "the length of a path or link target (bytes)",
            Limit::Extension => "the size of a long-name or PAX extension header (bytes)",
            Limit::Pending => {
                "the paths held for the modes applied after verification (bytes, 256 per allowed entry)"
            }
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Limit::Entries => "--max-entries",
            Limit::Bytes => "--max-bytes",
            Limit::Path => "--max-path-bytes",
            Limit::Extension => "--max-extension-bytes",
            Limit::Pending => "--max-entries",
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
pub(super) struct ChannelReader {
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

/// Turns an archive path into a relative path of normal components: leading `/` and `.`
/// parts are dropped (as tar does), `..` and NUL bytes are refused.
pub(super) fn relative(bytes: &[u8]) -> Result<PathBuf, UnpackError> {
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
pub(super) fn prepare_parent(dir: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
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

pub(super) fn system_time(secs: u64) -> Option<std::time::SystemTime> {
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs.max(1)))
}

/// One entry's metadata after its extension headers were applied.
pub(super) struct Described {
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    uid: u64,
    gid: u64,
    mtime: Option<u64>,
}

/// Reads an extension payload of `size` bytes after checking it against the limit.
pub(super) fn read_extension(
    r: &mut impl Read,
    size: u64,
    limits: &Limits,
) -> Result<Vec<u8>, UnpackError> {
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

pub(super) fn strip_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

pub(super) fn pax_number(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    // mtime may carry a fraction; the whole seconds are enough here.
    s.split('.').next()?.trim().parse().ok()
}

/// Refuses a file of `size` bytes that would leave less than `min_free` bytes available
/// (to unprivileged users: `f_bavail`) on the file system of `dir`.
pub(super) fn check_free_space(dir: &Path, size: u64, min_free: u64) -> Result<(), UnpackError> {
    use std::os::unix::ffi::OsStrExt;
    if min_free == 0 {
        return Ok(());
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| UnpackError::Refused(format!("{}: a NUL in the path", dir.display())))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` lives for the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(UnpackError::Io(io::Error::last_os_error()));
    }
    let available = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    if size.saturating_add(min_free) > available {
        return Err(UnpackError::Refused(format!(
            "a {size}-byte file would leave less than {min_free} bytes free on the file system of {} ({available} available); free space, restore elsewhere, or lower --min-free-bytes",
            dir.display()
        )));
    }
    Ok(())
}

/// The most decompressed data accepted after the tar end marker (a tar record is at most
/// 10 KiB of padding; 1 MiB leaves room for other writers' blocking factors).
pub const MAX_TRAILING: u64 = 1024 * 1024;

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
        // hashed: read the decoder to its end, which also checks the gzip CRC. What follows
        // the end marker is bounded (security review 2, finding 4): an archive the agent wrote
        // ends within a tar record of it, while a crafted one could put gigabytes of zeros
        // there (deflate packs them about 1000:1) to be decompressed before the checksum.
        let mut gz = archive.into_inner();
        let trailing = io::copy(&mut (&mut gz).take(MAX_TRAILING + 1), &mut io::sink())?;
        if trailing > MAX_TRAILING {
            return Err(UnpackError::Refused(format!(
                "more than {MAX_TRAILING} bytes follow the tar archive's end marker: not an archive autobackup wrote"
            )));
        }
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

pub(super) fn unpack_entries<R: Read>(
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
            if pending.has_dir(&rel) {
                // A repeated directory entry: created already, its first mode stands.
                continue;
            }
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
            check_free_space(dir, size, limits.min_free)?;
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
            let max = limits.max_entries.saturating_mul(PENDING_BYTES_PER_ENTRY);
            if pending.path_bytes() + rel.as_os_str().len() as u64 > max {
                return Err(UnpackError::Limit {
                    limit: Limit::Pending,
                    max,
                });
            }
            pending.insert(
                rel,
                Final {
                    kind,
                    mode,
                    uid: d.uid,
                    gid: d.gid,
                    mtime: d.mtime,
                },
            );
        }
    }
    if long_name.is_some() || long_link.is_some() || pax.is_some() {
        return Err(UnpackError::Refused(
            "an extension header at the end of the archive describes no entry".into(),
        ));
    }
    Ok((stats, pending))
}

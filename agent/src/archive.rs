//! Streaming archive: walks a directory tree and writes a gzip-compressed tar of it into a
//! bounded channel of fixed-size chunks, on a blocking thread, hashing every byte on the way
//! (SHA-256 and CRC64NVME). Nothing is staged on disk and at most the channel's capacity
//! plus one chunk is held in memory here.
//!
//! The tree is walked in name order (deterministic archives for an unchanged tree) through
//! directory descriptors: every entry is looked up, opened and `fstat`ed relative to its
//! already-open parent (`openat` with `O_NOFOLLOW`), so an entry or directory swapped for a
//! symlink while the walk runs is never followed out of the tree, and regular files are
//! opened `O_NONBLOCK` and archived only if the opened descriptor is still a regular file,
//! so a FIFO swapped in cannot hang the backup. Regular files, directories and symbolic
//! links (stored as links, never followed) are archived; sockets, FIFOs and devices are
//! skipped and reported. A file that changes size while it is read is archived at the size
//! it had when its header was written (shorter: zero-padded, longer: truncated), as GNU tar
//! does, and reported; the archive stays valid.
//!
//! An entry that vanishes during the walk (ENOENT), cannot be read (EACCES, EPERM) or
//! changes type between the listing and the open is skipped and reported (`vanished`,
//! `unreadable`) rather than failing the run, as GNU tar does; more than
//! [`ArchiveOptions::max_skipped`] of them fail it. The source directory itself and read
//! errors in the middle of a file stay fatal.
//! Paths are relative to the source directory; long and non-UTF-8 names use GNU extensions.
//!
//! **File systems, loops, hard links, torn files.** By default the walk stays on the
//! source's file system (`st_dev` compared with the root's, like `tar --one-file-system`):
//! a mount point below the source is archived as an empty directory and reported
//! ([`ArchiveSummary::other_file_systems`]), so backing up `/` never walks `/proc`, `/sys`
//! or network mounts; [`ArchiveOptions::one_file_system`] off crosses them. Every directory
//! archived is remembered by `(st_dev, st_ino)`, so a directory reached twice (a bind mount
//! of an ancestor) is not descended again and is reported as unreadable. A regular file with
//! more than one link is archived once; its other names become tar hard-link entries
//! pointing at the first. A file whose size, mtime or ctime differ between before and after
//! it was read (a live database rewritten in place) is reported in
//! [`ArchiveSummary::changed`]: snapshot such data before backing it up.
//!
//! **Sparse files** are archived expanded: their holes become zeros in the archive and in
//! a restored file (which then takes its full size on disk). They are detected (fewer
//! 512-byte blocks allocated than the size needs, confirmed by `SEEK_HOLE` finding a hole
//! before the end) and reported in [`ArchiveSummary::sparse`]. The `tar` crate (0.4.46)
//! writes GNU sparse entries only through `Builder::append_file`, which reads the file by
//! itself (no zero-padding of a file that shrinks while it is read, no read hook), and the
//! restore's raw entry reader would have to parse sparse maps from untrusted archives; so
//! the agent keeps the plain entries and says which files grew.
//!
//! When the uploader stops reading (it failed, or was cancelled) the archive ends with
//! [`AgentError::ArchiveAbandoned`], never with an archive error of its own, so that the
//! upload's failure stays the reported root cause.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use flate2::write::GzEncoder;
use tokio::sync::mpsc;

use crate::digest::{Checksums, Digests};
use crate::errors::AgentError;

#[derive(Debug, Clone, Copy)]
pub struct ArchiveOptions {
    /// Size of the chunks sent down the channel.
    pub chunk_size: usize,
    /// gzip level 0-9.
    pub level: u32,
    /// Most entries that may vanish or be unreadable before the run fails.
    pub max_skipped: usize,
    /// Stay on the source's file system (mount points below it are archived empty).
    pub one_file_system: bool,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            chunk_size: 8 * 1024 * 1024,
            level: 6,
            max_skipped: 100,
            one_file_system: true,
        }
    }
}

/// What was archived.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of the regular files' sizes.
    pub uncompressed_bytes: u64,
    /// Checksums and size of the compressed archive.
    pub checksums: Checksums,
    /// Entries not archived (special files), relative paths.
    pub skipped: Vec<String>,
    /// Files whose size, mtime or ctime changed while they were read, relative paths.
    pub changed: Vec<String>,
    /// Extra names of files archived once (tar hard-link entries).
    #[serde(default)]
    pub hard_links: u64,
    /// Mount points of other file systems, archived as empty directories (not descended
    /// into unless the walk crosses file systems), relative paths.
    #[serde(default)]
    pub other_file_systems: Vec<String>,
    /// Entries listed but gone before they were opened (ENOENT), relative paths.
    #[serde(default)]
    pub vanished: Vec<String>,
    /// Entries not archived because they could not be opened (EACCES, EPERM) or changed
    /// type between the listing and the open: `path (reason)`.
    #[serde(default)]
    pub unreadable: Vec<String>,
    /// Sparse files (with holes), archived expanded: their holes are stored as zeros and a
    /// restore writes them in full. Relative paths.
    #[serde(default)]
    pub sparse: Vec<String>,
}

/// What the chunk sink's writes fail with once the receiver is gone (inside an
/// `io::Error` of kind `BrokenPipe`).
#[derive(Debug, thiserror::Error)]
#[error("the uploader stopped reading")]
pub struct UploaderGone;

/// Whether `e` is (or wraps) the sink's [`UploaderGone`].
fn uploader_gone(e: &io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|i| i as _);
    while let Some(inner) = cur {
        if inner.is::<UploaderGone>() {
            return true;
        }
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|i| i.is::<UploaderGone>()) {
                return true;
            }
        }
        cur = inner.source();
    }
    false
}

/// The agent error for an I/O error while archiving `path`.
fn archive_error(path: PathBuf, e: io::Error) -> AgentError {
    if uploader_gone(&e) {
        AgentError::ArchiveAbandoned { path }
    } else {
        AgentError::Archive {
            path,
            why: e.to_string(),
        }
    }
}

/// Sends fixed-size chunks down the channel, hashing everything written.
struct ChunkSink {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    chunk_size: usize,
    digests: Digests,
}

impl ChunkSink {
    fn new(tx: mpsc::Sender<Bytes>, chunk_size: usize) -> ChunkSink {
        ChunkSink {
            tx,
            buf: BytesMut::with_capacity(chunk_size),
            chunk_size,
            digests: Digests::new(),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(self.chunk_size);
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, UploaderGone))
    }

    fn finish(mut self) -> io::Result<Checksums> {
        self.send()?;
        Ok(self.digests.finish())
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.chunk_size - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.digests.update(&data[..n]);
        if self.buf.len() >= self.chunk_size {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Called on the first read of every file (tests change the file while it is read).
type ReadHook = Box<dyn FnMut(&Path) + Send>;

/// Reads exactly `size` bytes: zero-pads a file that shrank, ignores growth.
struct ExactReader<'h, R> {
    inner: io::Take<R>,
    remaining: u64,
    padded: bool,
    /// Run once, before the first byte is read, with the file's relative path.
    hook: Option<(&'h mut ReadHook, &'h Path)>,
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((hook, path)) = self.hook.take() {
            hook(path);
        }
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.remaining as usize);
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            // Shrank: pad with zeros up to the size in the header.
            buf[..want].fill(0);
            n = want;
            self.padded = true;
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Descriptor-relative file system calls (Linux `*at`), so that the walk never resolves a
/// path through something swapped in after it was listed.
mod at {
    use std::ffi::{CStr, CString, OsStr, OsString};
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::PathBuf;

    fn cstr(name: &OsStr) -> io::Result<CString> {
        CString::new(name.as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// What `fstatat(AT_SYMLINK_NOFOLLOW)` says about an entry.
    #[derive(Debug, Clone, Copy)]
    pub struct Stat {
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub mtime: i64,
        pub size: u64,
        pub dev: u64,
        pub ino: u64,
        pub nlink: u64,
    }

    impl Stat {
        pub fn kind(&self) -> u32 {
            self.mode & libc::S_IFMT
        }
    }

    pub fn lstat(dir: &File, name: &OsStr) -> io::Result<Stat> {
        let c = cstr(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `dir` is an open descriptor, `c` a NUL-terminated string and `st` room for
        // one `stat`, all valid for the call; on success the kernel filled `st`.
        let rc = unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstatat returned 0, so `st` is initialised.
        let st = unsafe { st.assume_init() };
        Ok(Stat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            size: st.st_size.max(0) as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
        })
    }

    /// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC)`.
    pub fn open(dir: &File, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
        let c = cstr(name)?;
        // SAFETY: `dir` is an open descriptor and `c` a NUL-terminated string, both valid
        // for the call.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor we just opened and own nowhere else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    pub fn readlink(dir: &File, name: &OsStr) -> io::Result<PathBuf> {
        let c = cstr(name)?;
        let mut buf = vec![0u8; 4096];
        loop {
            // SAFETY: `buf` has `buf.len()` writable bytes; readlinkat writes at most that.
            let n = unsafe {
                libc::readlinkat(
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            if n < buf.len() {
                buf.truncate(n);
                return Ok(PathBuf::from(OsString::from_vec(buf)));
            }
            if buf.len() >= 1 << 20 {
                return Err(io::Error::other("symlink target longer than 1 MiB"));
            }
            buf.resize(buf.len() * 2, 0);
        }
    }

    /// The names in an open directory, without `.` and `..`.
    pub fn list(dir: &File) -> io::Result<Vec<OsString>> {
        // fdopendir takes ownership of its descriptor: give it a duplicate.
        let dup = dir.try_clone()?;
        let fd = std::os::fd::IntoRawFd::into_raw_fd(dup);
        // SAFETY: `fd` is an open directory descriptor we own; on success the DIR owns it.
        let d = unsafe { libc::fdopendir(fd) };
        if d.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `fd` is still ours to close.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        // SAFETY: `d` is a valid DIR (the duplicate shares the offset: start from 0).
        unsafe { libc::rewinddir(d) };
        let mut names = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; readdir reports errors only through it.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `d` is a valid DIR, used by this thread only.
            let ent = unsafe { libc::readdir(d) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            // SAFETY: a non-null dirent from readdir holds a NUL-terminated name that stays
            // valid until the next readdir on `d`; it is copied right away.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        };
        // SAFETY: `d` is valid and closed exactly once (this also closes `fd`).
        unsafe { libc::closedir(d) };
        result.map(|()| names)
    }
}

/// What opening a listed regular file gave.
#[derive(Debug)]
enum Opened {
    File(File, std::fs::Metadata),
    /// The name is no longer a regular file (a FIFO, device or directory swapped in).
    NotRegular,
}

/// Opens `name` in `dir` for reading without following a symlink and without blocking on
/// a FIFO, then checks on the descriptor that it is a regular file.
fn open_regular(dir: &File, name: &OsStr) -> io::Result<Opened> {
    let f = at::open(dir, name, libc::O_RDONLY | libc::O_NONBLOCK)?;
    let meta = f.metadata()?;
    Ok(if meta.is_file() {
        Opened::File(f, meta)
    } else {
        Opened::NotRegular
    })
}

/// Whether `file` has holes: fewer 512-byte blocks allocated (`st_blocks`, stat(2)) than
/// its size needs, confirmed by `lseek(SEEK_HOLE)` finding a hole before the end (a file
/// system without hole support reports the end; compressed or inline data can also have
/// few blocks without holes). The file offset is put back to 0 for the read that follows.
fn is_sparse(file: &File, meta: &std::fs::Metadata) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let size = meta.len();
    if size == 0 || meta.blocks().saturating_mul(512) >= size {
        return Ok(false);
    }
    // SAFETY: lseek on a descriptor `file` owns and keeps open; no memory is passed.
    let hole = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_HOLE) };
    // SAFETY: as above.
    if unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_SET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(hole >= 0 && (hole as u64) < size)
}

/// What decides whether a file changed while it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    fn of(m: &std::fs::Metadata) -> Version {
        use std::os::unix::fs::MetadataExt;
        Version {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

struct Walker<W: Write> {
    builder: tar::Builder<W>,
    root: PathBuf,
    max_skipped: usize,
    /// `Some(st_dev)` of the root when the walk stays on its file system.
    root_dev: Option<u64>,
    /// Directories archived so far, by (st_dev, st_ino).
    dirs_seen: std::collections::HashSet<(u64, u64)>,
    /// Files with more than one link archived so far: (st_dev, st_ino) -> path.
    links: std::collections::HashMap<(u64, u64), PathBuf>,
    hard_links: u64,
    other_file_systems: Vec<String>,
    read_hook: Option<ReadHook>,
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    skipped: Vec<String>,
    changed: Vec<String>,
    vanished: Vec<String>,
    unreadable: Vec<String>,
    sparse: Vec<String>,
}

impl<W: Write> Walker<W> {
    fn err(&self, path: &Path, e: io::Error) -> AgentError {
        archive_error(self.root.join(path), e)
    }

    /// Records an entry that could not be archived because it vanished, is unreadable or
    /// changed type; other errors are fatal, and so is going over `max_skipped`.
    fn skip(&mut self, rel: &Path, e: io::Error) -> Result<(), AgentError> {
        let shown = rel.to_string_lossy().into_owned();
        match e.raw_os_error() {
            Some(libc::ENOENT) => {
                tracing::warn!(path = %shown, "entry vanished before it was read; not archived");
                self.vanished.push(shown);
            }
            Some(libc::EACCES) | Some(libc::EPERM) => {
                tracing::warn!(path = %shown, error = %e, "entry unreadable; not archived");
                self.unreadable.push(format!("{shown} ({e})"));
            }
            Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EINVAL) | Some(libc::ENXIO) => {
                tracing::warn!(path = %shown, error = %e, "entry changed type while the tree was walked; not archived");
                self.unreadable.push(format!(
                    "{shown} (changed type while the tree was walked: {e})"
                ));
            }
            _ => return Err(self.err(rel, e)),
        }
        let n = self.vanished.len() + self.unreadable.len();
        if n > self.max_skipped {
            return Err(AgentError::Archive {
                path: self.root.clone(),
                why: format!(
                    "{n} entries vanished or were unreadable, more than --max-skipped {}; last: {}",
                    self.max_skipped,
                    rel.display()
                ),
            });
        }
        Ok(())
    }

    fn walk(&mut self, dir: &File, rel: &Path) -> Result<(), AgentError> {
        let mut names = match at::list(dir) {
            Ok(n) => n,
            Err(e) if !rel.as_os_str().is_empty() => return self.skip(rel, e),
            Err(e) => return Err(self.err(rel, e)),
        };
        names.sort();
        for name in names {
            self.entry(dir, rel, &name)?;
        }
        Ok(())
    }

    /// Archives one listed entry of `dir` (which is `rel` in the tree).
    fn entry(&mut self, dir: &File, rel: &Path, name: &OsStr) -> Result<(), AgentError> {
        let rel_path = rel.join(name);
        let st = match at::lstat(dir, name) {
            Ok(st) => st,
            Err(e) => return self.skip(&rel_path, e),
        };
        match st.kind() {
            libc::S_IFDIR => {
                let sub = match at::open(dir, name, libc::O_RDONLY | libc::O_DIRECTORY) {
                    Ok(f) => f,
                    Err(e) => return self.skip(&rel_path, e),
                };
                let meta = sub.metadata().map_err(|e| self.err(&rel_path, e))?;
                let id = {
                    use std::os::unix::fs::MetadataExt;
                    (meta.dev(), meta.ino())
                };
                if !self.dirs_seen.insert(id) {
                    tracing::warn!(path = %rel_path.display(), "directory reached twice (a bind mount or loop); not archived again");
                    self.unreadable.push(format!(
                        "{} (directory reached twice: a bind mount or a loop; not archived again)",
                        rel_path.display()
                    ));
                    return Ok(());
                }
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                self.builder
                    .append_data(&mut h, &rel_path, io::empty())
                    .map_err(|e| self.err(&rel_path, e))?;
                self.dirs += 1;
                if self.root_dev.is_some_and(|d| d != id.0) {
                    tracing::warn!(path = %rel_path.display(), "mount point of another file system: archived empty, not descended (--cross-file-systems crosses it)");
                    self.other_file_systems
                        .push(rel_path.to_string_lossy().into_owned());
                    return Ok(());
                }
                self.walk(&sub, &rel_path)?;
            }
            libc::S_IFREG => {
                let (file, meta) = match open_regular(dir, name) {
                    Ok(Opened::File(f, m)) => (f, m),
                    Ok(Opened::NotRegular) => {
                        return self.skip(&rel_path, io::Error::from_raw_os_error(libc::ENXIO))
                    }
                    Err(e) => return self.skip(&rel_path, e),
                };
                let (id, nlink) = {
                    use std::os::unix::fs::MetadataExt;
                    ((meta.dev(), meta.ino()), meta.nlink())
                };
                if self.root_dev.is_some_and(|d| d != id.0) {
                    // A file bind-mounted from elsewhere.
                    self.other_file_systems
                        .push(rel_path.to_string_lossy().into_owned());
                    return Ok(());
                }
                if nlink > 1 {
                    if let Some(first) = self.links.get(&id).cloned() {
                        let mut h = tar::Header::new_gnu();
                        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        self.builder
                            .append_link(&mut h, &rel_path, &first)
                            .map_err(|e| self.err(&rel_path, e))?;
                        self.hard_links += 1;
                        return Ok(());
                    }
                }
                if is_sparse(&file, &meta).map_err(|e| self.err(&rel_path, e))? {
                    tracing::info!(path = %rel_path.display(), bytes = meta.len(), "sparse file: archived expanded (its holes are stored as zeros; a restore writes it in full)");
                    self.sparse.push(rel_path.to_string_lossy().into_owned());
                }
                // Size from the open file, so the header matches what we read.
                let size = meta.len();
                let before = Version::of(&meta);
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                h.set_size(size);
                let mut hook = self.read_hook.take();
                let mut reader = ExactReader {
                    inner: file.take(size),
                    remaining: size,
                    padded: false,
                    hook: hook.as_mut().map(|h| (h, rel_path.as_path())),
                };
                let appended = self.builder.append_data(&mut h, &rel_path, &mut reader);
                let padded = reader.padded;
                let mut file = reader.inner.into_inner();
                self.read_hook = hook;
                appended.map_err(|e| self.err(&rel_path, e))?;
                let grew = file.read(&mut [0u8; 1]).map(|n| n > 0).unwrap_or(false);
                let rewritten = file
                    .metadata()
                    .map(|m| Version::of(&m) != before)
                    .unwrap_or(false);
                if nlink > 1 {
                    self.links.insert(id, rel_path.clone());
                }
                if padded || grew || rewritten {
                    tracing::warn!(path = %rel_path.display(), "file changed while it was archived");
                    self.changed.push(rel_path.to_string_lossy().into_owned());
                }
                self.files += 1;
                self.bytes += size;
            }
            libc::S_IFLNK => {
                let target = match at::readlink(dir, name) {
                    Ok(t) => t,
                    Err(e) => return self.skip(&rel_path, e),
                };
                // The fields HeaderMode::Complete takes from a symlink's lstat.
                let mut h = tar::Header::new_gnu();
                h.set_mtime(st.mtime.max(0) as u64);
                h.set_uid(st.uid.into());
                h.set_gid(st.gid.into());
                h.set_mode(st.mode);
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                self.builder
                    .append_link(&mut h, &rel_path, &target)
                    .map_err(|e| self.err(&rel_path, e))?;
                self.symlinks += 1;
            }
            _ => {
                tracing::warn!(path = %rel_path.display(), "skipping special file (socket, FIFO or device)");
                self.skipped.push(rel_path.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
}

/// What a pre-walk of the tree found ([`estimate`]), to size the upload before it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Entries the archive will hold (directories, files, links).
    pub entries: u64,
    /// Regular files (each inode once).
    pub files: u64,
    /// Sum of the regular files' sizes (each inode once; sparse files at their full
    /// size, since they are archived expanded).
    pub bytes: u64,
    /// The tar stream those entries make: headers, GNU long-name extensions, data padded
    /// to 512-byte blocks.
    pub tar_bytes: u64,
}

/// One tar block.
const BLOCK: u64 = 512;

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK).saturating_mul(BLOCK)
}

/// Tar bytes of one entry's headers: the header block, plus a GNU long-name (or
/// long-link) extension for a name of 100 bytes or more (its own header and the
/// NUL-terminated name in whole blocks).
fn header_bytes(name_len: usize, link_len: usize) -> u64 {
    let ext = |n: usize| {
        if n >= 100 {
            BLOCK + padded(n as u64 + 1)
        } else {
            0
        }
    };
    BLOCK + ext(name_len) + ext(link_len)
}

impl Estimate {
    /// An upper bound of the compressed archive's size: the tar stream with its two
    /// end-of-archive blocks (and tar's padding to a 10 KiB record), plus deflate's worst
    /// case on incompressible data (zlib's `deflateBound`: under 1/1024 more plus a few
    /// bytes) and the gzip header and trailer.
    pub fn archive_bound(&self) -> u64 {
        let tar = self.tar_bytes.saturating_add(10 * 1024);
        tar.saturating_add(tar / 1024).saturating_add(1024)
    }
}

/// Walks `source` as [`write_archive`] will (descriptor-relative, no symlink followed,
/// the same file system unless `one_file_system` is off, each directory and each
/// multiply-linked file once) and sums what the archive will hold, without reading any
/// file. Entries that cannot be listed or stat'ed are left out (the archive reports
/// them); only an unreadable source fails.
pub fn estimate(source: &Path, one_file_system: bool) -> Result<Estimate, AgentError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let fail = |e: io::Error| AgentError::Archive {
        path: source.to_path_buf(),
        why: format!("cannot estimate the size: {e}"),
    };
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(source)
        .map_err(fail)?;
    let m = root.metadata().map_err(fail)?;
    let root_dev = one_file_system.then_some(m.dev());
    let mut seen = std::collections::HashSet::new();
    seen.insert((m.dev(), m.ino()));
    // Files with several names counted so far: (st_dev, st_ino) -> first name's length.
    let mut links = std::collections::HashMap::new();
    let mut est = Estimate::default();
    // The walk's order (depth first, names sorted), so that hard-link entries name the
    // same first path: (open directory, its path length in the archive, names left).
    let listed = |dir: &File| {
        let mut names = at::list(dir).unwrap_or_default();
        names.sort();
        names.into_iter()
    };
    let names = listed(&root);
    let mut stack = vec![(root, 0usize, names)];
    while let Some((dir, dir_len, names)) = stack.last_mut() {
        let (dir_len, Some(name)) = (*dir_len, names.next()) else {
            stack.pop();
            continue;
        };
        let dir: &File = dir;
        let mut descend = None;
        {
            let Ok(st) = at::lstat(dir, &name) else {
                continue;
            };
            let len = if dir_len == 0 {
                name.as_bytes().len()
            } else {
                dir_len + 1 + name.as_bytes().len()
            };
            match st.kind() {
                libc::S_IFDIR => {
                    if !seen.insert((st.dev, st.ino)) {
                        continue;
                    }
                    est.entries += 1;
                    // A directory's name is stored with a trailing slash.
                    est.tar_bytes += header_bytes(len + 1, 0);
                    if root_dev.is_some_and(|d| d != st.dev) {
                        continue;
                    }
                    if let Ok(sub) = at::open(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY) {
                        let names = listed(&sub);
                        descend = Some((sub, len, names));
                    }
                }
                libc::S_IFREG => {
                    if root_dev.is_some_and(|d| d != st.dev) {
                        continue;
                    }
                    est.entries += 1;
                    if st.nlink > 1 {
                        if let Some(&first) = links.get(&(st.dev, st.ino)) {
                            // A hard-link entry: a header naming the first path.
                            est.tar_bytes += header_bytes(len, first);
                            continue;
                        }
                        links.insert((st.dev, st.ino), len);
                    }
                    est.files += 1;
                    est.bytes = est.bytes.saturating_add(st.size);
                    est.tar_bytes = est
                        .tar_bytes
                        .saturating_add(header_bytes(len, 0))
                        .saturating_add(padded(st.size));
                }
                libc::S_IFLNK => {
                    est.entries += 1;
                    let target = at::readlink(dir, &name)
                        .map(|t| t.as_os_str().as_bytes().len())
                        .unwrap_or(4096);
                    est.tar_bytes += header_bytes(len, target);
                }
                _ => {}
            }
        }
        if let Some(frame) = descend {
            stack.push(frame);
        }
    }
    Ok(est)
}

/// Writes the archive of `source` into `tx`; runs on the calling (blocking) thread.
pub fn write_archive(
    source: &Path,
    opts: ArchiveOptions,
    tx: mpsc::Sender<Bytes>,
) -> Result<ArchiveSummary, AgentError> {
    write_archive_with(source, opts, tx, None)
}

/// [`write_archive`], running `read_hook` as each file starts being read.
fn write_archive_with(
    source: &Path,
    opts: ArchiveOptions,
    tx: mpsc::Sender<Bytes>,
    read_hook: Option<ReadHook>,
) -> Result<ArchiveSummary, AgentError> {
    let sink = ChunkSink::new(tx, opts.chunk_size.max(1));
    let gz = GzEncoder::new(sink, flate2::Compression::new(opts.level.min(9)));
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    let mut w = Walker {
        builder,
        root: source.to_path_buf(),
        max_skipped: opts.max_skipped,
        root_dev: None,
        dirs_seen: Default::default(),
        links: Default::default(),
        hard_links: 0,
        other_file_systems: Vec::new(),
        read_hook,
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
        skipped: Vec::new(),
        changed: Vec::new(),
        vanished: Vec::new(),
        unreadable: Vec::new(),
        sparse: Vec::new(),
    };
    // The source itself may be a symlink to the directory (it is followed once, here).
    let root = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(source)
            .map_err(|e| w.err(Path::new(""), e))?
    };
    {
        use std::os::unix::fs::MetadataExt;
        let m = root.metadata().map_err(|e| w.err(Path::new(""), e))?;
        w.root_dev = opts.one_file_system.then_some(m.dev());
        w.dirs_seen.insert((m.dev(), m.ino()));
    }
    w.walk(&root, Path::new(""))?;
    let io_err = |e: io::Error| archive_error(source.to_path_buf(), e);
    let gz = w.builder.into_inner().map_err(io_err)?;
    let sink = gz.finish().map_err(io_err)?;
    let checksums = sink.finish().map_err(io_err)?;
    Ok(ArchiveSummary {
        files: w.files,
        dirs: w.dirs,
        symlinks: w.symlinks,
        uncompressed_bytes: w.bytes,
        checksums,
        skipped: w.skipped,
        changed: w.changed,
        hard_links: w.hard_links,
        other_file_systems: w.other_file_systems,
        vanished: w.vanished,
        unreadable: w.unreadable,
        sparse: w.sparse,
    })
}

/// Starts [`write_archive`] on a blocking thread; the receiver gets the chunks, the handle
/// the summary once the last chunk was sent.
pub fn spawn(
    source: PathBuf,
    opts: ArchiveOptions,
    channel_chunks: usize,
) -> (
    mpsc::Receiver<Bytes>,
    tokio::task::JoinHandle<Result<ArchiveSummary, AgentError>>,
) {
    let (tx, rx) = mpsc::channel(channel_chunks.max(1));
    let handle = tokio::task::spawn_blocking(move || write_archive(&source, opts, tx));
    (rx, handle)
}

/// Awaits the archive thread.
pub async fn join(
    handle: tokio::task::JoinHandle<Result<ArchiveSummary, AgentError>>,
) -> Result<ArchiveSummary, AgentError> {
    handle
        .await
        .map_err(|e| AgentError::Internal(format!("archive thread: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn chunk_sink_emits_fixed_size_chunks_and_hashes_everything() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut sink = ChunkSink::new(tx, 10);
        let data: Vec<u8> = (0..=254u8).collect();
        sink.write_all(&data).unwrap();
        let sums = sink.finish().unwrap();
        let mut chunks = Vec::new();
        while let Ok(c) = rx.try_recv() {
            chunks.push(c);
        }
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == 10));
        assert_eq!(chunks.last().unwrap().len(), 5);
        let joined: Vec<u8> = chunks.concat();
        assert_eq!(joined, data);
        assert_eq!(sums.crc64nvme, crate::digest::crc64nvme_base64(&data));
        assert_eq!(sums.bytes, 255);
    }

    #[test]
    fn sink_reports_a_gone_receiver() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut sink = ChunkSink::new(tx, 4);
        let err = sink.write_all(b"12345678").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn exact_reader_pads_and_truncates() {
        let mut short = ExactReader {
            inner: (&b"abc"[..]).take(5),
            remaining: 5,
            padded: false,
            hook: None,
        };
        let mut out = Vec::new();
        short.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
        assert!(short.padded);
        let mut long = ExactReader {
            inner: (&b"abcdef"[..]).take(4),
            remaining: 4,
            padded: false,
            hook: None,
        };
        let mut out = Vec::new();
        long.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
        assert!(!long.padded);
    }

    #[test]
    fn archives_a_tree_in_order_with_links_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/nested")).unwrap();
        fs::write(root.join("b/nested/x.txt"), b"hello").unwrap();
        fs::write(root.join("a.txt"), b"").unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        let (tx, mut rx) = mpsc::channel(1024);
        let summary = write_archive(
            root,
            ArchiveOptions {
                chunk_size: 64,
                level: 1,
                ..ArchiveOptions::default()
            },
            tx,
        )
        .unwrap();
        assert_eq!((summary.files, summary.dirs, summary.symlinks), (2, 2, 1));
        assert_eq!(summary.uncompressed_bytes, 5);
        let mut bytes = Vec::new();
        while let Ok(c) = rx.try_recv() {
            bytes.extend_from_slice(&c);
        }
        assert_eq!(bytes.len() as u64, summary.checksums.bytes);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.txt", "b", "b/nested", "b/nested/x.txt", "link"]);
    }

    #[test]
    fn unreadable_source_is_an_archive_error() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(4);
        let err =
            write_archive(&dir.path().join("missing"), ArchiveOptions::default(), tx).unwrap_err();
        assert_eq!(err.exit_code(), 8);
    }

    fn sink_walker(root: &Path, max_skipped: usize) -> Walker<io::Sink> {
        Walker {
            builder: tar::Builder::new(io::sink()),
            root: root.to_path_buf(),
            max_skipped,
            root_dev: None,
            dirs_seen: Default::default(),
            links: Default::default(),
            hard_links: 0,
            other_file_systems: Vec::new(),
            read_hook: None,
            files: 0,
            dirs: 0,
            symlinks: 0,
            bytes: 0,
            skipped: Vec::new(),
            changed: Vec::new(),
            vanished: Vec::new(),
            unreadable: Vec::new(),
            sparse: Vec::new(),
        }
    }

    /// Finding 6: a name that is a FIFO or a symlink by the time it is opened is neither
    /// followed nor blocks.
    #[test]
    fn open_regular_neither_follows_symlinks_nor_blocks_on_fifos() {
        use std::os::unix::ffi::OsStrExt;
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let fifo = std::ffi::CString::new(dir.path().join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        fs::write(dir.path().join("plain"), b"plain").unwrap();
        let d = File::open(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fifo =
                open_regular(&d, OsStr::new("fifo")).map(|o| matches!(o, Opened::NotRegular));
            let link = open_regular(&d, OsStr::new("link"))
                .map(|_| ())
                .unwrap_err();
            let plain = open_regular(&d, OsStr::new("plain")).unwrap();
            let _ = tx.send((
                fifo.unwrap(),
                link.raw_os_error(),
                matches!(plain, Opened::File(..)),
            ));
        });
        let (fifo_refused, link_err, plain_ok) = rx
            .recv_timeout(std::time::Duration::from_secs(2))
            .expect("open_regular blocked");
        assert!(fifo_refused);
        assert_eq!(link_err, Some(libc::ELOOP));
        assert!(plain_ok);
    }

    /// Finding 6: the walk reports an entry swapped for a symlink between listing and open
    /// as unreadable, and never archives the symlink's target.
    #[test]
    fn a_file_swapped_for_a_symlink_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("f")).unwrap();
        let d = File::open(dir.path()).unwrap();
        let mut w = sink_walker(dir.path(), 100);
        // As if lstat had seen a regular file: go straight to the open.
        match open_regular(&d, OsStr::new("f")) {
            Err(e) => w.skip(Path::new("f"), e).unwrap(),
            Ok(_) => panic!("followed the symlink"),
        }
        assert_eq!(w.files, 0);
        assert_eq!(w.unreadable.len(), 1, "{:?}", w.unreadable);
        assert!(w.unreadable[0].contains("changed type"));
    }

    /// Finding 7: an entry listed but gone before it is read is skipped and reported;
    /// more than max_skipped of them fail the run.
    #[test]
    fn vanished_entries_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("kept"), b"k").unwrap();
        let d = File::open(dir.path()).unwrap();
        let mut w = sink_walker(dir.path(), 1);
        // Listed, then removed, then walked.
        w.entry(&d, Path::new(""), OsStr::new("gone")).unwrap();
        w.entry(&d, Path::new(""), OsStr::new("kept")).unwrap();
        assert_eq!(w.vanished, ["gone"]);
        assert_eq!(w.files, 1);
        let e = w
            .entry(&d, Path::new(""), OsStr::new("gone too"))
            .unwrap_err();
        assert_eq!(e.exit_code(), 8);
        assert!(e.to_string().contains("--max-skipped 1"), "{e}");
    }

    /// Finding 7: unreadable files and directories (as a non-root user) are skipped and
    /// reported, and the backup of the rest succeeds.
    #[test]
    fn unreadable_entries_are_skipped_and_reported() {
        use std::os::unix::fs::PermissionsExt;
        if !crate::test_support::runs_as_non_root(
            "archive::tests::unreadable_entries_are_skipped_and_reported",
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("lost+found")).unwrap();
        fs::write(root.join("lost+found/x"), b"x").unwrap();
        fs::write(root.join("secret"), b"s").unwrap();
        fs::write(root.join("ok"), b"ok").unwrap();
        fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
        let (tx, _rx) = mpsc::channel(1024);
        let summary = write_archive(root, ArchiveOptions::default(), tx).unwrap();
        fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(summary.files, 1);
        assert_eq!(summary.unreadable.len(), 2, "{:?}", summary.unreadable);
        assert!(summary.unreadable[0].starts_with("lost+found"));
        assert!(summary.unreadable[1].starts_with("secret"));
        let (tx, _rx) = mpsc::channel(1024);
        fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o000)).unwrap();
        let strict = ArchiveOptions {
            max_skipped: 1,
            ..ArchiveOptions::default()
        };
        assert_eq!(write_archive(root, strict, tx).unwrap_err().exit_code(), 8);
        fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// Finding 18: an archive whose uploader went away ends in ArchiveAbandoned, which
    /// the uploader recognises as its own doing.
    #[test]
    fn a_gone_uploader_abandons_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let noise: Vec<u8> = (0..(1u32 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(dir.path().join("f"), noise).unwrap();
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let opts = ArchiveOptions {
            chunk_size: 1024,
            level: 0,
            ..ArchiveOptions::default()
        };
        let e = write_archive(dir.path(), opts, tx).unwrap_err();
        assert!(matches!(e, AgentError::ArchiveAbandoned { .. }), "{e}");
        assert_eq!(e.exit_code(), 8);
        assert!(e.to_string().contains("stopped reading"), "{e}");
    }

    fn entries_of(bytes: &[u8]) -> Vec<(String, tar::EntryType, u64, Option<String>)> {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                    e.size(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    fn archive_of(root: &Path, hook: Option<ReadHook>) -> (Vec<u8>, ArchiveSummary) {
        let (tx, mut rx) = mpsc::channel(4096);
        let s = write_archive_with(root, ArchiveOptions::default(), tx, hook).unwrap();
        let mut bytes = Vec::new();
        while let Ok(c) = rx.try_recv() {
            bytes.extend_from_slice(&c);
        }
        (bytes, s)
    }

    /// Finding 18: the pre-walk counts what the archive holds, and its bound is above the
    /// archive's real size, even uncompressed (level 0) with long names and links.
    #[test]
    fn the_estimate_bounds_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let long = "n".repeat(150);
        fs::create_dir_all(root.join(&long).join("sub")).unwrap();
        let mut x: u32 = 7;
        let noise: Vec<u8> = (0..300_001)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        fs::write(root.join(&long).join("sub/noise"), &noise).unwrap();
        fs::write(root.join("small"), b"abc").unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        fs::hard_link(root.join("small"), root.join(&long).join("again")).unwrap();
        std::os::unix::fs::symlink(&long, root.join("to-long")).unwrap();
        let est = estimate(root, true).unwrap();
        assert_eq!((est.entries, est.files, est.bytes), (7, 3, 300_004));
        let (tx, mut rx) = mpsc::channel(4096);
        let opts = ArchiveOptions {
            level: 0,
            ..ArchiveOptions::default()
        };
        let s = write_archive(root, opts, tx).unwrap();
        let mut gz = Vec::new();
        while let Ok(c) = rx.try_recv() {
            gz.extend_from_slice(&c);
        }
        assert_eq!((s.files, s.uncompressed_bytes), (est.files, est.bytes));
        let mut tar_stream = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar_stream)
            .unwrap();
        assert!(
            tar_stream.len() as u64 == est.tar_bytes + 1024,
            "tar {} != estimate {} + end blocks",
            tar_stream.len(),
            est.tar_bytes
        );
        assert!(s.checksums.bytes <= est.archive_bound(), "{s:?} {est:?}");
        // A missing source fails; an empty one holds nothing.
        assert!(estimate(&root.join("nope"), true).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(estimate(empty.path(), true).unwrap(), Estimate::default());
    }

    /// Finding 30: sparse files are detected and reported (archived expanded, so their
    /// content is intact); dense files, even all zeros, are not reported.
    #[test]
    fn sparse_files_are_reported_and_archived_expanded() {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let size = 8u64 << 20;
        let mut holey = File::create(root.join("holey")).unwrap();
        holey.set_len(size).unwrap();
        // Data first, so that SEEK_HOLE moves the offset (the read must start at 0 again).
        holey.write_all(&[9u8; 4096]).unwrap();
        holey.seek(SeekFrom::Start(1 << 20)).unwrap();
        holey.write_all(&[7u8; 4096]).unwrap();
        holey.sync_all().unwrap();
        File::create(root.join("only-hole"))
            .unwrap()
            .set_len(size)
            .unwrap();
        fs::write(root.join("zeros"), vec![0u8; 1 << 20]).unwrap();
        fs::write(root.join("small"), b"x").unwrap();
        let m = fs::metadata(root.join("holey")).unwrap();
        if m.blocks() * 512 >= size {
            eprintln!("this file system allocated every block: no holes to detect, skipped");
            return;
        }
        let (bytes, s) = archive_of(root, None);
        assert_eq!(s.sparse, ["holey", "only-hole"], "{s:?}");
        assert_eq!(s.uncompressed_bytes, 2 * size + (1 << 20) + 1);
        // Expanded: the entry holds the whole size, holes as zeros.
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap() == Path::new("holey") {
                assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                assert_eq!(data.len() as u64, size);
                let mut expected = vec![0u8; size as usize];
                expected[..4096].fill(9);
                expected[1 << 20..(1 << 20) + 4096].fill(7);
                assert!(data == expected, "holey content differs");
            }
        }
        // The estimate counts them at full size too.
        let est = estimate(root, true).unwrap();
        assert_eq!(est.bytes, s.uncompressed_bytes);
    }

    /// Finding 30: a file with two names is archived once, plus a hard-link entry.
    #[test]
    fn hard_links_are_archived_once() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"hello").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("d/b")).unwrap();
        let (bytes, s) = archive_of(dir.path(), None);
        assert_eq!((s.files, s.hard_links, s.uncompressed_bytes), (1, 1, 5));
        let entries = entries_of(&bytes);
        let data: Vec<_> = entries
            .iter()
            .filter(|e| e.1 == tar::EntryType::Regular)
            .collect();
        let links: Vec<_> = entries
            .iter()
            .filter(|e| e.1 == tar::EntryType::Link)
            .collect();
        assert_eq!(data.len(), 1, "{entries:?}");
        assert_eq!((data[0].0.as_str(), data[0].2), ("a", 5));
        assert_eq!(links.len(), 1, "{entries:?}");
        assert_eq!(links[0].0, "d/b");
        assert_eq!(links[0].3.as_deref(), Some("a"));
        assert_eq!(links[0].2, 0);
    }

    /// Finding 30: a file rewritten at the same size while it is read (its mtime moves)
    /// is reported as changed.
    #[test]
    fn a_file_touched_while_it_is_read_is_reported_changed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("db"), b"pages").unwrap();
        fs::write(dir.path().join("quiet"), b"still").unwrap();
        let (_, calm) = archive_of(dir.path(), None);
        assert!(calm.changed.is_empty(), "{:?}", calm.changed);
        let root = dir.path().to_path_buf();
        let hook: ReadHook = Box::new(move |rel: &Path| {
            if rel == Path::new("db") {
                let t = filetime::FileTime::from_unix_time(1_000_000_000, 0);
                filetime::set_file_mtime(root.join(rel), t).unwrap();
            }
        });
        let (_, s) = archive_of(dir.path(), Some(hook));
        assert_eq!(s.changed, ["db"]);
        assert_eq!(s.files, 2);
    }

    /// Finding 30: a mount point of another file system is archived empty and reported;
    /// a directory reached twice (bind-mount loop) is not archived again.
    #[test]
    fn other_file_systems_and_directory_loops_are_not_descended() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("mnt")).unwrap();
        fs::write(dir.path().join("mnt/inside"), b"x").unwrap();
        let d = File::open(dir.path()).unwrap();
        let mut w = sink_walker(dir.path(), 100);
        w.root_dev = Some(u64::MAX); // as if the source were on another device
        w.entry(&d, Path::new(""), OsStr::new("mnt")).unwrap();
        assert_eq!((w.dirs, w.files), (1, 0));
        assert_eq!(w.other_file_systems, ["mnt"]);

        let mut w = sink_walker(dir.path(), 100);
        let m = fs::metadata(dir.path().join("mnt")).unwrap();
        w.dirs_seen.insert((m.dev(), m.ino()));
        w.entry(&d, Path::new(""), OsStr::new("mnt")).unwrap();
        assert_eq!((w.dirs, w.files), (0, 0));
        assert!(
            w.unreadable[0].contains("reached twice"),
            "{:?}",
            w.unreadable
        );

        // The default crosses nothing on a single file system.
        let (_, s) = archive_of(dir.path(), None);
        assert_eq!((s.dirs, s.files), (1, 1));
        assert!(s.other_file_systems.is_empty());
    }
}

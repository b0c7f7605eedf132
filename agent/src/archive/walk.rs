//! The descriptor-relative walk that writes the tree's entries into the tar builder
//! ([`Walker`]); see the module docs of [`super`] for what it archives and skips.
//!
//! Floor 3: may import modules of floors 0 to 2 only; it imports `archive::at`, `archive::sink`,
//! `errors`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::at;
use super::sink::archive_error;
use crate::errors::AgentError;

/// Called on the first read of every file (tests change the file while it is read).
pub(super) type ReadHook = Box<dyn FnMut(&Path) + Send>;

/// Reads exactly `size` bytes: zero-pads a file that shrank, ignores growth.
pub(super) struct ExactReader<'h, R> {
    pub(super) inner: io::Take<R>,
    pub(super) remaining: u64,
    pub(super) padded: bool,
    /// Run once, before the first byte is read, with the file's relative path.
    pub(super) hook: Option<(&'h mut ReadHook, &'h Path)>,
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

/// What opening a listed regular file gave.
#[derive(Debug)]
pub(super) enum Opened {
    File(File, std::fs::Metadata),
    /// The name is no longer a regular file (a FIFO, device or directory swapped in).
    NotRegular,
}

/// Opens `name` in `dir` for reading without following a symlink and without blocking on
/// a FIFO, then checks on the descriptor that it is a regular file.
pub(super) fn open_regular(dir: &File, name: &OsStr) -> io::Result<Opened> {
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
pub(super) fn is_sparse(file: &File, meta: &std::fs::Metadata) -> io::Result<bool> {
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
pub(super) struct Version {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    pub(super) fn of(m: &std::fs::Metadata) -> Version {
        use std::os::unix::fs::MetadataExt;
        Version {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

pub(super) struct Walker<W: Write> {
    pub(super) builder: tar::Builder<W>,
    pub(super) root: PathBuf,
    pub(super) max_skipped: usize,
    /// `Some(st_dev)` of the root when the walk stays on its file system.
    pub(super) root_dev: Option<u64>,
    /// Directories archived so far, by (st_dev, st_ino).
    pub(super) dirs_seen: std::collections::HashSet<(u64, u64)>,
    /// Files with more than one link archived so far: (st_dev, st_ino) -> path.
    pub(super) links: std::collections::HashMap<(u64, u64), PathBuf>,
    pub(super) hard_links: u64,
    pub(super) other_file_systems: Vec<String>,
    pub(super) read_hook: Option<ReadHook>,
    pub(super) files: u64,
    pub(super) dirs: u64,
    pub(super) symlinks: u64,
    pub(super) bytes: u64,
    pub(super) skipped: Vec<String>,
    pub(super) changed: Vec<String>,
    pub(super) vanished: Vec<String>,
    pub(super) unreadable: Vec<String>,
    pub(super) sparse: Vec<String>,
    /// Entries of `unreadable` left out because a restore could not create them (path too
    /// long, tree too deep): reported, but not counted against `max_skipped`.
    pub(super) beyond_restore: usize,
}

/// The archive's entry for the source directory itself (its mode, owner and mtime), the
/// first entry of every archive; a restore applies it to the restored directory.
pub const ROOT_ENTRY: &str = "./";

/// Longest path (relative to the source, in bytes) the walk archives: the restore creates
/// entries by their full path below the target's staging directory, which must stay below
/// `PATH_MAX` (4,096 bytes with the NUL); 1,024 bytes are left for the target's own path
/// and the staging name. Longer paths are reported as unreadable at backup time, since
/// the backup could not be restored.
pub const MAX_RESTORABLE_PATH: usize = 3072;

/// Deepest directory level the walk descends into: it recurses and holds a descriptor per
/// level, so a deeper chain (which anyone who can write in the source can make) would run
/// out of descriptors (EMFILE) or stack and fail every backup. Deeper entries are reported
/// as unreadable. (Paths within [`MAX_RESTORABLE_PATH`] with names of 24 bytes or more
/// are never this deep.)
pub const MAX_DEPTH: usize = 128;

impl<W: Write> Walker<W> {
    pub(super) fn err(&self, path: &Path, e: io::Error) -> AgentError {
        archive_error(self.root.join(path), e)
    }

    /// Records an entry that could not be archived because it vanished, is unreadable or
    /// changed type; other errors are fatal, and so is going over `max_skipped`.
    pub(super) fn skip(&mut self, rel: &Path, e: io::Error) -> Result<(), AgentError> {
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
            Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENAMETOOLONG) => {
                tracing::warn!(path = %shown, error = %e, "entry cannot be opened; not archived");
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
        self.check_skipped(rel)
    }

    /// Fails the walk once more than `max_skipped` entries were skipped.
    fn check_skipped(&self, rel: &Path) -> Result<(), AgentError> {
        let n = self.vanished.len() + self.unreadable.len() - self.beyond_restore;
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

    pub(super) fn walk(&mut self, dir: &File, rel: &Path) -> Result<(), AgentError> {
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

    /// Leaves out an entry a restore could not create (see [`MAX_RESTORABLE_PATH`],
    /// [`MAX_DEPTH`]), with what is wrong with it in `unreadable`.
    fn beyond_restore(&mut self, rel: &Path, why: String) {
        let shown = rel.to_string_lossy().into_owned();
        tracing::warn!(path = %shown, "{why}; not archived");
        self.unreadable
            .push(format!("{shown} ({why}; not archived)"));
        self.beyond_restore += 1;
    }

    /// Archives one listed entry of `dir` (which is `rel` in the tree).
    pub(super) fn entry(&mut self, dir: &File, rel: &Path, name: &OsStr) -> Result<(), AgentError> {
        let rel_path = rel.join(name);
        let len = rel_path.as_os_str().len();
        if len > MAX_RESTORABLE_PATH {
            self.beyond_restore(
                &rel_path,
                format!(
                    "path of {len} bytes, longer than the {MAX_RESTORABLE_PATH} a restore can create"
                ),
            );
            return Ok(());
        }
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
                let depth = rel_path.components().count();
                if depth >= MAX_DEPTH {
                    // Archived itself (empty), its contents are not.
                    self.beyond_restore(
                        &rel_path,
                        format!("directory {depth} levels deep, the most the walk descends is {MAX_DEPTH}: its contents"),
                    );
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

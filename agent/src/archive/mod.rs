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
//! errors in the middle of a file stay fatal. So do not EMFILE, ENFILE and ENAMETOOLONG:
//! such entries are skipped as unreadable. Entries a restore could not create are left out
//! at backup time and reported as unreadable (not counted against `max_skipped`), so that
//! nobody learns it during a recovery: a path longer than [`walk::MAX_RESTORABLE_PATH`]
//! bytes, and the contents of a directory [`walk::MAX_DEPTH`] levels deep.
//! Paths are relative to the source directory; long and non-UTF-8 names use GNU extensions.
//! The first entry, `./` ([`ROOT_ENTRY`]), is the source directory itself, with its mode,
//! owner and mtime, which a restore gives the restored directory.
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
//!
//! Floor 5: may import modules of floors 0 to 4 only; it imports `archive::estimate`,
//! `archive::sink`, `archive::walk`, `digest`, `errors`.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use flate2::write::GzEncoder;
use tokio::sync::mpsc;

pub use estimate::{estimate, Estimate};
pub use sink::UploaderGone;
pub use walk::{MAX_DEPTH, MAX_RESTORABLE_PATH, ROOT_ENTRY};

use crate::digest::Checksums;
use crate::errors::AgentError;
use sink::{archive_error, ChunkSink};
use walk::{ReadHook, Walker};

pub(crate) mod at;
mod estimate;
mod sink;
#[cfg(test)]
mod tests;
mod walk;

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
        beyond_restore: 0,
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
    // The root itself, as `./`: its mode, owner and mtime, so a restore gives the restored
    // directory the source's mode (a private 0700 home stays private).
    {
        let meta = root.metadata().map_err(|e| w.err(Path::new(""), e))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        w.builder
            .append_data(&mut h, ROOT_ENTRY, io::empty())
            .map_err(|e| w.err(Path::new(""), e))?;
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

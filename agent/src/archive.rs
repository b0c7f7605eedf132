//! Streaming archive: walks a directory tree and writes a gzip-compressed tar of it into a
//! bounded channel of fixed-size chunks, on a blocking thread, hashing every byte on the way
//! (SHA-256 and CRC64NVME). Nothing is staged on disk and at most the channel's capacity
//! plus one chunk is held in memory here.
//!
//! The tree is walked in name order (deterministic archives for an unchanged tree). Regular
//! files, directories and symbolic links (stored as links, never followed) are archived;
//! sockets, FIFOs and devices are skipped and reported. A file that changes size while it is
//! read is archived at the size it had when its header was written (shorter: zero-padded,
//! longer: truncated), as GNU tar does, and reported; the archive stays valid.
//! Paths are relative to the source directory; long and non-UTF-8 names use GNU extensions.

use std::fs::{self, File};
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
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            chunk_size: 8 * 1024 * 1024,
            level: 6,
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
    /// Files whose size changed while they were read, relative paths.
    pub changed: Vec<String>,
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
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the uploader stopped reading"))
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

/// Reads exactly `size` bytes: zero-pads a file that shrank, ignores growth.
struct ExactReader<R> {
    inner: io::Take<R>,
    remaining: u64,
    padded: bool,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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

struct Walker<W: Write> {
    builder: tar::Builder<W>,
    root: PathBuf,
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    skipped: Vec<String>,
    changed: Vec<String>,
}

impl<W: Write> Walker<W> {
    fn err(&self, path: &Path, e: impl std::fmt::Display) -> AgentError {
        AgentError::Archive {
            path: self.root.join(path),
            why: e.to_string(),
        }
    }

    fn walk(&mut self, rel: &Path) -> Result<(), AgentError> {
        let dir = self.root.join(rel);
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(&dir)
            .map_err(|e| self.err(rel, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(rel, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel_path = rel.join(entry.file_name());
            let abs = entry.path();
            let meta = fs::symlink_metadata(&abs).map_err(|e| self.err(&rel_path, e))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                self.builder
                    .append_data(&mut h, &rel_path, io::empty())
                    .map_err(|e| self.err(&rel_path, e))?;
                self.dirs += 1;
                self.walk(&rel_path)?;
            } else if ft.is_file() {
                let file = File::open(&abs).map_err(|e| self.err(&rel_path, e))?;
                // Size from the open file, so the header matches what we read.
                let meta = file.metadata().map_err(|e| self.err(&rel_path, e))?;
                let size = meta.len();
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                h.set_size(size);
                let mut reader = ExactReader {
                    inner: file.take(size),
                    remaining: size,
                    padded: false,
                };
                self.builder
                    .append_data(&mut h, &rel_path, &mut reader)
                    .map_err(|e| self.err(&rel_path, e))?;
                let grew = reader
                    .inner
                    .into_inner()
                    .read(&mut [0u8; 1])
                    .map(|n| n > 0)
                    .unwrap_or(false);
                if reader.padded || grew {
                    tracing::warn!(path = %rel_path.display(), "file changed while it was archived");
                    self.changed.push(rel_path.to_string_lossy().into_owned());
                }
                self.files += 1;
                self.bytes += size;
            } else if ft.is_symlink() {
                let target = fs::read_link(&abs).map_err(|e| self.err(&rel_path, e))?;
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                self.builder
                    .append_link(&mut h, &rel_path, &target)
                    .map_err(|e| self.err(&rel_path, e))?;
                self.symlinks += 1;
            } else {
                tracing::warn!(path = %rel_path.display(), "skipping special file (socket, FIFO or device)");
                self.skipped.push(rel_path.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
}

/// Writes the archive of `source` into `tx`; runs on the calling (blocking) thread.
pub fn write_archive(
    source: &Path,
    opts: ArchiveOptions,
    tx: mpsc::Sender<Bytes>,
) -> Result<ArchiveSummary, AgentError> {
    let sink = ChunkSink::new(tx, opts.chunk_size.max(1));
    let gz = GzEncoder::new(sink, flate2::Compression::new(opts.level.min(9)));
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    let mut w = Walker {
        builder,
        root: source.to_path_buf(),
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
        skipped: Vec::new(),
        changed: Vec::new(),
    };
    w.walk(Path::new(""))?;
    let io_err = |e: io::Error| AgentError::Archive {
        path: source.to_path_buf(),
        why: e.to_string(),
    };
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
        };
        let mut out = Vec::new();
        short.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
        assert!(short.padded);
        let mut long = ExactReader {
            inner: (&b"abcdef"[..]).take(4),
            remaining: 4,
            padded: false,
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
}

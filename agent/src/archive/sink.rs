//! The chunk sink the gzip stream is written into ([`ChunkSink`]), and how an I/O error
//! while archiving becomes an agent error ([`archive_error`], [`UploaderGone`]).
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `digest`, `errors`.

use std::io::{self, Write};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::digest::{Checksums, Digests};
use crate::errors::AgentError;

/// What the chunk sink's writes fail with once the receiver is gone (inside an
/// `io::Error` of kind `BrokenPipe`).
#[derive(Debug, thiserror::Error)]
#[error("the uploader stopped reading")]
pub struct UploaderGone;

/// Whether `e` is (or wraps) the sink's [`UploaderGone`].
pub(super) fn uploader_gone(e: &io::Error) -> bool {
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
pub(super) fn archive_error(path: PathBuf, e: io::Error) -> AgentError {
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
pub(super) struct ChunkSink {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    chunk_size: usize,
    digests: Digests,
}

impl ChunkSink {
    pub(super) fn new(tx: mpsc::Sender<Bytes>, chunk_size: usize) -> ChunkSink {
        ChunkSink {
            tx,
            buf: BytesMut::with_capacity(chunk_size),
            chunk_size,
            digests: Digests::new(),
        }
    }

    pub(super) fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(self.chunk_size);
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, UploaderGone))
    }

    pub(super) fn finish(mut self) -> io::Result<Checksums> {
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

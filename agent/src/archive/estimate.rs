//! The pre-walk that sizes an archive before it is written ([`estimate`], [`Estimate`]).
//!
//! Floor 4: may import modules of floors 0 to 3 only; it imports `archive::at`, `archive::walk`,
//! `errors`.

use std::fs::File;
use std::io;
use std::path::Path;

use super::at;
use crate::errors::AgentError;

/// What a pre-walk of the tree found ([`estimate`]), to size the upload before it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Entries the archive will hold (the root, directories, files, links).
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
pub(super) const BLOCK: u64 = 512;

pub(super) fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK).saturating_mul(BLOCK)
}

/// Tar bytes of one entry's headers: the header block, plus a GNU long-name (or
/// long-link) extension for a name of 100 bytes or more (its own header and the
/// NUL-terminated name in whole blocks).
pub(super) fn header_bytes(name_len: usize, link_len: usize) -> u64 {
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
    // The root's own entry (`./`, see [`super::walk::ROOT_ENTRY`]).
    let mut est = Estimate {
        entries: 1,
        tar_bytes: header_bytes(super::walk::ROOT_ENTRY.len(), 0),
        ..Estimate::default()
    };
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

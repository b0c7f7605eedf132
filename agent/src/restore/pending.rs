//! The modes, owners and directory times an unpack deferred until the archive verified
//! ([`Pending`]).
//!
//! Floor 0: may import nothing of the crate (a leaf).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    Symlink,
}

/// The final owner, mode and time of one unpacked entry, applied only after the archive
/// verified.
#[derive(Debug, Clone)]
pub(super) struct Final {
    pub(super) kind: Kind,
    pub(super) mode: u32,
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) mtime: Option<u64>,
}

/// The modes, owners and directory times an unpack deferred (see [`Pending::apply`]),
/// one per path (relative to the unpack directory; empty for the directory itself): an
/// archive that repeats an entry does not make it grow.
#[derive(Debug, Default)]
pub struct Pending {
    entries: HashMap<PathBuf, Final>,
    /// Bytes of the paths held, for the unpack's bound on this memory.
    path_bytes: u64,
}

impl Pending {
    /// How many entries wait for their final mode.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the paths held.
    pub fn path_bytes(&self) -> u64 {
        self.path_bytes
    }

    /// Whether `rel` already has an entry, as a directory.
    pub(super) fn has_dir(&self, rel: &Path) -> bool {
        self.entries.get(rel).is_some_and(|f| f.kind == Kind::Dir)
    }

    /// Records the final mode of `rel` (replacing an earlier one for the same path).
    pub(super) fn insert(&mut self, rel: PathBuf, f: Final) {
        let len = rel.as_os_str().len() as u64;
        if self.entries.insert(rel, f).is_none() {
            self.path_bytes += len;
        }
    }

    /// [`Pending::apply_with_root`] with 0700 for a root the archive has no entry for.
    pub fn apply(self, dir: &Path, preserve_owner: bool) -> io::Result<()> {
        self.apply_with_root(dir, preserve_owner, 0o700)
    }

    /// Applies the archived modes (masked with 0o777 unless `preserve_owner`), owners (only
    /// with `preserve_owner`) and directory times to the tree in `dir`, deepest entries
    /// first so that a read-only directory does not block its contents. The root of `dir`
    /// gets the mode of the archive's entry for it (`./`, which every archive the agent
    /// writes has), or `root_mode` in an archive without one (see
    /// [`super::place::fallback_root_mode`]). Call only after the checksum verified.
    pub fn apply_with_root(
        mut self,
        dir: &Path,
        preserve_owner: bool,
        root_mode: u32,
    ) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(root_mode & 0o777))?;
        let mut entries: Vec<(PathBuf, Final)> = self.entries.drain().collect();
        entries.sort_by(|(a, _), (b, _)| b.as_os_str().as_bytes().cmp(a.as_os_str().as_bytes()));
        for (path, e) in entries {
            let p = if path.as_os_str().is_empty() {
                dir.to_path_buf()
            } else {
                dir.join(&path)
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

/// Sets atime and mtime of `path` (not following a symlink) to `secs` (0 becomes 1, as
/// tar-rs does, for tools that treat 0 as missing).
pub(super) fn set_times_nofollow(path: &Path, secs: u64) -> io::Result<()> {
    let t = filetime::FileTime::from_unix_time(i64::try_from(secs.max(1)).unwrap_or(i64::MAX), 0);
    filetime::set_symlink_file_times(path, t, t)
}

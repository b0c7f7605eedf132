//! Where the tree goes: the target's state ([`check_target`]), the private staging
//! directory, unpacking and verifying into it ([`unpack_verify_place`]), moving it into
//! place, and removing staging or replaced trees ([`remove_tree`]).
//!
//! Floor 6: may import modules of floors 0 to 5 only; it imports `archive::at`, `digest`, `errors`,
//! `restore::find`, `restore::unpack`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::find::Expected;
use super::unpack::{unpack_stream, UnpackOptions, Unpacked};
use crate::digest::Checksums;
use crate::errors::AgentError;

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
        // Security review 2, finding 3(e): `--force` on a link would replace the link, not
        // what it names, and silently: refused, with both names (even without --force).
        Ok(m) if m.file_type().is_symlink() => Err(AgentError::TargetIsLink {
            path: to.to_path_buf(),
            to: fs::read_link(to).unwrap_or_default(),
        }),
        Ok(_) if force => Ok(TargetState::Replace),
        Ok(_) => Err(AgentError::TargetExists {
            path: to.to_path_buf(),
        }),
    }
}

pub(super) const STAGING_MARK: &str = ".autobackup-partial-";

pub(super) fn target_name(to: &Path) -> String {
    to.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "restore".into())
}

pub(super) fn parent_dir(to: &Path) -> &Path {
    to.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A fresh staging name next to `to`: pid, time and a random part, so no two runs (and no
/// leftover of a crashed one) share it.
pub(super) fn staging_path(to: &Path) -> PathBuf {
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
pub(super) fn old_path(staging: &Path) -> PathBuf {
    let mut s = staging.as_os_str().to_owned();
    s.push(".old");
    PathBuf::from(s)
}

/// Whether a staging (or `.old`) directory left next to the target belongs to a restore
/// that no longer runs: named `<pid>-<nanos>-<random>[.old]` after the mark, a real
/// directory (not a link) of this user, and that pid gone (a pid that exists, also one of
/// another user's, counts as running).
pub(super) fn leftover_is_stale(path: &Path, after_mark: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(pid) = after_mark
        .split('-')
        .next()
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return false;
    };
    let Ok(m) = fs::symlink_metadata(path) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions; kill with signal 0 only checks for existence.
    let ours = m.is_dir() && m.uid() == unsafe { libc::geteuid() };
    let running = unsafe { libc::kill(pid, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    ours && !running && pid != std::process::id() as i32
}

/// Creates the staging directory, exclusively and 0700, sweeps the leftovers of restores
/// that are gone and reports any other.
pub(super) fn create_staging(to: &Path) -> Result<(PathBuf, Vec<String>), AgentError> {
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
                // Security review 2, finding 3(c): a leftover of a restore that is gone
                // (its pid, in the name, no longer runs) and that this user owns is swept;
                // one whose restore may still run, or that is not ours, is only reported.
                let w = if leftover_is_stale(&e.path(), &name[prefix.len()..]) {
                    match remove_tree(&e.path()) {
                        Ok(()) => format!(
                            "removed the leftover of an earlier restore: {}",
                            e.path().display()
                        ),
                        Err(err) => format!(
                            "leftover of an earlier restore: {} could not be removed: {err}",
                            e.path().display()
                        ),
                    }
                } else {
                    format!(
                        "leftover of an earlier restore: {} (remove it once no restore runs)",
                        e.path().display()
                    )
                };
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
    }
    Ok((staging, warnings))
}

/// Removes `path` and everything under it, giving the owner rwx on each directory first
/// so that read-only trees go too. Symlinks are removed, never followed.
///
/// Descriptor-based, so that an entry swapped for a symlink while it runs (the replaced
/// tree may still be reachable by its former owners) is never followed out of the tree:
/// each directory is opened relative to its already-open parent with
/// `O_DIRECTORY|O_NOFOLLOW`, made accessible with `fchmod` on that descriptor, listed
/// through it and removed with `unlinkat`; nothing is chmod'ed, listed or removed by a
/// path below `path`. A directory swapped for anything else between its `lstat` and its
/// open fails the removal (ELOOP or ENOTDIR), and nothing outside the tree is touched.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    remove_tree_with(path, &mut |_| {})
}

/// [`remove_tree`], running `hook` with each directory's path (relative to `path`) between
/// its `lstat` and its open (tests swap it there).
pub(super) fn remove_tree_with(path: &Path, hook: &mut dyn FnMut(&Path)) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a removable path", path.display()),
        )
    })?;
    let parent = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(parent_dir(path))?;
    remove_entry(&parent, name, Path::new(""), hook)
}

/// Removes the entry `name` of the open directory `dir` (shown as `rel` to the hook).
fn remove_entry(
    dir: &fs::File,
    name: &std::ffi::OsStr,
    rel: &Path,
    hook: &mut dyn FnMut(&Path),
) -> io::Result<()> {
    use crate::archive::at;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let st = at::lstat(dir, name)?;
    if st.kind() != libc::S_IFDIR {
        return at::unlink(dir, name, 0);
    }
    hook(rel);
    // O_NOFOLLOW (added by at::open): a symlink swapped in fails with ELOOP.
    let sub = match at::open(dir, name, libc::O_RDONLY | libc::O_DIRECTORY) {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => open_unreadable(dir, name, &st)?,
        other => other?,
    };
    let m = sub.metadata()?;
    if (m.dev(), m.ino()) != (st.dev, st.ino) {
        return Err(io::Error::other(format!(
            "{}: replaced by another directory while the tree was removed; left alone",
            rel.display()
        )));
    }
    if m.mode() & 0o700 != 0o700 {
        // fchmod on the descriptor: never a path that could have been swapped.
        sub.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    for child in at::list(&sub)? {
        remove_entry(&sub, &child, &rel.join(&child), hook)?;
    }
    at::unlink(dir, name, libc::AT_REMOVEDIR)
}

/// Opens the directory `name` of `dir` that its owner may not read (mode 0o000, say) for
/// [`remove_entry`]: an `O_PATH|O_NOFOLLOW` descriptor pins the inode, which must be the
/// one `st` describes; it gets 0o700 through its `/proc/self/fd` link (which names that
/// inode, whatever happens to `name` meanwhile) and is then opened for reading through
/// the descriptor.
fn open_unreadable(
    dir: &fs::File,
    name: &std::ffi::OsStr,
    st: &crate::archive::at::Stat,
) -> io::Result<fs::File> {
    use crate::archive::at;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let pinned = at::open(dir, name, libc::O_PATH | libc::O_DIRECTORY)?;
    let m = pinned.metadata()?;
    if (m.dev(), m.ino()) != (st.dev, st.ino) {
        return Err(io::Error::other(
            "replaced by another directory while the tree was removed; left alone",
        ));
    }
    let link = PathBuf::from(format!("/proc/self/fd/{}", pinned.as_raw_fd()));
    fs::set_permissions(&link, fs::Permissions::from_mode(0o700))?;
    at::open(
        &pinned,
        std::ffi::OsStr::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
    )
}

/// Adds a failed removal of `staging` to `error`; a staging dir already gone is fine.
pub(super) fn with_cleanup(error: AgentError, staging: &Path) -> AgentError {
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
    let root_mode = fallback_root_mode(to, state);
    let (staging, mut warnings) = create_staging(to)?;
    let run = || -> Result<Placed, AgentError> {
        let u = unpack_stream(rx, &staging, opts).map_err(|e| e.into_agent(key, &staging))?;
        let verified = expected.verify(&u.checksums, what)?;
        u.pending
            .apply_with_root(&staging, opts.preserve_owner, root_mode)
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

/// The mode the restored directory gets from an archive without an entry for it (written
/// before the agent archived the root as `./`): the mode of the directory it replaces
/// (without setuid, setgid and sticky bits), else 0700; never a mode wider than what was
/// there, so a private tree is not made readable by everyone.
pub(super) fn fallback_root_mode(to: &Path, state: TargetState) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let replaced = match state {
        TargetState::Absent => None,
        TargetState::EmptyDir | TargetState::Replace => fs::symlink_metadata(to)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| m.permissions().mode() & 0o777),
    };
    replaced.unwrap_or(0o700)
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

/// Moves the verified staging tree to `to`. Returns warnings for what it could not tidy
/// (the replaced tree left behind).
pub(super) fn put_in_place(
    staging: &Path,
    to: &Path,
    state: TargetState,
) -> Result<Vec<String>, AgentError> {
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

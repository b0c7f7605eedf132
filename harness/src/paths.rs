//! Where things live: the repository's own files and the cache outside the repository.
//!
//! Floor 0: imports only other ground rooms (no domain types).

use std::path::{Path, PathBuf};

/// The repository root (where `scenarios/` and `fixtures/` are). `HARNESS_ROOT` overrides;
/// otherwise the nearest ancestor of the current directory that has `scenarios/`, falling
/// back to the directory this crate was built from.
pub fn repo_root() -> PathBuf {
    if let Ok(root) = std::env::var("HARNESS_ROOT") {
        return PathBuf::from(root);
    }
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            if dir.join("scenarios").is_dir() && dir.join("fixtures").is_dir() {
                return dir;
            }
            if !dir.pop() {
                break;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The harness's cache (engine installs, engine logs, state of detached engines):
/// `HARNESS_CACHE_DIR`, else `$XDG_CACHE_HOME/autobackup-harness`, else
/// `~/.cache/autobackup-harness`. Never inside the repository, and never a shared
/// directory such as `/tmp`: with `HOME` unset (systemd units, some CI runners) the home
/// directory comes from the password database. Engines run from here, so
/// [`check_private`] refuses a cache another user could write.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HARNESS_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Ok(d) = std::env::var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("autobackup-harness");
    }
    home_dir().join(".cache").join("autobackup-harness")
}

/// `HOME`, else the effective user's home from the password database, else a path that
/// cannot be created (so the caller fails with a clear error instead of using `/tmp`).
fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    passwd_home(unsafe { libc::geteuid() })
        .unwrap_or_else(|| PathBuf::from("/nonexistent-home-set-HOME-or-HARNESS_CACHE_DIR"))
}

fn passwd_home(uid: libc::uid_t) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: getpwuid_r writes into `pw` and `buf`, both live for the call; `result` is
    // null or points at `pw`.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pw.pw_dir);
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
}

/// Refuses a directory the harness would execute from (engine venvs) unless it belongs to
/// the effective user and no one else can write it: otherwise another local user could
/// plant `bin/python` and `.installed` there.
pub fn check_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if m.uid() != euid {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {euid})",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o})",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Last `n` lines of a text file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Finding 28: without `HOME`, the cache is the user's home from the password database,
    /// never under `/tmp`.
    #[test]
    fn the_cache_never_falls_back_to_tmp() {
        let home = passwd_home(unsafe { libc::geteuid() }).expect("this user has a passwd entry");
        assert!(!home.starts_with("/tmp"), "{}", home.display());
    }

    #[test]
    fn a_cache_others_can_write_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        check_private(d.path()).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_private(d.path()).unwrap_err();
        assert!(e.contains("writable by group or others"), "{e}");
        // Owned by someone else: as root, a directory given to `nobody`; otherwise `/`.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let foreign = if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(d.path(), Some(65534), Some(65534)).unwrap();
            d.path().to_path_buf()
        } else {
            PathBuf::from("/")
        };
        let e = check_private(&foreign).unwrap_err();
        assert!(e.contains("belongs to uid"), "{e}");
    }
}

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
    cache_dir_in(&|name| std::env::var_os(name))
}

/// [`cache_dir`] with the environment read through `var` (tests give it one without `HOME`).
fn cache_dir_in(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(d) = set("HARNESS_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = set("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("autobackup-harness");
    }
    home_dir_in(var).join(".cache").join("autobackup-harness")
}

/// `HOME`, else the effective user's home from the password database, else a path that
/// cannot be created (so the caller fails with a clear error instead of using `/tmp`).
fn home_dir_in(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    if let Some(h) = var("HOME").filter(|h| !h.is_empty()) {
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

/// Writes `bytes` to `path` atomically: a private temporary file in the same directory,
/// then a rename over the old one (which also replaces a planted symlink, never follows it).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".state-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates `dir` (and its parents) and makes it readable by this user only (0700).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// `<cache>/run/`: the engines' run directories, their logs and state files, `harness up`'s
/// state. Request logs and test data live there: 0700 (security review 2, L7).
pub fn run_dir() -> std::io::Result<PathBuf> {
    let run = cache_dir().join("run");
    private_dir(&run)?;
    Ok(run)
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

    /// Finding 28: with no `HOME` (and no `HARNESS_CACHE_DIR`, `XDG_CACHE_HOME`), the
    /// cache is under the user's home from the password database, never a relative path or
    /// `/tmp`; the variables win when set, and an empty one counts as unset.
    #[test]
    fn the_cache_never_falls_back_to_tmp() {
        let home = passwd_home(unsafe { libc::geteuid() }).expect("this user has a passwd entry");
        let bare = cache_dir_in(&|_| None);
        assert_eq!(bare, home.join(".cache/autobackup-harness"));
        assert!(
            bare.is_absolute() && !bare.starts_with("/tmp"),
            "{}",
            bare.display()
        );
        let empty = cache_dir_in(&|_| Some(std::ffi::OsString::new()));
        assert_eq!(empty, bare);
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            cache_dir_in(&env(&[("HOME", "/home/u")])),
            PathBuf::from("/home/u/.cache/autobackup-harness")
        );
        assert_eq!(
            cache_dir_in(&env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")])),
            PathBuf::from("/c/autobackup-harness")
        );
        assert_eq!(
            cache_dir_in(&env(&[
                ("HARNESS_CACHE_DIR", "/h"),
                ("XDG_CACHE_HOME", "/c")
            ])),
            PathBuf::from("/h")
        );
    }

    /// Security review 2, L7: the run directory and the files written privately are this
    /// user's only, also when they existed with wider modes.
    #[test]
    fn private_dirs_and_files_are_closed_to_others() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&run).unwrap();
        assert_eq!(std::fs::metadata(&run).unwrap().mode() & 0o777, 0o700);
        let f = run.join("engine-ministack.json");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&f, b"{}").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"{}");
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

//! Where things live: the repository's own files and the cache outside the repository.

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
/// `~/.cache/autobackup-harness`. Never inside the repository.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HARNESS_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Ok(d) = std::env::var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("autobackup-harness");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home)
        .join(".cache")
        .join("autobackup-harness")
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

//! Directory trees for the agent to back up: generated from a small spec, deterministic
//! (content seeded by the tree's name, fixed modes and modification times), and compared
//! entry by entry after a restore.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::payload::generated_bytes;

/// Every generated entry gets this modification time (2026-01-01T00:00:00Z), so the same
/// spec gives the same archive on every run.
pub const FIXED_MTIME: i64 = 1_767_225_600;

/// A tree to generate (`tree = { ... }` in a scenario).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpec {
    /// What later steps call it; generating a name again replaces the tree.
    pub name: String,
    /// Regular files of generated (incompressible) content under `data/`.
    #[serde(default)]
    pub files: u32,
    /// Their total size in bytes, split evenly.
    #[serde(default)]
    pub bytes: u64,
    /// Also add the awkward entries: spaces, unicode, an empty file, deep nesting, a name
    /// longer than 100 bytes, control characters, an executable and a symlink.
    #[serde(default)]
    pub awkward: bool,
}

/// What was generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeInfo {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// The awkward entries: (relative path, content, mode).
fn awkward_files() -> Vec<(PathBuf, Vec<u8>, u32)> {
    vec![
        (
            "with space/file name.txt".into(),
            b"spaces in both names\n".to_vec(),
            0o644,
        ),
        (
            "ünïcødé/日本語/テスト ファイル.txt".into(),
            "こんにちは, wörld\n".as_bytes().to_vec(),
            0o644,
        ),
        ("empty.bin".into(), Vec::new(), 0o644),
        (
            "nested/a/b/c/d/e/deep.txt".into(),
            b"deep\n".to_vec(),
            0o644,
        ),
        (
            PathBuf::from("nested/long").join(format!("{}.txt", "l".repeat(150))),
            b"a name longer than 100 bytes\n".to_vec(),
            0o644,
        ),
        (
            "tab\tand\nnewline".into(),
            b"control characters in the name\n".to_vec(),
            0o600,
        ),
        ("bin/run.sh".into(), b"#!/bin/sh\necho hi\n".to_vec(), 0o755),
    ]
}

/// Sets the modification (and access) time of `path` itself, not of a symlink's target.
fn set_fixed_mtime(path: &Path) -> std::io::Result<()> {
    let t = filetime::FileTime::from_unix_time(FIXED_MTIME, 0);
    filetime::set_symlink_file_times(path, t, t)
}

/// Generates `spec` at `root` (replacing whatever was there).
pub fn generate(root: &Path, spec: &TreeSpec) -> Result<TreeInfo, String> {
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(|e| io(root, e))?;
    }
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let mut files: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    if spec.files > 0 {
        let n = spec.files as u64;
        for i in 0..n {
            let size = spec.bytes / n + u64::from(i < spec.bytes % n);
            let name = format!("data/file-{i:04}.bin");
            let content = generated_bytes(&format!("{}/{name}", spec.name), size);
            files.push((name.into(), content, 0o644));
        }
    }
    if spec.awkward {
        files.extend(awkward_files());
    }
    let mut info = TreeInfo::default();
    for (rel, content, mode) in &files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, content).map_err(|e| io(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| io(&path, e))?;
        info.files += 1;
        info.bytes += content.len() as u64;
    }
    if spec.awkward {
        let link = root.join("link to file name");
        std::os::unix::fs::symlink("with space/file name.txt", &link).map_err(|e| io(&link, e))?;
        info.symlinks += 1;
    }
    // Directories: fixed mode, then every entry's time, deepest first so that setting a
    // child's time does not disturb its parent's afterwards.
    let mut entries = walk(root).map_err(|e| io(root, e))?;
    entries.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, kind) in &entries {
        let path = root.join(rel);
        if let Kind::Dir = kind {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io(&path, e))?;
            info.dirs += 1;
        }
        set_fixed_mtime(&path).map_err(|e| io(&path, e))?;
    }
    Ok(info)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Link,
}

/// Every entry under `root` (not `root` itself), relative to it.
fn walk(root: &Path) -> std::io::Result<Vec<(PathBuf, Kind)>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let t = e.file_type()?;
            let kind = if t.is_symlink() {
                Kind::Link
            } else if t.is_dir() {
                stack.push(r.clone());
                Kind::Dir
            } else {
                Kind::File
            };
            out.push((r, kind));
        }
    }
    Ok(out)
}

/// One entry as compared: type, permission bits, content or link target.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(PathBuf),
}

fn nodes(root: &Path) -> std::io::Result<BTreeMap<PathBuf, Node>> {
    let mut out = BTreeMap::new();
    for (rel, kind) in walk(root)? {
        let path = root.join(&rel);
        let mode = std::fs::symlink_metadata(&path)?.permissions().mode() & 0o7777;
        let node = match kind {
            Kind::Dir => Node::Dir(mode),
            Kind::File => Node::File(mode, std::fs::read(&path)?),
            Kind::Link => Node::Link(std::fs::read_link(&path)?),
        };
        out.insert(rel, node);
    }
    Ok(out)
}

/// Compares two trees entry by entry (names, types, permission bits, file bytes, link
/// targets); returns the differences, empty when identical.
pub fn differences(expected: &Path, actual: &Path) -> Result<Vec<String>, String> {
    let a = nodes(expected).map_err(|e| format!("{}: {e}", expected.display()))?;
    let b = nodes(actual).map_err(|e| format!("{}: {e}", actual.display()))?;
    let mut out = Vec::new();
    for (path, node) in &a {
        match b.get(path) {
            None => out.push(format!("{:?} is missing", path)),
            Some(other) if other != node => out.push(format!(
                "{:?} differs: expected {}, got {}",
                path,
                describe(node),
                describe(other)
            )),
            Some(_) => {}
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("{:?} is unexpected", path));
    }
    Ok(out)
}

fn describe(n: &Node) -> String {
    match n {
        Node::Dir(m) => format!("directory {m:o}"),
        Node::File(m, c) => format!("file {m:o} of {} bytes", c.len()),
        Node::Link(t) => format!("symlink to {}", t.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "harness-tree-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn spec(name: &str, files: u32, bytes: u64, awkward: bool) -> TreeSpec {
        TreeSpec {
            name: name.into(),
            files,
            bytes,
            awkward,
        }
    }

    #[test]
    fn generation_is_deterministic_and_counted() {
        let d = tmp("det");
        let s = spec("docs", 3, 1000, true);
        let info = generate(&d.join("a"), &s).unwrap();
        generate(&d.join("b"), &s).unwrap();
        assert_eq!(info.files, 3 + 7);
        assert_eq!(info.symlinks, 1);
        assert_eq!(
            info.bytes,
            1000 + awkward_files()
                .iter()
                .map(|f| f.1.len() as u64)
                .sum::<u64>()
        );
        assert_eq!(
            differences(&d.join("a"), &d.join("b")).unwrap(),
            Vec::<String>::new()
        );
        let m = std::fs::symlink_metadata(d.join("a/data/file-0000.bin")).unwrap();
        assert_eq!(
            m.modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
            FIXED_MTIME
        );
        // Sizes split evenly, the remainder to the first files.
        assert_eq!(
            std::fs::metadata(d.join("a/data/file-0000.bin"))
                .unwrap()
                .len(),
            334
        );
        assert_eq!(
            std::fs::metadata(d.join("a/data/file-0002.bin"))
                .unwrap()
                .len(),
            333
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn differences_name_what_changed() {
        let d = tmp("diff");
        let s = spec("x", 2, 10, true);
        generate(&d.join("a"), &s).unwrap();
        generate(&d.join("b"), &s).unwrap();
        std::fs::write(d.join("b/data/file-0000.bin"), b"other").unwrap();
        std::fs::remove_file(d.join("b/empty.bin")).unwrap();
        std::fs::write(d.join("b/extra"), b"").unwrap();
        std::fs::set_permissions(
            d.join("b/bin/run.sh"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let diff = differences(&d.join("a"), &d.join("b")).unwrap();
        assert_eq!(diff.len(), 4, "{diff:?}");
        assert!(diff
            .iter()
            .any(|l| l.contains("file-0000.bin") && l.contains("differs")));
        assert!(diff
            .iter()
            .any(|l| l.contains("empty.bin") && l.contains("missing")));
        assert!(diff
            .iter()
            .any(|l| l.contains("extra") && l.contains("unexpected")));
        assert!(diff
            .iter()
            .any(|l| l.contains("run.sh") && l.contains("755")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn regenerating_replaces_the_tree() {
        let d = tmp("regen");
        generate(&d, &spec("t", 1, 10, true)).unwrap();
        let info = generate(&d, &spec("t", 2, 10, false)).unwrap();
        assert_eq!(info.files, 2);
        assert!(!d.join("empty.bin").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}

//! Fuzz target: the agent's restore unpacker (`restore::unpack_stream`) on arbitrary bytes
//! read as a gzip'd tar.
//!
//! Each input is unpacked into a fresh private directory under the system temp dir, with
//! small [`Limits`] so that no input can fill the disk, then the deferred modes are applied
//! (as a verified restore does) and the directory is removed. Checks: nothing is created
//! beside the staging directory, the files written stay within the byte limit, and a
//! successful unpack hashed every input byte.

#![no_main]

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use autobackup_agent::restore::{remove_tree, unpack_stream, Limits, UnpackOptions};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_entries: 64,
    max_bytes: 1 << 20,
    max_path: 512,
    max_extension: 4096,
    min_free: 0,
};

/// How the input reaches the unpacker: in chunks, as the S3 download delivers it.
const CHUNK: usize = 1000;

/// This process's scratch root, created once (0700).
fn scratch() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("autobackup-fuzz-{}", std::process::id()));
        let _ = remove_tree(&root);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .expect("create the fuzz scratch directory");
        root
    })
}

/// Regular-file bytes under `dir`, each inode once (hard links share one); symlinks are
/// not followed.
fn file_bytes(dir: &Path, seen: &mut HashSet<u64>) -> u64 {
    let mut total = 0;
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(m) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if m.is_dir() {
            total += file_bytes(&e.path(), seen);
        } else if m.is_file() && seen.insert(m.ino()) {
            total += m.len();
        }
    }
    total
}

fuzz_target!(|data: &[u8]| {
    static N: AtomicU64 = AtomicU64::new(0);
    let case = scratch().join(N.fetch_add(1, Ordering::Relaxed).to_string());
    let staging = case.join("staging");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&staging)
        .expect("create the staging directory");

    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    let (tx, rx) = tokio::sync::mpsc::channel(chunks.len() + 1);
    for c in chunks {
        tx.try_send(Ok(Bytes::copy_from_slice(c)))
            .expect("the channel holds every chunk");
    }
    drop(tx);
    let opts = UnpackOptions {
        limits: LIMITS,
        preserve_owner: false,
    };
    let result = unpack_stream(rx, &staging, &opts);

    if let Ok(u) = &result {
        assert_eq!(
            u.checksums.bytes,
            data.len() as u64,
            "not every byte hashed"
        );
        assert!(u.stats.bytes <= LIMITS.max_bytes);
    }
    let written = file_bytes(&staging, &mut HashSet::new());
    assert!(written <= LIMITS.max_bytes, "{written} bytes written");
    if let Ok(u) = result {
        // What a verified restore does next; an I/O error is an answer, not a crash.
        let _ = u.pending.apply(&staging, false);
    }
    let beside: Vec<_> = fs::read_dir(&case)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        beside,
        [std::ffi::OsString::from("staging")],
        "created beside staging"
    );
    remove_tree(&case).expect("remove the case directory");
});

//! Tests of the archive: chunking, the walk, skipped entries, estimates, links and sparse files.
//!
//! Floor 6: may import modules of floors 0 to 5 only; it imports `archive`, `archive::estimate`,
//! `archive::sink`, `archive::walk`, `digest`, `errors`, `test_support`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::sink::*;
use super::walk::*;
use super::*;
use std::fs;

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
        hook: None,
    };
    let mut out = Vec::new();
    short.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"abc\0\0");
    assert!(short.padded);
    let mut long = ExactReader {
        inner: (&b"abcdef"[..]).take(4),
        remaining: 4,
        padded: false,
        hook: None,
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
            ..ArchiveOptions::default()
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
    assert_eq!(
        names,
        ["./", "a.txt", "b", "b/nested", "b/nested/x.txt", "link"]
    );
}

#[test]
fn unreadable_source_is_an_archive_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(4);
    let err =
        write_archive(&dir.path().join("missing"), ArchiveOptions::default(), tx).unwrap_err();
    assert_eq!(err.exit_code(), 8);
}

fn sink_walker(root: &Path, max_skipped: usize) -> Walker<io::Sink> {
    Walker {
        builder: tar::Builder::new(io::sink()),
        root: root.to_path_buf(),
        max_skipped,
        root_dev: None,
        dirs_seen: Default::default(),
        links: Default::default(),
        hard_links: 0,
        other_file_systems: Vec::new(),
        read_hook: None,
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
        skipped: Vec::new(),
        changed: Vec::new(),
        vanished: Vec::new(),
        unreadable: Vec::new(),
        sparse: Vec::new(),
        beyond_restore: 0,
    }
}

/// Finding 6: a name that is a FIFO or a symlink by the time it is opened is neither
/// followed nor blocks.
#[test]
fn open_regular_neither_follows_symlinks_nor_blocks_on_fifos() {
    use std::os::unix::ffi::OsStrExt;
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
    let fifo = std::ffi::CString::new(dir.path().join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    fs::write(dir.path().join("plain"), b"plain").unwrap();
    let d = File::open(dir.path()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fifo = open_regular(&d, OsStr::new("fifo")).map(|o| matches!(o, Opened::NotRegular));
        let link = open_regular(&d, OsStr::new("link"))
            .map(|_| ())
            .unwrap_err();
        let plain = open_regular(&d, OsStr::new("plain")).unwrap();
        let _ = tx.send((
            fifo.unwrap(),
            link.raw_os_error(),
            matches!(plain, Opened::File(..)),
        ));
    });
    let (fifo_refused, link_err, plain_ok) = rx
        .recv_timeout(std::time::Duration::from_secs(2))
        .expect("open_regular blocked");
    assert!(fifo_refused);
    assert_eq!(link_err, Some(libc::ELOOP));
    assert!(plain_ok);
}

/// Finding 6: the walk reports an entry swapped for a symlink between listing and open
/// as unreadable, and never archives the symlink's target.
#[test]
fn a_file_swapped_for_a_symlink_is_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("f")).unwrap();
    let d = File::open(dir.path()).unwrap();
    let mut w = sink_walker(dir.path(), 100);
    // As if lstat had seen a regular file: go straight to the open.
    match open_regular(&d, OsStr::new("f")) {
        Err(e) => w.skip(Path::new("f"), e).unwrap(),
        Ok(_) => panic!("followed the symlink"),
    }
    assert_eq!(w.files, 0);
    assert_eq!(w.unreadable.len(), 1, "{:?}", w.unreadable);
    assert!(w.unreadable[0].contains("changed type"));
}

/// Finding 7: an entry listed but gone before it is read is skipped and reported;
/// more than max_skipped of them fail the run.
#[test]
fn vanished_entries_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("kept"), b"k").unwrap();
    let d = File::open(dir.path()).unwrap();
    let mut w = sink_walker(dir.path(), 1);
    // Listed, then removed, then walked.
    w.entry(&d, Path::new(""), OsStr::new("gone")).unwrap();
    w.entry(&d, Path::new(""), OsStr::new("kept")).unwrap();
    assert_eq!(w.vanished, ["gone"]);
    assert_eq!(w.files, 1);
    let e = w
        .entry(&d, Path::new(""), OsStr::new("gone too"))
        .unwrap_err();
    assert_eq!(e.exit_code(), 8);
    assert!(e.to_string().contains("--max-skipped 1"), "{e}");
}

/// Finding 7: unreadable files and directories (as a non-root user) are skipped and
/// reported, and the backup of the rest succeeds.
#[test]
fn unreadable_entries_are_skipped_and_reported() {
    use std::os::unix::fs::PermissionsExt;
    if !crate::test_support::runs_as_non_root(
        "archive::tests::unreadable_entries_are_skipped_and_reported",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("lost+found")).unwrap();
    fs::write(root.join("lost+found/x"), b"x").unwrap();
    fs::write(root.join("secret"), b"s").unwrap();
    fs::write(root.join("ok"), b"ok").unwrap();
    fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let (tx, _rx) = mpsc::channel(1024);
    let summary = write_archive(root, ArchiveOptions::default(), tx).unwrap();
    fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(summary.files, 1);
    assert_eq!(summary.unreadable.len(), 2, "{:?}", summary.unreadable);
    assert!(summary.unreadable[0].starts_with("lost+found"));
    assert!(summary.unreadable[1].starts_with("secret"));
    let (tx, _rx) = mpsc::channel(1024);
    fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o000)).unwrap();
    let strict = ArchiveOptions {
        max_skipped: 1,
        ..ArchiveOptions::default()
    };
    assert_eq!(write_archive(root, strict, tx).unwrap_err().exit_code(), 8);
    fs::set_permissions(root.join("lost+found"), fs::Permissions::from_mode(0o700)).unwrap();
}

/// Finding 18: an archive whose uploader went away ends in ArchiveAbandoned, which
/// the uploader recognises as its own doing.
#[test]
fn a_gone_uploader_abandons_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let noise: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(dir.path().join("f"), noise).unwrap();
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let opts = ArchiveOptions {
        chunk_size: 1024,
        level: 0,
        ..ArchiveOptions::default()
    };
    let e = write_archive(dir.path(), opts, tx).unwrap_err();
    assert!(matches!(e, AgentError::ArchiveAbandoned { .. }), "{e}");
    assert_eq!(e.exit_code(), 8);
    assert!(e.to_string().contains("stopped reading"), "{e}");
}

fn entries_of(bytes: &[u8]) -> Vec<(String, tar::EntryType, u64, Option<String>)> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().entry_type(),
                e.size(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

fn archive_of(root: &Path, hook: Option<ReadHook>) -> (Vec<u8>, ArchiveSummary) {
    let (tx, mut rx) = mpsc::channel(4096);
    let s = write_archive_with(root, ArchiveOptions::default(), tx, hook).unwrap();
    let mut bytes = Vec::new();
    while let Ok(c) = rx.try_recv() {
        bytes.extend_from_slice(&c);
    }
    (bytes, s)
}

/// Finding 18: the pre-walk counts what the archive holds, and its bound is above the
/// archive's real size, even uncompressed (level 0) with long names and links.
#[test]
fn the_estimate_bounds_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let long = "n".repeat(150);
    fs::create_dir_all(root.join(&long).join("sub")).unwrap();
    let mut x: u32 = 7;
    let noise: Vec<u8> = (0..300_001)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    fs::write(root.join(&long).join("sub/noise"), &noise).unwrap();
    fs::write(root.join("small"), b"abc").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::hard_link(root.join("small"), root.join(&long).join("again")).unwrap();
    std::os::unix::fs::symlink(&long, root.join("to-long")).unwrap();
    let est = estimate(root, true).unwrap();
    assert_eq!((est.entries, est.files, est.bytes), (8, 3, 300_004));
    let (tx, mut rx) = mpsc::channel(4096);
    let opts = ArchiveOptions {
        level: 0,
        ..ArchiveOptions::default()
    };
    let s = write_archive(root, opts, tx).unwrap();
    let mut gz = Vec::new();
    while let Ok(c) = rx.try_recv() {
        gz.extend_from_slice(&c);
    }
    assert_eq!((s.files, s.uncompressed_bytes), (est.files, est.bytes));
    let mut tar_stream = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar_stream)
        .unwrap();
    assert!(
        tar_stream.len() as u64 == est.tar_bytes + 1024,
        "tar {} != estimate {} + end blocks",
        tar_stream.len(),
        est.tar_bytes
    );
    assert!(s.checksums.bytes <= est.archive_bound(), "{s:?} {est:?}");
    // A missing source fails; an empty one holds nothing.
    assert!(estimate(&root.join("nope"), true).is_err());
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        estimate(empty.path(), true).unwrap(),
        Estimate {
            entries: 1,
            tar_bytes: 512,
            ..Estimate::default()
        }
    );
}

/// Finding 30: sparse files are detected and reported (archived expanded, so their
/// content is intact); dense files, even all zeros, are not reported.
#[test]
fn sparse_files_are_reported_and_archived_expanded() {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let size = 8u64 << 20;
    let mut holey = File::create(root.join("holey")).unwrap();
    holey.set_len(size).unwrap();
    // Data first, so that SEEK_HOLE moves the offset (the read must start at 0 again).
    holey.write_all(&[9u8; 4096]).unwrap();
    holey.seek(SeekFrom::Start(1 << 20)).unwrap();
    holey.write_all(&[7u8; 4096]).unwrap();
    holey.sync_all().unwrap();
    File::create(root.join("only-hole"))
        .unwrap()
        .set_len(size)
        .unwrap();
    fs::write(root.join("zeros"), vec![0u8; 1 << 20]).unwrap();
    fs::write(root.join("small"), b"x").unwrap();
    let m = fs::metadata(root.join("holey")).unwrap();
    if m.blocks() * 512 >= size {
        eprintln!("this file system allocated every block: no holes to detect, skipped");
        return;
    }
    let (bytes, s) = archive_of(root, None);
    assert_eq!(s.sparse, ["holey", "only-hole"], "{s:?}");
    assert_eq!(s.uncompressed_bytes, 2 * size + (1 << 20) + 1);
    // Expanded: the entry holds the whole size, holes as zeros.
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap() == Path::new("holey") {
            assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            assert_eq!(data.len() as u64, size);
            let mut expected = vec![0u8; size as usize];
            expected[..4096].fill(9);
            expected[1 << 20..(1 << 20) + 4096].fill(7);
            assert!(data == expected, "holey content differs");
        }
    }
    // The estimate counts them at full size too.
    let est = estimate(root, true).unwrap();
    assert_eq!(est.bytes, s.uncompressed_bytes);
}

/// Finding 30: a file with two names is archived once, plus a hard-link entry.
#[test]
fn hard_links_are_archived_once() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), b"hello").unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    fs::hard_link(dir.path().join("a"), dir.path().join("d/b")).unwrap();
    let (bytes, s) = archive_of(dir.path(), None);
    assert_eq!((s.files, s.hard_links, s.uncompressed_bytes), (1, 1, 5));
    let entries = entries_of(&bytes);
    let data: Vec<_> = entries
        .iter()
        .filter(|e| e.1 == tar::EntryType::Regular)
        .collect();
    let links: Vec<_> = entries
        .iter()
        .filter(|e| e.1 == tar::EntryType::Link)
        .collect();
    assert_eq!(data.len(), 1, "{entries:?}");
    assert_eq!((data[0].0.as_str(), data[0].2), ("a", 5));
    assert_eq!(links.len(), 1, "{entries:?}");
    assert_eq!(links[0].0, "d/b");
    assert_eq!(links[0].3.as_deref(), Some("a"));
    assert_eq!(links[0].2, 0);
}

/// Finding 30: a file rewritten at the same size while it is read (its mtime moves)
/// is reported as changed.
#[test]
fn a_file_touched_while_it_is_read_is_reported_changed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("db"), b"pages").unwrap();
    fs::write(dir.path().join("quiet"), b"still").unwrap();
    let (_, calm) = archive_of(dir.path(), None);
    assert!(calm.changed.is_empty(), "{:?}", calm.changed);
    let root = dir.path().to_path_buf();
    let hook: ReadHook = Box::new(move |rel: &Path| {
        if rel == Path::new("db") {
            let t = filetime::FileTime::from_unix_time(1_000_000_000, 0);
            filetime::set_file_mtime(root.join(rel), t).unwrap();
        }
    });
    let (_, s) = archive_of(dir.path(), Some(hook));
    assert_eq!(s.changed, ["db"]);
    assert_eq!(s.files, 2);
}

/// Finding 30: a mount point of another file system is archived empty and reported;
/// a directory reached twice (bind-mount loop) is not archived again.
#[test]
fn other_file_systems_and_directory_loops_are_not_descended() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("mnt")).unwrap();
    fs::write(dir.path().join("mnt/inside"), b"x").unwrap();
    let d = File::open(dir.path()).unwrap();
    let mut w = sink_walker(dir.path(), 100);
    w.root_dev = Some(u64::MAX); // as if the source were on another device
    w.entry(&d, Path::new(""), OsStr::new("mnt")).unwrap();
    assert_eq!((w.dirs, w.files), (1, 0));
    assert_eq!(w.other_file_systems, ["mnt"]);

    let mut w = sink_walker(dir.path(), 100);
    let m = fs::metadata(dir.path().join("mnt")).unwrap();
    w.dirs_seen.insert((m.dev(), m.ino()));
    w.entry(&d, Path::new(""), OsStr::new("mnt")).unwrap();
    assert_eq!((w.dirs, w.files), (0, 0));
    assert!(
        w.unreadable[0].contains("reached twice"),
        "{:?}",
        w.unreadable
    );

    // The default crosses nothing on a single file system.
    let (_, s) = archive_of(dir.path(), None);
    assert_eq!((s.dirs, s.files), (1, 1));
    assert!(s.other_file_systems.is_empty());
}

/// L3: a chain of directories deeper than the walk descends (which would otherwise hold a
/// descriptor per level until EMFILE failed every backup) is archived down to
/// [`MAX_DEPTH`] and the rest reported; the backup succeeds.
#[test]
fn a_too_deep_tree_is_archived_to_the_depth_cap_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let deep: PathBuf = std::iter::repeat_n("a", MAX_DEPTH + 40).collect();
    fs::create_dir_all(dir.path().join(&deep)).unwrap();
    fs::write(dir.path().join("top"), b"t").unwrap();
    let (_, s) = archive_of(dir.path(), None);
    assert_eq!(s.dirs, MAX_DEPTH as u64);
    assert_eq!(s.files, 1);
    assert_eq!(s.unreadable.len(), 1, "{:?}", s.unreadable);
    assert!(
        s.unreadable[0].contains("levels deep"),
        "{:?}",
        s.unreadable
    );
}

//! Tests of the restore: resolving, unpacking within limits, modes and owners, round trips
//! (the staging and cleanup tests are in `staging_tests`).
//!
//! Floor 8: may import modules of floors 0 to 7 only; it imports `archive`, `compat`, `digest`,
//! `errors`, `layout`, `restore`, `restore::find`, `restore::place`, `restore::unpack`, `rotation`,
//! `signals`, `signals::signal`, `test_support`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::find::*;
use super::place::*;
use super::unpack::*;
use super::*;
use crate::archive::{write_archive, ArchiveOptions};
use crate::compat::Stored;
use crate::digest::{Checksums, Digests};
use crate::errors::AgentError;
use crate::layout::{self, meta, Category};
use rstest::rstest;

#[rstest]
#[case("latest", At::Latest)]
#[case("backups/media/20260101T000000.000Z.tar.gz", At::Key("backups/media/20260101T000000.000Z.tar.gz".into()))]
#[case("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", At::Version("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()))]
fn parses_at(#[case] s: &str, #[case] at: At) {
    assert_eq!(s.parse::<At>().unwrap(), at);
}

fn target(meta_sha: Option<&str>, stored: Stored) -> Target {
    Target {
        bucket: "b".into(),
        key: "k".into(),
        version_id: None,
        size: 0,
        metadata: meta_sha
            .map(|s| HashMap::from([(meta::SHA256.to_string(), s.to_string())]))
            .unwrap_or_default(),
        stored,
    }
}

#[test]
fn expected_checksum_preference() {
    let full = Stored::FullObject("crc".into());
    // The history wins over the metadata, trusted or not.
    for trust in [false, true] {
        assert!(
            matches!(Expected::choose(&target(Some("AA"), full.clone()), Some("BB"), trust), Expected::Sha256 { hex, source } if hex == "bb" && source == "history")
        );
    }
    // Metadata only when trusted...
    assert!(
        matches!(Expected::choose(&target(Some("AA"), full.clone()), None, true), Expected::Sha256 { hex, source } if hex == "aa" && source == "object metadata")
    );
    // ...otherwise S3's full-object checksum, or nothing.
    assert!(matches!(
        Expected::choose(&target(Some("AA"), full.clone()), None, false),
        Expected::Crc64nvme { .. }
    ));
    assert!(matches!(
        Expected::choose(&target(None, full), None, true),
        Expected::Crc64nvme { .. }
    ));
    assert_eq!(
        Expected::choose(
            &target(Some("AA"), Stored::Composite("x-2".into())),
            None,
            false
        ),
        Expected::Nothing
    );
}

/// Finding 5: an object replaced together with matching metadata must not verify when
/// the history knows the original SHA-256.
#[test]
fn replaced_object_with_matching_metadata_fails_against_the_history() {
    let evil = Checksums {
        sha256: "ee".repeat(32),
        crc64nvme: "evil".into(),
        bytes: 1,
    };
    let t = target(Some(&"ee".repeat(32)), Stored::FullObject("evil".into()));
    let exp = Expected::choose(&t, Some(&"aa".repeat(32)), false);
    assert_eq!(exp.verify(&evil, "x").unwrap_err().exit_code(), 9);
}

#[test]
fn target_checks() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t");
    assert_eq!(check_target(&p, false).unwrap(), TargetState::Absent);
    fs::create_dir(&p).unwrap();
    assert_eq!(check_target(&p, false).unwrap(), TargetState::EmptyDir);
    fs::write(p.join("f"), b"x").unwrap();
    assert_eq!(check_target(&p, false).unwrap_err().exit_code(), 10);
    assert_eq!(check_target(&p, true).unwrap(), TargetState::Replace);
    // Security review 2, finding 3(e): a link as the target is refused, --force or not,
    // instead of being replaced by a real directory.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    for force in [false, true] {
        let e = check_target(&link, force).unwrap_err();
        assert!(matches!(e, AgentError::TargetIsLink { .. }), "{e}");
        assert_eq!(e.exit_code(), 10);
    }
}

pub(super) fn archive_bytes(root: &Path) -> (Vec<u8>, crate::archive::ArchiveSummary) {
    let (tx, mut rx) = mpsc::channel(4096);
    let s = write_archive(
        root,
        ArchiveOptions {
            chunk_size: 1000,
            level: 6,
            ..ArchiveOptions::default()
        },
        tx,
    )
    .unwrap();
    let mut out = Vec::new();
    while let Ok(c) = rx.try_recv() {
        out.extend_from_slice(&c);
    }
    (out, s)
}

pub(super) fn feed(bytes: Vec<u8>) -> mpsc::Receiver<Result<Bytes, String>> {
    let (tx, rx) = mpsc::channel(4096);
    for c in bytes.chunks(777) {
        tx.try_send(Ok(Bytes::copy_from_slice(c))).unwrap();
    }
    rx
}

#[test]
fn local_round_trip_of_awkward_names_read_only_dirs_and_links() {
    use std::os::unix::fs::PermissionsExt;
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    let long = "d".repeat(120);
    fs::create_dir_all(root.join("with space/ünï cødé/日本").join(&long)).unwrap();
    fs::write(
        root.join("with space/ünï cødé/日本/file name.txt"),
        "こんにちは",
    )
    .unwrap();
    fs::write(
        root.join("with space").join(&long).with_extension("x"),
        b"long",
    )
    .unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("empty", root.join("link to empty")).unwrap();
    fs::create_dir(root.join("ro")).unwrap();
    fs::write(root.join("ro/inside"), b"data").unwrap();
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();

    let (bytes, summary) = archive_bytes(root);
    let out = tempfile::tempdir().unwrap();
    let u = unpack_stream(feed(bytes), out.path(), &UnpackOptions::default()).unwrap();
    let (stats, sums) = (u.stats, u.checksums);
    u.pending.apply(out.path(), false).unwrap();
    assert_eq!(sums, summary.checksums);
    assert_eq!(
        (stats.files, stats.symlinks),
        (summary.files, summary.symlinks)
    );
    assert_eq!(stats.bytes, summary.uncompressed_bytes);
    assert_eq!(
        fs::read_to_string(out.path().join("with space/ünï cødé/日本/file name.txt")).unwrap(),
        "こんにちは"
    );
    assert_eq!(
        fs::read_link(out.path().join("link to empty")).unwrap(),
        Path::new("empty")
    );
    assert_eq!(fs::read(out.path().join("ro/inside")).unwrap(), b"data");
    let mode = fs::metadata(out.path().join("ro"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o555);
    // Let the temp dirs clean up.
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(out.path().join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn entries_escaping_the_target_are_refused() {
    // A hand-made archive with ../evil (bypassing the builder's own checks).
    let mut raw = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_old();
        let name = b"../evil";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    fs::create_dir(&out).unwrap();
    let err = unpack_stream(feed(raw), &out, &UnpackOptions::default()).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    assert!(!parent.path().join("evil").exists());
}

/// Security review 2, finding 4 (partial): a file that would leave the file system with
/// less than the reserve is refused before it is written, with the numbers.
#[test]
fn a_restore_never_fills_the_file_system() {
    assert!(check_free_space(Path::new("/tmp"), 1, 0).is_ok());
    assert!(check_free_space(Path::new("/tmp"), 1, 1).is_ok());
    let e = check_free_space(Path::new("/tmp"), 1, u64::MAX / 2).unwrap_err();
    assert!(e.to_string().contains("free on the file system"), "{e}");
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), b"x").unwrap();
    let (bytes, _) = archive_bytes(src.path());
    let out = tempfile::tempdir().unwrap();
    let opts = UnpackOptions {
        limits: Limits {
            min_free: u64::MAX / 2,
            ..Limits::default()
        },
        ..UnpackOptions::default()
    };
    let err = unpack_stream(feed(bytes), out.path(), &opts).unwrap_err();
    assert!(err.to_string().contains("free on the file system"), "{err}");
    assert!(!out.path().join("a").exists());
}

/// Security review 2, finding 4 (partial): data decompressed after the tar end marker is
/// bounded; a few padding blocks pass, megabytes of zeros are refused before the rest of
/// the stream is decompressed.
#[test]
fn data_after_the_tar_end_is_bounded() {
    let gz_tar_with = |trailing: usize| {
        let mut raw = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_gnu();
            h.set_path("a.txt").unwrap();
            h.set_size(1);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &b"a"[..]).unwrap();
            let mut gz = b.into_inner().unwrap();
            std::io::Write::write_all(&mut gz, &vec![0u8; trailing]).unwrap();
            gz.finish().unwrap();
        }
        raw
    };
    let out = tempfile::tempdir().unwrap();
    unpack_stream(
        feed(gz_tar_with(10_240)),
        out.path(),
        &UnpackOptions::default(),
    )
    .expect("record padding is fine");
    let out = tempfile::tempdir().unwrap();
    let err = unpack_stream(
        feed(gz_tar_with(8 * 1024 * 1024)),
        out.path(),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("follow the tar archive's end"),
        "{err}"
    );
}

#[test]
fn corrupted_bytes_fail_or_mismatch() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), vec![7u8; 10_000]).unwrap();
    let (mut bytes, summary) = archive_bytes(src.path());
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let out = tempfile::tempdir().unwrap();
    match unpack_stream(feed(bytes), out.path(), &UnpackOptions::default()) {
        // gzip's own CRC usually catches it...
        Err(_) => {}
        // ...and when it does not, the SHA-256 comparison does.
        Ok(u) => {
            let sums = u.checksums;
            let exp = Expected::Sha256 {
                hex: summary.checksums.sha256.clone(),
                source: "test".into(),
            };
            assert_eq!(exp.verify(&sums, "x").unwrap_err().exit_code(), 9);
        }
    }
}

#[test]
fn put_in_place_replaces_only_after_success() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("t");
    fs::create_dir(&to).unwrap();
    fs::write(to.join("old"), b"old").unwrap();
    let staging = staging_path(&to);
    fs::create_dir(&staging).unwrap();
    fs::write(staging.join("new"), b"new").unwrap();
    assert!(put_in_place(&staging, &to, TargetState::Replace)
        .unwrap()
        .is_empty());
    assert!(to.join("new").exists() && !to.join("old").exists());
    assert!(!staging.exists());
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1);
}

use std::os::unix::fs::{MetadataExt, PermissionsExt};

pub(super) fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A gzip'd tar of hand-made entries: (path, type, mode, data).
pub(super) fn crafted(entries: &[(&str, tar::EntryType, u32, &[u8])]) -> Vec<u8> {
    let mut raw = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, kind, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_uid(1234);
            h.set_gid(2345);
            h.set_mtime(1_600_000_000);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }
    raw
}

pub(super) fn sha_of(bytes: &[u8]) -> Expected {
    let mut d = Digests::new();
    d.update(bytes);
    Expected::Sha256 {
        hex: d.finish().sha256,
        source: "test".into(),
    }
}

fn setuid_archive() -> Vec<u8> {
    use tar::EntryType::{Directory, Regular};
    crafted(&[
        ("sgid-dir", Directory, 0o2755, b""),
        ("sgid-dir/tool", Regular, 0o4755, b"#!/bin/sh\n"),
        ("sticky", Directory, 0o1777, b""),
        ("plain", Regular, 0o640, b"x"),
    ])
}

/// Finding 1: setuid/setgid/sticky bits are not restored by default, and counted.
#[test]
fn special_bits_are_stripped_without_preserve_owner() {
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    let bytes = setuid_archive();
    let placed = unpack_verify_place(
        feed(bytes.clone()),
        "k",
        "x",
        &sha_of(&bytes),
        &to,
        TargetState::Absent,
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(mode_of(&to.join("sgid-dir/tool")), 0o755);
    assert_eq!(mode_of(&to.join("sgid-dir")), 0o755);
    assert_eq!(mode_of(&to.join("sticky")), 0o777);
    assert_eq!(mode_of(&to.join("plain")), 0o640);
    assert_eq!(placed.unpacked.special_bits_stripped, 3);
    // Owned by the caller, not by the archive's uid.
    assert_eq!(fs::metadata(to.join("plain")).unwrap().uid(), euid());
}

/// Finding 1: with --preserve-owner (root), owners and special bits come back.
#[test]
fn preserve_owner_restores_owners_and_special_bits() {
    if euid() != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    let bytes = setuid_archive();
    let opts = UnpackOptions {
        preserve_owner: true,
        ..UnpackOptions::default()
    };
    let placed = unpack_verify_place(
        feed(bytes.clone()),
        "k",
        "x",
        &sha_of(&bytes),
        &to,
        TargetState::Absent,
        &opts,
    )
    .unwrap();
    assert_eq!(placed.unpacked.special_bits_stripped, 0);
    assert_eq!(mode_of(&to.join("sgid-dir/tool")), 0o4755);
    assert_eq!(mode_of(&to.join("sgid-dir")), 0o2755);
    assert_eq!(mode_of(&to.join("sticky")), 0o1777);
    let m = fs::metadata(to.join("sgid-dir/tool")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 2345));
}

#[test]
fn preserve_owner_is_refused_unless_root() {
    let e = check_preserve_owner(1000).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("needs root"), "{e}");
    check_preserve_owner(0).unwrap();
}

/// Finding 4: each limit stops a crafted archive with a typed error (exit 15), and the
/// staging tree is removed.
#[rstest]
#[case::entries(Limit::Entries)]
#[case::bytes(Limit::Bytes)]
#[case::path(Limit::Path)]
#[case::extension(Limit::Extension)]
#[case::pending(Limit::Pending)]
fn limits_stop_crafted_archives(#[case] which: Limit) {
    use tar::EntryType::Regular;
    let low = Limits {
        max_entries: 10,
        max_bytes: 100,
        // Paths of 200 bytes could not reach the pending bound (256 per allowed entry).
        max_path: if which == Limit::Pending { 4096 } else { 200 },
        max_extension: 1024,
        min_free: 0,
    };
    let bytes = match which {
        Limit::Entries => {
            let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
            let entries: Vec<_> = names
                .iter()
                .map(|n| (n.as_str(), Regular, 0o644, &b"x"[..]))
                .collect();
            crafted(&entries)
        }
        Limit::Bytes => crafted(&[("big", Regular, 0o644, &[0u8; 1000][..])]),
        // Five files with 600-byte names (ten entries with their long-name headers): 3,000
        // path bytes held, above 10 x 256.
        Limit::Pending => {
            let dirs = format!("{}/{}/", "a".repeat(250), "b".repeat(250));
            let names: Vec<String> = (0..5)
                .map(|i| format!("{dirs}{}{i}", "c".repeat(97)))
                .collect();
            let entries: Vec<_> = names
                .iter()
                .map(|n| (n.as_str(), Regular, 0o644, &b"x"[..]))
                .collect();
            crafted(&entries)
        }
        // 301 bytes: a GNU long name, within the extension limit.
        Limit::Path => crafted(&[(&format!("{}f", "dd/".repeat(100)), Regular, 0o644, b"x")]),
        Limit::Extension => {
            // One GNU long-name header declaring 1 GiB, and no data: the tar reader
            // would try to buffer all of it.
            let mut raw = Vec::new();
            {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::fast());
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::GNULongName);
                h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
                h.set_size(1 << 30);
                h.set_mode(0o644);
                h.set_cksum();
                gz.write_all(h.as_bytes()).unwrap();
                gz.finish().unwrap();
            }
            raw
        }
    };
    // Within the defaults, each of them unpacks (or fails for another reason).
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    let opts = UnpackOptions {
        limits: low,
        preserve_owner: false,
    };
    let started = std::time::Instant::now();
    let e = unpack_verify_place(
        feed(bytes.clone()),
        "k",
        "x",
        &sha_of(&bytes),
        &to,
        TargetState::Absent,
        &opts,
    )
    .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    match &e {
        AgentError::UnpackLimit { flag, .. } => assert_eq!(*flag, which.flag(), "{e}"),
        other => panic!("expected a limit error, got {other}"),
    }
    assert_eq!(e.exit_code(), 15);
    assert_eq!(
        fs::read_dir(parent.path()).unwrap().count(),
        0,
        "staging left behind"
    );
    if which != Limit::Extension {
        let to2 = parent.path().join("t2");
        unpack_verify_place(
            feed(bytes.clone()),
            "k",
            "x",
            &sha_of(&bytes),
            &to2,
            TargetState::Absent,
            &UnpackOptions::default(),
        )
        .unwrap();
    }
}

#[test]
fn special_entry_types_and_paths_through_symlinks_are_refused() {
    use tar::EntryType::{Fifo, Regular, Symlink};
    // Where the symlink points: a directory of this test's own, which must stay empty.
    let outside = tempfile::tempdir().unwrap();
    let mut link = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut link, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(Symlink);
        h.set_size(0);
        b.append_link(&mut h, "escape", outside.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(Regular);
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "escape/planted", &b"x"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let fifo = crafted(&[("pipe", Fifo, 0o644, b"")]);
    for (bytes, want) in [(link, "not a directory"), (fifo, "type")] {
        let out = tempfile::tempdir().unwrap();
        let err = unpack_stream(feed(bytes), out.path(), &UnpackOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    assert!(!outside.path().join("planted").exists());
}

/// Incompressible bytes (xorshift), so an archive of them is as large as they are.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Finding 19: a restore cancelled mid-download (SIGTERM) removes its staging tree,
/// leaves the target alone and ends in exit 143.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_restore_removes_its_staging_and_leaves_the_target_alone() {
    use crate::signals::{Cancel, Signal};
    use crate::test_support::stub::{Reply, StubS3};
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), b"first").unwrap();
    fs::write(src.path().join("big"), noise(2 << 20)).unwrap();
    let (bytes, _) = tokio::task::block_in_place(|| archive_bytes(src.path()));
    let len = bytes.len();
    let half = Bytes::copy_from_slice(&bytes[..len / 2]);
    let stub = StubS3::start(move |s, _| {
        if s.op() == "GetObject" {
            Reply::Stall {
                status: 200,
                headers: vec![("content-length".into(), len.to_string())],
                first: half.clone(),
            }
        } else {
            Reply::error(404, "NoSuchKey", "no")
        }
    })
    .await;
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    let cancel = Cancel::new();
    let task = {
        let (s3, c, to) = (stub.client(), cancel.clone(), to.clone());
        tokio::spawn(async move {
            let t = target(None, Stored::Absent);
            restore(
                &s3,
                &t,
                &Expected::Nothing,
                &to,
                TargetState::Absent,
                &UnpackOptions::default(),
                &c,
            )
            .await
        })
    };
    // Wait until the unpack has started writing into its staging tree.
    let staging = || {
        fs::read_dir(parent.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().contains(STAGING_MARK))
            .map(|e| e.path())
    };
    let started = std::time::Instant::now();
    while !staging().is_some_and(|p| fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())) {
        assert!(started.elapsed().as_secs() < 20, "the unpack never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cancel.trigger(Signal::Terminate);
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("the cancelled restore did not stop")
        .unwrap();
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), 143, "{e}");
    assert!(staging().is_none(), "staging left behind");
    assert!(!to.exists());
}

/// M2: a key this host's history recorded is fetched at the recorded version (HeadObject
/// and GetObject carry its versionId) although someone has put a newer version under it.
#[tokio::test]
async fn the_history_pins_the_version_it_recorded() {
    use crate::test_support::stub::{Reply, StubS3};
    let key = "backups/documents/20260101T000000.000Z.tar.gz";
    let stub = StubS3::start(
        |s, _| match (s.op(), s.query_value("versionId").as_deref()) {
            ("HeadObject", Some("v1")) => Reply::status(200)
                .header("content-length", "100")
                .header("x-amz-version-id", "v1"),
            ("HeadObject", None) => Reply::status(200)
                .header("content-length", "5")
                .header("x-amz-version-id", "v9"),
            _ => Reply::error(404, "NoSuchVersion", "no"),
        },
    )
    .await;
    let s3 = stub.client();
    let recorded = HashMap::from([(key.to_string(), "v1".to_string())]);
    let at = At::Key(key.into());
    let t = resolve_preferring(&s3, "b", Category::Documents, &at, None, &recorded)
        .await
        .unwrap();
    assert_eq!(t.version_id.as_deref(), Some("v1"));
    assert_eq!(t.size, 100);
    let heads = stub.of("HeadObject");
    assert!(
        heads
            .iter()
            .any(|h| h.query_value("versionId").as_deref() == Some("v1")),
        "{heads:?}"
    );
    let parent = tempfile::tempdir().unwrap();
    let _ = restore(
        &s3,
        &t,
        &Expected::Nothing,
        &parent.path().join("t"),
        TargetState::Absent,
        &UnpackOptions::default(),
        &crate::signals::Cancel::new(),
    )
    .await;
    let gets = stub.of("GetObject");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].query_value("versionId").as_deref(), Some("v1"));
    // Without a record the current version is fetched, as before.
    let t = resolve_preferring(&s3, "b", Category::Documents, &at, None, &HashMap::new())
        .await
        .unwrap();
    assert_eq!(t.version_id.as_deref(), Some("v9"));
}

/// M2: an archive of 200,000 copies of one directory entry with a ~4 KiB name (a GNU long
/// name each; 1 GB of tar) unpacks into one directory with one pending entry: repeated
/// directory entries are neither created again nor kept again until verification.
#[test]
fn repeated_directory_entries_are_kept_once() {
    use std::io::Write;
    // 15 components of 255 bytes and one of 59: 3,900 bytes, below PATH_MAX with the
    // staging directory in front.
    let mut name = format!("{}/", "d".repeat(255)).repeat(15);
    name.push_str(&"e".repeat(59));
    let one = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o750);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        b.append_data(&mut h, &name, std::io::empty()).unwrap();
        let mut one = b.into_inner().unwrap();
        // Without the end-of-archive blocks into_inner wrote.
        one.truncate(one.len() - 1024);
        assert_eq!(one.len(), 512 + 3584 + 512 + 512);
        one
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..200_000 {
        gz.write_all(&one).unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    let bytes = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(bytes.len() / (1 << 16) + 1);
    for c in bytes.chunks(1 << 16) {
        tx.try_send(Ok(Bytes::copy_from_slice(c))).unwrap();
    }
    drop(tx);
    let started = std::time::Instant::now();
    let u = unpack_stream(rx, dir.path(), &UnpackOptions::default()).unwrap();
    eprintln!(
        "{} compressed bytes unpacked in {:?}",
        bytes.len(),
        started.elapsed()
    );
    assert_eq!(u.pending.len(), 1);
    assert_eq!(u.stats.dirs, 1);
    assert!(dir.path().join(&name).is_dir());
    assert!(u.pending.path_bytes() <= 4096);
}

/// Finding 20: `latest` is the history's last success while it exists, otherwise the
/// newest by LastModified, never a future-dated name.
#[test]
fn latest_prefers_the_history_then_last_modified() {
    use crate::rotation::Object;
    use chrono::{TimeZone, Utc};
    let t = |y, h| Utc.with_ymd_and_hms(y, 3, 1, h, 0, 0).unwrap();
    let k = |y, h| layout::key_for(Category::Documents, t(y, h));
    let listed = vec![
        Object::new(k(2100, 0), Some(t(2026, 0))),
        Object::new(k(2026, 1), Some(t(2026, 1))),
        Object::new(k(2026, 2), Some(t(2026, 2))),
    ];
    let now = t(2026, 3);
    assert_eq!(
        latest_of(&listed, Category::Documents, None, now),
        Some(k(2026, 2))
    );
    assert_eq!(
        latest_of(&listed, Category::Documents, Some(&k(2026, 1)), now),
        Some(k(2026, 1))
    );
    // A history key rotated away (or from another bucket) is not used.
    assert_eq!(
        latest_of(&listed, Category::Documents, Some(&k(2025, 1)), now),
        Some(k(2026, 2))
    );
    assert_eq!(latest_of(&[], Category::Documents, None, now), None);
}

/// Finding 30: hard links inside the tree survive a backup and restore as links.
#[test]
fn hard_links_round_trip() {
    use std::os::unix::fs::MetadataExt;
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), b"shared").unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    fs::hard_link(src.path().join("a"), src.path().join("sub/b")).unwrap();
    let (bytes, summary) = archive_bytes(src.path());
    assert_eq!((summary.files, summary.hard_links), (1, 1));
    let dst = tempfile::tempdir().unwrap();
    let u = unpack_stream(feed(bytes), dst.path(), &UnpackOptions::default()).unwrap();
    u.pending.apply(dst.path(), false).unwrap();
    let a = fs::metadata(dst.path().join("a")).unwrap();
    let b = fs::metadata(dst.path().join("sub/b")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    assert_eq!(fs::read(dst.path().join("sub/b")).unwrap(), b"shared");
}

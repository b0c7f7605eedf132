//! Tests of the restore's staging, placing and cleanup: private staging, the restored
//! root's mode, long paths, removal of read-only and raced trees.
//!
//! Floor 9: may import modules of floors 0 to 8 only; it imports `archive::at`, `archive::walk`,
//! `errors`, `restore`, `restore::find`, `restore::place`, `restore::tests`, `restore::unpack`,
//! `test_support`.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::place::*;
use super::tests::{archive_bytes, crafted, feed, mode_of, sha_of};
use super::unpack::*;
use super::*;
use crate::errors::AgentError;

/// Finding 2: the staging dir is 0700, entries stay 0700/0600 until the checksum
/// verified, and the final modes come only with `apply`.
#[test]
fn staging_is_private_and_final_modes_wait_for_verification() {
    use tar::EntryType::{Directory, Regular};
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    let (staging, _) = create_staging(&to).unwrap();
    assert_eq!(mode_of(&staging), 0o700);
    let bytes = crafted(&[
        ("open", Directory, 0o777, b""),
        ("open/public", Regular, 0o666, b"p"),
        ("open/exec", Regular, 0o755, b"e"),
    ]);
    let u = unpack_stream(feed(bytes), &staging, &UnpackOptions::default()).unwrap();
    assert_eq!(mode_of(&staging), 0o700);
    assert_eq!(mode_of(&staging.join("open")), 0o700);
    assert_eq!(mode_of(&staging.join("open/public")), 0o600);
    assert_eq!(mode_of(&staging.join("open/exec")), 0o600);
    u.pending.apply(&staging, false).unwrap();
    assert_eq!(mode_of(&staging.join("open")), 0o777);
    assert_eq!(mode_of(&staging.join("open/public")), 0o666);
    assert_eq!(mode_of(&staging.join("open/exec")), 0o755);
    // M3: an archive without an entry for the root (no `./`) gets the fallback mode, never
    // a new directory's 0o777 minus the umask.
    assert_eq!(mode_of(&staging), 0o700);
    let mtime = fs::metadata(staging.join("open")).unwrap().mtime();
    assert_eq!(mtime, 1_600_000_000);
    remove_tree(&staging).unwrap();
}

/// M3: the restored directory gets the source root's own mode (0700 here, with a 0644
/// file inside), restored into an absent target and over a wider (0755) one; an archive
/// without a `./` entry (written before the root was archived) still restores, with the
/// replaced directory's mode or 0700.
#[test]
fn the_restored_root_keeps_its_archived_mode() {
    use std::os::unix::fs::PermissionsExt;
    use tar::EntryType::Regular;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("home");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("doc"), b"private").unwrap();
    fs::set_permissions(root.join("doc"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    let (bytes, _) = archive_bytes(&root);
    let parent = tempfile::tempdir().unwrap();
    let restore = |bytes: &[u8], to: &Path, state| {
        unpack_verify_place(
            feed(bytes.to_vec()),
            "k",
            "x",
            &sha_of(bytes),
            to,
            state,
            &UnpackOptions::default(),
        )
        .unwrap()
    };
    let absent = parent.path().join("absent");
    restore(&bytes, &absent, TargetState::Absent);
    assert_eq!(mode_of(&absent), 0o700);
    assert_eq!(mode_of(&absent.join("doc")), 0o644);
    let replaced = parent.path().join("replaced");
    fs::create_dir(&replaced).unwrap();
    fs::write(replaced.join("old"), b"old").unwrap();
    fs::set_permissions(&replaced, fs::Permissions::from_mode(0o755)).unwrap();
    restore(&bytes, &replaced, check_target(&replaced, true).unwrap());
    assert_eq!(mode_of(&replaced), 0o700);
    assert_eq!(fs::read(replaced.join("doc")).unwrap(), b"private");
    // An old archive: no entry for the root.
    let old = crafted(&[("doc", Regular, 0o644, b"private")]);
    let fresh = parent.path().join("fresh");
    restore(&old, &fresh, TargetState::Absent);
    assert_eq!(mode_of(&fresh), 0o700);
    fs::set_permissions(&replaced, fs::Permissions::from_mode(0o750)).unwrap();
    restore(&old, &replaced, TargetState::Replace);
    assert_eq!(mode_of(&replaced), 0o750);
    assert_eq!(fs::read(replaced.join("doc")).unwrap(), b"private");
}

/// M4: a source path too long to restore (17 nested directories with 255-byte names,
/// made one level at a time as any user who can write in the source can) is reported at
/// backup time, and the backup restores with the default options: everything down to the
/// deepest restorable level comes back.
#[test]
fn a_path_too_long_to_restore_is_reported_at_backup_and_the_rest_restores() {
    use std::os::unix::ffi::OsStrExt;
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("top"), b"top").unwrap();
    let name = "n".repeat(255);
    let mut dir = fs::File::open(src.path()).unwrap();
    for level in 1..=17 {
        let c = std::ffi::CString::new(name.as_bytes()).unwrap();
        // SAFETY: `dir` is an open directory and `c` a NUL-terminated name.
        assert_eq!(
            unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) },
            0
        );
        dir = crate::archive::at::open(&dir, name.as_ref(), libc::O_RDONLY | libc::O_DIRECTORY)
            .unwrap();
        if level == 17 {
            let f = std::ffi::CString::new("deepest").unwrap();
            // SAFETY: as above; the returned descriptor is closed at once.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    f.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY,
                    0o644,
                )
            };
            assert!(fd >= 0);
            // SAFETY: `fd` was just opened and is not used again.
            unsafe { libc::close(fd) };
        }
    }
    let (bytes, s) = archive_bytes(src.path());
    assert_eq!(s.unreadable.len(), 1, "{:?}", s.unreadable);
    assert!(
        s.unreadable[0].contains("a restore can create"),
        "{:?}",
        s.unreadable
    );
    // Level k is 256k - 1 bytes long: levels 1 to 12 fit in 3,072 bytes.
    assert_eq!((s.dirs, s.files), (12, 1));
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
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
    assert_eq!((placed.unpacked.dirs, placed.unpacked.files), (12, 1));
    assert_eq!(fs::read(to.join("top")).unwrap(), b"top");
    let deepest: PathBuf = std::iter::repeat_n(name.as_str(), 12).collect();
    assert!(to.join(&deepest).is_dir());
    assert!(deepest.as_os_str().as_bytes().len() <= crate::archive::MAX_RESTORABLE_PATH);
}

/// Finding 2/3: a checksum mismatch leaves nothing behind, not even a read-only tree, and
/// neither does a failure after the archived modes were applied (here the target vanished
/// before it could be replaced), when staging holds a 0o555 directory with a 0o444 file.
/// Run as a non-root user (root's `remove_dir_all` ignores modes, so as root the test
/// could not tell a removal that makes directories writable first from one that does not).
#[test]
fn a_mismatch_removes_the_staging_tree_and_keeps_the_target() {
    if !crate::test_support::runs_as_non_root(
        "restore::staging_tests::a_mismatch_removes_the_staging_tree_and_keeps_the_target",
    ) {
        return;
    }
    use tar::EntryType::{Directory, Regular};
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    fs::create_dir(&to).unwrap();
    fs::write(to.join("mine"), b"mine").unwrap();
    let entries: &[(&str, tar::EntryType, u32, &[u8])] = &[
        ("ro", Directory, 0o555, b""),
        ("ro/f", Regular, 0o444, b"f"),
    ];
    let wrong = Expected::Sha256 {
        hex: "00".repeat(32),
        source: "test".into(),
    };
    let e = unpack_verify_place(
        feed(crafted(entries)),
        "k",
        "x",
        &wrong,
        &to,
        TargetState::Replace,
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 9, "{e}");
    let names = || -> Vec<_> {
        fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    assert_eq!(names(), ["t"]);
    assert_eq!(fs::read(to.join("mine")).unwrap(), b"mine");
    // Verified and the modes applied, then the target is gone: staging is read-only now.
    fs::remove_file(to.join("mine")).unwrap();
    fs::remove_dir(&to).unwrap();
    let e = unpack_verify_place(
        feed(crafted(entries)),
        "k",
        "x",
        &Expected::Nothing,
        &to,
        TargetState::Replace,
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(!matches!(e, AgentError::Cleanup { .. }), "{e}");
    assert!(names().is_empty(), "left behind: {:?}", names());
}

/// Finding 3: replacing a target twice, with read-only directories in it and
/// leftovers of earlier runs (the old fixed `.t.old` name, a crashed run's staging dir)
/// next to it, works and reports the leftovers.
#[test]
fn replacing_twice_with_read_only_dirs_and_leftovers_works() {
    use tar::EntryType::{Directory, Regular};
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    for leftover in [".t.old", ".t.autobackup-partial-1-2"] {
        let p = parent.path().join(leftover);
        fs::create_dir_all(p.join("ro")).unwrap();
        fs::write(p.join("ro/f"), b"f").unwrap();
        fs::set_permissions(p.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    }
    fs::create_dir(&to).unwrap();
    fs::write(to.join("old"), b"old").unwrap();
    let bytes = crafted(&[
        ("ro", Directory, 0o555, b""),
        ("ro/f", Regular, 0o444, b"new"),
    ]);
    for round in 0..2 {
        let placed = unpack_verify_place(
            feed(bytes.clone()),
            "k",
            "x",
            &sha_of(&bytes),
            &to,
            TargetState::Replace,
            &UnpackOptions::default(),
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(fs::read(to.join("ro/f")).unwrap(), b"new");
        assert_eq!(mode_of(&to.join("ro")), 0o555);
        assert!(
            placed
                .warnings
                .iter()
                .any(|w| w.contains(".t.autobackup-partial-1-2")),
            "{:?}",
            placed.warnings
        );
    }
    let mut names: Vec<_> = fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".t.autobackup-partial-1-2", ".t.old", "t"]);
    for leftover in [".t.old", ".t.autobackup-partial-1-2", "t"] {
        remove_tree(&parent.path().join(leftover)).unwrap();
    }
}

#[test]
fn staging_and_old_names_are_unique_per_run() {
    let to = Path::new("/srv/t");
    let (a, b) = (staging_path(to), staging_path(to));
    assert_ne!(a, b);
    let name = a.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!(".t.autobackup-partial-{}-", std::process::id())));
    assert_eq!(
        old_path(&a).file_name().unwrap().to_string_lossy(),
        format!("{name}.old")
    );
}

/// Finding 3: `remove_tree` removes read-only trees that `remove_dir_all` cannot (as a
/// non-root user: as root the test re-runs itself as nobody).
#[test]
fn remove_tree_removes_read_only_trees() {
    if !crate::test_support::runs_as_non_root(
        "restore::staging_tests::remove_tree_removes_read_only_trees",
    ) {
        return;
    }
    let build = |root: &Path| {
        fs::create_dir_all(root.join("ro/none")).unwrap();
        fs::write(root.join("ro/f"), b"f").unwrap();
        fs::write(root.join("ro/none/g"), b"g").unwrap();
        fs::set_permissions(root.join("ro/none"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    };
    let base = tempfile::tempdir().unwrap();
    let a = base.path().join("a");
    build(&a);
    if euid() != 0 {
        // What the restore used before: fails on a read-only tree.
        assert!(fs::remove_dir_all(&a).is_err());
    }
    remove_tree(&a).unwrap();
    assert!(!a.exists());
}

/// H1: a directory of the tree swapped for a symlink to an outside directory between its
/// `lstat` and its open (a 0o7077 one, which `remove_tree` must make accessible first) is
/// neither chmod'ed nor listed nor emptied through the link: the removal fails and the
/// outside directory and its canary keep their contents and modes.
#[test]
fn remove_tree_never_follows_a_directory_swapped_for_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    let canary = outside.join("canary");
    fs::write(&canary, b"keep").unwrap();
    fs::set_permissions(&canary, fs::Permissions::from_mode(0o644)).unwrap();
    let tree = base.path().join("tree");
    let d = tree.join("d");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("f"), b"f").unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o7077)).unwrap();
    let moved = base.path().join("moved");
    let mut swapped = false;
    let r = remove_tree_with(&tree, &mut |rel| {
        if rel == Path::new("d") && !swapped {
            fs::rename(&d, &moved).unwrap();
            std::os::unix::fs::symlink(&outside, &d).unwrap();
            swapped = true;
        }
    });
    assert!(swapped, "the hook ran between the lstat and the open of d");
    assert!(r.is_err(), "the swapped entry must fail the removal");
    assert_eq!(fs::read(&canary).unwrap(), b"keep", "the canary survives");
    assert_eq!(mode(&canary), 0o644);
    assert_eq!(
        mode(&outside),
        0o755,
        "the outside directory was not chmod'ed"
    );
    fs::set_permissions(&moved, fs::Permissions::from_mode(0o700)).unwrap();
}

/// Security review 2, finding 3(c): the staging leftover of a restore that is gone (its pid
/// no longer runs) is swept by the next restore, read-only directories and all; one of a
/// restore that may still run (pid 1 here, or a live pid) is only reported.
#[test]
fn leftovers_of_restores_that_are_gone_are_swept() {
    use tar::EntryType::Regular;
    let parent = tempfile::tempdir().unwrap();
    let to = parent.path().join("t");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let stale = parent
        .path()
        .join(format!(".t.autobackup-partial-{gone}-1-0000abcd"));
    let live = parent.path().join(format!(
        ".t.autobackup-partial-{}-1-0000abcd",
        std::process::id()
    ));
    for p in [&stale, &live] {
        fs::create_dir_all(p.join("ro")).unwrap();
        fs::write(p.join("ro/f"), b"f").unwrap();
        fs::set_permissions(p.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    }
    let bytes = crafted(&[("f", Regular, 0o644, b"new")]);
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
    assert!(!stale.exists(), "the stale leftover was swept");
    assert!(live.exists(), "a running restore's staging is left alone");
    assert!(
        placed
            .warnings
            .iter()
            .any(|w| w.contains("removed the leftover")),
        "{:?}",
        placed.warnings
    );
    remove_tree(&live).unwrap();
}

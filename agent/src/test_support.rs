//! Test helpers shared by the unit tests.

/// For tests about permissions, which root bypasses: returns `true` when the calling test
/// should run its body in this process (not root, or already the re-run). As root it
/// re-runs `test` (its full path, e.g. `archive::tests::name`) from this test binary as
/// user and group 65534 (nobody), asserts that the re-run passed, and returns `false`.
pub fn runs_as_non_root(test: &str) -> bool {
    const ENV: &str = "AUTOBACKUP_TEST_AS_NOBODY";
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 || std::env::var_os(ENV).is_some() {
        return true;
    }
    use std::os::unix::process::CommandExt;
    let exe = runnable_by_nobody();
    let out = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ENV, "1")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("re-run the test as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} as nobody: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// A copy of this test binary that uid 65534 can execute: the build directory usually sits
/// under root's 0700 home. Copied once per binary version (a temporary name renamed into
/// place, so concurrent test processes never see a half-written file).
fn runnable_by_nobody() -> std::path::PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    static COPY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let meta = std::fs::metadata(&exe).expect("test binary metadata");
        let dir = std::env::temp_dir().join("autobackup-tests-as-nobody");
        std::fs::create_dir_all(&dir).expect("create the copy directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("open the copy directory");
        let name = format!(
            "{}-{}-{}",
            exe.file_name().unwrap_or_default().to_string_lossy(),
            meta.size(),
            meta.mtime()
        );
        let copy = dir.join(&name);
        if !copy.is_file() {
            let partial = dir.join(format!("{name}.{}", std::process::id()));
            std::fs::copy(&exe, &partial).expect("copy the test binary");
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
                .expect("make the copy executable");
            std::fs::rename(&partial, &copy).expect("move the copy into place");
        }
        copy
    })
    .clone()
}

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
    let exe = std::env::current_exe().expect("test binary path");
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

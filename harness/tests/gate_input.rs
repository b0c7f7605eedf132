//! `harness gate` refuses bad input with exit 2 before any engine starts: a malformed
//! `--shard`, and a scenario directory holding one invalid file (the error names it).

use std::process::Command;

fn gate(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("gate")
        .args(args)
        .output()
        .expect("run harness gate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_bad_shard_is_exit_2_and_says_why() {
    for (shard, why) in [
        ("3/2", "K must be between 1 and N"),
        ("1/0", "N must be at least 1"),
        ("half", "not K/N"),
    ] {
        let (code, stderr) = gate(&["--engines", "ministack", "--shard", shard]);
        assert_eq!(code, Some(2), "{shard}: {stderr}");
        assert!(stderr.contains(why), "{shard}: {stderr}");
    }
}

#[test]
fn an_invalid_scenario_fails_before_any_engine_starts() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("fine.toml"),
        "description = \"d\"\n\n[[step]]\nwait = { for = \"idle\" }\n",
    )
    .unwrap();
    std::fs::write(
        scenarios.join("broken.toml"),
        "description = \"d\"\n\n[[step]]\nupload = { category = \"no-such-category\", key = \"k\", text = \"x\" }\n",
    )
    .unwrap();
    // `external` without AWS_ENDPOINT_URL would fail at engine start: reaching it is the
    // bug this test would catch.
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["gate", "--engines", "external", "--dir"])
        .arg(&scenarios)
        .arg("--out")
        .arg(dir.path().join("out"))
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run harness gate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.toml:"), "{stderr}");
    assert!(!stderr.contains("AWS_ENDPOINT_URL"), "{stderr}");
    assert!(
        !dir.path().join("out").exists(),
        "nothing written before the input is valid"
    );
}

#[test]
fn an_unknown_profile_fails_before_any_engine_starts() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("slowpoke.toml"),
        "description = \"d\"\nprofile = \"glacial\"\n\n[[step]]\nwait = { for = \"idle\" }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["gate", "--engines", "external", "--dir"])
        .arg(&scenarios)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run harness gate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("slowpoke.toml") && stderr.contains("glacial"),
        "{stderr}"
    );
    assert!(!stderr.contains("AWS_ENDPOINT_URL"), "{stderr}");
}

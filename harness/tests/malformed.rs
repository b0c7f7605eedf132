//! Malformed scenario files (`tests/malformed-scenarios/*.toml`): each one, checked by the
//! real `harness scenario check` binary (no engine is started), must exit 2 with an error
//! on stderr that names the file, the line and the problem.
//!
//! Every file starts with a header the test reads:
//!
//! ```toml
//! # Malformed: what is wrong with it.
//! # expect: a fragment of the error message
//! # line: 5
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;

/// The repository root: where `scenarios/`, `fixtures/` and `tests/` are.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// Runs `harness scenario check FILES...` from the repository root.
fn check(files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(repo_root())
        // Nothing here may reach an engine: point every engine setting nowhere.
        .env("HARNESS_ROOT", repo_root())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["scenario", "check"])
        .args(files)
        .output()
        .expect("run the harness binary")
}

/// The value of the header line `# {key}: VALUE`.
fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("# {key}:");
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

/// The file relative to the repository root, as the test passes it to the binary.
fn relative(path: &Path) -> PathBuf {
    let root = repo_root();
    let canon = path.canonicalize().expect("the file exists");
    canon
        .strip_prefix(root.canonicalize().expect("the root exists"))
        .expect("inside the repository")
        .to_path_buf()
}

#[rstest]
fn malformed_scenario_is_refused_with_file_line_and_problem(
    #[files("../tests/malformed-scenarios/*.toml")] path: PathBuf,
) {
    let text = std::fs::read_to_string(&path).expect("read the file");
    let expect = header(&text, "expect").expect("the file has an `# expect:` header");
    let line: usize = header(&text, "line")
        .and_then(|l| l.parse().ok())
        .expect("the file has a `# line: N` header");
    let rel = relative(&path);
    let out = check(std::slice::from_ref(&rel));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code for {}\nstdout: {stdout}\nstderr: {stderr}",
        rel.display()
    );
    let located = format!("{}:{line}:", rel.display());
    assert!(
        stderr.contains(&located),
        "stderr does not name {located}\n{stderr}"
    );
    assert!(
        stderr.contains(expect),
        "stderr does not say {expect:?}\n{stderr}"
    );
    assert!(stderr.contains("hint:"), "no hint\n{stderr}");
    assert!(!stdout.contains("ok "), "reported as ok\n{stdout}");
}

/// The corpus: at least 20 files, each expecting a different error.
#[test]
fn corpus_has_twenty_distinct_errors() {
    let dir = repo_root().join("tests/malformed-scenarios");
    let mut fragments = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read the corpus") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read the file");
            let f = header(&text, "expect")
                .expect("an `# expect:` header")
                .to_string();
            assert!(
                !fragments.contains(&f),
                "{} expects {f:?}, as another file does",
                path.display()
            );
            fragments.push(f);
        }
    }
    assert!(fragments.len() >= 20, "only {} files", fragments.len());
}

/// The real scenarios all pass the same check (exit 0, one `ok` line each).
#[test]
fn real_scenarios_pass_the_check() {
    let dir = repo_root().join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read scenarios/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let out = check(&files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        files.len()
    );
}

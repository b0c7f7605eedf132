//! End to end: `harness gate` as a child process on MiniStack, over a temporary root holding
//! two scenarios copied from `scenarios/` with their reviewed snapshots. Unchanged, the gate
//! passes (exit 0) and writes junit.xml, summary.md and report.html; with one line of one
//! snapshot edited it exits 1 and that scenario is red in all three, the other still green.

#![cfg(feature = "e2e")]

use std::path::{Path, PathBuf};
use std::process::Command;

const SCENARIOS: [&str; 2] = ["happy-path", "test-event"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn snapshot(root: &Path, name: &str) -> PathBuf {
    root.join("tests")
        .join("snapshots")
        .join(format!("scenarios__{name}.snap"))
}

/// A root with `scenarios/` and `tests/snapshots/` holding copies of `SCENARIOS`.
fn root_with_copies() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp root");
    std::fs::create_dir_all(root.path().join("scenarios")).unwrap();
    std::fs::create_dir_all(root.path().join("tests").join("snapshots")).unwrap();
    for name in SCENARIOS {
        std::fs::copy(
            repo().join("scenarios").join(format!("{name}.toml")),
            root.path().join("scenarios").join(format!("{name}.toml")),
        )
        .expect("copy the scenario");
        std::fs::copy(snapshot(&repo(), name), snapshot(root.path(), name))
            .expect("copy its snapshot");
    }
    root
}

struct Gate {
    code: Option<i32>,
    stdout: String,
    junit: String,
    summary: String,
    report: String,
}

fn gate(root: &Path, out: &str) -> Gate {
    let out = root.join(out);
    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["gate", "--engines", "ministack", "--dir"])
        .arg(root.join("scenarios"))
        .arg("--topology")
        .arg(repo().join("fixtures").join("topology.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run harness gate");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| {
            panic!("{name} not written ({e}):\n{stdout}\n--- stderr ---\n{stderr}")
        })
    };
    Gate {
        code: run.status.code(),
        junit: read("junit.xml"),
        summary: read("summary.md"),
        report: read("report.html"),
        stdout,
    }
}

/// The `<testcase>` element of `name` in a JUnit document.
fn testcase<'a>(junit: &'a str, name: &str) -> &'a str {
    let start = junit
        .find(&format!("<testcase name=\"{name}\""))
        .unwrap_or_else(|| panic!("no testcase {name} in\n{junit}"));
    let rest = &junit[start..];
    let tag_end = rest.find('>').expect("the tag closes") + 1;
    if rest[..tag_end].ends_with("/>") {
        return &rest[..tag_end];
    }
    let end = rest.find("</testcase>").expect("the element closes") + "</testcase>".len();
    &rest[..end]
}

#[test]
fn the_gate_passes_then_names_a_planted_failure_in_every_output() {
    let root = root_with_copies();

    let green = gate(root.path(), "green");
    assert_eq!(green.code, Some(0), "{}", green.stdout);
    for name in SCENARIOS {
        assert!(
            !testcase(&green.junit, name).contains("<failure"),
            "{name}: {}",
            green.junit
        );
        assert!(
            green.summary.contains(&format!("| `{name}` | ✅ PASS |")),
            "{}",
            green.summary
        );
        assert!(green.report.contains(name), "{}", green.report);
    }
    assert!(green
        .junit
        .contains("<testsuite name=\"posture-ministack\""));
    assert!(green.summary.starts_with("## Pre-deploy gate passed"));
    assert!(
        green.stdout.contains("PASS posture on ministack"),
        "{}",
        green.stdout
    );

    // Plant a failure: one line of test-event's snapshot says something else.
    let red_name = "test-event";
    let snap = snapshot(root.path(), red_name);
    let text = std::fs::read_to_string(&snap).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("acknowledged"))
        .expect("a line to edit")
        .to_string();
    std::fs::write(&snap, text.replacen(&line, "a line no run produces", 1)).unwrap();

    let red = gate(root.path(), "red");
    assert_eq!(red.code, Some(1), "{}", red.stdout);
    let case = testcase(&red.junit, red_name);
    assert!(case.contains("<failure"), "{case}");
    assert!(case.contains("a line no run produces"), "the diff: {case}");
    assert!(
        !testcase(&red.junit, "happy-path").contains("<failure"),
        "{}",
        red.junit
    );
    assert!(red.summary.starts_with("## Pre-deploy gate FAILED"));
    assert!(
        red.summary.contains(&format!("| `{red_name}` | ❌ FAIL |")),
        "{}",
        red.summary
    );
    assert!(
        red.summary
            .contains(&format!("#### `{red_name}` on ministack: ❌ FAIL")),
        "{}",
        red.summary
    );
    assert!(red.summary.contains("```diff"), "{}", red.summary);
    assert!(
        red.summary.contains("-a line no run produces"),
        "{}",
        red.summary
    );
    // The report names the red scenario and marks it failed (whatever its layout).
    let report = red.report.to_ascii_lowercase();
    assert!(report.contains(red_name), "{}", red.report);
    assert!(report.contains("fail"), "{}", red.report);
    assert!(
        red.stdout
            .contains(&format!("FAIL {red_name} on ministack")),
        "{}",
        red.stdout
    );
}

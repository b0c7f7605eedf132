//! The import rule, applied to the workspace: no circle between the files of any crate, and
//! every crate's imports as the README's layer map says (every module on a floor, nothing
//! running up a floor unless the map's upward table names it, each room's `//!` stating its
//! floor). A planted circle in a copy of the harness shows the check catching one. No
//! source file is over 1,000 lines.

use std::path::{Path, PathBuf};

use layers::{Graph, LayerMap};

/// The crates under the rule: the name their README map uses, and their root file.
const CRATES: &[(&str, &str)] = &[
    ("harness", "harness/src/lib.rs"),
    ("agent", "agent/src/lib.rs"),
    (
        "checksum_validator",
        "functions/checksum-validator/src/lib.rs",
    ),
    ("failure_notifier", "functions/failure-notifier/src/lib.rs"),
];

/// At most this many imports may run up a floor, across the workspace (each named in the
/// README with why).
const MAX_UPWARD: usize = 3;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn graph(root: &Path, name: &str, file: &str) -> Graph {
    Graph::from_crate(name, &root.join(file), root)
        .unwrap_or_else(|e| panic!("{name}: cannot read {file}: {e}"))
}

#[test]
fn no_crate_has_an_import_circle() {
    let root = workspace();
    let reports: Vec<String> = CRATES
        .iter()
        .filter_map(|(name, file)| graph(&root, name, file).circles_report())
        .collect();
    assert!(
        reports.is_empty(),
        "import circles (move the code to its floor; see the README's Layers):\n{}",
        reports.join("\n")
    );
}

#[test]
fn every_crate_matches_the_readmes_layer_map() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut problems = Vec::new();
    let mut upward = 0;
    for (name, file) in CRATES {
        let map = match LayerMap::from_readme(&readme, name) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        upward += map.upward.len();
        for v in map.check(&graph(&root, name, file), &root) {
            problems.push(format!("{name}: {v}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the code and the README's layer map disagree:\n{}",
        problems.join("\n")
    );
    assert!(
        upward <= MAX_UPWARD,
        "{upward} upward imports allowed in the README; at most {MAX_UPWARD}"
    );
}

/// Copies a crate's sources into a temporary directory (keeping their paths under it).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The check is not vacuous: the ground floor's SDK clients importing the command line
/// (the kind of shortcut that grew the old 31-file circle) is reported as a circle, with
/// the line that closes it, and as an upward import from floor 0 to floor 8.
#[test]
fn a_planted_circle_in_the_harness_is_caught() {
    let root = workspace();
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(&root.join("harness/src"), &tmp.path().join("harness/src"));
    std::fs::copy(root.join("README.md"), tmp.path().join("README.md")).expect("README");
    let aws = tmp.path().join("harness/src/aws.rs");
    let text = std::fs::read_to_string(&aws).expect("aws.rs");
    std::fs::write(
        &aws,
        format!("{text}\npub fn planted() -> Option<crate::cli::Cli> {{ None }}\n"),
    )
    .expect("plant");

    let planted = graph(tmp.path(), "harness", "harness/src/lib.rs");
    let report = planted
        .circles_report()
        .expect("the planted circle is found");
    assert!(report.contains("aws -> cli"), "{report}");
    assert!(report.contains("harness/src/aws.rs"), "{report}");

    let readme = std::fs::read_to_string(tmp.path().join("README.md")).expect("README");
    let map = LayerMap::from_readme(&readme, "harness").expect("map");
    let violations: Vec<String> = map
        .check(&planted, tmp.path())
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert!(
        violations
            .iter()
            .any(|v| v.contains("`aws`") && v.contains("`cli`")),
        "{violations:#?}"
    );
}

/// The longest a source file may grow: past it, split the file by role (as the replicator's
/// discovery, copy paths and state were split) rather than scroll.
const MAX_LINES: usize = 1000;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in [
        "harness/src",
        "harness/tests",
        "agent/src",
        "agent/tests",
        "functions/checksum-validator/src",
        "functions/failure-notifier/src",
        "tools/layers/src",
        "tests",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > MAX_LINES).then(|| {
                format!(
                    "{}: {lines} lines",
                    f.strip_prefix(&root).unwrap_or(f).display()
                )
            })
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by role):\n{}",
        long.join("\n")
    );
}

//! Reading the insta snapshots that `cargo test --features e2e` asserts, so
//! `harness scenario run` compares against the very same reviewed files, and diffs.

use std::path::{Path, PathBuf};

/// The snapshot file of a scenario: `tests/snapshots/scenarios__<name>.snap`.
pub fn snapshot_path(root: &Path, scenario: &str) -> PathBuf {
    root.join("tests")
        .join("snapshots")
        .join(format!("scenarios__{scenario}.snap"))
}

/// The body of an insta snapshot file (everything after its metadata header).
pub fn read_snapshot(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(snapshot_body(&text))
}

/// Splits off the `---` metadata header insta writes.
pub fn snapshot_body(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    if let Some(rest) = text.strip_prefix("---\n") {
        if let Some(idx) = rest.find("\n---\n") {
            return rest[idx + 5..].trim_end_matches('\n').to_string();
        }
    }
    text.trim_end_matches('\n').to_string()
}

/// A unified diff of expected vs actual, or `None` when equal.
pub fn diff(expected: &str, actual: &str) -> Option<String> {
    let (e, a) = (
        expected.trim_end_matches('\n'),
        actual.trim_end_matches('\n'),
    );
    if e == a {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(e, a)
            .unified_diff()
            .context_radius(3)
            .header("snapshot (expected)", "this run (actual)")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_insta_header() {
        let text = "---\nsource: tests/scenarios.rs\nexpression: transcript\n---\nline 1\nline 2\n";
        assert_eq!(snapshot_body(text), "line 1\nline 2");
        assert!(diff("a\nb", "a\nb\n").is_none());
        assert!(diff("a\nb", "a\nc").unwrap().contains("-b"));
    }
}

//! The GitHub workflows' supply-chain rules (security review 2, M5), checked on every file in
//! `.github/workflows/`:
//!
//! - every `uses:` names an action by a full commit SHA with its release tag in a trailing
//!   comment, `owner/repo[/path]@<40 hex> # vX.Y.Z` (the form Dependabot keeps current), so a
//!   moved or compromised tag cannot change what runs; local actions (`./...`) are exempt;
//! - every `actions/checkout` step sets `persist-credentials: false`, so the job's token is
//!   not left in `.git/config` for every later step.
//!
//! The parser is line-based (the workflows are block-style YAML): a `uses:` line it cannot
//! read is a failure, not a skip.

use std::path::{Path, PathBuf};

use regex::Regex;

/// What is wrong in `text` (a workflow), one line per problem, `file:line: ...`.
fn problems(file: &str, text: &str) -> Vec<String> {
    let uses =
        Regex::new(r#"^\s*(?:-\s+)?uses:\s*(?:"([^"]*)"|'([^']*)'|([^\s#]+))\s*(#.*)?$"#).unwrap();
    let pinned =
        Regex::new(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^@\s]+)?@[0-9a-f]{40}$").unwrap();
    let tag = Regex::new(r"^#\s*v[0-9]+(?:\.[0-9]+)*(?:\s|$)").unwrap();
    let persist =
        Regex::new(r#"^\s*persist-credentials:\s*(?:false|"false"|'false')\s*(?:#.*)?$"#).unwrap();

    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let at = format!("{file}:{}", i + 1);
        let code = line.trim_start();
        if code.starts_with('#') || !line.contains("uses:") {
            continue;
        }
        let Some(m) = uses.captures(line) else {
            out.push(format!(
                "{at}: cannot read this `uses:` line: {}",
                line.trim()
            ));
            continue;
        };
        let value = m.get(1).or(m.get(2)).or(m.get(3)).unwrap().as_str();
        if value.starts_with("./") {
            continue;
        }
        let checkout = value == "actions/checkout" || value.starts_with("actions/checkout@");
        if checkout && !step_of(&lines, i).any(|j| persist.is_match(lines[j])) {
            out.push(format!(
                "{at}: this actions/checkout step lacks `persist-credentials: false`"
            ));
        }
        if !pinned.is_match(value) {
            out.push(format!(
                "{at}: `{value}` is not pinned to a full commit SHA (owner/repo@<40 hex>)"
            ));
            continue;
        }
        match m.get(4) {
            Some(c) if tag.is_match(c.as_str()) => {}
            _ => out.push(format!(
                "{at}: `{value}` has no `# vX.Y.Z` comment naming its release tag"
            )),
        }
    }
    out
}

/// The line numbers of the step (the YAML sequence item) holding line `i`: from its `- `
/// line up to the next line indented no deeper than that dash.
fn step_of(lines: &[&str], i: usize) -> std::ops::Range<usize> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = (0..=i)
        .rev()
        .find(|&j| lines[j].trim_start().starts_with("- "))
        .unwrap_or(i);
    let dash = indent(lines[start]);
    let end = (start + 1..lines.len())
        .find(|&j| {
            let l = lines[j];
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && indent(l) <= dash
        })
        .unwrap_or(lines.len());
    start..end
}

fn workflows() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    files
}

#[test]
fn every_workflow_pins_its_actions_and_drops_the_checkout_token() {
    let files = workflows();
    assert!(!files.is_empty(), "no workflow in .github/workflows");
    let mut all = Vec::new();
    let mut seen = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        seen += text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains("uses:"))
            .count();
        let name = path.file_name().unwrap().to_string_lossy();
        all.extend(problems(&format!(".github/workflows/{name}"), &text));
    }
    assert!(
        seen > 0,
        "no `uses:` line found: the check would pass vacuously"
    );
    assert!(
        all.is_empty(),
        "workflow supply-chain rules broken:\n{}",
        all.join("\n")
    );
}

const SHA: &str = "11bd71901bbe5b1630ceea73d27597364c9af683";

fn workflow(steps: &str) -> String {
    format!(
        "name: t\non: push\npermissions:\n  contents: read\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n{steps}      - run: echo done\n"
    )
}

#[test]
fn a_pinned_and_commented_workflow_passes() {
    let good = workflow(&format!(
        "      - uses: actions/checkout@{SHA} # v4.2.2\n        with:\n          persist-credentials: false\n\
         \x20     - name: cache\n        uses: \"actions/cache@5a3ec84eff668545956fd18022155c47e93e2684\"  # v4.2.3\n\
         \x20     - uses: ./.github/actions/local\n"
    ));
    assert_eq!(problems("good.yml", &good), Vec::<String>::new());
}

#[test]
fn a_tag_a_short_sha_and_a_missing_comment_are_rejected() {
    for (step, why) in [
        ("      - uses: actions/setup-python@v5\n", "not pinned"),
        ("      - uses: actions/setup-python@v5.6.0 # v5.6.0\n", "not pinned"),
        ("      - uses: actions/setup-python@a26af69 # v5.6.0\n", "not pinned"),
        ("      - uses: actions/setup-python@main\n", "not pinned"),
        ("      - uses: actions/setup-python\n", "not pinned"),
        (
            "      - uses: actions/setup-python@A26AF69BE951A213D495A4C3E4E4022E16D87065 # v5.6.0\n",
            "not pinned",
        ),
        (
            "      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065\n",
            "no `# vX.Y.Z` comment",
        ),
        (
            "      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # pinned\n",
            "no `# vX.Y.Z` comment",
        ),
        ("      - { uses: actions/setup-python@v5 }\n", "cannot read"),
    ] {
        let found = problems("bad.yml", &workflow(step));
        assert_eq!(found.len(), 1, "{step}: {found:?}");
        assert!(found[0].contains(why), "{step}: {found:?}");
        assert!(found[0].starts_with("bad.yml:9: "), "{step}: {found:?}");
    }
}

#[test]
fn a_checkout_that_keeps_its_token_is_rejected() {
    for step in [
        format!("      - uses: actions/checkout@{SHA} # v4.2.2\n"),
        format!("      - uses: actions/checkout@{SHA} # v4.2.2\n        with:\n          fetch-depth: 0\n"),
        format!(
            "      - uses: actions/checkout@{SHA} # v4.2.2\n        with:\n          persist-credentials: true\n"
        ),
        // `persist-credentials: false` of the next step does not count for this one.
        format!(
            "      - uses: actions/checkout@{SHA} # v4.2.2\n      - uses: actions/checkout@{SHA} # v4.2.2\n        with:\n          persist-credentials: false\n"
        ),
        // Nor does a commented-out one.
        format!(
            "      - name: checkout\n        uses: actions/checkout@{SHA} # v4.2.2\n        with:\n          # persist-credentials: false\n          fetch-depth: 1\n"
        ),
    ] {
        let found = problems("bad.yml", &workflow(&step));
        assert_eq!(found.len(), 1, "{step}: {found:?}");
        assert!(found[0].contains("persist-credentials: false"), "{step}: {found:?}");
    }
}

#[test]
fn an_unpinned_checkout_that_keeps_its_token_gets_both_problems() {
    let found = problems("bad.yml", &workflow("      - uses: actions/checkout@v4\n"));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("persist-credentials: false"), "{found:?}");
    assert!(found[1].contains("not pinned"), "{found:?}");
}

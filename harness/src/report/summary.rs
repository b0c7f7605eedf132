//! The Markdown summary of a gate run, fit for `$GITHUB_STEP_SUMMARY` (GitHub-flavoured
//! Markdown: tables, and `<details>` for what only a person investigating needs): the
//! verdict and totals, a table per engine (scenario, status, time), each case that did not
//! pass with its problems and its snapshot diff in a collapsed ```` ```diff ```` block, and
//! the posture checks that failed.

use std::fmt::Write as _;
use std::time::Duration;

use crate::engine::EngineKind;
use crate::report::case::{Case, CaseStatus, GateRun};

/// The summary of `run`.
pub fn render(run: &GateRun) -> String {
    let mut out = String::new();
    let verdict = if run.passed() { "passed" } else { "FAILED" };
    let _ = writeln!(out, "## Pre-deploy gate {verdict}\n");

    let passed = run
        .cases
        .iter()
        .filter(|c| c.status == CaseStatus::Passed)
        .count();
    let held = run.checks.iter().filter(|c| c.passed).count();
    let mut engines: Vec<EngineKind> = run
        .cases
        .iter()
        .map(|c| c.engine)
        .chain(run.checks.iter().map(|c| c.engine))
        .collect();
    engines.sort_by_key(|e| e.name());
    engines.dedup();
    let mut totals = vec![
        format!("**{passed} of {} scenario runs passed**", run.cases.len()),
        format!("**{held} of {} posture checks held**", run.checks.len()),
    ];
    if !engines.is_empty() {
        totals.push(format!(
            "engines: {}",
            engines
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some((k, n)) = run.shard {
        totals.push(format!("shard {k}/{n}"));
    }
    totals.push(format!("wall time {}", duration(run.wall)));
    let _ = writeln!(out, "{}\n", totals.join(" · "));

    for engine in &engines {
        let cases: Vec<&Case> = run.cases.iter().filter(|c| c.engine == *engine).collect();
        if cases.is_empty() {
            continue;
        }
        let ok = cases
            .iter()
            .filter(|c| c.status == CaseStatus::Passed)
            .count();
        let _ = writeln!(out, "### {engine}: {ok} of {} passed\n", cases.len());
        let _ = writeln!(out, "| scenario | status | time |\n|---|---|---:|");
        for c in cases {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                cell(&c.scenario),
                status(c.status),
                duration(c.time)
            );
        }
        out.push('\n');
    }

    let red: Vec<&Case> = run
        .cases
        .iter()
        .filter(|c| c.status != CaseStatus::Passed)
        .collect();
    if !red.is_empty() {
        let _ = writeln!(out, "### Scenarios that did not pass\n");
        for c in red {
            let _ = writeln!(
                out,
                "#### `{}` on {}: {}\n",
                c.scenario,
                c.engine,
                status(c.status)
            );
            if !c.description.is_empty() {
                let _ = writeln!(out, "_{}_\n", c.description.trim());
            }
            for p in &c.problems {
                let _ = writeln!(out, "- {}", one_line(p));
            }
            out.push('\n');
            if let Some(d) = &c.diff {
                let fence = fence_for(d);
                let _ = writeln!(
                    out,
                    "<details><summary>snapshot diff</summary>\n\n{fence}diff\n{}\n{fence}\n\n</details>\n",
                    d.trim_end()
                );
            }
        }
    }

    let failed: Vec<_> = run.checks.iter().filter(|c| !c.passed).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "### Posture checks that failed\n");
        let _ = writeln!(
            out,
            "| engine | check | resource | setting | found |\n|---|---|---|---|---|"
        );
        for c in failed {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | `{}` | {} |",
                c.engine,
                cell(&c.id),
                cell(&c.resource),
                cell(&c.setting),
                cell(&c.detail)
            );
        }
        out.push('\n');
    }
    out
}

/// Writes the summary of `run` to `path`.
pub fn write(path: &std::path::Path, run: &GateRun) -> std::io::Result<()> {
    std::fs::write(path, render(run))
}

fn status(s: CaseStatus) -> &'static str {
    match s {
        CaseStatus::Passed => "✅ PASS",
        CaseStatus::Failed => "❌ FAIL",
        CaseStatus::Error => "⚠️ ERROR",
    }
}

fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A table cell: no line breaks, pipes escaped.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::case::Check;

    fn case(name: &str, engine: EngineKind, status: CaseStatus, secs: u64) -> Case {
        Case {
            scenario: name.into(),
            description: format!("what {name} proves"),
            engine,
            status,
            time: Duration::from_millis(secs * 1000 + 400),
            problems: match status {
                CaseStatus::Passed => vec![],
                CaseStatus::Failed => vec![
                    "expected 1 alert, saw 2".into(),
                    "outcome differs from tests/snapshots/scenarios__poison-pill.snap".into(),
                ],
                CaseStatus::Error => vec!["the engine stopped during the scenario: killed".into()],
            },
            diff: (status == CaseStatus::Failed).then(|| {
                "@@ -3,3 +3,3 @@\n alerts: 1\n-  DEAD-LETTER poison-pill\n+  DEAD-LETTER poison | pill\n"
                    .to_string()
            }),
            pending: None,
            outcome: None,
            logs: String::new(),
        }
    }

    fn check(engine: EngineKind, id: &str, resource: &str, setting: &str, passed: bool) -> Check {
        Check {
            engine,
            id: id.into(),
            resource: resource.into(),
            setting: setting.into(),
            passed,
            detail: if passed {
                "true".into()
            } else {
                "false (required: true)".into()
            },
        }
    }

    #[test]
    fn a_passing_run() {
        let run = GateRun {
            cases: vec![
                case("happy-path", EngineKind::Localstack, CaseStatus::Passed, 4),
                case(
                    "poison-pill",
                    EngineKind::Localstack,
                    CaseStatus::Passed,
                    12,
                ),
                case("happy-path", EngineKind::Ministack, CaseStatus::Passed, 3),
                case("poison-pill", EngineKind::Ministack, CaseStatus::Passed, 75),
            ],
            checks: vec![
                check(
                    EngineKind::Localstack,
                    "bucket-versioning",
                    "b",
                    "Status",
                    true,
                ),
                check(
                    EngineKind::Ministack,
                    "bucket-versioning",
                    "b",
                    "Status",
                    true,
                ),
            ],
            shard: None,
            wall: Duration::from_secs(412),
        };
        insta::assert_snapshot!(render(&run));
    }

    #[test]
    fn a_failing_shard() {
        let run = GateRun {
            cases: vec![
                case("happy-path", EngineKind::Ministack, CaseStatus::Passed, 3),
                case("poison-pill", EngineKind::Ministack, CaseStatus::Failed, 14),
                case("s3-slowdown", EngineKind::Ministack, CaseStatus::Error, 1),
            ],
            checks: vec![
                check(
                    EngineKind::Ministack,
                    "bucket-public-access-block",
                    "autobackup-documents-primary-dev-x",
                    "BlockPublicAcls",
                    false,
                ),
                check(
                    EngineKind::Ministack,
                    "bucket-public-access-block",
                    "autobackup-documents-primary-dev-x",
                    "IgnorePublicAcls",
                    true,
                ),
            ],
            shard: Some((2, 3)),
            wall: Duration::from_millis(58_300),
        };
        let md = render(&run);
        assert!(md.contains("| `poison-pill` | ❌ FAIL | 14.4 s |"), "{md}");
        insta::assert_snapshot!(md);
    }

    #[test]
    fn a_diff_with_backticks_gets_a_longer_fence() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }
}

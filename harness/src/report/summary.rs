//! The Markdown summary of a gate run, fit for `$GITHUB_STEP_SUMMARY` (GitHub-flavoured
//! Markdown: tables, and `<details>` for what only a person investigating needs): the
//! verdict and totals, a table per engine (scenario, status, time), each case that did not
//! pass with its problems and its snapshot diff in a collapsed ```` ```diff ```` block, and
//! the posture checks that failed.
//!
//! Names, descriptions, problems and check details come from scenario files and engine
//! answers, so none of them is emitted raw: text is escaped ([`text`]) and identifiers go
//! into code spans whose fence is longer than any backtick run in them ([`code`]), so no
//! link, image, HTML tag or stray table column can be injected into the step summary.

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
    if !run.iac.is_empty() {
        let clean = run.iac.iter().filter(|f| f.passed).count();
        totals.push(format!(
            "**{clean} of {} static checks (cfn-lint, checkov) clean**",
            run.iac.len()
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
                "| {} | {} | {} |",
                code_cell(&c.scenario),
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
                "#### {} on {}: {}\n",
                code(&c.scenario),
                c.engine,
                status(c.status)
            );
            if !c.description.is_empty() {
                let _ = writeln!(out, "_{}_\n", text(&c.description));
            }
            for p in &c.problems {
                let _ = writeln!(out, "- {}", text(p));
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

    for f in run.iac.iter().filter(|f| !f.passed) {
        let fence = "```";
        let _ = writeln!(
            out,
            "### {} found problems in {}\n\n{fence}\n{}\n{fence}\n",
            f.tool.name(),
            f.unit.display(),
            f.output
        );
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
                "| {} | {} | {} | {} | {} |",
                c.engine,
                code_cell(&c.id),
                code_cell(&c.resource),
                code_cell(&c.setting),
                text(&c.detail)
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

/// Text on one line with every Markdown special escaped, fit for a paragraph, a list item
/// or a table cell: `\` first, then `` ` * _ [ ] < > | `` (a `\|` also keeps a table's
/// columns, GFM splits cells on unescaped pipes only).
fn text(s: &str) -> String {
    let mut out = String::new();
    for ch in one_line(s).chars() {
        if matches!(ch, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `s` on one line as a code span: its fence is longer than any run of backticks in it (so
/// it cannot close early), padded with a space when `s` starts or ends with a backtick.
/// Markdown inside a code span is not interpreted, so nothing else is escaped.
fn code(s: &str) -> String {
    let s = one_line(s);
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// [`code`] for a table cell: pipes escaped, even in the span (GFM splits the row on
/// unescaped pipes before it parses the spans, and drops the backslash of a `\|`).
fn code_cell(s: &str) -> String {
    code(s).replace('|', "\\|")
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
            iac: Vec::new(),
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
            iac: Vec::new(),
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

    /// `md` with every code span replaced by `CODE` (CommonMark: a backtick run that is not
    /// backslash-escaped opens a span that the next run of the same length closes).
    fn without_code_spans(md: &str) -> String {
        let b = md.as_bytes();
        let run = |i: usize| b[i..].iter().take_while(|&&c| c == b'`').count();
        let (mut out, mut i) = (String::new(), 0);
        while i < b.len() {
            if b[i] == b'\\' {
                let escaped = md[i + 1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&md[i..i + 1 + escaped]);
                i += 1 + escaped;
                continue;
            }
            if b[i] != b'`' {
                let next = md[i..].find(['\\', '`']).map_or(b.len(), |n| i + n);
                out.push_str(&md[i..next]);
                i = next;
                continue;
            }
            let n = run(i);
            let mut j = i + n;
            let close = loop {
                match md[j..].find('`') {
                    None => break None,
                    Some(k) if run(j + k) == n => break Some(j + k),
                    Some(k) => j += k + run(j + k),
                }
            };
            match close {
                Some(c) => {
                    out.push_str("CODE");
                    i = c + n;
                }
                None => {
                    out.push_str(&md[i..i + n]);
                    i += n;
                }
            }
        }
        out
    }

    /// The pipes of a table row that split cells (GFM: not backslash-escaped).
    fn columns(row: &str) -> usize {
        let mut escaped = false;
        let mut pipes = 0;
        for ch in row.chars() {
            if ch == '|' && !escaped {
                pipes += 1;
            }
            escaped = ch == '\\' && !escaped;
        }
        pipes - 1
    }

    #[test]
    fn hostile_names_descriptions_and_problems_are_escaped() {
        let mut bad = case(
            "a`<img src=x>",
            EngineKind::Ministack,
            CaseStatus::Failed,
            2,
        );
        bad.description = "a | b <img src=y> *bold* _it_ [link](https://x.test) c:\\".into();
        bad.problems = vec!["![badge](https://x.test/b.svg) <script>x</script>\n| a | b |".into()];
        bad.diff = None;
        let mut k = check(EngineKind::Ministack, "id|2", "r``<b>", "s", false);
        k.detail = "<img src=z> | [x](https://x.test)".into();
        let run = GateRun {
            cases: vec![bad],
            checks: vec![k],
            iac: Vec::new(),
            shard: None,
            wall: Duration::from_secs(3),
        };
        let md = render(&run);

        // Outside code spans, every `<`, `[` and `]` is escaped: no tag, link or image.
        let prose = without_code_spans(&md);
        for special in ["<", "[", "]"] {
            let unescaped = prose.replace(&format!("\\{special}"), "");
            assert!(!unescaped.contains(special), "raw {special} in:\n{md}");
        }
        assert!(!prose.replace("\\<", "").contains("<img"), "{md}");
        // The name is one code span, in the table and in the heading, and nothing escapes it.
        assert!(
            md.contains("| ``a`<img src=x>`` | ❌ FAIL | 2.4 s |"),
            "{md}"
        );
        assert!(
            md.contains("#### ``a`<img src=x>`` on ministack: ❌ FAIL\n"),
            "{md}"
        );
        assert!(prose.contains("\n| CODE | ❌ FAIL | 2.4 s |\n"), "{prose}");
        assert!(
            prose.contains("\n#### CODE on ministack: ❌ FAIL\n"),
            "{prose}"
        );
        // The description and the problem: escaped, on one line each.
        assert!(
            md.contains(
                "_a \\| b \\<img src=y\\> \\*bold\\* \\_it\\_ \\[link\\](https://x.test) c:\\\\_\n"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "- !\\[badge\\](https://x.test/b.svg) \\<script\\>x\\</script\\> \\| a \\| b \\|\n"
            ),
            "{md}"
        );
        // Pipes do not add columns: 3 in the scenario table, 5 in the posture table.
        let row = |start: &str| {
            md.lines()
                .find(|l| l.starts_with(start))
                .unwrap()
                .to_string()
        };
        assert_eq!(columns(&row("| ``a`")), 3, "{md}");
        assert_eq!(columns(&row("| ministack |")), 5, "{md}");
        assert!(
            md.contains("| ministack | `id\\|2` | ```r``<b>``` | `s` | \\<img src=z\\> \\| \\[x\\](https://x.test) |"),
            "{md}"
        );
    }

    #[test]
    fn a_code_span_outlasts_the_backticks_in_it() {
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x``"), "``` `x`` ```");
        assert_eq!(code_cell("a|b"), "`a\\|b`");
        assert_eq!(text("a\\b*c"), "a\\\\b\\*c");
    }
}

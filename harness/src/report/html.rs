//! The HTML report of a gate run: one self-contained file (no scripts, no network, no
//! external assets), built with `maud` (escaped by construction, never string
//! concatenation). This version is the plain one the gate needs: a table of every case
//! (scenario, engine, status, time), each case that did not pass with its problems and
//! snapshot diff, and the posture checks. The full report (per-object timelines, queue
//! depths, alerts) replaces it with the same [`write`] signature.

use std::path::Path;

use maud::{html, Markup, DOCTYPE};

use crate::report::case::{CaseStatus, GateRun};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
tr.passed td.status{color:#176f2c}tr.failed td.status,tr.error td.status{color:#b00020;font-weight:bold}\
pre{background:#f6f8fa;padding:1em;overflow:auto}";

fn class(s: CaseStatus) -> &'static str {
    match s {
        CaseStatus::Passed => "passed",
        CaseStatus::Failed => "failed",
        CaseStatus::Error => "error",
    }
}

/// The report of `run` as a whole HTML document.
pub fn render(run: &GateRun) -> Markup {
    let verdict = if run.passed() { "passed" } else { "FAILED" };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Pre-deploy gate " (verdict) }
                style { (STYLE) }
            }
            body {
                h1 { "Pre-deploy gate " (verdict) }
                p {
                    (run.cases.iter().filter(|c| c.status == CaseStatus::Passed).count())
                    " of " (run.cases.len()) " scenario runs passed; "
                    (run.checks.iter().filter(|c| c.passed).count())
                    " of " (run.checks.len()) " posture checks held"
                    @if let Some((k, n)) = run.shard { "; shard " (k) "/" (n) }
                    "; wall time " (format!("{:.1}", run.wall.as_secs_f64())) " s."
                }
                h2 { "Scenarios" }
                table {
                    thead { tr { th { "scenario" } th { "engine" } th { "status" } th { "time (s)" } } }
                    tbody {
                        @for c in &run.cases {
                            tr class=(class(c.status)) data-scenario=(c.scenario) data-engine=(c.engine.name()) {
                                td { (c.scenario) }
                                td { (c.engine.name()) }
                                td class="status" { (c.status.label()) }
                                td { (format!("{:.1}", c.time.as_secs_f64())) }
                            }
                        }
                    }
                }
                @for c in run.cases.iter().filter(|c| c.status != CaseStatus::Passed) {
                    section class=(class(c.status)) id=(format!("{}-{}", c.engine.name(), c.scenario)) {
                        h3 { (c.status.label()) " " (c.scenario) " on " (c.engine.name()) }
                        p { (c.description) }
                        ul { @for p in &c.problems { li { (p) } } }
                        @if let Some(d) = &c.diff { pre class="diff" { (d) } }
                    }
                }
                h2 { "Posture checks" }
                table {
                    thead { tr { th { "engine" } th { "check" } th { "resource" } th { "setting" } th { "status" } th { "found" } } }
                    tbody {
                        @for c in &run.checks {
                            tr class=(if c.passed { "passed" } else { "failed" }) {
                                td { (c.engine.name()) }
                                td { (c.id) }
                                td { (c.resource) }
                                td { (c.setting) }
                                td class="status" { @if c.passed { "PASS" } @else { "FAIL" } }
                                td { (c.detail) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Writes the report of `run` to `path`.
pub fn write(path: &Path, run: &GateRun) -> std::io::Result<()> {
    std::fs::write(path, render(run).into_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::EngineKind;
    use crate::report::case::{Case, Check};

    #[test]
    fn a_failed_case_is_marked_and_text_is_escaped() {
        let run = GateRun {
            cases: vec![Case {
                scenario: "poison-pill".into(),
                description: "a <script> in a description".into(),
                engine: EngineKind::Ministack,
                status: CaseStatus::Failed,
                time: Duration::from_secs(3),
                problems: vec!["outcome differs".into()],
                diff: Some("-a\n+b & c\n".into()),
                pending: None,
                outcome: None,
            }],
            checks: vec![Check {
                engine: EngineKind::Ministack,
                id: "bucket-public-access-block".into(),
                resource: "bucket".into(),
                setting: "BlockPublicAcls".into(),
                passed: false,
                detail: "false (required: true)".into(),
            }],
            shard: None,
            wall: Duration::from_secs(5),
        };
        let page = render(&run).into_string();
        assert!(
            page.contains(
                r#"<tr class="failed" data-scenario="poison-pill" data-engine="ministack">"#
            ),
            "{page}"
        );
        assert!(page.contains("a &lt;script&gt; in a description"), "{page}");
        assert!(page.contains("+b &amp; c"), "{page}");
        assert!(page.contains("BlockPublicAcls"), "{page}");
        assert!(!page.contains("<script"), "no scripts: {page}");
    }
}

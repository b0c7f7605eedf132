//! The HTML report of a run (`harness gate`, `harness scenario run --report FILE`): one
//! self-contained file (inline CSS and SVG, no script, nothing fetched) a person opens to
//! judge a run. It shows a table of scenarios × engines with status and timings, the
//! posture checks when there are any, and per case: its problems and the snapshot diff
//! (coloured) when it did not pass, a per-object timeline (an SVG swimlane, one row per
//! object version, see [`super::timeline`]), the queue depths over time, the alerts in full
//! and the transcript.
//!
//! Built with `maud` (every interpolation is escaped), never by string concatenation.
//! Elements a test looks for carry stable hooks: `#cases` rows and `section.case` carry
//! `data-scenario`, `data-engine` and `data-status`; every lane is a `g.lane` with
//! `data-lane` (its label); marks are `.mark.<kind>` (see [`MarkKind::class`]); the diff is
//! `pre.diff`, its lines `span.add` / `span.del` / `span.hunk`; checks rows are
//! `#checks tr[data-check]`. SVG elements are always written with a closing tag (`{}` in
//! maud): inside `<svg>` an HTML parser treats `<line>` without one as still open.

use std::path::Path;
use std::time::Duration;

use checksum_validator::Outcome;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::case::{Case, CaseStatus, Check, GateRun};
use super::timeline::{self, Lane, MarkKind, QueueSeries, Timeline};
use crate::observe::{Arrival, Observation};

/// Writes the report of `run` to `path`.
pub fn write(path: &Path, run: &GateRun) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(run))
}

/// The report of `run` as one HTML document.
pub fn render(run: &GateRun) -> String {
    let passed = run
        .cases
        .iter()
        .filter(|c| c.status == CaseStatus::Passed)
        .count();
    let checks_failed = run.checks.iter().filter(|c| !c.passed).count();
    let verdict = if run.passed() { "passed" } else { "failed" };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "autobackup harness report: " (verdict) }
                style { (PreEscaped(CSS)) }
            }
            body data-status=(verdict) {
                header {
                    h1 { "autobackup harness report" }
                    p.summary {
                        span class={"badge status-" (verdict)} { (verdict.to_uppercase()) }
                        " " (passed) " of " (run.cases.len()) " case(s) passed"
                        @if !run.checks.is_empty() {
                            ", " (run.checks.len() - checks_failed) " of " (run.checks.len())
                            " posture check(s) held"
                        }
                        ", wall time " (secs(run.wall))
                        @if let Some((k, n)) = run.shard { ", shard " (k) "/" (n) }
                    }
                }
                (cases_table(&run.cases))
                @if !run.checks.is_empty() { (checks_table(&run.checks)) }
                @for case in &run.cases { (case_section(case)) }
            }
        }
    };
    page.into_string()
}

/// `3.25s`.
fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// One SVG coordinate.
fn px(v: f64) -> String {
    format!("{v:.1}")
}

fn status_class(s: CaseStatus) -> &'static str {
    match s {
        CaseStatus::Passed => "passed",
        CaseStatus::Failed => "failed",
        CaseStatus::Error => "error",
    }
}

/// The element id of a case's section.
fn case_id(case: &Case) -> String {
    let safe: String = case
        .scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("case-{}-{safe}", case.engine)
}

fn cases_table(cases: &[Case]) -> Markup {
    html! {
        h2 { "Scenarios" }
        table #cases {
            thead {
                tr {
                    th { "scenario" } th { "engine" } th { "status" }
                    th.num { "provision" } th.num { "steps" } th.num { "settle" }
                    th.num { "teardown" } th.num { "total" }
                }
            }
            tbody {
                @for c in cases {
                    @let status = status_class(c.status);
                    tr.case-row data-scenario=(c.scenario) data-engine=(c.engine.to_string())
                        data-status=(status) {
                        td { a href={"#" (case_id(c))} { (c.scenario) } }
                        td { (c.engine.to_string()) }
                        td { span class={"badge status-" (status)} { (c.status.label()) } }
                        @match &c.outcome {
                            Some(o) => {
                                td.num { (secs(o.timings.provision)) }
                                td.num { (secs(o.timings.steps)) }
                                td.num { (secs(o.timings.settle)) }
                                td.num { (secs(o.timings.teardown)) }
                            }
                            None => { td.num colspan="4" { "not played" } }
                        }
                        td.num { (secs(c.time)) }
                    }
                }
            }
        }
    }
}

fn checks_table(checks: &[Check]) -> Markup {
    html! {
        h2 { "Posture checks" }
        table #checks {
            thead {
                tr {
                    th { "engine" } th { "check" } th { "resource" } th { "setting" }
                    th { "result" } th { "detail" }
                }
            }
            tbody {
                @for c in checks {
                    @let status = if c.passed { "passed" } else { "failed" };
                    tr data-check=(c.id) data-engine=(c.engine.to_string()) data-status=(status) {
                        td { (c.engine.to_string()) }
                        td { code { (c.id) } }
                        td { code { (c.resource) } }
                        td { (c.setting) }
                        td { span class={"badge status-" (status)} { (if c.passed { "PASS" } else { "FAIL" }) } }
                        td { (c.detail) }
                    }
                }
            }
        }
    }
}

fn case_section(case: &Case) -> Markup {
    let status = status_class(case.status);
    html! {
        section.case id=(case_id(case)) data-scenario=(case.scenario)
            data-engine=(case.engine.to_string()) data-status=(status) {
            h2 {
                span class={"badge status-" (status)} { (case.status.label()) }
                " " (case.scenario) " on " (case.engine.to_string())
            }
            p.description { (case.description) }
            @if !case.problems.is_empty() {
                div.problems {
                    h3 { "Why it did not pass" }
                    ul { @for p in &case.problems { li { (p) } } }
                }
            }
            @if let Some(d) = &case.diff { (diff_block(d)) }
            @if let Some(o) = &case.outcome {
                @let t = timeline::build(o);
                h3 { "Timeline" }
                p.note { "One row per object version (or per message that named none); time from the system's start. Point at a mark for what it was." }
                (legend())
                (timeline_svg(&t))
                h3 { "Queue depths" }
                (depth_chart(&t.depths, t.end))
                (alerts(&o.events))
                details.transcript {
                    summary { "Transcript (what the snapshot compares)" }
                    pre { (o.transcript) }
                }
            }
            @if !case.logs.is_empty() {
                details.logs {
                    summary { "Log lines while it played (" (case.logs.lines().count()) ")" }
                    pre { (case.logs) }
                }
            }
        }
    }
}

fn diff_block(diff: &str) -> Markup {
    html! {
        div.diff-block {
            h3 { "Snapshot diff" }
            pre.diff {
                @for line in diff.lines() {
                    @let class = if line.starts_with("+++") || line.starts_with("---") {
                        "file"
                    } else if line.starts_with('+') {
                        "add"
                    } else if line.starts_with('-') {
                        "del"
                    } else if line.starts_with("@@") {
                        "hunk"
                    } else {
                        "ctx"
                    };
                    span class=(class) { (line) } "\n"
                }
            }
        }
    }
}

/// How an outcome reads at a glance: `ok`, `wait`, `warn` or `bad`.
fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Validated | Outcome::Acknowledged => "ok",
        Outcome::Lagging | Outcome::TransientError | Outcome::Deferred => "wait",
        Outcome::Superseded | Outcome::NotReplicated | Outcome::Unverifiable => "warn",
        Outcome::Mismatch
        | Outcome::ReplicaMissing
        | Outcome::ReplicationFailed
        | Outcome::ReplicationOverdue
        | Outcome::Malformed
        | Outcome::Error => "bad",
    }
}

// The timeline's geometry (SVG user units).
const WIDTH: f64 = 1000.0;
const LABEL_WIDTH: f64 = 300.0;
const VERDICT_WIDTH: f64 = 150.0;
const LANE_HEIGHT: f64 = 28.0;
const AXIS_HEIGHT: f64 = 26.0;

/// The plot's x range.
fn plot_x() -> (f64, f64) {
    (LABEL_WIDTH + 12.0, WIDTH - VERDICT_WIDTH - 12.0)
}

/// A round tick step giving at most about 10 ticks over `end` seconds.
fn tick_step(end: f64) -> f64 {
    [
        0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| end / s <= 10.0)
    .unwrap_or(7200.0)
}

/// The axis' end in seconds: the last event, rounded up to a tick (at least 1 s).
fn axis_end(end: Duration) -> f64 {
    let e = end.as_secs_f64().max(1.0);
    let step = tick_step(e);
    (e / step).ceil() * step
}

fn x_of(at: Duration, end: f64) -> f64 {
    let (x0, x1) = plot_x();
    x0 + (at.as_secs_f64() / end).min(1.0) * (x1 - x0)
}

fn axis(end: f64, top: f64, bottom: f64) -> Markup {
    let step = tick_step(end);
    let ticks = (end / step).round() as usize;
    html! {
        g.axis {
            @for i in 0..=ticks {
                @let t = i as f64 * step;
                @let x = x_of(Duration::from_secs_f64(t), end);
                line x1=(px(x)) x2=(px(x)) y1=(px(top)) y2=(px(bottom)) class="tick" {}
                text x=(px(x)) y=(px(top - 8.0)) text-anchor="middle" class="tick-label" {
                    (format!("{}s", t))
                }
            }
        }
    }
}

/// The shape of one mark, centred on `(x, y)`.
fn mark_shape(kind: &MarkKind, x: f64, y: f64) -> Markup {
    match kind {
        MarkKind::Uploaded => html! {
            rect x=(px(x - 5.0)) y=(px(y - 5.0)) width="10" height="10" class="shape" {}
        },
        MarkKind::Enqueued { .. } => html! {
            polygon points=(format!("{},{} {},{} {},{}", px(x - 5.0), px(y - 9.0), px(x + 5.0), px(y - 9.0), px(x), px(y - 2.0))) class="shape" {}
        },
        MarkKind::Delivered { .. } => html! {
            line x1=(px(x)) x2=(px(x)) y1=(px(y - 10.0)) y2=(px(y + 10.0)) class="shape" {}
        },
        MarkKind::Attempt { .. } => html! {
            circle cx=(px(x)) cy=(px(y)) r="5" class="shape" {}
        },
        MarkKind::Replica { .. } => html! {
            polygon points=(format!("{},{} {},{} {},{}", px(x - 6.0), px(y + 9.0), px(x + 6.0), px(y + 9.0), px(x), px(y + 1.0))) class="shape" {}
        },
        MarkKind::Decision { .. } => html! {
            polygon points=(format!("{},{} {},{} {},{} {},{}", px(x), px(y - 9.0), px(x + 9.0), px(y), px(x), px(y + 9.0), px(x - 9.0), px(y))) class="shape" {}
        },
        MarkKind::Alert { .. } => html! {
            circle cx=(px(x)) cy=(px(y - 12.0)) r="6" class="shape" {}
            text x=(px(x)) y=(px(y - 8.5)) text-anchor="middle" class="bang" { "!" }
        },
    }
}

/// The extra class of a mark: the outcome of an attempt or decision, how a replica arrived.
fn mark_tone(kind: &MarkKind) -> &'static str {
    match kind {
        MarkKind::Attempt { outcome, .. } | MarkKind::Decision { outcome } => {
            outcome_class(*outcome)
        }
        MarkKind::Replica { arrival, .. } => match arrival {
            Arrival::Copied | Arrival::Relayout | Arrival::DeleteMarker => "ok",
            Arrival::Corrupted | Arrival::Failed => "bad",
            Arrival::Withheld => "warn",
        },
        _ => "neutral",
    }
}

fn lane_row(lane: &Lane, i: usize, end: f64) -> Markup {
    let top = AXIS_HEIGHT + i as f64 * LANE_HEIGHT;
    let mid = top + LANE_HEIGHT / 2.0;
    let short: String = if lane.label.chars().count() > 40 {
        lane.label.chars().take(39).chain(['…']).collect()
    } else {
        lane.label.clone()
    };
    let decision = lane.decision.map(|o| o.to_string());
    let tone = match (lane.decision, lane.dead_lettered) {
        (Some(o), _) => outcome_class(o),
        (None, true) => "bad",
        (None, false) => "none",
    };
    html! {
        g.lane data-lane=(lane.label) data-detail=(lane.detail)
            data-decision=(decision.as_deref().unwrap_or("none")) {
            rect x="0" y=(px(top)) width=(px(WIDTH)) height=(px(LANE_HEIGHT))
                class={"lane-bg " (if i.is_multiple_of(2) { "even" } else { "odd" })} {}
            text x="8" y=(px(mid + 4.0)) class="lane-label" {
                title { (lane.label) " (" (lane.detail) ")" }
                (short)
            }
            line x1=(px(plot_x().0)) x2=(px(plot_x().1)) y1=(px(mid)) y2=(px(mid)) class="lane-line" {}
            @for m in &lane.marks {
                @let x = x_of(m.at, end);
                g class={"mark " (m.kind.class()) " " (mark_tone(&m.kind))} data-at=(px(m.at.as_secs_f64())) {
                    title { (format!("{:.2}s", m.at.as_secs_f64())) ": " (m.kind.describe()) }
                    (mark_shape(&m.kind, x, mid))
                }
            }
            text x=(px(WIDTH - VERDICT_WIDTH + 4.0)) y=(px(mid + 4.0))
                class={"verdict " (tone)} {
                (lane.verdict())
            }
        }
    }
}

fn timeline_svg(t: &Timeline) -> Markup {
    let end = axis_end(t.end);
    let height = AXIS_HEIGHT + t.lanes.len().max(1) as f64 * LANE_HEIGHT + 4.0;
    html! {
        @if t.lanes.is_empty() {
            p.empty { "No object version or message reached the validator." }
        } @else {
            svg.timeline xmlns="http://www.w3.org/2000/svg" role="img"
                viewBox=(format!("0 0 {} {}", px(WIDTH), px(height)))
                width=(px(WIDTH)) height=(px(height)) {
                title { "Per-object timeline" }
                (axis(end, AXIS_HEIGHT, height - 4.0))
                @for (i, lane) in t.lanes.iter().enumerate() { (lane_row(lane, i, end)) }
            }
        }
    }
}

fn legend() -> Markup {
    let samples = [
        (MarkKind::Uploaded, "neutral", "uploaded"),
        (
            MarkKind::Enqueued {
                queue: String::new(),
            },
            "neutral",
            "event accepted by the queue",
        ),
        (
            MarkKind::Delivered {
                queue: String::new(),
                receive: None,
            },
            "neutral",
            "delivered to a function (receive n)",
        ),
        (
            MarkKind::Attempt {
                attempt: 1,
                outcome: Outcome::Lagging,
                action: "",
            },
            "wait",
            "attempt (colour: its outcome)",
        ),
        (
            MarkKind::Replica {
                destination: String::new(),
                arrival: Arrival::Copied,
            },
            "ok",
            "replica arrived (red: corrupted or failed)",
        ),
        (
            MarkKind::Decision {
                outcome: Outcome::Validated,
            },
            "ok",
            "final decision",
        ),
        (
            MarkKind::Alert {
                subject: String::new(),
            },
            "neutral",
            "alert",
        ),
    ];
    html! {
        ul.legend {
            @for (kind, tone, what) in &samples {
                li {
                    svg width="24" height="32" viewBox="0 0 24 32" {
                        g class={"mark " (kind.class()) " " (tone)} { (mark_shape(kind, 12.0, 20.0)) }
                    }
                    (what)
                }
            }
            li { span.swatch.ok {} "validated" }
            li { span.swatch.wait {} "lagging / retried" }
            li { span.swatch.warn {} "not judged (superseded, not replicated, unverifiable)" }
            li { span.swatch.bad {} "failure" }
        }
    }
}

const SERIES_COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn depth_chart(series: &[QueueSeries], end: Duration) -> Markup {
    let end = axis_end(end);
    let busy: Vec<(usize, &QueueSeries)> = series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.peak() > 0)
        .collect();
    let idle: Vec<&str> = series
        .iter()
        .filter(|s| s.peak() == 0)
        .map(|s| s.queue)
        .collect();
    let peak = busy.iter().map(|(_, s)| s.peak()).max().unwrap_or(1).max(1) as f64;
    let (top, bottom) = (AXIS_HEIGHT, AXIS_HEIGHT + 110.0);
    let y_of = |n: u64| bottom - n as f64 / peak * (bottom - top - 6.0);
    html! {
        @if series.is_empty() {
            p.empty { "No queue depth was sampled." }
        } @else {
            svg.depths xmlns="http://www.w3.org/2000/svg" role="img"
                viewBox=(format!("0 0 {} {}", px(WIDTH), px(bottom + 8.0)))
                width=(px(WIDTH)) height=(px(bottom + 8.0)) {
                title { "Messages per queue (visible + in flight + delayed)" }
                (axis(end, top, bottom))
                line x1=(px(plot_x().0)) x2=(px(plot_x().1)) y1=(px(bottom)) y2=(px(bottom)) class="baseline" {}
                text x=(px(plot_x().0 - 6.0)) y=(px(y_of(peak as u64) + 4.0)) text-anchor="end" class="tick-label" { (peak) }
                text x=(px(plot_x().0 - 6.0)) y=(px(bottom)) text-anchor="end" class="tick-label" { "0" }
                @for (n, (i, s)) in busy.iter().enumerate() {
                    @let colour = SERIES_COLOURS[*i % SERIES_COLOURS.len()];
                    polyline.series data-queue=(s.queue) fill="none" stroke=(colour) stroke-width="2"
                        points=(s.samples.iter().map(|(at, d)| format!("{},{}", px(x_of(*at, end)), px(y_of(d.total())))).collect::<Vec<_>>().join(" ")) {}
                    text x="8" y=(px(top + 14.0 + n as f64 * 16.0)) fill=(colour) class="series-label" {
                        (s.queue) " (peak " (s.peak()) ")"
                    }
                }
            }
            @if !idle.is_empty() {
                p.note { "Always empty: " (idle.join(", ")) }
            }
        }
    }
}

/// Every alert in full, in arrival order (the agent's notifications marked as such).
fn alerts(events: &[crate::observe::Event]) -> Markup {
    let received: Vec<(Duration, &str, &str, bool)> = events
        .iter()
        .filter_map(|e| match &e.what {
            Observation::Alert {
                subject,
                message,
                attributes,
            } => Some((
                e.at,
                subject.as_str(),
                message.as_str(),
                crate::agent::agent_event(attributes).is_some(),
            )),
            _ => None,
        })
        .collect();
    html! {
        h3 { "Alerts received (" (received.len()) ")" }
        @if received.is_empty() {
            p.empty { "None." }
        }
        @for (at, subject, message, agent) in &received {
            div.alert {
                p.alert-subject {
                    span.at { (secs(*at)) } " "
                    @if *agent { span.tag { "agent notification" } " " }
                    strong { (subject) }
                }
                pre { (message) }
            }
        }
    }
}

const CSS: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1040px; padding: 16px 20px 60px; color: #1d1d1f; background: #fff; }
h1 { font-size: 22px; margin: 8px 0; } h2 { font-size: 18px; margin: 28px 0 8px; } h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e6; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; color: #fff; }
.status-passed { background: #1a7f37; } .status-failed { background: #cf222e; } .status-error { background: #9a3412; }
section.case { border: 1px solid #e3e3e6; border-radius: 8px; padding: 4px 16px 16px; margin: 24px 0; }
section.case[data-status="failed"], section.case[data-status="error"] { border: 2px solid #cf222e; background: #fff8f8; }
.description, .note { color: #57606a; } .empty { color: #57606a; font-style: italic; }
.problems ul { margin: 4px 0; padding-left: 20px; color: #a40e26; }
pre { background: #f6f8fa; border: 1px solid #e3e3e6; border-radius: 6px; padding: 8px 10px; overflow-x: auto; font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre.diff span.add { background: #dafbe1; color: #116329; } pre.diff span.del { background: #ffebe9; color: #a40e26; }
pre.diff span.hunk { color: #8250df; } pre.diff span.file { color: #57606a; font-weight: 600; }
svg.timeline, svg.depths { display: block; max-width: 100%; height: auto; border: 1px solid #e3e3e6; border-radius: 6px; background: #fff; }
.lane-bg.even { fill: #fafafb; } .lane-bg.odd { fill: #f1f2f4; }
.lane-label { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; fill: #1d1d1f; }
.lane-line { stroke: #c9ccd1; stroke-width: 1; }
.tick { stroke: #e3e3e6; stroke-width: 1; } .tick-label { font-size: 11px; fill: #57606a; } .baseline { stroke: #8c959f; }
.mark .shape { stroke: #1d1d1f; stroke-width: 1; }
.mark.uploaded .shape { fill: #0969da; } .mark.enqueued .shape { fill: #8c959f; }
.mark.delivered .shape { stroke: #57606a; stroke-width: 2; }
.mark.attempt.ok .shape, .mark.decision.ok .shape, .mark.replica.ok .shape, .swatch.ok { fill: #2da44e; background: #2da44e; }
.mark.attempt.wait .shape, .mark.decision.wait .shape, .swatch.wait { fill: #d4a72c; background: #d4a72c; }
.mark.attempt.warn .shape, .mark.decision.warn .shape, .mark.replica.warn .shape, .swatch.warn { fill: #fb8f44; background: #fb8f44; }
.mark.attempt.bad .shape, .mark.decision.bad .shape, .mark.replica.bad .shape, .swatch.bad { fill: #cf222e; background: #cf222e; }
.mark.decision .shape { stroke-width: 2; }
.mark.alert .shape { fill: #cf222e; } .bang { font: bold 10px sans-serif; fill: #fff; }
.verdict { font-size: 12px; font-weight: 600; } .verdict.ok { fill: #1a7f37; } .verdict.bad { fill: #cf222e; }
.verdict.warn { fill: #bc4c00; } .verdict.wait { fill: #9a6700; } .verdict.none { fill: #8c959f; font-weight: 400; }
.series-label { font-size: 12px; font-weight: 600; }
ul.legend { list-style: none; padding: 0; margin: 4px 0 8px; display: flex; flex-wrap: wrap; gap: 2px 16px; font-size: 12px; color: #57606a; }
ul.legend li { display: flex; align-items: center; gap: 4px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; }
.alert-subject { margin: 10px 0 2px; } .at { color: #57606a; font-variant-numeric: tabular-nums; }
.tag { font-size: 11px; background: #ddf4ff; color: #0969da; border-radius: 8px; padding: 0 6px; }
.alert pre { white-space: pre-wrap; overflow-wrap: anywhere; }
details.transcript summary, details.logs summary { cursor: pointer; color: #0969da; margin-top: 14px; }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineKind;
    use crate::observe::{Depth, Event};
    use crate::report::timeline::tests::{decision, report};
    use crate::scenario::runner::Timings;
    use crate::scenario::RunOutcome;
    use checksum_validator::report::Action;

    fn event(ms: u64, what: Observation) -> Event {
        Event {
            at: Duration::from_millis(ms),
            what,
        }
    }

    fn decided(ms: u64, key: &str, version: &str, outcome: Outcome, action: Action) -> Event {
        let object = Some(("docs-primary", key, version));
        let message = format!("m-{key}-{version}");
        decision(ms, report(&message, object, 1, outcome, action))
    }

    fn uploaded(ms: u64, key: &str, version: &str) -> Event {
        event(
            ms,
            Observation::Uploaded {
                bucket: "docs-primary".into(),
                key: key.into(),
                version_id: version.into(),
            },
        )
    }

    fn outcome(events: Vec<Event>) -> RunOutcome {
        RunOutcome {
            scenario: "s".into(),
            engine: "ministack".into(),
            transcript: "scenario: s\n".into(),
            timings: Timings {
                provision: Duration::from_millis(1500),
                steps: Duration::from_millis(2000),
                settle: Duration::from_millis(1600),
                teardown: Duration::from_millis(300),
                total: Duration::from_millis(5400),
            },
            categories: [("docs-primary".to_string(), "documents".to_string())].into(),
            events,
            ..RunOutcome::default()
        }
    }

    fn case(name: &str, status: CaseStatus, o: Option<RunOutcome>) -> Case {
        Case {
            scenario: name.into(),
            description: format!("what {name} proves"),
            engine: EngineKind::Ministack,
            status,
            time: Duration::from_millis(5400),
            problems: match status {
                CaseStatus::Passed => Vec::new(),
                _ => vec!["outcome differs from tests/snapshots/scenarios__x.snap".into()],
            },
            diff: (status == CaseStatus::Failed).then(|| {
                "--- snapshot (expected)\n+++ this run (actual)\n@@ -1,2 +1,2 @@\n scenario: s\n-alerts received: 0\n+alerts received: 1\n".to_string()
            }),
            pending: None,
            outcome: o,
            logs: if status == CaseStatus::Failed {
                "ERROR failure_notifier: alert publish failed <Throttled>\n".to_string()
            } else {
                String::new()
            },
        }
    }

    /// A passing run of two versions of one key, a failing one with a hostile key and an
    /// alert, and one that could not be played; with one failed posture check.
    fn run() -> GateRun {
        let passing = outcome(vec![
            uploaded(100, "a.txt", "v1"),
            decided(400, "a.txt", "v1", Outcome::Validated, Action::Done),
            uploaded(900, "a.txt", "v2"),
            decided(1300, "a.txt", "v2", Outcome::Validated, Action::Done),
            event(
                1500,
                Observation::Depth {
                    queue: "validation",
                    depth: Depth {
                        visible: 2,
                        in_flight: 1,
                        delayed: 0,
                    },
                },
            ),
            event(
                2500,
                Observation::Depth {
                    queue: "validation",
                    depth: Depth::default(),
                },
            ),
        ]);
        let hostile = "<script>alert(1)</script>.txt";
        let failing = outcome(vec![
            uploaded(100, hostile, "v9"),
            decided(700, hostile, "v9", Outcome::Mismatch, Action::FailureSent),
            event(
                1200,
                Observation::Alert {
                    subject: "[autobackup] FAILED <b>mismatch</b>".into(),
                    message:
                        "Replica validation failed: mismatch\nObject:      s3://docs-primary/x\n"
                            .into(),
                    attributes: Default::default(),
                },
            ),
        ]);
        GateRun {
            cases: vec![
                case("happy-path", CaseStatus::Passed, Some(passing)),
                case("corrupt-replica", CaseStatus::Failed, Some(failing)),
                case("engine-gone", CaseStatus::Error, None),
            ],
            checks: vec![
                Check {
                    engine: EngineKind::Ministack,
                    id: "bucket-versioning".into(),
                    resource: "docs-primary".into(),
                    setting: "Versioning".into(),
                    passed: true,
                    detail: "Enabled".into(),
                },
                Check {
                    engine: EngineKind::Ministack,
                    id: "bucket-public-access-block".into(),
                    resource: "docs-primary".into(),
                    setting: "BlockPublicAcls".into(),
                    passed: false,
                    detail: "false; required true".into(),
                },
            ],
            iac: Vec::new(),
            shard: Some((1, 2)),
            wall: Duration::from_secs(12),
        }
    }

    /// The `<section>` of one case.
    fn section<'a>(html: &'a str, scenario: &str) -> &'a str {
        let start = html
            .find(&format!(
                "<section class=\"case\" id=\"case-ministack-{scenario}\""
            ))
            .unwrap_or_else(|| panic!("no section for {scenario}"));
        let end = html[start..].find("</section>").expect("closed") + start;
        &html[start..end]
    }

    #[test]
    fn one_lane_per_object_version_and_the_failed_case_marked_with_its_diff() {
        let html = render(&run());
        let passing = section(&html, "happy-path");
        assert!(passing.contains("data-status=\"passed\""));
        assert_eq!(passing.matches("<g class=\"lane\"").count(), 2);
        assert!(passing.contains("data-lane=\"documents/a.txt#1\""));
        assert!(passing.contains("data-lane=\"documents/a.txt#2\""));
        assert!(
            !passing.contains("class=\"diff\""),
            "no diff on a passing case"
        );
        assert!(
            passing.contains("data-queue=\"validation\""),
            "the depth series"
        );
        assert!(passing.contains("validation (peak 3)"));

        let failing = section(&html, "corrupt-replica");
        assert!(failing.contains("data-status=\"failed\""));
        assert!(failing.contains("<span class=\"badge status-failed\">FAIL</span>"));
        assert_eq!(failing.matches("<g class=\"lane\"").count(), 1);
        assert!(failing.contains("<span class=\"del\">-alerts received: 0</span>"));
        assert!(failing.contains("<span class=\"add\">+alerts received: 1</span>"));
        assert!(failing.contains("data-decision=\"mismatch\""));
        assert!(failing.contains("Alerts received (1)"));
        // The log lines captured while it played, folded, as text.
        assert!(failing.contains("<summary>Log lines while it played (1)</summary>"));
        assert!(failing.contains("alert publish failed &lt;Throttled&gt;"));
        assert!(
            !passing.contains("class=\"logs\""),
            "nothing captured, no section"
        );

        let error = section(&html, "engine-gone");
        assert!(error.contains("data-status=\"error\""));
        assert!(!error.contains("class=\"timeline\""), "nothing was played");

        assert!(html.contains("<tr class=\"case-row\" data-scenario=\"corrupt-replica\" data-engine=\"ministack\" data-status=\"failed\">"));
        assert!(html.contains("<body data-status=\"failed\">"));
        assert!(html.contains("1 of 3 case(s) passed, 1 of 2 posture check(s) held"));
        assert!(html.contains("shard 1/2"));
        assert_eq!(html.matches("<tr data-check=").count(), 2);
        assert!(html.contains(
            "<tr data-check=\"bucket-public-access-block\" data-engine=\"ministack\" data-status=\"failed\">"
        ));
    }

    #[test]
    fn hostile_keys_and_subjects_are_escaped_and_nothing_is_fetched() {
        let html = render(&run());
        assert!(!html.contains("<script"), "a key is text, never markup");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;.txt"));
        assert!(!html.contains("<b>mismatch</b>"));
        assert!(html.contains("FAILED &lt;b&gt;mismatch&lt;/b&gt;"));
        // Self-contained: no external reference of any kind.
        for needle in ["src=", "<link", "@import", "url(", "http://", "https://"] {
            let hits: Vec<&str> = html
                .match_indices(needle)
                .map(|(i, _)| &html[i.saturating_sub(20)..(i + 40).min(html.len())])
                .filter(|ctx| !ctx.contains("xmlns=\"http://www.w3.org/2000/svg\""))
                .collect();
            assert!(hits.is_empty(), "{needle}: {hits:?}");
        }
    }

    #[test]
    fn a_run_without_checks_has_no_checks_table_and_an_empty_run_renders() {
        let mut r = run();
        r.checks.clear();
        let html = render(&r);
        assert!(!html.contains("id=\"checks\""));
        let empty = render(&GateRun::default());
        assert!(empty.contains("<body data-status=\"passed\">"));
        assert!(empty.contains("0 of 0 case(s) passed"));
    }

    /// The whole page, one element per line for review.
    #[test]
    fn the_report_is_stable() {
        insta::assert_snapshot!(render(&run()).replace("><", ">\n<"));
    }

    /// `HARNESS_REPORT_SAMPLE=FILE` writes the synthetic report for a look in a browser.
    #[test]
    fn the_sample_report_can_be_written_for_a_look() {
        if let Some(path) = std::env::var_os("HARNESS_REPORT_SAMPLE") {
            write(Path::new(&path), &run()).unwrap();
        }
    }

    #[test]
    fn write_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/report.html");
        write(&path, &run()).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(4.0), 0.5);
        assert_eq!(tick_step(12.0), 2.0);
        assert_eq!(tick_step(95.0), 10.0);
        assert_eq!(axis_end(Duration::from_millis(12_300)), 14.0);
        assert_eq!(axis_end(Duration::ZERO), 1.0);
    }
}

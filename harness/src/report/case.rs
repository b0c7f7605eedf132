//! One scenario played on one engine and judged against its reviewed snapshot: the record
//! every output renders (the console lines of `harness scenario run`, JUnit, and the gate's
//! summary and report). Judging happens once, here; renderers only read a [`Case`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::EngineKind;
use crate::report::snapshot;
use crate::scenario::ScenarioError;
use crate::scenario::{RunOutcome, Scenario};

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// The outcome equals the snapshot and every expectation held.
    Passed,
    /// The scenario ran to the end, but its outcome differs from the snapshot, an
    /// expectation did not hold, or there is no reviewed snapshot yet.
    Failed,
    /// The scenario could not be played: a step failed, provisioning failed, the engine
    /// stopped.
    Error,
}

impl CaseStatus {
    pub fn label(self) -> &'static str {
        match self {
            CaseStatus::Passed => "PASS",
            CaseStatus::Failed => "FAIL",
            CaseStatus::Error => "ERROR",
        }
    }
}

/// One scenario on one engine, judged.
#[derive(Debug)]
pub struct Case {
    pub scenario: String,
    pub description: String,
    pub engine: EngineKind,
    pub status: CaseStatus,
    /// Wall time of the whole case (provision to teardown).
    pub time: Duration,
    /// Why it did not pass, one line each: unmet expectations, the snapshot that differs or
    /// is missing, or the error. Empty when it passed.
    pub problems: Vec<String>,
    /// The unified diff of the snapshot against this run's transcript, when they differ.
    pub diff: Option<String>,
    /// A pending snapshot written for review (`cargo insta review`) when none existed.
    pub pending: Option<PathBuf>,
    /// What the run produced (`None` when it could not be played).
    pub outcome: Option<RunOutcome>,
    /// The log lines written while the case played (the functions' and the harness's), when
    /// they were captured (`harness gate`); empty otherwise.
    pub logs: String,
}

impl Case {
    /// Judges a run of `scenario` on `engine` against the snapshot under `root`
    /// (`tests/snapshots/`). With no reviewed snapshot it writes `<snap>.snap.new` for
    /// review, as insta would, and fails the case.
    pub fn judge(
        root: &Path,
        scenario: &Scenario,
        engine: EngineKind,
        run: Result<RunOutcome, ScenarioError>,
        time: Duration,
    ) -> Case {
        let mut case = Case {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            engine,
            status: CaseStatus::Passed,
            time,
            problems: Vec::new(),
            diff: None,
            pending: None,
            outcome: None,
            logs: String::new(),
        };
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(e) => {
                case.status = CaseStatus::Error;
                case.problems.push(e.to_string());
                return case;
            }
        };
        case.problems.extend(outcome.unmet.iter().cloned());
        let snap = snapshot::snapshot_path(root, &scenario.name);
        match snapshot::read_snapshot(&snap) {
            None => {
                let pending = snap.with_extension("snap.new");
                let written = std::fs::create_dir_all(snap.parent().expect("has parent"))
                    .and_then(|()| {
                        std::fs::write(
                            &pending,
                            format!(
                                "---\nsource: tests/scenarios.rs\nexpression: transcript\n---\n{}\n",
                                outcome.transcript.trim_end()
                            ),
                        )
                    });
                case.problems.push(match written {
                    Ok(()) => format!(
                        "no reviewed snapshot at {}; wrote {} for review (`cargo insta review`)",
                        snap.display(),
                        pending.display()
                    ),
                    Err(e) => format!(
                        "no reviewed snapshot at {}; writing {} failed: {e}",
                        snap.display(),
                        pending.display()
                    ),
                });
                case.pending = Some(pending);
            }
            Some(expected) => {
                if let Some(d) = snapshot::diff(&expected, &outcome.transcript) {
                    case.problems
                        .push(format!("outcome differs from {}", snap.display()));
                    case.diff = Some(d);
                }
            }
        }
        if !case.problems.is_empty() {
            case.status = CaseStatus::Failed;
        }
        case.outcome = Some(outcome);
        case
    }

    /// The failure text for CI (JUnit's description, the summary's details): the problems,
    /// then the diff. `None` when the case passed.
    pub fn failure_text(&self) -> Option<String> {
        if self.status == CaseStatus::Passed {
            return None;
        }
        let mut text = self.problems.join("\n");
        if let Some(d) = &self.diff {
            text.push_str("\n\n");
            text.push_str(d);
        }
        Some(text)
    }
}

/// One posture check of a provisioned topology on one engine (`harness gate`): a setting of
/// one resource, compared with what the seed deployment requires.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub engine: EngineKind,
    /// The check's stable id, e.g. `bucket-public-access-block`.
    pub id: String,
    /// The resource checked (bucket name, queue URL, topic ARN, role name).
    pub resource: String,
    /// The setting checked, e.g. `BlockPublicAcls`.
    pub setting: String,
    pub passed: bool,
    /// What was found (and, when it failed, what was required).
    pub detail: String,
}

/// Everything one gate run (or one `scenario run`) produced: what the renderers (JUnit, the
/// Markdown summary, the HTML report) are given.
#[derive(Debug, Default)]
pub struct GateRun {
    pub cases: Vec<Case>,
    pub checks: Vec<Check>,
    /// cfn-lint's and Checkov's verdicts on `deploy/` (`--via cloudformation`).
    pub iac: Vec<crate::iac::Finding>,
    /// `(k, n)` when this run is shard k of n (1-based).
    pub shard: Option<(u32, u32)>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

impl GateRun {
    /// Did every case pass and every check hold?
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.status == CaseStatus::Passed)
            && self.checks.iter().all(|c| c.passed)
            && self.iac.iter().all(|f| f.passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            "description = \"d\"\n\n[[step]]\nwait = { for = \"idle\" }\n",
        )
        .unwrap();
        Scenario::load(&path, &["documents".to_string()]).unwrap()
    }

    fn outcome(transcript: &str, unmet: &[&str]) -> RunOutcome {
        RunOutcome {
            scenario: "s".into(),
            engine: "ministack".into(),
            transcript: transcript.into(),
            replication: String::new(),
            suffix: "x".into(),
            unmet: unmet.iter().map(|s| s.to_string()).collect(),
            ..RunOutcome::default()
        }
    }

    fn root_with(name: &str, body: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let snap = snapshot::snapshot_path(root.path(), name);
        std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
        std::fs::write(
            snap,
            format!("---\nsource: tests/scenarios.rs\nexpression: transcript\n---\n{body}\n"),
        )
        .unwrap();
        root
    }

    #[test]
    fn an_equal_outcome_passes_and_a_changed_line_fails_with_its_diff() {
        let s = scenario("alpha");
        let root = root_with("alpha", "line 1\nline 2");
        let k = EngineKind::Ministack;
        let pass = Case::judge(
            root.path(),
            &s,
            k,
            Ok(outcome("line 1\nline 2\n", &[])),
            Duration::ZERO,
        );
        assert_eq!(pass.status, CaseStatus::Passed);
        assert!(pass.failure_text().is_none());

        let fail = Case::judge(
            root.path(),
            &s,
            k,
            Ok(outcome("line 1\nline 3", &[])),
            Duration::ZERO,
        );
        assert_eq!(fail.status, CaseStatus::Failed);
        let text = fail.failure_text().unwrap();
        assert!(text.contains("outcome differs from"), "{text}");
        assert!(
            text.contains("-line 2") && text.contains("+line 3"),
            "{text}"
        );
    }

    #[test]
    fn an_unmet_expectation_fails_even_with_an_equal_transcript() {
        let s = scenario("beta");
        let root = root_with("beta", "same");
        let case = Case::judge(
            root.path(),
            &s,
            EngineKind::Localstack,
            Ok(outcome("same", &["expected 1 alert, saw 0"])),
            Duration::ZERO,
        );
        assert_eq!(case.status, CaseStatus::Failed);
        assert_eq!(case.problems, vec!["expected 1 alert, saw 0".to_string()]);
        assert!(case.diff.is_none());
    }

    #[test]
    fn a_missing_snapshot_is_written_for_review_and_fails() {
        let s = scenario("gamma");
        let root = tempfile::tempdir().unwrap();
        let case = Case::judge(
            root.path(),
            &s,
            EngineKind::Ministack,
            Ok(outcome("new", &[])),
            Duration::ZERO,
        );
        assert_eq!(case.status, CaseStatus::Failed);
        let pending = case.pending.as_ref().unwrap();
        assert!(std::fs::read_to_string(pending)
            .unwrap()
            .ends_with("---\nnew\n"));
    }

    #[test]
    fn a_run_that_could_not_be_played_is_an_error() {
        let s = scenario("delta");
        let root = tempfile::tempdir().unwrap();
        let case = Case::judge(
            root.path(),
            &s,
            EngineKind::Ministack,
            Err(ScenarioError::EngineExited("killed".into())),
            Duration::ZERO,
        );
        assert_eq!(case.status, CaseStatus::Error);
        assert!(case.outcome.is_none());
        assert!(case.failure_text().unwrap().contains("killed"));
    }
}

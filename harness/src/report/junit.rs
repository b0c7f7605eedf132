//! JUnit XML for CI systems (`harness scenario run --all --junit FILE`, `harness gate`):
//! one suite per engine, one test case per scenario; a failed case carries its problems and
//! the snapshot diff, a case that could not be played is a JUnit error. A gate run adds a
//! `posture-<engine>` suite, one test case per posture check (`<check> <resource>
//! <setting>`), failing with what was found, and with `--via cloudformation` a `cfn-lint`
//! and a `checkov` suite, one case per template (and the Terraform module), failing with
//! the tool's findings.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report::case::{Case, CaseStatus, GateRun};

/// The JUnit document for `cases`.
pub fn render(cases: &[Case]) -> Result<String, quick_junit::SerializeError> {
    scenario_report(cases).to_string()
}

/// The JUnit document of a gate run: the scenario suites, then one posture suite per engine.
pub fn render_run(run: &GateRun) -> Result<String, quick_junit::SerializeError> {
    let mut report = scenario_report(&run.cases);
    let mut engines: Vec<_> = run.checks.iter().map(|c| c.engine).collect();
    engines.sort_by_key(|k| k.name());
    engines.dedup();
    for engine in engines {
        let mut suite = TestSuite::new(format!("posture-{engine}"));
        for c in run.checks.iter().filter(|c| c.engine == engine) {
            let status = if c.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("{} {}: {}", c.resource, c.setting, c.detail));
                s.set_description(format!(
                    "check {}\nresource {}\nsetting {}\nfound {}",
                    c.id, c.resource, c.setting, c.detail
                ));
                s
            };
            let mut case = TestCase::new(format!("{} {} {}", c.id, c.resource, c.setting), status);
            case.set_classname(format!("posture.{engine}"));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    for tool in [crate::iac::Tool::CfnLint, crate::iac::Tool::Checkov] {
        let findings: Vec<_> = run.iac.iter().filter(|f| f.tool == tool).collect();
        if findings.is_empty() {
            continue;
        }
        let mut suite = TestSuite::new(tool.name());
        for f in findings {
            let status = if f.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!(
                    "{} found problems in {}",
                    tool.name(),
                    f.unit.display()
                ));
                s.set_description(f.output.clone());
                s
            };
            let mut case = TestCase::new(f.unit.display().to_string(), status);
            case.set_classname(format!("iac.{}", tool.name()));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string()
}

/// Writes the JUnit document of a gate run to `path`.
pub fn write_run(path: &std::path::Path, run: &GateRun) -> std::io::Result<()> {
    let xml = render_run(run).map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(path, xml)
}

fn scenario_report(cases: &[Case]) -> Report {
    let mut report = Report::new("autobackup-scenarios");
    let mut engines: Vec<_> = cases.iter().map(|c| c.engine).collect();
    engines.sort_by_key(|k| k.name());
    engines.dedup();
    for engine in engines {
        let mut suite = TestSuite::new(format!("scenarios-{engine}"));
        for c in cases.iter().filter(|c| c.engine == engine) {
            let status = match (c.status, c.failure_text()) {
                (CaseStatus::Passed, _) | (_, None) => TestCaseStatus::success(),
                (status, Some(text)) => {
                    let kind = if status == CaseStatus::Error {
                        NonSuccessKind::Error
                    } else {
                        NonSuccessKind::Failure
                    };
                    let mut s = TestCaseStatus::non_success(kind);
                    s.set_message(c.problems.first().cloned().unwrap_or_default());
                    s.set_description(text);
                    s
                }
            };
            let mut case = TestCase::new(c.scenario.clone(), status);
            case.set_classname(format!("scenarios.{engine}"));
            case.set_time(c.time);
            if !c.logs.is_empty() {
                case.set_system_err(c.logs.as_str());
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
}

/// Writes the JUnit document for `cases` to `path`.
pub fn write(path: &std::path::Path, cases: &[Case]) -> std::io::Result<()> {
    let xml = render(cases).map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(path, xml)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::EngineKind;

    fn case(name: &str, engine: EngineKind, status: CaseStatus) -> Case {
        Case {
            scenario: name.into(),
            description: String::new(),
            engine,
            status,
            time: Duration::from_millis(1500),
            problems: match status {
                CaseStatus::Passed => vec![],
                _ => vec![format!("{name} went wrong")],
            },
            diff: (status == CaseStatus::Failed).then(|| "-old line\n+new line\n".to_string()),
            pending: None,
            outcome: None,
            logs: if status == CaseStatus::Passed {
                String::new()
            } else {
                format!("ERROR {name}: a log line\n")
            },
        }
    }

    #[test]
    fn one_suite_per_engine_and_the_failure_carries_the_diff() {
        let xml = render(&[
            case("happy-path", EngineKind::Ministack, CaseStatus::Passed),
            case("poison-pill", EngineKind::Ministack, CaseStatus::Failed),
            case("happy-path", EngineKind::Localstack, CaseStatus::Error),
        ])
        .unwrap();
        assert!(
            xml.contains(
                r#"<testsuite name="scenarios-localstack" tests="1" skipped="0" errors="1" failures="0""#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testsuite name="scenarios-ministack" tests="2" skipped="0" errors="0" failures="1""#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="poison-pill went wrong""#),
            "{xml}"
        );
        assert!(xml.contains("+new line"), "{xml}");
        // What was logged while a case played goes with it; a passing case logged nothing.
        assert!(
            xml.contains("<system-err>ERROR poison-pill: a log line\n</system-err>"),
            "{xml}"
        );
        assert_eq!(xml.matches("<system-err>").count(), 2, "{xml}");
        assert!(
            xml.contains(r#"<error message="happy-path went wrong""#),
            "{xml}"
        );
    }

    #[test]
    fn a_gate_run_adds_a_posture_suite_naming_resource_and_setting() {
        use crate::report::case::Check;
        let check = |passed: bool, setting: &str| Check {
            engine: EngineKind::Ministack,
            id: "bucket-public-access-block".into(),
            resource: "bucket-a".into(),
            setting: setting.into(),
            passed,
            detail: if passed {
                "true"
            } else {
                "false (required: true)"
            }
            .into(),
        };
        let run = GateRun {
            cases: vec![case(
                "happy-path",
                EngineKind::Ministack,
                CaseStatus::Passed,
            )],
            checks: vec![
                check(true, "IgnorePublicAcls"),
                check(false, "BlockPublicAcls"),
            ],
            iac: Vec::new(),
            shard: None,
            wall: Duration::ZERO,
        };
        let xml = render_run(&run).unwrap();
        assert!(
            xml.contains(
                r#"<testsuite name="posture-ministack" tests="2" skipped="0" errors="0" failures="1""#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="bucket-public-access-block bucket-a BlockPublicAcls" classname="posture.ministack""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="bucket-a BlockPublicAcls: false (required: true)""#),
            "{xml}"
        );
    }
}

//! JUnit XML for CI systems (`harness scenario run --all --junit FILE`).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// One scenario result for the JUnit report.
pub struct CaseResult {
    pub name: String,
    pub engine: String,
    pub time: Duration,
    /// `None` when it passed; the failure text otherwise.
    pub failure: Option<String>,
}

/// Writes a JUnit report with one suite per engine.
pub fn write(path: &std::path::Path, results: &[CaseResult]) -> std::io::Result<()> {
    let mut report = Report::new("autobackup-scenarios");
    let mut engines: Vec<&str> = results.iter().map(|r| r.engine.as_str()).collect();
    engines.sort();
    engines.dedup();
    for engine in engines {
        let mut suite = TestSuite::new(format!("scenarios-{engine}"));
        for r in results.iter().filter(|r| r.engine == engine) {
            let status = match &r.failure {
                None => TestCaseStatus::success(),
                Some(text) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_description(text.clone());
                    s
                }
            };
            let mut case = TestCase::new(r.name.clone(), status);
            case.set_time(r.time);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    let xml = report
        .to_string()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(path, xml)
}

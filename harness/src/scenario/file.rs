//! Scenario files (`scenarios/*.toml`): parsing with line and column in every error.
//!
//! ```toml
//! description = "what this scenario proves"
//! profile = "fast"                       # timing profile from fixtures/topology.toml
//!
//! [timing]                               # optional overrides, shown in the outcome
//! validation_visibility_seconds = 2
//!
//! [[step]]
//! upload = { category = "documents", key = "report.txt", text = "hello" }
//!
//! [[step]]
//! wait = { for = "outcome", object = "documents/report.txt", outcome = "validated" }
//!
//! [expect]
//! alerts = 0
//! outcomes = { "documents/report.txt" = "validated" }
//! ```
//!
//! The agent's steps (`tree`, `backup`, `restore`, `cost`) are described in
//! [`crate::agent`]; `[agent]` holds flags for every backup run.
//!
//! Floor 5: may import floors 0-4 (up to the runtime); pure parsing, nothing of scenario play.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::check;
use super::steps::{LocatedStep, Step, Upload, ValidatorOptions};
use crate::agent::AgentOptions;
use crate::errors::{line_col, toml_error, FileError};
use crate::topology::TimingOverrides;

/// A parsed, checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    pub profile: String,
    /// Line and column of `profile` (of the file's start when it is the default).
    pub profile_at: (usize, usize),
    pub timing: TimingOverrides,
    pub steps: Vec<LocatedStep>,
    pub expect: Expect,
    pub validator: ValidatorOptions,
    pub agent: AgentOptions,
    /// `[topology]`: changes to the provisioned topology (replication rules).
    pub topology: crate::topology::TopologyOverrides,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    name: Option<Spanned<String>>,
    description: String,
    #[serde(default = "default_profile")]
    profile: Spanned<String>,
    #[serde(default)]
    timing: TimingOverrides,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<Step>>,
    #[serde(default)]
    expect: RawExpect,
    #[serde(default)]
    validator: ValidatorOptions,
    #[serde(default)]
    agent: AgentOptions,
    #[serde(default)]
    topology: RawTopology,
}

/// `[expect]` as written, with the place of every entry a check may refuse.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    alerts: Option<usize>,
    #[serde(default)]
    outcomes: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    largest_batch: Option<usize>,
    #[serde(default)]
    largest_batch_failures: Option<usize>,
    #[serde(default)]
    agent_notifications: Option<BTreeMap<Spanned<String>, usize>>,
    #[serde(default)]
    backups: BTreeMap<Spanned<String>, usize>,
    #[serde(default)]
    backups_validated: Option<usize>,
    #[serde(default)]
    violations: Vec<Invariant>,
}

impl From<RawExpect> for Expect {
    fn from(raw: RawExpect) -> Expect {
        let plain = |m: BTreeMap<Spanned<String>, usize>| {
            m.into_iter().map(|(k, v)| (k.into_inner(), v)).collect()
        };
        Expect {
            alerts: raw.alerts,
            outcomes: raw
                .outcomes
                .into_iter()
                .map(|(k, v)| (k.into_inner(), v.into_inner()))
                .collect(),
            largest_batch: raw.largest_batch,
            largest_batch_failures: raw.largest_batch_failures,
            agent_notifications: raw.agent_notifications.map(plain),
            backups: plain(raw.backups),
            backups_validated: raw.backups_validated,
            violations: raw.violations,
        }
    }
}

/// `[topology]` as written: [`crate::topology::TopologyOverrides`] with the place of
/// `destinations`, the one value a check may refuse.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(default)]
    replication: RawReplication,
}

/// `[topology.replication]`: the fields of [`crate::topology::spec::ReplicationOverrides`]
/// (keep the two in step).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    sse_kms: Option<bool>,
    delete_markers: Option<bool>,
    prefix: Option<String>,
    destinations: Option<Spanned<u32>>,
    rtc: Option<bool>,
}

impl From<RawTopology> for crate::topology::TopologyOverrides {
    fn from(raw: RawTopology) -> Self {
        let r = raw.replication;
        crate::topology::TopologyOverrides {
            replication: crate::topology::spec::ReplicationOverrides {
                sse_kms: r.sse_kms,
                delete_markers: r.delete_markers,
                prefix: r.prefix,
                destinations: r.destinations.map(Spanned::into_inner),
                rtc: r.rtc,
            },
        }
    }
}

fn default_profile() -> Spanned<String> {
    Spanned::new(0..0, "fast".into())
}

/// What the scenario expects at the end (checked before the snapshot).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exact number of alerts received.
    #[serde(default)]
    pub alerts: Option<usize>,
    /// Final validator outcome per object (`category/key`).
    #[serde(default)]
    pub outcomes: BTreeMap<String, String>,
    /// The largest batch the validator received had exactly this many records.
    #[serde(default)]
    pub largest_batch: Option<usize>,
    /// ... and reported exactly this many batch item failures.
    #[serde(default)]
    pub largest_batch_failures: Option<usize>,
    /// Notifications the agent sent, by event (`success`, `failure`, `anomaly`): exact
    /// counts; an event left out must not occur.
    #[serde(default)]
    pub agent_notifications: Option<BTreeMap<String, usize>>,
    /// Current backups under `backups/<category>/` in the category's primary at the end.
    #[serde(default)]
    pub backups: BTreeMap<String, usize>,
    /// Every backup the agent stored was finally decided `validated`, and there were this many.
    #[serde(default)]
    pub backups_validated: Option<usize>,
    /// Invariants this scenario breaks on purpose (see [`super::invariants`]).
    #[serde(default)]
    pub violations: Vec<Invariant>,
}

/// The invariants, by name (`kebab-case` in scenario files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    OneFinalOutcome,
    NoFalseAlert,
    InjectedFailureAlertsOnce,
    DeadLettersAlert,
    QueuesDrain,
    ValidatedHasEvidence,
    FinalOutcomeIsExplained,
}

impl Invariant {
    pub const ALL: [Invariant; 7] = [
        Invariant::OneFinalOutcome,
        Invariant::NoFalseAlert,
        Invariant::InjectedFailureAlertsOnce,
        Invariant::DeadLettersAlert,
        Invariant::QueuesDrain,
        Invariant::ValidatedHasEvidence,
        Invariant::FinalOutcomeIsExplained,
    ];

    /// About the system as a whole (queues, dead letters), not one workload's versions.
    pub fn is_system_wide(self) -> bool {
        matches!(self, Invariant::DeadLettersAlert | Invariant::QueuesDrain)
    }

    pub fn name(self) -> &'static str {
        match self {
            Invariant::OneFinalOutcome => "one-final-outcome",
            Invariant::NoFalseAlert => "no-false-alert",
            Invariant::InjectedFailureAlertsOnce => "injected-failure-alerts-once",
            Invariant::DeadLettersAlert => "dead-letters-alert",
            Invariant::QueuesDrain => "queues-drain",
            Invariant::ValidatedHasEvidence => "validated-has-evidence",
            Invariant::FinalOutcomeIsExplained => "final-outcome-is-explained",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Scenario {
    /// Loads a scenario file; `categories` are the topology's categories.
    pub fn load(path: &Path, categories: &[String]) -> Result<Scenario, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let fixtures = crate::paths::repo_root().join("fixtures");
        Scenario::parse_with_fixtures(path, &text, categories, Some(&fixtures))
    }

    /// Parses and checks a scenario without looking at the file system (fixture paths are
    /// checked only lexically; [`Scenario::load`] also checks they name files).
    pub fn parse(path: &Path, text: &str, categories: &[String]) -> Result<Scenario, FileError> {
        Scenario::parse_with_fixtures(path, text, categories, None)
    }

    /// Parses and checks a scenario; with `fixtures` (the `fixtures/` directory), every
    /// upload's fixture must be a file in it.
    pub fn parse_with_fixtures(
        path: &Path,
        text: &str,
        categories: &[String],
        fixtures: Option<&Path>,
    ) -> Result<Scenario, FileError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            toml_error(
                path,
                text,
                &e,
                "see README.md, section \"Scenario files\", for every key",
            )
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let invalid = |offset: usize, message: String, hint: &str| {
            let (line, column) = line_col(text, offset);
            FileError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
                hint: hint.to_string(),
            }
        };
        if let Some(n) = &raw.name {
            check::check_name(n.get_ref(), &stem)
                .map_err(|(m, h)| invalid(n.span().start, m, h))?;
        }
        let mut steps = Vec::new();
        for s in raw.steps {
            let offset = s.span().start;
            let line = line_col(text, offset).0;
            let step = s.into_inner();
            check::check_step(&step, categories).map_err(|(m, h)| invalid(offset, m, h))?;
            if let (
                Step::Upload(Upload {
                    fixture: Some(f), ..
                }),
                Some(dir),
            ) = (&step, fixtures)
            {
                check::check_fixture_file(dir, f).map_err(|(m, h)| invalid(offset, m, h))?;
            }
            steps.push((offset, LocatedStep { line, step }));
        }
        check::check_expected_outcomes(&raw.expect.outcomes, categories)
            .map_err(|(offset, m, h)| invalid(offset, m, h))?;
        if let Some(d) = &raw.topology.replication.destinations {
            check::check_destinations(*d.get_ref())
                .map_err(|(m, h)| invalid(d.span().start, m, h))?;
        }
        if let Some(n) = &raw.expect.agent_notifications {
            check::check_agent_events(n.keys()).map_err(|(offset, m, h)| invalid(offset, m, h))?;
        }
        check::check_backup_categories(raw.expect.backups.keys(), categories)
            .map_err(|(offset, m, h)| invalid(offset, m, h))?;
        check::check_tree_references(&steps).map_err(|(offset, m, h)| invalid(offset, m, h))?;
        let steps = steps.into_iter().map(|(_, s)| s).collect();
        Ok(Scenario {
            name: stem,
            path: path.to_path_buf(),
            description: raw.description,
            profile_at: line_col(text, raw.profile.span().start),
            profile: raw.profile.into_inner(),
            timing: raw.timing,
            steps,
            expect: raw.expect.into(),
            validator: raw.validator,
            agent: raw.agent,
            topology: raw.topology.into(),
        })
    }

    /// Checks the scenario against the topology it will run on, before any engine starts:
    /// its timing profile must be one the topology defines.
    pub fn check_against(&self, spec: &crate::topology::TopologySpec) -> Result<(), FileError> {
        let (line, column) = self.profile_at;
        check::check_profile(&self.profile, spec).map_err(|(message, hint)| FileError::Invalid {
            path: self.path.clone(),
            line,
            column,
            message,
            hint,
        })
    }

    /// Whether any step runs the backup agent (its runs and notifications join the transcript).
    pub fn uses_agent(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.step,
                Step::Tree(_) | Step::Backup(_) | Step::Restore(_) | Step::Cost(_)
            )
        })
    }

    /// Whether any step controls replication (delay, pause, faults).
    pub fn controls_replication(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.step, Step::Replication(_)))
    }
}

/// Every scenario file in `dir`, sorted by name.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn cats() -> Vec<String> {
        vec!["documents".into(), "media".into(), "database".into()]
    }

    fn parse(text: &str) -> Result<Scenario, FileError> {
        Scenario::parse(Path::new("scenarios/x.toml"), text, &cats())
    }

    /// A profile the topology does not define is refused with its line, before any engine
    /// starts; the default profile and a defined one pass.
    #[test]
    fn an_unknown_profile_is_refused_at_parse_time() {
        let spec =
            crate::topology::TopologySpec::load(&crate::topology::TopologySpec::default_path())
                .expect("the seed topology");
        let wait = "\n[[step]]\nwait = { for = \"idle\" }\n";
        let bad = parse(&format!("description = \"x\"\nprofile = \"fsat\"\n{wait}")).unwrap();
        let e = bad.check_against(&spec).unwrap_err().to_string();
        assert!(
            e.starts_with("scenarios/x.toml:2:11: unknown timing profile \"fsat\""),
            "{e}"
        );
        assert!(
            e.contains("fast") && e.contains("seed"),
            "names the profiles: {e}"
        );
        for ok in ["", "profile = \"seed\"\n"] {
            let s = parse(&format!("description = \"x\"\n{ok}{wait}")).unwrap();
            s.check_against(&spec).unwrap();
        }
    }

    #[test]
    fn parses_every_step_kind() {
        let s = parse(
            r#"
description = "all steps"
[timing]
validation_visibility_seconds = 2
[[step]]
upload = { category = "documents", key = "a b.txt", text = "hi" }
[[step]]
send = { queue = "validation", body = "poison" }
[[step]]
replication = { action = "delay", key = "*", seconds = 2 }
[[step]]
wait = { for = "outcome", object = "documents/a b.txt", outcome = "validated" }
[[step]]
redrive = { from = "validation-dlq", to = "failure" }
[expect]
alerts = 0
outcomes = { "documents/a b.txt" = "validated" }
"#,
        )
        .unwrap();
        assert_eq!(s.steps.len(), 5);
        let agent = parse(
            r#"
description = "agent steps"
[agent]
backup_args = ["--duration-floor-secs", "30"]
[[step]]
tree = { name = "docs", files = 2, bytes = 10, awkward = true }
[[step]]
backup = { tree = "docs", category = "documents", keep = 3, args = ["--level", "1"] }
[[step]]
backup = { source = "missing", category = "documents", exit = 3 }
[[step]]
restore = { category = "documents", compare = "docs" }
[[step]]
cost = { category = "documents" }
[expect]
agent_notifications = { success = 1, failure = 1 }
backups = { documents = 1 }
backups_validated = 1
"#,
        )
        .unwrap();
        let kinds: Vec<&str> = agent.steps.iter().map(|s| s.step.kind()).collect();
        assert_eq!(kinds, ["tree", "backup", "backup", "restore", "cost"]);
        assert_eq!(agent.agent.backup_args.len(), 2);
        assert_eq!(agent.expect.backups_validated, Some(1));
        // The line of the step's `[[step]]` header.
        assert_eq!(s.steps[0].line, 5);
        assert!(s.controls_replication());
        assert_eq!(s.timing.describe(), vec!["validation_visibility_seconds=2"]);
    }

    #[rstest]
    #[case::typo_in_key("description = \"x\"\n[[step]]\nuplod = { category = \"documents\", key = \"a\", text = \"b\" }\n", 3, "uplod")]
    #[case::unknown_category("description = \"x\"\n\n[[step]]\nupload = { category = \"photos\", key = \"a\", text = \"b\" }\n", 3, "photos")]
    #[case::two_sources("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", text = \"b\", size = 3 }\n", 2, "exactly one")]
    #[case::bad_queue(
        "description = \"x\"\n[[step]]\nsend = { queue = \"nope\", body = \"b\" }\n",
        3,
        "unknown queue \"nope\" (one of validation, validation-dlq, failure, failure-dlq, events-dlq)"
    )]
    #[case::bad_redrive_queue(
        "description = \"x\"\n[[step]]\nredrive = { from = \"validation-dlq\", to = \"inbox\" }\n",
        3,
        "unknown queue \"inbox\""
    )]
    #[case::bad_wait_queue(
        "description = \"x\"\n[[step]]\nwait = { for = \"queue\", queue = \"inbox\", count = 1 }\n",
        3,
        "unknown queue \"inbox\""
    )]
    #[case::wait_queue_without_queue(
        "description = \"x\"\n[[step]]\nwait = { for = \"queue\", count = 1 }\n",
        2,
        "wait for queue needs `queue` and `count`"
    )]
    #[case::bad_outage_service(
        "description = \"x\"\n[[step]]\noutage = { service = \"ec2\", failures = 1 }\n",
        3,
        "unknown service \"ec2\" (one of s3, sqs, sns, kms, events)"
    )]
    #[case::wait_without_outcome(
        "description = \"x\"\n[[step]]\nwait = { for = \"outcome\", object = \"documents/a\" }\n",
        2,
        "wait for outcome needs `outcome`"
    )]
    #[case::missing_description(
        "[[step]]\nsend = { queue = \"validation\", body = \"b\" }\n",
        1,
        "description"
    )]
    #[case::infinite_delay("description = \"x\"\n[[step]]\nreplication = { action = \"delay\", key = \"*\", seconds = inf }\n", 2, "not a duration")]
    #[case::nan_wait(
        "description = \"x\"\n[[step]]\nwait = { for = \"idle\", timeout_seconds = nan }\n",
        2,
        "not a duration"
    )]
    #[case::negative_wait(
        "description = \"x\"\n[[step]]\nwait = { for = \"idle\", timeout_seconds = -1 }\n",
        2,
        "not a duration"
    )]
    #[case::huge_upload("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", size = 99999999999 }\n", 2, "MiB a scenario may upload")]
    #[case::fixture_escapes("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \"../../etc/passwd\" }\n", 2, "not a path inside fixtures/")]
    #[case::fixture_absolute("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \"/etc/passwd\" }\n", 2, "not a path inside fixtures/")]
    #[case::fault_without_budget(
        "description = \"x\"\n[[step]]\nfault = { service = \"s3\", effect = \"throttle\" }\n",
        2,
        "needs a budget"
    )]
    #[case::overrun_count_on_pause("description = \"x\"\n[[step]]\ntrigger = { function = \"validator\", action = \"pause\", count = 2 }\n", 2, "`count` applies")]
    #[case::tree_not_generated("description = \"x\"\n[[step]]\ntree = { name = \"a\", files = 1 }\n[[step]]\nbackup = { tree = \"b\", category = \"media\" }\n", 4, "tree \"b\" is not generated")]
    #[case::backup_two_sources("description = \"x\"\n[[step]]\ntree = { name = \"a\", files = 1 }\n[[step]]\nbackup = { tree = \"a\", source = \"s\", category = \"media\" }\n", 4, "exactly one of `tree`, `source`")]
    #[case::empty_tree(
        "description = \"x\"\n[[step]]\ntree = { name = \"a\" }\n",
        2,
        "`files` or `awkward"
    )]
    #[case::tree_path(
        "description = \"x\"\n[[step]]\ntree = { name = \"../up\", files = 1 }\n",
        2,
        "not a plain name"
    )]
    #[case::restore_category(
        "description = \"x\"\n[[step]]\nrestore = { category = \"photos\" }\n",
        2,
        "photos"
    )]
    #[case::storage_class("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", text = \"b\", storage_class = \"COLD\" }\n", 3, "unknown storage class \"COLD\" (one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE)")]
    #[case::agent_event(
        "description = \"x\"\n[expect]\nagent_notifications = { sucess = 1 }\n",
        3,
        "unknown agent notification"
    )]
    #[case::name_mismatch(
        "description = \"x\"\n\nname = \"y\"\n",
        3,
        "differs from the file name"
    )]
    #[case::expect_object(
        "description = \"x\"\n[expect]\nalerts = 0\n\n[expect.outcomes]\n\"documents/a\" = \"validated\"\n\"photos/a\" = \"validated\"\n",
        7,
        "[expect] object \"photos/a\""
    )]
    #[case::expect_version_zero(
        "description = \"x\"\n[expect]\noutcomes = { \"documents/a#0\" = \"validated\" }\n",
        3,
        "versions count from 1"
    )]
    #[case::expect_outcome(
        "description = \"x\"\n[expect.outcomes]\n\"documents/a\" = \"validated\"\n\"documents/b\" = \"fine\"\n",
        4,
        "[expect] unknown outcome"
    )]
    #[case::expect_backups(
        "description = \"x\"\n[expect]\nalerts = 0\nbackups = { photos = 1 }\n",
        4,
        "backups: unknown category"
    )]
    #[case::destinations(
        "description = \"x\"\n[topology.replication]\nsse_kms = true\ndestinations = 3\n",
        4,
        "destinations = 3 is not supported"
    )]
    #[case::fixture_dot("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \".\" }\n", 2, "names a directory")]
    #[case::fixture_trailing_slash("description = \"x\"\n[[step]]\nupload = { category = \"media\", key = \"a\", fixture = \"objects/\" }\n", 2, "names a directory")]
    #[case::bad_wait("description = \"x\"\n[[step]]\nwait = { for = \"outcome\", object = \"documents/a\", outcome = \"fine\" }\n", 3, "unknown outcome \"fine\" (one of validated, lagging,")]
    fn errors_name_the_line(#[case] text: &str, #[case] line: usize, #[case] says: &str) {
        let err = parse(text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("scenarios/x.toml:{line}:")),
            "{msg}"
        );
        assert!(msg.contains(says), "{msg}");
        assert!(msg.contains("hint:"), "{msg}");
    }

    /// The repository's `fixtures/`.
    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
    }

    #[rstest]
    #[case::a_directory("objects", "is a directory")]
    #[case::a_directory_through_dot("./objects/.", "is a directory")]
    #[case::missing("objects/none.bin", "cannot be read")]
    fn a_fixture_must_be_a_file(#[case] fixture: &str, #[case] says: &str) {
        let text = format!(
            "description = \"x\"\n\n[[step]]\nupload = {{ category = \"media\", key = \"a\", fixture = \"{fixture}\" }}\n"
        );
        let path = Path::new("scenarios/x.toml");
        // Lexically fine: only the file system tells.
        assert!(Scenario::parse(path, &text, &cats()).is_ok());
        let err = Scenario::parse_with_fixtures(path, &text, &cats(), Some(&fixtures()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("scenarios/x.toml:3:"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(err.contains("hint: name a file"), "{err}");
        let fine = text.replace(fixture, "objects/q3-summary.txt");
        assert!(Scenario::parse_with_fixtures(path, &fine, &cats(), Some(&fixtures())).is_ok());
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn parser_never_panics_on_tomlish(lines in prop::collection::vec(prop_oneof![
            Just("description = \"d\"".to_string()),
            Just("[[step]]".to_string()),
            Just("[expect]".to_string()),
            Just("[timing]".to_string()),
            "upload = \\{ category = \"(documents|x)\", key = \"[a-z]{0,3}\", (text|size) = (\"a\"|1) \\}",
            "wait = \\{ for = \"(outcome|alerts|idle|x)\", count = [0-9] \\}",
            "tree = \\{ name = \"[a-z.]{0,3}\", files = [0-9] \\}",
            "backup = \\{ (tree|source) = \"[a-z]{0,3}\", category = \"(media|x)\", exit = [0-9] \\}",
            "restore = \\{ category = \"(media|x)\", compare = \"[a-z]{0,2}\" \\}",
            "[a-z_]{1,8} = [0-9]{1,3}",
        ], 0..10)) {
            let _ = parse(&lines.join("\n"));
        }
    }
}

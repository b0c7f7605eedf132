//! `harness gate`: the CI pre-deploy gate. Every scenario on each chosen engine, judged
//! against its reviewed snapshot (and the invariants every run checks), plus the posture
//! checks of a topology provisioned for them ([`crate::posture`]); writes `junit.xml`,
//! `summary.md` and `report.html` into `--out`.
//!
//! Order: everything is parsed and checked first (the topology, every scenario file, each
//! scenario's timing profile and overrides), so bad input fails with exit 2 before any
//! engine starts. Then per engine, in name order: the engine starts once (or the one
//! `harness engine up` runs is attached to), the posture checks run, then the engine's
//! cases. Exit 0 when every case passed and every check held, 1 when one did not, 2 for bad
//! input or an engine/AWS error (the outputs are still written with what ran).
//!
//! `--shard K/N` runs a stable slice: the (engine, scenario) cases sorted by engine name
//! then scenario name, every N-th from the K-th, so the N shards together run each case
//! exactly once and each gets a similar mix. Posture checks run in shard 1 only (every
//! engine of the run), so N shards check the posture once.

use crate::engine::EngineError;
use crate::errors::FileError;
use crate::topology::ProvisionError;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use crate::topology::provision::Via;
use clap::Args;

use crate::engine::EngineKind;
use crate::report::case::{Case, CaseStatus, Check, GateRun};
use crate::report::{html, junit, summary};
use crate::scenario::{self, RunOptions, Scenario};
use crate::topology::TopologySpec;

/// One shard of N (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl FromStr for Shard {
    type Err = GateError;

    fn from_str(s: &str) -> Result<Shard, GateError> {
        let bad = |why: &str| GateError::Shard {
            given: s.to_string(),
            why: why.to_string(),
        };
        let (k, n) = s.split_once('/').ok_or_else(|| bad("not K/N"))?;
        let k: u32 = k
            .trim()
            .parse()
            .map_err(|_| bad("K is not a whole number"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if n == 0 {
            return Err(bad("N must be at least 1"));
        }
        if k == 0 || k > n {
            return Err(bad("K must be between 1 and N"));
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Whether the `index`-th case of the sorted list is in this shard.
    pub fn takes(self, index: usize) -> bool {
        index % self.n as usize == (self.k - 1) as usize
    }
}

/// The gate's cases in their stable order: (engine, scenario) sorted by engine name, then
/// scenario name; `scenarios` are indices into the parsed list.
pub fn cases(engines: &[EngineKind], names: &[&str]) -> Vec<(EngineKind, usize)> {
    let mut engines = engines.to_vec();
    engines.sort_by_key(|e| e.name());
    engines.dedup();
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| names[i]);
    engines
        .iter()
        .flat_map(|&e| order.iter().map(move |&i| (e, i)))
        .collect()
}

/// The cases of `shard` (all of them without one).
pub fn slice(all: Vec<(EngineKind, usize)>, shard: Option<Shard>) -> Vec<(EngineKind, usize)> {
    match shard {
        None => all,
        Some(s) => all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| s.takes(*i))
            .map(|(_, c)| c)
            .collect(),
    }
}

fn default_out() -> PathBuf {
    crate::paths::repo_root().join("target").join("gate")
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// Engines to run on, comma-separated (instead of the global --engine).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "localstack,ministack"
    )]
    pub engines: Vec<EngineKind>,
    /// Scenario directory (its parent holds `tests/snapshots/`).
    #[arg(long, default_value_os_t = scenario::dir())]
    pub dir: PathBuf,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
    /// Run only shard K of N of the sorted (engine, scenario) cases, e.g. 1/2. Posture
    /// checks run in shard 1.
    #[arg(long, value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<Shard>().map_err(|e| e.to_string())))]
    pub shard: Option<Shard>,
    /// Where to write junit.xml, summary.md and report.html (created if missing).
    #[arg(long, default_value_os_t = default_out())]
    pub out: PathBuf,
    /// Only the posture checks, no scenarios.
    #[arg(long)]
    pub posture_only: bool,
    /// How the topology is provisioned: `direct` (the harness's SDK calls) or
    /// `cloudformation` (the templates of deploy/cloudformation/ with CreateStack; what the
    /// engine's CloudFormation does not apply is filled by direct calls, named in the output).
    #[arg(long, value_enum, default_value_t = Via::Direct, env = "HARNESS_VIA")]
    pub via: Via,
}

impl GateArgs {
    pub async fn run(self) -> anyhow::Result<i32> {
        match self.gate().await {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("error: {e}");
                Ok(e.exit_code())
            }
        }
    }

    async fn gate(self) -> Result<i32, GateError> {
        let started = Instant::now();
        if self.engines.is_empty() {
            return Err(GateError::NoEngines);
        }
        // Parse everything before any engine starts.
        let spec = TopologySpec::load(&self.topology)?;
        let mut scenarios = Vec::new();
        if !self.posture_only {
            let files =
                scenario::file::discover(&self.dir).map_err(|source| GateError::Discover {
                    dir: self.dir.clone(),
                    source,
                })?;
            for p in files {
                let s = Scenario::load(&p, &spec.categories)?;
                let base = spec.profile(&s.profile).ok_or_else(|| GateError::Profile {
                    path: p.clone(),
                    why: format!(
                        "unknown profile {:?} (profiles: {})",
                        s.profile,
                        spec.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                })?;
                s.timing
                    .apply(base)
                    .check()
                    .map_err(|why| GateError::Profile {
                        path: p.clone(),
                        why: format!("[timing] on profile {:?}: {why}", s.profile),
                    })?;
                scenarios.push(s);
            }
        }
        let root = self
            .dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(crate::paths::repo_root);
        let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        let all = cases(&self.engines, &names);
        let total = all.len();
        let selected = slice(all, self.shard);
        let posture = self.shard.is_none_or(|s| s.k == 1);
        let mut engines: Vec<EngineKind> = self.engines.clone();
        engines.sort_by_key(|e| e.name());
        engines.dedup();
        println!(
            "gate: {} of {total} cases{} on {}; posture checks {}",
            selected.len(),
            self.shard
                .map(|s| format!(" (shard {}/{})", s.k, s.n))
                .unwrap_or_default(),
            engines
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", "),
            if posture {
                "on each engine"
            } else {
                "in shard 1"
            }
        );

        let mut run = GateRun {
            shard: self.shard.map(|s| (s.k, s.n)),
            ..GateRun::default()
        };
        // The templates the run plays are the deploy artifact: the field's static checks
        // run on them (and on the Terraform module) once, in shard 1.
        if self.via == Via::Cloudformation && posture {
            let t = Instant::now();
            let deploy = crate::paths::repo_root().join("deploy");
            run.iac = tokio::task::spawn_blocking(move || crate::iac::check(&deploy))
                .await
                .map_err(|e| GateError::Iac(crate::iac::IacError::Install(e.to_string())))?
                .map_err(GateError::Iac)?;
            for f in &run.iac {
                println!(
                    "static check: {} {} {}",
                    f.tool.name(),
                    f.unit.display(),
                    if f.passed { "clean" } else { "FAILED" }
                );
                if !f.passed {
                    println!("{}", f.output);
                }
            }
            println!("static checks took {:.1}s", t.elapsed().as_secs_f64());
        }
        let mut fatal = None;
        'engines: for kind in engines {
            let mine: Vec<usize> = selected
                .iter()
                .filter(|(e, _)| *e == kind)
                .map(|(_, i)| *i)
                .collect();
            if mine.is_empty() && !posture {
                continue;
            }
            let t = Instant::now();
            let engine = match super::common::start_engine(
                kind,
                crate::deployed::FunctionsMode::InProcess,
                self.via,
            )
            .await
            {
                Ok(e) => e,
                Err(source) => {
                    fatal = Some(GateError::Engine {
                        engine: kind.name(),
                        source,
                    });
                    break;
                }
            };
            println!("{}", super::common::engine_ready_line(&engine, t.elapsed()));
            if posture {
                let t = Instant::now();
                match crate::posture::read::run(&engine, &spec, self.via).await {
                    Ok(checks) => {
                        print_checks(kind, &checks, t.elapsed().as_secs_f64());
                        run.checks.extend(checks);
                    }
                    Err(source) => {
                        fatal = Some(GateError::Posture {
                            engine: kind.name(),
                            source,
                        });
                        break;
                    }
                }
            }
            for i in mine {
                let opts = RunOptions {
                    via: self.via,
                    ..RunOptions::default()
                };
                // The case's log lines go with it (JUnit, report), not to the console.
                let capture = super::logs::Capture::start();
                let played =
                    super::common::play_judged(&engine, &spec, &root, &scenarios[i], &opts).await;
                let logs = capture.finish();
                let Some(mut case) = played else {
                    drop(engine);
                    return Ok(130);
                };
                case.logs = logs;
                print_case(&case);
                run.cases.push(case);
                if let Some(why) = engine.exited() {
                    fatal = Some(GateError::EngineExited {
                        engine: kind.name(),
                        why,
                    });
                    break 'engines;
                }
            }
        }
        run.wall = started.elapsed();

        std::fs::create_dir_all(&self.out).map_err(|source| GateError::Output {
            path: self.out.clone(),
            source,
        })?;
        let out = |name: &str| self.out.join(name);
        let written = [
            (out("junit.xml"), junit::write_run(&out("junit.xml"), &run)),
            (out("summary.md"), summary::write(&out("summary.md"), &run)),
            (out("report.html"), html::write(&out("report.html"), &run)),
        ];
        for (path, result) in written {
            result.map_err(|source| GateError::Output {
                path: path.clone(),
                source,
            })?;
            println!("wrote {}", path.display());
        }
        let failed = run
            .cases
            .iter()
            .filter(|c| c.status != CaseStatus::Passed)
            .count();
        let checks_failed = run.checks.iter().filter(|c| !c.passed).count();
        println!(
            "{} passed, {failed} failed ({} posture checks, {checks_failed} failed; {:.1}s)",
            run.cases.len() - failed,
            run.checks.len(),
            run.wall.as_secs_f64()
        );
        if let Some(e) = fatal {
            return Err(e);
        }
        Ok(if run.passed() { 0 } else { 1 })
    }
}

fn print_checks(kind: EngineKind, checks: &[Check], secs: f64) {
    let held = checks.iter().filter(|c| c.passed).count();
    for c in checks.iter().filter(|c| !c.passed) {
        println!(
            "FAIL posture {} on {kind}: {} {}: {}",
            c.id, c.resource, c.setting, c.detail
        );
    }
    println!(
        "{} posture on {kind}: {held} of {} checks held ({secs:.1}s)",
        if held == checks.len() { "PASS" } else { "FAIL" },
        checks.len()
    );
}

fn print_case(case: &Case) {
    println!(
        "{} {} on {} ({:.1}s)",
        case.status.label(),
        case.scenario,
        case.engine,
        case.time.as_secs_f64()
    );
    for p in &case.problems {
        println!("  {p}");
    }
    if let Some(d) = &case.diff {
        println!("{d}");
    }
    if case.status != CaseStatus::Passed && !case.logs.is_empty() {
        println!(
            "  {} log line(s) while it played: in junit.xml (<system-err>) and report.html",
            case.logs.lines().count()
        );
    }
}

/// Errors of `harness gate` that stop it before (or instead of) a verdict: bad input, an
/// engine that cannot start or host the topology, outputs that cannot be written. Each is
/// exit code 2 ([`GateError::exit_code`]); failed scenarios and checks are exit code 1 and
/// no error.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("--shard {given}: {why} (write K/N with 1 <= K <= N, e.g. --shard 1/2)")]
    Shard { given: String, why: String },
    #[error("--engines names no engine (e.g. --engines localstack,ministack)")]
    NoEngines,
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{dir}: cannot list the scenarios: {source}")]
    Discover {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Profile { path: PathBuf, why: String },
    #[error("starting {engine}: {source}")]
    Engine {
        engine: &'static str,
        source: EngineError,
    },
    #[error("{engine} cannot host the topology for the posture checks: {source}")]
    Posture {
        engine: &'static str,
        source: ProvisionError,
    },
    #[error("the {engine} engine stopped during the gate: {why}")]
    EngineExited { engine: &'static str, why: String },
    #[error(transparent)]
    Iac(crate::iac::IacError),
    #[error("writing {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl GateError {
    /// The process exit code: 2, bad input or an engine/AWS error.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("1/1", 1, 1)]
    #[case("2/3", 2, 3)]
    #[case(" 3 / 3 ", 3, 3)]
    fn a_shard_is_k_of_n(#[case] given: &str, #[case] k: u32, #[case] n: u32) {
        assert_eq!(given.parse::<Shard>().unwrap(), Shard { k, n });
    }

    #[rstest]
    #[case("2", "not K/N")]
    #[case("a/2", "K is not a whole number")]
    #[case("1/b", "N is not a whole number")]
    #[case("1/0", "N must be at least 1")]
    #[case("0/2", "K must be between 1 and N")]
    #[case("3/2", "K must be between 1 and N")]
    #[case("-1/2", "K is not a whole number")]
    fn a_bad_shard_says_why(#[case] given: &str, #[case] why: &str) {
        let e = given.parse::<Shard>().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains(why) && text.contains(given), "{text}");
    }

    #[test]
    fn cases_are_sorted_by_engine_then_scenario() {
        let names = ["poison-pill", "happy-path"];
        let all = cases(&[EngineKind::Ministack, EngineKind::Localstack], &names);
        assert_eq!(
            all,
            vec![
                (EngineKind::Localstack, 1),
                (EngineKind::Localstack, 0),
                (EngineKind::Ministack, 1),
                (EngineKind::Ministack, 0),
            ]
        );
    }

    /// The shards of N are disjoint, together run every case once, and differ in size by
    /// at most one, whatever N.
    #[rstest]
    fn shards_partition_the_cases(#[values(1, 2, 3, 5, 8)] n: u32) {
        let names: Vec<String> = (0..39).map(|i| format!("s{i:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let all = cases(&[EngineKind::Localstack, EngineKind::Ministack], &names);
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        for k in 1..=n {
            let part = slice(all.clone(), Some(Shard { k, n }));
            sizes.push(part.len());
            seen.extend(part);
        }
        seen.sort_by_key(|(e, i)| (e.name(), *i));
        let mut expected = all.clone();
        expected.sort_by_key(|(e, i)| (e.name(), *i));
        assert_eq!(seen, expected);
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        // Stable: the same shard twice is the same slice.
        assert_eq!(
            slice(all.clone(), Some(Shard { k: 1, n })),
            slice(all, Some(Shard { k: 1, n }))
        );
    }
}

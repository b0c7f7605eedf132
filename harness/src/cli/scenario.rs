//! `harness scenario list`, `harness scenario check FILE...` and
//! `harness scenario run NAME | --all`.

use std::path::PathBuf;
use std::time::Instant;

use crate::topology::provision::Via;
use clap::{Args, Subcommand};

use crate::deployed::{self, EnvOverride, FunctionsMode};
use crate::engine::EngineKind;
use crate::report::case::{Case, CaseStatus, GateRun};
use crate::report::{html, junit};
use crate::scenario::{self, RunOptions, Scenario};
use crate::topology::TopologySpec;

#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// List the scenario files with their descriptions.
    List(ListArgs),
    /// Run scenarios and compare each outcome with its reviewed snapshot.
    Run(RunArgs),
    /// Parse and check scenario files without starting an engine (exit 2 if any is invalid).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Scenario directory.
    #[arg(long, default_value_os_t = scenario::dir())]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario name (file stem in scenarios/). Omit with --all.
    #[arg(required_unless_present = "all")]
    pub name: Option<String>,
    /// Run every scenario.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
    /// Scenario directory.
    #[arg(long, default_value_os_t = scenario::dir())]
    pub dir: PathBuf,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
    /// Leave the topology in place after the run (its suffix is printed).
    #[arg(long)]
    pub keep: bool,
    /// Print the whole transcript, not only the diff.
    #[arg(long)]
    pub show: bool,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Also write the HTML report here: one self-contained page with each scenario's
    /// status, per-object timeline, queue depths, alerts and snapshot diff.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Where the functions run: `in-process` (the handlers' library code under the
    /// harness's event source mapping, on every engine), or `deployed` (the x86_64 zips of
    /// `make package` created in the engine's Lambda service behind the engine's own event
    /// source mappings; MiniStack only).
    #[arg(
        long,
        value_enum,
        default_value = "in-process",
        env = "HARNESS_FUNCTIONS"
    )]
    pub functions: FunctionsMode,
    /// With `--functions deployed`: set an environment variable of a function over the
    /// topology's, as FUNCTION:NAME=VALUE (FUNCTION is validator or notifier); repeatable.
    #[arg(long = "function-env", value_name = "FUNCTION:NAME=VALUE")]
    pub function_env: Vec<EnvOverride>,
    /// How the topology is provisioned: `direct` (the harness's SDK calls) or
    /// `cloudformation` (the templates of deploy/cloudformation/ with CreateStack; what the
    /// engine's CloudFormation does not apply is filled by direct calls, named in the output).
    #[arg(long, value_enum, default_value_t = Via::Direct, env = "HARNESS_VIA")]
    pub via: Via,
}

impl ScenarioCommand {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        match self {
            ScenarioCommand::List(a) => {
                let spec = TopologySpec::load(&TopologySpec::default_path())?;
                for path in scenario::file::discover(&a.dir)? {
                    match Scenario::load(&path, &spec.categories) {
                        Ok(s) => println!("{:<28} {}", s.name, s.description),
                        Err(e) => println!("{:<28} INVALID: {e}", path.display()),
                    }
                }
                Ok(0)
            }
            ScenarioCommand::Run(a) => a.run(kind).await,
            ScenarioCommand::Check(a) => a.run(),
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Topology file (its categories are the ones a scenario may name).
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

impl CheckArgs {
    /// Prints `ok FILE` for each valid file and each error (`FILE:LINE:COLUMN: ...`) on
    /// stderr; 2 when any file is invalid. Never starts an engine.
    pub fn run(self) -> anyhow::Result<i32> {
        let spec = TopologySpec::load(&self.topology)?;
        let mut invalid = 0;
        for path in &self.files {
            match Scenario::load(path, &spec.categories).and_then(|s| {
                s.check_against(&spec)?;
                Ok(s)
            }) {
                Ok(s) => println!("ok {} ({} steps)", path.display(), s.steps.len()),
                Err(e) => {
                    eprintln!("error: {e}");
                    invalid += 1;
                }
            }
        }
        Ok(if invalid == 0 { 0 } else { 2 })
    }
}

impl RunArgs {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        let spec = TopologySpec::load(&self.topology)?;
        let paths = if self.all {
            scenario::file::discover(&self.dir)?
        } else {
            vec![scenario::find(
                &self.dir,
                self.name.as_deref().unwrap_or_default(),
            )?]
        };
        // Parse everything first: a bad file fails fast, before any engine starts.
        let mut scenarios = Vec::new();
        for p in &paths {
            let s = Scenario::load(p, &spec.categories)?;
            s.check_against(&spec)?;
            scenarios.push(s);
        }
        let root = self
            .dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(crate::paths::repo_root);

        if !self.function_env.is_empty() && self.functions != FunctionsMode::Deployed {
            anyhow::bail!(
                "--function-env sets variables of deployed functions: add --functions deployed"
            );
        }
        if self.functions == FunctionsMode::Deployed {
            // Before any engine starts: an engine that cannot run them, or no zips.
            deployed::check_kind(kind)?;
            crate::package::locate(crate::package::Arch::X86_64)?;
        }
        eprintln!("harness: starting {kind} ...");
        let started = Instant::now();
        let engine = super::common::start_engine(kind, self.functions, self.via).await?;
        println!(
            "{}",
            super::common::engine_ready_line(&engine, started.elapsed())
        );

        let mut results = Vec::new();
        for s in &scenarios {
            let opts = RunOptions {
                keep: self.keep,
                suffix: None,
                functions: self.functions,
                function_env: self.function_env.clone(),
                via: self.via,
                templates: None,
            };
            let Some(case) = super::common::play_judged(&engine, &spec, &root, s, &opts).await
            else {
                drop(engine);
                return Ok(130);
            };
            self.print(&case);
            results.push(case);
        }
        let failed = results
            .iter()
            .filter(|c| c.status != CaseStatus::Passed)
            .count();
        if let Some(path) = &self.junit {
            junit::write(path, &results)?;
        }
        let summary = format!(
            "{} passed, {} failed ({} on {kind}, {:.1}s)",
            results.len() - failed,
            failed,
            if results.len() == 1 {
                "1 scenario".to_string()
            } else {
                format!("{} scenarios", results.len())
            },
            started.elapsed().as_secs_f64()
        );
        if let Some(path) = &self.report {
            let run = GateRun {
                cases: results,
                checks: Vec::new(),
                iac: Vec::new(),
                shard: None,
                wall: started.elapsed(),
            };
            html::write(path, &run)
                .map_err(|e| anyhow::anyhow!("writing the report {}: {e}", path.display()))?;
            println!("report: {}", path.display());
        }
        println!("{summary}");
        Ok(if failed == 0 { 0 } else { 1 })
    }

    /// The console lines of one case: PASS/FAIL/ERROR with timings, the problems, the diff.
    fn print(&self, case: &Case) {
        let Some(outcome) = &case.outcome else {
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
            return;
        };
        let tm = &outcome.timings;
        let timing_line = format!(
            "provision {:.2}s, steps {:.2}s, settle {:.2}s, teardown {:.2}s, total {:.2}s",
            tm.provision.as_secs_f64(),
            tm.steps.as_secs_f64(),
            tm.settle.as_secs_f64(),
            tm.teardown.as_secs_f64(),
            tm.total.as_secs_f64()
        );
        if self.show || (self.name.is_some() && case.status == CaseStatus::Passed) {
            println!(
                "---- {} outcome ----\n{}",
                case.scenario,
                outcome.transcript.trim_end()
            );
            println!("----");
        }
        println!(
            "{} {} on {} ({timing_line})",
            case.status.label(),
            case.scenario,
            outcome.engine
        );
        if case.status == CaseStatus::Passed {
            println!("  replication: {}", outcome.replication);
            return;
        }
        for p in &case.problems {
            println!("  {p}");
        }
        if let Some(d) = &case.diff {
            println!("{d}");
            println!(
                "  If the new outcome is right, review and accept it with `cargo test --features e2e` then `cargo insta review`."
            );
        }
        if self.keep {
            println!("  topology kept: suffix {}", outcome.suffix);
        }
    }
}

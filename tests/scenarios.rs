//! End to end: every file in `scenarios/` becomes a test case on every engine (by
//! discovery, not by a list), played against the real validator and notifier and compared
//! with its reviewed snapshot `tests/snapshots/scenarios__<name>.snap`. The same snapshot
//! serves every engine: transcripts are normalised to be engine-independent.
//!
//! The core scenarios ([`CORE`]) are played a second time on each engine with the topology
//! provisioned from the CloudFormation templates (`--via cloudformation`), against the same
//! snapshots: the template the gate plays is the one a team deploys.
//!
//! Engines: `E2E_ENGINES` (comma-separated, default `localstack,ministack`). Each engine is
//! started once for the whole run and stops when the test process exits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use harness::engine::{Engine, EngineKind, StartOptions};
use harness::probe;
use harness::scenario::{self, RunOptions, Scenario};
use harness::topology::provision::Via;
use harness::topology::TopologySpec;

mod common;
use common::runtime;

type Started = Result<&'static Engine, String>;

/// Starts each engine once per provisioning path (the first test that needs it waits; the
/// others share it). A MiniStack serves CloudFormation only with its Lambda service.
fn engine(kind: EngineKind, via: Via) -> Started {
    static ENGINES: OnceLock<Mutex<HashMap<(EngineKind, Via), Started>>> = OnceLock::new();
    let map = ENGINES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().expect("engine map");
    let opts = StartOptions {
        lambda: via == Via::Cloudformation && kind == EngineKind::Ministack,
        ..StartOptions::default()
    };
    map.entry((kind, via))
        .or_insert_with(|| {
            runtime()
                .block_on(probe::start(kind, &opts))
                .map(|e| &*Box::leak(Box::new(e))) // stopped at exit: the atexit hooks
                .map_err(|e| e.to_string())
        })
        .clone()
}

fn enabled(kind: EngineKind) -> bool {
    std::env::var("E2E_ENGINES")
        .unwrap_or_else(|_| "localstack,ministack".into())
        .split(',')
        .any(|e| e.trim() == kind.name())
}

fn run_on(kind: EngineKind, path: &Path, via: Via) -> datatest_stable::Result<()> {
    if !enabled(kind) {
        eprintln!(
            "{kind} not in E2E_ENGINES: {} not run on it",
            path.display()
        );
        return Ok(());
    }
    let spec = TopologySpec::load(&TopologySpec::default_path())?;
    let scenario = Scenario::load(path, &spec.categories)?;
    let engine = engine(kind, via)?;
    let outcome = runtime().block_on(scenario::run(
        engine,
        &spec,
        &scenario,
        &RunOptions {
            via,
            ..RunOptions::default()
        },
    ))?;
    eprintln!(
        "{} on {kind} (via {via}): {:.2}s total (provision {:.2}s, steps {:.2}s, settle {:.2}s); replication {}",
        scenario.name,
        outcome.timings.total.as_secs_f64(),
        outcome.timings.provision.as_secs_f64(),
        outcome.timings.steps.as_secs_f64(),
        outcome.timings.settle.as_secs_f64(),
        outcome.replication
    );
    if !outcome.unmet.is_empty() {
        return Err(format!(
            "{}: expectations not met on {kind}:\n  {}\n--- outcome ---\n{}",
            path.display(),
            outcome.unmet.join("\n  "),
            outcome.transcript
        )
        .into());
    }
    insta::with_settings!({
        snapshot_path => "snapshots",
        omit_expression => true,
        description => format!("scenario {}", scenario.name),
    }, {
        insta::assert_snapshot!(scenario.name.as_str(), outcome.transcript);
    });
    Ok(())
}

fn localstack(path: &Path) -> datatest_stable::Result<()> {
    run_on(EngineKind::Localstack, path, Via::Direct)
}

fn ministack(path: &Path) -> datatest_stable::Result<()> {
    run_on(EngineKind::Ministack, path, Via::Direct)
}

fn localstack_cloudformation(path: &Path) -> datatest_stable::Result<()> {
    run_on(EngineKind::Localstack, path, Via::Cloudformation)
}

fn ministack_cloudformation(path: &Path) -> datatest_stable::Result<()> {
    run_on(EngineKind::Ministack, path, Via::Cloudformation)
}

/// The core scenarios, also played on the template-provisioned topology.
const CORE: &str =
    r"^(happy-path|replication-lag|poison-pill|corrupt-replica|async-replication)\.toml$";

datatest_stable::harness! {
    { test = localstack, root = "scenarios", pattern = r"\.toml$" },
    { test = ministack, root = "scenarios", pattern = r"\.toml$" },
    { test = localstack_cloudformation, root = "scenarios", pattern = CORE },
    { test = ministack_cloudformation, root = "scenarios", pattern = CORE },
}

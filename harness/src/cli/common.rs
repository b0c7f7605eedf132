//! What the subcommands share: finding or starting the engine they play on, the line that
//! says where it runs, and playing one scenario judged against its snapshot.
//!
//! Floor 8 (the command's ground): imports the library's floors, no subcommand.

use crate::engine::EngineKind;
use crate::up::{self, UpState};

/// Attaches to an engine that is already running: one started by `harness engine up`, or
/// the external endpoint. Commands that leave state behind need one that outlives them.
pub async fn running_engine(kind: EngineKind) -> anyhow::Result<crate::engine::Engine> {
    if let Some(st) = live(kind) {
        return Ok(crate::engine::Engine::attached(
            kind,
            &st.engine_endpoint,
            st.pid,
        ));
    }
    if kind == EngineKind::External {
        return Ok(crate::probe::start(kind, &Default::default()).await?);
    }
    match crate::engine::state::attach(kind).await {
        Some(e) => Ok(e),
        None => anyhow::bail!(
            "no running {kind} engine: start one with `harness --engine {kind} engine up` \
             (or use --engine external with AWS_ENDPOINT_URL)"
        ),
    }
}

/// Starts `kind` for a command that plays on it, with the engine's install and start
/// progress on stderr; its Lambda service (and, on MiniStack, CloudFormation, which can run
/// functions) only for deployed functions or `--via cloudformation`.
pub async fn start_engine(
    kind: EngineKind,
    functions: crate::deployed::FunctionsMode,
    via: crate::topology::provision::Via,
) -> Result<crate::engine::Engine, crate::engine::EngineError> {
    crate::probe::start(
        kind,
        &crate::engine::StartOptions {
            verbose: true,
            lambda: functions == crate::deployed::FunctionsMode::Deployed
                || via == crate::topology::provision::Via::Cloudformation,
            ..Default::default()
        },
    )
    .await
}

/// The line saying where the engine runs and how long it took to be ready (and to install,
/// the first time).
pub fn engine_ready_line(engine: &crate::engine::Engine, took: std::time::Duration) -> String {
    format!(
        "engine: {} at {} ({}; ready in {:.2}s{})",
        engine.kind,
        engine.endpoint,
        engine.how,
        took.as_secs_f64(),
        engine
            .install_time
            .map(|t| format!(", first install {:.1}s", t.as_secs_f64()))
            .unwrap_or_default()
    )
}

/// Plays one scenario and judges it against its snapshot; `None` when Ctrl-C came first
/// (the caller stops the engine and exits 130).
pub async fn play_judged(
    engine: &crate::engine::Engine,
    spec: &crate::topology::TopologySpec,
    root: &std::path::Path,
    scenario: &crate::scenario::Scenario,
    opts: &crate::scenario::RunOptions,
) -> Option<crate::report::case::Case> {
    let started = std::time::Instant::now();
    tokio::select! {
        r = crate::scenario::run(engine, spec, scenario, opts) => Some(
            crate::report::case::Case::judge(root, scenario, engine.kind, r, started.elapsed()),
        ),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("harness: interrupted; stopping the engine");
            None
        }
    }
}

/// The state of the running `up`, for other commands.
pub fn live(kind: EngineKind) -> Option<UpState> {
    up::read_live(kind.name())
}

//! `harness engine up|down|status`.

use clap::Subcommand;

use crate::engine::{self, state, EngineKind, StartOptions};
use crate::probe;

#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Install (first run) and start the engine in the background on a free loopback port.
    Up(UpArgs),
    /// Stop the engine started by `engine up`.
    Down,
    /// Show whether the engine runs, where, and whether it is healthy.
    Status,
    /// Measure what the engine does (events, keys, replication, checksums, ...) by
    /// provisioning the topology on it; exit 2 naming the first call it cannot serve.
    Probe(ProbeArgs),
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Turn on the engine's own Lambda service (MiniStack), for `--functions deployed`
    /// runs that attach to it. Off by default: MiniStack runs any local client's
    /// `provided.*` function as you.
    #[arg(long)]
    pub lambda: bool,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Topology file.
    #[arg(long, default_value_os_t = crate::topology::TopologySpec::default_path())]
    pub topology: std::path::PathBuf,
}

impl EngineCommand {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        if kind == EngineKind::External
            && !matches!(self, EngineCommand::Status | EngineCommand::Probe(_))
        {
            anyhow::bail!("the external engine is started and stopped by you, not by the harness");
        }
        match self {
            EngineCommand::Probe(a) => {
                let spec = crate::topology::TopologySpec::load(&a.topology)?;
                let e = probe::start(
                    kind,
                    &StartOptions {
                        skip_probe: true,
                        ..StartOptions::default()
                    },
                )
                .await?;
                let report = crate::probe::probe(&e, &spec).await;
                print!("{}", report.render());
                if report.cannot_host.is_some() {
                    return Ok(2);
                }
                if !report.assumptions_hold() {
                    println!(
                        "  the harness's recorded capabilities of {kind} differ from this measurement: update `Flavor::capabilities`"
                    );
                    return Ok(1);
                }
                Ok(0)
            }
            EngineCommand::Up(a) => {
                if let Some(e) = state::attach(kind).await {
                    if e.lambda || !a.lambda {
                        println!("{kind} already running at {} ({})", e.endpoint, e.how);
                        return Ok(0);
                    }
                    anyhow::bail!("{kind} already runs at {} without its Lambda service: stop it (`harness --engine {kind} engine down`) and start it again with --lambda", e.endpoint);
                }
                let e = probe::start(
                    kind,
                    &StartOptions {
                        verbose: true,
                        detached: true,
                        lambda: a.lambda,
                        ..StartOptions::default()
                    },
                )
                .await?;
                let Some(pid) = e.pid() else {
                    anyhow::bail!("{kind} started without a process of its own to record (pid unknown); stop it yourself");
                };
                state::write(&state::EngineState {
                    kind,
                    endpoint: e.endpoint.clone(),
                    pid,
                    log: e.log.clone(),
                    lambda: e.lambda,
                })?;
                println!("{kind} running at {} ({})", e.endpoint, e.how);
                if let Some(t) = e.install_time {
                    println!("  first install took {:.1}s", t.as_secs_f64());
                }
                println!("  started in {:.2}s", e.start_time.as_secs_f64());
                if let Some(log) = &e.log {
                    println!("  log: {}", log.display());
                }
                println!("  export AWS_ENDPOINT_URL={}", e.endpoint);
                println!("  stop it with: harness --engine {kind} engine down");
                Ok(0)
            }
            EngineCommand::Down => match state::stop(kind) {
                Some(st) => {
                    println!("{kind} at {} stopped (pid {})", st.endpoint, st.pid);
                    Ok(0)
                }
                None => {
                    println!("no {kind} engine was started by `engine up`");
                    Ok(0)
                }
            },
            EngineCommand::Status => {
                if kind == EngineKind::External {
                    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
                    return match engine::identify(&endpoint).await {
                        Ok(f) => {
                            println!("external endpoint {endpoint} answers (behaves as {f:?})");
                            Ok(0)
                        }
                        Err(e) => {
                            println!("{e}");
                            Ok(1)
                        }
                    };
                }
                match state::read(kind) {
                    None => {
                        println!("{kind}: not running (start it with `harness --engine {kind} engine up`)");
                        Ok(1)
                    }
                    Some(st) => {
                        let alive = engine::pid::pid_alive(st.pid);
                        let health = engine::healthy(kind, &st.endpoint).await;
                        println!(
                            "{kind}: pid {} {}, endpoint {}, {}",
                            st.pid,
                            if alive { "alive" } else { "gone" },
                            st.endpoint,
                            match &health {
                                Ok(()) => "healthy".to_string(),
                                Err(e) => format!("unhealthy: {e}"),
                            }
                        );
                        if let Some(log) = st.log {
                            println!("  log: {}", log.display());
                        }
                        Ok(if alive && health.is_ok() { 0 } else { 1 })
                    }
                }
            }
        }
    }
}

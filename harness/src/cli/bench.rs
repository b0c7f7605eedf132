//! `harness bench validator | e2e | layer | replicate | faults`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::engine::{self, EngineKind, StartOptions};
use crate::probe;
use crate::topology::TopologySpec;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Validator throughput under the event source mapping vs the engine's bound.
    Validator(ValidatorArgs),
    /// Upload-to-validated latency of the whole pipeline, and the fidelity layer's share.
    E2e(E2eArgs),
    /// One large object streamed through the fidelity layer and direct: times, peak RSS.
    Layer(LayerArgs),
    /// One large single-part and one large multipart version through the replicator:
    /// times and peak RSS (the copy streams, holding at most one part).
    Replicate(LayerArgs),
    /// The fault machinery's own cost per request, idle and armed (no engine needed).
    Faults(FaultsArgs),
}

#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// Synthetic requests per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u32,
}

#[derive(Debug, Args)]
pub struct E2eArgs {
    /// Objects to upload.
    #[arg(long, default_value_t = 1000)]
    pub objects: usize,
    /// Validator pollers.
    #[arg(long, default_value_t = 4)]
    pub pollers: usize,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

#[derive(Debug, Args)]
pub struct LayerArgs {
    /// Object size in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mb: u64,
    /// Topology file (for the regions).
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

#[derive(Debug, Args)]
pub struct ValidatorArgs {
    /// Objects per round.
    #[arg(long, default_value_t = 300)]
    pub objects: usize,
    /// Poller counts to measure the validator with (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub pollers: Vec<usize>,
    /// Concurrency levels of the plain SDK loop (comma-separated); the best is the bound.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub concurrency: Vec<usize>,
    /// Install a fault that matches nothing in every fidelity layer, so every request goes
    /// through the fault machinery (compare with a run without it).
    #[arg(long)]
    pub armed_fault: bool,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

impl BenchCommand {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        let report = match self {
            BenchCommand::Validator(a) => {
                let (spec, engine) = prepare(&a.topology, kind).await?;
                let plan = crate::bench::ValidatorPlan {
                    objects: a.objects,
                    pollers: a.pollers,
                    concurrencies: a.concurrency,
                    armed_fault: a.armed_fault,
                };
                crate::bench::validator(&engine, &spec, &plan)
                    .await
                    .map(|r| r.render())
            }
            BenchCommand::E2e(a) => {
                let (spec, engine) = prepare(&a.topology, kind).await?;
                crate::bench::e2e(&engine, &spec, a.objects, a.pollers)
                    .await
                    .map(|r| r.render())
            }
            BenchCommand::Replicate(a) => {
                let (spec, engine) = prepare(&a.topology, kind).await?;
                crate::bench::layer::replicate(&engine, &spec, a.size_mb << 20)
                    .await
                    .map(|r| r.render())
            }
            BenchCommand::Faults(a) => Ok(crate::fidelity::faults::bench(a.requests).await),
            BenchCommand::Layer(a) => {
                let (spec, engine) = prepare(&a.topology, kind).await?;
                crate::bench::layer::layer(&engine, &spec, a.size_mb << 20)
                    .await
                    .map(|r| r.render())
            }
        };
        print!("{}", report.map_err(|e| anyhow::anyhow!(e))?);
        Ok(0)
    }
}

/// The topology and a started (or attached) engine, announced on stderr.
async fn prepare(
    topology: &std::path::Path,
    kind: EngineKind,
) -> anyhow::Result<(TopologySpec, engine::Engine)> {
    let spec = TopologySpec::load(topology)?;
    let engine = probe::start(kind, &StartOptions::default()).await?;
    eprintln!(
        "harness: {} at {} ({})",
        engine.kind, engine.endpoint, engine.how
    );
    Ok((spec, engine))
}

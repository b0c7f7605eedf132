//! `harness bench validator`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::engine::{self, EngineKind, StartOptions};
use crate::topology::TopologySpec;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Validator throughput under the event source mapping vs the engine's bound.
    Validator(ValidatorArgs),
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
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

impl BenchCommand {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        match self {
            BenchCommand::Validator(a) => {
                let spec = TopologySpec::load(&a.topology)?;
                let engine = engine::start(kind, &StartOptions::default()).await?;
                eprintln!(
                    "harness: {} at {} ({})",
                    engine.kind, engine.endpoint, engine.how
                );
                let result =
                    crate::bench::validator(&engine, &spec, a.objects, &a.pollers, &a.concurrency)
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                print!("{}", result.render());
                Ok(0)
            }
        }
    }
}

//! The `harness` command: one module per subcommand, each a clap `Args` with `run()`.
//!
//! Floor 8: may import every floor.

pub mod bench;
pub mod common;
pub mod engine;
pub mod fuzz;
pub mod gate;
pub mod invoke;
pub mod logs;
pub mod package;
pub mod provision;
pub mod redrive;
pub mod scenario;
pub mod template;
pub mod up;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::EngineKind;

/// Local-first harness for the event-driven S3 backup system: runs the whole topology on a
/// local AWS engine with the real checksum-validator and failure-notifier, and plays
/// scenario files whose outcomes are compared with reviewed snapshots.
#[derive(Debug, Parser)]
#[command(name = "harness", version, propagate_version = true)]
pub struct Cli {
    /// Engine to use: localstack (default; Docker when available, else host mode),
    /// ministack (host mode), or external (AWS_ENDPOINT_URL).
    #[arg(
        long,
        global = true,
        env = "ENGINE",
        value_enum,
        default_value = "localstack"
    )]
    pub engine: EngineKind,

    /// Log format on stderr: text for people, json for machines. RUST_LOG sets the level.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Allow `--engine external` at an endpoint that is not on this machine (a real
    /// account). Without it the harness refuses to provision, tear down or run anything
    /// there; with it, it still deletes and reconfigures only what carries its own run tags.
    #[arg(long, global = true, env = "HARNESS_ALLOW_REMOTE")]
    pub allow_remote: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, stop or inspect a long-running engine (shared by later commands).
    #[command(subcommand)]
    Engine(engine::EngineCommand),
    /// Provision the backup topology on the running engine (idempotent).
    Provision(provision::ProvisionArgs),
    /// Remove everything a provisioned topology created.
    Teardown(provision::TeardownArgs),
    /// List or run scenarios.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Move every message from one queue to another (the seed's DLQ redrive).
    Redrive(redrive::RedriveArgs),
    /// Run the whole backup system locally until Ctrl-C, for any AWS client.
    Up(up::UpArgs),
    /// Queue depths, the last decisions and alerts of the running `harness up`.
    Status(up::StatusArgs),
    /// Every alert the running `harness up` has received, in full.
    Alerts(up::AlertsArgs),
    /// Benchmarks that print figures (nothing is asserted).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Play generated workloads with faults and check the invariants after each.
    Fuzz(fuzz::FuzzArgs),
    /// The CI pre-deploy gate: every scenario on each engine and the posture checks;
    /// writes junit.xml, summary.md and report.html (exit 0 pass, 1 fail, 2 bad input or
    /// engine error).
    Gate(gate::GateArgs),
    /// Build the functions' deployment zips (cargo lambda, x86_64 and arm64) and print
    /// each zip's size and SHA-256.
    Package(package::PackageArgs),
    /// Write the topology's CloudFormation templates (deploy/cloudformation/), or check
    /// that the committed ones match the topology file.
    Template(template::TemplateArgs),
    /// Send one event to a deployed function (the real binary, through the engine's Invoke
    /// API) and print its response.
    Invoke(invoke::InvokeArgs),
}

/// The log filter when `RUST_LOG` is unset: warnings, without the S3 SDK's one on every
/// `HeadObject` of a multipart object (the validator and the replicator read its composite
/// checksum as a value; see [`checksum_validator::DEFAULT_LOG_FILTER`]).
pub const DEFAULT_LOG_FILTER: &str = "warn,aws_sdk_s3::http_response_checksum=error";

/// Sets up logging to stderr (or a gate case's capture, [`logs`]); colours only on a terminal.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(logs::ansi())
        .with_writer(logs::LogSink);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    crate::engine::allow_remote(cli.allow_remote);
    match cli.command {
        Command::Engine(c) => c.run(cli.engine).await,
        Command::Provision(a) => a.run(cli.engine).await,
        Command::Teardown(a) => a.run(cli.engine).await,
        Command::Scenario(c) => c.run(cli.engine).await,
        Command::Redrive(a) => a.run(cli.engine).await,
        Command::Bench(c) => c.run(cli.engine).await,
        Command::Fuzz(a) => a.run(cli.engine).await,
        Command::Gate(a) => a.run().await,
        Command::Package(a) => a.run().await,
        Command::Template(a) => a.run().await,
        Command::Invoke(a) => a.run(cli.engine).await,
        Command::Up(a) => {
            a.run(cli.engine, matches!(cli.log_format, LogFormat::Json))
                .await
        }
        Command::Status(a) => a.run(cli.engine).await,
        Command::Alerts(a) => a.run(cli.engine).await,
    }
}

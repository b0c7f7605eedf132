//! The `autobackup` command line, cargo-lambda style: one module per command, each a clap
//! `Args` struct with an `async fn run()`; [`common`] holds the flags they share, this module
//! the dispatcher that turns errors into exit codes.
//!
//! Floor 11: may import modules of floors 0 to 10 only; it imports `cli::backup`, `cli::bench`,
//! `cli::common`, `cli::cost`, `cli::restore`, `errors`, `logging`, `signals`.

pub mod backup;
pub mod bench;
pub mod common;
pub mod cost;
pub mod restore;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::errors::exit_code_help;
use crate::signals::{or_cancelled, Cancel, GRACE};
pub use common::{
    non_negative_f64, notify_failure, positive_f64, AnomalyArgs, BucketArgs, Context, FailedRun,
    RecordArgs,
};

const ABOUT: &str =
    "Backs up a directory into S3 as one streamed, checksummed tar.gz, rotates old backups, \
restores them with verification and analyses the bucket's storage cost.";

const AFTER_HELP: &str = "Environment: AWS_ENDPOINT_URL (local engine), AWS_REGION, AWS credentials (standard SDK chain), \
AUTOBACKUP_BUCKET, AUTOBACKUP_BUCKET_OWNER, SNS_TOPIC_ARN, AUTOBACKUP_HISTORY, AUTOBACKUP_LOG, AUTOBACKUP_STATE_DIR, RUST_LOG.";

#[derive(Parser, Debug)]
#[command(name = "autobackup", version, about = ABOUT, after_help = after_help())]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

fn after_help() -> String {
    format!("{}\n{AFTER_HELP}", exit_code_help())
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Log file, appended to (timestamped lines; the console gets the same lines on stderr).
    /// Default: $AUTOBACKUP_STATE_DIR/autobackup.log, else ~/.local/state/autobackup/autobackup.log.
    #[arg(long, global = true, env = "AUTOBACKUP_LOG", value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Debug-level logging (RUST_LOG overrides either way).
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Stream a compressed tar of a directory into S3, rotate, record history, detect anomalies, notify.
    #[command(after_help = after_help())]
    Backup(backup::Backup),
    /// Download a backup, verify its checksum and unpack it into a directory.
    #[command(after_help = after_help())]
    Restore(restore::Restore),
    /// Storage per class, monthly cost and a 12-month lifecycle projection of a bucket.
    #[command(after_help = after_help())]
    Cost(cost::Cost),
    /// Generate a tree, back it up and compare with `tar czf` + one SDK upload (prints figures).
    #[command(after_help = after_help())]
    Bench(bench::Bench),
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let log_file = cli
        .global
        .log_file
        .clone()
        .unwrap_or_else(crate::logging::default_log_file);
    if let Err(e) = crate::logging::init(&log_file, cli.global.verbose) {
        eprintln!("error: {e}");
        return e.exit_code();
    }
    let ctx = Context { log_file };
    // Handlers first, so that no signal stops the command without its cleanup.
    let mut signals = match crate::signals::forward() {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!("{e}; a signal will stop the agent without cleaning up");
            tokio::sync::mpsc::channel(1).1
        }
    };
    let cancel = Cancel::new();
    let command = async {
        match &cli.command {
            Command::Backup(c) => c.run(&ctx, &cancel).await,
            Command::Restore(c) => c.run(&ctx, &cancel).await,
            // Nothing to clean up: they simply stop.
            Command::Cost(c) => or_cancelled(c.run(&ctx), &cancel).await,
            Command::Bench(c) => or_cancelled(c.run(&ctx), &cancel).await,
        }
    };
    let result = crate::signals::supervise(command, &cancel, &mut signals, GRACE).await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(stage = e.stage(), exit_code = e.exit_code(), "{e}");
            e.exit_code()
        }
    }
}

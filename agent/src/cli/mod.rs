//! The `autobackup` command line, cargo-lambda style: one module per command, each a clap
//! `Args` struct with an `async fn run()`; this module holds the flags they share and the
//! dispatcher that turns errors into exit codes.

pub mod backup;
pub mod bench;
pub mod cost;
pub mod restore;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::errors::{exit_code_help, AgentError};
use crate::signals::{or_cancelled, Cancel, GRACE};

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

/// The bucket every S3 command works on.
#[derive(Args, Debug, Clone)]
pub struct BucketArgs {
    /// Target bucket, e.g. autobackup-documents-primary-dev-<suffix>. Never guessed by listing.
    #[arg(long, env = "AUTOBACKUP_BUCKET", value_name = "NAME")]
    pub bucket: String,
}

/// History file and SNS topic.
#[derive(Args, Debug, Clone, Default)]
pub struct RecordArgs {
    /// History file (JSON lines, one record per run; see the history module docs).
    /// Default: $AUTOBACKUP_STATE_DIR/history.jsonl, else ~/.local/state/autobackup/history.jsonl.
    #[arg(long, env = "AUTOBACKUP_HISTORY", value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// SNS topic for notifications. Without it notifications are only logged (and the log says so).
    #[arg(long, env = "SNS_TOPIC_ARN", value_name = "ARN")]
    pub topic_arn: Option<String>,
}

impl RecordArgs {
    pub fn history_path(&self) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(crate::history::default_path)
    }
}

/// Anomaly thresholds shared by `backup` and `cost`.
#[derive(Args, Debug, Clone)]
pub struct AnomalyArgs {
    /// Alert when a value lies beyond mean ± SIGMA standard deviations of earlier runs.
    #[arg(long, default_value_t = 2.0, value_name = "SIGMA", value_parser = positive_f64)]
    pub sigma: f64,

    /// Earlier successful runs needed before anything is judged.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_history: u32,

    /// Only the most recent N earlier runs count.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub history_window: u32,
}

impl AnomalyArgs {
    pub fn thresholds(&self) -> crate::anomaly::Thresholds {
        crate::anomaly::Thresholds {
            sigma: self.sigma,
            min_history: self.min_history as usize,
            window: self.history_window as usize,
        }
    }
}

pub fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a positive number".into())
    }
}

pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be zero or a positive number".into())
    }
}

/// What every command's `run` gets.
#[derive(Debug, Clone)]
pub struct Context {
    pub log_file: PathBuf,
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

/// A command run that failed, as its failure notification names it.
pub struct FailedRun<'a> {
    /// `backup`, `restore` or `cost`.
    pub command: &'a str,
    /// For the subject: a category or a bucket.
    pub short: &'a str,
    /// For the body, in full (with the source directory or restore target).
    pub what: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
}

/// Sends a failure notification for a command that failed.
pub async fn notify_failure(
    notifier: &crate::notify::Notifier,
    ctx: &Context,
    run: FailedRun<'_>,
    e: &AgentError,
) {
    let m = crate::notify::failure(
        run.short,
        run.what,
        &crate::notify::Failure {
            command: run.command.to_string(),
            stage: e.stage().to_string(),
            error: e.to_string(),
            exit_code: e.exit_code(),
            log_file: ctx.log_file.display().to_string(),
            bucket: run.bucket.map(str::to_string),
            key: run.key.map(str::to_string),
        },
    );
    notifier.send(&m).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_is_documented() {
        fn walk(cmd: &clap::Command, path: &str) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    a.get_help().is_some() || a.get_long_help().is_some(),
                    "{path} --{id} has no help text"
                );
            }
            for sub in cmd.get_subcommands() {
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no about",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "autobackup");
    }

    #[test]
    fn help_documents_exit_codes() {
        let mut cmd = Cli::command();
        let help = cmd.render_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("10  restore target exists"));
        let backup_help = cmd
            .find_subcommand_mut("backup")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(backup_help.contains("Exit codes:"));
    }

    #[test]
    fn numeric_validators() {
        assert!(positive_f64("0").is_err());
        assert!(positive_f64("nan").is_err());
        assert_eq!(positive_f64("2.5"), Ok(2.5));
        assert_eq!(non_negative_f64("0"), Ok(0.0));
        assert!(non_negative_f64("-1").is_err());
    }
}

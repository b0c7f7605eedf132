//! What the commands share: the bucket, history and anomaly flags, the numeric flag
//! validators, the [`Context`] every command's `run` gets and the failure notification.
//!
//! Floor 3: may import modules of floors 0 to 2 only; it imports `anomaly`, `errors`, `history`,
//! `notify`.

use std::path::PathBuf;

use clap::Args;

use crate::errors::AgentError;

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

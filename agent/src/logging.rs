//! Logging: timestamped lines to the console (stderr) and appended to a log file, so a
//! failure notification can point at the file. `RUST_LOG` overrides the level
//! (default: `info` for the agent, `warn` for everything else; `-v` adds debug).
//!
//! Floor 3: may import modules of floors 0 to 2 only; it imports `errors`, `history`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::errors::AgentError;

/// Default log file: `<state dir>/autobackup.log`.
pub fn default_log_file() -> PathBuf {
    crate::history::state_dir().join("autobackup.log")
}

/// Opens the log for appending: a new file 0600, new directories 0700.
fn open(log_file: &Path) -> Result<std::fs::File, AgentError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = log_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::history::create_private_dir(dir)
            .map_err(|e| AgentError::local("log directory", dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_file)
        .map_err(|e| AgentError::local("log file", log_file, e))
}

/// A dispatcher that appends the agent's lines (info and up) to `log_file` only, for a caller
/// that runs commands in its own process (the harness) and keeps its own console:
/// `command.perform(..).with_subscriber(dispatch)`.
pub fn file_only(log_file: &Path) -> Result<tracing::Dispatch, AgentError> {
    let file = open(log_file)?;
    let layer = fmt::layer()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .with_filter(EnvFilter::new("autobackup_agent=info,warn"));
    Ok(tracing::Dispatch::new(
        tracing_subscriber::registry().with(layer),
    ))
}

/// Installs the subscriber. Fails (exit 12) when the log file cannot be opened.
pub fn init(log_file: &Path, verbose: bool) -> Result<(), AgentError> {
    let file = open(log_file)?;
    let default = if verbose {
        "autobackup_agent=debug,autobackup=debug,warn"
    } else {
        "autobackup_agent=info,autobackup=info,warn"
    };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let console = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter());
    let to_file = fmt::layer()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .with_filter(filter());
    // A second init (tests calling commands in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(to_file)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_only_writes_the_agents_lines_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/agent.log");
        let d = file_only(&log).unwrap();
        tracing::dispatcher::with_default(&d, || tracing::info!("stored backups/x"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("stored backups/x"), "{text}");
    }

    #[test]
    fn unwritable_log_file_is_a_local_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = init(&blocker.join("sub/autobackup.log"), false).unwrap_err();
        assert_eq!(err.exit_code(), 12);
    }
}

//! Logging: timestamped lines to the console (stderr) and appended to a log file, so a
//! failure notification can point at the file. `RUST_LOG` overrides the level
//! (default: `info` for the agent, `warn` for everything else; `-v` adds debug).

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

/// Installs the subscriber. Fails (exit 12) when the log file cannot be opened.
pub fn init(log_file: &Path, verbose: bool) -> Result<(), AgentError> {
    if let Some(dir) = log_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::local("log directory", dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .map_err(|e| AgentError::local("log file", log_file, e))?;
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
    fn unwritable_log_file_is_a_local_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = init(&blocker.join("sub/autobackup.log"), false).unwrap_err();
        assert_eq!(err.exit_code(), 12);
    }
}

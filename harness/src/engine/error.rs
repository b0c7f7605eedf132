//! The engine room's errors: installing, starting, finding or talking to an engine.
//!
//! Floor 0 (with `engine::kind`, the vocabulary every floor shares): imports nothing of the
//! crate.

use std::path::PathBuf;

/// Errors from starting, finding or talking to an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "{engine} needs Python >= {min} and none was found (looked at HARNESS_PYTHON, {looked}).\n\
         Install one (for example `pyenv install 3.13` or `apt-get install python3.13`) or point \
         HARNESS_PYTHON at it."
    )]
    NoPython {
        engine: &'static str,
        min: String,
        looked: String,
    },
    #[error("{endpoint} is not on this machine: the harness provisions, reconfigures and deletes resources there. Pass --allow-remote (or HARNESS_ALLOW_REMOTE=true) if that is a sandbox account you mean to use; even then only resources tagged as the harness's own run are deleted")]
    RemoteRefused { endpoint: String },
    #[error("refusing to run engines from {dir}: {why}; use a cache only you can write (HARNESS_CACHE_DIR)")]
    UnsafeCache { dir: PathBuf, why: String },
    #[error("installing {engine} into {dir} failed: {why}\n--- last lines of the install log ---\n{log_tail}")]
    Install {
        engine: &'static str,
        dir: PathBuf,
        why: String,
        log_tail: String,
    },
    #[error("{engine} did not become healthy at {endpoint} within {secs}s: {why}\n--- last lines of {log} ---\n{log_tail}")]
    Start {
        engine: &'static str,
        endpoint: String,
        secs: u64,
        why: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("engine `external` needs AWS_ENDPOINT_URL (for example `docker compose -f docker-compose.localstack.yml up -d` and AWS_ENDPOINT_URL=http://127.0.0.1:4566)")]
    NoEndpoint,
    #[error("the endpoint {endpoint} does not answer: {why}")]
    Unreachable { endpoint: String, why: String },
    #[error("the engine at {endpoint} cannot host the topology: {call}\n(see `harness --engine external engine probe` for what it does support)")]
    CannotHost { endpoint: String, call: String },
    #[error("unknown engine `{0}`: choose localstack, ministack or external")]
    Unknown(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("docker: {0}")]
    Docker(String),
}

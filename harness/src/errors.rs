//! Every error the harness reports, as `thiserror` types with the context a user needs:
//! which file and line, which engine, what to do next.

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

/// Errors in a scenario or topology file: always with the file and, where known, the line.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}\n  hint: {hint}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
}

/// Errors while provisioning or tearing down the topology.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {why}")]
pub struct ProvisionError {
    pub step: String,
    pub why: String,
}

impl ProvisionError {
    pub fn new(step: impl Into<String>, why: impl std::fmt::Display) -> Self {
        ProvisionError {
            step: step.into(),
            why: why.to_string(),
        }
    }
}

/// Errors while playing a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("{file}:{line}: step {index} ({kind}) failed: {why}")]
    Step {
        file: PathBuf,
        line: usize,
        index: usize,
        kind: String,
        why: String,
    },
    #[error("no scenario named `{name}` in {dir} (available: {available})")]
    NotFound {
        name: String,
        dir: PathBuf,
        available: String,
    },
    #[error("the engine stopped during the scenario: {0}")]
    EngineExited(String),
    /// Boxed: a deploy error carries an engine install error, which would make every
    /// `ScenarioError` large.
    #[error(transparent)]
    Deploy(Box<DeployError>),
    #[error("a deployed function failed: {0}")]
    FunctionFailed(String),
    #[error("{0}")]
    Other(String),
}

/// Errors while packaging the Lambda functions (`harness package`).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Tools(#[from] EngineError),
    #[error("{arch}: the Rust standard library for {target} is not installed and could not be added: {why}. Install it with `rustup target add {target}` and run again")]
    MissingTarget {
        arch: crate::package::Arch,
        target: &'static str,
        why: String,
    },
    #[error("`cargo lambda build` for {arch} failed ({status}); its output is above")]
    Build {
        arch: crate::package::Arch,
        status: String,
    },
    #[error("{path}: not what provided.al2023 runs: {why}")]
    Bootstrap { path: PathBuf, why: String },
    #[error("{path} is not built: run `make package` (or `harness package --arch {arch}`)")]
    NotBuilt {
        path: PathBuf,
        arch: crate::package::Arch,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Errors of `--functions deployed`: the functions created in the engine's Lambda service.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("--functions deployed needs an engine that runs Lambda functions itself: {engine} cannot here ({why}). Engines that can: {supported}. The default, --functions in-process, runs on every engine")]
    Unsupported {
        engine: String,
        why: &'static str,
        supported: &'static str,
    },
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{call}: {why}")]
    Aws { call: String, why: String },
    #[error("{function} did not become Active within {secs}s (last state: {state})")]
    NotActive {
        function: String,
        secs: u64,
        state: String,
    },
    #[error("{what} is not supported with --functions deployed: {why}")]
    StepUnsupported { what: String, why: &'static str },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl DeployError {
    /// An SDK error of `call`, with its whole source chain.
    pub fn aws<E: std::error::Error>(call: impl Into<String>, e: E) -> DeployError {
        DeployError::Aws {
            call: call.into(),
            why: sdk(e),
        }
    }
}

impl From<DeployError> for ScenarioError {
    fn from(e: DeployError) -> Self {
        ScenarioError::Deploy(Box::new(e))
    }
}

/// Formats an SDK error with its whole source chain.
pub fn sdk<E: std::error::Error>(e: E) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Errors of `harness gate` that stop it before (or instead of) a verdict: bad input, an
/// engine that cannot start or host the topology, outputs that cannot be written. Each is
/// exit code 2 ([`GateError::exit_code`]); failed scenarios and checks are exit code 1 and
/// no error.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("--shard {given}: {why} (write K/N with 1 <= K <= N, e.g. --shard 1/2)")]
    Shard { given: String, why: String },
    #[error("--engines names no engine (e.g. --engines localstack,ministack)")]
    NoEngines,
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{dir}: cannot list the scenarios: {source}")]
    Discover {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Profile { path: PathBuf, why: String },
    #[error("starting {engine}: {source}")]
    Engine {
        engine: &'static str,
        source: EngineError,
    },
    #[error("{engine} cannot host the topology for the posture checks: {source}")]
    Posture {
        engine: &'static str,
        source: ProvisionError,
    },
    #[error("the {engine} engine stopped during the gate: {why}")]
    EngineExited { engine: &'static str, why: String },
    #[error("writing {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl GateError {
    /// The process exit code: 2, bad input or an engine/AWS error.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

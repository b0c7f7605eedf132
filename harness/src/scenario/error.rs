//! The scenario room's error: loading or playing a scenario. It composes the errors of the
//! floors below (a file, the engine, provisioning, a deployed function).
//!
//! Floor 6 (with scenario play): imports the error types below it.

use std::path::PathBuf;

use crate::deployed::DeployError;
use crate::engine::EngineError;
use crate::errors::FileError;
use crate::topology::ProvisionError;

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

impl From<DeployError> for ScenarioError {
    fn from(e: DeployError) -> Self {
        ScenarioError::Deploy(Box::new(e))
    }
}

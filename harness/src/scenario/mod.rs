//! Scenarios: files in `scenarios/` ([`mod@file`]: the `Scenario` and its parsing; [`steps`]:
//! the step types; `check.rs`: the parse-time checks), run by [`runner`] (provision, start,
//! play the steps (`play.rs`), settle, check the `[expect]`ations (`expect.rs`) and the
//! [`invariants`], gather, render the normalised [`transcript`], tear down).
//!
//! Modules import downward only: `file` -> `check` -> `steps`.
//!
//! Floor 6: may import floors 0-5 (up to scenario data).

mod check;
pub mod error;
mod expect;
pub mod file;
pub mod generate;
pub mod invariants;
mod play;
pub mod runner;
pub mod steps;
pub mod transcript;

pub use error::ScenarioError;
pub use file::Scenario;
pub use runner::{run, RunOptions, RunOutcome};

use std::path::{Path, PathBuf};

/// The scenarios directory of the repository.
pub fn dir() -> PathBuf {
    crate::paths::repo_root().join("scenarios")
}

/// Finds `scenarios/<name>.toml`, with the list of names when it does not exist.
pub fn find(dir: &Path, name: &str) -> Result<PathBuf, ScenarioError> {
    let p = dir.join(format!("{name}.toml"));
    if p.is_file() {
        return Ok(p);
    }
    let available = file::discover(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ScenarioError::NotFound {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        available,
    })
}

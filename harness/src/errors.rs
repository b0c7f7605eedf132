//! The errors every floor shares: a file's error with its line and column ([`FileError`],
//! [`toml_error`]) and an SDK error's whole source chain ([`sdk`]). Each room's own error
//! type lives with the code that raises it (`engine::EngineError`, `package::PackageError`,
//! `topology::ProvisionError`, `deployed::DeployError`, `scenario::ScenarioError`,
//! `cli::gate::GateError`).
//!
//! Floor 0: imports nothing of the crate.

use std::path::{Path, PathBuf};

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

/// Turns a TOML error into a file error with line and column.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error, hint: &str) -> FileError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    FileError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message: e.message().to_string(),
        hint: hint.to_string(),
    }
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

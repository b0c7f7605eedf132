//! The topology room's error: provisioning or tearing down the topology.
//!
//! Floor 2 (with the rest of `topology`): imports nothing of the crate.

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

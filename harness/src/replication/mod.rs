//! Replication: native where the engine replicates, emulated by the harness where it does
//! not. [`mode`] is the one place that decides which.

pub mod replicator;

use serde::Serialize;

pub use replicator::{Fault, Replicator};

use crate::engine::Capabilities;

/// Who copies primary versions to the replicas in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", content = "reason", rename_all = "lowercase")]
pub enum ReplicationMode {
    /// The engine replicates (from the primaries' replication configuration).
    Native,
    /// The harness [`Replicator`] copies new versions and delete markers.
    Emulated(String),
}

impl ReplicationMode {
    pub fn is_emulated(&self) -> bool {
        matches!(self, ReplicationMode::Emulated(_))
    }
}

impl std::fmt::Display for ReplicationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicationMode::Native => f.write_str("native (the engine replicates)"),
            ReplicationMode::Emulated(why) => write!(f, "emulated by the harness ({why})"),
        }
    }
}

/// Decides native vs emulated replication for a run.
///
/// - The engine copies nothing (free LocalStack): emulated.
/// - The run controls replication (delay, pause, faults): emulated, because an engine's
///   native replication cannot be delayed or broken on purpose (MiniStack copies inside
///   `PutObject`). The primaries then carry no replication configuration on the engine and
///   the validator is given the destinations explicitly (`REPLICA_BUCKET_MAP`).
/// - Otherwise: native.
pub fn mode(caps: &Capabilities, run_controls_replication: bool) -> ReplicationMode {
    if !caps.native_replication {
        ReplicationMode::Emulated(
            "the engine stores replication configuration but copies nothing".into(),
        )
    } else if run_controls_replication {
        ReplicationMode::Emulated(
            "the scenario controls replication timing or faults, which native replication cannot do".into(),
        )
    } else {
        ReplicationMode::Native
    }
}

/// Whether the engine must carry the replication configuration: always, except when the
/// harness stands in for an engine that would otherwise replicate as well.
pub fn configure_on_engine(caps: &Capabilities, mode: &ReplicationMode) -> bool {
    !(caps.native_replication && mode.is_emulated())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Flavor;

    #[test]
    fn decides_per_engine_and_run() {
        let ls = Flavor::Localstack.capabilities();
        let ms = Flavor::Ministack.capabilities();
        assert!(mode(&ls, false).is_emulated());
        assert_eq!(mode(&ms, false), ReplicationMode::Native);
        assert!(mode(&ms, true).is_emulated());
        assert!(configure_on_engine(&ls, &mode(&ls, true)));
        assert!(!configure_on_engine(&ms, &mode(&ms, true)));
        assert!(configure_on_engine(&ms, &mode(&ms, false)));
    }
}

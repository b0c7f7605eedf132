//! Replication: S3 replication as AWS documents it, on every engine. On a local engine the
//! harness [`Replicator`] copies versions by the bucket's [`config::BucketReplication`]
//! rules and the fidelity layer (the gap proxy) makes clients see what AWS shows (source
//! version ids on replicas, statuses only for eligible objects). Only a real AWS endpoint
//! replicates natively. [`mode`] is the one place that decides which.

pub mod config;
pub mod replicator;

use serde::Serialize;

pub use config::{BucketReplication, RuleSpec};
pub use replicator::{Fault, ReplicationTiming, Replicator, Status};

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
/// - Real AWS replicates as AWS does: native.
/// - Every local engine: emulated. LocalStack copies nothing; MiniStack copies inside
///   `PutObject`, gives replicas new version ids, never reports PENDING and copies what AWS
///   would not (SSE-KMS without the opt-in, GLACIER). The primaries then carry no
///   replication configuration on the engine (the fidelity layer serves it).
pub fn mode(caps: &Capabilities) -> ReplicationMode {
    if caps.faithful_replication {
        ReplicationMode::Native
    } else if caps.native_replication {
        ReplicationMode::Emulated(
            "the engine's replication is synchronous and gives replicas new version ids".into(),
        )
    } else {
        ReplicationMode::Emulated(
            "the engine stores replication configuration but copies nothing".into(),
        )
    }
}

/// Whether the engine must carry the replication configuration: only where it replicates
/// as AWS does.
pub fn configure_on_engine(mode: &ReplicationMode) -> bool {
    !mode.is_emulated()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Flavor;

    #[test]
    fn only_aws_replicates_natively() {
        let ls = Flavor::Localstack.capabilities();
        let ms = Flavor::Ministack.capabilities();
        let aws = Flavor::Aws.capabilities();
        assert!(mode(&ls).is_emulated());
        assert!(mode(&ms).is_emulated());
        assert_eq!(mode(&aws), ReplicationMode::Native);
        assert!(!configure_on_engine(&mode(&ms)));
        assert!(configure_on_engine(&mode(&aws)));
    }
}

//! The engines' vocabulary: which engine ([`EngineKind`]), which one answers at an endpoint
//! ([`Flavor`]) and what it can do ([`Capabilities`]).
//!
//! Floor 0: imports only other ground rooms (no domain types).

use super::error::EngineError;

/// The engines the harness knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// LocalStack 4.14.0 (the last free release): Docker via testcontainers, or host mode.
    Localstack,
    /// MiniStack 1.5.33 in host mode.
    Ministack,
    /// The endpoint in AWS_ENDPOINT_URL (started and stopped by you).
    External,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Localstack => "localstack",
            EngineKind::Ministack => "ministack",
            EngineKind::External => "external",
        }
    }

    pub fn parse(s: &str) -> Result<EngineKind, EngineError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "localstack" | "" => Ok(EngineKind::Localstack),
            "ministack" => Ok(EngineKind::Ministack),
            "external" => Ok(EngineKind::External),
            other => Err(EngineError::Unknown(other.to_string())),
        }
    }

    /// The engine chosen by `ENGINE`, defaulting to LocalStack.
    pub fn from_env() -> Result<EngineKind, EngineError> {
        EngineKind::parse(&std::env::var("ENGINE").unwrap_or_default())
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which engine actually answers at an endpoint (an `external` one is identified by its
/// health endpoint), which decides the gaps the harness fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Localstack,
    Ministack,
    /// Real AWS or an unknown emulator: assumed to behave as AWS documents.
    Aws,
}

/// What an engine does and does not do, as measured (see `../shared/notes/engines.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// S3 replication really copies objects.
    pub native_replication: bool,
    /// Replication behaves as AWS documents it (replicas keep version ids, asynchronous,
    /// PENDING/COMPLETED/FAILED, only eligible objects).
    pub faithful_replication: bool,
    /// Event keys arrive raw instead of form-encoded as AWS documents.
    pub raw_event_keys: bool,
    /// `StartMessageMoveTask` is implemented.
    pub message_move_task: bool,
    /// Events carry the object's `version-id`.
    pub event_version_ids: bool,
}

impl Flavor {
    pub fn capabilities(self) -> Capabilities {
        match self {
            Flavor::Localstack => Capabilities {
                native_replication: false,
                faithful_replication: false,
                raw_event_keys: false,
                message_move_task: true,
                event_version_ids: true,
            },
            Flavor::Ministack => Capabilities {
                native_replication: true,
                faithful_replication: false,
                raw_event_keys: true,
                message_move_task: false,
                event_version_ids: false,
            },
            Flavor::Aws => Capabilities {
                native_replication: true,
                faithful_replication: true,
                raw_event_keys: false,
                message_move_task: true,
                event_version_ids: true,
            },
        }
    }
}

//! A running (or attached) engine: its endpoint, how it runs, and the guard that stops it
//! when dropped.

use std::path::PathBuf;
use std::time::Duration;

use super::child::EngineProcess;
use super::kind::{Capabilities, EngineKind, Flavor};
use super::pid::pid_alive;

/// A running (or attached) engine.
pub struct Engine {
    pub kind: EngineKind,
    pub flavor: Flavor,
    pub endpoint: String,
    /// How it runs: "host process (pid N)", "docker container", "attached", ...
    pub how: String,
    /// First-install time, when this start had to install the engine.
    pub install_time: Option<Duration>,
    pub start_time: Duration,
    pub log: Option<PathBuf>,
    /// Capabilities measured by the probe (`probe::start`) (an unknown emulator's), used instead of the
    /// flavor's.
    pub probed: Option<Capabilities>,
    /// Whether the engine's own Lambda service is on. MiniStack runs `provided.*` functions
    /// as local processes of this user, so any local client could run code through it: the
    /// harness turns it on only for `--functions deployed` ([`StartOptions::lambda`]).
    pub lambda: bool,
    pub(super) _guard: EngineGuard,
}

/// Keeps a started engine alive; stops it on drop.
pub enum EngineGuard {
    None,
    /// Started to outlive this process (`engine up`): nothing to stop on drop.
    Detached(u32),
    Process(EngineProcess),
    #[cfg(feature = "docker")]
    Container(Box<dyn std::any::Any + Send + Sync>),
}

impl Engine {
    /// SDK clients for this engine's endpoint in the primary and replica regions. Their S3
    /// clients read version listings as S3 answers them
    /// ([`super::listing::EncodeVersionListings`]; a no-op where the engine encodes).
    pub async fn clients(&self, primary_region: &str, replica_region: &str) -> crate::aws::Clients {
        let mut clients = crate::aws::Clients::for_endpoint(
            &self.endpoint,
            self.kind,
            primary_region,
            replica_region,
        )
        .await;
        let encoded = |s3: &aws_sdk_s3::Client| {
            aws_sdk_s3::Client::from_conf(
                s3.config()
                    .to_builder()
                    .interceptor(super::listing::EncodeVersionListings)
                    .build(),
            )
        };
        clients.s3 = encoded(&clients.s3);
        clients.s3_replica = encoded(&clients.s3_replica);
        clients
    }

    pub fn capabilities(&self) -> Capabilities {
        self.probed.unwrap_or_else(|| self.flavor.capabilities())
    }

    /// The pid of the engine process this handle started, if it started one.
    pub fn pid(&self) -> Option<u32> {
        match &self._guard {
            EngineGuard::Process(p) => Some(p.pid),
            EngineGuard::Detached(pid) => Some(*pid),
            _ => None,
        }
    }

    /// How the engine process ended, if this handle started it and it has ended (a
    /// recorded detached pid that is gone counts too).
    pub fn exited(&self) -> Option<String> {
        match &self._guard {
            EngineGuard::Process(p) => p.exited(),
            EngineGuard::Detached(pid) => (!pid_alive(*pid)).then(|| format!("pid {pid} is gone")),
            _ => None,
        }
    }

    /// Resolves when the engine process ends (never for engines this handle cannot watch),
    /// with what happened and the tail of its log: a scenario then fails at once with the
    /// cause instead of every step timing out on "connection refused".
    pub async fn watch(&self) -> String {
        loop {
            if let Some(status) = self.exited() {
                let tail = self
                    .log
                    .as_deref()
                    .map(|l| {
                        format!(
                            "\n--- last lines of {} ---\n{}",
                            l.display(),
                            crate::paths::tail(l, 25)
                        )
                    })
                    .unwrap_or_default();
                return format!("{} engine exited ({status}){tail}", self.kind);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A handle on an engine someone else runs (a `harness up` process, `engine up`).
    pub fn attached(kind: EngineKind, endpoint: &str, owner_pid: u32) -> Engine {
        Engine {
            kind,
            flavor: match kind {
                EngineKind::Localstack => Flavor::Localstack,
                EngineKind::Ministack => Flavor::Ministack,
                EngineKind::External => Flavor::Aws,
            },
            endpoint: endpoint.to_string(),
            how: format!("attached (owned by pid {owner_pid})"),
            install_time: None,
            start_time: Duration::ZERO,
            log: None,
            probed: None,
            lambda: false,
            _guard: EngineGuard::None,
        }
    }

    /// Stops the engine if this handle started it.
    pub fn stop(self) {
        drop(self);
    }
}

/// Options for starting an engine.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Print install progress to stderr.
    pub verbose: bool,
    /// Keep running after this process exits (for `harness engine up`).
    pub detached: bool,
    /// Do not probe an unknown loopback endpoint at start (`harness engine probe` does it
    /// itself).
    pub skip_probe: bool,
    /// Start a new engine even when `harness engine up` runs one (tests that stop it).
    pub fresh: bool,
    /// Turn on the engine's own Lambda service and its logs (MiniStack; for
    /// `--functions deployed`). Off otherwise: a MiniStack Lambda runs any local client's
    /// `provided.*` bootstrap as this user. A running engine without it is not attached to.
    pub lambda: bool,
}

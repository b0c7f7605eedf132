//! Local AWS engines: which one, how to install and start it, and what it can do.
//!
//! - `localstack` (default): testcontainers when a Docker engine answers, otherwise host mode
//!   from a pinned venv in the cache ([`venv`], [`process`]).
//! - `ministack`: host mode from a pinned venv.
//! - `external`: whatever `AWS_ENDPOINT_URL` points at; never started or stopped here.
//!
//! Every engine binds to loopback only. A started engine stops when its [`Engine`] is
//! dropped, and also when the harness process dies (the child gets SIGTERM from the kernel).

pub mod checksums;
pub mod docker;
pub mod faults;
pub mod gaps;
pub mod probe;
pub mod process;
pub mod proxy;
pub mod state;
pub mod venv;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::errors::EngineError;

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
    /// Capabilities measured by [`probe`] (an unknown emulator's), used instead of the
    /// flavor's.
    pub probed: Option<Capabilities>,
    _guard: EngineGuard,
}

/// Keeps a started engine alive; stops it on drop.
pub enum EngineGuard {
    None,
    /// Started to outlive this process (`engine up`): nothing to stop on drop.
    Detached(u32),
    Process(process::EngineProcess),
    #[cfg(feature = "docker")]
    Container(Box<dyn std::any::Any + Send + Sync>),
}

impl Engine {
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
            EngineGuard::Detached(pid) => {
                (!state::pid_alive(*pid)).then(|| format!("pid {pid} is gone"))
            }
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
}

static ALLOW_REMOTE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets `--engine external` use an endpoint off this machine (the CLI's `--allow-remote`).
pub fn allow_remote(allowed: bool) {
    ALLOW_REMOTE.store(allowed, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the harness may act on `endpoint`: always on loopback, elsewhere only when
/// allowed explicitly.
pub fn may_use(endpoint: &str, remote_allowed: bool) -> bool {
    is_loopback(endpoint) || remote_allowed
}

/// Starts (or attaches to) an engine of `kind`.
pub async fn start(kind: EngineKind, opts: &StartOptions) -> Result<Engine, EngineError> {
    let started = Instant::now();
    match kind {
        EngineKind::External => {
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|e| !e.trim().is_empty())
                .ok_or(EngineError::NoEndpoint)?;
            start_external(endpoint, opts, started).await
        }
        EngineKind::Localstack | EngineKind::Ministack => {
            if !opts.fresh {
                if let Some(attached) = state::attach(kind).await {
                    return Ok(attached);
                }
            }
            if kind == EngineKind::Localstack && !opts.detached && docker::available().await {
                #[cfg(feature = "docker")]
                return docker::start_localstack().await;
            }
            process::start_host(kind, opts).await
        }
    }
}

#[cfg(test)]
async fn start_external_at(endpoint: &str) -> Result<Engine, EngineError> {
    start_external(
        endpoint.to_string(),
        &StartOptions::default(),
        Instant::now(),
    )
    .await
}

/// `--engine external`: identifies (and on loopback, probes) what answers at `endpoint`.
async fn start_external(
    endpoint: String,
    opts: &StartOptions,
    started: Instant,
) -> Result<Engine, EngineError> {
    let kind = EngineKind::External;
    if !may_use(
        &endpoint,
        ALLOW_REMOTE.load(std::sync::atomic::Ordering::Relaxed),
    ) {
        return Err(EngineError::RemoteRefused { endpoint });
    }
    let flavor = identify(&endpoint).await?;
    let mut engine = Engine {
        kind,
        flavor,
        endpoint,
        how: "external (not managed by the harness)".into(),
        install_time: None,
        start_time: started.elapsed(),
        log: None,
        probed: None,
        _guard: EngineGuard::None,
    };
    // An unknown emulator on this machine is measured, not assumed to be AWS (real
    // AWS is never on loopback, and is not probed).
    if flavor == Flavor::Aws && is_loopback(&engine.endpoint) && !opts.skip_probe {
        let spec =
            crate::topology::TopologySpec::load(&crate::topology::TopologySpec::default_path())
                .map_err(|e| EngineError::CannotHost {
                    endpoint: engine.endpoint.clone(),
                    call: format!("loading the topology for the probe: {e}"),
                })?;
        let report = probe::probe(&engine, &spec).await;
        eprint!("{}", report.render());
        match (report.cannot_host, report.measured) {
            (Some(call), _) => {
                return Err(EngineError::CannotHost {
                    endpoint: engine.endpoint,
                    call,
                })
            }
            (None, None) => {
                return Err(EngineError::CannotHost {
                    endpoint: engine.endpoint,
                    call: "the probe measured nothing".into(),
                })
            }
            (None, Some(caps)) => engine.probed = Some(caps),
        }
    }
    Ok(engine)
}

/// Whether an endpoint URL names this machine (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Asks an endpoint which engine it is, through each engine's health route.
pub async fn identify(endpoint: &str) -> Result<Flavor, EngineError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| EngineError::Unreachable {
            endpoint: endpoint.into(),
            why: e.to_string(),
        })?;
    let base = endpoint.trim_end_matches('/');
    if let Ok(r) = http.get(format!("{base}/_localstack/health")).send().await {
        if r.status().is_success() {
            return Ok(Flavor::Localstack);
        }
    }
    match http.get(format!("{base}/_ministack/health")).send().await {
        Ok(r) if r.status().is_success() => Ok(Flavor::Ministack),
        Ok(_) => Ok(Flavor::Aws),
        Err(e) if e.is_connect() || e.is_timeout() => Err(EngineError::Unreachable {
            endpoint: endpoint.into(),
            why: crate::errors::sdk(e),
        }),
        Err(_) => Ok(Flavor::Aws),
    }
}

/// Whether `endpoint` answers its health route with a ready engine.
pub async fn healthy(kind: EngineKind, endpoint: &str) -> Result<(), String> {
    let path = match kind {
        EngineKind::Localstack => "/_localstack/health",
        EngineKind::Ministack => "/_ministack/health",
        EngineKind::External => return Ok(()),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let r = http
        .get(format!("{}{path}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .map_err(crate::errors::sdk)?;
    if !r.status().is_success() {
        return Err(format!("health answered {}", r.status()));
    }
    let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    for svc in ["s3", "sqs", "sns", "events"] {
        let st = body["services"][svc].as_str().unwrap_or("missing");
        if !matches!(st, "available" | "running") {
            return Err(format!("service {svc} is {st}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 14: an endpoint off this machine needs `--allow-remote`; loopback never does.
    #[test]
    fn remote_endpoints_need_an_explicit_allow() {
        assert!(may_use("http://127.0.0.1:4566", false));
        assert!(!may_use("https://sqs.us-east-1.amazonaws.com", false));
        assert!(!may_use("http://10.0.0.5:4566", false));
        assert!(may_use("https://sqs.us-east-1.amazonaws.com", true));
    }

    #[tokio::test]
    async fn starting_external_at_a_remote_endpoint_is_refused() {
        // The process-wide switch is off by default (no CLI parsed in unit tests).
        let Err(e) = start_external_at("http://192.0.2.10:4566").await else {
            panic!("a remote endpoint was used without --allow-remote");
        };
        assert!(matches!(e, EngineError::RemoteRefused { .. }), "{e}");
        assert!(e.to_string().contains("--allow-remote"));
    }

    #[test]
    fn knows_loopback_endpoints() {
        for e in [
            "http://127.0.0.1:4566",
            "http://localhost:5000/",
            "http://[::1]:9000",
            "http://127.8.0.1",
        ] {
            assert!(is_loopback(e), "{e}");
        }
        for e in [
            "https://s3.us-east-1.amazonaws.com",
            "http://10.0.0.5:4566",
            "http://example.com",
        ] {
            assert!(!is_loopback(e), "{e}");
        }
    }
}

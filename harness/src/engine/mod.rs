//! Local AWS engines: which one, how to install and start it, and what it can do.
//!
//! - `localstack` (default): testcontainers when a Docker engine answers, otherwise host mode
//!   from a pinned venv in the cache ([`venv`], [`process`]).
//! - `ministack`: host mode from a pinned venv.
//! - `external`: whatever `AWS_ENDPOINT_URL` points at; never started or stopped here.
//!
//! Every engine binds to loopback only. A started engine stops when its [`Engine`] is
//! dropped, and also when the harness process dies (the child gets SIGTERM from the kernel).
//!
//! Floor 1: may import floor 0 (ground).

mod child;
pub mod docker;
pub mod error;
pub mod gaps;
mod handle;
mod health;
mod kind;
pub mod listing;
pub mod pid;
pub mod process;
pub mod state;
pub mod venv;

use std::time::Instant;

pub use error::EngineError;
pub use handle::{Engine, EngineGuard, StartOptions};
pub use health::{healthy, identify};
pub use kind::{Capabilities, EngineKind, Flavor};

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
            start_external(endpoint, started).await
        }
        EngineKind::Localstack | EngineKind::Ministack => {
            if !opts.fresh {
                // One started without its Lambda service cannot serve deployed functions.
                if let Some(attached) = state::attach(kind).await {
                    if attached.lambda || !opts.lambda {
                        return Ok(attached);
                    }
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
    start_external(endpoint.to_string(), Instant::now()).await
}

/// `--engine external`: identifies what answers at `endpoint` (an unknown emulator on
/// loopback is then measured by `probe::start`, a floor above).
async fn start_external(endpoint: String, started: Instant) -> Result<Engine, EngineError> {
    let kind = EngineKind::External;
    if !may_use(
        &endpoint,
        ALLOW_REMOTE.load(std::sync::atomic::Ordering::Relaxed),
    ) {
        return Err(EngineError::RemoteRefused { endpoint });
    }
    let flavor = identify(&endpoint).await?;
    let engine = Engine {
        kind,
        flavor,
        endpoint,
        how: "external (not managed by the harness)".into(),
        install_time: None,
        start_time: started.elapsed(),
        log: None,
        probed: None,
        // Not the harness's to turn on or off: what answers there decides.
        lambda: true,
        _guard: EngineGuard::None,
    };
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

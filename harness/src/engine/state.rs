//! Engines started by `harness engine up`: a state file per engine kind in the cache, so
//! later commands (`scenario run`, `engine status`, `engine down`) find and reuse them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pid::{is_our_engine, pid_alive, signalable};
use super::{Engine, EngineGuard, EngineKind, Flavor};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    pub kind: EngineKind,
    pub endpoint: String,
    pub pid: u32,
    pub log: Option<PathBuf>,
    /// Started with its Lambda service on (`engine up --lambda`).
    #[serde(default)]
    pub lambda: bool,
}

pub fn path(kind: EngineKind) -> PathBuf {
    crate::paths::cache_dir()
        .join("run")
        .join(format!("engine-{}.json", kind.name()))
}

pub fn read(kind: EngineKind) -> Option<EngineState> {
    let text = std::fs::read_to_string(path(kind)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write(state: &EngineState) -> std::io::Result<()> {
    crate::paths::run_dir()?;
    crate::paths::write_private(&path(state.kind), &serde_json::to_vec_pretty(state)?)
}

pub fn remove(kind: EngineKind) {
    let _ = std::fs::remove_file(path(kind));
}
/// The run directory of a recorded log, if it is one the harness created: directly under
/// `<cache>/run/` and named after the engine.
fn run_dir_of(kind: EngineKind, log: &std::path::Path) -> Option<PathBuf> {
    let dir = log.parent()?;
    let run = crate::paths::cache_dir().join("run");
    let name = dir.file_name()?.to_str()?;
    (dir.parent()? == run && name.starts_with(&format!("{}-", kind.name())))
        .then(|| dir.to_path_buf())
}

/// Attaches to a detached engine of `kind` if one is recorded, alive and healthy.
pub async fn attach(kind: EngineKind) -> Option<Engine> {
    let st = read(kind)?;
    if !pid_alive(st.pid) {
        remove(kind);
        return None;
    }
    attach_to(kind, st).await
}

/// [`attach`] to a recorded engine: only when the recorded pid is still the engine `engine
/// up` started (a group leader whose command line names it) and its endpoint is healthy.
/// A dead engine's port that another local user now listens on, answering the health
/// route, is not attached to (security review 2, L11).
async fn attach_to(kind: EngineKind, st: EngineState) -> Option<Engine> {
    let pid = signalable(st.pid)?;
    if !is_our_engine(kind, pid) {
        return None;
    }
    if super::health::healthy(kind, &st.endpoint).await.is_err() {
        return None;
    }
    Some(Engine {
        kind,
        flavor: match kind {
            EngineKind::Localstack => Flavor::Localstack,
            EngineKind::Ministack => Flavor::Ministack,
            EngineKind::External => Flavor::Aws,
        },
        endpoint: st.endpoint,
        how: format!("attached to `harness engine up` (pid {})", st.pid),
        install_time: None,
        start_time: Duration::ZERO,
        log: st.log,
        probed: None,
        lambda: st.lambda,
        _guard: EngineGuard::None,
    })
}

/// Stops a detached engine: SIGTERM to its process group, SIGKILL after 10 s. Only a pid
/// that is still the recorded engine is signalled; only the harness's own run directory is
/// removed.
pub fn stop(kind: EngineKind) -> Option<EngineState> {
    let st = read(kind)?;
    match signalable(st.pid) {
        Some(pid) if pid_alive(st.pid) && is_our_engine(kind, pid) => {
            // SAFETY: a negative pid signals the engine's own process group (checked above).
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            for _ in 0..100 {
                if !pid_alive(st.pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if pid_alive(st.pid) {
                // SAFETY: as above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
        }
        Some(pid) if pid_alive(st.pid) => {
            tracing::warn!(
                pid,
                "the recorded pid is no longer the engine; not signalling it"
            );
        }
        _ => {}
    }
    remove(kind);
    if let Some(dir) = st.log.as_deref().and_then(|l| run_dir_of(kind, l)) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security review 2, L11: a healthy answer on the recorded port is not enough: the
    /// recorded pid must still be the engine. Here the port is squatted by a listener that
    /// answers MiniStack's health route, and the recorded pid is this test process.
    #[tokio::test]
    async fn a_squatted_port_of_a_dead_engine_is_not_attached() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let body = r#"{"services":{"s3":"available","sqs":"available","sns":"available","events":"available"}}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        assert!(
            super::super::health::healthy(EngineKind::Ministack, &endpoint)
                .await
                .is_ok()
        );
        let squatted = EngineState {
            kind: EngineKind::Ministack,
            endpoint,
            pid: std::process::id(),
            log: None,
            lambda: false,
        };
        assert!(attach_to(EngineKind::Ministack, squatted).await.is_none());
    }

    #[test]
    fn never_signals_our_own_group_or_init() {
        assert_eq!(signalable(0), None);
        assert_eq!(signalable(1), None);
        assert_eq!(signalable(u32::MAX), None);
        assert_eq!(signalable(4242), Some(4242));
        assert!(!pid_alive(0));
    }

    #[test]
    fn this_test_process_is_not_an_engine() {
        // Not a group leader named after an engine: a recycled pid looks like this.
        assert!(!is_our_engine(
            EngineKind::Ministack,
            std::process::id() as i32
        ));
    }

    #[test]
    fn removes_only_its_own_run_directories() {
        let run = crate::paths::cache_dir().join("run");
        let ok = run.join("ministack-4242").join("engine.log");
        assert_eq!(
            run_dir_of(EngineKind::Ministack, &ok),
            Some(run.join("ministack-4242"))
        );
        for bad in [
            PathBuf::from("/etc/engine.log"),
            run.join("engine.log"),
            run.join("localstack-1").join("engine.log"),
            run.join("ministack-1").join("deeper").join("engine.log"),
        ] {
            assert_eq!(
                run_dir_of(EngineKind::Ministack, &bad),
                None,
                "{}",
                bad.display()
            );
        }
    }
}

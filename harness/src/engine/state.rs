//! Engines started by `harness engine up`: a state file per engine kind in the cache, so
//! later commands (`scenario run`, `engine status`, `engine down`) find and reuse them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Engine, EngineGuard, EngineKind, Flavor};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    pub kind: EngineKind,
    pub endpoint: String,
    pub pid: u32,
    pub log: Option<PathBuf>,
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
    let p = path(state.kind);
    std::fs::create_dir_all(p.parent().expect("has parent"))?;
    std::fs::write(p, serde_json::to_vec_pretty(state)?)
}

pub fn remove(kind: EngineKind) {
    let _ = std::fs::remove_file(path(kind));
}

pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Attaches to a detached engine of `kind` if one is recorded, alive and healthy.
pub async fn attach(kind: EngineKind) -> Option<Engine> {
    let st = read(kind)?;
    if !pid_alive(st.pid) {
        remove(kind);
        return None;
    }
    if super::healthy(kind, &st.endpoint).await.is_err() {
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
        _guard: EngineGuard::None,
    })
}

/// Stops a detached engine: SIGTERM to its process group, SIGKILL after 10 s.
pub fn stop(kind: EngineKind) -> Option<EngineState> {
    let st = read(kind)?;
    if pid_alive(st.pid) {
        unsafe {
            libc::kill(-(st.pid as i32), libc::SIGTERM);
        }
        for _ in 0..100 {
            if !pid_alive(st.pid) {
                break;
            }
            // Reap it if it is our child (it is not, normally); otherwise just wait.
            std::thread::sleep(Duration::from_millis(100));
        }
        if pid_alive(st.pid) {
            unsafe {
                libc::kill(-(st.pid as i32), libc::SIGKILL);
            }
        }
    }
    remove(kind);
    if let Some(dir) = st.log.as_ref().and_then(|l| l.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Some(st)
}

//! A started engine process and its end: SIGTERM to its group on drop, SIGKILL after a
//! grace, and an `atexit` hook that stops every engine still live when the harness exits.

use std::path::PathBuf;
use std::process::Child;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A started engine process; SIGTERM to its group on drop, SIGKILL after 5 s, then its
/// run directory (state and log) is removed.
pub struct EngineProcess {
    pub(super) child: Mutex<Child>,
    pub pid: u32,
    pub(super) run_dir: PathBuf,
}

impl EngineProcess {
    /// How the process ended, if it has (`None` while it runs).
    pub fn exited(&self) -> Option<String> {
        let mut child = self.child.lock().ok()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let Ok(mut child) = self.child.lock() else {
            return;
        };
        terminate_group(self.pid as i32, &mut child);
        forget_live(self.pid as i32);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Process groups of engines this process started and has not stopped yet.
fn live() -> &'static Mutex<Vec<i32>> {
    static LIVE: OnceLock<Mutex<Vec<i32>>> = OnceLock::new();
    LIVE.get_or_init(|| {
        // SAFETY: registering a plain `extern "C"` function; it runs at normal exit.
        unsafe {
            libc::atexit(stop_live_at_exit);
        }
        Mutex::new(Vec::new())
    })
}

pub(super) fn remember_live(pgid: i32) {
    if let Ok(mut l) = live().lock() {
        l.push(pgid);
    }
}

pub(super) fn forget_live(pgid: i32) {
    if let Ok(mut l) = live().lock() {
        l.retain(|p| *p != pgid);
    }
}

/// At exit: SIGTERM to every live engine group, up to 3 s for them to go, then SIGKILL.
extern "C" fn stop_live_at_exit() {
    let groups = match live().try_lock() {
        Ok(l) => l.clone(),
        Err(_) => return,
    };
    if groups.is_empty() {
        return;
    }
    for g in &groups {
        // SAFETY: kill(2) on groups this process started (each pid > 1, a group leader).
        unsafe {
            libc::kill(-g, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        // SAFETY: reaps our own exited children without blocking; kill(pid, 0) only probes.
        let gone = groups.iter().all(|g| unsafe {
            libc::waitpid(*g, std::ptr::null_mut(), libc::WNOHANG);
            libc::kill(*g, 0) != 0
        });
        if gone {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for g in &groups {
        // SAFETY: as above; stragglers of the group are killed too.
        unsafe {
            libc::kill(-g, libc::SIGKILL);
        }
    }
}

pub(super) fn terminate_group(pid: i32, child: &mut Child) {
    // SAFETY: kill(2) on our own child's process group.
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            // Reap stragglers of the group too.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.wait();
}

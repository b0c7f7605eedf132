//! Process ids the harness may signal, and whether one is still the engine it started.

use super::kind::EngineKind;

/// A pid the harness may signal: a real process, never 0 (our own process group), 1 or
/// anything a negative `i32` would turn into a broadcast.
pub(crate) fn signalable(pid: u32) -> Option<i32> {
    i32::try_from(pid).ok().filter(|p| *p > 1)
}

/// Whether a process `pid` exists: signal 0 delivered, or refused with EPERM (it exists
/// and belongs to another user; security review 2, L1).
pub fn pid_alive(pid: u32) -> bool {
    let Some(pid) = signalable(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    let delivered = unsafe { libc::kill(pid, 0) } == 0;
    delivered || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `pid` is still the engine `engine up` started: a process-group leader (it was
/// started in its own group) whose command line names the engine. A recycled pid is not.
pub(crate) fn is_our_engine(kind: EngineKind, pid: i32) -> bool {
    // SAFETY: getpgid only reads the process table.
    let leader = unsafe { libc::getpgid(pid) } == pid;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    leader
        && String::from_utf8_lossy(&cmdline)
            .to_ascii_lowercase()
            .contains(kind.name())
}

//! LocalStack through testcontainers, when a Docker engine answers.
//!
//! Tag `4.14.0` (the last free image); `LOCALSTACK_AUTH_TOKEN` is passed through only for
//! users who choose a newer tag with `HARNESS_LOCALSTACK_TAG`.
//!
//! Containers are published on 127.0.0.1 only (testcontainers' default publishes every
//! port on all interfaces), and the start fails if Docker reports any other binding.
//! Containers are not children of the harness, so nothing the kernel does stops them:
//! each carries the label `autobackup-harness=<pid of the harness>`, is removed at normal
//! exit by an `atexit` hook (test binaries keep engines in statics, never dropped), and a
//! labelled container whose harness is gone is removed at the next start.

use std::time::Duration;

/// Whether a Docker engine answers (`docker info`), within 5 s. `HARNESS_NO_DOCKER=1`
/// forces host mode.
pub async fn available() -> bool {
    if std::env::var("HARNESS_NO_DOCKER").is_ok_and(|v| v == "1") {
        return false;
    }
    let probe = tokio::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), probe).await,
        Ok(Ok(status)) if status.success()
    )
}

/// The label every harness container carries; its value is [`owner_label`]'s.
pub const LABEL: &str = "autobackup-harness";

/// Who started a container: `<pid>:<uid>:<boot id>` of the harness process. One Docker
/// daemon may serve several users, and CI jobs in containers of their own (other pid
/// namespaces) sharing its socket: a pid alone names no one there (security review 2, L1).
pub fn owner_label() -> String {
    format!(
        "{}:{}:{}",
        std::process::id(),
        unsafe { libc::geteuid() },
        boot_id()
    )
}

/// This machine's boot id (`/proc/sys/kernel/random/boot_id`): two hosts, or a host and a
/// container's view of it after a reboot, never share one.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether every host binding `docker port <id>` printed is on loopback (and there is one).
pub fn all_loopback(docker_port_output: &str) -> bool {
    let hosts: Vec<&str> = docker_port_output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit_once(':').map(|(h, _)| h).unwrap_or(l))
        .collect();
    !hosts.is_empty()
        && hosts
            .iter()
            .all(|h| matches!(h.trim_matches(['[', ']']), "127.0.0.1" | "::1"))
}

/// The containers to remove from `docker ps --format '{{.ID}} {{.Label "autobackup-harness"}}'`:
/// those this user started on this boot (`uid`, `boot`) whose harness pid is gone. Another
/// user's, another host's and an old-style label (a bare pid) are never touched; `alive`
/// counts a pid that exists but cannot be signalled (EPERM) as alive.
pub fn orphans(
    docker_ps_output: &str,
    uid: u32,
    boot: &str,
    alive: impl Fn(u32) -> bool,
) -> Vec<String> {
    docker_ps_output
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, owner)| {
            let mut parts = owner.trim().splitn(3, ':');
            let (Some(pid), Some(owner_uid), Some(owner_boot)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            let (Ok(pid), Ok(owner_uid)) = (pid.parse::<u32>(), owner_uid.parse::<u32>()) else {
                return false;
            };
            owner_uid == uid && owner_boot == boot && !alive(pid)
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

fn docker(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes labelled containers whose harness is gone (killed with SIGKILL, aborted).
pub fn reap_orphans() {
    let fmt = format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}");
    let filter = format!("label={LABEL}");
    if let Some(ps) = docker(&["ps", "-a", "--filter", &filter, "--format", &fmt]) {
        let uid = unsafe { libc::geteuid() };
        for id in orphans(&ps, uid, &boot_id(), super::pid::pid_alive) {
            tracing::warn!(%id, "removing a harness container whose harness is gone");
            let _ = docker(&["rm", "-f", "-v", &id]);
        }
    }
}

/// Container ids this process started and has not removed.
#[cfg(feature = "docker")]
fn live() -> &'static std::sync::Mutex<Vec<String>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<Vec<String>>> = std::sync::OnceLock::new();
    LIVE.get_or_init(|| {
        // SAFETY: registering a plain `extern "C"` function; it runs at normal exit.
        unsafe {
            libc::atexit(remove_live_at_exit);
        }
        std::sync::Mutex::new(Vec::new())
    })
}

#[cfg(feature = "docker")]
extern "C" fn remove_live_at_exit() {
    let ids = match live().try_lock() {
        Ok(l) => l.clone(),
        Err(_) => return,
    };
    for id in ids {
        let _ = docker(&["rm", "-f", "-v", &id]);
    }
}

#[cfg(feature = "docker")]
pub async fn start_localstack() -> Result<super::Engine, crate::engine::EngineError> {
    use testcontainers_modules::localstack::LocalStack;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::ImageExt;

    use crate::engine::EngineError;

    let started = std::time::Instant::now();
    reap_orphans();
    let chosen_tag = std::env::var("HARNESS_LOCALSTACK_TAG").ok();
    let tag = chosen_tag.clone().unwrap_or_else(|| "4.14.0".into());
    let mut image = LocalStack::default()
        .with_tag(tag.clone())
        .with_env_var("SERVICES", super::process::LOCALSTACK_SERVICES)
        .with_env_var("SQS_ENDPOINT_STRATEGY", "path")
        .with_label(LABEL, owner_label())
        .with_host_config_modifier(loopback_only);
    if chosen_tag.is_some() {
        if let Ok(token) = std::env::var("LOCALSTACK_AUTH_TOKEN") {
            image = image.with_env_var("LOCALSTACK_AUTH_TOKEN", token);
        }
    }
    let container = image
        .start()
        .await
        .map_err(|e| EngineError::Docker(e.to_string()))?;
    if let Ok(mut l) = live().lock() {
        l.push(container.id().to_string());
    }
    let bindings = docker(&["port", container.id(), "4566/tcp"]).unwrap_or_default();
    if !all_loopback(&bindings) {
        return Err(EngineError::Docker(format!(
            "the container's port 4566 is published beyond loopback ({}); refusing to use it",
            bindings.trim()
        )));
    }
    let port = container
        .get_host_port_ipv4(4566)
        .await
        .map_err(|e| EngineError::Docker(e.to_string()))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    Ok(super::Engine {
        kind: super::EngineKind::Localstack,
        flavor: super::Flavor::Localstack,
        endpoint,
        how: format!("docker container localstack/localstack:{tag}"),
        install_time: None,
        start_time: started.elapsed(),
        log: None,
        probed: None,
        lambda: false,
        _guard: super::EngineGuard::Container(Box::new(container)),
    })
}

/// Publishes LocalStack's port on 127.0.0.1 only, on a free host port.
#[cfg(feature = "docker")]
fn loopback_only(hc: &mut testcontainers_modules::testcontainers::bollard::models::HostConfig) {
    use testcontainers_modules::testcontainers::bollard::models::PortBinding;
    hc.publish_all_ports = Some(false);
    hc.port_bindings = Some(
        [(
            "4566/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("0".into()),
            }]),
        )]
        .into_iter()
        .collect(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 9: only loopback bindings pass.
    #[test]
    fn only_loopback_bindings_pass() {
        assert!(all_loopback("127.0.0.1:32768\n"));
        assert!(all_loopback("127.0.0.1:32768\n[::1]:32768\n"));
        assert!(!all_loopback("0.0.0.0:32768\n[::]:32768\n"));
        assert!(!all_loopback("127.0.0.1:32768\n0.0.0.0:32768\n"));
        assert!(!all_loopback(""));
    }

    /// The host config the container is created with binds 127.0.0.1 and publishes nothing
    /// else.
    #[cfg(feature = "docker")]
    #[test]
    fn the_container_publishes_on_loopback_only() {
        let mut hc = testcontainers_modules::testcontainers::bollard::models::HostConfig {
            publish_all_ports: Some(true),
            ..Default::default()
        };
        loopback_only(&mut hc);
        assert_eq!(hc.publish_all_ports, Some(false));
        let b = hc.port_bindings.unwrap();
        let only = b["4566/tcp"].as_ref().unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].host_ip.as_deref(), Some("127.0.0.1"));
    }

    /// Finding 10: containers whose harness is dead are reaped, live ones kept.
    #[test]
    fn orphaned_containers_are_those_whose_harness_is_gone() {
        let ps = "abc123 4242:1000:b1\ndef456 17:1000:b1\nfff000 not-a-pid\n";
        assert_eq!(
            orphans(ps, 1000, "b1", |p| p == 17),
            vec!["abc123".to_string()]
        );
    }

    /// Security review 2, L1: another user's container (its harness's pid is EPERM to us,
    /// which `alive` reports as alive), another uid's, another boot's (a host sharing the
    /// daemon) and a bare-pid label are left alone.
    #[test]
    fn other_users_and_hosts_containers_are_never_reaped() {
        let ps = "a1 4242:1001:b1\na2 4242:1000:b2\na3 4242\na4 5000:1000:b1\n";
        let alive = |p: u32| p == 5000; // 5000: a live pid of another user (EPERM)
        assert!(orphans(ps, 1000, "b1", alive).is_empty());
        assert_eq!(orphans(ps, 1001, "b1", alive), vec!["a1".to_string()]);
        assert!(owner_label().split(':').count() == 3);
    }
}

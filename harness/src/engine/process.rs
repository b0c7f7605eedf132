//! Host-mode engine processes: spawn on a free loopback port, wait until healthy, stop.
//!
//! Children are spawned from one long-lived thread with `PR_SET_PDEATHSIG`, so the kernel
//! sends them SIGTERM when the harness dies for any reason (Ctrl-C, a failed test, a
//! panic). Each child leads its own process group, which [`EngineProcess`] kills on drop.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::venv::{self, Distribution};
use super::{Engine, EngineGuard, EngineKind, Flavor, StartOptions};
use crate::errors::EngineError;

/// A started engine process; SIGTERM to its group on drop, SIGKILL after 5 s, then its
/// run directory (state and log) is removed.
pub struct EngineProcess {
    child: Mutex<Child>,
    pub pid: u32,
    run_dir: PathBuf,
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let Ok(mut child) = self.child.lock() else {
            return;
        };
        terminate_group(self.pid as i32, &mut child);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

fn terminate_group(pid: i32, child: &mut Child) {
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

type SpawnReply = mpsc::Sender<std::io::Result<Child>>;

/// The thread that spawns children: it never exits, so PDEATHSIG fires only when the whole
/// harness process goes away.
fn keeper() -> &'static Mutex<mpsc::Sender<(Command, SpawnReply)>> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<(Command, SpawnReply)>>> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, SpawnReply)>();
        std::thread::Builder::new()
            .name("engine-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static: this loop never ends while the process lives.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn engine-keeper thread");
        Mutex::new(tx)
    })
}

/// Picks a free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// Installs (if needed) and starts a host-mode engine, waiting until it is healthy.
pub async fn start_host(kind: EngineKind, opts: &StartOptions) -> Result<Engine, EngineError> {
    let dist: &'static Distribution = match kind {
        EngineKind::Localstack => &venv::LOCALSTACK,
        EngineKind::Ministack => &venv::MINISTACK,
        EngineKind::External => unreachable!("external engines are not started"),
    };
    let verbose = opts.verbose;
    let install_time = tokio::task::spawn_blocking(move || venv::ensure_installed(dist, verbose))
        .await
        .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))??;

    let mut last_err = None;
    for _ in 0..3 {
        match spawn_and_wait(kind, dist, opts).await {
            Ok(mut engine) => {
                engine.install_time = install_time;
                return Ok(engine);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.expect("at least one attempt"))
}

async fn spawn_and_wait(
    kind: EngineKind,
    dist: &Distribution,
    opts: &StartOptions,
) -> Result<Engine, EngineError> {
    let started = Instant::now();
    let port = free_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let run_dir = crate::paths::cache_dir()
        .join("run")
        .join(format!("{}-{port}", kind.name()));
    std::fs::create_dir_all(&run_dir)?;
    let log_path = run_dir.join("engine.log");
    let log = std::fs::File::create(&log_path)?;
    let bin = dist.dir().join("bin");
    let mut cmd = match kind {
        EngineKind::Localstack => {
            let root = run_dir.join("filesystem");
            std::fs::create_dir_all(&root)?;
            let mut c = Command::new(bin.join("python"));
            c.args(["-m", "localstack.runtime.main"])
                .env("OVERRIDE_IN_DOCKER", "0")
                .env("FILESYSTEM_ROOT", &root)
                .env("DISABLE_EVENTS", "1")
                .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
                .env("GATEWAY_SERVER", "hypercorn")
                .env("DNS_ADDRESS", "0")
                .env("SKIP_SSL_CERT_DOWNLOAD", "1")
                .env("SQS_ENDPOINT_STRATEGY", "path")
                .env("SERVICES", "s3,sqs,sns,events,kms,iam,sts")
                .env("TMPDIR", run_dir.join("tmp"));
            std::fs::create_dir_all(run_dir.join("tmp"))?;
            c
        }
        EngineKind::Ministack => {
            let mut c = Command::new(bin.join("ministack"));
            c.env("GATEWAY_PORT", port.to_string())
                .env("BIND_HOST", "127.0.0.1");
            c
        }
        EngineKind::External => unreachable!(),
    };
    cmd.current_dir(&run_dir)
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let detached = opts.detached;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if !detached {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            }
            Ok(())
        });
    }
    let mut child = if detached {
        cmd.spawn()?
    } else {
        let (tx, rx) = mpsc::channel();
        keeper()
            .lock()
            .expect("keeper lock")
            .send((cmd, tx))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        rx.recv()
            .map_err(|e| std::io::Error::other(e.to_string()))??
    };
    let pid = child.id();

    let limit = Duration::from_secs(120);
    let mut last;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(EngineError::Start {
                engine: dist.engine,
                endpoint,
                secs: started.elapsed().as_secs(),
                why: format!("the process exited with {status}"),
                log: log_path.clone(),
                log_tail: crate::paths::tail(&log_path, 25),
            });
        }
        match super::healthy(kind, &endpoint).await {
            Ok(()) => break,
            Err(e) => last = e,
        }
        if started.elapsed() > limit {
            terminate_group(pid as i32, &mut child);
            return Err(EngineError::Start {
                engine: dist.engine,
                endpoint,
                secs: limit.as_secs(),
                why: last,
                log: log_path.clone(),
                log_tail: crate::paths::tail(&log_path, 25),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flavor = match kind {
        EngineKind::Localstack => Flavor::Localstack,
        _ => Flavor::Ministack,
    };
    let guard = if detached {
        // Reaped by `harness engine down`; the state file records it.
        std::mem::forget(child);
        EngineGuard::Detached(pid)
    } else {
        EngineGuard::Process(EngineProcess {
            child: Mutex::new(child),
            pid,
            run_dir: run_dir.clone(),
        })
    };
    Ok(Engine {
        kind,
        flavor,
        endpoint,
        how: format!("host process {} {} (pid {pid})", dist.engine, dist.version),
        install_time: None,
        start_time: started.elapsed(),
        log: Some(log_path),
        probed: None,
        _guard: guard,
    })
}

/// The log path of a run directory (for `engine status`).
pub fn log_of(kind: EngineKind, port: u16) -> PathBuf {
    crate::paths::cache_dir()
        .join("run")
        .join(format!("{}-{port}", kind.name()))
        .join("engine.log")
}

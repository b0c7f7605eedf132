//! Host-mode engine processes: spawn on a free loopback port, wait until healthy, stop.
//!
//! Children are spawned from one long-lived thread with `PR_SET_PDEATHSIG`, so the kernel
//! sends them SIGTERM when the harness dies for any reason (Ctrl-C, a failed test, a
//! panic). Each child leads its own process group, which `EngineProcess` (`child.rs`) kills on drop.
//! Three more nets catch what those miss:
//! - an `atexit` hook stops every engine still running when the process exits normally
//!   (test binaries keep their engines in statics, which are never dropped), SIGTERM then
//!   SIGKILL, because an engine may ignore or hang in its SIGTERM handler;
//! - each run directory records its owner (the harness pid); the next start reaps engines
//!   whose owner is gone (a `kill -9`ed harness), after checking the pid is still the
//!   engine it started;
//! - engines run with a minimal environment ([`minimal_env`]): the caller's AWS
//!   credentials, tokens and profiles never reach an emulator's process.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::child::{forget_live, remember_live, terminate_group, EngineProcess};
use super::pid::{is_our_engine, pid_alive};
use super::venv::{self, Distribution};
use super::{Engine, EngineGuard, EngineKind, Flavor, StartOptions};
use crate::engine::EngineError;

/// The variables an engine process may inherit: what Python and a shell need to run, nothing
/// that carries credentials. Everything else (`AWS_*`, `LOCALSTACK_AUTH_TOKEN`, tokens of
/// other tools) is dropped; the engine-specific settings are added by the caller.
const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER"];

/// The environment of an engine process, from the caller's: only `INHERITED` variables.
pub fn minimal_env<I>(parent: I) -> Vec<(std::ffi::OsString, std::ffi::OsString)>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    parent
        .into_iter()
        .filter(|(k, _)| INHERITED.iter().any(|a| k == std::ffi::OsStr::new(a)))
        .collect()
}

/// Clears `cmd`'s environment and gives it [`minimal_env`] of `parent`.
pub fn with_minimal_env<I>(cmd: &mut Command, parent: I) -> &mut Command
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    cmd.env_clear().envs(minimal_env(parent))
}

/// Who started the engine in a run directory: `owner` is the harness process, `None` for
/// `engine up` (detached engines outlive their starter on purpose).
#[derive(serde::Serialize, serde::Deserialize)]
struct Owner {
    owner: Option<u32>,
    engine: u32,
}

const OWNER_FILE: &str = "owner.json";

/// Records who started the engine in `run_dir` (see [`Owner`]).
fn write_owner(run_dir: &std::path::Path, owner: Option<u32>, engine: u32) -> std::io::Result<()> {
    let o = Owner { owner, engine };
    crate::paths::write_private(&run_dir.join(OWNER_FILE), &serde_json::to_vec(&o)?)
}

/// Stops engines whose harness is gone (killed with SIGKILL, so neither drop nor atexit
/// ran, and an engine that ignores PDEATHSIG's SIGTERM kept running), and removes their run
/// directories. A pid is signalled only while it is still the engine that was started
/// (a process-group leader whose command line names the engine).
pub fn reap_orphans() {
    let run = crate::paths::cache_dir().join("run");
    let Ok(entries) = std::fs::read_dir(&run) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let Some(kind) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('-'))
            .and_then(|(k, port)| {
                port.parse::<u16>()
                    .ok()
                    .and_then(|_| EngineKind::parse(k).ok())
            })
        else {
            continue;
        };
        let Some(o) = std::fs::read(dir.join(OWNER_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Owner>(&b).ok())
        else {
            continue;
        };
        let Some(owner) = o.owner else {
            continue;
        };
        if pid_alive(owner) {
            continue;
        }
        if let Ok(pid) = i32::try_from(o.engine) {
            if pid_alive(o.engine) && is_our_engine(kind, pid) {
                tracing::warn!(pid, dir = %dir.display(), "stopping an engine whose harness is gone");
                // SAFETY: the engine's own process group, identity checked above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
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
    reap_orphans();
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
    let run_dir = crate::paths::run_dir()?.join(format!("{}-{port}", kind.name()));
    crate::paths::private_dir(&run_dir.join("tmp"))?;
    let log_path = run_dir.join("engine.log");
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&log_path)?
    };
    let bin = dist.dir().join("bin");
    let mut cmd = Command::new(bin.join(match kind {
        EngineKind::Localstack => "python",
        _ => "ministack",
    }));
    with_minimal_env(&mut cmd, std::env::vars_os()).env("TMPDIR", run_dir.join("tmp"));
    match kind {
        EngineKind::Localstack => {
            let root = run_dir.join("filesystem");
            std::fs::create_dir_all(&root)?;
            cmd.args(["-m", "localstack.runtime.main"])
                .env("OVERRIDE_IN_DOCKER", "0")
                .env("FILESYSTEM_ROOT", &root)
                .env("DISABLE_EVENTS", "1")
                .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
                .env("GATEWAY_SERVER", "hypercorn")
                .env("DNS_ADDRESS", "0")
                .env("SKIP_SSL_CERT_DOWNLOAD", "1")
                .env("SQS_ENDPOINT_STRATEGY", "path")
                .env("SERVICES", LOCALSTACK_SERVICES);
        }
        EngineKind::Ministack => {
            cmd.env("GATEWAY_PORT", port.to_string())
                .env("BIND_HOST", "127.0.0.1")
                .env("SERVICES", ministack_services(opts.lambda));
        }
        EngineKind::External => unreachable!(),
    }
    cmd.current_dir(&run_dir)
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
    if !detached {
        remember_live(pid as i32);
    }
    let _ = write_owner(&run_dir, (!detached).then(std::process::id), pid);

    let limit = Duration::from_secs(120);
    let mut last;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            forget_live(pid as i32);
            return Err(EngineError::Start {
                engine: dist.engine,
                endpoint,
                secs: started.elapsed().as_secs(),
                why: format!("the process exited with {status}"),
                log: log_path.clone(),
                log_tail: crate::paths::tail(&log_path, 25),
            });
        }
        match super::health::healthy(kind, &endpoint).await {
            Ok(()) => break,
            Err(e) => last = e,
        }
        if started.elapsed() > limit {
            terminate_group(pid as i32, &mut child);
            forget_live(pid as i32);
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
        lambda: opts.lambda && kind == EngineKind::Ministack,
        _guard: guard,
    })
}

/// The services a LocalStack serves: the topology's, and CloudFormation with CloudWatch
/// for `--via cloudformation` (the templates' alarms). Its CloudFormation cannot run a
/// function here: Lambda is not served, and its functions need Docker.
pub const LOCALSTACK_SERVICES: &str = "s3,sqs,sns,events,kms,iam,sts,cloudformation,cloudwatch";

/// The services a MiniStack serves (its `SERVICES` filter): what the topology and the
/// in-process functions use, and its Lambda service and logs only when asked for. MiniStack
/// answers 400 to any other service.
pub fn ministack_services(lambda: bool) -> String {
    let mut services = vec![
        "s3",
        "sqs",
        "sns",
        "events",
        "kms",
        "iam",
        "sts",
        "cloudwatch",
    ];
    // CloudFormation too: its AWS::Lambda::Function and EventSourceMapping make and run
    // functions whether or not the Lambda service is served (seen on 1.5.33: a stack's
    // mapping ran a function while Invoke answered 400).
    if lambda {
        services.extend(["lambda", "logs", "cloudformation"]);
    }
    services.join(",")
}

/// The log path of a run directory (for `engine status`).
pub fn log_of(kind: EngineKind, port: u16) -> PathBuf {
    crate::paths::cache_dir()
        .join("run")
        .join(format!("{}-{port}", kind.name()))
        .join("engine.log")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn canary_env() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/u"),
            ("AWS_ACCESS_KEY_ID", "AKIACANARY"),
            ("AWS_SECRET_ACCESS_KEY", "canary"),
            ("AWS_SESSION_TOKEN", "canary-token"),
            ("AWS_PROFILE", "prod"),
            ("AWS_ENDPOINT_URL", "https://s3.amazonaws.com"),
            ("LOCALSTACK_AUTH_TOKEN", "ls-canary"),
            ("GITHUB_TOKEN", "gh-canary"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    /// Finding 27: an engine sees PATH and HOME, never the caller's credentials.
    #[test]
    fn engines_get_a_minimal_environment() {
        let env = minimal_env(canary_env());
        let names: Vec<_> = env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["PATH", "HOME"]);
    }

    /// The same through a real process: what it can read of its own environment.
    #[test]
    fn a_spawned_engine_process_cannot_read_the_callers_credentials() {
        let mut cmd = Command::new("/bin/sh");
        with_minimal_env(&mut cmd, canary_env())
            .env("TMPDIR", "/tmp")
            .args(["-c", "cat /proc/self/environ"]);
        let out = cmd.output().expect("run sh");
        let environ = String::from_utf8_lossy(&out.stdout);
        assert!(environ.contains("HOME=/home/u"), "{environ}");
        assert!(!environ.contains("canary"), "{environ}");
        assert!(!environ.contains("AWS_"), "{environ}");
    }

    /// A run directory (named after a port nobody uses here) whose owner cannot be alive
    /// (a pid beyond Linux's pid_max), recording `engine` as its engine.
    fn orphaned_run_dir(port: u32, engine: u32) -> PathBuf {
        let run = crate::paths::cache_dir().join("run");
        let dir = run.join(format!("ministack-{}", port + std::process::id() % 5000));
        std::fs::create_dir_all(&dir).unwrap();
        write_owner(&dir, Some(4_194_304 + 7), engine).unwrap();
        dir
    }

    /// The orphan reaper leaves alone what it did not start: a run directory whose owner is
    /// dead but whose recorded engine pid is an unrelated live process (a recycled pid).
    #[test]
    fn the_reaper_never_signals_a_recycled_pid() {
        let mut bystander = Command::new("sleep").arg("30").spawn().expect("sleep");
        let dir = orphaned_run_dir(60000, bystander.id());
        reap_orphans();
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "the bystander must survive"
        );
        assert!(!dir.exists(), "the stale run directory is removed");
        let _ = bystander.kill();
        let _ = bystander.wait();
    }

    /// An engine whose harness was killed (owner dead, engine still its own group leader
    /// named after the engine) is stopped and its run directory removed.
    #[test]
    fn the_reaper_stops_an_engine_whose_harness_is_gone() {
        use std::os::unix::process::CommandExt as _;
        let mut orphan = Command::new("bash")
            .args(["-c", "exec -a ministack-orphan sleep 30"])
            .process_group(0)
            .spawn()
            .expect("bash");
        // Let exec replace the command line.
        std::thread::sleep(Duration::from_millis(200));
        let dir = orphaned_run_dir(55000, orphan.id());
        reap_orphans();
        let status = orphan.wait().expect("wait");
        assert!(!status.success(), "killed, not finished: {status:?}");
        assert!(!dir.exists());
    }
}

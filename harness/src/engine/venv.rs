//! Host-mode engine installs: a Python venv per engine version in the cache directory,
//! built from the pinned requirements lock committed in `engines/` (also the pinned AWS CLI
//! the README test uses, and the tools `harness package` builds the Lambda zips with:
//! cargo-lambda and its zig toolchain, under `<cache>/tools/`).
//!
//! Every artefact is pinned by its sha256 (`engines/hash-lock.py` writes the hashes) and
//! installed with `pip install --require-hashes --no-deps`: a substituted wheel from a
//! compromised mirror, an `index-url` in the user's pip.conf or a same-named package on
//! another index fails the install instead of running.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine::EngineError;

/// A pinned engine distribution.
pub struct Distribution {
    pub engine: &'static str,
    pub version: &'static str,
    /// `pip freeze` lock of a working install, each pin with its artefact's sha256.
    pub lock: &'static str,
    pub min_python: (u32, u32),
    /// Executable inside the venv's `bin/` that runs the engine.
    pub entry: &'static str,
    /// Folder of the cache it installs under: `engines`, or `tools` for build tools.
    pub folder: &'static str,
}

pub const LOCALSTACK: Distribution = Distribution {
    engine: "localstack",
    version: "4.14.0",
    lock: include_str!("../../../engines/localstack-requirements.lock"),
    min_python: (3, 13),
    entry: "python",
    folder: "engines",
};

pub const MINISTACK: Distribution = Distribution {
    engine: "ministack",
    version: "1.5.33",
    lock: include_str!("../../../engines/ministack-requirements.lock"),
    min_python: (3, 10),
    entry: "ministack",
    folder: "engines",
};

/// The AWS CLI v1 from PyPI, for the test that runs the README's commands as a user would
/// (not an engine: installed the same way, into the same cache).
pub const AWSCLI: Distribution = Distribution {
    engine: "awscli",
    version: "1.46.2",
    lock: include_str!("../../../engines/awscli-requirements.lock"),
    min_python: (3, 9),
    entry: "aws",
    folder: "engines",
};

/// cargo-lambda and the zig toolchain it cross-links with (`ziglang`), both from PyPI, for
/// `harness package` (not an engine: installed the same way, under `<cache>/tools/`).
pub const CARGO_LAMBDA: Distribution = Distribution {
    engine: "cargo-lambda",
    version: "1.9.2",
    lock: include_str!("../../../engines/cargo-lambda-requirements.lock"),
    min_python: (3, 9),
    entry: "cargo-lambda",
    folder: "tools",
};

impl Distribution {
    /// `<cache>/<folder>/<engine>-<version>-<hash of the lock>`.
    pub fn dir(&self) -> PathBuf {
        crate::paths::cache_dir().join(self.folder).join(format!(
            "{}-{}-{:08x}",
            self.engine,
            self.version,
            fnv(self.lock)
        ))
    }

    /// Installed from exactly this lock: the `.installed` marker names the version and the
    /// lock's SHA-256 ([`Distribution::marker`]). A venv restored from a cache (CI) or left
    /// by another checkout's lock is reinstalled, not trusted on a marker alone (security
    /// review 2, M5). The directory name's short hash only spreads installs apart.
    pub fn installed(&self) -> bool {
        self.installed_in(&self.dir())
    }

    fn installed_in(&self, dir: &Path) -> bool {
        std::fs::read_to_string(dir.join(".installed")).is_ok_and(|text| text == self.marker())
    }

    /// What `.installed` holds once pip has installed the lock: version and lock SHA-256.
    pub fn marker(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(self.lock.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}\nlock-sha256 {hex}\n", self.version)
    }
}

/// `<dir>.<ext>` next to `dir` (`with_extension` would eat the version's dots).
fn sibling(dir: &Path, ext: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.{ext}"))
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    })
}

/// Finds a Python of at least `min`: `HARNESS_PYTHON`, then `python3.13`..`python3.10`
/// and `python3` on PATH, then pyenv's versions.
pub fn find_python(engine: &'static str, min: (u32, u32)) -> Result<PathBuf, EngineError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("HARNESS_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    for minor in (min.1..=16).rev() {
        candidates.push(PathBuf::from(format!("python3.{minor}")));
    }
    candidates.push(PathBuf::from("python3"));
    let pyenv_root = std::env::var("PYENV_ROOT")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            Command::new("pyenv")
                .arg("root")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        });
    let home_pyenv = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".pyenv"))
        .ok();
    for root in pyenv_root.into_iter().chain(home_pyenv) {
        if let Ok(entries) = std::fs::read_dir(root.join("versions")) {
            let mut versions: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path().join("bin").join("python3"))
                .filter(|p| p.is_file())
                .collect();
            versions.sort();
            versions.reverse();
            candidates.extend(versions);
        }
    }
    for c in &candidates {
        if let Some((major, minor)) = python_version(c) {
            if major == 3 && minor >= min.1 && minor < 20 {
                return Ok(c.clone());
            }
        }
    }
    Err(EngineError::NoPython {
        engine,
        min: format!("{}.{}", min.0, min.1),
        looked: "python3.x and python3 on PATH, and pyenv's versions".into(),
    })
}

fn python_version(python: &Path) -> Option<(u32, u32)> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|v| v.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// Installs the distribution if needed (once, under a file lock so concurrent harness
/// processes do not race) and returns how long the install took, if one was done.
pub fn ensure_installed(
    dist: &Distribution,
    _verbose: bool,
) -> Result<Option<Duration>, EngineError> {
    let dir = dist.dir();
    let parent = dir.parent().expect("engine dir has a parent");
    std::fs::create_dir_all(parent)?;
    for d in [crate::paths::cache_dir(), parent.to_path_buf()] {
        crate::paths::check_private(&d).map_err(|why| EngineError::UnsafeCache {
            dir: d.clone(),
            why,
        })?;
    }
    if dist.installed() {
        return Ok(None);
    }
    let lock_path = sibling(&dir, "lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    lock.lock()?;
    if dist.installed() {
        return Ok(None);
    }
    let started = Instant::now();
    let python = find_python(dist.engine, dist.min_python)?;
    eprintln!(
        "harness: installing {} {} into {} (first run only; pinned by engines/{}-requirements.lock) ...",
        dist.engine,
        dist.version,
        dir.display(),
        dist.engine
    );
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let log_path = sibling(&dir, "install.log");
    let mut log = std::fs::File::create(&log_path)?;
    let fail = |why: String| EngineError::Install {
        engine: dist.engine,
        dir: dir.clone(),
        why,
        log_tail: crate::paths::tail(&log_path, 20),
    };
    let status = Command::new(&python)
        .args(["-m", "venv"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !status.status.success() {
        log.write_all(&status.stderr)?;
        return Err(fail(format!("`{} -m venv` failed", python.display())));
    }
    let req = dir.join("requirements.lock");
    std::fs::write(&req, dist.lock)?;
    let mut child = Command::new(dir.join("bin").join("pip"))
        .args(pip_install_args(
            &req,
            &crate::paths::repo_root().join("engines/wheels"),
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let err_log = log_path.clone();
    let err_thread = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(err_log).ok();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(f) = f.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    let mut count = 0usize;
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        let _ = writeln!(log, "{line}");
        if line.starts_with("Collecting") || line.starts_with("Installing collected") {
            count += 1;
            if count % 10 == 1 || line.starts_with("Installing") {
                let short = line.split(" (from").next().unwrap_or(&line);
                eprintln!(
                    "harness:   [{:>4.0}s] {short}",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let status = child.wait()?;
    let _ = err_thread.join();
    if !status.success() {
        let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(fail(match unreachable_registry(&log_text) {
            Some(line) => format!(
                "the package registry (PyPI) is unreachable: {line}\n\
                 pip needs PyPI (or the index your pip.conf names) once, to fetch the pinned \
                 artefacts; check the network or proxy settings and run the command again"
            ),
            None => format!("pip install exited with {status}"),
        }));
    }
    std::fs::write(dir.join(".installed"), dist.marker())?;
    let took = started.elapsed();
    eprintln!(
        "harness: installed {} {} in {:.1}s",
        dist.engine,
        dist.version,
        took.as_secs_f64()
    );
    Ok(Some(took))
}

/// pip's arguments for installing a lock: every file hash-checked against the lock, no
/// dependency resolution, and wheels only (security review 2, finding 29: an sdist would
/// run its `setup.py` and fetch its build dependencies unhashed, pypa/pip#13984). The three
/// LocalStack dependencies PyPI has only as sdists come from `engines/wheels/` (built
/// reproducibly by `engines/build-wheels.sh`, hashed in the lock).
pub fn pip_install_args(lock: &Path, wheels: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--require-hashes",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--find-links",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(wheels.into());
    args.push("-r".into());
    args.push(lock.into());
    args
}

/// The line of a pip log that says the registry could not be reached, if one does.
pub fn unreachable_registry(log: &str) -> Option<&str> {
    const SIGNS: [&str; 7] = [
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "Connection refused",
        "ConnectTimeoutError",
        "Max retries exceeded",
    ];
    log.lines()
        .find(|l| SIGNS.iter().any(|s| l.contains(s)))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 29: installs take wheels only, hash-checked, and the vendored wheels of the
    /// sdist-only pins are the ones their lock names (so `--only-binary` finds every pin).
    #[test]
    fn installs_take_hashed_wheels_only() {
        let args: Vec<String> = pip_install_args(Path::new("l.lock"), Path::new("w"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let has = |pair: [&str; 2]| args.windows(2).any(|w| w[0] == pair[0] && w[1] == pair[1]);
        assert!(has(["--only-binary", ":all:"]), "{args:?}");
        assert!(has(["--find-links", "w"]), "{args:?}");
        assert!(args.contains(&"--require-hashes".to_string()));
        let dir = crate::paths::repo_root().join("engines/wheels");
        let mut wheels = 0;
        for e in std::fs::read_dir(&dir).expect("engines/wheels") {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "whl") {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                assert!(
                    LOCALSTACK.lock.contains(&hex),
                    "{} is not hashed in the LocalStack lock",
                    path.display()
                );
                wheels += 1;
            }
        }
        assert_eq!(wheels, 3);
    }

    /// Security review 2, M5: a venv is used only when its marker names this lock's
    /// SHA-256; the old marker (the version alone, which a restored cache or another lock's
    /// install also carries) and another lock's marker mean a reinstall.
    #[test]
    fn a_venv_is_trusted_only_for_the_lock_it_was_installed_from() {
        let d = tempfile::tempdir().unwrap();
        assert!(!MINISTACK.installed_in(d.path()), "no marker");
        std::fs::write(
            d.path().join(".installed"),
            format!("{}\n", MINISTACK.version),
        )
        .unwrap();
        assert!(!MINISTACK.installed_in(d.path()), "a version-only marker");
        std::fs::write(d.path().join(".installed"), LOCALSTACK.marker()).unwrap();
        assert!(!MINISTACK.installed_in(d.path()), "another lock's marker");
        std::fs::write(d.path().join(".installed"), MINISTACK.marker()).unwrap();
        assert!(MINISTACK.installed_in(d.path()));
        assert!(MINISTACK.marker().contains("lock-sha256 "));
    }

    #[test]
    fn an_unreachable_registry_is_named() {
        let log = "Looking in indexes: https://pypi.org/simple\n\
            WARNING: Retrying (Retry(total=4)) after connection broken by \
            'NewConnectionError(\"<pip._vendor.urllib3.connection.HTTPSConnection>: \
            Failed to establish a new connection: [Errno -3] Temporary failure in name resolution\")'\n\
            ERROR: Could not find a version that satisfies the requirement ziglang==0.17.0\n";
        let line = unreachable_registry(log).expect("recognised");
        assert!(
            line.contains("Temporary failure in name resolution"),
            "{line}"
        );
        assert_eq!(
            unreachable_registry("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES"),
            None
        );
    }

    #[test]
    fn tools_install_beside_not_among_the_engines() {
        let d = CARGO_LAMBDA.dir();
        assert_eq!(
            d.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str()),
            Some("tools")
        );
        assert!(MINISTACK.dir().parent().unwrap().ends_with("engines"));
    }

    /// A lock as pins, each with its hashes (`name==version \` then `    --hash=sha256:..`).
    fn pins(lock: &str) -> Vec<(&str, Vec<&str>)> {
        let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in lock.lines().filter(|l| !l.trim().is_empty()) {
            let item = line.trim().trim_end_matches('\\').trim();
            match item.strip_prefix("--hash=sha256:") {
                Some(h) => out.last_mut().expect("a hash follows a pin").1.push(h),
                None => out.push((item, Vec::new())),
            }
        }
        out
    }

    /// Finding 29: every pin of every lock is exact and carries a sha256, so
    /// `--require-hashes` holds.
    #[test]
    fn every_pin_has_a_hash() {
        for d in [&LOCALSTACK, &MINISTACK, &AWSCLI, &CARGO_LAMBDA] {
            let pins = pins(d.lock);
            assert!(pins.len() >= 2, "{}: {} pins", d.engine, pins.len());
            for (pin, hashes) in pins {
                assert!(pin.contains("=="), "{}: `{pin}` is not exact", d.engine);
                assert!(!hashes.is_empty(), "{}: `{pin}` has no hash", d.engine);
                for h in hashes {
                    assert!(
                        h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
                        "{}: `{pin}`: bad sha256 `{h}`",
                        d.engine
                    );
                }
            }
        }
    }
}

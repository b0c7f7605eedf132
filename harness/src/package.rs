//! The two Lambda functions packaged as AWS deploys them: `cargo lambda build --release`
//! per architecture, one zip per function holding its `bootstrap`, each checked for what
//! the `provided.al2023` runtime needs.
//!
//! - **Tools.** cargo-lambda and the zig toolchain it links with come from PyPI at pinned
//!   versions with hashes (`engines/cargo-lambda-requirements.lock`), installed once into
//!   `<cache>/tools/` like the engines ([`crate::engine::venv`]).
//! - **Output.** `<target>/lambda-zips/<arch>/<function>/bootstrap.zip`, where `<target>` is
//!   cargo's target directory (`CARGO_TARGET_DIR`, else `target/` of the workspace):
//!   outside the sources and gitignored.
//! - **The check** ([`inspect`]). A `provided.al2023` function runs the zip's `bootstrap`
//!   on Amazon Linux 2023 ("The runtime runs the function's bootstrap file", Lambda
//!   Developer Guide, "Building a custom runtime"; AL2023 ships glibc 2.34): the zip must
//!   hold an executable regular file named `bootstrap` at its root, an ELF for the
//!   function's architecture (x86-64 or AArch64), linked statically or dynamically
//!   against the system loader with no glibc symbol version newer than 2.34. cargo-lambda
//!   links against glibc through zig (dynamic, `GLIBC_2.x` requirements well below 2.34);
//!   [`inspect`] reads the actual requirements from the ELF's `.gnu.version_r`.
//!
//! Floor 1: may import floor 0 (ground).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::engine::venv;
use crate::engine::EngineError;

/// The newest glibc symbol version `provided.al2023` offers (Amazon Linux 2023: glibc 2.34).
pub const AL2023_GLIBC: (u32, u32) = (2, 34);

/// The functions, by their Cargo package (and binary) names.
pub const FUNCTIONS: [&str; 2] = ["checksum-validator", "failure-notifier"];

/// Where a function's zip lies in an artifact bucket (the templates' `*ZipKey` defaults).
pub fn artifact_key(function: &str) -> String {
    format!("{function}/bootstrap.zip")
}

/// A Lambda instruction set architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    /// Lambda's name for it (`Architectures` in `CreateFunction`).
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target cargo-lambda builds for it.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// ELF `e_machine`.
    fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Arm64 => 183,
        }
    }

    /// The dynamic loader Amazon Linux 2023 has for it.
    fn loader(self) -> &'static str {
        match self {
            Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
            Arch::Arm64 => "/lib/ld-linux-aarch64.so.1",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.lambda_name())
    }
}

/// How a bootstrap is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    Static,
    /// Through the system loader; `glibc` is the newest `GLIBC_x.y` it requires.
    Dynamic {
        interpreter: String,
        glibc: Option<(u32, u32)>,
    },
}

impl std::fmt::Display for Linkage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Linkage::Static => f.write_str("static"),
            Linkage::Dynamic {
                glibc: Some((a, b)),
                ..
            } => write!(f, "dynamic, glibc >= {a}.{b}"),
            Linkage::Dynamic { glibc: None, .. } => f.write_str("dynamic, no glibc version"),
        }
    }
}

/// What [`inspect`] found in a zip's `bootstrap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub arch: Arch,
    pub linkage: Linkage,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// SHA-256 of the executable itself (hex). Unlike the zip's, it does not carry the build
    /// time (a zip entry records its file's modification time), so it names the code.
    pub sha256: String,
}

/// Lower-case hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One deployable zip.
#[derive(Debug, Clone)]
pub struct Package {
    pub function: &'static str,
    pub arch: Arch,
    pub path: PathBuf,
    pub size: u64,
    /// SHA-256 of the zip (hex): what `CreateFunction` uploads; differs on every build.
    pub sha256: String,
    pub bootstrap: Bootstrap,
}

impl Package {
    /// The zip's bytes (for `CreateFunction`).
    pub fn bytes(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(&self.path)
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target/` of the repository.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                crate::paths::repo_root().join(d)
            }
        }
        None => crate::paths::repo_root().join("target"),
    }
}

/// Where the zips of `arch` go: `<target>/lambda-zips/<arch>`.
pub fn out_dir(arch: Arch) -> PathBuf {
    target_dir().join("lambda-zips").join(arch.lambda_name())
}

/// The zip of `function` for `arch`.
pub fn zip_path(arch: Arch, function: &str) -> PathBuf {
    out_dir(arch).join(function).join("bootstrap.zip")
}

/// Whether the Rust standard library for `arch` is installed (cargo cannot build for a
/// target without it, and only rustup can fetch it).
pub fn target_installed(arch: Arch) -> bool {
    let Ok(out) = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "target-libdir", "--target", arch.rust_target()])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("libstd-") && n.ends_with(".rlib")
            })
        })
}

/// Installs the Rust standard library for `arch` with `rustup target add` when it is
/// missing (rustup keeps it in the toolchain's own directory, outside the repository; the
/// toolchain's version pins it). Without rustup, or when the download fails, the error
/// says what to run.
pub fn ensure_target(arch: Arch) -> Result<(), PackageError> {
    if target_installed(arch) {
        return Ok(());
    }
    let target = arch.rust_target();
    eprintln!("harness: the Rust standard library for {target} is missing; running `rustup target add {target}` ...");
    let rustup = std::env::var_os("RUSTUP").unwrap_or_else(|| "rustup".into());
    let why = match Command::new(&rustup).args(["target", "add", target]).status() {
        Ok(status) if status.success() && target_installed(arch) => return Ok(()),
        Ok(status) if status.success() => {
            "rustup reported success but rustc still has no standard library for it \
             (is RUSTC pointing at a toolchain rustup does not manage?)"
                .to_string()
        }
        Ok(status) => format!("`rustup target add {target}` failed ({status}; its output is above; is the network reachable?)"),
        Err(e) => format!("rustup could not be run ({e}); install rustup from https://rustup.rs"),
    };
    Err(PackageError::MissingTarget { arch, target, why })
}

/// One architecture's build: its packages and how long `cargo lambda build` took.
#[derive(Debug)]
pub struct Built {
    pub arch: Arch,
    pub took: Duration,
    pub packages: Vec<Package>,
}

/// Builds both functions for `arch` with the pinned cargo-lambda (installing it on first
/// use), then checks and describes each zip. cargo's own output goes to stderr.
pub fn build(arch: Arch) -> Result<Built, PackageError> {
    venv::ensure_installed(&venv::CARGO_LAMBDA, true)?;
    ensure_target(arch)?;
    let bin = venv::CARGO_LAMBDA.dir().join("bin");
    // cargo-zigbuild finds zig as `python3 -m ziglang`: the venv's python has it.
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![bin.clone()];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).map_err(|e| std::io::Error::other(e.to_string()))?
        }
        None => bin.clone().into_os_string(),
    };
    let started = Instant::now();
    let mut cmd = Command::new(bin.join(venv::CARGO_LAMBDA.entry));
    cmd.arg("lambda")
        .args(["build", "--release", "--output-format", "zip"])
        .args(["--target", arch.rust_target()])
        .arg("--lambda-dir")
        .arg(out_dir(arch));
    for f in FUNCTIONS {
        cmd.args(["--package", f]);
    }
    let status = cmd
        .current_dir(crate::paths::repo_root())
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target_dir())
        .status()?;
    if !status.success() {
        return Err(PackageError::Build {
            arch,
            status: status.to_string(),
        });
    }
    let took = started.elapsed();
    Ok(Built {
        arch,
        took,
        packages: locate(arch)?,
    })
}

/// The built zips of `arch`, each checked ([`inspect`]).
pub fn locate(arch: Arch) -> Result<Vec<Package>, PackageError> {
    FUNCTIONS
        .iter()
        .map(|f| describe(f, arch, &zip_path(arch, f)))
        .collect()
}

/// Checks and describes one zip.
pub fn describe(function: &'static str, arch: Arch, path: &Path) -> Result<Package, PackageError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PackageError::NotBuilt {
            path: path.to_path_buf(),
            arch,
        },
        _ => PackageError::Io(e),
    })?;
    let bootstrap = inspect(&bytes, arch).map_err(|why| PackageError::Bootstrap {
        path: path.to_path_buf(),
        why,
    })?;
    let sha256 = sha256_hex(&bytes);
    Ok(Package {
        function,
        arch,
        path: path.to_path_buf(),
        size: bytes.len() as u64,
        sha256,
        bootstrap,
    })
}

/// Checks a deployment zip for `provided.al2023` on `arch` (see the module docs); the
/// error says what is wrong.
pub fn inspect(zip: &[u8], arch: Arch) -> Result<Bootstrap, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| format!("not a zip archive: {e}"))?;
    let mut entry = archive
        .by_name("bootstrap")
        .map_err(|_| "no `bootstrap` at the root of the zip".to_string())?;
    if !entry.is_file() {
        return Err("`bootstrap` is not a regular file".into());
    }
    match entry.unix_mode() {
        Some(mode) if mode & 0o111 != 0 => {}
        Some(mode) => {
            return Err(format!(
                "`bootstrap` is not executable (mode {mode:o}): Lambda answers Runtime.InvalidEntrypoint"
            ))
        }
        None => return Err("`bootstrap` carries no Unix permissions (not executable)".into()),
    }
    // Lambda's limit on a function's unzipped code is 250 MB ("Lambda quotas"); a zip
    // claiming more is refused before anything is allocated for it (review 2, L12).
    if entry.size() > LAMBDA_UNZIPPED_LIMIT {
        return Err(format!(
            "`bootstrap` unzips to {} bytes, over Lambda's {LAMBDA_UNZIPPED_LIMIT}-byte limit for unzipped code",
            entry.size()
        ));
    }
    let mut elf = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut elf)
        .map_err(|e| format!("reading `bootstrap`: {e}"))?;
    let bootstrap = inspect_elf(&elf, arch)?;
    if let Linkage::Dynamic { interpreter, glibc } = &bootstrap.linkage {
        if interpreter != arch.loader() {
            return Err(format!(
                "`bootstrap` asks for the loader {interpreter}, Amazon Linux 2023 has {}",
                arch.loader()
            ));
        }
        if let Some(v) = glibc.filter(|v| *v > AL2023_GLIBC) {
            return Err(format!(
                "`bootstrap` needs glibc {}.{}; provided.al2023 has {}.{}",
                v.0, v.1, AL2023_GLIBC.0, AL2023_GLIBC.1
            ));
        }
    }
    Ok(bootstrap)
}

/// Lambda's quota on a function's code, unzipped: 250 MB.
const LAMBDA_UNZIPPED_LIMIT: u64 = 250 * 1024 * 1024;

/// `base + add`, or an error naming a crafted offset (no overflow panic; review 2, L12).
fn off(base: usize, add: usize) -> Result<usize, String> {
    base.checked_add(add)
        .ok_or_else(|| format!("ELF offset {base} + {add} overflows"))
}

/// `base + index * size`, checked.
fn entry_at(base: usize, index: usize, size: usize) -> Result<usize, String> {
    index
        .checked_mul(size)
        .and_then(|o| base.checked_add(o))
        .ok_or_else(|| format!("ELF table entry {index} (size {size}) at {base} overflows"))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..off(at, 2)?)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("truncated ELF (offset {at})"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..off(at, 4)?)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| format!("truncated ELF (offset {at})"))
}

fn u64_at(b: &[u8], at: usize) -> Result<usize, String> {
    b.get(at..off(at, 8)?)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| format!("truncated ELF (offset {at})"))
}

fn c_str(b: &[u8], at: usize) -> Result<&str, String> {
    let rest = b
        .get(at..)
        .ok_or_else(|| format!("truncated ELF (offset {at})"))?;
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).map_err(|_| format!("bad string at {at}"))
}

/// The architecture and linkage of a 64-bit little-endian ELF executable (both Lambda
/// architectures are), with the newest `GLIBC_x.y` of its version needs.
pub fn inspect_elf(b: &[u8], arch: Arch) -> Result<Bootstrap, String> {
    if b.get(0..4) != Some(b"\x7fELF") {
        return Err("`bootstrap` is not an ELF executable".into());
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("`bootstrap` is not a 64-bit little-endian ELF".into());
    }
    let e_type = u16_at(b, 16)?;
    if e_type != 2 && e_type != 3 {
        return Err(format!(
            "`bootstrap` is not an executable (ELF type {e_type})"
        ));
    }
    let machine = u16_at(b, 18)?;
    let found = Arch::ALL.into_iter().find(|a| a.elf_machine() == machine);
    if found != Some(arch) {
        return Err(format!(
            "`bootstrap` is built for {} (ELF machine {machine}), the function is {arch}",
            found
                .map(|a| a.to_string())
                .unwrap_or_else(|| "another machine".into())
        ));
    }
    let (phoff, phentsize, phnum) = (u64_at(b, 32)?, u16_at(b, 54)? as usize, u16_at(b, 56)?);
    let mut interpreter = None;
    for i in 0..phnum as usize {
        let at = entry_at(phoff, i, phentsize)?;
        if u32_at(b, at)? == 3 {
            let (start, len) = (u64_at(b, off(at, 8)?)?, u64_at(b, off(at, 32)?)?);
            let raw = b
                .get(start..off(start, len)?)
                .ok_or("truncated ELF (PT_INTERP)".to_string())?;
            interpreter = Some(
                String::from_utf8_lossy(raw)
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
    }
    let Some(interpreter) = interpreter else {
        return Ok(Bootstrap {
            arch,
            linkage: Linkage::Static,
            size: b.len() as u64,
            sha256: sha256_hex(b),
        });
    };
    // Version needs: the SHT_GNU_verneed section and the string table it links to.
    let (shoff, shentsize, shnum) = (u64_at(b, 40)?, u16_at(b, 58)? as usize, u16_at(b, 60)?);
    let section = |i: usize| -> Result<(u32, usize, usize, u32), String> {
        let at = entry_at(shoff, i, shentsize)?;
        Ok((
            u32_at(b, off(at, 4)?)?,
            u64_at(b, off(at, 24)?)?,
            u64_at(b, off(at, 32)?)?,
            u32_at(b, off(at, 40)?)?,
        ))
    };
    let mut glibc: Option<(u32, u32)> = None;
    for i in 0..shnum as usize {
        let (kind, offset, _size, link) = section(i)?;
        if kind != 0x6fff_fffe {
            continue;
        }
        let (_, strtab, _, _) = section(link as usize)?;
        let mut need = offset;
        loop {
            let (count, aux, next) = (
                u16_at(b, off(need, 2)?)?,
                u32_at(b, off(need, 8)?)?,
                u32_at(b, off(need, 12)?)?,
            );
            let mut a = off(need, aux as usize)?;
            for _ in 0..count {
                let name = c_str(b, off(strtab, u32_at(b, off(a, 8)?)? as usize)?)?;
                if let Some(v) = name.strip_prefix("GLIBC_") {
                    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
                    if let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) {
                        glibc = glibc.max(Some((major, minor)));
                    }
                }
                let step = u32_at(b, off(a, 12)?)?;
                if step == 0 {
                    break;
                }
                a = off(a, step as usize)?;
            }
            if next == 0 {
                break;
            }
            need = off(need, next as usize)?;
        }
    }
    Ok(Bootstrap {
        arch,
        linkage: Linkage::Dynamic { interpreter, glibc },
        size: b.len() as u64,
        sha256: sha256_hex(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Security review 2, L12: offsets and counts a crafted ELF header chooses are checked:
    /// an error, never an overflow panic (debug builds) or a wrapped read.
    #[test]
    fn crafted_elf_offsets_are_errors_not_panics() {
        let header = |phoff: u64, phentsize: u16, phnum: u16| {
            let mut b = vec![0u8; 64];
            b[0..4].copy_from_slice(b"\x7fELF");
            b[4] = 2;
            b[5] = 1;
            b[16..18].copy_from_slice(&2u16.to_le_bytes());
            b[18..20].copy_from_slice(&Arch::X86_64.elf_machine().to_le_bytes());
            b[32..40].copy_from_slice(&phoff.to_le_bytes());
            b[54..56].copy_from_slice(&phentsize.to_le_bytes());
            b[56..58].copy_from_slice(&phnum.to_le_bytes());
            b
        };
        for (phoff, phentsize, phnum) in [
            (u64::MAX - 3, 56, 2),
            (u64::MAX / 2, u16::MAX, u16::MAX),
            (64, 56, 3),
        ] {
            let b = header(phoff, phentsize, phnum);
            let e = inspect_elf(&b, Arch::X86_64).expect_err("a crafted header is refused");
            assert!(e.contains("ELF"), "{e}");
        }
    }

    fn zip_of(name: &str, body: &[u8], mode: u32) -> Vec<u8> {
        zip_at(name, body, mode, zip::DateTime::default())
    }

    fn zip_at(name: &str, body: &[u8], mode: u32, mtime: zip::DateTime) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(mode)
                .last_modified_time(mtime);
            w.start_file(name, opts).unwrap();
            w.write_all(body).unwrap();
            w.finish().unwrap();
        }
        out.into_inner()
    }

    /// This test binary is an x86-64 glibc executable like a cargo-lambda bootstrap: the
    /// check reads its loader and glibc needs from the ELF itself.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn reads_arch_loader_and_glibc_from_a_real_elf() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let b = inspect_elf(&me, Arch::X86_64).expect("an x86-64 ELF");
        match &b.linkage {
            Linkage::Dynamic { interpreter, glibc } => {
                assert_eq!(interpreter, "/lib64/ld-linux-x86-64.so.2");
                let (major, minor) = glibc.expect("a glibc program needs some GLIBC_x.y");
                assert_eq!(major, 2);
                assert!(minor >= 2, "{minor}");
            }
            Linkage::Static => panic!("test binaries link glibc dynamically"),
        }
        let wrong = inspect_elf(&me, Arch::Arm64).unwrap_err();
        assert!(wrong.contains("built for x86_64"), "{wrong}");
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_zip_needs_an_executable_bootstrap_at_its_root() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let ok = inspect(&zip_of("bootstrap", &me, 0o755), Arch::X86_64);
        // The test binary may need a newer glibc than AL2023's; either way it is judged on
        // the version it needs.
        match ok {
            Ok(b) => assert_eq!(b.arch, Arch::X86_64),
            Err(e) => assert!(e.contains("needs glibc"), "{e}"),
        }
        let e = inspect(&zip_of("bootstrap", &me, 0o644), Arch::X86_64).unwrap_err();
        assert!(e.contains("not executable"), "{e}");
        let e = inspect(&zip_of("bin/bootstrap", &me, 0o755), Arch::X86_64).unwrap_err();
        assert!(e.contains("no `bootstrap` at the root"), "{e}");
        let e = inspect(&zip_of("bootstrap", b"#!/bin/sh\n", 0o755), Arch::X86_64).unwrap_err();
        assert!(e.contains("not an ELF"), "{e}");
        assert!(inspect(b"not a zip", Arch::X86_64)
            .unwrap_err()
            .contains("not a zip"));
    }

    /// The same executable zipped at two times: the zips' hashes differ (the entry records
    /// its modification time), the bootstrap's hash, the one `harness package` prints as the
    /// code's identity, does not, and it is the SHA-256 of the executable's bytes.
    #[test]
    fn the_bootstrap_hash_names_the_code_not_the_build_time() {
        let elf = static_arm64_elf();
        let at = |h: u8| zip::DateTime::from_date_and_time(2026, 12, 2, h, 0, 0).unwrap();
        let (a, b) = (
            zip_at("bootstrap", &elf, 0o755, at(9)),
            zip_at("bootstrap", &elf, 0o755, at(10)),
        );
        assert_ne!(sha256_hex(&a), sha256_hex(&b));
        let (ba, bb) = (
            inspect(&a, Arch::Arm64).unwrap(),
            inspect(&b, Arch::Arm64).unwrap(),
        );
        assert_eq!(ba.sha256, bb.sha256);
        // FIPS 180-2's "abc" vector, so the hex is SHA-256's and not some other digest's.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ba.sha256, sha256_hex(&elf));
    }

    /// A minimal static AArch64 ELF header (no program headers).
    fn static_arm64_elf() -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[0..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[16] = 2; // ET_EXEC
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        elf
    }

    /// A minimal static AArch64 ELF header (no program headers): static, right arch.
    #[test]
    fn a_static_elf_has_no_glibc_need() {
        let elf = static_arm64_elf();
        let b = inspect_elf(&elf, Arch::Arm64).unwrap();
        assert_eq!(b.linkage, Linkage::Static);
        assert!(inspect_elf(&elf, Arch::X86_64).is_err());
    }

    #[test]
    fn zips_live_under_the_target_dir_by_arch_and_function() {
        let p = zip_path(Arch::Arm64, "checksum-validator");
        assert!(
            p.ends_with("lambda-zips/arm64/checksum-validator/bootstrap.zip"),
            "{p:?}"
        );
        assert!(p.starts_with(target_dir()));
    }
}

/// Errors while packaging the Lambda functions (`harness package`).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Tools(#[from] EngineError),
    #[error("{arch}: the Rust standard library for {target} is not installed and could not be added: {why}. Install it with `rustup target add {target}` and run again")]
    MissingTarget {
        arch: Arch,
        target: &'static str,
        why: String,
    },
    #[error("`cargo lambda build` for {arch} failed ({status}); its output is above")]
    Build { arch: Arch, status: String },
    #[error("{path}: not what provided.al2023 runs: {why}")]
    Bootstrap { path: PathBuf, why: String },
    #[error("{path} is not built: run `make package` (or `harness package --arch {arch}`)")]
    NotBuilt { path: PathBuf, arch: Arch },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

//! `harness package`: builds the functions' deployment zips for each architecture and
//! prints each zip's size and SHA-256 (see [`crate::package`]).

use clap::Args;

use crate::package::{self, Arch};

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Architecture to build for (repeatable; default: x86_64 and arm64).
    #[arg(long = "arch", value_enum)]
    pub arch: Vec<Arch>,
}

impl PackageArgs {
    /// 0 when every architecture was built and checked; 2 when one could not be (its error
    /// printed; the others are still built).
    pub async fn run(self) -> anyhow::Result<i32> {
        let archs = if self.arch.is_empty() {
            Arch::ALL.to_vec()
        } else {
            self.arch
        };
        let mut failed = 0;
        for arch in archs {
            eprintln!(
                "harness: cargo lambda build --release --target {} (both functions) ...",
                arch.rust_target()
            );
            match tokio::task::spawn_blocking(move || package::build(arch)).await? {
                Ok(built) => {
                    println!("{arch}: built in {:.1}s", built.took.as_secs_f64());
                    for p in &built.packages {
                        println!(
                            "  {}  {} bytes  sha256 {}",
                            p.path.display(),
                            p.size,
                            p.sha256
                        );
                        println!(
                            "    bootstrap: {} bytes  sha256 {}  {} ELF, {} (provided.al2023 has glibc {}.{})",
                            p.bootstrap.size,
                            p.bootstrap.sha256,
                            p.bootstrap.arch,
                            p.bootstrap.linkage,
                            package::AL2023_GLIBC.0,
                            package::AL2023_GLIBC.1
                        );
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    failed += 1;
                }
            }
        }
        println!(
            "zips under {}",
            package::target_dir().join("lambda-zips").display()
        );
        Ok(if failed == 0 { 0 } else { 2 })
    }
}

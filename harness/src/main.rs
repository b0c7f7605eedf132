//! The `harness` binary.

use clap::Parser;
use harness::cli::{self, Cli};

/// glibc gives each thread that meets contention a malloc arena of its own (up to 8 per
/// core) and keeps what those arenas freed resident, so a long `harness up` held several
/// times its live heap: heaptrack measured a 13 MiB peak heap at 63 MiB RSS after 4,000
/// objects. Two arenas keep the RSS near the live heap; an explicit `MALLOC_ARENA_MAX` in
/// the environment wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes the allocator's tuning; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    cli::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

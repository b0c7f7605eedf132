//! The `autobackup` command. See `autobackup --help` and [`autobackup_agent::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = autobackup_agent::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    std::process::ExitCode::from(runtime.block_on(autobackup_agent::cli::run(cli)))
}

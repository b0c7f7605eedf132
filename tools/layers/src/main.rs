//! `cargo run -p layers -- CRATE ROOT_FILE [--edges]`: prints a crate's import circles (and,
//! with `--edges`, every import between its files). The rule itself is the workspace test.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(root)) = (args.first(), args.get(1)) else {
        eprintln!("usage: layers CRATE ROOT_FILE [--edges]");
        return ExitCode::from(2);
    };
    let graph = match layers::Graph::from_crate(name, Path::new(root), Path::new(".")) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("layers: {e}");
            return ExitCode::from(2);
        }
    };
    if args.iter().any(|a| a == "--edges") {
        for ((from, to), sites) in &graph.edges {
            println!(
                "{} -> {}  ({})",
                layers::display(from),
                layers::display(to),
                sites[0]
            );
        }
    }
    match graph.circles_report() {
        Some(report) => {
            print!("{report}");
            ExitCode::from(1)
        }
        None => {
            println!("{name}: no import circles ({} files)", graph.files.len());
            ExitCode::SUCCESS
        }
    }
}

//! `renkei-bench`: the city-scale benchmark's command line (BENCHMARKS.md); never point it at a
//! real database.

use std::process::ExitCode;

use clap::Parser;
use renkei_bench::BenchCommand;

#[derive(Parser)]
#[command(name = "renkei-bench", version, about = "Renkei Note city-scale benchmark")]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match renkei_bench::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("renkei-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

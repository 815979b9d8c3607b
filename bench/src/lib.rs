//! The city-scale benchmark (BENCHMARKS.md), kept apart from the service: the `renkei` binary
//! carries none of it. `renkei-bench seed` fills a database with a synthetic city through the
//! service's own library; `renkei-bench load` drives a running server over loopback and reports
//! throughput and latency; `renkei-bench ceiling` replays the server's own SQL with pgbench;
//! `renkei-bench upload` sends large attachments at once and watches the server's memory;
//! `renkei-bench feed` reads the change feed back and fans its live stream out to many clients.
//! None of this is part of the test suite; a smoke run at a tiny scale is.

pub mod ceiling;
pub mod feed;
pub mod load;
pub mod seed;
pub mod upload;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Fill a database with a synthetic city (bulk loading; nothing resembles a real person).
    Seed(seed::Args),
    /// Drive a running server with HTTP load at fixed concurrency levels and report.
    Load(load::Args),
    /// Replay the SQL the server issues for a note POST and a timeline read with pgbench.
    Ceiling(ceiling::Args),
    /// Upload large attachments at once; report throughput and the server's memory.
    Upload(upload::Args),
    /// Page through the change feed, and fan its event stream out to many clients at once.
    Feed(feed::Args),
}

pub fn run(command: BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Seed(args) => seed::run(args),
        BenchCommand::Load(args) => load::run(args),
        BenchCommand::Ceiling(args) => ceiling::run(args),
        BenchCommand::Upload(args) => upload::run(args),
        BenchCommand::Feed(args) => feed::run(args),
    }
}

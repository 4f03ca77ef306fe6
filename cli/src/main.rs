//! `sqsbalancer`: the operator's command for a fleet sharing SQS queues.
//!
//! Exit status: 0 on success, 1 when an input file is missing or wrong (one line on stderr naming
//! the file and line), 2 for a malformed command line; `status` also exits 2 when queues stay
//! unowned past the failover bound; `sim` exits 3, 4 or 5 when a run broke a safety, liveness or
//! crash invariant.

mod demo;
mod error;
mod plan;
mod sim;
mod status;
mod worker;

use clap::{Parser, Subcommand};
use error::CliError;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Share many SQS queues across a fleet: exact balance, minimal movement, fenced ownership.
#[derive(Parser)]
#[command(name = "sqsbalancer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the target assignment of queues to instances, and what moves from --current.
    Plan {
        /// Members: one instance id per line, optionally followed by an integer weight.
        #[arg(long, value_name = "FILE")]
        members: PathBuf,
        /// Queues: one queue URL or name per line.
        #[arg(long, value_name = "FILE")]
        queues: PathBuf,
        /// The current owners: JSON mapping queue to instance, as an earlier --json plan printed.
        #[arg(long, value_name = "FILE")]
        current: Option<PathBuf>,
        /// Print one JSON object (assignment, load, moved) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deterministic cluster simulations: one seed, a swarm of seeds, or a replay.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Run one instance of the fleet until SIGTERM or SIGINT, then stop it gracefully.
    Worker(Box<worker::WorkerArgs>),
    /// Show a live fleet from its coordination table: instances, owners, balance, unowned queues.
    Status(status::StatusArgs),
    /// A fleet of real runtime instances over an in-memory SQS and DynamoDB (no AWS needed)
    /// telling a scripted story: traffic, a scale-out, a crash, a graceful stop, queue churn.
    Demo(demo::DemoArgs),
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Plan {
            members,
            queues,
            current,
            json,
        } => {
            let input = plan::load(&members, &queues, current.as_deref())?;
            let a = plan::plan(&input);
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", plan::to_json(&a, &input.current))?;
            } else {
                write!(out, "{}", plan::to_table(&a, &input.current))?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Sim(cmd) => sim::run(cmd),
        Command::Worker(args) => worker::run(*args),
        Command::Status(args) => status::run(args),
        Command::Demo(args) => demo::run(args),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

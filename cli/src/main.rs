//! `sqsbalancer`: the operator's command for a fleet sharing SQS queues.
//!
//! Exit status:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a failure: an input file missing or wrong (one line on stderr naming the file and line), AWS out of reach, a table that cannot be used |
//! | 2 | a malformed command line, or a configuration the balancer refused (the option is named) |
//! | 3, 4, 5 | `sim`: a run broke a safety, liveness or crash invariant |
//! | 6 | `status`: queues stayed unowned past the failover bound |
//! | 7 | `worker`: the graceful stop passed `--shutdown-timeout`; peers take the rest over as after a crash |
//! | 8 | `worker`: peers declared the instance dead while it stopped (the table was out of reach) |

mod demo;
mod error;
mod plan;
mod sim;
mod status;
mod table;
mod worker;

use clap::{Parser, Subcommand};
use error::CliError;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Share many SQS queues across a fleet: exact balance, minimal movement, fenced ownership.
#[derive(Parser)]
#[command(name = "sqsbalancer", version, about, max_term_width = 100)]
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
        /// Queues' loads, one queue and a whole number per line (any unit, say handler
        /// milliseconds per second): balance load instead of queue counts.
        #[arg(long, value_name = "FILE")]
        loads: Option<PathBuf>,
        /// With --loads: how far in percent a member's load may stray from its share before
        /// queues move.
        #[arg(long, value_name = "PERCENT", default_value_t = 10, requires = "loads",
              value_parser = clap::value_parser!(u32).range(0..=100))]
        band: u32,
        /// Print one JSON object (assignment, load, moved, and with --loads work) instead of a
        /// table.
        #[arg(long)]
        json: bool,
    },
    /// Deterministic cluster simulations: one seed, a swarm of seeds, or a replay.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Run one instance of the fleet until SIGTERM or SIGINT, then stop it gracefully.
    #[command(after_help = WORKER_NOTES)]
    Worker(Box<worker::WorkerArgs>),
    /// Show a live fleet from its coordination table: instances, owners, balance, unowned queues.
    Status(status::StatusArgs),
    /// A fleet of real runtime instances over an in-memory SQS and DynamoDB (no AWS needed)
    /// telling a scripted story: traffic, a scale-out, a crash, a graceful stop, queue churn.
    Demo(demo::DemoArgs),
}

/// What `worker --help` adds after its options.
const WORKER_NOTES: &str = "\
The AWS SDK's variables apply too: AWS_REGION, AWS_PROFILE (SSO profiles
included), AWS_ENDPOINT_URL and the credential chain.

Exit status: 0 stopped cleanly; 1 failed (AWS out of reach, unusable table);
2 bad flag or option; 7 the stop passed --shutdown-timeout; 8 peers declared
the instance dead while it stopped.";

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Plan {
            members,
            queues,
            current,
            loads,
            band,
            json,
        } => {
            let files = plan::PlanFiles {
                members: &members,
                queues: &queues,
                current: current.as_deref(),
                loads: loads.as_deref(),
            };
            let band = sqsbalancer_core::Band::percent(band).expect("clap bounds the band");
            let input = plan::load(&files, band)?;
            let a = plan::plan(&input);
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", plan::to_json(&a, &input))?;
            } else {
                write!(out, "{}", plan::to_table(&a, &input))?;
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

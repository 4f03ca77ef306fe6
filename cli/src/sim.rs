//! `sqsbalancer sim`: run, swarm and replay simulations, and print what they measured: level 1
//! (the core nodes in the discrete-event simulator, the default), level 2 (the real runtime of
//! every instance on turmoil hosts, `--level 2`) or level 3 (as level 2, through the real AWS
//! SDK clients over turmoil's network to an HTTP server speaking the services' protocols,
//! `--level 3`).
//!
//! The simulator itself never reads a clock; the wall time printed here (for the simulated-to-
//! wall ratio) is measured around it by this command.

use crate::error::CliError;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqsbalancer_core::ReadCause;
use sqsbalancer_core::config::Balance;
use sqsbalancer_sim::report::Spread;
use sqsbalancer_sim::scenario::{FaultKind, Schedule};
use sqsbalancer_sim::{
    Level, Mutation, Progress, Report, Scenario, SwarmLimits, SwarmSummary, Traffic, level2,
    parse_duration, timeline,
};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// How `sim run`, `sim swarm` and `sim replay` exit, printed under their help.
const EXIT_STATUS: &str = "Exit status: 0 when every invariant held; when one broke, by its \
class: 3 safety (exclusive-receive, receive-within-fence, delete-after-success, epoch-grows), \
4 liveness (no-loss, settled-balance, graceful-stop), 5 crash (no-panic). A swarm with \
several classes exits with the lowest of their codes. 1 for a file that cannot be written, \
2 for a malformed command line.";

/// The simulation commands.
#[derive(Subcommand)]
pub enum SimCommand {
    /// Run one seed and print its summary.
    #[command(after_help = EXIT_STATUS)]
    Run(RunArgs),
    /// Run many seeds, each with its own size and fault mix.
    #[command(after_help = EXIT_STATUS)]
    Swarm(SwarmArgs),
    /// Run a seed of the swarm again, with its trace on stdout.
    #[command(after_help = EXIT_STATUS)]
    Replay(ReplayArgs),
}

/// The options of `sim run`.
#[derive(Args)]
pub struct RunArgs {
    /// The seed.
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    level: LevelArg,
    /// Instances at the start (default: drawn from the seed).
    #[arg(long)]
    instances: Option<usize>,
    /// Queues at the start (default: drawn from the seed).
    #[arg(long)]
    queues: Option<usize>,
    /// Simulated length, e.g. 15m or 1h; the last 4 minutes are calm.
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// Fault kinds, comma-separated, or `all` or `none` (default: drawn from the seed).
    #[arg(long)]
    faults: Option<String>,
    /// Multiply every fault rate drawn from the seed by this (e.g. 0.01 for a bad day
    /// rather than the swarm's storm); restarts, latency and drift unchanged.
    #[arg(long, value_name = "X", value_parser = fault_scale)]
    fault_scale: Option<f64>,
    /// Messages sent per simulated second.
    #[arg(long)]
    rate: Option<u64>,
    /// Partition keys the queue records are spread over (default: drawn from the seed).
    #[arg(long, value_name = "N")]
    queue_partition_keys: Option<u32>,
    /// Partition keys the instance records are spread over (default: 1).
    #[arg(long, value_name = "N")]
    instance_partition_keys: Option<u32>,
    /// Script membership events on top of the drawn faults (level 1): `crash-and-roll` crashes
    /// a tenth of the fleet a quarter of the way in, brings it back a twelfth later, then
    /// restarts the whole fleet a tenth at a time (the day G11 measures).
    #[arg(long, value_name = "NAME", value_parser = schedule, default_value = "none")]
    schedule: Schedule,
    /// How the messages spread over the queues: `uniform`, or `zipf` (queue n drawn
    /// with weight (n + 1)^-1.1, and 5% of the queues with handlers ten times slower; G14);
    /// default: drawn from the seed.
    #[arg(long, value_name = "SHAPE", value_parser = traffic)]
    traffic: Option<Traffic>,
    /// What the instances' targets balance: `count` (queue counts, the default) or `load`
    /// (the loads the instances measure and publish, within the default 10% band; G14).
    #[arg(long, value_name = "WHAT", value_parser = balance, default_value = "count")]
    balance: Balance,
    /// Plant a deliberate bug to watch the checker catch it: ignore-stop, drop-redelivered,
    /// delete-failures, hand-off-keeps-epoch, wrong-capacity, skip-release-on-stop,
    /// panic-in-runtime (level 2 and 3), ignore-send-by.
    #[arg(long, value_name = "BUG", value_parser = plant)]
    plant: Option<Mutation>,
    /// Write the JSON-lines trace here.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write the SVG timeline of ownership here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print how far the run has got on stderr once a simulated minute, with the wall time
    /// spent (level 1).
    #[arg(long)]
    progress: bool,
}

/// The options of `sim swarm`.
#[derive(Args)]
pub struct SwarmArgs {
    #[command(flatten)]
    level: LevelArg,
    /// How many seeds.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Limit each seed's fault kinds to these (comma-separated; default: all kinds).
    #[arg(long)]
    faults: Option<String>,
    /// Multiply every seed's drawn fault rates by this (see `sim run --fault-scale`).
    #[arg(long, value_name = "X", value_parser = fault_scale)]
    fault_scale: Option<f64>,
    /// Every seed's traffic shape (see `sim run --traffic`; default: uniform).
    #[arg(long, value_name = "SHAPE", value_parser = traffic)]
    traffic: Option<Traffic>,
    /// What every seed's targets balance (see `sim run --balance`; default: count).
    #[arg(long, value_name = "WHAT", value_parser = balance)]
    balance: Option<Balance>,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    json: bool,
}

/// The options of `sim replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// The seed.
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    level: LevelArg,
    /// The fault kinds the swarm was limited to, if it was (`sim swarm --faults`).
    #[arg(long)]
    faults: Option<String>,
    /// The swarm's fault scale, if it had one (`sim swarm --fault-scale`).
    #[arg(long, value_name = "X", value_parser = fault_scale)]
    fault_scale: Option<f64>,
    /// The swarm's traffic shape, if it had one (`sim swarm --traffic`).
    #[arg(long, value_name = "SHAPE", value_parser = traffic)]
    traffic: Option<Traffic>,
    /// The swarm's balance, if it named one (`sim swarm --balance`).
    #[arg(long, value_name = "WHAT", value_parser = balance)]
    balance: Option<Balance>,
}

/// `--level`, shared by every simulation command.
#[derive(Args)]
pub struct LevelArg {
    /// 1: the core nodes in the discrete-event simulator; 2: the real runtime of every
    /// instance on turmoil hosts (slower; no drift or pause faults); 3: as 2, through the real
    /// AWS SDK clients over turmoil's network to an HTTP server (slower still).
    #[arg(long = "level", default_value = "1", value_parser = level)]
    level: Level,
}

fn level(s: &str) -> Result<Level, String> {
    s.parse::<u8>()
        .ok()
        .and_then(Level::of)
        .ok_or_else(|| format!("{s:?} is not a simulation level: 1, 2 or 3"))
}

fn plant(s: &str) -> Result<Mutation, String> {
    Mutation::named(s).ok_or_else(|| {
        let known: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
        format!("{s:?} is not a deliberate bug; known: {}", known.join(", "))
    })
}

fn schedule(s: &str) -> Result<Schedule, String> {
    Schedule::named(s).ok_or_else(|| {
        let known: Vec<&str> = Schedule::ALL.iter().map(|m| m.name()).collect();
        format!("{s:?} is not a schedule; known: {}", known.join(", "))
    })
}

fn traffic(s: &str) -> Result<Traffic, String> {
    Traffic::named(s).ok_or_else(|| {
        let known: Vec<&str> = Traffic::ALL.iter().map(|t| t.name()).collect();
        format!("{s:?} is not a traffic shape; known: {}", known.join(", "))
    })
}

/// Parses what targets balance: `count` or `load` (with the default band and interval).
pub(crate) fn balance(s: &str) -> Result<Balance, String> {
    match s {
        "count" => Ok(Balance::Count),
        "load" => Ok(Balance::load()),
        _ => Err(format!("{s:?} is not a balance; known: count, load")),
    }
}

fn fault_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=1_000.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "{s:?} is not a scale between 0 and 1000, e.g. 0.01"
        )),
    }
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

#[allow(
    clippy::disallowed_methods,
    reason = "wall time of a run, measured outside the simulator"
)]
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Runs one simulation command.
pub fn run(cmd: SimCommand) -> Result<(), CliError> {
    match cmd {
        SimCommand::Run(args) => run_seed(args),
        SimCommand::Swarm(args) => swarm(args),
        SimCommand::Replay(args) => replay(args),
    }
}

/// Runs one seed and prints its summary.
fn run_seed(args: RunArgs) -> Result<(), CliError> {
    let level = args.level.level;
    let mut sc = args.scenario()?;
    sc.trace = args.trace.is_some();
    sc.replay = Some(args.rerun_command());
    let (report, wall) = if args.progress {
        if level != Level::Core {
            return Err(CliError::BadOption {
                option: "--progress",
                reason: format!("reports level-1 runs only, not level {level}"),
            });
        }
        timed(|| simulate_with_progress(sc))
    } else {
        timed(|| simulate(level, sc))
    };
    let report = report?;
    if let (Some(path), Some(text)) = (&args.trace, &report.trace) {
        std::fs::write(path, text).map_err(|e| CliError::Output {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    if let Some(path) = &args.svg {
        timeline::write_svg(&report, path)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let timed = Timed::of(report.json(), report.sim_ms, wall);
        let line = serde_json::to_string(&timed).map_err(std::io::Error::from)?;
        writeln!(out, "{line}")?;
    } else {
        write!(out, "{}", run_table(&report, wall))?;
    }
    out.flush()?;
    broke(&report)
}

impl RunArgs {
    /// The command that runs exactly this again: the seed and the options given.
    fn rerun_command(&self) -> String {
        let (seed, level) = (self.seed, self.level.level);
        let mut cmd = match level {
            Level::Core => format!("sqsbalancer sim run --seed {seed}"),
            _ => format!("sqsbalancer sim run --level {level} --seed {seed}"),
        };
        let given = [
            ("instances", self.instances.map(|n| n.to_string())),
            ("queues", self.queues.map(|n| n.to_string())),
            (
                "duration",
                self.duration.map(|d| format!("{}ms", d.as_millis())),
            ),
            ("faults", self.faults.clone()),
            ("fault-scale", self.fault_scale.map(|x| x.to_string())),
            ("rate", self.rate.map(|r| r.to_string())),
            (
                "queue-partition-keys",
                self.queue_partition_keys.map(|n| n.to_string()),
            ),
            (
                "instance-partition-keys",
                self.instance_partition_keys.map(|n| n.to_string()),
            ),
            (
                "schedule",
                (self.schedule != Schedule::Drawn).then(|| self.schedule.name().to_owned()),
            ),
            ("traffic", self.traffic.map(|t| t.name().to_owned())),
            (
                "balance",
                matches!(self.balance, Balance::Load { .. }).then(|| "load".to_owned()),
            ),
            ("plant", self.plant.map(|m| m.name().to_owned())),
        ];
        for (flag, value) in given {
            if let Some(v) = value {
                cmd += &format!(" --{flag} {v}");
            }
        }
        cmd
    }

    /// The level's scenario of the seed, with the options given in place of its draws.
    fn scenario(&self) -> Result<Scenario, CliError> {
        let (seed, level) = (self.seed, self.level.level);
        let base = level.scenario(seed, &SwarmLimits::default());
        let mut sc = match &self.faults {
            Some(list) => {
                let mut kinds = FaultKind::parse_list(list)?;
                if level > Level::Core {
                    kinds.retain(|k| level2::KINDS.contains(k));
                }
                Scenario {
                    faults: Scenario::new(seed, &kinds).faults,
                    ..base
                }
            }
            None => base,
        };
        sc.instances = self.instances.unwrap_or(sc.instances);
        sc.queues = self.queues.unwrap_or(sc.queues);
        sc.duration = self.duration.unwrap_or(sc.duration);
        sc.messages_per_second = self.rate.unwrap_or(sc.messages_per_second);
        sc.queue_partition_keys = self.queue_partition_keys.unwrap_or(sc.queue_partition_keys);
        sc.instance_partition_keys = self
            .instance_partition_keys
            .unwrap_or(sc.instance_partition_keys);
        sc.schedule = self.schedule;
        sc.traffic = self.traffic.unwrap_or(sc.traffic);
        sc.balance = self.balance;
        sc.mutation = self.plant;
        if let Some(x) = self.fault_scale {
            sc.faults = sc.faults.scaled(x);
        }
        Ok(sc)
    }
}

/// Runs many seeds and prints their summary.
fn swarm(args: SwarmArgs) -> Result<(), CliError> {
    let SwarmArgs {
        level,
        seeds,
        from,
        threads,
        faults,
        fault_scale,
        traffic,
        balance,
        json,
    } = args;
    let level = level.level;
    let limits = swarm_limits(faults.as_deref(), fault_scale, (traffic, balance))?;
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    // Drawn on stderr only when it is a terminal (indicatif hides it otherwise).
    let bar = ProgressBar::new(seeds).with_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len}")
            .expect("a valid template")
            .progress_chars("#>."),
    );
    let on_done = |r: &Report| {
        if let Some(v) = &r.violation {
            bar.suspend(|| {
                eprintln!(
                    "seed {}: {} at event {}: {} (replay: {})",
                    r.seed,
                    v.invariant,
                    v.event,
                    v.detail,
                    r.replay_command()
                )
            });
        }
        bar.inc(1);
    };
    warn_nondeterministic(level);
    let (summary, wall) = timed(|| level.swarm(from, seeds, threads, &limits, on_done));
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    write!(out, "{}", swarm_table(level, &summary, wall))?;
    if json {
        let timed = Timed::of(summary.json(), summary.sim_ms, wall);
        let line = serde_json::to_string(&timed).map_err(std::io::Error::from)?;
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    match summary.class() {
        None => Ok(()),
        Some(class) => Err(CliError::Violations {
            count: summary.violations(),
            class,
        }),
    }
}

/// A swarm's limits from its options.
fn swarm_limits(
    faults: Option<&str>,
    scale: Option<f64>,
    (traffic, balance): (Option<Traffic>, Option<Balance>),
) -> Result<SwarmLimits, CliError> {
    Ok(SwarmLimits {
        only: faults.map(FaultKind::parse_list).transpose()?,
        scale,
        traffic,
        balance,
    })
}

/// Runs a seed of a swarm again, its trace on stdout.
fn replay(args: ReplayArgs) -> Result<(), CliError> {
    let ReplayArgs {
        seed,
        level,
        faults,
        fault_scale,
        traffic,
        balance,
    } = args;
    let level = level.level;
    let limits = swarm_limits(faults.as_deref(), fault_scale, (traffic, balance))?;
    let mut sc = level.scenario(seed, &limits);
    sc.trace = true;
    let report = simulate(level, sc)?;
    let mut out = std::io::stdout().lock();
    out.write_all(report.trace.as_deref().unwrap_or_default().as_bytes())?;
    out.flush()?;
    if let Some(v) = &report.violation {
        eprintln!(
            "seed {seed}: {} at event {} (t = {} ms): {}",
            v.invariant, v.event, v.t, v.detail
        );
    }
    broke(&report)
}

/// Runs `sc` at simulation level `level`.
fn simulate(level: Level, sc: Scenario) -> Result<Report, sqsbalancer_sim::SimError> {
    warn_nondeterministic(level);
    level.run(sc)
}

/// Runs a level-1 scenario, printing on stderr how far it has got once a simulated minute.
#[allow(
    clippy::disallowed_methods,
    reason = "wall time of a run, measured outside the simulator"
)]
fn simulate_with_progress(sc: Scenario) -> Result<Report, sqsbalancer_sim::SimError> {
    let start = std::time::Instant::now();
    sqsbalancer_sim::run_observed(sc, |p| {
        if p.sim_ms % 60_000 == 0 {
            eprintln!("{}", progress_line(&p, start.elapsed()));
        }
    })
}

/// One line of `sim run --progress`.
fn progress_line(p: &Progress, wall: Duration) -> String {
    format!(
        "progress: {} of {} simulated min ({}%), {} instances up, {} events, {:.0} s wall",
        p.sim_ms / 60_000,
        p.end_ms / 60_000,
        p.sim_ms * 100 / p.end_ms.max(1),
        p.up,
        p.events,
        wall.as_secs_f64()
    )
}

/// Levels 2 and 3 replay a seed exactly only in a build with `--cfg tokio_unstable`; says so
/// when this one is not.
fn warn_nondeterministic(level: Level) {
    if !level.deterministic() {
        eprintln!(
            "warning: built without --cfg tokio_unstable (.cargo/config.toml sets it unless \
             RUSTFLAGS replaces it): level-{level} runs of one seed may differ"
        );
    }
}

/// The error of a run that broke an invariant, which picks the exit status by its class.
fn broke(report: &Report) -> Result<(), CliError> {
    match &report.violation {
        None => Ok(()),
        Some(v) => Err(CliError::Violations {
            count: 1,
            class: v.invariant.class(),
        }),
    }
}

/// A summary's JSON with the wall-clock time it took.
#[derive(Serialize)]
struct Timed<T> {
    /// The summary's own keys.
    #[serde(flatten)]
    summary: T,
    /// Wall-clock time, ms.
    wall_ms: f64,
    /// Simulated time per unit of wall-clock time.
    sim_to_wall: f64,
}

impl<T> Timed<T> {
    fn of(summary: T, sim_ms: u64, wall: Duration) -> Timed<T> {
        Timed {
            summary,
            wall_ms: wall.as_secs_f64() * 1000.0,
            sim_to_wall: ratio(sim_ms, wall),
        }
    }
}

fn ratio(sim_ms: u64, wall: Duration) -> f64 {
    sim_ms as f64 / (wall.as_secs_f64() * 1000.0).max(1e-3)
}

/// One row of the gap table: `name` and its spread.
fn spread_row(name: &str, s: Spread) -> Vec<String> {
    let stats = [s.p50, s.p99, s.max].map(|v| v.to_string());
    [name.to_owned(), s.count.to_string()]
        .into_iter()
        .chain(stats)
        .collect()
}

fn run_table(r: &Report, wall: Duration) -> String {
    let m = &r.messages;
    let mut t = format!(
        "seed {}: {} instances, {} queues, {} s simulated in {:.3} s wall ({:.0}x)\n",
        r.seed,
        r.instances,
        r.queues,
        r.sim_ms / 1000,
        wall.as_secs_f64(),
        ratio(r.sim_ms, wall)
    );
    t += &format!(
        "faults: {}; schedule: {}\n",
        r.faults.join(", "),
        r.schedule
    );
    t += &format!(
        "messages: {} sent, {} handled, {} failed, {} deleted, {} duplicates, {} lost\n",
        m.sent, m.handled, m.failed, m.deleted, m.duplicates, m.lost
    );
    t += &format!(
        "moves: {} in all; after the calm point {} against an optimum of {}; balance spread {:.2}\n",
        r.moves, r.settle_moves, r.settle_optimum, r.balance_spread
    );
    if let Some(w) = &r.work_share {
        t += &format!(
            "work share ({} traffic, {} balance), over the mean per unit of weight: handler time {:.2} to {:.2} (the busiest queue alone {:.2}), queues {:.2} to {:.2}; {:.2}% of queues moved an hour\n",
            w.traffic,
            w.balance,
            w.handler_min_over_mean,
            w.handler_max_over_mean,
            w.largest_queue_over_mean,
            w.queues_min_over_mean,
            w.queues_max_over_mean,
            w.moved_percent_per_hour
        );
    }
    if let Some(d) = &r.dwell {
        t += &format!(
            "dwell (send to handler start, ms): p50 {}, p99 {}, max {}; the worst queue's p99 {}\n",
            d.all.p50, d.all.p99, d.all.max, d.worst_queue_p99_ms
        );
    }
    t += &gap_table(&r.failover, &r.handoff, &r.takeover, &r.outage);
    let (requests, reads, writes) = r.dynamo_per_instance_minute();
    t += &format!(
        "per instance-minute: {requests:.1} DynamoDB requests ({reads:.1} RCU, {writes:.1} WCU), {:.1} SQS calls; steady state {} DynamoDB requests\n",
        r.per_instance_minute(r.sqs_calls as f64),
        r.steady_dynamo_per_instance_minute
            .map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1}"))
    );
    if let Some(reads) = &r.table_reads {
        let per_hour = |n: u64| r.per_instance_minute(n as f64) * 60.0;
        let causes: Vec<String> = ReadCause::ALL
            .iter()
            .filter(|&&c| reads.get(c) > 0)
            .map(|&c| format!("{} {:.1}", c.name(), per_hour(reads.get(c))))
            .collect();
        t += &format!(
            "table reads per instance-hour: {:.1} ({}); reads of awaited records {:.1}\n",
            per_hour(reads.total()),
            causes.join(", "),
            per_hour(reads.records())
        );
    }
    t += &match &r.violation {
        None => "violations: 0\n".to_owned(),
        Some(v) => format!(
            "VIOLATION {} ({}) at event {} (t = {} ms): {}\nreplay: {}\n",
            v.invariant,
            v.invariant.class(),
            v.event,
            v.t,
            v.detail,
            r.replay_command()
        ),
    };
    t
}

fn gap_table(failover: &[u64], handoff: &[u64], takeover: &[u64], outage: &[u64]) -> String {
    let header = ["gap (ms)", "count", "p50", "p99", "max"]
        .map(str::to_owned)
        .to_vec();
    let rows = [
        header,
        spread_row("failover (from crash)", Spread::of(failover)),
        spread_row("graceful hand-off", Spread::of(handoff)),
        spread_row("takeover (other)", Spread::of(takeover)),
        spread_row("outage (none left up)", Spread::of(outage)),
    ];
    crate::table::render(&rows, &[1, 2, 3, 4])
}

fn swarm_table(level: Level, s: &SwarmSummary, wall: Duration) -> String {
    let mut t = format!(
        "level-{level} swarm: seeds {}..{}, {} events, {:.1} h simulated in {:.1} s wall ({:.0}x)\n",
        s.from,
        s.from + s.seeds,
        s.events,
        s.sim_ms as f64 / 3_600_000.0,
        wall.as_secs_f64(),
        ratio(s.sim_ms, wall)
    );
    let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    t += &format!("fault kinds (runs): {}\n", kinds.join(", "));
    t += &format!(
        "messages: {} sent, {} lost, {} duplicates; {} overlaps excused (pauses past the fence margin)\n",
        s.sent, s.lost, s.duplicates, s.excused_overlaps
    );
    t += &format!(
        "moves after the calm point: {} against an optimum of {}\n",
        s.settle_moves.0, s.settle_moves.1
    );
    t += &gap_table(&s.failover, &s.handoff, &s.takeover, &s.outage);
    t += &format!("violations: {}\n", s.violations());
    t
}

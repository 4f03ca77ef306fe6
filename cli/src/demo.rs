//! `sqsbalancer demo`: a fleet of real runtime instances over the in-memory SQS and DynamoDB
//! fakes (no AWS, no credentials, no emulator) tells a scripted story on simulated time —
//! steady traffic, a scale-out, a crash, a graceful stop, queues created and deleted — with a
//! live table of who receives what, then a summary and an SVG timeline.
//!
//! The story runs in the level-2 simulator ([`Live`]), which never reads a clock; this command
//! paces it against the wall clock (`--speed`) and draws it.

use crate::error::CliError;
use clap::Args;
use serde::Serialize;
use sqsbalancer_sim::level2::{Act, Chapter, InstanceState, Live, Story, Told, View};
use sqsbalancer_sim::report::Spread;
use sqsbalancer_sim::{Class, timeline};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the live table is redrawn, wall time.
const REDRAW: Duration = Duration::from_millis(250);
/// Widest bar of owned queues in the live table, characters.
const BAR: usize = 30;

/// How fast simulated time runs against the wall clock.
#[derive(Clone, Copy, Debug)]
pub enum Speed {
    /// This many simulated seconds per wall second.
    Times(f64),
    /// As fast as the machine goes.
    Max,
}

fn speed(s: &str) -> Result<Speed, String> {
    if s == "max" {
        return Ok(Speed::Max);
    }
    match s.trim_end_matches('x').parse::<f64>() {
        Ok(x) if x.is_finite() && (0.1..=100_000.0).contains(&x) => Ok(Speed::Times(x)),
        _ => Err(format!(
            "{s:?} is not a speed: a factor from 0.1 to 100000 (simulated seconds per wall \
             second, e.g. 10) or max"
        )),
    }
}

/// The demo's flags: the fleet and queues at the start, the story's length, the pace and the
/// outputs.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Instances at the start; two more join at 20% of the duration.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// Queues at the start; a fifth as many are created, and a tenth deleted, at 75%.
    #[arg(long, default_value_t = 30)]
    queues: usize,
    /// Simulated length of the story, e.g. 5m or 90s (the fleet then drains and settles).
    #[arg(long, default_value = "5m", value_parser = crate::sim::duration)]
    duration: Duration,
    /// Simulated seconds per wall second (e.g. 10), or `max`.
    #[arg(long, default_value = "10", value_parser = speed)]
    speed: Speed,
    /// Where to write the SVG timeline of queue ownership.
    #[arg(long, value_name = "FILE", default_value = "demo.svg")]
    svg: PathBuf,
    /// Print one JSON object as the last line of stdout instead of the table and summary
    /// (progress lines go to stderr).
    #[arg(long)]
    json: bool,
}

/// The wall clock. The simulator never reads one; pacing and the wall time reported do.
struct Wall(Instant);

impl Wall {
    #[allow(
        clippy::disallowed_methods,
        reason = "pacing the simulation against the wall clock, outside the simulator"
    )]
    fn start() -> Wall {
        Wall(Instant::now())
    }

    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    let story = Story::demo(args.instances, args.queues, args.duration);
    let end_ms = story.duration.as_millis() as u64;
    let mut live = Live::start(story)?;
    let mut screen = if !args.json && std::io::stdout().is_terminal() {
        Screen::Table {
            lines: 0,
            last: None,
        }
    } else {
        Screen::Lines { printed: 0 }
    };
    tracing::info!(
        instances = args.instances,
        queues = args.queues,
        "demo starts"
    );
    let wall = Wall::start();
    let mut next_draw = Duration::ZERO;
    while !live.step()? {
        if let Speed::Times(x) = args.speed {
            let due = Duration::from_secs_f64(live.now_ms() as f64 / 1000.0 / x);
            let now = wall.elapsed();
            if due > now {
                // Pacing, not synchronisation: simulated time runs x times the wall's.
                std::thread::sleep(due - now);
            }
        }
        if wall.elapsed() >= next_draw {
            next_draw = wall.elapsed() + REDRAW;
            screen.show(&live.view(), end_ms, args.speed)?;
        }
    }
    screen.show(&live.view(), end_ms, args.speed)?;
    let told = live.finish();
    let took = wall.elapsed();
    timeline::write_svg(&told.report, &args.svg)?;
    tracing::info!(svg = %args.svg.display(), "demo over");
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", summary_json(&told, end_ms, took, &args.svg))?;
    } else {
        write!(out, "{}", summary(&told, end_ms, took, &args.svg))?;
    }
    out.flush()?;
    let broken = told.report.violation.as_ref().map(|v| v.invariant.class());
    if let Some(class) = broken.or((told.report.messages.lost > 0).then_some(Class::Liveness)) {
        return Err(CliError::Violations { count: 1, class });
    }
    Ok(())
}

/// Where the run is shown while it goes.
enum Screen {
    /// A table redrawn in place (stdout is a terminal).
    Table {
        /// Lines of the last frame, to go back over.
        lines: usize,
        /// Simulated time and each instance's deletes at the last frame, for rates.
        last: Option<(u64, Vec<u64>)>,
    },
    /// A line on stderr for each beat as it is played.
    Lines {
        /// Chapters printed so far.
        printed: usize,
    },
}

impl Screen {
    fn show(&mut self, v: &View, end_ms: u64, speed: Speed) -> Result<(), CliError> {
        match self {
            Screen::Table { lines, last } => {
                let text = frame(v, last.as_ref(), end_ms, speed);
                let term = console::Term::stdout();
                // Over the last frame: clear its lines, then write this one.
                term.clear_last_lines(*lines)?;
                term.write_str(&text)?;
                term.flush()?;
                *lines = text.lines().count();
                *last = Some((v.t_ms, v.instances.iter().map(|i| i.deleted).collect()));
            }
            Screen::Lines { printed } => {
                let mut err = std::io::stderr().lock();
                for c in &v.chapters[*printed..] {
                    writeln!(err, "[{}] {}", clock(c.at_ms), c.what)?;
                }
                *printed = v.chapters.len();
            }
        }
        Ok(())
    }
}

/// `ms` as m:ss.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// One frame of the live table.
fn frame(v: &View, last: Option<&(u64, Vec<u64>)>, end_ms: u64, speed: Speed) -> String {
    let pace = match speed {
        Speed::Times(x) => format!("{x}x"),
        Speed::Max => "max speed".to_owned(),
    };
    let phase = if v.t_ms < end_ms {
        format!("{} of {} simulated", clock(v.t_ms), clock(end_ms))
    } else {
        format!("{} simulated, settling", clock(v.t_ms))
    };
    // Every line fits 80 columns, so that going back over the frame stays exact.
    let mut t = format!("sqsbalancer demo: {phase} ({pace}), in-memory SQS and DynamoDB\n");
    t += &format!(
        "{} queues  {} sent  {} handled  {} backlog  {} moves\n\n",
        v.queues, v.sent, v.deleted, v.backlog, v.moves
    );
    t += &format!(
        "  {:<9} {:<9} {:>6} {:>7} {:>8}\n",
        "instance", "state", "queues", "msgs/s", "handled"
    );
    let most = v.instances.iter().map(|i| i.queues).max().unwrap_or(0);
    for (k, i) in v.instances.iter().enumerate() {
        let rate = match last {
            Some((t0, before)) if v.t_ms > *t0 && i.state == InstanceState::Running => {
                let done = i.deleted - before.get(k).copied().unwrap_or(0);
                format!("{:.1}", done as f64 * 1000.0 / (v.t_ms - t0) as f64)
            }
            _ => "-".to_owned(),
        };
        let width = if most > BAR {
            (i.queues * BAR).div_ceil(most)
        } else {
            i.queues
        };
        t += &format!(
            "  {:<9} {:<9} {:>6} {:>7} {:>8}  {}\n",
            i.name,
            i.state.name(),
            i.queues,
            rate,
            i.deleted,
            "█".repeat(width)
        );
    }
    t += "\n";
    for c in &v.chapters {
        t += &format!(
            "  {:>5}  {:<44} {:>3} moves (optimum {:>3})\n",
            clock(c.at_ms),
            c.what,
            c.moves,
            c.optimum
        );
    }
    t
}

/// The longest gap a chapter measured, as the table shows it.
fn longest_gap(c: &Chapter) -> String {
    let f = c.failover.iter().max();
    let h = c.handoff.iter().max();
    match (f, h) {
        (Some(f), _) => format!("failover {:.1} s", *f as f64 / 1000.0),
        (None, Some(h)) => format!("hand-off {:.1} s", *h as f64 / 1000.0),
        (None, None) => String::new(),
    }
}

/// Hand-off gaps measured in the chapters of graceful stops, ms.
fn stop_handoffs(told: &Told) -> Vec<u64> {
    told.chapters
        .iter()
        .filter(|c| matches!(c.act, Some(Act::Stop)))
        .flat_map(|c| c.handoff.iter().copied())
        .collect()
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The summary printed at the end.
fn summary(told: &Told, end_ms: u64, took: Duration, svg: &std::path::Path) -> String {
    let r = &told.report;
    let m = &r.messages;
    let mut t = format!(
        "\nstory over at {} simulated; drained and settled at {}; {:.1} s wall\n",
        clock(end_ms),
        clock(r.sim_ms),
        took.as_secs_f64()
    );
    t += &format!(
        "messages: {} sent, {} handled, {} lost, {} duplicates\n",
        m.sent, m.handled, m.lost, m.duplicates
    );
    t += "moves against the optimum (the fewest an exact balance needs from the owners at that moment):\n";
    t += &format!(
        "  {:>5}  {:<40} {:>5} {:>8}  {}\n",
        "when", "what", "moves", "optimum", "longest gap"
    );
    for c in &told.chapters {
        let row = format!(
            "  {:>5}  {:<40} {:>5} {:>8}  {}",
            clock(c.at_ms),
            c.what,
            c.moves,
            c.optimum,
            longest_gap(c)
        );
        t += row.trim_end();
        t += "\n";
    }
    t += &format!("  {:>5}  {:<40} {:>5}\n", "", "in all", r.moves);
    let cfg = sqsbalancer_sim::config();
    let bound = cfg.heartbeat_timeout + 2 * cfg.heartbeat_interval;
    let f = Spread::of(&r.failover);
    if f.count > 0 {
        t += &format!(
            "failover after the crash: {} queues received again {:.1} s (median) to {:.1} s \
             (last) after it\n  (bound: HeartbeatTimeout + 2 x HeartbeatInterval = {} s)\n",
            f.count,
            seconds(f.p50),
            seconds(f.max),
            bound.as_secs()
        );
    }
    let h = Spread::of(&stop_handoffs(told));
    if h.count > 0 {
        t += &format!(
            "hand-off at the graceful stop: {} queues received again {:.1} s (median) to \
             {:.1} s (last)\n  after their last receive (the next owner reads the hand-off \
             with the heartbeats, every {} s)\n",
            h.count,
            seconds(h.p50),
            seconds(h.max),
            cfg.heartbeat_interval.as_secs()
        );
    }
    t += &match &r.violation {
        None => "invariants: all held (exclusive receive, receive within the fence, delete after \
                 success,\n  epoch growth, no loss, settled balance, graceful stop, no panic)\n"
            .to_owned(),
        Some(v) => format!(
            "VIOLATION {} at {} simulated: {}\n",
            v.invariant,
            clock(v.t),
            v.detail
        ),
    };
    t += &format!(
        "timeline: {}\n  (queue ownership by instance over simulated time; red line: crash, \
         orange: graceful stop)\n",
        svg.display()
    );
    t
}

/// One chapter of the story in the JSON summary.
#[derive(Serialize)]
struct ChapterJson<'a> {
    /// When it began, simulated seconds.
    at_s: f64,
    /// What happened.
    what: &'a str,
    /// Queues moved during it.
    moves: u64,
    /// The fewest moves that balance needed.
    optimum: u64,
    /// Its longest failover, seconds.
    failover_s: Option<f64>,
    /// Its longest graceful hand-off, seconds.
    handoff_s: Option<f64>,
}

/// The summary as `--json` prints it.
#[derive(Serialize)]
struct SummaryJson<'a> {
    /// Messages sent.
    sent: u64,
    /// Handler calls.
    handled: u64,
    /// Messages deleted.
    deleted: u64,
    /// Messages lost.
    lost: u64,
    /// Messages handled more than once.
    duplicates: u64,
    /// Queues moved in all.
    moves: u64,
    /// The longest failover, seconds.
    failover_s: Option<f64>,
    /// The longest hand-off at a graceful stop, seconds.
    handoff_s: Option<f64>,
    /// The story's chapters.
    chapters: Vec<ChapterJson<'a>>,
    /// The story's length, simulated seconds.
    story_s: f64,
    /// Simulated seconds in all.
    sim_s: f64,
    /// Wall-clock seconds.
    wall_s: f64,
    /// The broken invariant, if any.
    violation: Option<String>,
    /// The timeline's file.
    svg: String,
}

/// The summary as one JSON object.
fn summary_json(told: &Told, end_ms: u64, took: Duration, svg: &std::path::Path) -> String {
    let r = &told.report;
    let m = &r.messages;
    let max_s = |gaps: &[u64]| gaps.iter().max().map(|g| seconds(*g));
    let chapters = told
        .chapters
        .iter()
        .map(|c| ChapterJson {
            at_s: seconds(c.at_ms),
            what: &c.what,
            moves: c.moves,
            optimum: c.optimum,
            failover_s: max_s(&c.failover),
            handoff_s: max_s(&c.handoff),
        })
        .collect();
    let summary = SummaryJson {
        sent: m.sent,
        handled: m.handled,
        deleted: m.deleted,
        lost: m.lost,
        duplicates: m.duplicates,
        moves: r.moves,
        failover_s: max_s(&r.failover),
        handoff_s: max_s(&stop_handoffs(told)),
        chapters,
        story_s: seconds(end_ms),
        sim_s: seconds(r.sim_ms),
        wall_s: took.as_secs_f64(),
        violation: (r.violation.as_ref()).map(|v| format!("{}: {}", v.invariant, v.detail)),
        svg: svg.display().to_string(),
    };
    serde_json::to_string(&summary).expect("plain data serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_and_bad_ones_are_refused() {
        assert!(matches!(speed("max"), Ok(Speed::Max)));
        assert!(matches!(speed("10"), Ok(Speed::Times(x)) if x == 10.0));
        assert!(matches!(speed("2.5x"), Ok(Speed::Times(x)) if x == 2.5));
        for bad in ["", "0", "fast", "-3", "NaN", "1e9"] {
            assert!(speed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clocks_read_as_minutes_and_seconds() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(61_999), "1:01");
        assert_eq!(clock(600_000), "10:00");
    }
}

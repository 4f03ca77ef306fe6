//! What one simulated run is: its size, its length, which faults are on and how often, all
//! drawn from the seed.

use crate::error::SimError;
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::rng::Rng;
use sqsbalancer_core::table;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// One kind of fault the simulator can inject (docs/design.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Processes die without a word.
    Crash,
    /// Graceful stops.
    Stop,
    /// Dead or stopped instances come back under the same id.
    Restart,
    /// New instances join.
    Join,
    /// An instance is cut off from DynamoDB for a while.
    PartitionDynamo,
    /// An instance is cut off from SQS for a while.
    PartitionSqs,
    /// Calls are throttled.
    Throttle,
    /// Calls fail with 5xx.
    ServerError,
    /// Calls time out, some after the write applied (unknown outcome).
    Timeout,
    /// Calls take up to 400 ms each way.
    Latency,
    /// Clocks run fast or slow by up to 5,000 ppm.
    Drift,
    /// Processes stop for seconds at the worst moment: after deciding to receive, before sending.
    Pause,
    /// Queues are created and deleted.
    QueueChurn,
    /// Handlers outlive the visibility timeout.
    SlowHandler,
    /// Handlers fail.
    FailingHandler,
    /// Calls that never answer (the request may or may not have applied).
    Hang,
    /// Latency above the request margin: requests held seconds before they are sent, answers
    /// seconds late.
    SlowCall,
    /// Writes whose caller gave up (unknown outcome) applied seconds later.
    LateWrite,
    /// Table reads in pages of a few items, the table changing between pages.
    Pages,
    /// Ended records (dead instance records, tombstones) deleted by TTL.
    Ttl,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 20] = [
        FaultKind::Crash,
        FaultKind::Stop,
        FaultKind::Restart,
        FaultKind::Join,
        FaultKind::PartitionDynamo,
        FaultKind::PartitionSqs,
        FaultKind::Throttle,
        FaultKind::ServerError,
        FaultKind::Timeout,
        FaultKind::Latency,
        FaultKind::Drift,
        FaultKind::Pause,
        FaultKind::QueueChurn,
        FaultKind::SlowHandler,
        FaultKind::FailingHandler,
        FaultKind::Hang,
        FaultKind::SlowCall,
        FaultKind::LateWrite,
        FaultKind::Pages,
        FaultKind::Ttl,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Stop => "stop",
            FaultKind::Restart => "restart",
            FaultKind::Join => "join",
            FaultKind::PartitionDynamo => "partition-dynamo",
            FaultKind::PartitionSqs => "partition-sqs",
            FaultKind::Throttle => "throttle",
            FaultKind::ServerError => "5xx",
            FaultKind::Timeout => "timeout",
            FaultKind::Latency => "latency",
            FaultKind::Drift => "drift",
            FaultKind::Pause => "pause",
            FaultKind::QueueChurn => "queue-churn",
            FaultKind::SlowHandler => "slow-handler",
            FaultKind::FailingHandler => "failing-handler",
            FaultKind::Hang => "hang",
            FaultKind::SlowCall => "slow-call",
            FaultKind::LateWrite => "late-write",
            FaultKind::Pages => "pages",
            FaultKind::Ttl => "ttl",
        }
    }

    /// Parses a comma-separated list: kind names, `all` or `none`.
    pub fn parse_list(s: &str) -> Result<BTreeSet<FaultKind>, SimError> {
        let mut out = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => out.extend(FaultKind::ALL),
                "none" => {}
                _ => match FaultKind::ALL.iter().find(|k| k.name() == part) {
                    Some(k) => {
                        out.insert(*k);
                    }
                    None => {
                        return Err(SimError::UnknownFault {
                            name: part.to_owned(),
                            known: FaultKind::ALL.iter().map(|k| k.name()).collect(),
                        });
                    }
                },
            }
        }
        Ok(out)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which faults are on and their rates, in millionths (ppm) per instance-second unless noted:
/// fine enough that a scaled-down mix can model a realistic bad day, not only a storm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultMix {
    /// Crash chance.
    pub crash: u64,
    /// Graceful-stop chance.
    pub stop: u64,
    /// Chance per second that a down instance comes back.
    pub restart: u64,
    /// Chance per second that a new instance joins.
    pub join: u64,
    /// Chance of a DynamoDB partition (1-20 s).
    pub partition_dynamo: u64,
    /// Chance of an SQS partition (1-20 s).
    pub partition_sqs: u64,
    /// Throttled calls, ppm of calls.
    pub throttle: u64,
    /// 5xx calls, ppm of calls.
    pub server_error: u64,
    /// Timed-out calls, ppm of calls.
    pub timeout: u64,
    /// Largest one-way latency, ms.
    pub max_latency_ms: u64,
    /// Largest clock rate error, ppm.
    pub drift_ppm: u64,
    /// Pauses, ppm of receives.
    pub pause: u64,
    /// Chance per second of a queue created or deleted.
    pub queue_churn: u64,
    /// Slow handlers, ppm of messages.
    pub slow_handler: u64,
    /// Failing handlers, ppm of messages.
    pub failing_handler: u64,
    /// Calls that never answer, ppm of calls.
    pub hang: u64,
    /// Calls held before they are sent and answered late (up to 5 s each), ppm of calls.
    pub slow_call: u64,
    /// Writes applied after their caller gave up, ppm of writes.
    pub late_write: u64,
    /// Most items in one page of a table read, or a quarter of the items read when that is
    /// more (0: pages of up to 1 MB, as DynamoDB's).
    pub page_items: u64,
    /// Chance per second that DynamoDB's TTL deletes one ended record.
    pub ttl: u64,
}

impl FaultMix {
    /// Draws the rate of every kind in `kinds` from `rng`; the others stay off.
    pub fn draw(rng: &mut Rng, kinds: &BTreeSet<FaultKind>) -> FaultMix {
        let mut m = FaultMix::default();
        // The ranges are per mille; the draw is in ppm.
        let ppm = |per_mille: u64| per_mille * 1_000;
        let mut rate = |lo: u64, hi: u64| lo + rng.below(hi - lo + 1);
        for k in kinds {
            match k {
                FaultKind::Crash => m.crash = rate(ppm(1), ppm(8)),
                FaultKind::Stop => m.stop = rate(ppm(1), ppm(8)),
                FaultKind::Restart => m.restart = rate(ppm(20), ppm(200)),
                FaultKind::Join => m.join = rate(ppm(2), ppm(20)),
                FaultKind::PartitionDynamo => m.partition_dynamo = rate(ppm(1), ppm(10)),
                FaultKind::PartitionSqs => m.partition_sqs = rate(ppm(1), ppm(10)),
                FaultKind::Throttle => m.throttle = rate(ppm(5), ppm(100)),
                FaultKind::ServerError => m.server_error = rate(ppm(5), ppm(60)),
                FaultKind::Timeout => m.timeout = rate(ppm(5), ppm(60)),
                FaultKind::Latency => m.max_latency_ms = rate(20, 400),
                FaultKind::Drift => m.drift_ppm = rate(100, 5_000),
                FaultKind::Pause => m.pause = rate(ppm(1), ppm(20)),
                FaultKind::QueueChurn => m.queue_churn = rate(ppm(20), ppm(200)),
                FaultKind::SlowHandler => m.slow_handler = rate(ppm(5), ppm(50)),
                FaultKind::FailingHandler => m.failing_handler = rate(ppm(20), ppm(300)),
                FaultKind::Hang => m.hang = rate(ppm(1), ppm(10)),
                FaultKind::SlowCall => m.slow_call = rate(ppm(5), ppm(60)),
                FaultKind::LateWrite => m.late_write = rate(ppm(5), ppm(40)),
                FaultKind::Pages => m.page_items = rate(1, 8),
                FaultKind::Ttl => m.ttl = rate(ppm(20), ppm(200)),
            }
        }
        m
    }

    /// The mix with every fault rate multiplied by `scale` (latency, drift, page sizes and the
    /// restart rate, which is a recovery, unchanged). A kind scaled to zero is off.
    pub fn scaled(&self, scale: f64) -> FaultMix {
        let s = |ppm: u64| (ppm as f64 * scale).round() as u64;
        FaultMix {
            crash: s(self.crash),
            stop: s(self.stop),
            restart: self.restart,
            join: s(self.join),
            partition_dynamo: s(self.partition_dynamo),
            partition_sqs: s(self.partition_sqs),
            throttle: s(self.throttle),
            server_error: s(self.server_error),
            timeout: s(self.timeout),
            max_latency_ms: self.max_latency_ms,
            drift_ppm: self.drift_ppm,
            pause: s(self.pause),
            queue_churn: s(self.queue_churn),
            slow_handler: s(self.slow_handler),
            failing_handler: s(self.failing_handler),
            hang: s(self.hang),
            slow_call: s(self.slow_call),
            late_write: s(self.late_write),
            page_items: self.page_items,
            ttl: s(self.ttl),
        }
    }

    /// The kinds that are on.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let on = [
            self.crash,
            self.stop,
            self.restart,
            self.join,
            self.partition_dynamo,
            self.partition_sqs,
            self.throttle,
            self.server_error,
            self.timeout,
            self.max_latency_ms,
            self.drift_ppm,
            self.pause,
            self.queue_churn,
            self.slow_handler,
            self.failing_handler,
            self.hang,
            self.slow_call,
            self.late_write,
            self.page_items,
            self.ttl,
        ];
        FaultKind::ALL
            .iter()
            .zip(on)
            .filter(|(_, r)| *r > 0)
            .map(|(k, _)| *k)
            .collect()
    }
}

/// A deliberate bug, switched on by the tests that prove the checker catches each invariant's
/// violation, or by `sqsbalancer sim run --plant` to watch it caught; never by a swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// The runtime reports its pollers stopped at once but keeps receiving.
    IgnoreStop,
    /// The consumer drops redelivered messages without handling them.
    DropRedelivered,
    /// The consumer deletes messages whose handler failed.
    DeleteFailures,
    /// Hand-offs write the epoch they expected instead of the next one.
    HandOffKeepsEpoch,
    /// The first instance registers twice its capacity.
    WrongCapacity,
    /// Hand-offs during shutdown are reported applied but never sent.
    SkipReleaseOnStop,
    /// A coordination call of the first instance panics in the runtime's task after the
    /// first simulated minute (level 2 only: level 1 has no runtime tasks to panic).
    PanicInRuntime,
    /// Receives are sent whenever they are ready, past their send-by time (the check the SDK
    /// adapter makes after signing is skipped): one held before it is sent outlives the fence.
    IgnoreSendBy,
}

impl Mutation {
    /// Every deliberate bug.
    pub const ALL: [Mutation; 8] = [
        Mutation::IgnoreStop,
        Mutation::DropRedelivered,
        Mutation::DeleteFailures,
        Mutation::HandOffKeepsEpoch,
        Mutation::WrongCapacity,
        Mutation::SkipReleaseOnStop,
        Mutation::PanicInRuntime,
        Mutation::IgnoreSendBy,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::IgnoreStop => "ignore-stop",
            Mutation::DropRedelivered => "drop-redelivered",
            Mutation::DeleteFailures => "delete-failures",
            Mutation::HandOffKeepsEpoch => "hand-off-keeps-epoch",
            Mutation::WrongCapacity => "wrong-capacity",
            Mutation::SkipReleaseOnStop => "skip-release-on-stop",
            Mutation::PanicInRuntime => "panic-in-runtime",
            Mutation::IgnoreSendBy => "ignore-send-by",
        }
    }

    /// The bug called `name`, if there is one.
    pub fn named(name: &str) -> Option<Mutation> {
        Mutation::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One run's parameters.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed everything is drawn from.
    pub seed: u64,
    /// Instances at the start.
    pub instances: usize,
    /// Queues at the start.
    pub queues: usize,
    /// Simulated length of the run, calm phase included.
    pub duration: Duration,
    /// The calm phase at the end: no faults, no traffic, all down instances back.
    pub calm: Duration,
    /// The faults and their rates.
    pub faults: FaultMix,
    /// Messages sent per simulated second, spread over the queues.
    pub messages_per_second: u64,
    /// How they are spread, and which queues have slow handlers.
    pub traffic: crate::Traffic,
    /// What the instances' targets balance: queue counts (the default) or the queues' loads.
    pub balance: Balance,
    /// How many partition keys the queue records are spread over (the balancer's
    /// `queue_partition_keys`).
    pub queue_partition_keys: u32,
    /// How many partition keys the instance records are spread over (the balancer's
    /// `instance_partition_keys`; swarms keep one).
    pub instance_partition_keys: u32,
    /// Membership events scripted on top of the drawn faults.
    pub schedule: Schedule,
    /// A deliberate bug (tests only).
    pub mutation: Option<Mutation>,
    /// Keep a JSON-lines trace.
    pub trace: bool,
    /// The command that runs exactly this scenario again (`None`: the plain swarm seed).
    pub replay: Option<String>,
}

/// Membership events a run scripts on top of the faults it draws (level 1 only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// None: every membership event is drawn from the fault mix.
    #[default]
    Drawn,
    /// The day G11 measures (docs/design.md §7): a tenth of the fleet crashes a quarter of the
    /// way through the stormy part (before the calm phase) and comes back a twelfth later; from
    /// five twelfths to three quarters of the way a rolling restart stops a tenth of the fleet
    /// at a time, ten batches evenly spaced, and restarts each instance when its stop ends.
    CrashAndRoll,
}

impl Schedule {
    /// Every schedule.
    pub const ALL: [Schedule; 2] = [Schedule::Drawn, Schedule::CrashAndRoll];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Drawn => "none",
            Schedule::CrashAndRoll => "crash-and-roll",
        }
    }

    /// The schedule called `name`, if there is one.
    pub fn named(name: &str) -> Option<Schedule> {
        Schedule::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What a swarm may draw: which fault kinds (all when `None`) and a scale on their rates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SwarmLimits {
    /// Only these fault kinds.
    pub only: Option<BTreeSet<FaultKind>>,
    /// Multiply every drawn rate by this ([`FaultMix::scaled`]).
    pub scale: Option<f64>,
    /// Every seed's traffic shape (level 1; uniform if none).
    pub traffic: Option<crate::Traffic>,
    /// What every seed's targets balance (count if none).
    pub balance: Option<Balance>,
}

/// The calm phase needed for everything to settle: restarts, a rebalance delay, a discovery
/// round, a failover bound and a few visibility timeouts to drain redeliveries.
pub const MIN_CALM: Duration = Duration::from_secs(240);

/// The calm phase a fleet balancing by `balance` needs to settle: [`MIN_CALM`], and under
/// load balance two more publish intervals. A queue that moves weighs what its new holder's
/// record lists once that publishes, at most an interval after it measured the queue, and the
/// targets computed before then may move a queue again (docs/design.md §4.5).
pub fn calm_for(balance: Balance) -> Duration {
    match balance {
        Balance::Load {
            publish_interval, ..
        } => MIN_CALM + publish_interval * 2,
        _ => MIN_CALM,
    }
}

impl Scenario {
    /// A run of `seed` with `kinds` on, their rates drawn from the seed.
    pub fn new(seed: u64, kinds: &BTreeSet<FaultKind>) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x5eed_fa17);
        Scenario {
            seed,
            instances: 3,
            queues: 30,
            duration: Duration::from_secs(900),
            calm: MIN_CALM,
            faults: FaultMix::draw(&mut rng, kinds),
            messages_per_second: 5,
            traffic: crate::Traffic::Uniform,
            balance: Balance::Count,
            queue_partition_keys: 1,
            instance_partition_keys: 1,
            schedule: Schedule::Drawn,
            mutation: None,
            trace: false,
            replay: None,
        }
    }

    /// When the work share ([`WorkShare`](crate::report::WorkShare)) starts counting handler
    /// time, ms: halfway to the calm point, after the fleet has converged.
    pub fn work_share_from_ms(&self) -> u64 {
        self.calm_at_ms() / 2
    }

    /// When the calm begins, ms.
    pub fn calm_at_ms(&self) -> u64 {
        self.duration.saturating_sub(self.calm).as_millis() as u64
    }

    /// A swarm run: the seed draws the size and which fault kinds are on (each with even odds),
    /// then their rates.
    pub fn swarm(seed: u64) -> Scenario {
        Scenario::swarm_of(seed, &SwarmLimits::default())
    }

    /// A swarm run within `limits`.
    pub fn swarm_of(seed: u64, limits: &SwarmLimits) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x5a12_3a11);
        let kinds: BTreeSet<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|_| rng.below(2) == 1)
            .filter(|k| limits.only.as_ref().is_none_or(|o| o.contains(k)))
            .collect();
        let mut s = Scenario::new(seed, &kinds);
        if let Some(x) = limits.scale {
            s.faults = s.faults.scaled(x);
        }
        s.replay = Some(replay_command(Level::Core, seed, limits));
        s.instances = 1 + rng.below(6) as usize;
        s.queues = [1, 7, 20, 40, 100][rng.below(5) as usize];
        s.messages_per_second = 1 + rng.below(10);
        s.queue_partition_keys = [1, 1, 2, 8][rng.below(4) as usize];
        s.traffic = limits.traffic.unwrap_or_default();
        s.balance = limits.balance.unwrap_or(Balance::Count);
        s.calm = calm_for(s.balance);
        s
    }

    /// Checks the parameters and names the first that is out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad =
            |field: &'static str, rule: String| Err(SimError::InvalidScenario { field, rule });
        if self.instances == 0 || self.instances > 1_000 {
            return bad(
                "instances",
                format!("must be 1..=1000, {} given", self.instances),
            );
        }
        let keys = [
            (
                "queue_partition_keys",
                self.queue_partition_keys,
                table::MAX_QUEUE_PARTITION_KEYS,
            ),
            (
                "instance_partition_keys",
                self.instance_partition_keys,
                table::MAX_INSTANCE_PARTITION_KEYS,
            ),
        ];
        for (field, n, max) in keys {
            if !(1..=max).contains(&n) {
                return bad(field, format!("must be 1..={max}, {n} given"));
            }
        }
        if self.queues > 100_000 {
            return bad(
                "queues",
                format!("must be at most 100000, {} given", self.queues),
            );
        }
        if self.duration < self.calm + Duration::from_secs(10) {
            return bad(
                "duration",
                format!(
                    "must leave at least 10 s of faults before the {:?} calm phase",
                    self.calm
                ),
            );
        }
        if self.duration > Duration::from_secs(7 * 24 * 3600) {
            return bad("duration", "must be at most 7 days".to_owned());
        }
        Ok(())
    }
}

/// Parses a duration as `humantime` reads one (`500ms`, `1.5s`, `1m30s`, `2h 5m`); a bare
/// whole number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, SimError> {
    let t = s.trim();
    let parsed = match t.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(t),
    };
    parsed.map_err(|_| SimError::InvalidDuration {
        value: s.chars().take(40).collect(),
    })
}

/// A simulation level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Level 1: the core nodes in the discrete-event simulator.
    #[default]
    Core,
    /// Level 2: the real runtime of every instance on turmoil hosts, against the fakes.
    Runtime,
    /// Level 3: as level 2, through the real AWS SDK clients over turmoil's network to an
    /// HTTP server speaking the services' protocols.
    Sdk,
}

impl Level {
    /// Every level, in order.
    pub const ALL: [Level; 3] = [Level::Core, Level::Runtime, Level::Sdk];

    /// The level numbered `n` (1, 2 or 3).
    pub fn of(n: u8) -> Option<Level> {
        Level::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// Its number: 1, 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            Level::Core => 1,
            Level::Runtime => 2,
            Level::Sdk => 3,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// The command that replays seed `seed` of `level`'s swarm within `limits`.
pub fn replay_command(level: Level, seed: u64, limits: &SwarmLimits) -> String {
    let mut cmd = match level {
        Level::Core => format!("sqsbalancer sim replay --seed {seed}"),
        _ => format!("sqsbalancer sim replay --level {level} --seed {seed}"),
    };
    if let Some(o) = &limits.only {
        let names: Vec<&str> = o.iter().map(|k| k.name()).collect();
        cmd += &format!(" --faults {}", names.join(","));
    }
    if let Some(x) = limits.scale {
        cmd += &format!(" --fault-scale {x}");
    }
    if let Some(t) = limits.traffic {
        cmd += &format!(" --traffic {}", t.name());
    }
    if let Some(Balance::Load { .. }) = limits.balance {
        cmd += " --balance load";
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deliberate_bug_is_found_by_its_name() {
        for m in Mutation::ALL {
            assert_eq!(Mutation::named(m.name()), Some(m));
        }
        assert_eq!(Mutation::named("none"), None);
    }

    #[test]
    fn durations_parse_and_bad_ones_are_named() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        for bad in ["", "s", "10 parsecs", "-3s", "99999999999999999999h"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains("duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn fault_lists_parse_and_unknown_names_are_listed() {
        assert_eq!(FaultKind::parse_list("all").unwrap().len(), 20);
        assert!(FaultKind::parse_list("none").unwrap().is_empty());
        let two = FaultKind::parse_list("crash, 5xx").unwrap();
        assert_eq!(
            two.into_iter().collect::<Vec<_>>(),
            [FaultKind::Crash, FaultKind::ServerError]
        );
        let e = FaultKind::parse_list("crash,meteor")
            .unwrap_err()
            .to_string();
        assert!(e.contains("meteor") && e.contains("partition-sqs"), "{e}");
    }

    #[test]
    fn a_limited_swarm_seed_replays_with_its_limit() {
        let only = FaultKind::parse_list("stop,crash").unwrap();
        let limits = SwarmLimits {
            only: Some(only.clone()),
            scale: Some(0.5),
            traffic: Some(crate::Traffic::G14),
            balance: Some(Balance::load()),
        };
        let limited = Scenario::swarm_of(5, &limits);
        assert_eq!(
            limited.replay.as_deref(),
            Some(
                "sqsbalancer sim replay --seed 5 --faults crash,stop --fault-scale 0.5 --traffic zipf --balance load"
            )
        );
        assert_eq!(limited.balance, Balance::load());
        assert_eq!(limited.traffic, crate::Traffic::G14);
        assert!(limited.faults.kinds().iter().all(|k| only.contains(k)));
        assert_eq!(
            Scenario::swarm(5).replay.as_deref(),
            Some("sqsbalancer sim replay --seed 5")
        );
    }

    #[test]
    fn a_swarm_balancing_load_calms_two_publish_intervals_longer() {
        let load = SwarmLimits {
            balance: Some(Balance::load()),
            ..SwarmLimits::default()
        };
        let Balance::Load {
            publish_interval, ..
        } = Balance::load()
        else {
            unreachable!("Balance::load balances load")
        };
        for seed in 0..20 {
            let (count, by_load) = (Scenario::swarm(seed), Scenario::swarm_of(seed, &load));
            assert_eq!(count.calm, MIN_CALM);
            assert_eq!(by_load.calm, MIN_CALM + publish_interval * 2);
            assert_eq!(by_load.calm_at_ms(), count.calm_at_ms() - 120_000);
            let (count, by_load) = (
                crate::level2::scenario(seed, &SwarmLimits::default()),
                crate::level2::scenario(seed, &load),
            );
            assert_eq!(
                by_load.calm_at_ms(),
                count.calm_at_ms(),
                "faults last as long"
            );
            assert!(by_load.validate().is_ok());
        }
    }

    #[test]
    fn scaling_keeps_recovery_and_turns_off_what_reaches_zero() {
        let mut rng = Rng::new(9);
        let mix = FaultMix::draw(&mut rng, &FaultKind::ALL.into_iter().collect());
        let off = mix.scaled(0.0);
        assert_eq!(off.restart, mix.restart);
        assert_eq!(off.max_latency_ms, mix.max_latency_ms);
        assert_eq!((off.crash, off.throttle, off.queue_churn), (0, 0, 0));
        let half = mix.scaled(0.5);
        assert_eq!(half.crash, (mix.crash as f64 * 0.5).round() as u64);
    }

    #[test]
    fn drawn_mix_turns_on_exactly_the_kinds_asked() {
        for seed in 0..50 {
            let mut rng = Rng::new(seed);
            let kinds: BTreeSet<FaultKind> = FaultKind::ALL
                .into_iter()
                .filter(|_| rng.below(2) == 0)
                .collect();
            let mix = FaultMix::draw(&mut rng, &kinds);
            assert_eq!(mix.kinds(), kinds.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn levels_are_numbered_one_to_three() {
        for level in Level::ALL {
            assert_eq!(Level::of(level.number()), Some(level));
        }
        assert_eq!(Level::of(0), None);
        assert_eq!(Level::of(4), None);
    }

    #[test]
    fn a_replay_names_the_level_only_above_one() {
        let none = SwarmLimits::default();
        assert_eq!(
            replay_command(Level::Core, 5, &none),
            "sqsbalancer sim replay --seed 5"
        );
        assert_eq!(
            replay_command(Level::Sdk, 5, &none),
            "sqsbalancer sim replay --level 3 --seed 5"
        );
    }
}

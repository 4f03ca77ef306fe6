//! The worker's options: a flag for every configuration option, each also read from the
//! environment as `SQSBALANCER_` and the flag's name in capitals (`--queue-pattern` is
//! `SQSBALANCER_QUEUE_PATTERN`), so a container is configured without a command line.

use crate::sim::duration;
use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use sqsbalancer_core::config::Balance;
use sqsbalancer_core::{Band, Config, SqsConfig};
use sqsbalancer_runtime::aws::Billing;
use std::net::SocketAddr;
use std::time::Duration;

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// The worker's flags: every configuration option, its operation, and one handler.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Endpoint for SQS and DynamoDB instead of AWS's (moto, LocalStack).
    #[arg(long, value_name = "URL", env = "SQSBALANCER_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// AWS region [default: from the environment and profile].
    #[arg(long, env = "SQSBALANCER_REGION")]
    pub region: Option<String>,
    /// The DynamoDB coordination table (created if missing).
    #[arg(long, env = "SQSBALANCER_TABLE")]
    pub table: String,
    /// Provisioned read,write capacity for a table it creates [default: on-demand].
    #[arg(long, value_name = "R,W", value_parser = capacity_units, env = "SQSBALANCER_TABLE_CAPACITY")]
    pub table_capacity: Option<Billing>,
    /// Never create the table; wait for it instead.
    #[arg(long, env = "SQSBALANCER_NO_CREATE_TABLE", value_parser = BoolishValueParser::new())]
    pub no_create_table: bool,
    /// The application name shared by every instance of the fleet.
    #[arg(long, env = "SQSBALANCER_APP")]
    pub app: String,
    /// Only queues whose name matches this regex.
    #[arg(long, value_name = "REGEX", env = "SQSBALANCER_QUEUE_PATTERN")]
    pub queue_pattern: Option<String>,
    /// This instance's id [default: pod, ECS container or host name, pid, random suffix].
    #[arg(long, env = "SQSBALANCER_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Heartbeat interval [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<Duration>,
    /// Heartbeat timeout, over twice the interval [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_HEARTBEAT_TIMEOUT")]
    pub heartbeat_timeout: Option<Duration>,
    /// Wait before moving queues to a new instance [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_REBALANCE_DELAY")]
    pub rebalance_delay: Option<Duration>,
    /// Queue discovery interval [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_DISCOVERY_INTERVAL")]
    pub discovery_interval: Option<Duration>,
    /// Full re-read of the queue records [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_RECONCILE_INTERVAL")]
    pub reconcile_interval: Option<Duration>,
    /// Pause an instance may take and stay safe [default: heartbeat timeout / 10].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_FENCE_MARGIN")]
    pub fence_margin: Option<Duration>,
    /// Visibility timeout, whole seconds [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_VISIBILITY_TIMEOUT")]
    pub visibility_timeout: Option<Duration>,
    /// Long-poll wait, whole seconds up to 20 [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_WAIT_TIME")]
    pub wait_time: Option<Duration>,
    /// Messages per receive, 1 to 10 [default: 10].
    #[arg(long, value_name = "N", env = "SQSBALANCER_MAX_MESSAGES")]
    pub max_messages: Option<u32>,
    /// Message attributes to receive, comma-separated [default: All].
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        env = "SQSBALANCER_ATTRIBUTE_NAMES"
    )]
    pub attribute_names: Option<Vec<String>>,
    /// One queue's own SQS settings, NAME:visibility=2m,wait=5s,max=5,in_flight=20 (repeat
    /// the flag; separate them with ; in the variable).
    #[arg(long, value_name = "NAME:SETTINGS", value_parser = queue_settings, value_delimiter = ';', env = "SQSBALANCER_QUEUE_SETTINGS")]
    pub queue_settings: Vec<QueueSettings>,
    /// Most messages of one queue held at once, received and not yet settled [default: no cap].
    #[arg(long, value_name = "N", env = "SQSBALANCER_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u32>,
    /// Concurrent handlers [default: 10].
    #[arg(long, value_name = "N", env = "SQSBALANCER_WORKERS")]
    pub workers: Option<usize>,
    /// Received messages waiting for a handler, at most [default: 100].
    #[arg(long, value_name = "N", env = "SQSBALANCER_WORK_QUEUE")]
    pub work_queue: Option<usize>,
    /// Longest graceful stop [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<Duration>,
    /// What the fleet's targets balance: `count` (queue counts) or `load` (the queues'
    /// handler time, as each owner measures and publishes it). Every instance of an
    /// application must use the same [default: count].
    #[arg(long, value_name = "WHAT", value_parser = crate::sim::balance, env = "SQSBALANCER_BALANCE")]
    pub balance: Option<Balance>,
    /// With --balance load: how far in percent an instance's load may stray from its share
    /// before queues move [default: 10].
    #[arg(long, value_name = "PERCENT", requires = "balance", value_parser = clap::value_parser!(u32).range(0..=100), env = "SQSBALANCER_BALANCE_BAND")]
    pub balance_band: Option<u32>,
    /// This instance's capacity weight [default: 1].
    #[arg(long, value_name = "W", env = "SQSBALANCER_CAPACITY")]
    pub capacity: Option<u32>,
    /// Partition keys to spread queue records over, for a new application [default: 1].
    #[arg(long, value_name = "N", env = "SQSBALANCER_QUEUE_PARTITION_KEYS")]
    pub queue_partition_keys: Option<u32>,
    /// Partition keys to spread instance records over, for a new application [default: 1].
    #[arg(long, value_name = "N", env = "SQSBALANCER_INSTANCE_PARTITION_KEYS")]
    pub instance_partition_keys: Option<u32>,
    /// Fail (and kill) a handler still running after this long [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_HANDLER_TIMEOUT")]
    pub handler_timeout: Option<Duration>,
    /// Retry a failure after this, doubling per receive [default: the visibility timeout].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_FAILURE_BACKOFF")]
    pub failure_backoff: Option<Duration>,
    /// Longest failure backoff.
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "failure_backoff", default_value = "15m", env = "SQSBALANCER_FAILURE_BACKOFF_MAX")]
    pub failure_backoff_max: Duration,
    /// Rest this long between long polls of a queue idle for three polls [default: none].
    #[arg(long, value_name = "DURATION", value_parser = duration, env = "SQSBALANCER_IDLE_PAUSE")]
    pub idle_pause: Option<Duration>,
    /// Hand received messages to workers in arrival order, not fairly across queues by
    /// handler time.
    #[arg(long, env = "SQSBALANCER_NO_FAIR_SCHEDULING", value_parser = BoolishValueParser::new())]
    pub no_fair_scheduling: bool,
    /// Do not extend the visibility of messages held past half their timeout.
    #[arg(long, env = "SQSBALANCER_NO_VISIBILITY_EXTENSION", value_parser = BoolishValueParser::new())]
    pub no_visibility_extension: bool,
    /// Serve /healthz (200 while healthy, else 503) and /metrics (Prometheus) here.
    #[arg(long, value_name = "ADDR", env = "SQSBALANCER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t, env = "SQSBALANCER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter: a level or tracing directives (info, sqsbalancer_runtime=debug).
    #[arg(
        long,
        value_name = "FILTER",
        default_value = "info",
        env = "SQSBALANCER_LOG_LEVEL"
    )]
    pub log_level: String,
    /// Print one JSON line per handled message on stdout.
    #[arg(
        long,
        conflicts_with = "exec",
        required_unless_present = "exec",
        env = "SQSBALANCER_PRINT",
        value_parser = BoolishValueParser::new()
    )]
    pub print: bool,
    /// Run this shell command per message, the body on stdin and SQS_MESSAGE_ID,
    /// SQS_QUEUE_URL, SQS_RECEIVE_COUNT, SQS_ATTR_<NAME> in its environment; exit 0 is
    /// success.
    #[arg(long, value_name = "CMD", env = "SQSBALANCER_EXEC")]
    pub exec: Option<String>,
}

impl WorkerArgs {
    /// The balancer's configuration: the defaults, with each option given.
    pub fn config(&self) -> Config {
        let mut c = Config::new(&self.app, &self.table);
        c.instance_id = Some(
            self.instance_id
                .clone()
                .unwrap_or_else(sqsbalancer_runtime::instance_id_from_environment),
        );
        c.queue_filter_pattern.clone_from(&self.queue_pattern);
        let set = |field: &mut Duration, v: Option<Duration>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut c.heartbeat_interval, self.heartbeat_interval);
        set(&mut c.heartbeat_timeout, self.heartbeat_timeout);
        set(&mut c.rebalance_delay, self.rebalance_delay);
        set(&mut c.queue_discovery_interval, self.discovery_interval);
        set(&mut c.reconcile_interval, self.reconcile_interval);
        set(&mut c.shutdown_timeout, self.shutdown_timeout);
        set(&mut c.sqs.visibility_timeout, self.visibility_timeout);
        set(&mut c.sqs.wait_time, self.wait_time);
        if let Some(margin) = self.fence_margin {
            c.fence_margin = Some(margin);
        }
        if let Some(names) = &self.attribute_names {
            c.sqs.message_attribute_names.clone_from(names);
        }
        c.sqs.max_messages = self.max_messages.unwrap_or(c.sqs.max_messages);
        if self.max_in_flight.is_some() {
            c.sqs.max_in_flight = self.max_in_flight;
        }
        c.worker_pool_size = self.workers.unwrap_or(c.worker_pool_size);
        c.work_queue_size = self.work_queue.unwrap_or(c.work_queue_size);
        c.capacity = self.capacity.unwrap_or(c.capacity);
        c.balance = match (self.balance, self.balance_band.and_then(Band::percent)) {
            (
                Some(Balance::Load {
                    publish_interval, ..
                }),
                Some(band),
            ) => Balance::Load {
                band,
                publish_interval,
            },
            (balance, _) => balance.unwrap_or(c.balance),
        };
        c.queue_partition_keys = self.queue_partition_keys.unwrap_or(c.queue_partition_keys);
        c.instance_partition_keys = self
            .instance_partition_keys
            .unwrap_or(c.instance_partition_keys);
        c
    }
}

/// One queue's SQS settings given on the command line; what is not given is the fleet's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue's name.
    pub queue: String,
    /// Its visibility timeout.
    visibility: Option<Duration>,
    /// Its long-poll wait.
    wait: Option<Duration>,
    /// Its messages per receive.
    max: Option<u32>,
    /// Its messages held at once, at most.
    in_flight: Option<u32>,
}

impl QueueSettings {
    /// The fleet's settings `base` with this queue's changes.
    pub fn apply(&self, base: &SqsConfig) -> SqsConfig {
        let mut sqs = base.clone();
        sqs.visibility_timeout = self.visibility.unwrap_or(sqs.visibility_timeout);
        sqs.wait_time = self.wait.unwrap_or(sqs.wait_time);
        sqs.max_messages = self.max.unwrap_or(sqs.max_messages);
        if self.in_flight.is_some() {
            sqs.max_in_flight = self.in_flight;
        }
        sqs
    }
}

/// `NAME:visibility=2m,wait=5s,max=5,in_flight=20`, any of the four settings.
fn queue_settings(s: &str) -> Result<QueueSettings, String> {
    let (queue, list) = s
        .split_once(':')
        .filter(|(q, _)| !q.trim().is_empty())
        .ok_or_else(|| format!("{s:?}: want NAME:visibility=2m,wait=5s,max=5,in_flight=20"))?;
    let mut out = QueueSettings {
        queue: queue.trim().to_owned(),
        visibility: None,
        wait: None,
        max: None,
        in_flight: None,
    };
    for setting in list.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("{setting:?} in {s:?}: want KEY=VALUE"))?;
        let bad = |e: String| format!("{key} in {s:?}: {e}");
        match key.trim() {
            "visibility" => out.visibility = Some(duration(value).map_err(bad)?),
            "wait" => out.wait = Some(duration(value).map_err(bad)?),
            "max" => out.max = Some(value.trim().parse().map_err(|e| bad(format!("{e}")))?),
            "in_flight" => {
                out.in_flight = Some(value.trim().parse().map_err(|e| bad(format!("{e}")))?);
            }
            other => {
                return Err(format!(
                    "{other:?} in {s:?}: the settings are visibility, wait, max and in_flight"
                ));
            }
        }
    }
    Ok(out)
}

/// `R,W`: provisioned read and write capacity units, each at least 1.
fn capacity_units(s: &str) -> Result<Billing, String> {
    let units = |u: &str| u.trim().parse::<i64>().ok().filter(|n| *n >= 1);
    let (read, write) = s
        .split_once(',')
        .and_then(|(r, w)| Some((units(r)?, units(w)?)))
        .ok_or_else(|| format!("{s:?}: want READ,WRITE capacity units, each at least 1 (5,5)"))?;
    Ok(Billing::Provisioned { read, write })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker's flags alone, parsed from `flags` after the required ones.
    fn parsed(flags: &[&str]) -> Result<WorkerArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Worker {
            #[command(flatten)]
            args: WorkerArgs,
        }
        let required = ["worker", "--table", "t", "--app", "a", "--print"];
        let all = required.iter().chain(flags);
        <Worker as clap::Parser>::try_parse_from(all).map(|w| w.args)
    }

    #[test]
    fn balance_is_count_unless_load_is_asked_for_with_its_band() {
        assert_eq!(parsed(&[]).unwrap().config().balance, Balance::Count);
        let load = parsed(&["--balance", "load"]).unwrap().config();
        assert_eq!(load.balance, Balance::load());
        let banded = parsed(&["--balance", "load", "--balance-band", "20"]).unwrap();
        let Balance::Load { band, .. } = banded.config().balance else {
            panic!("not load balance");
        };
        assert_eq!(band, Band::percent(20).unwrap());
        for bad in [
            &["--balance", "work"][..],
            &["--balance-band", "5"],
            &["--balance", "load", "--balance-band", "101"],
        ] {
            let e = parsed(bad).unwrap_err().to_string();
            assert!(e.contains("--balance"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn queue_settings_read_any_of_the_four_and_name_what_is_wrong() {
        let q = queue_settings("orders-big:visibility=2m, max=1, in_flight=4").unwrap();
        assert_eq!(q.queue, "orders-big");
        let sqs = q.apply(&SqsConfig::default());
        assert_eq!(sqs.visibility_timeout, Duration::from_secs(120));
        assert_eq!(sqs.max_messages, 1);
        assert_eq!(sqs.max_in_flight, Some(4));
        assert_eq!(sqs.wait_time, SqsConfig::default().wait_time);
        for (bad, named) in [
            ("visibility=2m", "NAME:"),
            ("q:speed=3", "speed"),
            ("q:max=ten", "max"),
            ("q:in_flight=-1", "in_flight"),
            ("q:wait", "KEY=VALUE"),
        ] {
            let e = queue_settings(bad).unwrap_err();
            assert!(e.contains(named), "{bad}: {e}");
        }
    }
}

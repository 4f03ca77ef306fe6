//! Every option of the balancer, its default, and the rules it must meet.
//!
//! Names follow the Go library's `Config` and `SQSConfig` (in snake case) so its users find them.
//! The Go library's `VirtualNodes` is deliberately absent: assignment here is an exact sticky
//! balance, not a hash ring, so there is no ring to size.

use crate::assignment::Band;
use crate::error::{Error, Result};
use crate::ids::{InstanceId, check_application_name};
use crate::table::{MAX_INSTANCE_PARTITION_KEYS, MAX_QUEUE_PARTITION_KEYS};
use std::time::Duration;

/// The SQS receive settings, applied to every queue unless overridden per queue by the runtime.
/// Start from `SqsConfig::default()` and set fields: new fields may come in any release.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqsConfig {
    /// How long a received message stays invisible to other consumers: whole seconds, at most
    /// 12 hours (default 30 s).
    pub visibility_timeout: Duration,
    /// Long-poll wait of one ReceiveMessage call: whole seconds, at most 20 (default 20 s).
    pub wait_time: Duration,
    /// Most messages asked for by one ReceiveMessage call (1..=10).
    pub max_messages: u32,
    /// Message attributes to receive; `["All"]` receives every attribute.
    pub message_attribute_names: Vec<String>,
    /// Most messages of one queue held at once (received, not yet settled), if capped
    /// (default none): a noisy queue then cannot hold every worker, and the other queues keep
    /// theirs. Below `max_messages` it also caps each receive.
    pub max_in_flight: Option<u32>,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            visibility_timeout: Duration::from_secs(30),
            wait_time: Duration::from_secs(20),
            max_messages: 10,
            message_attribute_names: vec!["All".to_owned()],
            max_in_flight: None,
        }
    }
}

/// Checks that `d`, the value of `field`, is whole seconds and at most `max` of them: SQS
/// takes these times in seconds.
fn whole_seconds_up_to(field: &'static str, d: Duration, max: u64) -> Result<()> {
    if d.subsec_nanos() != 0 || d.as_secs() > max {
        return Err(invalid(
            field,
            format!("must be whole seconds, 0..={max} s, got {d:?}"),
        ));
    }
    Ok(())
}

impl SqsConfig {
    /// The visibility timeout in the whole seconds SQS takes.
    pub fn visibility_secs(&self) -> u32 {
        u32::try_from(self.visibility_timeout.as_secs()).unwrap_or(u32::MAX)
    }

    /// Checks the SQS limits (the runtime also checks per-queue overrides with it) and
    /// returns the first field that breaks one.
    pub fn validate(&self) -> Result<()> {
        let sqs = self;
        whole_seconds_up_to("sqs.visibility_timeout", sqs.visibility_timeout, 43_200)?;
        whole_seconds_up_to("sqs.wait_time", sqs.wait_time, 20)?;
        if !(1..=10).contains(&sqs.max_messages) {
            return Err(invalid(
                "sqs.max_messages",
                format!("must be 1..=10, got {}", sqs.max_messages),
            ));
        }
        if sqs
            .message_attribute_names
            .iter()
            .any(|n| n.trim().is_empty())
        {
            return Err(invalid(
                "sqs.message_attribute_names",
                "must not contain empty names",
            ));
        }
        if sqs.max_in_flight == Some(0) {
            return Err(invalid(
                "sqs.max_in_flight",
                "must be at least 1 when set, got 0",
            ));
        }
        Ok(())
    }
}

/// What a fleet's targets balance (G14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balance {
    /// Each instance gets the floor or ceiling of its weighted share of the queues.
    Count,
    /// Each instance gets its weighted share of the queues' load, as their owners measure and
    /// publish it in their instance records (docs/design.md §4.5). Queues move only once an
    /// instance's load strays from its share by more than `band`.
    Load {
        /// How far an instance's load may stray from its share before queues move.
        band: Band,
        /// How often at most an instance publishes its queues' loads again (default 1 min; at
        /// least `heartbeat_interval`). It publishes only when readers would misjudge them
        /// by a tenth.
        publish_interval: Duration,
    },
}

impl Balance {
    /// Load balance with the default band (10%) and publish interval (1 min).
    pub fn load() -> Balance {
        Balance::Load {
            band: Band::percent(10).unwrap_or(Band::ZERO),
            publish_interval: Duration::from_secs(60),
        }
    }
}

/// The configuration of one balancer instance. Start from [`Config::new`] and set fields: new
/// fields may come in any release, and [`Config::validate`] (which the balancer calls) checks
/// them all at once, naming the field that broke a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Name shared by every instance of one application; instances of different applications
    /// in one table never see each other. Required.
    pub application_name: String,
    /// This instance's unique id. `None`: the balancer generates one from where the process
    /// runs (pod name, ECS container id or host name), its process id and a random suffix.
    pub instance_id: Option<String>,
    /// The DynamoDB coordination table. Required; the one source of its name (the AWS backend
    /// built with `AwsBackend::from_sdk_config` takes it from here, and a backend built for
    /// another table is refused). The balancer creates it when missing.
    pub dynamodb_table_name: String,
    /// How often this instance renews its heartbeat and reads its peers' (default 10 s).
    pub heartbeat_interval: Duration,
    /// How long a peer's heartbeat counter must stay unchanged, on this instance's own clock,
    /// before the peer is judged dead (default 30 s; more than twice `heartbeat_interval`).
    pub heartbeat_timeout: Duration,
    /// How often SQS is listed for new queues (default 5 min).
    pub queue_discovery_interval: Duration,
    /// Regex over queue names; `None` takes every queue.
    pub queue_filter_pattern: Option<String>,
    /// How long voluntary moves wait after a membership change, to batch joins (default 30 s).
    /// Failover never waits for it.
    pub rebalance_delay: Duration,
    /// SQS receive settings.
    pub sqs: SqsConfig,
    /// Concurrent handler invocations (default 10).
    pub worker_pool_size: usize,
    /// Messages buffered between pollers and workers (default 100).
    pub work_queue_size: usize,
    /// Longest graceful stop: in-flight handlers past it are abandoned (default 30 s).
    pub shutdown_timeout: Duration,
    /// This instance's capacity weight: it gets `capacity / total` of the queues (default 1).
    pub capacity: u32,
    /// Safety margin taken off the lease for clock-rate drift; `None` uses a tenth of
    /// `heartbeat_timeout`. Must leave room for at least one heartbeat interval.
    pub fence_margin: Option<Duration>,
    /// How often every queue record is read again as a safety net (default 10 min).
    pub reconcile_interval: Duration,
    /// How many partition keys an application's queue records are spread over (default 1; at
    /// most 256): raise it for fleets whose table reads or writes near DynamoDB's per-key
    /// limits. The first instance records it in the table and the whole fleet follows that
    /// record, so it takes effect only for an application with no queue records yet.
    pub queue_partition_keys: u32,
    /// How many partition keys an application's instance records are spread over (default 1;
    /// at most 64): every instance reads every instance record each heartbeat interval, so
    /// a fleet of several hundred instances reads more than one key serves. Each key is one
    /// more request per read. Recorded and followed like `queue_partition_keys`.
    pub instance_partition_keys: u32,
    /// What targets balance across the fleet (default [`Balance::Count`]). Every instance of
    /// an application must use the same: instances that balance differently disagree on
    /// targets and pass queues back and forth (still never two receiving from one).
    pub balance: Balance,
    /// Seed of all the core's randomness (timer spread, the first incarnation of a new
    /// instance record). 0 (the default) has the runtime draw one from OS entropy for each
    /// process; simulations pass one derived from the run's seed.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            application_name: String::new(),
            instance_id: None,
            dynamodb_table_name: String::new(),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            queue_discovery_interval: Duration::from_secs(300),
            queue_filter_pattern: None,
            rebalance_delay: Duration::from_secs(30),
            sqs: SqsConfig::default(),
            worker_pool_size: 10,
            work_queue_size: 100,
            shutdown_timeout: Duration::from_secs(30),
            capacity: 1,
            fence_margin: None,
            reconcile_interval: Duration::from_secs(600),
            queue_partition_keys: 1,
            instance_partition_keys: 1,
            balance: Balance::Count,
            seed: 0,
        }
    }
}

/// The largest capacity weight accepted; keeps weighted quotas far from overflow.
pub const MAX_CAPACITY: u32 = 1_000_000;

fn invalid(field: &'static str, rule: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field,
        rule: rule.into(),
    }
}

impl Config {
    /// A configuration with the defaults and the two required names.
    pub fn new(application_name: &str, dynamodb_table_name: &str) -> Config {
        Config {
            application_name: application_name.to_owned(),
            dynamodb_table_name: dynamodb_table_name.to_owned(),
            ..Config::default()
        }
    }

    /// The lease margin in force: the configured one or a tenth of the heartbeat timeout.
    pub fn effective_fence_margin(&self) -> Duration {
        self.fence_margin.unwrap_or(self.heartbeat_timeout / 10)
    }

    /// Under load balance, loads may not be published more often than heartbeats carry them.
    fn check_balance(&self) -> Result<()> {
        if let Balance::Load {
            publish_interval, ..
        } = self.balance
            && publish_interval < self.heartbeat_interval
        {
            return Err(invalid(
                "balance.publish_interval",
                format!(
                    "must be at least heartbeat_interval ({:?}), got {publish_interval:?}",
                    self.heartbeat_interval
                ),
            ));
        }
        Ok(())
    }

    /// Checks every rule and returns the first field that breaks one.
    pub fn validate(&self) -> Result<()> {
        if self.application_name.is_empty() {
            return Err(invalid("application_name", "is required"));
        }
        check_application_name(&self.application_name).map_err(|e| match e {
            Error::InvalidId { rule, .. } => invalid("application_name", rule),
            other => other,
        })?;
        if let Some(id) = &self.instance_id {
            InstanceId::new(id).map_err(|e| match e {
                Error::InvalidId { rule, .. } => invalid("instance_id", rule),
                other => other,
            })?;
        }
        check_table_name(&self.dynamodb_table_name)?;
        if !(1..=MAX_QUEUE_PARTITION_KEYS).contains(&self.queue_partition_keys) {
            return Err(invalid(
                "queue_partition_keys",
                format!("must be 1 to {MAX_QUEUE_PARTITION_KEYS}"),
            ));
        }
        if !(1..=MAX_INSTANCE_PARTITION_KEYS).contains(&self.instance_partition_keys) {
            return Err(invalid(
                "instance_partition_keys",
                format!("must be 1 to {MAX_INSTANCE_PARTITION_KEYS}"),
            ));
        }
        self.check_balance()?;
        if self.heartbeat_interval < Duration::from_millis(10) {
            return Err(invalid("heartbeat_interval", "must be at least 10ms"));
        }
        if self.heartbeat_timeout <= self.heartbeat_interval * 2 {
            return Err(invalid(
                "heartbeat_timeout",
                format!(
                    "must be more than twice HeartbeatInterval ({:?} given, interval {:?})",
                    self.heartbeat_timeout, self.heartbeat_interval
                ),
            ));
        }
        let margin = self.effective_fence_margin();
        if margin + self.heartbeat_interval >= self.heartbeat_timeout {
            return Err(invalid(
                "fence_margin",
                "plus HeartbeatInterval must be less than HeartbeatTimeout",
            ));
        }
        if self.queue_discovery_interval < Duration::from_millis(10) {
            return Err(invalid("queue_discovery_interval", "must be at least 10ms"));
        }
        if self.reconcile_interval < self.heartbeat_interval {
            return Err(invalid(
                "reconcile_interval",
                "must be at least HeartbeatInterval",
            ));
        }
        if let Some(p) = &self.queue_filter_pattern {
            regex::Regex::new(p).map_err(|e| {
                invalid("queue_filter_pattern", format!("is not a valid regex: {e}"))
            })?;
        }
        self.sqs.validate()?;
        if self.worker_pool_size == 0 {
            return Err(invalid("worker_pool_size", "must be at least 1"));
        }
        if self.work_queue_size == 0 {
            return Err(invalid("work_queue_size", "must be at least 1"));
        }
        if self.shutdown_timeout.is_zero() {
            return Err(invalid("shutdown_timeout", "must be more than zero"));
        }
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(invalid(
                "capacity",
                format!("must be 1..={MAX_CAPACITY}, got {}", self.capacity),
            ));
        }
        Ok(())
    }
}

fn check_table_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !(3..=255).contains(&name.len()) || !ok_chars {
        return Err(invalid(
            "dynamodb_table_name",
            "must be 3..=255 characters of letters, digits, '_', '-' and '.'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: &Config) -> &'static str {
        match c.validate() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_go_library() {
        let c = Config::new("app", "table");
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(30));
        assert_eq!(c.queue_discovery_interval, Duration::from_secs(300));
        assert_eq!(c.rebalance_delay, Duration::from_secs(30));
        assert_eq!(c.sqs.visibility_timeout, Duration::from_secs(30));
        assert_eq!(c.sqs.wait_time, Duration::from_secs(20));
        assert_eq!(c.sqs.max_messages, 10);
        assert_eq!(c.sqs.message_attribute_names, vec!["All".to_owned()]);
        assert_eq!((c.worker_pool_size, c.work_queue_size), (10, 100));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(c.capacity, 1);
        assert_eq!(c.effective_fence_margin(), Duration::from_secs(3));
    }

    #[test]
    fn each_rule_names_its_field() {
        let base = Config::new("app", "table");
        type Break = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Break)> = vec![
            ("application_name", Box::new(|c| c.application_name.clear())),
            (
                "application_name",
                Box::new(|c| c.application_name = "a#b".into()),
            ),
            (
                "instance_id",
                Box::new(|c| c.instance_id = Some("x y".into())),
            ),
            (
                "dynamodb_table_name",
                Box::new(|c| c.dynamodb_table_name = "t".into()),
            ),
            (
                "heartbeat_interval",
                Box::new(|c| c.heartbeat_interval = Duration::ZERO),
            ),
            (
                "heartbeat_timeout",
                Box::new(|c| c.heartbeat_timeout = Duration::from_secs(20)),
            ),
            (
                "fence_margin",
                Box::new(|c| c.fence_margin = Some(Duration::from_secs(20))),
            ),
            (
                "queue_discovery_interval",
                Box::new(|c| c.queue_discovery_interval = Duration::ZERO),
            ),
            (
                "reconcile_interval",
                Box::new(|c| c.reconcile_interval = Duration::from_secs(1)),
            ),
            (
                "queue_filter_pattern",
                Box::new(|c| c.queue_filter_pattern = Some("(".into())),
            ),
            (
                "sqs.visibility_timeout",
                Box::new(|c| c.sqs.visibility_timeout = Duration::from_secs(43_201)),
            ),
            (
                "sqs.wait_time",
                Box::new(|c| c.sqs.wait_time = Duration::from_millis(1_500)),
            ),
            ("sqs.max_messages", Box::new(|c| c.sqs.max_messages = 0)),
            ("sqs.max_messages", Box::new(|c| c.sqs.max_messages = 11)),
            (
                "sqs.message_attribute_names",
                Box::new(|c| c.sqs.message_attribute_names = vec![" ".into()]),
            ),
            (
                "sqs.max_in_flight",
                Box::new(|c| c.sqs.max_in_flight = Some(0)),
            ),
            ("worker_pool_size", Box::new(|c| c.worker_pool_size = 0)),
            ("work_queue_size", Box::new(|c| c.work_queue_size = 0)),
            (
                "shutdown_timeout",
                Box::new(|c| c.shutdown_timeout = Duration::ZERO),
            ),
            ("capacity", Box::new(|c| c.capacity = 0)),
        ];
        for (want, mutate) in cases {
            let mut c = base.clone();
            mutate(&mut c);
            assert_eq!(field_of(&c), want);
        }
    }

    #[test]
    fn partition_key_counts_outside_their_range_name_their_field() {
        let base = Config::new("app", "table");
        for n in [0, MAX_QUEUE_PARTITION_KEYS + 1] {
            let c = Config {
                queue_partition_keys: n,
                ..base.clone()
            };
            assert_eq!(field_of(&c), "queue_partition_keys");
        }
        for n in [0, MAX_INSTANCE_PARTITION_KEYS + 1] {
            let c = Config {
                instance_partition_keys: n,
                ..base.clone()
            };
            assert_eq!(field_of(&c), "instance_partition_keys");
        }
        let c = Config {
            queue_partition_keys: MAX_QUEUE_PARTITION_KEYS,
            instance_partition_keys: MAX_INSTANCE_PARTITION_KEYS,
            ..base
        };
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn boundaries_are_inclusive_where_sqs_allows() {
        let mut c = Config::new("app", "table");
        c.sqs.visibility_timeout = Duration::from_secs(43_200);
        c.sqs.wait_time = Duration::ZERO;
        c.sqs.max_messages = 1;
        c.heartbeat_timeout = Duration::from_millis(20_001);
        c.fence_margin = Some(Duration::from_millis(100));
        assert_eq!(c.validate(), Ok(()));
        c.heartbeat_timeout = Duration::from_secs(20);
        assert_eq!(field_of(&c), "heartbeat_timeout");
    }

    #[test]
    fn error_message_names_field_and_rule() {
        let mut c = Config::new("app", "table");
        c.sqs.max_messages = 12;
        let msg = c.validate().unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid configuration: sqs.max_messages must be 1..=10, got 12"
        );
    }
}

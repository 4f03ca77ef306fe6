//! The data plane's settings: the balancer's receive options plus those only the data plane
//! reads (per-queue overrides, failure backoff, handler timeout, visibility extension).

use crate::error::RuntimeError;
use crate::timeouts::Timeouts;
use sqsbalancer_core::{Config, QueueId, SqsConfig};
use std::collections::BTreeMap;
use tokio::time::Duration;

/// SQS's ceiling on a message's visibility timeout, counted from its receipt.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// A failed message's retry delay grows with its receive count: `base × 2^(count − 1)`, at
/// most `max`, set with ChangeMessageVisibility instead of waiting out the visibility timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureBackoff {
    /// The delay after the first failed receive.
    pub base: Duration,
    /// The longest delay (SQS allows at most 12 h).
    pub max: Duration,
}

impl FailureBackoff {
    /// Retries after `base`, doubling with each receive, at most `max`.
    pub fn new(base: Duration, max: Duration) -> FailureBackoff {
        FailureBackoff { base, max }
    }

    /// The visibility timeout, in whole seconds, for a message that failed on its
    /// `receive_count`th receive.
    pub fn delay_secs(&self, receive_count: u32) -> u32 {
        let doublings = receive_count.saturating_sub(1).min(31);
        let delay = self
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .min(MAX_VISIBILITY);
        delay.as_secs() as u32
    }
}

/// The data plane's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaneSettings {
    /// ReceiveMessage settings of every queue without an override.
    pub sqs: SqsConfig,
    /// ReceiveMessage settings by queue name, replacing `sqs` for that queue.
    pub overrides: BTreeMap<String, SqsConfig>,
    /// Concurrent handler invocations.
    pub workers: usize,
    /// Messages received and waiting for a worker, at most.
    pub work_queue: usize,
    /// The deadlines of every call, the receive's plan against the fence among them.
    pub timeouts: Timeouts,
    /// How long a success waits for nine more before its delete batch goes out.
    pub delete_linger: Duration,
    /// Retry failures after a growing delay instead of the visibility timeout.
    pub failure_backoff: Option<FailureBackoff>,
    /// A handler running longer than this fails (its future is dropped).
    pub handler_timeout: Option<Duration>,
    /// Keep messages invisible while their handler runs past half the visibility timeout,
    /// up to SQS's 12 h limit.
    pub extend_visibility: bool,
    /// After three empty receives in a row (`IDLE_AFTER`), long or short, rest this long
    /// before each next one, until a message comes: fewer receives on idle queues for a later
    /// first message.
    pub idle_pause: Option<Duration>,
    /// Workers take the next job from the queue that has used the least handler time while
    /// queues wait for workers (else in arrival order): a noisy queue (a backlog, a slow
    /// handler) keeps progressing without starving the others.
    pub fair_scheduling: bool,
}

/// Empty receives in a row after which a queue counts as idle (a minute of long polls at the
/// 20 s wait).
pub const IDLE_AFTER: u32 = 3;

/// The longest idle pause: a queue still receives once an hour.
const MAX_IDLE_PAUSE: Duration = Duration::from_secs(3600);

impl PlaneSettings {
    /// The settings of `cfg`, with the data-plane options at their defaults: no overrides,
    /// failures wait out the visibility timeout, no handler timeout, visibility extended,
    /// fair scheduling.
    pub fn of(cfg: &Config) -> PlaneSettings {
        PlaneSettings {
            sqs: cfg.sqs.clone(),
            overrides: BTreeMap::new(),
            workers: cfg.worker_pool_size,
            work_queue: cfg.work_queue_size,
            timeouts: Timeouts::of(cfg),
            delete_linger: Duration::from_millis(50),
            failure_backoff: None,
            handler_timeout: None,
            extend_visibility: true,
            idle_pause: None,
            fair_scheduling: true,
        }
    }

    /// The receive settings of `queue`: its override, or the default.
    pub fn sqs_for(&self, queue: &QueueId) -> &SqsConfig {
        self.overrides.get(queue.name()).unwrap_or(&self.sqs)
    }

    /// Checks the data-plane options; the first bad one is named.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        for (queue, sqs) in &self.overrides {
            sqs.validate()
                .map_err(|source| RuntimeError::QueueSettings {
                    queue: queue.clone(),
                    source,
                })?;
        }
        if let Some(b) = &self.failure_backoff
            && (b.base.is_zero() || b.max < b.base || b.max > MAX_VISIBILITY)
        {
            return Err(RuntimeError::Option {
                option: "failure_backoff",
                rule: format!(
                    "base must be more than zero and at most max, max at most 12h; got base {:?}, max {:?}",
                    b.base, b.max
                ),
            });
        }
        if let Some(pause) = self.idle_pause
            && (pause.is_zero() || pause > MAX_IDLE_PAUSE)
        {
            return Err(RuntimeError::Option {
                option: "idle_pause",
                rule: format!("must be more than zero and at most 1h; got {pause:?}"),
            });
        }
        if self.handler_timeout.is_some_and(|t| t.is_zero()) {
            return Err(RuntimeError::Option {
                option: "handler_timeout",
                rule: "must be more than zero".into(),
            });
        }
        Ok(())
    }

    /// Messages the data plane holds at most: one permit each.
    pub(super) fn capacity(&self) -> usize {
        self.workers + self.work_queue
    }

    /// How often in-flight messages are checked for extension: an eighth of the shortest
    /// visibility timeout, within 250 ms..=10 s, so an extension asked for with half the
    /// timeout left can be asked again three times if SQS refuses it.
    pub(super) fn extension_tick(&self) -> Duration {
        let shortest = self
            .overrides
            .values()
            .chain([&self.sqs])
            .map(|s| s.visibility_timeout)
            .min()
            .unwrap_or(self.sqs.visibility_timeout);
        (shortest / 8).clamp(Duration::from_millis(250), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_receive_up_to_its_max() {
        let b = FailureBackoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        let delays: Vec<u32> = (1..=6).map(|c| b.delay_secs(c)).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(b.delay_secs(0), 5, "a zero count is the first receive");
        assert_eq!(b.delay_secs(u32::MAX), 60, "no overflow");
    }

    #[test]
    fn overrides_replace_the_default_for_their_queue_only() {
        let mut s = PlaneSettings::of(&Config::new("app", "t"));
        let mut slow = SqsConfig::default();
        slow.visibility_timeout = Duration::from_secs(300);
        s.overrides.insert("slow".into(), slow.clone());
        let q = |n: &str| QueueId::new(&format!("https://sqs.local/1/{n}")).expect("valid");
        assert_eq!(s.sqs_for(&q("slow")), &slow);
        assert_eq!(s.sqs_for(&q("fast")), &s.sqs);
        assert_eq!(s.extension_tick(), Duration::from_millis(3750));
    }

    #[test]
    fn bad_options_are_named() {
        let mut s = PlaneSettings::of(&Config::new("app", "t"));
        let mut eleven = SqsConfig::default();
        eleven.max_messages = 11;
        s.overrides.insert("q".into(), eleven);
        let e = s.validate().expect_err("max 11");
        assert!(
            e.to_string().contains("q") && e.to_string().contains("max_messages"),
            "{e}"
        );
        s.overrides.clear();
        s.failure_backoff = Some(FailureBackoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(5),
        });
        assert!(
            s.validate()
                .expect_err("max < base")
                .to_string()
                .contains("failure_backoff")
        );
        s.failure_backoff = None;
        s.handler_timeout = Some(Duration::ZERO);
        assert!(
            s.validate()
                .expect_err("zero")
                .to_string()
                .contains("handler_timeout")
        );
    }
}

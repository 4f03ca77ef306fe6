//! Every deadline of a call that leaves the process, derived in one place from the balancer's
//! options: the driver's deadline for each coordination call, the AWS clients' connect,
//! attempt and operation timeouts, and the fence arithmetic of a receive. The driver, the data
//! plane, the AWS adapter and the simulator all read them from here.
//!
//! A receive is the call that can break exclusivity, so its rule is spelled out: planned at
//! `now` against the fence `F`, with a request margin `m` (the most a request may take from the
//! last check before it is sent to its arrival at SQS, connecting included), it asks for the
//! whole seconds `w <= F - now - m`, may be sent only until `F - m - w` (the SDK adapter checks
//! this after signing, the last moment before the request goes out), and so is over at SQS by
//! `F`. It is not retried by the SDK: a second attempt would be a second long poll, planned by
//! nobody. The caller gives up at `F + m`; an answer that arrives after the fence is not handed
//! to a handler (its messages are made visible again).

use sqsbalancer_core::Config;
use tokio::time::{Duration, Instant};

/// The deadlines of one balancer's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long before the fence a receive's long poll must have ended at SQS beyond its wait:
    /// covers the request's way there (connecting included) after its last check.
    pub request_margin: Duration,
    /// TCP and TLS connect, per attempt: half the request margin.
    pub connect: Duration,
    /// The driver's deadline for one coordination call (a write, or one page of a read or a
    /// listing): past it the node is told the outcome is unknown and the call is dropped. Four
    /// fifths of the heartbeat interval, at least a second: a heartbeat or read that hangs is
    /// given up on before the next round, which sends a fresh one, so one hung heartbeat never
    /// lets the fence lapse. A read of many pages takes as long as its pages need.
    pub effect: Duration,
    /// A queue listing, all pages: the discovery interval, at least `effect`.
    pub listing: Duration,
    /// One attempt of a DynamoDB call, a ListQueues page or an SQS batch call: a third of
    /// `effect`, so three attempts fit in it.
    pub attempt: Duration,
    /// All attempts of such a call (the SDK gives up before the driver does).
    pub operation: Duration,
}

/// One receive's timing against the fence, on tokio's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivePlan {
    /// WaitTimeSeconds, in whole seconds (zero: a short poll).
    pub wait: Duration,
    /// The request may be sent until then, and not after.
    pub send_by: Instant,
    /// The caller gives up on an answer then.
    pub give_up_at: Instant,
}

/// [`ReceivePlan`] counted from the moment it is planned, for callers on another clock (the
/// level-1 simulator's milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelativePlan {
    /// WaitTimeSeconds, in whole seconds (zero: a short poll).
    pub wait: Duration,
    /// The request may be sent until this long from now, and not after.
    pub send_within: Duration,
    /// The caller gives up on an answer this long from now.
    pub give_up_after: Duration,
}

impl Timeouts {
    /// The deadlines of a balancer configured with `cfg`.
    pub fn of(cfg: &Config) -> Timeouts {
        // Two seconds, or a fifth of the heartbeat timeout when that is shorter (tests).
        let request_margin = Duration::from_secs(2).min(cfg.heartbeat_timeout / 5);
        let effect = (cfg.heartbeat_interval * 4 / 5).max(Duration::from_secs(1));
        Timeouts {
            request_margin,
            connect: request_margin / 2,
            effect,
            listing: cfg.queue_discovery_interval.max(effect),
            attempt: effect / 3,
            operation: effect * 9 / 10,
        }
    }

    /// A receive planned at `now` against `fence`, waiting at most `wanted`; `None` when the
    /// fence is too close for any call.
    #[doc(hidden)]
    pub fn plan_receive(
        &self,
        now: Instant,
        fence: Instant,
        wanted: Duration,
    ) -> Option<ReceivePlan> {
        let p = self.plan_within(fence.checked_duration_since(now)?, wanted)?;
        Some(ReceivePlan {
            wait: p.wait,
            send_by: now + p.send_within,
            give_up_at: now + p.give_up_after,
        })
    }

    /// A receive planned with `left` to go before the fence, waiting at most `wanted`.
    #[doc(hidden)]
    pub fn plan_within(&self, left: Duration, wanted: Duration) -> Option<RelativePlan> {
        let room = left.checked_sub(self.request_margin)?;
        let wait = Duration::from_secs(room.min(wanted).as_secs());
        Some(RelativePlan {
            wait,
            send_within: room - wait,
            give_up_after: left + self.request_margin,
        })
    }

    /// The SDK's timeout for the one attempt of a receive with `wait`: it may wait in the
    /// connection pool or connect for the margin, long-poll for `wait`, and answer within
    /// another margin.
    #[doc(hidden)]
    pub fn receive_attempt(&self, wait: Duration) -> Duration {
        self.request_margin + wait + self.request_margin
    }
}

impl Default for Timeouts {
    /// The deadlines of the default options.
    fn default() -> Timeouts {
        Timeouts::of(&Config::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_three_attempts_in_each_effect() {
        let t = Timeouts::default();
        assert_eq!(t.request_margin, Duration::from_secs(2));
        assert_eq!(t.connect, Duration::from_secs(1));
        assert_eq!(t.effect, Duration::from_secs(8));
        assert!(t.attempt * 3 <= t.operation + t.attempt && t.operation < t.effect);
        assert_eq!(t.listing, Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn every_receive_ends_at_sqs_before_the_fence_if_sent_by_its_send_by() {
        let t = Timeouts::default();
        let now = Instant::now();
        let wanted = Duration::from_secs(20);
        for left_ms in (0..40_000).step_by(137) {
            let fence = now + Duration::from_millis(left_ms);
            let Some(p) = t.plan_receive(now, fence, wanted) else {
                assert!(
                    Duration::from_millis(left_ms) < t.request_margin,
                    "{left_ms}"
                );
                continue;
            };
            assert!(p.wait <= wanted && p.wait.subsec_nanos() == 0, "{p:?}");
            assert!(p.send_by >= now, "sendable when planned: {left_ms} {p:?}");
            // Sent at the last moment, arriving a whole margin later, it still ends in time.
            assert!(p.send_by + t.request_margin + p.wait <= fence, "{left_ms}");
            assert_eq!(p.give_up_at, fence + t.request_margin);
        }
    }
}

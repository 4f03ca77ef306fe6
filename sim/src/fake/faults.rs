//! Fault hooks of the fake AWS: who cannot reach which service, and what each call suffers
//! (throttling, 5xx, a timeout before or after the write applied, an answer that never comes, a
//! write applied after its caller gave up, latency, requests held before they are sent and
//! answers late). Deterministic: every decision comes from the hooks' own seeded generator.

use sqsbalancer_core::Millis;
use sqsbalancer_core::rng::Rng;
use std::collections::BTreeMap;

/// The two services of the fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// DynamoDB.
    Dynamo,
    /// SQS.
    Sqs,
}

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It is served normally.
    Serve,
    /// The caller cannot reach the service: the request never arrives; the caller times out.
    Unreachable,
    /// Throttled (HTTP 400 ThrottlingException / ProvisionedThroughputExceeded): not applied.
    Throttled,
    /// HTTP 500: not applied.
    ServerError,
    /// The caller times out before the request is served: not applied, outcome unknown.
    TimeoutNotApplied,
    /// The request is served but the response is lost: applied, outcome unknown.
    TimeoutApplied,
    /// No answer ever comes; the request was served (`true`) or never arrived. Only the
    /// caller's own deadline ends the call.
    Hang(bool),
    /// The request arrives after its caller's deadline has passed (a write of unknown outcome
    /// applied late).
    Late,
}

/// Rates of the call faults, in millionths (ppm) of calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallFaults {
    /// Throttled calls, ppm.
    pub throttle: u64,
    /// 5xx calls, ppm.
    pub server_error: u64,
    /// Timed-out calls, ppm (half of them after the write applied).
    pub timeout: u64,
    /// Calls that never answer, ppm.
    pub hang: u64,
    /// Calls that arrive after their caller's deadline, ppm.
    pub late: u64,
    /// Calls held before they are sent and answered late, ppm.
    pub slow: u64,
    /// Largest extra one-way latency, ms (a uniform draw in `0..=max`).
    pub max_latency_ms: u64,
}

/// The most a slow call is held before it is sent, or its answer delayed, ms: more than every
/// request margin.
pub const SLOW_MS: u64 = 5_000;

impl CallFaults {
    /// The call faults of a run's fault mix.
    pub fn of(mix: &crate::scenario::FaultMix) -> CallFaults {
        CallFaults {
            throttle: mix.throttle,
            server_error: mix.server_error,
            timeout: mix.timeout,
            hang: mix.hang,
            late: mix.late_write,
            slow: mix.slow_call,
            max_latency_ms: mix.max_latency_ms,
        }
    }
}

/// The fault hooks shared by both services.
pub struct FaultHooks {
    rng: Rng,
    /// Rates applied to every call.
    pub rates: CallFaults,
    cut: BTreeMap<(String, Service), Millis>,
}

impl FaultHooks {
    /// Hooks with no faults, drawing from `seed`.
    pub fn new(seed: u64) -> FaultHooks {
        FaultHooks {
            rng: Rng::new(seed),
            rates: CallFaults::default(),
            cut: BTreeMap::new(),
        }
    }

    /// Cuts `caller` off `service` until `until`.
    pub fn partition(&mut self, caller: &str, service: Service, until: Millis) {
        self.cut.insert((caller.to_owned(), service), until);
    }

    /// The calm: every partition ends and no call fails, is slowed or is lost any more; only
    /// the ordinary latency stays.
    pub fn calm(&mut self) {
        self.cut.clear();
        self.rates = CallFaults {
            max_latency_ms: self.rates.max_latency_ms,
            ..CallFaults::default()
        };
    }

    /// Whether `caller` can reach `service` at `now`.
    pub fn reachable(&self, now: Millis, caller: &str, service: Service) -> bool {
        self.cut
            .get(&(caller.to_owned(), service))
            .is_none_or(|until| now >= *until)
    }

    /// Decides the fate of one call of `caller` to `service` at `now`.
    pub fn decide(&mut self, now: Millis, caller: &str, service: Service) -> Verdict {
        if !self.reachable(now, caller, service) {
            return Verdict::Unreachable;
        }
        let r = self.rates;
        if r.throttle + r.server_error + r.timeout + r.hang + r.late == 0 {
            return Verdict::Serve;
        }
        let x = self.rng.below(1_000_000);
        let mut bound = 0;
        let mut within = |rate: u64| {
            bound += rate;
            x < bound
        };
        if within(r.throttle) {
            Verdict::Throttled
        } else if within(r.server_error) {
            Verdict::ServerError
        } else if within(r.timeout) {
            if self.rng.below(2) == 0 {
                Verdict::TimeoutApplied
            } else {
                Verdict::TimeoutNotApplied
            }
        } else if within(r.hang) {
            Verdict::Hang(self.rng.below(2) == 0)
        } else if within(r.late) {
            Verdict::Late
        } else {
            Verdict::Serve
        }
    }

    /// How long one call is held before it is sent and how much later its answer comes, ms
    /// (both zero unless the call is one of the slow ones).
    pub fn slowness(&mut self) -> (u64, u64) {
        if self.rates.slow == 0 || self.rng.below(1_000_000) >= self.rates.slow {
            return (0, 0);
        }
        (self.rng.below(SLOW_MS + 1), self.rng.below(SLOW_MS + 1))
    }

    /// The item limit of one page of a table read under the pages fault (`page_items`; 0: off,
    /// pages of up to 1 MB) when the read covers `items`: a few items, or up to a quarter of
    /// them when that is more. DynamoDB's 1 MB pages read a big table in a handful of pages,
    /// never in hundreds.
    pub fn page_limit(&mut self, page_items: u64, items: usize) -> Option<usize> {
        (page_items > 0).then(|| 1 + self.draw(page_items.max(items as u64 / 4)) as usize)
    }

    /// A draw in `0..n` from the hooks' generator, for fault sizes decided elsewhere.
    pub fn draw(&mut self, n: u64) -> u64 {
        self.rng.below(n.max(1))
    }

    /// One one-way latency draw, ms.
    pub fn latency(&mut self) -> u64 {
        if self.rates.max_latency_ms == 0 {
            0
        } else {
            self.rng.below(self.rates.max_latency_ms + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_rates() {
        let mut h = FaultHooks::new(1);
        assert_eq!(h.decide(Millis(0), "a", Service::Sqs), Verdict::Serve);
        h.partition("a", Service::Dynamo, Millis(100));
        assert_eq!(
            h.decide(Millis(99), "a", Service::Dynamo),
            Verdict::Unreachable
        );
        assert_eq!(h.decide(Millis(99), "a", Service::Sqs), Verdict::Serve);
        assert_eq!(h.decide(Millis(99), "b", Service::Dynamo), Verdict::Serve);
        assert_eq!(h.decide(Millis(100), "a", Service::Dynamo), Verdict::Serve);
        h.rates = CallFaults {
            throttle: 100_000,
            server_error: 100_000,
            timeout: 200_000,
            hang: 100_000,
            late: 100_000,
            slow: 0,
            max_latency_ms: 50,
        };
        let mut seen = BTreeMap::new();
        for _ in 0..10_000 {
            *seen
                .entry(format!("{:?}", h.decide(Millis(0), "b", Service::Sqs)))
                .or_insert(0u32) += 1;
            assert!(h.latency() <= 50);
        }
        assert_eq!(
            seen.len(),
            8,
            "every verdict but Unreachable occurs: {seen:?}"
        );
        assert!((800..1200).contains(&seen["Throttled"]), "{seen:?}");
    }
}

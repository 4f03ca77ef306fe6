//! Traffic shapes (G14, docs/design.md §7): how the simulated producer spreads its messages
//! over the queues, and which queues have slow handlers. Real fleets are skewed (a queue per
//! tenant, a few tenants carrying most messages), so balancing queue counts can leave the
//! instances with very different work; a skewed shape lets a run measure that.

use sqsbalancer_core::rng::Rng;

/// How much slower a slow queue's handler is than the others'.
pub const SLOWDOWN: u64 = 10;

/// How the simulated producer spreads its messages over the queues.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Traffic {
    /// Every queue equally likely, every handler alike (the swarms' shape).
    #[default]
    Uniform,
    /// Queue number `n` (`q-0000n`) drawn with weight (n + 1)^-`exponent`, and about
    /// `slow_share` of the queues, chosen by the seed, with handlers [`SLOWDOWN`] times slower.
    Zipf {
        /// The skew: 1.1 is G14's.
        exponent: f64,
        /// The share of queues with slow handlers, 0 to 1.
        slow_share: f64,
    },
}

impl Traffic {
    /// G14's shape: Zipf(1.1) over the queues, 5% of them with slow handlers.
    pub const G14: Traffic = Traffic::Zipf {
        exponent: 1.1,
        slow_share: 0.05,
    };

    /// Every shape a command line can name.
    pub const ALL: [Traffic; 2] = [Traffic::Uniform, Traffic::G14];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Uniform => "uniform",
            Traffic::Zipf { .. } => "zipf",
        }
    }

    /// The shape called `name`, if there is one.
    pub fn named(name: &str) -> Option<Traffic> {
        Traffic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the handler of queue `name` is slow in a run of `seed`: a hash of the seed and
    /// the queue's number, so the slow queues are spread over the popular and the quiet alike.
    pub fn slow(self, seed: u64, name: &str) -> bool {
        match self {
            Traffic::Uniform => false,
            Traffic::Zipf { slow_share, .. } => {
                let n = number(name);
                let draw = Rng::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64();
                unit(draw) < slow_share
            }
        }
    }

    /// Draws `count` of the `names.len()` queues (names or URLs), as indices; a uniform draw
    /// reads no name.
    pub fn pick<S: AsRef<str>>(self, rng: &mut Rng, names: &[S], count: u64) -> Vec<usize> {
        let len = names.len() as u64;
        match self {
            Traffic::Uniform => (0..count).map(|_| rng.below(len) as usize).collect(),
            Traffic::Zipf { exponent, .. } => {
                let mut total = 0.0;
                let cumulative: Vec<f64> = (names.iter())
                    .map(|name| {
                        total += ((number(name.as_ref()) + 1) as f64).powf(-exponent);
                        total
                    })
                    .collect();
                (0..count)
                    .map(|_| {
                        let x = unit(rng.next_u64()) * total;
                        cumulative.partition_point(|&c| c <= x).min(names.len() - 1)
                    })
                    .collect()
            }
        }
    }
}

/// `bits` as a number in [0, 1).
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The number in queue name `name` (`q-00042` is 42; or in a queue URL's last segment), or 0
/// for a name without one.
pub fn number(name: &str) -> u64 {
    let name = name.rsplit('/').next().unwrap_or(name);
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Rng, Traffic, number};
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    #[test]
    fn zipf_traffic_favours_the_low_numbers_as_its_exponent_says() {
        let names: Vec<String> = (0..1_000).map(|n| format!("q-{n:05}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut rng = Rng::new(1);
        let mut hits = vec![0u64; 1_000];
        for i in Traffic::G14.pick(&mut rng, &names, 200_000) {
            hits[i] += 1;
        }
        // Weight 1 against 2^-1.1 = 0.467: queue 0 gets about twice queue 1's messages.
        let ratio = hits[1] as f64 / hits[0] as f64;
        assert!((0.42..0.52).contains(&ratio), "{ratio} ({hits:?})");
        // The top 1% of queues carries 48% of the messages (their share of the weights).
        let top: u64 = hits[..10].iter().sum();
        assert!((92_000..100_000).contains(&top), "{top}");
    }

    #[test]
    fn about_the_slow_share_of_queues_are_slow_and_uniform_has_none() {
        let names: Vec<String> = (0..10_000).map(|n| format!("q-{n:05}")).collect();
        let slow = names.iter().filter(|n| Traffic::G14.slow(7, n)).count();
        assert!((400..600).contains(&slow), "{slow} of 10,000");
        assert!(names.iter().all(|n| !Traffic::Uniform.slow(7, n)));
    }

    #[test]
    fn names_round_trip_and_numbers_come_from_queue_names() {
        for t in Traffic::ALL {
            assert_eq!(Traffic::named(t.name()), Some(t));
        }
        assert_eq!(Traffic::named("bursty"), None);
        assert_eq!(number("q-00042"), 42);
        assert_eq!(number("orders"), 0);
        assert_eq!(
            number("https://sqs.eu-west-1.amazonaws.com/123456789012/q-00007"),
            7
        );
    }

    proptest! {
        #[test]
        fn every_pick_is_one_of_the_queues(
            seed: u64,
            names in proptest::collection::vec("[a-z]{0,3}-?[0-9]{0,6}", 1..50),
            zipf: bool,
        ) {
            let t = if zipf { Traffic::G14 } else { Traffic::Uniform };
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let picks = t.pick(&mut Rng::new(seed), &names, 100);
            prop_assert_eq!(picks.len(), 100);
            prop_assert!(picks.iter().all(|&i| i < names.len()));
        }
    }
}

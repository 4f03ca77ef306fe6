//! Shared by the benchmarks: deterministic fleets and the consistent-hash ring baseline.

use sqsbalancer::{InstanceId, Member, QueueId};
use sqsbalancer_core::hash::hash64;

/// The instance×queue grid every benchmark and the churn report use.
pub const GRID: [(usize, usize); 3] = [(10, 1_000), (100, 10_000), (1_000, 100_000)];

/// `n` members of weight 1 named `<prefix>-0000`…, and the same ids for the ring.
pub fn members(prefix: &str, n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| {
            Member::new(
                InstanceId::new(&format!("{prefix}-{i:04}")).expect("valid id"),
                1,
            )
        })
        .collect()
}

/// `q` queue URLs in the shape SQS gives them.
pub fn queues(q: usize) -> Vec<QueueId> {
    (0..q)
        .map(|i| {
            let url = format!("https://sqs.us-east-1.amazonaws.com/123456789012/tenant-{i:06}");
            QueueId::new(&url).expect("valid queue")
        })
        .collect()
}

/// The seed library's scheme: 150 virtual nodes per instance on a hash ring, each queue owned by
/// the first virtual node clockwise of its hash. A 64-bit hash here (the seed used CRC32), so
/// the baseline is the ring at its best.
pub struct Ring {
    points: Vec<(u64, u32)>,
}

/// Virtual nodes per instance, as in the seed library's default.
pub const VNODES: usize = 150;

impl Ring {
    /// Builds the ring: virtual node `v` of instance `id` sits at `hash64([id, "#", v])`.
    pub fn new(members: &[Member]) -> Ring {
        let mut points = Vec::with_capacity(members.len() * VNODES);
        for (i, m) in members.iter().enumerate() {
            for v in 0..VNODES {
                let h = hash64(&[m.id.as_str().as_bytes(), b"#", v.to_string().as_bytes()]);
                points.push((h, i as u32));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The member index owning `queue`.
    pub fn owner(&self, queue: &QueueId) -> u32 {
        let h = hash64(&[queue.as_str().as_bytes()]);
        let i = self.points.partition_point(|&(p, _)| p < h);
        self.points[i % self.points.len()].1
    }

    /// The owner of every queue, in order.
    pub fn assign_all(&self, queues: &[QueueId]) -> Vec<u32> {
        queues.iter().map(|q| self.owner(q)).collect()
    }
}

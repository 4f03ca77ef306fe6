//! The churn table: for each grid size, how evenly sqsbalancer and the 150-virtual-node ring
//! spread the queues, and how many queues a join and a leave move compared with the optimum.
//! Averaged over 20 fleets (different instance names). Run with
//! `cargo bench --bench churn_report`; under `cargo test` it checks the smallest size only.

#[path = "common/mod.rs"]
mod common;

use common::{GRID, Ring, members, queues};
use sqsbalancer::{InstanceId, QueueId, assign};
use std::collections::BTreeMap;

const FLEETS: usize = 20;

/// Per-fleet figures, summed then averaged.
#[derive(Default, Clone, Copy)]
struct Figures {
    max_over_mean: f64,
    min_over_mean: f64,
    join_moves: f64,
    leave_moves: f64,
    leave_optimum: f64,
}

impl Figures {
    fn add(&mut self, o: Figures) {
        self.max_over_mean += o.max_over_mean / FLEETS as f64;
        self.min_over_mean += o.min_over_mean / FLEETS as f64;
        self.join_moves += o.join_moves / FLEETS as f64;
        self.leave_moves += o.leave_moves / FLEETS as f64;
        self.leave_optimum += o.leave_optimum / FLEETS as f64;
    }
}

fn spread(loads: &[usize], q: usize) -> (f64, f64) {
    let mean = q as f64 / loads.len() as f64;
    let max = *loads.iter().max().unwrap_or(&0) as f64;
    let min = *loads.iter().min().unwrap_or(&0) as f64;
    (max / mean, min / mean)
}

fn ours(prefix: &str, n: usize, q: usize) -> Figures {
    let ms = members(prefix, n + 1);
    let qs = queues(q);
    let before = assign(&ms[..n], &qs, &BTreeMap::new());
    let loads: Vec<usize> = before.load().into_values().collect();
    let (max_over_mean, min_over_mean) = spread(&loads, q);
    let cur: BTreeMap<QueueId, InstanceId> =
        before.iter().map(|(q, m)| (q.clone(), m.clone())).collect();
    let join_moves = assign(&ms, &qs, &cur).moved(&cur).len() as f64;
    let leaver = &ms[0].id;
    let leave_optimum = before.load()[leaver] as f64;
    let leave_moves = assign(&ms[1..n], &qs, &cur).moved(&cur).len() as f64;
    Figures {
        max_over_mean,
        min_over_mean,
        join_moves,
        leave_moves,
        leave_optimum,
    }
}

fn ring(prefix: &str, n: usize, q: usize) -> Figures {
    let ms = members(prefix, n + 1);
    let qs = queues(q);
    let before = Ring::new(&ms[..n]).assign_all(&qs);
    let mut loads = vec![0usize; n];
    for &o in &before {
        loads[o as usize] += 1;
    }
    let (max_over_mean, min_over_mean) = spread(&loads, q);
    // Member indices are shared, so equal indices mean the same owner.
    let joined = Ring::new(&ms).assign_all(&qs);
    let join_moves = before.iter().zip(&joined).filter(|(a, b)| a != b).count() as f64;
    let left = Ring::new(&ms[1..n]).assign_all(&qs);
    let leave_moves = before
        .iter()
        .zip(&left)
        .filter(|(a, b)| **a != **b + 1)
        .count() as f64;
    Figures {
        max_over_mean,
        min_over_mean,
        join_moves,
        leave_moves,
        leave_optimum: loads[0] as f64,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let grid: &[(usize, usize)] = if full { &GRID } else { &GRID[..1] };
    println!(
        "| instances × queues | scheme | max/mean load | min/mean load | join moves / optimum | leave moves / optimum |"
    );
    println!("|---|---|---|---|---|---|");
    for &(n, q) in grid {
        let (mut a, mut b) = (Figures::default(), Figures::default());
        for f in 0..FLEETS {
            let prefix = format!("fleet{f}-i");
            a.add(ours(&prefix, n, q));
            b.add(ring(&prefix, n, q));
        }
        let join_opt = q.div_ceil(n + 1) as f64;
        for (name, x) in [("sqsbalancer", a), ("ring, 150 vnodes", b)] {
            println!(
                "| {n} × {q} | {name} | {:.3} | {:.3} | {:.0} / {:.0} = {:.2} | {:.0} / {:.0} = {:.2} |",
                x.max_over_mean,
                x.min_over_mean,
                x.join_moves,
                join_opt,
                x.join_moves / join_opt,
                x.leave_moves,
                x.leave_optimum,
                x.leave_moves / x.leave_optimum.max(1.0),
            );
        }
        // The claims the README makes, checked whenever the report runs.
        let mean = q as f64 / n as f64;
        assert!(
            a.max_over_mean <= mean.ceil() / mean + 1e-9,
            "max load above the ceiling"
        );
        assert!(
            a.min_over_mean >= mean.floor() / mean - 1e-9,
            "min load below the floor"
        );
        assert!(
            a.join_moves <= join_opt,
            "a join moved more than ceil(Q/(n+1))"
        );
        assert!(
            (a.leave_moves - a.leave_optimum).abs() < 1e-9,
            "a leave moved more than the leaver's"
        );
    }
    println!(
        "\n(ring: a 64-bit hash, the ring at its best; both averaged over {FLEETS} fleets of different instance names)"
    );
}

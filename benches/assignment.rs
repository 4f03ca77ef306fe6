//! G8: the time to compute a full target and the incremental join and leave targets, beside the
//! 150-virtual-node ring baseline, for 10×1,000, 100×10,000 and 1,000×100,000
//! instances×queues. Run with `cargo bench --bench assignment`.
// criterion_group! and criterion_main! generate public items that cannot carry docs.
#![allow(missing_docs)]

#[path = "common/mod.rs"]
mod common;

use common::{GRID, Ring, members, queues};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sqsbalancer::{InstanceId, QueueId, assign};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    for (n, q) in GRID {
        let mut group = c.benchmark_group(format!("{n}x{q}"));
        if q >= 100_000 {
            group.sample_size(10);
        }
        let ms = members("i", n + 1);
        let qs = queues(q);
        let empty = BTreeMap::new();
        let settled: BTreeMap<QueueId, InstanceId> = assign(&ms[..n], &qs, &empty)
            .iter()
            .map(|(q, m)| (q.clone(), m.clone()))
            .collect();
        group.bench_function(BenchmarkId::new("full", "sqsbalancer"), |b| {
            b.iter(|| assign(black_box(&ms[..n]), black_box(&qs), &empty))
        });
        group.bench_function(BenchmarkId::new("full", "ring150"), |b| {
            b.iter(|| Ring::new(black_box(&ms[..n])).assign_all(black_box(&qs)))
        });
        group.bench_function(BenchmarkId::new("join", "sqsbalancer"), |b| {
            b.iter(|| assign(black_box(&ms), black_box(&qs), &settled))
        });
        group.bench_function(BenchmarkId::new("join", "ring150"), |b| {
            b.iter(|| Ring::new(black_box(&ms)).assign_all(black_box(&qs)))
        });
        group.bench_function(BenchmarkId::new("leave", "sqsbalancer"), |b| {
            b.iter(|| assign(black_box(&ms[1..n]), black_box(&qs), &settled))
        });
        group.bench_function(BenchmarkId::new("leave", "ring150"), |b| {
            b.iter(|| Ring::new(black_box(&ms[1..n])).assign_all(black_box(&qs)))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

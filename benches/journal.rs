//! Durable journal appends per second.
//!
//! `append` makes every record durable on its own (sled flush, fdatasync of the data file,
//! fsync of new side files); `append_batch` makes N records durable with one such flush.
//! Each benchmark uses its own journal in a fresh temporary folder (on the same filesystem
//! as `$TMPDIR`, so set that to the disk you want to measure).
//!
//! Run: `cargo bench --bench journal` (about a minute).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use usercube_upgrade::testing::journal::{Journal, NewRecord, Phase};

const PAYLOADS: [(usize, &str); 2] = [(100, "100B"), (4096, "4KiB")];
const BATCHES: [usize; 2] = [16, 256];

fn record(payload_bytes: usize) -> NewRecord {
    NewRecord {
        run_id: [7; 16],
        step: Some(1),
        phase: Phase::StepIntent,
        payload: vec![b'x'; payload_bytes],
    }
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal/append");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for (bytes, label) in PAYLOADS {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut journal = Journal::open(dir.path()).expect("open journal");
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_batched(
                || record(bytes),
                |r| {
                    journal.append(r).expect("append");
                },
                BatchSize::SmallInput,
            )
        });
        drop(journal);
    }
    g.finish();
}

fn batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal/append_batch");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (bytes, label) in PAYLOADS {
        for n in BATCHES {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut journal = Journal::open(dir.path()).expect("open journal");
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::new(label, n), |b| {
                b.iter_batched(
                    || vec![record(bytes); n],
                    |recs| journal.append_batch(recs).expect("append_batch"),
                    BatchSize::SmallInput,
                )
            });
            drop(journal);
        }
    }
    g.finish();
}

criterion_group!(benches, single, batched);
criterion_main!(benches);

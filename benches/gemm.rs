//! GEMM throughput at 1024³ through `Float::gemm` (matrixmultiply), f32 and f64.
//! Criterion's "elem/s" is FLOP/s here: each product counts 2·n³ operations.

use convformer::cpu::{self, MatmulDims};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn gemm_1024(c: &mut Criterion) {
    let n = 1024;
    let dims = MatmulDims {
        batch: 1,
        m: n,
        k: n,
        n,
        trans_a: false,
        trans_b: false,
        b_shared: false,
    };
    let mut group = c.benchmark_group("gemm_1024");
    group
        .throughput(Throughput::Elements(2 * (n * n * n) as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let a32: Vec<f32> = (0..n * n).map(|i| (i % 17) as f32 * 0.1).collect();
    let mut c32 = vec![0.0f32; n * n];
    group.bench_function("sgemm", |b| {
        b.iter(|| cpu::matmul::matmul_forward(&dims, black_box(&a32), black_box(&a32), &mut c32))
    });
    let a64: Vec<f64> = a32.iter().map(|&v| v as f64).collect();
    let mut c64 = vec![0.0f64; n * n];
    group.bench_function("dgemm", |b| {
        b.iter(|| cpu::matmul::matmul_forward(&dims, black_box(&a64), black_box(&a64), &mut c64))
    });
    group.finish();
}

criterion_group!(benches, gemm_1024);
criterion_main!(benches);

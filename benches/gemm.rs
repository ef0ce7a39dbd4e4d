//! GEMM throughput, criterion's "elem/s" being FLOP/s (a product counts 2·m·k·n):
//! - `sgemm_shapes`: the engine's f32 kernel (`cpu::sgemm`) beside matrixmultiply's
//!   sgemm, one thread each, at the model's shapes (1024 time steps, two shards:
//!   feed-forward, projections, the weight gradient with A transposed) and 512³;
//! - `gemm_1024`: `cpu::matmul` (the op: rayon-split blocks) at 1024³, f32 and f64.

use convformer::cpu;
use convformer::ops::matmul::{self, MatmulDims};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

/// (name, m, k, n, A stored transposed, B stored transposed)
const SHAPES: [(&str, usize, usize, usize, bool, bool); 5] = [
    ("ff1_1024x48x243", 1024, 48, 243, false, true),
    ("ff2_1024x243x48", 1024, 243, 48, false, true),
    ("proj_1024x48x48", 1024, 48, 48, false, true),
    ("dw_243x1024x48_at", 243, 1024, 48, true, false),
    ("square_512", 512, 512, 512, false, false),
];

type Sgemm = unsafe fn(
    usize,
    usize,
    usize,
    f32,
    *const f32,
    isize,
    isize,
    *const f32,
    isize,
    isize,
    f32,
    *mut f32,
    isize,
    isize,
);

fn sgemm_shapes(c: &mut Criterion) {
    let kernels: [(&str, Sgemm); 2] = [
        ("convformer", cpu::sgemm::sgemm),
        ("matrixmultiply", matrixmultiply::sgemm),
    ];
    for (name, m, k, n, a_t, b_t) in SHAPES {
        let mut group = c.benchmark_group(format!("sgemm_shapes/{name}"));
        group
            .throughput(Throughput::Elements(2 * (m * k * n) as u64))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.2 - 0.6).collect();
        let mut out = vec![0.0f32; m * n];
        let (rsa, csa) = if a_t {
            (1, m as isize)
        } else {
            (k as isize, 1)
        };
        let (rsb, csb) = if b_t {
            (1, k as isize)
        } else {
            (n as isize, 1)
        };
        for (kernel, f) in kernels {
            group.bench_function(kernel, |bench| {
                // SAFETY: the strides describe a, b and out; out is distinct.
                bench.iter(|| unsafe {
                    f(
                        m,
                        k,
                        n,
                        1.0,
                        black_box(a.as_ptr()),
                        rsa,
                        csa,
                        black_box(b.as_ptr()),
                        rsb,
                        csb,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                })
            });
        }
        group.finish();
    }
}

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
        b.iter(|| matmul::cpu::matmul_forward(&dims, black_box(&a32), black_box(&a32), &mut c32))
    });
    let a64: Vec<f64> = a32.iter().map(|&v| v as f64).collect();
    let mut c64 = vec![0.0f64; n * n];
    group.bench_function("dgemm", |b| {
        b.iter(|| matmul::cpu::matmul_forward(&dims, black_box(&a64), black_box(&a64), &mut c64))
    });
    group.finish();
}

criterion_group!(benches, sgemm_shapes, gemm_1024);
criterion_main!(benches);

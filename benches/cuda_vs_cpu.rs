//! CUDA kernels against the engine's CPU kernels, side by side in one run, at
//! the model's shapes (batch 256, sequence 16/64, width 48, 6 heads, ff 243)
//! and at a batch that fills a GPU (16384); SGEMM at 4096³ against cuBLAS.
//! Prints one table row per op: median milliseconds per call and the ratio.
//! Without a GPU the CUDA column says so and only the CPU is timed.
//!
//!     cargo bench --bench cuda_vs_cpu            (add `-- quick` for fewer repetitions)

use std::time::{Duration, Instant};

use convformer::autograd::{LossKind, Padding};
use convformer::cuda::{Backend, CudaBackend, DeviceBuffer};
use convformer::ops::attention::{self, cuda::AttentionPath, AttentionDims};
use convformer::ops::conv1d::{self, Conv1dDims};
use convformer::ops::dropout::{self, DropoutDims};
use convformer::ops::elementwise;
use convformer::ops::layer_norm::{self, LayerNormDims};
use convformer::ops::losses;
use convformer::ops::matmul::{self, Epilogue, Gemm, LinearDims};
use convformer::ops::pool;
use convformer::ops::softmax;
use convformer::ops::unary::{self, Unary};

struct Timer {
    budget: Duration,
}

impl Timer {
    /// Median of repeated calls, after two warm-up calls.
    fn median(&self, mut f: impl FnMut()) -> f64 {
        f();
        f();
        let mut samples = Vec::new();
        let start = Instant::now();
        while samples.len() < 3 || (start.elapsed() < self.budget && samples.len() < 50) {
            let t = Instant::now();
            f();
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        samples[samples.len() / 2]
    }
}

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            ((s.wrapping_mul(0x2545F4914F6CDD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Row {
    op: String,
    cpu_ms: Option<f64>,
    cuda_ms: Option<f64>,
}

struct Bench {
    timer: Timer,
    gpu: Option<CudaBackend>,
    rows: Vec<Row>,
}

impl Bench {
    fn gpu_buf(&self, data: &[f32]) -> Option<<CudaBackend as Backend>::Buffer> {
        self.gpu
            .as_ref()
            .map(|g| g.upload_f32(data).expect("upload"))
    }

    /// Times `cpu` and, with a GPU, `cuda` (followed by a synchronize).
    fn row(
        &mut self,
        op: String,
        cpu: Option<&mut dyn FnMut()>,
        cuda: Option<&mut dyn FnMut(&CudaBackend)>,
    ) {
        let cpu_ms = cpu.map(|f| self.timer.median(f));
        let cuda_ms = match (&self.gpu, cuda) {
            (Some(g), Some(f)) => Some(self.timer.median(|| {
                f(g);
                g.synchronize().expect("synchronize");
            })),
            _ => None,
        };
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let ratio = match (cpu_ms, cuda_ms) {
            (Some(c), Some(g)) => format!("{:.1}x", c / g),
            _ => "-".into(),
        };
        eprintln!(
            "{op:<44} {:>10} {:>10} {:>8}",
            fmt(cpu_ms),
            fmt(cuda_ms),
            ratio
        );
        self.rows.push(Row {
            op,
            cpu_ms,
            cuda_ms,
        });
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let gpu = match CudaBackend::new(0) {
        Ok(g) => {
            eprintln!("GPU: {}", g.name().unwrap_or_default());
            Some(g)
        }
        Err(e) => {
            eprintln!("==== CUDA column SKIPPED: {e} ====");
            None
        }
    };
    let mut b = Bench {
        timer: Timer {
            budget: Duration::from_millis(if quick { 150 } else { 1000 }),
        },
        gpu,
        rows: Vec::new(),
    };
    eprintln!(
        "{:<44} {:>10} {:>10} {:>8}",
        "op (shape)", "cpu ms", "cuda ms", "cpu/cuda"
    );
    let batches: &[usize] = if quick { &[256] } else { &[256, 16384] };
    for &batch in batches {
        for seq in [16usize, 64] {
            if batch == 16384 && seq == 64 {
                continue; // 16384 x 64 x 243 floats per activation: beyond this machine's CPU budget
            }
            model_ops(&mut b, batch, seq);
        }
    }
    sgemm_vs_cublas(&mut b, if quick { 1024 } else { 4096 });
    println!("op,cpu_ms,cuda_ms");
    for r in &b.rows {
        println!(
            "{},{},{}",
            r.op,
            r.cpu_ms.map_or(String::new(), |v| v.to_string()),
            r.cuda_ms.map_or(String::new(), |v| v.to_string())
        );
    }
}

fn model_ops(b: &mut Bench, batch: usize, seq: usize) {
    let (width, heads, ff, k) = (48usize, 6usize, 243usize, 5usize);
    let rows = batch * seq;
    let tag = |op: &str| format!("{op} b{batch} t{seq}");

    // Linear 48 -> 243 with bias and GELU (the feed-forward's first layer).
    let (x, w, bias) = (rand(rows * width, 1), rand(ff * width, 2), rand(ff, 3));
    let mut y = vec![0f32; rows * ff];
    let mut act = vec![0f32; rows * ff];
    let ld = LinearDims {
        rows,
        d_in: width,
        d_out: ff,
    };
    let (gx, gw, gb, gy) = (
        b.gpu_buf(&x),
        b.gpu_buf(&w),
        b.gpu_buf(&bias),
        b.gpu_buf(&y),
    );
    let g = Gemm {
        trans_b: true,
        epilogue: Epilogue::Gelu,
        ..Gemm::new(rows, ff, width)
    };
    b.row(
        tag("linear+gelu fwd 48->243"),
        Some(&mut || {
            matmul::cpu::linear_forward(&ld, &x, &w, Some(&bias), &mut y);
            unary::cpu::gelu_forward(&y, &mut act);
        }),
        Some(&mut |be: &CudaBackend| {
            matmul::cuda::sgemm(
                be,
                &g,
                gx.as_ref().unwrap(),
                gw.as_ref().unwrap(),
                gb.as_ref(),
                gy.as_ref().unwrap(),
            )
            .unwrap()
        }),
    );
    let dy = rand(rows * ff, 4);
    let (mut dx, mut dw, mut db) = (vec![0f32; x.len()], vec![0f32; w.len()], vec![0f32; ff]);
    let (gdy, gdx, gdw, gdb) = (
        b.gpu_buf(&dy),
        b.gpu_buf(&dx),
        b.gpu_buf(&dw),
        b.gpu_buf(&db),
    );
    b.row(
        tag("linear bwd 48->243"),
        Some(&mut || {
            matmul::cpu::linear_backward(&ld, &x, &w, &dy, &mut dx, &mut dw, Some(&mut db))
        }),
        Some(&mut |be: &CudaBackend| {
            let (dyb, wb, xb) = (
                gdy.as_ref().unwrap(),
                gw.as_ref().unwrap(),
                gx.as_ref().unwrap(),
            );
            matmul::cuda::sgemm(
                be,
                &Gemm::new(rows, width, ff),
                dyb,
                wb,
                None,
                gdx.as_ref().unwrap(),
            )
            .unwrap();
            matmul::cuda::sgemm(
                be,
                &Gemm {
                    trans_a: true,
                    ..Gemm::new(ff, width, rows)
                },
                dyb,
                xb,
                None,
                gdw.as_ref().unwrap(),
            )
            .unwrap();
            elementwise::cuda::column_sum(be, rows, ff, dyb, gdb.as_ref().unwrap()).unwrap();
        }),
    );

    // Conv1d 48 -> 48 channels, kernel 5, and the one-input-channel first layer.
    for cin in [1usize, width] {
        let cd = Conv1dDims {
            batch,
            c_in: cin,
            c_out: width,
            len: seq,
            kernel: k,
            padding: Padding::Same,
        };
        let (cx, cw, cb, cdy) = (
            rand(cd.x_len(), 5),
            rand(cd.w_len(), 6),
            rand(width, 7),
            rand(cd.y_len(), 8),
        );
        let mut cy = vec![0f32; cd.y_len()];
        let (mut cdx, mut cdw, mut cdb) = (
            vec![0f32; cd.x_len()],
            vec![0f32; cd.w_len()],
            vec![0f32; width],
        );
        let bufs: Vec<_> = [&cx, &cw, &cb, &cy, &cdy, &cdx, &cdw, &cdb]
            .iter()
            .map(|v| b.gpu_buf(v))
            .collect();
        b.row(
            tag(&format!("conv1d fwd {cin}->48 k5")),
            Some(&mut || conv1d::cpu::conv1d_forward(&cd, &cx, &cw, Some(&cb), &mut cy)),
            Some(&mut |be: &CudaBackend| {
                conv1d::cuda::conv1d_fwd(
                    be,
                    &cd,
                    bufs[0].as_ref().unwrap(),
                    bufs[1].as_ref().unwrap(),
                    bufs[2].as_ref(),
                    bufs[3].as_ref().unwrap(),
                )
                .unwrap()
            }),
        );
        b.row(
            tag(&format!("conv1d bwd {cin}->48 k5")),
            Some(&mut || {
                conv1d::cpu::conv1d_backward(
                    &cd,
                    &cx,
                    &cw,
                    &cdy,
                    Some(&mut cdx),
                    &mut cdw,
                    Some(&mut cdb),
                )
            }),
            Some(&mut |be: &CudaBackend| {
                let u = |i: usize| bufs[i].as_ref().unwrap();
                conv1d::cuda::conv1d_bwd(
                    be,
                    &cd,
                    u(0),
                    u(1),
                    u(4),
                    Some(u(5)),
                    Some(u(6)),
                    Some(u(7)),
                )
                .unwrap()
            }),
        );
    }

    // Layer norm over width 48.
    let lnd = LayerNormDims {
        rows,
        dim: width,
        eps: 1e-5,
    };
    let (lx, lw, lb, ldy) = (
        rand(rows * width, 9),
        rand(width, 10),
        rand(width, 11),
        rand(rows * width, 12),
    );
    let (mut ly, mut lm, mut lr) = (vec![0f32; rows * width], vec![0f32; rows], vec![0f32; rows]);
    layer_norm::cpu::layer_norm_forward(&lnd, &lx, &lw, &lb, &mut ly, &mut lm, &mut lr);
    let (mut ldx, mut ldw, mut ldb) = (
        vec![0f32; rows * width],
        vec![0f32; width],
        vec![0f32; width],
    );
    let lbufs: Vec<_> = [&lx, &lw, &lb, &ly, &lm, &lr, &ldy, &ldx, &ldw, &ldb]
        .iter()
        .map(|v| b.gpu_buf(v))
        .collect();
    let u = |i: usize| lbufs[i].as_ref();
    b.row(
        tag("layernorm fwd 48"),
        Some(&mut || {
            layer_norm::cpu::layer_norm_forward(&lnd, &lx, &lw, &lb, &mut ly, &mut lm, &mut lr)
        }),
        Some(&mut |be: &CudaBackend| {
            layer_norm::cuda::layernorm_fwd(
                be,
                &lnd,
                u(0).unwrap(),
                u(1).unwrap(),
                u(2).unwrap(),
                u(3).unwrap(),
                u(4).unwrap(),
                u(5).unwrap(),
            )
            .unwrap()
        }),
    );
    b.row(
        tag("layernorm bwd 48"),
        Some(&mut || {
            layer_norm::cpu::layer_norm_backward(
                &lnd, &lx, &lw, &lm, &lr, &ldy, &mut ldx, &mut ldw, &mut ldb,
            )
        }),
        Some(&mut |be: &CudaBackend| {
            layer_norm::cuda::layernorm_bwd(
                be,
                &lnd,
                u(0).unwrap(),
                u(1).unwrap(),
                u(4).unwrap(),
                u(5).unwrap(),
                u(6).unwrap(),
                u(7).unwrap(),
                u(8).unwrap(),
                u(9).unwrap(),
            )
            .unwrap()
        }),
    );

    // Attention, 6 heads of 8, with a key-padding mask.
    let ad = AttentionDims {
        batch,
        heads,
        tq: seq,
        tk: seq,
        d: width / heads,
        dv: width / heads,
    };
    let (q, kk, v, go) = (
        rand(ad.q_len(), 13),
        rand(ad.k_len(), 14),
        rand(ad.v_len(), 15),
        rand(ad.out_len(), 16),
    );
    let mask: Vec<bool> = (0..batch * seq)
        .map(|i| i % seq < seq - (i / seq) % 4)
        .collect();
    let (mut o, mut probs) = (vec![0f32; ad.out_len()], vec![0f32; ad.probs_len()]);
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; q.len()],
        vec![0f32; kk.len()],
        vec![0f32; v.len()],
    );
    let lse = vec![0f32; batch * heads * seq];
    let abufs: Vec<_> = [&q, &kk, &v, &o, &lse, &go, &lse, &dq, &dk, &dv]
        .iter()
        .map(|x| b.gpu_buf(x))
        .collect();
    let gmask = b.gpu.as_ref().map(|g| g.upload_mask(&mask).unwrap());
    let a = |i: usize| abufs[i].as_ref().unwrap();
    b.row(
        tag("attention fwd h6 d8 masked"),
        Some(&mut || {
            attention::cpu::attention_forward(&ad, &q, &kk, &v, Some(&mask), &mut o, &mut probs)
        }),
        Some(&mut |be: &CudaBackend| {
            attention::cuda::attention_fwd(
                be,
                &ad,
                AttentionPath::Auto,
                a(0),
                a(1),
                a(2),
                gmask.as_ref(),
                a(3),
                a(4),
            )
            .unwrap()
        }),
    );
    b.row(
        tag("attention bwd h6 d8 masked"),
        Some(&mut || {
            attention::cpu::attention_backward(
                &ad, &q, &kk, &v, &probs, &go, &mut dq, &mut dk, &mut dv,
            )
        }),
        Some(&mut |be: &CudaBackend| {
            attention::cuda::attention_bwd(
                be,
                &ad,
                a(0),
                a(1),
                a(2),
                gmask.as_ref(),
                a(3),
                a(5),
                a(4),
                a(6),
                a(7),
                a(8),
                a(9),
            )
            .unwrap()
        }),
    );

    // Pointwise and the rest.
    let n = rows * ff;
    let (px, pdy) = (rand(n, 17), rand(n, 18));
    let (mut py, mut pdx) = (vec![0f32; n], vec![0f32; n]);
    let pbufs: Vec<_> = [&px, &pdy, &py, &pdx]
        .iter()
        .map(|x| b.gpu_buf(x))
        .collect();
    let p = |i: usize| pbufs[i].as_ref().unwrap();
    b.row(
        tag("gelu bwd 243"),
        Some(&mut || unary::cpu::gelu_backward(&px, &pdy, &mut pdx)),
        Some(&mut |be: &CudaBackend| {
            unary::cuda::unary_bwd(be, Unary::Gelu, n, p(0), p(1), p(3)).unwrap()
        }),
    );
    let dd = dropout::DropoutDims {
        p: 0.1,
        seed: 42,
        call: 3,
        offset: 0,
    };
    b.row(
        tag("dropout 243"),
        Some(&mut || {
            dropout::cpu::dropout_forward(&dd, &px, &mut py);
        }),
        Some(&mut |be: &CudaBackend| {
            dropout::cuda::dropout(
                be,
                &DropoutDims {
                    p: 0.1,
                    seed: 42,
                    call: 3,
                    offset: 0,
                },
                n,
                p(0),
                p(2),
            )
            .unwrap()
        }),
    );
    let sm_rows = batch * heads * seq;
    let (sx, mut sy) = (rand(sm_rows * seq, 19), vec![0f32; sm_rows * seq]);
    let sbufs: Vec<_> = [&sx, &sy].iter().map(|x| b.gpu_buf(x)).collect();
    b.row(
        tag("softmax rows of t"),
        Some(&mut || softmax::cpu::softmax_forward(seq, &sx, &mut sy)),
        Some(&mut |be: &CudaBackend| {
            softmax::cuda::softmax_fwd(
                be,
                sm_rows,
                seq,
                sbufs[0].as_ref().unwrap(),
                sbufs[1].as_ref().unwrap(),
            )
            .unwrap()
        }),
    );
    let pd = pool::PoolDims {
        outer: batch,
        n: seq,
        inner: width,
    };
    let mut pooled = vec![0f32; batch * width];
    let mbufs: Vec<_> = [&lx, &pooled].iter().map(|x| b.gpu_buf(x)).collect();
    b.row(
        tag("mean pool over t"),
        Some(&mut || pool::cpu::mean_pool_forward(&pd, &lx, &mut pooled)),
        Some(&mut |be: &CudaBackend| {
            pool::cuda::mean_pool_fwd(
                be,
                &pd,
                mbufs[0].as_ref().unwrap(),
                mbufs[1].as_ref().unwrap(),
            )
            .unwrap()
        }),
    );
    let (pred, target) = (rand(batch, 20), rand(batch, 21));
    let mut dpred = vec![0f32; batch];
    let lbufs2: Vec<_> = [&pred, &target, &[1.0f32][..].to_vec(), &dpred]
        .iter()
        .map(|x| b.gpu_buf(x))
        .collect();
    let l = |i: usize| lbufs2[i].as_ref().unwrap();
    b.row(
        tag("huber loss fwd+bwd"),
        Some(&mut || {
            std::hint::black_box(losses::cpu::loss_forward(
                LossKind::Huber(1.0),
                &pred,
                &target,
            ));
            losses::cpu::loss_backward(LossKind::Huber(1.0), &pred, &target, 1.0, &mut dpred);
        }),
        Some(&mut |be: &CudaBackend| {
            losses::cuda::loss_fwd(be, LossKind::Huber(1.0), batch, l(0), l(1), l(2)).unwrap();
            losses::cuda::loss_bwd(be, LossKind::Huber(1.0), batch, l(0), l(1), l(2), l(3))
                .unwrap();
        }),
    );
}

/// SGEMM n³: our tiled kernel against cuBLAS on the same GPU (GFLOP/s in the op name).
fn sgemm_vs_cublas(b: &mut Bench, n: usize) {
    let Some(gpu) = b.gpu.as_ref() else {
        eprintln!("sgemm {n}^3 vs cuBLAS: SKIPPED (no GPU)");
        return;
    };
    let (a, bm) = (rand(n * n, 30), rand(n * n, 31));
    let (ga, gb, gc) = (
        gpu.upload_f32(&a).unwrap(),
        gpu.upload_f32(&bm).unwrap(),
        gpu.alloc(n * n * 4).unwrap(),
    );
    let flops = 2.0 * (n as f64).powi(3);
    let ours = b.timer.median(|| {
        matmul::cuda::sgemm(gpu, &Gemm::new(n, n, n), &ga, &gb, None, &gc).unwrap();
        gpu.synchronize().unwrap();
    });
    // SAFETY: only probes for the library.
    let cublas_ms = if unsafe { cudarc::cublas::sys::is_culib_present() } {
        let blas = cudarc::cublas::CudaBlas::new(gpu.stream().clone()).expect("cuBLAS handle");
        let (alpha, beta) = (1.0f32, 0.0f32);
        let ni = n as i32;
        Some(b.timer.median(|| {
            // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ.
            // SAFETY: the three buffers hold n·n floats on this backend's device.
            unsafe {
                cudarc::cublas::result::sgemm(
                    *blas.handle(),
                    cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N,
                    cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N,
                    ni,
                    ni,
                    ni,
                    &alpha,
                    gb.addr() as *const f32,
                    ni,
                    ga.addr() as *const f32,
                    ni,
                    &beta,
                    gc.addr() as *mut f32,
                    ni,
                )
                .expect("cublasSgemm");
            }
            gpu.synchronize().unwrap();
        }))
    } else {
        None
    };
    let gf = |ms: f64| flops / (ms * 1e-3) / 1e9;
    eprintln!(
        "sgemm {n}^3: ours {:.0} GFLOP/s, cuBLAS {} -> {}",
        gf(ours),
        cublas_ms.map_or("missing".into(), |m| format!("{:.0} GFLOP/s", gf(m))),
        cublas_ms.map_or("-".into(), |m| format!(
            "{:.0}% of cuBLAS",
            100.0 * m / ours
        ))
    );
    b.rows.push(Row {
        op: format!("sgemm {n}^3 (cpu column = cuBLAS)"),
        cpu_ms: cublas_ms,
        cuda_ms: Some(ours),
    });
}

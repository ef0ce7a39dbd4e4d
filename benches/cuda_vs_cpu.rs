//! CUDA kernels against the engine's CPU kernels, side by side in one run, at
//! the model's shapes (batch 256, sequence 16/64, width 48, 6 heads, ff 243)
//! and at a batch that fills a GPU (16384); SGEMM at 4096³ against cuBLAS.
//! Prints one table row per op: median milliseconds per call and the ratio.
//! Without a GPU the CUDA column says so and only the CPU is timed. Then the
//! whole ConvFormerNet (benches/train_step.rs's model: the default config, 26
//! channels, post-norm) on the GPU: a training step (forward, MSE, backward,
//! AdamW) and an inference pass at batch 256/1024 x sequence 16/64 and 16384.
//!
//!     cargo bench --bench cuda_vs_cpu            (add `-- quick` for fewer repetitions)
//!
//! scripts/gpu-check.sh also runs the bundled binary as a tool:
//!   `libs`            the NVRTC and cuBLAS files found (src/cuda/libs.rs) and the driver
//!   `sources DIR`     each module's translation unit (what NVRTC gets) as DIR/<stem>.cu
//!   `nvrtc ARCH`      every module through NVRTC to an sm_ARCH cubin, no GPU needed
//!   `config`          the model's ModelConfig as JSON (seq_len 0), for the PyTorch side
//!
//! `CONVFORMER_GPU_CHECK_DRY=1` (the dry run of the tests): tiny shapes, and
//! the whole model on the CPU where there is no GPU (the same code path, the
//! device aside; the emulator would take half a minute per step).

use std::time::{Duration, Instant};

use convformer::autograd::{LossKind, Padding, ParamStore, Tape};
use convformer::cuda::libs::{self, CudaLib, Nvrtc};
use convformer::cuda::{driver, Backend, CudaBackend, DeviceBuffer, Module};
use convformer::data::SERIES_CHANNELS;
use convformer::nn::{ConvFormerNet, ModelConfig, SeedRng};
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
use convformer::optim::{AdamConfig, AdamW};
use convformer::{Device, Tensor};

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
    gpu: Option<&'static CudaBackend>,
    rows: Vec<Row>,
}

impl Bench {
    fn gpu_buf(&self, data: &[f32]) -> Option<<CudaBackend as Backend>::Buffer> {
        self.gpu.map(|g| g.upload_f32(data).expect("upload"))
    }

    /// Times `cpu` and, with a GPU, `cuda` (followed by a synchronize).
    fn row(
        &mut self,
        op: String,
        cpu: Option<&mut dyn FnMut()>,
        cuda: Option<&mut dyn FnMut(&CudaBackend)>,
    ) {
        let cpu_ms = cpu.map(|f| self.timer.median(f));
        let cuda_ms = match (self.gpu, cuda) {
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

fn dry_run() -> bool {
    std::env::var_os("CONVFORMER_GPU_CHECK_DRY").is_some_and(|v| v == "1")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("libs") => return libs_report(),
        Some("sources") => return write_sources(args.get(1).expect("usage: sources DIR")),
        Some("nvrtc") => return nvrtc_all(args.get(1).expect("usage: nvrtc ARCH (90)")),
        Some("config") => {
            return println!(
                "{}",
                serde_json::to_string(&model_config(0)).expect("config as JSON")
            )
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "quick");
    let dry = dry_run();
    let gpu = match driver::global() {
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
    let batches: &[usize] = match (dry, quick) {
        (true, _) => &[4],
        (false, true) => &[256],
        (false, false) => &[256, 16384],
    };
    for &batch in batches {
        for seq in [16usize, 64] {
            if batch == 16384 && seq == 64 {
                continue; // 16384 x 64 x 243 floats per activation: beyond this machine's CPU budget
            }
            model_ops(&mut b, batch, seq);
        }
    }
    // 4096³ even in quick mode: the target is stated there (a few calls on a GPU).
    sgemm_vs_cublas(&mut b, if dry { 64 } else { 4096 });
    whole_model(&mut b, dry);
    if let Some(g) = b.gpu {
        for (m, origin) in g.ptx_origins() {
            eprintln!("ptx {}: {origin}", m.stem());
        }
    }
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

/// What src/cuda/libs.rs finds here, one `name: file` line each.
fn libs_report() {
    let major = driver::driver_cuda_major();
    match major {
        Some(m) => println!("driver: libcuda loads, CUDA {m}"),
        None => println!("driver: MISSING (libcuda.so.1 does not load)"),
    }
    match Nvrtc::global(major) {
        Ok(n) => println!(
            "nvrtc: {} ({}.{})",
            n.path().display(),
            n.version().0,
            n.version().1
        ),
        Err(e) => println!("nvrtc: MISSING: {e}"),
    }
    match libs::open_first(
        CudaLib::Cublas,
        &libs::candidates_from_env(CudaLib::Cublas, major),
    ) {
        Ok(o) => println!("cublas: {}", o.path.display()),
        Err(e) => println!("cublas: MISSING: {e}"),
    }
}

/// Each module as NVRTC gets it, for the GPU machine's nvcc.
fn write_sources(dir: &str) {
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("create the sources folder");
    for m in Module::ALL {
        std::fs::write(dir.join(format!("{}.cu", m.stem())), m.source()).expect("write a source");
    }
    println!("{} module sources in {}", Module::ALL.len(), dir.display());
}

/// Every module through NVRTC to an `sm_<arch>` cubin, as the backend
/// compiles them on that GPU; exits 1 if one fails.
fn nvrtc_all(arch: &str) {
    let arch = format!("sm_{arch}");
    let mut failed = 0;
    for m in Module::ALL {
        if let Err(e) = driver::nvrtc_cubin(m, &arch) {
            failed += 1;
            let first = e.to_string();
            println!(
                "nvrtc FAIL {}: {}",
                m.stem(),
                first.lines().take(6).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    let n = Module::ALL.len();
    println!("nvrtc {arch} cubin: {}/{n} modules compile", n - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

/// benches/train_step.rs's model: the default config, the series' 26
/// channels, the original's post-norm block.
fn model_config(seq_len: usize) -> ModelConfig {
    ModelConfig {
        seq_len,
        in_channels: SERIES_CHANNELS.len(),
        norm_first: false,
        ..ModelConfig::default()
    }
}

/// The whole network on the GPU (or, in the dry run without one, on the
/// CPU): median ms of a training step and of an inference pass.
fn whole_model(b: &mut Bench, dry: bool) {
    let device = match (b.gpu, dry) {
        (Some(_), _) => Device::Cuda(0),
        (None, true) => Device::Cpu,
        (None, false) => {
            eprintln!("whole model on the GPU: SKIPPED (no GPU)");
            return;
        }
    };
    let shapes: &[(usize, usize)] = if dry {
        &[(2, 4)]
    } else {
        &[
            (256, 16),
            (256, 64),
            (1024, 16),
            (1024, 64),
            (16384, 16),
            (16384, 64),
        ]
    };
    for &(batch, seq) in shapes {
        let (step, infer) = model_times(&device, batch, seq, if dry { 1 } else { 10 });
        eprintln!("train step b{batch} t{seq} on {device}: {step:.3} ms; inference {infer:.3} ms");
        for (what, ms) in [("train step", step), ("inference", infer)] {
            b.rows.push(Row {
                op: format!("{what} b{batch} t{seq}"),
                cpu_ms: None,
                cuda_ms: Some(ms),
            });
        }
    }
}

fn model_times(device: &Device, batch: usize, seq: usize, reps: usize) -> (f64, f64) {
    let cfg = model_config(seq);
    let mut host = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut host, &cfg, 0).expect("model");
    let mut store = host.to_device(device).expect("parameters to the device");
    let mut opt = AdamW::new(AdamConfig {
        weight_decay: 1e-4,
        ..AdamConfig::default()
    });
    let mut rng = SeedRng::new(1);
    let c = cfg.in_channels;
    let x: Vec<f32> = (0..batch * seq * c)
        .map(|_| rng.next_f64() as f32)
        .collect();
    let y: Vec<f32> = (0..batch).map(|_| rng.next_f64() as f32).collect();
    let x = Tensor::from_vec(x, &[batch, seq, c])
        .and_then(|t| t.to_device(device))
        .expect("batch to the device");
    let y = Tensor::from_vec(y, &[batch])
        .and_then(|t| t.to_device(device))
        .expect("targets to the device");
    let sync = || {
        if let Device::Cuda(_) = device {
            driver::global()
                .and_then(|g| g.synchronize())
                .expect("synchronize");
        }
    };
    let mut steps = Vec::new();
    for i in 0..reps + 2 {
        let t = Instant::now();
        let mut tape = Tape::new(&store).training(i as u64);
        let (xv, yv) = (tape.input(x.clone()), tape.input(y.clone()));
        let pred = model.forward(&mut tape, xv).expect("forward");
        let loss = tape.loss(pred, yv, LossKind::Mse).expect("loss");
        let grads = tape.backward(loss).expect("backward").params;
        opt.step(&mut store, &grads, 1e-3).expect("AdamW step");
        sync();
        steps.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut passes = Vec::new();
    for _ in 0..reps + 2 {
        let t = Instant::now();
        let mut tape = Tape::new(&store).inference();
        let xv = tape.input(x.clone());
        let pred = model.forward(&mut tape, xv).expect("forward");
        let out = tape.value(pred).to_vec().expect("predictions to the host");
        assert_eq!(out.len(), batch);
        passes.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = |mut v: Vec<f64>| {
        let v: &mut Vec<f64> = &mut v;
        v.drain(..2); // warm-up: module loads, allocator
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(steps), median(passes))
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
    let Some(gpu) = b.gpu else {
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
    let cublas = libs::Cublas::open(&libs::candidates_from_env(
        CudaLib::Cublas,
        driver::driver_cuda_major(),
    ))
    .and_then(|blas| {
        blas.set_stream(gpu.stream().cu_stream().cast())?;
        Ok(blas)
    });
    let cublas_ms = match cublas {
        Ok(blas) => {
            eprintln!("cuBLAS: {}", blas.path().display());
            let ni = n as i32;
            Some(b.timer.median(|| {
                // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ.
                // SAFETY: the three buffers hold n·n floats on this backend's device.
                unsafe {
                    blas.sgemm(
                        libs::CublasOp::N,
                        libs::CublasOp::N,
                        (ni, ni, ni),
                        1.0,
                        (gb.addr(), ni),
                        (ga.addr(), ni),
                        0.0,
                        (gc.addr(), ni),
                    )
                }
                .expect("cublasSgemm");
                gpu.synchronize().unwrap();
            }))
        }
        Err(e) => {
            eprintln!("cuBLAS: MISSING: {e}");
            None
        }
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

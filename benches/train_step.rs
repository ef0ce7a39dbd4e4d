//! One full ConvFormerNet training step (forward, MSE loss, backward, AdamW) at
//! the original's best configuration (48 filters, 6 heads, ff 243, dropout 0.05)
//! on 2 threads, side by side with the same step in PyTorch eager
//! (benches/torch_train_step.py), printed as a markdown table with the ratio of
//! samples/s, the GFLOP/s achieved and the machine's measured SGEMM peak.
//!
//! cargo bench --bench train_step            (CONVFORMER_TORCH_PYTHON picks the python)

use std::process::Command;
use std::time::Instant;

use convformer::autograd::{shard_rows, sharded_backward, LossKind, ParamStore};
use convformer::data::SERIES_CHANNELS;
use convformer::nn::{ConvFormerNet, ModelConfig, SeedRng};
use convformer::optim::{AdamConfig, AdamW};
use convformer::Tensor;

#[path = "support/stats.rs"]
#[allow(dead_code)] // its env_count serves the load and inference benches
mod stats;
use stats::median;

const THREADS: usize = 2;
const ROUNDS: usize = 3;

fn best_config(seq_len: usize) -> ModelConfig {
    ModelConfig {
        seq_len,
        in_channels: SERIES_CHANNELS.len(),
        // The original's post-norm block, as benches/torch_train_step.py builds it.
        norm_first: false,
        ..ModelConfig::default()
    }
}

/// Forward FLOPs of one sample (multiply-adds counted as 2); a training step is
/// taken as 3× forward (backward = 2× forward), the usual accounting.
fn forward_flops(c: &ModelConfig) -> f64 {
    let (t, f, k) = (
        c.seq_len as f64,
        c.conv_filters as f64,
        c.conv_kernel as f64,
    );
    let inner = (c.num_heads * c.key_dim.unwrap_or(c.conv_filters.div_ceil(c.num_heads))) as f64;
    let conv = 2.0 * t * k * f * (c.in_channels as f64 + f * (c.conv_layers as f64 - 1.0));
    let attn = 2.0 * t * f * inner * 4.0 + 2.0 * 2.0 * t * t * inner;
    let ffn = 2.0 * 2.0 * t * f * c.ff_dim as f64;
    let head = 2.0 * f * c.dense_units as f64 + 2.0 * c.dense_units as f64;
    conv + c.num_blocks as f64 * (attn + ffn) + head
}

/// Median seconds per training step.
fn ours(batch: usize, seq_len: usize, steps: usize) -> f64 {
    let cfg = best_config(seq_len);
    let mut store = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut store, &cfg, 0).unwrap();
    let mut opt = AdamW::new(AdamConfig {
        weight_decay: 1e-4,
        ..AdamConfig::default()
    });
    let mut rng = SeedRng::new(1);
    let x: Vec<f32> = (0..batch * seq_len * cfg.in_channels)
        .map(|_| rng.next_f64() as f32)
        .collect();
    let y: Vec<f32> = (0..batch).map(|_| rng.next_f64() as f32).collect();
    let mut times = Vec::new();
    let c = cfg.in_channels;
    for step in 0..steps + 2 {
        let started = Instant::now();
        let (_, grads) = sharded_backward(
            &store,
            step as u64,
            batch,
            shard_rows(seq_len),
            |tape, rows| {
                let xs = x[rows.start * seq_len * c..rows.end * seq_len * c].to_vec();
                let xv = tape.constant(Tensor::from_vec(xs, &[rows.len(), seq_len, c])?);
                let yv = tape.constant(Tensor::from_vec(y[rows.clone()].to_vec(), &[rows.len()])?);
                let pred = model.forward(tape, xv)?;
                tape.loss(pred, yv, LossKind::Mse)
            },
        )
        .unwrap();
        opt.step(&mut store, &grads, 1e-3).unwrap();
        if step >= 2 {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    median(&times)
}

/// Median seconds per step in PyTorch at its best of two OpenMP wait policies
/// (its default spins, which collapses when other processes share the cores;
/// PASSIVE sleeps), or why it could not run.
fn torch(batch: usize, seq_len: usize, steps: usize) -> Result<f64, String> {
    let active = torch_run(batch, seq_len, steps, None)?;
    let passive = torch_run(batch, seq_len, steps, Some("PASSIVE"))?;
    Ok(active.min(passive))
}

fn torch_run(
    batch: usize,
    seq_len: usize,
    steps: usize,
    wait_policy: Option<&str>,
) -> Result<f64, String> {
    let python = std::env::var("CONVFORMER_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_train_step.py");
    let mut cmd = Command::new(&python);
    cmd.args([
        script,
        &batch.to_string(),
        &seq_len.to_string(),
        &SERIES_CHANNELS.len().to_string(),
        &THREADS.to_string(),
        &steps.to_string(),
    ]);
    if let Some(policy) = wait_policy {
        cmd.env("OMP_WAIT_POLICY", policy);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("ms_per_step="))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| ms / 1e3)
        .ok_or_else(|| format!("unexpected output: {text}"))
}

/// Measured f32 GEMM GFLOP/s of the engine's kernel (`cpu::sgemm`) at 512³ on
/// one thread, times the thread count: the machine's GEMM peak.
fn gemm_peak() -> f64 {
    let n = 512;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut times = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        // SAFETY: three n×n row-major buffers, C distinct from A and B.
        unsafe {
            convformer::cpu::sgemm::sgemm(
                n,
                n,
                n,
                1.0,
                a.as_ptr(),
                n as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        times.push(started.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / median(&times) / 1e9
}

fn main() {
    convformer::train::alloc::keep_freed_memory();
    // `cargo bench` passes --bench; a filter argument is not supported here.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap();
    let peak = gemm_peak() * THREADS as f64;
    println!("ConvFormerNet training step, best config (48 filters, 6 heads, ff 243), {} input channels, {THREADS} threads", SERIES_CHANNELS.len());
    println!("SGEMM peak (512³ on one thread, the engine's kernel, × {THREADS} threads): {peak:.1} GFLOP/s\n");
    println!("| batch | seq | convformer ms | samples/s | GFLOP/s | torch ms | torch samples/s | ratio (samples/s) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (batch, seq_len) in [(256, 16), (1024, 16), (256, 64), (1024, 64)] {
        let steps = if batch * seq_len > 20_000 { 8 } else { 20 };
        // Rounds alternate the two sides and keep each side's best median, so a
        // burst of load from other processes hurts neither side alone.
        let mut t = f64::INFINITY;
        let mut torch_best: Result<f64, String> = Err("not run".into());
        for _ in 0..ROUNDS {
            t = t.min(pool.install(|| ours(batch, seq_len, steps)));
            torch_best = match (torch_best, torch(batch, seq_len, steps)) {
                (Ok(a), Ok(b)) => Ok(a.min(b)),
                (_, r) => r,
            };
        }
        let flops = 3.0 * forward_flops(&best_config(seq_len)) * batch as f64;
        let sps = batch as f64 / t;
        let (torch_ms, torch_sps, ratio) = match torch_best {
            Ok(tt) => (
                format!("{:.1}", tt * 1e3),
                format!("{:.0}", batch as f64 / tt),
                format!("{:.2}×", tt / t),
            ),
            Err(why) => {
                eprintln!("torch half skipped ({why}); set CONVFORMER_TORCH_PYTHON to a python with torch");
                ("–".into(), "–".into(), "–".into())
            }
        };
        println!(
            "| {batch} | {seq_len} | {:.1} | {sps:.0} | {:.1} | {torch_ms} | {torch_sps} | {ratio} |",
            t * 1e3,
            flops / t / 1e9
        );
    }
}

//! Bit-exact guard for refactors of the op layer: a few full ConvFormerNet
//! training steps from fixed seeds, their losses and final parameters hashed
//! bit for bit and compared with the hashes recorded in
//! `tests/golden/train_step.txt`. Any change in what an op computes, down to
//! the last bit or the order of a sum, changes a hash.
//!
//! The CPU results are independent of the thread count but not of the GEMM
//! kernel: the hashes hold on x86-64 CPUs with AVX2 + FMA (the engine's own
//! SGEMM), which is where they were recorded; its AVX-512 paths give the same
//! bits (they pass here both with and without `CONVFORMER_SIMD=avx2`).
//!
//! Regenerate (only when a change of the numerics is intended):
//!   CONVFORMER_WRITE_GOLDEN=1 cargo test --release --test train_step_golden

mod cuda_support;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use convformer::autograd::{shard_rows, sharded_backward, LossKind, ParamStore};
use convformer::nn::{ConvFormerNet, ModelConfig, SeedRng};
use convformer::optim::{AdamConfig, AdamW};
use convformer::{Device, Tensor};
use support::param_values;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/train_step.txt")
}

/// FNV-1a over the bits of every loss and every parameter value, in order.
fn hash(losses: &[f64], params: &[Vec<f32>]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for l in losses {
        eat(&l.to_bits().to_le_bytes());
    }
    for p in params {
        eat(&(p.len() as u64).to_le_bytes());
        for v in p {
            eat(&v.to_bits().to_le_bytes());
        }
    }
    h
}

/// The trainer's CPU step at the default architecture (pre-norm, relu,
/// dropout): a batch cut into shards (`sharded_backward`) on a 2-thread pool,
/// MSE, AdamW with weight decay.
fn sharded_default_run(steps: usize, batch: usize, seq_len: usize) -> (Vec<f64>, Vec<Vec<f32>>) {
    let cfg = ModelConfig {
        seq_len,
        in_channels: 4,
        ..ModelConfig::default()
    };
    let c = cfg.in_channels;
    let mut store = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut store, &cfg, 3).unwrap();
    let mut opt = AdamW::new(AdamConfig {
        weight_decay: 1e-4,
        ..AdamConfig::default()
    });
    let mut rng = SeedRng::new(11);
    let x: Vec<f32> = (0..batch * seq_len * c)
        .map(|_| rng.next_f64() as f32)
        .collect();
    let y: Vec<f32> = (0..batch).map(|_| rng.next_f64() as f32).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut losses = Vec::new();
    for step in 0..steps {
        let (loss, grads) = pool
            .install(|| {
                sharded_backward(
                    &store,
                    step as u64,
                    batch,
                    shard_rows(seq_len),
                    |tape, rows| {
                        let xs = x[rows.start * seq_len * c..rows.end * seq_len * c].to_vec();
                        let xv = tape.constant(Tensor::from_vec(xs, &[rows.len(), seq_len, c])?);
                        let yv = tape
                            .constant(Tensor::from_vec(y[rows.clone()].to_vec(), &[rows.len()])?);
                        let pred = model.forward(tape, xv)?;
                        tape.loss(pred, yv, LossKind::Mse)
                    },
                )
            })
            .unwrap();
        losses.push(loss);
        opt.step(&mut store, &grads, 1e-3).unwrap();
    }
    (losses, param_values(&store))
}

#[test]
fn training_steps_are_bit_identical_to_the_recorded_run() {
    let mut got = BTreeMap::new();
    let (l, p) = sharded_default_run(3, 96, 16);
    got.insert("cpu_sharded_default", hash(&l, &p));
    // The CPU/GPU comparison run (gelu, post-norm, Huber, clipping) on both devices.
    let (l, p) = cuda_support::training::train(Device::Cpu, 3, 5);
    got.insert("cpu_small_gelu", hash(&l, &p));
    let (l, p) = cuda_support::training::train(Device::CudaEmu, 3, 5);
    got.insert("emu_small_gelu", hash(&l, &p));

    let text: String = got.iter().map(|(k, v)| format!("{k} {v:016x}\n")).collect();
    if std::env::var_os("CONVFORMER_WRITE_GOLDEN").is_some() {
        std::fs::write(golden_path(), &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(golden_path()).unwrap();
    assert_eq!(
        text, want,
        "training steps differ from the recorded run (tests/golden/train_step.txt)"
    );
}

//! The same short training run on the CPU and on a GPU device (the emulator in
//! tests/cuda_train.rs, the real GPU in tests/cuda_gpu.rs): a small
//! ConvFormerNet with dropout on, gradient clipping and AdamW with weight
//! decay, from one seed.

use convformer::autograd::{LossKind, ParamStore, Tape};
use convformer::nn::encoder::Activation;
use convformer::nn::{ConvFormerNet, ModelConfig};
use convformer::optim::{clip_grad_norm, AdamConfig, AdamW};
use convformer::{Device, Tensor};

use crate::support::{param_values, TestRng};

pub fn config() -> ModelConfig {
    ModelConfig {
        seq_len: 7,
        in_channels: 3,
        conv_filters: 12,
        conv_layers: 2,
        conv_kernel: 3,
        num_heads: 3,
        key_dim: None,
        ff_dim: 17,
        dropout_rate: 0.2,
        num_blocks: 1,
        dense_units: 9,
        activation: Activation::Gelu,
        norm_first: false,
        layer_norm_eps: 1e-6,
        linear_skip: true,
    }
}

/// Per step: the loss; then every parameter at the end.
pub fn train(device: Device, steps: usize, batch: usize) -> (Vec<f64>, Vec<Vec<f32>>) {
    train_with(&config(), device, steps, batch)
}

/// [`train`] for any network `cfg`.
pub fn train_with(
    cfg: &ModelConfig,
    device: Device,
    steps: usize,
    batch: usize,
) -> (Vec<f64>, Vec<Vec<f32>>) {
    let (t, c) = (cfg.seq_len, cfg.in_channels);
    let mut host_store = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut host_store, cfg, 7).unwrap();
    let mut store = host_store.to_device(&device).unwrap();
    let mut opt = AdamW::new(AdamConfig {
        lr: 3e-3,
        weight_decay: 0.01,
        ..AdamConfig::default()
    });
    let mut rng = TestRng::new(42);
    let mut losses = Vec::new();
    for step in 0..steps {
        let x = Tensor::from_vec(rng.vec(batch * t * c), &[batch, t, c]).unwrap();
        let y = Tensor::from_vec(rng.vec(batch), &[batch]).unwrap();
        let mut tape = Tape::new(&store).training(1000 + step as u64);
        let xv = tape.input(x.to_device(&device).unwrap());
        let yv = tape.input(y.to_device(&device).unwrap());
        let pred = model.forward(&mut tape, xv).unwrap();
        assert_eq!(tape.value(pred).device(), device);
        let loss = tape.loss(pred, yv, LossKind::Huber(1.0)).unwrap();
        losses.push(tape.value(loss).item().unwrap() as f64);
        let mut grads = tape.backward(loss).unwrap().params;
        // A small max norm, so the clipping really scales.
        let norm = clip_grad_norm(&mut grads, 0.05).unwrap();
        assert!(norm > 0.05, "the clip never triggers (norm {norm})");
        opt.step(&mut store, &grads, 3e-3).unwrap();
    }
    (losses, param_values(&store))
}

/// Losses within 1e-4 relative at every step; parameters within 1e-4
/// absolute + 1e-3 relative (one Adam step moves a weight by about lr = 3e-3;
/// the attention's key bias has a gradient of zero in exact arithmetic, so
/// both devices move it by rounding noise that Adam normalises, ~1e-5).
pub fn assert_same_run(device: Device, steps: usize, batch: usize) {
    assert_same_run_of(&config(), device, steps, batch);
}

/// [`assert_same_run`] for any network `cfg`.
pub fn assert_same_run_of(cfg: &ModelConfig, device: Device, steps: usize, batch: usize) {
    let (cpu_losses, cpu_params) = train_with(cfg, Device::Cpu, steps, batch);
    let (gpu_losses, gpu_params) = train_with(cfg, device, steps, batch);
    for (step, (g, c)) in gpu_losses.iter().zip(&cpu_losses).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 * c.abs(),
            "step {step}: loss {g} on {device}, {c} on the CPU"
        );
    }
    assert!(
        cpu_losses.windows(2).any(|w| w[0] != w[1]),
        "losses never change: {cpu_losses:?}"
    );
    for (i, (g, c)) in gpu_params.iter().zip(&cpu_params).enumerate() {
        for (j, (a, b)) in g.iter().zip(c).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 + 1e-3 * b.abs(),
                "parameter {i}[{j}] after {steps} steps: {a} on {device}, {b} on the CPU"
            );
        }
    }
    eprintln!(
        "{steps} training steps on {device} vs the CPU: max relative loss difference {:.2e}",
        gpu_losses
            .iter()
            .zip(&cpu_losses)
            .map(|(g, c)| ((g - c) / c).abs())
            .fold(0.0, f64::max)
    );
}

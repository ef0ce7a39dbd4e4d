//! A few training steps of a small ConvFormerNet (dropout on, gradient
//! clipping, AdamW with weight decay) on the emulated CUDA device and on the
//! CPU from the same seed: the losses agree within 1e-4 relative at every
//! step, and the parameters afterwards within 1e-4 absolute + 1e-3 relative
//! (one Adam step moves a weight by about lr = 3e-3; the attention's key bias
//! has a gradient of zero in exact arithmetic, so both devices move it by
//! rounding noise that Adam normalises, around 1e-5).

mod cuda_support;

use convformer::autograd::{LossKind, ParamStore, Tape};
use convformer::nn::encoder::Activation;
use convformer::nn::{ConvFormerNet, ModelConfig};
use convformer::optim::{clip_grad_norm, AdamConfig, AdamW};
use convformer::{Device, Tensor};
use cuda_support::TestRng;

const STEPS: usize = 4;
const BATCH: usize = 5;

fn config() -> ModelConfig {
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
    }
}

/// Per step: the loss; then every parameter at the end.
fn train(device: Device) -> (Vec<f64>, Vec<Vec<f32>>) {
    let cfg = config();
    let mut host_store = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut host_store, &cfg, 7).unwrap();
    let mut store = host_store.to_device(&device).unwrap();
    let mut opt = AdamW::new(AdamConfig {
        lr: 3e-3,
        weight_decay: 0.01,
        ..AdamConfig::default()
    });
    let mut rng = TestRng::new(42);
    let mut losses = Vec::new();
    for step in 0..STEPS {
        let x = Tensor::from_vec(rng.vec(BATCH * 7 * 3), &[BATCH, 7, 3]).unwrap();
        let y = Tensor::from_vec(rng.vec(BATCH), &[BATCH]).unwrap();
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
    let params = store
        .ids()
        .map(|id| store.get(id).to_vec().unwrap())
        .collect();
    (losses, params)
}

#[test]
fn training_steps_match_cpu_on_the_emulated_gpu() {
    let (cpu_losses, cpu_params) = train(Device::Cpu);
    let (gpu_losses, gpu_params) = train(Device::CudaEmu);
    for (step, (g, c)) in gpu_losses.iter().zip(&cpu_losses).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 * c.abs(),
            "step {step}: loss {g} on the emulated GPU, {c} on the CPU"
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
                "parameter {i}[{j}] after {STEPS} steps: {a} vs {b}"
            );
        }
    }
}

/// The first `n` samples of a split.
fn head(split: &mut convformer::train::prepared::SplitData, n: usize) {
    let sample = split.inputs.len() / split.len().max(1);
    split.inputs.truncate(n * sample);
    for v in [
        &mut split.targets,
        &mut split.actual,
        &mut split.naive,
        &mut split.offset,
    ] {
        v.truncate(n);
    }
    split.ids.truncate(n);
}

#[test]
fn fit_on_the_emulated_gpu_follows_the_cpu_run() {
    use convformer::data::{self, Format, LoadOptions};
    use convformer::train::run::prepare;
    use convformer::train::{fit, FitOptions, TrainConfig};

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/borg/instance_usage/job382_task2-900078000000-1166034000000.csv"
    );
    let ds = data::load(
        std::path::Path::new(path),
        Format::InstanceUsage,
        &LoadOptions::default(),
    )
    .unwrap();
    let mut data = prepare(&ds, 1, true).unwrap();
    // Few samples: the emulator runs every GPU thread on the CPU.
    head(&mut data.train, 12);
    head(&mut data.val, 4);
    let model = ModelConfig {
        conv_filters: 8,
        num_heads: 2,
        ff_dim: 12,
        dense_units: 8,
        ..ModelConfig::default()
    };
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 6,
        lr: 1e-3,
        patience: 0,
        ..TrainConfig::default()
    };
    let run = |device: Device| {
        let opts = FitOptions {
            device,
            ..FitOptions::default()
        };
        fit(&model, &cfg, &data, &opts).unwrap()
    };
    let (cpu, gpu) = (run(Device::Cpu), run(Device::CudaEmu));
    assert_eq!(
        gpu.store.device(),
        Device::Cpu,
        "best weights come back to the host"
    );
    assert_eq!(cpu.history.len(), 2);
    for (c, g) in cpu.history.iter().zip(&gpu.history) {
        for (what, a, b) in [
            ("train loss", g.train_loss, c.train_loss),
            ("val loss", g.val_loss, c.val_loss),
        ] {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs(),
                "epoch {}: {what} {a} on the emulated GPU, {b} on the CPU",
                c.epoch
            );
        }
    }
}

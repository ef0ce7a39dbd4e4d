//! A few training steps of a small ConvFormerNet on the emulated CUDA device
//! and on the CPU from the same seed (tests/cuda_support/training.rs), and
//! `fit` on both over a few samples of a real slice.

mod cuda_support;
mod support;

use convformer::nn::ModelConfig;
use convformer::Device;

#[test]
fn training_steps_match_cpu_on_the_emulated_gpu() {
    cuda_support::training::assert_same_run(Device::CudaEmu, 4, 5);
}

/// The default network at the real series' shapes (26 channels, 48 filters,
/// 6 heads of 8, ff 243, pre-norm, relu, sequence 16): every kernel the model
/// launches runs under the emulator's race and barrier checker at the
/// model's own sizes, and two steps follow the CPU's.
#[test]
fn the_default_model_trains_race_free_on_the_emulated_gpu() {
    let cfg = ModelConfig {
        seq_len: 16,
        in_channels: 26,
        ..ModelConfig::default()
    };
    cuda_support::training::assert_same_run_of(&cfg, Device::CudaEmu, 2, 2);
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
    let mut data = prepare(&ds, 1, None, true).unwrap();
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

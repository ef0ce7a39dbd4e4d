//! The training loop: seeded mini-batch shuffling, Adam/AdamW with warmup +
//! cosine, gradient clipping, early stopping on validation MAE (the best weights
//! are restored), a hard stop on any non-finite loss or gradient, and a
//! checkpoint after every epoch from which `resume` continues bit for bit.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint::{self, TrainState};
use super::config::TrainConfig;
use super::prepared::{PreparedData, SplitData};
use crate::autograd::{shard_rows, sharded_backward, Grads, ParamStore, Tape};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{ConvFormerNet, ModelConfig, SeedRng};
use crate::optim::{clip_grad_norm, AdamConfig, AdamW, LrSchedule};
use crate::tensor::Tensor;

/// How a run reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A bar per epoch with loss and ETA (on stderr).
    Bar,
    /// One log line per epoch.
    Log,
    Silent,
}

/// One line of the loss history.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    /// Training and validation loss in the network's units (see `SplitData::net_scale`).
    pub train_loss: f64,
    pub val_loss: f64,
    /// Validation MAE in scaled units (what early stopping watches).
    pub val_mae: f64,
    pub lr: f64,
}

#[derive(Clone, Debug)]
pub struct FitOptions {
    pub progress: Progress,
    /// Where to write `checkpoint.safetensors` after each epoch (none = no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir`.
    pub resume: bool,
    /// Stop after this many epochs of this call (simulates an interruption in tests).
    pub stop_after: Option<usize>,
    /// Where the parameters, batches and optimizer state live during training.
    pub device: Device,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            progress: Progress::Silent,
            checkpoint_dir: None,
            resume: false,
            stop_after: None,
            device: Device::Cpu,
        }
    }
}

pub struct FitOutcome {
    pub model: ConvFormerNet,
    /// The best weights (lowest validation MAE), on the CPU.
    pub store: ParamStore<f32>,
    pub history: Vec<EpochLog>,
    pub best_epoch: usize,
    pub best_val_mae: f64,
    /// False when `stop_after` interrupted the run.
    pub finished: bool,
}

/// The model config completed with the data's shape.
pub fn model_config_for(cfg: &ModelConfig, data: &PreparedData) -> ModelConfig {
    ModelConfig {
        seq_len: data.seq_len,
        in_channels: data.channels,
        ..cfg.clone()
    }
}

/// The dropout key of one step: a mix of the run seed and the step, so each
/// step draws fresh masks and a resumed run draws the same ones.
fn dropout_seed(seed: u64, step: u64) -> u64 {
    let mut r = SeedRng::new(seed ^ step.wrapping_mul(0xD134_2543_DE82_EF95));
    r.next_u64()
}

/// Gathers samples `idx` of a split as a [b, seq_len, channels] batch and its targets.
fn gather(split: &SplitData, idx: &[usize], sample: usize) -> (Vec<f32>, Vec<f32>) {
    let mut x = Vec::with_capacity(idx.len() * sample);
    for &i in idx {
        x.extend_from_slice(&split.inputs[i * sample..(i + 1) * sample]);
    }
    (x, idx.iter().map(|&i| split.net_target(i)).collect())
}

/// Predictions (scaled units) of a split: network output plus the split's offset.
pub fn predict_split(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    split: &SplitData,
    batch_size: usize,
) -> Result<Vec<f32>> {
    let mut out = predict(model, store, &split.inputs, batch_size)?;
    out.iter_mut()
        .enumerate()
        .for_each(|(i, p)| *p = split.from_net(i, *p));
    Ok(out)
}

/// Network outputs (scaled units) for every sample of `inputs`, in inference mode.
pub fn predict(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    inputs: &[f32],
    batch_size: usize,
) -> Result<Vec<f32>> {
    let (l, c) = (model.config.seq_len, model.config.in_channels);
    let sample = l * c;
    if sample == 0 || inputs.len() % sample != 0 {
        return Err(Error::shape(
            "predict",
            &[inputs.len()],
            &[l, c],
            "inputs are not a whole number of [seq_len, channels] samples",
        ));
    }
    let mut out = Vec::with_capacity(inputs.len() / sample);
    crate::cpu::on_pool(|| {
        for chunk in inputs.chunks(batch_size.max(1) * sample) {
            let b = chunk.len() / sample;
            let mut tape = Tape::new(store).inference();
            let x = Tensor::from_vec(chunk.to_vec(), &[b, l, c])?.to_device(&store.device())?;
            let x = tape.constant(x);
            let y = model.forward(&mut tape, x)?;
            out.extend(tape.value(y).to_vec()?);
        }
        Ok(out)
    })
}

fn first_non_finite(store: &ParamStore<f32>, grads: &Grads<f32>) -> Option<String> {
    store.ids().find_map(|id| {
        let g = grads.get(id)?;
        // Host gradients are read in place; device ones come down once.
        let bad = match g.as_slice() {
            Ok(host) => host.iter().any(|v| !v.is_finite()),
            Err(_) => g.to_vec().ok()?.iter().any(|v| !v.is_finite()),
        };
        bad.then(|| store.name(id).to_string())
    })
}

fn make_optimizer(cfg: &TrainConfig) -> AdamW {
    AdamW::new(AdamConfig {
        lr: cfg.lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.adam_eps,
        weight_decay: cfg.weight_decay,
    })
}

fn schedule(cfg: &TrainConfig, steps_per_epoch: usize) -> LrSchedule {
    let total = cfg.epochs * steps_per_epoch;
    LrSchedule::WarmupCosine {
        peak: cfg.lr,
        warmup_steps: (cfg.warmup_fraction * total as f64).round() as usize,
        total_steps: total,
        min_lr: cfg.min_lr,
    }
}

/// Trains ConvFormerNet on `data.train`, early-stopping on `data.val`.
pub fn fit(
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    data: &PreparedData,
    opts: &FitOptions,
) -> Result<FitOutcome> {
    cfg.validate()?;
    if data.train.is_empty() {
        return Err(Error::Invalid("no training samples".into()));
    }
    let model_cfg = model_config_for(model_cfg, data);
    let mut store = ParamStore::new();
    let model = ConvFormerNet::new(&mut store, &model_cfg, cfg.seed)?;
    let mut opt = make_optimizer(cfg);
    let mut best = store.clone();
    let mut state = TrainState::new(cfg.seed);
    let ckpt_path = opts
        .checkpoint_dir
        .as_ref()
        .map(|d| d.join(checkpoint::FILE_NAME));
    if opts.resume {
        let path = ckpt_path.as_ref().ok_or_else(|| {
            Error::Invalid("resume needs a run directory holding a checkpoint".into())
        })?;
        if path.exists() {
            state = checkpoint::load(path, &model_cfg, cfg, &mut store, &mut best, &mut opt)?;
        } else if opts.progress != Progress::Silent {
            // Interrupted during its first epoch: starting over is the same run.
            eprintln!("no checkpoint in {}: starting from epoch 1", path.display());
        }
    }
    // Initialised (or restored) on the host, then trained where asked. Clones
    // of a device store share memory until the optimizer writes (it copies then).
    store = store.to_device(&opts.device)?;
    best = best.to_device(&opts.device)?;

    let n = data.train.len();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let lr_schedule = schedule(cfg, steps_per_epoch);
    let sample = data.seq_len * data.channels;
    let mut epochs_this_call = 0;
    while state.epoch < cfg.epochs && !state.stopped {
        if opts.stop_after.is_some_and(|k| epochs_this_call >= k) {
            break;
        }
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let bar = epoch_bar(opts.progress, epoch, cfg.epochs, steps_per_epoch as u64);
        let mut order: Vec<usize> = (0..n).collect();
        state.rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut lr = cfg.lr;
        for idx in order.chunks(cfg.batch_size) {
            lr = lr_schedule.lr_at(state.step as usize);
            let loss = train_step(
                &model, &mut store, &mut opt, data, idx, sample, cfg, &state, lr,
            )?;
            loss_sum += loss * idx.len() as f64;
            state.step += 1;
            if let Some(bar) = &bar {
                bar.set_message(format!("loss {loss:.4e}"));
                bar.inc(1);
            }
        }
        let val = validate(&model, &store, &data.val, cfg)?;
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / n as f64,
            val_loss: val.0,
            val_mae: val.1,
            lr,
        };
        if let Some(bar) = bar {
            bar.finish_with_message(format!(
                "loss {:.4e} val_loss {:.4e} val_mae {:.4e}",
                log.train_loss, log.val_loss, log.val_mae
            ));
        } else if opts.progress == Progress::Log {
            eprintln!(
                "epoch {epoch}/{}: loss {:.4e} val_loss {:.4e} val_mae {:.4e} lr {:.2e} ({:.1}s)",
                cfg.epochs,
                log.train_loss,
                log.val_loss,
                log.val_mae,
                lr,
                started.elapsed().as_secs_f64()
            );
        }
        // Without a validation split, the latest weights are the best.
        if data.val.is_empty() || log.val_mae < state.best_val_mae {
            state.best_val_mae = log.val_mae;
            state.best_epoch = epoch;
            state.wait = 0;
            best = store.clone();
        } else {
            state.wait += 1;
            if cfg.patience > 0 && state.wait >= cfg.patience {
                state.stopped = true;
                if opts.progress != Progress::Silent {
                    eprintln!(
                        "early stop after epoch {epoch}: no better validation MAE for {} epochs (best epoch {})",
                        cfg.patience, state.best_epoch
                    );
                }
            }
        }
        state.history.push(log);
        state.epoch = epoch;
        epochs_this_call += 1;
        if let Some(path) = &ckpt_path {
            checkpoint::save(path, &model_cfg, cfg, &store, &best, &opt, &state)?;
        }
    }
    let finished = state.epoch >= cfg.epochs || state.stopped;
    Ok(FitOutcome {
        model,
        store: best.to_device(&Device::Cpu)?,
        history: state.history,
        best_epoch: state.best_epoch,
        best_val_mae: state.best_val_mae,
        finished,
    })
}

#[allow(clippy::too_many_arguments)]
fn train_step(
    model: &ConvFormerNet,
    store: &mut ParamStore<f32>,
    opt: &mut AdamW,
    data: &PreparedData,
    idx: &[usize],
    sample: usize,
    cfg: &TrainConfig,
    state: &TrainState,
    lr: f64,
) -> Result<f64> {
    let step = state.step as usize;
    let device = store.device();
    let (loss, mut grads) = sharded_backward(
        store,
        dropout_seed(cfg.seed, state.step),
        idx.len(),
        shard_rows(data.seq_len),
        |tape, rows| {
            let (x, y) = gather(&data.train, &idx[rows.clone()], sample);
            let x = Tensor::from_vec(x, &[rows.len(), data.seq_len, data.channels])?;
            let y = Tensor::from_vec(y, &[rows.len()])?;
            let xv = tape.constant(x.to_device(&device)?);
            let yv = tape.constant(y.to_device(&device)?);
            let pred = model.forward(tape, xv)?;
            tape.loss(pred, yv, cfg.loss.0)
        },
    )?;
    if !loss.is_finite() {
        return Err(Error::NonFinite {
            what: format!("training loss ({loss})"),
            step,
        });
    }
    if let Some(name) = first_non_finite(store, &grads) {
        return Err(Error::NonFinite {
            what: format!("gradient of parameter '{name}'"),
            step,
        });
    }
    if cfg.clip_norm > 0.0 {
        clip_grad_norm(&mut grads, cfg.clip_norm)?;
    }
    opt.step(store, &grads, lr)?;
    Ok(loss)
}

/// (loss, MAE) on a split in scaled units; NaN for an empty split.
fn validate(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    split: &SplitData,
    cfg: &TrainConfig,
) -> Result<(f64, f64)> {
    if split.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    // The loss in the network's own units, as the training loss; the MAE in
    // scaled target units.
    let out = predict(model, store, &split.inputs, cfg.eval_batch_size)?;
    let net_targets: Vec<f32> = (0..split.len()).map(|i| split.net_target(i)).collect();
    let pred: Vec<f32> = out
        .iter()
        .enumerate()
        .map(|(i, &o)| split.from_net(i, o))
        .collect();
    let mae = super::metrics::regression_metrics(&pred, &split.targets).mae;
    Ok((cfg.loss.mean(&out, &net_targets), mae))
}

fn epoch_bar(progress: Progress, epoch: usize, epochs: usize, steps: u64) -> Option<ProgressBar> {
    if progress != Progress::Bar {
        return None;
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    Some(bar)
}

/// Trains for `epochs` epochs with the given hyperparameters (no checkpoints,
/// no output) and returns the best validation MAE in scaled units: the
/// objective of the BOHB tuner.
pub fn train_and_validate(
    model_cfg: &ModelConfig,
    train_cfg: &TrainConfig,
    data: &PreparedData,
    epochs: usize,
    device: Device,
) -> Result<f64> {
    let cfg = TrainConfig {
        epochs: epochs.max(1),
        ..train_cfg.clone()
    };
    let opts = FitOptions {
        device,
        ..FitOptions::default()
    };
    let out = fit(model_cfg, &cfg, data, &opts)?;
    Ok(out.best_val_mae)
}

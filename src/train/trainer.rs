//! The training loop: seeded mini-batch shuffling, Adam/AdamW with warmup +
//! cosine, gradient clipping, early stopping on the validation value of the
//! loss being trained (the best weights are restored), a hard stop on any
//! non-finite loss or gradient, and a checkpoint after every epoch from which
//! `resume` continues bit for bit.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint::{self, TrainState};
use super::config::TrainConfig;
use super::history::EpochLog;
use super::prepared::{PreparedData, SplitData};
use super::ridge::Ridge;
use crate::autograd::{shard_rows, sharded_backward, Grads, LossKind, ParamStore, Tape};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{ConvFormerNet, Inference, ModelConfig, SeedRng};
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
    /// Log per-module gradient norms each epoch (with `Progress::Log` or `Bar`).
    pub verbose: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            progress: Progress::Silent,
            checkpoint_dir: None,
            resume: false,
            stop_after: None,
            device: Device::Cpu,
            verbose: false,
        }
    }
}

pub struct FitOutcome {
    pub model: ConvFormerNet,
    /// The best weights (lowest validation loss), on the CPU.
    pub store: ParamStore<f32>,
    pub history: Vec<EpochLog>,
    pub best_epoch: usize,
    /// The validation value of the run's loss at the best epoch (network units).
    pub best_val_loss: f64,
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

/// Network outputs (scaled units) for every sample of `inputs`, in inference
/// mode, `batch_size` samples at a time: forward-only ([`Inference`]) on the
/// CPU, the tape without gradients on a GPU.
pub fn predict(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    inputs: &[f32],
    batch_size: usize,
) -> Result<Vec<f32>> {
    let (l, c) = (model.config.seq_len, model.config.in_channels);
    let sample = l * c;
    if sample == 0 || !inputs.len().is_multiple_of(sample) {
        return Err(Error::shape(
            "predict",
            &[inputs.len()],
            &[l, c],
            "inputs are not a whole number of [seq_len, channels] samples",
        ));
    }
    let chunks = inputs.chunks(batch_size.max(1) * sample);
    let mut out = Vec::with_capacity(inputs.len() / sample);
    crate::cpu::on_pool(|| {
        if store.device() == Device::Cpu {
            let inference = Inference::new(model, store)?;
            for chunk in chunks {
                out.extend(inference.forward(chunk)?);
            }
            return Ok(out);
        }
        for chunk in chunks {
            out.extend(predict_on_tape(model, store, chunk)?);
        }
        Ok(out)
    })
}

/// The network's outputs for whole samples `x`, on an inference tape.
pub fn predict_on_tape(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    x: &[f32],
) -> Result<Vec<f32>> {
    let (l, c) = (model.config.seq_len, model.config.in_channels);
    let mut tape = Tape::new(store).inference();
    let x = Tensor::from_vec(x.to_vec(), &[x.len() / (l * c).max(1), l, c])?
        .to_device(&store.device())?;
    let x = tape.constant(x);
    let y = model.forward(&mut tape, x)?;
    tape.value(y).to_vec()
}

/// Sets the skip path to the linear fit of the network's targets under the
/// run's loss: ridge (λ chosen on validation) for mse, else that ridge
/// refitted under the Huber loss (δ = the run's, or 1 in network units for
/// mae and quantile losses: a robust start, not their exact optimum).
fn fit_skip(
    model: &ConvFormerNet,
    store: &mut ParamStore<f32>,
    data: &PreparedData,
    loss: LossKind,
) -> Result<()> {
    let Some(skip) = &model.skip else {
        return Ok(());
    };
    let targets = |s: &SplitData| (0..s.len()).map(|i| s.net_target(i)).collect::<Vec<f32>>();
    let d = data.seq_len * data.channels;
    let train_targets = targets(&data.train);
    let ridge = Ridge::fit_select(
        &data.train.inputs,
        &train_targets,
        &data.val.inputs,
        &targets(&data.val),
        d,
    )?;
    let fitted = match loss {
        LossKind::Mse => ridge,
        LossKind::Huber(delta) => {
            ridge.refit_huber(&data.train.inputs, &train_targets, d, delta)?
        }
        LossKind::Mae | LossKind::Quantile(_) => {
            ridge.refit_huber(&data.train.inputs, &train_targets, d, 1.0)?
        }
    };
    let weights = fitted.weights.iter().map(|&w| w as f32).collect();
    *store.get_mut(skip.weight) = Tensor::from_vec(weights, &[1, d])?;
    if let Some(b) = skip.bias {
        *store.get_mut(b) = Tensor::from_vec(vec![fitted.intercept as f32], &[1])?;
    }
    Ok(())
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
    if cfg.fit_skip {
        fit_skip(&model, &mut store, data, cfg.loss.0)?;
    }
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
        let mut grads_seen = GradStats::new(&store, opts.verbose);
        for idx in order.chunks(cfg.batch_size) {
            lr = lr_schedule.lr_at(state.step as usize);
            let loss = train_step(
                &model,
                &mut store,
                &mut opt,
                data,
                idx,
                sample,
                cfg,
                &state,
                lr,
                &mut grads_seen,
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
            val_loss: val.loss,
            val_mae: val.mae,
            lr,
            grad_norm: grads_seen.mean_norm(),
            clipped: grads_seen.clipped_share(),
            output_spread: val.output_spread,
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
        if opts.verbose && opts.progress != Progress::Silent {
            eprintln!(
                "  output spread {:.3e}, gradient norm {:.3e} (clipped on {:.0}% of steps); per module: {}",
                log.output_spread,
                log.grad_norm,
                100.0 * log.clipped,
                grads_seen.per_module()
            );
        }
        // Without a validation split, the latest weights are the best.
        if data.val.is_empty() || log.val_loss < state.best_val_loss {
            state.best_val_loss = log.val_loss;
            state.best_epoch = epoch;
            state.wait = 0;
            best = store.clone();
        } else {
            state.wait += 1;
            if cfg.patience > 0 && state.wait >= cfg.patience {
                state.stopped = true;
                if opts.progress != Progress::Silent {
                    eprintln!(
                        "early stop after epoch {epoch}: no better validation {} loss for {} epochs (best epoch {})",
                        cfg.loss, cfg.patience, state.best_epoch
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
        best_val_loss: state.best_val_loss,
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
    grads_seen: &mut GradStats,
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
    grads_seen.record(&grads)?;
    let clip_at = if cfg.clip_norm > 0.0 {
        cfg.clip_norm
    } else {
        f64::INFINITY
    };
    let norm = clip_grad_norm(&mut grads, clip_at)?;
    grads_seen.record_norm(norm, norm > clip_at);
    opt.step(store, &grads, lr)?;
    Ok(loss)
}

/// A split's validation values; NaN for an empty split.
struct Validation {
    /// The run's loss in network units, as the training loss: what selects.
    loss: f64,
    /// MAE in scaled target units.
    mae: f64,
    output_spread: f64,
}

fn validate(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    split: &SplitData,
    cfg: &TrainConfig,
) -> Result<Validation> {
    if split.is_empty() {
        return Ok(Validation {
            loss: f64::NAN,
            mae: f64::NAN,
            output_spread: f64::NAN,
        });
    }
    let out = predict(model, store, &split.inputs, cfg.eval_batch_size)?;
    let net_targets: Vec<f32> = (0..split.len()).map(|i| split.net_target(i)).collect();
    let pred: Vec<f32> = out
        .iter()
        .enumerate()
        .map(|(i, &o)| split.from_net(i, o))
        .collect();
    let n = out.len() as f64;
    let mean = out.iter().map(|&o| o as f64).sum::<f64>() / n;
    let var = out.iter().map(|&o| (o as f64 - mean).powi(2)).sum::<f64>() / n;
    Ok(Validation {
        loss: cfg.loss.mean(&out, &net_targets),
        mae: super::metrics::regression_metrics(&pred, &split.targets).mae,
        output_spread: var.sqrt(),
    })
}

/// Gradient statistics over one epoch: the global norm and how often it was
/// clipped, and (verbose) each module's mean gradient norm.
struct GradStats {
    steps: usize,
    norm_sum: f64,
    clipped: usize,
    /// Per module (parameter name less `.weight`/`.bias`): the ids and the sum of norms.
    modules: Option<Vec<(String, Vec<crate::autograd::ParamId>, f64)>>,
}

impl GradStats {
    fn new(store: &ParamStore<f32>, per_module: bool) -> Self {
        let modules = per_module.then(|| {
            let mut modules: Vec<(String, Vec<crate::autograd::ParamId>, f64)> = Vec::new();
            for id in store.ids() {
                let name = store.name(id);
                let module = name.rsplit_once('.').map_or(name, |(m, _)| m).to_string();
                match modules.iter_mut().find(|(m, _, _)| *m == module) {
                    Some((_, ids, _)) => ids.push(id),
                    None => modules.push((module, vec![id], 0.0)),
                }
            }
            modules
        });
        GradStats {
            steps: 0,
            norm_sum: 0.0,
            clipped: 0,
            modules,
        }
    }

    /// Per-module norms of one step's gradients (before clipping).
    fn record(&mut self, grads: &Grads<f32>) -> Result<()> {
        let Some(modules) = &mut self.modules else {
            return Ok(());
        };
        for (_, ids, sum) in modules.iter_mut() {
            let mut sq = 0.0f64;
            for &id in ids.iter() {
                if let Some(g) = grads.get(id) {
                    sq += g.to_vec()?.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
                }
            }
            *sum += sq.sqrt();
        }
        Ok(())
    }

    fn record_norm(&mut self, norm: f64, clipped: bool) {
        self.steps += 1;
        self.norm_sum += norm;
        self.clipped += clipped as usize;
    }

    fn mean_norm(&self) -> f64 {
        self.norm_sum / self.steps.max(1) as f64
    }

    fn clipped_share(&self) -> f64 {
        self.clipped as f64 / self.steps.max(1) as f64
    }

    fn per_module(&self) -> String {
        let steps = self.steps.max(1) as f64;
        self.modules
            .iter()
            .flatten()
            .map(|(m, _, sum)| format!("{m} {:.2e}", sum / steps))
            .collect::<Vec<_>>()
            .join(", ")
    }
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
/// no output) and returns the best validation value of the run's loss
/// (network units): the objective of the BOHB tuner.
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
    Ok(out.best_val_loss)
}

//! The ConvFormerNet objective of `convformer tune`: a budget is a number of
//! training epochs, and an evaluation at budget B is a whole training run of
//! B epochs (its warm-up and cosine decay fitted to those B epochs, so every
//! budget ends at a low learning rate like the final run does). The loss is
//! the best validation value of the run's training loss (network units), and
//! the best configuration is trained into `final/` as an ordinary run directory.

use std::path::Path;

use super::run::{prepare, train_run, DataSource};
use super::trainer::model_config_for;
use super::{train_and_validate, FitOptions, PreparedData, Progress, RunConfig};
use crate::bohb::{Config, EvalContext, EvalError, EvalResult, Objective, Value};
use crate::device::Device;
use crate::error::Result;

pub struct ConvFormerObjective {
    source: DataSource,
    /// Everything the search space does not set.
    base: RunConfig,
    /// Loaded, split and preprocessed once, shared by every evaluation.
    data: PreparedData,
    device: Device,
}

impl ConvFormerObjective {
    pub fn new(source: DataSource, base: RunConfig, device: Device) -> Result<Self> {
        let ds = source.load(true)?;
        let data = prepare(&ds, source.seed, source.split, base.train.residual)?;
        Ok(ConvFormerObjective {
            source,
            base,
            data,
            device,
        })
    }

    /// The data every evaluation trains on.
    pub fn data(&self) -> &PreparedData {
        &self.data
    }

    /// The run configuration of one proposal: the base with the tuned fields
    /// replaced and the data's shape filled in. A name the model does not know is an error, not ignored.
    pub fn run_config(
        &self,
        config: &Config,
        epochs: usize,
        seed: u64,
    ) -> Result<RunConfig, EvalError> {
        let mut cfg = self.base.clone();
        for (name, value) in config {
            let int = || value_usize(name, value);
            let float = || {
                value.as_f64().ok_or_else(|| {
                    EvalError::Config(format!("{name}: expected a number, got {value:?}"))
                })
            };
            match name.as_str() {
                "conv_filters" => cfg.model.conv_filters = int()?,
                "num_heads" => cfg.model.num_heads = int()?,
                "ff_dim" => cfg.model.ff_dim = int()?,
                "num_blocks" => cfg.model.num_blocks = int()?,
                "dense_units" => cfg.model.dense_units = int()?,
                "dropout_rate" => cfg.model.dropout_rate = float()?,
                "learning_rate" => cfg.train.lr = float()?,
                "weight_decay" => cfg.train.weight_decay = float()?,
                "batch_size" => cfg.train.batch_size = int()?,
                other => {
                    return Err(EvalError::Config(format!(
                        "the ConvFormerNet objective has no hyperparameter '{other}'"
                    )))
                }
            }
        }
        cfg.train.epochs = epochs;
        cfg.train.seed = seed;
        cfg.model = model_config_for(&cfg.model, &self.data);
        cfg.model.validate()?;
        cfg.train.validate()?;
        Ok(cfg)
    }
}

fn value_usize(name: &str, value: &Value) -> Result<usize, EvalError> {
    value
        .as_i64()
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| {
            EvalError::Config(format!(
                "{name}: expected a non-negative integer, got {value:?}"
            ))
        })
}

/// Budgets are epochs; fractional budgets round, and at least one epoch runs.
fn epochs(budget: f64) -> usize {
    (budget.round() as usize).max(1)
}

impl Objective for ConvFormerObjective {
    fn evaluate(
        &self,
        config: &Config,
        budget: f64,
        ctx: &EvalContext,
    ) -> Result<EvalResult, EvalError> {
        let cfg = self.run_config(config, epochs(budget), ctx.seed)?;
        let loss = train_and_validate(
            &cfg.model,
            &cfg.train,
            &self.data,
            cfg.train.epochs,
            self.device,
        )?;
        Ok(EvalResult { loss })
    }

    /// Trains the best configuration into `dir`, and the default
    /// configuration (the base, no tuned field changed) into `dir`'s sibling
    /// `default/` with the same budget, so the last lines say whether tuning
    /// found something better: by validation loss (what the tuner ranked) and
    /// by test MAE.
    fn train_final(
        &self,
        config: &Config,
        budget: f64,
        dir: &Path,
    ) -> Result<Option<String>, EvalError> {
        let opts = FitOptions {
            progress: Progress::Log,
            device: self.device,
            ..FitOptions::default()
        };
        let train = |config: &Config, dir: &Path| -> Result<(usize, f64, f64), EvalError> {
            let cfg = self.run_config(config, epochs(budget), self.base.train.seed)?;
            let (outcome, metrics) = train_run(dir, &cfg, &self.source, &opts)?;
            let test_mae = metrics
                .eval
                .test
                .as_ref()
                .map_or(f64::NAN, |t| t.model_trace.mae);
            Ok((outcome.best_epoch, outcome.best_val_loss, test_mae))
        };
        let (best_epoch, val, mae) = train(config, dir)?;
        let default_dir = dir.with_file_name("default");
        let (_, default_val, default_mae) = train(&Config::new(), &default_dir)?;
        let verdict = if val < default_val {
            "the tuned configuration is better"
        } else {
            "the tuned configuration is NOT better than the default"
        };
        Ok(Some(format!(
            "trained for {} epochs (best {best_epoch}) in {}: validation {} loss {val:.4e}, \
             test MAE {mae:.4e}; the default configuration (in {}): {default_val:.4e}, \
             test MAE {default_mae:.4e}; {verdict}",
            epochs(budget),
            dir.display(),
            self.base.train.loss,
            default_dir.display(),
        )))
    }
}

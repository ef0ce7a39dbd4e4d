//! A training run end to end, as the CLI and the examples drive it: load the
//! data (or the built-in default trace), split, preprocess, train, evaluate
//! against the baselines and write the run directory.

use std::path::{Path, PathBuf};

use super::baselines::{Baselines, ReservationRow, SplitForecasts, SpreadModel};
use super::config::RunConfig;
use super::json::{read_json, write_json};
use super::metrics::{regression_metrics, Metrics};
use super::prepared::{PreparedData, SplitData};
use super::reserve::CalibrationRule;
use super::ridge::Ridge;
use super::trainer::{fit, predict_split, FitOptions, FitOutcome};
use super::weights::{load_model, save_model};
use crate::autograd::ParamStore;
use crate::data::{self, Dataset, Format, LoadOptions, PreprocessOptions, Preprocessor, SplitKind};
use crate::error::{Error, Result};
use crate::nn::{ConvFormerNet, ModelConfig};

/// Where the samples come from, recorded in `config.json` so `--resume` and
/// `eval` rebuild exactly the same splits.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// None = the built-in generated trace.
    pub path: Option<PathBuf>,
    pub format: Format,
    pub window: usize,
    pub horizon: usize,
    /// Seed of the generated trace and of the split.
    pub seed: u64,
    /// How samples are split; None = the format's default (series:
    /// chronological per instance, kaggle rows: random).
    #[serde(default)]
    pub split: Option<SplitKind>,
}

impl DataSource {
    /// The source a command line names: `path` in `format` (detected from the
    /// header when not given), or the generated series trace without a path.
    pub fn choose(
        path: Option<PathBuf>,
        format: Option<Format>,
        window: usize,
        horizon: usize,
        seed: u64,
    ) -> Result<Self> {
        let format = match (&path, format) {
            (_, Some(f)) => f,
            (Some(p), None) => data::detect_format(p)?,
            (None, None) => Format::InstanceUsage,
        };
        Ok(DataSource {
            path,
            format,
            window,
            horizon,
            seed,
            split: None,
        })
    }

    pub fn load(&self, progress: bool) -> Result<Dataset> {
        match &self.path {
            None => Ok(data::synth::default_trace(self.format, self.seed)),
            Some(path) => {
                let opts = LoadOptions {
                    window: self.window,
                    horizon: self.horizon,
                    progress,
                    ..LoadOptions::default()
                };
                data::load(path, self.format, &opts).map_err(|e| Error::Invalid(e.to_string()))
            }
        }
    }
}

/// Train / validation / test shares. By default series are split
/// chronologically per instance (the last 20% is the test set), kaggle rows at
/// random. A group split puts whole instances (series) or collections (kaggle)
/// on one side, 60/20/20 by samples, so that the margins are calibrated, and
/// the model tested, on instances training never saw.
pub fn split_for(ds: &Dataset, seed: u64, kind: Option<SplitKind>) -> data::Splits {
    match (kind, ds.format) {
        (Some(SplitKind::Group), _) => data::split(ds, SplitKind::Group, (0.6, 0.2, 0.2), seed),
        (Some(kind), _) => data::split(ds, kind, (0.72, 0.08, 0.2), seed),
        (None, Format::InstanceUsage | Format::BigQuery) => {
            data::split(ds, SplitKind::Chronological, (0.72, 0.08, 0.2), seed)
        }
        (None, Format::Kaggle) => data::split(ds, SplitKind::Random, (0.7, 0.1, 0.2), seed),
    }
}

/// What `config.json` holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    pub model: ModelConfig,
    pub train: super::config::TrainConfig,
    pub data: DataSource,
    /// Fitted on the training split: see `SplitData::net_scale`.
    pub net_scale: f32,
}

/// Model and baselines on one split, scaled and in trace units.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SplitReport {
    pub n: usize,
    pub model_scaled: Metrics,
    pub model_trace: Metrics,
    pub naive_scaled: Metrics,
    pub naive_trace: Metrics,
    pub ridge_scaled: Metrics,
    pub ridge_trace: Metrics,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    pub format: Format,
    pub loss: String,
    /// What was evaluated: the run's own split, or every window of new data.
    pub evaluated: String,
    pub ridge_lambda: f64,
    pub train: Option<SplitReport>,
    pub val: Option<SplitReport>,
    pub test: Option<SplitReport>,
    /// Every predictor's reservations at every level, per split (margins
    /// calibrated on the run's validation split).
    pub reservations: Vec<SplitReservations>,
    /// How the network's margin is formed and calibrated, in words (reports
    /// written before it: empty).
    #[serde(default)]
    pub network_margin: String,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SplitReservations {
    pub split: String,
    pub rows: Vec<ReservationRow>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MetricsFile {
    #[serde(flatten)]
    pub eval: EvalReport,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub history: Vec<super::history::EpochLog>,
}

/// Point metrics of the forecasts of one split, scaled and in trace units.
fn split_report(data: &PreparedData, fc: &SplitForecasts) -> SplitReport {
    let split = fc.split;
    let scaled = |trace: &[f32]| -> Vec<f32> {
        trace
            .iter()
            .map(|&y| data.preprocessor.scale_target(y))
            .collect()
    };
    SplitReport {
        n: split.len(),
        model_scaled: regression_metrics(&scaled(&fc.model), &split.targets),
        model_trace: regression_metrics(&fc.model, &split.actual),
        naive_scaled: regression_metrics(&scaled(&split.naive), &split.targets),
        naive_trace: regression_metrics(&split.naive, &split.actual),
        ridge_scaled: regression_metrics(&scaled(&fc.ridge), &split.targets),
        ridge_trace: regression_metrics(&fc.ridge, &split.actual),
    }
}

/// The network's and ridge's forecasts of a split in trace units, and the
/// network's expected error where a spread model is given.
pub fn forecasts<'a>(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    data: &PreparedData,
    ridge: &Ridge,
    spread: Option<&SpreadModel>,
    split: &'a SplitData,
    batch: usize,
) -> Result<SplitForecasts<'a>> {
    let d = data.seq_len * data.channels;
    let m = predict_split(model, store, split, batch)?;
    let r = ridge.predict(&split.inputs, d)?;
    let learned_spread = match spread {
        Some(s) => s.predict(&split.inputs, d)?,
        None => Vec::new(),
    };
    Ok(SplitForecasts {
        split,
        model: data.to_trace_units(&m),
        ridge: data.to_trace_units(&r),
        learned_spread,
        error_mix: spread.map(|s| s.mix).unwrap_or_default(),
    })
}

/// Evaluates a model and the baselines on every split. Nothing is fitted on
/// `data`: ridge and every margin come from `baselines`, fitted on the run's
/// own training and validation splits.
pub fn evaluate(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    data: &PreparedData,
    baselines: &Baselines,
    evaluated: &str,
    loss: &str,
    batch: usize,
) -> Result<EvalReport> {
    let spread = Some(&baselines.spread);
    let fc = |split| forecasts(model, store, data, &baselines.ridge, spread, split, batch);
    let splits = [fc(&data.train)?, fc(&data.val)?, fc(&data.test)?];
    Ok(report(data, baselines, evaluated, loss, &splits))
}

/// The report of the train, val and test forecasts (an empty split has none).
fn report(
    data: &PreparedData,
    baselines: &Baselines,
    evaluated: &str,
    loss: &str,
    splits: &[SplitForecasts; 3],
) -> EvalReport {
    let mut reports = splits
        .iter()
        .map(|fc| (!fc.split.is_empty()).then(|| split_report(data, fc)));
    let (train, val, test) = (
        reports.next().flatten(),
        reports.next().flatten(),
        reports.next().flatten(),
    );
    let reservations = ["train", "val", "test"]
        .iter()
        .zip(splits)
        .filter(|(_, fc)| !fc.split.is_empty())
        .map(|(name, fc)| SplitReservations {
            split: name.to_string(),
            rows: baselines.report(fc),
        })
        .collect();
    EvalReport {
        format: data.format,
        loss: loss.to_string(),
        evaluated: evaluated.to_string(),
        ridge_lambda: baselines.ridge.lambda,
        train,
        val,
        test,
        reservations,
        network_margin: baselines.describe_network_margin(),
    }
}

/// The point metrics of the test split (the network, the last value and ridge
/// fitted on `data`'s training split), without reservations: what a library
/// user asking only for accuracy wants. None when the test split is empty.
pub fn test_accuracy(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    data: &PreparedData,
    batch: usize,
) -> Result<Option<SplitReport>> {
    if data.test.is_empty() {
        return Ok(None);
    }
    let ridge = Baselines::fit_ridge(data)?;
    let fc = forecasts(model, store, data, &ridge, None, &data.test, batch)?;
    Ok(Some(split_report(data, &fc)))
}

/// Fits ridge, the spread model and the margins at `levels` on `data`'s own
/// training and validation splits, then evaluates every split (what `train`
/// reports). Also returns the train, val and test forecasts it made.
pub fn evaluate_own_split<'a>(
    model: &ConvFormerNet,
    store: &ParamStore<f32>,
    data: &'a PreparedData,
    levels: &[f64],
    rule: CalibrationRule,
    loss: &str,
    batch: usize,
) -> Result<(EvalReport, Baselines, [SplitForecasts<'a>; 3])> {
    let ridge = Baselines::fit_ridge(data)?;
    let fc = |split| forecasts(model, store, data, &ridge, None, split, batch);
    let mut splits = [fc(&data.train)?, fc(&data.val)?, fc(&data.test)?];
    let spread = SpreadModel::fit(data, &splits[0].model, &splits[1].model)?;
    for fc in splits.iter_mut() {
        fc.learned_spread = spread.predict(&fc.split.inputs, data.seq_len * data.channels)?;
        fc.error_mix = spread.mix;
    }
    let baselines = Baselines::calibrate(ridge, spread, levels, &splits[1], rule)?;
    let report = report(data, &baselines, "the run's own split", loss, &splits);
    Ok((report, baselines, splits))
}

/// Prepares a data set for training: split and preprocessor fitted on train.
pub fn prepare(
    ds: &Dataset,
    seed: u64,
    split: Option<SplitKind>,
    residual: bool,
) -> Result<PreparedData> {
    let splits = split_for(ds, seed, split);
    PreparedData::new(ds, &splits, &PreprocessOptions::default(), residual)
}

/// Trains and writes the run directory: model.safetensors, config.json,
/// preprocess.json, metrics.json, loss.png, actual_vs_predicted.png (and the
/// per-epoch checkpoint).
pub fn train_run(
    run_dir: &Path,
    cfg: &RunConfig,
    source: &DataSource,
    opts: &FitOptions,
) -> Result<(FitOutcome, MetricsFile)> {
    std::fs::create_dir_all(run_dir)
        .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", run_dir.display())))?;
    let ds = source.load(opts.progress != super::trainer::Progress::Silent)?;
    if opts.progress != super::trainer::Progress::Silent {
        eprintln!("{}", data::inspect::load_log(&ds));
    }
    let data = prepare(&ds, source.seed, source.split, cfg.train.residual)?;
    let model_cfg = super::trainer::model_config_for(&cfg.model, &data);
    let run_file = RunFile {
        model: model_cfg.clone(),
        train: cfg.train.clone(),
        data: source.clone(),
        net_scale: data.net_scale(),
    };
    let config_path = run_dir.join("config.json");
    if opts.resume {
        let saved = read_run_file(run_dir)?;
        if saved != run_file {
            return Err(Error::Invalid(format!(
                "{}: the run was started with another configuration or data source",
                config_path.display()
            )));
        }
    } else {
        write_json(&config_path, &run_file)?;
    }
    data.preprocessor
        .save_json(&run_dir.join("preprocess.json"))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let fit_opts = FitOptions {
        checkpoint_dir: Some(run_dir.to_path_buf()),
        ..opts.clone()
    };
    let outcome = fit(&model_cfg, &cfg.train, &data, &fit_opts)?;
    if !outcome.finished {
        return Err(Error::Invalid(
            "the run was interrupted before its last epoch".into(),
        ));
    }
    save_model(&outcome.store, &run_dir.join("model.safetensors"))?;
    let batch = cfg.train.eval_batch_size;
    let (eval, baselines, [_, val, test]) = evaluate_own_split(
        &outcome.model,
        &outcome.store,
        &data,
        &cfg.train.reserve,
        cfg.train.calibration_rule(),
        &cfg.train.loss.to_string(),
        batch,
    )?;
    baselines.save(run_dir)?;
    let metrics = MetricsFile {
        eval,
        best_epoch: outcome.best_epoch,
        epochs_run: outcome.history.len(),
        history: outcome.history.clone(),
    };
    write_json(&run_dir.join("metrics.json"), &metrics)?;
    super::plots::loss_curve(
        &run_dir.join("loss.png"),
        &outcome.history,
        outcome.best_epoch,
    )?;
    let held_out = if test.split.is_empty() { &val } else { &test };
    super::plots::actual_vs_predicted(
        &run_dir.join("actual_vs_predicted.png"),
        &held_out.split.actual,
        &held_out.model,
    )?;
    let plot = run_dir.join("reservation.png");
    super::reservation_plot::tradeoff(&plot, &val, held_out, baselines.rule)?;
    Ok((outcome, metrics))
}

pub fn read_run_file(run_dir: &Path) -> Result<RunFile> {
    read_json(&run_dir.join("config.json"))
}

/// A trained run loaded back: network, weights, preprocessor and config.
pub struct LoadedRun {
    pub run: RunFile,
    pub model: ConvFormerNet,
    pub store: ParamStore<f32>,
    pub preprocessor: Preprocessor,
    /// Ridge and the margins, fitted on the run's own training/validation data.
    pub baselines: Baselines,
}

impl LoadedRun {
    pub fn open(run_dir: &Path) -> Result<Self> {
        let run = read_run_file(run_dir)?;
        let preprocessor = Preprocessor::load_json(&run_dir.join("preprocess.json"))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut store = ParamStore::new();
        let model = ConvFormerNet::new(&mut store, &run.model, run.train.seed)?;
        load_model(&mut store, &run_dir.join("model.safetensors"))?;
        let baselines = Baselines::load(run_dir).map_err(|e| {
            Error::Invalid(format!(
                "{e} (a run trained before reservations existed has none: train it again)"
            ))
        })?;
        Ok(LoadedRun {
            run,
            model,
            store,
            preprocessor,
            baselines,
        })
    }

    /// Refuses data of another format or feature layout, saying what the model expects.
    pub fn check_compatible(&self, ds: &Dataset) -> Result<()> {
        let p = &self.preprocessor;
        if ds.format != p.format {
            return Err(Error::Invalid(format!(
                "the model was trained on {} data; this file is {} data",
                p.format, ds.format
            )));
        }
        if ds.seq_len != p.seq_len
            || ds.channels != p.channels
            || ds.feature_names != p.feature_names
        {
            return Err(Error::Invalid(format!(
                "the model expects samples of {} steps × {} channels with features [{}]; \
                 the data has {} steps × {} channels with features [{}]",
                p.seq_len,
                p.channels,
                p.feature_names.join(", "),
                ds.seq_len,
                ds.channels,
                ds.feature_names.join(", ")
            )));
        }
        Ok(())
    }

    /// The data split as at training time, transformed by the run's preprocessor.
    pub fn prepare(&self, ds: &Dataset) -> Result<PreparedData> {
        self.check_compatible(ds)?;
        let splits = split_for(ds, self.run.data.seed, self.run.data.split);
        Ok(self.prepare_splits(ds, &splits))
    }

    /// Every sample of `ds` as the test split (train and validation empty):
    /// new instances evaluated with nothing fitted on them.
    pub fn prepare_all(&self, ds: &Dataset) -> Result<PreparedData> {
        self.check_compatible(ds)?;
        let splits = data::Splits {
            test: (0..ds.len()).collect(),
            ..data::Splits::default()
        };
        Ok(self.prepare_splits(ds, &splits))
    }

    fn prepare_splits(&self, ds: &Dataset, splits: &data::Splits) -> PreparedData {
        PreparedData::with_preprocessor(
            ds,
            splits,
            &self.preprocessor,
            self.run.train.residual,
            self.run.net_scale,
        )
    }
}

//! Data ready for the network: scaled, imputed inputs and targets per split,
//! with the trace-unit truth and the naive prediction kept beside them.

use super::reserve::WindowStats;
use crate::data::{Dataset, Format, PreprocessOptions, Preprocessor, Splits};
use crate::error::{Error, Result};

/// One split: `inputs` is n × seq_len × channels (scaled), `targets` scaled;
/// `actual` and `naive` are in trace units. `offset` (scaled) is added to the
/// network's output, times `net_scale`, to form the prediction: the scaled naive
/// prediction when the network learns the residual over it, zero otherwise.
#[derive(Clone, Debug, Default)]
pub struct SplitData {
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
    pub actual: Vec<f32>,
    pub naive: Vec<f32>,
    pub offset: Vec<f32>,
    /// The network's unit in scaled target units (the mean absolute training
    /// residual, see `residual_scale`), so it regresses a target of order one.
    pub net_scale: f32,
    pub ids: Vec<String>,
    /// The instance (series) or collection (kaggle) of each sample.
    pub groups: Vec<u64>,
    /// The history window of each sample in trace units (series only; empty
    /// for kaggle rows): what the operators' heuristics forecast from.
    pub windows: Vec<Option<WindowStats>>,
}

impl SplitData {
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The standard deviation of sample `i`'s history window (NaN without one).
    pub fn window_std(&self, i: usize) -> f32 {
        self.windows
            .get(i)
            .copied()
            .flatten()
            .map_or(f32::NAN, |w| w.std)
    }

    /// The samples at `idx` of a dataset, transformed by a fitted preprocessor.
    pub fn from_dataset(ds: &Dataset, idx: &[usize], pre: &Preprocessor, residual: bool) -> Self {
        let (inputs, _) = pre.transform_inputs(ds, idx);
        let naive: Vec<f32> = idx.iter().map(|&i| ds.naive[i]).collect();
        SplitData {
            inputs,
            targets: pre.transform_targets(ds, idx),
            actual: idx.iter().map(|&i| ds.targets[i]).collect(),
            offset: naive_offset(&naive, pre, residual),
            naive,
            net_scale: 1.0,
            ids: idx.iter().map(|&i| ds.ids[i].clone()).collect(),
            groups: idx.iter().map(|&i| ds.groups[i]).collect(),
            windows: window_stats(ds, idx),
        }
    }

    /// The training target of the network for sample i: what the offset leaves.
    pub fn net_target(&self, i: usize) -> f32 {
        (self.targets[i] - self.offset[i]) / self.net_scale
    }

    /// The prediction (scaled target units) for sample i from a network output.
    pub fn from_net(&self, i: usize, out: f32) -> f32 {
        self.offset[i] + self.net_scale * out
    }

    fn with_net_scale(mut self, net_scale: f32) -> Self {
        self.net_scale = net_scale;
        self
    }
}

pub struct PreparedData {
    pub format: Format,
    pub seq_len: usize,
    /// Channels after the preprocessor (missing-value indicators included).
    pub channels: usize,
    pub train: SplitData,
    pub val: SplitData,
    pub test: SplitData,
    pub preprocessor: Preprocessor,
}

impl PreparedData {
    /// Fits the preprocessor on the training split only and transforms all three.
    pub fn new(
        ds: &Dataset,
        splits: &Splits,
        opts: &PreprocessOptions,
        residual: bool,
    ) -> Result<Self> {
        if splits.train.is_empty() {
            return Err(Error::Invalid(
                "the training split is empty: the data set is too small for its split ratios"
                    .into(),
            ));
        }
        let preprocessor = Preprocessor::fit(ds, &splits.train, opts);
        let (_, channels) = preprocessor.transform_inputs(ds, &splits.train[..1]);
        let train = SplitData::from_dataset(ds, &splits.train, &preprocessor, residual);
        let net_scale = if residual {
            residual_scale(&train)
        } else {
            1.0
        };
        Ok(PreparedData {
            format: ds.format,
            seq_len: ds.seq_len,
            channels,
            val: SplitData::from_dataset(ds, &splits.val, &preprocessor, residual)
                .with_net_scale(net_scale),
            test: SplitData::from_dataset(ds, &splits.test, &preprocessor, residual)
                .with_net_scale(net_scale),
            train: train.with_net_scale(net_scale),
            preprocessor,
        })
    }

    /// Splits of a data set under an already fitted preprocessor and scale
    /// (evaluation of a trained run).
    pub fn with_preprocessor(
        ds: &Dataset,
        splits: &Splits,
        pre: &Preprocessor,
        residual: bool,
        net_scale: f32,
    ) -> Self {
        let part = |idx: &[usize]| {
            SplitData::from_dataset(ds, idx, pre, residual).with_net_scale(net_scale)
        };
        PreparedData {
            format: ds.format,
            seq_len: ds.seq_len,
            channels: pre.out_channels(),
            train: part(&splits.train),
            val: part(&splits.val),
            test: part(&splits.test),
            preprocessor: pre.clone(),
        }
    }

    pub fn net_scale(&self) -> f32 {
        self.train.net_scale
    }

    /// Scaled predictions back to trace units.
    pub fn to_trace_units(&self, scaled: &[f32]) -> Vec<f32> {
        scaled
            .iter()
            .map(|&y| self.preprocessor.inverse_target(y))
            .collect()
    }
}

/// Per sample of a series data set: its window's peaks (`max_memory_usage`)
/// and the last step's `memory_limit`. Empty for kaggle rows.
pub fn window_stats(ds: &Dataset, idx: &[usize]) -> Vec<Option<WindowStats>> {
    let channel = |name: &str| ds.feature_names.iter().position(|f| f == name);
    let (Format::InstanceUsage, Some(peak)) = (ds.format, channel("max_memory_usage")) else {
        return Vec::new();
    };
    let limit = channel("memory_limit");
    let (l, c) = (ds.seq_len, ds.channels);
    idx.iter()
        .map(|&i| {
            let s = ds.sample(i);
            let peaks: Vec<f32> = (0..l).map(|t| s[t * c + peak]).collect();
            let limit = limit.map_or(f32::NAN, |k| s[(l - 1) * c + k]);
            WindowStats::of(&peaks, limit)
        })
        .collect()
}

/// Scaled naive predictions as offsets (a missing naive value offsets nothing).
fn naive_offset(naive: &[f32], pre: &Preprocessor, residual: bool) -> Vec<f32> {
    naive
        .iter()
        .map(|&y| {
            if residual && y.is_finite() {
                pre.scale_target(y)
            } else {
                0.0
            }
        })
        .collect()
}

/// Mean absolute training residual (1 when they are all zero). Not the RMS:
/// the residual is heavy-tailed (on the shared series the top 0.1% of samples
/// carry 73% of its sum of squares), so an RMS unit makes the typical sample's
/// target tiny and a constant output a strong optimum. In this unit a typical
/// residual is of order one and the Huber loss (δ = 1) caps the outliers' pull.
fn residual_scale(train: &SplitData) -> f32 {
    let n = train.len().max(1) as f64;
    let mean_abs = (0..train.len())
        .map(|i| ((train.targets[i] - train.offset[i]) as f64).abs())
        .sum::<f64>()
        / n;
    let scale = mean_abs as f32;
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    }
}

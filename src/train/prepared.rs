//! Data ready for the network: scaled, imputed inputs and targets per split,
//! with the trace-unit truth and the naive prediction kept beside them.

use crate::data::{Dataset, Format, PreprocessOptions, Preprocessor, Splits};
use crate::error::{Error, Result};

/// One split: `inputs` is n × seq_len × channels (scaled), `targets` scaled;
/// `actual` and `naive` are in trace units.
#[derive(Clone, Debug, Default)]
pub struct SplitData {
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
    pub actual: Vec<f32>,
    pub naive: Vec<f32>,
    pub ids: Vec<String>,
}

impl SplitData {
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The samples at `idx` of a dataset, transformed by a fitted preprocessor.
    pub fn from_dataset(ds: &Dataset, idx: &[usize], pre: &Preprocessor) -> Self {
        let (inputs, _) = pre.transform_inputs(ds, idx);
        SplitData {
            inputs,
            targets: pre.transform_targets(ds, idx),
            actual: idx.iter().map(|&i| ds.targets[i]).collect(),
            naive: idx.iter().map(|&i| ds.naive[i]).collect(),
            ids: idx.iter().map(|&i| ds.ids[i].clone()).collect(),
        }
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
    pub fn new(ds: &Dataset, splits: &Splits, opts: &PreprocessOptions) -> Result<Self> {
        if splits.train.is_empty() {
            return Err(Error::Invalid(
                "the training split is empty: the data set is too small for its split ratios"
                    .into(),
            ));
        }
        let preprocessor = Preprocessor::fit(ds, &splits.train, opts);
        let (_, channels) = preprocessor.transform_inputs(ds, &splits.train[..1]);
        Ok(PreparedData {
            format: ds.format,
            seq_len: ds.seq_len,
            channels,
            train: SplitData::from_dataset(ds, &splits.train, &preprocessor),
            val: SplitData::from_dataset(ds, &splits.val, &preprocessor),
            test: SplitData::from_dataset(ds, &splits.test, &preprocessor),
            preprocessor,
        })
    }

    /// Scaled predictions back to trace units.
    pub fn to_trace_units(&self, scaled: &[f32]) -> Vec<f32> {
        scaled
            .iter()
            .map(|&y| self.preprocessor.inverse_target(y))
            .collect()
    }
}

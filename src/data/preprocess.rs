//! Mean imputation (with optional missing-indicator channels) and MinMax scaling of
//! inputs and target, fitted on training samples only, with the inverse for targets.

use super::{DataError, Dataset, Format};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreprocessOptions {
    /// Add, per channel, a 0/1 channel that is 1 where the value was missing.
    pub missing_indicators: bool,
}

/// Statistics of one feature over the training samples (non-missing values only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureScale {
    pub mean: f32,
    pub min: f32,
    pub max: f32,
}

impl FeatureScale {
    fn scale(&self, v: f32) -> f32 {
        let range = self.max - self.min;
        // A constant feature maps to 0 rather than dividing by zero.
        if range > 0.0 {
            (v - self.min) / range
        } else {
            0.0
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub format: Format,
    pub seq_len: usize,
    /// Raw channels per step (before indicator channels).
    pub channels: usize,
    pub feature_names: Vec<String>,
    /// One per feature (see [`Dataset::feature_of`]).
    pub features: Vec<FeatureScale>,
    pub target_min: f32,
    pub target_max: f32,
    pub options: PreprocessOptions,
}

impl Preprocessor {
    /// Fits on `train` only: neither imputer nor scaler sees other samples.
    pub fn fit(ds: &Dataset, train: &[usize], opts: &PreprocessOptions) -> Self {
        let nf = ds.num_features();
        let mut sum = vec![0f64; nf];
        let mut count = vec![0u64; nf];
        let mut min = vec![f32::INFINITY; nf];
        let mut max = vec![f32::NEG_INFINITY; nf];
        for &i in train {
            for (j, &v) in ds.sample(i).iter().enumerate() {
                if v.is_nan() {
                    continue;
                }
                let f = ds.feature_of(j);
                sum[f] += v as f64;
                count[f] += 1;
                min[f] = min[f].min(v);
                max[f] = max[f].max(v);
            }
        }
        let features = (0..nf)
            .map(|f| {
                if count[f] == 0 {
                    // Never seen in training: impute 0 and leave it at 0.
                    FeatureScale {
                        mean: 0.0,
                        min: 0.0,
                        max: 0.0,
                    }
                } else {
                    FeatureScale {
                        mean: (sum[f] / count[f] as f64) as f32,
                        min: min[f],
                        max: max[f],
                    }
                }
            })
            .collect();
        let (mut tmin, mut tmax) = (f32::INFINITY, f32::NEG_INFINITY);
        for &i in train {
            tmin = tmin.min(ds.targets[i]);
            tmax = tmax.max(ds.targets[i]);
        }
        if tmin > tmax {
            (tmin, tmax) = (0.0, 1.0);
        }
        Preprocessor {
            format: ds.format,
            seq_len: ds.seq_len,
            channels: ds.channels,
            feature_names: ds.feature_names.clone(),
            features,
            target_min: tmin,
            target_max: tmax,
            options: opts.clone(),
        }
    }

    /// Channels per step of the transformed inputs.
    pub fn out_channels(&self) -> usize {
        self.channels
            * if self.options.missing_indicators {
                2
            } else {
                1
            }
    }

    fn feature_of(&self, j: usize) -> usize {
        match self.format {
            Format::Kaggle => j,
            Format::InstanceUsage | Format::BigQuery => j % self.channels,
        }
    }

    /// Imputed and scaled inputs of samples `idx`: idx.len() × seq_len × out_channels,
    /// each step holding the C values then (with indicators) C missing flags.
    pub fn transform_inputs(&self, ds: &Dataset, idx: &[usize]) -> (Vec<f32>, usize) {
        let c = self.channels;
        let oc = self.out_channels();
        let mut out = Vec::with_capacity(idx.len() * self.seq_len * oc);
        for &i in idx {
            for (s, step) in ds.sample(i).chunks_exact(c).enumerate() {
                for (k, &v) in step.iter().enumerate() {
                    let f = &self.features[self.feature_of(s * c + k)];
                    out.push(f.scale(if v.is_nan() { f.mean } else { v }));
                }
                if self.options.missing_indicators {
                    out.extend(step.iter().map(|v| v.is_nan() as u8 as f32));
                }
            }
        }
        (out, oc)
    }

    /// Targets of samples `idx`, MinMax-scaled with the training range.
    pub fn transform_targets(&self, ds: &Dataset, idx: &[usize]) -> Vec<f32> {
        idx.iter()
            .map(|&i| self.scale_target(ds.targets[i]))
            .collect()
    }

    pub fn scale_target(&self, y: f32) -> f32 {
        let range = self.target_max - self.target_min;
        if range > 0.0 {
            (y - self.target_min) / range
        } else {
            y - self.target_min
        }
    }

    /// A scaled prediction back in trace units.
    pub fn inverse_target(&self, y: f32) -> f32 {
        let range = self.target_max - self.target_min;
        if range > 0.0 {
            y * range + self.target_min
        } else {
            y + self.target_min
        }
    }

    pub fn save_json(&self, path: &Path) -> Result<(), DataError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| DataError::Invalid(format!("cannot serialise preprocessor: {e}")))?;
        std::fs::write(path, text).map_err(|e| DataError::io(path, e))
    }

    pub fn load_json(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let p: Preprocessor = serde_json::from_str(&text).map_err(|e| DataError::Cell {
            file: path.to_path_buf(),
            line: e.line() as u64,
            cell_line: e.line() as u64,
            column: e.column().to_string(),
            text: String::new(),
            why: e.to_string(),
        })?;
        if p.features.len() != p.feature_names.len() || p.channels == 0 {
            return Err(DataError::file(
                path,
                "preprocessor: feature count does not match its names",
            ));
        }
        Ok(p)
    }
}

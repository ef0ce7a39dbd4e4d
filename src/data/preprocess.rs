//! Mean imputation (with optional missing-indicator channels) and MinMax scaling of
//! inputs and target, plus window-relative memory channels for series, fitted on
//! training samples only, with the inverse for targets.

use super::{DataError, Dataset, Format};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreprocessOptions {
    /// Add, per channel, a 0/1 channel that is 1 where the value was missing.
    pub missing_indicators: bool,
    /// Series only: add each memory channel minus the window's last peak (see
    /// [`RelativeChannel`]). Absent from runs saved before it existed, which
    /// were trained without.
    #[serde(default)]
    pub window_relative: bool,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        PreprocessOptions {
            missing_indicators: false,
            window_relative: true,
        }
    }
}

/// The memory channels of a series window, restated relative to the window's last
/// peak (`max_memory_usage` at the last step, the naive forecast the network's
/// target is a residual over) and standardised over the training samples.
///
/// MinMax-scaled over the training set, each memory channel mostly tells one
/// instance's size from another's; what predicts the next peak beyond the last is
/// a small difference between nearly equal channels (on the shared series, the
/// last step's max − avg memory has a scaled spread of 0.0085 against 0.18 for
/// either channel). A network must find that direction by gradient steps, which
/// crawl along so thin a direction; a ridge fit finds it at once. Restated, the
/// difference is a channel of unit spread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelativeChannel {
    pub channel: usize,
    pub mean: f32,
    pub std: f32,
}

/// The series channels restated by [`RelativeChannel`], and their reference.
const RELATIVE_CHANNELS: [&str; 4] = [
    "avg_memory_usage",
    "max_memory_usage",
    "assigned_memory",
    "memory_limit",
];
const RELATIVE_REFERENCE: &str = "max_memory_usage";

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
    /// Window-relative channels, appended to each step after the scaled ones.
    #[serde(default)]
    pub relative: Vec<RelativeChannel>,
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
        let mut pre = Preprocessor {
            format: ds.format,
            seq_len: ds.seq_len,
            channels: ds.channels,
            feature_names: ds.feature_names.clone(),
            features,
            target_min: tmin,
            target_max: tmax,
            options: opts.clone(),
            relative: Vec::new(),
        };
        pre.relative = pre.fit_relative(ds, train);
        pre
    }

    /// The reference channel and the channels to restate, when this layout has them.
    fn relative_layout(&self) -> Option<(usize, Vec<usize>)> {
        if !self.options.window_relative || self.format == Format::Kaggle || self.seq_len == 0 {
            return None;
        }
        let find = |name: &str| self.feature_names.iter().position(|f| f == name);
        let reference = find(RELATIVE_REFERENCE)?;
        Some((
            reference,
            RELATIVE_CHANNELS.iter().filter_map(|n| find(n)).collect(),
        ))
    }

    /// Mean and standard deviation of each restated channel over the training steps.
    fn fit_relative(&self, ds: &Dataset, train: &[usize]) -> Vec<RelativeChannel> {
        let Some((reference, channels)) = self.relative_layout() else {
            return Vec::new();
        };
        let c = self.channels;
        channels
            .into_iter()
            .map(|k| {
                let (mut sum, mut sum_sq, mut n) = (0f64, 0f64, 0f64);
                for &i in train {
                    let s = ds.sample(i);
                    let last = self.imputed(s, (self.seq_len - 1) * c + reference);
                    for t in 0..self.seq_len {
                        let d = (self.imputed(s, t * c + k) - last) as f64;
                        sum += d;
                        sum_sq += d * d;
                        n += 1.0;
                    }
                }
                let mean = sum / n.max(1.0);
                let std = (sum_sq / n.max(1.0) - mean * mean).max(0.0).sqrt();
                RelativeChannel {
                    channel: k,
                    mean: mean as f32,
                    std: if std > 0.0 && std.is_finite() {
                        std as f32
                    } else {
                        1.0
                    },
                }
            })
            .collect()
    }

    /// Raw value j of a sample, the feature's training mean where it is missing.
    fn imputed(&self, sample: &[f32], j: usize) -> f32 {
        let v = sample[j];
        if v.is_nan() {
            self.features[self.feature_of(j)].mean
        } else {
            v
        }
    }

    /// Channels per step of the transformed inputs.
    pub fn out_channels(&self) -> usize {
        let indicators = if self.options.missing_indicators {
            self.channels
        } else {
            0
        };
        self.channels + indicators + self.relative.len()
    }

    fn feature_of(&self, j: usize) -> usize {
        match self.format {
            Format::Kaggle => j,
            Format::InstanceUsage | Format::BigQuery => j % self.channels,
        }
    }

    /// Imputed and scaled inputs of samples `idx`: idx.len() × seq_len × out_channels,
    /// each step holding the C values, then (with indicators) C missing flags, then
    /// the window-relative channels.
    pub fn transform_inputs(&self, ds: &Dataset, idx: &[usize]) -> (Vec<f32>, usize) {
        let c = self.channels;
        let oc = self.out_channels();
        let reference = self.relative_layout().map(|(r, _)| r);
        let mut out = Vec::with_capacity(idx.len() * self.seq_len * oc);
        for &i in idx {
            let sample = ds.sample(i);
            let last = reference.map(|r| self.imputed(sample, (self.seq_len - 1) * c + r));
            for (s, step) in sample.chunks_exact(c).enumerate() {
                for k in 0..c {
                    let f = &self.features[self.feature_of(s * c + k)];
                    out.push(f.scale(self.imputed(sample, s * c + k)));
                }
                if self.options.missing_indicators {
                    out.extend(step.iter().map(|v| v.is_nan() as u8 as f32));
                }
                if let Some(last) = last {
                    out.extend(self.relative.iter().map(|r| {
                        (self.imputed(sample, s * c + r.channel) - last - r.mean) / r.std
                    }));
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

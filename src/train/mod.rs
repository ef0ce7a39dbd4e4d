//! Training, evaluation and everything a run writes: metrics, the ridge
//! baseline, safetensors weights and checkpoints, plots.

pub mod metrics;
pub mod ridge;
pub mod weights;

pub use metrics::{regression_metrics, Metrics};
pub use ridge::Ridge;

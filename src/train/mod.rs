//! Training, evaluation and everything a run writes: metrics, the ridge
//! baseline, safetensors weights and checkpoints, plots.

pub mod metrics;
pub mod ridge;
pub mod weights;

pub use metrics::{regression_metrics, Metrics};
pub use ridge::Ridge;
pub mod alloc;
pub mod baselines;
pub mod checkpoint;
pub mod config;
pub mod error_mix;
pub mod history;
pub mod json;
pub mod plots;
pub mod prepared;
pub mod reservation_plot;
pub mod reserve;
pub mod run;
pub mod trainer;
pub mod tuning;

pub use config::{LossSpec, RunConfig, TrainConfig};
pub use history::EpochLog;
pub use prepared::{PreparedData, SplitData};
pub use run::{DataSource, EvalReport, LoadedRun};
pub use trainer::{
    fit, predict, predict_on_tape, train_and_validate, FitOptions, FitOutcome, Progress,
};

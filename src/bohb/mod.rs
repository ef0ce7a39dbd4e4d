//! BOHB: Bayesian optimisation + Hyperband (Falkner, Klein & Hutter, ICML 2018).
//!
//! The tuner is generic over an [`Objective`]; [`run`] drives Hyperband
//! brackets whose new configurations come from per-budget KDE models
//! ([`model`]), evaluates them on worker threads, and journals every proposal
//! and result ([`journal`]) so a killed run resumes to the same evaluations.
//!
//! Several workers: under the default [`Schedule::Async`] a result is
//! applied the moment it arrives and the freed worker at once takes the next
//! runnable job, so no worker idles while work exists; the journal keeps the
//! arrival order, so a resume replays the killed run's decisions exactly, but
//! two uninterrupted runs from one seed can differ (what the model knew at a
//! proposal depends on which worker finished first). [`Schedule::Ordered`]
//! applies results in hand-out order: every decision depends on the seed and
//! `workers` alone, so runs are reproducible proposal for proposal and a
//! killed run resumes to the very evaluations of an uninterrupted one, at the
//! price of workers idling behind an older, slow job. With one worker the two
//! schedules are the same run.
mod bracket;
pub mod distributed;
mod error;
pub mod hyperband;
pub mod journal;
pub mod kde;
pub mod log_store;
mod master;
pub mod model;
pub mod objectives;
pub mod optuna_log;
pub mod plot;
mod redis_log;
pub mod rng;
pub mod space;
pub mod storage;
pub mod study;
mod types;

pub use error::EvalError;
pub use master::run;
pub use model::{ModelSettings, Origin};
pub use space::{Condition, Config, Domain, Param, Space, Value};
pub use types::{
    Evaluation, Event, Incumbent, RunOptions, Schedule, TrajectoryPoint, TuneOutcome, TuneSettings,
};

use std::path::Path;

/// What an evaluation knows besides its configuration and budget.
#[derive(Clone, Debug)]
pub struct EvalContext {
    /// The job's number in the run (0-based, in hand-out order).
    pub job: u64,
    pub bracket: usize,
    pub stage: usize,
    /// A seed derived from the run seed and the job: use it for any
    /// randomness (initialisation, shuffling) so that reruns match.
    pub seed: u64,
}

/// What a finished evaluation reports.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    /// Lower is better. A non-finite loss is recorded as a failure.
    pub loss: f64,
}

/// A function to minimise; `budget` is its fidelity (for ConvFormerNet: epochs).
pub trait Objective: Send + Sync {
    /// Evaluates one configuration; an `Err` is recorded as a failed
    /// evaluation with its message and the run goes on.
    fn evaluate(
        &self,
        config: &Config,
        budget: f64,
        ctx: &EvalContext,
    ) -> Result<EvalResult, EvalError>;

    /// Hook for the end of a run: trains the final model on the best
    /// configuration into `dir` and returns a one-line description. `Ok(None)`
    /// means this objective has no model to keep (the synthetic ones).
    fn train_final(
        &self,
        config: &Config,
        budget: f64,
        dir: &Path,
    ) -> Result<Option<String>, EvalError> {
        let _ = (config, budget, dir);
        Ok(None)
    }
}

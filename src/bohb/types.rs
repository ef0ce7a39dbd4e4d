//! The tuner's public types: what a run is given ([`TuneSettings`],
//! [`Schedule`], [`RunOptions`]) and what it reports ([`Evaluation`],
//! [`Incumbent`], [`TrajectoryPoint`], [`Event`], [`TuneOutcome`]). The
//! scheduler that produces them is in `master`.

use super::model::{ModelSettings, Origin};
use super::space::{Config, Space};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything that determines a run's evaluations (stored in the journal
/// header; a resume must use the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneSettings {
    /// The objective's name, so a journal is not resumed against another one.
    pub objective: String,
    pub space: Space,
    pub min_budget: f64,
    pub max_budget: f64,
    pub eta: u32,
    /// Number of Hyperband brackets (successive-halving runs) to complete.
    pub iterations: usize,
    /// Concurrent evaluations.
    pub workers: usize,
    pub seed: u64,
    pub model: ModelSettings,
    /// When a result changes the scheduler's state (see [`Schedule`]).
    pub schedule: Schedule,
}

/// How results of concurrent evaluations are applied. With one worker both
/// give the same run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Each result is applied the moment it arrives, and a free worker at
    /// once takes the next runnable job (the next rung of a bracket whose
    /// rung is complete, else a new configuration for the open or the next
    /// bracket), as hpbandster's master does: no worker idles while work
    /// exists. What the model knows at a proposal depends on which worker
    /// finished first, so with several workers two runs from one seed can
    /// differ. The journal keeps the arrival order and a resume replays it
    /// exactly: nothing finished is redone and the resumed run continues the
    /// very decisions of the killed one.
    #[default]
    Async,
    /// Results are applied in hand-out order: a free worker waits for the
    /// oldest running job before the next decision. Every decision depends on
    /// the seed and `workers` alone, never on timing or on how many threads
    /// execute the jobs ([`RunOptions::threads`]), so a run is reproducible
    /// proposal for proposal and a killed run resumes to exactly the
    /// evaluations of an uninterrupted one; the price is idle workers behind
    /// a slow job.
    Ordered,
}

/// How to run: where to journal, whether to resume, when to give up.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// `journal.jsonl` path; `None` runs without a journal (benchmarks).
    pub journal: Option<PathBuf>,
    /// Continue the run recorded in `journal`.
    pub resume: bool,
    /// Stop with an error once this many evaluations have failed.
    pub max_failures: Option<usize>,
    /// Called on the master thread as jobs start and finish.
    pub on_event: Option<&'a mut dyn FnMut(&Event)>,
    /// Threads that evaluate (1..=workers); `None` = `workers`. Fewer threads
    /// queue the handed-out jobs: under [`Schedule::Ordered`] the evaluations
    /// stay exactly those of `workers` threads.
    pub threads: Option<usize>,
}

/// One finished evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub job: u64,
    pub bracket: usize,
    pub stage: usize,
    pub budget: f64,
    pub origin: Origin,
    pub config: Config,
    /// `None` when the evaluation failed.
    pub loss: Option<f64>,
    pub error: Option<String>,
    pub seconds: f64,
    /// Taken from the journal instead of being evaluated again.
    pub replayed: bool,
}

/// The best configuration so far: lowest loss on the largest budget reached
/// (hpbandster's incumbent rule, so a lucky low-budget loss does not win).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incumbent {
    pub job: u64,
    pub config: Config,
    pub budget: f64,
    pub loss: f64,
}

impl Incumbent {
    /// Whether a result at `budget` with `loss` takes over from `current`.
    pub(super) fn beaten_by(current: Option<&Incumbent>, budget: f64, loss: f64) -> bool {
        current.is_none_or(|inc| budget > inc.budget || (budget == inc.budget && loss < inc.loss))
    }
}

/// The incumbent's loss whenever it changed, against the budget spent so far.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TrajectoryPoint {
    pub cumulative_budget: f64,
    pub loss: f64,
    pub job: u64,
}

#[derive(Clone, Debug)]
pub enum Event {
    Started {
        job: u64,
        bracket: usize,
        stage: usize,
        budget: f64,
        running: usize,
    },
    Finished {
        evaluation: Evaluation,
        running: usize,
        finished: usize,
        /// Upper bound on the run's evaluations (fewer when results fail).
        planned: usize,
        incumbent: Option<Incumbent>,
    },
    /// The master blocks until a worker returns a result; `busy` jobs are
    /// handed out without their result back (running or queued).
    Waiting { busy: usize },
    /// Something repaired or ignored (a torn journal line).
    Warning(String),
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TuneOutcome {
    /// In job order (the order they were applied in is that of the
    /// `Finished` events and of the journal's result records).
    pub evaluations: Vec<Evaluation>,
    pub trajectory: Vec<TrajectoryPoint>,
    pub incumbent: Option<Incumbent>,
    pub failures: usize,
    pub total_budget: f64,
    pub warnings: Vec<String>,
}

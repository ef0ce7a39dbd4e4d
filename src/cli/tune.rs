//! `convformer tune`: BOHB over a search space, journalled in `--out`.
//!
//! ```text
//! convformer tune --objective counting-ones --min-budget 9 --max-budget 729 \
//!     --iterations 10 --workers 2 --seed 1 --out runs/tune
//! convformer tune ... --out runs/tune --resume   # after a crash or kill -9
//! ```
//!
//! `--out` receives `journal.jsonl` (every proposal and result, fsynced),
//! `best.json`, `trajectory.png` and, for objectives that keep a model,
//! `final/` (written by [`Objective::train_final`]).

use crate::bohb::objectives::{Branin, CountingOnes};
use crate::bohb::plot::write_trajectory;
use crate::bohb::{
    self, Event, ModelSettings, Objective, RunOptions, Schedule, Space, TuneOutcome, TuneSettings,
};
use crate::cli::device_choice::{resolve, DeviceArg};
use crate::cli::source_args::SourceArgs;
use crate::train::tuning::ConvFormerObjective;
use crate::train::RunConfig;
use crate::{Error, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveKind {
    /// Train ConvFormerNet for `budget` epochs; loss = validation MAE.
    Convformer,
    /// The Branin function (a self-check of the tuner; optimum 0.397887).
    Branin,
    /// The BOHB paper's counting-ones problem, 8 binary + 8 continuous.
    CountingOnes,
}

impl ObjectiveKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            ObjectiveKind::Convformer => "convformer",
            ObjectiveKind::Branin => "branin",
            ObjectiveKind::CountingOnes => "counting-ones",
        }
    }
}

/// Dimensions of the CLI's counting-ones problem.
const COUNTING_ONES_DIMS: (usize, usize) = (8, 8);

#[derive(Args, Clone, Debug)]
pub struct TuneArgs {
    /// What to tune.
    #[arg(long, value_enum, default_value = "convformer")]
    pub objective: ObjectiveKind,
    /// Training data of the ConvFormerNet objective.
    #[command(flatten)]
    pub source: SourceArgs,
    /// JSON file with `model` and/or `train` sections: what the search space leaves fixed.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the ConvFormerNet objective trains.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// JSON search space (array of {"name", "type": int|float|categorical|ordinal|constant, ...,
    /// optional "condition": {"parent": an earlier categorical/ordinal name, "values": [...]}});
    /// default: conv_filters 16-64, num_heads 1-8, ff_dim 32-256, dropout_rate 0-0.5, learning_rate 1e-4-1e-2 (log).
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// Smallest budget (training epochs).
    #[arg(long, default_value_t = 1.0)]
    pub min_budget: f64,
    /// Largest budget (training epochs).
    #[arg(long, default_value_t = 27.0)]
    pub max_budget: f64,
    /// Successive-halving rate: keep the best 1/eta at each stage.
    #[arg(long, default_value_t = 3)]
    pub eta: u32,
    /// Hyperband brackets to run.
    #[arg(long, default_value_t = 4)]
    pub iterations: usize,
    /// Concurrent evaluations.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// async: apply each result as it arrives, no worker idles while work exists
    /// (runs with several workers depend on timing); ordered: apply results in
    /// hand-out order, reproducible from the seed for any --workers (workers may idle).
    #[arg(long, value_enum, default_value = "async")]
    pub schedule: Schedule,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: journal.jsonl, best.json, trajectory.png, final/
    /// (with --storage: best.json and trajectory.png only, and optional).
    #[arg(long, required_unless_present_any = ["storage", "status"])]
    pub out: Option<PathBuf>,
    /// A study shared by workers on any machines instead of the in-process run:
    /// journal:PATH (an Optuna journal file, appended under PATH.lock) or
    /// redis://HOST:PORT/NAME (the same log in Redis under the key prefix NAME).
    /// Creates the study, or joins it when it exists with the same settings.
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// Join the study in --storage with its own settings (the search flags,
    /// --workers included, are the study's and ignored here).
    #[arg(long, requires = "storage")]
    pub join: bool,
    /// With --storage: worker threads in this process (default: --workers
    /// when creating the study, 1 when joining). The study's --workers bounds
    /// the jobs open at once over all its workers.
    #[arg(long, requires = "storage")]
    pub threads: Option<usize>,
    /// Seconds without a heartbeat after which a worker's job is given to another.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub heartbeat: f64,
    /// Print who works on what, what is done and the incumbent of the study in URL, then exit.
    #[arg(long, value_name = "URL", conflicts_with = "storage")]
    pub status: Option<String>,
    /// Continue the run journalled in `--out` (same settings required).
    #[arg(long)]
    pub resume: bool,
    /// Stop with an error after this many failed evaluations.
    #[arg(long)]
    pub max_failures: Option<usize>,
    /// Percentage of results forming the "good" density.
    #[arg(long, default_value_t = ModelSettings::default().top_n_percent)]
    pub top_n_percent: usize,
    /// Candidates sampled per model-based proposal.
    #[arg(long, default_value_t = ModelSettings::default().num_samples)]
    pub num_samples: usize,
    /// Fraction of configurations drawn uniformly at random (1 = plain Hyperband).
    #[arg(long, default_value_t = ModelSettings::default().random_fraction)]
    pub random_fraction: f64,
    /// Bandwidth multiplier when sampling candidates.
    #[arg(long, default_value_t = ModelSettings::default().bandwidth_factor)]
    pub bandwidth_factor: f64,
    #[arg(long, default_value_t = ModelSettings::default().min_bandwidth)]
    pub min_bandwidth: f64,
    /// Results a budget needs before it gets a model (default: dimensions + 1).
    #[arg(long)]
    pub min_points_in_model: Option<usize>,
    /// Milliseconds each synthetic evaluation sleeps, standing in for training time.
    #[arg(long, default_value_t = 0)]
    pub eval_delay_ms: u64,
}

/// What a finished `tune` produced.
#[derive(Debug)]
pub struct TuneSummary {
    pub outcome: TuneOutcome,
    pub best_json: PathBuf,
    pub trajectory_png: PathBuf,
    /// What `Objective::train_final` wrote to `final/`, if the objective keeps a model.
    pub final_model: Option<String>,
}

/// The search space: `--space` if given, else the objective's own.
pub fn space_for(args: &TuneArgs) -> Result<Space> {
    match (args.objective, &args.space) {
        (ObjectiveKind::Convformer, Some(path)) => Space::from_json_file(path),
        (ObjectiveKind::Convformer, None) => Ok(Space::convformer_default()),
        (_, Some(_)) => Err(Error::Invalid(format!(
            "--space applies to --objective convformer only; {} has a fixed space",
            args.objective.name()
        ))),
        (ObjectiveKind::Branin, None) => Ok(Branin::space()),
        (ObjectiveKind::CountingOnes, None) => {
            Ok(CountingOnes::new(COUNTING_ONES_DIMS.0, COUNTING_ONES_DIMS.1).space())
        }
    }
}

/// The objective named by `--objective`.
pub fn objective_for(args: &TuneArgs) -> Result<Arc<dyn Objective>> {
    let delay = Duration::from_millis(args.eval_delay_ms);
    match args.objective {
        ObjectiveKind::Convformer => {
            let base = match &args.config {
                Some(path) => RunConfig::from_json_file(path)?,
                None => RunConfig::default(),
            };
            let source = args.source.source(base.train.seed)?;
            let device = resolve(args.device)?;
            Ok(Arc::new(ConvFormerObjective::new(source, base, device)?))
        }
        ObjectiveKind::Branin => Ok(Arc::new(Branin { delay })),
        ObjectiveKind::CountingOnes => {
            let (n_cat, n_cont) = COUNTING_ONES_DIMS;
            Ok(Arc::new(CountingOnes {
                n_cat,
                n_cont,
                delay,
            }))
        }
    }
}

pub fn settings_for(args: &TuneArgs) -> Result<TuneSettings> {
    Ok(TuneSettings {
        objective: args.objective.name().into(),
        space: space_for(args)?,
        min_budget: args.min_budget,
        max_budget: args.max_budget,
        eta: args.eta,
        iterations: args.iterations,
        workers: args.workers,
        seed: args.seed,
        schedule: args.schedule,
        model: ModelSettings {
            min_points_in_model: args.min_points_in_model,
            top_n_percent: args.top_n_percent,
            num_samples: args.num_samples,
            random_fraction: args.random_fraction,
            bandwidth_factor: args.bandwidth_factor,
            min_bandwidth: args.min_bandwidth,
        },
    })
}

/// `convformer tune` in one process: picks the objective and runs
/// (`tune_shared::dispatch` sends `--storage` and `--status` elsewhere).
pub fn execute(args: &TuneArgs) -> Result<()> {
    let out = required_out(args)?;
    settings_for(args)?; // a bad --space is reported before anything else
    let objective = objective_for(args)?;
    let summary = run_tune(args, objective)?;
    match &summary.outcome.incumbent {
        Some(best) => say(format_args!(
            "best loss {:.6} at budget {} (job {}); wrote {} and {}",
            best.loss,
            best.budget,
            best.job,
            summary.best_json.display(),
            summary.trajectory_png.display()
        )),
        None => say(format_args!(
            "no evaluation succeeded; see {}",
            out.join("journal.jsonl").display()
        )),
    }
    if let Some(description) = &summary.final_model {
        say(format_args!("final model: {description}"));
    }
    Ok(())
}

/// Prints a line of the table. A closed stdout (`| head`) must not stop the
/// run: the journal, not the terminal, is the record.
pub(super) fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Runs the tuner with `objective`, printing a live table, then writes
/// `best.json`, `trajectory.png` and (through `Objective::train_final`)
/// `final/` into `args.out`.
pub fn run_tune(args: &TuneArgs, objective: Arc<dyn Objective>) -> Result<TuneSummary> {
    let settings = settings_for(args)?;
    let out = required_out(args)?;
    create_out(out)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} evaluations, {elapsed} | {msg}")
            .expect("the template is valid"),
    );
    say(format_args!(
        "{:>5} {:>7} {:>5} {:>9} {:>12} {:>7} {:>9} {:>12}",
        "job", "bracket", "stage", "budget", "loss", "running", "finished", "incumbent"
    ));
    let mut table = |event: &Event| match event {
        Event::Started {
            bracket,
            budget,
            running,
            ..
        } => {
            bar.set_message(format!(
                "bracket {bracket}, budget {budget}, {running} running"
            ));
        }
        Event::Finished {
            evaluation: e,
            running,
            finished,
            planned,
            incumbent,
        } => {
            bar.set_length(*planned as u64);
            bar.set_position(*finished as u64);
            let loss = e
                .loss
                .map_or_else(|| "failed".to_string(), |l| format!("{l:.6}"));
            let inc = incumbent
                .as_ref()
                .map_or_else(|| "-".to_string(), |i| format!("{:.6}", i.loss));
            let replayed = if e.replayed { " (journal)" } else { "" };
            bar.suspend(|| {
                say(format_args!(
                    "{:>5} {:>7} {:>5} {:>9.3} {:>12} {:>7} {:>9} {:>12}{replayed}",
                    e.job, e.bracket, e.stage, e.budget, loss, running, finished, inc
                ));
                if let Some(err) = &e.error {
                    say(format_args!("      job {} failed: {err}", e.job));
                }
            });
        }
        Event::Waiting { .. } => {}
        Event::Warning(w) => bar.suspend(|| eprintln!("warning: {w}")),
    };
    let options = RunOptions {
        journal: Some(out.join("journal.jsonl")),
        resume: args.resume,
        max_failures: args.max_failures,
        on_event: Some(&mut table),
        threads: None,
    };
    let outcome = bohb::run(&settings, Arc::clone(&objective), options);
    bar.finish_and_clear();
    let outcome = outcome?;

    let (best_json, trajectory_png) = write_results(out, &outcome)?;
    let final_model = match &outcome.incumbent {
        Some(best) => objective
            .train_final(&best.config, settings.max_budget, &out.join("final"))
            .map_err(|e| Error::Invalid(format!("training the final model failed: {e}")))?,
        None => None,
    };
    Ok(TuneSummary {
        outcome,
        best_json,
        trajectory_png,
        final_model,
    })
}

fn required_out(args: &TuneArgs) -> Result<&Path> {
    args.out
        .as_deref()
        .ok_or_else(|| Error::Invalid("tune needs --out DIR (or --storage URL)".into()))
}

pub(super) fn create_out(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| {
        Error::Invalid(format!(
            "{}: cannot create the output directory: {e}",
            out.display()
        ))
    })
}

/// `best.json` and `trajectory.png` in `out`; returns their paths.
pub(super) fn write_results(out: &Path, outcome: &TuneOutcome) -> Result<(PathBuf, PathBuf)> {
    let best_json = out.join("best.json");
    write_best(&best_json, outcome)?;
    let trajectory_png = out.join("trajectory.png");
    if let Some(warning) =
        write_trajectory(&trajectory_png, &outcome.evaluations, outcome.total_budget)?
    {
        eprintln!("warning: {warning}");
    }
    Ok((best_json, trajectory_png))
}

/// `best.json`, written to a temporary file and renamed so it is never torn.
fn write_best(path: &Path, outcome: &TuneOutcome) -> Result<()> {
    let body = serde_json::json!({
        "incumbent": outcome.incumbent,
        "evaluations": outcome.evaluations.len(),
        "failures": outcome.failures,
        "total_budget": outcome.total_budget,
    });
    let text = serde_json::to_string_pretty(&body).map_err(|e| Error::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

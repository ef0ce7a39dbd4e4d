//! The scheduler: Hyperband brackets fed by the model, evaluated on worker
//! threads, journalled, resumable. Its inputs and outputs are in `types`.

use super::bracket::{next_run, Bracket};
use super::hyperband::{budget_ladder, planned_jobs};
use super::journal::{Journal, Record, Status, JOURNAL_VERSION};
use super::model::{Model, Origin};
use super::rng::Rng;
use super::space::Config;
use super::types::{
    Evaluation, Event, Incumbent, RunOptions, Schedule, TrajectoryPoint, TuneOutcome, TuneSettings,
};
use super::{EvalContext, Objective};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

/// One BOHB job: the evaluation of `config` at `budget` in slot `slot` of
/// its bracket's stage. A shared study stores it in each attempt's `bohb:job`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct JobSpec {
    pub job: u64,
    pub bracket: usize,
    pub stage: usize,
    pub slot: usize,
    pub budget: f64,
    pub origin: Origin,
    pub config: Config,
}

pub(super) struct Finished {
    pub loss: std::result::Result<f64, String>,
    pub seconds: f64,
    pub replayed: bool,
}

struct WorkItem {
    job: u64,
    config: Config,
    budget: f64,
    ctx: EvalContext,
}

/// What the journal says about one job, for a resumed run.
#[derive(Default)]
struct Replay {
    proposal: Option<Record>,
    result: Option<Finished>,
}

const EVAL_SEED_SALT: u64 = 0x005E_ED0F_E7A1;

/// The seed job `job` evaluates with, the same wherever it runs.
pub(super) fn eval_seed(run_seed: u64, job: u64) -> u64 {
    Rng::stream(run_seed ^ EVAL_SEED_SALT, job).next_u64()
}

/// Runs BOHB (or Hyperband, with `random_fraction` 1) to completion.
pub fn run(
    settings: &TuneSettings,
    objective: Arc<dyn Objective>,
    mut options: RunOptions,
) -> Result<TuneOutcome> {
    validate(settings)?;
    let threads = options.threads.unwrap_or(settings.workers);
    if !(1..=settings.workers).contains(&threads) {
        return Err(Error::Invalid(format!(
            "threads must be in 1..={} (the workers), got {threads}",
            settings.workers
        )));
    }
    let ladder = budget_ladder(settings.min_budget, settings.max_budget, settings.eta)?;
    let mut warnings = Vec::new();
    let mut replay: HashMap<u64, Replay> = HashMap::new();
    // Jobs in the order the journal recorded their results.
    let mut replay_order = VecDeque::new();
    let journal = match &options.journal {
        None => None,
        Some(path) if options.resume && path.exists() => {
            let loaded = Journal::open(path)?;
            warnings.extend(loaded.warnings);
            let mut journal = loaded.journal;
            let mut records = loaded.records.into_iter();
            match records.next() {
                Some(Record::Header {
                    version,
                    settings: old,
                }) => {
                    if version != JOURNAL_VERSION {
                        return Err(Error::Invalid(format!(
                            "{}: journal version {version}, this build reads version {JOURNAL_VERSION}",
                            path.display()
                        )));
                    }
                    check_same_settings(&old, settings)?;
                }
                Some(_) => {
                    return Err(Error::Invalid(format!(
                        "{}: the journal does not start with a header record",
                        path.display()
                    )))
                }
                None => journal.append(&Record::Header {
                    version: JOURNAL_VERSION,
                    settings: settings.clone(),
                })?,
            }
            for record in records {
                match record {
                    Record::Proposal { job, .. } => {
                        replay
                            .entry(job)
                            .or_default()
                            .proposal
                            .get_or_insert(record);
                    }
                    Record::Result {
                        job,
                        status,
                        loss,
                        seconds,
                        error,
                    } => {
                        let loss = match (status, loss) {
                            (Status::Ok, Some(l)) => Ok(l),
                            _ => {
                                Err(error.unwrap_or_else(|| "failed (no message recorded)".into()))
                            }
                        };
                        let entry = replay.entry(job).or_default();
                        if entry.result.is_none() {
                            replay_order.push_back(job);
                            entry.result = Some(Finished {
                                loss,
                                seconds,
                                replayed: true,
                            });
                        }
                    }
                    Record::Header { .. } => {
                        return Err(Error::Invalid(format!(
                            "{}: a second header record",
                            path.display()
                        )))
                    }
                }
            }
            Some(journal)
        }
        Some(path) => Some(Journal::create(path, settings)?),
    };
    if let Some(callback) = options.on_event.as_deref_mut() {
        for w in &warnings {
            callback(&Event::Warning(w.clone()));
        }
    }

    let (work_tx, work_rx) = mpsc::channel::<WorkItem>();
    let (done_tx, done_rx) = mpsc::channel::<(u64, Finished)>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (rx, tx, objective) = (
                Arc::clone(&work_rx),
                done_tx.clone(),
                Arc::clone(&objective),
            );
            scope.spawn(move || worker(&*objective, &rx, &tx));
        }
        drop(done_tx);
        let mut master = Master {
            settings,
            ladder,
            model: Model::new(settings.space.clone(), settings.model.clone()),
            brackets: Vec::new(),
            jobs: Vec::new(),
            running: VecDeque::new(),
            arrived: HashMap::new(),
            replay,
            replay_order,
            journal,
            work_tx: Some(work_tx),
            done_rx,
            max_failures: options.max_failures,
            on_event: options.on_event,
            outcome: TuneOutcome {
                evaluations: Vec::new(),
                trajectory: Vec::new(),
                incumbent: None,
                failures: 0,
                total_budget: 0.0,
                warnings,
            },
        };
        let result = master.schedule();
        // Whatever happened, let running jobs finish and journal them, so a
        // stopped run loses no work.
        master.work_tx = None;
        while master
            .running
            .iter()
            .any(|j| !master.arrived.contains_key(j))
        {
            if master.receive().is_err() {
                break;
            }
        }
        let mut outcome = master.outcome;
        outcome.evaluations.sort_by_key(|e| e.job);
        result.map(|()| outcome)
    })
}

fn validate(settings: &TuneSettings) -> Result<()> {
    let m = &settings.model;
    let problems = [
        (settings.workers == 0, "workers must be at least 1"),
        (settings.iterations == 0, "iterations must be at least 1"),
        (
            m.top_n_percent == 0 || m.top_n_percent >= 100,
            "top_n_percent must be in 1..=99",
        ),
        (m.num_samples == 0, "num_samples must be at least 1"),
        (
            !(0.0..=1.0).contains(&m.random_fraction),
            "random_fraction must be in [0, 1]",
        ),
        (
            !(m.bandwidth_factor.is_finite() && m.bandwidth_factor > 0.0),
            "bandwidth_factor must be positive",
        ),
        (
            !(m.min_bandwidth.is_finite() && m.min_bandwidth > 0.0),
            "min_bandwidth must be positive",
        ),
    ];
    match problems.iter().find(|(bad, _)| *bad) {
        Some((_, why)) => Err(Error::Invalid(why.to_string())),
        None => budget_ladder(settings.min_budget, settings.max_budget, settings.eta).map(|_| ()),
    }
}

pub(super) fn check_same_settings(old: &TuneSettings, new: &TuneSettings) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let old_json = serde_json::to_value(old).unwrap_or_default();
    let new_json = serde_json::to_value(new).unwrap_or_default();
    let differing: Vec<String> = match (old_json, new_json) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => a
            .iter()
            .filter(|(k, v)| b.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: journal has {v}, this run has {}",
                    b.get(k).cloned().unwrap_or_default()
                )
            })
            .collect(),
        _ => vec![],
    };
    Err(Error::Invalid(format!(
        "cannot resume: the journal was written with other settings ({})",
        differing.join("; ")
    )))
}

fn worker(
    objective: &dyn Objective,
    jobs: &Mutex<mpsc::Receiver<WorkItem>>,
    done: &mpsc::Sender<(u64, Finished)>,
) {
    loop {
        // The lock only guards taking a job; a poisoned lock cannot happen
        // because evaluation panics are caught below.
        let item = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(item) = item else { return };
        let (loss, seconds) = evaluate_one(objective, &item.config, item.budget, &item.ctx);
        let finished = Finished {
            loss,
            seconds,
            replayed: false,
        };
        if done.send((item.job, finished)).is_err() {
            return;
        }
    }
}

/// One evaluation, its panics and non-finite losses turned into failures;
/// returns the loss (or why it failed) and the seconds it took.
pub(super) fn evaluate_one(
    objective: &dyn Objective,
    config: &Config,
    budget: f64,
    ctx: &EvalContext,
) -> (std::result::Result<f64, String>, f64) {
    let start = Instant::now();
    let loss = match catch_unwind(AssertUnwindSafe(|| objective.evaluate(config, budget, ctx))) {
        Ok(Ok(r)) if r.loss.is_finite() => Ok(r.loss),
        Ok(Ok(r)) => Err(format!("non-finite loss {}", r.loss)),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(format!(
            "the evaluation panicked: {}",
            panic_message(&panic)
        )),
    };
    (loss, start.elapsed().as_secs_f64())
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Applies job `job`'s result to BOHB's state, the same in one process and
/// in a shared study: the stage's loss, the model's observation, the budget
/// spent, the failures or the incumbent and its trajectory, and the
/// evaluation record (returned too).
pub(super) fn apply_result(
    brackets: &mut [Bracket],
    model: &mut Model,
    outcome: &mut TuneOutcome,
    job: &JobSpec,
    finished: &Finished,
) -> Evaluation {
    let loss = finished.loss.as_ref().ok().copied();
    brackets[job.bracket].current.losses[job.slot] = Some(loss);
    model.observe(&job.config, job.budget, loss);
    outcome.total_budget += job.budget;
    match loss {
        None => outcome.failures += 1,
        Some(loss) => {
            if Incumbent::beaten_by(outcome.incumbent.as_ref(), job.budget, loss) {
                outcome.incumbent = Some(Incumbent {
                    job: job.job,
                    config: job.config.clone(),
                    budget: job.budget,
                    loss,
                });
                outcome.trajectory.push(TrajectoryPoint {
                    cumulative_budget: outcome.total_budget,
                    loss,
                    job: job.job,
                });
            }
        }
    }
    let evaluation = Evaluation {
        job: job.job,
        bracket: job.bracket,
        stage: job.stage,
        budget: job.budget,
        origin: job.origin,
        config: job.config.clone(),
        loss,
        error: finished.loss.as_ref().err().cloned(),
        seconds: finished.seconds,
        replayed: finished.replayed,
    };
    outcome.evaluations.push(evaluation.clone());
    evaluation
}

struct Master<'a, 'e> {
    settings: &'a TuneSettings,
    ladder: Vec<f64>,
    model: Model,
    brackets: Vec<Bracket>,
    jobs: Vec<JobSpec>,
    /// Jobs handed out and not yet applied, oldest first.
    running: VecDeque<u64>,
    /// Results that came back (or were replayed) and wait for their turn.
    arrived: HashMap<u64, Finished>,
    replay: HashMap<u64, Replay>,
    /// Under [`Schedule::Async`], the journal's results still to be applied,
    /// in the order the killed run applied them.
    replay_order: VecDeque<u64>,
    journal: Option<Journal>,
    work_tx: Option<mpsc::Sender<WorkItem>>,
    done_rx: mpsc::Receiver<(u64, Finished)>,
    max_failures: Option<usize>,
    on_event: Option<&'e mut dyn FnMut(&Event)>,
    outcome: TuneOutcome,
}

impl Master<'_, '_> {
    fn emit(&mut self, event: Event) {
        if let Some(callback) = self.on_event.as_deref_mut() {
            callback(&event);
        }
    }

    /// The loop: hand out work while a worker is free and work exists
    /// (starting the next bracket when the open ones wait), otherwise apply
    /// the next result the schedule calls for.
    fn schedule(&mut self) -> Result<()> {
        loop {
            if self.running.len() < self.settings.workers {
                if let Some((bracket, slot, propose)) = self.next_run() {
                    self.dispatch(bracket, slot, propose)?;
                    continue;
                }
            }
            match self.next_result()? {
                Some(job) => self.apply(job)?,
                None => return Ok(()),
            }
        }
    }

    /// The running job whose result is applied next (waiting for it), or
    /// `None` when nothing runs.
    fn next_result(&mut self) -> Result<Option<u64>> {
        let Some(&oldest) = self.running.front() else {
            return Ok(None);
        };
        match self.settings.schedule {
            Schedule::Ordered => {
                while !self.arrived.contains_key(&oldest) {
                    self.receive()?;
                }
                Ok(Some(oldest))
            }
            Schedule::Async => match self.replay_order.pop_front() {
                Some(job) if self.running.contains(&job) => Ok(Some(job)),
                Some(job) => Err(Error::Invalid(format!(
                    "cannot resume: the journal applies the result of job {job} while this run \
                     has not handed it out; the journal was written by different code or settings"
                ))),
                None => self.receive().map(Some),
            },
        }
    }

    fn next_run(&mut self) -> Option<(usize, usize, bool)> {
        next_run(
            &mut self.brackets,
            &self.ladder,
            self.settings.eta,
            self.settings.iterations,
        )
    }

    fn planned(&self) -> usize {
        planned_jobs(&self.ladder, self.settings.eta, self.settings.iterations)
    }

    fn dispatch(&mut self, b: usize, slot: usize, propose: bool) -> Result<()> {
        let id = self.jobs.len() as u64;
        let bracket = &mut self.brackets[b];
        if propose {
            let mut rng = Rng::stream(self.settings.seed, id);
            let proposal = self.model.propose(&mut rng);
            bracket.configs.push(proposal);
            bracket.current.members.push(bracket.configs.len() - 1);
            bracket.current.losses.push(None);
        }
        bracket.current.sent += 1;
        let stage = bracket.stage;
        let budget = bracket.plan.budgets[stage];
        let (config, proposed_origin) = bracket.configs[bracket.current.members[slot]].clone();
        let origin = if stage == 0 {
            proposed_origin
        } else {
            Origin::Promoted
        };
        let proposal = Record::Proposal {
            job: id,
            bracket: b,
            stage,
            budget,
            origin,
            config: config.clone(),
        };
        let replayed = self.replay.remove(&id).unwrap_or_default();
        match replayed.proposal {
            Some(recorded) if recorded != proposal => {
                return Err(Error::Invalid(format!(
                    "cannot resume: job {id} in the journal is {} but this run proposes {}; \
                     the journal was written by different code or settings",
                    serde_json::to_string(&recorded).unwrap_or_default(),
                    serde_json::to_string(&proposal).unwrap_or_default()
                )));
            }
            Some(_) => {}
            None => self.journal_append(&proposal)?,
        }
        self.jobs.push(JobSpec {
            job: id,
            bracket: b,
            stage,
            slot,
            budget,
            origin,
            config: config.clone(),
        });
        self.running.push_back(id);
        match replayed.result {
            Some(finished) => {
                self.arrived.insert(id, finished);
            }
            None => {
                let ctx = EvalContext {
                    job: id,
                    bracket: b,
                    stage,
                    seed: eval_seed(self.settings.seed, id),
                };
                let item = WorkItem {
                    job: id,
                    config,
                    budget,
                    ctx,
                };
                let sender = self
                    .work_tx
                    .as_ref()
                    .expect("the work channel is open while scheduling");
                sender
                    .send(item)
                    .map_err(|_| Error::Invalid("all tuning workers stopped".into()))?;
            }
        }
        let running = self.running.len();
        self.emit(Event::Started {
            job: id,
            bracket: b,
            stage,
            budget,
            running,
        });
        Ok(())
    }

    fn journal_append(&mut self, record: &Record) -> Result<()> {
        match self.journal.as_mut() {
            Some(journal) => journal.append(record),
            None => Ok(()),
        }
    }

    /// Waits for one result from the workers, journals it and returns its job.
    fn receive(&mut self) -> Result<u64> {
        let busy = self
            .running
            .iter()
            .filter(|j| !self.arrived.contains_key(j))
            .count();
        self.emit(Event::Waiting { busy });
        let (job, finished) = self
            .done_rx
            .recv()
            .map_err(|_| Error::Invalid("all tuning workers stopped".into()))?;
        let (status, loss, error) = match &finished.loss {
            Ok(l) => (Status::Ok, Some(*l), None),
            Err(e) => (Status::Failed, None, Some(e.clone())),
        };
        let record = Record::Result {
            job,
            status,
            loss,
            seconds: finished.seconds,
            error,
        };
        self.arrived.insert(job, finished);
        self.journal_append(&record)?;
        Ok(job)
    }

    /// Applies the result of running job `id`, which has arrived.
    fn apply(&mut self, id: u64) -> Result<()> {
        let finished = self
            .arrived
            .remove(&id)
            .expect("next_result returns arrived jobs");
        self.running.retain(|&j| j != id);
        let job = &self.jobs[id as usize];
        debug_assert_eq!(
            self.brackets[job.bracket].stage, job.stage,
            "a stage cannot advance before its results"
        );
        let evaluation = apply_result(
            &mut self.brackets,
            &mut self.model,
            &mut self.outcome,
            job,
            &finished,
        );
        let event = Event::Finished {
            evaluation,
            running: self.running.len(),
            finished: self.outcome.evaluations.len(),
            planned: self.planned(),
            incumbent: self.outcome.incumbent.clone(),
        };
        self.emit(event);
        if let Some(limit) = self.max_failures {
            if self.outcome.failures >= limit {
                let last = finished.loss.err().unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "stopping: {} evaluations failed (--max-failures {limit}); the last failure: {last}",
                    self.outcome.failures
                )));
            }
        }
        Ok(())
    }
}

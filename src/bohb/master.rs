//! The master: Hyperband brackets fed by the model, evaluated on worker
//! threads, journalled, resumable.

use super::bracket::{Bracket, Next};
use super::hyperband::{bracket_plan, budget_ladder};
use super::journal::{Journal, Record, Status, JOURNAL_VERSION};
use super::model::{Model, ModelSettings, Origin};
use super::rng::Rng;
use super::space::{Config, Space};
use super::{EvalContext, Objective};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

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

#[derive(Clone, Debug, Serialize)]
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

struct Job {
    bracket: usize,
    stage: usize,
    slot: usize,
    budget: f64,
    origin: Origin,
    config: Config,
}

struct Finished {
    loss: std::result::Result<f64, String>,
    seconds: f64,
    replayed: bool,
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

fn check_same_settings(old: &TuneSettings, new: &TuneSettings) -> Result<()> {
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
        let start = Instant::now();
        let loss = match catch_unwind(AssertUnwindSafe(|| {
            objective.evaluate(&item.config, item.budget, &item.ctx)
        })) {
            Ok(Ok(r)) if r.loss.is_finite() => Ok(r.loss),
            Ok(Ok(r)) => Err(format!("non-finite loss {}", r.loss)),
            Ok(Err(message)) => Err(message),
            Err(panic) => Err(format!(
                "the evaluation panicked: {}",
                panic_message(&panic)
            )),
        };
        let finished = Finished {
            loss,
            seconds: start.elapsed().as_secs_f64(),
            replayed: false,
        };
        if done.send((item.job, finished)).is_err() {
            return;
        }
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

struct Master<'a, 'e> {
    settings: &'a TuneSettings,
    ladder: Vec<f64>,
    model: Model,
    brackets: Vec<Bracket>,
    jobs: Vec<Job>,
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
        for (b, bracket) in self.brackets.iter_mut().enumerate() {
            if let Next::Run { slot, propose } = bracket.next() {
                return Some((b, slot, propose));
            }
        }
        if self.brackets.len() < self.settings.iterations {
            let plan = bracket_plan(&self.ladder, self.settings.eta, self.brackets.len());
            self.brackets.push(Bracket::new(plan));
            let b = self.brackets.len() - 1;
            if let Next::Run { slot, propose } = self.brackets[b].next() {
                return Some((b, slot, propose));
            }
        }
        None
    }

    fn planned(&self) -> usize {
        (0..self.settings.iterations)
            .map(|i| {
                bracket_plan(&self.ladder, self.settings.eta, i)
                    .sizes
                    .iter()
                    .sum::<usize>()
            })
            .sum()
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
        self.jobs.push(Job {
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
                    seed: Rng::stream(self.settings.seed ^ EVAL_SEED_SALT, id).next_u64(),
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
        let loss = finished.loss.as_ref().ok().copied();
        let bracket = &mut self.brackets[job.bracket];
        debug_assert_eq!(
            bracket.stage, job.stage,
            "a stage cannot advance before its results"
        );
        bracket.current.losses[job.slot] = Some(loss);
        self.model.observe(&job.config, job.budget, loss);
        self.outcome.total_budget += job.budget;
        let evaluation = Evaluation {
            job: id,
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
        match loss {
            None => self.outcome.failures += 1,
            Some(loss) => {
                let better = match &self.outcome.incumbent {
                    None => true,
                    Some(inc) => {
                        job.budget > inc.budget || (job.budget == inc.budget && loss < inc.loss)
                    }
                };
                if better {
                    self.outcome.incumbent = Some(Incumbent {
                        job: id,
                        config: job.config.clone(),
                        budget: job.budget,
                        loss,
                    });
                    self.outcome.trajectory.push(TrajectoryPoint {
                        cumulative_budget: self.outcome.total_budget,
                        loss,
                        job: id,
                    });
                }
            }
        }
        self.outcome.evaluations.push(evaluation.clone());
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

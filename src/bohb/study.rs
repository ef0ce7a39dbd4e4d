//! A shared study as every worker sees it: BOHB's state (brackets, stages,
//! the model's observations, the incumbent) derived from the Optuna-format
//! log alone, entry by entry, so every worker at the same log position holds
//! the same state and makes the same decisions the in-process master would.
//!
//! A BOHB job is one (configuration, budget) evaluation; each attempt at it
//! is one Optuna trial whose system attribute `bohb:job` names the job. A job
//! is resolved by the first attempt, in log order, that ends with a result
//! (COMPLETE, or FAIL from a failed evaluation); an attempt given up because
//! its worker went silent, or finished after the job was resolved, ends FAIL
//! with `bohb:end` saying so and is not a result. So a job has at most one
//! result, and Optuna sees one COMPLETE trial per finished job.

use super::bracket::{next_run, Bracket};
use super::hyperband::{budget_ladder, planned_jobs};
use super::master::{apply_result, check_same_settings, eval_seed, Finished, JobSpec};
use super::model::{Model, Origin};
use super::optuna_log::{self as op, TrialState};
use super::rng::Rng;
use super::space::Config;
use super::types::{TuneOutcome, TuneSettings};
use super::EvalContext;
use crate::{Error, Result};
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};

/// Study system attribute holding the [`TuneSettings`].
const SETTINGS_ATTR: &str = "bohb:settings";
/// Trial system attribute naming the job an attempt works on.
const JOB_ATTR: &str = "bohb:job";
/// Trial system attribute refreshed by the attempt's worker while it evaluates.
const HEARTBEAT_ATTR: &str = "bohb:heartbeat";
/// Trial system attribute set before an attempt ends FAIL without a result.
const END_ATTR: &str = "bohb:end";
/// Study system attribute a worker sets when it is told to wait (its value
/// names the worker); appended only onto the log position the worker decided
/// on, so the log shows what the worker saw when it went idle.
const IDLE_ATTR: &str = "bohb:idle";

struct Job {
    spec: JobSpec,
    /// Optuna trial ids of its attempts, oldest first.
    attempts: Vec<usize>,
    /// The attempt whose result was applied.
    resolved_by: Option<usize>,
}

/// One attempt (an Optuna trial of this study).
pub struct Attempt {
    pub trial: usize,
    pub job: u64,
    pub worker: String,
    pub state: TrialState,
    /// Why it ended without a result (`abandoned`, `superseded`).
    pub end: Option<String>,
    pub error: Option<String>,
    pub seconds: f64,
    /// When this process last saw the attempt's worker write (local clock:
    /// no clock agreement between machines is needed).
    pub last_seen: Instant,
    /// The worker's own time (UTC) of its last heartbeat, for people to read.
    pub last_beat: Option<String>,
}

/// What a worker should do next.
pub enum Action {
    /// Every planned job has its result.
    Done,
    /// All runnable work is claimed by live workers: poll again later.
    Wait,
    /// Append `entries` (a claim of `job` as Optuna trial `trial`) and, once
    /// they are in the log, evaluate.
    Claim {
        entries: Vec<Json>,
        job: u64,
        trial: usize,
    },
}

/// Something a worker can evaluate: the job of a claimed attempt.
pub struct Claimed {
    pub config: Config,
    pub budget: f64,
    pub ctx: EvalContext,
}

#[derive(Default)]
pub struct StudyView {
    name: Option<String>,
    settings: Option<TuneSettings>,
    ladder: Vec<f64>,
    model: Option<Model>,
    brackets: Vec<Bracket>,
    jobs: Vec<Job>,
    /// Optuna's trial ids count the trials of every study in the log.
    trials: Vec<Option<Attempt>>,
    outcome: TuneOutcome,
    entries: usize,
    /// Entries that can change what is runnable (all but heartbeats and idle records).
    changes: usize,
    idle: IdleCount,
}

/// The log's idle records: a worker asked for a job and was told to wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdleCount {
    pub records: usize,
    /// Of those, records at a log position where a job was runnable: BOHB
    /// could hand one out (the study's `--workers` bound aside), or an
    /// unresolved job had no RUNNING attempt. An idle hand-out while work
    /// existed; 0 when the schedule wastes no worker.
    pub while_work_existed: usize,
}

fn bad(entry: usize, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("study log entry {}: {why}", entry + 1))
}

fn field<'a>(entry: &'a Json, key: &str, at: usize) -> Result<&'a Json> {
    entry
        .get(key)
        .ok_or_else(|| bad(at, format!("expected a \"{key}\" field in {entry}")))
}

fn index(entry: &Json, key: &str, at: usize) -> Result<usize> {
    field(entry, key, at)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| bad(at, format!("\"{key}\" must be a non-negative integer")))
}

impl StudyView {
    pub fn settings(&self) -> Option<&TuneSettings> {
        self.settings.as_ref()
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn outcome(&self) -> TuneOutcome {
        let mut outcome = self.outcome.clone();
        outcome.evaluations.sort_by_key(|e| e.job);
        outcome
    }

    pub fn attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.trials.iter().flatten()
    }

    /// Whether job `job` still waits for its result.
    pub fn is_open(&self, job: u64) -> bool {
        self.jobs
            .get(job as usize)
            .is_some_and(|j| j.resolved_by.is_none())
    }

    /// Jobs handed out so far.
    pub fn jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Upper bound on the study's evaluations (fewer when results fail).
    pub fn planned(&self) -> usize {
        self.settings
            .as_ref()
            .map_or(0, |s| planned_jobs(&self.ladder, s.eta, s.iterations))
    }

    /// Applies entries read from the log, in order.
    pub fn apply_all(&mut self, entries: Vec<Json>) -> Result<()> {
        for entry in entries {
            if self.apply(&entry)? {
                self.changes += 1;
            }
            self.entries += 1;
        }
        Ok(())
    }

    /// How many entries so far can change what is runnable: a worker that
    /// waited at this count has nothing new to decide on.
    pub fn changes(&self) -> usize {
        self.changes
    }

    pub fn idle(&self) -> IdleCount {
        self.idle
    }

    /// Whether the log read so far holds a job a free worker could take:
    /// one BOHB would hand out next, or an unresolved job that no RUNNING
    /// attempt works on. (A silent attempt's staleness is a matter of the
    /// reader's clock, not of the log, so it does not count.)
    fn work_exists(&self) -> bool {
        let Some(s) = &self.settings else {
            return false;
        };
        let mut brackets = self.brackets.clone();
        next_run(&mut brackets, &self.ladder, s.eta, s.iterations).is_some()
            || self.jobs.iter().any(|j| {
                j.resolved_by.is_none()
                    && !j.attempts.iter().any(|&t| {
                        self.trials[t]
                            .as_ref()
                            .is_some_and(|a| a.state == TrialState::Running)
                    })
            })
    }

    /// Applies one entry; `false` for a heartbeat or an idle record (they
    /// change nothing BOHB decides on).
    fn apply(&mut self, entry: &Json) -> Result<bool> {
        let at = self.entries;
        let code = field(entry, "op_code", at)?
            .as_u64()
            .ok_or_else(|| bad(at, "\"op_code\" must be an integer"))?;
        match code {
            op::CREATE_STUDY if self.name.is_none() => {
                let name = field(entry, "study_name", at)?;
                self.name = Some(name.as_str().unwrap_or_default().to_string());
            }
            op::SET_STUDY_SYSTEM_ATTR if index(entry, "study_id", at)? == 0 => {
                let attr = field(entry, "system_attr", at)?;
                if let Some(value) = attr.get(SETTINGS_ATTR) {
                    self.set_settings(value, at)?;
                }
                if attr.get(IDLE_ATTR).is_some() {
                    self.idle.records += 1;
                    if self.work_exists() {
                        self.idle.while_work_existed += 1;
                    }
                    return Ok(false);
                }
            }
            op::CREATE_TRIAL => self.create_trial(entry, at)?,
            op::SET_TRIAL_STATE_VALUES => {
                let trial = index(entry, "trial_id", at)?;
                let state = index(entry, "state", at)? as u64;
                let loss = entry
                    .get("values")
                    .and_then(|v| v.get(0))
                    .and_then(Json::as_f64);
                if let Some(state) = TrialState::from_code(state) {
                    self.set_state(trial, state, loss, at)?;
                }
            }
            op::SET_TRIAL_USER_ATTR => {
                let trial = index(entry, "trial_id", at)?;
                let attr = field(entry, "user_attr", at)?;
                if let Some(a) = self.running_attempt(trial) {
                    if let Some(error) = attr.get("error").and_then(Json::as_str) {
                        a.error = Some(error.to_string());
                    }
                    if let Some(seconds) = attr.get("seconds").and_then(Json::as_f64) {
                        a.seconds = seconds;
                    }
                    a.last_seen = Instant::now();
                }
            }
            op::SET_TRIAL_SYSTEM_ATTR => {
                let trial = index(entry, "trial_id", at)?;
                let attr = field(entry, "system_attr", at)?.clone();
                let beat = attr.get(HEARTBEAT_ATTR).and_then(Json::as_str);
                if let Some(a) = self.running_attempt(trial) {
                    a.last_seen = Instant::now();
                    if let Some(end) = attr.get(END_ATTR).and_then(Json::as_str) {
                        a.end = Some(end.to_string());
                    }
                    if let Some(beat) = beat {
                        a.last_beat = Some(beat.to_string());
                    }
                }
                if beat.is_some() {
                    return Ok(false);
                }
            }
            // Params are read from `bohb:job` (bit-exact, typed); studies
            // deletion and user attributes change nothing BOHB decides.
            _ => {}
        }
        Ok(true)
    }

    fn set_settings(&mut self, value: &Json, at: usize) -> Result<()> {
        let settings: TuneSettings = serde_json::from_value(value.clone())
            .map_err(|e| bad(at, format!("the study's {SETTINGS_ATTR} do not parse: {e}")))?;
        if let Some(old) = &self.settings {
            return check_same_settings(old, &settings);
        }
        self.ladder = budget_ladder(settings.min_budget, settings.max_budget, settings.eta)?;
        self.model = Some(Model::new(settings.space.clone(), settings.model.clone()));
        self.settings = Some(settings);
        Ok(())
    }

    /// The attempt `trial` while it can still change (Optuna ignores updates
    /// of finished trials, and so does this view).
    fn running_attempt(&mut self, trial: usize) -> Option<&mut Attempt> {
        self.trials
            .get_mut(trial)
            .and_then(Option::as_mut)
            .filter(|a| a.state == TrialState::Running)
    }

    fn create_trial(&mut self, entry: &Json, at: usize) -> Result<()> {
        let trial = self.trials.len();
        let attrs = entry.get("system_attrs");
        let Some(spec) = attrs.and_then(|a| a.get(JOB_ATTR)) else {
            self.trials.push(None); // a trial some other tool added
            return Ok(());
        };
        let spec: JobSpec = serde_json::from_value(spec.clone())
            .map_err(|e| bad(at, format!("{JOB_ATTR} does not parse: {e}")))?;
        let job = spec.job;
        if job as usize == self.jobs.len() {
            self.hand_out(&spec, at)?;
        } else if job as usize > self.jobs.len() {
            return Err(bad(at, format!("job {job} before job {}", self.jobs.len())));
        } else if self.jobs[job as usize].spec != spec {
            return Err(bad(
                at,
                format!("a second attempt at job {job} with another job"),
            ));
        }
        self.jobs[job as usize].attempts.push(trial);
        let worker = entry.get("worker_id").and_then(Json::as_str).unwrap_or("?");
        let state = entry
            .get("state")
            .and_then(Json::as_u64)
            .map_or(Some(TrialState::Running), TrialState::from_code)
            .unwrap_or(TrialState::Running);
        let user = entry.get("user_attrs");
        self.trials.push(Some(Attempt {
            trial,
            job,
            worker: worker.to_string(),
            state: TrialState::Running,
            end: None,
            error: user
                .and_then(|u| u.get("error"))
                .and_then(Json::as_str)
                .map(str::to_string),
            seconds: user
                .and_then(|u| u.get("seconds"))
                .and_then(Json::as_f64)
                .unwrap_or(0.0),
            last_seen: Instant::now(),
            last_beat: None,
        }));
        if state != TrialState::Running {
            let loss = entry.get("value").and_then(Json::as_f64);
            self.set_state(trial, state, loss, at)?;
        }
        Ok(())
    }

    /// A new job: the hand-out the study's state calls for must be this one.
    fn hand_out(&mut self, spec: &JobSpec, at: usize) -> Result<()> {
        let settings = self
            .settings
            .as_ref()
            .ok_or_else(|| bad(at, "a trial before the study's settings"))?;
        let expected = next_run(
            &mut self.brackets,
            &self.ladder,
            settings.eta,
            settings.iterations,
        );
        let Some((b, slot, propose)) = expected else {
            return Err(bad(at, format!("job {} when no job is runnable", spec.job)));
        };
        let bracket = &mut self.brackets[b];
        let budget = bracket.plan.budgets[bracket.stage];
        if (b, slot, bracket.stage, budget) != (spec.bracket, spec.slot, spec.stage, spec.budget) {
            return Err(bad(
                at,
                format!(
                    "job {} runs bracket {} stage {} slot {} at budget {}, but the study's state \
                     hands out bracket {b} stage {} slot {slot} at budget {budget}; the log was \
                     written by different code",
                    spec.job, spec.bracket, spec.stage, spec.slot, spec.budget, bracket.stage
                ),
            ));
        }
        if propose {
            bracket.configs.push((spec.config.clone(), spec.origin));
            bracket.current.members.push(bracket.configs.len() - 1);
            bracket.current.losses.push(None);
        } else if bracket.configs[bracket.current.members[slot]].0 != spec.config {
            return Err(bad(
                at,
                format!("job {} promotes another configuration", spec.job),
            ));
        }
        bracket.current.sent += 1;
        self.jobs.push(Job {
            spec: spec.clone(),
            attempts: Vec::new(),
            resolved_by: None,
        });
        Ok(())
    }

    fn set_state(
        &mut self,
        trial: usize,
        state: TrialState,
        loss: Option<f64>,
        at: usize,
    ) -> Result<()> {
        let Some(attempt) = self.running_attempt(trial) else {
            return Ok(());
        };
        if state == TrialState::Running {
            return Ok(());
        }
        attempt.state = state;
        let is_result = attempt.end.is_none();
        let job = attempt.job as usize;
        let error = attempt.error.clone();
        let seconds = attempt.seconds;
        if !is_result || self.jobs[job].resolved_by.is_some() {
            return Ok(());
        }
        let loss = match state {
            TrialState::Complete => Ok(loss
                .filter(|l| l.is_finite())
                .ok_or_else(|| bad(at, "a COMPLETE trial without a finite value"))?),
            _ => Err(error.unwrap_or_else(|| "failed (no message recorded)".into())),
        };
        self.jobs[job].resolved_by = Some(trial);
        let model = self.model.as_mut().expect("a study with jobs has settings");
        let finished = Finished {
            loss,
            seconds,
            replayed: false,
        };
        apply_result(
            &mut self.brackets,
            model,
            &mut self.outcome,
            &self.jobs[job].spec,
            &finished,
        );
        Ok(())
    }

    /// The intermediate-value step of `budget`: the budget itself when every
    /// rung is a whole number (epochs), else its rung on the ladder.
    fn step(&self, budget: f64) -> i64 {
        if self.ladder.iter().all(|b| b.fract() == 0.0) {
            budget as i64
        } else {
            self.ladder.iter().position(|&b| b == budget).unwrap_or(0) as i64
        }
    }

    /// The next thing for `worker` to do: take over an attempt silent for
    /// longer than `heartbeat`, else hand out the next runnable job while
    /// fewer than the study's `workers` jobs are open, else wait.
    pub fn next_action(&mut self, worker: &str, heartbeat: Duration) -> Result<Action> {
        let Some(settings) = self.settings.clone() else {
            return Err(Error::Invalid(
                "the study has no settings yet; create it with `convformer tune --storage URL`"
                    .into(),
            ));
        };
        let trial = self.trials.len();
        if let Some((job, stale)) = self.stale_job(heartbeat) {
            let spec = self.jobs[job].spec.clone();
            let mut entries = Vec::new();
            if let Some(stale) = stale {
                entries.push(op::set_system_attr(
                    worker,
                    stale,
                    END_ATTR,
                    json!("abandoned"),
                ));
                entries.push(op::set_state(worker, stale, TrialState::Fail, None));
            }
            entries.extend(self.claim_entries(worker, trial, &spec, &settings));
            return Ok(Action::Claim {
                entries,
                job: spec.job,
                trial,
            });
        }
        // The study's --workers bounds the jobs running at once, as in one
        // process; with 1 the study is the in-process run, however its
        // workers come and go.
        let open = self.jobs.iter().filter(|j| j.resolved_by.is_none()).count();
        if open >= settings.workers {
            return Ok(Action::Wait);
        }
        let Some((b, slot, propose)) = next_run(
            &mut self.brackets,
            &self.ladder,
            settings.eta,
            settings.iterations,
        ) else {
            let unresolved = self.jobs.iter().any(|j| j.resolved_by.is_none());
            return Ok(if unresolved {
                Action::Wait
            } else {
                Action::Done
            });
        };
        let job = self.jobs.len() as u64;
        let bracket = &self.brackets[b];
        let (config, origin) = if propose {
            let model = self.model.as_ref().expect("settings come with a model");
            model.propose(&mut Rng::stream(settings.seed, job))
        } else {
            (
                bracket.configs[bracket.current.members[slot]].0.clone(),
                Origin::Promoted,
            )
        };
        let spec = JobSpec {
            job,
            bracket: b,
            stage: bracket.stage,
            slot,
            budget: bracket.plan.budgets[bracket.stage],
            origin: if bracket.stage == 0 {
                origin
            } else {
                Origin::Promoted
            },
            config,
        };
        Ok(Action::Claim {
            entries: self.claim_entries(worker, trial, &spec, &settings),
            job,
            trial,
        })
    }

    /// An unresolved job whose latest attempt is silent (with that attempt),
    /// or that has no live attempt at all.
    fn stale_job(&self, heartbeat: Duration) -> Option<(usize, Option<usize>)> {
        self.jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.resolved_by.is_none())
            .find_map(|(i, j)| {
                let live: Vec<&Attempt> = j
                    .attempts
                    .iter()
                    .filter_map(|&t| self.trials[t].as_ref())
                    .filter(|a| a.state == TrialState::Running)
                    .collect();
                match live.iter().max_by_key(|a| a.last_seen) {
                    None => Some((i, None)),
                    Some(a) if a.last_seen.elapsed() > heartbeat => Some((i, Some(a.trial))),
                    Some(_) => None,
                }
            })
    }

    fn claim_entries(
        &self,
        worker: &str,
        trial: usize,
        spec: &JobSpec,
        settings: &TuneSettings,
    ) -> Vec<Json> {
        let mut entries = vec![op::create_running_trial(
            worker,
            json!({ JOB_ATTR: spec }),
            user_attrs(spec),
        )];
        entries.extend(op::set_params(worker, trial, &settings.space, &spec.config));
        entries
    }

    /// The job attempt `trial` (claimed by this worker) evaluates.
    pub fn claimed(&self, trial: usize, worker: &str) -> Option<Claimed> {
        let attempt = self.trials.get(trial)?.as_ref()?;
        if attempt.worker != worker || attempt.state != TrialState::Running {
            return None;
        }
        let spec = &self.jobs[attempt.job as usize].spec;
        let seed = self.settings.as_ref()?.seed;
        Some(Claimed {
            config: spec.config.clone(),
            budget: spec.budget,
            ctx: EvalContext {
                job: spec.job,
                bracket: spec.bracket,
                stage: spec.stage,
                seed: eval_seed(seed, spec.job),
            },
        })
    }

    /// What to append for attempt `trial`'s outcome, given the log so far:
    /// its result while the job is open (as a new trial if the attempt was
    /// given up meanwhile), a superseded mark if another attempt resolved the
    /// job first, nothing if that mark is already there.
    pub fn finish_entries(
        &self,
        worker: &str,
        trial: usize,
        loss: &std::result::Result<f64, String>,
        seconds: f64,
    ) -> Vec<Json> {
        let Some(attempt) = self.trials.get(trial).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let job = &self.jobs[attempt.job as usize];
        let running = attempt.state == TrialState::Running;
        if job.resolved_by.is_some() {
            return if running {
                vec![
                    op::set_system_attr(worker, trial, END_ATTR, json!("superseded")),
                    op::set_state(worker, trial, TrialState::Fail, None),
                ]
            } else {
                Vec::new()
            };
        }
        let step = self.step(job.spec.budget);
        if !running {
            let settings = self
                .settings
                .as_ref()
                .expect("a study with jobs has settings");
            let mut user = user_attrs(&job.spec);
            user["seconds"] = json!(seconds);
            let (state, value) = match loss {
                Ok(l) => (TrialState::Complete, Some(*l)),
                Err(e) => {
                    user["error"] = json!(e);
                    (TrialState::Fail, None)
                }
            };
            return vec![op::create_finished_trial(
                worker,
                &settings.space,
                &job.spec.config,
                json!({ JOB_ATTR: job.spec }),
                user,
                state,
                value,
                step,
            )];
        }
        let mut entries = vec![op::set_user_attr(worker, trial, "seconds", json!(seconds))];
        match loss {
            Ok(l) => {
                entries.push(op::set_intermediate(worker, trial, step, *l));
                entries.push(op::set_state(worker, trial, TrialState::Complete, Some(*l)));
            }
            Err(e) => {
                entries.push(op::set_user_attr(worker, trial, "error", json!(e)));
                entries.push(op::set_state(worker, trial, TrialState::Fail, None));
            }
        }
        entries
    }

    /// The entries that create this study (its name and settings).
    pub fn create_entries(worker: &str, name: &str, settings: &TuneSettings) -> Result<Vec<Json>> {
        let value = serde_json::to_value(settings)
            .map_err(|e| Error::Invalid(format!("cannot encode the settings: {e}")))?;
        Ok(vec![
            op::create_study(worker, name),
            op::set_study_system_attr(worker, SETTINGS_ATTR, value),
        ])
    }

    /// The record of `worker` being told to wait.
    pub fn idle_entry(worker: &str) -> Json {
        op::set_study_system_attr(worker, IDLE_ATTR, json!(worker))
    }

    /// A heartbeat of attempt `trial`.
    pub fn heartbeat_entry(worker: &str, trial: usize) -> Json {
        op::set_system_attr(worker, trial, HEARTBEAT_ATTR, json!(op::now_iso()))
    }

    /// Job, bracket, stage and budget of an attempt, for the user (the dashboard).
    pub fn job_of(&self, attempt: &Attempt) -> (u64, usize, usize, f64) {
        let s = &self.jobs[attempt.job as usize].spec;
        (s.job, s.bracket, s.stage, s.budget)
    }
}

/// The user attributes Optuna's dashboard shows for an attempt.
fn user_attrs(spec: &JobSpec) -> Json {
    json!({"bohb_job": spec.job, "bohb_bracket": spec.bracket, "bohb_stage": spec.stage,
           "budget": spec.budget, "origin": spec.origin})
}

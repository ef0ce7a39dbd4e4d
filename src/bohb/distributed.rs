//! BOHB without a coordinator: any number of worker processes, on any
//! machines, share one study log ([`log_store`](super::log_store)). Each
//! worker derives the study's state from the log ([`StudyView`]), claims the
//! next runnable job by appending its attempt, evaluates it while appending
//! heartbeats, and appends the result. The schedule is the async one: a
//! result counts the moment it is in the log, and a free worker at once takes
//! the next runnable job.

use super::log_store::LogStore;
use super::master::evaluate_one;
use super::study::{Action, StudyView};
use super::types::{TuneOutcome, TuneSettings};
use super::Objective;
use crate::{Error, Result};
use std::sync::mpsc;
use std::time::Duration;

/// How a worker behaves.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Unique in the study: Optuna's `worker_id` of every entry it writes.
    pub worker_id: String,
    /// An attempt whose worker wrote nothing for this long is claimable again.
    pub heartbeat: Duration,
    /// How long to sleep when all runnable work is claimed.
    pub poll: Duration,
}

impl WorkerOptions {
    /// Options with a worker id unique across machines and processes.
    pub fn new(heartbeat: Duration, thread: usize) -> WorkerOptions {
        WorkerOptions {
            worker_id: worker_id(thread),
            heartbeat,
            poll: (heartbeat / 20).clamp(Duration::from_millis(5), Duration::from_millis(500)),
        }
    }
}

/// `host-pid-thread-nanos`: distinct for every worker that ever writes.
fn worker_id(thread: usize) -> String {
    let host = super::log_store::hostname();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{thread}-{nanos:08x}", std::process::id())
}

/// What one worker did.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    pub worker_id: String,
    /// Attempts it evaluated to the end.
    pub evaluated: usize,
    /// Of those, results the log kept (the others came after another attempt's).
    pub kept: usize,
    /// Times it found every runnable job claimed and slept.
    pub waits: usize,
    /// The study's outcome as this worker saw it at the end.
    pub outcome: TuneOutcome,
}

/// Reads what the log gained since the last call into `view`.
pub fn sync(store: &mut dyn LogStore, view: &mut StudyView) -> Result<()> {
    let entries = store.read_new()?;
    view.apply_all(entries)
}

/// Creates the study in an empty log, or checks that the log's study was
/// started with `settings` (then this process joins it).
pub fn create_or_join(store: &mut dyn LogStore, name: &str, settings: &TuneSettings) -> Result<()> {
    let mut view = StudyView::default();
    loop {
        sync(store, &mut view)?;
        if let Some(existing) = view.settings() {
            return super::master::check_same_settings(existing, settings)
                .map_err(|e| Error::Invalid(format!("{}: {e}", store.describe())));
        }
        let entries = StudyView::create_entries("convformer", name, settings)?;
        if store.append_if_current(&entries)? {
            return Ok(());
        }
    }
}

/// Runs one worker until every planned job has its result. `on_result` sees
/// each result this worker got into the log, with the study view after it.
pub fn work(
    mut store: Box<dyn LogStore>,
    objective: &dyn Objective,
    options: &WorkerOptions,
    on_result: &mut dyn FnMut(&StudyView, u64),
) -> Result<WorkerReport> {
    let mut view = StudyView::default();
    let mut report = WorkerReport {
        worker_id: options.worker_id.clone(),
        evaluated: 0,
        kept: 0,
        waits: 0,
        outcome: TuneOutcome::default(),
    };
    let me = options.worker_id.as_str();
    // The view's change count at this worker's last idle record.
    let mut idle_at = None;
    loop {
        sync(&mut *store, &mut view)?;
        let (entries, job, trial) = match view.next_action(me, options.heartbeat)? {
            Action::Done => break,
            Action::Wait => {
                // Record the wait on the very log position decided on (or
                // decide again on the longer log); once per state waited on.
                if idle_at != Some(view.changes()) {
                    if !store.append_if_current(&[StudyView::idle_entry(me)])? {
                        continue;
                    }
                    idle_at = Some(view.changes());
                }
                report.waits += 1;
                std::thread::sleep(options.poll);
                continue;
            }
            Action::Claim {
                entries,
                job,
                trial,
            } => (entries, job, trial),
        };
        if !store.append_if_current(&entries)? {
            continue; // another worker wrote first: decide again on the longer log
        }
        sync(&mut *store, &mut view)?;
        let claimed = view.claimed(trial, me).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: the claim of job {job} is not in the log as trial {trial}",
                store.describe()
            ))
        })?;
        let (loss, seconds) = with_heartbeat(&*store, me, trial, options.heartbeat, || {
            evaluate_one(objective, &claimed.config, claimed.budget, &claimed.ctx)
        })?;
        report.evaluated += 1;
        loop {
            sync(&mut *store, &mut view)?;
            let entries = view.finish_entries(me, trial, &loss, seconds);
            let is_result = view.is_open(job);
            if entries.is_empty() || store.append_if_current(&entries)? {
                if is_result && !entries.is_empty() {
                    report.kept += 1;
                    sync(&mut *store, &mut view)?;
                    on_result(&view, job);
                }
                break;
            }
        }
    }
    report.outcome = view.outcome();
    Ok(report)
}

/// Runs `evaluate` while a second thread appends a heartbeat of `trial`
/// every third of `heartbeat`.
fn with_heartbeat<T: Send>(
    store: &dyn LogStore,
    worker: &str,
    trial: usize,
    heartbeat: Duration,
    evaluate: impl FnOnce() -> T,
) -> Result<T> {
    let mut beats = store.reopen()?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let beater = scope.spawn(move || -> Result<()> {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(heartbeat / 3) {
                beats.append(&[StudyView::heartbeat_entry(worker, trial)])?;
            }
            Ok(())
        });
        let value = evaluate();
        drop(stop);
        beater
            .join()
            .map_err(|_| Error::Invalid("the heartbeat thread panicked".into()))??;
        Ok(value)
    })
}

/// `tune --status`: who works on what, what is done, the incumbent.
pub fn status_text(view: &StudyView) -> String {
    let mut out = String::new();
    let name = view.name().unwrap_or("(unnamed)");
    let outcome = view.outcome();
    out += &format!(
        "study {name}: {} of at most {} evaluations done ({} failed), {} jobs handed out\n",
        outcome.evaluations.len(),
        view.planned(),
        outcome.failures,
        view.jobs()
    );
    for a in view.attempts() {
        if a.state == super::optuna_log::TrialState::Running {
            let (job, bracket, stage, budget) = view.job_of(a);
            out += &format!(
                "running: job {job} (bracket {bracket}, stage {stage}, budget {budget}) as trial {} on {}, last heartbeat {}\n",
                a.trial,
                a.worker,
                a.last_beat.as_deref().map_or("none yet".into(), |b| format!("{b} UTC"))
            );
        }
    }
    let idle = view.idle();
    out += &format!(
        "idle records (a worker told to wait): {}, {} of them while a job was runnable\n",
        idle.records, idle.while_work_existed
    );
    let retried = view
        .attempts()
        .filter(|a| a.end.as_deref() == Some("abandoned"))
        .count();
    if retried > 0 {
        out += &format!("{retried} attempts given up after their worker went silent\n");
    }
    match &outcome.incumbent {
        Some(inc) => {
            out += &format!(
                "incumbent: job {} loss {:.6} at budget {}: {}\n",
                inc.job,
                inc.loss,
                inc.budget,
                serde_json::to_string(&inc.config).unwrap_or_default()
            )
        }
        None => out += "incumbent: none yet\n",
    }
    out
}

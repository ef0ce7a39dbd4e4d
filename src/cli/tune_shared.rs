//! `convformer tune --storage URL [--join]` and `tune --status URL`: BOHB
//! workers sharing one study log (see `bohb::distributed`).
//!
//! ```text
//! convformer tune --storage journal:/shared/study.log --objective counting-ones \
//!     --min-budget 9 --max-budget 729 --iterations 10 --seed 1 --workers 4 --threads 2
//! convformer tune --storage journal:/shared/study.log --objective counting-ones --join --threads 2
//! convformer tune --status journal:/shared/study.log
//! ```

use super::tune::{create_out, objective_for, say, settings_for, write_results, TuneArgs};
use crate::bohb::distributed::{create_or_join, status_text, sync, work, WorkerOptions};
use crate::bohb::storage;
use crate::bohb::study::StudyView;
use crate::{Error, Result};
use std::sync::Mutex;
use std::time::Duration;

/// `convformer tune`: `--status URL`, a shared study in `--storage URL`, or
/// the in-process run.
pub fn dispatch(args: &TuneArgs) -> Result<()> {
    match (&args.status, &args.storage) {
        (Some(url), _) => status(url),
        (None, Some(url)) => execute(args, url),
        (None, None) => super::tune::execute(args),
    }
}

/// Creates or joins the study in `url` and works on it with `--workers`
/// threads until every planned job has its result.
pub fn execute(args: &TuneArgs, url: &str) -> Result<()> {
    if !(args.heartbeat.is_finite() && args.heartbeat > 0.0) {
        return Err(Error::Invalid(format!(
            "--heartbeat must be a positive number of seconds, got {}",
            args.heartbeat
        )));
    }
    let mut store = storage::open(url)?;
    if args.join {
        let mut view = StudyView::default();
        sync(&mut *store, &mut view)?;
        let settings = view.settings().ok_or_else(|| {
            Error::Invalid(format!(
                "{url}: no study to join yet; start it with `convformer tune --storage {url}` and the search flags"
            ))
        })?;
        if settings.objective != args.objective.name() {
            return Err(Error::Invalid(format!(
                "{url}: the study tunes --objective {}, this worker was given {}",
                settings.objective,
                args.objective.name()
            )));
        }
    } else {
        let settings = settings_for(args)?;
        create_or_join(
            &mut *store,
            &format!("convformer-{}", settings.objective),
            &settings,
        )?;
    }
    let threads = args
        .threads
        .unwrap_or(if args.join { 1 } else { args.workers });
    if threads == 0 {
        return Err(Error::Invalid("--threads must be at least 1".into()));
    }
    let objective = objective_for(args)?;
    let heartbeat = Duration::from_secs_f64(args.heartbeat);
    let printed = Mutex::new(());
    say(format_args!(
        "{:>5} {:>7} {:>5} {:>9} {:>12} {:>9} {:>12}  worker",
        "job", "bracket", "stage", "budget", "loss", "finished", "incumbent"
    ));
    let reports = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..threads)
            .map(|t| {
                let (store, objective, printed) = (store.reopen(), &objective, &printed);
                scope.spawn(move || {
                    let options = WorkerOptions::new(heartbeat, t);
                    let id = options.worker_id.clone();
                    let mut line = |view: &StudyView, job: u64| {
                        let outcome = view.outcome();
                        let Some(e) = outcome.evaluations.iter().find(|e| e.job == job) else {
                            return;
                        };
                        let loss = e
                            .loss
                            .map_or_else(|| "failed".into(), |l| format!("{l:.6}"));
                        let inc = outcome
                            .incumbent
                            .as_ref()
                            .map_or_else(|| "-".into(), |i| format!("{:.6}", i.loss));
                        let _guard = printed.lock();
                        say(format_args!(
                            "{:>5} {:>7} {:>5} {:>9.3} {:>12} {:>9} {:>12}  {id}",
                            e.job,
                            e.bracket,
                            e.stage,
                            e.budget,
                            loss,
                            outcome.evaluations.len(),
                            inc
                        ));
                    };
                    work(store?, &**objective, &options, &mut line)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| Error::Invalid("a worker thread panicked".into()))?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let outcome = &reports[0].outcome;
    if let Some(out) = &args.out {
        create_out(out)?;
        write_results(out, outcome)?;
    }
    match &outcome.incumbent {
        Some(best) => say(format_args!(
            "study complete: best loss {:.6} at budget {} (job {}); this process evaluated {}",
            best.loss,
            best.budget,
            best.job,
            reports.iter().map(|r| r.evaluated).sum::<usize>()
        )),
        None => say(format_args!("study complete: no evaluation succeeded")),
    }
    Ok(())
}

/// `tune --status URL`.
pub fn status(url: &str) -> Result<()> {
    let mut store = storage::open(url)?;
    let mut view = StudyView::default();
    sync(&mut *store, &mut view)?;
    if view.settings().is_none() {
        return Err(Error::Invalid(format!("{url}: no study there yet")));
    }
    print!("{}", status_text(&view));
    Ok(())
}

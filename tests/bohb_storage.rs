//! Shared studies over an Optuna journal file (`--storage journal:PATH`):
//! one worker reproduces the in-process run job for job; worker processes
//! (some SIGKILLed at random moments) finish every planned job exactly once;
//! a given-up attempt's late result is kept once; four workers reach the
//! in-process async schedule's final regret over 10 seeds; the real `optuna`
//! package reads the journal and sees what convformer sees.

use convformer::bohb::distributed::{create_or_join, sync, work, WorkerOptions};
use convformer::bohb::objectives::CountingOnes;
use convformer::bohb::optuna_log::TrialState;
use convformer::bohb::rng::Rng;
use convformer::bohb::storage;
use convformer::bohb::study::{Action, StudyView};
use convformer::bohb::{self, ModelSettings, Objective, RunOptions, Schedule, TuneSettings, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_convformer");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bohb-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The CLI's counting ones (8+8) with the default model settings (the CLI's too).
fn settings(seed: u64, workers: usize, max_budget: f64, iterations: usize) -> TuneSettings {
    TuneSettings {
        objective: "counting-ones".into(),
        space: CountingOnes::new(8, 8).space(),
        min_budget: 9.0,
        max_budget,
        eta: 3,
        iterations,
        workers,
        seed,
        schedule: Schedule::Async,
        model: ModelSettings::default(),
    }
}

fn url(log: &Path) -> String {
    format!("journal:{}", log.display())
}

/// A fresh journal-file study URL.
fn file_study(name: &str) -> String {
    url(&scratch(name).join("study.log"))
}

fn create(study: &str, settings: &TuneSettings) {
    let mut store = storage::open(study).unwrap();
    create_or_join(&mut *store, "test-study", settings).unwrap();
}

fn view_of(study: &str) -> StudyView {
    let mut store = storage::open(study).unwrap();
    let mut view = StudyView::default();
    sync(&mut *store, &mut view).unwrap();
    view
}

fn entries(study: &str) -> Vec<Json> {
    storage::open(study).unwrap().read_new().unwrap()
}

/// From the raw log, independently of `StudyView`: per job, the Optuna
/// trials that ended COMPLETE (Optuna ignores updates of finished trials,
/// so only the first end of a trial counts), and the trials that ended FAIL
/// marked abandoned.
struct RawCounts {
    complete: BTreeMap<u64, usize>,
    abandoned: usize,
    /// Attempts that finished after another attempt's result.
    superseded: usize,
    trials: usize,
}

fn raw_counts(study: &str) -> RawCounts {
    let mut job_of = Vec::new();
    let mut ended = Vec::new();
    let mut end_mark: Vec<Option<String>> = Vec::new();
    let mut counts = RawCounts {
        complete: BTreeMap::new(),
        abandoned: 0,
        superseded: 0,
        trials: 0,
    };
    for e in entries(study) {
        let trial = e["trial_id"].as_u64().map(|t| t as usize);
        match e["op_code"].as_u64().unwrap() {
            4 => {
                let job = e["system_attrs"]["bohb:job"]["job"].as_u64().unwrap();
                job_of.push(job);
                let state = e["state"].as_u64().unwrap_or(0);
                ended.push(state != 0);
                end_mark.push(None);
                if state == 1 {
                    *counts.complete.entry(job).or_default() += 1;
                }
            }
            9 if e["system_attr"]["bohb:end"].is_string() => {
                let t = trial.unwrap();
                if !ended[t] {
                    end_mark[t] = e["system_attr"]["bohb:end"].as_str().map(String::from);
                }
            }
            6 => {
                let t = trial.unwrap();
                if !ended[t] {
                    ended[t] = true;
                    match e["state"].as_u64().unwrap() {
                        1 => *counts.complete.entry(job_of[t]).or_default() += 1,
                        3 => match end_mark[t].as_deref() {
                            Some("abandoned") => counts.abandoned += 1,
                            Some("superseded") => counts.superseded += 1,
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    counts.trials = job_of.len();
    counts
}

fn planned(settings: &TuneSettings) -> usize {
    let ladder =
        bohb::hyperband::budget_ladder(settings.min_budget, settings.max_budget, settings.eta)
            .unwrap();
    bohb::hyperband::planned_jobs(&ladder, settings.eta, settings.iterations)
}

fn in_process(settings: &TuneSettings) -> bohb::TuneOutcome {
    let objective: Arc<dyn Objective> = Arc::new(CountingOnes::new(8, 8));
    bohb::run(settings, objective, RunOptions::default()).unwrap()
}

fn join_worker(study: &str, heartbeat: f64, delay_ms: u64) -> Child {
    Command::new(BIN)
        .args([
            "tune",
            "--objective",
            "counting-ones",
            "--join",
            "--threads",
            "1",
        ])
        .args(["--storage", study])
        .args(["--heartbeat", &heartbeat.to_string()])
        .args(["--eval-delay-ms", &delay_ms.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a worker; returns its stderr (warnings).
fn wait_ok(child: Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed: {stderr}");
    stderr
}

/// (job, budget, config, loss) of every evaluation, in job order.
type Evals = Vec<(u64, f64, bohb::Config, Option<f64>)>;

fn evals(outcome: &bohb::TuneOutcome) -> Evals {
    outcome
        .evaluations
        .iter()
        .map(|e| (e.job, e.budget, e.config.clone(), e.loss))
        .collect()
}

fn one_worker_on(log: &str) {
    let s = settings(3, 1, 243.0, 5);
    create(log, &s);
    let options = WorkerOptions::new(Duration::from_secs(30), 0);
    let store = storage::open(log).unwrap();
    let report = work(store, &CountingOnes::new(8, 8), &options, &mut |_, _| {}).unwrap();
    let expected = in_process(&s);
    assert_eq!(report.evaluated, expected.evaluations.len());
    assert_eq!(report.kept, report.evaluated);
    assert_eq!(evals(&report.outcome), evals(&expected));
    assert_eq!(report.outcome.incumbent, expected.incumbent);
    // A fresh reader of the file derives the same study.
    assert_eq!(evals(&view_of(log).outcome()), evals(&expected));
}

fn four_processes_on(log: &str) {
    let s = settings(5, 4, 243.0, 5);
    create(log, &s);
    let children: Vec<Child> = (0..4).map(|_| join_worker(log, 30.0, 3)).collect();
    for (i, c) in children.into_iter().enumerate() {
        wait_ok(c, &format!("worker {i}"));
    }
    let counts = raw_counts(log);
    let n = planned(&s);
    assert_eq!(counts.complete.len(), n, "every planned job has a result");
    assert!(
        counts.complete.values().all(|&c| c == 1),
        "{:?}",
        counts.complete
    );
    assert_eq!(counts.trials, n, "no claim was retried (no worker died)");
    let view = view_of(log);
    let workers: std::collections::BTreeSet<&str> =
        view.attempts().map(|a| a.worker.as_str()).collect();
    assert_eq!(workers.len(), 4, "all four processes evaluated jobs");
    let idle = view.idle();
    println!(
        "4 processes: {n} jobs, each finished once; told to wait {} times, {} of them while a job was runnable; jobs per worker:",
        idle.records, idle.while_work_existed
    );
    assert!(idle.records > 0, "BOHB's stage barriers make workers wait");
    assert_eq!(
        idle.while_work_existed, 0,
        "an idle hand-out while work existed"
    );
    for w in &workers {
        println!(
            "  {w}: {}",
            view.attempts().filter(|a| a.worker == *w).count()
        );
    }
}

fn sigkill_on(log: &str) {
    let s = settings(11, 4, 243.0, 5);
    create(log, &s);
    let mut rng = Rng::new(0x51_61_4b);
    let mut children: Vec<Child> = (0..4).map(|_| join_worker(log, 0.5, 40)).collect();
    for (victim, child) in children.iter_mut().take(2).enumerate() {
        let pause = 50 + rng.below(300) as u64;
        std::thread::sleep(Duration::from_millis(pause));
        // Kill it while it evaluates, so a claim is left behind.
        let tag = format!("-{}-", child.id());
        while !view_of(log)
            .attempts()
            .any(|a| a.worker.contains(&tag) && a.state == TrialState::Running)
        {
            if child.try_wait().unwrap().is_some() {
                break; // the study ended first
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        println!("SIGKILLed worker {victim} after {pause} ms more");
    }
    for (i, c) in children.into_iter().enumerate().skip(2) {
        print!("{}", wait_ok(c, &format!("worker {i}")));
    }
    let counts = raw_counts(log);
    let n = planned(&s);
    assert_eq!(counts.complete.len(), n, "every planned job has a result");
    assert!(
        counts.complete.values().all(|&c| c == 1),
        "a job finished twice: {:?}",
        counts.complete
    );
    let view = view_of(log);
    let outcome = view.outcome();
    assert_eq!(outcome.evaluations.len(), n);
    assert_eq!(outcome.failures, 0);
    let idle = view.idle();
    println!(
        "killed 2 of 4: {n} jobs finished once each, {} attempts given up and retried, {} finished after the retry's result, {} trials; told to wait {} times, {} while a job was runnable",
        counts.abandoned, counts.superseded, counts.trials, idle.records, idle.while_work_existed
    );
    assert_eq!(counts.trials, n + counts.abandoned + counts.superseded);
    assert!(counts.abandoned >= 1, "no killed claim was retried");
}

fn lone_worker_on(log: &str) {
    let s = settings(7, 1, 243.0, 5);
    create(log, &s);
    let mut rng = Rng::new(77);
    for round in 0..3 {
        let mut child = join_worker(log, 0.3, 5);
        let pause = 50 + rng.below(300) as u64;
        std::thread::sleep(Duration::from_millis(pause));
        child.kill().unwrap();
        let _ = child.wait();
        println!("round {round}: SIGKILLed the only worker after {pause} ms");
    }
    wait_ok(join_worker(log, 0.3, 5), "the last worker");
    let expected = in_process(&s);
    let outcome = view_of(log).outcome();
    assert_eq!(evals(&outcome), evals(&expected));
    assert_eq!(outcome.incumbent, expected.incumbent);
    let counts = raw_counts(log);
    assert!(counts.complete.values().all(|&c| c == 1));
    assert!(
        counts.abandoned >= 1,
        "no kill hit an evaluation: the test proved nothing"
    );
    println!("{} attempts given up and redone", counts.abandoned);
}

/// Drives two views by hand: attempt A goes silent, B takes the job over,
/// then A's late result arrives first and is kept; B's is marked superseded.
fn late_result_on(log: &str) {
    let s = settings(2, 2, 27.0, 1);
    create(log, &s);
    let mut a_store = storage::open(log).unwrap();
    let mut b_store = storage::open(log).unwrap();
    let (mut a, mut b) = (StudyView::default(), StudyView::default());
    sync(&mut *a_store, &mut a).unwrap();
    let Action::Claim {
        entries,
        trial: ta,
        job,
        ..
    } = a.next_action("A", Duration::from_secs(60)).unwrap()
    else {
        panic!("A finds work")
    };
    assert!(a_store.append_if_current(&entries).unwrap());
    sync(&mut *b_store, &mut b).unwrap();
    // With a zero heartbeat B gives A's silent attempt up and claims job 0 again.
    let Action::Claim {
        entries,
        trial: tb,
        job: job_b,
    } = b.next_action("B", Duration::ZERO).unwrap()
    else {
        panic!("B takes over")
    };
    assert_eq!((job, job_b), (0, 0));
    assert!(b_store.append_if_current(&entries).unwrap());
    // A's stale view cannot append: it must read first.
    let late = a.finish_entries("A", ta, &Ok(-3.5), 0.1);
    assert!(!a_store.append_if_current(&late).unwrap());
    sync(&mut *a_store, &mut a).unwrap();
    let late = a.finish_entries("A", ta, &Ok(-3.5), 0.1);
    assert_eq!(
        late.len(),
        1,
        "a new COMPLETE trial for the given-up attempt"
    );
    assert!(a_store.append_if_current(&late).unwrap());
    sync(&mut *b_store, &mut b).unwrap();
    let superseded = b.finish_entries("B", tb, &Ok(-4.0), 0.1);
    assert!(b_store.append_if_current(&superseded).unwrap());
    sync(&mut *b_store, &mut b).unwrap();
    assert!(b.finish_entries("B", tb, &Ok(-4.0), 0.1).is_empty());
    let outcome = view_of(log).outcome();
    assert_eq!(outcome.evaluations.len(), 1);
    assert_eq!(
        outcome.evaluations[0].loss,
        Some(-3.5),
        "the first result in the log"
    );
    let counts = raw_counts(log);
    assert_eq!(counts.complete[&0], 1);
    assert_eq!(counts.abandoned, 1);
}

/// The idle count is the log's: a wait recorded while BOHB could hand out
/// a job counts (here a second worker held back by the study's `--workers
/// 1`), a wait at a stage barrier does not, and a wait decided on a stale
/// view is never recorded.
#[test]
fn idle_records_count_only_waits_while_work_existed() {
    let log = file_study("idle");
    let s = settings(2, 1, 27.0, 1);
    create(&log, &s);
    let (mut a_store, mut b_store) = (storage::open(&log).unwrap(), storage::open(&log).unwrap());
    let (mut a, mut b) = (StudyView::default(), StudyView::default());
    sync(&mut *a_store, &mut a).unwrap();
    sync(&mut *b_store, &mut b).unwrap();
    let Action::Claim { entries, .. } = a.next_action("A", Duration::from_secs(60)).unwrap() else {
        panic!("A finds work")
    };
    assert!(a_store.append_if_current(&entries).unwrap());
    // B decided before A's claim: its record is refused.
    assert!(!b_store
        .append_if_current(&[StudyView::idle_entry("B")])
        .unwrap());
    sync(&mut *b_store, &mut b).unwrap();
    assert!(matches!(
        b.next_action("B", Duration::from_secs(60)).unwrap(),
        Action::Wait
    ));
    assert!(b_store
        .append_if_current(&[StudyView::idle_entry("B")])
        .unwrap());
    let idle = view_of(&log).idle();
    assert_eq!((idle.records, idle.while_work_existed), (1, 1));
    // With two workers allowed, run the 27-budget bracket's stage to its
    // barrier: every slot handed out, results missing.
    let log = file_study("idle-barrier");
    let s = settings(2, 9, 27.0, 1);
    create(&log, &s);
    let mut store = storage::open(&log).unwrap();
    let mut view = StudyView::default();
    loop {
        sync(&mut *store, &mut view).unwrap();
        match view.next_action("A", Duration::from_secs(60)).unwrap() {
            Action::Claim { entries, .. } => assert!(store.append_if_current(&entries).unwrap()),
            Action::Wait => break,
            Action::Done => panic!("nothing finished yet"),
        }
    }
    assert!(store
        .append_if_current(&[StudyView::idle_entry("A")])
        .unwrap());
    let idle = view_of(&log).idle();
    assert_eq!((idle.records, idle.while_work_existed), (1, 0));
}

#[test]
fn a_torn_last_line_is_cut_before_the_next_append() {
    let dir = scratch("torn");
    let log = dir.join("study.log");
    let s = settings(2, 1, 27.0, 1);
    create(&url(&log), &s);
    let mut torn = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut torn, b"{\"op_code\":4,\"worker_id\":\"x\",\"stu").unwrap();
    let view = view_of(&url(&log));
    assert!(view.settings().is_some(), "the torn tail is not read");
    let options = WorkerOptions::new(Duration::from_secs(30), 0);
    let store = storage::open(&url(&log)).unwrap();
    let report = work(store, &CountingOnes::new(8, 8), &options, &mut |_, _| {}).unwrap();
    assert_eq!(evals(&report.outcome), evals(&in_process(&s)));
    assert!(entries(&url(&log))
        .iter()
        .all(|e| e.get("op_code").is_some()));
}

#[test]
fn bad_logs_and_urls_are_real_errors() {
    let err = storage::open("mysql://x").err().unwrap().to_string();
    assert!(err.contains("expected journal:PATH"), "{err}");
    let dir = scratch("bad");
    let log = dir.join("study.log");
    std::fs::write(
        &log,
        "{\"op_code\":0,\"study_name\":\"s\",\"directions\":[1]}\nnot json\n",
    )
    .unwrap();
    let mut store = storage::open(&url(&log)).unwrap();
    let err = store.read_new().err().unwrap().to_string();
    assert!(
        err.contains("study.log:2:2: corrupt journal entry"),
        "{err}"
    );
    // Joining a study with other settings names what differs.
    let log = dir.join("other.log");
    create(&url(&log), &settings(1, 1, 27.0, 1));
    let mut store = storage::open(&url(&log)).unwrap();
    let err = create_or_join(&mut *store, "s", &settings(2, 1, 27.0, 1))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("seed: journal has 1, this run has 2"), "{err}");
}

/// Final normalised regret of the incumbent, over 10 seeds, for the
/// in-process async schedule and for four workers sharing a journal file.
#[test]
fn four_shared_workers_match_the_in_process_async_regret() {
    let dir = scratch("regret");
    regret_on("journal", &|seed| url(&dir.join(format!("seed{seed}.log"))));
}

#[test]
fn redis_four_shared_workers_match_the_in_process_async_regret() {
    if let Some(server) = RedisServer::start("redis regret") {
        regret_on("redis", &|seed| server.study(&format!("seed{seed}")));
    }
}

fn regret_on(backend: &str, study_of: &(dyn Fn(u64) -> String + Sync)) {
    let truth = CountingOnes::new(8, 8);
    let delayed = CountingOnes {
        delay: Duration::from_millis(1),
        ..CountingOnes::new(8, 8)
    };
    let (mut local, mut shared) = (Vec::new(), Vec::new());
    let mut idle = (0, 0);
    let start = Instant::now();
    for seed in 0..10 {
        let s = settings(seed, 4, 243.0, 5);
        let objective: Arc<dyn Objective> = Arc::new(delayed.clone());
        let outcome = bohb::run(&s, objective, RunOptions::default()).unwrap();
        local.push(truth.regret(&outcome.incumbent.unwrap().config));

        let log = study_of(seed);
        create(&log, &s);
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (log, delayed) = (&log, &delayed);
                    scope.spawn(move || {
                        let store = storage::open(log).unwrap();
                        let options = WorkerOptions::new(Duration::from_secs(30), t);
                        work(store, delayed, &options, &mut |_, _| {}).unwrap()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let outcome = &outcomes[0].outcome;
        assert_eq!(outcome.evaluations.len(), planned(&s));
        assert!(raw_counts(&log).complete.values().all(|&c| c == 1));
        let seen = view_of(&log).idle();
        assert_eq!(
            seen.while_work_existed, 0,
            "seed {seed}: an idle hand-out while work existed"
        );
        idle = (idle.0 + seen.records, idle.1 + seen.while_work_existed);
        shared.push(truth.regret(&outcome.incumbent.clone().unwrap().config));
    }
    let stats = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        (mean, var)
    };
    let ((ml, vl), (ms, vs)) = (stats(&local), stats(&shared));
    let se = (vl / 10.0 + vs / 10.0).sqrt();
    println!(
        "final regret over 10 seeds: in-process async {ml:.4} (sd {:.4}), {backend} 4 workers {ms:.4} (sd {:.4}); difference {:.4}, 3 SE {:.4}; {} waits, {} while a job was runnable; {:.1} s",
        vl.sqrt(),
        vs.sqrt(),
        ms - ml,
        3.0 * se,
        idle.0,
        idle.1,
        start.elapsed().as_secs_f64()
    );
    assert!(
        (ms - ml).abs() <= 3.0 * se + 0.01,
        "the distributed schedule tunes worse"
    );
    // A uniformly random configuration's expected regret is 0.5.
    assert!(ml < 0.4 && ms < 0.4, "both find good configurations");
}

/// Installs the pinned Python packages into .cache/optuna (once); `Err` says why not.
fn install_optuna() -> Result<PathBuf, String> {
    // The tests run in parallel: one install per test process (the script
    // also holds a lock, for other processes).
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(Path::new(ROOT).join("scripts/install-optuna.sh"))
                .output()
                .map_err(|e| format!("cannot run scripts/install-optuna.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/install-optuna.sh failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
        .clone()
}

/// The pinned optuna's install prefix, or `None` after a loud SKIPPED line.
fn optuna_or_skip(test: &str) -> Option<PathBuf> {
    match install_optuna() {
        Ok(prefix) => Some(prefix),
        Err(why) => {
            eprintln!("\n==================== SKIPPED: {test} (Optuna) ====================\n{why}\n==============================================================\n");
            None
        }
    }
}

/// Every trial as Optuna's own API returns it, in the shape [`same_trials`]
/// compares: params as Python's `str` of their values.
const OPTUNA_DUMP: &str = r#"
import json, sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend
optuna.logging.set_verbosity(optuna.logging.WARNING)
kind, where = sys.argv[1], sys.argv[2]
backend = (JournalFileBackend(where) if kind == "journal"
           else JournalRedisBackend(where, prefix=sys.argv[3]))
study = optuna.load_study(study_name=None, storage=JournalStorage(backend))
print(json.dumps({"version": optuna.__version__, "trials": [
    {"state": t.state.name, "value": t.value,
     "params": {k: str(v) for k, v in t.params.items()},
     "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
     "job": t.user_attrs["bohb_job"], "budget": t.user_attrs["budget"],
     "bracket": t.user_attrs["bohb_bracket"]}
    for t in study.get_trials(deepcopy=False)]}))
"#;

/// Runs [`OPTUNA_DUMP`] with `args` (`journal PATH` or `redis URL PREFIX`).
fn optuna_dump(prefix: &Path, args: &[&str]) -> Json {
    let out = Command::new("python3")
        .args(["-c", OPTUNA_DUMP])
        .args(args)
        .env("PYTHONPATH", prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "optuna failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dump["version"], "4.6.0");
    dump
}

/// A study run by two worker processes, for the readers to read.
fn two_workers_study(study: &str) {
    create(study, &settings(4, 2, 243.0, 5));
    let children: Vec<Child> = (0..2).map(|_| join_worker(study, 30.0, 2)).collect();
    for c in children {
        wait_ok(c, "worker");
    }
}

/// The pinned Python packages and a two-worker study in a journal file
/// (its path), or `None` after a SKIPPED line.
fn journal_study_for_python(test: &str, name: &str) -> Option<(PathBuf, PathBuf)> {
    let prefix = optuna_or_skip(test)?;
    let log = scratch(name).join("study.log");
    two_workers_study(&url(&log));
    Some((prefix, log))
}

/// The pinned Python packages and a two-worker study `name` on a fresh
/// redis-server (its `--storage` URL), or `None` after a SKIPPED line.
fn redis_study_for_python(test: &str, name: &str) -> Option<(PathBuf, RedisServer, String)> {
    let prefix = optuna_or_skip(test)?;
    let server = RedisServer::start(test)?;
    let study = server.study(name);
    two_workers_study(&study);
    Some((prefix, server, study))
}

/// `python3 ARGS` with the pinned packages, ARGS = `args_for(port)` for a
/// free loopback port, once it serves there.
fn python_server(prefix: &Path, args_for: impl FnOnce(u16) -> Vec<String>) -> Served {
    let port = free_port();
    Served::spawn(
        Command::new("python3")
            .args(args_for(port))
            .env("PYTHONPATH", prefix),
        port,
    )
    .unwrap()
}

/// Asserts that `trials` (one JSON object per trial: state, value, params as
/// text, intermediate values by step, job, budget, bracket) hold every
/// evaluation of the study in `study` with its params, budget and loss, once,
/// as a COMPLETE trial. Returns (trials, COMPLETE trials).
fn same_trials(trials: &[Json], study: &str) -> (usize, usize) {
    let outcome = view_of(study).outcome();
    let complete: Vec<&Json> = trials
        .iter()
        .filter(|t| {
            t["state"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("complete")
        })
        .collect();
    assert_eq!(complete.len(), outcome.evaluations.len());
    for e in &outcome.evaluations {
        let t = complete
            .iter()
            .find(|t| t["job"] == e.job)
            .unwrap_or_else(|| panic!("job {} is not a COMPLETE trial", e.job));
        let loss = e.loss.unwrap();
        assert_eq!(t["value"].as_f64(), Some(loss), "job {}", e.job);
        let step = (e.budget as i64).to_string();
        assert_eq!(t["intermediate"][&step].as_f64(), Some(loss));
        assert_eq!(t["budget"].as_f64(), Some(e.budget));
        assert_eq!(t["bracket"], e.bracket);
        let params = t["params"].as_object().unwrap();
        assert_eq!(params.len(), e.config.len());
        for (name, value) in &e.config {
            let seen = params[name].as_str().unwrap();
            match value {
                Value::Int(i) => assert_eq!(seen.parse::<i64>().ok(), Some(*i), "{name}"),
                Value::Float(x) => assert_eq!(seen.parse::<f64>().ok(), Some(*x), "{name}"),
                Value::Str(v) => assert_eq!(seen, v, "{name}"),
            }
        }
    }
    (trials.len(), complete.len())
}

#[test]
fn optuna_reads_every_trial_as_convformer_sees_it() {
    let Some((prefix, log)) = journal_study_for_python("Optuna reads the journal", "optuna") else {
        return;
    };
    let dump = optuna_dump(&prefix, &["journal", log.to_str().unwrap()]);
    let (all, complete) = same_trials(dump["trials"].as_array().unwrap(), &url(&log));
    println!("optuna 4.6.0 read the journal: {all} trials, {complete} COMPLETE, equal to convformer's evaluations");
}

#[test]
fn redis_optuna_reads_every_trial_as_convformer_sees_it() {
    let Some((prefix, server, study)) = redis_study_for_python("Optuna reads Redis", "optuna")
    else {
        return;
    };
    let dump = optuna_dump(&prefix, &["redis", &server.url(), "optuna"]);
    let (all, complete) = same_trials(dump["trials"].as_array().unwrap(), &study);
    println!("optuna 4.6.0 read Redis (JournalRedisBackend, prefix \"optuna\"): {all} trials, {complete} COMPLETE, equal to convformer's evaluations");
}

/// A free loopback port (the listener closes before the server binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from 127.0.0.1:`port`: (status code, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

/// The dashboard's trials (`/api/studies/<id>`) in [`same_trials`]' shape.
fn dashboard_trials(port: u16) -> Vec<Json> {
    let start = Instant::now();
    let studies = loop {
        match http_get(port, "/api/studies") {
            Ok((200, body)) => break serde_json::from_str::<Json>(&body).unwrap(),
            _ if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!("optuna-dashboard did not answer on port {port}: {other:?}"),
        }
    };
    let summaries = studies["study_summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 1, "{studies}");
    let id = &summaries[0]["study_id"];
    let (code, body) = http_get(port, &format!("/api/studies/{id}")).unwrap();
    assert_eq!(code, 200, "{body}");
    let detail: Json = serde_json::from_str(&body).unwrap();
    let attr = |t: &Json, key: &str| -> Json {
        let text = t["user_attrs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .unwrap_or_else(|| panic!("no user attribute {key} in {t}"))["value"]
            .as_str()
            .unwrap()
            .to_string();
        serde_json::from_str(&text).unwrap()
    };
    detail["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let params: serde_json::Map<String, Json> = t["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let name = p["name"].as_str().unwrap().to_string();
                    (name, p["param_external_value"].clone())
                })
                .collect();
            let intermediate: serde_json::Map<String, Json> = t["intermediate_values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["step"].to_string(), v["value"].clone()))
                .collect();
            serde_json::json!({
                "state": t["state"], "value": t["values"].get(0), "params": params,
                "intermediate": intermediate, "job": attr(t, "bohb_job"),
                "budget": attr(t, "budget"), "bracket": attr(t, "bohb_bracket"),
            })
        })
        .collect()
}

/// The pinned optuna-dashboard started as `$prefix/bin/optuna-dashboard PATH`
/// (the README's command) shows every evaluation with its params, budget and loss.
#[test]
fn optuna_dashboard_shows_every_evaluation() {
    let Some((prefix, log)) =
        journal_study_for_python("optuna-dashboard serves the journal", "dashboard")
    else {
        return;
    };
    let command = prefix.join("bin/optuna-dashboard");
    let dashboard = python_server(&prefix, |port| {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let port = port.to_string();
        [
            &path(&command),
            &path(&log),
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--quiet",
        ]
        .map(String::from)
        .to_vec()
    });
    let (all, complete) = same_trials(&dashboard_trials(dashboard.port), &url(&log));
    println!("optuna-dashboard 0.21.0 on the journal: /api/studies/0 shows {all} trials, {complete} COMPLETE, equal to convformer's evaluations");
}

/// The dashboard over Redis: its command line reads only the empty key
/// prefix, so the README's Redis recipe starts it with `run_server` and
/// the study's prefix; this is that command.
#[test]
fn redis_optuna_dashboard_shows_every_evaluation() {
    let Some((prefix, server, study)) =
        redis_study_for_python("optuna-dashboard serves Redis", "dash")
    else {
        return;
    };
    let dashboard = python_server(&prefix, |port| {
        let serve = format!(
            "from optuna.storages import JournalStorage\n\
             from optuna.storages.journal import JournalRedisBackend\n\
             from optuna_dashboard import run_server\n\
             run_server(JournalStorage(JournalRedisBackend('{}', prefix='dash')), host='127.0.0.1', port={port})",
            server.url()
        );
        vec!["-c".into(), serve]
    });
    let (all, complete) = same_trials(&dashboard_trials(dashboard.port), &study);
    println!("optuna-dashboard 0.21.0 on Redis (run_server, prefix \"dash\"): {all} trials, {complete} COMPLETE, equal to convformer's evaluations");
}

#[test]
fn status_and_cli_round_trip() {
    let dir = scratch("cli");
    let log = dir.join("study.log");
    let out = Command::new(BIN)
        .args([
            "tune",
            "--objective",
            "counting-ones",
            "--storage",
            &url(&log),
        ])
        .args([
            "--min-budget",
            "9",
            "--max-budget",
            "81",
            "--iterations",
            "3",
            "--seed",
            "1",
        ])
        .args(["--workers", "2", "--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("study complete: best loss"), "{stdout}");
    assert!(dir.join("out/best.json").exists());
    let status = Command::new(BIN)
        .args(["tune", "--status", &url(&log)])
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    let view = view_of(&url(&log));
    let inc = view.outcome().incumbent.unwrap();
    assert!(
        text.contains(&format!(
            "{} of at most {} evaluations done",
            view.planned(),
            view.planned()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("incumbent: job {} loss {:.6}", inc.job, inc.loss)),
        "{text}"
    );
    let join = Command::new(BIN)
        .args([
            "tune",
            "--objective",
            "branin",
            "--join",
            "--storage",
            &url(&log),
        ])
        .output()
        .unwrap();
    assert!(!join.status.success());
    assert!(
        String::from_utf8_lossy(&join.stderr).contains("the study tunes --objective counting-ones")
    );
}

/// A server process on a loopback port, stopped (SIGKILL) when dropped.
struct Served {
    child: Child,
    port: u16,
}

impl Served {
    /// Spawns `command` (its output discarded) and waits until `port` takes
    /// connections; `Err` says why not.
    fn spawn(command: &mut Command, port: u16) -> Result<Served, String> {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let mut served = Served { child, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = served.child.try_wait() {
                return Err(format!("{program} exited ({status}) before listening"));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("{program} did not listen on 127.0.0.1:{port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(served)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` on a loopback port, stopped when dropped.
struct RedisServer {
    server: Served,
}

impl RedisServer {
    /// Starts one, installing the Debian package if absent and allowed;
    /// `None` after a loud SKIPPED line when it cannot.
    fn start(test: &str) -> Option<RedisServer> {
        let skip = |why: String| {
            eprintln!("\n==================== SKIPPED: {test} (Redis) ====================\n{why}\n==============================================================\n");
            None
        };
        if let Err(why) = ensure_redis_server() {
            return skip(why);
        }
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let port = 20_000 + (std::process::id() % 2_000) as u16 * 16 + NEXT.fetch_add(1, SeqCst);
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        match Served::spawn(&mut command, port) {
            Ok(server) => Some(RedisServer { server }),
            Err(why) => skip(why),
        }
    }

    /// The server's URL, as Optuna's `JournalRedisBackend` takes it.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.server.port)
    }

    /// The study `name` on this server, as `--storage` takes it.
    fn study(&self, name: &str) -> String {
        format!("{}/{name}", self.url())
    }
}

fn ensure_redis_server() -> Result<(), String> {
    let present = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present("redis-server") {
        return Ok(());
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "redis-server"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output();
    match installed {
        Ok(out) if out.status.success() && present("redis-server") => Ok(()),
        Ok(out) => Err(format!(
            "redis-server is absent and `apt-get install redis-server` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "redis-server is absent and apt-get cannot run: {e}"
        )),
    }
}

/// Each scenario twice: on a fresh journal file, and on a fresh
/// `redis-server` (SKIPPED loudly without one).
macro_rules! on_both_stores {
    ($($journal:ident, $redis:ident: $run:ident,)*) => {$(
        #[test]
        fn $journal() {
            $run(&file_study(stringify!($journal)));
        }

        #[test]
        fn $redis() {
            if let Some(server) = RedisServer::start(stringify!($redis)) {
                $run(&server.study("study"));
            }
        }
    )*};
}

on_both_stores! {
    one_worker_thread_reproduces_the_in_process_run,
    redis_one_worker_thread_reproduces_the_in_process_run: one_worker_on,
    four_worker_processes_finish_every_planned_job_once,
    redis_four_worker_processes_finish_every_planned_job_once: four_processes_on,
    sigkilled_workers_lose_nothing_and_finish_nothing_twice,
    redis_sigkilled_workers_lose_nothing_and_finish_nothing_twice: sigkill_on,
    a_killed_lone_worker_resumes_to_the_uninterrupted_run,
    redis_a_killed_lone_worker_resumes_to_the_uninterrupted_run: lone_worker_on,
    a_late_result_is_kept_once,
    redis_a_late_result_is_kept_once: late_result_on,
}

#[test]
fn redis_urls_are_checked() {
    for bad in [
        "redis://127.0.0.1:1",
        "redis:///name",
        "redis://127.0.0.1:1/a/b",
    ] {
        let err = storage::open(bad).err().unwrap().to_string();
        assert!(
            err.contains("expected redis://HOST:PORT/NAME"),
            "{bad}: {err}"
        );
    }
    let err = storage::open("redis://127.0.0.1:1/study")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot connect to Redis"), "{err}");
    let err = storage::open("redis://:s3cret@127.0.0.1:1/study")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("redis://:***@127.0.0.1:1/study: cannot connect")
            && !err.contains("s3cret"),
        "{err}"
    );
}

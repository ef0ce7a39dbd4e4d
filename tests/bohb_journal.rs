//! The journal: round trip, resume without repeating work, torn and corrupt
//! lines, and resume after `kill -9` of the real binary.

use convformer::bohb::journal::{Journal, Record, Status, JOURNAL_VERSION};
use convformer::bohb::objectives::CountingOnes;
use convformer::bohb::{
    self, Config, EvalContext, EvalError, EvalResult, Event, ModelSettings, Objective, RunOptions,
    Schedule, TuneOutcome, TuneSettings,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convformer-bohb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Counting ones 3+3 that counts its calls.
struct Counted {
    inner: CountingOnes,
    calls: AtomicUsize,
    /// Sleep 0.1 to 3.1 ms depending on the job, so results arrive out of order.
    jitter: bool,
}

impl Counted {
    fn new() -> Self {
        Counted {
            inner: CountingOnes::new(3, 3),
            calls: AtomicUsize::new(0),
            jitter: false,
        }
    }

    fn jittery() -> Self {
        Counted {
            jitter: true,
            ..Counted::new()
        }
    }
}

impl Objective for Counted {
    fn evaluate(
        &self,
        config: &Config,
        budget: f64,
        ctx: &EvalContext,
    ) -> Result<EvalResult, EvalError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.jitter {
            std::thread::sleep(Duration::from_micros(100 + (ctx.seed % 4) * 1000));
        }
        self.inner.evaluate(config, budget, ctx)
    }
}

fn settings() -> TuneSettings {
    TuneSettings {
        objective: "counting-ones".into(),
        space: CountingOnes::new(3, 3).space(),
        min_budget: 1.0,
        max_budget: 27.0,
        eta: 3,
        iterations: 5,
        workers: 2,
        seed: 42,
        model: ModelSettings::default(),
        schedule: Schedule::Async,
    }
}

fn run_journalled(
    journal: &Path,
    resume: bool,
    objective: Arc<Counted>,
) -> (convformer::Result<TuneOutcome>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut on_event = |e: &Event| {
        if let Event::Warning(w) = e {
            warnings.push(w.clone());
        }
    };
    let options = RunOptions {
        journal: Some(journal.to_path_buf()),
        resume,
        max_failures: None,
        on_event: Some(&mut on_event),
        threads: None,
    };
    let outcome = bohb::run(&settings(), objective, options);
    (outcome, warnings)
}

/// (job, budget, config, loss) of every evaluation: what must not change.
fn fingerprint(outcome: &TuneOutcome) -> Vec<String> {
    outcome
        .evaluations
        .iter()
        .map(|e| format!("{} {} {:?} {:?}", e.job, e.budget, e.config, e.loss))
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_journal_records_every_proposal_and_result() {
    let dir = scratch("roundtrip");
    let path = dir.join("journal.jsonl");
    let (outcome, _) = run_journalled(&path, false, Arc::new(Counted::new()));
    let outcome = outcome.unwrap();
    let loaded = Journal::open(&path).unwrap();
    assert!(loaded.warnings.is_empty());
    let records = loaded.records;
    assert_eq!(
        records[0],
        Record::Header {
            version: JOURNAL_VERSION,
            settings: settings()
        }
    );
    for e in &outcome.evaluations {
        let proposal = records
            .iter()
            .find(|r| matches!(r, Record::Proposal { job, .. } if *job == e.job))
            .unwrap();
        let Record::Proposal {
            bracket,
            stage,
            budget,
            origin,
            config,
            ..
        } = proposal
        else {
            unreachable!()
        };
        assert_eq!(
            (*bracket, *stage, *budget, *origin, config),
            (e.bracket, e.stage, e.budget, e.origin, &e.config)
        );
        let result = records
            .iter()
            .find(|r| matches!(r, Record::Result { job, .. } if *job == e.job))
            .unwrap();
        let Record::Result {
            status,
            loss,
            seconds,
            ..
        } = result
        else {
            unreachable!()
        };
        assert_eq!((*status, *loss), (Status::Ok, e.loss));
        assert!(*seconds >= 0.0);
    }
    assert_eq!(records.len(), 1 + 2 * outcome.evaluations.len());
    // A second run into the same journal without --resume is refused.
    let (again, _) = run_journalled(&path, false, Arc::new(Counted::new()));
    assert!(again.unwrap_err().to_string().contains("--resume"));
}

#[test]
fn resuming_a_finished_run_repeats_nothing() {
    let dir = scratch("finished");
    let path = dir.join("journal.jsonl");
    let (first, _) = run_journalled(&path, false, Arc::new(Counted::new()));
    let objective = Arc::new(Counted::new());
    let (second, warnings) = run_journalled(&path, true, objective.clone());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(warnings.is_empty());
    assert_eq!(objective.calls.load(Ordering::SeqCst), 0);
    assert_eq!(fingerprint(&first), fingerprint(&second));
    assert!(second.evaluations.iter().all(|e| e.replayed));
    assert_eq!(first.incumbent, second.incumbent);
}

#[test]
fn a_torn_last_line_is_reported_ignored_and_its_work_redone() {
    let dir = scratch("torn");
    let path = dir.join("journal.jsonl");
    let (first, _) = run_journalled(&path, false, Arc::new(Counted::new()));
    let first = first.unwrap();
    // Cut the journal in the middle of its last record, as a crash would.
    let text = std::fs::read_to_string(&path).unwrap();
    let last_start = text.trim_end().rfind('\n').unwrap() + 1;
    std::fs::write(&path, &text[..last_start + 25]).unwrap();
    let objective = Arc::new(Counted::new());
    let (second, warnings) = run_journalled(&path, true, objective.clone());
    let second = second.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let torn_line = text.trim_end().lines().count();
    assert!(
        warnings[0].contains(&format!("journal.jsonl:{torn_line}:")),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("torn last line"), "{}", warnings[0]);
    assert_eq!(
        objective.calls.load(Ordering::SeqCst),
        1,
        "only the torn result is evaluated again"
    );
    assert_eq!(fingerprint(&first), fingerprint(&second));
    // The repaired journal parses cleanly again.
    assert!(Journal::open(&path).unwrap().warnings.is_empty());
}

/// Jobs in the order the journal recorded their results.
fn result_order(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| match serde_json::from_str::<Record>(l).unwrap() {
            Record::Result { job, .. } => Some(job),
            _ => None,
        })
        .collect()
}

#[test]
fn an_async_run_resumes_from_any_cut_of_its_journal_replaying_its_decisions() {
    let dir = scratch("async-cuts");
    let path = dir.join("journal.jsonl");
    let (full, _) = run_journalled(&path, false, Arc::new(Counted::jittery()));
    let full = full.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let order = result_order(&text);
    assert!(
        order.windows(2).any(|w| w[0] > w[1]),
        "results arrived out of hand-out order, so the replay order matters"
    );
    let all: Vec<&str> = text.lines().collect();
    for cut in [all.len() / 4, all.len() / 2, all.len() * 3 / 4, all.len()] {
        let cut_path = dir.join(format!("cut{cut}.jsonl"));
        std::fs::write(&cut_path, all[..cut].join("\n") + "\n").unwrap();
        let finished_before = result_order(&all[..cut].join("\n")).len();
        let objective = Arc::new(Counted::jittery());
        // A replayed decision that differed from the journal would be an error.
        let (resumed, warnings) = run_journalled(&cut_path, true, objective.clone());
        let resumed = resumed.unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(resumed.evaluations.len(), full.evaluations.len());
        assert_eq!(
            objective.calls.load(Ordering::SeqCst),
            full.evaluations.len() - finished_before,
            "cut at line {cut}: nothing finished is evaluated again"
        );
        // Every job the cut journal had handed out kept its configuration.
        for line in &all[1..cut] {
            if let Record::Proposal { job, config, .. } = serde_json::from_str(line).unwrap() {
                assert_eq!(resumed.evaluations[job as usize].config, config);
            }
        }
        let resumed_text = std::fs::read_to_string(&cut_path).unwrap();
        let mut jobs = result_order(&resumed_text);
        jobs.sort_unstable();
        jobs.dedup();
        assert_eq!(jobs.len(), full.evaluations.len(), "each job finished once");
        if cut == all.len() {
            assert_eq!(fingerprint(&resumed), fingerprint(&full));
            assert_eq!(resumed.trajectory, full.trajectory);
        }
    }
}

#[test]
fn a_corrupt_line_inside_the_journal_is_an_error_with_its_position() {
    let dir = scratch("corrupt");
    let path = dir.join("journal.jsonl");
    run_journalled(&path, false, Arc::new(Counted::new()))
        .0
        .unwrap();
    let mut all = lines(&path);
    all[3] = "{\"type\": \"result\", \"job\": oops}".into();
    std::fs::write(&path, all.join("\n") + "\n").unwrap();
    let (outcome, _) = run_journalled(&path, true, Arc::new(Counted::new()));
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("journal.jsonl:4:"), "{err}");
    assert!(err.contains("corrupt journal record"), "{err}");
}

#[test]
fn resuming_with_other_settings_is_refused_naming_the_difference() {
    let dir = scratch("settings");
    let path = dir.join("journal.jsonl");
    run_journalled(&path, false, Arc::new(Counted::new()))
        .0
        .unwrap();
    let mut other = settings();
    other.seed = 7;
    let options = RunOptions {
        journal: Some(path.clone()),
        resume: true,
        ..RunOptions::default()
    };
    let err = bohb::run(&other, Arc::new(Counted::new()), options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("seed: journal has 42, this run has 7"),
        "{err}"
    );
}

/// Final result per job from a journal file: (job, proposal line, loss).
fn evaluation_set(journal: &Path) -> Vec<(u64, String, Option<f64>)> {
    let records = Journal::open(journal).unwrap().records;
    let mut out = Vec::new();
    for r in &records {
        if let Record::Result { job, loss, .. } = r {
            let proposal = records
                .iter()
                .find(|p| matches!(p, Record::Proposal { job: j, .. } if j == job))
                .expect("every result has a proposal");
            out.push((*job, serde_json::to_string(proposal).unwrap(), *loss));
        }
    }
    out.sort_by_key(|e| e.0);
    out
}

fn tune(out: &Path, resume: bool, schedule: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convformer"));
    cmd.args([
        "tune",
        "--objective",
        "counting-ones",
        "--min-budget",
        "1",
        "--max-budget",
        "9",
    ])
    .args([
        "--iterations",
        "9",
        "--workers",
        "2",
        "--seed",
        "3",
        "--eval-delay-ms",
        "25",
        "--schedule",
        schedule,
        "--out",
    ])
    .arg(out)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

fn result_lines(journal: &Path) -> usize {
    std::fs::read_to_string(journal)
        .map(|t| {
            t.lines()
                .filter(|l| l.contains("\"type\":\"result\""))
                .count()
        })
        .unwrap_or(0)
}

/// Runs `schedule` to the end in `clean`, and killed twice then resumed in
/// `killed`; returns both journals' evaluation sets.
fn kill_twice_and_resume(name: &str, schedule: &str) -> (PathBuf, Vec<Eval>, Vec<Eval>) {
    let dir = scratch(name);
    let (killed, clean) = (dir.join("killed"), dir.join("clean"));
    let status = tune(&clean, false, schedule).status().unwrap();
    assert!(status.success());
    let expected = evaluation_set(&clean.join("journal.jsonl"));
    assert!(
        expected.len() >= 50,
        "the run is long enough to kill midway"
    );

    // Kill twice: once in the first run, once in a resumed one.
    let journal = killed.join("journal.jsonl");
    for (resume, threshold) in [(false, expected.len() / 4), (true, expected.len() * 2 / 3)] {
        let mut child = tune(&killed, resume, schedule).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while result_lines(&journal) < threshold {
            assert!(Instant::now() < deadline, "the run made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        assert!(
            result_lines(&journal) < expected.len(),
            "killed before the end"
        );
    }

    let resumed = tune(&killed, true, schedule).output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let got = evaluation_set(&journal);
    // Each job finished exactly once: nothing finished before the kill was
    // evaluated again, and the jobs in flight were rerun.
    let mut jobs: Vec<u64> = got.iter().map(|e| e.0).collect();
    jobs.dedup();
    assert_eq!(jobs.len(), got.len());
    assert!(killed.join("trajectory.png").metadata().unwrap().len() > 1000);
    (dir, expected, got)
}

type Eval = (u64, String, Option<f64>);

#[test]
fn an_ordered_run_killed_with_sigkill_and_resumed_ends_with_the_same_evaluations() {
    let (dir, expected, got) = kill_twice_and_resume("sigkill-ordered", "ordered");
    assert_eq!(got, expected);
    assert_eq!(
        std::fs::read_to_string(dir.join("killed/best.json")).unwrap(),
        std::fs::read_to_string(dir.join("clean/best.json")).unwrap()
    );
}

#[test]
fn an_async_run_killed_with_sigkill_and_resumed_runs_every_planned_job_once() {
    // Which worker finishes first steers an async run, so the evaluations
    // can differ from another run's; the plan (counting ones never fails)
    // and the once-only guarantee cannot.
    let (_, expected, got) = kill_twice_and_resume("sigkill-async", "async");
    assert_eq!(got.len(), expected.len());
    let budgets = |set: &[Eval]| -> Vec<String> {
        let mut b: Vec<String> = set
            .iter()
            .map(|e| {
                let p: serde_json::Value = serde_json::from_str(&e.1).unwrap();
                format!("{} {} {}", p["bracket"], p["stage"], p["budget"])
            })
            .collect();
        b.sort();
        b
    };
    assert_eq!(budgets(&got), budgets(&expected), "the same Hyperband plan");
}

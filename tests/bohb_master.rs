//! The BOHB master end to end: the Hyperband schedule it runs, promotion,
//! concurrency, reproducibility, failures.

use convformer::bohb::hyperband::{bracket_plan, budget_ladder};
use convformer::bohb::objectives::Branin;
use convformer::bohb::{
    self, Config, EvalContext, EvalError, EvalResult, Event, ModelSettings, Objective, Origin,
    RunOptions, Schedule, TuneOutcome, TuneSettings,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn settings(min: f64, max: f64, iterations: usize, workers: usize, seed: u64) -> TuneSettings {
    TuneSettings {
        objective: "branin".into(),
        space: Branin::space(),
        min_budget: min,
        max_budget: max,
        eta: 3,
        iterations,
        workers,
        seed,
        model: ModelSettings::default(),
        schedule: Schedule::Async,
    }
}

fn ordered(settings: TuneSettings) -> TuneSettings {
    TuneSettings {
        schedule: Schedule::Ordered,
        ..settings
    }
}

fn x(config: &Config, key: &str) -> f64 {
    config[key].as_f64().unwrap()
}

/// Branin plus a budget-dependent offset (so stages are distinguishable),
/// sleeping a job-dependent time so workers finish out of order.
struct Jittery {
    active: AtomicUsize,
    max_active: AtomicUsize,
    calls: AtomicUsize,
}

impl Jittery {
    fn new() -> Self {
        Jittery {
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
        }
    }
}

impl Objective for Jittery {
    fn evaluate(
        &self,
        config: &Config,
        budget: f64,
        ctx: &EvalContext,
    ) -> Result<EvalResult, EvalError> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(200 + (ctx.seed % 7) * 700));
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(EvalResult {
            loss: Branin::value(x(config, "x1"), x(config, "x2")) + 10.0 / budget,
        })
    }
}

fn run(settings: &TuneSettings, objective: Arc<dyn Objective>) -> TuneOutcome {
    bohb::run(settings, objective, RunOptions::default()).unwrap()
}

fn run_with_events(
    settings: &TuneSettings,
    objective: Arc<dyn Objective>,
    threads: Option<usize>,
) -> (TuneOutcome, Vec<Event>) {
    let mut events = Vec::new();
    let mut record = |e: &Event| events.push(e.clone());
    let options = RunOptions {
        on_event: Some(&mut record),
        threads,
        ..RunOptions::default()
    };
    let outcome = bohb::run(settings, objective, options).unwrap();
    (outcome, events)
}

/// Debug formatting of f64 round-trips, so equal strings mean equal bits.
fn key(o: &TuneOutcome) -> Vec<String> {
    o.evaluations
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {:?} {:?} {:?}",
                e.job, e.bracket, e.stage, e.budget, e.config, e.loss
            )
        })
        .collect()
}

#[test]
fn the_run_follows_the_hyperband_schedule_and_promotes_the_best() {
    let s = settings(1.0, 27.0, 6, 1, 11);
    let outcome = run(&s, Arc::new(Jittery::new()));
    let ladder = budget_ladder(1.0, 27.0, 3).unwrap();
    let mut per_stage: BTreeMap<(usize, usize), Vec<&bohb::Evaluation>> = BTreeMap::new();
    for e in &outcome.evaluations {
        per_stage.entry((e.bracket, e.stage)).or_default().push(e);
    }
    let mut expected_total = 0;
    for bracket in 0..6 {
        let plan = bracket_plan(&ladder, 3, bracket);
        for (stage, (&n, &budget)) in plan.sizes.iter().zip(&plan.budgets).enumerate() {
            let evals = &per_stage[&(bracket, stage)];
            assert_eq!(evals.len(), n, "bracket {bracket} stage {stage}");
            assert!(evals.iter().all(|e| e.budget == budget));
            expected_total += n;
            if stage > 0 {
                assert!(evals.iter().all(|e| e.origin == Origin::Promoted));
                // The promoted configs are exactly the n best of the previous stage.
                let mut previous: Vec<&&bohb::Evaluation> =
                    per_stage[&(bracket, stage - 1)].iter().collect();
                previous.sort_by(|a, b| a.loss.unwrap().total_cmp(&b.loss.unwrap()));
                let mut best: Vec<&Config> = previous.iter().take(n).map(|e| &e.config).collect();
                let mut promoted: Vec<&Config> = evals.iter().map(|e| &e.config).collect();
                let key = |c: &&Config| (x(c, "x1").to_bits(), x(c, "x2").to_bits());
                best.sort_by_key(key);
                promoted.sort_by_key(key);
                assert_eq!(best, promoted, "bracket {bracket} stage {stage}");
            }
        }
    }
    assert_eq!(outcome.evaluations.len(), expected_total);
    assert_eq!(
        outcome.total_budget,
        outcome.evaluations.iter().map(|e| e.budget).sum::<f64>()
    );
    // The model takes over once budget 1 has 2(d+1) = 6 results.
    assert!(outcome
        .evaluations
        .iter()
        .any(|e| e.origin == Origin::Model));
    // The incumbent sits on the largest budget reached, best loss there.
    let inc = outcome.incumbent.unwrap();
    assert_eq!(inc.budget, 27.0);
    let best27 = outcome
        .evaluations
        .iter()
        .filter(|e| e.budget == 27.0)
        .map(|e| e.loss.unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(inc.loss, best27);
    assert_eq!(outcome.trajectory.last().unwrap().loss, inc.loss);
}

#[test]
fn the_ordered_schedule_reproduces_a_parallel_run_whatever_the_timing_or_threads() {
    let s = ordered(settings(1.0, 9.0, 6, 3, 5));
    let first = Arc::new(Jittery::new());
    let a = run(&s, first.clone());
    let b = run(&s, Arc::new(Jittery::new()));
    assert_eq!(key(&a), key(&b));
    assert_eq!(
        first.max_active.load(Ordering::SeqCst),
        3,
        "three workers evaluate at once"
    );
    assert_eq!(first.calls.load(Ordering::SeqCst), a.evaluations.len());
    // One thread executing the same three-worker schedule: same evaluations.
    let single = Arc::new(Jittery::new());
    let (c, _) = run_with_events(&s, single.clone(), Some(1));
    assert_eq!(key(&a), key(&c));
    assert_eq!(single.max_active.load(Ordering::SeqCst), 1);
    let other_seed = run(
        &ordered(settings(1.0, 9.0, 6, 3, 6)),
        Arc::new(Jittery::new()),
    );
    assert_ne!(key(&a), key(&other_seed));
}

#[test]
fn with_one_worker_both_schedules_are_the_same_run() {
    let s = settings(1.0, 9.0, 5, 1, 8);
    let (a, async_events) = run_with_events(&s, Arc::new(Jittery::new()), None);
    let (o, ordered_events) = run_with_events(&ordered(s), Arc::new(Jittery::new()), None);
    assert_eq!(key(&a), key(&o));
    assert!(a.evaluations.iter().any(|e| e.origin == Origin::Model));
    // Same decisions in the same order.
    let order = |events: &[Event]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Started { job, .. } => Some(format!("start {job}")),
                Event::Finished { evaluation, .. } => Some(format!("apply {}", evaluation.job)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(order(&async_events), order(&ordered_events));
}

/// Replays a run's events and counts the times the master blocked for a
/// result while a worker was free and a job could have been handed out (a
/// bracket not started yet, a stage-0 slot not handed out, or a complete rung
/// whose next rung has not started). Also returns the busy-worker counts
/// seen while the last bracket had not started. Assumes no failures.
fn idle_while_work_exists(events: &[Event], s: &TuneSettings) -> (usize, Vec<usize>) {
    let ladder = budget_ladder(s.min_budget, s.max_budget, s.eta).unwrap();
    let mut handed: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut finished: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let (mut idle, mut busy_before_last) = (0, Vec::new());
    for event in events {
        match event {
            Event::Started { bracket, stage, .. } => {
                *handed.entry((*bracket, *stage)).or_default() += 1
            }
            Event::Finished { evaluation: e, .. } => {
                *finished.entry((e.bracket, e.stage)).or_default() += 1
            }
            Event::Waiting { busy } => {
                let brackets = handed.keys().map(|k| k.0 + 1).max().unwrap_or(0);
                let runnable = brackets < s.iterations
                    || (0..brackets).any(|b| {
                        let sizes = bracket_plan(&ladder, s.eta, b).sizes;
                        let stage = handed
                            .keys()
                            .filter(|k| k.0 == b)
                            .map(|k| k.1)
                            .max()
                            .unwrap();
                        let sent = handed[&(b, stage)];
                        let done = finished.get(&(b, stage)).copied().unwrap_or(0);
                        sent < sizes[stage] || (done == sizes[stage] && stage + 1 < sizes.len())
                    });
                idle += (*busy < s.workers && runnable) as usize;
                if brackets < s.iterations {
                    busy_before_last.push(*busy);
                }
            }
            Event::Warning(_) => {}
        }
    }
    (idle, busy_before_last)
}

#[test]
fn async_workers_never_idle_while_work_exists() {
    // Evaluation times from 0.2 to 4.4 ms: results come back out of order.
    let s = settings(1.0, 9.0, 4, 3, 2);
    let (outcome, events) = run_with_events(&s, Arc::new(Jittery::new()), None);
    let planned: usize = (0..4)
        .map(|i| {
            bracket_plan(&budget_ladder(1.0, 9.0, 3).unwrap(), 3, i)
                .sizes
                .iter()
                .sum::<usize>()
        })
        .sum();
    assert_eq!(outcome.evaluations.len(), planned);
    let (idle, busy_before_last) = idle_while_work_exists(&events, &s);
    assert_eq!(idle, 0, "a worker waited while a job could run");
    assert!(!busy_before_last.is_empty());
    assert!(
        busy_before_last.iter().all(|&b| b == 3),
        "all three workers busy until the last bracket: {busy_before_last:?}"
    );
    // Under the async schedule a waiting master's busy count is exactly the
    // jobs started and not finished, so the replay above sees the real state.
    let (mut started, mut done) = (0, 0);
    for e in &events {
        match e {
            Event::Started { .. } => started += 1,
            Event::Finished { .. } => done += 1,
            Event::Waiting { busy } => assert_eq!(*busy, started - done),
            Event::Warning(_) => {}
        }
    }
    // The same measure catches the ordered schedule's workers waiting behind
    // an older, slower job.
    let s = ordered(s);
    let (_, events) = run_with_events(&s, Arc::new(Jittery::new()), None);
    let (idle, _) = idle_while_work_exists(&events, &s);
    assert!(idle > 0, "the ordered schedule idles");
}

#[test]
fn the_next_bracket_starts_while_the_current_one_waits() {
    // 1 -> 9 at eta 3: bracket 0 runs 9 configs, then 3, then 1. With four
    // workers, the 4th slot during stage 1 must go to bracket 1.
    let s = settings(1.0, 9.0, 3, 4, 1);
    let mut events = Vec::new();
    let mut record = |e: &Event| events.push(e.clone());
    let options = RunOptions {
        on_event: Some(&mut record),
        ..RunOptions::default()
    };
    bohb::run(&s, Arc::new(Jittery::new()), options).unwrap();
    let last_of_bracket0 = events
        .iter()
        .rposition(|e| matches!(e, Event::Finished { evaluation, .. } if evaluation.bracket == 0))
        .unwrap();
    let first_of_bracket1 = events
        .iter()
        .position(|e| matches!(e, Event::Started { bracket: 1, .. }))
        .unwrap();
    assert!(first_of_bracket1 < last_of_bracket0);
    let max_running = events
        .iter()
        .filter_map(|e| match e {
            Event::Started { running, .. } => Some(*running),
            _ => None,
        })
        .max();
    assert_eq!(max_running, Some(4));
}

/// Fails in three ways depending on the configuration.
struct Flaky;

impl Objective for Flaky {
    fn evaluate(
        &self,
        config: &Config,
        budget: f64,
        _ctx: &EvalContext,
    ) -> Result<EvalResult, EvalError> {
        let (x1, x2) = (x(config, "x1"), x(config, "x2"));
        if x1 < -2.0 {
            return Err(format!("diverged at x1 = {x1:.3}").into());
        }
        if x2 > 12.0 {
            return Ok(EvalResult { loss: f64::NAN });
        }
        if x1 > 8.0 && budget > 1.0 {
            panic!("out of memory (simulated)");
        }
        Ok(EvalResult {
            loss: Branin::value(x1, x2),
        })
    }
}

#[test]
fn failures_are_recorded_with_their_message_and_never_promoted() {
    let s = settings(1.0, 9.0, 6, 2, 3);
    let outcome = run(&s, Arc::new(Flaky));
    let failed: Vec<&bohb::Evaluation> = outcome
        .evaluations
        .iter()
        .filter(|e| e.loss.is_none())
        .collect();
    assert_eq!(outcome.failures, failed.len());
    let messages: Vec<&str> = failed.iter().map(|e| e.error.as_deref().unwrap()).collect();
    assert!(messages.iter().any(|m| m.starts_with("diverged at x1")));
    assert!(messages.iter().any(|m| m.contains("non-finite loss NaN")));
    assert!(messages
        .iter()
        .any(|m| m.contains("panicked: out of memory (simulated)")));
    // A failed config never appears at a later stage of its bracket.
    for f in &failed {
        assert!(!outcome
            .evaluations
            .iter()
            .any(|e| e.bracket == f.bracket && e.stage > f.stage && e.config == f.config));
    }
    assert!(outcome.incumbent.unwrap().loss.is_finite());
}

struct AlwaysFails;

impl Objective for AlwaysFails {
    fn evaluate(&self, _: &Config, _: f64, ctx: &EvalContext) -> Result<EvalResult, EvalError> {
        Err(format!("job {} crashed", ctx.job).into())
    }
}

#[test]
fn max_failures_stops_the_run_with_a_clear_error() {
    // Ordered: the third failure applied is job 2 whatever the timing.
    let s = ordered(settings(1.0, 9.0, 2, 2, 0));
    let options = RunOptions {
        max_failures: Some(3),
        ..RunOptions::default()
    };
    let err = bohb::run(&s, Arc::new(AlwaysFails), options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 evaluations failed (--max-failures 3)"),
        "{err}"
    );
    assert!(err.contains("job 2 crashed"), "{err}");
}

#[test]
fn bad_settings_are_errors_not_panics() {
    let mut s = settings(1.0, 9.0, 2, 0, 0);
    assert!(bohb::run(&s, Arc::new(Flaky), RunOptions::default())
        .unwrap_err()
        .to_string()
        .contains("workers"));
    s.workers = 1;
    s.min_budget = 10.0;
    assert!(bohb::run(&s, Arc::new(Flaky), RunOptions::default())
        .unwrap_err()
        .to_string()
        .contains("exceeds"));
    s.min_budget = 1.0;
    for threads in [0, 2] {
        let options = RunOptions {
            threads: Some(threads),
            ..RunOptions::default()
        };
        let err = bohb::run(&s, Arc::new(Flaky), options).unwrap_err();
        assert!(
            err.to_string().contains("threads must be in 1..=1"),
            "{err}"
        );
    }
    s.model.random_fraction = 1.5;
    assert!(bohb::run(&s, Arc::new(Flaky), RunOptions::default()).is_err());
}

/// sgd needs momentum near 0.9; adam has no momentum and a fixed loss.
struct Conditional;

impl Objective for Conditional {
    fn evaluate(&self, config: &Config, _: f64, _: &EvalContext) -> Result<EvalResult, EvalError> {
        let lr = x(config, "lr").log10();
        let loss = match config["optimizer"].as_str() {
            Some("sgd") => (x(config, "momentum") - 0.9).abs() + (lr + 2.0).abs() * 0.1,
            Some("adam") if !config.contains_key("momentum") => 0.5,
            other => return Err(format!("bad configuration {other:?}: {config:?}").into()),
        };
        Ok(EvalResult { loss })
    }
}

#[test]
fn conditional_parameters_run_end_to_end() {
    let space = bohb::Space::from_json_str(
        r#"[
        {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam"]},
        {"name": "momentum", "type": "float", "low": 0, "high": 1,
         "condition": {"parent": "optimizer", "values": ["sgd"]}},
        {"name": "lr", "type": "float", "low": 0.0001, "high": 1, "log": true}
    ]"#,
    )
    .unwrap();
    let s = TuneSettings {
        space,
        ..ordered(settings(1.0, 9.0, 9, 2, 4))
    };
    let outcome = run(&s, Arc::new(Conditional));
    assert_eq!(
        outcome.failures, 0,
        "every configuration respects its condition"
    );
    let model_based: Vec<&bohb::Evaluation> = outcome
        .evaluations
        .iter()
        .filter(|e| e.origin == Origin::Model)
        .collect();
    assert!(model_based.len() >= 10, "{}", model_based.len());
    let sgd = model_based
        .iter()
        .filter(|e| e.config.contains_key("momentum"))
        .count();
    assert!(
        sgd * 3 >= model_based.len() * 2,
        "the model prefers the branch with the better losses: {sgd}/{}",
        model_based.len()
    );
    let best = outcome.incumbent.unwrap();
    assert!(
        best.loss < 0.25,
        "better than any adam configuration (0.5): {best:?}"
    );
}

//! The `convformer` binary end to end on the built-in trace: train writes the
//! run directory, eval and predict read it, bad requests get clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convformer"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn real(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/borg")
        .join(rel)
        .display()
        .to_string()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cf-cli-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary and asserts it succeeded (its output is the message).
fn succeeds(args: &[&str]) -> Output {
    let o = bin(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

/// Runs the binary and asserts it failed with every one of `needles` in its output.
fn fails_saying(args: &[&str], needles: &[&str]) {
    let o = bin(args);
    assert!(!o.status.success(), "{args:?} succeeded: {}", text(&o));
    for n in needles {
        assert!(text(&o).contains(n), "{args:?}: no {n:?} in {}", text(&o));
    }
}

/// Writes `body` to `dir/name` and returns the path.
fn write_file(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// A config of a small model ([conv_filters, num_heads, ff_dim]) for short runs.
fn small_config(dir: &Path, [filters, heads, ff]: [usize; 3], batch: usize) -> String {
    let body = format!(
        r#"{{"model": {{"conv_filters": {filters}, "num_heads": {heads}, "ff_dim": {ff}}}, "train": {{"batch_size": {batch}}}}}"#
    );
    write_file(dir, "small.json", &body)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn train_eval_predict_round_trip() {
    let dir = temp("run");
    let cfg = small_config(&dir, [12, 3, 24], 128);
    let run = dir.join("run");
    let run_s = run.display().to_string();
    let o = succeeds(&[
        "train", "--out", &run_s, "--epochs", "2", "--quiet", "--config", &cfg,
    ]);
    if convformer::cuda::driver::probe_driver().is_err() {
        // The default --device auto falls back to the CPU, saying so once.
        assert_eq!(text(&o).matches("using the CPU").count(), 1, "{}", text(&o));
    }
    assert!(
        text(&o).contains("convformer") && text(&o).contains("naive"),
        "{}",
        text(&o)
    );
    for f in [
        "model.safetensors",
        "config.json",
        "preprocess.json",
        "metrics.json",
        "loss.png",
        "actual_vs_predicted.png",
        "reservation.png",
        "calibration.json",
        "checkpoint.safetensors",
    ] {
        let len = std::fs::metadata(run.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f} missing or empty");
    }
    let png = std::fs::read(run.join("loss.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let metrics = read_json(&run.join("metrics.json"));
    for split in ["train", "val", "test"] {
        for key in ["model_trace", "model_scaled", "naive_trace", "ridge_trace"] {
            let mae = metrics[split][key]["mae"].as_f64();
            assert!(
                mae.is_some_and(|m| m.is_finite() && m > 0.0),
                "{split}.{key}: {metrics}"
            );
        }
    }
    assert_eq!(metrics["history"].as_array().unwrap().len(), 2);

    // eval on generated data of the same format.
    let csv = dir.join("series.csv").display().to_string();
    succeeds(&[
        "data",
        "synth",
        "--format",
        "instance-usage",
        "--rows",
        "400",
        "--seed",
        "3",
        "--out",
        &csv,
    ]);
    let o = succeeds(&["eval", "--model", &run_s, "--data", &csv, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        report["test"]["model_trace"]["r2"].as_f64().is_some(),
        "{report}"
    );
    // By default every window of the new data is the test split...
    assert!(
        report["train"].is_null() && report["val"].is_null(),
        "{report}"
    );
    assert!(report["evaluated"]
        .as_str()
        .unwrap()
        .contains("every window"));
    // ...and ridge and every margin are the run's own, fitted on nothing of it.
    let calibration = read_json(&run.join("calibration.json"));
    assert_eq!(report["ridge_lambda"], calibration["ridge"]["lambda"]);
    let test_rows = report["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["split"] == "test")
        .expect("test reservations")["rows"]
        .as_array()
        .unwrap()
        .clone();
    let stored = calibration["calibrations"].as_array().unwrap();
    assert_eq!(test_rows.len(), stored.len());
    for (row, cal) in test_rows.iter().zip(stored) {
        assert_eq!(row["predictor"], cal["predictor"]);
        assert_eq!(row["margin"], cal["margin"], "{row}");
        let cov = row["metrics"]["coverage"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&cov), "{row}");
    }
    // `--split` re-splits the file as at training time instead.
    let o = succeeds(&["eval", "--model", &run_s, "--data", &csv, "--split"]);
    assert!(text(&o).contains("val split"), "{}", text(&o));
    assert!(text(&o).contains("reservations"), "{}", text(&o));

    let preds = dir.join("preds.csv");
    let preds_s = preds.display().to_string();
    succeeds(&[
        "predict", "--model", &run_s, "--data", &csv, "--out", &preds_s,
    ]);
    let body = std::fs::read_to_string(&preds).unwrap();
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("id,actual,prediction,reserved_q95,reserved_q99")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() > 100);
    for r in &rows {
        let cells: Vec<&str> = r.split(',').collect();
        // The id keeps its joinable form: <collection>-<instance>@<time>.
        let (key, time) = cells[0].split_once('@').unwrap();
        assert!(key.contains('-') && time.parse::<u64>().is_ok(), "{r}");
        for c in &cells[2..] {
            assert!(c.parse::<f32>().unwrap().is_finite(), "{r}");
        }
    }

    // A finished run is not replaced without --force.
    fails_saying(
        &["train", "--out", &run_s, "--epochs", "1", "--quiet"],
        &["already holds a run", "--force"],
    );

    // A kaggle file given to a series model is refused with what it expected.
    let kaggle = real("kaggle_head400.csv");
    fails_saying(
        &[
            "predict", "--model", &run_s, "--data", &kaggle, "--out", &preds_s,
        ],
        &["trained on instance-usage"],
    );

    // Resuming a finished run trains nothing more and gives the same model.
    let before = std::fs::read(run.join("model.safetensors")).unwrap();
    succeeds(&["train", "--resume", &run_s, "--quiet"]);
    assert_eq!(
        before,
        std::fs::read(run.join("model.safetensors")).unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn clear_errors_for_bad_requests() {
    let dir = temp("bad");
    let out = dir.join("r").display().to_string();
    // Without a driver (this machine), --device cuda says what is missing.
    if convformer::cuda::driver::probe_driver().is_err() {
        fails_saying(
            &["train", "--out", &out, "--device", "cuda"],
            &["no NVIDIA driver"],
        );
        for cmd in ["eval", "predict"] {
            let mut args = vec![cmd, "--model", &out, "--data", &out, "--device", "cuda"];
            if cmd == "predict" {
                args.extend(["--out", &out]);
            }
            fails_saying(&args, &["no NVIDIA driver"]);
        }
    }
    fails_saying(
        &["train", "--out", &out, "--loss", "quantile:2"],
        &["quantile"],
    );
    for bad in ["1.5", "0", "1", "-0.2", "nan"] {
        fails_saying(
            &["train", "--out", &out, "--reserve", bad],
            &["strictly between 0 and 1"],
        );
    }
    fails_saying(
        &["train", "--out", &out, "--reserve", "high"],
        &["--reserve"],
    );
    let cfg = write_file(&dir, "c.json", "{\"model\": {\"conv_filter\": 3}}");
    fails_saying(
        &["train", "--out", &out, "--config", &cfg],
        &["c.json:1:", "conv_filter"],
    );
    let nothing = dir.join("nothing").display().to_string();
    fails_saying(
        &[
            "eval",
            "--model",
            &nothing,
            "--data",
            &real("kaggle_head400.csv"),
        ],
        &["config.json"],
    );
    let o = succeeds(&["devices"]);
    assert!(
        text(&o).contains("cpu:") && text(&o).contains("cuda"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn calibration_scope_and_margin_form_are_recorded_and_per_instance_is_never_narrower() {
    // One short run per scope on the built-in trace, whole instances in validation.
    let dir = temp("scope");
    let cfg_s = small_config(&dir, [8, 2, 16], 256);
    let margins = |scope: &str, form: &str| {
        let run = dir.join(format!("{scope}-{form}"));
        let run_s = run.display().to_string();
        let mut args = vec![
            "train",
            "--out",
            &run_s,
            "--epochs",
            "1",
            "--quiet",
            "--split",
            "group",
            "--config",
            &cfg_s,
            "--calibrate",
            scope,
        ];
        if form != "default" {
            args.extend(["--margin", form]);
        }
        succeeds(&args);
        let cal = read_json(&run.join("calibration.json"));
        assert_eq!(cal["scope"], scope);
        let calibrations = cal["calibrations"].as_array().unwrap().clone();
        let network_form = if form == "default" {
            "forecast-and-spread"
        } else {
            form
        };
        assert_eq!(cal["model_margin"], network_form);
        // The two terms of the default margin, fitted on the training errors.
        let mix = &cal["spread"]["mix"];
        let terms = [&mix["per_forecast"], &mix["per_window_std"]].map(|t| t.as_f64().unwrap());
        assert!(
            terms.iter().all(|&t| t >= 0.0) && terms.iter().any(|&t| t > 0.0),
            "{mix}"
        );
        for c in calibrations
            .iter()
            .filter(|c| c["predictor"] == "convformer")
        {
            assert_eq!(c["margin"]["form"], network_form, "{c}");
        }
        calibrations
    };
    let (global, per) = (
        margins("global", "default"),
        margins("per-instance", "default"),
    );
    let learned = margins("global", "learned-spread");
    assert_eq!(learned.len(), global.len());
    assert_eq!(global.len(), per.len());
    let mut wider = 0;
    for (g, p) in global.iter().zip(&per) {
        assert_eq!((&g["predictor"], &g["q"]), (&p["predictor"], &p["q"]));
        if g["margin"].is_null() {
            continue;
        }
        let (kg, kp) = (
            g["margin"]["k"].as_f64().unwrap(),
            p["margin"]["k"].as_f64().unwrap(),
        );
        assert!(kp >= kg, "{g} vs {p}");
        wider += (kp > kg) as usize;
    }
    assert!(wider > 0, "some margin must widen for the hardest instance");
    let x = dir.join("x").display().to_string();
    fails_saying(
        &["train", "--out", &x, "--calibrate", "local"],
        &["per-instance"],
    );
    fails_saying(
        &["train", "--out", &x, "--margin", "relative"],
        &["forecast-and-spread", "multiplicative", "learned-spread"],
    );
}

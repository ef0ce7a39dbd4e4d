//! `convformer tune --objective convformer` end to end on one real series: every
//! evaluation trains ConvFormerNet, the best configuration is trained into
//! `final/`, and a space naming an unknown hyperparameter fails loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

const SERIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/borg/instance_usage/job382_task2-900078000000-1166034000000.csv"
);

fn tune(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_convformer"))
        .args([
            "tune",
            "--data",
            SERIES,
            "--min-budget",
            "1",
            "--max-budget",
            "3",
        ])
        .args([
            "--iterations",
            "1",
            "--workers",
            "2",
            "--seed",
            "5",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .expect("the convformer binary runs")
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convformer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn tune_trains_convformer_and_writes_the_final_model() {
    let out = fresh_dir("tune-convformer");
    let run = tune(&out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "tune failed: {stderr}");

    let best: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("best.json")).unwrap()).unwrap();
    assert_eq!(best["failures"], 0, "{best}");
    // Bracket s = 1 of (1, 3, eta 3): three configurations at 1 epoch, the best at 3.
    assert_eq!(best["evaluations"], 4, "{best}");
    let incumbent = &best["incumbent"];
    assert_eq!(incumbent["budget"], 3.0);
    let loss = incumbent["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "validation MAE {loss}");
    for name in [
        "conv_filters",
        "num_heads",
        "ff_dim",
        "dropout_rate",
        "learning_rate",
    ] {
        assert!(
            incumbent["config"].get(name).is_some(),
            "{name} missing in {incumbent}"
        );
    }

    // final/ is an ordinary run directory trained on the incumbent's configuration.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("final/config.json")).unwrap()).unwrap();
    assert_eq!(
        config["model"]["conv_filters"],
        incumbent["config"]["conv_filters"]
    );
    assert_eq!(
        config["model"]["num_heads"],
        incumbent["config"]["num_heads"]
    );
    assert_eq!(config["train"]["epochs"], 3);
    for file in [
        "model.safetensors",
        "metrics.json",
        "preprocess.json",
        "loss.png",
    ] {
        assert!(
            out.join("final").join(file).is_file(),
            "final/{file} missing"
        );
    }
    // default/ holds the default configuration at the same budget, and the
    // last lines say which of the two validated better.
    let default: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("default/config.json")).unwrap()).unwrap();
    assert_eq!(default["model"]["conv_filters"], 48);
    assert_eq!(default["train"]["epochs"], 3);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("the default configuration")
            && (stdout.contains("the tuned configuration is better")
                || stdout.contains("NOT better")),
        "{stdout}{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn unknown_hyperparameter_is_a_recorded_failure() {
    let out = fresh_dir("tune-bad-space");
    std::fs::create_dir_all(&out).unwrap();
    let space = out.join("space.json");
    std::fs::write(
        &space,
        r#"[{"name": "conv_filterz", "type": "int", "low": 8, "high": 16}]"#,
    )
    .unwrap();
    let run = tune(
        &out.join("run"),
        &["--space", space.to_str().unwrap(), "--max-failures", "1"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success(),
        "a misspelt hyperparameter must not tune silently"
    );
    let journal = std::fs::read_to_string(out.join("run/journal.jsonl")).unwrap();
    assert!(
        journal.contains("has no hyperparameter 'conv_filterz'"),
        "journal: {journal}\nstderr: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn tune_on_cuda_without_a_driver_is_a_clear_error() {
    if convformer::Device::cuda(0).is_ok() {
        println!("SKIPPED: a CUDA device is present, so --device cuda cannot fail here");
        return;
    }
    let out = fresh_dir("tune-cuda");
    let run = tune(&out, &["--device", "cuda"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success(),
        "tune --device cuda ran without a GPU"
    );
    assert!(stderr.to_lowercase().contains("driver"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

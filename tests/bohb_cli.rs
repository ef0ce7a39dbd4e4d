//! `convformer tune` as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("convformer-tune-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tune(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_convformer"))
        .arg("tune")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn branin_run_writes_journal_best_and_trajectory() {
    let out = scratch("branin");
    let o = tune(&["--objective", "branin"]);
    assert!(!o.status.success(), "--out is required");
    let o = Command::new(env!("CARGO_BIN_EXE_convformer"))
        .args([
            "tune",
            "--objective",
            "branin",
            "--min-budget",
            "1",
            "--max-budget",
            "9",
        ])
        .args([
            "--iterations",
            "6",
            "--workers",
            "2",
            "--seed",
            "4",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let header = stdout.lines().next().unwrap();
    for column in [
        "job",
        "bracket",
        "stage",
        "budget",
        "loss",
        "running",
        "finished",
        "incumbent",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(stdout.contains("best loss"), "{stdout}");
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    let loss = best["incumbent"]["loss"].as_f64().unwrap();
    assert!((0.397887..20.0).contains(&loss), "{loss}");
    assert_eq!(best["incumbent"]["budget"].as_f64(), Some(9.0));
    assert!(best["incumbent"]["config"]["x1"].is_f64());
    let png = std::fs::read(out.join("trajectory.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    assert_eq!(
        journal
            .lines()
            .filter(|l| l.contains("\"type\":\"result\""))
            .count() as u64,
        best["evaluations"].as_u64().unwrap()
    );
}

#[test]
fn a_bad_space_file_is_reported_with_its_position() {
    let out = scratch("space");
    let space = out.join("space.json");
    std::fs::write(
        &space,
        "[\n  {\"name\": \"conv_filters\", \"type\": \"int\", \"low\": 16}\n]\n",
    )
    .unwrap();
    let tune = |objective: &str| {
        Command::new(env!("CARGO_BIN_EXE_convformer"))
            .args(["tune", "--objective", objective, "--space"])
            .arg(&space)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = tune("convformer");
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("space.json: line 2, column"), "{stderr}");
    assert!(stderr.contains("high"), "names the missing field: {stderr}");
    // --space with a synthetic objective is refused rather than ignored.
    let o = tune("branin");
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("--space applies to --objective convformer only"));
}

#[test]
fn a_closed_stdout_does_not_stop_the_run() {
    let out = scratch("closed-stdout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_convformer"))
        .args([
            "tune",
            "--objective",
            "counting-ones",
            "--min-budget",
            "9",
            "--max-budget",
            "81",
        ])
        .args(["--iterations", "2", "--eval-delay-ms", "2", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // as `| head` does once it has its lines
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("best.json").exists());
}

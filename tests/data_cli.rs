//! `convformer data inspect|plots|synth` end to end on the real sets.

use std::path::Path;
use std::process::Command;

#[path = "support/real_rows.rs"]
mod real_rows;
use real_rows::{KAGGLE_HEAD as HEAD, SERIES_DIR as DIR};

fn convformer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_convformer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("convformer-cli-{}-{name}", std::process::id()))
}

#[test]
fn inspect_reports_counts_drops_and_missing() {
    let (ok, out, err) = convformer(&["data", "inspect", HEAD]);
    assert!(ok, "{err}");
    assert!(out.contains("records:  400"), "{out}");
    assert!(out.contains("samples:  399 of shape (36, 1)"));
    assert!(out.contains("[missing target: 1]"));
    let cpi = out
        .lines()
        .find(|l| l.starts_with("cycles_per_instruction "))
        .unwrap();
    assert_eq!(cpi.split_whitespace().nth(1), Some("125"));
    let (ok, out, _) = convformer(&["data", "inspect", DIR, "--window", "12"]);
    assert!(ok);
    assert!(
        out.contains("format:   instance-usage")
            && out.contains("records:  30080")
            && out.contains("instances: 10"),
        "{out}"
    );
}

#[test]
fn bad_rows_error_by_default_and_are_counted_with_skip() {
    let text = std::fs::read_to_string(HEAD)
        .unwrap()
        .replacen("0.0104217529296875,", "abc,", 1);
    let path = tmp("bad.csv");
    std::fs::write(&path, text).unwrap();
    let (ok, _, err) = convformer(&["data", "inspect", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.csv:") && err.contains("`assigned_memory`") && err.contains("\"abc\""),
        "{err}"
    );
    let (ok, out, err) = convformer(&[
        "data",
        "inspect",
        path.to_str().unwrap(),
        "--on-bad-row",
        "skip",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("skipped 1 bad rows"), "{err}");
    assert!(out.contains("[malformed cell: 1]"));
    assert!(
        out.contains("skipped by column: assigned_memory: malformed cell 1"),
        "{out}"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn inspect_counts_implausible_values_and_rounded_ids_per_column() {
    // One absurd usage (1e30) and the real rows as a spreadsheet re-saves them; the
    // skipped row is not counted as rounded.
    let text = std::fs::read(HEAD).unwrap();
    let sheet = convformer::data::spreadsheet::resave(&text, Path::new(HEAD)).unwrap();
    let sheet = String::from_utf8(sheet).unwrap().replacen(
        "'memory': 9.5367431640625e-07}",
        "'memory': 1e30}",
        1,
    );
    let path = tmp("sheet.csv");
    std::fs::write(&path, sheet).unwrap();
    let (ok, _, err) = convformer(&["data", "inspect", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("sheet.csv:") && err.contains("largest machine"),
        "{err}"
    );
    let p = path.to_str().unwrap();
    let (ok, out, err) = convformer(&["data", "inspect", p, "--on-bad-row", "skip"]);
    assert!(ok, "{err}");
    assert!(out.contains("implausible value 1"), "{out}");
    assert!(out.contains("records:  400"), "{out}");
    let rounded = out
        .lines()
        .find(|l| l.starts_with("rounded integers:"))
        .unwrap();
    assert!(
        rounded.contains("collection_id 399") && rounded.contains("may now be equal"),
        "{rounded}"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn plots_write_three_pngs_per_set() {
    for (name, input) in [("kaggle", HEAD), ("series", DIR)] {
        let out = tmp(&format!("plots-{name}"));
        let (ok, stdout, err) =
            convformer(&["data", "plots", input, "--out", out.to_str().unwrap()]);
        assert!(ok, "{err}");
        for png in [
            "histograms.png",
            "scatter_assigned_memory_vs_cpu.png",
            "correlation.png",
        ] {
            let bytes = std::fs::read(out.join(png)).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
            assert!(bytes.len() > 10_000, "{png} is only {} bytes", bytes.len());
            assert!(stdout.contains(png));
        }
        std::fs::remove_dir_all(out).unwrap();
    }
}

#[test]
fn synth_writes_files_the_loaders_read() {
    for format in ["kaggle", "instance-usage"] {
        let path = tmp(&format!("synth-{format}.csv"));
        let p = path.to_str().unwrap();
        let (ok, out, err) = convformer(&[
            "data", "synth", "--format", format, "--rows", "1500", "--seed", "9", "--out", p,
        ]);
        assert!(ok, "{err}");
        assert!(out.contains("wrote 1500"));
        let (ok, out, err) = convformer(&["data", "inspect", p]);
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("format:   {format}")) && out.contains("records:  1500"),
            "{out}"
        );
        std::fs::remove_file(Path::new(p)).unwrap();
    }
}

#[test]
fn synth_spreadsheet_writes_rows_a_spreadsheet_saved_and_inspect_counts_the_rounding() {
    for format in ["kaggle", "instance-usage"] {
        let plain = tmp(&format!("plain-{format}.csv"));
        let sheet = tmp(&format!("sheet-{format}.csv"));
        let args = |out: &Path, extra: &[&'static str]| {
            let mut a: Vec<String> = [
                "data", "synth", "--format", format, "--rows", "800", "--seed", "3",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            a.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
            a.extend(extra.iter().map(|s| s.to_string()));
            a
        };
        for (out, extra) in [(&plain, &[][..]), (&sheet, &["--spreadsheet"][..])] {
            let a = args(out, extra);
            let (ok, stdout, err) = convformer(&a.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(ok, "{err}");
            assert!(stdout.contains("wrote 800"), "{stdout}");
        }
        let plain_text = std::fs::read_to_string(&plain).unwrap();
        let sheet_text = std::fs::read_to_string(&sheet).unwrap();
        // Cells of the form d.ddddE+nn: the spreadsheet's integers.
        let exponent_cells = |text: &str| {
            text.split([',', '\n'])
                .filter(|c| {
                    let b = c.as_bytes();
                    b.len() == 10
                        && b[0].is_ascii_digit()
                        && b[1] == b'.'
                        && b[2..6].iter().all(u8::is_ascii_digit)
                        && &b[6..8] == b"E+"
                        && b[8..].iter().all(u8::is_ascii_digit)
                })
                .count()
        };
        assert_eq!(exponent_cells(&plain_text), 0, "{format}");
        assert!(exponent_cells(&sheet_text) >= 800, "{format}");
        let (ok, plain_out, err) = convformer(&["data", "inspect", plain.to_str().unwrap()]);
        assert!(ok, "{err}");
        let (ok, sheet_out, err) = convformer(&["data", "inspect", sheet.to_str().unwrap()]);
        assert!(ok, "{err}");
        assert!(sheet_out.contains("records:  800"), "{sheet_out}");
        assert!(!plain_out.contains("rounded integers:"), "{plain_out}");
        let rounded = sheet_out
            .lines()
            .find(|l| l.starts_with("rounded integers:"))
            .unwrap_or_else(|| panic!("{format}: no rounded line in\n{sheet_out}"));
        assert!(rounded.contains("may now be equal"), "{rounded}");
        std::fs::remove_file(plain).unwrap();
        std::fs::remove_file(sheet).unwrap();
    }
    let out = tmp("sheet.parquet");
    let (ok, _, err) = convformer(&[
        "data",
        "synth",
        "--format",
        "bigquery",
        "--spreadsheet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("--spreadsheet rewrites a generated CSV"),
        "{err}"
    );
}

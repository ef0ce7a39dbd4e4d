//! The BigQuery `instance_usage` reader: the shared series (Google ClusterData 2019,
//! CC-BY 4.0) re-encoded as raw-table exports load and train exactly like their CSV;
//! BigQuery's JSON forms, nulls and empty distributions; located errors for each
//! outlier class, counted skips; shards in directories and globs; no panic on
//! mutated bytes.

use convformer::data::bigquery::write::{reencode, ExportOptions, ParquetCompression};
use convformer::data::{self, DataError, Dataset, Format, LoadOptions, OnBadRow};
use proptest::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/real_rows.rs"]
mod real_rows;
use real_rows::{cell_error, real_series, with_cell, write_tmp, ONE_SERIES, SERIES_DIR as DIR};

fn tmp_dir(name: &str) -> PathBuf {
    real_rows::tmp_dir("bigquery", name)
}

fn skip() -> LoadOptions {
    LoadOptions {
        on_bad_row: OnBadRow::Skip,
        ..LoadOptions::default()
    }
}

fn export(from: &str, out: &Path, compression: ParquetCompression) -> PathBuf {
    let opts = ExportOptions {
        compression,
        quirks: None,
    };
    reencode(Path::new(from), out, &opts).unwrap();
    out.to_path_buf()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Same samples, bit for bit, in the same order.
fn assert_same_samples(a: &Dataset, b: &Dataset, what: &str) {
    assert_eq!(a.format, b.format, "{what}");
    assert_eq!((a.seq_len, a.channels), (b.seq_len, b.channels), "{what}");
    assert_eq!(a.feature_names, b.feature_names, "{what}");
    assert_eq!(a.len(), b.len(), "{what}");
    assert!(bits(&a.inputs) == bits(&b.inputs), "{what}: inputs differ");
    assert!(
        bits(&a.targets) == bits(&b.targets),
        "{what}: targets differ"
    );
    assert!(bits(&a.naive) == bits(&b.naive), "{what}: naive differs");
    assert_eq!(a.ids, b.ids, "{what}");
    assert_eq!(a.groups, b.groups, "{what}");
    assert_eq!(a.order, b.order, "{what}");
    assert_eq!(a.report.records, b.report.records, "{what}");
    assert_eq!(a.report.missing, b.report.missing, "{what}");
    assert_eq!(a.report.dropped, b.report.dropped, "{what}");
}

#[test]
fn shared_series_as_exports_load_like_the_csv() {
    let csv = real_series();
    assert!(csv.len() > 20_000 && csv.report.missing.iter().any(|&m| m > 0));
    let dir = tmp_dir("shared");
    for (name, compression) in [
        ("series.json", ParquetCompression::Snappy),
        ("series.json.gz", ParquetCompression::Snappy),
        ("series.parquet", ParquetCompression::Snappy),
        ("series-zstd.parquet", ParquetCompression::Zstd),
        ("series-gzip.parquet", ParquetCompression::Gzip),
        ("series-plain.parquet", ParquetCompression::Uncompressed),
    ] {
        let file = export(DIR, &dir.join(name), compression);
        assert_eq!(
            data::detect_format(&file).unwrap(),
            Format::BigQuery,
            "{name}"
        );
        let ds = data::load(&file, Format::BigQuery, &LoadOptions::default()).unwrap();
        assert_same_samples(&csv, &ds, name);
        assert_eq!(ds.format, Format::InstanceUsage);
        assert_eq!(ds.report.source_format, Some(Format::BigQuery));
    }
    // The JSON holds INT64 as strings, distributions with p100, and empty ones.
    let text = std::fs::read_to_string(dir.join("series.json")).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("{\"start_time\":\"300000000\""),
        "{first}"
    );
    assert!(first.contains("\"cpu_usage_distribution\":["));
    let value: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(
        value["cpu_usage_distribution"].as_array().unwrap().len(),
        11
    );
    assert_eq!(
        value["tail_cpu_usage_distribution"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    assert_eq!(text.matches("\"cpu_usage_distribution\":[]").count(), 8);
}

#[test]
fn cli_synth_from_writes_an_export_that_inspects_like_the_csv() {
    let dir = tmp_dir("cli");
    let out = dir.join("job382_task2.json.gz");
    let bin = env!("CARGO_BIN_EXE_convformer");
    let status = Command::new(bin)
        .args([
            "data", "synth", "--format", "bigquery", "--from", ONE_SERIES, "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let inspect = |path: &Path| {
        let o = Command::new(bin)
            .args(["data", "inspect"])
            .arg(path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let (bq, csv) = (inspect(&out), inspect(Path::new(ONE_SERIES)));
    // Everything but the file line (name and size) is the same.
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("files:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&bq), body(&csv));
    // --from needs --format bigquery.
    let o = Command::new(bin)
        .args([
            "data", "synth", "--format", "kaggle", "--from", ONE_SERIES, "--out",
        ])
        .arg(dir.join("x.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--format bigquery"));
}

#[test]
fn an_export_trains_to_the_same_metrics_as_its_csv() {
    use convformer::nn::ModelConfig;
    use convformer::train::run::{prepare, test_accuracy};
    use convformer::train::{fit, FitOptions, TrainConfig};
    let dir = tmp_dir("train");
    let file = export(
        ONE_SERIES,
        &dir.join("one.parquet"),
        ParquetCompression::Zstd,
    );
    let model = ModelConfig {
        conv_filters: 8,
        num_heads: 2,
        ff_dim: 16,
        dense_units: 8,
        ..ModelConfig::default()
    };
    let train = TrainConfig {
        epochs: 2,
        batch_size: 32,
        lr: 1e-3,
        patience: 0,
        ..TrainConfig::default()
    };
    let metrics = |ds: &Dataset| {
        let data = prepare(ds, 5, None, true).unwrap();
        let out = fit(&model, &train, &data, &FitOptions::default()).unwrap();
        let test = test_accuracy(&out.model, &out.store, &data, 256)
            .unwrap()
            .unwrap();
        (
            test.model_trace.mae.to_bits(),
            test.model_trace.rmse.to_bits(),
        )
    };
    let csv = data::load(
        Path::new(ONE_SERIES),
        Format::InstanceUsage,
        &LoadOptions::default(),
    )
    .unwrap();
    let want = metrics(&csv);
    let json = export(
        ONE_SERIES,
        &dir.join("one.json"),
        ParquetCompression::Snappy,
    );
    let gz = export(
        ONE_SERIES,
        &dir.join("one.json.gz"),
        ParquetCompression::Snappy,
    );
    for file in [&file, &json, &gz] {
        let bq = data::load(file, Format::BigQuery, &LoadOptions::default()).unwrap();
        assert_eq!(metrics(&bq), want, "{}", file.display());
    }
}

/// One NDJSON row of instance 7 of collection 42 at window `t`, usage varying with it.
fn row(t: u64) -> String {
    let m = 0.001 + 1e-5 * (t % 17) as f64;
    let dist: Vec<String> = (0..11)
        .map(|k| format!("{}", 0.0005 + 1e-4 * k as f64))
        .collect();
    let tail: Vec<String> = (0..9)
        .map(|k| format!("{}", 0.0016 + 1e-5 * k as f64))
        .collect();
    format!(
        "{{\"start_time\":\"{}\",\"end_time\":\"{}\",\"collection_id\":\"42\",\"instance_index\":\"7\",\
         \"machine_id\":\"123\",\"average_usage\":{{\"cpus\":0.002,\"memory\":{m}}},\
         \"maximum_usage\":{{\"cpus\":0.004,\"memory\":{mx}}},\"random_sample_usage\":{{\"cpus\":0.001}},\
         \"assigned_memory\":0.003,\"sample_rate\":1.0,\"cpu_usage_distribution\":[{}],\
         \"tail_cpu_usage_distribution\":[{}],\"resource_request\":{{\"cpus\":0.02,\"memory\":0.004}}}}",
        300_000_000 * t,
        300_000_000 * (t + 1),
        dist.join(","),
        tail.join(","),
        mx = m * 1.1,
    )
}

fn rows(n: u64) -> String {
    (1..=n).map(|t| row(t) + "\n").collect()
}

fn load_text(dir: &Path, name: &str, text: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let file = write_tmp(dir, name, text.as_bytes());
    data::load(&file, Format::BigQuery, opts)
}

#[test]
fn int64_as_strings_or_numbers_and_numeric_strings_read_alike() {
    let dir = tmp_dir("int64");
    let text = rows(30);
    let as_strings = load_text(&dir, "s.json", &text, &LoadOptions::default()).unwrap();
    let as_numbers = text
        .replace("\"collection_id\":\"42\"", "\"collection_id\":42")
        .replace("\"instance_index\":\"7\"", "\"instance_index\":7.0");
    let numbers: String = as_numbers
        .lines()
        .map(|l| {
            let (head, rest) = l.split_once("\"start_time\":\"").unwrap();
            let (t, rest) = rest.split_once('"').unwrap();
            format!("{head}\"start_time\":{t}{rest}\n")
        })
        .collect();
    let as_numbers = load_text(&dir, "n.json", &numbers, &LoadOptions::default()).unwrap();
    assert_same_samples(&as_strings, &as_numbers, "INT64 as numbers");
    let float_strings = text.replace("\"assigned_memory\":0.003", "\"assigned_memory\":\"0.003\"");
    let float_strings = load_text(&dir, "f.json", &float_strings, &LoadOptions::default()).unwrap();
    assert_same_samples(&as_strings, &float_strings, "floats as strings");
    assert_eq!(as_strings.len(), 30 - 12);
    assert!(as_strings.ids[0].starts_with("42-7@"));
    // Unused fields are not read: junk in them rejects nothing.
    let junk = text.replace(
        "\"machine_id\":\"123\"",
        "\"machine_id\":{\"x\":[true,null]}",
    );
    let junk = load_text(&dir, "junk.json", &junk, &LoadOptions::default()).unwrap();
    assert_same_samples(&as_strings, &junk, "junk in unused fields");
}

#[test]
fn nulls_absent_fields_and_empty_distributions_are_missing() {
    let dir = tmp_dir("nulls");
    let mut lines: Vec<String> = rows(20).lines().map(String::from).collect();
    lines[0] = lines[0].replace("\"assigned_memory\":0.003", "\"assigned_memory\":null");
    lines[1] = lines[1].replace("\"cpus\":0.002,", "");
    let dist_start = lines[2].find("\"cpu_usage_distribution\"").unwrap();
    let dist_end = lines[2][dist_start..].find(']').unwrap() + dist_start + 1;
    lines[2].replace_range(dist_start..dist_end, "\"cpu_usage_distribution\":[]");
    let tail_start = lines[3].find(",\"tail_cpu_usage_distribution\"").unwrap();
    let tail_end = lines[3][tail_start..].find(']').unwrap() + tail_start + 1;
    lines[3].replace_range(tail_start..tail_end, "");
    lines[4] = lines[4].replace(
        ",\"resource_request\":{\"cpus\":0.02,\"memory\":0.004}",
        ",\"resource_request\":null",
    );
    lines[5] = lines[5].replace("\"average_usage\":{", "\"average_usage\":null,\"x\":{");
    let text = lines.join("\n");
    let ds = load_text(&dir, "nulls.json", &text, &LoadOptions::default()).unwrap();
    let missing = |name: &str| {
        ds.report.missing[data::SERIES_CHANNELS
            .iter()
            .position(|c| *c == name)
            .unwrap()]
    };
    assert_eq!(missing("assigned_memory"), 1);
    assert_eq!(missing("avg_cpu_usage"), 2);
    assert_eq!(missing("avg_memory_usage"), 1);
    assert_eq!(missing("p0_cpu_usage"), 1);
    assert_eq!(missing("p90_cpu_usage"), 1);
    assert_eq!(missing("p91_cpu_usage"), 1);
    assert_eq!(missing("memory_limit"), 1);
    assert_eq!(missing("cpu_limit"), 1);
    assert_eq!(missing("max_memory_usage"), 0);
    assert_eq!(ds.len(), 8);
    // The first sample's first step holds the NaN of line 1.
    assert!(ds.sample(0)[4].is_nan());
    // max_memory_usage of window 1 as written (m × 1.1), read through f64 as BigQuery's FLOAT.
    assert_eq!(ds.sample(0)[3], ((0.001f64 + 1e-5) * 1.1) as f32);
}

/// The error of loading `text` (a few good rows with line `bad_line` replaced).
fn error_of(name: &str, line: usize, edit: impl Fn(&str) -> String) -> DataError {
    let dir = tmp_dir("errors");
    let mut lines: Vec<String> = rows(16).lines().map(String::from).collect();
    lines[line - 1] = edit(&lines[line - 1]);
    let text = lines.join("\n") + "\n";
    let err = load_text(&dir, name, &text, &LoadOptions::default()).unwrap_err();
    // Under skip the row is counted under its reason and column, and the rest loads.
    let ds = load_text(&dir, name, &text, &skip()).unwrap();
    assert_eq!(ds.report.records, 16, "{name}");
    assert_eq!(
        ds.report.dropped_total(),
        1,
        "{name}: {:?}",
        ds.report.dropped
    );
    err
}

fn assert_cell(err: &DataError, name: &str, want_line: u64, want_column: &str, want_text: &str) {
    let (file, line, column, text) = cell_error(err);
    assert!(file.ends_with(name), "{file:?}");
    assert_eq!((line, column), (want_line, want_column), "{err}");
    assert!(text.contains(want_text), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{name}:{want_line}")) && msg.contains(want_column),
        "{msg}"
    );
}

#[test]
fn each_outlier_class_is_a_located_error_or_a_counted_skip() {
    let err = error_of("negative.json", 5, |l| {
        l.replace("\"cpus\":0.004", "\"cpus\":-0.004")
    });
    assert_cell(&err, "negative.json", 5, "maximum_usage.cpus", "-0.004");
    assert!(err.to_string().contains("negative"));
    let err = error_of("huge.json", 9, |l| {
        l.replace(
            "\"maximum_usage\":{\"cpus\":0.004,\"memory\":",
            "\"maximum_usage\":{\"cpus\":0.004,\"memory\":1e30,\"m\":",
        )
    });
    assert_cell(
        &err,
        "huge.json",
        9,
        "maximum_usage.memory",
        "1000000000000000000000000000000",
    );
    assert!(err.to_string().contains("largest machine"), "{err}");
    let err = error_of("type.json", 3, |l| {
        l.replace("\"assigned_memory\":0.003", "\"assigned_memory\":true")
    });
    assert_cell(&err, "type.json", 3, "assigned_memory", "a boolean");
    let err = error_of("record.json", 3, |l| {
        l.replace(
            "\"average_usage\":{\"cpus\":0.002,",
            "\"average_usage\":[1],\"z\":{\"cpus\":0.002,",
        )
    });
    assert_cell(&err, "record.json", 3, "average_usage", "an array");
    let err = error_of("int64.json", 7, |l| {
        l.replace("\"start_time\":\"", "\"start_time\":\"x")
    });
    assert_cell(&err, "int64.json", 7, "start_time", "x");
    let err = error_of("dist.json", 4, |l| {
        l.replacen("[0.0005,", "[\"Infinity\",", 1)
    });
    assert_cell(&err, "dist.json", 4, "cpu_usage_distribution", "Infinity");
    let err = error_of("short.json", 4, |l| l.replacen("[0.0005,", "[", 1));
    assert_cell(&err, "short.json", 4, "cpu_usage_distribution", "10 values");
    let err = error_of("truncated.json", 6, |l| l[..l.len() / 2].to_string());
    match &err {
        DataError::Record { file, line, .. } => {
            assert!(file.ends_with("truncated.json"));
            assert_eq!(*line, 6);
        }
        other => panic!("expected a record error, got {other:?}"),
    }
}

#[test]
fn skips_are_counted_per_column_and_reason() {
    let dir = tmp_dir("skips");
    let mut lines: Vec<String> = rows(40).lines().map(String::from).collect();
    lines[3] = lines[3].replace("\"cpus\":0.004", "\"cpus\":-1");
    lines[10] = lines[10].replace("\"cpus\":0.004", "\"cpus\":-2");
    lines[20] = lines[20].replace("\"assigned_memory\":0.003", "\"assigned_memory\":7");
    lines[30] = "{\"start_time\":".to_string();
    let ds = load_text(&dir, "skips.json", &lines.join("\n"), &skip()).unwrap();
    let bad = &ds.report.bad_cells;
    assert_eq!(bad["maximum_usage.cpus"]["negative value"], 2);
    assert_eq!(bad["assigned_memory"]["implausible value"], 1);
    assert_eq!(bad["(record)"]["malformed record"], 1);
    assert_eq!(ds.report.records, 40);
    assert_eq!(ds.report.dropped["negative value"], 2);
}

#[test]
fn corrupt_parquet_is_an_error_naming_the_file_and_row_group() {
    let dir = tmp_dir("parquet");
    let file = export(
        ONE_SERIES,
        &dir.join("ok.parquet"),
        ParquetCompression::Uncompressed,
    );
    let bytes = std::fs::read(&file).unwrap();
    // Bytes scribbled over the pages at a few places: the decoder errs or panics
    // inside (the panic is caught), and the load says where.
    let mut located = 0;
    for sixth in 1..6 {
        let mut broken = bytes.clone();
        let at = broken.len() * sixth / 6;
        for (k, b) in broken[at..at + 64].iter_mut().enumerate() {
            *b = k as u8;
        }
        let name = format!("broken{sixth}.parquet");
        let broken = write_tmp(&dir, &name, &broken);
        if let Err(err) = data::load(&broken, Format::BigQuery, &LoadOptions::default()) {
            let msg = err.to_string();
            assert!(msg.contains(&name), "{msg}");
            located += msg.contains("row group") as usize;
        }
    }
    assert!(located >= 2, "{located} of 5 corruptions located");
    let truncated = write_tmp(&dir, "truncated.parquet", &bytes[..bytes.len() - 100]);
    let err = data::load(&truncated, Format::BigQuery, &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("truncated.parquet") && msg.contains("not a readable Parquet file"),
        "{msg}"
    );
}

#[test]
fn parquet_values_are_located_by_row_group_row_and_column() {
    // A Parquet export of rows with an implausible value: written from edited CSV rows.
    let dir = tmp_dir("parquet-cell");
    let csv = std::fs::read_to_string(ONE_SERIES).unwrap();
    let edited = write_tmp(
        &dir,
        "edited.csv",
        with_cell(&csv, 100, "max_memory_usage", "1e30").as_bytes(),
    );
    let file = export(
        edited.to_str().unwrap(),
        &dir.join("edited.parquet"),
        ParquetCompression::Snappy,
    );
    let err = data::load(&file, Format::BigQuery, &LoadOptions::default()).unwrap_err();
    match &err {
        DataError::ParquetCell {
            row_group,
            row,
            column,
            ..
        } => assert_eq!(
            (*row_group, *row, column.as_str()),
            (0, 100, "maximum_usage.memory")
        ),
        other => panic!("expected a Parquet cell error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("edited.parquet: row group 0, row 100"),
        "{err}"
    );
    let ds = data::load(&file, Format::BigQuery, &skip()).unwrap();
    assert_eq!(
        ds.report.bad_cells["maximum_usage.memory"]["implausible value"],
        1
    );
}

#[test]
fn directories_globs_and_gzip_members_load_in_name_order() {
    let dir = tmp_dir("shards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let csv = real_series();
    // One shard per series, of mixed encodings, as `bq extract` names them.
    let shards = dir.join("exports");
    std::fs::create_dir_all(&shards).unwrap();
    for (i, f) in files.iter().enumerate() {
        let ext = ["json.gz", "parquet", "json"][i % 3];
        export(
            f.to_str().unwrap(),
            &shards.join(format!("part-{i:012}.{ext}")),
            ParquetCompression::Snappy,
        );
    }
    write_tmp(&shards, "README.txt", b"not a shard");
    let from_dir = data::load(&shards, Format::BigQuery, &LoadOptions::default()).unwrap();
    assert_same_samples(&csv, &from_dir, "directory");
    assert_eq!(from_dir.report.files.len(), 10);
    assert_eq!(data::detect_format(&shards).unwrap(), Format::BigQuery);
    let pattern = shards.join("part-*");
    let from_glob = data::load(&pattern, Format::BigQuery, &LoadOptions::default()).unwrap();
    assert_same_samples(&csv, &from_glob, "glob");
    assert_eq!(data::detect_format(&pattern).unwrap(), Format::BigQuery);
    let only_gz = data::load(
        &shards.join("*.json.gz"),
        Format::BigQuery,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(only_gz.report.files.len(), 4);
    assert!(data::load(
        &shards.join("nothing-*"),
        Format::BigQuery,
        &LoadOptions::default()
    )
    .is_err());

    // A multi-member gzip file (shards concatenated) reads as one.
    let text = rows(40);
    let split = text[..text.len() / 2].rfind('\n').unwrap() + 1;
    let mut gz = Vec::new();
    for part in [&text[..split], &text[split..]] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(part.as_bytes()).unwrap();
        gz.extend(enc.finish().unwrap());
    }
    // Named without an extension: the content tells the format.
    let gz_file = write_tmp(&dir, "members", &gz);
    assert_eq!(data::detect_format(&gz_file).unwrap(), Format::BigQuery);
    let plain = load_text(&dir, "plain.ndjson", &text, &LoadOptions::default()).unwrap();
    let members = data::load(&gz_file, Format::BigQuery, &LoadOptions::default()).unwrap();
    assert_same_samples(&plain, &members, "multi-member gzip");
    assert_eq!(members.report.records, 40);
}

/// Small inputs of every encoding for the mutation test, made once.
fn small_inputs() -> &'static [(&'static str, Vec<u8>)] {
    static INPUTS: std::sync::OnceLock<Vec<(&'static str, Vec<u8>)>> = std::sync::OnceLock::new();
    INPUTS.get_or_init(make_small_inputs)
}

fn make_small_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let dir = tmp_dir("mutate-src");
    let text = rows(14);
    let json = text.clone().into_bytes();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let csv: String = std::fs::read_to_string(ONE_SERIES)
        .unwrap()
        .lines()
        .take(40)
        .map(|l| l.to_string() + "\n")
        .collect();
    let csv_file = write_tmp(&dir, "head.csv", csv.as_bytes());
    let pq = export(
        csv_file.to_str().unwrap(),
        &dir.join("head.parquet"),
        ParquetCompression::Snappy,
    );
    vec![
        ("json", json),
        ("json.gz", gz),
        ("parquet", std::fs::read(pq).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn mutated_bytes_error_or_load_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let inputs = small_inputs();
        let (ext, bytes) = &inputs[which];
        let mut bytes = bytes.clone();
        for (at, b) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let dir = tmp_dir("mutated");
        let file = write_tmp(&dir, &format!("m.{ext}"), &bytes);
        for opts in [LoadOptions::default(), skip()] {
            match data::load(&file, Format::BigQuery, &opts) {
                Ok(ds) => prop_assert!(ds.inputs.iter().all(|v| v.is_nan() || (0.0..=1.0).contains(v))),
                Err(e) => prop_assert!(e.to_string().contains("m.") || e.to_string().contains("no rows")),
            }
        }
        let _ = data::detect_format(&file);
    }
}

#[test]
fn cli_trains_on_a_glob_of_shards_and_evaluates_csv_and_exports_alike() {
    let dir = tmp_dir("cli-train");
    let shards = dir.join("exports");
    std::fs::create_dir_all(&shards).unwrap();
    export(
        ONE_SERIES,
        &shards.join("part-0.json.gz"),
        ParquetCompression::Snappy,
    );
    let cfg = write_tmp(
        &dir,
        "small.json",
        br#"{"model": {"conv_filters": 8, "num_heads": 2, "ff_dim": 16, "dense_units": 8}, "train": {"batch_size": 64}}"#,
    );
    let run = dir.join("run");
    let bin = env!("CARGO_BIN_EXE_convformer");
    let glob = shards.join("*.json.gz");
    let o = Command::new(bin)
        .args(["train", "--epochs", "1", "--quiet", "--force", "--data"])
        .arg(&glob)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let eval = |data: &Path| {
        let o = Command::new(bin)
            .args(["eval", "--json", "--model"])
            .arg(&run)
            .arg("--data")
            .arg(data)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    // The run trained on the export evaluates its CSV to the same figures.
    assert_eq!(eval(Path::new(ONE_SERIES)), eval(&glob));
}

#[test]
fn parquet_columns_of_another_type_or_missing_are_named() {
    use arrow_array::builder::{Float64Builder, ListBuilder};
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, StructArray};
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;
    let dir = tmp_dir("parquet-schema");
    let n = 20;
    let ints =
        |f: &dyn Fn(i64) -> i64| -> ArrayRef { Arc::new((0..n).map(f).collect::<Int64Array>()) };
    let floats = |v: f64| -> ArrayRef { Arc::new(Float64Array::from(vec![v; n as usize])) };
    let usage: ArrayRef = Arc::new(StructArray::from(vec![
        (
            Arc::new(Field::new("cpus", DataType::Float64, true)),
            floats(0.01),
        ),
        (
            Arc::new(Field::new("memory", DataType::Float64, true)),
            floats(0.02),
        ),
    ]));
    let list = |len: usize| -> ArrayRef {
        let mut b = ListBuilder::new(Float64Builder::new());
        for _ in 0..n {
            b.values().extend((0..len).map(|k| Some(0.001 * k as f64)));
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let write = |name: &str, maximum: Option<ArrayRef>| {
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("start_time", ints(&|i| 300_000_000 * (i + 1))),
            // INT64 as text, as some exporters write it.
            (
                "collection_id",
                Arc::new(StringArray::from(vec!["42"; n as usize])) as ArrayRef,
            ),
            ("instance_index", ints(&|_| 7)),
            ("average_usage", usage.clone()),
            ("assigned_memory", floats(0.03)),
            ("cpu_usage_distribution", list(11)),
            ("tail_cpu_usage_distribution", list(9)),
        ];
        if let Some(m) = maximum {
            columns.push(("maximum_usage", m));
        }
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let path = dir.join(name);
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    };
    let good = write("good.parquet", Some(usage.clone()));
    let ds = data::load(&good, Format::BigQuery, &LoadOptions::default()).unwrap();
    assert!(ds.ids[0].starts_with("42-7@"));
    assert_eq!(
        (ds.len(), ds.report.missing[24]),
        (8, 20),
        "no resource_request: limits missing"
    );
    let text: ArrayRef = Arc::new(StringArray::from(vec!["{cpus: 1}"; n as usize]));
    let err = data::load(
        &write("text.parquet", Some(text)),
        Format::BigQuery,
        &LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("text.parquet") && err.contains("`maximum_usage`") && err.contains("RECORD"),
        "{err}"
    );
    let err = data::load(
        &write("lacks.parquet", None),
        Format::BigQuery,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DataError::MissingColumns { missing, .. } if missing == &["maximum_usage"]),
        "{err}"
    );
}

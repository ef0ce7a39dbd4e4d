//! Bad input gives errors that say where and what, or counted skips; never a panic.

use convformer::data::{self, DataError, Format, LoadOptions, OnBadRow};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

#[path = "support/real_rows.rs"]
mod real_rows;
use real_rows::{
    cell_error, kaggle_from_memory, with_cell, KAGGLE_HEAD as HEAD, ONE_SERIES as SERIES,
};

fn head_bytes() -> Vec<u8> {
    std::fs::read(HEAD).unwrap()
}

fn write_tmp(name: &str, bytes: &[u8]) -> PathBuf {
    real_rows::write_tmp(&real_rows::tmp_dir("bad-input", ""), name, bytes)
}

/// The real series with the max_memory_usage cell of CSV line `line` set to
/// `value`, written as `name`, and the error its default load gives.
fn series_with_peak(line: usize, value: &str, name: &str) -> (PathBuf, DataError) {
    let text = std::fs::read_to_string(SERIES).unwrap();
    let path = write_tmp(
        name,
        with_cell(&text, line, "max_memory_usage", value).as_bytes(),
    );
    let err = data::load(&path, Format::InstanceUsage, &LoadOptions::default()).unwrap_err();
    (path, err)
}

/// `err` is a cell error of max_memory_usage on file line `line`.
fn assert_peak_cell(err: &DataError, line: u64) {
    let (_, got_line, column, _) = cell_error(err);
    assert_eq!((got_line, column), (line, "max_memory_usage"), "{err}");
}

fn skip() -> LoadOptions {
    LoadOptions {
        on_bad_row: OnBadRow::Skip,
        ..LoadOptions::default()
    }
}

/// The head with the first occurrence of `from` replaced.
fn edited(from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(head_bytes()).unwrap();
    assert!(text.contains(from));
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn malformed_cell_names_file_line_column_and_text() {
    // Record 2 starts on line 5: the header, then record 1 over three physical lines.
    let path = write_tmp(
        "bad_dict.csv",
        &edited(
            "{'cpus': 0.0, 'memory': 9.5367431640625e-07}",
            "{'cpus': 0.0, 'memory': 9.5x}",
        ),
    );
    let err = data::load(&path, Format::Kaggle, &LoadOptions::default()).unwrap_err();
    let (file, line, column, text) = cell_error(&err);
    assert_eq!(file, path);
    assert_eq!(line, 5);
    assert_eq!(column, "average_usage");
    assert_eq!(text, "{'cpus': 0.0, 'memory': 9.5x}");
    let msg = err.to_string();
    assert!(
        msg.contains("bad_dict.csv:5") && msg.contains("`average_usage`") && msg.contains("9.5x"),
        "{msg}"
    );
    // Converted into the crate error, the message keeps the place.
    let e: convformer::Error = err.into();
    assert!(e.to_string().contains("bad_dict.csv:5"));

    let ds = data::load(&path, Format::Kaggle, &skip()).unwrap();
    assert_eq!(ds.len(), 398);
    assert_eq!(ds.report.dropped.get("malformed cell"), Some(&1));
    assert_eq!(ds.report.dropped.get("missing target"), Some(&1));
    assert_eq!(ds.report.records, 400);
}

#[test]
fn negative_inf_and_nan_text() {
    let neg = write_tmp(
        "neg.csv",
        &edited("0.0104217529296875,", "-0.0104217529296875,"),
    );
    let err = data::load(&neg, Format::Kaggle, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, DataError::Cell { column, .. } if column == "assigned_memory"),
        "{err}"
    );
    assert!(err.to_string().contains("negative"));
    let ds = data::load(&neg, Format::Kaggle, &skip()).unwrap();
    assert_eq!(ds.report.dropped.get("negative value"), Some(&1));

    let inf = write_tmp("inf.csv", &edited("0.9399186372756958", "inf"));
    let err = data::load(&inf, Format::Kaggle, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, DataError::Cell { column, .. } if column == "cycles_per_instruction"),
        "{err}"
    );
    assert_eq!(
        data::load(&inf, Format::Kaggle, &skip())
            .unwrap()
            .report
            .dropped
            .get("non-finite value"),
        Some(&1)
    );

    // NaN text is a missing value, as pandas and numpy write it.
    let nan = write_tmp("nan.csv", &edited("0.9399186372756958", "NaN"));
    let ds = data::load(&nan, Format::Kaggle, &LoadOptions::default()).unwrap();
    let cpi = data::KAGGLE_FEATURES
        .iter()
        .position(|f| *f == "cycles_per_instruction")
        .unwrap();
    assert_eq!(ds.report.missing[cpi], 126);
    assert!(ds.sample(2)[cpi].is_nan());
}

#[test]
fn non_utf8_bytes_in_a_numeric_cell() {
    let mut bytes = head_bytes();
    let at = bytes
        .windows(18)
        .position(|w| w == b"0.0104217529296875")
        .unwrap();
    bytes[at + 3] = 0xff;
    let path = write_tmp("utf8.csv", &bytes);
    let err = data::load(&path, Format::Kaggle, &LoadOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("not UTF-8") && err.to_string().contains("assigned_memory"),
        "{err}"
    );
    let ds = data::load(&path, Format::Kaggle, &skip()).unwrap();
    assert_eq!(ds.report.dropped.get("non-UTF-8 text"), Some(&1));
    // Non-UTF-8 bytes in a column the loader does not read are harmless.
    let mut bytes = head_bytes();
    let at = bytes.windows(10).position(|w| w == b"fn8Ve4Tdl/").unwrap();
    bytes[at] = 0xfe;
    let ds = data::load(
        &write_tmp("utf8_unused.csv", &bytes),
        Format::Kaggle,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.len(), 399);
}

#[test]
fn wrong_field_count_is_a_record_error_or_a_counted_skip() {
    let path = write_tmp("fields.csv", &edited(",7,FAIL,1\n", ",7,FAIL\n"));
    let err = data::load(&path, Format::Kaggle, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Record { line: 2, .. }), "{err}");
    let ds = data::load(&path, Format::Kaggle, &skip()).unwrap();
    assert_eq!(ds.report.dropped.get("malformed record"), Some(&1));
    assert_eq!(ds.len(), 398);
}

#[test]
fn missing_column_lists_expected_and_found() {
    let path = write_tmp("nocol.csv", &edited("maximum_usage,", "max_usage,"));
    match data::load(&path, Format::Kaggle, &LoadOptions::default()).unwrap_err() {
        DataError::MissingColumns {
            missing,
            expected,
            found,
            ..
        } => {
            assert_eq!(missing, ["maximum_usage"]);
            assert!(expected.contains(&"maximum_usage".to_string()));
            assert!(found.contains(&"max_usage".to_string()) && found.len() == 34);
        }
        other => panic!("unexpected {other:?}"),
    }
    let series = std::fs::read_to_string(SERIES)
        .unwrap()
        .replacen("max_memory_usage", "mm", 1);
    let err = data::load(
        &write_tmp("nocol_series.csv", series.as_bytes()),
        Format::InstanceUsage,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DataError::MissingColumns { missing, .. } if missing == &["max_memory_usage"]),
        "{err}"
    );
}

#[test]
fn empty_file_header_only_and_unknown_format() {
    for format in [Format::Kaggle, Format::InstanceUsage] {
        let empty = write_tmp("empty.csv", b"");
        let err = data::load(&empty, format, &LoadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("empty file"), "{err}");
    }
    let text = String::from_utf8(head_bytes()).unwrap();
    let header = text.lines().next().unwrap();
    let err = data::load(
        &write_tmp("header.csv", format!("{header}\n").as_bytes()),
        Format::Kaggle,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("header only"), "{err}");
    let series = std::fs::read_to_string(SERIES).unwrap();
    let err = data::load(
        &write_tmp(
            "header_series.csv",
            series.lines().next().unwrap().as_bytes(),
        ),
        Format::InstanceUsage,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("header only"), "{err}");
    assert!(data::detect_format(&write_tmp("empty2.csv", b"")).is_err());
    assert!(data::detect_format(&write_tmp("other.csv", b"a,b\n1,2\n"))
        .unwrap_err()
        .to_string()
        .contains("unknown format"));
    assert!(matches!(
        data::load(
            Path::new("/nonexistent/x.csv"),
            Format::Kaggle,
            &LoadOptions::default()
        ),
        Err(DataError::Io { .. })
    ));
    // The wrong loader for a file reports the columns it misses.
    assert!(matches!(
        data::load(
            Path::new(HEAD),
            Format::InstanceUsage,
            &LoadOptions::default()
        ),
        Err(DataError::MissingColumns { .. })
    ));
}

#[test]
fn byte_order_mark_and_crlf_line_ends_are_read() {
    let text = std::fs::read_to_string(SERIES).unwrap();
    let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    let path = write_tmp("bom_crlf.csv", crlf.as_bytes());
    let a = data::load(&path, Format::InstanceUsage, &LoadOptions::default()).unwrap();
    let b = data::load(
        Path::new(SERIES),
        Format::InstanceUsage,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!((a.len(), &a.targets), (b.len(), &b.targets));
    assert_eq!(data::detect_format(&path).unwrap(), Format::InstanceUsage);
}

#[test]
fn series_gap_and_window_options() {
    let opts = LoadOptions {
        window: 0,
        ..LoadOptions::default()
    };
    assert!(data::load(Path::new(SERIES), Format::InstanceUsage, &opts).is_err());
    // A negative max memory in a series is an error with its place.
    let (path, err) = series_with_peak(5, "-0.5", "neg_series.csv");
    assert_peak_cell(&err, 6);
    let ds = data::load(&path, Format::InstanceUsage, &skip()).unwrap();
    assert_eq!(ds.report.dropped.get("negative value"), Some(&1));
    // The skipped row (the 5th) leaves a 10-minute gap that no window crosses: the windows
    // whose history or target held it (targets at rows 12..=16) are gone, nothing else.
    let full = data::load(
        Path::new(SERIES),
        Format::InstanceUsage,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(full.len() - ds.len(), 5);
    assert!(ds.ids.iter().all(|id| full.ids.contains(id)));
}

/// A record-level mutation of real rows: the loader returns Ok or Err, never panics.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, kind, byte) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = pos % bytes.len();
        match kind % 4 {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 => {
                bytes.remove(at);
            }
            _ => {
                // Characters that matter to the parsers.
                let special = [
                    b'"', b',', b'\n', b'[', b']', b'{', b'}', b'\'', b':', b'-', b'e', b' ',
                ];
                bytes[at] = special[byte as usize % special.len()];
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn mutated_real_rows_never_panic(
        records in 1usize..40,
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..12),
        series in any::<bool>(),
        skip_bad in any::<bool>(),
    ) {
        let source = if series { std::fs::read(SERIES).unwrap() } else { head_bytes() };
        // The first `records` physical lines keep the test fast.
        let cut = source.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(records).map_or(source.len(), |(i, _)| i + 1);
        let bytes = mutate(source[..cut].to_vec(), &edits);
        let format = if series { Format::InstanceUsage } else { Format::Kaggle };
        let opts = LoadOptions { window: 3, on_bad_row: if skip_bad { OnBadRow::Skip } else { OnBadRow::Error }, ..LoadOptions::default() };
        if let Ok(ds) = data::load_from_memory(&bytes, Path::new("mutated.csv"), format, &opts) {
            prop_assert_eq!(ds.inputs.len(), ds.len() * ds.seq_len * ds.channels);
            prop_assert_eq!(ds.ids.len(), ds.len());
            prop_assert!(ds.inputs.iter().all(|v| v.is_nan() || (v.is_finite() && *v >= 0.0)));
        }
    }
}

/// Each record's fields as (first physical line, byte range), found by a scan of the
/// quoting alone: an account independent of the CSV reader's.
fn fields_of_records(bytes: &[u8]) -> Vec<Vec<(u64, std::ops::Range<usize>)>> {
    let (mut records, mut fields) = (Vec::new(), Vec::new());
    let (mut line, mut quoted, mut start, mut start_line) = (1u64, false, 0usize, 1u64);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                fields.push((start_line, start..i));
                (start, start_line) = (i + 1, line);
            }
            b'\n' if !quoted => {
                fields.push((start_line, start..i));
                records.push(std::mem::take(&mut fields));
                line += 1;
                (start, start_line) = (i + 1, line);
            }
            b'\n' => line += 1,
            _ => {}
        }
    }
    records
}

#[test]
fn every_located_error_names_the_line_its_record_and_its_cell_start_on() {
    let bytes = head_bytes();
    let records = fields_of_records(&bytes);
    assert_eq!(records.len(), 401, "header and 400 records");
    let header =
        String::from_utf8(bytes[records[0][0].1.start..records[0].last().unwrap().1.end].to_vec())
            .unwrap();
    let column = |name: &str| header.split(',').position(|h| h == name).unwrap();
    let mut distinct_cell_lines = 0;
    // A single-line cell (start_time) and one that follows wrapped cells (tail distribution).
    for (name, bad) in [
        ("start_time", "12x"),
        ("tail_cpu_usage_distribution", "[0.1 x]"),
    ] {
        let c = column(name);
        for k in (1..=400).step_by(37).chain([400]) {
            let (cell_line, range) = records[k][c].clone();
            let record_line = records[k][0].0;
            let mut text = bytes[..range.start].to_vec();
            text.extend_from_slice(bad.as_bytes());
            text.extend_from_slice(&bytes[range.end..]);
            let err = kaggle_from_memory(&text, "m.csv").unwrap_err();
            match &err {
                DataError::Cell {
                    line,
                    cell_line: at,
                    column,
                    ..
                } => {
                    assert_eq!(
                        (*line, *at, column.as_str()),
                        (record_line, cell_line, name),
                        "record {k}: {err}"
                    );
                }
                other => panic!("record {k}: {other}"),
            }
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("m.csv:{record_line}: column `{name}`")),
                "{msg}"
            );
            if cell_line != record_line {
                distinct_cell_lines += 1;
                assert!(msg.contains(&format!("(line {cell_line})")), "{msg}");
            }
        }
    }
    assert!(
        distinct_cell_lines >= 5,
        "{distinct_cell_lines} multi-line records checked"
    );
}

#[test]
fn implausible_usage_is_a_located_error_or_a_skip_counted_per_column() {
    // 1e30 in one window's max memory: trace usage is normalised to the largest machine.
    let (path, err) = series_with_peak(4, "1e30", "implausible.csv");
    assert_peak_cell(&err, 5);
    assert!(err.to_string().contains("largest machine"), "{err}");
    let ds = data::load(&path, Format::InstanceUsage, &skip()).unwrap();
    assert_eq!(ds.report.dropped.get("implausible value"), Some(&1));
    assert_eq!(
        ds.report.bad_cells["max_memory_usage"].get("implausible value"),
        Some(&1)
    );
    assert!(ds.targets.iter().all(|t| *t <= 1.0));

    // The same in a kaggle usage record and a size column.
    for (from, to, column) in [
        (
            "{'cpus': 0.0, 'memory': 9.5367431640625e-07}",
            "{'cpus': 0.0, 'memory': 1e30}",
            "average_usage",
        ),
        ("0.0104217529296875,", "3.5,", "assigned_memory"),
    ] {
        let path = write_tmp("implausible_kaggle.csv", &edited(from, to));
        let err = data::load(&path, Format::Kaggle, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::Cell { column: c, .. } if c == column),
            "{err}"
        );
        let ds = data::load(&path, Format::Kaggle, &skip()).unwrap();
        assert_eq!(
            ds.report.bad_cells[column].get("implausible value"),
            Some(&1),
            "{column}"
        );
    }
}

#[test]
fn columns_no_feature_uses_cannot_reject_a_row() {
    // Junk in the row index, machine_id, user, constraint and cluster of one real record:
    // none is a feature, target or grouping, so none is parsed.
    let bytes = head_bytes();
    let records = fields_of_records(&bytes);
    let header = String::from_utf8(bytes[..records[0].last().unwrap().1.end].to_vec()).unwrap();
    let names: Vec<&str> = header.split(',').collect();
    let mut ranges: Vec<std::ops::Range<usize>> =
        ["Unnamed: 0", "machine_id", "user", "constraint", "cluster"]
            .iter()
            .map(|n| {
                records[3][names.iter().position(|h| h == n).unwrap()]
                    .1
                    .clone()
            })
            .collect();
    ranges.sort_by_key(|r| std::cmp::Reverse(r.start));
    let mut text = bytes.clone();
    for r in ranges {
        text.splice(r, b"1.68846E+11 junk".iter().copied());
    }
    let ds = kaggle_from_memory(&text, "junk.csv").unwrap();
    let original = kaggle_from_memory(&bytes, "head.csv").unwrap();
    assert_eq!(ds.report.records, 400);
    assert_eq!(ds.inputs.len(), original.inputs.len());
    assert!(ds
        .inputs
        .iter()
        .zip(&original.inputs)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

//! The real trace rows the data tests read (`../shared/data/borg`, Google
//! ClusterData 2019, CC-BY 4.0; never copied into the repository), scratch files,
//! and the one edit most bad-input tests make: one cell of a CSV replaced.

#![allow(dead_code)]

use convformer::data::{self, DataError, Dataset, Format, LoadOptions};
use std::path::{Path, PathBuf};

/// The first 400 records of the Kaggle extract `borg_traces_data.csv`.
pub const KAGGLE_HEAD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/borg/kaggle_head400.csv"
);
/// Ten instances' `instance_usage` series, one CSV file each.
pub const SERIES_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/borg/instance_usage"
);
/// One of them.
pub const ONE_SERIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/borg/instance_usage/job382_task2-900078000000-1166034000000.csv"
);

/// A fresh directory for this test process: `<tmp>/convformer-<suite>-<pid>/<name>`.
pub fn tmp_dir(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("convformer-{suite}-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `csv` with the cell of `column` (by its header name) in line `line` (0 = the
/// header) replaced by `value`; lines end in `\n`. For cells without quoting.
pub fn with_cell(csv: &str, line: usize, column: &str, value: &str) -> String {
    let mut lines: Vec<String> = csv.lines().map(String::from).collect();
    let col = lines[0]
        .split(',')
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    let mut cells: Vec<&str> = lines[line].split(',').collect();
    cells[col] = value;
    lines[line] = cells.join(",");
    lines.join("\n") + "\n"
}

/// The ten real series, loaded with the default options.
pub fn real_series() -> Dataset {
    data::load(
        Path::new(SERIES_DIR),
        Format::InstanceUsage,
        &LoadOptions::default(),
    )
    .unwrap()
}

/// The Kaggle head, loaded with the default options.
pub fn real_kaggle() -> Dataset {
    data::load(
        Path::new(KAGGLE_HEAD),
        Format::Kaggle,
        &LoadOptions::default(),
    )
    .unwrap()
}

/// `bytes` loaded as a Kaggle file labelled `name`, with the default options.
pub fn kaggle_from_memory(bytes: &[u8], name: &str) -> Result<Dataset, DataError> {
    data::load_from_memory(
        bytes,
        Path::new(name),
        Format::Kaggle,
        &LoadOptions::default(),
    )
}

/// The file, line, column and text of a cell error; panics on any other error.
pub fn cell_error(err: &DataError) -> (&Path, u64, &str, &str) {
    match err {
        DataError::Cell {
            file,
            line,
            column,
            text,
            ..
        } => (file, *line, column, text),
        other => panic!("expected a cell error, got {other:?}"),
    }
}

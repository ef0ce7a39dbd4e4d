//! Errors of the data pipeline: each one says where in which file it happened.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    /// A cell could not be read as what its column holds. `line` is where its record
    /// starts, `cell_line` where the cell starts (later in a multi-line record).
    #[error("{}:{line}: column `{column}`{}: cannot read {text:?}: {why}", file.display(), on_line(*line, *cell_line))]
    Cell {
        file: PathBuf,
        line: u64,
        cell_line: u64,
        column: String,
        text: String,
        why: String,
    },
    /// A value of a Parquet file could not be read as what its column holds; rows
    /// count from 1 over the whole file.
    #[error("{}: row group {row_group}, row {row}: column `{column}`: cannot read {text:?}: {why}", file.display())]
    ParquetCell {
        file: PathBuf,
        row_group: usize,
        row: u64,
        column: String,
        text: String,
        why: String,
    },
    /// A record is not well-formed CSV (wrong number of fields, broken quoting).
    #[error("{}:{line}: malformed record: {why}", file.display())]
    Record {
        file: PathBuf,
        line: u64,
        why: String,
    },
    /// The header lacks columns the loader needs.
    #[error("{}: missing required columns {missing:?}; expected {expected:?}; found {found:?}", file.display())]
    MissingColumns {
        file: PathBuf,
        missing: Vec<String>,
        expected: Vec<String>,
        found: Vec<String>,
    },
    /// The file cannot be used as a whole (empty, header only, unknown format).
    #[error("{}: {why}", file.display())]
    File { file: PathBuf, why: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// " (line N)" when a cell starts on a later line than its record.
fn on_line(line: u64, cell_line: u64) -> String {
    if cell_line == line {
        String::new()
    } else {
        format!(" (line {cell_line})")
    }
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn file(file: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        DataError::File {
            file: file.into(),
            why: why.into(),
        }
    }
}

impl From<DataError> for crate::Error {
    fn from(e: DataError) -> Self {
        // Invalid keeps the file, line and column in the message; Io would drop the path.
        crate::Error::Invalid(e.to_string())
    }
}

//! The append-only run journal (`journal.jsonl`): one JSON record a line,
//! each flushed and fsynced before the run acts on it.

use super::model::Origin;
use super::space::Config;
use super::types::TuneSettings;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether an evaluation produced a usable loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// First line: what determines the run, checked on resume.
    Header {
        version: u32,
        settings: TuneSettings,
    },
    /// A job was handed out: configuration `config` at `budget`.
    Proposal {
        job: u64,
        bracket: usize,
        stage: usize,
        budget: f64,
        origin: Origin,
        config: Config,
    },
    /// A job finished; `loss` is `None` when it failed.
    Result {
        job: u64,
        status: Status,
        loss: Option<f64>,
        seconds: f64,
        error: Option<String>,
    },
}

/// 2: the settings hold the schedule.
pub const JOURNAL_VERSION: u32 = 2;

pub struct Journal {
    path: PathBuf,
    file: File,
}

/// What a journal held when it was reopened.
pub struct Loaded {
    pub journal: Journal,
    pub records: Vec<Record>,
    /// Problems that were repaired (a torn last line), for the user to see.
    pub warnings: Vec<String>,
}

impl Journal {
    /// Starts a new journal; refuses to overwrite one that holds records.
    pub fn create(path: &Path, settings: &TuneSettings) -> Result<Journal> {
        if path.metadata().map(|m| m.len() > 0).unwrap_or(false) {
            return Err(Error::Invalid(format!(
                "{} already holds a tuning run: pass --resume to continue it, or choose another output directory",
                path.display()
            )));
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            file,
        };
        journal.append(&Record::Header {
            version: JOURNAL_VERSION,
            settings: settings.clone(),
        })?;
        Ok(journal)
    }

    /// Reopens a journal for appending after reading its records. A last line
    /// that does not parse (a write torn by a crash) is reported and cut off;
    /// a bad line anywhere else is an error naming its line and column.
    pub fn open(path: &Path) -> Result<Loaded> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Invalid(format!("{}: cannot read the journal: {e}", path.display()))
        })?;
        let mut records = Vec::new();
        let mut warnings = Vec::new();
        let mut good_len = 0usize; // bytes of the file that hold whole, valid lines
        let mut needs_newline = false;
        let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
        for (i, raw) in lines.iter().enumerate() {
            let terminated = raw.ends_with(b"\n");
            let text = raw.strip_suffix(b"\n").unwrap_or(raw);
            let is_last = i + 1 == lines.len();
            if text.iter().all(u8::is_ascii_whitespace) {
                if terminated {
                    good_len += raw.len();
                }
                continue;
            }
            match serde_json::from_slice::<Record>(text) {
                Ok(record) => {
                    records.push(record);
                    good_len += raw.len();
                    needs_newline = !terminated;
                }
                Err(e) if is_last => {
                    warnings.push(format!(
                        "{}:{}:{}: ignoring a torn last line ({e}); that record is dropped and its work redone",
                        path.display(),
                        i + 1,
                        e.column()
                    ));
                }
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "{}:{}:{}: corrupt journal record ({e}); expected one JSON record per line",
                        path.display(),
                        i + 1,
                        e.column()
                    )))
                }
            }
        }
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        file.set_len(good_len as u64)?;
        let mut journal = {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::End(0))?;
            Journal {
                path: path.to_path_buf(),
                file,
            }
        };
        if needs_newline {
            journal.file.write_all(b"\n")?;
            journal.file.sync_data()?;
        }
        Ok(Loaded {
            journal,
            records,
            warnings,
        })
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::Invalid(format!("cannot encode a journal record: {e}")))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| {
                Error::Invalid(format!(
                    "{}: cannot append to the journal: {e}",
                    self.path.display()
                ))
            })
    }
}

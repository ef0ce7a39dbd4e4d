//! `--storage URL`: which [`LogStore`] holds a shared study.

use super::log_store::{FileLog, LogStore};
use super::redis_log::RedisLog;
use crate::{Error, Result};
use std::path::Path;

/// Opens `journal:PATH` or `redis://HOST:PORT/NAME`.
pub fn open(url: &str) -> Result<Box<dyn LogStore>> {
    if let Some(path) = url.strip_prefix("journal:") {
        if path.is_empty() {
            return Err(Error::Invalid(
                "--storage journal:PATH needs a path after 'journal:'".into(),
            ));
        }
        return Ok(Box::new(FileLog::new(Path::new(path))));
    }
    if url.starts_with("redis://") {
        return Ok(Box::new(RedisLog::open(url)?));
    }
    Err(Error::Invalid(format!(
        "--storage {url}: expected journal:PATH (an Optuna journal file) or redis://HOST:PORT/NAME"
    )))
}

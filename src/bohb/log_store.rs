//! Where a shared study's log lives, chosen by `--storage URL`. Every worker
//! reads the log from its last position and appends with compare-and-append:
//! an append made from a stale view is refused, the worker reads what it
//! missed and decides again. So the log's order decides between two workers
//! claiming one job, and no decision is made while holding a lock.
//!
//! `journal:PATH` is Optuna's `JournalFileBackend` layout: one JSON entry a
//! line, appended under the same symlink lock (`PATH.lock`, released by
//! rename + unlink), so Optuna processes and convformer workers can share a
//! file. The symlink works on network file systems where `flock` does not.
//! `redis://HOST:PORT/NAME` is in `redis_log`; `storage::open` picks by URL.

use crate::{Error, Result};
use serde_json::Value as Json;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A study log shared by workers.
pub trait LogStore: Send {
    /// The entries appended since the last call (complete ones only).
    fn read_new(&mut self) -> Result<Vec<Json>>;
    /// Appends `entries` if nothing was appended since the last `read_new`
    /// returned; `false` means the view is stale (nothing was written).
    fn append_if_current(&mut self, entries: &[Json]) -> Result<bool>;
    /// Appends whatever the log holds (heartbeats).
    fn append(&mut self, entries: &[Json]) -> Result<()>;
    /// A fresh handle on the same log, reading from the start.
    fn reopen(&self) -> Result<Box<dyn LogStore>>;
    fn describe(&self) -> String;
}

/// A lock older than this is taken to be a dead holder's and broken, as
/// Optuna's `grace_period` does; holders keep it for one write.
const LOCK_GRACE: Duration = Duration::from_secs(10);

pub struct FileLog {
    path: PathBuf,
    lock: PathBuf,
    /// Bytes of whole lines read so far.
    offset: u64,
    /// Entries read so far (for error positions).
    line: usize,
}

impl FileLog {
    pub fn new(path: &Path) -> FileLog {
        let mut lock = path.as_os_str().to_owned();
        lock.push(".lock");
        FileLog {
            path: path.to_path_buf(),
            lock: PathBuf::from(lock),
            offset: 0,
            line: 0,
        }
    }

    fn locked(&self) -> Result<LockGuard<'_>> {
        let mut pause = Duration::from_millis(1);
        // Optuna never reads the link's target: it names the holder, so a
        // holder killed on this host is seen dead at once.
        let owner = format!(
            "{}#{}:{}",
            self.path.display(),
            hostname(),
            std::process::id()
        );
        loop {
            match std::os::unix::fs::symlink(&owner, &self.lock) {
                Ok(()) => return Ok(LockGuard { lock: &self.lock }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::symlink_metadata(&self.lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    let dead = holder_is_dead_here(&self.lock);
                    if dead || age.is_some_and(|a| a > LOCK_GRACE) {
                        eprintln!(
                            "warning: {} {}; breaking a dead holder's lock",
                            self.lock.display(),
                            if dead {
                                "is held by a process of this host that is gone".to_string()
                            } else {
                                format!("held longer than {LOCK_GRACE:?}")
                            }
                        );
                        release(&self.lock);
                        continue;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "{}: cannot take the journal lock: {e}",
                        self.lock.display()
                    )))
                }
            }
        }
    }

    /// Under the lock: cuts a torn last line (a writer killed mid-write) so
    /// the next entry starts on a line of its own, and returns the length.
    fn whole_length(&self, file: &mut std::fs::File) -> Result<u64> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(0);
        }
        let mut last = [0u8];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] == b'\n' {
            return Ok(len);
        }
        let mut tail = Vec::new();
        let start = len.saturating_sub(1 << 20);
        file.seek(SeekFrom::Start(start))?;
        file.read_to_end(&mut tail)?;
        let keep = tail
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| start + i as u64 + 1);
        eprintln!(
            "warning: {}: cutting a torn last entry ({} bytes) left by a killed writer",
            self.path.display(),
            len - keep
        );
        file.set_len(keep)?;
        Ok(keep)
    }

    fn write_locked(&mut self, entries: &[Json], expect: Option<u64>) -> Result<bool> {
        let mut text = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut text, entry)
                .map_err(|e| Error::Invalid(format!("cannot encode a journal entry: {e}")))?;
            text.push(b'\n');
        }
        let _guard = self.locked()?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Error::Invalid(format!("{}: cannot open: {e}", self.path.display())))?;
        let len = self.whole_length(&mut file)?;
        if expect.is_some_and(|at| at != len) {
            return Ok(false);
        }
        file.write_all(&text)
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::Invalid(format!("{}: cannot append: {e}", self.path.display())))?;
        Ok(true)
    }
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// Whether the lock names a process of this host that no longer runs.
fn holder_is_dead_here(lock: &Path) -> bool {
    let Ok(target) = std::fs::read_link(lock) else {
        return false;
    };
    let target = target.to_string_lossy();
    let Some((_, holder)) = target.rsplit_once('#') else {
        return false; // Optuna's own lock: only the grace period applies
    };
    match holder.rsplit_once(':') {
        Some((host, pid)) if host == hostname() => pid
            .parse::<u32>()
            .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
        _ => false,
    }
}

struct LockGuard<'a> {
    lock: &'a Path,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        release(self.lock);
    }
}

/// Optuna's release: rename the link away, then unlink it, so two breakers
/// cannot remove each other's fresh lock.
fn release(lock: &Path) {
    let mut moved = lock.as_os_str().to_owned();
    moved.push(format!(
        "{}-{:?}.rename",
        std::process::id(),
        std::thread::current().id()
    ));
    if std::fs::rename(lock, &moved).is_ok() {
        let _ = std::fs::remove_file(&moved);
    }
}

impl LogStore for FileLog {
    fn read_new(&mut self) -> Result<Vec<Json>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "{}: cannot read the journal: {e}",
                    self.path.display()
                )))
            }
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut entries = Vec::new();
        let mut consumed = 0usize;
        while let Some(end) = bytes[consumed..].iter().position(|&b| b == b'\n') {
            let text = &bytes[consumed..consumed + end];
            self.line += 1;
            if !text.iter().all(u8::is_ascii_whitespace) {
                let entry = serde_json::from_slice(text).map_err(|e| {
                    Error::Invalid(format!(
                        "{}:{}:{}: corrupt journal entry ({e}); expected one JSON object per line",
                        self.path.display(),
                        self.line,
                        e.column()
                    ))
                })?;
                entries.push(entry);
            }
            consumed += end + 1;
        }
        self.offset += consumed as u64;
        Ok(entries)
    }

    fn append_if_current(&mut self, entries: &[Json]) -> Result<bool> {
        let at = self.offset;
        self.write_locked(entries, Some(at))
    }

    fn append(&mut self, entries: &[Json]) -> Result<()> {
        self.write_locked(entries, None).map(|_| ())
    }

    fn reopen(&self) -> Result<Box<dyn LogStore>> {
        Ok(Box::new(FileLog::new(&self.path)))
    }

    fn describe(&self) -> String {
        format!("journal:{}", self.path.display())
    }
}

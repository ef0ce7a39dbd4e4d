//! `redis://HOST:PORT/NAME`: the study log in Redis, in the keys Optuna's
//! `JournalRedisBackend(url, prefix=NAME)` uses (`NAME:log_number`, the last
//! entry's number, and `NAME:log:N`, entry N as JSON text). Optuna appends
//! each entry with a Lua script that increments the number and sets the
//! entry; this one does the same for a whole batch, after checking that the
//! number is still the one this worker read (compare-and-append), all in
//! one script, which Redis runs atomically.

use super::log_store::LogStore;
use crate::{Error, Result};
use serde_json::Value as Json;

/// ARGV: prefix, the expected last entry number ("" = append regardless), entries.
const APPEND: &str = r"
local key = ARGV[1] .. ':log_number'
local last = redis.call('get', key)
if not last then
  redis.call('set', key, -1)
  last = -1
end
if ARGV[2] ~= '' and tonumber(last) ~= tonumber(ARGV[2]) then
  return 0
end
for i = 3, #ARGV do
  local n = redis.call('incr', key)
  redis.call('set', ARGV[1] .. ':log:' .. n, ARGV[i])
end
return 1
";

pub struct RedisLog {
    url: String,
    /// `url` with its password hidden, for messages.
    shown: String,
    server: String,
    prefix: String,
    connection: redis::Connection,
    /// The number of the next entry to read.
    next: i64,
}

impl RedisLog {
    /// `url` is `redis://HOST:PORT/NAME`.
    /// `url` is `redis://HOST:PORT/NAME`, or `redis://:PASSWORD@HOST:PORT/NAME`.
    pub fn open(url: &str) -> Result<RedisLog> {
        let shown = without_password(url);
        let rest = url.strip_prefix("redis://").unwrap_or(url);
        let (server, prefix) = rest.split_once('/').ok_or_else(|| {
            Error::Invalid(format!(
                "--storage {shown}: expected redis://HOST:PORT/NAME (NAME: the study's key prefix)"
            ))
        })?;
        if server.is_empty() || prefix.is_empty() || prefix.contains('/') {
            return Err(Error::Invalid(format!(
                "--storage {shown}: expected redis://HOST:PORT/NAME with a HOST:PORT and a NAME"
            )));
        }
        let client = redis::Client::open(format!("redis://{server}/"))
            .map_err(|e| Error::Invalid(format!("--storage {shown}: {e}")))?;
        let connection = client
            .get_connection()
            .map_err(|e| Error::Invalid(format!("{shown}: cannot connect to Redis: {e}")))?;
        let server = server.rsplit_once('@').map_or(server, |(_, host)| host);
        Ok(RedisLog {
            url: url.to_string(),
            server: format!("redis://{server}/"),
            shown,
            prefix: prefix.to_string(),
            connection,
            next: 0,
        })
    }

    fn fail(&self, e: redis::RedisError) -> Error {
        Error::Invalid(format!("{}: {e}", self.shown))
    }

    fn run_append(&mut self, expect: Option<i64>, entries: &[Json]) -> Result<bool> {
        let mut command = redis::cmd("EVAL");
        command
            .arg(APPEND)
            .arg(0)
            .arg(&self.prefix)
            .arg(expect.map_or(String::new(), |n| n.to_string()));
        for entry in entries {
            command.arg(entry.to_string());
        }
        let done: i64 = command
            .query(&mut self.connection)
            .map_err(|e| self.fail(e))?;
        Ok(done == 1)
    }
}

impl LogStore for RedisLog {
    fn read_new(&mut self) -> Result<Vec<Json>> {
        let last: Option<i64> = redis::cmd("GET")
            .arg(format!("{}:log_number", self.prefix))
            .query(&mut self.connection)
            .map_err(|e| self.fail(e))?;
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        if last < self.next {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = (self.next..=last)
            .map(|n| format!("{}:log:{n}", self.prefix))
            .collect();
        let texts: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query(&mut self.connection)
            .map_err(|e| self.fail(e))?;
        let mut entries = Vec::new();
        for text in texts {
            // Entries are set in the script that numbers them, so none is
            // missing; stop at one anyway rather than skip it.
            let Some(text) = text else { break };
            let entry = serde_json::from_str(&text).map_err(|e| {
                Error::Invalid(format!(
                    "{}: entry {}:log:{} is not JSON ({e})",
                    self.shown, self.prefix, self.next
                ))
            })?;
            entries.push(entry);
            self.next += 1;
        }
        Ok(entries)
    }

    fn append_if_current(&mut self, entries: &[Json]) -> Result<bool> {
        let last_read = self.next - 1;
        self.run_append(Some(last_read), entries)
    }

    fn append(&mut self, entries: &[Json]) -> Result<()> {
        self.run_append(None, entries).map(|_| ())
    }

    fn reopen(&self) -> Result<Box<dyn LogStore>> {
        Ok(Box::new(RedisLog::open(&self.url)?))
    }

    fn describe(&self) -> String {
        format!(
            "{} (Redis {}, prefix {})",
            self.shown, self.server, self.prefix
        )
    }
}

/// `url` with the password of its user information (if any) as `***`.
fn without_password(url: &str) -> String {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let server = rest.split('/').next().unwrap_or_default();
    match server.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            let tail = &rest[server.len()..];
            format!("redis://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn messages_hide_the_password() {
        assert_eq!(
            without_password("redis://:s3cret@a:6379/study"),
            "redis://:***@a:6379/study"
        );
        assert_eq!(
            without_password("redis://me:s3cret@a:6379/study"),
            "redis://me:***@a:6379/study"
        );
        assert_eq!(
            without_password("redis://a:6379/study"),
            "redis://a:6379/study"
        );
    }
}

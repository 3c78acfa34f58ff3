//! The Redis backend of the exact cache, shared by every instance. Entries are JSON under
//! `<prefix>:t=<tenant tag>:m=<model tag>:a=<assistant tag>:<hash>` with Redis's own TTL, so a
//! purge by tenant, model or assistant is a `SCAN MATCH` on the tags.
//!
//! Every call is bounded by the configured timeout and fails open: an error or a slow Redis is
//! a miss (or a skipped write), logged and counted in `cache_errors{component="redis"}`. A Redis
//! that is down at startup does not stop Gatehouse; the connection is retried at most once a
//! second while requests go on without the cache.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::exact::Key;
use super::key::tag;
use super::metrics::CacheMetrics;
use super::{Entry, PurgeFilter};

/// Shortest wait between two attempts to (re)connect.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Keys deleted per `UNLINK` during a purge.
const PURGE_BATCH: usize = 500;

pub struct RedisStore {
    client: redis::Client,
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    /// When the last connection attempt started; `None` while one is running.
    last_attempt: Arc<tokio::sync::Mutex<Option<Instant>>>,
    prefix: String,
    timeout: Duration,
    metrics: CacheMetrics,
}

/// `*`, `?`, `[`, `]` and `\` are glob syntax in `SCAN MATCH`.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    /// Parses the URL (a bad one is a startup error) and tries to connect once.
    pub async fn connect(
        url: &SecretString,
        prefix: String,
        timeout: Duration,
        metrics: CacheMetrics,
    ) -> Result<RedisStore, String> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| format!("cache.redis_url: {e}"))?;
        let store = RedisStore {
            client,
            conn: Arc::new(RwLock::new(None)),
            last_attempt: Arc::new(tokio::sync::Mutex::new(None)),
            prefix,
            timeout,
            metrics,
        };
        let attempt = store.attempt();
        if !attempt.await {
            tracing::warn!("cache: Redis is not reachable; serving without the cache until it is");
        }
        Ok(store)
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.conn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One connection attempt, bounded; stores the connection on success.
    fn attempt(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let client = self.client.clone();
        let conn = Arc::clone(&self.conn);
        let metrics = self.metrics.clone();
        let timeout = self.timeout;
        async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(timeout.max(Duration::from_millis(500)))
                .set_response_timeout(timeout)
                .set_number_of_retries(1);
            let result = tokio::time::timeout(
                timeout.max(Duration::from_secs(1)),
                client.get_connection_manager_with_config(config),
            )
            .await;
            let error = match result {
                Ok(Ok(c)) => {
                    *conn
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(c);
                    tracing::info!("cache: connected to Redis");
                    return true;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".to_owned(),
            };
            metrics.error("redis");
            tracing::warn!(
                op = "connect",
                error,
                "cache: Redis call failed; treated as a miss"
            );
            false
        }
    }

    /// The shared connection. Without one, a reconnect starts in the background (at most one
    /// at a time, at most once a second) and this request goes without the cache.
    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(c) = self.current() {
            return Some(c);
        }
        let mut last = self.last_attempt.try_lock().ok()?;
        if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
            return None;
        }
        *last = Some(Instant::now());
        drop(last);
        let attempt = self.attempt();
        tokio::spawn(attempt);
        None
    }

    fn failed(&self, op: &str, error: &str) {
        self.metrics.error("redis");
        tracing::warn!(op, error, "cache: Redis call failed; treated as a miss");
    }

    /// Runs one command under the timeout; `None` on any failure.
    async fn run<T: redis::FromRedisValue>(&self, op: &str, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(op, &e.to_string());
                None
            }
            Err(_) => {
                self.failed(op, "timed out");
                None
            }
        }
    }

    pub fn key_name(&self, key: &Key) -> String {
        format!(
            "{}:t={}:m={}:a={}:{}",
            self.prefix,
            tag(&key.tenant),
            tag(&key.model),
            tag(&key.assistant),
            key.hash
        )
    }

    pub async fn get(&self, name: &str) -> Option<Entry> {
        let bytes: Option<Vec<u8>> = self.run("get", redis::cmd("GET").arg(name)).await?;
        let bytes = bytes?;
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) => Some(e),
            Err(e) => {
                self.failed("decode", &e.to_string());
                None
            }
        }
    }

    pub async fn put(&self, name: &str, json: &[u8], ttl: Duration) -> bool {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let ok: Option<()> = self
            .run(
                "set",
                redis::cmd("SET").arg(name).arg(json).arg("PX").arg(ms),
            )
            .await;
        ok.is_some()
    }

    /// Deletes the matching keys with `SCAN MATCH` + `UNLINK`; returns how many.
    pub async fn purge(&self, filter: &PurgeFilter) -> Result<u64, String> {
        let part = |v: Option<&str>| v.map_or_else(|| "*".to_owned(), tag);
        let pattern = format!(
            "{}:t={}:m={}:a={}:*",
            escape_glob(&self.prefix),
            part(filter.tenant.as_deref()),
            part(filter.model.as_deref()),
            part(filter.assistant.as_deref())
        );
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .run(
                    "scan",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1_000),
                )
                .await
                .ok_or("Redis did not answer SCAN")?;
            for chunk in keys.chunks(PURGE_BATCH) {
                let n: u64 = self
                    .run("unlink", redis::cmd("UNLINK").arg(chunk))
                    .await
                    .ok_or("Redis did not answer UNLINK")?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("gh:cache"), "gh:cache");
        // Bad input: a prefix made of glob syntax must match only itself.
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}

//! Installs the global `tracing` subscriber once, from the log configuration.
//!
//! Lines are formatted on the request's thread into a shared buffer; a background thread writes
//! the buffer out every 50 ms (and at exit) in one `write`. Compared with a write per line, or a
//! writer thread woken per line, this saves a syscall and a thread wake-up per request. When the
//! buffer is over its bound (the output is stalled) lines are dropped and counted
//! (`gatehouse_log_lines_dropped_total`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Largest amount of unwritten log text kept.
const MAX_BUFFERED: usize = 8 * 1024 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(50);

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because the output fell behind.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

#[derive(Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

impl Shared {
    fn flush_to(&self, out: &mut impl Write) {
        let pending = std::mem::take(&mut *self.buf.lock().unwrap_or_else(PoisonError::into_inner));
        if !pending.is_empty() {
            let _ = out.write_all(&pending);
            let _ = out.flush();
        }
    }
}

/// Keeps the flushing thread; dropping it writes what is left and stops the thread.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.shared.flush_to(&mut std::io::stdout().lock());
    }
}

/// Appends to the shared buffer. The fmt layer formats each event whole and hands it over in
/// one `write`, so every write is one complete line (lines of different threads never mix).
pub struct LineWriter {
    shared: Arc<Shared>,
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buf = self
            .shared
            .buf
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if buf.len() + line.len() > MAX_BUFFERED {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        } else {
            buf.extend_from_slice(line);
        }
        Ok(line.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
struct MakeLineWriter(Arc<Shared>);

impl<'a> MakeWriter<'a> for MakeLineWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            shared: Arc::clone(&self.0),
        }
    }
}

/// Install the subscriber. `RUST_LOG` wins over the configured filter. Keep the returned guard
/// alive until exit: dropping it writes the last lines.
pub fn init(cfg: &LogConfig) -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stdout().is_terminal();
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !terminal,
    };
    let shared = Arc::new(Shared::default());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(terminal && !json)
        .with_writer(MakeLineWriter(Arc::clone(&shared)));
    let installed = if json {
        builder
            .event_format(super::json_lines::JsonLines)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.ok()?;
    let flusher = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("gatehouse-log".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            while !flusher.stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(FLUSH_EVERY);
                flusher.flush_to(&mut stdout.lock());
            }
        })
        .ok();
    Some(LogGuard { shared, thread })
}

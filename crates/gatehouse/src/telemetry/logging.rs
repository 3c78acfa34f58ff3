//! Installs the global `tracing` subscriber once, from the log configuration. Lines are
//! formatted on the request's thread but written by a background thread through a buffer, so a
//! slow terminal or disk never stalls a request; lines that do not fit the queue are dropped and
//! counted (`gatehouse_log_lines_dropped_total`).

use std::io::{BufWriter, IsTerminal};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines dropped because the writer fell behind (0 before `init`).
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// Install the subscriber. `RUST_LOG` wins over the configured filter. Keep the returned guard
/// alive until exit: dropping it flushes the last lines.
pub fn init(cfg: &LogConfig) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stdout().is_terminal();
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !terminal,
    };
    // The worker flushes whenever its queue is empty, so lines still appear promptly; in between
    // the buffer turns bursts of lines into single writes.
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(65_536)
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let _ = DROPPED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(terminal && !json)
        .with_writer(writer);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.ok().map(|()| guard)
}

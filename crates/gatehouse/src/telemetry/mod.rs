//! Logs and metrics. Logs go through `tracing` (JSON, or pretty on a terminal); metrics live in a
//! per-instance Prometheus registry rendered at `/metrics`.

mod json_lines;
pub mod logging;
pub mod metrics;

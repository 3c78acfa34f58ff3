//! Gatehouse persistence: the [`Store`] over SQLite or PostgreSQL with its embedded
//! migrations, the usage ledger row ([`UsageRecord`]) and the batching [`Ledger`] writer
//! that keeps database writes off the request path; API keys and the audit log.

mod audit;
mod database_url;
mod error;
mod keys;
mod ledger;
mod migrations;
mod store;
mod usage;

pub use audit::{AuditEntry, AuditFilter};
pub use database_url::redact as redact_url;
pub use error::StoreError;
pub use keys::{ApiKeyRow, NewApiKey};
pub use ledger::{Ledger, LedgerConfig, LedgerSnapshot, LedgerStats, LedgerWriter};
pub use migrations::SCHEMA_VERSION;
pub use store::Store;
pub use usage::{CacheStatus, Route, UsageRecord};

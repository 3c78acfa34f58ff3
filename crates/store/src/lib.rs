//! Gatehouse persistence: the [`Store`] over SQLite or PostgreSQL with its embedded
//! migrations, the usage ledger row ([`UsageRecord`]) and the batching [`Ledger`] writer
//! that keeps database writes off the request path; API keys and the audit log.

mod assistants;
mod audit;
mod conversations;
mod database_url;
mod error;
mod experiments;
mod keys;
mod ledger;
mod migrations;
mod semantic;
mod store;
mod usage;

pub use assistants::{AssistantRecord, AssistantVersion, ImportCounts};
pub use audit::{AuditEntry, AuditFilter};
pub use conversations::{ConversationRecord, MessageRecord, NewConversation};
pub use database_url::{redact as redact_url, sqlite_file};
pub use error::StoreError;
pub use experiments::{ExperimentRecord, NewExperiment, VariantRatings, VariantUsage};
pub use keys::{ApiKeyRow, NewApiKey};
pub use ledger::{Ledger, LedgerConfig, LedgerSnapshot, LedgerStats, LedgerWriter};
pub use migrations::SCHEMA_VERSION;
pub use semantic::{NewSemanticEntry, SemanticFilter, SemanticRow};
pub use store::Store;
pub use usage::report::{AssistantUsage, UsageDimension, UsageGroup};
pub use usage::{CacheStatus, Route, UsageRecord};

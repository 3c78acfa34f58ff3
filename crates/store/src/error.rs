//! `StoreError`: the one error type at the persistence boundary.
//!
//! Every variant that mentions a database URL carries it already redacted, so an error can be
//! logged or shown to an operator without leaking a password.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Only the scheme is named: the rest of an unrecognised URL may hold a secret.
    #[error(
        "unsupported database URL scheme `{scheme}`: expected `sqlite://`, `postgres://` or `postgresql://`"
    )]
    UnsupportedScheme { scheme: String },

    #[error("invalid database URL: {reason}")]
    InvalidUrl { reason: String },

    #[error("cannot create the directory for SQLite database `{}`: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot connect to {backend} database at {url}: {source}")]
    Connect {
        backend: &'static str,
        /// Already redacted.
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// A stored value that no longer maps to a known enum variant, e.g. after a downgrade.
    #[error("usage record {id}: column `{column}` holds unknown value {value}")]
    UnknownValue {
        id: i64,
        column: &'static str,
        value: i64,
    },

    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

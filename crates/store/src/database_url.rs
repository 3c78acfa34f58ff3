//! Database URL handling: which backend a URL selects, and a redacted form safe to log.
//!
//! Parsing happens once, at connect; nothing else in the crate looks at URL strings.

use std::path::PathBuf;

use crate::StoreError;

/// The backend a URL selects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    SqliteFile(PathBuf),
    SqliteMemory,
    /// The URL is handed to sqlx unchanged: it understands every libpq parameter we want
    /// (`sslmode`, `options=-csearch_path%3D…`, `application_name`, …).
    Postgres(&'a str),
}

pub(crate) fn parse(url: &str) -> Result<Target<'_>, StoreError> {
    let scheme = scheme(url).ok_or_else(|| StoreError::InvalidUrl {
        reason: "no scheme; expected `sqlite://PATH` or `postgres://…`".to_owned(),
    })?;
    let rest = &url[scheme.len() + 1..];
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => parse_sqlite(rest),
        "postgres" | "postgresql" => Ok(Target::Postgres(url)),
        _ => Err(StoreError::UnsupportedScheme {
            scheme: scheme.to_owned(),
        }),
    }
}

/// The file of a SQLite URL (`None` for PostgreSQL, in-memory SQLite and invalid URLs), for
/// keeping other local state beside the database.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    match parse(url) {
        Ok(Target::SqliteFile(p)) => Some(p),
        _ => None,
    }
}

/// The scheme if the URL starts with a syntactically valid one (RFC 3986 section 3.1).
/// Anything else returns `None`, so an error never quotes text that was not a scheme.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first_is_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_valid = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_is_alpha && rest_valid).then_some(scheme)
}

fn parse_sqlite(rest: &str) -> Result<Target<'_>, StoreError> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path == ":memory:" {
        return Ok(Target::SqliteMemory);
    }
    // The pragmas are fixed by `Store::connect`; silently ignoring `?mode=…` would surprise.
    if path.contains('?') {
        return Err(StoreError::InvalidUrl {
            reason: "SQLite URLs take no query parameters".to_owned(),
        });
    }
    if path.is_empty() {
        return Err(StoreError::InvalidUrl {
            reason: "SQLite URL has no file path; expected `sqlite://PATH`".to_owned(),
        });
    }
    Ok(Target::SqliteFile(PathBuf::from(path)))
}

/// `url` with any password replaced by `***`: the one in the user-info part and any
/// `password`-like query parameter. Use it whenever a database URL is logged or shown.
///
/// It works on malformed URLs too and errs towards hiding too much: user info is taken to end
/// at the *last* `@`, so a password holding a raw `@`, `/` or `?` is still hidden.
pub fn redact(url: &str) -> String {
    let userinfo_redacted = redact_userinfo(url);
    let host_start = userinfo_redacted.find("://").map_or(0, |i| i + 3);
    let host_start = userinfo_redacted[host_start..]
        .rfind('@')
        .map_or(host_start, |at| host_start + at);
    match userinfo_redacted[host_start..].split_once('?') {
        Some((head, query)) => {
            let params: Vec<String> = query.split('&').map(redact_param).collect();
            format!(
                "{}{head}?{}",
                &userinfo_redacted[..host_start],
                params.join("&")
            )
        }
        None => userinfo_redacted,
    }
}

fn redact_userinfo(url: &str) -> String {
    let Some(authority_start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let Some(at) = url[authority_start..].rfind('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = url[authority_start..authority_start + at].split_once(':') else {
        return url.to_owned();
    };
    format!(
        "{}{user}:***{}",
        &url[..authority_start],
        &url[authority_start + at..]
    )
}

fn redact_param(param: &str) -> String {
    match param.split_once('=') {
        Some((key, _)) if key.to_ascii_lowercase().contains("password") => format!("{key}=***"),
        _ => param.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_backend_by_scheme() {
        assert_eq!(
            parse("sqlite://data/g.db").unwrap(),
            Target::SqliteFile(PathBuf::from("data/g.db"))
        );
        assert_eq!(
            parse("sqlite:///var/lib/g.db").unwrap(),
            Target::SqliteFile(PathBuf::from("/var/lib/g.db"))
        );
        assert_eq!(parse("sqlite::memory:").unwrap(), Target::SqliteMemory);
        assert_eq!(
            parse("postgres://u@h/db").unwrap(),
            Target::Postgres("postgres://u@h/db")
        );
        assert_eq!(
            parse("PostgreSQL://u@h/db").unwrap(),
            Target::Postgres("PostgreSQL://u@h/db")
        );
    }

    #[test]
    fn rejects_bad_sqlite_urls() {
        assert!(matches!(
            parse("sqlite://"),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse("sqlite://g.db?mode=rwc"),
            Err(StoreError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn unknown_scheme_names_only_the_scheme() {
        let err = parse("mysql://root:hunter2@db/x").unwrap_err().to_string();
        assert_eq!(
            err,
            "unsupported database URL scheme `mysql`: expected `sqlite://`, `postgres://` or `postgresql://`"
        );
        let err = parse("hunter2").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse("/a b:hunter2@x").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://gh:s3cr@t@db:5432/gh?sslmode=require"),
            "postgres://gh:***@db:5432/gh?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db/gh?user=gh&password=s3cret&Password=x"),
            "postgres://db/gh?user=gh&password=***&Password=***"
        );
        assert_eq!(redact("postgres://gh@db/gh"), "postgres://gh@db/gh");
        assert_eq!(redact("sqlite://data/g.db"), "sqlite://data/g.db");
        // Malformed passwords (raw `/`, `?`, `@`) are still hidden.
        assert_eq!(redact("postgres://gh:pa/ss@db/x"), "postgres://gh:***@db/x");
        assert_eq!(redact("postgres://gh:pa?ss@db/x"), "postgres://gh:***@db/x");
        assert_eq!(
            redact("postgres://gh:a@b?c@db/x?password=p"),
            "postgres://gh:***@db/x?password=***"
        );
    }
}

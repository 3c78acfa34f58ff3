//! Connect-time errors: they name what is wrong and never echo a password.

use store::{Store, StoreError};

#[tokio::test]
async fn unknown_scheme_is_named_without_the_password() {
    let err = Store::connect("mysql://root:hunter2@db.internal/gatehouse")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedScheme { ref scheme } if scheme == "mysql"));
    let text = err.to_string();
    assert!(text.contains("`mysql`"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn missing_scheme_is_rejected_without_echo() {
    let err = Store::connect("hunter2@db").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn unreachable_postgres_error_redacts_the_password() {
    // Port 1 on loopback: refused at once, nothing listens there.
    let err = Store::connect("postgres://gatehouse:hunter2@127.0.0.1:1/gatehouse")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::Connect {
                backend: "postgres",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains("postgres://gatehouse:***@127.0.0.1:1/gatehouse"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[test]
fn redact_url_is_public_for_logging_config() {
    assert_eq!(
        store::redact_url("postgresql://u:p@h/db?sslmode=require"),
        "postgresql://u:***@h/db?sslmode=require"
    );
}

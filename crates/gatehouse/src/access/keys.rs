//! API keys: the format (`ghk_<8 hex>_<32 hex>`, shown once), the SHA-256 that is stored, the
//! in-memory key set every request is checked against, and its refresh from the database.
//!
//! The visible prefix (`ghk_<8 hex>`) finds the candidate; the digest of the presented key is
//! then compared with the stored digest in constant time ([`digests_equal`]). An unknown prefix
//! is compared against a dummy digest, so every failure costs the same.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};
use store::{ApiKeyRow, Store};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::Priority;

pub const KEY_PREFIX: &str = "ghk_";
/// `ghk_` + 8 hex: the part shown in listings and logs.
pub const VISIBLE_LEN: usize = 12;
/// The whole key: visible part, `_`, 32 hex.
pub const KEY_LEN: usize = 45;

/// A fresh key and its visible prefix. Randomness comes from UUID v4 (a CSPRNG): 32 bits in
/// the prefix and 122 in the secret.
pub fn generate() -> (String, String) {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("{KEY_PREFIX}{}", &a[..8]);
    (format!("{prefix}_{b}"), prefix)
}

pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub fn digest_hex(key: &str) -> String {
    digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
thread_local! {
    /// Constant-time comparisons made on this thread (tests check every path goes through it).
    pub static CT_COMPARISONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The one place a presented key's digest meets a stored one: `subtle`'s constant-time
/// equality, whose running time does not depend on where the digests differ.
pub fn digests_equal(presented: &[u8; 32], stored: &[u8; 32]) -> bool {
    #[cfg(test)]
    CT_COMPARISONS.with(|c| c.set(c.get() + 1));
    presented.ct_eq(stored).into()
}

/// The visible prefix of a presented key, when it has our shape.
pub fn visible_prefix(presented: &str) -> Option<&str> {
    let ok = presented.len() == KEY_LEN
        && presented.starts_with(KEY_PREFIX)
        && presented.as_bytes()[VISIBLE_LEN] == b'_'
        && presented.is_ascii();
    ok.then(|| &presented[..VISIBLE_LEN])
}

/// A key as the request path sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: i64,
    pub prefix: String,
    pub name: String,
    pub owner: Option<String>,
    pub team: Option<String>,
    /// Model aliases this key may use; absent: all.
    pub allowed_models: Option<Vec<String>>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
    pub expires_at_ms: Option<i64>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub priority: Priority,
    pub allow_downgrade: bool,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub budget_reset_at_ms: Option<i64>,
}

impl ApiKey {
    pub fn from_row(r: &ApiKeyRow) -> ApiKey {
        let pos = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
        ApiKey {
            id: r.id,
            prefix: r.prefix.clone(),
            name: r.name.clone(),
            owner: r.owner.clone(),
            team: r.team.clone(),
            allowed_models: r
                .allowed_models
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            rpm: pos(r.rpm),
            tpm: pos(r.tpm),
            max_concurrent: pos(r.max_concurrent),
            daily_budget_micros: r.daily_budget_micros,
            monthly_budget_micros: r.monthly_budget_micros,
            expires_at_ms: r.expires_at_ms,
            metadata: serde_json::from_str(&r.metadata).unwrap_or(serde_json::Value::Null),
            priority: r.priority.parse().unwrap_or(Priority::Normal),
            allow_downgrade: r.allow_downgrade,
            created_at_ms: r.created_at_ms,
            revoked_at_ms: r.revoked_at_ms,
            budget_reset_at_ms: r.budget_reset_at_ms,
        }
    }

    pub fn allows_model(&self, alias: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|m| m.iter().any(|a| a == alias))
    }
}

struct Entry {
    key: Arc<ApiKey>,
    digest: [u8; 32],
    /// For a rotated-out secret: when it stops working.
    until_ms: Option<i64>,
}

/// Why a presented key was refused (the audit log and metrics say which; clients only hear
/// "invalid").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Malformed,
    Unknown,
    Mismatch,
    Expired,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Malformed => "malformed",
            AuthFailure::Unknown => "unknown",
            AuthFailure::Mismatch => "mismatch",
            AuthFailure::Expired => "expired",
        }
    }
}

#[derive(Default)]
struct KeySet {
    by_prefix: HashMap<String, Entry>,
    by_id: HashMap<i64, Arc<ApiKey>>,
    /// Any key was ever created (revoked ones count): open mode is over for good.
    any: bool,
}

/// The live key set of this instance.
#[derive(Default)]
pub struct KeyCache {
    set: RwLock<Arc<KeySet>>,
    version: AtomicI64,
}

const DUMMY: [u8; 32] = [0x5a; 32];

impl KeyCache {
    fn current(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .set
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn any_keys(&self) -> bool {
        self.current().any
    }

    pub fn get(&self, id: i64) -> Option<Arc<ApiKey>> {
        self.current().by_id.get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        self.current().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current().by_id.is_empty()
    }

    /// Check a presented key. Every path makes exactly one constant-time digest comparison.
    pub fn authenticate(&self, presented: &str, now_ms: i64) -> Result<Arc<ApiKey>, AuthFailure> {
        let got = digest(presented);
        let set = self.current();
        let Some(prefix) = visible_prefix(presented) else {
            digests_equal(&got, &DUMMY);
            return Err(AuthFailure::Malformed);
        };
        let Some(entry) = set.by_prefix.get(prefix) else {
            digests_equal(&got, &DUMMY);
            return Err(AuthFailure::Unknown);
        };
        if !digests_equal(&got, &entry.digest) {
            return Err(AuthFailure::Mismatch);
        }
        let expired = entry.key.expires_at_ms.is_some_and(|t| t <= now_ms)
            || entry.until_ms.is_some_and(|t| t <= now_ms);
        if expired {
            return Err(AuthFailure::Expired);
        }
        Ok(Arc::clone(&entry.key))
    }

    /// Replace the key set with `rows` (revoked keys are kept out, but make `any_keys` true).
    /// Returns the ids whose `budget_reset_at_ms` changed.
    pub fn load(&self, rows: &[ApiKeyRow], version: i64) -> Vec<i64> {
        let old = self.current();
        let mut set = KeySet {
            any: !rows.is_empty(),
            ..KeySet::default()
        };
        let mut reset = Vec::new();
        for r in rows {
            if r.revoked_at_ms.is_some() {
                continue;
            }
            let key = Arc::new(ApiKey::from_row(r));
            if old
                .by_id
                .get(&r.id)
                .is_some_and(|k| k.budget_reset_at_ms != key.budget_reset_at_ms)
            {
                reset.push(r.id);
            }
            if let Some(d) = parse_hex(&r.hash) {
                set.by_prefix.insert(
                    r.prefix.clone(),
                    Entry {
                        key: Arc::clone(&key),
                        digest: d,
                        until_ms: None,
                    },
                );
            }
            if let (Some(p), Some(h), Some(until)) = (
                &r.previous_prefix,
                &r.previous_hash,
                r.previous_expires_at_ms,
            ) && let Some(d) = parse_hex(h)
            {
                set.by_prefix.insert(
                    p.clone(),
                    Entry {
                        key: Arc::clone(&key),
                        digest: d,
                        until_ms: Some(until),
                    },
                );
            }
            set.by_id.insert(r.id, key);
        }
        *self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        self.version.store(version, Ordering::Release);
        reset
    }

    /// Reload from the store when its key-set version moved. `Ok(Some(reset ids))` on reload.
    pub async fn refresh(&self, store: &Store) -> Result<Option<Vec<i64>>, store::StoreError> {
        let v = store.keys_version().await?;
        if v == self.version.load(Ordering::Acquire) {
            return Ok(None);
        }
        let rows = store.list_keys().await?;
        Ok(Some(self.load(&rows, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: &str) -> ApiKeyRow {
        ApiKeyRow {
            id,
            prefix: visible_prefix(key).unwrap_or("x").to_owned(),
            hash: digest_hex(key),
            name: "t".into(),
            owner: None,
            team: None,
            allowed_models: Some(r#"["m1"]"#.into()),
            rpm: Some(5),
            tpm: None,
            max_concurrent: None,
            daily_budget_micros: None,
            monthly_budget_micros: None,
            expires_at_ms: None,
            metadata: "{}".into(),
            priority: "batch".into(),
            allow_downgrade: false,
            created_at_ms: 0,
            revoked_at_ms: None,
            budget_reset_at_ms: None,
            previous_prefix: None,
            previous_hash: None,
            previous_expires_at_ms: None,
        }
    }

    fn compares() -> u32 {
        CT_COMPARISONS.with(std::cell::Cell::get)
    }

    #[test]
    fn every_check_goes_through_the_constant_time_comparison() {
        let (key, prefix) = generate();
        assert_eq!((key.len(), prefix.len()), (KEY_LEN, VISIBLE_LEN));
        assert!(key.starts_with(&prefix));
        let cache = KeyCache::default();
        cache.load(&[row(1, &key)], 1);
        let before = compares();
        let k = cache.authenticate(&key, 0).unwrap();
        assert_eq!((k.id, k.rpm, k.priority), (1, Some(5), Priority::Batch));
        assert!(k.allows_model("m1") && !k.allows_model("m2"));
        // Bad input: the right prefix with a wrong secret (one character changed).
        let mut wrong = key.clone();
        wrong.replace_range(44..45, if key.ends_with('0') { "1" } else { "0" });
        assert_eq!(
            cache.authenticate(&wrong, 0).unwrap_err(),
            AuthFailure::Mismatch
        );
        // Bad input: a well-formed key nobody issued.
        let (other, _) = generate();
        assert_eq!(
            cache.authenticate(&other, 0).unwrap_err(),
            AuthFailure::Unknown
        );
        // Bad input: something that is not a key at all, and the empty string.
        assert_eq!(
            cache.authenticate("sk-123", 0).unwrap_err(),
            AuthFailure::Malformed
        );
        assert_eq!(
            cache.authenticate("", 0).unwrap_err(),
            AuthFailure::Malformed
        );
        // Five checks, five constant-time comparisons: no path compares any other way.
        assert_eq!(compares() - before, 5);
    }

    #[test]
    fn expiry_rotation_and_revocation() {
        let (old, _) = generate();
        let (new, new_prefix) = generate();
        let mut r = row(7, &old);
        r.expires_at_ms = Some(1_000);
        let cache = KeyCache::default();
        cache.load(&[r.clone()], 1);
        assert!(cache.authenticate(&old, 999).is_ok());
        // Bad input: a key used at its expiry instant.
        assert_eq!(
            cache.authenticate(&old, 1_000).unwrap_err(),
            AuthFailure::Expired
        );
        // Rotated with a grace period: both secrets work until it ends, then only the new one.
        r.expires_at_ms = None;
        r.previous_prefix = Some(r.prefix.clone());
        r.previous_hash = Some(r.hash.clone());
        r.previous_expires_at_ms = Some(500);
        r.prefix = new_prefix;
        r.hash = digest_hex(&new);
        cache.load(&[r.clone()], 2);
        assert!(cache.authenticate(&old, 499).is_ok());
        assert_eq!(
            cache.authenticate(&old, 500).unwrap_err(),
            AuthFailure::Expired
        );
        assert_eq!(cache.authenticate(&new, 10_000).unwrap().id, 7);
        r.revoked_at_ms = Some(1);
        cache.load(&[r], 3);
        assert_eq!(
            cache.authenticate(&new, 0).unwrap_err(),
            AuthFailure::Unknown
        );
        assert!(cache.any_keys(), "a revoked key still ends open mode");
        assert_eq!(cache.len(), 0);
    }
}

//! Signed cookie values: `<payload>.<signature>`, the signature an HMAC-SHA256 of the payload
//! under a key derived for one purpose (chat session, admin session, CSRF), so a value signed
//! for one purpose never verifies for another. The root secret comes from
//! `web.session_secret_env`, else a file beside the SQLite database (made once, mode 0600),
//! else random bytes for this process only (logged as a warning).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::Config;

type HmacSha256 = Hmac<Sha256>;

/// What a key signs; part of the key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ChatSession,
    AdminSession,
    Csrf,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::ChatSession => b"gatehouse chat session v1",
            Purpose::AdminSession => b"gatehouse admin session v1",
            Purpose::Csrf => b"gatehouse csrf v1",
        }
    }
}

/// Signs and verifies values for one purpose.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    /// A signer for `purpose`; `extra` binds it to more material (the admin key for admin
    /// sessions, so changing the admin key signs everyone out).
    pub fn new(root: &[u8], purpose: Purpose, extra: &[u8]) -> Signer {
        let mut h = Sha256::new();
        h.update(purpose.label());
        h.update([0]);
        h.update(Sha256::digest(extra));
        h.update(root);
        Signer {
            key: h.finalize().into(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// `payload.signature` (URL-safe base64, no padding).
    pub fn sign(&self, payload: &str) -> String {
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The payload of a value this signer signed; `None` for anything else. Constant time in
    /// the signature.
    pub fn verify<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (payload, sig) = value.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).ok()?;
        Some(payload)
    }
}

/// 32 bytes from the operating system's CSPRNG (UUIDv4 draws from it).
pub fn random_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out
}

/// A random URL-safe identifier (128 bits of entropy in 22 characters).
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(&random_bytes()[..16])
}

/// The root secret of every signer, in the order the module documents.
pub fn root_secret(config: &Config) -> Vec<u8> {
    if let Some(s) = &config.web.session_secret {
        return s.expose_secret().as_bytes().to_vec();
    }
    if let Some(db) = store::sqlite_file(config.database_url.expose_secret()) {
        let path = db
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("session-secret");
        match secret_file(&path) {
            Ok(s) => return s,
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "could not keep the session secret beside the database; chat sessions end on restart"
            ),
        }
    } else {
        tracing::warn!(
            "no session secret configured (web.session_secret_env): chat and admin sessions end on restart and differ between instances"
        );
    }
    random_bytes().to_vec()
}

/// Read the secret file, or create it (readable by the owner only) with fresh random bytes.
fn secret_file(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the session secret file is shorter than 32 characters",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let secret = URL_SAFE_NO_PAD.encode(random_bytes());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, secret.as_bytes())?;
            Ok(secret.into_bytes())
        }
        // Another instance made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn values_verify_only_for_their_purpose_and_unchanged() {
        let chat = Signer::new(b"root", Purpose::ChatSession, b"");
        let admin = Signer::new(b"root", Purpose::AdminSession, b"");
        let token = chat.sign("v1.abc.123");
        assert_eq!(chat.verify(&token), Some("v1.abc.123"));
        // Bad input: the same value checked by another purpose's signer.
        assert_eq!(admin.verify(&token), None);
        // Bad input: a changed payload with the original signature.
        let forged = token.replacen("abc", "abd", 1);
        assert_eq!(chat.verify(&forged), None);
        // Bad input: no signature, an empty one, and one that is not base64.
        assert_eq!(chat.verify("v1"), None);
        assert_eq!(chat.verify("v1.abc.123."), None);
        assert_eq!(chat.verify("v1.abc.123.%%%"), None);
        // Bad input: another root secret.
        let other = Signer::new(b"root2", Purpose::ChatSession, b"");
        assert_eq!(other.verify(&token), None);
        // Another admin key (the `extra` material) does not verify either.
        let admin2 = Signer::new(b"root", Purpose::AdminSession, b"key-2");
        assert_eq!(admin2.verify(&admin.sign("x")), None);
    }

    #[test]
    fn the_secret_file_is_made_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("gatehouse-secret-{}", uuid::Uuid::new_v4()));
        let path = dir.join("session-secret");
        let first = secret_file(&path).unwrap();
        assert_eq!(first.len(), 43);
        assert_eq!(secret_file(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Bad input: a truncated secret file is refused rather than used.
        std::fs::write(&path, "short").unwrap();
        assert!(secret_file(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

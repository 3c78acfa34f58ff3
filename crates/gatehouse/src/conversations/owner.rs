//! Who owns a conversation: the API key of the request (its `Principal`) and the end-user id
//! (`x-gatehouse-user` header, or the `user` field of the body). A conversation is visible only
//! to requests with the same key *and* the same end-user id; to everyone else it does not exist
//! (404).
//!
//! In open mode (no API keys) the key part is empty for every caller, so the end-user id is the
//! only partition and it is whatever the client says: conversations created without one are
//! shared by every anonymous caller. Open mode is for trusted networks; send a user id.

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::auth::Principal;
use crate::error::ApiError;

pub const USER_HEADER: &str = "x-gatehouse-user";

/// The caller as the conversation layer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub key_id: Option<i64>,
    /// From the `x-gatehouse-user` header.
    pub user_header: Option<String>,
}

/// A resolved owner: what the store matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub key_id: Option<i64>,
    pub user: Option<String>,
}

impl Owner {
    /// `<key id or ->:<user id>`: the key part never contains `:`, so the string is unambiguous.
    pub fn canonical(&self) -> String {
        let key = self
            .key_id
            .map_or_else(|| "-".to_owned(), |k| k.to_string());
        format!("{key}:{}", self.user.as_deref().unwrap_or(""))
    }
}

fn check_user(param: &str, user: &str) -> Result<(), ApiError> {
    if user.is_empty() || user.chars().count() > 256 || user.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            "the end-user id is 1 to 256 characters without control characters",
        ));
    }
    Ok(())
}

impl Caller {
    /// The owner, with the end-user id from the header or `body_user`; both may be given only
    /// when they agree.
    pub fn owner(&self, body_user: Option<&str>) -> Result<Owner, ApiError> {
        let body_user = body_user.filter(|u| !u.is_empty());
        if let Some(u) = body_user {
            check_user("user", u)?;
        }
        let user = match (&self.user_header, body_user) {
            (Some(h), Some(b)) if h != b => {
                return Err(ApiError::invalid(
                    "user",
                    format!(
                        "`user` differs from the {USER_HEADER} header; send one or make them equal"
                    ),
                ));
            }
            (Some(h), _) => Some(h.clone()),
            (None, b) => b.map(str::to_owned),
        };
        Ok(Owner {
            key_id: self.key_id,
            user,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let key_id = parts.extensions.get::<Principal>().and_then(|p| p.key_id);
        let user_header = match parts.headers.get(USER_HEADER) {
            None => None,
            Some(v) => {
                let s = v
                    .to_str()
                    .map_err(|_| {
                        ApiError::invalid(USER_HEADER, "the end-user id must be visible ASCII")
                    })?
                    .trim()
                    .to_owned();
                check_user(USER_HEADER, &s)?;
                Some(s)
            }
        };
        Ok(Caller {
            key_id,
            user_header,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_owner_strings_do_not_collide() {
        let o = |k: Option<i64>, u: Option<&str>| {
            Owner {
                key_id: k,
                user: u.map(str::to_owned),
            }
            .canonical()
        };
        assert_eq!(o(None, None), "-:");
        assert_eq!(o(Some(12), Some("alice")), "12:alice");
        // A user id that looks like a key prefix stays distinct.
        assert_ne!(o(None, Some("1:x")), o(Some(1), Some("x")));
        assert_ne!(o(Some(1), None), o(None, Some("1")));
    }

    #[test]
    fn header_and_body_user_must_agree() {
        let c = Caller {
            key_id: Some(3),
            user_header: Some("u1".into()),
        };
        assert_eq!(c.owner(None).unwrap().user.as_deref(), Some("u1"));
        assert_eq!(c.owner(Some("u1")).unwrap().canonical(), "3:u1");
        // Bad input: a body `user` other than the header's.
        assert_eq!(
            c.owner(Some("u2")).unwrap_err().param.as_deref(),
            Some("user")
        );
        // Bad input: a control character in the body `user`.
        let anon = Caller::default();
        assert_eq!(
            anon.owner(Some("a\u{7}b")).unwrap_err().param.as_deref(),
            Some("user")
        );
        assert_eq!(anon.owner(Some("")).unwrap().canonical(), "-:");
    }
}

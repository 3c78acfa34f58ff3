//! The web UI: the embedded chat and admin console files ([`assets`]), the chat's anonymous
//! sessions ([`chat_session`]) and API ([`api`]), per-user spend ([`spend`]), and what they share:
//! signed cookies ([`signing`], [`cookies`]). Admin console sessions live in
//! `crate::auth::session`.

pub mod api;
pub mod assets;
pub mod chat_session;
pub mod conversations;
pub mod cookies;
pub mod signing;
pub mod spend;
pub mod tokens;

use crate::auth::session::AdminSessions;
use crate::config::Config;

/// The UI's runtime state, built once at startup.
pub struct WebState {
    pub chat: chat_session::ChatSessions,
    pub admin: AdminSessions,
    pub spend: spend::Spend,
}

impl WebState {
    pub fn new(config: &Config) -> WebState {
        let root = signing::root_secret(config);
        WebState {
            chat: chat_session::ChatSessions::new(&root),
            admin: AdminSessions::new(&root, config),
            spend: spend::Spend::default(),
        }
    }
}

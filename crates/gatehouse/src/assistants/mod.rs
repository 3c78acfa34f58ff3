//! Assistants: named, versioned configurations (system prompt, model or tier, sampling
//! parameters, cost ceilings) that any OpenAI client reaches with `"model": "assistant/<slug>"`.
//!
//! - [`spec`]: the definition and its validation;
//! - [`runtime`]: definitions cached for the request path, and each assistant's daily spend;
//! - [`apply`]: the chat pipeline's hook (prompt, parameters, variant, ceilings);
//! - [`admin`]: CRUD, version history, export and import under `/admin/api/assistants`;
//! - [`lint`]: prompt token counts for the admin API and `gatehouse lint-prompts`.

pub mod admin;
pub mod apply;
pub mod lint;
pub mod runtime;
pub mod spec;

pub use apply::{Session, apply};
pub use runtime::Runtime;
pub use spec::AssistantSpec;

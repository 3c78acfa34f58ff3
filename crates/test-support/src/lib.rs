//! Test support for Gatehouse: mock upstreams that speak OpenAI's exact wire format, and
//! [`FixtureUpstream`], which serves recorded fixtures of any provider's format.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::{Behavior, MockUpstream};
//!
//! let upstream = MockUpstream::start(Behavior::ok("Hello there").with_usage(12, 2, 0)).await;
//! // point a provider at `upstream.base_url` (http://127.0.0.1:PORT/v1), send requests, then:
//! assert_eq!(upstream.hits(), 0);
//! upstream.set_behavior(Behavior::rate_limited(3));
//! # }
//! ```
//!
//! Routes: `POST /v1/chat/completions` (streaming when the body has `"stream": true`),
//! `POST /v1/embeddings`, `GET /v1/models`; anything else gets OpenAI's 404 body. Every request
//! is recorded, whatever the behavior.

mod behavior;
mod body;
mod embedding;
mod fixture;
pub mod openai;
mod upstream;

pub use behavior::{
    Behavior, DEFAULT_EMBEDDING_DIM, DEFAULT_MODELS, Reply, ToolCall, UpstreamError,
};
pub use embedding::{embedding_for, embeddings_response};
pub use fixture::{Canned, FixtureUpstream};
pub use upstream::{MockUpstream, RecordedRequest};

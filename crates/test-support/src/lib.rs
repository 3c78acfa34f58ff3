//! Test support for Gatehouse: mock upstreams that speak OpenAI's exact wire format, with
//! fault injection for rehearsing outages, and [`FixtureUpstream`], which serves recorded
//! fixtures of any provider's format.
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
//! is recorded, whatever the behavior, except `GET /mock/stats`, which reports the
//! [`Injected`] fault counters as JSON.
//!
//! # Faults
//!
//! A seeded [`FaultProfile`] ([`MockUpstream::start_with_faults`]) misbehaves at random: error
//! statuses, 429 with Retry-After, connection resets, cut streams, latency, slow drips. For
//! deterministic tests a request asks for exactly one behaviour with the `x-mock-fault` header,
//! or with the same text in a `[mock-fault: …]` marker anywhere in its body (a gateway in front
//! of the mock forwards message text but not unknown headers; the header wins when both are
//! present). Faults, random or requested, apply to `POST /v1/chat/completions` and
//! `POST /v1/embeddings` only.
//!
//! Directives, separated by `,` or `;`, e.g. `x-mock-fault: status=429, retry_after=3`:
//!
//! | directive | effect |
//! | --- | --- |
//! | `status=CODE` | answer CODE (400–599) with OpenAI's error body for it |
//! | `retry_after=SECS` / `retry_after_ms=MS` | with `status`: send `retry-after` (seconds, rounded up) and `retry-after-ms`, plus `x-ratelimit-remaining-requests: 0` and `x-ratelimit-reset-requests` on a 429; a 429 gets 1 s unless set |
//! | `retry_after=none` | a 429 without any retry header |
//! | `reset` | close the connection without a response (the client reads EOF where the status line should be) |
//! | `cut=N` | stream N events (at most all but `[DONE]`), then abort; a JSON body stops half way |
//! | `cut` | the same, half way through the events |
//! | `latency_ms=MS` | wait MS before the first byte |
//! | `drip_ms=MS` | wait MS before every stream event after the first |
//! | `none` | no fault: answer as the behavior says |
//!
//! A request with directives is never faulted at random and takes no draw from the profile, so
//! it does not shift the seeded sequence of other requests. Unknown or conflicting directives
//! get a 400 with `code: "invalid_mock_fault"`.
//!
//! # Dependencies
//!
//! This crate is also a normal dependency of the `gatehouse` binary, which serves
//! [`MockUpstream::serve`] as `gatehouse mock-upstream` (the `cli` feature adds its clap flags).
//! So it depends on no test framework and on nothing the gateway does not already link (axum,
//! tokio, serde_json, fastrand, clap); keep it that way: test-only helpers that need more
//! belong in a crate's dev-dependencies.

mod behavior;
mod body;
#[cfg(feature = "cli")]
pub mod cli;
mod embedding;
mod fault;
mod fixture;
pub mod openai;
mod upstream;

pub use behavior::{
    Behavior, DEFAULT_EMBEDDING_DIM, DEFAULT_MODELS, Reply, ToolCall, UpstreamError,
};
pub use embedding::{embedding_for, embeddings_response};
pub use fault::directive::HEADER as FAULT_HEADER;
pub use fault::{DEFAULT_RETRY_AFTER, ErrorRate, FaultError, FaultProfile, Injected, Latency};
pub use fixture::{Canned, FixtureUpstream};
pub use upstream::{MockUpstream, RecordedRequest, STATS_PATH};

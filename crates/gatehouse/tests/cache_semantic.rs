//! The semantic cache against a tiny embedding upstream that returns fixed vectors, so every
//! cosine distance is known: on SQLite (in-memory index, reloaded at startup) and, when
//! `GATEHOUSE_TEST_PGVECTOR_URL` is set, on PostgreSQL with pgvector.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod cache_support;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use cache_support::start_on as start;
use common::{Gate, row, temp_db_url};
use gatehouse::app::RequestId;
use gatehouse::cache::CacheContext;
use gatehouse::chat::Outcome;
use serde_json::{Value, json};
use store::{CacheStatus, Route};
use test_support::{Behavior, MockUpstream};

/// The question, a paraphrase at cosine distance 0.1, a looser one at 0.2, and (unlisted) any
/// other text at distance 1.
const BASE: &str = "What is 2+2?";
const NEAR: &str = "what's 2 + 2";
const FAR: &str = "tell me 2+2";
const SLOW: &str = "a slow question";

fn vector(text: &str) -> [f32; 3] {
    match text {
        BASE => [1.0, 0.0, 0.0],
        NEAR => [0.9, 0.435_889_9, 0.0],
        FAR => [0.8, 0.6, 0.0],
        _ => [0.0, 0.0, 1.0],
    }
}

struct Embedder {
    base_url: String,
    calls: Arc<AtomicUsize>,
}

async fn embedder() -> Embedder {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move |Json(body): Json<Value>| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let text = body["input"].as_str().unwrap_or("").to_owned();
                if text == SLOW {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Json(json!({"object": "list", "model": "fixed",
                    "data": [{"object": "embedding", "index": 0, "embedding": vector(&text)}],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Embedder {
        base_url: format!("http://{addr}/v1"),
        calls,
    }
}

fn semantic_toml(embedder: &str, extra: &str) -> String {
    format!(
        "[providers.emb]\nkind = \"openai\"\nbase_url = \"{embedder}\"\n\
         [[models]]\nalias = \"embedder\"\nprovider = \"emb\"\nupstream_model = \"fixed\"\n\
         [cache]\nenabled = true\n\
         [cache.semantic]\nenabled = true\nembedding_model = \"embedder\"\ndimensions = 3\n\
         prompt = \"last_user\"\ntimeout_ms = 300\n{extra}"
    )
}

fn ask(system: Option<&str>, text: &str) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": text}));
    json!({"model": "m1", "temperature": 0, "messages": messages})
}

/// Sends and returns (x-gatehouse-cache, content), after letting earlier writes land.
async fn send(gate: &Gate, body: &Value, id: &str) -> (String, String) {
    let (status, header, body) = cache_support::send(gate, body, None, id).await;
    assert_eq!(status, 200);
    (header, cache_support::content(&body).to_owned())
}

#[tokio::test]
async fn the_threshold_decides_on_known_distances() {
    let emb = embedder().await;
    let up = MockUpstream::start(Behavior::ok("Four.").with_usage(12, 2, 0)).await;
    let mut gate = start(
        &up.base_url,
        &temp_db_url(),
        &semantic_toml(&emb.base_url, ""),
    )
    .await
    .unwrap();
    assert_eq!(
        send(&gate, &ask(None, BASE), "q-base").await,
        ("miss".into(), "Four.".into())
    );
    up.set_behavior(Behavior::ok("Something else."));
    // Distance 0.1 ≤ 0.12: the stored answer.
    assert_eq!(
        send(&gate, &ask(None, NEAR), "q-near").await,
        ("semantic-hit".into(), "Four.".into())
    );
    // Distance 0.2 > 0.12: the provider.
    assert_eq!(send(&gate, &ask(None, FAR), "q-far").await.0, "miss");
    assert_eq!(up.hits(), 2);
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "q-near").await;
    // What the first answer cost: 12 × $2.50 + 2 × $10 per Mtok = 50 micro-USD.
    assert_eq!(
        (
            r.cache_status,
            r.cost_micros,
            r.cost_saved_micros,
            r.attempts
        ),
        (CacheStatus::SemanticHit, 0, 50, 0)
    );
}

#[tokio::test]
async fn a_per_model_threshold_and_the_index_survives_a_restart() {
    let emb = embedder().await;
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let toml = semantic_toml(
        &emb.base_url,
        "[cache.models.m1]\nsemantic_threshold = 0.25\n",
    );
    let db = temp_db_url();
    let mut gate = start(&up.base_url, &db, &toml).await.unwrap();
    assert_eq!(send(&gate, &ask(None, BASE), "r1").await.0, "miss");
    gate.running.as_ref().unwrap().state.cache.drain().await;
    gate.shutdown_and_store().await;
    // A new process on the same database loads the vectors back.
    let mut gate = start(&up.base_url, &db, &toml).await.unwrap();
    assert_eq!(
        send(&gate, &ask(None, FAR), "r2").await,
        ("semantic-hit".into(), "Four.".into())
    );
    assert_eq!(up.hits(), 1);
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn a_new_system_prompt_or_assistant_version_stops_matching() {
    let emb = embedder().await;
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let mut gate = start(
        &up.base_url,
        &temp_db_url(),
        &semantic_toml(&emb.base_url, ""),
    )
    .await
    .unwrap();
    assert_eq!(
        send(&gate, &ask(Some("Be brief."), BASE), "v1").await.0,
        "miss"
    );
    // Same question, same vector, new system prompt: neither layer matches.
    assert_eq!(
        send(&gate, &ask(Some("Be verbose."), BASE), "v2").await.0,
        "miss"
    );
    assert_eq!(
        send(&gate, &ask(Some("Be verbose."), NEAR), "v3").await.0,
        "semantic-hit"
    );
    assert_eq!(
        send(&gate, &ask(Some("Be brief."), NEAR), "v4").await.0,
        "semantic-hit"
    );

    // The scope discriminator an assistant passes: a new version misses, both layers.
    let state = Arc::clone(&gate.running.as_ref().unwrap().state);
    let run = |version: &'static str, text: &'static str| {
        let state = Arc::clone(&state);
        async move {
            state.cache.drain().await;
            let ctx = CacheContext {
                assistant: Some("helper".into()),
                version: Some(version.into()),
                ..CacheContext::default()
            };
            let id = RequestId {
                id: uuid::Uuid::new_v4().to_string().into(),
                logged_by_guard: Arc::default(),
            };
            let req = serde_json::from_value(ask(Some("You help."), text)).unwrap();
            let out = gatehouse::chat::run(
                &state,
                &id,
                &gatehouse::auth::Principal::default(),
                Route::Chat,
                req,
                Instant::now(),
                &ctx,
            )
            .await;
            let Ok(Outcome::Complete(_)) = out else {
                panic!("no completion")
            };
        }
    };
    let before = up.hits();
    run("1", BASE).await;
    run("1", BASE).await;
    run("1", NEAR).await;
    assert_eq!(up.hits(), before + 1, "version 1 answered from the cache");
    run("2", BASE).await;
    run("2", NEAR).await;
    assert_eq!(
        up.hits(),
        before + 2,
        "version 2 matched version 1's entries"
    );
    // Purging the assistant removes its entries of every version from both layers.
    let purged = state
        .cache
        .purge(&gatehouse::cache::PurgeFilter {
            assistant: Some("helper".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((purged.exact, purged.semantic), (2, 2));
    run("1", BASE).await;
    assert_eq!(up.hits(), before + 3);
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn tools_skip_the_semantic_layer_and_a_slow_embedding_is_a_bounded_miss() {
    let emb = embedder().await;
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let mut gate = start(
        &up.base_url,
        &temp_db_url(),
        &semantic_toml(&emb.base_url, ""),
    )
    .await
    .unwrap();
    let tools = json!([{"type": "function", "function": {"name": "calc"}}]);
    let mut q = ask(None, BASE);
    q["tools"] = tools.clone();
    assert_eq!(send(&gate, &q, "t1").await.0, "miss");
    let mut near = ask(None, NEAR);
    near["tools"] = tools;
    assert_eq!(send(&gate, &near, "t2").await.0, "miss");
    assert_eq!(
        send(&gate, &q, "t3").await.0,
        "hit",
        "the exact layer still applies"
    );
    assert_eq!(
        emb.calls.load(Ordering::SeqCst),
        0,
        "no embedding for tool traffic"
    );
    // The embedder takes 10 s; the lookup gives up after timeout_ms = 300.
    let started = Instant::now();
    assert_eq!(send(&gate, &ask(None, SLOW), "t4").await.0, "miss");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let metrics = gate
        .client
        .get(gate.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_cache_errors_total{component=\"embedding\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_cache_entries{layer=\"semantic\"}"),
        "{metrics}"
    );
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn pgvector_searches_with_an_hnsw_index() {
    let Ok(url) = std::env::var("GATEHOUSE_TEST_PGVECTOR_URL") else {
        eprintln!("skipped: GATEHOUSE_TEST_PGVECTOR_URL not set");
        return;
    };
    let emb = embedder().await;
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let mut gate = start(&up.base_url, &url, &semantic_toml(&emb.base_url, ""))
        .await
        .unwrap();
    // A system prompt of its own keeps this run's partition apart from earlier runs' rows.
    let system = format!("run {}", uuid::Uuid::new_v4());
    assert_eq!(
        send(&gate, &ask(Some(&system), BASE), "pg1").await.0,
        "miss"
    );
    up.set_behavior(Behavior::ok("Other."));
    assert_eq!(
        send(&gate, &ask(Some(&system), NEAR), "pg2").await,
        ("semantic-hit".into(), "Four.".into())
    );
    assert_eq!(send(&gate, &ask(Some(&system), FAR), "pg3").await.0, "miss");
    gate.shutdown_and_store().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'gatehouse_semantic_cache_3_hnsw'",
    )
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert!(
        index
            .unwrap()
            .contains("USING hnsw (embedding vector_cosine_ops)")
    );
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM gatehouse_semantic_cache_3 WHERE entry LIKE '%Four.%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(n >= 1);
}

#[tokio::test]
async fn plain_postgres_without_pgvector_is_a_clear_startup_error() {
    let Ok(url) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL not set");
        return;
    };
    let emb = embedder().await;
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let Err(e) = start(&up.base_url, &url, &semantic_toml(&emb.base_url, "")).await else {
        panic!("started without pgvector");
    };
    let msg = e.to_string();
    assert!(msg.contains("needs the pgvector extension"), "{msg}");
}

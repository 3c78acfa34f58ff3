//! Gatehouse: a self-hosted LLM gateway. [`start`] builds everything from a [`Config`] and serves
//! on a listener until told to stop; the binary and the integration tests both use it.

pub mod access;
pub mod app;
pub mod assistants;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod chat;
pub mod config;
pub mod conversations;
pub mod cost_report;
pub mod dates;
pub mod embeddings;
pub mod error;
pub mod experiments;
pub mod extract;
pub mod messages;
pub mod ops;
pub mod resilience;
pub mod routes;
pub mod routing;
pub mod security;
pub mod serve;
pub mod telemetry;
pub mod transcribe;
pub mod usage;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;

pub use crate::app::{AppState, build_app};
pub use crate::config::Config;
use crate::routing::ModelRouter;
use crate::telemetry::metrics::Metrics;

/// Why Gatehouse could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("cache: {0}")]
    Cache(String),
    /// An unsafe setup, with what to change.
    #[error("{0}")]
    Insecure(String),
    #[error("access control: {0}")]
    Access(String),
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running instance.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    server: serve::Server,
    writer: store::LedgerWriter,
    audit_writer: audit::AuditWriter,
    access_tasks: access::AccessTasks,
}

/// Open the store, start the ledger writer and serve `config` on `listener`.
pub async fn start(listener: TcpListener, config: Config) -> Result<Running, StartupError> {
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::Listen {
            addr: config.server.listen,
            source,
        })?;
    access::check_listener(&config, addr).map_err(StartupError::Insecure)?;
    let store = store::Store::connect(config.database_url.expose_secret()).await?;
    let (ledger, writer) = store::Ledger::start(store.clone(), config.ledger.clone());
    let metrics = Metrics::new();
    let router = ModelRouter::build(&config, &metrics);
    seed_tier_spend(&router, &config, &store).await;
    let retry_budget = resilience::RetryBudget::new(
        config.resilience.retry_budget_ratio,
        config.resilience.retry_budget_min_per_sec,
    );
    let web = web::WebState::new(&config);
    let assistants = Arc::new(assistants::Runtime::new(config.assistants.cache_ttl));
    let cache = match cache::ResponseCache::build(&config, &router, &store, &metrics.cache).await {
        Ok(c) => c,
        Err(e) => {
            let _ = writer.shutdown().await;
            store.close().await;
            return Err(StartupError::Cache(e));
        }
    };
    let (audit, audit_writer) = audit::Audit::start(
        store.clone(),
        &config.access.audit,
        metrics.access.audit_dropped.clone(),
    );
    let (access, access_tasks) = match access::Access::start(
        &config,
        store.clone(),
        Arc::clone(&metrics),
        audit,
        addr,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            audit_writer.shutdown().await;
            let _ = writer.shutdown().await;
            store.close().await;
            return Err(StartupError::Access(e));
        }
    };
    let security_headers = security::SecurityHeaders::new(&config.access.security);
    let state = Arc::new(AppState {
        security_headers,
        config: Arc::new(config),
        router,
        store,
        ledger,
        metrics,
        retry_budget,
        web,
        assistants,
        cache,
        access,
    });
    let app = build_app(Arc::clone(&state));
    let grace = state.config.server.shutdown_grace;
    let threads = serve::resolve_threads(state.config.server.threads);
    let server = serve::Server::start(listener, app, threads, grace).map_err(|source| {
        StartupError::Listen {
            addr: state.config.server.listen,
            source,
        }
    })?;
    Ok(Running {
        addr,
        state,
        server,
        writer,
        audit_writer,
        access_tasks,
    })
}

impl Running {
    /// Graceful shutdown: stop accepting, let in-flight requests finish (up to the configured
    /// grace period), then flush every accepted usage record.
    pub async fn shutdown(mut self) -> store::LedgerSnapshot {
        self.server.shutdown().await;
        // Cache writes still in flight (Redis, semantic) finish before the database closes.
        self.state.cache.drain().await;
        self.server.finish().await;
        self.access_tasks.shutdown().await;
        self.audit_writer.shutdown().await;
        let stats = self.writer.shutdown().await;
        self.state.store.close().await;
        stats
    }
}

/// Today's spend per tier from the ledger, so a restart does not reopen a capped tier.
async fn seed_tier_spend(router: &ModelRouter, config: &Config, store: &store::Store) {
    if config.tier_daily_caps.iter().all(Option::is_none) {
        return;
    }
    match store
        .cost_by_model_since(routing::tiers::today_start_ms())
        .await
    {
        Ok(rows) => {
            let mut per_tier = [0i64; routing::tiers::TIERS];
            for (model, cost) in rows {
                if let Some(t) = config
                    .models
                    .iter()
                    .find(|m| m.alias == model)
                    .and_then(|m| m.tier)
                {
                    per_tier[usize::from(t)] += cost;
                }
            }
            for (t, cost) in per_tier.iter().enumerate() {
                router.tiers.seed_spend(u8::try_from(t).unwrap_or(0), *cost);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "could not read today's spend per tier; tier caps start from zero")
        }
    }
}

/// Serve until `signal` resolves, then shut down gracefully.
pub async fn run(
    listener: TcpListener,
    config: Config,
    signal: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    let running = start(listener, config).await?;
    tracing::info!(addr = %running.addr, "gatehouse listening");
    signal.await;
    tracing::info!("shutting down: draining in-flight requests");
    let stats = running.shutdown().await;
    tracing::info!(
        written = stats.written,
        dropped = stats.dropped,
        "ledger flushed; bye"
    );
    Ok(())
}

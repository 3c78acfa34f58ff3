//! Model resolution: the `model` a client sends → the provider, upstream model and prices that
//! serve it. Everything here is computed once at startup; a lookup is one hash probe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use providers::anthropic::AnthropicProvider;
use providers::gemini::GeminiProvider;
use providers::mock::MockProvider;
use providers::openai::OpenAiProvider;
use providers::{Capabilities, Provider, ProviderKind};

use crate::config::{Config, ModelConfig, Prices};
use crate::error::{ApiError, ErrorCode};

/// Where one request goes.
pub struct Target {
    /// The name the client used (or the resolved default).
    pub alias: String,
    pub provider_name: String,
    pub provider: Arc<dyn Provider>,
    pub upstream_model: String,
    pub prices: Prices,
    pub max_output_tokens: Option<u32>,
    pub context_window: Option<u32>,
    /// What the model can do; requests needing more get a 400.
    pub capabilities: Capabilities,
    /// Metric label: the alias for declared models, `<provider>/*` for passthrough names, so a
    /// client cannot create unbounded label values.
    pub metric_model: String,
}

struct ProviderEntry {
    provider: Arc<dyn Provider>,
    passthrough: bool,
}

pub struct ModelRouter {
    models: HashMap<String, Arc<Target>>,
    providers: HashMap<String, ProviderEntry>,
    default_provider: String,
    default_model: String,
    /// Declared models in config order, for `/v1/models`.
    listing: Vec<(String, String)>,
}

/// The one pooled upstream HTTP client: keep-alive, HTTP/1.1 and HTTP/2 (negotiated by ALPN).
pub fn upstream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

impl ModelRouter {
    pub fn build(config: &Config, client: &reqwest::Client) -> ModelRouter {
        let mut providers = HashMap::new();
        for p in &config.providers {
            let base = || {
                p.base_url
                    .as_deref()
                    .or(p.kind.default_base_url())
                    .unwrap_or_default()
            };
            let (client, key) = (client.clone(), p.api_key.clone());
            let provider: Arc<dyn Provider> = match p.kind {
                ProviderKind::OpenAi => {
                    Arc::new(OpenAiProvider::new(client, base(), key, p.timeout))
                }
                ProviderKind::Anthropic => {
                    Arc::new(AnthropicProvider::new(client, base(), key, p.timeout))
                }
                ProviderKind::Gemini => {
                    Arc::new(GeminiProvider::new(client, base(), key, p.timeout))
                }
                ProviderKind::Mock => Arc::new(MockProvider::new(p.mock.clone())),
            };
            providers.insert(
                p.name.clone(),
                ProviderEntry {
                    provider,
                    passthrough: p.passthrough,
                },
            );
        }
        let mut models = HashMap::new();
        let mut listing = Vec::new();
        for m in &config.models {
            if let Some(entry) = providers.get(&m.provider) {
                models.insert(m.alias.clone(), Arc::new(declared(m, entry)));
                listing.push((m.alias.clone(), m.provider.clone()));
            }
        }
        ModelRouter {
            models,
            providers,
            default_provider: config.default_provider.clone(),
            default_model: config.default_model.clone(),
            listing,
        }
    }

    /// Resolve a requested model name:
    /// 1. `""` or `"default"` → the default model;
    /// 2. a declared alias;
    /// 3. `<provider>/<model>` for a provider with passthrough on;
    /// 4. any other name, when the default provider has passthrough on.
    pub fn resolve(&self, requested: &str) -> Result<Arc<Target>, ApiError> {
        let name = if requested.is_empty() || requested == "default" {
            self.default_model.as_str()
        } else {
            requested
        };
        if let Some(t) = self.models.get(name) {
            return Ok(Arc::clone(t));
        }
        if let Some((prefix, model)) = name.split_once('/')
            && let Some(entry) = self.providers.get(prefix)
            && entry.passthrough
            && !model.is_empty()
        {
            return Ok(Arc::new(passthrough(name, prefix, model, entry)));
        }
        if let Some(entry) = self.providers.get(&self.default_provider)
            && entry.passthrough
        {
            return Ok(Arc::new(passthrough(
                name,
                &self.default_provider,
                name,
                entry,
            )));
        }
        let shown: String = name.chars().take(100).collect();
        Err(ApiError {
            param: Some("model".into()),
            ..ApiError::new(
                ErrorCode::ModelNotFound,
                format!("The model `{shown}` does not exist or is not served here"),
            )
        })
    }

    /// Declared models as (alias, provider name).
    pub fn listing(&self) -> &[(String, String)] {
        &self.listing
    }
}

fn declared(m: &ModelConfig, entry: &ProviderEntry) -> Target {
    Target {
        alias: m.alias.clone(),
        provider_name: m.provider.clone(),
        provider: Arc::clone(&entry.provider),
        upstream_model: m.upstream_model.clone(),
        prices: m.prices,
        max_output_tokens: m.max_output_tokens,
        context_window: m.context_window,
        capabilities: m.capabilities,
        metric_model: m.alias.clone(),
    }
}

/// A model not declared in config: served as named, without a price (its cost is recorded as 0).
fn passthrough(alias: &str, provider: &str, model: &str, entry: &ProviderEntry) -> Target {
    Target {
        alias: alias.to_owned(),
        provider_name: provider.to_owned(),
        provider: Arc::clone(&entry.provider),
        upstream_model: model.to_owned(),
        prices: Prices::default(),
        max_output_tokens: None,
        context_window: None,
        capabilities: entry.provider.kind().default_capabilities(),
        metric_model: format!("{provider}/*"),
    }
}

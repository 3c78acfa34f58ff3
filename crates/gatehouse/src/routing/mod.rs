//! Model resolution: the `model` a client sends → the model group (deployments, fallbacks) that
//! serves it. Groups are built once at startup; a lookup is one hash probe. `tier:auto` and
//! `tier:N` are resolved by [`tiers`].

pub mod tiers;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use providers::anthropic::AnthropicProvider;
use providers::gemini::GeminiProvider;
use providers::mock::MockProvider;
use providers::openai::OpenAiProvider;
use providers::{Capabilities, Provider, ProviderKind};

use crate::config::resilience::{BreakerConfig, CauseSet, Timeouts};
use crate::config::{Config, ModelConfig, Prices};
use crate::error::{ApiError, ErrorCode};
use crate::resilience::{Deployment, DeploymentHealth, ModelGroup};
use crate::telemetry::metrics::{Metrics, TargetCounters};

/// One deployment's call target.
pub struct Target {
    /// The alias of the group this deployment serves.
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
    pub tier: Option<u8>,
    pub counters: TargetCounters,
}

struct ProviderEntry {
    provider: Arc<dyn Provider>,
    passthrough: bool,
}

/// Most passthrough groups kept (each has its own breaker); beyond it they are built per
/// request without shared breaker state.
const MAX_PASSTHROUGH_GROUPS: usize = 1_024;

pub struct ModelRouter {
    groups: HashMap<String, Arc<ModelGroup>>,
    providers: HashMap<String, ProviderEntry>,
    default_provider: String,
    default_model: String,
    /// Declared aliases in config order, for `/v1/models`.
    listing: Vec<(String, String)>,
    passthrough: RwLock<HashMap<String, Arc<ModelGroup>>>,
    breaker: BreakerConfig,
    timeouts: Timeouts,
    pub tiers: tiers::TierTable,
    metrics: Arc<Metrics>,
}

impl ModelRouter {
    pub fn build(config: &Config, metrics: &Arc<Metrics>) -> ModelRouter {
        let mut providers = HashMap::new();
        // One pooled client per connect timeout, shared by the providers that use it.
        let mut clients: HashMap<Duration, providers::HttpClient> = HashMap::new();
        for p in &config.providers {
            let mut client = || {
                clients
                    .entry(p.connect_timeout)
                    .or_insert_with(|| providers::HttpClient::new(p.connect_timeout))
                    .clone()
            };
            let base = p
                .base_url
                .as_deref()
                .or(p.kind.default_base_url())
                .unwrap_or_default();
            let key = p.api_key.clone();
            let provider: Arc<dyn Provider> = match p.kind {
                ProviderKind::OpenAi => {
                    Arc::new(OpenAiProvider::new(client(), base, key, p.timeout))
                }
                ProviderKind::Anthropic => {
                    Arc::new(AnthropicProvider::new(client(), base, key, p.timeout))
                }
                ProviderKind::Gemini => {
                    Arc::new(GeminiProvider::new(client(), base, key, p.timeout))
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
        let breaker = config.resilience.breaker;
        let mut groups: HashMap<String, Arc<ModelGroup>> = HashMap::new();
        let mut listing = Vec::new();
        let mut order: Vec<&str> = Vec::new();
        for m in &config.models {
            if !order.contains(&m.alias.as_str()) {
                order.push(&m.alias);
            }
        }
        for alias in order {
            let entries: Vec<&ModelConfig> =
                config.models.iter().filter(|m| m.alias == alias).collect();
            let first = entries[0];
            let deployments = entries
                .iter()
                .filter_map(|m| {
                    let entry = providers.get(&m.provider)?;
                    Some(Arc::new(Deployment::new(
                        Arc::new(declared(m, entry, metrics)),
                        m.weight,
                        m.timeouts,
                        breaker,
                    )))
                })
                .collect();
            groups.insert(
                alias.to_owned(),
                Arc::new(ModelGroup {
                    alias: alias.to_owned(),
                    deployments,
                    fallbacks: first.fallbacks.clone(),
                    fallback_on: first.fallback_on,
                    context_fallback: first.context_fallback.clone(),
                    mid_stream_failover: first.mid_stream_failover,
                    tier: first.tier,
                    context_window: entries.iter().filter_map(|m| m.context_window).min(),
                }),
            );
            listing.push((alias.to_owned(), first.provider.clone()));
        }
        let tiers = tiers::TierTable::build(config, &groups);
        ModelRouter {
            groups,
            providers,
            default_provider: config.default_provider.clone(),
            default_model: config.default_model.clone(),
            listing,
            passthrough: RwLock::new(HashMap::new()),
            breaker,
            timeouts: config.resilience.timeouts,
            tiers,
            metrics: Arc::clone(metrics),
        }
    }

    /// A declared alias.
    pub fn group(&self, alias: &str) -> Option<Arc<ModelGroup>> {
        self.groups.get(alias).cloned()
    }

    /// Resolve a requested model name:
    /// 1. `""` or `"default"` → the default model;
    /// 2. a declared alias;
    /// 3. `<provider>/<model>` for a provider with passthrough on;
    /// 4. any other name, when the default provider has passthrough on.
    ///
    /// (`tier:…` names are resolved by [`tiers::TierTable`].)
    pub fn resolve(&self, requested: &str) -> Result<Arc<ModelGroup>, ApiError> {
        let name = if requested.is_empty() || requested == "default" {
            self.default_model.as_str()
        } else {
            requested
        };
        if let Some(g) = self.groups.get(name) {
            return Ok(Arc::clone(g));
        }
        if let Some((prefix, model)) = name.split_once('/')
            && let Some(entry) = self.providers.get(prefix)
            && entry.passthrough
            && !model.is_empty()
        {
            return Ok(self.passthrough_group(name, prefix, model, entry));
        }
        if let Some(entry) = self.providers.get(&self.default_provider)
            && entry.passthrough
        {
            return Ok(self.passthrough_group(name, &self.default_provider, name, entry));
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

    fn passthrough_group(
        &self,
        alias: &str,
        provider: &str,
        model: &str,
        entry: &ProviderEntry,
    ) -> Arc<ModelGroup> {
        if let Some(g) = self
            .passthrough
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(alias)
        {
            return Arc::clone(g);
        }
        let target = Target {
            alias: alias.to_owned(),
            provider_name: provider.to_owned(),
            provider: Arc::clone(&entry.provider),
            upstream_model: model.to_owned(),
            prices: Prices::default(),
            max_output_tokens: None,
            context_window: None,
            capabilities: entry.provider.kind().default_capabilities(),
            metric_model: format!("{provider}/*"),
            tier: None,
            counters: self
                .metrics
                .target_counters(&format!("{provider}/*"), provider),
        };
        let group = Arc::new(ModelGroup {
            alias: alias.to_owned(),
            deployments: vec![Arc::new(Deployment::new(
                Arc::new(target),
                1,
                self.timeouts,
                self.breaker,
            ))],
            fallbacks: Vec::new(),
            fallback_on: CauseSet::default_causes(),
            context_fallback: None,
            mid_stream_failover: false,
            tier: None,
            context_window: None,
        });
        let mut cache = self
            .passthrough
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() < MAX_PASSTHROUGH_GROUPS {
            cache.insert(alias.to_owned(), Arc::clone(&group));
        }
        group
    }

    /// Declared models as (alias, provider name).
    pub fn listing(&self) -> &[(String, String)] {
        &self.listing
    }

    /// Health of every deployment of every declared and cached passthrough model.
    pub fn health(&self) -> Vec<DeploymentHealth> {
        let mut out: Vec<DeploymentHealth> = self
            .listing
            .iter()
            .filter_map(|(alias, _)| self.groups.get(alias))
            .flat_map(|g| {
                g.deployments
                    .iter()
                    .map(|d| d.health(&g.alias))
                    .collect::<Vec<_>>()
            })
            .collect();
        let cache = self
            .passthrough
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut extra: Vec<_> = cache
            .values()
            .flat_map(|g| {
                g.deployments
                    .iter()
                    .map(|d| d.health(&g.alias))
                    .collect::<Vec<_>>()
            })
            .collect();
        extra.sort_by(|a, b| a.model.cmp(&b.model));
        out.extend(extra);
        out
    }
}

fn declared(m: &ModelConfig, entry: &ProviderEntry, metrics: &Metrics) -> Target {
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
        tier: m.tier,
        counters: metrics.target_counters(&m.alias, &m.provider),
    }
}

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use providers::Capability;
use secrecy::ExposeSecret;

use super::raw::Price;
use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn write_toml(body: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("gatehouse-cfg-{}.toml", uuid::Uuid::new_v4()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path
}

#[test]
fn zero_config_serves_the_mock() {
    let c = Config::load_with_env(None, &env(&[])).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.default_provider, "mock");
    assert_eq!(c.default_model, "mock-1");
    assert_eq!(
        c.database_url.expose_secret(),
        "sqlite://gatehouse-data/gatehouse.db"
    );
    let m = c.models.iter().find(|m| m.alias == "mock-1").unwrap();
    assert_eq!(
        m.prices,
        Prices {
            input: 1_000_000,
            output: 2_000_000,
            cached_input: 500_000,
            cache_write: 1_000_000,
        }
    );
}

#[test]
fn openai_key_and_base_url_make_a_passthrough_proxy() {
    let c = Config::load_with_env(
        None,
        &env(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1"),
        ]),
    )
    .unwrap();
    assert_eq!(c.default_provider, "openai");
    assert_eq!(c.default_model, "gpt-4o-mini");
    let p = c.providers.iter().find(|p| p.name == "openai").unwrap();
    assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:1/v1"));
    assert!(p.passthrough);
    assert!(!c.describe().contains("sk-test"));
}

#[test]
fn llm_provider_and_default_model_choose_the_default() {
    let c = Config::load_with_env(
        None,
        &env(&[
            ("OPENAI_API_KEY", "k"),
            ("LLM_PROVIDER", "mock"),
            ("LLM_DEFAULT_MODEL", "mock-1"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (c.default_provider.as_str(), c.default_model.as_str()),
        ("mock", "mock-1")
    );
}

#[test]
fn file_and_env_overrides() {
    let path = write_toml(
        r#"
[server]
listen = "127.0.0.1:9000"
[providers.local]
kind = "openai"
base_url = "http://localhost:11434/v1"
[[models]]
alias = "llama"
provider = "local"
upstream_model = "llama3.2"
input_usd_per_mtok = "0.000001"
output_usd_per_mtok = 2.5
"#,
    );
    let c = Config::load_with_env(
        Some(&path),
        &env(&[("GATEHOUSE_SERVER__LISTEN", "127.0.0.1:9100")]),
    )
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9100");
    let m = c.models.iter().find(|m| m.alias == "llama").unwrap();
    assert_eq!(
        m.prices,
        Prices {
            input: 1,
            output: 2_500_000,
            cached_input: 1,
            cache_write: 1,
        }
    );
    assert_eq!(m.upstream_model, "llama3.2");
}

#[test]
fn errors_name_the_field_and_the_file() {
    // Bad input: an unknown field inside [server].
    let path = write_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    // Bad input: a wrong type.
    let path = write_toml("[server]\nmax_body_bytes = \"big\"\n");
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_body_bytes"), "{err}");
    // Bad input: a missing secret.
    let path = write_toml("[providers.x]\nkind = \"openai\"\napi_key_env = \"NOPE_KEY\"\n");
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "providers.x.api_key_env: environment variable NOPE_KEY is not set"
    );
    // Bad input: an unknown provider kind.
    let path = write_toml("[providers.x]\nkind = \"foo\"\n");
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("providers.x.kind: unknown provider kind `foo`"),
        "{err}"
    );
    // Bad input: a model pointing at no provider.
    let path = write_toml("[[models]]\nalias = \"a\"\nprovider = \"ghost\"\n");
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "models[0].provider: no provider named `ghost`");
    // Bad input: a missing file.
    let err = Config::load_with_env(Some(Path::new("/nonexistent/g.toml")), &env(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "config file /nonexistent/g.toml does not exist");
}

#[test]
fn serving_threads_default_to_one_per_core_and_are_bounded() {
    let c = Config::load_with_env(None, &env(&[])).unwrap();
    assert_eq!(c.server.threads, None);
    let c = Config::load_with_env(None, &env(&[("GATEHOUSE_SERVER__THREADS", "0")])).unwrap();
    assert_eq!(c.server.threads, Some(0));
    let path = write_toml("[server]\nthreads = 3\n");
    let c = Config::load_with_env(Some(&path), &env(&[])).unwrap();
    assert_eq!(c.server.threads, Some(3));
    // Bad input: more threads than the bound, and a negative count.
    let path = write_toml("[server]\nthreads = 65\n");
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "server.threads: at most 64");
    let path = write_toml("[server]\nthreads = -1\n");
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("threads"), "{err}");
}

#[test]
fn prices_parse_exactly() {
    assert_eq!(parse_price(&Price::Text("2.50".into())), Ok(2_500_000));
    assert_eq!(parse_price(&Price::Text("0.075".into())), Ok(75_000));
    assert_eq!(parse_price(&Price::Float(0.15)), Ok(150_000));
    assert_eq!(parse_price(&Price::Int(3)), Ok(3_000_000));
    // Bad input: negative, too precise, not a number.
    assert!(parse_price(&Price::Text("-1".into())).is_err());
    assert!(parse_price(&Price::Text("0.0000001".into())).is_err());
    assert!(parse_price(&Price::Text("abc".into())).is_err());
}

#[test]
fn masks_database_password() {
    assert_eq!(
        resolved::mask_url("postgres://u:secret@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    let c = Config::load_with_env(None, &env(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]))
        .unwrap();
    assert!(!c.describe().contains("hunter2"));
}

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gatehouse.example.toml");
    let keys = env(&[
        ("OPENAI_API_KEY", "k"),
        ("ANTHROPIC_API_KEY", "k"),
        ("GEMINI_API_KEY", "k"),
    ]);
    let c = Config::load_with_env(Some(&path), &keys).unwrap();
    assert_eq!(c.models.len(), 6);
    let claude = c
        .models
        .iter()
        .find(|m| m.alias == "claude-sonnet")
        .unwrap();
    assert_eq!(
        claude.prices,
        Prices {
            input: 3_000_000,
            output: 15_000_000,
            cached_input: 300_000,
            cache_write: 3_750_000,
        }
    );
    assert_eq!(
        claude.capabilities,
        Capabilities::ALL.without(Capability::Embeddings)
    );
    let llama = c.models.iter().find(|m| m.alias == "llama").unwrap();
    assert!(!llama.capabilities.has(Capability::Vision));
    assert!(llama.capabilities.has(Capability::Tools));
    assert_eq!(c.default_provider, "openai");
    assert_eq!(c.assistants.prompt_token_limit, 2_000);
    assert_eq!(
        c.assistants.cache_ttl,
        std::time::Duration::from_millis(1_000)
    );
    let m = c.models.iter().find(|m| m.alias == "gpt-4o-mini").unwrap();
    assert_eq!(
        m.prices,
        Prices {
            input: 150_000,
            output: 600_000,
            cached_input: 75_000,
            cache_write: 150_000,
        }
    );
    let a = &c.access;
    assert_eq!(a.keys_refresh, Duration::from_millis(500));
    assert_eq!(
        (a.limits.key_rpm, a.limits.key_tpm, a.limits.web_chat_rpm),
        (600, 1_000_000, 20)
    );
    assert_eq!((a.limits.whatsapp_rpm, a.limits.anonymous_rpm), (10, 100));
    assert_eq!(
        a.limits.admin,
        access::Rate {
            limit: 50,
            period: Duration::from_secs(300)
        }
    );
    assert_eq!(a.concurrency.max_in_flight, 100);
    assert!(a.redis.is_none() && !a.budget_fail_open);
    assert_eq!(a.security.ui_csp, access::DEFAULT_UI_CSP);
    assert_eq!(a.audit.rejection_sample, Duration::from_secs(60));
    assert!(!c.cache.enabled);
    let per_model = c.cache.model("gpt-4o-mini");
    assert_eq!(per_model.ttl, Some(std::time::Duration::from_secs(600)));
    assert_eq!(per_model.semantic_threshold, Some(0.10));
}

#[test]
fn cache_settings_are_validated() {
    let bad = [
        // Bad input: an unknown backend.
        (
            "[cache]\nbackend = \"disk\"\n",
            "cache.backend: `disk` is not one of memory, redis",
        ),
        // Bad input: redis without a URL anywhere.
        (
            "[cache]\nbackend = \"redis\"\n",
            "cache.redis_url: the redis backend needs cache.redis_url or REDIS_URL",
        ),
        // Bad input: a URL of another scheme.
        (
            "[cache]\nbackend = \"redis\"\nredis_url = \"http://x\"\n",
            "cache.redis_url: must start with redis:// or rediss://",
        ),
        // Bad input: overrides for a model that is not declared.
        (
            "[cache.models.ghost]\nttl_secs = 5\n",
            "cache.models.ghost: not a declared model alias",
        ),
        // Bad input: a zero TTL, a threshold out of range, an unknown route.
        (
            "[cache]\nttl_secs = 0\n",
            "cache.ttl_secs: must be greater than zero",
        ),
        (
            "[cache.semantic]\nenabled = true\nembedding_model = \"e\"\nthreshold = 3.0\n",
            "cache.semantic.threshold: a cosine distance between 0 and 2",
        ),
        (
            "[cache]\nroute_ttl_secs = { embeddings = 5 }\n",
            "cache.route_ttl_secs.embeddings: routes are chat and messages",
        ),
        // Bad input: semantic without an embedding model, or with an unknown prompt mode.
        (
            "[cache.semantic]\nenabled = true\n",
            "cache.semantic.embedding_model: name the model alias that makes the embeddings",
        ),
        (
            "[cache.semantic]\nenabled = true\nembedding_model = \"e\"\nprompt = \"all\"\n",
            "cache.semantic.prompt: `all` is not one of system_and_last_user, last_user",
        ),
    ];
    for (toml, want) in bad {
        let err = Config::load_with_env(Some(&write_toml(toml)), &env(&[]))
            .unwrap_err()
            .to_string();
        assert_eq!(err, want, "{toml}");
    }
    let c = Config::load_with_env(
        Some(&write_toml(
            "[cache]\nenabled = true\nbackend = \"redis\"\n",
        )),
        &env(&[("REDIS_URL", "redis://127.0.0.1:1")]),
    )
    .unwrap();
    assert!(matches!(c.cache.backend, cache::CacheBackend::Redis { .. }));
    // Semantic settings only take effect with the cache on.
    let c = Config::load_with_env(
        Some(&write_toml(
            "[cache.semantic]\nenabled = true\nembedding_model = \"e\"\n",
        )),
        &env(&[]),
    )
    .unwrap();
    assert!(c.cache.semantic.is_none());
}

#[test]
fn anthropic_and_gemini_keys_switch_their_providers_on() {
    let c = Config::load_with_env(
        None,
        &env(&[
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("GOOGLE_API_KEY", "g-test"),
        ]),
    )
    .unwrap();
    // The first provider in the table whose key is set is the default.
    assert_eq!(c.default_provider, "anthropic");
    assert_eq!(c.default_model, "claude-sonnet-4-5");
    let a = c.providers.iter().find(|p| p.name == "anthropic").unwrap();
    assert_eq!(
        (a.kind, a.base_url.as_deref(), a.api_key_env.as_deref()),
        (
            ProviderKind::Anthropic,
            Some("https://api.anthropic.com"),
            Some("ANTHROPIC_API_KEY")
        )
    );
    let g = c.providers.iter().find(|p| p.name == "gemini").unwrap();
    assert_eq!(
        (g.kind, g.base_url.as_deref(), g.api_key_env.as_deref()),
        (
            ProviderKind::Gemini,
            Some("https://generativelanguage.googleapis.com/v1beta"),
            Some("GOOGLE_API_KEY")
        )
    );
    let described = c.describe();
    assert!(!described.contains("sk-ant-test") && !described.contains("g-test"));

    // GEMINI_API_KEY wins over GOOGLE_API_KEY; GEMINI_BASE_URL moves it.
    let c = Config::load_with_env(
        None,
        &env(&[
            ("GEMINI_API_KEY", "a"),
            ("GOOGLE_API_KEY", "b"),
            ("GEMINI_BASE_URL", "http://127.0.0.1:9/v1beta"),
            ("ANTHROPIC_BASE_URL", "http://ignored"),
        ]),
    )
    .unwrap();
    let g = c.providers.iter().find(|p| p.name == "gemini").unwrap();
    assert_eq!(g.api_key_env.as_deref(), Some("GEMINI_API_KEY"));
    assert_eq!(g.base_url.as_deref(), Some("http://127.0.0.1:9/v1beta"));
    assert_eq!(c.default_model, "gemini-2.5-flash");
    // A base URL variable without its key switches nothing on.
    assert!(!c.providers.iter().any(|p| p.name == "anthropic"));
}

#[test]
fn capabilities_are_parsed_and_named_on_error() {
    let path = write_toml(
        r#"
[[models]]
alias = "text-only"
provider = "mock"
capabilities = ["streaming", "tools"]
"#,
    );
    let c = Config::load_with_env(Some(&path), &env(&[])).unwrap();
    let m = c.models.iter().find(|m| m.alias == "text-only").unwrap();
    assert_eq!(
        m.capabilities,
        [Capability::Streaming, Capability::Tools]
            .into_iter()
            .collect()
    );
    // The built-in mock model gets the mock kind's default: everything.
    let mock = c.models.iter().find(|m| m.alias == "mock-1").unwrap();
    assert_eq!(mock.capabilities, Capabilities::ALL);

    // Bad input: an unknown capability name.
    let path = write_toml(
        r#"
[[models]]
alias = "x"
provider = "mock"
capabilities = ["tools", "telepathy"]
"#,
    );
    let err = Config::load_with_env(Some(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "models[0].capabilities[1]: unknown capability `telepathy` (expected one of: vision, tools, json, streaming, embeddings)"
    );
}

#[test]
fn access_sections_validate() {
    let c = Config::load_with_env(None, &env(&[("REDIS_URL", "redis://127.0.0.1:6379")])).unwrap();
    let r = c.access.redis.as_ref().unwrap();
    assert_eq!(
        (r.url.expose_secret(), r.timeout),
        ("redis://127.0.0.1:6379", Duration::from_millis(250))
    );
    let path = write_toml(
        "[budgets]\nglobal_daily_usd = \"12.50\"\ndowngrade_model = \"mock-1\"\n[security]\nhsts = true\n",
    );
    let c = Config::load_with_env(Some(&path), &env(&[])).unwrap();
    assert_eq!(c.access.budgets.global_daily_micros, Some(12_500_000));
    assert_eq!(c.access.security.hsts_max_age, Some(31_536_000));
    for (toml, err) in [
        // Bad input: a downgrade model nobody declared.
        (
            "[budgets]\ndowngrade_model = \"ghost\"\n",
            "budgets.downgrade_model: `ghost` is not a declared model alias",
        ),
        // Bad input: a webhook that is not a URL.
        (
            "[budgets]\nalert_webhook_url = \"hooks\"\n",
            "budgets.alert_webhook_url: must be an http:// or https:// URL",
        ),
        // Bad input: a Redis URL of another scheme.
        (
            "[redis]\nurl = \"http://x\"\n",
            "redis.url: must start with redis:// or rediss:// (REDIS_URL overrides it)",
        ),
        // Bad input: a zero period and a zero refresh.
        (
            "[limits]\nadmin_period_secs = 0\n",
            "limits.admin_period_secs: must be greater than zero",
        ),
        (
            "[keys]\nrefresh_ms = 0\n",
            "keys.refresh_ms: must be greater than zero",
        ),
        // Bad input: a CORS origin with a path.
        (
            "[security]\ncors_allowed_origins = [\"app.example.com\"]\n",
            "security.cors_allowed_origins[0]: must be \"*\" or an origin like https://app.example.com",
        ),
        // Bad input: a budget with seven decimals.
        (
            "[budgets]\nglobal_daily_usd = \"0.0000001\"\n",
            "budgets.global_daily_usd: `0.0000001` is not a price in dollars like \"2.50\" (at most 6 decimals, not negative)",
        ),
    ] {
        let path = write_toml(toml);
        let got = Config::load_with_env(Some(&path), &env(&[]))
            .unwrap_err()
            .to_string();
        assert_eq!(got, err);
    }
}

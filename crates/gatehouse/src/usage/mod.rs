//! Per-request accounting: exact cost from the price table, token estimates when a provider
//! sends no usage, and the guard that turns every request into exactly one ledger record.

mod guard;

pub use guard::UsageGuard;

use providers::{ChatRequest, Usage};

use crate::config::Prices;

/// Cost in micro-USD: uncached prompt, cache-read prompt, cache-write prompt and completion
/// tokens each at their price (micro-USD per million tokens), summed exactly and rounded half
/// up once at the end. Cache reads and writes are part of `prompt_tokens`.
pub fn cost_micros(prices: &Prices, usage: &Usage) -> i64 {
    let prompt = usage.prompt_tokens;
    let cached = usage.cached_tokens().min(prompt);
    let written = usage.cache_creation_tokens().min(prompt - cached);
    let uncached = i128::from(prompt - cached - written);
    let numerator = uncached * i128::from(prices.input)
        + i128::from(cached) * i128::from(prices.cached_input)
        + i128::from(written) * i128::from(prices.cache_write)
        + i128::from(usage.completion_tokens) * i128::from(prices.output);
    i64::try_from((numerator + 500_000) / 1_000_000).unwrap_or(i64::MAX)
}

/// Tokens in `text` by the o200k encoding (GPT-4o family): the estimate used when a provider
/// reports no usage.
pub fn count_tokens(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

/// Prompt tokens of a chat request, counted the way OpenAI documents for chat formats: the
/// content of every message plus a small per-message overhead.
pub fn estimate_prompt_tokens(req: &ChatRequest) -> u64 {
    req.messages
        .iter()
        .map(|m| {
            let text = m
                .content
                .as_ref()
                .map(|c| c.joined_text())
                .unwrap_or_default();
            let calls: u64 = m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| count_tokens(&c.function.name) + count_tokens(&c.function.arguments))
                .sum();
            3 + count_tokens(&text) + calls
        })
        .sum::<u64>()
        + 3
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_and_prices_cached_tokens_separately() {
        let p = Prices {
            input: 2_500_000,
            output: 10_000_000,
            cached_input: 1_250_000,
            cache_write: 2_500_000,
        };
        // 1,000 prompt (200 cached) and 500 completion tokens at $2.50 / $1.25 / $10 per Mtok:
        // 800 × 2.5 + 200 × 1.25 + 500 × 10 = 2000 + 250 + 5000 = 7250 micro-USD.
        assert_eq!(cost_micros(&p, &Usage::new(1_000, 500, 200)), 7_250);
        // 1 token at $0.15/Mtok is 0.15 micro-USD: rounds to 0; 4 tokens (0.6) round to 1.
        let cheap = Prices {
            input: 150_000,
            output: 0,
            cached_input: 150_000,
            cache_write: 150_000,
        };
        assert_eq!(cost_micros(&cheap, &Usage::new(1, 0, 0)), 0);
        assert_eq!(cost_micros(&cheap, &Usage::new(4, 0, 0)), 1);
    }

    #[test]
    fn cache_writes_are_priced_separately() {
        // Claude Sonnet's list prices: $3 input, $15 output, $0.30 cache read, $3.75 cache write.
        let p = Prices {
            input: 3_000_000,
            output: 15_000_000,
            cached_input: 300_000,
            cache_write: 3_750_000,
        };
        // Anthropic reported input 1,200 + cache read 30,000 + cache write 2,048, output 350:
        // 1,200 × 3 + 30,000 × 0.30 + 2,048 × 3.75 + 350 × 15
        // = 3,600 + 9,000 + 7,680 + 5,250 = 25,530 micro-USD.
        let u = Usage::with_cache(1_200 + 30_000 + 2_048, 350, 30_000, 2_048);
        assert_eq!(cost_micros(&p, &u), 25_530);
        // Writes billed like plain input when the price is the input price.
        let plain = Prices {
            cache_write: 3_000_000,
            ..p
        };
        // 1,200 × 3 + 9,000 + 2,048 × 3 + 5,250 = 3,600 + 9,000 + 6,144 + 5,250 = 23,994.
        assert_eq!(cost_micros(&plain, &u), 23_994);
        // Bad input: cache counts larger than the prompt are capped, never negative.
        let odd = Usage::with_cache(10, 0, 8, 8);
        // 8 read × 0.30 + 2 written × 3.75 = 2.4 + 7.5 = 9.9 → 10.
        assert_eq!(cost_micros(&p, &odd), 10);
    }

    #[test]
    fn token_counts_are_stable() {
        assert_eq!(count_tokens("hello world"), 2);
        assert_eq!(count_tokens(""), 0);
    }
}

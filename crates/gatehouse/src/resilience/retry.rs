//! The retry policy: which failures are retried, exponential backoff with full jitter, honouring
//! the upstream's `Retry-After` up to a cap, and a retry budget so a failing upstream cannot
//! multiply the load on itself.

use std::sync::Mutex;
use std::time::Duration;

use providers::{ProviderError, ProviderErrorKind};
use tokio::time::Instant;

use crate::config::resilience::ResilienceConfig;

/// Retried: connection failures, timeouts before the first byte, 408/429/5xx (529 included).
/// Failing fast: bad requests, auth, context length, content filter, undecodable answers.
pub fn is_retryable(e: &ProviderError) -> bool {
    match e.kind {
        ProviderErrorKind::RateLimited
        | ProviderErrorKind::Unavailable
        | ProviderErrorKind::Timeout
        | ProviderErrorKind::Connect => true,
        ProviderErrorKind::StreamInterrupted => e.status.is_none(),
        ProviderErrorKind::Auth
        | ProviderErrorKind::BadRequest
        | ProviderErrorKind::ContextLength
        | ProviderErrorKind::ContentFilter
        | ProviderErrorKind::Decode => false,
    }
}

/// The wait before retry number `retry` (1 for the first retry): the upstream's `Retry-After`
/// when it sent one (capped), else full jitter over `base · 2^(retry-1)` capped at `max`.
pub fn backoff(
    cfg: &ResilienceConfig,
    retry: u32,
    retry_after: Option<Duration>,
    rng: &mut fastrand::Rng,
) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(cfg.retry_after_cap);
    }
    let exp = cfg
        .backoff_base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let ceiling = exp.min(cfg.backoff_max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

/// Retries allowed as a share of recent requests, over two rotating 10-second windows.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_sec: u32,
    inner: Mutex<BudgetWindows>,
}

#[derive(Debug)]
struct BudgetWindows {
    started: Instant,
    /// (requests, retries) for the current and the previous window.
    current: (u64, u64),
    previous: (u64, u64),
}

const WINDOW: Duration = Duration::from_secs(10);

impl RetryBudget {
    pub fn new(ratio: f64, min_per_sec: u32) -> RetryBudget {
        RetryBudget {
            ratio,
            min_per_sec,
            inner: Mutex::new(BudgetWindows {
                started: Instant::now(),
                current: (0, 0),
                previous: (0, 0),
            }),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, BudgetWindows> {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = g.started.elapsed();
        if elapsed >= WINDOW * 2 {
            g.previous = (0, 0);
            g.current = (0, 0);
            g.started = Instant::now();
        } else if elapsed >= WINDOW {
            g.previous = g.current;
            g.current = (0, 0);
            g.started += WINDOW;
        }
        g
    }

    pub fn on_request(&self) {
        self.windows().current.0 += 1;
    }

    /// Take one retry from the budget, or say no.
    pub fn try_retry(&self) -> bool {
        let mut g = self.windows();
        let requests = g.current.0 + g.previous.0;
        let retries = g.current.1 + g.previous.1;
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "small non-negative counts"
        )]
        let allowed = (requests as f64 * self.ratio) as u64 + u64::from(self.min_per_sec) * 20;
        if retries < allowed {
            g.current.1 += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resilience::{RawResilience, validate};

    #[test]
    fn backoff_honours_retry_after_and_caps() {
        let cfg = validate(&RawResilience::default()).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        assert_eq!(
            backoff(&cfg, 1, Some(Duration::from_secs(7)), &mut rng),
            Duration::from_secs(7)
        );
        // A Retry-After above the 30 s cap is cut to the cap.
        assert_eq!(
            backoff(&cfg, 1, Some(Duration::from_secs(120)), &mut rng),
            Duration::from_secs(30)
        );
        for retry in 1..10 {
            let d = backoff(&cfg, retry, None, &mut rng);
            let ceiling =
                (Duration::from_millis(200) * (1 << (retry - 1))).min(Duration::from_secs(10));
            assert!(d <= ceiling, "retry {retry}: {d:?} > {ceiling:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_limits_retries_to_a_share_of_traffic() {
        let b = RetryBudget::new(0.2, 0);
        for _ in 0..100 {
            b.on_request();
        }
        let granted = (0..100).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 20);
        // Twenty seconds later both windows have rotated out.
        tokio::time::advance(Duration::from_secs(21)).await;
        assert!(!b.try_retry());
        b.on_request();
        b.on_request();
        b.on_request();
        b.on_request();
        b.on_request();
        assert!(b.try_retry());
        assert!(!b.try_retry());
    }

    #[test]
    fn retryable_classes() {
        let e = |k| ProviderError::new(k, "");
        assert!(is_retryable(&e(ProviderErrorKind::RateLimited)));
        assert!(is_retryable(&e(ProviderErrorKind::Unavailable)));
        assert!(is_retryable(&e(ProviderErrorKind::Timeout)));
        assert!(!is_retryable(&e(ProviderErrorKind::BadRequest)));
        assert!(!is_retryable(&e(ProviderErrorKind::ContextLength)));
        assert!(!is_retryable(&e(ProviderErrorKind::Auth)));
    }
}

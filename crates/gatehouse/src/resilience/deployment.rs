//! Deployments (one provider + base URL + upstream model) and model groups (all deployments
//! of an alias, with its fallback settings). Picking a deployment: weighted power of two
//! choices on in-flight calls × latency EWMA, skipping open circuits and deployments cooling
//! down after a 429.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::breaker::{Admission, CircuitBreaker, CircuitState, Transition};
use crate::config::resilience::{BreakerConfig, CauseSet, Timeouts};
use crate::routing::Target;

pub struct Deployment {
    /// `provider/upstream_model`, unique within a group; the label in metrics and logs.
    pub id: String,
    pub target: Arc<Target>,
    pub weight: u32,
    pub timeouts: Timeouts,
    pub breaker: CircuitBreaker,
    in_flight: AtomicU32,
    /// Latency EWMA in microseconds; 0 until the first success.
    ewma_us: AtomicU64,
    /// Milliseconds since `epoch` until which the deployment rests after a 429.
    cooldown_until_ms: AtomicU64,
    epoch: Instant,
    last_error: Mutex<Option<(String, u64)>>,
}

/// A snapshot for `/ready` and the admin API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeploymentHealth {
    pub model: String,
    pub deployment: String,
    pub circuit: &'static str,
    pub in_flight: u32,
    pub latency_ewma_ms: f64,
    pub cooling_down: bool,
    /// Last error message and its age in seconds.
    pub last_error: Option<String>,
    pub last_error_age_secs: Option<u64>,
}

impl Deployment {
    pub fn new(
        target: Arc<Target>,
        weight: u32,
        timeouts: Timeouts,
        breaker: BreakerConfig,
    ) -> Deployment {
        Deployment {
            id: format!("{}/{}", target.provider_name, target.upstream_model),
            target,
            weight: weight.max(1),
            timeouts,
            breaker: CircuitBreaker::new(breaker),
            in_flight: AtomicU32::new(0),
            ewma_us: AtomicU64::new(0),
            cooldown_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            last_error: Mutex::new(None),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn cooling_down(&self) -> bool {
        self.now_ms() < self.cooldown_until_ms.load(Ordering::Relaxed)
    }

    /// Rest after a 429 for the upstream's `Retry-After` (or one second).
    pub fn cool_down(&self, d: Option<Duration>) {
        let ms = u64::try_from(d.unwrap_or(Duration::from_secs(1)).as_millis()).unwrap_or(u64::MAX);
        self.cooldown_until_ms
            .fetch_max(self.now_ms().saturating_add(ms), Ordering::Relaxed);
    }

    pub fn usable(&self) -> bool {
        !self.cooling_down() && self.breaker.state() != CircuitState::Open
    }

    /// Start a call: the breaker must admit it.
    pub fn begin(self: &Arc<Self>) -> Result<CallTicket, Option<Transition>> {
        let (admission, transition) = self.breaker.admit();
        if admission == Admission::Rejected {
            return Err(transition);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(CallTicket {
            dep: Arc::clone(self),
            admission,
            started: Instant::now(),
            transition,
            done: false,
        })
    }

    pub fn note_error(&self, message: &str) {
        let mut g = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g = Some((message.to_owned(), self.now_ms()));
    }

    fn score(&self) -> u64 {
        let ewma = self.ewma_us.load(Ordering::Relaxed).max(1);
        (u64::from(self.in_flight.load(Ordering::Relaxed)) + 1).saturating_mul(ewma)
    }

    pub fn health(&self, model: &str) -> DeploymentHealth {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let now = self.now_ms();
        #[expect(clippy::cast_precision_loss, reason = "a display value")]
        let latency_ewma_ms = self.ewma_us.load(Ordering::Relaxed) as f64 / 1000.0;
        DeploymentHealth {
            model: model.to_owned(),
            deployment: self.id.clone(),
            circuit: self.breaker.state().as_str(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            latency_ewma_ms,
            cooling_down: self.cooling_down(),
            last_error_age_secs: last.as_ref().map(|(_, at)| now.saturating_sub(*at) / 1000),
            last_error: last.map(|(m, _)| m),
        }
    }
}

/// One admitted call; reports its outcome to the breaker and the latency EWMA. Dropped
/// without an outcome (the client went away), it counts as neither success nor failure.
pub struct CallTicket {
    dep: Arc<Deployment>,
    admission: Admission,
    started: Instant,
    /// A transition caused by admitting this call (open → half-open).
    pub transition: Option<Transition>,
    done: bool,
}

impl CallTicket {
    pub fn finish(mut self, success: bool) -> Option<Transition> {
        self.done = true;
        self.dep.in_flight.fetch_sub(1, Ordering::Relaxed);
        if success {
            let sample = u64::try_from(self.started.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            let old = self.dep.ewma_us.load(Ordering::Relaxed);
            let new = if old == 0 {
                sample
            } else {
                (old * 4 + sample) / 5
            };
            self.dep.ewma_us.store(new, Ordering::Relaxed);
        }
        self.dep.breaker.record(self.admission, success)
    }
}

impl Drop for CallTicket {
    fn drop(&mut self) {
        if !self.done {
            self.dep.in_flight.fetch_sub(1, Ordering::Relaxed);
            if self.admission == Admission::Probe {
                // Give the probe slot back without judging the upstream.
                self.dep.breaker.release_probe();
            }
        }
    }
}

/// Every deployment of one alias and what to do when they fail.
pub struct ModelGroup {
    pub alias: String,
    pub deployments: Vec<Arc<Deployment>>,
    pub fallbacks: Vec<String>,
    pub fallback_on: CauseSet,
    pub context_fallback: Option<String>,
    pub mid_stream_failover: bool,
    pub tier: Option<u8>,
    pub context_window: Option<u32>,
}

impl ModelGroup {
    /// Choose a deployment not in `tried` when possible: weighted power of two choices among the
    /// usable ones, the lower in-flight × latency score winning.
    pub fn pick(&self, tried: &[usize], rng: &mut fastrand::Rng) -> Option<usize> {
        let usable: Vec<usize> = (0..self.deployments.len())
            .filter(|i| self.deployments[*i].usable())
            .collect();
        let fresh: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|i| !tried.contains(i))
            .collect();
        let pool = if fresh.is_empty() { usable } else { fresh };
        match pool.len() {
            0 => None,
            1 => Some(pool[0]),
            _ => {
                let a = self.weighted(&pool, rng);
                let rest: Vec<usize> = pool.iter().copied().filter(|i| *i != a).collect();
                let b = self.weighted(&rest, rng);
                let (da, db) = (&self.deployments[a], &self.deployments[b]);
                Some(if db.score() < da.score() { b } else { a })
            }
        }
    }

    fn weighted(&self, pool: &[usize], rng: &mut fastrand::Rng) -> usize {
        let total: u64 = pool
            .iter()
            .map(|i| u64::from(self.deployments[*i].weight))
            .sum();
        let mut r = rng.u64(0..total.max(1));
        for i in pool {
            let w = u64::from(self.deployments[*i].weight);
            if r < w {
                return *i;
            }
            r -= w;
        }
        pool[0]
    }
}

#[cfg(test)]
mod tests {
    use providers::mock::{MockProvider, MockSettings};

    use super::*;
    use crate::config::Prices;

    fn group(weights: &[u32]) -> ModelGroup {
        let breaker = BreakerConfig {
            failure_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(5),
            cooldown_max: Duration::from_secs(60),
            half_open_probes: 1,
        };
        let timeouts = Timeouts {
            first_byte: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            total: Duration::from_secs(1),
        };
        let deployments = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let target = Target {
                    alias: "a".into(),
                    provider_name: format!("p{i}"),
                    provider: Arc::new(MockProvider::new(MockSettings::default())),
                    upstream_model: "m".into(),
                    prices: Prices::default(),
                    max_output_tokens: None,
                    context_window: None,
                    capabilities: providers::Capabilities::ALL,
                    metric_model: "a".into(),
                    tier: None,
                    counters: crate::telemetry::metrics::Metrics::new().target_counters("a", "p"),
                };
                Arc::new(Deployment::new(Arc::new(target), *w, timeouts, breaker))
            })
            .collect();
        ModelGroup {
            alias: "a".into(),
            deployments,
            fallbacks: Vec::new(),
            fallback_on: CauseSet::default_causes(),
            context_fallback: None,
            mid_stream_failover: false,
            tier: None,
            context_window: None,
        }
    }

    #[tokio::test]
    async fn idle_deployments_share_traffic_by_weight() {
        let g = group(&[3, 1]);
        let mut rng = fastrand::Rng::with_seed(42);
        let mut counts = [0u32; 2];
        for _ in 0..10_000 {
            counts[g.pick(&[], &mut rng).unwrap()] += 1;
        }
        // Two choices drawn by weight, ties going to the first draw: the first deployment wins
        // whenever it is drawn first (75%), so it takes about three quarters.
        assert!((7_200..=7_800).contains(&counts[0]), "{counts:?}");
    }

    #[tokio::test]
    async fn the_less_busy_deployment_wins() {
        let g = group(&[1, 1]);
        let busy: Vec<_> = (0..5).map(|_| g.deployments[0].begin().unwrap()).collect();
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            assert_eq!(g.pick(&[], &mut rng), Some(1));
        }
        drop(busy);
        // A deployment cooling down after a 429 is skipped, and tried ones are avoided.
        g.deployments[1].cool_down(Some(Duration::from_secs(60)));
        assert_eq!(g.pick(&[], &mut rng), Some(0));
        assert_eq!(group(&[1, 1]).pick(&[0], &mut rng), Some(1));
    }
}

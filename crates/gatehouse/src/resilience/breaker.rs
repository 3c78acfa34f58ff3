//! A circuit breaker per deployment. Closed: calls flow and outcomes are counted in a rolling
//! window of one-second buckets; when the failure rate over at least `min_requests` calls
//! reaches the threshold it opens. Open: calls are refused without touching the upstream until
//! the cooldown passes. Half-open: a few probes are let through; one success closes the circuit,
//! a failure reopens it with the cooldown doubled (up to a maximum).
//!
//! Time is `tokio::time::Instant`, so tests drive it with a paused clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::resilience::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }
}

/// A state change, for logging and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: CircuitState,
    pub to: CircuitState,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    /// (second index, successes, failures), oldest first.
    buckets: Vec<(u64, u32, u32)>,
    open_until: Instant,
    cooldown: Duration,
    probes_in_flight: u32,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// Whether a call may go ahead; a probe must report its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    Probe,
    Rejected,
}

impl CircuitBreaker {
    pub fn new(cfg: BreakerConfig) -> CircuitBreaker {
        let now = Instant::now();
        CircuitBreaker {
            cfg,
            epoch: now,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                buckets: Vec::new(),
                open_until: now,
                cooldown: cfg.cooldown,
                probes_in_flight: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way that
        // matters more than losing the breaker, so recover the guard.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> CircuitState {
        let g = self.lock();
        if g.state == CircuitState::Open && Instant::now() >= g.open_until {
            CircuitState::HalfOpen
        } else {
            g.state
        }
    }

    /// Ask to make a call now.
    pub fn admit(&self) -> (Admission, Option<Transition>) {
        let now = Instant::now();
        let mut g = self.lock();
        let mut transition = None;
        if g.state == CircuitState::Open {
            if now < g.open_until {
                return (Admission::Rejected, None);
            }
            g.state = CircuitState::HalfOpen;
            g.probes_in_flight = 0;
            transition = Some(Transition {
                from: CircuitState::Open,
                to: CircuitState::HalfOpen,
            });
        }
        match g.state {
            CircuitState::Closed => (Admission::Allowed, transition),
            CircuitState::HalfOpen if g.probes_in_flight < self.cfg.half_open_probes => {
                g.probes_in_flight += 1;
                (Admission::Probe, transition)
            }
            _ => (Admission::Rejected, transition),
        }
    }

    /// A probe ended without an outcome (its client went away): free its slot.
    pub fn release_probe(&self) {
        let mut g = self.lock();
        g.probes_in_flight = g.probes_in_flight.saturating_sub(1);
    }

    /// Report the outcome of an admitted call.
    pub fn record(&self, admission: Admission, success: bool) -> Option<Transition> {
        let now = Instant::now();
        let mut g = self.lock();
        if admission == Admission::Probe {
            g.probes_in_flight = g.probes_in_flight.saturating_sub(1);
        }
        match g.state {
            CircuitState::HalfOpen => {
                if success {
                    g.state = CircuitState::Closed;
                    g.buckets.clear();
                    g.cooldown = self.cfg.cooldown;
                    Some(Transition {
                        from: CircuitState::HalfOpen,
                        to: CircuitState::Closed,
                    })
                } else {
                    // Probes keep failing: stay away longer each time.
                    g.cooldown = (g.cooldown * 2)
                        .min(self.cfg.cooldown_max)
                        .max(self.cfg.cooldown);
                    g.open_until = now + g.cooldown;
                    g.state = CircuitState::Open;
                    Some(Transition {
                        from: CircuitState::HalfOpen,
                        to: CircuitState::Open,
                    })
                }
            }
            CircuitState::Open => None,
            CircuitState::Closed => {
                let sec = now.duration_since(self.epoch).as_secs();
                let window = self.cfg.window.as_secs().max(1);
                g.buckets.retain(|(s, _, _)| s + window > sec);
                match g.buckets.last_mut() {
                    Some((s, ok, bad)) if *s == sec => {
                        if success {
                            *ok += 1;
                        } else {
                            *bad += 1;
                        }
                    }
                    _ => g
                        .buckets
                        .push((sec, u32::from(success), u32::from(!success))),
                }
                let (ok, bad) = g
                    .buckets
                    .iter()
                    .fold((0u32, 0u32), |(a, b), (_, o, f)| (a + o, b + f));
                let total = ok + bad;
                if !success
                    && total >= self.cfg.min_requests
                    && f64::from(bad) / f64::from(total) >= self.cfg.failure_rate
                {
                    g.state = CircuitState::Open;
                    g.cooldown = self.cfg.cooldown;
                    g.open_until = now + g.cooldown;
                    Some(Transition {
                        from: CircuitState::Closed,
                        to: CircuitState::Open,
                    })
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_rate: 0.5,
            min_requests: 4,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
            cooldown_max: Duration::from_secs(20),
            half_open_probes: 1,
        }
    }

    fn call(b: &CircuitBreaker, ok: bool) -> Admission {
        let (a, _) = b.admit();
        if a != Admission::Rejected {
            b.record(a, ok);
        }
        a
    }

    #[tokio::test(start_paused = true)]
    async fn opens_half_opens_and_closes() {
        let b = CircuitBreaker::new(cfg());
        // 1 success + 2 failures: below the minimum volume, stays closed.
        call(&b, true);
        call(&b, false);
        call(&b, false);
        assert_eq!(b.state(), CircuitState::Closed);
        // The 4th call (3 of 4 failed) opens it.
        call(&b, false);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.admit().0, Admission::Rejected);
        tokio::time::advance(Duration::from_secs(5)).await;
        // Half-open admits one probe at a time.
        let (probe, t) = b.admit();
        assert_eq!(
            (probe, t.map(|t| t.to)),
            (Admission::Probe, Some(CircuitState::HalfOpen))
        );
        assert_eq!(b.admit().0, Admission::Rejected);
        let t = b.record(probe, true);
        assert_eq!(t.map(|t| t.to), Some(CircuitState::Closed));
        assert_eq!(call(&b, true), Admission::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_grows_while_probes_fail() {
        let b = CircuitBreaker::new(cfg());
        for _ in 0..4 {
            call(&b, false);
        }
        assert_eq!(b.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(call(&b, false), Admission::Probe);
        // Reopened for 10 s now.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(b.admit().0, Admission::Rejected);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(call(&b, false), Admission::Probe);
        // 20 s (the cap), then still 20 s.
        tokio::time::advance(Duration::from_secs(19)).await;
        assert_eq!(b.admit().0, Admission::Rejected);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(call(&b, false), Admission::Probe);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(b.admit().0, Admission::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let b = CircuitBreaker::new(cfg());
        for _ in 0..3 {
            call(&b, false);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        // The three failures are outside the 10 s window; one more failure is 1 of 1 < min volume.
        call(&b, false);
        assert_eq!(b.state(), CircuitState::Closed);
    }
}

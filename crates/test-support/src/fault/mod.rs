//! Fault injection: a seeded [`FaultProfile`] that makes the mock misbehave at random (error
//! statuses, 429 with `Retry-After`, connection resets, streams cut half way, latency, slow
//! drips), per-request overrides from the `x-mock-fault` header ([`directive`]), and the
//! [`Injected`] counters that say what was done.
//!
//! Every request the profile looks at consumes exactly five draws from one seeded generator,
//! whatever it turns out to be, so a seed and a request count determine the counts exactly,
//! even when requests arrive concurrently (only which request gets which draw varies).

pub(crate) mod directive;
mod injected;
mod latency;
mod respond;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use injected::Injected;
pub use latency::Latency;
pub(crate) use respond::status_response;

/// Retry-After sent with an injected 429 unless the profile says otherwise.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A fault profile or one of its parts is invalid.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultError {
    /// A probability outside `0..=1` (or not a number).
    Rate {
        /// What the rate is for, e.g. `status 500`, `reset`.
        what: String,
        /// The offending value.
        rate: f64,
    },
    /// Error statuses, resets and cuts exclude each other, so their rates must add up to ≤ 1.
    RatesExceedOne(f64),
    /// Only 4xx and 5xx statuses can be injected.
    NotAnErrorStatus(u16),
    /// A uniform latency whose minimum is above its maximum.
    LatencyRange {
        /// Lower bound.
        min: Duration,
        /// Upper bound.
        max: Duration,
    },
    /// Text that does not parse (a flag value or an `x-mock-fault` directive).
    Parse(String),
}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rate { what, rate } => {
                write!(f, "{what} rate {rate} is not a probability between 0 and 1")
            }
            Self::RatesExceedOne(total) => write!(
                f,
                "error, reset and cut rates add up to {total}, more than 1 (they exclude each other)"
            ),
            Self::NotAnErrorStatus(status) => {
                write!(f, "status {status} is not an HTTP error status (400-599)")
            }
            Self::LatencyRange { min, max } => write!(
                f,
                "latency minimum {} ms is above the maximum {} ms",
                min.as_millis(),
                max.as_millis()
            ),
            Self::Parse(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for FaultError {}

fn check_rate(what: &str, rate: f64) -> Result<(), FaultError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(FaultError::Rate {
            what: what.to_owned(),
            rate,
        })
    }
}

fn check_status(status: u16) -> Result<(), FaultError> {
    if (400..=599).contains(&status) {
        Ok(())
    } else {
        Err(FaultError::NotAnErrorStatus(status))
    }
}

/// `STATUS=RATE`, e.g. `500=0.1` (the `--error-rate` flag).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorRate {
    /// HTTP status to answer, 400–599.
    pub status: u16,
    /// Probability per request, 0–1.
    pub rate: f64,
}

impl FromStr for ErrorRate {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || FaultError::Parse(format!("`{text}`: expected STATUS=RATE, e.g. 500=0.1"));
        let (status, rate) = text.split_once('=').ok_or_else(bad)?;
        let status: u16 = status.trim().parse().map_err(|_| bad())?;
        let rate: f64 = rate.trim().parse().map_err(|_| bad())?;
        check_status(status)?;
        check_rate(&format!("status {status}"), rate)?;
        Ok(Self { status, rate })
    }
}

/// Random misbehaviour with given probabilities, reproducible from a seed.
///
/// Per request (chat completions and embeddings) the profile picks at most one of: an error
/// status (each with its own rate), a connection reset, or a cut (a stream that stops after a
/// random number of events, never sending `[DONE]`; a non-streaming body that stops half way).
/// Independently it picks a latency before the first byte and whether a stream drips slowly.
///
/// ```
/// # use std::time::Duration;
/// # use test_support::{Behavior, FaultProfile, Latency, MockUpstream};
/// # async fn demo() {
/// let faults = FaultProfile::seeded(42)
///     .with_error_rate(500, 0.10)
///     .with_error_rate(503, 0.05)
///     .with_rate_limit(0.05, Duration::from_secs(2))
///     .with_reset_rate(0.02)
///     .with_cut_rate(0.02)
///     .with_latency(Latency::uniform(Duration::from_millis(20), Duration::from_millis(80)))
///     .with_drip(0.1, Duration::from_millis(200));
/// let upstream = MockUpstream::start_with_faults(Behavior::ok("fine"), faults).await;
/// // … drive traffic, then compare with what the gateway reports:
/// let injected = upstream.injected();
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FaultProfile {
    seed: u64,
    statuses: Vec<ErrorRate>,
    retry_after: Option<Duration>,
    reset_rate: f64,
    cut_rate: f64,
    latency: Latency,
    drip: Option<(f64, Duration)>,
}

impl FaultProfile {
    /// A profile that injects nothing yet, drawing from `fastrand::Rng::with_seed(seed)`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            statuses: Vec::new(),
            retry_after: Some(DEFAULT_RETRY_AFTER),
            reset_rate: 0.0,
            cut_rate: 0.0,
            latency: Latency::ZERO,
            drip: None,
        }
    }

    /// The seed the random draws start from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Answers `status` (OpenAI's error body for it) with probability `rate`; setting a status
    /// again replaces its rate. A 429 carries the profile's Retry-After.
    #[must_use]
    pub fn with_error_rate(mut self, status: u16, rate: f64) -> Self {
        match self.statuses.iter_mut().find(|e| e.status == status) {
            Some(existing) => existing.rate = rate,
            None => self.statuses.push(ErrorRate { status, rate }),
        }
        self
    }

    /// 429 `rate_limit_exceeded` with probability `rate`, carrying `retry-after` (whole
    /// seconds, rounded up) and `retry-after-ms`.
    #[must_use]
    pub fn with_rate_limit(self, rate: f64, retry_after: Duration) -> Self {
        self.with_error_rate(429, rate)
            .with_retry_after(Some(retry_after))
    }

    /// Retry-After of injected 429s (default 1 s); `None` sends 429s without one.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Closes the connection without any response with probability `rate`.
    #[must_use]
    pub fn with_reset_rate(mut self, rate: f64) -> Self {
        self.reset_rate = rate;
        self
    }

    /// Cuts the answer short with probability `rate`: a stream stops after a random number of
    /// events (at least one, never `[DONE]`), a JSON body half way; then the connection aborts.
    #[must_use]
    pub fn with_cut_rate(mut self, rate: f64) -> Self {
        self.cut_rate = rate;
        self
    }

    /// Delay before the first byte of every answer (faulty or not).
    #[must_use]
    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// With probability `rate`, a streamed answer waits `per_chunk` before every event after
    /// the first (independent of the other faults: a cut stream may drip too).
    #[must_use]
    pub fn with_drip(mut self, rate: f64, per_chunk: Duration) -> Self {
        self.drip = Some((rate, per_chunk));
        self
    }

    /// Checks every rate, status and range.
    ///
    /// # Errors
    /// The first problem found.
    pub fn check(&self) -> Result<(), FaultError> {
        let mut total = 0.0;
        for error in &self.statuses {
            check_status(error.status)?;
            check_rate(&format!("status {}", error.status), error.rate)?;
            total += error.rate;
        }
        check_rate("reset", self.reset_rate)?;
        check_rate("cut", self.cut_rate)?;
        total += self.reset_rate + self.cut_rate;
        // A little slack so 0.7 + 0.2 + 0.1 is not refused for rounding.
        if total > 1.0 + 1e-9 {
            return Err(FaultError::RatesExceedOne(total));
        }
        if let Some((rate, _)) = self.drip {
            check_rate("drip", rate)?;
        }
        self.latency.check()
    }

    /// What happens to the next request, from exactly five draws of `rng`.
    pub(crate) fn draw(&self, rng: &mut fastrand::Rng) -> Plan {
        let [outcome, base, tail, drip, cut_at] = [(); 5].map(|()| rng.f64());
        let mut threshold = 0.0;
        let mut action = None;
        for error in &self.statuses {
            threshold += error.rate;
            if outcome < threshold {
                action = Some(PlannedFault::Status {
                    status: error.status,
                    retry_after: if error.status == 429 {
                        self.retry_after
                    } else {
                        None
                    },
                });
                break;
            }
        }
        if action.is_none() {
            if outcome < threshold + self.reset_rate {
                action = Some(PlannedFault::Reset);
            } else if outcome < threshold + self.reset_rate + self.cut_rate {
                action = Some(PlannedFault::Cut(CutAt::Fraction(cut_at)));
            }
        }
        Plan {
            action,
            latency: self.latency.sample(base, tail),
            drip: self
                .drip
                .and_then(|(rate, per_chunk)| (drip < rate).then_some(per_chunk)),
        }
    }
}

fn percent(rate: f64) -> String {
    format!("{}%", (rate * 10_000.0).round() / 100.0)
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .map(|e| format!("status {} {}", e.status, percent(e.rate)))
            .collect();
        if self.statuses.iter().any(|e| e.status == 429) {
            parts.push(match self.retry_after {
                Some(after) => format!("429 retry-after {} ms", after.as_millis()),
                None => "429 without retry-after".to_owned(),
            });
        }
        if self.reset_rate > 0.0 {
            parts.push(format!("reset {}", percent(self.reset_rate)));
        }
        if self.cut_rate > 0.0 {
            parts.push(format!("cut {}", percent(self.cut_rate)));
        }
        if !self.latency.is_zero() {
            parts.push(format!("latency {}", self.latency));
        }
        if let Some((rate, per_chunk)) = self.drip {
            parts.push(format!(
                "drip {} ms per chunk on {} of streams",
                per_chunk.as_millis(),
                percent(rate)
            ));
        }
        if parts.is_empty() {
            parts.push("no faults".to_owned());
        }
        write!(f, "seed {}: {}", self.seed, parts.join(", "))
    }
}

/// Where a cut answer stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum CutAt {
    /// After exactly this many events, even all of them ([`crate::Behavior::stream_then_fail`]).
    Events(usize),
    /// After this many events, but never `[DONE]` (`x-mock-fault: cut=N`).
    EventsBeforeDone(usize),
    /// Half the events before `[DONE]`, at least one (`x-mock-fault: cut`).
    Half,
    /// Uniformly 1 to all of the events before `[DONE]`, placed by a draw in `[0, 1)` (random
    /// cuts).
    Fraction(f64),
}

impl CutAt {
    /// How many of `total` events (the last being `[DONE]`) are sent before the abort.
    pub(crate) fn events_sent(self, total: usize) -> usize {
        let before_done = total.saturating_sub(1);
        match self {
            Self::Events(n) => n.min(total),
            Self::EventsBeforeDone(n) => n.min(before_done),
            Self::Half => (before_done / 2).max(1).min(before_done),
            Self::Fraction(fraction) => {
                // `as` truncates towards zero, the floor for a non-negative product; event
                // counts are tiny, so the f64 round trip is exact.
                let index = (fraction.clamp(0.0, 1.0) * before_done as f64) as usize;
                (1 + index).min(before_done)
            }
        }
    }
}

/// A fault that replaces the behavior's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PlannedFault {
    /// An OpenAI error body with this status.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Close the connection without a response.
    Reset,
    /// Start the answer, stop part way, abort the connection.
    Cut(CutAt),
}

/// What the mock does to one request on top of its behavior.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub(crate) action: Option<PlannedFault>,
    /// Added to the behavior's own delay.
    pub(crate) latency: Duration,
    /// Replaces the behavior's chunk delay for streamed answers.
    pub(crate) drip: Option<Duration>,
}

struct FaultState {
    profile: Option<FaultProfile>,
    rng: fastrand::Rng,
    injected: Injected,
}

/// The mock's fault profile, its generator and its counters, behind one short-held lock
/// (never held across an await).
pub(crate) struct Faults(Mutex<FaultState>);

impl Faults {
    /// # Panics
    /// If the profile does not pass [`FaultProfile::check`].
    pub(crate) fn new(profile: Option<FaultProfile>) -> Self {
        let faults = Self(Mutex::new(FaultState {
            profile: None,
            rng: fastrand::Rng::with_seed(0),
            injected: Injected::default(),
        }));
        faults.set(profile);
        faults
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        self.0.lock().expect("mock upstream fault lock poisoned")
    }

    /// Replaces the profile and restarts its generator from the seed; counters are kept.
    ///
    /// # Panics
    /// If the profile does not pass [`FaultProfile::check`].
    pub(crate) fn set(&self, profile: Option<FaultProfile>) {
        if let Some(Err(error)) = profile.as_ref().map(FaultProfile::check) {
            panic!("invalid FaultProfile: {error}");
        }
        let mut state = self.state();
        state.rng = fastrand::Rng::with_seed(profile.as_ref().map_or(0, FaultProfile::seed));
        state.profile = profile;
    }

    /// Counts a request that faults apply to and, unless `requested` overrides it, draws its
    /// plan from the profile.
    pub(crate) fn plan(&self, requested: Option<Plan>) -> Plan {
        let mut state = self.state();
        state.injected.requests += 1;
        if let Some(plan) = requested {
            return plan;
        }
        let FaultState { profile, rng, .. } = &mut *state;
        profile
            .as_ref()
            .map_or_else(Plan::default, |profile| profile.draw(rng))
    }

    /// Counts what the mock actually did once the answer is ready.
    pub(crate) fn record(&self, plan: &Plan, dripped: bool) {
        self.state().injected.record(plan, dripped);
    }

    pub(crate) fn injected(&self) -> Injected {
        self.state().injected.clone()
    }
}

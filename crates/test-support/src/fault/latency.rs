//! Latency before the first byte: a base drawn uniformly from `min..=max` (a fixed delay when
//! they are equal) plus an optional exponential long tail, capped so one unlucky draw cannot
//! stall a test or a rehearsal for minutes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::FaultError;

/// How long the mock waits before answering. Built from [`Latency::fixed`],
/// [`Latency::uniform`] or [`Latency::exponential`], refined with [`Latency::with_tail`] and
/// [`Latency::with_tail_cap`].
///
/// ```
/// # use std::time::Duration;
/// # use test_support::Latency;
/// // 50–150 ms, plus an exponential tail with a 400 ms mean, the tail capped at 2 s.
/// let latency = Latency::uniform(Duration::from_millis(50), Duration::from_millis(150))
///     .with_tail(Duration::from_millis(400))
///     .with_tail_cap(Duration::from_secs(2));
/// assert_eq!(latency.max_possible(), Duration::from_millis(2150));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    min: Duration,
    max: Duration,
    tail_mean: Duration,
    tail_cap: Duration,
}

/// The tail is capped at this many means unless [`Latency::with_tail_cap`] says otherwise
/// (an exponential draw exceeds 10 means with probability e⁻¹⁰ ≈ 0.005 %).
const DEFAULT_TAIL_CAP_MEANS: u32 = 10;

impl Default for Latency {
    fn default() -> Self {
        Self::ZERO
    }
}

impl Latency {
    /// No delay.
    pub const ZERO: Latency = Latency {
        min: Duration::ZERO,
        max: Duration::ZERO,
        tail_mean: Duration::ZERO,
        tail_cap: Duration::ZERO,
    };

    /// Always `delay`.
    pub fn fixed(delay: Duration) -> Self {
        Self::uniform(delay, delay)
    }

    /// Uniform in `min..=max`. [`crate::FaultProfile::check`] rejects `min > max`.
    pub fn uniform(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            ..Self::ZERO
        }
    }

    /// Exponentially distributed with this mean (capped at 10 × mean): mostly short, sometimes
    /// long, the shape of real upstream latency tails.
    pub fn exponential(mean: Duration) -> Self {
        Self::ZERO.with_tail(mean)
    }

    /// Adds an exponential tail with this mean to the base delay; the tail is capped at
    /// 10 × mean until [`Latency::with_tail_cap`] changes it.
    #[must_use]
    pub fn with_tail(mut self, mean: Duration) -> Self {
        self.tail_mean = mean;
        self.tail_cap = mean.saturating_mul(DEFAULT_TAIL_CAP_MEANS);
        self
    }

    /// Caps the exponential tail (not the base) at `cap`.
    #[must_use]
    pub fn with_tail_cap(mut self, cap: Duration) -> Self {
        self.tail_cap = cap;
        self
    }

    /// The longest delay this latency can produce.
    pub fn max_possible(&self) -> Duration {
        self.max.saturating_add(self.tail_cap)
    }

    /// Whether this latency never delays.
    pub fn is_zero(&self) -> bool {
        self.max_possible().is_zero()
    }

    pub(crate) fn check(&self) -> Result<(), FaultError> {
        if self.min > self.max {
            return Err(FaultError::LatencyRange {
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }

    /// The delay for two uniform draws in `[0, 1)`: one places the base in `min..=max`, the
    /// other is inverted through the exponential distribution for the tail.
    pub(crate) fn sample(&self, base_draw: f64, tail_draw: f64) -> Duration {
        let spread = self.max.saturating_sub(self.min);
        let base = self.min + spread.mul_f64(base_draw.clamp(0.0, 1.0));
        if self.tail_mean.is_zero() {
            return base;
        }
        // Inverse CDF: -mean · ln(1 - u); u < 1, so the logarithm is finite.
        let factor = -(1.0 - tail_draw.clamp(0.0, 1.0 - f64::EPSILON)).ln();
        let tail = Duration::try_from_secs_f64(self.tail_mean.as_secs_f64() * factor)
            .unwrap_or(self.tail_cap)
            .min(self.tail_cap);
        base + tail
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{} ms", self.min.as_millis())?;
        } else {
            write!(f, "{}-{} ms", self.min.as_millis(), self.max.as_millis())?;
        }
        if !self.tail_mean.is_zero() {
            write!(
                f,
                " + exponential tail (mean {} ms, cap {} ms)",
                self.tail_mean.as_millis(),
                self.tail_cap.as_millis()
            )?;
        }
        Ok(())
    }
}

/// `MIN` or `MIN-MAX` in milliseconds (the `--latency-ms` flag): a fixed or uniform base delay.
impl FromStr for Latency {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let millis = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| {
                    FaultError::Parse(format!(
                        "latency `{text}`: expected MIN or MIN-MAX in whole milliseconds"
                    ))
                })
        };
        let latency = match text.split_once('-') {
            Some((min, max)) => Self::uniform(millis(min)?, millis(max)?),
            None => Self::fixed(millis(text)?),
        };
        latency.check()?;
        Ok(latency)
    }
}

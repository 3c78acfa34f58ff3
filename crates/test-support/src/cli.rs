//! `gatehouse mock-upstream`: the flags, the [`FaultProfile`] they describe, and the server
//! loop. Behind the `cli` feature so tests that only want [`crate::MockUpstream`] do not
//! compile clap's derive; the `gatehouse` binary turns it on and adds only the subcommand.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::{Behavior, ErrorRate, FaultError, FaultProfile, Latency, MockUpstream};

/// Flags of `gatehouse mock-upstream`. Rates are probabilities per request (0–1); statuses,
/// resets and cuts exclude each other, latency and drips combine with them.
#[derive(clap::Args, Clone, Debug)]
pub struct MockUpstreamArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Answer STATUS with OpenAI's error body for it with probability RATE, e.g. 500=0.1.
    /// Repeatable.
    #[arg(long, value_name = "STATUS=RATE")]
    pub error_rate: Vec<ErrorRate>,
    /// Answer 429 rate_limit_exceeded with this probability (same as --error-rate 429=RATE).
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<f64>,
    /// Retry-After of injected 429s in seconds, sent as retry-after (rounded up) and
    /// retry-after-ms.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub retry_after: f64,
    /// Delay before the first byte in milliseconds: MIN for a fixed delay, MIN-MAX for a
    /// uniform one.
    #[arg(long, value_name = "MIN[-MAX]")]
    pub latency_ms: Option<Latency>,
    /// Adds an exponential latency tail with this mean in milliseconds (capped at 10 × mean).
    #[arg(long, value_name = "MEAN")]
    pub latency_tail_ms: Option<u64>,
    /// Close the connection without any response with this probability.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Cut answers short with this probability: a stream stops after a random number of
    /// events without the final DONE event, a JSON body half way; then the connection aborts.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub cut_rate: f64,
    /// Slow drip: wait this long before every stream event after the first.
    #[arg(long, value_name = "MS")]
    pub drip_ms: Option<u64>,
    /// Share of streams that drip (with --drip-ms).
    #[arg(long, value_name = "RATE", default_value_t = 1.0, requires = "drip_ms")]
    pub drip_rate: f64,
    /// Seed of the random faults: the same seed and traffic replay the same faults.
    /// Default: a random seed, printed at start.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Text of successful replies.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "Hello from the Gatehouse mock upstream."
    )]
    pub reply: String,
}

impl MockUpstreamArgs {
    /// The fault profile these flags describe, checked.
    ///
    /// # Errors
    /// The first invalid rate, status or range, named.
    pub fn profile(&self) -> Result<FaultProfile, FaultError> {
        let mut faults = FaultProfile::seeded(self.seed.unwrap_or_else(|| fastrand::u64(..)));
        for error in &self.error_rate {
            faults = faults.with_error_rate(error.status, error.rate);
        }
        if let Some(rate) = self.rate_limit {
            faults = faults.with_error_rate(429, rate);
        }
        let retry_after = Duration::try_from_secs_f64(self.retry_after).map_err(|_| {
            FaultError::Parse(format!(
                "--retry-after {}: not a number of seconds",
                self.retry_after
            ))
        })?;
        let mut latency = self.latency_ms.unwrap_or_default();
        if let Some(mean) = self.latency_tail_ms {
            latency = latency.with_tail(Duration::from_millis(mean));
        }
        faults = faults
            .with_retry_after(Some(retry_after))
            .with_latency(latency)
            .with_reset_rate(self.reset_rate)
            .with_cut_rate(self.cut_rate);
        if let Some(drip) = self.drip_ms {
            faults = faults.with_drip(self.drip_rate, Duration::from_millis(drip));
        }
        faults.check()?;
        Ok(faults)
    }

    /// Serves until `shutdown` resolves. Prints `mock-upstream listening on http://ADDR/v1`
    /// and the profile at start, and `injected: {json}` (the `GET /mock/stats` body) at the end.
    ///
    /// # Errors
    /// If the address cannot be bound or serving fails.
    pub async fn run(
        &self,
        faults: FaultProfile,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.listen).await.map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("could not listen on {}: {error}", self.listen),
            )
        })?;
        let addr = listener.local_addr()?;
        println!("mock-upstream listening on http://{addr}/v1");
        println!("faults: {faults}");
        let injected =
            MockUpstream::serve(listener, Behavior::ok(&self.reply), Some(faults), shutdown)
                .await?;
        println!("injected: {}", injected.to_json());
        Ok(())
    }
}

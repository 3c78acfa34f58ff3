//! `cache-load`: load for the response-cache benchmark. A share of the requests (`--repeat`,
//! default 0.5) asks one of `--pool` fixed questions again, the rest ask a question never seen
//! before; every request has temperature 0. Latency is split by the `x-gatehouse-cache` header of
//! the answer (hit, semantic-hit, miss, other) and printed as one JSON object.
//!
//! ```text
//! cache-load --url http://127.0.0.1:8080/v1/chat/completions [--seconds 10] [--concurrency 50]
//!            [--rate N] [--repeat 0.5] [--pool 100] [--model bench-model] [--stream] [--tag T]
//! ```
//!
//! Closed loop by default (each connection sends its next request when the last answered); with
//! `--rate` requests are scheduled at fixed intervals and latency counts from the scheduled time,
//! so a stall shows up in p99 (no coordinated omission).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};

const USAGE: &str = "usage: cache-load --url URL [--seconds S] [--concurrency C] [--rate R] \
[--repeat SHARE] [--pool N] [--model M] [--stream] [--tag T]";

struct Args {
    url: String,
    seconds: u64,
    concurrency: usize,
    rate: Option<u64>,
    repeat: f64,
    pool: u64,
    model: String,
    stream: bool,
    tag: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        seconds: 10,
        concurrency: 50,
        rate: None,
        repeat: 0.5,
        pool: 100,
        model: "bench-model".into(),
        stream: false,
        tag: std::process::id().to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--stream" {
            a.stream = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--url" => a.url = value,
            "--seconds" => a.seconds = num(&value)?,
            "--concurrency" => a.concurrency = usize::try_from(num(&value)?).unwrap_or(1).max(1),
            "--rate" => a.rate = Some(num(&value)?.max(1)),
            "--repeat" => {
                a.repeat = value
                    .parse()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("--repeat: a share between 0 and 1, not {value}"))?;
            }
            "--pool" => a.pool = num(&value)?.max(1),
            "--model" => a.model = value,
            "--tag" => a.tag = value,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if a.url.is_empty() {
        return Err(USAGE.to_owned());
    }
    Ok(a)
}

#[derive(Default)]
struct Results {
    /// Latencies in microseconds by cache outcome.
    by_outcome: HashMap<String, Vec<u64>>,
    errors: u64,
}

struct Load {
    args: Args,
    client: reqwest::Client,
    unique: AtomicU64,
    results: Mutex<Results>,
}

impl Load {
    fn body(&self) -> String {
        let question = if fastrand::f64() < self.args.repeat {
            format!(
                "Repeated benchmark question number {}",
                fastrand::u64(0..self.args.pool)
            )
        } else {
            let n = self.unique.fetch_add(1, Ordering::Relaxed);
            format!("Unique benchmark question {} number {n}", self.args.tag)
        };
        let stream = if self.args.stream {
            r#","stream":true,"stream_options":{"include_usage":true}"#
        } else {
            ""
        };
        format!(
            r#"{{"model":"{}","temperature":0,"max_tokens":32,"messages":[{{"role":"user","content":"{question}"}}]{stream}}}"#,
            self.args.model
        )
    }

    async fn one(&self, since: Instant) {
        let sent = self
            .client
            .post(&self.args.url)
            .header("content-type", "application/json")
            .body(self.body())
            .send()
            .await;
        let outcome = match sent {
            Ok(resp) if resp.status().is_success() => {
                let h = resp
                    .headers()
                    .get("x-gatehouse-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                resp.bytes().await.ok().map(|_| h)
            }
            _ => None,
        };
        let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut r = self.results.lock().await;
        match outcome {
            Some(h) => r.by_outcome.entry(h).or_default().push(micros),
            None => r.errors += 1,
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cache-load: could not start the runtime");
        return ExitCode::FAILURE;
    };
    rt.block_on(run(args));
    ExitCode::SUCCESS
}

async fn run(args: Args) {
    let duration = Duration::from_secs(args.seconds);
    let load = Arc::new(Load {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency)
            .build()
            .unwrap_or_default(),
        args,
        unique: AtomicU64::new(0),
        results: Mutex::new(Results::default()),
    });
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    if let Some(rate) = load.args.rate {
        let slots = Arc::new(Semaphore::new(load.args.concurrency));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while Instant::now() < deadline {
            let scheduled = tick.tick().await.into_std();
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let load = Arc::clone(&load);
            tasks.push(tokio::spawn(async move {
                load.one(scheduled).await;
                drop(permit);
            }));
        }
    } else {
        for _ in 0..load.args.concurrency {
            let load = Arc::clone(&load);
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    load.one(Instant::now()).await;
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let results = load.results.lock().await;
    let mut all: Vec<u64> = results.by_outcome.values().flatten().copied().collect();
    all.sort_unstable();
    let mut classes = serde_json::Map::new();
    for (outcome, v) in &results.by_outcome {
        let mut v = v.clone();
        v.sort_unstable();
        classes.insert(
            outcome.clone(),
            serde_json::json!({"n": v.len(), "p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99)}),
        );
    }
    let count = |k: &str| results.by_outcome.get(k).map_or(0, Vec::len);
    let served = all.len();
    let hits = count("hit") + count("semantic-hit");
    let summary = serde_json::json!({
        "requests": served,
        "errors": results.errors,
        "seconds": elapsed,
        "rps": served as f64 / elapsed,
        "hit_rate": if served > 0 { hits as f64 / served as f64 } else { 0.0 },
        "p50_ms": percentile(&all, 0.5),
        "p99_ms": percentile(&all, 0.99),
        "by_outcome": classes,
    });
    println!("{summary}");
}

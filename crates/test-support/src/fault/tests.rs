#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};

use super::directive::{parse, requested};
use super::respond::go_duration;
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn profile() -> FaultProfile {
    FaultProfile::seeded(7)
        .with_error_rate(500, 0.10)
        .with_error_rate(503, 0.05)
        .with_rate_limit(0.05, ms(1500))
        .with_reset_rate(0.02)
        .with_cut_rate(0.03)
        .with_drip(0.25, ms(40))
}

/// Tallies `n` draws the way the server counts streamed requests: a drip counts only on an
/// answer that streams (clean or cut), not on an error or a reset.
fn tally(profile: &FaultProfile, n: usize) -> Injected {
    let mut rng = fastrand::Rng::with_seed(profile.seed());
    let mut injected = Injected::default();
    for _ in 0..n {
        let plan = profile.draw(&mut rng);
        injected.requests += 1;
        let streams = matches!(plan.action, None | Some(PlannedFault::Cut(_)));
        injected.record(&plan, streams && plan.drip.is_some());
    }
    injected
}

#[test]
fn a_seed_fixes_every_count_exactly() {
    let injected = tally(&profile(), 2000);
    assert_eq!(injected, tally(&profile(), 2000), "same seed, same counts");
    let expected = Injected {
        requests: 2000,
        clean: 1_490,
        statuses: BTreeMap::from([(429, 116), (500, 183), (503, 105)]),
        resets: 42,
        cuts: 64,
        drips: 386,
        delayed: 0,
        delay_ms_total: 0,
    };
    assert_eq!(injected, expected);
    assert_ne!(
        tally(
            &FaultProfile {
                seed: 8,
                ..profile()
            },
            2000
        ),
        expected,
        "another seed, other counts"
    );
}

#[test]
fn counts_follow_the_rates() {
    // Over 20,000 draws each count is within 4 standard deviations of rate × n.
    let n = 20_000;
    let injected = tally(&profile(), n);
    let within = |count: u64, rate: f64| {
        let expected = rate * n as f64;
        let sigma = (expected * (1.0 - rate)).sqrt();
        (count as f64 - expected).abs() < 4.0 * sigma
    };
    assert!(within(injected.status(500), 0.10), "{injected:?}");
    assert!(within(injected.status(503), 0.05), "{injected:?}");
    assert!(within(injected.status(429), 0.05), "{injected:?}");
    assert!(within(injected.resets, 0.02), "{injected:?}");
    assert!(within(injected.cuts, 0.03), "{injected:?}");
    let streamed = injected.clean + injected.cuts;
    assert!(
        (injected.drips as f64 / streamed as f64 - 0.25).abs() < 0.02,
        "{injected:?}"
    );
    assert_eq!(injected.faults() + injected.clean, n as u64);
}

#[test]
fn rate_one_always_faults_and_rate_zero_never() {
    let always = FaultProfile::seeded(1).with_error_rate(503, 1.0);
    let never = FaultProfile::seeded(1).with_error_rate(503, 0.0);
    assert_eq!(tally(&always, 500).status(503), 500);
    assert_eq!(tally(&never, 500).clean, 500);
}

#[test]
fn injected_429_carries_the_profile_retry_after_and_others_none() {
    let mut rng = fastrand::Rng::with_seed(0);
    let limited = FaultProfile::seeded(0).with_rate_limit(1.0, ms(2500));
    assert_eq!(
        limited.draw(&mut rng).action,
        Some(PlannedFault::Status {
            status: 429,
            retry_after: Some(ms(2500))
        })
    );
    let bare = FaultProfile::seeded(0)
        .with_error_rate(429, 1.0)
        .with_retry_after(None);
    assert_eq!(
        bare.draw(&mut rng).action,
        Some(PlannedFault::Status {
            status: 429,
            retry_after: None
        })
    );
    let server = FaultProfile::seeded(0).with_error_rate(500, 1.0);
    assert_eq!(
        server.draw(&mut rng).action,
        Some(PlannedFault::Status {
            status: 500,
            retry_after: None
        })
    );
}

#[test]
fn check_rejects_bad_rates_statuses_and_ranges() {
    assert_eq!(profile().check(), Ok(()));
    assert_eq!(
        FaultProfile::seeded(0).with_error_rate(200, 0.1).check(),
        Err(FaultError::NotAnErrorStatus(200))
    );
    assert_eq!(
        FaultProfile::seeded(0).with_reset_rate(1.5).check(),
        Err(FaultError::Rate {
            what: "reset".to_owned(),
            rate: 1.5
        })
    );
    assert!(matches!(
        FaultProfile::seeded(0).with_cut_rate(f64::NAN).check(),
        Err(FaultError::Rate { .. })
    ));
    assert_eq!(
        FaultProfile::seeded(0)
            .with_error_rate(500, 0.75)
            .with_reset_rate(0.5)
            .check(),
        Err(FaultError::RatesExceedOne(1.25))
    );
    assert_eq!(
        FaultProfile::seeded(0)
            .with_error_rate(500, 0.7)
            .with_error_rate(503, 0.2)
            .with_cut_rate(0.1)
            .check(),
        Ok(()),
        "exactly 1 is allowed despite rounding"
    );
    assert_eq!(
        FaultProfile::seeded(0)
            .with_latency(Latency::uniform(ms(9), ms(3)))
            .check(),
        Err(FaultError::LatencyRange {
            min: ms(9),
            max: ms(3)
        })
    );
    assert_eq!(
        FaultProfile::seeded(0)
            .with_error_rate(500, 0.9)
            .with_error_rate(500, 0.1)
            .with_reset_rate(0.9)
            .check(),
        Ok(()),
        "setting a status again replaces its rate"
    );
}

#[test]
fn error_rates_parse_from_flags() {
    assert_eq!(
        "500=0.1".parse::<ErrorRate>(),
        Ok(ErrorRate {
            status: 500,
            rate: 0.1
        })
    );
    assert_eq!(
        " 529 = 1 ".parse::<ErrorRate>(),
        Ok(ErrorRate {
            status: 529,
            rate: 1.0
        })
    );
    assert_eq!(
        "600=0.1".parse::<ErrorRate>(),
        Err(FaultError::NotAnErrorStatus(600))
    );
    assert!(matches!(
        "500=2".parse::<ErrorRate>(),
        Err(FaultError::Rate { .. })
    ));
    assert_eq!(
        "500".parse::<ErrorRate>().unwrap_err().to_string(),
        "`500`: expected STATUS=RATE, e.g. 500=0.1"
    );
}

#[test]
fn latency_samples_stay_in_range() {
    assert_eq!(Latency::fixed(ms(250)).sample(0.9, 0.9), ms(250));
    let uniform = Latency::uniform(ms(100), ms(300));
    assert_eq!(uniform.sample(0.0, 0.5), ms(100));
    assert_eq!(uniform.sample(0.5, 0.5), ms(200));
    assert_eq!(uniform.sample(1.0, 0.5), ms(300));
    // Exponential inverse CDF: -mean · ln(1 - u); u = 1 - 1/e gives exactly the mean.
    let tail = Latency::exponential(ms(200));
    assert_eq!(tail.sample(0.0, 0.0), Duration::ZERO);
    let at_mean = tail.sample(0.0, 1.0 - (-1.0_f64).exp());
    assert!(
        at_mean.abs_diff(ms(200)) < Duration::from_micros(1),
        "{at_mean:?}"
    );
    assert_eq!(
        tail.sample(0.0, 0.999_999_999),
        ms(2000),
        "capped at 10 means"
    );
    let capped = Latency::fixed(ms(50))
        .with_tail(ms(100))
        .with_tail_cap(ms(120));
    assert_eq!(capped.sample(0.0, 0.99), ms(170));
    assert_eq!(capped.max_possible(), ms(170));
}

#[test]
fn exponential_tail_has_its_mean_over_many_draws() {
    let latency = Latency::exponential(ms(100));
    let mut rng = fastrand::Rng::with_seed(3);
    let n = 20_000;
    let total: Duration = (0..n).map(|_| latency.sample(0.0, rng.f64())).sum();
    let mean = total / n;
    // Standard error of the mean is 100 ms / √20000 ≈ 0.7 ms.
    assert!(mean.abs_diff(ms(100)) < ms(4), "{mean:?}");
}

#[test]
fn latency_parses_from_flags() {
    assert_eq!("250".parse::<Latency>(), Ok(Latency::fixed(ms(250))));
    assert_eq!(
        "100-500".parse::<Latency>(),
        Ok(Latency::uniform(ms(100), ms(500)))
    );
    assert_eq!(
        "500-100".parse::<Latency>(),
        Err(FaultError::LatencyRange {
            min: ms(500),
            max: ms(100)
        })
    );
    assert!(matches!(
        "1.5".parse::<Latency>(),
        Err(FaultError::Parse(_))
    ));
}

#[test]
fn cut_points() {
    // 6 events: five chunks and [DONE].
    assert_eq!(CutAt::Events(3).events_sent(6), 3);
    assert_eq!(CutAt::Events(9).events_sent(6), 6);
    assert_eq!(CutAt::EventsBeforeDone(9).events_sent(6), 5);
    assert_eq!(CutAt::EventsBeforeDone(0).events_sent(6), 0);
    assert_eq!(CutAt::Half.events_sent(6), 2);
    assert_eq!(CutAt::Half.events_sent(3), 1);
    assert_eq!(CutAt::Fraction(0.0).events_sent(6), 1);
    assert_eq!(CutAt::Fraction(0.5).events_sent(6), 3);
    assert_eq!(CutAt::Fraction(0.799).events_sent(6), 4);
    assert_eq!(CutAt::Fraction(0.999).events_sent(6), 5);
}

#[test]
fn directives_parse() {
    assert_eq!(parse("none"), Ok(Plan::default()));
    assert_eq!(
        parse("status=500"),
        Ok(Plan {
            action: Some(PlannedFault::Status {
                status: 500,
                retry_after: None
            }),
            ..Plan::default()
        })
    );
    assert_eq!(
        parse("status=429").unwrap().action,
        Some(PlannedFault::Status {
            status: 429,
            retry_after: Some(DEFAULT_RETRY_AFTER)
        })
    );
    assert_eq!(
        parse("status=429; retry_after=none").unwrap().action,
        Some(PlannedFault::Status {
            status: 429,
            retry_after: None
        })
    );
    assert_eq!(
        parse("retry_after_ms=1500,status=503").unwrap().action,
        Some(PlannedFault::Status {
            status: 503,
            retry_after: Some(ms(1500))
        })
    );
    assert_eq!(
        parse("status=429,retry_after=2.5").unwrap().action,
        Some(PlannedFault::Status {
            status: 429,
            retry_after: Some(ms(2500))
        })
    );
    assert_eq!(
        parse(" cut=3 , drip_ms=200, latency_ms=50 "),
        Ok(Plan {
            action: Some(PlannedFault::Cut(CutAt::EventsBeforeDone(3))),
            latency: ms(50),
            drip: Some(ms(200)),
        })
    );
    assert_eq!(
        parse("cut").unwrap().action,
        Some(PlannedFault::Cut(CutAt::Half))
    );
    assert_eq!(parse("reset").unwrap().action, Some(PlannedFault::Reset));
}

#[test]
fn bad_directives_are_named() {
    let message = |text: &str| parse(text).unwrap_err().to_string();
    assert!(message("explode").starts_with("x-mock-fault: unknown directive `explode`"));
    assert_eq!(
        message("status=500,reset"),
        "x-mock-fault `reset`: only one of status, reset and cut per request"
    );
    assert_eq!(
        message("status=abc"),
        "x-mock-fault `status=abc`: `abc` is not a number"
    );
    assert_eq!(
        message("status=302"),
        "status 302 is not an HTTP error status (400-599)"
    );
    assert_eq!(
        message("retry_after=3"),
        "x-mock-fault: retry_after needs a status=CODE directive"
    );
}

#[test]
fn directives_come_from_the_header_or_a_body_marker() {
    let body = br#"{"messages":[{"role":"user","content":"hi [mock-fault: status=502] there"}]}"#;
    let status = |status| {
        Some(Plan {
            action: Some(PlannedFault::Status {
                status,
                retry_after: None,
            }),
            ..Plan::default()
        })
    };
    assert_eq!(requested(&HeaderMap::new(), body), Ok(status(502)));
    assert_eq!(requested(&HeaderMap::new(), b"{}"), Ok(None));
    let mut headers = HeaderMap::new();
    headers.insert("x-mock-fault", HeaderValue::from_static("status=504"));
    assert_eq!(requested(&headers, body), Ok(status(504)), "header wins");
}

#[test]
fn reset_durations_read_like_openai_headers() {
    assert_eq!(go_duration(Duration::ZERO), "0s");
    assert_eq!(go_duration(ms(250)), "250ms");
    assert_eq!(go_duration(ms(1000)), "1s");
    assert_eq!(go_duration(ms(1500)), "1.5s");
    assert_eq!(go_duration(ms(20_250)), "20.25s");
    assert_eq!(go_duration(ms(360_000)), "6m0s");
    assert_eq!(go_duration(ms(3_723_000)), "1h2m3s");
}

#[test]
fn profiles_describe_themselves() {
    assert_eq!(
        profile().to_string(),
        "seed 7: status 500 10%, status 503 5%, status 429 5%, 429 retry-after 1500 ms, \
         reset 2%, cut 3%, drip 40 ms per chunk on 25% of streams"
    );
    let latency =
        FaultProfile::seeded(1).with_latency(Latency::uniform(ms(10), ms(20)).with_tail(ms(100)));
    assert_eq!(
        latency.to_string(),
        "seed 1: latency 10-20 ms + exponential tail (mean 100 ms, cap 1000 ms)"
    );
    assert_eq!(FaultProfile::seeded(5).to_string(), "seed 5: no faults");
}

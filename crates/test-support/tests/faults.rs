//! Fault injection against a real HTTP client: seeded profiles give exact counts that match
//! what the client saw, `x-mock-fault` overrides do exactly what they say (a reset is a
//! connection error, a cut stream has no `[DONE]`, a 429 carries Retry-After), and latency and
//! drips follow a paused clock.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::{Behavior, FaultProfile, Injected, Latency, MockUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn stream_body() -> Value {
    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

async fn post_with(
    client: &reqwest::Client,
    upstream: &MockUpstream,
    fault: Option<&str>,
    body: &Value,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut request = client.post(upstream.url("/chat/completions")).json(body);
    if let Some(fault) = fault {
        request = request.header("x-mock-fault", fault);
    }
    request.send().await
}

/// What a client saw for one request.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Connection closed without a response.
    Reset,
    /// A non-2xx status with an OpenAI error body.
    Status(u16),
    /// 200 and a stream ending in `[DONE]`.
    Complete { events: usize },
    /// 200, then the connection aborted; no `[DONE]`.
    Cut { events: usize },
}

async fn observe(response: Result<reqwest::Response, reqwest::Error>) -> Seen {
    let mut response = match response {
        Err(error) => {
            assert!(
                error.is_request() && !error.is_timeout() && error.status().is_none(),
                "{error:?}"
            );
            return Seen::Reset;
        }
        Ok(response) => response,
    };
    let status = response.status().as_u16();
    if status != 200 {
        let body: Value = response.json().await.unwrap();
        let error = &body["error"];
        assert!(
            error["message"].is_string() && error["type"].is_string(),
            "{body}"
        );
        assert!(
            error.get("param").is_some() && error.get("code").is_some(),
            "{body}"
        );
        return Seen::Status(status);
    }
    let mut text = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => text.extend_from_slice(&bytes),
            Ok(None) => break,
            Err(_) => {
                let text = String::from_utf8(text).unwrap();
                assert!(
                    !text.contains("[DONE]"),
                    "a cut stream must not finish: {text}"
                );
                return Seen::Cut {
                    events: text.matches("data: ").count(),
                };
            }
        }
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    Seen::Complete {
        events: text.matches("data: ").count(),
    }
}

#[tokio::test]
async fn a_seeded_profile_injects_exact_counts_that_the_client_sees() {
    // The same profile and seed as the unit test `a_seed_fixes_every_count_exactly`, so the
    // numbers below must agree with it (a 1 ms drip instead of 40 ms keeps this test fast; the
    // delay does not change the draws).
    let profile = FaultProfile::seeded(7)
        .with_error_rate(500, 0.10)
        .with_error_rate(503, 0.05)
        .with_rate_limit(0.05, ms(1500))
        .with_reset_rate(0.02)
        .with_cut_rate(0.03)
        .with_drip(0.25, ms(1));
    let upstream = MockUpstream::start_with_faults(Behavior::ok("one two three"), profile).await;
    let client = reqwest::Client::new();
    let body = stream_body();
    let seen: Vec<Seen> = futures_util::stream::iter(0..2000)
        .map(|_| async { observe(post_with(&client, &upstream, None, &body).await).await })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for s in &seen {
        let kind = match s {
            Seen::Reset => "reset".to_owned(),
            Seen::Status(status) => status.to_string(),
            Seen::Complete { events } => {
                // role, 3 words, finish, [DONE]
                assert_eq!(*events, 6);
                "clean".to_owned()
            }
            Seen::Cut { events } => {
                assert!((1..=5).contains(events), "{events}");
                "cut".to_owned()
            }
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    let expected = Injected {
        requests: 2000,
        clean: 1490,
        statuses: BTreeMap::from([(429, 116), (500, 183), (503, 105)]),
        resets: 42,
        cuts: 64,
        drips: 386,
        delayed: 0,
        delay_ms_total: 0,
    };
    assert_eq!(upstream.injected(), expected);
    let client_side: BTreeMap<String, u64> = [
        ("clean", 1490),
        ("429", 116),
        ("500", 183),
        ("503", 105),
        ("reset", 42),
        ("cut", 64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        by_kind, client_side,
        "the client saw exactly what was injected"
    );
    assert_eq!(upstream.hits(), 2000);
    assert_eq!(upstream.disconnects(), 0);

    let stats: Value = client
        .get(format!("http://{}/mock/stats", upstream.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, expected.to_json());
    assert_eq!(stats["statuses"]["500"], 183);
    assert_eq!(upstream.hits(), 2000, "/mock/stats is not upstream traffic");
}

#[tokio::test]
async fn reset_closes_the_connection_without_any_response() {
    let upstream = MockUpstream::start(Behavior::ok("fine")).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let result = post_with(&client, &upstream, Some("reset"), &stream_body()).await;
        assert_eq!(observe(result).await, Seen::Reset);
    }

    // On the wire: the request is read, then EOF with not a single byte of response.
    let mut socket = tokio::net::TcpStream::connect(upstream.addr).await.unwrap();
    let body = r#"{"model":"m"}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n\
         x-mock-fault: reset\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // EOF or RST: either way the read ends, and not a byte of a response came first.
    let _ = socket.read_to_end(&mut received).await;
    assert!(
        received.is_empty(),
        "no status line: {:?}",
        String::from_utf8_lossy(&received)
    );

    assert_eq!(upstream.injected().resets, 21);
    assert_eq!(upstream.injected().clean, 0);
    assert_eq!(
        upstream.disconnects(),
        0,
        "our own reset is not a client disconnect"
    );
}

#[tokio::test]
async fn cut_stops_the_stream_after_n_events_without_done() {
    let upstream = MockUpstream::start(Behavior::ok("a b c d e f")).await;
    let client = reqwest::Client::new();
    let seen = |fault: &'static str| {
        let client = client.clone();
        let upstream = &upstream;
        async move { observe(post_with(&client, upstream, Some(fault), &stream_body()).await).await }
    };
    assert_eq!(seen("cut=3").await, Seen::Cut { events: 3 });
    assert_eq!(seen("cut=0").await, Seen::Cut { events: 0 });
    // role + 6 words + finish = 8 events before [DONE]; a large N still withholds [DONE].
    assert_eq!(seen("cut=99").await, Seen::Cut { events: 8 });
    assert_eq!(seen("cut").await, Seen::Cut { events: 4 });
    assert_eq!(seen("none").await, Seen::Complete { events: 9 });
    assert_eq!(upstream.injected().cuts, 4);
    assert_eq!(upstream.injected().clean, 1);

    // A non-streaming answer is cut half way through its JSON.
    let response = post_with(&client, &upstream, Some("cut=3"), &json!({"model": "m"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "the body must end in an error"
    );
}

#[tokio::test]
async fn status_overrides_send_openai_error_bodies_and_retry_headers() {
    let upstream = MockUpstream::start(Behavior::ok("fine")).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "m"});

    let response = post_with(&client, &upstream, Some("status=429"), &body)
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let headers = response.headers().clone();
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["retry-after-ms"], "1000");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(headers["x-ratelimit-reset-requests"], "1s");
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": {
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "param": null,
            "code": "rate_limit_exceeded"
        }})
    );

    let response = post_with(
        &client,
        &upstream,
        Some("status=429,retry_after_ms=1500"),
        &body,
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers()["retry-after"],
        "2",
        "whole seconds, rounded up"
    );
    assert_eq!(response.headers()["retry-after-ms"], "1500");
    assert_eq!(response.headers()["x-ratelimit-reset-requests"], "1.5s");

    let response = post_with(
        &client,
        &upstream,
        Some("status=429;retry_after=none"),
        &body,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 429);
    assert!(!response.headers().contains_key("retry-after"));
    assert!(!response.headers().contains_key("retry-after-ms"));

    let response = post_with(&client, &upstream, Some("status=503,retry_after=7"), &body)
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    assert!(
        !response
            .headers()
            .contains_key("x-ratelimit-reset-requests")
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": {
            "message": "The server is overloaded or not ready yet.",
            "type": "server_error",
            "param": null,
            "code": null
        }})
    );

    let response = post_with(&client, &upstream, Some("status=529"), &stream_body())
        .await
        .unwrap();
    assert_eq!(response.status(), 529);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "overloaded_error"
    );

    let response = post_with(&client, &upstream, Some("status=500"), &body)
        .await
        .unwrap();
    assert!(!response.headers().contains_key("retry-after"));
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "server_error"
    );

    let injected = upstream.injected();
    assert_eq!(
        injected.statuses,
        BTreeMap::from([(429, 3), (500, 1), (503, 1), (529, 1)])
    );
    assert_eq!(injected.requests, 6);
}

#[tokio::test]
async fn a_body_marker_works_where_a_gateway_drops_the_header() {
    let upstream = MockUpstream::start(Behavior::ok("fine")).await;
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "please fail [mock-fault: status=502]"}
    ]});
    let response = post_with(&reqwest::Client::new(), &upstream, None, &body)
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["message"],
        "Bad gateway."
    );
}

#[tokio::test]
async fn invalid_directives_get_a_400_naming_them() {
    let upstream = MockUpstream::start(Behavior::ok("fine")).await;
    let response = post_with(
        &reqwest::Client::new(),
        &upstream,
        Some("status=500,explode"),
        &json!({}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_mock_fault");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("x-mock-fault: unknown directive `explode`"),
        "{body}"
    );
}

#[tokio::test]
async fn overrides_take_no_draw_from_the_seeded_sequence() {
    let profile = FaultProfile::seeded(11).with_error_rate(500, 0.5);
    let client = reqwest::Client::new();
    let statuses = |upstream: &MockUpstream, interleave: bool| {
        let client = client.clone();
        let base = upstream.url("/chat/completions");
        async move {
            let mut statuses = Vec::new();
            for _ in 0..24 {
                if interleave {
                    let forced = client
                        .post(&base)
                        .header("x-mock-fault", "none")
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(forced.status(), 200);
                }
                let response = client.post(&base).json(&json!({})).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    };
    let plain = MockUpstream::start_with_faults(Behavior::default(), profile.clone()).await;
    let mixed = MockUpstream::start_with_faults(Behavior::default(), profile.clone()).await;
    let expected = statuses(&plain, false).await;
    assert!(
        expected.contains(&500) && expected.contains(&200),
        "{expected:?}"
    );
    assert_eq!(statuses(&mixed, true).await, expected);
    assert_eq!(mixed.injected().requests, 48);

    // A new profile restarts the sequence from its seed; the counters carry on.
    plain.set_faults(Some(profile));
    assert_eq!(statuses(&plain, false).await, expected);
    assert_eq!(plain.injected().requests, 48);
    plain.set_faults(None);
    assert_eq!(statuses(&plain, false).await, vec![200; 24]);
}

#[tokio::test]
async fn models_and_unknown_routes_are_never_faulted() {
    let profile = FaultProfile::seeded(1).with_reset_rate(1.0);
    let upstream = MockUpstream::start_with_faults(Behavior::default(), profile).await;
    let client = reqwest::Client::new();
    let models = client.get(upstream.url("/models")).send().await.unwrap();
    assert_eq!(models.status(), 200);
    let embeddings = client
        .post(upstream.url("/embeddings"))
        .json(&json!({"input": "x"}))
        .send()
        .await;
    assert!(embeddings.is_err(), "embeddings are faulted");
    assert_eq!(upstream.injected().requests, 1);
    assert_eq!(upstream.injected().resets, 1);
}

#[tokio::test(start_paused = true)]
async fn injected_latency_follows_a_paused_clock() {
    let upstream = MockUpstream::start_with_faults(
        Behavior::ok("late"),
        FaultProfile::seeded(3).with_latency(Latency::fixed(Duration::from_secs(90))),
    )
    .await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = post_with(&client, &upstream, None, &json!({}))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(90) && elapsed < Duration::from_secs(90) + ms(5),
        "{elapsed:?}"
    );

    // Uniform 100..=300 ms: every delay in range, and the counters add them up.
    upstream.set_faults(Some(
        FaultProfile::seeded(3).with_latency(Latency::uniform(ms(100), ms(300))),
    ));
    let mut observed = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = post_with(&client, &upstream, None, &json!({}))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        observed.push(started.elapsed());
    }
    assert!(
        observed.iter().all(|d| *d >= ms(100) && *d < ms(305)),
        "{observed:?}"
    );
    assert!(observed.iter().any(|d| *d < ms(200)) && observed.iter().any(|d| *d > ms(200)));
    let injected = upstream.injected();
    assert_eq!(injected.delayed, 21);
    let observed_ms: u64 = observed.iter().map(|d| d.as_millis() as u64).sum();
    let injected_ms = injected.delay_ms_total - 90_000;
    assert!(
        observed_ms.abs_diff(injected_ms) <= 2 * 20,
        "observed {observed_ms} ms, injected {injected_ms} ms"
    );

    // A long tail, capped: never beyond 50 + 10 × 400 ms.
    upstream.set_faults(Some(
        FaultProfile::seeded(4).with_latency(Latency::fixed(ms(50)).with_tail(ms(400))),
    ));
    for _ in 0..30 {
        let started = Instant::now();
        post_with(&client, &upstream, None, &json!({}))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed >= ms(50) && elapsed < ms(4055), "{elapsed:?}");
    }

    // A requested latency overrides the profile's.
    let started = Instant::now();
    post_with(&client, &upstream, Some("latency_ms=7000"), &json!({}))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= ms(7000) && elapsed < ms(7005), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn drips_space_out_stream_events() {
    let upstream = MockUpstream::start(Behavior::ok("a b c")).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut response = post_with(&client, &upstream, Some("drip_ms=200"), &stream_body())
        .await
        .unwrap();
    let mut arrivals = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        arrivals.push((started.elapsed(), chunk.len()));
    }
    // role, a, b, c, finish, [DONE]: the first at once, then one every 200 ms.
    assert_eq!(arrivals.len(), 6, "{arrivals:?}");
    let last = arrivals.last().unwrap().0;
    assert!(last >= ms(1000) && last < ms(1010), "{arrivals:?}");
    assert!(arrivals[0].0 < ms(5), "{arrivals:?}");
    assert_eq!(upstream.injected().drips, 1);

    // A profile drip applies to streams only: a non-streaming answer is not counted.
    upstream.set_faults(Some(FaultProfile::seeded(0).with_drip(1.0, ms(200))));
    post_with(&client, &upstream, None, &json!({}))
        .await
        .unwrap();
    assert_eq!(upstream.injected().drips, 1);
    assert_eq!(upstream.injected().clean, 2);
}

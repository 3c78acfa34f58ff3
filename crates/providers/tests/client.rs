//! The upstream HTTP client as a provider uses it, against raw sockets: what goes on the wire,
//! redirects not followed, silence and garbage mapped to the error kinds the gateway expects.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::time::Duration;

use providers::openai::OpenAiProvider;
use providers::{ChatRequest, HttpClient, Provider, ProviderError, ProviderErrorKind};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn chat() -> ChatRequest {
    serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap()
}

/// Accepts one connection, reads one request head and body, answers `reply`, and returns the
/// request text.
async fn one_exchange(listener: TcpListener, reply: impl AsRef<[u8]>) -> String {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len: usize = text[..head_end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= head_end + 4 + len {
                break;
            }
        }
        assert!(n > 0, "connection closed mid-request");
    }
    sock.write_all(reply.as_ref()).await.unwrap();
    String::from_utf8(got).unwrap()
}

fn provider(addr: std::net::SocketAddr, timeout: Duration) -> OpenAiProvider {
    OpenAiProvider::new(
        HttpClient::default(),
        &format!("http://{addr}/v1"),
        Some(SecretString::from("sk-test-123")),
        timeout,
    )
}

/// A chat call against `listener` answered with `reply`, expected to fail.
async fn failed_call(
    listener: TcpListener,
    reply: impl AsRef<[u8]> + Send + 'static,
) -> ProviderError {
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(one_exchange(listener, reply));
    let err = provider(addr, Duration::from_secs(5))
        .chat(&chat())
        .await
        .unwrap_err();
    server.await.unwrap();
    err
}

#[tokio::test]
async fn request_carries_credentials_and_json_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let server = tokio::spawn(one_exchange(listener, reply));
    let resp = provider(addr, Duration::from_secs(5))
        .chat(&chat())
        .await
        .unwrap();
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("hello"));
    let sent = server.await.unwrap();
    let head = sent.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("post /v1/chat/completions http/1.1\r\n"),
        "{head}"
    );
    for line in [
        "authorization: bearer sk-test-123",
        "content-type: application/json",
        &format!("user-agent: gatehouse/{}", env!("CARGO_PKG_VERSION")),
        &format!("host: {addr}"),
    ] {
        assert_eq!(head.matches(line).count(), 1, "{line} once in {head}");
    }
    assert!(
        sent.ends_with(r#""messages":[{"role":"user","content":"hi"}]}"#),
        "{sent}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The redirect target: it must never be asked.
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = elsewhere.local_addr().unwrap();
    let reply = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{target}/v1/chat/completions\r\ncontent-length: 0\r\n\r\n"
    );
    let err = failed_call(listener, reply).await;
    assert_eq!(
        (err.kind, err.status),
        (ProviderErrorKind::Unavailable, Some(307))
    );
    assert!(
        !err.message.contains(&target.to_string()),
        "{}",
        err.message
    );
    let asked = tokio::time::timeout(Duration::ZERO, elsewhere.accept()).await;
    assert!(asked.is_err(), "the redirect was followed");
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_times_out_without_naming_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and reads, never answers.
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        while sock.read(&mut buf).await.unwrap_or(0) > 0 {}
    });
    let err = provider(addr, Duration::from_secs(30))
        .chat(&chat())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Timeout);
    assert_eq!(err.message, "upstream timed out");
    server.abort();
}

#[tokio::test]
async fn garbage_and_refused_connections_are_connect_errors() {
    // Bad input: an answer that is not HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = failed_call(listener, b"SMTP ready\r\n\r\n").await;
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ProviderErrorKind::Connect, "could not reach the upstream")
    );
    // Nothing listening any more on a port that was just free.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let err = provider(addr, Duration::from_secs(5))
        .chat(&chat())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Connect);
    // Bad input: a base URL that does not parse fails the call, not the start-up.
    let err = OpenAiProvider::new(
        HttpClient::default(),
        "http://bad host/v1",
        None,
        Duration::from_secs(5),
    )
    .chat(&chat())
    .await
    .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Connect);
}

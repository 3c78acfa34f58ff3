//! `gatehouse mock-upstream`, the real binary: its flags, serving injected faults with OpenAI
//! bodies, replaying a seed, refusing bad rates, and reporting what it injected on SIGTERM.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.env_remove("GATEHOUSE_CONFIG");
    command
}

/// A running `gatehouse mock-upstream --listen 127.0.0.1:0 ARGS…`, killed if a test fails.
struct Mock {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    base_url: String,
    faults: String,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let mut child = bin()
            .args(["mock-upstream", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("mock-upstream exited early").unwrap();
        let base_url = first
            .strip_prefix("mock-upstream listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        let faults = lines.next().unwrap().unwrap();
        Mock {
            child,
            lines,
            base_url,
            faults,
        }
    }

    async fn statuses(&self, n: usize) -> Vec<u16> {
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..n {
            let response = client
                .post(format!("{}/chat/completions", self.base_url))
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    }

    /// SIGTERM, then the exit status and the final `injected: {json}` line.
    async fn stop(self) -> Value {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut mock = self;
        let (exit, rest) = tokio::task::spawn_blocking(move || {
            let mock = &mut mock;
            let rest: Vec<String> = mock.lines.by_ref().map(Result::unwrap).collect();
            (mock.child.wait().unwrap(), rest)
        })
        .await
        .unwrap();
        assert!(exit.success(), "{exit:?}");
        let last = rest.last().expect("a final line");
        serde_json::from_str(last.strip_prefix("injected: ").unwrap()).unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_lists_every_flag() {
    let output = bin().args(["mock-upstream", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen <LISTEN>",
        "[default: 127.0.0.1:9001]",
        "--error-rate <STATUS=RATE>",
        "--rate-limit <RATE>",
        "--retry-after <SECS>",
        "--latency-ms <MIN[-MAX]>",
        "--latency-tail-ms <MEAN>",
        "--reset-rate <RATE>",
        "--cut-rate <RATE>",
        "--drip-ms <MS>",
        "--drip-rate <RATE>",
        "--seed <SEED>",
        "--reply <TEXT>",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let top = bin().arg("--help").output().unwrap();
    assert!(
        String::from_utf8(top.stdout)
            .unwrap()
            .contains("mock-upstream")
    );
}

#[test]
fn bad_rates_are_refused_with_the_reason() {
    let output = bin()
        .args([
            "mock-upstream",
            "--error-rate",
            "500=0.8",
            "--reset-rate",
            "0.5",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "error: error, reset and cut rates add up to 1.3, more than 1 (they exclude each other)\n"
    );
    let output = bin()
        .args(["mock-upstream", "--error-rate", "200=0.1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("status 200 is not an HTTP error status (400-599)")
    );
}

#[tokio::test]
async fn serves_injected_statuses_with_openai_bodies_and_reports_them() {
    let mock = Mock::start(&["--error-rate", "503=1", "--seed", "1", "--reply", "unused"]);
    assert_eq!(mock.faults, "faults: seed 1: status 503 100%");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/chat/completions", mock.base_url))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": {
            "message": "The server is overloaded or not ready yet.",
            "type": "server_error",
            "param": null,
            "code": null
        }})
    );
    // A request's own directive still wins over the profile.
    let response = client
        .post(format!("{}/chat/completions", mock.base_url))
        .header("x-mock-fault", "none")
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "unused");

    let stats: Value = client
        .get(mock.base_url.replace("/v1", "/mock/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["statuses"], json!({"503": 1}));
    assert_eq!(stats["clean"], 1);

    let injected = mock.stop().await;
    assert_eq!(injected, stats, "the exit report matches /mock/stats");
}

#[tokio::test]
async fn a_seed_replays_the_same_faults() {
    let args = [
        "--error-rate",
        "500=0.3",
        "--rate-limit",
        "0.2",
        "--retry-after",
        "3",
        "--seed",
        "99",
    ];
    let first = Mock::start(&args);
    assert_eq!(
        first.faults,
        "faults: seed 99: status 500 30%, status 429 20%, 429 retry-after 3000 ms"
    );
    let statuses = first.statuses(30).await;
    assert!(
        statuses.contains(&200) && statuses.contains(&500) && statuses.contains(&429),
        "{statuses:?}"
    );
    let second = Mock::start(&args);
    assert_eq!(second.statuses(30).await, statuses);

    let limited = reqwest::Client::new()
        .post(format!("{}/chat/completions", second.base_url))
        .header("x-mock-fault", "status=429,retry_after=3")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.headers()["retry-after"], "3");

    let injected = first.stop().await;
    let count = |status: u16| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(injected["statuses"]["500"], count(500));
    assert_eq!(injected["statuses"]["429"], count(429));
    assert_eq!(injected["clean"], count(200));
}

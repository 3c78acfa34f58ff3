//! `POST /v1/audio/transcriptions` (and the chat's copy): JSON and text, its own size limit,
//! bad inputs, the ledger record, and proxying to a Whisper-compatible upstream.

use serde_json::{Value, json};

use crate::*;

#[tokio::test]
async fn transcription_answers_json_and_text_and_is_recorded() {
    // A body limit far below the audio: the route has its own.
    let mut web = start_with(&server_lines("max_body_bytes = 4096"), "", &[]).await;
    let audio = vec![7u8; 50_000];
    let (ct, body) = multipart(
        &[("model", "mock-1"), ("language", "en")],
        &[("file", "memo.webm", "audio/webm", &audio)],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"text": "Transcript of memo.webm (50000 bytes)"}));

    let (ct, body) = multipart(
        &[
            ("model", "mock-1"),
            ("response_format", "text"),
            ("prompt", "names"),
        ],
        &[("file", "note.m4a", "application/octet-stream", b"abc")],
    );
    let resp = web
        .client
        .post(web.url("/v1/audio/transcriptions"))
        .header("content-type", ct)
        .header("x-request-id", "tr-text")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        resp.text().await.unwrap(),
        "Transcript of note.m4a (3 bytes)"
    );

    let store = web.store().await;
    let row = common::row(&store, "tr-text").await;
    assert_eq!(
        (row.route, row.status, row.model.as_str(), row.cost_micros),
        (store::Route::Transcription, 200, "mock-1", 0)
    );
}

#[tokio::test]
async fn transcription_refuses_bad_input() {
    let web = start_with(&server_lines("max_audio_bytes = 1000"), "", &[]).await;
    let wav: &[u8] = &[1, 2, 3, 4];
    let file =
        |name: &'static str, ct: &'static str, bytes: &[u8]| ("file", name, ct, bytes.to_vec());
    // Bad input: no file at all.
    let r = post_form(&web, vec![("model", "mock-1")], vec![]).await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("file".into()))
    );
    // Bad input: no model.
    let r = post_form(&web, vec![], vec![file("a.wav", "audio/wav", wav)]).await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("model".into()))
    );
    // Bad input: an image instead of audio.
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("cat.png", "image/png", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (415, "unsupported_media_type".into(), Some("file".into()))
    );
    // Bad input: a file over server.max_audio_bytes (1,000 bytes).
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("big.wav", "audio/wav", &[0u8; 1_001])],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (413, "request_too_large".into(), Some("file".into()))
    );
    // Exactly at the limit passes.
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("ok.wav", "audio/wav", &[0u8; 1_000])],
    )
    .await;
    assert_eq!(r.status(), 200);
    // Bad input: an empty file.
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("empty.wav", "audio/wav", b"")],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("file".into()))
    );
    // Bad input: a response format Gatehouse does not render.
    let r = post_form(
        &web,
        vec![("model", "mock-1"), ("response_format", "srt")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "invalid_request".into(),
            Some("response_format".into())
        )
    );
    // Bad input: a language that is not an ISO-639-1 code.
    let r = post_form(
        &web,
        vec![("model", "mock-1"), ("language", "English")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("language".into()))
    );
    // Bad input: an unknown field.
    let r = post_form(
        &web,
        vec![("model", "mock-1"), ("speed", "2")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("speed".into()))
    );
    // Bad input: a model this gateway does not serve.
    let r = post_form(
        &web,
        vec![("model", "whisper-9")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (404, "model_not_found".into(), Some("model".into()))
    );
    // Bad input: a model name over the field limit.
    let long = "m".repeat(300);
    let r = post_form(
        &web,
        vec![("model", long.as_str())],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (413, "request_too_large".into(), Some("model".into()))
    );
    // Bad input: JSON instead of multipart.
    let r = web
        .client
        .post(web.url("/v1/audio/transcriptions"))
        .json(&json!({"model": "mock-1", "file": "AAAA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (415, "unsupported_media_type".into(), None)
    );
    // Bad input: a multipart body cut off in the middle.
    let (ct, mut body) = multipart(
        &[("model", "mock-1")],
        &[("file", "a.wav", "audio/wav", wav)],
    );
    body.truncate(body.len() - 20);
    let r = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into(), None));
}

#[tokio::test]
async fn the_web_chat_transcribes_for_its_session_only() {
    let web = start("", &[]).await;
    let (cookie, _) = web.chat_session().await;
    let (ct, body) = multipart(
        &[("model", "default")],
        &[("file", "voice.webm", "audio/webm", &[9u8; 321])],
    );
    // Bad input: no chat session.
    let r = transcribe(&web, "/web/api/audio/transcriptions", &ct, body.clone()).await;
    assert_eq!(error_of(r).await.0, 401);
    let r = web
        .client
        .post(web.url("/web/api/audio/transcriptions"))
        .header("content-type", ct)
        .header("cookie", cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"text": "Transcript of voice.webm (321 bytes)"})
    );
}

/// What the fake Whisper upstream received: its fields (files as `name:type:len`) and the
/// `Authorization` header.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, String)>>>;

/// A Whisper-compatible upstream: `POST /v1/audio/transcriptions` answering what it heard, or
/// the OpenAI error body for the status a `model` of `fail-<status>` asks for.
async fn whisper_upstream() -> (String, Received) {
    use axum::extract::{Multipart, State};
    let received: Received = std::sync::Arc::default();
    async fn handle(
        State(received): State<Received>,
        headers: axum::http::HeaderMap,
        mut form: Multipart,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut fields = Vec::new();
        while let Some(field) = form.next_field().await.unwrap() {
            let name = field.name().unwrap().to_owned();
            let value = match field.file_name().map(str::to_owned) {
                Some(file) => {
                    let ct = field.content_type().unwrap_or("").to_owned();
                    format!("{file}:{ct}:{}", field.bytes().await.unwrap().len())
                }
                None => field.text().await.unwrap(),
            };
            fields.push((name, value));
        }
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let model = fields.iter().find(|(k, _)| k == "model").unwrap().1.clone();
        let file = fields.iter().find(|(k, _)| k == "file").unwrap().1.clone();
        received.lock().unwrap().push((fields, auth));
        if let Some(status) = model.strip_prefix("fail-") {
            let status: u16 = status.parse().unwrap();
            let body = json!({"error": {"message": format!("upstream says {status}"), "type": "invalid_request_error", "param": null, "code": null}});
            return (
                axum::http::StatusCode::from_u16(status).unwrap(),
                axum::Json(body),
            )
                .into_response();
        }
        axum::Json(json!({"text": format!("heard {file}")})).into_response()
    }
    let app = axum::Router::new()
        .route("/v1/audio/transcriptions", axum::routing::post(handle))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), received)
}

#[tokio::test]
async fn transcriptions_are_proxied_to_a_whisper_compatible_upstream() {
    let (base, received) = whisper_upstream().await;
    let models = format!(
        "[providers.whisper]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key_env = \"TEST_WHISPER_KEY\"\n\
         [[models]]\nalias = \"speech\"\nprovider = \"whisper\"\nupstream_model = \"whisper-1\"\n\
         [[models]]\nalias = \"broken\"\nprovider = \"whisper\"\nupstream_model = \"fail-500\"\n\
         [[models]]\nalias = \"picky\"\nprovider = \"whisper\"\nupstream_model = \"fail-400\"\n"
    );
    let web = start(&models, &[("TEST_WHISPER_KEY", "sk-whisper-secret")]).await;
    let audio = vec![3u8; 2_048];
    let (ct, body) = multipart(
        &[
            ("model", "speech"),
            ("language", "de"),
            ("response_format", "text"),
        ],
        &[("file", "memo.ogg", "audio/ogg", &audio)],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "heard memo.ogg:audio/ogg:2048");
    let (fields, auth) = received.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer sk-whisper-secret");
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The upstream model name, JSON from the upstream (the gateway renders `text` itself).
    assert_eq!(
        fields,
        [
            ("model", "whisper-1"),
            ("response_format", "json"),
            ("language", "de"),
            ("file", "memo.ogg:audio/ogg:2048")
        ]
    );
    // Upstream failures follow the error contract: a 500 is a 502 with fixed text…
    let (ct, body) = multipart(
        &[("model", "broken")],
        &[("file", "a.wav", "audio/wav", b"RIFF")],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "provider_error");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream says")
    );
    // …and a request the upstream refuses is the client's 400, with the upstream's reason.
    let (ct, body) = multipart(
        &[("model", "picky")],
        &[("file", "a.wav", "audio/wav", b"RIFF")],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["message"].as_str()),
        (
            Some("invalid_request"),
            Some("upstream rejected the request: upstream says 400")
        )
    );
}

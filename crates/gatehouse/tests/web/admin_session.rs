//! The admin console's session: cookie flags, server-side expiry and sign-out, CSRF, and the
//! admin rate limit for signed-in consoles.

use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};

use crate::*;

#[tokio::test]
async fn the_admin_session_cookie_is_httponly_strict_and_ends_at_sign_out() {
    let web = start("[web]\nadmin_session_ttl_secs = 600\n", &[]).await;
    // Bad input: a wrong admin key signs nobody in.
    let resp = web
        .client
        .post(web.url("/admin/api/session"))
        .json(&json!({"key": "not-the-key"}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get(SET_COOKIE).is_none());
    assert_eq!(error_of(resp).await, (401, "invalid_api_key".into(), None));

    let resp = web
        .client
        .post(web.url("/admin/api/session"))
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set = set_cookie(resp.headers(), "gh_admin");
    let attrs: Vec<&str> = set.split("; ").skip(1).collect();
    assert_eq!(
        attrs,
        ["Path=/admin", "Max-Age=600", "HttpOnly", "SameSite=Strict"]
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["signed_in"].as_bool(), body["via"].as_str()),
        (Some(true), Some("session"))
    );
    let cookie = set.split(';').next().unwrap().to_owned();

    // Behind an HTTPS proxy the cookie is Secure.
    let resp = web
        .client
        .post(web.url("/admin/api/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie(resp.headers(), "gh_admin").ends_with("; HttpOnly; SameSite=Strict; Secure")
    );

    // The cookie opens the admin API, like the bearer key.
    let with_cookie = web
        .client
        .get(web.url("/admin/api/deployments"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    let with_key = web
        .client
        .get(web.url("/admin/api/deployments"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 200);
    // Bad input: no credential; a forged cookie; a cookie with its expiry pushed out.
    assert_eq!(
        error_of(web.get("/admin/api/deployments").await).await.0,
        401
    );
    for forged in [
        "gh_admin=v1.abc.99999999999999.AAAA".to_owned(),
        cookie.replacen(".1", ".9", 1),
    ] {
        let r = web
            .client
            .get(web.url("/admin/api/deployments"))
            .header("cookie", forged.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            (401, "invalid_api_key".into(), None),
            "{forged}"
        );
    }

    // Signing out clears the cookie and revokes the session on the server.
    let csrf = web
        .client
        .get(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = web
        .client
        .delete(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        set_cookie(out.headers(), "gh_admin").starts_with("gh_admin=; Path=/admin; Max-Age=0;")
    );
    // Bad input: the old cookie, replayed after sign-out.
    let replay = web
        .client
        .get(web.url("/admin/api/deployments"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(replay).await.0, 401);
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_csrf_token_and_the_same_origin() {
    let web = start("", &[]).await;
    let (cookie, csrf) = web.sign_in().await;
    let origin = format!("http://{}", web.host());
    let count = |token: Option<&str>, origin: &str| {
        let mut rb = web
            .client
            .post(web.url("/admin/api/tokens"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({"text": "Hello, world"}));
        if let Some(t) = token {
            rb = rb.header("x-csrf-token", t);
        }
        rb.send()
    };
    // Bad input: no token.
    let r = count(None, &origin).await.unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // Bad input: a token of another session.
    let (_, other) = web.sign_in().await;
    let r = count(Some(&other), &origin).await.unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // Bad input: the right token sent from another site.
    let r = count(Some(&csrf), "https://evil.example").await.unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // The right token from this origin.
    let r = count(Some(&csrf), &origin).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"tokens": 3, "encoding": "o200k_base", "limit": 2000})
    );
    // The bearer key needs no token (no ambient credential to forge).
    let r = web
        .client
        .post(web.url("/admin/api/tokens"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"text": "Hello, world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bad input: signing in from another site (login CSRF).
    let r = web
        .client
        .post(web.url("/admin/api/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // Bad input: sign-out without the token keeps the session.
    let r = web
        .client
        .delete(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let still = web
        .client
        .get(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
}

#[tokio::test]
async fn a_signed_in_console_is_not_held_to_the_admin_rate_limit() {
    let web = start(
        "[limits]\nadmin_requests = 3\nadmin_period_secs = 300\n",
        &[],
    )
    .await;
    // One request of the three: signing in.
    let (cookie, _) = web.sign_in().await;
    for _ in 0..6 {
        let r = web
            .client
            .get(web.url("/admin/api/deployments"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Without a session (the bearer key, or guesses) the limit counts: two more, then 429.
    let bearer = || {
        web.client
            .get(web.url("/admin/api/deployments"))
            .bearer_auth(ADMIN_KEY)
            .send()
    };
    assert_eq!(bearer().await.unwrap().status(), 200);
    assert_eq!(bearer().await.unwrap().status(), 200);
    let r = bearer().await.unwrap();
    assert_eq!(error_of(r).await, (429, "rate_limit_exceeded".into(), None));
}

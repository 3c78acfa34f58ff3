//! Embedded files: content types, ETags and 304s, the pages' policies, and every file the
//! service worker keeps for offline use.

use crate::*;

#[tokio::test]
async fn pages_and_files_have_types_etags_and_revalidate() {
    let web = start("", &[]).await;
    let cases = [
        ("/", "text/html; charset=utf-8"),
        ("/admin", "text/html; charset=utf-8"),
        ("/assets/js/chat/app.js", "text/javascript; charset=utf-8"),
        ("/assets/css/base.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/assets/manifest.webmanifest", "application/manifest+json"),
        ("/assets/vendor/marked/LICENSE", "text/plain; charset=utf-8"),
        ("/favicon.ico", "image/svg+xml"),
    ];
    for (path, ct) in cases {
        let resp = web.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], ct, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let etag = h["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 18, "{path}: {etag}");
        let body = resp.bytes().await.unwrap();
        assert!(!body.is_empty());
        // The same ETag back: 304 without a body.
        let again = web
            .client
            .get(web.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty());
        // Bad input: a stale ETag gets the whole file.
        let stale = web
            .client
            .get(web.url(path))
            .header("if-none-match", "\"0000000000000000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200);
    }
    // Pages carry their own strict policy; the chat page is the chat.
    let page = web.get("/").await;
    // The security layer's UI policy, and the microphone for this origin (voice input).
    let h = page.headers().clone();
    assert_eq!(
        h["content-security-policy"],
        gatehouse::config::access::DEFAULT_UI_CSP
    );
    assert!(
        h["permissions-policy"]
            .to_str()
            .unwrap()
            .contains("microphone=(self)")
    );
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"),
        "{csp}"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<gh-composer id=\"composer\">")
    );
    assert!(
        web.get("/admin")
            .await
            .text()
            .await
            .unwrap()
            .contains("id=\"signin-form\"")
    );
    // The service worker may control the whole origin and carries the UI version.
    let sw = web.get("/assets/sw.js").await;
    assert_eq!(sw.headers()["service-worker-allowed"], "/");
    let sw_text = sw.text().await.unwrap();
    assert!(sw_text.contains(&format!(
        "const VERSION = '{}';",
        gatehouse::web::assets::UI_VERSION
    )));
    // Bad input: unknown files, a path escaping the folder, the unshipped browser tests.
    for path in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/tests/run.sh",
        "/assets/tests/package.json",
    ] {
        let resp = web.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(error_of(resp).await.1, "not_found", "{path}");
    }
}

#[tokio::test]
async fn every_file_the_service_worker_keeps_offline_is_served() {
    let web = start("", &[]).await;
    let sw = web.get("/assets/sw.js").await.text().await.unwrap();
    let shell = sw
        .split("const SHELL = [")
        .nth(1)
        .unwrap()
        .split("];")
        .next()
        .unwrap();
    let mut urls: Vec<String> = shell
        .split('\'')
        .filter(|s| s.starts_with("/assets/") || *s == "/" || *s == "/admin")
        .map(str::to_owned)
        .collect();
    // The highlight.js languages are listed by name.
    let langs = shell
        .split("...['")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    for l in langs.split(',') {
        let l = l
            .trim()
            .trim_matches(|c: char| c == '\'' || c.is_whitespace());
        if !l.is_empty() {
            urls.push(format!("/assets/vendor/highlight/languages/{l}.min.js"));
        }
    }
    assert!(urls.len() > 40, "{urls:?}");
    for url in urls.iter().filter(|u| !u.contains("${")) {
        assert_eq!(web.get(url).await.status(), 200, "{url}");
    }
}

//! The pages a person reads: `/`, `/docs` and its assets, served from the binary with a strict
//! Content-Security-Policy, answering `HEAD` too; and `/docs` really renders the contract in a
//! headless Chromium.

use std::process::Command;
use std::time::Duration;

use crate::helpers::{say, Backend, TestApp};

const ASSETS: &[(&str, &str)] = &[
    ("/docs/assets/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("/docs/assets/swagger-ui.css", "text/css; charset=utf-8"),
    ("/docs/assets/init.js", "text/javascript; charset=utf-8"),
    ("/docs/assets/LICENSE", "text/plain; charset=utf-8"),
];

async fn pages_and_assets_are_served(app: TestApp) {
    let landing = app.call("GET", "/", None, None, &[]).await.expect(200);
    assert_eq!(landing.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    let csp = landing.header("content-security-policy").expect("a policy on /");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    // Japanese first, English below; it says where to go.
    let ja = landing.text.find("在宅療養連携ノート").expect("Japanese");
    let en = landing.text.find("Where to go").expect("English");
    assert!(ja < en);
    for link in ["href=\"/docs\"", "href=\"/api-spec/openapi.yaml\"", "A day in Kawasaki"] {
        assert!(landing.text.contains(link), "{link}");
    }

    let docs = app.call("GET", "/docs", None, None, &[]).await.expect(200);
    let csp = docs.header("content-security-policy").expect("a policy on /docs");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(docs.header("cache-control").as_deref(), Some("public, max-age=300"));
    assert!(docs.text.contains("/docs/assets/swagger-ui-bundle.js"));
    assert!(!docs.text.contains("https://"), "no CDN: {}", docs.text);

    for (path, content_type) in ASSETS {
        let res = app.call("GET", path, None, None, &[]).await.expect(200);
        assert_eq!(res.header("content-type").as_deref(), Some(*content_type), "{path}");
        assert_eq!(res.header("cache-control").as_deref(), Some("public, max-age=86400"), "{path}");
        assert_eq!(res.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        let etag = res.header("etag").expect("etag");
        let again = app.call("GET", path, None, None, &[("if-none-match", &etag)]).await.expect(304);
        assert!(again.text.is_empty());
        assert_eq!(again.header("etag"), Some(etag));
    }
    let bundle = app.call("GET", "/docs/assets/swagger-ui-bundle.js", None, None, &[]).await;
    assert!(bundle.text.len() > 1_000_000, "the whole bundle is built in");
    let license = app.call("GET", "/docs/assets/LICENSE", None, None, &[]).await;
    assert!(license.text.contains("Apache License"));
}

/// `HEAD` answers with the headers of `GET` and no body, for the pages, the assets and the
/// contract (which answered 405 before).
async fn head_works(app: TestApp) {
    let mut paths: Vec<&str> = vec!["/", "/docs", "/api-spec/openapi.yaml"];
    paths.extend(ASSETS.iter().map(|(p, _)| *p));
    for path in paths {
        let get = app.call("GET", path, None, None, &[]).await.expect(200);
        let head = app.call("HEAD", path, None, None, &[]).await.expect(200);
        assert!(head.text.is_empty(), "{path}");
        assert_eq!(head.header("content-type"), get.header("content-type"), "{path}");
        assert_eq!(head.header("content-length"), Some(get.text.len().to_string()), "{path}");
        assert_eq!(head.header("cache-control"), get.header("cache-control"), "{path}");
    }
    // Other methods on a page are still refused as problems.
    let res = app.call("POST", "/docs", None, None, &[]).await.expect(405);
    assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD"));
}

pub fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .map(str::to_string)
        .find(|name| Command::new(name).arg("--version").output().map(|o| o.status.success()).unwrap_or(false))
}

/// A real browser loads `/docs` under its Content-Security-Policy and Swagger UI renders the
/// contract's operations: if the policy blocked a script or a style, nothing would render.
async fn docs_render_in_a_browser(app: TestApp) {
    let Some(browser) = chromium() else {
        if std::env::var("RENKEI_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("RENKEI_REQUIRE_BROWSER=1 but chromium was not found (apt-get install -y chromium)");
        }
        say("\n*** chromium not found: skipped the /docs browser test (apt-get install -y chromium). ***\n");
        return;
    };
    let profile = tempfile::tempdir().expect("profile dir");
    let url = app.url("/docs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                // Swagger UI virtualises a list of 150 tags and operations or more, drawing only
                // those in the viewport: a window tall enough for all of them renders them all.
                "--window-size=1280,30000",
                "--virtual-time-budget=20000",
                "--run-all-compositor-stages-before-draw",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(url)
            .output()
            .expect("run chromium")
    });
    let out = tokio::time::timeout(Duration::from_secs(120), out).await.expect("chromium finishes").expect("join");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    // Rendered operations: Swagger UI's operation blocks with the contract's paths and summaries.
    assert!(dom.contains("opblock"), "no operation rendered; DOM: {:.2000}", dom);
    for text in ["/api/v1/auth/login", "/api/v1/patients/{id}/fhir", "/api/v1/wards/{code}/caseload"] {
        assert!(dom.contains(text), "{text} not rendered");
    }
    assert!(dom.contains("Sign in"), "the login operation's summary is rendered");
}

crate::both_backends!(pages_and_assets_are_served, head_works);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_render_in_chromium() {
    docs_render_in_a_browser(TestApp::spawn(Backend::Sqlite).await).await
}

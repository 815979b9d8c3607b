//! The pages a person reads: a landing page at `/` and the API reference at `/docs`, which
//! renders `api-spec/openapi.yaml` with Swagger UI. Everything is built into the binary (no CDN:
//! a clinic's network may reach nothing outside, and a page must not load code we did not ship).
//!
//! Swagger UI is vendored from the npm package `swagger-ui-dist` 5.35.0 (`npm pack
//! swagger-ui-dist@5`), only the three files it needs: `swagger-ui-bundle.js`, `swagger-ui.css`
//! and its `LICENSE` (Apache-2.0), in `src/docs/assets/`. To upgrade, pack the new version, copy
//! the same three files and change [`SWAGGER_UI_VERSION`].

pub mod handlers;

use std::sync::LazyLock;

use base64::Engine;
use sha2::{Digest, Sha256};

/// The vendored Swagger UI release.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// One file served under `/docs/assets/`: its bytes, content type and a strong ETag of its
/// content, so a browser revalidates cheaply after the day it may keep the file.
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    pub etag: String,
}

impl Asset {
    pub fn new(bytes: &'static [u8], content_type: &'static str) -> Asset {
        let digest = Sha256::digest(bytes);
        Asset { bytes, content_type, etag: format!("\"{}\"", hex::encode(&digest[..16])) }
    }
}

pub static SWAGGER_UI_BUNDLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("assets/swagger-ui-bundle.js"), "text/javascript; charset=utf-8"));
pub static SWAGGER_UI_CSS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("assets/swagger-ui.css"), "text/css; charset=utf-8"));
pub static SWAGGER_UI_LICENSE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("assets/LICENSE"), "text/plain; charset=utf-8"));
/// Our own start-up script: an inline script would need `'unsafe-inline'` in the policy.
pub static DOCS_INIT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(DOCS_INIT_JS.as_bytes(), "text/javascript; charset=utf-8"));

const DOCS_INIT_JS: &str = r##"// Renders the contract served by this same server. No validator badge: it would send the
// document to an outside service.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api-spec/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"##;

/// `/docs`: the frame Swagger UI renders into.
pub const DOCS_HTML: &str = r#"<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API リファレンス — 在宅療養連携ノート (Renkei Note)</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<noscript>この画面の表示には JavaScript が必要です。契約そのものは <a href="/api-spec/openapi.yaml">/api-spec/openapi.yaml</a> にあります。
This page needs JavaScript; the contract itself is at <a href="/api-spec/openapi.yaml">/api-spec/openapi.yaml</a>.</noscript>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"#;

const LANDING_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.7;color:#222}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}code{background:#f2f2f2;padding:0 .2rem}hr{margin:2.5rem 0}";

/// `/`: what this is and where to go, Japanese first, English below.
pub static LANDING_HTML: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>在宅療養連携ノート (Renkei Note)</title>
<style>{LANDING_STYLE}</style>
</head>
<body>
<h1>在宅療養連携ノート</h1>
<p>在宅で療養する患者さんを支える在宅医・訪問看護師・薬剤師・ケアマネジャーなど、所属の違う専門職が
患者さんごとに一つの記録を共有するための REST API サーバーです。訪問記録とバイタルサイン、ケアチーム、
本人同意、入退院調整、急性増悪のメール通知、区の在宅療養調整医師のケースロードを扱います。
患者さんの記録を見られるのは、その患者さんのケアチームの人だけです（システム管理者も含め、管理者は患者情報を見ません）。</p>
<h2>どこから始めるか</h2>
<ul>
<li><a href="/docs">API リファレンス (/docs)</a> — すべての操作、項目、エラーの一覧</li>
<li><a href="/api-spec/openapi.yaml">API 契約 (/api-spec/openapi.yaml)</a> — OpenAPI 3.1 の原本</li>
<li>リポジトリの <code>README.md</code> の「A day in Kawasaki」— 川崎の一日を通して試す手順（<code>docs/walkthrough.sh</code> でそのまま実行できます）</li>
<li>最初のシステム管理者: <code>renkei admin create --email E --name N --password-stdin</code></li>
</ul>
<hr>
<h1 lang="en">Renkei Note</h1>
<div lang="en">
<p>A REST API server with which the professionals around a patient cared for at home — home physician,
visiting nurse, pharmacist, care manager and others, working for different organisations — share one
record per patient: visit notes with vital signs, the care team, consent, hospital discharge coordination,
e-mail alerts on acute deterioration, and the ward coordinating physicians' caseload. Only the patient's
care team sees the patient's record (administrators, the system administrator included, see no patient data).</p>
<h2>Where to go</h2>
<ul>
<li><a href="/docs">API reference (/docs)</a> — every operation, field and error</li>
<li><a href="/api-spec/openapi.yaml">API contract (/api-spec/openapi.yaml)</a> — the OpenAPI 3.1 document itself</li>
<li>The repository's <code>README.md</code>, section “A day in Kawasaki” — a walk-through of one day (runnable as <code>docs/walkthrough.sh</code>)</li>
<li>The first system administrator: <code>renkei admin create --email E --name N --password-stdin</code></li>
</ul>
</div>
</body>
</html>
"#
    )
});

/// The policy of `/`: nothing but its own inline style (pinned by hash) and same-origin links.
pub static LANDING_CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(LANDING_STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
});

/// The policy of `/docs`: scripts and styles from this server only, requests ("Try it out") to
/// this server only. Swagger UI's icons are `data:` images inside its stylesheet.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

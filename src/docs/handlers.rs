//! `/`, `/docs` and `/docs/assets/…`. Each answers `GET` and `HEAD` (actix sends the headers of
//! the same answer without its body).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use super::{Asset, DOCS_CSP, DOCS_HTML, DOCS_INIT, LANDING_CSP, LANDING_HTML};
use super::{SWAGGER_UI_BUNDLE, SWAGGER_UI_CSS, SWAGGER_UI_LICENSE};

/// A page changes with the binary: a browser may keep it five minutes, like the contract.
const PAGE_CACHE: &str = "public, max-age=300";
/// An asset may be kept a day; after that the ETag makes revalidation a 304.
const ASSET_CACHE: &str = "public, max-age=86400";

fn page(body: &'static str, csp: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, PAGE_CACHE))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

pub fn asset(req: &HttpRequest, asset: &'static Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == asset.etag || tag.trim() == "*");
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if fresh {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, ASSET_CACHE))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE))
        .insert_header((header::ETAG, etag))
        .body(asset.bytes)
}

/// `GET /`: what this is and where to go.
pub async fn landing() -> HttpResponse {
    page(LANDING_HTML.as_str(), LANDING_CSP.as_str())
}

/// `GET /docs`: the API reference.
pub async fn reference() -> HttpResponse {
    page(DOCS_HTML, DOCS_CSP)
}

/// `GET /docs/assets/swagger-ui-bundle.js`.
pub async fn swagger_ui_bundle(req: HttpRequest) -> HttpResponse {
    asset(&req, &SWAGGER_UI_BUNDLE)
}

/// `GET /docs/assets/swagger-ui.css`.
pub async fn swagger_ui_css(req: HttpRequest) -> HttpResponse {
    asset(&req, &SWAGGER_UI_CSS)
}

/// `GET /docs/assets/init.js`.
pub async fn init_js(req: HttpRequest) -> HttpResponse {
    asset(&req, &DOCS_INIT)
}

/// `GET /docs/assets/LICENSE`: Swagger UI's licence, shipped with its code.
pub async fn swagger_ui_license(req: HttpRequest) -> HttpResponse {
    asset(&req, &SWAGGER_UI_LICENSE)
}

//! The dashboard at `/`: one page, its script and its style sheet, compiled
//! into the binary. The page fetches nothing but this server's own API, and a
//! Content-Security-Policy header makes the browser refuse anything else, so
//! it works offline and from a machine without Internet access.

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// Only this server, only its own files and API; no inline script, no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) async fn index() -> Response {
    page(INDEX_HTML, "text/html; charset=utf-8")
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => page(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => page(STYLE_CSS, "text/css; charset=utf-8"),
        _ => ApiError::new(StatusCode::NOT_FOUND, format!("no dashboard file {file:?}")).into_response(),
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_name_no_other_host() {
        for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("style.css", STYLE_CSS)] {
            for scheme in ["http:", "https:", "ws:", "wss:", "@import"] {
                assert!(!text.contains(scheme), "{name} contains {scheme}");
            }
        }
        assert!(
            INDEX_HTML.contains("src=\"/dashboard/app.js\"") && INDEX_HTML.contains("href=\"/dashboard/style.css\"")
        );
    }
}

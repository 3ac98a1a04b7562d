//! Every error the API returns: a status code and `{"error": "..."}`.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use maph_core::Error;

use crate::routes::AppState;

/// An HTTP error with a JSON body `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// What went wrong and, where it helps, what to do.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with the exact text maph v3 clients look for.
    pub fn store_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Store not found")
    }

    /// 404 with the exact text maph v3 clients look for.
    pub fn key_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Key not found")
    }

    /// 503: the server is stopping and takes no more writes.
    pub fn shutting_down() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down; retry against its successor")
    }

    /// 500 for a failure that is the server's, not the client's.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<Error> for ApiError {
    /// Maps a store error to the status a client can act on. maph-core's
    /// messages already say what to do, so they are passed on unchanged.
    fn from(error: Error) -> ApiError {
        let status = match &error {
            Error::KeyTooLarge { .. } | Error::ValueTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TableFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            Error::InvalidConfig(_) => StatusCode::BAD_REQUEST,
            // Another process writes this store: a conflict the operator resolves.
            Error::WriterBusy { .. } | Error::StrategyMismatch { .. } => StatusCode::CONFLICT,
            // Transient: a write in progress or a swap the server is finishing.
            Error::SlotBusy { .. } | Error::Retired { .. } | Error::LockTimeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_error_response(self.status, &self.message)
    }
}

/// A response with `status` and the body `{"error": message}`.
pub(crate) fn json_error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The largest error body read to rewrite it (errors are a sentence or two).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware: every error response leaves as JSON, and only an error whose
/// request body was left unread closes the connection.
///
/// - Any error that is not JSON yet (axum's own rejections for a bad path, a
///   405, a body over the limit) is rewritten as `{"error": "..."}`, so every
///   error a client sees has the same shape.
/// - An error answered before the request body was read (a bad store name, a
///   missing token) leaves that body in the connection; hyper then drops the
///   connection, and a client that reuses it from its pool sees a reset on its
///   *next* request. `Connection: close` says so up front. An error answered
///   after the body was read whole (a 404 key, a 413 value, a 507) keeps the
///   connection open like any other answer.
pub(crate) async fn json_errors(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    let (request, body_read) = if has_body { track_body(request) } else { (request, Arc::new(AtomicBool::new(true))) };
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let mut response = as_json(response, app.registry.dir()).await;
    // Acquire: pairs with the Release store of the body's last frame.
    if !body_read.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Replaces the request's body by one that raises a flag once it has been read
/// to its end.
fn track_body(request: Request) -> (Request, Arc<AtomicBool>) {
    let done = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let tracked = TrackedBody { inner: body, done: done.clone() };
    (Request::from_parts(parts, Body::new(tracked)), done)
}

/// A request body that records when it has been read to its end.
struct TrackedBody {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream();
        if ended {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `response` with a JSON body `{"error": ...}` whose message names no path
/// inside `data_dir` by more than its file name.
async fn as_json(response: Response, data_dir: &Path) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let message = if is_json {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        parsed.and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
    } else {
        Some(String::from_utf8_lossy(&bytes).trim().to_string())
    };
    let message =
        message.filter(|t| !t.is_empty()).unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut rewritten = json_error_response(status, &redact(data_dir, &message));
    // Keep headers such as `Allow` (405) and `WWW-Authenticate` (401).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}

/// `text` with every path inside `data_dir` shortened to its name inside it:
/// clients are not told where the server keeps its files.
pub(crate) fn redact(data_dir: &Path, text: &str) -> String {
    let mut prefix = data_dir.display().to_string();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    text.replace(&prefix, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_store_errors_to_statuses() {
        let cases = [
            (Error::KeyTooLarge { len: 600, max: 480 }, StatusCode::PAYLOAD_TOO_LARGE),
            (Error::ValueTooLarge { len: 600, max: 470 }, StatusCode::PAYLOAD_TOO_LARGE),
            (Error::TableFull { probes: 10 }, StatusCode::INSUFFICIENT_STORAGE),
            (Error::WriterBusy { pid: Some(7) }, StatusCode::CONFLICT),
            (Error::InvalidConfig("slot count is 0".into()), StatusCode::BAD_REQUEST),
            (Error::ReadOnly, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            let api = ApiError::from(error);
            assert_eq!(api.status, status, "{text}");
            assert_eq!(api.message, text);
        }
    }

    #[test]
    fn paths_in_the_data_directory_are_shortened() {
        let dir = Path::new("/srv/maph/data");
        assert_eq!(redact(dir, "could not open /srv/maph/data/users.maph (gone)"), "could not open users.maph (gone)");
        assert_eq!(redact(Path::new("/srv/maph/data/"), "/srv/maph/data/x.maph"), "x.maph");
        assert_eq!(redact(dir, "/srv/maph/database.maph"), "/srv/maph/database.maph", "only inside the directory");
    }

    #[test]
    fn limits_appear_in_too_large_messages() {
        let api = ApiError::from(Error::ValueTooLarge { len: 600, max: 470 });
        assert!(api.message.contains("470"), "{}", api.message);
    }
}

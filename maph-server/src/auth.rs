//! The optional bearer token: when set, every request that may change
//! something must carry it. Reads (GET, HEAD, and a batch `mget`) never need it.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::AppState;

/// Middleware: refuses a write without the right `Authorization: Bearer` header
/// before its body is read. `POST /stores/{name}/batch` passes through: whether
/// it writes depends on its body, so its handler calls [`check_token`] itself.
pub(crate) async fn require_token_for_writes(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let reads_only = matches!(*request.method(), Method::GET | Method::HEAD);
    if reads_only || is_batch(request.uri().path()) {
        return next.run(request).await;
    }
    match check_token(app.token.as_deref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// `/stores/{name}/batch`, the one route whose handler checks the token itself.
fn is_batch(path: &str) -> bool {
    path.strip_prefix("/stores/").and_then(|rest| rest.strip_suffix("/batch")).is_some_and(|name| !name.contains('/'))
}

/// Passes when the server has no token or `headers` carry it; otherwise a 401
/// that says what to send, with `WWW-Authenticate: Bearer`.
pub(crate) fn check_token(token: Option<&str>, headers: &HeaderMap) -> Result<(), Refused> {
    let Some(token) = token else { return Ok(()) };
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_credentials);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(Refused("the bearer token is wrong")),
        None => Err(Refused("this server requires a token for writes: send 'Authorization: Bearer <token>'")),
    }
}

/// A request refused for its token.
#[derive(Debug)]
pub(crate) struct Refused(&'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, self.0).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The credentials of an `Authorization` value in the Bearer scheme. The
/// scheme name is case-insensitive (RFC 7235 section 2.1) and separated from
/// the token by one or more spaces.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Compares without an early exit, so response time does not tell an attacker
/// how many leading bytes of a guess were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_is_not() {
        for value in ["Bearer tok", "bearer tok", "BEARER tok", "BeArEr   tok", "  Bearer tok  "] {
            assert_eq!(bearer_credentials(value), Some("tok"), "{value:?}");
        }
        for value in ["Basic tok", "Bearertok", "Bearer", "", "tok"] {
            assert_eq!(bearer_credentials(value), None, "{value:?}");
        }
        assert_eq!(bearer_credentials("bearer TOK"), Some("TOK"));
    }

    #[test]
    fn only_the_batch_route_passes_to_its_handler() {
        assert!(is_batch("/stores/users/batch"));
        assert!(!is_batch("/stores/users/keys/batch"));
        assert!(!is_batch("/stores/batch"));
        assert!(!is_batch("/stores/users/optimize"));
    }
}

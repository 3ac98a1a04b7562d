//! The optional bearer token: when set, every request that may change
//! something (any method but GET and HEAD) must carry it.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::AppState;

/// Middleware: refuses a write without the right `Authorization: Bearer` header
/// before its body is read.
pub(crate) async fn require_token_for_writes(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = app.token.as_deref() else { return next.run(request).await };
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let message = match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => return next.run(request).await,
        Some(_) => "the bearer token is wrong",
        None => "this server requires a token for writes: send 'Authorization: Bearer <token>'",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
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
    use super::constant_time_eq;

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(constant_time_eq(b"", b""));
    }
}

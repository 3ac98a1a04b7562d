//! The HTTP API: the router, the state every handler reaches, and what the
//! handlers share. The shapes are maph v3's, so its clients work unchanged;
//! see the crate docs for the table.

mod batch;
mod keys;
mod stats;
mod stores;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use maph_core::{Error, Store};
use serde_json::{json, Value};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::require_token_for_writes;
use crate::error::{json_errors, ApiError};
use crate::metrics::HttpMetrics;
use crate::registry::{NewStore, Registry};
use crate::served::ServedStore;
use crate::StoreName;

pub(crate) use stats::StoreReport;

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub registry: Arc<Registry>,
    pub token: Option<Arc<str>>,
    pub defaults: NewStore,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub http: Arc<HttpMetrics>,
}

impl AppState {
    /// The served store `name`, for a read: never opens anything.
    fn lookup(&self, name: &StoreName) -> Result<Arc<ServedStore>, ApiError> {
        self.registry.lookup(name)
    }

    /// The served store `name`, for a write: serves a store file that appeared
    /// since start. Opening a file is blocking, so it runs off the runtime.
    async fn lookup_for_write(&self, name: &StoreName) -> Result<Arc<ServedStore>, ApiError> {
        if let Ok(served) = self.registry.lookup(name) {
            return Ok(served);
        }
        let registry = self.registry.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || registry.lookup_for_write(&name)).await.map_err(joined)?
    }
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::dashboard::index))
        .route("/dashboard/{file}", get(crate::dashboard::asset))
        .route("/health", get(stores::health))
        .route("/stats", get(stats::server_stats))
        .route("/metrics", get(stats::prometheus))
        .route("/rescan", post(stores::rescan))
        .route("/stores", get(stores::list_stores).post(stores::create_without_name))
        .route("/stores/{name}", post(stores::create_store))
        .route("/stores/{name}/stats", get(stats::store_stats))
        .route("/stores/{name}/optimize", post(stores::optimize_store))
        .route("/stores/{name}/batch", post(batch::batch))
        .route("/stores/{name}/keys", get(keys::list_keys))
        .route("/stores/{name}/keys/{*key}", get(keys::get_key).put(keys::put_key).delete(keys::delete_key))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: the body cap applies when a handler reads the body,
        // after the token check; every error leaves as JSON; every request is
        // counted under the route it matched.
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), require_token_for_writes))
        .layer(middleware::from_fn_with_state(state.clone(), json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// Middleware: counts each request by method, matched route and status, and
/// its latency by route, for `/metrics` and `/stats`.
async fn count_request(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = next.run(request).await;
    app.http.record(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// The `{name}` (and `{key}`) of a request path, checked.
pub(crate) struct Target {
    name: StoreName,
    key: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let name = params.remove("name").ok_or_else(|| ApiError::bad_request("the path names no store"))?;
        let name = StoreName::parse(&name).map_err(ApiError::bad_request)?;
        Ok(Target { name, key: params.remove("key") })
    }
}

impl Target {
    fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }
}

/// Refuses, before it is queued, a write whose key or value cannot fit a slot
/// of `store` (so it never joins, and fails, a group). Slot sizes never change
/// when a store grows, so the check holds for the file the write lands in.
fn check_fits(store: &Store, key: &[u8], value: &[u8]) -> Result<(), ApiError> {
    let max_key = store.max_key_len();
    if key.len() > max_key {
        return Err(Error::KeyTooLarge { len: key.len(), max: max_key }.into());
    }
    let max_value = store.max_value_len(key.len());
    if value.len() > max_value {
        return Err(Error::ValueTooLarge { len: value.len(), max: max_value }.into());
    }
    Ok(())
}

async fn unknown_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Not found: the routes are / (the dashboard), /health, /stats, /metrics, /rescan, /stores, \
         /stores/{name}, /stores/{name}/stats, /stores/{name}/optimize, /stores/{name}/batch, \
         /stores/{name}/keys and /stores/{name}/keys/{key}",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed on this route")
}

/// `{"key", "value"}`; a value that is not UTF-8 comes as `value_base64`
/// (with `value: null`), since JSON strings cannot hold arbitrary bytes.
fn value_json(key: &str, value: Vec<u8>) -> Value {
    match String::from_utf8(value) {
        Ok(text) => json!({ "key": key, "value": text }),
        Err(e) => json!({
            "key": key,
            "value": null,
            "value_base64": base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
        }),
    }
}

fn body_rejection(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this server's limit of {limit} bytes (--max-body-bytes)"),
        )
    } else {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

fn joined(error: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("a background task failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_values_travel_as_base64() {
        assert_eq!(value_json("k", b"hi".to_vec()), json!({"key": "k", "value": "hi"}));
        let v = value_json("k", vec![0xff, 0x00]);
        assert_eq!(v["value"], Value::Null);
        assert_eq!(v["value_base64"], "/wA=");
    }
}

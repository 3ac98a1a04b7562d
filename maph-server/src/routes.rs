//! The HTTP API: the routes and handlers. The shapes are maph v3's, so its
//! clients work unchanged; see the crate docs for the table.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use base64::Engine;
use maph_core::Error;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::require_token_for_writes;
use crate::error::{json_errors, ApiError};
use crate::registry::{NewStore, Registry};
use crate::served::ServedStore;
use crate::writer::{WriteOp, WriteOutcome};
use crate::StoreName;

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub registry: Arc<Registry>,
    pub token: Option<Arc<str>>,
    pub defaults: NewStore,
    pub max_body_bytes: usize,
}

impl AppState {
    /// The served store `name`; a miss may open a new file, so it runs off the runtime.
    async fn lookup(&self, name: &StoreName) -> Result<Arc<ServedStore>, ApiError> {
        let registry = self.registry.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || registry.lookup(&name)).await.map_err(joined)?
    }
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/stores", get(list_stores).post(create_without_name))
        .route("/stores/{name}", post(create_store))
        .route("/stores/{name}/stats", get(store_stats))
        .route("/stores/{name}/optimize", post(optimize_store))
        .route("/stores/{name}/keys/{*key}", get(get_key).put(put_key).delete(delete_key))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: the body cap applies when a handler reads the body,
        // after the token check, and every error leaves as JSON.
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), require_token_for_writes))
        .layer(middleware::from_fn(json_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The `{name}` (and `{key}`) of a request path, checked.
struct Target {
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

async fn health(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "stores": app.registry.list().len() }))
}

async fn list_stores(State(app): State<AppState>) -> Json<Value> {
    let stores: Vec<Value> = app
        .registry
        .list()
        .iter()
        .map(|served| {
            let store = served.current();
            json!({ "name": served.name().as_str(), "size": store.len(), "load_factor": store.load_factor() })
        })
        .collect();
    Json(Value::Array(stores))
}

async fn create_without_name() -> ApiError {
    ApiError::bad_request("Store creation requires a name: POST /stores/{name}")
}

/// Size of a new store, from the query string or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    slots: Option<u64>,
    slot_size: Option<u32>,
}

async fn create_store(
    State(app): State<AppState>,
    target: Target,
    query: Result<Query<CreateParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(from_query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body = body.map_err(|e| body_rejection(e, app.max_body_bytes))?;
    let from_body: CreateParams = if body.iter().all(u8::is_ascii_whitespace) {
        CreateParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be empty or JSON like {{\"slots\": 10000, \"slot_size\": 512}}: {e}"
            ))
        })?
    };
    let size = NewStore {
        slots: from_body.slots.or(from_query.slots).unwrap_or(app.defaults.slots),
        slot_size: from_body.slot_size.or(from_query.slot_size).unwrap_or(app.defaults.slot_size),
    };
    let registry = app.registry.clone();
    let name = target.name.clone();
    let served = tokio::task::spawn_blocking(move || registry.create(&name, size)).await.map_err(joined)??;
    let store = served.current();
    let body = json!({
        "success": true,
        "message": "Store created",
        "name": served.name().as_str(),
        "slots": store.slot_count(),
        "slot_size": store.layout().slot_size,
        "path": served.path,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn store_stats(State(app): State<AppState>, target: Target) -> Result<Json<Value>, ApiError> {
    let served = app.lookup(&target.name).await?;
    let store = served.current();
    let stats = store.stats();
    Ok(Json(json!({
        "name": served.name().as_str(),
        "size": stats.len,
        "load_factor": stats.load_factor,
        "slots": stats.layout.slot_count,
        "slot_size": stats.layout.slot_size,
        "max_probes": stats.layout.max_probes,
        "max_key_bytes": store.max_key_len(),
        "strategy": stats.strategy().as_str(),
        "generation": stats.generation,
        "highest_fence": stats.highest_fence,
        "file_bytes": stats.file_bytes,
        "path": served.path,
        "writer": served.shared.stats.snapshot(),
    })))
}

async fn optimize_store(State(app): State<AppState>, target: Target) -> Result<Json<Value>, ApiError> {
    let served = app.lookup(&target.name).await?;
    let report = served.optimize().await?;
    let mut body = serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?;
    body["success"] = json!(true);
    body["message"] = json!("Store optimized");
    Ok(Json(body))
}

async fn get_key(State(app): State<AppState>, target: Target, headers: HeaderMap) -> Result<Response, ApiError> {
    let served = app.lookup(&target.name).await?;
    // A lock-free read straight from the mapping, on this runtime thread.
    let value = served.current().get(target.key().as_bytes())?.ok_or_else(ApiError::key_not_found)?;
    if wants_raw_bytes(&headers) {
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response());
    }
    Ok(Json(value_json(target.key(), value)).into_response())
}

async fn put_key(
    State(app): State<AppState>,
    target: Target,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let served = app.lookup(&target.name).await?;
    let value = body.map_err(|e| body_rejection(e, app.max_body_bytes))?;
    let key = target.key().as_bytes();
    // Check sizes here, so a write that cannot fit never joins (and fails) a group.
    let store = served.current();
    let max_key = store.max_key_len();
    if key.len() > max_key {
        return Err(Error::KeyTooLarge { len: key.len(), max: max_key }.into());
    }
    let max_value = store.max_value_len(key.len());
    if value.len() > max_value {
        return Err(Error::ValueTooLarge { len: value.len(), max: max_value }.into());
    }
    drop(store);
    let outcome = served.write(WriteOp::Set { key: key.to_vec(), value: value.to_vec() }).await?;
    let (status, message) = match outcome {
        WriteOutcome::Created => (StatusCode::CREATED, "Key created"),
        _ => (StatusCode::OK, "Key updated"),
    };
    Ok((status, Json(json!({ "success": true, "message": message, "key": target.key() }))).into_response())
}

async fn delete_key(State(app): State<AppState>, target: Target) -> Result<StatusCode, ApiError> {
    let served = app.lookup(&target.name).await?;
    match served.write(WriteOp::Remove { key: target.key().as_bytes().to_vec() }).await? {
        WriteOutcome::Removed => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::key_not_found()),
    }
}

async fn unknown_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Not found: the routes are /health, /stores, /stores/{name}, /stores/{name}/stats, \
         /stores/{name}/optimize and /stores/{name}/keys/{key}",
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

/// Whether the client asked for the raw value (`Accept: application/octet-stream`).
fn wants_raw_bytes(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("application/octet-stream")))
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

    #[test]
    fn raw_bytes_only_when_asked() {
        let mut h = HeaderMap::new();
        assert!(!wants_raw_bytes(&h));
        h.insert(header::ACCEPT, "text/html, application/octet-stream;q=0.9".parse().unwrap());
        assert!(wants_raw_bytes(&h));
    }
}

//! Stores as a whole: health, listing, create, optimize, rescan.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body_rejection, joined, AppState, Target};
use crate::error::ApiError;
use crate::registry::NewStore;

pub(super) async fn health(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "stores": app.registry.list().len() }))
}

pub(super) async fn list_stores(State(app): State<AppState>) -> Json<Value> {
    let stores: Vec<Value> = app
        .registry
        .list()
        .iter()
        .map(|served| {
            let store = served.mapping().store.clone();
            json!({ "name": served.name().as_str(), "size": store.len(), "load_factor": store.load_factor() })
        })
        .collect();
    Json(Value::Array(stores))
}

pub(super) async fn create_without_name() -> ApiError {
    ApiError::bad_request("Store creation requires a name: POST /stores/{name}")
}

/// Size of a new store, from the query string or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateParams {
    slots: Option<u64>,
    slot_size: Option<u32>,
}

pub(super) async fn create_store(
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
    let store = served.mapping().store.clone();
    let body = json!({
        "success": true,
        "message": "Store created",
        "name": served.name().as_str(),
        "slots": store.slot_count(),
        "slot_size": store.layout().slot_size,
        "file": served.name().file_name(),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn optimize_store(State(app): State<AppState>, target: Target) -> Result<Json<Value>, ApiError> {
    let served = app.lookup_for_write(&target.name).await?;
    let report = served.optimize().await?;
    let mut body = serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?;
    body["success"] = json!(true);
    body["message"] = json!("Store optimized");
    Ok(Json(body))
}

/// `POST /rescan`: serves every store file that appeared in the data directory
/// since start. A write: it takes leases (and may repair), so a token guards it.
pub(super) async fn rescan(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let registry = app.registry.clone();
    let report = tokio::task::spawn_blocking(move || registry.rescan()).await.map_err(joined)??;
    Ok(Json(serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?))
}

//! `POST /stores/{name}/batch`: maph v3's `mset`, plus `mget` and `mdel`.
//!
//! - `{"operation": "mset", "pairs": [{"key": "k", "value": "v"}, ...]}`: one
//!   commit, all or nothing. A value that is not a JSON string is stored as its
//!   JSON text; `"value_base64"` instead of `"value"` stores raw bytes.
//! - `{"operation": "mget", "keys": ["k", ...]}`: one lock-free read pass over
//!   one mapping; needs no token.
//! - `{"operation": "mdel", "keys": ["k", ...]}`: one commit.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::{body_rejection, check_fits, value_json, AppState, Target};
use crate::auth::check_token;
use crate::error::ApiError;
use crate::writer::{WriteOp, WriteOutcome};

const SHAPE: &str = "send {\"operation\": \"mset\", \"pairs\": [{\"key\": \"k\", \"value\": \"v\"}]}, \
                     {\"operation\": \"mget\", \"keys\": [\"k\"]} or {\"operation\": \"mdel\", \"keys\": [\"k\"]}";

pub(super) async fn batch(
    State(app): State<AppState>,
    target: Target,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(e, app.max_body_bytes))?;
    let request: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a JSON object ({e}): {SHAPE}")))?;
    let operation = request.get("operation").and_then(Value::as_str).unwrap_or_default();
    let writes = match operation {
        "mget" => false,
        "mset" | "mdel" => true,
        _ => return Err(ApiError::bad_request(format!("unknown or missing \"operation\": {SHAPE}"))),
    };
    if writes {
        if let Err(refused) = check_token(app.token.as_deref(), &headers) {
            return Ok(refused.into_response());
        }
    }
    let field = if operation == "mset" { "pairs" } else { "keys" };
    let items = request
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request(format!("\"{operation}\" needs a \"{field}\" array: {SHAPE}")))?;
    if items.len() > app.max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the batch has {} items, above this server's limit of {} (--max-batch); split it",
                items.len(),
                app.max_batch
            ),
        ));
    }
    match operation {
        "mset" => mset(&app, &target, items).await,
        "mdel" => mdel(&app, &target, items).await,
        _ => mget(&app, &target, items).await,
    }
}

async fn mset(app: &AppState, target: &Target, pairs: &[Value]) -> Result<Response, ApiError> {
    let ops = pairs.iter().enumerate().map(|(i, pair)| parse_pair(i, pair)).collect::<Result<Vec<_>, _>>()?;
    let served = app.lookup_for_write(&target.name).await?;
    let store = served.mapping().store.clone();
    for (i, op) in ops.iter().enumerate() {
        if let WriteOp::Set { key, value } = op {
            check_fits(&store, key, value).map_err(|e| at_item(i, e))?;
        }
    }
    drop(store);
    let outcomes = if ops.is_empty() { Vec::new() } else { served.write_batch(ops).await? };
    let created = outcomes.iter().filter(|o| **o == WriteOutcome::Created).count();
    let body = json!({
        "success": true,
        "operation": "mset",
        "count": outcomes.len(),
        "created": created,
        "updated": outcomes.len() - created,
    });
    Ok(Json(body).into_response())
}

async fn mdel(app: &AppState, target: &Target, keys: &[Value]) -> Result<Response, ApiError> {
    let keys = parse_keys(keys)?;
    let served = app.lookup_for_write(&target.name).await?;
    let ops: Vec<_> = keys.iter().map(|k| WriteOp::Remove { key: k.as_bytes().to_vec() }).collect();
    let outcomes = if ops.is_empty() { Vec::new() } else { served.write_batch(ops).await? };
    let missing: Vec<&str> = keys
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == WriteOutcome::Absent)
        .map(|(k, _)| k.as_str())
        .collect();
    let body = json!({
        "success": true,
        "operation": "mdel",
        "count": outcomes.len() - missing.len(),
        "missing": missing,
    });
    Ok(Json(body).into_response())
}

async fn mget(app: &AppState, target: &Target, keys: &[Value]) -> Result<Response, ApiError> {
    let keys = parse_keys(keys)?;
    let served = app.lookup(&target.name)?;
    let values = served.get_many(keys.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
    let mut pairs = Vec::new();
    let mut missing = Vec::new();
    for (key, value) in keys.iter().zip(values) {
        match value {
            Some(value) => pairs.push(value_json(key, value)),
            None => missing.push(key.as_str()),
        }
    }
    let body = json!({
        "success": true,
        "operation": "mget",
        "count": pairs.len(),
        "pairs": pairs,
        "missing": missing,
    });
    Ok(Json(body).into_response())
}

fn parse_pair(index: usize, pair: &Value) -> Result<WriteOp, ApiError> {
    let bad = |what: &str| ApiError::bad_request(format!("pair {index}: {what}: {SHAPE}"));
    let pair = pair.as_object().ok_or_else(|| bad("not an object"))?;
    let key = parse_key(index, pair.get("key"))?;
    let value = match (pair.get("value"), pair.get("value_base64")) {
        (Some(Value::String(text)), None) => text.clone().into_bytes(),
        (Some(other), None) => other.to_string().into_bytes(),
        (None, Some(Value::String(encoded))) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| bad(&format!("value_base64 is not base64 ({e})")))?,
        (None, None) => return Err(bad("no \"value\"")),
        _ => return Err(bad("give \"value\" or \"value_base64\" (a string), not both")),
    };
    Ok(WriteOp::Set { key: key.into_bytes(), value })
}

fn parse_keys(keys: &[Value]) -> Result<Vec<String>, ApiError> {
    keys.iter().enumerate().map(|(i, k)| parse_key(i, Some(k))).collect()
}

fn parse_key(index: usize, key: Option<&Value>) -> Result<String, ApiError> {
    match key {
        Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
        Some(Value::String(_)) => Err(ApiError::bad_request(format!("item {index}: the key is empty"))),
        _ => Err(ApiError::bad_request(format!("item {index}: the key must be a JSON string: {SHAPE}"))),
    }
}

/// Names the item an error is about.
fn at_item(index: usize, mut error: ApiError) -> ApiError {
    error.message = format!("item {index}: {}", error.message);
    error
}

//! One key at a time (get, put, delete) and the key listing.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use maph_core::Store;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body_rejection, check_fits, value_json, AppState, Target};
use crate::error::ApiError;
use crate::writer::{WriteOp, WriteOutcome};

pub(super) async fn get_key(
    State(app): State<AppState>,
    target: Target,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let served = app.lookup(&target.name)?;
    let value = served.get(target.key().as_bytes().to_vec()).await?.ok_or_else(ApiError::key_not_found)?;
    if wants_raw_bytes(&headers) {
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response());
    }
    Ok(Json(value_json(target.key(), value)).into_response())
}

pub(super) async fn put_key(
    State(app): State<AppState>,
    target: Target,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value = body.map_err(|e| body_rejection(e, app.max_body_bytes))?;
    let served = app.lookup_for_write(&target.name).await?;
    let key = target.key().as_bytes();
    check_fits(&served.mapping().store, key, &value)?;
    let outcome = served.write(WriteOp::Set { key: key.to_vec(), value: value.to_vec() }).await?;
    let (status, message) = match outcome {
        WriteOutcome::Created => (StatusCode::CREATED, "Key created"),
        _ => (StatusCode::OK, "Key updated"),
    };
    Ok((status, Json(json!({ "success": true, "message": message, "key": target.key() }))).into_response())
}

pub(super) async fn delete_key(State(app): State<AppState>, target: Target) -> Result<StatusCode, ApiError> {
    let served = app.lookup_for_write(&target.name).await?;
    match served.write(WriteOp::Remove { key: target.key().as_bytes().to_vec() }).await? {
        WriteOutcome::Removed => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::key_not_found()),
    }
}

/// Keys per page when the request does not say.
const DEFAULT_PAGE: usize = 100;
/// Most keys per page.
const MAX_PAGE: usize = 1000;
/// Characters of a value shown in a listing.
const PREVIEW_CHARS: usize = 80;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /stores/{name}/keys?prefix=&cursor=&limit=`: a page of keys starting
/// with `prefix`, with each value's size and first characters.
///
/// A store is a hash table, so keys have no order and a prefix search is a
/// scan. Keys come in slot order; the cursor counts the entries already passed,
/// so a page costs a pass up to its position. Keys written while a client pages
/// may or may not appear; a key that stays put is listed exactly once.
pub(super) async fn list_keys(
    State(app): State<AppState>,
    target: Target,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_PAGE}, not {limit}")));
    }
    let skip = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("cursor {c:?} is not one this server gave: pass next_cursor back unchanged"))
        })?,
    };
    let prefix = params.prefix.unwrap_or_default().into_bytes();
    let served = app.lookup(&target.name)?;
    // A scan touches every slot: always on a blocking thread.
    let page = served.scan(move |store| scan(store, &prefix, skip, limit)).await?;
    Ok(Json(page))
}

fn scan(store: &Store, prefix: &[u8], skip: u64, limit: usize) -> Value {
    let mut keys = Vec::new();
    let mut position = skip;
    let mut unreadable = 0u64;
    let mut entries = store.iter().skip(usize::try_from(skip).unwrap_or(usize::MAX));
    let mut more = false;
    for entry in entries.by_ref() {
        position += 1;
        let (key, value) = match entry {
            Ok(entry) => entry,
            // A slot mid-write past the read patience, or damaged: listed as a count.
            Err(_) => {
                unreadable += 1;
                continue;
            }
        };
        if !key.starts_with(prefix) {
            continue;
        }
        keys.push(listed(key, &value));
        if keys.len() == limit {
            more = true;
            break;
        }
    }
    // A full page says "more" only if an entry remains after it.
    let next_cursor = (more && entries.next().is_some()).then(|| position.to_string());
    json!({ "keys": keys, "next_cursor": next_cursor, "unreadable": unreadable })
}

/// A key as a listing shows it: the key (base64 if not UTF-8), the value's
/// size, and the value's first characters.
fn listed(key: Vec<u8>, value: &[u8]) -> Value {
    let preview: String =
        String::from_utf8_lossy(&value[..value.len().min(PREVIEW_CHARS * 4)]).chars().take(PREVIEW_CHARS).collect();
    match String::from_utf8(key) {
        Ok(key) => json!({ "key": key, "value_bytes": value.len(), "preview": preview }),
        Err(e) => json!({
            "key": null,
            "key_base64": base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            "value_bytes": value.len(),
            "preview": preview,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_only_when_asked() {
        let mut h = HeaderMap::new();
        assert!(!wants_raw_bytes(&h));
        h.insert(header::ACCEPT, "text/html, application/octet-stream;q=0.9".parse().unwrap());
        assert!(wants_raw_bytes(&h));
    }

    #[test]
    fn listings_preview_values_and_encode_binary_keys() {
        let long = "x".repeat(500);
        let item = listed(b"k".to_vec(), long.as_bytes());
        assert_eq!(item["value_bytes"], 500);
        assert_eq!(item["preview"].as_str().unwrap().len(), PREVIEW_CHARS);
        assert_eq!(listed(vec![0xff], b"v")["key_base64"], "/w==");
    }
}

//! `/stores/{name}/stats`, `/stats` (every store, for the dashboard) and
//! `/metrics` (Prometheus text): three views of one snapshot per store.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::{AppState, Target};
use crate::error::ApiError;
use crate::metrics::{StoreMetricsSnapshot, WriterStatsSnapshot};
use crate::served::ServedStore;

/// A served store at one moment: its file's figures and the server's counters.
#[derive(Debug, Serialize)]
pub(crate) struct StoreReport {
    pub name: String,
    /// Live keys.
    pub size: u64,
    pub load_factor: f64,
    pub slots: u64,
    pub slot_size: u32,
    pub max_probes: u32,
    pub max_key_bytes: usize,
    pub strategy: String,
    pub generation: u64,
    pub highest_fence: u64,
    pub file_bytes: u64,
    /// The file's name in the data directory (never the server's path to it).
    pub file: String,
    /// Whether a growth or optimize is under way.
    pub rebuilding: bool,
    /// Keys looked up.
    pub reads: u64,
    /// Lookups that met a slot mid-write and waited on a blocking thread.
    pub read_waits: u64,
    /// Such lookups waiting now.
    pub reads_waiting: u64,
    pub writer: WriterStatsSnapshot,
    #[serde(skip)]
    pub metrics: StoreMetricsSnapshot,
}

impl StoreReport {
    pub fn of(served: &ServedStore) -> StoreReport {
        let metrics = served.shared.metrics.snapshot();
        let store = served.mapping().store.clone();
        let stats = store.stats();
        StoreReport {
            name: served.name().to_string(),
            size: stats.len,
            load_factor: stats.load_factor,
            slots: stats.layout.slot_count,
            slot_size: stats.layout.slot_size,
            max_probes: stats.layout.max_probes,
            max_key_bytes: store.max_key_len(),
            strategy: stats.strategy().as_str().to_string(),
            generation: stats.generation,
            highest_fence: stats.highest_fence,
            file_bytes: stats.file_bytes,
            file: served.name().file_name(),
            rebuilding: metrics.rebuilding,
            reads: metrics.reads,
            read_waits: metrics.read_waits,
            reads_waiting: metrics.reads_waiting,
            writer: metrics.writer(),
            metrics,
        }
    }
}

fn reports(app: &AppState) -> Vec<StoreReport> {
    app.registry.list().iter().map(|served| StoreReport::of(served)).collect()
}

pub(super) async fn store_stats(State(app): State<AppState>, target: Target) -> Result<Json<Value>, ApiError> {
    let served = app.lookup(&target.name)?;
    Ok(Json(serde_json::to_value(StoreReport::of(&served)).map_err(|e| ApiError::internal(e.to_string()))?))
}

/// `GET /stats`: every store's report and the server's totals, in one answer.
pub(super) async fn server_stats(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stores = serde_json::to_value(reports(&app)).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({
        "uptime_seconds": app.http.uptime().as_secs_f64(),
        "requests": app.http.total_requests(),
        "writes_need_token": app.token.is_some(),
        "limits": { "max_batch": app.max_batch, "max_body_bytes": app.max_body_bytes },
        "stores": stores,
    })))
}

/// `GET /metrics`: the same figures in the Prometheus text format.
pub(super) async fn prometheus(State(app): State<AppState>) -> Response {
    let text = crate::prometheus::render(&app.http, &reports(&app));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

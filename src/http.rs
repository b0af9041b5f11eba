//! The HTTP surface: today `/healthz` and `/metrics` (Prometheus text), served
//! by the daemon. The only module that knows HTTP; it reads through the
//! `Index` trait, never SQL, and renders its own output rather than
//! serialising database rows.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;

use crate::index::Index;

#[derive(Clone)]
pub struct AppState {
    pub index: Arc<dyn Index>,
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 200 when the index answers; 503 (with the reason logged) when not.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.index.stats(Utc::now()).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: index unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "index unavailable\n").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let now = Utc::now();
    let stats = match state.index.stats(now).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "metrics: index unavailable");
            return (StatusCode::SERVICE_UNAVAILABLE, "index unavailable\n").into_response();
        }
    };
    let mut out = String::new();
    out.push_str("# HELP custody_captures_total Captures recorded in the index, by status.\n");
    out.push_str("# TYPE custody_captures_total counter\n");
    out.push_str(&format!(
        "custody_captures_total{{status=\"ok\"}} {}\n",
        stats.captures_ok
    ));
    out.push_str(&format!(
        "custody_captures_total{{status=\"failed\"}} {}\n",
        stats.captures_failed
    ));
    out.push_str("# HELP custody_stored_bytes Bytes of WARC files in the store.\n");
    out.push_str("# TYPE custody_stored_bytes gauge\n");
    out.push_str(&format!("custody_stored_bytes {}\n", stats.stored_bytes));
    out.push_str("# HELP custody_runs Scheduled runs, by state.\n");
    out.push_str("# TYPE custody_runs gauge\n");
    for (state, n) in &stats.runs {
        out.push_str(&format!(
            "custody_runs{{state=\"{}\"}} {n}\n",
            state.as_str()
        ));
    }
    out.push_str("# HELP custody_queue_depth Runs that may start now and wait for a worker.\n");
    out.push_str("# TYPE custody_queue_depth gauge\n");
    out.push_str(&format!("custody_queue_depth {}\n", stats.queue_depth));
    out.push_str(
        "# HELP custody_timestamp_backlog RFC 3161 timestamp requests waiting for their TSA.\n",
    );
    out.push_str("# TYPE custody_timestamp_backlog gauge\n");
    out.push_str(&format!(
        "custody_timestamp_backlog {}\n",
        stats.timestamp_backlog
    ));
    out.push_str(
        "# HELP custody_quarantined_objects Stored objects whose last fixity check failed.\n",
    );
    out.push_str("# TYPE custody_quarantined_objects gauge\n");
    out.push_str(&format!(
        "custody_quarantined_objects {}\n",
        stats.quarantined
    ));
    out.push_str("# HELP custody_run_lag_seconds How long the oldest waiting run is past its scheduled instant.\n");
    out.push_str("# TYPE custody_run_lag_seconds gauge\n");
    let lag = stats
        .oldest_waiting
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    out.push_str(&format!("custody_run_lag_seconds {lag}\n"));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

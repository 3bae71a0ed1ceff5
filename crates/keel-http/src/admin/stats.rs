//! Server statistics (guide §24.6, §14.6, §13.8): the grouped counters with their start
//! time, the reset, and the Prometheus text exposition at [`METRICS_PATH`]. Every handler
//! calls the `keel_mail::stats` operations `keel stats show|reset` calls; the pending
//! increments of this process (`keel_core::stats::global`) are included, so an answer is
//! never older than the last event.
//!
//! `/metrics` (and `/admin/api/v1/metrics`) pass the same guard as the API: remote
//! administration decides who may connect; a loopback client needs no session (a local
//! Prometheus scraper), any other client needs a signed-in administrator's session. The
//! session cookie has `Path=/admin`, so a browser or cookie jar sends it only to the
//! second path; a scraper can send it to `/metrics` as a `Cookie` header.

use axum::extract::{Path, Query, State};
use axum::http::{Method, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use keel_mail::stats::StatsReport;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::{AdminCtx, AdminState, Op, Routes, blocking};

/// Where the Prometheus / OpenMetrics text is served.
pub const METRICS_PATH: &str = "/metrics";

pub(super) fn routes(r: &mut Routes) {
    r.add(
        Method::GET,
        "/traffic",
        (
            "Traffic charts (guide §24.5): the series (connections per service, messages) and time ranges offered",
            None,
            "TrafficIndex",
        ),
        traffic_index,
    );
    r.add(
        Method::GET,
        "/traffic/{series}",
        (
            "One traffic series over ?range=2h|1d|1w|30d: a count per sampling interval, oldest first",
            None,
            "TrafficChart",
        ),
        traffic_series,
    );
    r.add(
        Method::GET,
        "/traffic/{series}/chart.svg",
        (
            "The same as an SVG chart drawn by the server; ?ymax= fixes the y axis",
            None,
            "Svg",
        ),
        traffic_svg,
    );
    r.add(
        Method::GET,
        "/statistics",
        (
            "Server statistics (guide §24.6): start time and grouped counters (Server Status, Messages, Antivirus, Spam Filter, Storage)",
            None,
            "Statistics",
        ),
        show,
    );
    r.add(
        Method::POST,
        "/statistics/reset",
        (
            "Reset every statistics counter to zero; the statistics start now",
            None,
            "Statistics",
        ),
        reset,
    );
    r.add(
        Method::GET,
        METRICS_PATH,
        (
            "The statistics counters as Prometheus text (version 0.0.4); loopback clients need no session",
            None,
            "Metrics",
        ),
        metrics,
    );
    r.add(
        Method::GET,
        "/admin/api/v1/metrics",
        (
            "The same Prometheus text under the API prefix, where the session cookie (Path=/admin) is sent",
            None,
            "Metrics",
        ),
        metrics,
    );
}

/// The current report of this server (used by the web UI too).
pub(crate) async fn current(st: &AdminState) -> ApiResult<StatsReport> {
    let meta = st.meta.clone();
    let now = st.clock.unix();
    blocking(move || {
        let g = keel_core::stats::global();
        Ok(keel_mail::stats::report(
            meta.as_ref(),
            Some(g),
            g.started(),
            now,
        )?)
    })
    .await
}

async fn show(State(st): State<AdminState>) -> ApiResult<Json<StatsReport>> {
    Ok(Json(current(&st).await?))
}

async fn reset(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> ApiResult<Json<StatsReport>> {
    let meta = st.meta.clone();
    let now = st.clock.unix();
    blocking(move || {
        keel_mail::stats::reset(meta.as_ref(), Some(keel_core::stats::global()), now)?;
        Ok(())
    })
    .await?;
    st.audit(
        &admin,
        Op::Update,
        "Statistics",
        "all",
        Some(&serde_json::Map::from_iter([(
            "action".to_owned(),
            Value::String("reset".into()),
        )])),
    );
    Ok(Json(current(&st).await?))
}

async fn metrics(State(st): State<AdminState>) -> ApiResult<impl IntoResponse> {
    let report = current(&st).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        report.prometheus(),
    ))
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TrafficQuery {
    pub(crate) range: Option<String>,
    pub(crate) ymax: Option<u64>,
}

async fn traffic_index() -> Json<Value> {
    let series: Vec<Value> = keel_core::traffic::SERIES
        .iter()
        .map(|s| serde_json::json!({ "id": s.id, "label": s.label }))
        .collect();
    let ranges: Vec<Value> = keel_core::traffic::RANGES
        .iter()
        .map(|(id, label, span, step)| {
            serde_json::json!({ "id": id, "label": label, "span_secs": span, "step_secs": step })
        })
        .collect();
    Json(serde_json::json!({ "series": series, "ranges": ranges }))
}

/// The chart of a series (guide §24.5); unknown names are 404 / 400 with the valid ones.
pub(crate) fn traffic_chart(
    st: &AdminState,
    series: &str,
    range: Option<&str>,
) -> ApiResult<keel_core::traffic::Chart> {
    let range = range.unwrap_or("2h");
    if keel_core::traffic::range(range).is_none() {
        let ids: Vec<&str> = keel_core::traffic::RANGES.iter().map(|r| r.0).collect();
        return Err(ApiError::invalid(
            "range",
            format!("range must be one of {}, not '{range}'", ids.join(", ")),
        ));
    }
    let now = st.clock.unix();
    keel_core::traffic::global()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .chart(series, range, now)
        .ok_or_else(|| {
            let ids: Vec<&str> = keel_core::traffic::SERIES.iter().map(|s| s.id).collect();
            ApiError::NotFound(format!(
                "there is no traffic series {series}; the series are {}",
                ids.join(", ")
            ))
        })
}

fn traffic_query(
    q: Result<Query<TrafficQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<TrafficQuery> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
}

async fn traffic_series(
    State(st): State<AdminState>,
    Path(series): Path<String>,
    q: Result<Query<TrafficQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<keel_core::traffic::Chart>> {
    let q = traffic_query(q)?;
    Ok(Json(traffic_chart(&st, &series, q.range.as_deref())?))
}

async fn traffic_svg(
    State(st): State<AdminState>,
    Path(series): Path<String>,
    q: Result<Query<TrafficQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = traffic_query(q)?;
    let chart = traffic_chart(&st, &series, q.range.as_deref())?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        crate::chart::render_svg(&chart, q.ymax),
    ))
}

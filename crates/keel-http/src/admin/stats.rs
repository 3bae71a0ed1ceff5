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

use axum::extract::State;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use keel_mail::stats::StatsReport;
use serde_json::Value;

use super::error::ApiResult;
use super::{AdminCtx, AdminState, Op, Routes, blocking};

/// Where the Prometheus / OpenMetrics text is served.
pub const METRICS_PATH: &str = "/metrics";

pub(super) fn routes(r: &mut Routes) {
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

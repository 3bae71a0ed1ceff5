//! Traffic charts (guide §24.5) through the admin API and the web page, with curl.

mod common;

use common::{API, PW, T0, env};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn traffic_series_chart_and_page() {
    let env = env();
    let c = env.client().await.admin().await;
    let stats = keel_core::stats::global();
    {
        let mut t = keel_core::traffic::global().lock().expect("traffic");
        t.sample(stats, T0 - 40);
        for _ in 0..3 {
            stats.connection("imaps");
        }
        stats.connection("smtp");
        t.sample(stats, T0 - 35);
        stats.connection("imap");
        t.sample(stats, T0 + 1);
    }
    let idx = c.get(&format!("{API}/traffic")).await;
    assert_eq!(idx.status, 200, "{}", idx.body);
    assert_eq!(idx.json()["series"].as_array().map(Vec::len), Some(8));
    assert_eq!(idx.json()["ranges"][0]["step_secs"], 20);

    let r = c
        .get(&format!("{API}/traffic/connections.imap?range=2h"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let points = v["points"].as_array().expect("points");
    assert_eq!(points.len(), 360);
    let tail: Vec<u64> = points[357..]
        .iter()
        .map(|p| p[1].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(tail, vec![3, 0, 1], "{v}");
    assert_eq!(points[359][0], T0);

    let r = c
        .get(&format!(
            "{API}/traffic/connections.imap/chart.svg?range=2h&ymax=10"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("image/svg+xml"))
    );
    assert!(r.body.contains("data-total=\"4\""), "{}", r.body);
    assert!(r.body.contains(">10</text>"), "the y axis follows ymax");

    let r = c
        .get(&format!("{API}/traffic/connections.imap?range=3h"))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.field(), "range");
    let r = c.get(&format!("{API}/traffic/connections.nntp")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.error().contains("connections.imap"), "{}", r.body);

    // The page draws the chart inline (server-side SVG, no script); the configuration
    // wizard comes first for a full administrator.
    let r = c
        .post(
            &format!("{API}/setup-wizard"),
            json!({ "hostname": "mail.example.com", "primary_domain": "example.com", "password": "Wizard-pass-123" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .get("/admin/traffic?series=connections.smtp&range=2h")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<svg"), "{}", r.body);
    assert!(r.body.contains("data-total=\"1\""), "{}", r.body);
    assert!(r.body.contains("Connections / SMTP"));
    let r = c.get("/admin/traffic?ymax=lots").await;
    assert_eq!(r.status, 400, "{}", r.body);

    // A domain administrator does not see the server's traffic.
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "dora@example.com", "password": PW, "domain_admin": true }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut d = env.client_at(env.serve(None).await, "dora");
    assert_eq!(d.login("dora@example.com", PW).await.status, 200);
    assert_eq!(
        d.get(&format!("{API}/traffic/connections.imap"))
            .await
            .status,
        403
    );
    assert_eq!(d.get("/admin/traffic").await.status, 403);
}

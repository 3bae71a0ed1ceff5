//! Sign-in, sessions, CSRF, rights, remote administration, audit lines and the OpenAPI
//! document, driven with curl over a loopback socket.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use keel_core::log::LogKind;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn login_sets_a_strict_cookie_and_whoami_shows_rights() {
    let env = env();
    let mut c = env.client().await;
    let r = c.login("admin@example.com", PW).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.header("set-cookie").expect("cookie");
    assert!(cookie.starts_with("keel_admin_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // Plaintext loopback: no Secure flag (the browser would drop the cookie).
    assert!(!cookie.contains("Secure"), "{cookie}");
    let id = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    assert_eq!(id.len(), 43, "256 bits in base64url");
    assert_eq!(r.json()["rights"], "full");
    let me = c.get(&format!("{API}/session")).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"], "admin@example.com");
    assert_eq!(me.json()["csrf_token"], json!(c.csrf));
    assert_eq!(env.state.open_sessions(), 1);
    assert!(
        env.log(LogKind::Config)
            .contains("Admin admin@example.com - session opened for host 127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_password_non_admin_and_locked_account() {
    let env = env();
    let mut c = env.client().await;
    let r = c.login("admin@example.com", "wrong").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error(), "invalid user name or password");
    assert!(c.get(&format!("{API}/domains")).await.status == 401);
    // A user without admin rights signs in correctly but gets nothing.
    let r = c.login("alice@example.com", PW).await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("no administration rights"), "{}", r.body);
    assert!(r.header("set-cookie").is_none());
    // guide §12.6: after 5 failures the account is locked; the right password then fails too,
    // with the same answer as a wrong one.
    for _ in 0..5 {
        assert_eq!(c.login("viewer@example.com", "nope").await.status, 401);
    }
    let r = c.login("viewer@example.com", PW).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error(), "invalid user name or password");
    let cfg = env.log(LogKind::Config);
    assert!(
        cfg.contains("Admin admin@example.com - login failed for host 127.0.0.1"),
        "{cfg}"
    );
    assert!(
        cfg.contains("Admin alice@example.com - login failed for host 127.0.0.1"),
        "{cfg}"
    );
    // guide §8.2: the user page's Unlock frees this account (unlock-all then finds none).
    let admin = env.client_at(env.serve(None).await, "jar2").admin().await;
    let r = admin
        .post(&format!("{API}/users/viewer@example.com/unlock"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["was_locked"], true);
    assert_eq!(c.login("viewer@example.com", PW).await.status, 200);
    let r = admin
        .post(&format!("{API}/users/nobody@example.com/unlock"), json!({}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        admin
            .post(&format!("{API}/users/unlock"), json!({}))
            .await
            .json()["unlocked"],
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited_per_ip() {
    let env = env();
    let mut c = env.client().await;
    for _ in 0..keel_http::admin::LOGIN_FAILURE_LIMIT {
        assert_eq!(c.login("nobody@example.com", "x").await.status, 401);
    }
    let r = c.login("admin@example.com", PW).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.error().contains("too many failed sign-ins"));
    env.clock.advance(Duration::from_secs(601));
    assert_eq!(c.login("admin@example.com", PW).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_need_the_csrf_token() {
    let env = env();
    let c = env.client().await.admin().await;
    let body = json!({ "name": "csrf.test" });
    let r = c
        .call_with("POST", &format!("{API}/domains"), Some(&body), false)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("X-CSRF-Token"));
    let mut wrong = env.client_at(
        c.base.trim_start_matches("http://").parse().expect("addr"),
        "jar",
    );
    wrong.csrf = Some("forged".into());
    assert_eq!(
        wrong
            .post(&format!("{API}/domains"), body.clone())
            .await
            .status,
        403
    );
    // Nothing was created.
    assert_eq!(c.get(&format!("{API}/domains/csrf.test")).await.status, 404);
    assert_eq!(c.post(&format!("{API}/domains"), body).await.status, 201);
    // A body that is not declared JSON is refused.
    let r = curl(vec![
        "-s".into(),
        "-i".into(),
        "-b".into(),
        c.jar.display().to_string(),
        "-H".into(),
        format!("X-CSRF-Token: {}", c.csrf.clone().unwrap_or_default()),
        "--data".into(),
        "name=form.test".into(),
        format!("{}{API}/domains", c.base),
    ])
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_admin_reads_but_cannot_change() {
    let env = env();
    let mut c = env.client().await;
    let r = c.login("viewer@example.com", PW).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rights"], "read-only");
    assert_eq!(c.get(&format!("{API}/users")).await.status, 200);
    assert_eq!(c.get(&format!("{API}/smtp-settings")).await.status, 200);
    assert_eq!(c.get(&format!("{API}/logs/config")).await.status, 200);
    let r = c
        .post(&format!("{API}/domains"), json!({ "name": "ro.test" }))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("read-only"));
    assert_eq!(
        c.patch(
            &format!("{API}/smtp-settings"),
            json!({ "max_recipients": 5 })
        )
        .await
        .status,
        403
    );
    assert_eq!(
        c.delete(&format!("{API}/users/alice@example.com"))
            .await
            .status,
        403
    );
    // Check address only reads: allowed.
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "alice@example.com" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Signing out is allowed.
    assert_eq!(c.delete(&format!("{API}/session")).await.status, 204);
    assert_eq!(c.get(&format!("{API}/users")).await.status, 401);
    assert!(
        env.log(LogKind::Config)
            .contains("Admin viewer@example.com - session closed for host 127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_expire_after_inactivity() {
    let env = env();
    let c = env.client().await.admin().await;
    env.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(c.get(&format!("{API}/domains")).await.status, 200);
    env.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(
        c.get(&format!("{API}/domains")).await.status,
        200,
        "activity extends it"
    );
    env.clock.advance(Duration::from_secs(30 * 60));
    let r = c.get(&format!("{API}/domains")).await;
    assert_eq!(r.status, 401);
    assert!(r.error().contains("expired"), "{}", r.body);
    // The idle time is a setting.
    let c = env.client().await.admin().await;
    let r = c
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "session_idle_minutes": 5 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    env.clock.advance(Duration::from_secs(6 * 60));
    assert_eq!(c.get(&format!("{API}/domains")).await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_administration_is_off_by_default() {
    let env = env();
    let remote: IpAddr = "203.0.113.9".parse().expect("ip");
    let addr = env.serve(Some(remote)).await;
    let mut c = env.client_at(addr, "remote");
    let r = c.login("admin@example.com", PW).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.error().contains("remote administration is disabled"),
        "{}",
        r.body
    );
    assert_eq!(c.get("/admin/api/openapi.json").await.status, 403);
    // Nothing reached the directory: no failed login was logged.
    assert!(!env.log(LogKind::Config).contains("203.0.113.9"));
}

#[tokio::test(flavor = "multi_thread")]
async fn session_bound_to_its_ip() {
    let env = env();
    let local = env.client().await.admin().await;
    // Remote administration on for everyone, sessions bound to their IP (guide §17.4).
    let r = local
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "remote_enabled": true, "bind_session_to_ip": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = std::fs::read_to_string(&local.jar).expect("jar");
    let id = cookie
        .lines()
        .find(|l| l.contains("keel_admin_session"))
        .and_then(|l| l.split('\t').next_back())
        .expect("cookie in jar")
        .to_owned();
    let addr = env.serve(Some("198.51.100.4".parse().expect("ip"))).await;
    let mut stolen = env.client_at(addr, "stolen");
    stolen.cookie = Some(format!("keel_admin_session={id}"));
    let r = stolen.get(&format!("{API}/domains")).await;
    assert_eq!(r.status, 401);
    assert!(r.error().contains("another IP address"));
}

/// requirements-2 acceptance scenario 13: admin API restricted to the IP group
/// `Admins = 127.0.0.1/32`; another address is refused, localhost works, and the Config log
/// records the session and the changes with the password masked.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_remote_admin_and_audit_log() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c
        .post(
            &format!("{API}/ip-groups"),
            json!({ "name": "Admins", "items": [ { "entry": "127.0.0.1/32" } ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "remote_enabled": true, "remote_ip_group": "Admins" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // From another address: refused, before any authentication.
    let addr = env.serve(Some("192.0.2.50".parse().expect("ip"))).await;
    let mut other = env.client_at(addr, "other");
    let r = other.login("admin@example.com", PW).await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("IP address group Admins"), "{}", r.body);
    // From localhost: works.
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "bob@example.com", "password": "Bob-secret-77", "full_name": "Bob" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Adding the other address to the group lets it in; its cookie is Secure.
    let r = c
        .put(
            &format!("{API}/ip-groups/Admins"),
            json!({ "items": [ { "entry": "127.0.0.1/32" }, { "entry": "192.0.2.50" } ] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = other.login("admin@example.com", PW).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("set-cookie").is_some_and(|c| c.contains("Secure")));

    let cfg = env.log(LogKind::Config);
    assert!(
        cfg.contains("Admin admin@example.com - session opened for host 127.0.0.1"),
        "{cfg}"
    );
    assert!(
        cfg.contains("Admin admin@example.com - session opened for host 192.0.2.50"),
        "{cfg}"
    );
    assert!(
        cfg.contains("Admin admin@example.com - insert IpGroup set Name='Admins'"),
        "{cfg}"
    );
    assert!(
        cfg.contains("Admin admin@example.com - update AdminSettings set Name='admin', Remote_enabled='1', Remote_ip_group='Admins'"),
        "{cfg}"
    );
    let line = cfg
        .lines()
        .find(|l| l.contains("insert User set Name='bob@example.com'"))
        .expect("user line");
    assert!(line.contains("Password=xxxxxx"), "{line}");
    assert!(line.contains("Full_name='Bob'"), "{line}");
    assert!(line.starts_with('['), "timestamped: {line}");
    assert!(
        !env.all_logs().contains("Bob-secret-77"),
        "a clear password reached a log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_lists_every_route() {
    let env = env();
    let c = env.client().await;
    // Served without a session (still subject to the remote-administration check).
    let r = c.get("/admin/api/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let table = keel_http::admin::route_table();
    assert!(table.len() > 50, "{} routes", table.len());
    for route in &table {
        let op = &doc["paths"][&route.path][route.method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from the OpenAPI document",
            route.method,
            route.path
        );
        assert_eq!(op["summary"], route.summary);
        assert!(op["responses"].is_object());
        if let Some(req) = route.request {
            assert_eq!(
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                format!("#/components/schemas/{req}")
            );
        }
    }
    // And nothing documented that is not served.
    let documented: usize = doc["paths"]
        .as_object()
        .map(|p| {
            p.values()
                .map(|m| m.as_object().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(documented, table.len());
    // Each documented GET without parameters answers (not 404/405) once signed in.
    let c = c.admin().await;
    for route in table
        .iter()
        .filter(|r| r.method == "GET" && !r.path.contains('{'))
    {
        let r = c.get(&route.path).await;
        assert_eq!(r.status, 200, "GET {}: {}", route.path, r.body);
    }
}

/// guide §24.6: `/metrics` answers a loopback client without a session; elsewhere it
/// follows remote administration and needs an administrator's session. The statistics
/// reset is refused to a read-only administrator and writes a Config log line.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_statistics_access() {
    let env = env();
    let local = env.client().await;
    let r = local.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("# TYPE keel_connections_total counter\n")
            && r.body.contains("keel_spam_rejected_total "),
        "{}",
        r.body
    );
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{}",
        r.headers
    );
    let addr = env.serve(Some("203.0.113.9".parse().expect("ip"))).await;
    let mut remote = env.client_at(addr, "remote");
    assert_eq!(remote.get("/metrics").await.status, 403);
    let admin = local.admin().await;
    let r = admin
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "remote_enabled": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(remote.get("/metrics").await.status, 401);
    assert_eq!(remote.get(&format!("{API}/metrics")).await.status, 401);
    assert_eq!(remote.login("admin@example.com", PW).await.status, 200);
    // The jar sends the cookie (Path=/admin) under the API prefix only.
    let r = remote.get(&format!("{API}/metrics")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("keel_messages_received_total "),
        "{}",
        r.body
    );
    let cookie = std::fs::read_to_string(&remote.jar).expect("jar");
    let id = cookie
        .lines()
        .find(|l| l.contains("keel_admin_session"))
        .and_then(|l| l.split('\t').next_back())
        .expect("cookie in jar")
        .to_owned();
    let mut scraper = env.client_at(addr, "scraper");
    scraper.cookie = Some(format!("keel_admin_session={id}"));
    let r = scraper.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let r = admin.get(&format!("{API}/statistics")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<String> = r.json()["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "server_status",
            "messages",
            "antivirus",
            "spam_filter",
            "storage"
        ]
    );
    let local_addr = env.serve(None).await;
    let mut viewer = env.client_at(local_addr, "viewer");
    assert_eq!(viewer.login("viewer@example.com", PW).await.status, 200);
    assert_eq!(viewer.get(&format!("{API}/statistics")).await.status, 200);
    let r = viewer
        .post(&format!("{API}/statistics/reset"), json!({}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.error().contains("read-only"), "{}", r.body);
    env.clock.advance(Duration::from_secs(60));
    let r = admin
        .post(&format!("{API}/statistics/reset"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["started_at_unix"], json!(T0 + 60), "{}", r.body);
    assert!(
        env.log(LogKind::Config).contains("Statistics"),
        "{}",
        env.log(LogKind::Config)
    );
    let doc = r#"/admin/api/v1/statistics/reset"#;
    let r = admin.get("/admin/api/openapi.json").await;
    assert!(
        r.body.contains(doc) && r.body.contains("\"/metrics\""),
        "{}",
        r.body
    );
}

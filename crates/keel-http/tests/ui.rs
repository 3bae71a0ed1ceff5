//! The web admin UI's pages (issue 5 item 3): sign-in redirect, the configuration wizard
//! (guide §2.5) and its API, pages for full and read-only administrators, and HTML
//! escaping of hostile names.

mod common;

use common::*;
use serde_json::json;

/// Every signed-in page of the UI.
const PAGES: &[&str] = &[
    "/admin/",
    "/admin/wizard",
    "/admin/domains",
    "/admin/domains/example.com",
    "/admin/users",
    "/admin/users/admin%40example.com",
    "/admin/groups",
    "/admin/aliases",
    "/admin/queue",
    "/admin/services",
    "/admin/folders",
    "/admin/statistics",
    "/admin/ip-groups",
    "/admin/time-intervals",
    "/admin/security",
    "/admin/smtp",
    "/admin/spam",
    "/admin/antivirus",
    "/admin/dkim",
    "/admin/logs",
    "/admin/logs?log=config&q=admin",
];

const NEW_PW: &str = "Brand-new-pass-42";

/// Completes the wizard through the API as the full administrator.
async fn finish_wizard(c: &Client) {
    let r = c
        .post(
            &format!("{API}/setup-wizard"),
            json!({ "hostname": "mail.example.com", "primary_domain": "example.com", "password": NEW_PW }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_pages_redirect_to_sign_in() {
    let env = env();
    let c = env.client().await;
    let r = c.get("/admin").await;
    assert_eq!(r.status, 303, "{}", r.headers);
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("/admin/sign-in")),
        "{}",
        r.headers
    );
    for page in PAGES {
        let r = c.get(page).await;
        assert_eq!(r.status, 303, "{page}");
        let loc = r.header("location").unwrap_or_default();
        assert!(
            loc.starts_with("/admin/sign-in?next=/admin"),
            "{page}: {loc}"
        );
    }
    let r = c.get("/admin/sign-in?next=/admin/users").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("data-signin"), "{}", r.body);
    assert!(r.body.contains("data-next=\"/admin/users\""), "{}", r.body);
    assert!(
        r.body.contains("<label for=\"password\">"),
        "labelled fields"
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // An outside `next` is never followed.
    let r = c.get("/admin/sign-in?next=//evil.example/").await;
    assert!(r.body.contains("data-next=\"/admin/\""), "{}", r.body);
    // Embedded assets.
    for (file, ctype) in [
        ("admin.css", "text/css"),
        ("admin.js", "text/javascript"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let r = c.get(&format!("/admin/assets/{file}")).await;
        assert_eq!(r.status, 200, "{file}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with(ctype)),
            "{file}: {}",
            r.headers
        );
    }
    assert_eq!(c.get("/admin/assets/nope.js").await.status, 404);
    // Signing in (the API's sign-in) opens the pages.
    let c = c.admin().await;
    let r = c.get("/admin/wizard").await;
    assert_eq!(r.status, 200, "{}", r.body);
    finish_wizard(&c).await;
    let r = c.get("/admin/domains").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Signing out (the API's sign-out) closes them again.
    assert_eq!(c.delete(&format!("{API}/session")).await.status, 204);
    assert_eq!(c.get("/admin/domains").await.status, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_sign_in_page_is_refused_while_remote_administration_is_off() {
    let env = env();
    let addr = env.serve(Some("192.0.2.7".parse().expect("ip"))).await;
    let c = env.client_at(addr, "remote");
    let r = c.get("/admin/sign-in").await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("remote administration is disabled"),
        "{}",
        r.body
    );
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.contains("text/html"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wizard_is_shown_first_and_its_api_changes_nothing_on_bad_input() {
    let env = env();
    let c = env.client().await.admin().await;
    // guide §2.5: the first sign-in of a full administrator lands in the wizard.
    let r = c.get("/admin/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/admin/wizard"));
    let r = c.get("/admin/users").await;
    assert_eq!(r.status, 303, "every page leads to the wizard first");
    assert_eq!(r.header("location").as_deref(), Some("/admin/wizard"));
    let r = c.get("/admin/wizard").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("data-api=\"/admin/api/v1/setup-wizard\""),
        "{}",
        r.body
    );
    let state = c.get(&format!("{API}/setup-wizard")).await.json();
    assert_eq!(state["done"], false);
    assert_eq!(state["primary_domain"], "example.com");

    let bad = [
        (
            json!({ "hostname": "bad host!", "primary_domain": "example.com", "password": NEW_PW }),
            "hostname",
        ),
        (
            json!({ "hostname": "h".repeat(300), "primary_domain": "example.com", "password": NEW_PW }),
            "hostname",
        ),
        (
            json!({ "hostname": "mail.new.test", "primary_domain": "no..dots", "password": NEW_PW }),
            "primary_domain",
        ),
        (
            json!({ "hostname": "mail.new.test", "primary_domain": "new.test", "password": "ab" }),
            "password",
        ),
        (
            json!({ "hostname": "mail.new.test", "primary_domain": "new.test", "password": NEW_PW, "extra": 1 }),
            "extra",
        ),
    ];
    for (body, field) in bad {
        let r = c.post(&format!("{API}/setup-wizard"), body).await;
        assert_eq!((r.status, r.field().as_str()), (400, field), "{}", r.body);
        assert!(!r.error().is_empty());
    }
    // Nothing was half-saved: no domain, still not done, the old password still works.
    assert_eq!(c.get(&format!("{API}/domains/new.test")).await.status, 404);
    assert_eq!(
        c.get(&format!("{API}/setup-wizard")).await.json()["done"],
        false
    );
    let mut other = env.client_at(
        c.base.trim_start_matches("http://").parse().expect("addr"),
        "jar-b",
    );
    assert_eq!(other.login("admin@example.com", PW).await.status, 200);

    // A read-only administrator can look but not complete it.
    let mut viewer = env.client_at(
        c.base.trim_start_matches("http://").parse().expect("addr"),
        "jar-v",
    );
    assert_eq!(viewer.login("viewer@example.com", PW).await.status, 200);
    let r = viewer
        .post(
            &format!("{API}/setup-wizard"),
            json!({ "hostname": "mail.x.test", "primary_domain": "example.com", "password": NEW_PW }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = viewer.get("/admin/").await;
    assert_eq!(r.status, 200, "a read-only admin is not sent to the wizard");
    assert!(r.body.contains("has not been completed"), "{}", r.body);

    let r = c
        .post(
            &format!("{API}/setup-wizard"),
            json!({ "hostname": "Mail.New.Test.", "primary_domain": "new.test", "password": NEW_PW }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    assert_eq!(
        (s["done"].as_bool(), s["hostname"].as_str()),
        (Some(true), Some("mail.new.test"))
    );
    assert_eq!(s["primary_domain"], "new.test");
    assert_eq!(s["completed_by"], "admin@example.com");
    let dom = c.get(&format!("{API}/domains/new.test")).await.json();
    assert_eq!(dom["primary"], true);
    // The password was replaced.
    let mut again = env.client_at(
        c.base.trim_start_matches("http://").parse().expect("addr"),
        "jar-c",
    );
    assert_eq!(again.login("admin@example.com", PW).await.status, 401);
    assert_eq!(again.login("admin@example.com", NEW_PW).await.status, 200);
    // It does not show again; the dashboard shows the new names.
    let r = c.get("/admin/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("mail.new.test") && r.body.contains("new.test"),
        "{}",
        r.body
    );
    let config = env.log(keel_core::log::LogKind::Config);
    assert!(
        config.contains("SetupWizard") && !config.contains(NEW_PW),
        "{config}"
    );
    // Documented in the OpenAPI document.
    let doc = c.get("/admin/api/openapi.json").await.json();
    assert!(doc["paths"]["/admin/api/v1/setup-wizard"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn full_admin_pages_render_with_editing_controls() {
    let env = env();
    let c = env.client().await.admin().await;
    finish_wizard(&c).await;
    c.post(
        &format!("{API}/aliases"),
        json!({ "name": "info", "domain": "example.com", "targets": ["admin"] }),
    )
    .await;
    c.post(
        &format!("{API}/groups"),
        json!({ "name": "sales", "domain": "example.com", "members": ["alice@example.com"] }),
    )
    .await;
    for page in PAGES.iter().chain(&["/admin/groups/sales%40example.com"]) {
        let r = c.get(page).await;
        assert_eq!(r.status, 200, "{page}: {}", r.body);
        assert!(r.body.contains("<nav class=\"sidebar\""), "{page}");
        assert!(r.body.contains("name=\"csrf-token\""), "{page}");
        assert!(r.body.contains("full rights"), "{page}");
    }
    let r = c.get("/admin/domains").await;
    assert!(
        r.body.contains("data-api=\"/admin/api/v1/domains\""),
        "create form"
    );
    assert!(r.body.contains("aria-current=\"page\""));
    let r = c.get("/admin/users?q=alice").await;
    assert!(
        r.body.contains("alice@example.com") && !r.body.contains(">viewer@example.com<"),
        "{}",
        r.body
    );
    assert!(r.body.contains("data-method=\"DELETE\""));
    let r = c.get("/admin/aliases").await;
    assert!(r.body.contains("info@example.com") && r.body.contains("data-check-address"));
    assert!(
        c.get("/admin/groups")
            .await
            .body
            .contains("sales@example.com")
    );
    let r = c.get("/admin/statistics").await;
    for text in [
        "Statistics since",
        "Server Status",
        "Spam Filter Statistics",
        "data-api=\"/admin/api/v1/statistics/reset\"",
    ] {
        assert!(r.body.contains(text), "{text}: {}", r.body);
    }
    let r = c.get("/admin/services").await;
    assert!(
        r.body.contains("/admin/api/v1/services/smtp/restart"),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/ip-groups"),
            json!({ "name": "Office", "items": [{ "entry": "192.168.10.0/24", "description": "LAN" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c.get("/admin/ip-groups").await;
    assert!(r.body.contains("192.168.10.0/24 # LAN"), "{}", r.body);
    assert!(
        r.body
            .contains("data-api=\"/admin/api/v1/ip-groups/Office\""),
        "{}",
        r.body
    );
    let r = c.get("/admin/security").await;
    assert!(
        r.body
            .contains("data-api=\"/admin/api/v1/security-policy\""),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<option value=\"Office\">Office</option>"),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/time-intervals"),
            json!({ "name": "Work hours", "items": [ { "type": "weekly", "days": ["Mon", "Fri"], "from": "08:30:00", "to": "17:00:00" } ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c.get("/admin/time-intervals").await;
    assert!(r.body.contains("Mon, Fri 08:30–17:00"), "{}", r.body);
    let r = c.get("/admin/smtp").await;
    assert!(r.body.contains("name=\"relay_host\""), "{}", r.body);
    // Missing objects give an HTML 404 page.
    let r = c.get("/admin/domains/missing.test").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("data-error"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_admin_sees_no_editing_controls_and_the_api_refuses_changes() {
    let env = env();
    let mut c = env.client().await;
    assert_eq!(c.login("viewer@example.com", PW).await.status, 200);
    for page in PAGES.iter().chain(&["/admin/users/alice%40example.com"]) {
        let r = c.get(page).await;
        assert_eq!(r.status, 200, "{page}: {}", r.body);
        assert!(r.body.contains("read-only"), "{page}");
        for control in [
            "data-method=\"POST\"",
            "data-method=\"PATCH\"",
            "data-method=\"DELETE\"",
            "data-method=\"PUT\"",
            "type=\"submit\">Save",
            "Create ",
        ] {
            assert!(!r.body.contains(control), "{page} shows {control}");
        }
    }
    // Check address (read-only, guide §12.3) stays available.
    assert!(
        c.get("/admin/aliases")
            .await
            .body
            .contains("data-check-address")
    );
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "alice@example.com" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The API refuses changes all the same.
    let r = c
        .post(&format!("{API}/domains"), json!({ "name": "ro.test" }))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/users/alice%40example.com/reindex"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.delete(&format!("{API}/users/alice%40example.com")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(c.get(&format!("{API}/domains/ro.test")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_escaped_in_pages() {
    let env = env();
    let c = env.client().await.admin().await;
    finish_wizard(&c).await;
    let evil = "<script>alert(\"x\")</script>";
    let attr = "\"><img src=x onerror=alert(1)>";
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "mallory@example.com", "password": "Mallory-pw-1", "full_name": evil, "description": attr }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .patch(
            &format!("{API}/domains/example.com"),
            json!({ "description": evil }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.post(
        &format!("{API}/aliases"),
        json!({ "name": "x", "domain": "example.com", "targets": ["admin"], "description": attr }),
    )
    .await;
    for page in [
        "/admin/users",
        "/admin/users/mallory%40example.com",
        "/admin/domains",
        "/admin/domains/example.com",
        "/admin/aliases",
        "/admin/users?q=%3Cscript%3E",
        "/admin/queue?q=%22%3E%3Cimg%20src%3Dx%3E",
        "/admin/logs?q=%3Cscript%3E",
    ] {
        let r = c.get(page).await;
        assert_eq!(r.status, 200, "{page}");
        assert!(!r.body.contains("<script>"), "{page} has a raw script tag");
        assert!(!r.body.contains("<img src=x"), "{page} has a raw img tag");
    }
    let r = c.get("/admin/users").await;
    assert!(r.body.contains("&#60;script&#62;"), "{}", r.body);
    // The Config log now has the hostile text; the log viewer shows it escaped.
    let r = c.get("/admin/logs?log=config").await;
    assert!(
        r.body.contains("&#60;script&#62;") && !r.body.contains("<script>"),
        "{}",
        r.body
    );
    // Hostile path and query text in error pages and the sign-in page.
    let r = c.get("/admin/domains/%3Cscript%3Ex").await;
    assert_eq!(r.status, 404);
    assert!(!r.body.contains("<script>"), "{}", r.body);
    let r = c.get("/admin/sign-in?next=/admin/%22%3E%3Cscript%3E").await;
    assert!(!r.body.contains("<script>"), "{}", r.body);
    assert!(
        r.body
            .contains("data-next=\"/admin/&#34;&#62;&#60;script&#62;\""),
        "{}",
        r.body
    );
    let r = c.get("/admin/logs?log=%3Cscript%3E").await;
    assert_eq!(r.status, 404);
    assert!(!r.body.contains("<script>"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_pages_show_their_forms_and_the_dkim_record() {
    let env = env();
    let c = env.client().await.admin().await;
    finish_wizard(&c).await;
    let r = c
        .post(
            &format!("{API}/dkim/example.com"),
            json!({ "selector": "k1", "algorithm": "ed25519" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let txt = r.json()["key"]["dns_record"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let r = c.get("/admin/dkim").await;
    assert!(
        r.body.contains("value=\"k1._domainkey.example.com\""),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(&txt) && r.body.contains("data-copy="),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("data-api=\"/admin/api/v1/dkim/example.com\" data-method=\"POST\""),
        "{}",
        r.body
    );
    let r = c.get("/admin/spam").await;
    assert!(
        r.body
            .contains("data-api=\"/admin/api/v1/spam-settings\" data-method=\"PATCH\"")
            && r.body
                .contains("data-api=\"/admin/api/v1/sender-lists/server\" data-method=\"PUT\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("zen.spamhaus.org"), "{}", r.body);
    let r = c.get("/admin/antivirus").await;
    assert!(
        r.body
            .contains("data-api=\"/admin/api/v1/antivirus-settings\" data-method=\"PATCH\"")
            && r.body.contains("*.exe"),
        "{}",
        r.body
    );
    // A read-only administrator sees the record to publish, without the generate form.
    let mut v = env.client().await;
    assert_eq!(v.login("viewer@example.com", PW).await.status, 200);
    let r = v.get("/admin/dkim").await;
    assert!(r.body.contains(&txt), "{}", r.body);
    assert!(!r.body.contains("Generate"), "{}", r.body);
}

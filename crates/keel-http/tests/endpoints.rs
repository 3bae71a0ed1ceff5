//! Every endpoint family: one success and the validation failures (invalid input,
//! duplicates → 409, unknown fields named, over-long values), checking nothing is
//! half-saved after an error.

mod common;

use common::*;
use keel_core::log::LogKind;
use keel_store::{QueuedMessage, QueuedRecipient};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn domains_crud_and_validation() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c
        .post(
            &format!("{API}/domains"),
            json!({ "name": "two.test", "description": "second" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["primary"], false);
    let r = c
        .post(&format!("{API}/domains"), json!({ "name": "two.test" }))
        .await;
    assert_eq!((r.status, r.field().as_str()), (409, "name"), "{}", r.body);
    let r = c
        .post(&format!("{API}/domains"), json!({ "name": "bad..name" }))
        .await;
    assert_eq!((r.status, r.field().as_str()), (400, "name"), "{}", r.body);
    let r = c
        .post(
            &format!("{API}/domains"),
            json!({ "name": "x.test", "colour": "red" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "colour"),
        "{}",
        r.body
    );
    assert!(r.error().contains("colour"));
    let r = c
        .post(
            &format!("{API}/domains"),
            json!({ "name": "y.test", "user_limit": "many" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "user_limit"),
        "{}",
        r.body
    );
    assert_eq!(c.get(&format!("{API}/domains/x.test")).await.status, 404);
    assert_eq!(c.get(&format!("{API}/domains/y.test")).await.status, 404);
    let r = c
        .patch(
            &format!("{API}/domains/two.test"),
            json!({ "user_limit": 3 }),
        )
        .await;
    assert_eq!(r.json()["user_limit"], 3, "{}", r.body);
    assert_eq!(r.json()["description"], "second");
    let r = c
        .post(&format!("{API}/domains/two.test/primary"), json!({}))
        .await;
    assert_eq!(r.json()["primary"], true, "{}", r.body);
    let list = c.get(&format!("{API}/domains")).await.json();
    assert_eq!(list["domains"].as_array().map(Vec::len), Some(2));
    // The primary domain cannot be removed; a domain with users neither.
    assert_eq!(
        c.delete(&format!("{API}/domains/two.test")).await.status,
        409
    );
    c.post(&format!("{API}/domains/example.com/primary"), json!({}))
        .await;
    assert_eq!(
        c.delete(&format!("{API}/domains/two.test")).await.status,
        204
    );
    assert_eq!(c.get(&format!("{API}/domains/two.test")).await.status, 404);
    let cfg = env.log(LogKind::Config);
    assert!(
        cfg.contains("insert Domain set Name='two.test', Description='second'"),
        "{cfg}"
    );
    assert!(cfg.contains("delete Domain set Name='two.test'"), "{cfg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_crud_search_and_validation() {
    let env = env();
    let c = env.client().await.admin().await;
    let u =
        |a: &str| json!({ "address": a, "password": "Long-enough-9", "full_name": "Zoe Quill" });
    let r = c.post(&format!("{API}/users"), u("zoe@example.com")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.json().get("password").is_none());
    let r = c.post(&format!("{API}/users"), u("zoe@example.com")).await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (409, "address"),
        "{}",
        r.body
    );
    let r = c.post(&format!("{API}/users"), u("not an address")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/users"),
            u(&format!("{}@example.com", "a".repeat(65))),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c
        .post(&format!("{API}/users"), u("nobody@nodomain.test"))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c
        .post(&format!("{API}/users"), json!({ "address": "long@example.com", "password": "Long-enough-9", "description": "d".repeat(2000) }))
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "description"),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "nopw@example.com" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "password"),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "weak@example.com", "password": "x" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "password"),
        "{}",
        r.body
    );
    for a in ["long", "nopw", "weak"] {
        assert_eq!(
            c.get(&format!("{API}/users/{a}@example.com")).await.status,
            404
        );
    }
    // Search by substring of the full name (guide §8.6).
    let r = c.get(&format!("{API}/users?q=quill")).await;
    let users = r.json()["users"].as_array().cloned().unwrap_or_default();
    assert_eq!(users.len(), 1, "{}", r.body);
    assert_eq!(users[0]["address"], "zoe@example.com");
    assert_eq!(
        c.get(&format!("{API}/users?domain=example.com"))
            .await
            .json()["users"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    // Patch: quota merges, unknown field named, over-long value refused.
    c.patch(
        &format!("{API}/users/zoe@example.com"),
        json!({ "quota": { "bytes": 1000, "messages": 7 } }),
    )
    .await;
    let r = c
        .patch(
            &format!("{API}/users/zoe@example.com"),
            json!({ "quota": { "bytes": 2000 } }),
        )
        .await;
    assert_eq!(
        r.json()["quota"],
        json!({ "bytes": 2000, "messages": 7 }),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/users/zoe@example.com"),
            json!({ "quota": { "bytez": 1 } }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "quota.bytez"),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/users/zoe@example.com"),
            json!({ "enabled": false, "nickname": "z" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "nickname"),
        "{}",
        r.body
    );
    let r = c.get(&format!("{API}/users/zoe@example.com")).await;
    assert_eq!(r.json()["user"]["enabled"], true, "nothing half-saved");
    assert_eq!(r.json()["logins"]["login_count"], 0);
    assert_eq!(
        c.patch(
            &format!("{API}/users/ghost@example.com"),
            json!({ "enabled": false })
        )
        .await
        .status,
        404
    );
    // The last full admin cannot demote itself.
    let r = c
        .patch(
            &format!("{API}/users/admin@example.com"),
            json!({ "admin_rights": "none" }),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // Remove.
    assert_eq!(
        c.delete(&format!("{API}/users/zoe@example.com?mailbox=bogus"))
            .await
            .status,
        400
    );
    assert_eq!(
        c.delete(&format!("{API}/users/zoe@example.com"))
            .await
            .status,
        204
    );
    assert_eq!(
        c.get(&format!("{API}/users/zoe@example.com")).await.status,
        404
    );
    assert!(
        env.log(LogKind::Config)
            .contains("delete User set Name='zoe@example.com'")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_edit_is_all_or_nothing() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c
        .patch(
            &format!("{API}/users"),
            json!({ "addresses": ["alice@example.com", "viewer@example.com"], "patch": { "quota": { "bytes": 5000 }, "description": "staff" } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["users"].as_array().map(Vec::len), Some(2));
    for a in ["alice", "viewer"] {
        let u = c.get(&format!("{API}/users/{a}@example.com")).await.json();
        assert_eq!(u["user"]["quota"]["bytes"], 5000);
        assert_eq!(u["user"]["description"], "staff");
    }
    // One unknown address: nothing changes.
    let r = c
        .patch(
            &format!("{API}/users"),
            json!({ "addresses": ["alice@example.com", "ghost@example.com"], "patch": { "description": "changed" } }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "addresses"),
        "{}",
        r.body
    );
    // A change that fails on the second user (demoting the last full admin) is rolled back.
    let r = c
        .patch(
            &format!("{API}/users"),
            json!({ "addresses": ["viewer@example.com", "admin@example.com"], "patch": { "admin_rights": "none", "description": "x" } }),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let v = c
        .get(&format!("{API}/users/viewer@example.com"))
        .await
        .json();
    assert_eq!(v["user"]["description"], "staff");
    assert_eq!(v["user"]["admin_rights"], "read-only");
    let r = c
        .patch(
            &format!("{API}/users"),
            json!({ "addresses": ["alice@example.com"], "patch": { "password": "New-pass-123" } }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "patch.password"),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/users"),
            json!({ "addresses": ["alice@example.com"], "patch": { "shoe": 1 } }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "patch.shoe"),
        "{}",
        r.body
    );
    assert_eq!(
        c.get(&format!("{API}/users/alice@example.com"))
            .await
            .json()["user"]["description"],
        "staff"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn statistics_json_and_csv() {
    let env = env();
    let c = env.client().await.admin().await; // one admin login recorded
    let r = c.get(&format!("{API}/users/statistics")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.json()["statistics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let admin = rows
        .iter()
        .find(|x| x["address"] == "admin@example.com")
        .expect("admin row");
    assert_eq!(admin["login_count"], 1);
    assert_eq!(admin["services"]["admin"]["login_count"], 1);
    let r = c.get(&format!("{API}/users/statistics?format=csv")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    let lines: Vec<&str> = r.body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "\"address\",\"full_name\",\"last_login\",\"login_count\",\"services\""
    );
    assert_eq!(lines.len(), 4, "{}", r.body);
    assert!(
        lines.iter().any(|l| l.starts_with(
            "\"admin@example.com\",\"\",\"2023-11-14T22:13:20+00:00\",\"1\",\"admin:1\""
        )),
        "{}",
        r.body
    );
    assert_eq!(
        c.get(&format!("{API}/users/statistics?format=xml"))
            .await
            .field(),
        "format"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_and_members() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c
        .post(
            &format!("{API}/groups"),
            json!({ "name": "sales", "domain": "example.com", "members": ["alice@example.com"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/groups"),
            json!({ "name": "sales", "domain": "example.com" }),
        )
        .await;
    assert_eq!((r.status, r.field().as_str()), (409, "name"), "{}", r.body);
    let r = c
        .post(
            &format!("{API}/groups"),
            json!({ "name": "x", "domain": "example.com", "members": ["ghost@example.com"] }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        c.get(&format!("{API}/groups/x@example.com")).await.status,
        404
    );
    let r = c
        .post(
            &format!("{API}/groups/sales@example.com/members"),
            json!({ "members": ["viewer@example.com"] }),
        )
        .await;
    assert_eq!(
        r.json()["members"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/groups/sales@example.com/members"),
            json!({ "members": ["ghost@example.com"] }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c
        .delete(&format!(
            "{API}/groups/sales@example.com/members/alice@example.com"
        ))
        .await;
    assert_eq!(
        r.json()["members"],
        json!(["viewer@example.com"]),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/groups/sales@example.com"),
            json!({ "description": "Sales team" }),
        )
        .await;
    assert_eq!(r.json()["description"], "Sales team");
    assert_eq!(
        c.get(&format!("{API}/groups?domain=example.com"))
            .await
            .json()["groups"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        c.delete(&format!("{API}/groups/sales@example.com"))
            .await
            .status,
        204
    );
    assert_eq!(
        c.delete(&format!("{API}/groups/sales@example.com"))
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases_and_check_address() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.post(&format!("{API}/aliases"), json!({ "name": "info", "domain": "example.com", "targets": ["alice", "viewer@example.com"] })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/aliases"),
            json!({ "name": "bad name!", "domain": "example.com", "targets": ["alice"] }),
        )
        .await;
    assert_eq!((r.status, r.field().as_str()), (400, "name"), "{}", r.body);
    let r = c
        .post(
            &format!("{API}/aliases"),
            json!({ "name": "empty", "domain": "example.com", "targets": [] }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "targets"),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "info@example.com" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["result"], "deliver");
    let users: Vec<&str> = v["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["user"].as_str())
        .collect();
    assert_eq!(users, ["alice@example.com", "viewer@example.com"]);
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "nobody@example.com" }),
        )
        .await;
    assert_eq!(r.json()["result"], "not-found");
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "x@elsewhere.test" }),
        )
        .await;
    assert_eq!(r.json()["result"], "not-local");
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "@@" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "address"),
        "{}",
        r.body
    );
    let r = c
        .put(
            &format!("{API}/aliases/info@example.com"),
            json!({ "targets": ["alice"] }),
        )
        .await;
    assert_eq!(r.json()["targets"], json!(["alice"]), "{}", r.body);
    assert_eq!(
        c.get(&format!("{API}/aliases/info@example.com"))
            .await
            .status,
        200
    );
    assert_eq!(
        c.get(&format!("{API}/aliases?domain=example.com"))
            .await
            .json()["aliases"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        c.delete(&format!("{API}/aliases/info@example.com"))
            .await
            .status,
        204
    );
    assert_eq!(
        c.get(&format!("{API}/aliases/info@example.com"))
            .await
            .status,
        404
    );
    assert_eq!(
        c.get(&format!("{API}/aliases/no-at-sign")).await.status,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_groups_and_time_intervals() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.post(&format!("{API}/ip-groups"), json!({ "name": "Office", "items": [ { "entry": "10.1.0.0/16", "description": "LAN" } ] })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/ip-groups"),
            json!({ "name": "office", "items": [] }),
        )
        .await;
    assert_eq!((r.status, r.field().as_str()), (409, "name"), "{}", r.body);
    let r = c
        .post(
            &format!("{API}/ip-groups"),
            json!({ "name": "Bad", "items": [ { "entry": "300.1.1.1" } ] }),
        )
        .await;
    // The bad item is named on the `items` field (the UI shows it next to that box).
    assert_eq!((r.status, r.field().as_str()), (400, "items"), "{}", r.body);
    assert!(r.error().contains("300.1.1.1"), "{}", r.body);
    assert_eq!(c.get(&format!("{API}/ip-groups/Bad")).await.status, 404);
    let r = c
        .put(
            &format!("{API}/ip-groups/Office"),
            json!({ "items": [ { "entry": "10.2.0.0/16" } ] }),
        )
        .await;
    assert_eq!(r.json()["items"][0]["entry"], "10.2.0.0/16", "{}", r.body);
    let r = c
        .put(
            &format!("{API}/ip-groups/Office"),
            json!({ "items": [ { "entry": "group:Nowhere" } ] }),
        )
        .await;
    assert_eq!((r.status, r.field().as_str()), (400, "items"), "{}", r.body);
    assert_eq!(
        c.get(&format!("{API}/ip-groups/Office")).await.json()["items"][0]["entry"],
        "10.2.0.0/16"
    );
    assert_eq!(c.get(&format!("{API}/ip-groups")).await.status, 200);
    assert_eq!(
        c.delete(&format!("{API}/ip-groups/Office")).await.status,
        204
    );

    let wh = json!({ "name": "Work hours", "items": [ { "type": "weekly", "days": ["Mon", "Tue"], "from": "08:00:00", "to": "17:00:00" } ] });
    let r = c.post(&format!("{API}/time-intervals"), wh.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        c.post(&format!("{API}/time-intervals"), wh).await.status,
        409
    );
    let r = c
        .post(
            &format!("{API}/time-intervals"),
            json!({ "name": "", "items": [] }),
        )
        .await;
    assert_eq!((r.status, r.field().as_str()), (400, "name"), "{}", r.body);
    let r = c
        .put(
            &format!("{API}/time-intervals/Work%20hours"),
            json!({ "items": [ { "type": "daily", "from": "09:00:00", "to": "10:00:00" } ] }),
        )
        .await;
    assert_eq!(r.json()["items"][0]["type"], "daily", "{}", r.body);
    assert_eq!(
        c.get(&format!("{API}/time-intervals")).await.json()["time_intervals"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        c.delete(&format!("{API}/time-intervals/Work%20hours"))
            .await
            .status,
        204
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn security_policy_patch() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c
        .patch(
            &format!("{API}/security-policy"),
            json!({ "lockout": { "max_failures": 3 } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["lockout"]["max_failures"], 3);
    assert_eq!(r.json()["lockout"]["enabled"], true);
    let r = c
        .patch(
            &format!("{API}/security-policy"),
            json!({ "lockout": { "max_failures": 9, "maximum": 1 } }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "lockout.maximum"),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/security-policy"),
            json!({ "lockout": { "max_failures": 9 }, "exempt_ip_group": "Nowhere" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "exempt_ip_group"),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/security-policy"),
            json!({ "mode": "paranoid" }),
        )
        .await;
    assert_eq!((r.status, r.field().as_str()), (400, "mode"), "{}", r.body);
    assert_eq!(
        c.get(&format!("{API}/security-policy")).await.json()["lockout"]["max_failures"],
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn services_settings_and_control() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/services")).await;
    assert_eq!(
        r.json()["services"].as_array().map(Vec::len),
        Some(keel_net::services::CATALOGUE.len())
    );
    let r = c
        .patch(
            &format!("{API}/services/imap"),
            json!({ "max_connections": 20, "access_group": null }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["settings"]["max_connections"], 20);
    assert_eq!(r.json()["settings"]["access_group"], json!(null));
    let r = c
        .patch(
            &format!("{API}/services/imap"),
            json!({ "max_connections": 0 }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "max_connections"),
        "{}",
        r.body
    );
    let r = c
        .patch(&format!("{API}/services/imap"), json!({ "max_conns": 3 }))
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "max_conns"),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/services/imap"),
            json!({ "access_group": "Nowhere" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "access_group"),
        "{}",
        r.body
    );
    assert_eq!(
        c.get(&format!("{API}/services/imap")).await.json()["settings"]["max_connections"],
        20
    );
    assert_eq!(c.get(&format!("{API}/services/gopher")).await.status, 404);
    for a in ["stop", "start", "restart"] {
        let r = c.post(&format!("{API}/services/pop3/{a}"), json!({})).await;
        assert_eq!(r.status, 200, "{a}: {}", r.body);
    }
    let ctl = keel_net::services::load_control(env.state.meta.as_ref(), "pop3").expect("control");
    assert_eq!((ctl.running, ctl.restarts), (Some(true), 1));
    assert_eq!(
        c.post(&format!("{API}/services/pop3/explode"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        c.post(&format!("{API}/services/nntp/start"), json!({}))
            .await
            .status,
        409
    );
    assert!(
        env.log(LogKind::Config)
            .contains("update Service set Name='pop3', Action='restart'")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_settings_patch_masks_the_relay_password() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c
        .patch(&format!("{API}/smtp-settings"), json!({ "max_recipients": 50, "relay_auth": { "user": "relay", "password": "Relay-secret-5" } }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["relay_auth"]["password"], "xxxxxx");
    assert_eq!(r.json()["max_recipients"], 50);
    // Sending the mask back keeps the stored password.
    let r = c
        .patch(
            &format!("{API}/smtp-settings"),
            json!({ "relay_auth": { "user": "relay2", "password": "xxxxxx" } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = keel_smtp::load_settings(env.state.meta.as_ref()).expect("settings");
    assert_eq!(
        stored.relay_auth.map(|a| (a.user, a.password)),
        Some(("relay2".into(), "Relay-secret-5".into()))
    );
    let r = c
        .patch(
            &format!("{API}/smtp-settings"),
            json!({ "max_recipient": 3 }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "max_recipient"),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/smtp-settings"),
            json!({ "max_recipients": 7, "relay_ip_group": "Nowhere" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "relay_ip_group"),
        "{}",
        r.body
    );
    assert_eq!(
        c.get(&format!("{API}/smtp-settings")).await.json()["max_recipients"],
        50
    );
    // guide §20 "At": times of day as HH:MM.
    let r = c
        .patch(
            &format!("{API}/smtp-settings"),
            json!({ "etrn_download_at": ["06:30", "25:00"] }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "etrn_download_at"),
        "{}",
        r.body
    );
    assert!(r.error().contains("'25:00'"), "{}", r.body);
    let r = c
        .patch(
            &format!("{API}/smtp-settings"),
            json!({ "etrn_download_at": ["06:30", "7:05"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["etrn_download_at"], json!(["06:30", "7:05"]));
    // ETRN server passwords are shown masked and kept when sent back masked.
    let server = |pw: &str| {
        json!({ "etrn_download": [ { "host": "backup.example.net:25", "domains": ["example.com"],
                 "auth": { "user": "keel", "password": pw } } ] })
    };
    let r = c
        .patch(&format!("{API}/smtp-settings"), server("Etrn-secret-9"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["etrn_download"][0]["auth"]["password"], "xxxxxx");
    assert!(!r.body.contains("Etrn-secret-9"));
    let r = c
        .patch(&format!("{API}/smtp-settings"), server("xxxxxx"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = keel_smtp::load_settings(env.state.meta.as_ref()).expect("settings");
    assert_eq!(
        stored.etrn_download[0]
            .auth
            .as_ref()
            .map(|a| a.password.as_str()),
        Some("Etrn-secret-9"),
        "the masked value kept the stored password"
    );
    let r = c
        .patch(
            &format!("{API}/smtp-settings"),
            json!({ "etrn_download": [ { "host": "other.example.net", "domains": ["example.com"],
                     "auth": { "user": "keel", "password": "xxxxxx" } } ] }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "etrn_download"),
        "{}",
        r.body
    );
    // The SMTP page shows the servers masked too (after the configuration wizard).
    let r = c
        .post(
            &format!("{API}/setup-wizard"),
            json!({ "hostname": "mail.example.com", "primary_domain": "example.com", "password": "Wizard-pass-123" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = c.get("/admin/smtp").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("backup.example.net:25"));
    assert!(!page.body.contains("Etrn-secret-9"));
    assert!(!env.all_logs().contains("Etrn-secret-9"));
    assert!(!env.all_logs().contains("Relay-secret-5"));
}

fn enqueue(env: &Env, id: &str, sender: &str, rcpt: &str, created: i64) {
    let bytes = format!("Subject: {id}\r\n\r\nbody\r\n");
    let blob = env.state.blobs.put(bytes.as_bytes()).expect("blob");
    env.state
        .meta
        .enqueue(&QueuedMessage {
            id: id.into(),
            sender: sender.into(),
            envid: None,
            ret: None,
            size: bytes.len() as u64,
            blob,
            created,
            next_attempt: created + 600,
            recipients: vec![QueuedRecipient::new(rcpt)],
        })
        .expect("enqueue");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_list_show_retry_delete() {
    let env = env();
    enqueue(
        &env,
        "q1-0001",
        "alice@example.com",
        "x@remote.test",
        T0 - 7200,
    );
    enqueue(
        &env,
        "q2-0002",
        "viewer@example.com",
        "y@other.test",
        T0 - 60,
    );
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/queue")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["totals"]["messages"], 2);
    assert_eq!(
        c.get(&format!("{API}/queue?q=other.test")).await.json()["totals"]["messages"],
        1
    );
    let r = c.get(&format!("{API}/queue/q1-0001")).await;
    assert_eq!(r.json()["sender"], "alice@example.com", "{}", r.body);
    assert_eq!(c.get(&format!("{API}/queue/nope")).await.status, 404);
    assert_eq!(
        c.post(&format!("{API}/queue/q1-0001/retry"), json!({}))
            .await
            .json()["messages"],
        1
    );
    assert_eq!(
        c.post(&format!("{API}/queue/nope/retry"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        c.post(&format!("{API}/queue/run"), json!({})).await.json()["messages"],
        2
    );
    let r = c.post(&format!("{API}/queue/delete"), json!({})).await;
    assert_eq!(r.status, 400, "no criteria: {}", r.body);
    let r = c
        .post(&format!("{API}/queue/delete"), json!({ "recipent": "*" }))
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "recipent"),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/queue/delete"),
            json!({ "older_than_secs": 3600 }),
        )
        .await;
    assert_eq!(r.json()["deleted"], json!(["q1-0001"]), "{}", r.body);
    assert_eq!(c.delete(&format!("{API}/queue/q1-0001")).await.status, 404);
    assert_eq!(
        c.delete(&format!("{API}/queue/q2-0002")).await.json()["deleted"],
        json!(["q2-0002"])
    );
    assert_eq!(
        c.get(&format!("{API}/queue")).await.json()["totals"],
        json!({ "messages": 0, "bytes": 0 })
    );
    assert!(
        env.log(LogKind::Config)
            .contains("delete Queue set Name='q1-0001'")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_list_read_search_clear() {
    let env = env();
    env.state.logs.warning("disk almost full on /var");
    env.state.logs.warning("another warning");
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/logs")).await;
    assert_eq!(
        r.json()["logs"].as_array().map(Vec::len),
        Some(8),
        "{}",
        r.body
    );
    let r = c.get(&format!("{API}/logs/warning?lines=1")).await;
    let lines = r.json()["lines"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 1, "{}", r.body);
    assert!(
        lines[0]
            .as_str()
            .is_some_and(|l| l.ends_with("another warning"))
    );
    let r = c.get(&format!("{API}/logs/warning?q=DISK")).await;
    assert_eq!(
        r.json()["lines"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    let r = c
        .get(&format!("{API}/logs/config?q=session%20opened"))
        .await;
    assert_eq!(
        r.json()["lines"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    assert_eq!(
        c.get(&format!("{API}/logs/warning?lines=0")).await.field(),
        "lines"
    );
    assert_eq!(
        c.get(&format!("{API}/logs/warning?lines=lots"))
            .await
            .status,
        400
    );
    assert_eq!(c.get(&format!("{API}/logs/kernel")).await.status, 404);
    assert_eq!(c.delete(&format!("{API}/logs/warning")).await.status, 204);
    assert_eq!(
        c.get(&format!("{API}/logs/warning")).await.json()["lines"],
        json!([])
    );
    assert!(
        env.log(LogKind::Config)
            .contains("delete Log set Name='warning'")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_administration_settings_validation() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/remote-administration")).await;
    assert_eq!(
        r.json(),
        json!({ "remote_enabled": false, "remote_ip_group": null, "session_idle_minutes": 30, "bind_session_to_ip": false, "web_admin_enabled": false, "web_admin_ip_group": null })
    );
    let r = c
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "remote_enabled": true, "remote_ip_group": "Nowhere" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "remote_ip_group"),
        "{}",
        r.body
    );
    let r = c
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "session_idle_minutes": 0 }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "session_idle_minutes"),
        "{}",
        r.body
    );
    assert_eq!(
        c.get(&format!("{API}/remote-administration")).await.json()["remote_enabled"],
        false
    );
}

/// `POST /users/{address}/reindex` (requirements-3 §5.4): with no body every folder, with
/// `{"folder"}` one; the report names what was fixed. Bad folder values are refused with
/// the field named; unknown users and folders are 404. A domain setting out of range is
/// named by its path in the request (`settings.…`), so the web page shows it there.
#[tokio::test(flavor = "multi_thread")]
async fn reindex_endpoint_and_retention_setting_errors() {
    use keel_store::{FolderKind, NewMessage};
    let env = env();
    let c = env.client().await.admin().await;
    let (meta, blobs) = (env.state.meta.clone(), env.state.blobs.clone());
    let bytes = b"Subject: wrong size\r\n\r\nhello\r\n";
    let inbox = meta
        .create_folder("alice@example.com", "INBOX", FolderKind::Mail)
        .expect("folder");
    meta.create_folder("alice@example.com", "Sent Items", FolderKind::Mail)
        .expect("folder");
    let blob = blobs.put(bytes).expect("blob");
    meta.append_messages(
        inbox.id,
        &[NewMessage {
            blob,
            size: 999,
            flags: vec!["\\Seen".into()],
            internal_date: T0,
        }],
    )
    .expect("append");

    let r = c
        .call(
            "POST",
            &format!("{API}/users/alice@example.com/reindex"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["account"], "alice@example.com");
    assert_eq!(v["folders"].as_array().map(Vec::len), Some(2), "{v}");
    let f = &v["folders"][0];
    assert_eq!(f["name"], "INBOX");
    assert_eq!(f["uid_validity"], inbox.uid_validity);
    assert_eq!(
        f["sizes_fixed"],
        json!([{ "uid": 1, "stored": 999, "actual": bytes.len() }])
    );
    assert_eq!(f["after"]["bytes"], bytes.len());
    assert_eq!(f["after"]["unseen"], 0);
    assert_eq!(
        v["account_state"]["usage_after"],
        json!({ "bytes": bytes.len(), "messages": 1 })
    );

    let r = c
        .post(
            &format!("{API}/users/alice@example.com/reindex"),
            json!({ "folder": "inbox" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["folders"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.json()["folders"][0]["sizes_fixed"], json!([]));
    let r = c
        .post(
            &format!("{API}/users/alice@example.com/reindex"),
            json!({ "folder": 5 }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "folder"),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("{API}/users/alice@example.com/reindex"),
            json!({ "folder": "Nope" }),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/users/nobody@example.com/reindex"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        env.log(LogKind::Config)
            .contains("Reindex set Name='alice@example.com'")
    );
    assert!(
        env.log(LogKind::Operations)
            .contains("reindex: Reindexed 2 folder(s)")
    );

    let r = c
        .patch(
            &format!("{API}/domains/example.com"),
            json!({ "settings": { "deleted_items_recovery_days": 400 } }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "settings.deleted_items_recovery_days"),
        "{}",
        r.body
    );
}

/// guide §25.1, §25.9 through the API: rotation, size, kept files and debug categories,
/// applied at once to the running logs, checked field by field, read-only for viewers.
#[tokio::test(flavor = "multi_thread")]
async fn log_settings_rotation_and_debug_categories() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/log-settings")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["debug_categories"], json!([]));
    assert_eq!(r.json()["mail"]["rotation"], "never");
    let r = c
        .patch(
            &format!("{API}/log-settings"),
            json!({ "mail": { "rotation": "daily", "keep": 7 }, "debug_categories": ["smtp-server", "queue"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["mail"]["rotation"], "daily");
    assert_eq!(r.json()["mail"]["keep"], 7);
    assert_eq!(r.json()["security"]["rotation"], "never", "others kept");
    let live = env.state.logs.settings();
    assert!(
        live.debug_categories
            .contains(&keel_core::log::DebugCategory::SmtpServer)
    );
    assert_eq!(live.mail.keep, 7, "applied to the running logs");
    for (body, field) in [
        (json!({ "mail": { "rotation": "yearly" } }), "mail"),
        (
            json!({ "debug_categories": ["no-such-category"] }),
            "debug_categories",
        ),
        (json!({ "mail": { "keep": 5000 } }), "mail.keep"),
        (json!({ "smtp": {} }), "smtp"),
    ] {
        let r = c.patch(&format!("{API}/log-settings"), body.clone()).await;
        assert_eq!(
            (r.status, r.field().as_str()),
            (400, field),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(
        c.get(&format!("{API}/log-settings")).await.json()["mail"]["keep"],
        7,
        "nothing half-saved"
    );
    assert!(
        env.log(LogKind::Config)
            .contains("update LogSettings set Name='logs'")
    );
    let mut v = env.client_at(env.serve(None).await, "viewer");
    assert_eq!(v.login("viewer@example.com", PW).await.status, 200);
    assert_eq!(v.get(&format!("{API}/log-settings")).await.status, 200);
    assert_eq!(
        v.patch(
            &format!("{API}/log-settings"),
            json!({ "debug_categories": [] })
        )
        .await
        .status,
        403
    );
}

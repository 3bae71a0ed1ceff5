//! Domain administrators (guide ch. 32, §8.2 step 6, §19.3; requirements-3 §4): the right
//! "User can administer aliases, users and groups for his/her own domain", the "web
//! administration from network" switch, and everything a delegated administrator must not
//! reach. Driven with curl against the real router on a loopback socket.

mod common;

use common::{API, PW, env};
use keel_core::log::LogKind;
use serde_json::json;

const REMOTE: &str = "203.0.113.40";

/// Adds `other.com` with `olga`, the domain administrator `dora@example.com` (own flag) and
/// `carl@example.com`, made one through a group of example.com.
async fn setup(admin: &common::Client) {
    for (path, body) in [
        ("/domains", json!({ "name": "other.com" })),
        (
            "/users",
            json!({ "address": "olga@other.com", "password": "Olga-secret-11" }),
        ),
        (
            "/users",
            json!({ "address": "dora@example.com", "password": PW, "domain_admin": true }),
        ),
        (
            "/users",
            json!({ "address": "carl@example.com", "password": PW }),
        ),
        (
            "/groups",
            json!({ "name": "helpers", "domain": "example.com", "members": ["carl"], "domain_admin": true }),
        ),
    ] {
        let r = admin.post(&format!("{API}{path}"), body).await;
        assert_eq!(r.status, 201, "{path}: {}", r.body);
    }
}

/// requirements-3 §4 "Web administration delegation (§32)": a domain admin of example.com
/// creates a user in example.com; one in other.com fails with 403; the domain's user limit
/// holds; with "Enable web administration from network" off, a remote sign-in is refused.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_web_administration_delegation() {
    let env = env();
    let admin = env.client().await.admin().await;
    setup(&admin).await;

    // Web administration from the network is off by default: refused before the password.
    let remote_addr = env.serve(Some(REMOTE.parse().expect("ip"))).await;
    let mut remote = env.client_at(remote_addr, "remote");
    let r = remote.login("dora@example.com", PW).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.error().contains("remote administration is disabled"),
        "{}",
        r.body
    );
    let r = admin
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "web_admin_enabled": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = remote.login("dora@example.com", PW).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["domain"], "example.com");
    assert_eq!(
        remote.get(&format!("{API}/session")).await.json()["domain"],
        "example.com"
    );

    // Creating a user in the own domain works; in another domain it is 403.
    let r = remote
        .post(
            &format!("{API}/users"),
            json!({ "address": "eve@example.com", "password": "Eve-secret-42" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = remote
        .post(
            &format!("{API}/users"),
            json!({ "address": "mallory@other.com", "password": "Mal-secret-42" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.error().contains("only the domain example.com"),
        "{}",
        r.body
    );
    let r = admin.get(&format!("{API}/users?domain=other.com")).await;
    assert_eq!(r.json()["users"].as_array().map(Vec::len), Some(1));

    // The user limit of the domain (guide §32.3 step 4) holds for delegated admins.
    let r = admin
        .patch(
            &format!("{API}/domains/example.com"),
            json!({ "user_limit": 6 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = remote
        .post(
            &format!("{API}/users"),
            json!({ "address": "fred@example.com", "password": "Fred-secret-42" }),
        )
        .await;
    assert_ne!(r.status, 201, "{}", r.body);
    assert!(r.error().contains("limit"), "{}", r.body);
    assert_eq!(
        admin
            .get(&format!("{API}/users/fred@example.com"))
            .await
            .status,
        404
    );

    // The Config log names the domain administrator.
    let cfg = env.log(LogKind::Config);
    assert!(
        cfg.contains(&format!(
            "Domain admin dora@example.com - session opened for host {REMOTE}"
        )),
        "{cfg}"
    );
    assert!(
        cfg.contains("Domain admin dora@example.com - insert User set Name='eve@example.com'"),
        "{cfg}"
    );

    // Turning it off again ends remote domain administration at the next request.
    let r = admin
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "web_admin_enabled": false }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(remote.get(&format!("{API}/users")).await.status, 403);
}

/// What a domain administrator sees and may change: its domain's users, groups and aliases
/// only, never an administrator's account, never rights it does not hold.
#[tokio::test(flavor = "multi_thread")]
async fn domain_admin_stays_inside_its_domain() {
    let env = env();
    let admin = env.client().await.admin().await;
    setup(&admin).await;
    let r = admin
        .post(
            &format!("{API}/aliases"),
            json!({ "name": "sales", "domain": "other.com", "targets": ["olga@other.com"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut c = env.client_at(env.serve(None).await, "dora");
    let r = c.login("dora@example.com", PW).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["domain"], "example.com");

    // Lists show the own domain only; another one is refused.
    let users = c.get(&format!("{API}/users")).await.json();
    let listed: Vec<&str> = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["address"].as_str())
        .collect();
    assert!(listed.contains(&"alice@example.com"), "{listed:?}");
    assert!(
        !listed.iter().any(|a| a.ends_with("@other.com")),
        "{listed:?}"
    );
    assert_eq!(
        c.get(&format!("{API}/users?domain=other.com")).await.status,
        403
    );
    assert_eq!(
        c.get(&format!("{API}/users/olga@other.com")).await.status,
        403
    );
    assert_eq!(
        c.get(&format!("{API}/aliases/sales@other.com"))
            .await
            .status,
        403
    );
    let aliases = c.get(&format!("{API}/aliases")).await.json();
    assert_eq!(aliases["aliases"].as_array().map(Vec::len), Some(0));
    let r = c.get(&format!("{API}/users/statistics?format=csv")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("other.com"), "{}", r.body);
    assert_eq!(
        c.get(&format!("{API}/domains/example.com")).await.status,
        200
    );
    assert_eq!(c.get(&format!("{API}/domains/other.com")).await.status, 403);

    // Server settings and other sections are out of reach.
    for (method, path) in [
        ("GET", "/smtp-settings"),
        ("GET", "/domains"),
        ("GET", "/queue"),
        ("GET", "/logs/config"),
        ("GET", "/remote-administration"),
        ("POST", "/users/unlock"),
        ("POST", "/users/alice@example.com/reindex"),
    ] {
        let r = c
            .call(method, &format!("{API}{path}"), Some(&json!({})))
            .await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    let r = c
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "web_admin_enabled": true }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Ordinary accounts of the domain: changed. Rights: not granted.
    let r = c
        .patch(
            &format!("{API}/users/alice@example.com"),
            json!({ "full_name": "Alice A." }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for body in [
        json!({ "admin_rights": "full" }),
        json!({ "public_folder_admin": true }),
    ] {
        let r = c
            .patch(&format!("{API}/users/alice@example.com"), body.clone())
            .await;
        assert_eq!(r.status, 403, "{body}: {}", r.body);
    }
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "root2@example.com", "password": "Root2-secret-9", "admin_rights": "read-only" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Another domain administrator of the same domain may be appointed.
    let r = c
        .patch(
            &format!("{API}/users/alice@example.com"),
            json!({ "domain_admin": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["domain_admin"], true);

    // Administrators' accounts are not theirs to change or remove.
    let r = c
        .patch(
            &format!("{API}/users/admin@example.com"),
            json!({ "password": "Taken-over-123" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        c.delete(&format!("{API}/users/viewer@example.com"))
            .await
            .status,
        403
    );
    let r = c
        .patch(
            &format!("{API}/users"),
            json!({ "addresses": ["alice@example.com", "admin@example.com"], "patch": { "enabled": false } }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        admin
            .get(&format!("{API}/users/alice@example.com"))
            .await
            .json()["user"]["enabled"],
        true,
        "nothing half-saved"
    );
    // A mailbox is not handed to another domain's user.
    let r = c
        .delete(&format!(
            "{API}/users/carl@example.com?mailbox=move:olga@other.com"
        ))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Groups: own domain, own members, no rights.
    let r = c
        .post(
            &format!("{API}/groups"),
            json!({ "name": "team", "domain": "example.com", "members": ["alice"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/groups/team@example.com/members"),
            json!({ "members": ["olga@other.com"] }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.field(), "members");
    let r = c
        .patch(
            &format!("{API}/groups/team@example.com"),
            json!({ "admin_rights": "full" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/groups"),
            json!({ "name": "x", "domain": "other.com" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Aliases: own domain only; check-address only for own addresses.
    let r = c
        .post(
            &format!("{API}/aliases"),
            json!({ "name": "info", "domain": "example.com", "targets": ["alice"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/aliases"),
            json!({ "name": "info", "domain": "other.com", "targets": ["olga"] }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "info@example.com" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/aliases/check-address"),
            json!({ "address": "sales@other.com" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // The web UI: only users, groups and aliases of example.com.
    let r = c.get("/admin/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/admin/users"));
    let r = c.get("/admin/users").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("administrator of example.com"),
        "{}",
        r.body
    );
    assert!(r.body.contains("alice@example.com"));
    assert!(!r.body.contains("other.com"), "{}", r.body);
    assert!(
        !r.body.contains("SMTP server"),
        "the sidebar keeps three sections"
    );
    assert!(!r.body.contains("name=\"admin_rights\""));
    assert_eq!(c.get("/admin/smtp").await.status, 403);
    assert_eq!(c.get("/admin/users/olga@other.com").await.status, 403);
    let r = c.get("/admin/users/alice@example.com").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("name=\"domain_admin\""));
    assert!(!r.body.contains("/reindex"));
}

/// The right comes from the user or from a group of the user's own domain; a group of
/// another domain grants nothing, and a user without either right cannot sign in.
#[tokio::test(flavor = "multi_thread")]
async fn the_right_comes_from_the_user_or_a_group_of_its_domain() {
    let env = env();
    let admin = env.client().await.admin().await;
    setup(&admin).await;
    let mut carl = env.client_at(env.serve(None).await, "carl");
    let r = carl.login("carl@example.com", PW).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["domain"], "example.com");

    // A group of other.com naming alice@example.com does not make her an administrator.
    let r = admin
        .post(
            &format!("{API}/groups"),
            json!({ "name": "ops", "domain": "other.com", "members": ["alice@example.com"], "domain_admin": true }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut alice = env.client_at(env.serve(None).await, "alice");
    let r = alice.login("alice@example.com", PW).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.error().contains("no administration rights"), "{}", r.body);

    // A full administrator from a web-administration-only address gets its own domain.
    let ips = admin
        .post(
            &format!("{API}/ip-groups"),
            json!({ "name": "Branch", "items": [ { "entry": REMOTE } ] }),
        )
        .await;
    assert_eq!(ips.status, 201, "{}", ips.body);
    let r = admin
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "web_admin_enabled": true, "web_admin_ip_group": "Branch" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let addr = env.serve(Some(REMOTE.parse().expect("ip"))).await;
    let mut boss = env.client_at(addr, "boss");
    let r = boss.login("admin@example.com", PW).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["domain"], "example.com");
    assert_eq!(boss.get(&format!("{API}/smtp-settings")).await.status, 403);
    // An address outside the group is refused.
    let other = env.serve(Some("198.51.100.7".parse().expect("ip"))).await;
    let mut outsider = env.client_at(other, "outsider");
    let r = outsider.login("dora@example.com", PW).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.error().contains("IP address group"), "{}", r.body);
    // A bad group name is refused at the field.
    let r = admin
        .patch(
            &format!("{API}/remote-administration"),
            json!({ "web_admin_ip_group": "Nowhere" }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.field(), "web_admin_ip_group");
}

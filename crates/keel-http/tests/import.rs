//! User templates (guide §8.10) and the CSV import (guide §8.9) through the admin API, with
//! curl: preview, per-row problems, the selected rows created, templates applied, audit
//! lines without passwords, and a domain administrator's limits.

mod common;

use common::{API, PW, env};
use keel_core::log::LogKind;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn templates_crud_and_a_user_made_from_one() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c
        .post(
            &format!("{API}/groups"),
            json!({ "name": "staff", "domain": "example.com" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/user-templates"),
            json!({ "name": "Staff", "domain": "example.com", "description": "Staff member",
                    "quota": { "bytes": 1048576 }, "groups": ["staff"], "local_domain_only": true }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["groups"], json!(["staff@example.com"]));
    // Bad input names the field; nothing is saved.
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "staff" }), "name"),
        (json!({ "name": "x", "domain": "nowhere.test" }), "domain"),
        (
            json!({ "name": "x", "groups": ["staff@example.com"] }),
            "groups",
        ),
        (
            json!({ "name": "x", "quota": { "bytes": "lots" } }),
            "quota",
        ),
        (json!({ "name": "x", "bogus": 1 }), "bogus"),
    ] {
        let r = c.post(&format!("{API}/user-templates"), body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.field().starts_with(field), "{body}: {}", r.body);
    }
    let list = c.get(&format!("{API}/user-templates")).await.json();
    assert_eq!(list["templates"].as_array().map(Vec::len), Some(1));
    let r = c
        .patch(
            &format!("{API}/user-templates/staff"),
            json!({ "description": "Our staff" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["quota"]["bytes"],
        1048576,
        "a patch keeps the rest"
    );

    // A user from the template; the body's fields win over the template's.
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "tom@example.com", "password": "Tom-secret-77", "template": "Staff",
                    "quota": { "bytes": 2097152 } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let u = r.json();
    assert_eq!(u["description"], "Our staff");
    assert_eq!(u["local_domain_only"], true);
    assert_eq!(u["quota"]["bytes"], 2097152);
    let g = c
        .get(&format!("{API}/groups/staff@example.com"))
        .await
        .json();
    assert_eq!(g["members"], json!(["tom@example.com"]));
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "x@example.com", "password": "X-secret-777", "template": "nope" }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.field(), "template");

    let r = c.delete(&format!("{API}/user-templates/STAFF")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        c.get(&format!("{API}/user-templates/staff")).await.status,
        404
    );
    let cfg = env.log(LogKind::Config);
    assert!(
        cfg.contains("insert UserTemplate set Name='Staff'"),
        "{cfg}"
    );
    assert!(
        cfg.contains("delete UserTemplate set Name='STAFF'"),
        "{cfg}"
    );
}

/// guide §8.9 acceptance: a CSV with a header line is previewed (every row and its
/// problem, nothing created), then the ticked rows are imported; passwords never reach a
/// log or the answer.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_csv_user_import_with_preview() {
    let env = env();
    let c = env.client().await.admin().await;
    for g in ["sales", "all"] {
        let r = c
            .post(
                &format!("{API}/groups"),
                json!({ "name": g, "domain": "example.com" }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // guide table 8.2: commas between fields, quoted lists.
    let csv = "Name,Password,FullName,Description,MailAddress,Groups\r\n\
               jwayne,VbD66op1Q,John Wayne,Developer,jwayne,\"read, all\"\r\n\
               wsmith,Ahdpppu4Q,Winston Smith,Sales,\"wsmith,smith\",\"sales, all\"\r\n\
               amonroe,SpoiuS158,Ada Monroe,GM's Assistant,\"amonroe,ada.monroe\",\"all\"\r\n\
               alice,Whatever-1,Alice,,,\r\n";
    let r = c
        .post(
            &format!("{API}/users/import"),
            json!({ "domain": "example.com", "csv": csv, "dry_run": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = r.json();
    assert_eq!(p["ready"], 2, "{p}");
    assert_eq!(p["errors"], 2, "{p}");
    let rows = p["rows"].as_array().expect("rows");
    assert!(
        rows[0]["problem"]
            .as_str()
            .unwrap_or("")
            .contains("read@example.com")
    );
    assert!(
        rows[3]["problem"]
            .as_str()
            .unwrap_or("")
            .contains("already exists")
    );
    assert_eq!(
        c.get(&format!("{API}/users/wsmith@example.com"))
            .await
            .status,
        404
    );
    assert!(!r.body.contains("Ahdpppu4Q"), "no password in the answer");

    let r = c
        .post(
            &format!("{API}/users/import"),
            json!({ "domain": "example.com", "csv": csv, "only": ["wsmith"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["created"], 1, "{}", r.body);
    assert_eq!(r.json()["skipped"], 1, "{}", r.body);
    let u = c
        .get(&format!("{API}/users/wsmith@example.com"))
        .await
        .json();
    assert_eq!(u["user"]["full_name"], "Winston Smith");
    assert_eq!(u["user"]["addresses"], json!(["smith@example.com"]));
    // The imported password works for signing in (to the mail login API).
    let r = c
        .post(
            "/admin/api/v1/session",
            json!({ "login": "wsmith@example.com", "password": "Ahdpppu4Q" }),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "authenticated but no admin rights: {}",
        r.body
    );
    let cfg = env.log(LogKind::Config);
    assert!(
        cfg.contains(
            "insert User set Name='wsmith@example.com', Full_name='Winston Smith', Imported='1'"
        ),
        "{cfg}"
    );
    assert!(
        !env.all_logs().contains("Ahdpppu4Q"),
        "a password reached a log"
    );

    // A file longer than the 1 KiB text limit of other fields (300 rows) is taken whole.
    let mut big = String::from("Name;FullName\n");
    for i in 0..300 {
        big.push_str(&format!("bulk{i};Bulk user number {i}\n"));
    }
    assert!(big.len() > 4096);
    let r = c
        .post(
            &format!("{API}/users/import"),
            json!({ "domain": "example.com", "csv": big, "dry_run": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ready"], 300);

    // File-level problems: 400 on the csv field.
    for (csv, needle) in [
        ("jwayne;VbD66op1\n", "header"),
        ("FullName;Password\nJo;x\n", "Name"),
    ] {
        let r = c
            .post(
                &format!("{API}/users/import"),
                json!({ "domain": "example.com", "csv": csv, "dry_run": true }),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.field(), "csv");
        assert!(r.error().contains(needle), "{}", r.body);
    }
    let r = c
        .post(
            &format!("{API}/users/import"),
            json!({ "domain": "nowhere.test", "csv": "Name\njo\n" }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.field(), "domain");
}

#[tokio::test(flavor = "multi_thread")]
async fn domain_admins_import_into_their_domain_without_rights() {
    let env = env();
    let admin = env.client().await.admin().await;
    for (path, body) in [
        ("/domains", json!({ "name": "other.com" })),
        (
            "/users",
            json!({ "address": "dora@example.com", "password": PW, "domain_admin": true }),
        ),
        (
            "/user-templates",
            json!({ "name": "bosses", "admin_rights": "full" }),
        ),
        ("/user-templates", json!({ "name": "plain" })),
    ] {
        let r = admin.post(&format!("{API}{path}"), body).await;
        assert_eq!(r.status, 201, "{path}: {}", r.body);
    }
    let mut c = env.client_at(env.serve(None).await, "dora");
    assert_eq!(c.login("dora@example.com", PW).await.status, 200);
    let r = c
        .post(
            &format!("{API}/users/import"),
            json!({ "domain": "other.com", "csv": "Name\nzed\n" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/users/import"),
            json!({ "domain": "example.com", "csv": "Name\nzed\n", "template": "bosses" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/users"),
            json!({ "address": "yan@example.com", "password": "Yan-secret-77", "template": "bosses" }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .post(
            &format!("{API}/users/import"),
            json!({ "domain": "example.com", "csv": "Name\nzed\n", "template": "plain" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["created"], 1);
    // Templates are server settings: listed for the domain, not changed.
    assert_eq!(c.get(&format!("{API}/user-templates")).await.status, 200);
    let r = c
        .post(&format!("{API}/user-templates"), json!({ "name": "mine" }))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

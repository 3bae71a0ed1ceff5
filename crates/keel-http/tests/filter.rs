//! The filter endpoints (issue 6 "all settings are reachable through the admin API"):
//! antispam, antivirus (with the EICAR check against a scripted clamd), attachment filter,
//! Bayes status, DKIM keys and sender lists. Each: success, a bad input naming the field
//! with nothing saved, the read-only administrator refused, and the Config-log line.

mod common;

use common::*;
use keel_core::log::LogKind;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A scripted clamd: reads one `zINSTREAM` and answers `reply` (guide ch. 14).
async fn fake_clamd(reply: &'static str) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut cmd = [0u8; 10];
                if s.read_exact(&mut cmd).await.is_err() {
                    return;
                }
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    if n == 0 {
                        break;
                    }
                    let mut chunk = vec![0u8; n];
                    if s.read_exact(&mut chunk).await.is_err() {
                        return;
                    }
                }
                let _ = s.write_all(format!("stream: {reply}\0").as_bytes()).await;
            });
        }
    });
    addr
}

/// Signs in as the read-only administrator.
async fn viewer(env: &Env) -> Client {
    let mut c = env.client().await;
    assert_eq!(c.login("viewer@example.com", PW).await.status, 200);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn spam_settings_get_patch_and_validation() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/spam-settings")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tag_score"], 5.0);
    let r = c
        .patch(
            &format!("{API}/spam-settings"),
            json!({ "tag_score": 4.5, "dmarc": { "honour_reject": false } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tag_score"], 4.5);
    assert_eq!(r.json()["dmarc"]["honour_reject"], false);
    assert_eq!(r.json()["dmarc"]["enabled"], true, "nested fields merge");
    for (body, field) in [
        (json!({ "tag_scor": 1 }), "tag_scor"),
        (json!({ "tag_score": "high" }), "tag_score"),
        (json!({ "block_score": -1 }), "block_score"),
        (json!({ "whitelist_group": "Nowhere" }), "whitelist_group"),
        (
            json!({ "quarantine_address": "not an address" }),
            "quarantine_address",
        ),
        (
            json!({ "dkim_sign": { "selector": "bad selector" } }),
            "dkim_sign",
        ),
    ] {
        let r = c.patch(&format!("{API}/spam-settings"), body.clone()).await;
        assert_eq!(
            (r.status, r.field().as_str()),
            (400, field),
            "{body}: {}",
            r.body
        );
    }
    let stored = keel_filter::load_spam_settings(env.state.meta.as_ref()).expect("load");
    assert_eq!(
        (stored.tag_score, stored.block_score),
        (4.5, 9.9),
        "nothing half-saved"
    );
    assert!(
        env.log(LogKind::Config)
            .contains("update SpamSettings set Name='antispam', Dmarc=")
    );
    let v = viewer(&env).await;
    assert_eq!(v.get(&format!("{API}/spam-settings")).await.status, 200);
    assert_eq!(
        v.patch(&format!("{API}/spam-settings"), json!({ "tag_score": 1 }))
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn antivirus_is_saved_only_when_the_scanner_detects_eicar() {
    let env = env();
    let c = env.client().await.admin().await;
    assert_eq!(
        c.get(&format!("{API}/antivirus-settings")).await.json()["enabled"],
        false
    );
    // Nothing listens there: refused, the field named, nothing saved, an Error-log line.
    let r = c
        .patch(
            &format!("{API}/antivirus-settings"),
            json!({ "enabled": true, "address": "127.0.0.1:1", "timeout_secs": 2 }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "address"),
        "{}",
        r.body
    );
    assert!(r.error().contains("not functional"), "{}", r.body);
    // A scanner that answers but misses EICAR is refused too.
    let blind = fake_clamd("OK").await;
    let r = c
        .patch(
            &format!("{API}/antivirus-settings"),
            json!({ "enabled": true, "address": blind }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "address"),
        "{}",
        r.body
    );
    assert!(r.error().contains("did not detect EICAR"), "{}", r.body);
    assert!(
        !keel_filter::load_antivirus_settings(env.state.meta.as_ref())
            .expect("load")
            .enabled
    );
    assert!(
        env.log(LogKind::Error)
            .contains("antivirus settings not saved")
    );
    // A working scanner: saved.
    let clamd = fake_clamd("Eicar-Test-Signature FOUND").await;
    let r = c
        .patch(
            &format!("{API}/antivirus-settings"),
            json!({ "enabled": true, "address": clamd, "on_virus": "remove_attachment" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = keel_filter::load_antivirus_settings(env.state.meta.as_ref()).expect("load");
    assert!(stored.enabled && stored.address == clamd);
    let r = c
        .patch(
            &format!("{API}/antivirus-settings"),
            json!({ "on_virus": "explode" }),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_str()),
        (400, "on_virus"),
        "{}",
        r.body
    );
    assert!(
        env.log(LogKind::Config)
            .contains("update AntivirusSettings set Name='antivirus'")
    );
    let v = viewer(&env).await;
    assert_eq!(
        v.get(&format!("{API}/antivirus-settings")).await.status,
        200
    );
    assert_eq!(
        v.patch(
            &format!("{API}/antivirus-settings"),
            json!({ "enabled": false })
        )
        .await
        .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attachment_filter_rules() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/attachment-filter")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // requirements-2 §14.5: predefined rules present but disabled.
    let rules = r.json()["rules"].as_array().cloned().unwrap_or_default();
    assert!(rules.len() > 5 && rules.iter().all(|r| r["enabled"] == false));
    let r = c
        .patch(
            &format!("{API}/attachment-filter"),
            json!({ "enabled": true, "rules": [
                { "enabled": true, "kind": "file_name", "pattern": "*.exe", "action": "block" }
            ] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rules"].as_array().map(Vec::len), Some(1));
    for (body, field) in [
        (
            json!({ "rules": [{ "enabled": true, "kind": "file_name", "pattern": " ", "action": "block" }] }),
            "rules",
        ),
        (
            json!({ "rules": [{ "enabled": true, "kind": "size", "pattern": "*", "action": "block" }] }),
            "rules",
        ),
        (json!({ "forward_original": "nobody" }), "forward_original"),
    ] {
        let r = c
            .patch(&format!("{API}/attachment-filter"), body.clone())
            .await;
        assert_eq!(
            (r.status, r.field().as_str()),
            (400, field),
            "{body}: {}",
            r.body
        );
    }
    let stored = keel_filter::load_antivirus_settings(env.state.meta.as_ref()).expect("load");
    assert!(stored.attachments.enabled && stored.attachments.rules.len() == 1);
    assert!(!stored.enabled, "the antivirus part is unchanged");
    assert!(
        env.log(LogKind::Config)
            .contains("update AttachmentFilter set Name='attachments', Enabled='1'")
    );
    let v = viewer(&env).await;
    assert_eq!(v.get(&format!("{API}/attachment-filter")).await.status, 200);
    assert_eq!(
        v.patch(
            &format!("{API}/attachment-filter"),
            json!({ "enabled": false })
        )
        .await
        .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bayes_status() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/bayes")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["status"],
        json!({ "spam": 0, "ham": 0, "active": false })
    );
    assert_eq!(r.json()["settings"]["min_spam"], 200);
    assert_eq!(
        viewer(&env).await.get(&format!("{API}/bayes")).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dkim_keys_generate_rotate_and_dns_record() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/dkim")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["domains"],
        json!([{ "domain": "example.com", "key": null }])
    );
    let r = c
        .post(
            &format!("{API}/dkim/example.com"),
            json!({ "selector": "k1", "algorithm": "ed25519" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key = &r.json()["key"];
    assert_eq!(key["dns_record"]["name"], "k1._domainkey.example.com");
    assert_eq!(key["dns_record"]["type"], "TXT");
    assert!(
        key["dns_record"]["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("v=DKIM1; k=ed25519; p="))
    );
    assert!(!r.body.contains("private"), "the private key never leaves");
    // Rotation: a new selector replaces the key; the defaults come from the settings.
    let r = c.post(&format!("{API}/dkim/example.com"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["key"]["selector"], "keel");
    assert_eq!(r.json()["key"]["algorithm"], "rsa");
    let r = c.get(&format!("{API}/dkim/example.com")).await;
    assert_eq!(
        r.json()["key"]["dns_record"]["name"],
        "keel._domainkey.example.com"
    );
    let stored = keel_filter::load_dkim_key(env.state.meta.as_ref(), "example.com")
        .expect("load")
        .expect("key");
    assert_eq!(
        r.json()["key"]["dns_record"]["value"],
        stored.dns_record().1
    );
    // Bad input.
    for (body, field) in [
        (json!({ "selector": "no good" }), "selector"),
        (json!({ "algorithm": "dsa" }), "algorithm"),
        (json!({ "bits": 4096 }), "bits"),
    ] {
        let r = c
            .post(&format!("{API}/dkim/example.com"), body.clone())
            .await;
        assert_eq!(
            (r.status, r.field().as_str()),
            (400, field),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(
        c.post(&format!("{API}/dkim/elsewhere.example"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        keel_filter::load_dkim_key(env.state.meta.as_ref(), "example.com")
            .expect("load")
            .map(|k| k.selector),
        Some("keel".into())
    );
    let config = env.log(LogKind::Config);
    assert!(
        config
            .lines()
            .any(|l| l.contains("insert DkimKey set Name='example.com'")
                && l.contains("Selector='k1'")
                && l.contains("Algorithm='ed25519'")),
        "{config}"
    );
    let v = viewer(&env).await;
    assert_eq!(v.get(&format!("{API}/dkim/example.com")).await.status, 200);
    assert_eq!(
        v.post(&format!("{API}/dkim/example.com"), json!({}))
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sender_lists_per_server_domain_and_user() {
    let env = env();
    let c = env.client().await.admin().await;
    let r = c.get(&format!("{API}/sender-lists/server")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["lists"], json!({ "allow": [], "block": [] }));
    let r = c
        .put(
            &format!("{API}/sender-lists/server"),
            json!({ "block": ["*@spam.example"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .put(
            &format!("{API}/sender-lists/domain:example.com"),
            json!({ "allow": ["friend@spam.example"], "block": ["bad.example"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "domain:example.com");
    let r = c
        .put(
            &format!("{API}/sender-lists/user:Alice@Example.com"),
            json!({ "allow": ["*@bad.example"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "user:alice@example.com");
    let meta = env.state.meta.as_ref();
    use keel_filter::SenderDecision as D;
    assert!(matches!(
        keel_filter::sender_decision(meta, "x@bad.example", "alice@example.com"),
        Ok(D::Allow { .. })
    ));
    assert!(matches!(
        keel_filter::sender_decision(meta, "x@bad.example", "admin@example.com"),
        Ok(D::Block { .. })
    ));
    let r = c.get(&format!("{API}/sender-lists")).await;
    assert_eq!(
        r.json()["lists"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.body
    );
    // Bad input: unknown scope, no such domain or user, bad entries, unknown keys.
    assert_eq!(
        c.put(&format!("{API}/sender-lists/planet"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        c.put(
            &format!("{API}/sender-lists/domain:nowhere.example"),
            json!({})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        c.get(&format!("{API}/sender-lists/user:ghost@example.com"))
            .await
            .status,
        404
    );
    for (body, field) in [
        (json!({ "block": ["two words"] }), "block"),
        (json!({ "allow": [""] }), "allow"),
        (json!({ "deny": ["x.example"] }), "deny"),
        (json!({ "allow": "x.example" }), "allow"),
    ] {
        let r = c
            .put(&format!("{API}/sender-lists/server"), body.clone())
            .await;
        assert_eq!(
            (r.status, r.field().as_str()),
            (400, field),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(
        keel_filter::load_sender_lists(meta, &keel_filter::ListScope::Server)
            .expect("load")
            .block,
        vec!["*@spam.example".to_owned()]
    );
    assert!(
        env.log(LogKind::Config)
            .contains("update SenderList set Name='user:alice@example.com', Allow=")
    );
    let v = viewer(&env).await;
    assert_eq!(
        v.get(&format!("{API}/sender-lists/server")).await.status,
        200
    );
    assert_eq!(
        v.put(
            &format!("{API}/sender-lists/server"),
            json!({ "block": [] })
        )
        .await
        .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_routes_are_documented() {
    let doc = keel_http::admin::openapi_document();
    for (path, method) in [
        ("/admin/api/v1/spam-settings", "patch"),
        ("/admin/api/v1/antivirus-settings", "patch"),
        ("/admin/api/v1/attachment-filter", "patch"),
        ("/admin/api/v1/bayes", "get"),
        ("/admin/api/v1/bayes/learn", "post"),
        ("/admin/api/v1/dkim", "get"),
        ("/admin/api/v1/dkim/{domain}", "post"),
        ("/admin/api/v1/sender-lists/{scope}", "put"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path}");
        assert_eq!(op["x-read-only-admin"], method == "get", "{method} {path}");
    }
}

/// Issue 6: the message structure limits are antivirus settings, checked against their
/// ranges and named in the error; the antivirus stays off, so no scanner is needed.
#[tokio::test(flavor = "multi_thread")]
async fn message_structure_limits_are_settings() {
    let env = env();
    let c = env.client().await.admin().await;
    let s = c.get(&format!("{API}/antivirus-settings")).await.json();
    assert_eq!(s["message_limits"]["max_mime_depth"], 50);
    assert_eq!(s["message_limits"]["max_parts"], 500);
    assert_eq!(s["message_limits"]["max_header_bytes"], 262_144);
    for (patch, field) in [
        (
            json!({ "max_mime_depth": 2 }),
            "message_limits.max_mime_depth",
        ),
        (
            json!({ "max_parts": 1_000_000 }),
            "message_limits.max_parts",
        ),
        (
            json!({ "max_header_bytes": 100 }),
            "message_limits.max_header_bytes",
        ),
        (json!({ "max_parts": "many" }), "message_limits"),
    ] {
        let r = c
            .patch(
                &format!("{API}/antivirus-settings"),
                json!({ "message_limits": patch }),
            )
            .await;
        assert_eq!((r.status, r.field().as_str()), (400, field), "{}", r.body);
    }
    let r = c
        .patch(
            &format!("{API}/antivirus-settings"),
            json!({ "message_limits": { "max_parts": 20 } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = keel_filter::load_antivirus_settings(env.state.meta.as_ref()).expect("load");
    assert_eq!(stored.message_limits.max_parts, 20);
    assert_eq!(stored.message_limits.max_mime_depth, 50, "the rest kept");
}

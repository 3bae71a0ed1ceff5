//! Authentication, passwords and the security policy (guide §7.2.1, §7.7, §8.2, §12.6).

mod common;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use keel_core::ipgroup::{IpGroup, IpGroupItem};
use keel_directory::password::{self, scram_client_proof, scram_verify_client_proof};
use keel_directory::*;

// requirements-1 §Y.1, guide §7.2.1, §8.2.
#[test]
fn scenario_login_names_and_case_rules() {
    let env = scenario();
    let d = &env.dir;
    assert_eq!(
        d.authenticate(&req("alice", PW)).unwrap().user,
        "alice@example.com"
    );
    d.authenticate(&req("alice@example.com", PW)).unwrap();
    d.authenticate(&req("ALICE@Example.COM", PW)).unwrap();
    assert_eq!(
        d.authenticate(&req("alice", &PW.to_uppercase()))
            .unwrap_err(),
        AuthError::BadPassword
    );
    assert_eq!(
        d.authenticate(&req("bob", PW)).unwrap_err(),
        AuthError::UnknownUser
    );
    assert_eq!(
        d.authenticate(&req("bob@other.test", PW)).unwrap().domain,
        "other.test"
    );
}

// requirements-1 §Y.2, guide §7.7.
#[test]
fn scenario_domain_bound_to_ip() {
    let env = scenario();
    let d = &env.dir;
    d.set_domain(
        "other.test",
        DomainPatch {
            bound_ip: Some(Some(ip("127.0.0.2"))),
            ..Default::default()
        },
    )
    .unwrap();
    let on = |login: &'static str| AuthRequest {
        local_ip: Some(ip("127.0.0.2")),
        ..req(login, PW)
    };
    assert_eq!(d.authenticate(&on("bob")).unwrap().user, "bob@other.test");
    assert_eq!(
        d.authenticate(&on("alice")).unwrap_err(),
        AuthError::UnknownUser
    );
    d.authenticate(&on("alice@example.com")).unwrap();
    // On another listening IP the primary domain applies again.
    let other = AuthRequest {
        local_ip: Some(ip("127.0.0.1")),
        ..req("alice", PW)
    };
    d.authenticate(&other).unwrap();
}

// requirements-1 §Y.3 (login half), guide §7.6.
#[test]
fn scenario_domain_alias_cannot_log_in() {
    let env = scenario();
    assert_eq!(
        env.dir
            .authenticate(&req("alice@example.net", PW))
            .unwrap_err(),
        AuthError::UnknownUser
    );
}

#[test]
fn extra_addresses_do_not_log_in() {
    let env = scenario();
    let d = &env.dir;
    d.set_user(
        "alice",
        UserPatch {
            addresses: Some(vec!["a.smith".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        d.authenticate(&req("a.smith@example.com", PW)).unwrap_err(),
        AuthError::UnknownUser
    );
    assert_eq!(
        d.authenticate(&req("a.smith", PW)).unwrap_err(),
        AuthError::UnknownUser
    );
}

#[test]
fn successful_logins_update_the_statistics() {
    let env = scenario();
    let d = &env.dir;
    d.authenticate(&req("alice", PW)).unwrap();
    env.clock.advance(Duration::from_secs(60));
    d.authenticate(&AuthRequest {
        service: "pop3",
        ..req("alice", PW)
    })
    .unwrap();
    let s = d.login_stats("alice").unwrap();
    assert_eq!(s.login_count, 2);
    assert_eq!(s.last_login, Some(T0 + 60));
    assert_eq!(s.services["imap"].login_count, 1);
    assert_eq!(s.services["pop3"].last_login, Some(T0 + 60));
    let _ = d.authenticate(&req("alice", "wrong-password"));
    assert_eq!(d.login_stats("alice").unwrap().login_count, 2);
}

fn lockout(env: &Env, n: u32, secs: u64, scope: LockScope) {
    env.dir
        .set_security_policy(SecurityPolicy {
            lockout: LockoutPolicy {
                enabled: true,
                max_failures: n,
                lock_seconds: secs,
                scope,
            },
            ..Default::default()
        })
        .unwrap();
}

// requirements-1 §Y.20, guide §12.6 and §8.2.
#[test]
fn scenario_account_lockout_vs_disabled() {
    let env = scenario();
    let d = &env.dir;
    lockout(&env, 3, 600, LockScope::Account);
    for _ in 0..3 {
        assert_eq!(
            d.authenticate(&req("alice", "bad-password")).unwrap_err(),
            AuthError::BadPassword
        );
    }
    // The 4th attempt with the correct password fails.
    assert!(matches!(
        d.authenticate(&req("alice", PW)).unwrap_err(),
        AuthError::Locked { .. }
    ));
    // After the unlock time it succeeds.
    env.clock.advance(Duration::from_secs(601));
    d.authenticate(&req("alice", PW)).unwrap();
    // Lock again, then "unlock all".
    for _ in 0..3 {
        let _ = d.authenticate(&req("alice", "bad-password"));
    }
    assert!(d.account_locked_until("alice").unwrap().is_some());
    // guide §8.2: unlocking one account frees that account only.
    for _ in 0..3 {
        let _ = d.authenticate(&req("carol", "bad-password"));
    }
    assert!(d.account_locked_until("carol").unwrap().is_some());
    assert!(d.unlock_user("carol").unwrap());
    assert!(d.account_locked_until("carol").unwrap().is_none());
    d.authenticate(&req("carol", PW)).unwrap();
    assert!(!d.unlock_user("carol").unwrap());
    assert!(d.unlock_user("nobody").is_err());
    assert!(d.account_locked_until("alice").unwrap().is_some());
    assert_eq!(d.unlock_all().unwrap(), 1);
    d.authenticate(&req("alice", PW)).unwrap();
    // A disabled user cannot log in, and "unlock all" does not change that.
    d.set_user(
        "carol",
        UserPatch {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        d.authenticate(&req("carol", PW)).unwrap_err(),
        AuthError::Disabled
    );
    d.unlock_all().unwrap();
    assert_eq!(
        d.authenticate(&req("carol", PW)).unwrap_err(),
        AuthError::Disabled
    );
    assert!(!d.get_user("carol").unwrap().enabled);
}

// requirements-3 §6 "Account lockout": 5 bad logins (the default) lock the account.
#[test]
fn scenario_account_lockout_after_five_bad_logins_by_default() {
    let env = scenario();
    let d = &env.dir;
    let p = d.security_policy().unwrap();
    assert!(p.lockout.enabled);
    assert_eq!((p.lockout.max_failures, p.lockout.lock_seconds), (5, 300));
    for _ in 0..4 {
        let _ = d.authenticate(&req("dave", "bad-password"));
    }
    d.authenticate(&req("dave", PW)).unwrap(); // a success resets the counter
    for _ in 0..4 {
        let _ = d.authenticate(&req("dave", "bad-password"));
    }
    d.authenticate(&req("dave", PW)).unwrap();
    for _ in 0..5 {
        let _ = d.authenticate(&req("dave", "bad-password"));
    }
    assert!(matches!(
        d.authenticate(&req("dave", PW)).unwrap_err(),
        AuthError::Locked { .. }
    ));
    env.clock.advance(Duration::from_secs(299));
    assert!(matches!(
        d.authenticate(&req("dave", PW)).unwrap_err(),
        AuthError::Locked { .. }
    ));
    env.clock.advance(Duration::from_secs(2));
    d.authenticate(&req("dave", PW)).unwrap();
}

#[test]
fn failed_logins_are_counted_per_client_ip() {
    let env = scenario();
    let d = &env.dir;
    lockout(&env, 3, 600, LockScope::Account);
    let from = |addr: &str| AuthRequest {
        client_ip: ip(addr),
        ..req("alice", "bad-password")
    };
    for a in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.2"] {
        let _ = d.authenticate(&from(a));
    }
    d.authenticate(&req("alice", PW)).unwrap(); // no IP reached 3
    let _ = d.authenticate(&from("10.0.0.1"));
    // 10.0.0.1 reached 3: the account is locked for everybody (guide behaviour).
    assert!(matches!(
        d.authenticate(&req("alice", PW)).unwrap_err(),
        AuthError::Locked { .. }
    ));
}

#[test]
fn lock_scope_account_and_ip_only_blocks_the_offending_ip() {
    let env = scenario();
    let d = &env.dir;
    lockout(&env, 2, 600, LockScope::AccountAndIp);
    let bad = AuthRequest {
        client_ip: ip("198.51.100.7"),
        ..req("alice", "bad-password")
    };
    let _ = d.authenticate(&bad);
    let _ = d.authenticate(&bad);
    let good_there = AuthRequest {
        client_ip: ip("198.51.100.7"),
        ..req("alice", PW)
    };
    assert!(matches!(
        d.authenticate(&good_there).unwrap_err(),
        AuthError::Locked { .. }
    ));
    d.authenticate(&req("alice", PW)).unwrap();
}

#[test]
fn lockout_can_be_disabled() {
    let env = scenario();
    let d = &env.dir;
    d.set_security_policy(SecurityPolicy {
        lockout: LockoutPolicy {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    for _ in 0..10 {
        let _ = d.authenticate(&req("alice", "bad-password"));
    }
    d.authenticate(&req("alice", PW)).unwrap();
}

// requirements-2 §Acceptance 22 (the events behind the Security log lines).
#[test]
fn scenario_security_log_receives_failed_logins_lockouts_and_unlocks() {
    let env = scenario();
    let d = &env.dir;
    lockout(&env, 2, 60, LockScope::Account);
    let _ = d.authenticate(&req("nosuchuser", PW));
    let _ = d.authenticate(&req("alice", "bad-password"));
    let _ = d.authenticate(&req("alice", "bad-password"));
    d.unlock_all().unwrap();
    let ev = env.events.lock().unwrap().clone();
    assert!(
        matches!(&ev[0], SecurityEvent::LoginFailed { login, user: None, service, .. }
        if login == "nosuchuser" && service == "imap")
    );
    assert!(
        matches!(&ev[1], SecurityEvent::LoginFailed { user: Some(u), reason, .. }
        if u == "alice@example.com" && reason == "wrong password")
    );
    assert!(ev.iter().any(
        |e| matches!(e, SecurityEvent::AccountLocked { user, until, .. }
        if user == "alice@example.com" && *until == T0 + 60)
    ));
    assert!(matches!(
        ev.last(),
        Some(SecurityEvent::AccountsUnlocked { count: 1 })
    ));
    // The peer-facing text is the same for every reason.
    assert_eq!(AuthError::PUBLIC_MESSAGE, "authentication failed");
    assert_ne!(
        AuthError::Locked { until: 1 }.to_string(),
        AuthError::BadPassword.to_string()
    );
}

// guide §12.6 "Require secure authentication", requirements-1 §0.8.
#[test]
fn require_secure_authentication_allows_plain_only_inside_tls_or_scram() {
    let env = scenario();
    let d = &env.dir;
    d.add_ip_group(IpGroup {
        name: "Legacy".into(),
        items: vec![IpGroupItem::new(
            "192.0.2.0/24".parse().unwrap(),
            "old clients",
        )],
    })
    .unwrap();
    d.set_security_policy(SecurityPolicy {
        mode: SecurityMode::RequireSecureAuth,
        exempt_ip_group: Some("Legacy".into()),
        ..Default::default()
    })
    .unwrap();
    let plain = AuthRequest {
        secure_channel: false,
        ..req("alice", PW)
    };
    assert_eq!(
        d.authenticate(&plain).unwrap_err(),
        AuthError::PolicyViolation("secure authentication")
    );
    d.authenticate(&req("alice", PW)).unwrap(); // inside TLS
    let exempt = AuthRequest {
        client_ip: ip("192.0.2.10"),
        ..plain
    };
    d.authenticate(&exempt).unwrap();
    let scram = AuthRequest {
        mechanism: Mechanism::ScramSha256,
        ..plain
    };
    d.check_login_allowed(&scram).unwrap();
    assert_eq!(
        d.mechanisms_offered(ip("127.0.0.1"), false, "imap")
            .unwrap(),
        vec![Mechanism::ScramSha256]
    );
    assert_eq!(
        d.mechanisms_offered(ip("127.0.0.1"), true, "imap").unwrap(),
        vec![Mechanism::ScramSha256, Mechanism::Plain, Mechanism::Login]
    );
}

// guide §12.6 "Require encrypted connection": SMTP is the exception.
#[test]
fn require_encrypted_connection_refuses_plaintext_except_secure_smtp_auth() {
    let env = scenario();
    let d = &env.dir;
    d.set_security_policy(SecurityPolicy {
        mode: SecurityMode::RequireEncryptedConnection,
        ..Default::default()
    })
    .unwrap();
    let imap_scram = AuthRequest {
        secure_channel: false,
        mechanism: Mechanism::ScramSha256,
        ..req("alice", PW)
    };
    assert_eq!(
        d.check_login_allowed(&imap_scram).unwrap_err(),
        AuthError::PolicyViolation("an encrypted connection")
    );
    let smtp_scram = AuthRequest {
        service: "smtp",
        ..imap_scram
    };
    d.check_login_allowed(&smtp_scram).unwrap();
    let smtp_plain = AuthRequest {
        mechanism: Mechanism::Plain,
        ..smtp_scram
    };
    assert!(d.authenticate(&smtp_plain).is_err());
    assert!(
        d.mechanisms_offered(ip("127.0.0.1"), false, "imap")
            .unwrap()
            .is_empty()
    );
    d.authenticate(&req("alice", PW)).unwrap();
}

#[test]
fn disabled_mechanisms_are_refused_and_cram_md5_is_off_by_default() {
    let env = scenario();
    let d = &env.dir;
    let cram = AuthRequest {
        mechanism: Mechanism::CramMd5,
        ..req("alice", PW)
    };
    assert_eq!(
        d.check_login_allowed(&cram).unwrap_err(),
        AuthError::MechanismDisabled("CRAM-MD5")
    );
    d.set_security_policy(SecurityPolicy {
        mechanisms: MechanismSettings {
            login: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let login = AuthRequest {
        mechanism: Mechanism::Login,
        ..req("alice", PW)
    };
    assert_eq!(
        d.authenticate(&login).unwrap_err(),
        AuthError::MechanismDisabled("LOGIN")
    );
    d.authenticate(&req("alice", PW)).unwrap();
}

// RFC 5802 §3 / RFC 7677: a SCRAM exchange verified from the stored keys only.
#[test]
fn scram_sha256_login_is_verified_without_the_password() {
    let env = scenario();
    let d = &env.dir;
    let creds = d.scram_credentials("alice", None).unwrap().unwrap();
    assert!(creds.iterations >= 4096);
    let salt = B64.decode(&creds.salt).unwrap();
    let auth_message = b"n=alice,r=abc,r=abcdef,s=c2FsdA==,i=4096,c=biws,r=abcdef";
    let proof = scram_client_proof(PW, &salt, creds.iterations, auth_message).unwrap();
    assert!(scram_verify_client_proof(&creds, auth_message, &proof));
    let wrong = scram_client_proof("nope-nope", &salt, creds.iterations, auth_message).unwrap();
    assert!(!scram_verify_client_proof(&creds, auth_message, &wrong));
    let r = AuthRequest {
        mechanism: Mechanism::ScramSha256,
        ..req("alice", "")
    };
    assert_eq!(d.check_login_allowed(&r).unwrap().user, "alice@example.com");
    // Failed proofs count toward the lockout.
    lockout(&env, 2, 60, LockScope::Account);
    d.record_failed_login(&r);
    d.record_failed_login(&r);
    assert!(matches!(
        d.check_login_allowed(&r).unwrap_err(),
        AuthError::Locked { .. }
    ));
    assert_eq!(
        d.scram_credentials("alice@example.net", None).unwrap(),
        None
    );
    assert_eq!(d.scram_credentials("ghost", None).unwrap(), None);
}

// requirements-1 §8.2 "Upgrade legacy hashes on the next successful login".
#[test]
fn imported_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id() {
    let env = scenario();
    let d = &env.dir;
    let hash = bcrypt::hash("legacy-pass", 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    d.set_password_hash("carol", &hash).unwrap();
    assert_eq!(d.scram_credentials("carol", None).unwrap(), None);
    assert_eq!(
        d.authenticate(&req("carol", PW)).unwrap_err(),
        AuthError::BadPassword
    );
    d.authenticate(&req("carol", "legacy-pass")).unwrap();
    assert!(d.scram_credentials("carol", None).unwrap().is_some());
    assert!(env.events.lock().unwrap().iter().any(
        |e| matches!(e, SecurityEvent::PasswordHashUpgraded { user } if user == "carol@example.com")
    ));
    let doc = env
        .meta
        .get_doc("user", "carol@example.com")
        .unwrap()
        .unwrap();
    let stored = doc.body["secret"]["hash"].as_str().unwrap().to_string();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    d.authenticate(&req("carol", "legacy-pass")).unwrap();
}

#[test]
fn imported_sha_crypt_hashes_log_in() {
    let env = scenario();
    let d = &env.dir;
    d.set_password_hash(
        "dave",
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
    )
    .unwrap();
    d.authenticate(&req("dave", "Hello world!")).unwrap();
    d.set_password_hash(
        "alice",
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    )
    .unwrap();
    d.authenticate(&req("alice", "Hello world!")).unwrap();
}

#[test]
fn unsupported_imported_hashes_are_refused() {
    let env = scenario();
    let e = env
        .dir
        .set_password_hash("dave", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
        .unwrap_err();
    assert!(matches!(e, DirectoryError::UnsupportedHash));
}

#[test]
fn new_passwords_are_stored_as_argon2id_with_scram_keys() {
    let env = scenario();
    let doc = env
        .meta
        .get_doc("user", "alice@example.com")
        .unwrap()
        .unwrap();
    let hash = doc.body["secret"]["hash"].as_str().unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert_eq!(
        password::verify_password(PW, hash),
        password::Verification::Match { upgrade: false }
    );
    assert!(doc.body["secret"]["scram_sha256"]["stored_key"].is_string());
    // The public view never carries secrets.
    let json = serde_json::to_string(&env.dir.get_user("alice").unwrap()).unwrap();
    assert!(!json.contains("argon2"), "{json}");
}

#[test]
fn users_without_password_cannot_log_in() {
    let env = scenario();
    env.dir
        .add_user(NewUser {
            password: None,
            ..NewUser::new("nopw@example.com", "")
        })
        .unwrap();
    assert_eq!(
        env.dir.authenticate(&req("nopw", "")).unwrap_err(),
        AuthError::NoPassword
    );
}

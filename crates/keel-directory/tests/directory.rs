//! Domains, users, groups, IP groups, time intervals and multi-process behaviour.

mod common;
use std::sync::Arc;

use common::*;
use keel_core::ipgroup::{IpGroup, IpGroupItem};
use keel_core::timeinterval::{TimeInterval, TimeItem};
use keel_directory::*;
use keel_store::{BlobId, FolderKind, NewMessage};

// ---- domains (guide §7) ----

#[test]
fn first_domain_becomes_primary() {
    let env = empty();
    let d = &env.dir;
    assert_eq!(d.primary_domain().unwrap(), None);
    assert!(
        d.add_domain(NewDomain {
            name: "Example.COM".into(),
            ..Default::default()
        })
        .unwrap()
        .primary
    );
    let o = d
        .add_domain(NewDomain {
            name: "other.test".into(),
            ..Default::default()
        })
        .unwrap();
    assert!(!o.primary);
    assert_eq!(d.primary_domain().unwrap().as_deref(), Some("example.com"));
    d.set_primary_domain("other.test").unwrap();
    assert_eq!(d.primary_domain().unwrap().as_deref(), Some("other.test"));
    let names: Vec<_> = d
        .list_domains()
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.primary))
        .collect();
    assert_eq!(
        names,
        vec![("example.com".into(), false), ("other.test".into(), true)]
    );
}

#[test]
fn invalid_domain_names_are_refused() {
    let env = empty();
    let e = env.dir.add_domain(NewDomain {
        name: "bad_domain..com".into(),
        ..Default::default()
    });
    assert_eq!(
        e.unwrap_err().to_string(),
        "'bad_domain..com' is not a valid domain name"
    );
}

#[test]
fn domain_alias_cannot_be_an_existing_domain_and_vice_versa() {
    let env = scenario();
    let d = &env.dir;
    let e = d
        .add_domain(NewDomain {
            name: "example.net".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the name example.net is already used by an alias of domain example.com"
    );
    let e = d
        .set_domain(
            "example.com",
            DomainPatch {
                aliases: Some(vec!["other.test".into()]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the name other.test is already used by domain other.test"
    );
    let e = d
        .add_domain(NewDomain {
            name: "other.test".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, DirectoryError::DomainNameTaken { .. }));
}

// guide §7.8
#[test]
fn domain_removal_refused_while_it_has_users() {
    let env = scenario();
    let d = &env.dir;
    let e = d.remove_domain("example.com").unwrap_err();
    assert_eq!(
        e.to_string(),
        "domain example.com still has 4 users; remove them first"
    );
    let e = d.remove_domain("other.test").unwrap_err();
    assert_eq!(
        e.to_string(),
        "domain other.test still has 1 users; remove them first"
    );
}

#[test]
fn domain_removal_refused_while_it_has_groups_or_aliases() {
    let env = scenario();
    let d = &env.dir;
    d.add_domain(NewDomain {
        name: "third.test".into(),
        ..Default::default()
    })
    .unwrap();
    d.add_group(NewGroup {
        name: "g".into(),
        domain: "third.test".into(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        d.remove_domain("third.test").unwrap_err().to_string(),
        "domain third.test still has 1 groups; remove them first"
    );
    d.remove_group("g@third.test").unwrap();
    alias(d, "third.test", "x", &["alice@example.com"]);
    assert_eq!(
        d.remove_domain("third.test").unwrap_err().to_string(),
        "domain third.test still has 1 aliases; remove them first"
    );
    d.remove_alias("third.test", "x", None).unwrap();
    d.remove_domain("third.test").unwrap();
    assert!(matches!(
        d.get_domain("third.test"),
        Err(DirectoryError::NoSuchDomain(_))
    ));
}

#[test]
fn primary_domain_cannot_be_removed() {
    let env = empty();
    let d = &env.dir;
    d.add_domain(NewDomain {
        name: "a.test".into(),
        ..Default::default()
    })
    .unwrap();
    d.add_domain(NewDomain {
        name: "b.test".into(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        d.remove_domain("a.test").unwrap_err().to_string(),
        "domain a.test is the primary domain; make another domain primary first"
    );
    d.set_primary_domain("b.test").unwrap();
    d.remove_domain("a.test").unwrap();
}

// requirements-3 §6 "Creating a user beyond the domain's user limit fails", guide §7.2.
#[test]
fn scenario_creating_a_user_beyond_the_domain_user_limit_fails() {
    let env = empty();
    let d = &env.dir;
    d.add_domain(NewDomain {
        name: "isp.test".into(),
        user_limit: 2,
        ..Default::default()
    })
    .unwrap();
    d.add_user(NewUser::new("u1@isp.test", PW)).unwrap();
    d.add_user(NewUser::new("u2@isp.test", PW)).unwrap();
    let e = d.add_user(NewUser::new("u3@isp.test", PW)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "domain isp.test already has 2 users, which is its limit"
    );
    d.set_domain(
        "isp.test",
        DomainPatch {
            user_limit: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    d.add_user(NewUser::new("u3@isp.test", PW)).unwrap();
}

#[test]
fn domain_settings_are_stored_and_merged() {
    let env = scenario();
    let d = &env.dir;
    let mut s = std::collections::BTreeMap::new();
    s.insert("footer".to_string(), serde_json::json!("-- sent by Keel"));
    s.insert("cleanout_days".to_string(), serde_json::json!(30));
    let dom = d
        .set_domain(
            "example.com",
            DomainPatch {
                description: Some("Main".into()),
                outgoing_size_limit: Some(5 << 20),
                forwarding: Some(DomainForwarding::parse("hq.example.com:2525")),
                settings: Some(s),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(dom.description, "Main");
    assert_eq!(dom.forwarding.as_ref().unwrap().port, 2525);
    assert!(dom.primary);
    let mut s = std::collections::BTreeMap::new();
    s.insert("footer".to_string(), serde_json::Value::Null);
    let dom = d
        .set_domain(
            "example.com",
            DomainPatch {
                settings: Some(s),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        dom.settings.keys().collect::<Vec<_>>(),
        vec!["cleanout_days"]
    );
    assert_eq!(dom.aliases, vec!["example.net"]);
    assert_eq!(DomainForwarding::parse("host:0"), None);
}

fn folder_names(d: &Directory, v: serde_json::Value) -> DirResult<Domain> {
    let mut s = std::collections::BTreeMap::new();
    s.insert(FOLDER_NAMES.to_string(), v);
    d.set_domain(
        "example.com",
        DomainPatch {
            settings: Some(s),
            ..Default::default()
        },
    )
}

// issue 4: special-use folder names per domain, merged per use, checked at the field.
#[test]
fn special_folder_names_per_domain() {
    let env = scenario();
    let d = &env.dir;
    let dom = folder_names(d, serde_json::json!({"sent": " Sent ", "junk": "Spam"})).unwrap();
    assert_eq!(dom.folder_name("sent"), Some("Sent"));
    assert_eq!(dom.folder_name("trash"), None);
    let dom = folder_names(d, serde_json::json!({"trash": "inbox/Trash", "junk": null})).unwrap();
    assert_eq!(dom.folder_name("sent"), Some("Sent"), "merged per use");
    assert_eq!(dom.folder_name("trash"), Some("INBOX/Trash"));
    assert_eq!(dom.folder_name("junk"), None, "null restores the default");
    for (bad, field) in [
        (
            serde_json::json!({"outbox": "Outbox"}),
            "folder_names.outbox",
        ),
        (serde_json::json!({"junk": "INBOX"}), "folder_names.junk"),
        (serde_json::json!({"junk": "Sent"}), "folder_names.sent"),
        (
            serde_json::json!({"archive": "Old/*"}),
            "folder_names.archive",
        ),
        (
            serde_json::json!({"archive": "Public Folders/X"}),
            "folder_names.archive",
        ),
        (serde_json::json!({"drafts": "A//B"}), "folder_names.drafts"),
        (serde_json::json!({"drafts": 5}), "folder_names.drafts"),
        (serde_json::json!("Sent"), "folder_names"),
    ] {
        match folder_names(d, bad.clone()) {
            Err(DirectoryError::InvalidSetting { field: f, message }) => {
                assert_eq!(f, field, "{bad}: {message}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let dom = folder_names(d, serde_json::json!({"sent": "", "trash": null})).unwrap();
    assert!(
        !dom.settings.contains_key(FOLDER_NAMES),
        "{:?}",
        dom.settings
    );
}

// guide §7.7: at most one domain per listening IP.
#[test]
fn one_listening_ip_binds_one_domain() {
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
    let e = d
        .set_domain(
            "example.com",
            DomainPatch {
                bound_ip: Some(Some(ip("127.0.0.2"))),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the IP address 127.0.0.2 is already bound to domain other.test"
    );
}

// ---- users (guide §8) ----

#[test]
fn user_needs_an_existing_domain() {
    let env = scenario();
    let e = env
        .dir
        .add_user(NewUser::new("x@nowhere.test", PW))
        .unwrap_err();
    assert_eq!(e.to_string(), "domain nowhere.test does not exist");
    let e = env
        .dir
        .add_user(NewUser::new("x@example.net", PW))
        .unwrap_err();
    assert_eq!(e.to_string(), "domain example.net does not exist");
}

#[test]
fn login_names_are_case_insensitive_and_without_diacritics() {
    let env = scenario();
    let u = env
        .dir
        .add_user(NewUser::new("John.Smith@Example.com", PW))
        .unwrap();
    assert_eq!(u.address, "john.smith@example.com");
    assert_eq!(u.login, "john.smith");
    let e = env
        .dir
        .add_user(NewUser::new("josé@example.com", PW))
        .unwrap_err();
    assert!(matches!(e, DirectoryError::InvalidLoginName(_)), "{e}");
    let e = env
        .dir
        .add_user(NewUser::new("ALICE@example.com", PW))
        .unwrap_err();
    assert_eq!(e.to_string(), "user alice@example.com already exists");
}

#[test]
fn addresses_are_unique_across_users_and_groups() {
    let env = scenario();
    let d = &env.dir;
    let e = d
        .add_user(NewUser {
            addresses: vec!["alice".into()],
            ..NewUser::new("bob@example.com", PW)
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the address alice@example.com is already used by user alice@example.com"
    );
    d.add_user(NewUser {
        addresses: vec!["bobby".into()],
        ..NewUser::new("bob@example.com", PW)
    })
    .unwrap();
    let e = d
        .add_group(NewGroup {
            name: "g".into(),
            domain: "example.com".into(),
            addresses: vec!["bob".into()],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the address bob@example.com is already used by user bob@example.com"
    );
    let e = d
        .set_user(
            "carol",
            UserPatch {
                addresses: Some(vec!["x@other.test".into()]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the address x@other.test does not belong to domain example.com"
    );
    // Changing the extra addresses frees the old ones.
    d.set_user(
        "bob@example.com",
        UserPatch {
            addresses: Some(vec![]),
            ..Default::default()
        },
    )
    .unwrap();
    d.set_user(
        "carol",
        UserPatch {
            addresses: Some(vec!["bobby".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        d.address_owner("bobby@example.net").unwrap(),
        Some(("user".into(), "carol@example.com".into()))
    );
}

#[test]
fn weak_passwords_are_refused_with_a_clear_sentence() {
    let env = scenario();
    let d = &env.dir;
    let e = d
        .add_user(NewUser::new("eve@example.com", "short"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "password is too weak: it must have at least 8 characters"
    );
    let e = d
        .add_user(NewUser::new("evelynne@example.com", "Evelynne"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "password is too weak: it must not be the login name"
    );
    let e = d
        .set_user(
            "alice",
            UserPatch {
                password: Some("1234".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, DirectoryError::WeakPassword(_)));
}

#[test]
fn user_fields_round_trip_and_list_by_domain() {
    let env = scenario();
    let d = &env.dir;
    let u = d
        .add_user(NewUser {
            full_name: "Eve Example".into(),
            quota: Quota {
                bytes: 20 << 20,
                messages: 10,
            },
            local_domain_only: true,
            public_folder_admin: true,
            ..NewUser::new("eve@other.test", PW)
        })
        .unwrap();
    assert!(u.has_password && u.enabled && u.local_domain_only && u.public_folder_admin);
    assert_eq!(u.quota.messages, 10);
    let names: Vec<_> = d
        .list_users(Some("other.test"))
        .unwrap()
        .into_iter()
        .map(|u| u.address)
        .collect();
    assert_eq!(names, vec!["bob@other.test", "eve@other.test"]);
    assert_eq!(d.list_users(None).unwrap().len(), 6);
    // A bare login means the primary domain.
    assert_eq!(d.get_user("alice").unwrap().address, "alice@example.com");
    assert!(matches!(
        d.get_user("nobody"),
        Err(DirectoryError::NoSuchUser(_))
    ));
}

// requirements-2 §Acceptance 12, guide §8.2 step 8 / §18.1.3.
#[test]
fn scenario_outgoing_limits_per_user_and_per_domain() {
    let env = scenario();
    let d = &env.dir;
    d.set_domain(
        "example.com",
        DomainPatch {
            outgoing_size_limit: Some(5 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    d.set_user(
        "alice",
        UserPatch {
            outgoing_size_limit: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.effective_outgoing_limit("alice").unwrap(), 1 << 20);
    assert_eq!(d.effective_outgoing_limit("carol").unwrap(), 5 << 20);
    assert_eq!(d.effective_outgoing_limit("bob@other.test").unwrap(), 0);
}

fn mailbox_with_one_message(env: &Env, user: &str, bytes: &[u8]) -> BlobId {
    let f = env
        .meta
        .create_folder(user, "INBOX", FolderKind::Mail)
        .unwrap();
    let blob = BlobId::of(bytes);
    env.meta
        .append_messages(
            f.id,
            &[NewMessage {
                blob: blob.clone(),
                size: bytes.len() as u64,
                flags: vec![],
                internal_date: T0,
            }],
        )
        .unwrap();
    blob
}

// guide §8.5
#[test]
fn removing_a_user_with_delete_returns_the_orphaned_blobs() {
    let env = scenario();
    let blob = mailbox_with_one_message(&env, "carol@example.com", b"Subject: hi\r\n\r\nx");
    let r = env
        .dir
        .remove_user("carol@example.com", MailboxDisposal::Delete)
        .unwrap();
    assert_eq!(r.orphaned_blobs, vec![blob]);
    assert!(
        env.meta
            .list_folders("carol@example.com")
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        env.dir.get_user("carol"),
        Err(DirectoryError::NoSuchUser(_))
    ));
    assert_eq!(
        env.dir.resolve_recipient("carol@example.com").unwrap(),
        Resolution::NotFound
    );
    // The address is free again.
    env.dir
        .add_user(NewUser::new("carol@example.com", PW))
        .unwrap();
}

#[test]
fn removing_a_user_can_move_the_mailbox_to_another_user() {
    let env = scenario();
    mailbox_with_one_message(&env, "carol@example.com", b"m1");
    let r = env
        .dir
        .remove_user(
            "carol@example.com",
            MailboxDisposal::MoveTo("dave@example.com".into()),
        )
        .unwrap();
    assert_eq!(
        r.moved_to.as_deref(),
        Some("Deleted mailbox \u{2014} carol@example.com")
    );
    let names: Vec<_> = env
        .meta
        .list_folders("dave@example.com")
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        vec!["Deleted mailbox \u{2014} carol@example.com/INBOX"]
    );
    let e = env
        .dir
        .remove_user("dave", MailboxDisposal::MoveTo("dave".into()))
        .unwrap_err();
    assert!(matches!(e, DirectoryError::Invalid(_)));
}

#[test]
fn removing_a_user_can_keep_the_mailbox() {
    let env = scenario();
    mailbox_with_one_message(&env, "carol@example.com", b"m1");
    let r = env.dir.remove_user("carol", MailboxDisposal::Keep).unwrap();
    assert!(r.orphaned_blobs.is_empty());
    assert_eq!(env.meta.list_folders("carol@example.com").unwrap().len(), 1);
}

// guide §8.1, §8.2 step 6, §9.1 step 4.
#[test]
fn the_last_full_admin_cannot_be_removed_disabled_or_demoted() {
    let env = scenario();
    let d = &env.dir;
    let e = d
        .remove_user("admin@example.com", MailboxDisposal::Keep)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot remove admin@example.com: it is the last account with full admin rights"
    );
    let e = d
        .set_user(
            "admin",
            UserPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot disable admin@example.com: it is the last account with full admin rights"
    );
    let e = d
        .set_user(
            "admin",
            UserPatch {
                admin_rights: Some(AdminRights::ReadOnly),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(
        e,
        DirectoryError::LastAdmin {
            action: "demote",
            ..
        }
    ));
    // Once another full admin exists, the first one can go (guide §8.1).
    d.set_user(
        "alice",
        UserPatch {
            admin_rights: Some(AdminRights::Full),
            ..Default::default()
        },
    )
    .unwrap();
    d.remove_user("admin", MailboxDisposal::Keep).unwrap();
}

#[test]
fn group_rights_add_to_members_and_count_for_the_last_admin_rule() {
    let env = scenario();
    let d = &env.dir;
    d.add_group(NewGroup {
        name: "admins".into(),
        domain: "example.com".into(),
        members: vec!["alice".into()],
        admin_rights: AdminRights::Full,
        ..Default::default()
    })
    .unwrap();
    d.add_group(NewGroup {
        name: "auditors".into(),
        domain: "example.com".into(),
        members: vec!["carol".into()],
        admin_rights: AdminRights::ReadOnly,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        d.effective_admin_rights("alice").unwrap(),
        AdminRights::Full
    );
    assert_eq!(
        d.effective_admin_rights("carol").unwrap(),
        AdminRights::ReadOnly
    );
    assert_eq!(d.effective_admin_rights("dave").unwrap(), AdminRights::None);
    assert_eq!(d.groups_of_user("alice").unwrap().len(), 1);
    // admin can be removed: alice is a full admin through her group.
    d.remove_user("admin", MailboxDisposal::Keep).unwrap();
    // Now alice is the last one: neither leaving nor removing the group nor lowering its rights.
    let e = d
        .remove_group_members("admins@example.com", &["alice".into()])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot change group admins@example.com: it is the last account with full admin rights"
    );
    assert!(matches!(
        d.remove_group("admins@example.com"),
        Err(DirectoryError::LastAdmin { .. })
    ));
    let e = d
        .set_group(
            "admins@example.com",
            GroupPatch {
                admin_rights: Some(AdminRights::ReadOnly),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, DirectoryError::LastAdmin { .. }));
    let e = d.remove_user("alice", MailboxDisposal::Keep).unwrap_err();
    assert!(matches!(e, DirectoryError::LastAdmin { .. }));
    let a = d.authenticate(&req("alice", PW)).unwrap();
    assert_eq!(a.admin_rights, AdminRights::Full);
}

// requirements-1 §0.7, guide §9.1 step 2.
#[test]
fn groups_get_no_automatic_address() {
    let env = scenario();
    let d = &env.dir;
    let g = d
        .add_group(NewGroup {
            name: "sales".into(),
            domain: "example.com".into(),
            members: vec!["alice".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(g.addresses.is_empty());
    assert_eq!(
        d.resolve_recipient("sales@example.com").unwrap(),
        Resolution::NotFound
    );
    d.set_group(
        "sales@example.com",
        GroupPatch {
            addresses: Some(vec!["sales".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        targets(d, "sales@example.com"),
        vec![local("alice@example.com")]
    );
    let e = d
        .add_group(NewGroup {
            name: "x".into(),
            domain: "example.com".into(),
            members: vec!["ghost".into()],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "user ghost@example.com does not exist");
}

#[test]
fn removing_a_user_removes_it_from_its_groups() {
    let env = scenario();
    let d = &env.dir;
    d.add_group(NewGroup {
        name: "g".into(),
        domain: "example.com".into(),
        members: vec!["alice".into(), "carol".into()],
        ..Default::default()
    })
    .unwrap();
    d.remove_user("carol", MailboxDisposal::Keep).unwrap();
    assert_eq!(
        d.get_group("g@example.com").unwrap().members,
        vec!["alice@example.com"]
    );
}

// ---- IP address groups and time intervals (guide §19) ----

fn group(name: &str, entries: &[&str]) -> IpGroup {
    IpGroup {
        name: name.into(),
        items: entries
            .iter()
            .map(|e| IpGroupItem::new(e.parse().unwrap(), ""))
            .collect(),
    }
}

#[test]
fn ip_groups_are_stored_and_checked() {
    let env = scenario();
    let d = &env.dir;
    d.add_ip_group(group("Office", &["10.0.0.0/8", "192.0.2.1-192.0.2.9"]))
        .unwrap();
    d.add_ip_group(group("Trusted", &["group:Office", "203.0.113.5"]))
        .unwrap();
    let g = d.ip_groups().unwrap();
    assert!(g.contains("trusted", ip("10.1.2.3")));
    assert!(g.contains("Trusted", ip("203.0.113.5")));
    assert!(!g.contains("Office", ip("203.0.113.5")));
    assert!(g.contains("Local clients", ip("127.0.0.1")));
    assert_eq!(d.list_ip_groups().unwrap().len(), 3);
    assert!(matches!(
        d.add_ip_group(group("office", &[])),
        Err(DirectoryError::IpGroupExists(_))
    ));
    let e = d.add_ip_group(group("Bad", &["group:Nope"])).unwrap_err();
    assert!(matches!(e, DirectoryError::InvalidIpGroup(_)), "{e}");
    // A cycle is refused.
    let e = d
        .set_ip_group(group("Office", &["group:Trusted"]))
        .unwrap_err();
    assert!(matches!(e, DirectoryError::InvalidIpGroup(_)), "{e}");
    d.set_ip_group(group("Office", &["172.16.0.0/12"])).unwrap();
    assert!(d.ip_groups().unwrap().contains("Trusted", ip("172.16.9.9")));
}

#[test]
fn ip_group_removal_is_refused_while_referenced_or_built_in() {
    let env = scenario();
    let d = &env.dir;
    d.add_ip_group(group("Office", &["10.0.0.0/8"])).unwrap();
    d.add_ip_group(group("Trusted", &["group:Office"])).unwrap();
    let e = d.remove_ip_group("Office").unwrap_err();
    assert_eq!(
        e.to_string(),
        "IP address group Office is used by IP address group Trusted; change that first"
    );
    let e = d.remove_ip_group("Local clients").unwrap_err();
    assert!(matches!(e, DirectoryError::BuiltInIpGroup(_)));
    d.set_security_policy(SecurityPolicy {
        exempt_ip_group: Some("Trusted".into()),
        ..Default::default()
    })
    .unwrap();
    let e = d.remove_ip_group("Trusted").unwrap_err();
    assert_eq!(
        e.to_string(),
        "IP address group Trusted is used by the security policy; change that first"
    );
    d.set_security_policy(SecurityPolicy::default()).unwrap();
    d.remove_ip_group("Trusted").unwrap();
    d.remove_ip_group("Office").unwrap();
    assert!(matches!(
        d.get_ip_group("Office"),
        Err(DirectoryError::NoSuchIpGroup(_))
    ));
}

#[test]
fn time_intervals_are_stored_and_validated() {
    let env = scenario();
    let d = &env.dir;
    let t = TimeInterval::new(
        "Working hours",
        vec![TimeItem::parse("weekdays 08:00-17:00").unwrap()],
    );
    d.add_time_interval(t.clone()).unwrap();
    let got = d.get_time_interval("working hours").unwrap();
    assert_eq!(got, t);
    let monday_9 = chrono::NaiveDate::from_ymd_opt(2026, 3, 2)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    assert!(got.contains(monday_9));
    assert!(matches!(
        d.add_time_interval(t.clone()),
        Err(DirectoryError::TimeIntervalExists(_))
    ));
    let e = d
        .add_time_interval(TimeInterval::new(" ", vec![]))
        .unwrap_err();
    assert!(matches!(e, DirectoryError::InvalidTimeInterval(_)));
    d.set_time_interval(TimeInterval::new(
        "Working hours",
        vec![TimeItem::parse("weekend").unwrap()],
    ))
    .unwrap();
    assert!(
        !d.get_time_interval("Working hours")
            .unwrap()
            .contains(monday_9)
    );
    assert_eq!(d.list_time_intervals().unwrap().len(), 1);
    d.remove_time_interval("WORKING HOURS").unwrap();
    assert!(d.list_time_intervals().unwrap().is_empty());
}

// ---- two processes on one database (CLI + server) ----

#[test]
fn two_directories_on_the_same_database_see_each_others_changes_at_once() {
    let env = scenario();
    let (_meta2, cli) = open_dir(&env.path, &env.clock);
    let server = &env.dir;
    cli.add_user(NewUser::new("newbie@example.com", PW))
        .unwrap();
    assert_eq!(
        targets(server, "newbie@example.com"),
        vec![local("newbie@example.com")]
    );
    server.authenticate(&req("newbie", PW)).unwrap();
    alias(&cli, "example.com", "*", &["admin"]);
    assert_eq!(
        targets(server, "zzz@example.com"),
        vec![local("admin@example.com")]
    );
    cli.set_user(
        "newbie",
        UserPatch {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        server.authenticate(&req("newbie", PW)).unwrap_err(),
        AuthError::Disabled
    );
    // Both write concurrently without losing a change.
    let cli = Arc::new(cli);
    let h = {
        let cli = cli.clone();
        std::thread::spawn(move || {
            for i in 0..10 {
                cli.add_alias(NewAlias {
                    name: "fan".into(),
                    domain: "example.com".into(),
                    targets: vec![format!("c{i}@remote.test")],
                    description: String::new(),
                })
                .unwrap();
            }
        })
    };
    for i in 0..10 {
        alias(
            server,
            "example.com",
            "fan",
            &[&format!("s{i}@remote.test")],
        );
    }
    h.join().unwrap();
    assert_eq!(
        server
            .get_alias("example.com", "fan")
            .unwrap()
            .targets
            .len(),
        20
    );
    // Uniqueness holds across processes.
    let e = server
        .add_user(NewUser::new("newbie@example.com", PW))
        .unwrap_err();
    assert!(matches!(e, DirectoryError::UserExists(_)));
}

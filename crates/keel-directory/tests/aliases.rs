//! Aliases and recipient resolution (guide §12.3, §7.6, §7.9, §7.10, §8.2, §9).

mod common;
use common::*;
use keel_directory::*;

// requirements-1 §Y.4, guide §12.3 examples 3 and 4.
#[test]
fn scenario_wildcard_aliases() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "sales.*", &["carol"]);
    alias(d, "example.com", "?ime", &["dave"]);
    assert_eq!(
        targets(d, "sales.eu@example.com"),
        vec![local("carol@example.com")]
    );
    assert_eq!(
        targets(d, "time@example.com"),
        vec![local("dave@example.com")]
    );
    assert_eq!(
        targets(d, "dime@example.com"),
        vec![local("dave@example.com")]
    );
    assert_eq!(
        d.resolve_recipient("xtime@example.com").unwrap(),
        Resolution::NotFound
    );
    assert_eq!(
        d.resolve_recipient("ime@example.com").unwrap(),
        Resolution::NotFound
    );
}

// guide §12.3 example 3: `*sms*`, `a*00*`.
#[test]
fn guide_alias_star_patterns_match_any_number_of_characters() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "*sms*", &["carol"]);
    alias(d, "example.com", "a*00*", &["dave"]);
    assert_eq!(
        targets(d, "sms@example.com"),
        vec![local("carol@example.com")]
    );
    assert_eq!(
        targets(d, "my-sms-gw@example.com"),
        vec![local("carol@example.com")]
    );
    assert_eq!(
        targets(d, "a100@example.com"),
        vec![local("dave@example.com")]
    );
    assert_eq!(
        targets(d, "ab007x@example.com"),
        vec![local("dave@example.com")]
    );
    assert_eq!(
        d.resolve_recipient("b100@example.com").unwrap(),
        Resolution::NotFound
    );
}

// requirements-1 §Y.5, guide §12.3 example 2.
#[test]
fn scenario_catch_all() {
    let env = scenario();
    let d = &env.dir;
    assert_eq!(
        d.resolve_recipient("nobody@example.com").unwrap(),
        Resolution::NotFound
    );
    alias(d, "example.com", "*", &["admin"]);
    assert_eq!(
        targets(d, "nobody@example.com"),
        vec![local("admin@example.com")]
    );
    // An existing user still gets its own mail.
    assert_eq!(
        targets(d, "alice@example.com"),
        vec![local("alice@example.com")]
    );
    // The catch-all also works through the domain alias.
    assert_eq!(
        targets(d, "nobody@example.net"),
        vec![local("admin@example.com")]
    );
}

// requirements-1 §Y.6, guide §12.3 example 5 and the loop rule.
#[test]
fn scenario_alias_fan_out_and_loop_breaking() {
    let env = scenario();
    let d = &env.dir;
    d.add_user(NewUser::new("jwayne@example.com", PW)).unwrap();
    d.add_user(NewUser::new("info@example.com", PW)).unwrap();
    alias(d, "example.com", "jwayne", &["info"]);
    alias(d, "example.com", "jwayne", &["jwayne"]); // a second row adds up
    assert_eq!(
        d.get_alias("example.com", "jwayne").unwrap().targets,
        vec!["info", "jwayne"]
    );
    // Exactly once in each mailbox.
    assert_eq!(
        sorted(targets(d, "jwayne@example.com")),
        sorted(vec![local("info@example.com"), local("jwayne@example.com")])
    );

    d.add_user(NewUser::new("c@example.com", PW)).unwrap();
    alias(d, "example.com", "a", &["b"]);
    alias(d, "example.com", "b", &["c"]);
    alias(d, "example.com", "c", &["b"]);
    let res = d.resolve_recipient("a@example.com").unwrap();
    let Resolution::Deliver { targets, notes } = res else {
        panic!("{res:?}")
    };
    assert_eq!(targets, vec![local("c@example.com")], "delivered once");
    assert!(notes.iter().any(|n| n.contains("loop")), "{notes:?}");
}

// guide §12.3: jwayne → wayne, wayne → john.wayne, john.wayne → wayne: stored in the mailbox
// of the last unmarked alias (john.wayne).
#[test]
fn guide_alias_loop_is_stored_in_the_last_unmarked_alias() {
    let env = scenario();
    let d = &env.dir;
    d.add_user(NewUser::new("john.wayne@example.com", PW))
        .unwrap();
    alias(d, "example.com", "jwayne", &["wayne"]);
    alias(d, "example.com", "wayne", &["john.wayne"]);
    alias(d, "example.com", "john.wayne", &["wayne"]);
    assert_eq!(
        targets(d, "jwayne@example.com"),
        vec![local("john.wayne@example.com")]
    );
    assert_eq!(
        targets(d, "wayne@example.com"),
        vec![local("john.wayne@example.com")]
    );
}

#[test]
fn scenario_alias_loop_without_mailbox_terminates() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "x1", &["x2"]);
    alias(d, "example.com", "x2", &["x1"]);
    assert_eq!(
        d.resolve_recipient("x1@example.com").unwrap(),
        Resolution::NotFound
    );
    // A catch-all pointing to an unknown name does not loop forever either.
    alias(d, "example.com", "*", &["ghost"]);
    assert_eq!(
        d.resolve_recipient("zzz@example.com").unwrap(),
        Resolution::NotFound
    );
}

#[test]
fn long_alias_chains_are_bounded() {
    let env = scenario();
    let d = &env.dir;
    for i in 0..60 {
        alias(
            d,
            "example.com",
            &format!("n{i}"),
            &[&format!("n{}", i + 1)],
        );
    }
    alias(d, "example.com", "n60", &["alice"]);
    let res = d.resolve_recipient("n0@example.com").unwrap();
    // The depth limit stops the expansion before alice; no hang, no panic.
    assert_eq!(res, Resolution::NotFound);
    let res = d.resolve_recipient("n40@example.com").unwrap();
    assert!(matches!(res, Resolution::Deliver { .. }), "{res:?}");
}

// requirements-1 §Y.7, guide §12.3 example 1.
#[test]
fn scenario_alias_to_public_folder() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "info", &["#public/Info"]);
    assert_eq!(
        targets(d, "info@example.com"),
        vec![Target::PublicFolder {
            domain: "example.com".into(),
            path: "Info".into()
        }]
    );
}

#[test]
fn alias_targets_may_be_groups_other_aliases_and_external_addresses() {
    let env = scenario();
    let d = &env.dir;
    d.add_group(NewGroup {
        name: "sales".into(),
        domain: "example.com".into(),
        members: vec!["alice".into(), "carol".into()],
        ..Default::default()
    })
    .unwrap();
    // guide §11 example: an alias delivering to a group (the group has no address itself).
    d.set_group(
        "sales@example.com",
        GroupPatch {
            addresses: Some(vec!["sales-team".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    alias(
        d,
        "example.com",
        "team",
        &["sales-team", "partner@remote.test", "helpdesk"],
    );
    alias(d, "example.com", "helpdesk", &["dave"]);
    assert_eq!(
        sorted(targets(d, "team@example.com")),
        sorted(vec![
            local("alice@example.com"),
            local("carol@example.com"),
            Target::External {
                address: "partner@remote.test".into()
            },
            local("dave@example.com"),
        ])
    );
}

#[test]
fn alias_names_are_checked_against_table_12_2() {
    let env = scenario();
    let e = env
        .dir
        .add_alias(NewAlias {
            name: "bad name!".into(),
            domain: "example.com".into(),
            targets: vec!["alice".into()],
            description: String::new(),
        })
        .unwrap_err();
    assert!(matches!(e, DirectoryError::InvalidAliasName(_)), "{e}");
    let e = env
        .dir
        .add_alias(NewAlias {
            name: "x".into(),
            domain: "nowhere.test".into(),
            targets: vec!["alice".into()],
            description: String::new(),
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "domain nowhere.test does not exist");
}

#[test]
fn alias_rows_can_be_removed_one_by_one() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "x", &["alice", "carol"]);
    d.remove_alias("example.com", "x", Some("alice")).unwrap();
    assert_eq!(
        targets(d, "x@example.com"),
        vec![local("carol@example.com")]
    );
    d.remove_alias("example.com", "x", None).unwrap();
    assert_eq!(
        d.resolve_recipient("x@example.com").unwrap(),
        Resolution::NotFound
    );
    assert!(d.list_aliases(Some("example.com")).unwrap().is_empty());
}

// Precedence: exact alias, own address, most specific wildcard, catch-all, forwarding.
#[test]
fn precedence_user_address_beats_wildcard_and_catch_all() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "a*", &["dave"]);
    alias(d, "example.com", "*", &["admin"]);
    assert_eq!(
        targets(d, "alice@example.com"),
        vec![local("alice@example.com")]
    );
    assert_eq!(
        targets(d, "andrew@example.com"),
        vec![local("dave@example.com")]
    );
    assert_eq!(
        targets(d, "zed@example.com"),
        vec![local("admin@example.com")]
    );
}

#[test]
fn precedence_exact_alias_beats_user_address() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "alice", &["carol"]);
    assert_eq!(
        targets(d, "alice@example.com"),
        vec![local("carol@example.com")]
    );
}

#[test]
fn precedence_most_specific_wildcard_wins() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "s*", &["dave"]);
    alias(d, "example.com", "sales.*", &["carol"]);
    alias(d, "example.com", "sales.e?", &["alice"]);
    assert_eq!(
        targets(d, "sales.eu@example.com"),
        vec![local("alice@example.com")]
    );
    assert_eq!(
        targets(d, "sales.asia@example.com"),
        vec![local("carol@example.com")]
    );
    assert_eq!(
        targets(d, "support@example.com"),
        vec![local("dave@example.com")]
    );
}

#[test]
fn extra_addresses_deliver_to_the_user() {
    let env = scenario();
    let d = &env.dir;
    d.set_user(
        "alice@example.com",
        UserPatch {
            addresses: Some(vec!["a.smith".into(), "Alice.Smith@example.net".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        targets(d, "a.smith@example.com"),
        vec![local("alice@example.com")]
    );
    assert_eq!(
        targets(d, "ALICE.SMITH@example.com"),
        vec![local("alice@example.com")]
    );
    assert_eq!(
        targets(d, "a.smith@example.net"),
        vec![local("alice@example.com")]
    );
}

// requirements-1 §Y.3 (delivery half), guide §7.6.
#[test]
fn scenario_domain_alias_is_delivery_only() {
    let env = scenario();
    let d = &env.dir;
    assert_eq!(
        targets(d, "alice@example.net"),
        vec![local("alice@example.com")]
    );
    let e = d.authenticate(&req("alice@example.net", PW)).unwrap_err();
    assert_eq!(e, AuthError::UnknownUser);
}

#[test]
fn unknown_domains_are_not_local() {
    let env = scenario();
    assert_eq!(
        env.dir.resolve_recipient("x@remote.test").unwrap(),
        Resolution::NotLocal
    );
    assert!(env.dir.resolve_recipient("not an address").is_err());
}

// requirements-1 §Y.22 (forwarding half), guide §8.2 step 4.
#[test]
fn scenario_forwarding_with_and_without_local_copy() {
    let env = scenario();
    let d = &env.dir;
    d.set_user(
        "alice@example.com",
        UserPatch {
            forwarding: Some(Forwarding {
                targets: vec!["fw@remote.test".into()],
                keep_local_copy: true,
            }),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        targets(d, "alice@example.com"),
        vec![
            Target::LocalUser {
                user: "alice@example.com".into(),
                local_copy_of_forward: true
            },
            Target::External {
                address: "fw@remote.test".into()
            },
        ]
    );
    d.set_user(
        "alice@example.com",
        UserPatch {
            forwarding: Some(Forwarding {
                targets: vec!["fw@remote.test".into()],
                keep_local_copy: false,
            }),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        targets(d, "alice@example.com"),
        vec![Target::External {
            address: "fw@remote.test".into()
        }]
    );
}

#[test]
fn forwarding_loops_between_users_terminate() {
    let env = scenario();
    let d = &env.dir;
    let fwd = |to: &str| UserPatch {
        forwarding: Some(Forwarding {
            targets: vec![to.into()],
            keep_local_copy: false,
        }),
        ..Default::default()
    };
    d.set_user("alice@example.com", fwd("carol")).unwrap();
    d.set_user("carol@example.com", fwd("alice")).unwrap();
    // alice → carol → alice (flagged): stored in carol's mailbox, the last unmarked name.
    assert_eq!(
        targets(d, "alice@example.com"),
        vec![local("carol@example.com")]
    );
}

#[test]
fn group_address_expands_to_members_once() {
    let env = scenario();
    let d = &env.dir;
    d.add_group(NewGroup {
        name: "staff".into(),
        domain: "example.com".into(),
        addresses: vec!["staff".into()],
        members: vec!["alice".into(), "carol@example.com".into(), "alice".into()],
        ..Default::default()
    })
    .unwrap();
    alias(d, "example.com", "all", &["staff", "alice"]);
    assert_eq!(
        sorted(targets(d, "all@example.com")),
        sorted(vec![local("alice@example.com"), local("carol@example.com")])
    );
}

// guide §7.9, branch office: company.com with alias ldn.company.com forwards unknown
// recipients to HQ, but not mail addressed through the domain alias.
#[test]
fn guide_branch_forwards_unknown_recipients_but_not_via_domain_alias() {
    let env = empty();
    let d = &env.dir;
    d.add_domain(NewDomain {
        name: "company.com".into(),
        aliases: vec!["ldn.company.com".into()],
        forwarding: DomainForwarding::parse("mail.company.com"),
        ..Default::default()
    })
    .unwrap();
    d.add_user(NewUser::new("technician@company.com", PW))
        .unwrap();
    assert_eq!(
        targets(d, "technician@ldn.company.com"),
        vec![local("technician@company.com")]
    );
    assert_eq!(
        targets(d, "boss@company.com"),
        vec![Target::Forwarded {
            address: "boss@company.com".into(),
            host: "mail.company.com".into(),
            port: 25,
            mode: ForwardMode::Online,
        }]
    );
    assert_eq!(
        d.resolve_recipient("boss@ldn.company.com").unwrap(),
        Resolution::NotFound
    );
    // guide §7.9: a catch-all would stop this forwarding.
    alias(d, "company.com", "*", &["technician"]);
    assert_eq!(
        targets(d, "boss@company.com"),
        vec![local("technician@company.com")]
    );
}

// guide §7.9, headquarters: the empty domain ldn.company.com is forwarded to the branch and
// per-user aliases send the branch users' mail there.
#[test]
fn guide_headquarters_aliases_reach_the_forwarded_branch_domain() {
    let env = empty();
    let d = &env.dir;
    d.add_domain(NewDomain {
        name: "company.com".into(),
        ..Default::default()
    })
    .unwrap();
    d.add_domain(NewDomain {
        name: "ldn.company.com".into(),
        forwarding: DomainForwarding::parse("mail-ldn.company.com:2525"),
        ..Default::default()
    })
    .unwrap();
    d.add_user(NewUser::new("boss@company.com", PW)).unwrap();
    alias(
        d,
        "company.com",
        "technician",
        &["technician@ldn.company.com"],
    );
    assert_eq!(
        targets(d, "technician@company.com"),
        vec![Target::Forwarded {
            address: "technician@ldn.company.com".into(),
            host: "mail-ldn.company.com".into(),
            port: 2525,
            mode: ForwardMode::Online,
        }]
    );
    assert_eq!(
        targets(d, "boss@company.com"),
        vec![local("boss@company.com")]
    );
}

// guide §7.10: a backup MX has the domain, no users, and forwards everything.
#[test]
fn guide_backup_mx_forwards_the_whole_domain() {
    let env = empty();
    let d = &env.dir;
    d.add_domain(NewDomain {
        name: "company.com".into(),
        forwarding: Some(DomainForwarding {
            host: "mail1.company.com".into(),
            port: 25,
            mode: ForwardMode::OfflineEtrn,
        }),
        ..Default::default()
    })
    .unwrap();
    let t = targets(d, "anyone@company.com");
    assert!(
        matches!(
            &t[..],
            [Target::Forwarded {
                mode: ForwardMode::OfflineEtrn,
                ..
            }]
        ),
        "{t:?}"
    );
}

#[test]
fn set_alias_replaces_targets_and_a_bad_target_changes_nothing() {
    let env = scenario();
    let d = &env.dir;
    alias(d, "example.com", "x", &["alice", "carol"]);
    let set = |targets: &[&str]| {
        d.set_alias(NewAlias {
            name: "x".into(),
            domain: "example.com".into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            description: String::new(),
        })
    };
    set(&["dave"]).unwrap();
    assert_eq!(targets(d, "x@example.com"), vec![local("dave@example.com")]);
    assert!(set(&["dave", "not an address@@"]).is_err());
    assert_eq!(targets(d, "x@example.com"), vec![local("dave@example.com")]);
    let missing = d.set_alias(NewAlias {
        name: "nope".into(),
        domain: "example.com".into(),
        targets: vec!["dave".into()],
        description: String::new(),
    });
    assert!(missing.is_err(), "set must not create an alias");
}

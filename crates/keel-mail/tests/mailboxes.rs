//! Mail store service tests against SqliteStore + FileBlobStore in a temporary directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_core::clock::ManualClock;
use keel_directory::{Directory, HashParams, NewDomain, NewUser, Quota};
use keel_mail::*;
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;
use keel_store::{Doc, DocTxn, NewMessage, QueueRcptState, QueuedMessage, StoreError, StoreResult};

const T0: i64 = 1_750_000_000;

struct Env {
    _dir: tempfile::TempDir,
    mail: Mailboxes,
    clock: ManualClock,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta: Arc<dyn MetaStore> =
        Arc::new(SqliteStore::open(&dir.path().join("meta.db")).expect("open sqlite"));
    let blobs: Arc<dyn BlobStore> =
        Arc::new(FileBlobStore::open(&dir.path().join("blobs")).expect("open blobs"));
    let clock = ManualClock::at(T0);
    let directory = Arc::new(Directory::with_hash_params(
        Arc::clone(&meta),
        Arc::new(clock.clone()),
        HashParams::insecure_fast(),
    ));
    directory
        .add_domain(NewDomain {
            name: "example.com".into(),
            ..NewDomain::default()
        })
        .expect("add domain");
    let mail = Mailboxes::new(meta, blobs, directory, Arc::new(clock.clone()));
    mail.set_hostname("mx.example.com");
    Env {
        _dir: dir,
        mail,
        clock,
    }
}

impl Env {
    fn user(&self, login: &str, quota: Quota) -> String {
        let address = format!("{login}@example.com");
        self.mail
            .directory()
            .add_user(NewUser {
                address: address.clone(),
                quota,
                ..NewUser::default()
            })
            .expect("add user");
        address
    }

    fn deliver(&self, raw: &[u8], to: &[&str]) -> Vec<RecipientOutcome> {
        self.mail
            .deliver(&Delivery {
                raw: raw.to_vec(),
                recipients: to.iter().map(|s| s.to_string()).collect(),
                internal_date: T0,
            })
            .expect("deliver")
    }

    fn inbox_len(&self, user: &str) -> usize {
        let inbox = self.mail.inbox(user).expect("inbox");
        self.mail.messages(inbox.id).expect("messages").len()
    }

    fn blob_count(&self) -> usize {
        self.mail.blobs().list().expect("list blobs").len()
    }

    fn inbox_subjects(&self, user: &str) -> Vec<String> {
        let inbox = self.mail.inbox(user).expect("inbox");
        self.mail
            .messages(inbox.id)
            .expect("messages")
            .iter()
            .map(|m| {
                let raw = self.mail.read(&m.blob).expect("read");
                String::from_utf8_lossy(&raw)
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect()
    }
}

fn msg(n: usize) -> Vec<u8> {
    format!("From: a@remote.test\r\nTo: x@example.com\r\nSubject: m{n}\r\n\r\nbody {n}\r\n")
        .into_bytes()
}

const UNLIMITED: Quota = Quota {
    bytes: 0,
    messages: 0,
};

#[test]
fn one_blob_serves_every_recipient() {
    // DESIGN §2: one copy serves every recipient
    let e = env();
    let users: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|u| e.user(u, UNLIMITED))
        .collect();
    let to: Vec<&str> = users.iter().map(String::as_str).collect();
    let out = e.deliver(&msg(1), &to);
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(e.blob_count(), 1);
    for u in &users {
        assert_eq!(e.inbox_len(u), 1);
        assert_eq!(e.mail.read(&BlobId::of(&msg(1))).expect("read"), msg(1));
    }
    let Ok(Delivered { folder, uid }) = out[0].result else {
        panic!("not delivered")
    };
    assert_eq!(uid, 1);
    assert_eq!(e.mail.inbox(&users[0]).expect("inbox").id, folder);
}

#[test]
fn default_folders_created_on_first_delivery() {
    // guide §7.5, §8.2; RFC 6154
    let e = env();
    let a = e.user("a", UNLIMITED);
    assert!(e.mail.folders(&a).expect("folders").is_empty());
    e.deliver(&msg(1), &[&a]);
    let names: Vec<String> = e
        .mail
        .folders(&a)
        .expect("folders")
        .into_iter()
        .map(|f| f.name)
        .collect();
    for d in DEFAULT_FOLDERS {
        assert!(names.iter().any(|n| n == d), "{d} missing from {names:?}");
    }
    let specials: Vec<_> = names.iter().filter_map(|n| special_use(n)).collect();
    assert_eq!(specials.len(), 5);
}

// issue 4: special-use folder names configurable per domain; the account keeps the
// folders it got when the domain's names change later; spam goes to its Junk folder.
#[test]
fn special_folders_follow_the_domain_names_and_stay_with_the_account() {
    let e = env();
    let set_names = |v: serde_json::Value| {
        let mut s = std::collections::BTreeMap::new();
        s.insert(keel_directory::FOLDER_NAMES.to_owned(), v);
        e.mail
            .directory()
            .set_domain(
                "example.com",
                keel_directory::DomainPatch {
                    settings: Some(s),
                    ..Default::default()
                },
            )
            .expect("set folder names");
    };
    set_names(
        serde_json::json!({"sent": "Sent", "trash": "Trash", "junk": "Spam",
        "archive": "Archiv/Mail"}),
    );
    let a = e.user("a", UNLIMITED);
    e.deliver(&msg(1), &[&a]);
    let names: Vec<String> = e
        .mail
        .folders(&a)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        [
            "Archiv",
            "Archiv/Mail",
            "Drafts",
            "INBOX",
            "Sent",
            "Spam",
            "Trash"
        ],
    );
    let s = e.mail.special_folders(&a).unwrap();
    assert_eq!(s.name(SpecialUse::Junk), "Spam");
    assert_eq!(s.uses_of("Archiv/Mail"), vec![SpecialUse::Archive]);
    assert!(s.uses_of("Archiv").is_empty());

    // Spam goes to the account's Junk folder.
    e.mail
        .deliver_to_special(
            &Delivery {
                raw: msg(2),
                recipients: vec![a.clone()],
                internal_date: T0,
            },
            SpecialUse::Junk,
        )
        .unwrap();
    let spam = e.mail.folder(&a, "Spam").unwrap().unwrap();
    assert_eq!(e.mail.messages(spam.id).unwrap().len(), 1);

    // New names for the domain: the existing account keeps its folders, a new one gets
    // the new names.
    set_names(serde_json::json!({"junk": "Junk"}));
    assert_eq!(e.mail.special_folder(&a, SpecialUse::Junk).unwrap(), "Spam");
    let b = e.user("b", UNLIMITED);
    e.deliver(&msg(3), &[&b]);
    assert_eq!(e.mail.special_folder(&b, SpecialUse::Junk).unwrap(), "Junk");
    assert!(e.mail.folder(&b, "Junk").unwrap().is_some());

    // The account's choice follows RENAME and is dropped by DELETE.
    e.mail.rename_folder(&a, "Spam", "Unwanted").unwrap();
    assert_eq!(
        e.mail.special_folder(&a, SpecialUse::Junk).unwrap(),
        "Unwanted"
    );
    e.mail.delete_folder(&a, "Unwanted").unwrap();
    e.mail.create_folder(&a, "Unwanted").unwrap();
    let s = e.mail.special_folders(&a).unwrap();
    assert!(s.uses_of("Unwanted").is_empty());
    assert_eq!(
        s.name(SpecialUse::Junk),
        "Junk",
        "falls back to the domain's name"
    );
}

// issue 4: the guide's names are recognised as the same special uses (an account from
// before the domain changed its names, or migrated with them).
#[test]
fn guide_names_are_recognised_special_uses() {
    let e = env();
    let a = e.user("a", UNLIMITED);
    for n in ["Sent Items", "Deleted Items", "Junk E-mail"] {
        e.mail.create_folder(&a, n).unwrap();
    }
    let s = e.mail.special_folders(&a).unwrap();
    assert_eq!(s.name(SpecialUse::Sent), "Sent Items");
    assert_eq!(s.name(SpecialUse::Trash), "Deleted Items");
    assert_eq!(s.name(SpecialUse::Junk), "Junk E-mail");
    assert_eq!(s.uses_of("Trash"), vec![SpecialUse::Trash]);
}

#[test]
fn duplicate_recipients_are_delivered_once() {
    let e = env();
    let a = e.user("a", UNLIMITED);
    let out = e.deliver(&msg(1), &[&a, &a, "A@Example.com"]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].user, a);
    assert!(out[0].result.is_ok());
    assert_eq!(e.inbox_len(&a), 1);
}

#[test]
fn unknown_recipient_fails_alone() {
    let e = env();
    let a = e.user("a", UNLIMITED);
    let out = e.deliver(&msg(1), &["nobody@example.com", &a]);
    assert_eq!(
        out[0].result,
        Err(DeliveryError::NoSuchUser("nobody@example.com".into()))
    );
    assert!(out[1].result.is_ok());
    assert_eq!(
        out[0]
            .result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .as_deref(),
        Some("user nobody@example.com does not exist")
    );
}

#[test]
fn byte_quota_refuses_only_the_full_recipient() {
    // guide §8.2 step 7
    let e = env();
    let small = e.user(
        "small",
        Quota {
            bytes: 50,
            messages: 0,
        },
    );
    let big = e.user("big", UNLIMITED);
    let m = msg(1);
    assert!(m.len() > 50);
    assert!(matches!(
        e.mail.quota_check(&small, m.len() as u64).expect("check"),
        QuotaStatus::Exceeded {
            what: QuotaKind::Bytes,
            limit: 50,
            used: 0
        }
    ));
    let out = e.deliver(&m, &[&small, &big]);
    assert_eq!(
        out[0].result,
        Err(DeliveryError::QuotaExceeded {
            what: QuotaKind::Bytes,
            limit: 50,
            used: 0
        })
    );
    assert!(out[1].result.is_ok());
    assert_eq!(e.mail.usage(&small).expect("usage").messages, 0);
    assert_eq!(e.inbox_len(&big), 1);
}

#[test]
fn message_quota_refuses_only_the_full_recipient() {
    // guide §8.2 step 7
    let e = env();
    let two = e.user(
        "two",
        Quota {
            bytes: 0,
            messages: 2,
        },
    );
    let other = e.user("other", UNLIMITED);
    for i in 0..2 {
        e.deliver(&msg(i), &[&two]);
    }
    // 2 of 2 → the warning also went out (it is not refused by the quota).
    let used = e.mail.usage(&two).expect("usage").messages;
    assert_eq!(used, 3);
    let out = e.deliver(&msg(9), &[&other, &two]);
    assert!(out[0].result.is_ok());
    assert_eq!(
        out[1].result,
        Err(DeliveryError::QuotaExceeded {
            what: QuotaKind::Messages,
            limit: 2,
            used
        })
    );
    assert_eq!(
        e.mail.quota_check(&other, 1).expect("check"),
        QuotaStatus::Ok
    );
}

#[test]
fn quota_zero_is_unlimited() {
    let e = env();
    let a = e.user("a", UNLIMITED);
    for i in 0..20 {
        assert!(e.deliver(&msg(i), &[&a])[0].result.is_ok());
    }
    assert_eq!(
        e.mail.quota_check(&a, u64::MAX / 2).expect("check"),
        QuotaStatus::Ok
    );
    assert_eq!(e.inbox_len(&a), 20);
    assert!(e.inbox_subjects(&a).iter().all(|s| !s.starts_with("Quota")));
}

#[test]
fn quota_warning_once_per_24h() {
    // guide §8.2; requirements-1 Y.21: quota 10 messages, warning at 90 %
    let e = env();
    let a = e.user(
        "alice",
        Quota {
            bytes: 0,
            messages: 10,
        },
    );
    for i in 0..8 {
        e.deliver(&msg(i), &[&a]);
    }
    assert_eq!(e.inbox_len(&a), 8, "no warning below 90 %");
    e.deliver(&msg(8), &[&a]); // 9 of 10 = 90 %
    let subjects = e.inbox_subjects(&a);
    assert_eq!(subjects.len(), 10, "{subjects:?}");
    assert_eq!(subjects[9], "Quota warning: your mailbox is 90 % full");
    // The warning counts: 10 of 10 stored, the next delivery is refused.
    assert_eq!(e.mail.usage(&a).expect("usage").messages, 10);
    let out = e.deliver(&msg(10), &[&a]);
    assert!(matches!(
        out[0].result,
        Err(DeliveryError::QuotaExceeded { .. })
    ));

    // Make room; deliveries within 24 h send no second warning, even though usage went
    // down and back up (guide §8.2).
    let inbox = e.mail.inbox(&a).expect("inbox");
    e.mail.expunge(inbox.id, &[1, 2, 3, 4]).expect("expunge");
    e.clock.advance(Duration::from_secs(23 * 3600));
    for i in 11..14 {
        assert!(e.deliver(&msg(i), &[&a])[0].result.is_ok());
    }
    let warnings = |e: &Env| {
        e.inbox_subjects(&a)
            .iter()
            .filter(|s| s.starts_with("Quota warning"))
            .count()
    };
    assert_eq!(warnings(&e), 1);

    // After 24 h, a delivery at ≥ 90 % warns again.
    e.mail.expunge(inbox.id, &[5]).expect("expunge");
    e.clock.advance(Duration::from_secs(3600));
    assert!(e.deliver(&msg(20), &[&a])[0].result.is_ok());
    assert_eq!(warnings(&e), 2);

    // The warning is a well-formed message from the domain's postmaster.
    let warning = e
        .mail
        .messages(inbox.id)
        .expect("messages")
        .into_iter()
        .map(|m| e.mail.read(&m.blob).expect("read"))
        .find(|raw| raw.windows(13).any(|w| w == b"Quota warning"))
        .expect("warning");
    let text = String::from_utf8(warning).expect("ascii");
    assert!(text.contains("From: Mail Server <postmaster@example.com>\r\n"));
    assert!(text.contains("To: <alice@example.com>\r\n"));
    assert!(text.contains("@mx.example.com>\r\n"));
    assert!(text.contains("Date: "));
}

#[test]
fn expunge_deletes_blob_only_with_last_reference() {
    let e = env();
    let a = e.user("a", UNLIMITED);
    let b = e.user("b", UNLIMITED);
    e.deliver(&msg(1), &[&a, &b]);
    let ia = e.mail.inbox(&a).expect("inbox");
    let ib = e.mail.inbox(&b).expect("inbox");
    e.mail.expunge(ia.id, &[1]).expect("expunge");
    assert_eq!(e.blob_count(), 1, "b still references the blob");
    e.mail.expunge(ib.id, &[1]).expect("expunge");
    assert_eq!(e.blob_count(), 0);
    assert_eq!(e.mail.usage(&a).expect("usage"), Usage::default());
}

#[test]
fn copy_shares_the_blob() {
    let e2 = env();
    let a2 = e2.user("a", UNLIMITED);
    e2.deliver(&msg(1), &[&a2]);
    e2.deliver(&msg(2), &[&a2]);
    let inbox2 = e2.mail.inbox(&a2).expect("inbox");
    let work2 = e2.mail.create_folder(&a2, "Work").expect("create");
    let pairs = e2
        .mail
        .copy(inbox2.id, &[2, 1, 99], work2.id)
        .expect("copy");
    assert_eq!(pairs, vec![(1, 1), (2, 2)]);
    assert_eq!(e2.blob_count(), 2);
    let copied = e2.mail.messages(work2.id).expect("messages");
    let originals = e2.mail.messages(inbox2.id).expect("messages");
    assert_eq!(copied[0].blob, originals[0].blob);
    e2.mail.expunge(inbox2.id, &[1, 2]).expect("expunge");
    assert_eq!(e2.blob_count(), 2, "the copies keep the blobs");
    assert_eq!(e2.mail.usage(&a2).expect("usage").messages, 2);
}

#[test]
fn copy_over_quota_copies_nothing() {
    // guide §8.2: IMAP COPY is refused over quota
    let e = env();
    let a = e.user(
        "a",
        Quota {
            bytes: 0,
            messages: 3,
        },
    );
    e.deliver(&msg(1), &[&a]);
    e.deliver(&msg(2), &[&a]);
    let inbox = e.mail.inbox(&a).expect("inbox");
    let work = e.mail.create_folder(&a, "Work").expect("create");
    let err = e
        .mail
        .copy(inbox.id, &[1, 2], work.id)
        .expect_err("over quota");
    assert!(matches!(
        err,
        MailError::OverQuota {
            what: QuotaKind::Messages,
            limit: 3,
            ..
        }
    ));
    assert!(e.mail.messages(work.id).expect("messages").is_empty());
    assert_eq!(
        e.mail.copy(inbox.id, &[1], work.id).expect("copy"),
        vec![(1, 1)]
    );
}

#[test]
fn append_checks_quota_and_flags() {
    let e = env();
    let a = e.user(
        "a",
        Quota {
            bytes: 0,
            messages: 1,
        },
    );
    e.mail.ensure_default_folders(&a).expect("defaults");
    let (uid, _) = e
        .mail
        .append(&a, "Sent Items", &msg(1), &["\\Seen".into()], T0)
        .expect("append");
    assert_eq!(uid, 1);
    let sent = e
        .mail
        .folder(&a, SENT_ITEMS)
        .expect("folder")
        .expect("exists");
    assert_eq!(sent.unseen, 0);
    let err = e
        .mail
        .append(&a, "inbox", &msg(2), &[], T0)
        .expect_err("full");
    assert!(matches!(err, MailError::OverQuota { .. }), "{err}");
    assert_eq!(e.blob_count(), 1);
    let err = e
        .mail
        .append(&a, "Nope", &msg(2), &[], T0)
        .expect_err("no folder");
    assert!(matches!(err, MailError::NoSuchFolder { .. }));
}

#[test]
fn rename_moves_children() {
    // RFC 9051 §6.3.6
    let e = env();
    let a = e.user("a", UNLIMITED);
    e.mail
        .create_folder(&a, "A/B/C")
        .expect("create with superiors");
    e.mail.create_folder(&a, "AB").expect("create");
    let ab = e.mail.folder(&a, "A/B").expect("folder").expect("exists");
    e.mail.rename_folder(&a, "A", "X/Y").expect("rename");
    let names: Vec<String> = e
        .mail
        .folders(&a)
        .expect("folders")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec!["AB", "X", "X/Y", "X/Y/B", "X/Y/B/C"]);
    // Same folder (id, UIDVALIDITY) under its new name.
    let moved = e.mail.folder(&a, "X/Y/B").expect("folder").expect("exists");
    assert_eq!((moved.id, moved.uid_validity), (ab.id, ab.uid_validity));
    assert!(matches!(
        e.mail.rename_folder(&a, "X", "X/Y/Z"),
        Err(MailError::InvalidRename { .. })
    ));
    assert!(matches!(
        e.mail.rename_folder(&a, "X", "AB"),
        Err(MailError::FolderExists { .. })
    ));
    assert!(matches!(
        e.mail.rename_folder(&a, "Q", "R"),
        Err(MailError::NoSuchFolder { .. })
    ));
}

#[test]
fn renaming_inbox_moves_its_messages() {
    // RFC 9051 §6.3.6
    let e = env();
    let a = e.user("a", UNLIMITED);
    e.deliver(&msg(1), &[&a]);
    e.mail.rename_folder(&a, "inbox", "Old").expect("rename");
    assert_eq!(e.inbox_len(&a), 0);
    let old = e.mail.folder(&a, "Old").expect("folder").expect("exists");
    assert_eq!(e.mail.messages(old.id).expect("messages").len(), 1);
    assert_eq!(e.blob_count(), 1);
    assert_eq!(e.mail.usage(&a).expect("usage").messages, 1);
}

#[test]
fn inbox_cannot_be_deleted_and_delete_frees_blobs() {
    // RFC 9051 §6.3.5
    let e = env();
    let a = e.user("a", UNLIMITED);
    e.deliver(&msg(1), &[&a]);
    assert!(matches!(
        e.mail.delete_folder(&a, "InBoX"),
        Err(MailError::CannotDeleteInbox)
    ));
    let inbox = e.mail.inbox(&a).expect("inbox");
    let work = e.mail.create_folder(&a, "Work").expect("create");
    e.mail.copy(inbox.id, &[1], work.id).expect("copy");
    e.mail.expunge(inbox.id, &[1]).expect("expunge");
    assert_eq!(e.blob_count(), 1);
    e.mail.delete_folder(&a, "Work").expect("delete");
    assert_eq!(e.blob_count(), 0);
    assert!(e.mail.folder(&a, "Work").expect("folder").is_none());
    assert!(matches!(
        e.mail.delete_folder(&a, "Work"),
        Err(MailError::NoSuchFolder { .. })
    ));
}

#[test]
fn inbox_name_is_case_insensitive() {
    // RFC 9051 §5.1
    let e = env();
    let a = e.user("a", UNLIMITED);
    let inbox = e.mail.inbox(&a).expect("inbox");
    for n in ["inbox", "Inbox", "INBOX"] {
        assert_eq!(
            e.mail.folder(&a, n).expect("folder").map(|f| f.id),
            Some(inbox.id)
        );
    }
    assert!(matches!(
        e.mail.create_folder(&a, "inbox"),
        Err(MailError::FolderExists { .. })
    ));
}

#[test]
fn maildrop_lock_is_exclusive_and_released_on_drop() {
    // RFC 1939 §8; guide table 12.1
    let e = env();
    let a = e.user("a", UNLIMITED);
    let lock = e.mail.lock_maildrop(&a).expect("first lock");
    assert_eq!(lock.user(), a);
    assert!(e.mail.lock_maildrop(&a).is_none());
    assert!(e.mail.clone().lock_maildrop("A@example.com").is_none());
    assert!(e.mail.lock_maildrop("other@example.com").is_some());
    drop(lock);
    assert!(e.mail.lock_maildrop(&a).is_some());
}

#[test]
fn subscribers_receive_modseqs() {
    // DESIGN §2: one change log per account
    let e = env();
    let a = e.user("a", UNLIMITED);
    let b = e.user("b", UNLIMITED);
    let mut rx = e.mail.subscribe(&a);
    let mut rx_b = e.mail.subscribe(&b);
    e.deliver(&msg(1), &[&a]);
    let mut last = 0;
    while let Ok(m) = rx.try_recv() {
        assert!(m > last);
        last = m;
    }
    assert_eq!(last, e.mail.meta().highest_modseq(&a).expect("modseq"));
    assert!(rx_b.try_recv().is_err(), "b saw nothing");

    let inbox = e.mail.inbox(&a).expect("inbox");
    let m = e
        .mail
        .set_flags(inbox.id, 1, &["\\Seen".into()])
        .expect("flags");
    assert_eq!(rx.try_recv().expect("flags notified"), m);
    e.mail.expunge(inbox.id, &[1]).expect("expunge");
    let after = rx.try_recv().expect("expunge notified");
    assert!(after > m);
    e.mail.create_folder(&a, "New").expect("create");
    assert!(rx.try_recv().expect("create notified") > after);
}

#[test]
fn failed_delivery_for_all_recipients_leaves_no_blob() {
    let e = env();
    let tiny = e.user(
        "tiny",
        Quota {
            bytes: 10,
            messages: 0,
        },
    );
    let out = e.deliver(&msg(1), &[&tiny, "ghost@example.com"]);
    assert!(out.iter().all(|o| o.result.is_err()));
    assert_eq!(e.blob_count(), 0);
}

#[test]
fn store_failure_after_blob_write_leaves_no_new_blob() {
    // The blob is written before the rows; when every append fails it must not leak,
    // but a blob other messages reference must stay.
    let e = env();
    let a = e.user("a", UNLIMITED);
    let b = e.user("b", UNLIMITED);
    let failing = Arc::new(FailingAppend {
        inner: Arc::clone(e.mail.meta()),
        fail: AtomicBool::new(false),
    });
    let mail = Mailboxes::new(
        failing.clone(),
        Arc::clone(e.mail.blobs()),
        Arc::clone(e.mail.directory()),
        Arc::new(e.clock.clone()),
    );
    assert!(
        mail.deliver(&delivery(&msg(1), &[&a])).expect("deliver")[0]
            .result
            .is_ok()
    );
    failing.fail.store(true, Ordering::SeqCst);
    let out = mail
        .deliver(&delivery(&msg(2), &[&a, &b]))
        .expect("deliver");
    assert!(
        out.iter()
            .all(|o| matches!(o.result, Err(DeliveryError::Store(_)))),
        "{out:?}"
    );
    assert_eq!(e.blob_count(), 1, "the new blob was removed");
    let out = mail.deliver(&delivery(&msg(1), &[&b])).expect("deliver");
    assert!(out[0].result.is_err());
    assert_eq!(e.blob_count(), 1, "a's message keeps its blob");
    assert_eq!(mail.read(&BlobId::of(&msg(1))).expect("read"), msg(1));
    let err = mail
        .append(&a, INBOX, &msg(3), &[], T0)
        .expect_err("append fails");
    assert!(matches!(err, MailError::Store(_)));
    assert_eq!(e.blob_count(), 1);
}

fn delivery(raw: &[u8], to: &[&str]) -> Delivery {
    Delivery {
        raw: raw.to_vec(),
        recipients: to.iter().map(|s| s.to_string()).collect(),
        internal_date: T0,
    }
}

/// A MetaStore whose message appends fail on demand.
struct FailingAppend {
    inner: Arc<dyn MetaStore>,
    fail: AtomicBool,
}

impl MetaStore for FailingAppend {
    fn get_doc(&self, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
        self.inner.get_doc(kind, key)
    }
    fn list_docs(&self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
        self.inner.list_docs(kind, parent)
    }
    fn transact(&self, f: &mut dyn FnMut(&mut dyn DocTxn) -> StoreResult<()>) -> StoreResult<()> {
        self.inner.transact(f)
    }
    fn docs_generation(&self) -> StoreResult<u64> {
        self.inner.docs_generation()
    }
    fn create_folder(&self, account: &str, name: &str, kind: FolderKind) -> StoreResult<Folder> {
        self.inner.create_folder(account, name, kind)
    }
    fn list_folders(&self, account: &str) -> StoreResult<Vec<Folder>> {
        self.inner.list_folders(account)
    }
    fn get_folder(&self, account: &str, name: &str) -> StoreResult<Option<Folder>> {
        self.inner.get_folder(account, name)
    }
    fn rename_folder(&self, folder: i64, new_name: &str) -> StoreResult<()> {
        self.inner.rename_folder(folder, new_name)
    }
    fn delete_folder(&self, folder: i64) -> StoreResult<Vec<BlobId>> {
        self.inner.delete_folder(folder)
    }
    fn move_account_folders(&self, from: &str, to: &str, prefix: &str) -> StoreResult<()> {
        self.inner.move_account_folders(from, to, prefix)
    }
    fn delete_account_data(&self, account: &str) -> StoreResult<Vec<BlobId>> {
        self.inner.delete_account_data(account)
    }
    fn append_messages(
        &self,
        folder: i64,
        messages: &[NewMessage],
    ) -> StoreResult<Vec<(u32, u64)>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk full (test)".into()));
        }
        self.inner.append_messages(folder, messages)
    }
    fn list_messages(&self, folder: i64) -> StoreResult<Vec<MessageMeta>> {
        self.inner.list_messages(folder)
    }
    fn set_flags(&self, folder: i64, uid: u32, flags: &[String]) -> StoreResult<u64> {
        self.inner.set_flags(folder, uid, flags)
    }
    fn expunge(&self, folder: i64, uids: &[u32]) -> StoreResult<Vec<BlobId>> {
        self.inner.expunge(folder, uids)
    }
    fn highest_modseq(&self, account: &str) -> StoreResult<u64> {
        self.inner.highest_modseq(account)
    }
    fn changes_since(&self, account: &str, since: u64) -> StoreResult<Vec<Change>> {
        self.inner.changes_since(account, since)
    }
    fn usage(&self, account: &str) -> StoreResult<Usage> {
        self.inner.usage(account)
    }
    fn blob_refcount(&self, blob: &BlobId) -> StoreResult<u64> {
        self.inner.blob_refcount(blob)
    }
    fn enqueue(&self, message: &QueuedMessage) -> StoreResult<()> {
        self.inner.enqueue(message)
    }
    fn queued_messages(&self) -> StoreResult<Vec<QueuedMessage>> {
        self.inner.queued_messages()
    }
    fn queued_message(&self, id: &str) -> StoreResult<Option<QueuedMessage>> {
        self.inner.queued_message(id)
    }
    fn update_queue_recipient(
        &self,
        id: &str,
        recipient: &str,
        state: QueueRcptState,
        error: Option<&str>,
        next_attempt: i64,
    ) -> StoreResult<()> {
        self.inner
            .update_queue_recipient(id, recipient, state, error, next_attempt)
    }
    fn dequeue(&self, id: &str) -> StoreResult<Vec<BlobId>> {
        self.inner.dequeue(id)
    }
}

#[test]
fn unknown_folder_id_is_an_error() {
    let e = env();
    assert!(matches!(
        e.mail.messages(4242),
        Err(MailError::NoSuchFolderId(4242))
    ));
    let a = e.user("a", UNLIMITED);
    let inbox = e.mail.inbox(&a).expect("inbox");
    assert!(matches!(
        e.mail.copy(inbox.id, &[1], 4242),
        Err(MailError::NoSuchFolderId(4242))
    ));
}

#[test]
fn account_of_unseen_folder_id_falls_back_to_a_scan() {
    let e = env();
    let a = e.user("a", UNLIMITED);
    e.deliver(&msg(1), &[&a]);
    let inbox = e.mail.inbox(&a).expect("inbox");
    // A fresh service has never handed out this folder id.
    let fresh = Mailboxes::new(
        Arc::clone(e.mail.meta()),
        Arc::clone(e.mail.blobs()),
        Arc::clone(e.mail.directory()),
        Arc::new(e.clock.clone()),
    );
    let target = e.mail.create_folder(&a, "T").expect("create");
    let mut rx = fresh.subscribe(&a);
    assert_eq!(
        fresh.copy(inbox.id, &[1], target.id).expect("copy"),
        vec![(1, 1)]
    );
    assert!(rx.try_recv().is_ok());
}

#[test]
fn concurrent_deliveries_do_not_overshoot_the_quota() {
    // guide §8.2: new messages are refused when a limit would be exceeded
    let e = env();
    let a = e.user(
        "a",
        Quota {
            bytes: 0,
            messages: 5,
        },
    );
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let mail = e.mail.clone();
            let a = a.clone();
            std::thread::spawn(move || {
                mail.deliver(&delivery(&msg(i), &[&a]))
                    .map(|o| o.iter().filter(|r| r.result.is_ok()).count())
                    .unwrap_or(0)
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    assert_eq!(ok, 5);
    let subjects = e.inbox_subjects(&a);
    assert_eq!(subjects.iter().filter(|s| s.starts_with("m")).count(), 5);
    assert_eq!(
        subjects.iter().filter(|s| s.starts_with("Quota")).count(),
        1
    );
    // Only the delivered messages' blobs (and the warning's) remain.
    assert_eq!(e.blob_count(), 6);
}

/// requirements-3 §5.4: `reindex` stores each message's real size (new modseq, subscribers
/// notified), recounts usage, keeps UIDs and flags, and keeps and lists a message whose
/// file is damaged or missing. Unknown users and folders are refused.
#[test]
fn reindex_fixes_sizes_and_keeps_unreadable_messages() {
    let e = env();
    let a = e.user("a", UNLIMITED);
    let inbox = e.mail.inbox(&a).expect("inbox");
    let store = e.mail.meta();
    let raws: Vec<Vec<u8>> = (1..=3).map(msg).collect();
    let rows: Vec<NewMessage> = raws
        .iter()
        .map(|r| NewMessage {
            blob: e.mail.blobs().put(r).expect("put"),
            size: 5,
            flags: vec!["$Keep".into()],
            internal_date: T0,
        })
        .collect();
    store.append_messages(inbox.id, &rows).expect("append");
    // Message 2's file is damaged, message 3's is gone.
    let path = |b: &BlobId| {
        e._dir
            .path()
            .join("blobs")
            .join(&b.0[0..2])
            .join(&b.0[2..4])
            .join(&b.0)
    };
    std::fs::write(path(&rows[1].blob), b"not the original bytes").expect("damage");
    std::fs::remove_file(path(&rows[2].blob)).expect("remove");
    let mut rx = e.mail.subscribe(&a);

    let r = e.mail.reindex(&a, None).expect("reindex");
    let f = r.folders.iter().find(|f| f.name == "INBOX").expect("INBOX");
    assert_eq!(f.messages_read, 1);
    assert_eq!(f.store.sizes_fixed.len(), 1);
    assert_eq!(f.store.sizes_fixed[0].actual, raws[0].len() as u64);
    let problems: Vec<(u32, &str)> = f.unreadable.iter().map(|u| (u.uid, u.problem)).collect();
    assert_eq!(problems, vec![(2, "damaged"), (3, "missing")]);
    assert_eq!(r.unreadable(), 2);
    assert_eq!(
        r.account_state.usage_after,
        Usage {
            bytes: raws[0].len() as u64 + 10,
            messages: 3
        }
    );
    assert_eq!(
        rx.try_recv().expect("notified"),
        store.highest_modseq(&a).expect("modseq")
    );
    let text = r.to_string();
    assert!(text.contains("message UID 3 kept"), "{text}");
    assert!(
        text.contains("2 message(s) without readable content"),
        "{text}"
    );
    let after = e.mail.messages(inbox.id).expect("messages");
    assert_eq!(
        after.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(after.iter().all(|m| m.flags == vec!["$Keep".to_owned()]));

    assert!(matches!(
        e.mail.reindex(&a, Some("Nope")),
        Err(MailError::NoSuchFolder { .. })
    ));
    assert!(matches!(
        e.mail.reindex("nobody@example.com", None),
        Err(MailError::NoSuchUser(_))
    ));
    let one = e.mail.reindex(&a, Some("inbox")).expect("one folder");
    assert_eq!(one.folders.len(), 1);
    assert!(!one.folders[0].changed());
}

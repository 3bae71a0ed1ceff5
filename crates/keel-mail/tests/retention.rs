//! Deleted-item recovery (guide §7.4) and the Deleted Items / Junk E-mail clean-out
//! (guide §7.5) against SqliteStore + FileBlobStore, with a clock the tests move.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_core::clock::{Clock, ManualClock};
use keel_directory::{
    CLEANOUT_DELETED_ITEMS_DAYS, CLEANOUT_JUNK_DAYS, DELETED_ITEMS_RECOVERY_DAYS, Directory,
    DirectoryError, DomainPatch, HashParams, NewDomain, NewUser, UserPatch,
};
use keel_mail::*;
use keel_store::NewMessage;
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;

const DAY: u64 = 86_400;

struct Env {
    _dir: tempfile::TempDir,
    mail: Mailboxes,
    clock: ManualClock,
}

/// The store stamps rows with the real time, so the test clock starts at the real time
/// and moves forward from there.
fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta: Arc<dyn MetaStore> =
        Arc::new(SqliteStore::open(&dir.path().join("meta.db")).expect("open sqlite"));
    let blobs: Arc<dyn BlobStore> =
        Arc::new(FileBlobStore::open(&dir.path().join("blobs")).expect("open blobs"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let clock = ManualClock::at(now);
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
    for login in ["alice", "bob"] {
        directory
            .add_user(NewUser {
                address: format!("{login}@example.com"),
                ..NewUser::default()
            })
            .expect("add user");
    }
    let mail = Mailboxes::new(meta, blobs, directory, Arc::new(clock.clone()));
    Env {
        _dir: dir,
        mail,
        clock,
    }
}

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

impl Env {
    fn domain_days(&self, settings: &[(&str, serde_json::Value)]) -> Result<(), DirectoryError> {
        let settings: BTreeMap<String, serde_json::Value> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.mail
            .directory()
            .set_domain(
                "example.com",
                DomainPatch {
                    settings: Some(settings),
                    ..DomainPatch::default()
                },
            )
            .map(|_| ())
    }

    fn deliver(&self, n: usize, to: &str) {
        let raw = format!("From: a@remote.test\r\nTo: {to}\r\nSubject: m{n}\r\n\r\nbody {n}\r\n");
        self.mail
            .deliver(&Delivery {
                raw: raw.into_bytes(),
                recipients: vec![to.to_owned()],
                internal_date: 1_600_000_000,
            })
            .expect("deliver");
    }

    fn folder(&self, user: &str, name: &str) -> Folder {
        self.mail
            .folder(user, name)
            .expect("folder")
            .unwrap_or_else(|| panic!("{user} has no folder {name}"))
    }

    fn count(&self, user: &str, name: &str) -> usize {
        let f = self.folder(user, name);
        self.mail.messages(f.id).expect("messages").len()
    }

    fn names(&self, user: &str) -> Vec<String> {
        self.mail
            .folders(user)
            .expect("folders")
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    /// `n` rows sharing one blob, appended to `name` (created if needed) in one call.
    fn fill(&self, user: &str, name: &str, n: usize) {
        if self.mail.folder(user, name).expect("folder").is_none() {
            self.mail.create_folder(user, name).expect("create");
        }
        let f = self.folder(user, name);
        let raw = format!("Subject: filler of {name}\r\n\r\nx\r\n");
        let blob = self.mail.blobs().put(raw.as_bytes()).expect("put");
        let rows: Vec<NewMessage> = (0..n)
            .map(|_| NewMessage {
                blob: blob.clone(),
                size: raw.len() as u64,
                flags: vec![],
                internal_date: 1_600_000_000,
            })
            .collect();
        self.mail
            .meta()
            .append_messages(f.id, &rows)
            .expect("append");
    }
}

#[test]
fn expunged_messages_are_recovered_into_deleted_items() {
    let e = env();
    e.domain_days(&[(DELETED_ITEMS_RECOVERY_DAYS, 30.into())])
        .expect("recovery on");
    e.deliver(1, ALICE);
    e.deliver(2, ALICE);
    let inbox = e.folder(ALICE, INBOX);
    let rows = e.mail.messages(inbox.id).expect("messages");
    e.mail
        .set_flags(inbox.id, 1, &["\\Deleted".into(), "\\Seen".into()])
        .expect("flags");
    e.mail.expunge(inbox.id, &[1]).expect("expunge");
    assert_eq!(e.count(ALICE, INBOX), 1);
    assert!(
        e.mail.blobs().exists(&rows[0].blob).expect("exists"),
        "a retained message keeps its bytes"
    );
    let stones = e.mail.meta().tombstones(ALICE, 0).expect("tombstones");
    assert_eq!(stones.len(), 1);
    assert_eq!(stones[0].folder, INBOX);

    // A move is no deletion: no tombstone for the source.
    let work = e.mail.create_folder(ALICE, "Work").expect("create");
    e.mail.move_messages(inbox.id, &[2], work.id).expect("move");
    assert_eq!(e.mail.meta().tombstones(ALICE, 0).expect("t").len(), 1);

    let mut notes = e.mail.subscribe(ALICE);
    let since = e.clock.unix() - 3600;
    assert_eq!(e.mail.recover_deleted(ALICE, since).expect("recover"), 1);
    assert!(notes.try_recv().is_ok(), "sessions are told");
    let trash = e.folder(ALICE, DELETED_ITEMS);
    let back = e.mail.messages(trash.id).expect("messages");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].blob, rows[0].blob);
    assert_eq!(back[0].flags, vec!["\\Seen".to_owned()]);
    assert!(e.mail.meta().tombstones(ALICE, 0).expect("t").is_empty());
    assert_eq!(e.mail.recover_deleted(ALICE, since).expect("again"), 0);

    // A deleted folder's messages are deleted items too.
    e.mail.delete_folder(ALICE, "Work").expect("delete folder");
    assert_eq!(e.mail.recover_deleted(ALICE, since).expect("recover"), 1);
    assert_eq!(e.count(ALICE, DELETED_ITEMS), 2);
}

#[test]
fn recovery_is_refused_when_off_and_limited_to_365_days() {
    let e = env();
    e.deliver(1, ALICE);
    let inbox = e.folder(ALICE, INBOX);
    let blob = e.mail.messages(inbox.id).expect("messages")[0].blob.clone();
    e.mail.expunge(inbox.id, &[1]).expect("expunge");
    assert!(
        !e.mail.blobs().exists(&blob).expect("exists"),
        "recovery off: the bytes go at once"
    );
    let err = e.mail.recover_deleted(ALICE, 0).expect_err("off");
    assert!(matches!(err, MailError::RecoveryOff { .. }), "{err}");

    let err = e
        .domain_days(&[(DELETED_ITEMS_RECOVERY_DAYS, 366.into())])
        .expect_err("366 days");
    assert!(err.to_string().contains("at most 365 days"), "{err}");
    assert!(
        matches!(err, DirectoryError::InvalidSetting { ref field, .. } if field == DELETED_ITEMS_RECOVERY_DAYS)
    );
    e.domain_days(&[(DELETED_ITEMS_RECOVERY_DAYS, 365.into())])
        .expect("365 days");
    let err = e
        .domain_days(&[(CLEANOUT_JUNK_DAYS, "soon".into())])
        .expect_err("not a number");
    assert!(err.to_string().contains("whole number"), "{err}");
}

#[test]
fn expired_tombstones_are_purged_with_their_blobs() {
    let e = env();
    e.domain_days(&[(DELETED_ITEMS_RECOVERY_DAYS, 7.into())])
        .expect("recovery on");
    e.deliver(1, ALICE);
    let inbox = e.folder(ALICE, INBOX);
    let blob = e.mail.messages(inbox.id).expect("messages")[0].blob.clone();
    e.mail.expunge(inbox.id, &[1]).expect("expunge");
    assert_eq!(e.mail.purge_tombstones().expect("purge"), 0, "not expired");
    e.clock.advance(Duration::from_secs(8 * DAY));
    // Past the retention the item is not restored, even before the purge ran.
    assert_eq!(e.mail.recover_deleted(ALICE, 0).expect("recover"), 0);
    assert_eq!(e.mail.purge_tombstones().expect("purge"), 1);
    assert!(!e.mail.blobs().exists(&blob).expect("exists"));
    assert!(e.mail.meta().tombstone_accounts().expect("a").is_empty());

    // Turning recovery off drops what was kept.
    e.deliver(2, ALICE);
    e.mail.expunge(inbox.id, &[2]).expect("expunge");
    assert_eq!(e.mail.meta().tombstones(ALICE, 0).expect("t").len(), 1);
    e.domain_days(&[(DELETED_ITEMS_RECOVERY_DAYS, serde_json::Value::Null)])
        .expect("recovery off");
    assert_eq!(e.mail.purge_tombstones().expect("purge"), 1);
}

#[test]
fn clean_out_deletes_old_items_and_empty_subfolders() {
    let e = env();
    e.domain_days(&[
        (DELETED_ITEMS_RECOVERY_DAYS, 30.into()),
        (CLEANOUT_JUNK_DAYS, 40.into()),
        (CLEANOUT_DELETED_ITEMS_DAYS, 0.into()),
    ])
    .expect("settings");
    // Alice's own setting overrides the domain's (guide §7.5, §8.2 step 8).
    e.mail
        .directory()
        .set_user(
            ALICE,
            UserPatch {
                cleanout_junk_days: Some(Some(10)),
                ..UserPatch::default()
            },
        )
        .expect("override");
    let err = e
        .mail
        .directory()
        .set_user(
            BOB,
            UserPatch {
                cleanout_junk_days: Some(Some(1_000_000)),
                ..UserPatch::default()
            },
        )
        .expect_err("too many days");
    assert!(
        matches!(err, DirectoryError::InvalidSetting { .. }),
        "{err}"
    );
    for user in [ALICE, BOB] {
        e.mail.ensure_default_folders(user).expect("defaults");
    }
    e.fill(ALICE, JUNK, CLEANOUT_MAX_PER_FOLDER + 5);
    e.fill(ALICE, "Junk E-mail/Sub", 1);
    e.mail
        .create_folder(ALICE, "Junk E-mail/Empty/Deeper")
        .expect("create");
    e.mail
        .create_folder(ALICE, "Deleted Items/Kept")
        .expect("create");
    e.fill(ALICE, INBOX, 1);
    e.fill(BOB, JUNK, 1);

    // Young items stay.
    let r = e.mail.clean_out().expect("clean-out");
    assert_eq!(r.items_deleted, 0, "{r}");
    assert_eq!(r.folders_deleted, 2, "empty subfolders go at once: {r}");
    assert!(
        !e.names(ALICE)
            .iter()
            .any(|n| n.starts_with("Junk E-mail/E"))
    );

    e.clock.advance(Duration::from_secs(11 * DAY));
    let before = e.mail.meta().highest_modseq(ALICE).expect("modseq");
    let r = e.mail.clean_out().expect("clean-out");
    assert_eq!(r.users, 2);
    assert_eq!(r.items_deleted, CLEANOUT_MAX_PER_FOLDER + 1, "{r}");
    assert!(r.errors.is_empty(), "{r}");
    assert_eq!(e.count(ALICE, JUNK), 5, "at most 1000 per folder per run");
    assert_eq!(e.count(BOB, JUNK), 1, "bob has the domain's 40 days");
    assert_eq!(e.count(ALICE, INBOX), 1, "other folders are not cleaned");
    assert_eq!(
        e.names(ALICE),
        vec![
            "Archive",
            "Deleted Items",
            "Deleted Items/Kept",
            "Drafts",
            INBOX,
            JUNK,
            "Sent Items"
        ],
        "Junk E-mail/Sub went once empty; Deleted Items has no clean-out"
    );
    // The deletions are in the change log (IMAP sessions see EXPUNGE) and recoverable.
    let expunged = e
        .mail
        .meta()
        .changes_since(ALICE, before)
        .expect("changes")
        .iter()
        .filter(|c| c.kind == ChangeKind::MessageExpunged)
        .count();
    assert_eq!(expunged, CLEANOUT_MAX_PER_FOLDER + 1);
    assert_eq!(
        e.mail.meta().tombstones(ALICE, 0).expect("t").len(),
        CLEANOUT_MAX_PER_FOLDER + 1
    );

    let r = e.mail.clean_out().expect("second run");
    assert_eq!(r.items_deleted, 5, "{r}");
    assert_eq!(e.count(ALICE, JUNK), 0);

    // The tombstones expire after the domain's 30 days. Bob's junk (now 42 days old) goes
    // in the same run and its tombstone keeps the bytes alice's Junk E-mail rows shared
    // with it; the blob of Junk E-mail/Sub goes.
    e.clock.advance(Duration::from_secs(31 * DAY));
    let r = e.mail.clean_out().expect("third run");
    assert_eq!(r.items_deleted, 1, "{r}");
    assert_eq!(r.blobs_purged, 1, "{r}");
    assert_eq!(
        e.mail.meta().tombstone_accounts().expect("a"),
        vec![BOB.to_owned()]
    );
}

// issue 4: the clean-out and recovery use the account's Trash and Junk whatever the
// domain calls them.
#[test]
fn clean_out_and_recovery_follow_the_domains_folder_names() {
    let e = env();
    e.domain_days(&[
        (DELETED_ITEMS_RECOVERY_DAYS, 30.into()),
        (CLEANOUT_JUNK_DAYS, 5.into()),
        (CLEANOUT_DELETED_ITEMS_DAYS, 5.into()),
        (
            keel_directory::FOLDER_NAMES,
            serde_json::json!({"trash": "Trash", "junk": "Spam"}),
        ),
    ])
    .expect("settings");
    e.mail.ensure_default_folders(ALICE).expect("defaults");
    e.fill(ALICE, "Spam", 2);
    e.fill(ALICE, "Trash", 1);
    e.fill(ALICE, JUNK, 1); // a plain folder with the guide's name: a second junk folder
    e.clock.advance(Duration::from_secs(6 * DAY));
    let r = e.mail.clean_out_user(ALICE).expect("clean-out");
    assert_eq!(r.items_deleted, 3, "{r}");
    assert_eq!(e.count(ALICE, "Spam"), 0);
    assert_eq!(e.count(ALICE, "Trash"), 0);
    assert_eq!(
        e.count(ALICE, JUNK),
        1,
        "only the account's Junk folder is cleaned"
    );
    let restored = e
        .mail
        .recover_deleted(ALICE, 0)
        .expect("recover deleted items");
    assert_eq!(restored, 3);
    assert_eq!(
        e.count(ALICE, "Trash"),
        3,
        "recovered into the domain's Trash"
    );
}

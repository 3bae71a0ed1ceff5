//! Shared and public folders (guide ch. 26, RFC 4314) against SqliteStore + FileBlobStore.

use std::sync::Arc;
use std::time::Duration;

use keel_core::clock::ManualClock;
use keel_directory::{
    AdminRights, Directory, HashParams, NewDomain, NewGroup, NewUser, PublicFolderScope, UserPatch,
};
use keel_mail::*;
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;

const T0: i64 = 1_750_000_000;
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@other.test";

struct Env {
    _dir: tempfile::TempDir,
    mail: Mailboxes,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta: Arc<dyn MetaStore> =
        Arc::new(SqliteStore::open(&dir.path().join("meta.db")).expect("open sqlite"));
    let blobs: Arc<dyn BlobStore> =
        Arc::new(FileBlobStore::open(&dir.path().join("blobs")).expect("open blobs"));
    let clock = ManualClock::at(T0);
    let d = Arc::new(Directory::with_hash_params(
        Arc::clone(&meta),
        Arc::new(clock.clone()),
        HashParams::insecure_fast(),
    ));
    for name in ["example.com", "other.test"] {
        d.add_domain(NewDomain {
            name: name.into(),
            ..NewDomain::default()
        })
        .expect("domain");
    }
    for u in [ALICE, BOB, CAROL, DAVE] {
        d.add_user(NewUser::new(u, "Secret-pw1")).expect("user");
    }
    d.add_group(NewGroup {
        name: "sales".into(),
        domain: "example.com".into(),
        members: vec![CAROL.into()],
        ..NewGroup::default()
    })
    .expect("group");
    let mail = Mailboxes::new(meta, blobs, d, Arc::new(clock));
    Env { _dir: dir, mail }
}

fn rights(s: &str) -> Rights {
    Rights::parse(s).expect("rights")
}

const SHARED: &str = "Other Users/alice@example.com/Projects";

#[test]
fn owner_has_every_right_and_others_none_until_shared() {
    let e = env();
    e.mail.create_folder(ALICE, "Projects").unwrap();
    let own = e.mail.access(ALICE, "Projects").unwrap();
    assert_eq!(own.rights, Rights::ALL);
    // Not shared: the folder does not exist for bob (RFC 4314 §4).
    let a = e.mail.access(BOB, SHARED).unwrap();
    assert!(a.folder.is_none());
    assert!(matches!(
        e.mail.require(BOB, SHARED, Right::Read),
        Err(MailError::NoSuchFolder { .. })
    ));
    assert!(e.mail.folder(BOB, SHARED).unwrap().is_none());
    assert!(e.mail.shared_folders(BOB).unwrap().is_empty());
}

#[test]
fn read_then_read_write_share() {
    let e = env();
    e.mail.create_folder(ALICE, "Projects").unwrap();
    e.mail
        .set_acl(Some(ALICE), "Projects", "bob", "lr")
        .unwrap();
    let a = e.mail.require(BOB, SHARED, Right::Read).unwrap();
    assert_eq!(a.owner, ALICE);
    assert_eq!(a.name, "Projects");
    assert_eq!(a.rights, Level::Read.rights());
    assert!(matches!(
        e.mail
            .append_visible(BOB, SHARED, b"Subject: x\r\n\r\nx\r\n", &[], T0),
        Err(MailError::NoPermission { right: 'i', .. })
    ));
    let f = e.mail.folder(BOB, SHARED).unwrap().expect("visible");
    assert_eq!(f.name, SHARED);
    assert_eq!(f.account, ALICE);
    let listed = e.mail.shared_folders(BOB).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, SHARED);
    // Read/write: APPEND works and counts toward alice's usage.
    e.mail
        .set_acl(Some(ALICE), "Projects", BOB, "+swite")
        .unwrap();
    let (_, uid) = e
        .mail
        .append_visible(
            BOB,
            SHARED,
            b"Subject: x\r\n\r\nx\r\n",
            &["\\Seen".into()],
            T0,
        )
        .unwrap();
    assert_eq!(uid, 1);
    assert_eq!(e.mail.usage(ALICE).unwrap().messages, 1);
    assert_eq!(e.mail.usage(BOB).unwrap().messages, 0);
    // Bob cannot administer.
    assert!(matches!(
        e.mail.set_acl(Some(BOB), SHARED, "carol", "lr"),
        Err(MailError::NoPermission { right: 'a', .. })
    ));
    let acl = e.mail.get_acl(Some(ALICE), "Projects").unwrap();
    let printed: Vec<(String, String)> = acl
        .iter()
        .map(|(i, r)| (i.clone(), r.to_string()))
        .collect();
    assert_eq!(
        printed,
        vec![
            (ALICE.to_owned(), "lrswipkxtea".to_owned()),
            (BOB.to_owned(), "lrswite".to_owned())
        ]
    );
    e.mail.delete_acl(Some(ALICE), "Projects", BOB).unwrap();
    assert!(e.mail.access(BOB, SHARED).unwrap().folder.is_none());
}

#[test]
fn groups_and_anyone_match() {
    let e = env();
    e.mail.create_folder(ALICE, "Team").unwrap();
    e.mail
        .set_acl(Some(ALICE), "Team", "$sales", "lrs")
        .unwrap();
    let team = "Other Users/alice@example.com/Team";
    assert_eq!(e.mail.access(CAROL, team).unwrap().rights, rights("lrs"));
    assert!(e.mail.access(BOB, team).unwrap().folder.is_none());
    e.mail.set_acl(Some(ALICE), "Team", "anyone", "l").unwrap();
    assert_eq!(e.mail.access(BOB, team).unwrap().rights, rights("l"));
    assert_eq!(e.mail.access(CAROL, team).unwrap().rights, rights("lrs"));
}

#[test]
fn bad_acl_input() {
    let e = env();
    e.mail.create_folder(ALICE, "Projects").unwrap();
    assert!(matches!(
        e.mail.set_acl(Some(ALICE), "Projects", BOB, "lrz"),
        Err(MailError::InvalidRights(_))
    ));
    assert!(matches!(
        e.mail.set_acl(Some(ALICE), "Nope", BOB, "lr"),
        Err(MailError::NoSuchFolder { .. })
    ));
    assert!(matches!(
        e.mail.set_acl(Some(ALICE), "Projects", "nobody", "lr"),
        Err(MailError::InvalidIdentifier(_))
    ));
    assert!(matches!(
        e.mail.set_acl(Some(ALICE), "Projects", "-bob", "lr"),
        Err(MailError::InvalidIdentifier(_))
    ));
    assert!(matches!(
        e.mail.set_acl(Some(ALICE), "Projects", ALICE, "lr"),
        Err(MailError::InvalidIdentifier(_))
    ));
    // Not their folder: invisible to bob, so "no such folder".
    assert!(matches!(
        e.mail.set_acl(Some(BOB), SHARED, BOB, "lrswipkxtea"),
        Err(MailError::NoSuchFolder { .. })
    ));
    // Personal folders cannot use the shared namespaces' roots.
    assert!(matches!(
        e.mail.create_folder(ALICE, "Public Folders/X"),
        Err(MailError::InvalidFolderName { .. })
    ));
}

#[test]
fn public_folders_are_read_only_until_granted() {
    let e = env();
    let owner = public_owner("example.com");
    e.mail.create_folder(&owner, "Info").unwrap();
    e.mail
        .append(&owner, "Info", b"Subject: hi\r\n\r\nx\r\n", &[], T0)
        .unwrap();
    let info = "Public Folders/Info";
    // Guide §26.1: read only for all users of the domain.
    let a = e.mail.require(BOB, info, Right::Read).unwrap();
    assert_eq!(a.rights, Level::Read.rights());
    assert!(!a.rights.can_modify());
    // Per-domain public folders (guide §26.1.1): other domains do not see them.
    assert!(e.mail.access(DAVE, info).unwrap().folder.is_none());
    assert!(e.mail.shared_folders(DAVE).unwrap().is_empty());
    // Only the public-folder admin creates and grants.
    assert!(matches!(
        e.mail.create_visible(BOB, "Public Folders/New"),
        Err(MailError::NoPermission { right: 'k', .. })
    ));
    assert!(matches!(
        e.mail.set_acl(Some(BOB), info, BOB, "lrswite"),
        Err(MailError::NoPermission { right: 'a', .. })
    ));
    e.mail
        .directory()
        .set_user(
            ALICE,
            UserPatch {
                public_folder_admin: Some(true),
                ..UserPatch::default()
            },
        )
        .unwrap();
    e.mail.create_visible(ALICE, "Public Folders/News").unwrap();
    e.mail.set_acl(Some(ALICE), info, BOB, "lrswite").unwrap();
    assert_eq!(e.mail.access(BOB, info).unwrap().rights, rights("lrswite"));
    // The default entry survives the first SETACL.
    assert_eq!(e.mail.access(CAROL, info).unwrap().rights, rights("lr"));
    let names: Vec<String> = e
        .mail
        .shared_folders(CAROL)
        .unwrap()
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(names, vec!["Public Folders/Info", "Public Folders/News"]);
}

#[test]
fn primary_domain_full_admin_administers_public_folders() {
    let e = env();
    let d = e.mail.directory();
    d.set_primary_domain("example.com").unwrap();
    d.set_user(
        CAROL,
        UserPatch {
            admin_rights: Some(AdminRights::Full),
            ..UserPatch::default()
        },
    )
    .unwrap();
    assert!(e.mail.is_public_folder_admin(CAROL, "example.com").unwrap());
    assert!(!e.mail.is_public_folder_admin(BOB, "example.com").unwrap());
    e.mail
        .create_visible(CAROL, "Public Folders/Announcements")
        .unwrap();
    assert_eq!(
        e.mail
            .access(CAROL, "Public Folders/Announcements")
            .unwrap()
            .rights,
        Rights::ALL
    );
}

#[test]
fn deleting_a_folder_drops_its_acl() {
    let e = env();
    let f = e.mail.create_folder(ALICE, "Gone").unwrap();
    e.mail.set_acl(Some(ALICE), "Gone", BOB, "lr").unwrap();
    assert!(
        e.mail
            .meta()
            .get_doc(FOLDER_ACL_KIND, &f.id.to_string())
            .unwrap()
            .is_some()
    );
    e.mail.delete_folder(ALICE, "Gone").unwrap();
    assert!(
        e.mail
            .meta()
            .get_doc(FOLDER_ACL_KIND, &f.id.to_string())
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn followers_are_woken_by_the_owner_changes() {
    let e = env();
    e.mail.create_folder(ALICE, "Projects").unwrap();
    let mut rx = e.mail.subscribe(BOB);
    let guard = e.mail.follow(BOB, ALICE);
    e.mail
        .append(ALICE, "Projects", b"Subject: x\r\n\r\nx\r\n", &[], T0)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("woken")
        .expect("value");
    drop(guard);
    e.mail
        .append(ALICE, "Projects", b"Subject: y\r\n\r\ny\r\n", &[], T0)
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err()
    );
}

#[test]
fn administrator_form_names_owner_and_folder() {
    let e = env();
    e.mail.create_folder(ALICE, "Projects").unwrap();
    let rw = Level::parse("read-write").unwrap().rights().to_string();
    e.mail
        .set_acl(None, "alice@example.com/Projects", BOB, &rw)
        .unwrap();
    assert_eq!(
        e.mail.access(BOB, SHARED).unwrap().rights,
        rights("lrswite")
    );
    let owner = public_owner("example.com");
    e.mail.create_folder(&owner, "Info").unwrap();
    e.mail
        .set_acl(None, "#public@example.com/Info", "$sales", "lrsi")
        .unwrap();
    let acl = e.mail.get_acl(None, "#public@example.com/Info").unwrap();
    let printed: Vec<String> = acl.iter().map(|(i, r)| format!("{i} {r}")).collect();
    assert_eq!(printed, vec!["$sales@example.com lrsi", "anyone lr"]);
    assert_eq!(
        e.mail.access(CAROL, "Public Folders/Info").unwrap().rights,
        rights("lrsi")
    );
    e.mail
        .delete_acl(None, "#public@example.com/Info", "anyone")
        .unwrap();
    assert!(
        e.mail
            .access(BOB, "Public Folders/Info")
            .unwrap()
            .folder
            .is_none()
    );
    assert!(matches!(
        e.mail.get_acl(None, "alice@example.com/Nope"),
        Err(MailError::NoSuchFolder { .. })
    ));
}

// guide §7.1 "Advanced", §26.1.1; requirements-2 §26: public folders shared by every
// domain; switching the scope hides the other scope's folders until switched back.
#[test]
fn global_public_folders_are_shared_by_every_domain() {
    let e = env();
    let d = e.mail.directory();
    for admin in [ALICE, DAVE] {
        d.set_user(
            admin,
            UserPatch {
                public_folder_admin: Some(true),
                ..UserPatch::default()
            },
        )
        .unwrap();
    }
    e.mail.create_visible(ALICE, "Public Folders/Info").unwrap();
    let names = |user: &str| -> Vec<String> {
        e.mail
            .shared_folders(user)
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect()
    };
    assert_eq!(names(BOB), vec!["Public Folders/Info"]);
    assert!(names(DAVE).is_empty());

    d.set_public_folder_scope(PublicFolderScope::Global)
        .unwrap();
    assert_eq!(e.mail.public_owner_for(BOB).unwrap(), GLOBAL_PUBLIC_OWNER);
    assert!(names(BOB).is_empty(), "the per-domain folders are hidden");
    assert!(
        e.mail
            .access(BOB, "Public Folders/Info")
            .unwrap()
            .folder
            .is_none()
    );
    // A public-folder admin of any domain creates; every domain's users read.
    e.mail
        .create_visible(DAVE, "Public Folders/Company")
        .unwrap();
    assert_eq!(names(BOB), vec!["Public Folders/Company"]);
    let a = e
        .mail
        .require(BOB, "Public Folders/Company", Right::Read)
        .unwrap();
    assert_eq!(a.owner, GLOBAL_PUBLIC_OWNER);
    assert_eq!(a.rights, Level::Read.rights());
    assert_eq!(
        e.mail
            .access(ALICE, "Public Folders/Company")
            .unwrap()
            .rights,
        Rights::ALL
    );
    assert!(matches!(
        e.mail.create_visible(BOB, "Public Folders/Mine"),
        Err(MailError::NoPermission { right: 'k', .. })
    ));
    // The administrator's `#public/Folder` form names the scope in force.
    d.set_primary_domain("example.com").unwrap();
    assert!(e.mail.get_acl(None, "#public/Company").is_ok());

    d.set_public_folder_scope(PublicFolderScope::PerDomain)
        .unwrap();
    assert_eq!(names(BOB), vec!["Public Folders/Info"]);
    assert!(names(DAVE).is_empty());
}

// A folder created inside a shared folder starts with the parent's ACL, so the user who
// may create there (RFC 4314 `k`) sees what he created; later changes do not propagate.
#[test]
fn new_subfolders_start_with_the_parents_acl() {
    let e = env();
    e.mail.create_folder(ALICE, "Projects").unwrap();
    e.mail
        .set_acl(Some(ALICE), "Projects", BOB, "lrswipk")
        .unwrap();
    let sub = "Other Users/alice@example.com/Projects/2026";
    e.mail.create_visible(BOB, sub).unwrap();
    assert_eq!(e.mail.access(BOB, sub).unwrap().rights, rights("lrswipk"));
    // Superiors created on the way inherit too; the owner's own creations as well.
    e.mail.create_folder(ALICE, "Projects/2027/Q1").unwrap();
    for name in ["Projects/2027", "Projects/2027/Q1"] {
        let visible = format!("Other Users/alice@example.com/{name}");
        assert_eq!(
            e.mail.access(BOB, &visible).unwrap().rights,
            rights("lrswipk"),
            "{name}"
        );
    }
    e.mail.set_acl(Some(ALICE), "Projects", BOB, "lr").unwrap();
    assert_eq!(e.mail.access(BOB, sub).unwrap().rights, rights("lrswipk"));
    // A folder outside any shared one stays private.
    e.mail.create_folder(ALICE, "Private/Notes").unwrap();
    assert!(
        e.mail
            .access(BOB, "Other Users/alice@example.com/Private/Notes")
            .unwrap()
            .folder
            .is_none()
    );
}

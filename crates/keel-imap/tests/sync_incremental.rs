//! Change propagation is incremental (DESIGN §2, RFC 9051 §7.4-§7.5): a selected session
//! learns other sessions' flag changes, expunges and new mail from the change log and the
//! rows changed since its position, never by re-reading the whole folder. A counting
//! MetaStore wrapper proves it; the untagged responses are the same as before.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Client, PW, T0, has};
use keel_core::clock::ManualClock;
use keel_core::ipgroup::IpGroups;
use keel_directory::{Directory, HashParams, NewDomain, NewUser};
use keel_imap::{ImapContext, ImapService};
use keel_mail::{Delivery, Mailboxes};
use keel_net::{Admission, RunningService, bind_all};
use keel_store::file::FileBlobStore;
use keel_store::sqlite::SqliteStore;
use keel_store::{
    BlobId, Change, Doc, DocTxn, Folder, FolderKind, MessageMeta, MetaStore, NewMessage,
    QueueRcptState, QueuedMessage, StoreResult, Usage,
};
use tokio_rustls::TlsAcceptor;

/// Delegates everything to SQLite and counts the folder reads.
struct Counting {
    inner: SqliteStore,
    full: AtomicUsize,
    changed: AtomicUsize,
}

impl MetaStore for Counting {
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
        self.inner.append_messages(folder, messages)
    }
    fn list_messages(&self, folder: i64) -> StoreResult<Vec<MessageMeta>> {
        self.full.fetch_add(1, Ordering::SeqCst);
        self.inner.list_messages(folder)
    }
    fn list_messages_changed_since(
        &self,
        folder: i64,
        modseq: u64,
    ) -> StoreResult<Vec<MessageMeta>> {
        self.changed.fetch_add(1, Ordering::SeqCst);
        self.inner.list_messages_changed_since(folder, modseq)
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

struct Server {
    _tmp: tempfile::TempDir,
    store: Arc<Counting>,
    mailboxes: Mailboxes,
    _running: RunningService,
    addr: std::net::SocketAddr,
}

fn tls_acceptor() -> TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    TlsAcceptor::from(Arc::new(cfg))
}

impl Server {
    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T0);
        let store = Arc::new(Counting {
            inner: SqliteStore::open(&tmp.path().join("meta.db")).unwrap(),
            full: AtomicUsize::new(0),
            changed: AtomicUsize::new(0),
        });
        let meta: Arc<dyn MetaStore> = store.clone();
        let blobs = Arc::new(FileBlobStore::open(&tmp.path().join("blobs")).unwrap());
        let dir = Arc::new(Directory::with_hash_params(
            meta.clone(),
            Arc::new(clock.clone()),
            HashParams::insecure_fast(),
        ));
        dir.add_domain(NewDomain {
            name: "example.com".into(),
            ..Default::default()
        })
        .unwrap();
        dir.add_user(NewUser::new("alice@example.com", PW)).unwrap();
        let mailboxes = Mailboxes::new(meta, blobs, dir, Arc::new(clock));
        let ctx = ImapContext {
            mailboxes: mailboxes.clone(),
            hostname: "mail.example.com".into(),
            implicit_tls: false,
            logs: None,
            limits: Default::default(),
        };
        let admission = Admission {
            access_group: None,
            max_connections: 20,
            max_per_ip: 20,
            groups: Arc::new(IpGroups::new(Vec::new()).unwrap()),
        };
        let running = RunningService::start(
            bind_all(&["127.0.0.1:0".parse().unwrap()]).unwrap(),
            admission,
            false,
            tls_acceptor(),
            Arc::new(ImapService::new(ctx)),
        );
        Self {
            addr: running.bound[0].addr,
            _tmp: tmp,
            store,
            mailboxes,
            _running: running,
        }
    }

    fn deliver(&self, n: usize) {
        let raw = format!("Subject: m{n}\r\n\r\nbody {n}\r\n");
        self.mailboxes
            .deliver(&Delivery {
                raw: raw.into_bytes(),
                recipients: vec!["alice@example.com".into()],
                internal_date: T0,
            })
            .unwrap();
    }

    fn full_reads(&self) -> usize {
        self.store.full.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_sessions_changes_arrive_without_rereading_the_folder() {
    let s = Server::start().await;
    for n in 1..=40 {
        s.deliver(n);
    }
    let mut a = Client::login(s.addr, "alice").await;
    let mut b = Client::login(s.addr, "alice").await;
    a.ok("SELECT INBOX").await;
    b.ok("SELECT INBOX").await;
    let after_select = s.full_reads();
    let changed_before = s.store.changed.load(Ordering::SeqCst);

    // A flag change by another session: FETCH with the new flags (RFC 9051 §7.4.2).
    a.ok("STORE 7 +FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(
        b.ok("NOOP").await,
        vec!["* 7 FETCH (FLAGS (\\Flagged) UID 7)"]
    );
    // Expunges: held back during FETCH (§7.5.1), announced highest first by NOOP.
    a.ok("STORE 3,9 +FLAGS.SILENT (\\Deleted)").await;
    a.ok("EXPUNGE").await;
    let u = b.ok("FETCH 40 (UID)").await;
    assert!(!has(&u, "EXPUNGE"), "{u:?}");
    assert!(has(&u, "* 40 FETCH (UID 40)"), "{u:?}");
    let u = b.ok("NOOP").await;
    assert_eq!(u, vec!["* 9 EXPUNGE", "* 3 EXPUNGE"]);
    // New mail: EXISTS, numbered after the remaining messages.
    s.deliver(41);
    s.deliver(42);
    assert_eq!(b.ok("NOOP").await, vec!["* 40 EXISTS"]);
    assert_eq!(
        b.ok("FETCH 39:40 (UID)").await,
        vec!["* 39 FETCH (UID 41)", "* 40 FETCH (UID 42)"]
    );
    // CONDSTORE: the modseq travels with the flag change (RFC 7162 §3.2.4).
    b.ok("ENABLE CONDSTORE").await;
    a.ok("STORE 1 +FLAGS.SILENT (\\Seen)").await;
    let u = b.ok("NOOP").await;
    assert_eq!(u.len(), 1, "{u:?}");
    assert!(
        u[0].starts_with("* 1 FETCH (FLAGS (\\Seen) UID 1 MODSEQ ("),
        "{u:?}"
    );
    // The session's own changes produce nothing more.
    b.ok("STORE 2 +FLAGS.SILENT (\\Answered)").await;
    assert!(b.ok("NOOP").await.is_empty());
    assert!(!a.ok("NOOP").await.is_empty());

    assert_eq!(
        s.full_reads(),
        after_select,
        "no session re-read the whole folder after SELECT"
    );
    assert!(
        s.store.changed.load(Ordering::SeqCst) > changed_before,
        "changed rows were read instead"
    );
    // A new SELECT still reads the folder (and sees the same state).
    let u = b.ok("SELECT INBOX").await;
    assert!(has(&u, "* 40 EXISTS"), "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qresync_session_gets_vanished_and_deleted_folder_empties_the_snapshot() {
    let s = Server::start().await;
    for n in 1..=5 {
        s.deliver(n);
    }
    let mut a = Client::login(s.addr, "alice").await;
    let mut b = Client::login(s.addr, "alice").await;
    b.ok("ENABLE QRESYNC").await;
    a.ok("SELECT INBOX").await;
    b.ok("SELECT INBOX").await;
    a.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)").await;
    a.ok("EXPUNGE").await;
    // RFC 7162 §3.2.10: VANISHED instead of EXPUNGE.
    assert_eq!(b.ok("NOOP").await, vec!["* VANISHED 2,4"]);

    // A folder deleted by another session: everything in it is expunged.
    a.ok("CREATE Work").await;
    a.ok("COPY 1:3 Work").await;
    let mut c = Client::login(s.addr, "alice").await;
    c.ok("SELECT Work").await;
    a.ok("DELETE Work").await;
    let u = c.ok("NOOP").await;
    assert_eq!(u, vec!["* 3 EXPUNGE", "* 2 EXPUNGE", "* 1 EXPUNGE"]);
}

/// SELECT of a large folder reads the whole folder once per process; later SELECTs (by any
/// session) start from the cached rows plus what the change log says changed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_of_a_large_folder_reads_only_the_changes_the_second_time() {
    let s = Server::start().await;
    s.deliver(0);
    let inbox = s
        .mailboxes
        .folder("alice@example.com", "INBOX")
        .unwrap()
        .unwrap();
    let blob = s
        .mailboxes
        .blobs()
        .put(b"Subject: bulk\r\n\r\nx\r\n")
        .unwrap();
    let bulk: Vec<NewMessage> = (0..2999)
        .map(|_| NewMessage {
            blob: blob.clone(),
            size: 20,
            flags: Vec::new(),
            internal_date: T0,
        })
        .collect();
    s.store.append_messages(inbox.id, &bulk).unwrap();
    let mut a = Client::login(s.addr, "alice").await;
    let u = a.ok("SELECT INBOX").await;
    assert!(has(&u, "* 3000 EXISTS"), "{u:?}");
    let first = s.full_reads();
    let mut b = Client::login(s.addr, "alice").await;
    let u = b.ok("SELECT INBOX").await;
    assert!(has(&u, "* 3000 EXISTS"), "{u:?}");
    assert_eq!(
        s.full_reads(),
        first,
        "the second SELECT used the cached rows"
    );
    // Changes between two SELECTs: a flag change, an expunge, a delivery.
    a.ok("STORE 5 +FLAGS.SILENT (\\Flagged \\Deleted)").await;
    a.ok("STORE 6 +FLAGS.SILENT (\\Seen)").await;
    a.ok("UID EXPUNGE 5").await;
    s.deliver(3001);
    // b shares the cached rows with a; a's changes did not leak into b's snapshot, so b
    // learns them as untagged responses (copy on write, select.rs).
    let u = b.ok("NOOP").await;
    assert!(has(&u, "* 6 FETCH (FLAGS (\\Seen)"), "{u:?}");
    assert!(has(&u, "* 5 EXPUNGE"), "{u:?}");
    assert!(has(&u, "* 3000 EXISTS"), "{u:?}");
    let mut c = Client::login(s.addr, "alice").await;
    let u = c.ok("SELECT INBOX").await;
    assert!(has(&u, "* 3000 EXISTS"), "{u:?}");
    assert_eq!(
        s.full_reads(),
        first,
        "the third SELECT used the cached rows"
    );
    let u = c.ok("FETCH 5:6 (FLAGS UID)").await;
    assert_eq!(
        u,
        vec![
            "* 5 FETCH (FLAGS (\\Seen) UID 6)",
            "* 6 FETCH (FLAGS () UID 7)"
        ]
    );
    assert_eq!(
        c.ok("FETCH 3000 (UID)").await,
        vec!["* 3000 FETCH (UID 3001)"]
    );
    // The same answers as a session that read the folder whole.
    let rows = s.mailboxes.messages(inbox.id).unwrap();
    assert_eq!(rows.len(), 3000);
    assert_eq!(rows[4].uid, 6);
}

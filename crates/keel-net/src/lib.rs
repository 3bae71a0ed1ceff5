//! Keel networking: the listener framework shared by every protocol (guide §6.1).
//!
//! Implementation notes:
//! - A service binds one or more addresses. A privileged port the process may not bind
//!   falls back to port + 10000, loudly (DESIGN §5).
//! - Admission happens before any byte is read: the service's IP group (guide §6.1 "allow
//!   access only from"), then the overall and per-IP connection limits. Refused
//!   connections are closed at once.
//! - Implicit-TLS services complete the handshake here; plaintext services get a
//!   [`Conn::start_tls`] for STARTTLS with the same certificate set (SNI picks a domain's
//!   own certificate).
//! - Stopping a service closes its listeners first, then tells every connection to finish
//!   (the `shutdown` watch), then waits for them up to a grace period: in-flight
//!   transactions complete, nothing accepted is dropped.

pub mod certs;
pub mod services;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use keel_core::ipgroup::IpGroups;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Time allowed for a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time connections get to finish when their service stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Offset used when a privileged port cannot be bound.
pub const UNPRIVILEGED_FALLBACK_OFFSET: u16 = 10000;

/// A client connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An admitted connection handed to a protocol handler.
pub struct Conn {
    pub stream: Stream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Becomes `true` when the service or the server stops: finish the current
    /// transaction, then close.
    pub shutdown: watch::Receiver<bool>,
    /// What the session reports to the admin's connection list (guide §24.3).
    pub status: ConnStatus,
    tls: TlsAcceptor,
}

impl Conn {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Upgrades a plaintext connection (STARTTLS, RFC 3207 / RFC 2595).
    #[allow(dead_code)] // used by the mail protocols
    pub async fn start_tls(self) -> io::Result<Self> {
        let Stream::Plain(tcp) = self.stream else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, self.tls.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.status.set_secure(true); // guide §24.3 "Secure" after STARTTLS/STLS
        Ok(Self {
            stream: Stream::Tls(Box::new(tls)),
            ..self
        })
    }
}

/// A protocol front-end.
pub trait Handler: Send + Sync + 'static {
    fn serve(&self, conn: Conn) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// Admission rules, replaceable while the service runs (settings reload).
#[derive(Clone)]
pub struct Admission {
    pub access_group: Option<String>,
    pub max_connections: u32,
    pub max_per_ip: u32,
    pub groups: Arc<IpGroups>,
}

/// One open connection as the admin sees it (guide §24.3 "Active connections").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnInfo {
    /// Number of the connection within its service (for "disconnect").
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// Unix seconds when it was accepted.
    pub since: i64,
    /// TLS is in use: implicit TLS or after STARTTLS/STLS (guide §24.3 "Secure").
    pub secure: bool,
    /// The authenticated account, once a login succeeded (guide §24.3 "User").
    pub user: Option<String>,
    /// The open folder in the `~owner@domain/Folder` pattern (guide §24.4), if any.
    pub folder: Option<String>,
    /// More about the connection, e.g. `Folder ~jwayne@company.com/INBOX` (guide §24.3
    /// "Info"); empty when there is nothing to say.
    pub info: String,
}

/// What a session says about itself; the admin reads it when listing.
#[derive(Default)]
struct Live {
    secure: std::sync::atomic::AtomicBool,
    detail: Mutex<Detail>,
}

#[derive(Default)]
struct Detail {
    user: Option<String>,
    folder: Option<String>,
    info: Option<String>,
}

/// A session's handle on its line in the connection list (guide §24.3): it sets the user,
/// the open folder and whether TLS is in use. Cheap to clone; each setter takes one
/// uncontended lock and allocates only when the value changes. A handle that belongs to
/// no registered connection ([`ConnStatus::default`]) just keeps the values.
#[derive(Clone, Default)]
pub struct ConnStatus(Arc<Live>);

impl ConnStatus {
    /// Marks the connection encrypted (implicit TLS, STARTTLS, STLS).
    pub fn set_secure(&self, secure: bool) {
        self.0.secure.store(secure, Ordering::Relaxed);
    }

    /// Whether the connection is marked encrypted.
    pub fn is_secure(&self) -> bool {
        self.0.secure.load(Ordering::Relaxed)
    }

    /// The authenticated account (`None` after a reset such as STARTTLS).
    pub fn set_user(&self, user: Option<&str>) {
        let mut d = self.detail();
        set_if_changed(&mut d.user, user);
    }

    /// The folder the session has open, in the `~owner@domain/Folder` pattern (guide
    /// §24.4); `None` when it closes it.
    pub fn set_folder(&self, folder: Option<&str>) {
        let mut d = self.detail();
        set_if_changed(&mut d.folder, folder);
    }

    /// Free text for the Info column; without it the column shows the open folder.
    pub fn set_info(&self, info: Option<&str>) {
        let mut d = self.detail();
        set_if_changed(&mut d.info, info);
    }

    /// The authenticated account, if any.
    pub fn user(&self) -> Option<String> {
        self.detail().user.clone()
    }

    /// The open folder, if any.
    pub fn folder(&self) -> Option<String> {
        self.detail().folder.clone()
    }

    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.0.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fills the reported columns of `info`.
    fn fill(&self, info: &mut ConnInfo) {
        info.secure = self.is_secure();
        let d = self.detail();
        info.user.clone_from(&d.user);
        info.folder.clone_from(&d.folder);
        info.info = match (&d.info, &d.folder) {
            (Some(i), _) => i.clone(),
            // guide figure 24.3: "Folder ~jwayne@company.com/INBOX"
            (None, Some(f)) => format!("Folder {f}"),
            (None, None) => String::new(),
        };
    }
}

fn set_if_changed(slot: &mut Option<String>, value: Option<&str>) {
    if slot.as_deref() != value {
        *slot = value.map(str::to_owned);
    }
}

/// One folder open in some session (guide §24.4 "Opened folders").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenFolder {
    /// `~owner@domain/Folder` (public folders: their IMAP name).
    pub name: String,
    /// The users who have it open, sorted, each once.
    pub users: Vec<String>,
    /// How many sessions have it open (guide §24.4 "Reference count").
    pub references: usize,
}

/// The folders open in the listed connections, sorted by name (guide §24.4). Derived from
/// the connection list, the one record of what each session has open.
pub fn open_folders<'a>(conns: impl IntoIterator<Item = &'a ConnInfo>) -> Vec<OpenFolder> {
    let mut by_name: std::collections::BTreeMap<&str, (Vec<String>, usize)> =
        std::collections::BTreeMap::new();
    for c in conns {
        let Some(folder) = c.folder.as_deref() else {
            continue;
        };
        let e = by_name.entry(folder).or_default();
        e.1 += 1;
        if let Some(u) = &c.user
            && !e.0.contains(u)
        {
            e.0.push(u.clone());
        }
    }
    by_name
        .into_iter()
        .map(|(name, (mut users, references))| {
            users.sort();
            OpenFolder {
                name: name.to_owned(),
                users,
                references,
            }
        })
        .collect()
}

/// A handle on one running service's open connections (guide §24.3). Cheap to clone;
/// it outlives the service harmlessly (the list is then empty).
#[derive(Clone)]
pub struct ServiceConnections(Arc<Counters>);

impl ServiceConnections {
    /// The open connections, oldest first.
    pub fn list(&self) -> Vec<ConnInfo> {
        self.0
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| {
                let mut info = e.info.clone();
                e.status.fill(&mut info);
                info
            })
            .collect()
    }

    /// Ends connection `id` at once, whatever it is doing ("disconnect"). Returns whether
    /// it was open.
    pub fn disconnect(&self, id: u64) -> bool {
        let open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(&id) {
            Some(e) => {
                e.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The services' connection handles by service name, replaced by the server whenever the
/// services change; the admin API reads it.
pub type ConnectionRegistry = Arc<RwLock<Vec<(String, ServiceConnections)>>>;

/// A registered connection: what the admin sees and how to end it.
struct ConnEntry {
    info: ConnInfo,
    status: ConnStatus,
    kill: Arc<Notify>,
}

/// Counts a service's live connections, overall and per IP.
#[derive(Default)]
struct Counters {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Open connections by id (guide §24.3).
    open: Mutex<std::collections::BTreeMap<u64, ConnEntry>>,
    next_id: std::sync::atomic::AtomicU64,
    idle: Notify,
    /// The service name the statistics count connections under (`keel_core::stats`).
    stats_name: std::sync::OnceLock<&'static str>,
}

struct ConnGuard {
    counters: Arc<Counters>,
    ip: IpAddr,
    id: Option<u64>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.counters
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
        {
            let mut map = self
                .counters
                .per_ip
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
        if self.counters.total.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.counters.idle.notify_waiters();
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotInAccessGroup,
    TooManyConnections,
    TooManyFromIp,
}

impl Counters {
    /// Registers an admitted connection (guide §24.3); returns what ends it and the
    /// session's status handle.
    fn register(
        &self,
        guard: &mut ConnGuard,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> (Arc<Notify>, ConnStatus) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let kill = Arc::new(Notify::new());
        let status = ConnStatus::default();
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            ConnEntry {
                info: ConnInfo {
                    id,
                    peer,
                    local,
                    since,
                    secure: false,
                    user: None,
                    folder: None,
                    info: String::new(),
                },
                status: status.clone(),
                kill: kill.clone(),
            },
        );
        guard.id = Some(id);
        (kill, status)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr, rules: &Admission) -> Result<ConnGuard, Refusal> {
        if let Some(group) = &rules.access_group
            && !rules.groups.contains(group, ip)
        {
            return Err(Refusal::NotInAccessGroup);
        }
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::SeqCst) >= rules.max_connections as usize {
            return Err(Refusal::TooManyConnections);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= rules.max_per_ip {
            return Err(Refusal::TooManyFromIp);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(ConnGuard {
            counters: self.clone(),
            ip,
            id: None,
        })
    }
}

/// What binding produced, for the start-up summary.
#[derive(Debug, Clone)]
pub struct BoundAddr {
    pub addr: SocketAddr,
    /// Set when the address differs from the one asked for, or a requested one failed.
    pub note: Option<String>,
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        // Separate sockets for 0.0.0.0 and ::, so both can be listed.
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

/// Binds every address, falling back to port + 10000 for privileged ports. Unavailable
/// IPv6 wildcard addresses are skipped with a note. Fails when nothing could be bound.
pub fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<(TcpListener, BoundAddr)>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for &addr in addrs {
        match bind_one(addr) {
            Ok(l) => {
                let actual = l.local_addr().unwrap_or(addr);
                out.push((
                    l,
                    BoundAddr {
                        addr: actual,
                        note: None,
                    },
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 => {
                let alt = SocketAddr::new(addr.ip(), addr.port() + UNPRIVILEGED_FALLBACK_OFFSET);
                match bind_one(alt) {
                    Ok(l) => out.push((
                        l,
                        BoundAddr {
                            addr: alt,
                            note: Some(format!(
                                "port {} needs privileges this process lacks; bound {} instead",
                                addr.port(),
                                alt.port()
                            )),
                        },
                    )),
                    Err(e2) => errors.push(format!("{alt}: {e2}")),
                }
            }
            Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() && addrs.len() > 1 => {
                // No IPv6 on this host: the IPv4 wildcard still serves.
                tracing::debug!("skipping {addr}: {e}");
            }
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    if out.is_empty() {
        return Err(if errors.is_empty() {
            "no address to bind".to_owned()
        } else {
            errors.join("; ")
        });
    }
    Ok(out)
}

/// A started service.
pub struct RunningService {
    pub bound: Vec<BoundAddr>,
    admission: Arc<RwLock<Admission>>,
    counters: Arc<Counters>,
    stop_listeners: watch::Sender<bool>,
    stop_conns: watch::Sender<bool>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningService {
    /// Starts accepting on already-bound listeners.
    pub fn start(
        listeners: Vec<(TcpListener, BoundAddr)>,
        admission: Admission,
        implicit_tls: bool,
        tls: TlsAcceptor,
        handler: Arc<dyn Handler>,
    ) -> Self {
        let (stop_listeners, stop_l_rx) = watch::channel(false);
        let (stop_conns, stop_c_rx) = watch::channel(false);
        let admission = Arc::new(RwLock::new(admission));
        let counters = Arc::new(Counters::default());
        let mut bound = Vec::new();
        let mut accept_tasks = Vec::new();
        for (listener, b) in listeners {
            bound.push(b);
            let ctx = AcceptCtx {
                admission: admission.clone(),
                counters: counters.clone(),
                implicit_tls,
                tls: tls.clone(),
                handler: handler.clone(),
                conn_shutdown: stop_c_rx.clone(),
            };
            accept_tasks.push(tokio::spawn(accept_loop(listener, stop_l_rx.clone(), ctx)));
        }
        Self {
            bound,
            admission,
            counters,
            stop_listeners,
            stop_conns,
            accept_tasks,
        }
    }

    /// Replaces the admission rules; applies to the next connection.
    pub fn set_admission(&self, a: Admission) {
        *self.admission.write().unwrap_or_else(|e| e.into_inner()) = a;
    }

    /// Counts admitted and refused connections in the server statistics under this
    /// service name (guide §24.6).
    pub fn count_as(self, service: &'static str) -> Self {
        let _ = self.counters.stats_name.set(service);
        self
    }

    pub fn active_connections(&self) -> usize {
        self.counters.total.load(Ordering::SeqCst)
    }

    /// A handle on this service's open connections (guide §24.3).
    pub fn connections(&self) -> ServiceConnections {
        ServiceConnections(self.counters.clone())
    }

    /// Closes the listeners (the ports are free when this returns) and asks every
    /// connection to finish; the returned [`Draining`] waits for them.
    pub async fn close(self) -> Draining {
        let _ = self.stop_listeners.send(true);
        for t in self.accept_tasks {
            let _ = t.await;
        }
        let _ = self.stop_conns.send(true);
        Draining {
            counters: self.counters,
        }
    }
}

/// A closed service whose connections are finishing.
pub struct Draining {
    counters: Arc<Counters>,
}

impl Draining {
    /// Waits until every connection has ended, at most `grace`.
    pub async fn wait(self, grace: Duration) {
        let counters = self.counters;
        let drained = async move {
            loop {
                let notified = counters.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if counters.total.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!("connections still open after the shutdown grace period");
        }
    }
}

struct AcceptCtx {
    admission: Arc<RwLock<Admission>>,
    counters: Arc<Counters>,
    implicit_tls: bool,
    tls: TlsAcceptor,
    handler: Arc<dyn Handler>,
    conn_shutdown: watch::Receiver<bool>,
}

async fn accept_loop(listener: TcpListener, mut stop: watch::Receiver<bool>, ctx: AcceptCtx) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let rules = ctx
            .admission
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ip = canonical_ip(peer.ip());
        let service = ctx.counters.stats_name.get().copied().unwrap_or_default();
        let mut guard = match ctx.counters.admit(ip, &rules) {
            Ok(g) => {
                keel_core::stats::connection(service);
                g
            }
            Err(why) => {
                keel_core::stats::connection_rejected(service);
                tracing::info!("refused connection from {peer}: {why:?}");
                drop(tcp);
                continue;
            }
        };
        let local = tcp.local_addr().unwrap_or(peer);
        let (kill, status) = ctx.counters.register(&mut guard, peer, local);
        let implicit = ctx.implicit_tls;
        let tls = ctx.tls.clone();
        let handler = ctx.handler.clone();
        let shutdown = ctx.conn_shutdown.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _ = tcp.set_nodelay(true);
            let stream = if implicit {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(s)) => {
                        status.set_secure(true); // guide §24.3 "Secure": implicit TLS
                        Stream::Tls(Box::new(s))
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {peer} failed: {e}");
                        return;
                    }
                    Err(_) => return,
                }
            } else {
                Stream::Plain(tcp)
            };
            let serve = handler.serve(Conn {
                stream,
                peer,
                local,
                shutdown,
                status,
                tls,
            });
            // guide §24.3: the admin's "disconnect" drops the session, closing the socket.
            tokio::select! {
                () = serve => {}
                () = kill.notified() => tracing::info!("connection from {peer} ended by the administrator"),
            }
        });
    }
}

/// IPv4-mapped IPv6 addresses count as IPv4 for policy.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max: u32, per_ip: u32, group: Option<&str>) -> Admission {
        Admission {
            access_group: group.map(str::to_owned),
            max_connections: max,
            max_per_ip: per_ip,
            groups: Arc::new(IpGroups::new(Vec::new()).expect("empty groups")),
        }
    }

    #[test]
    fn per_ip_and_total_limits_are_enforced_and_released() {
        let c = Arc::new(Counters::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let r = rules(3, 2, None);
        let g1 = c.admit(a, &r).unwrap();
        let _g2 = c.admit(a, &r).unwrap();
        assert_eq!(c.admit(a, &r).err(), Some(Refusal::TooManyFromIp));
        let _g3 = c.admit(b, &r).unwrap();
        assert_eq!(c.admit(b, &r).err(), Some(Refusal::TooManyConnections));
        drop(g1);
        assert!(c.admit(a, &r).is_ok());
    }

    #[test]
    fn access_group_limits_to_local_clients() {
        let c = Arc::new(Counters::default());
        let r = rules(10, 10, Some(keel_core::ipgroup::LOCAL_CLIENTS));
        assert!(c.admit("127.0.0.1".parse().unwrap(), &r).is_ok());
        assert!(c.admit("192.168.1.7".parse().unwrap(), &r).is_ok());
        assert_eq!(
            c.admit("203.0.113.9".parse().unwrap(), &r).err(),
            Some(Refusal::NotInAccessGroup)
        );
    }

    #[test]
    fn status_handle_updates_the_listed_connection_and_open_folders() {
        let c = Arc::new(Counters::default());
        let conns = ServiceConnections(c.clone());
        let r = rules(10, 10, None);
        let peer: SocketAddr = "10.0.0.1:1716".parse().unwrap();
        let local: SocketAddr = "10.0.0.9:993".parse().unwrap();
        let mut g1 = c.admit(peer.ip(), &r).unwrap();
        let (_, s1) = c.register(&mut g1, peer, local);
        let mut g2 = c.admit(peer.ip(), &r).unwrap();
        let (_, s2) = c.register(&mut g2, peer, local);
        let listed = conns.list();
        assert_eq!(listed.len(), 2);
        assert!(!listed[0].secure && listed[0].user.is_none() && listed[0].info.is_empty());

        s1.set_secure(true);
        s1.set_user(Some("jwayne@company.com"));
        s1.set_folder(Some("~jwayne@company.com/INBOX"));
        s2.set_user(Some("dpeterson@company.com"));
        s2.set_folder(Some("~jwayne@company.com/INBOX"));
        let listed = conns.list();
        assert!(listed[0].secure);
        assert_eq!(listed[0].user.as_deref(), Some("jwayne@company.com"));
        // guide figure 24.3
        assert_eq!(listed[0].info, "Folder ~jwayne@company.com/INBOX");
        assert!(!listed[1].secure);
        let open = open_folders(&listed);
        assert_eq!(
            open,
            vec![OpenFolder {
                name: "~jwayne@company.com/INBOX".to_owned(),
                users: vec![
                    "dpeterson@company.com".to_owned(),
                    "jwayne@company.com".to_owned()
                ],
                references: 2,
            }]
        );

        // Free text wins over the folder; closing the folder removes it from §24.4.
        s1.set_info(Some("event channel"));
        s1.set_folder(None);
        let listed = conns.list();
        assert_eq!(listed[0].info, "event channel");
        assert_eq!(open_folders(&listed)[0].references, 1);
        // An ended connection leaves both lists.
        drop(g2);
        assert!(open_folders(&conns.list()).is_empty());
        assert_eq!(conns.list().len(), 1);
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let ip: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_ip(ip), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}

//! Syslog output (guide §25.1 "External Logging"): one datagram `<PRI>keel: line` per entry,
//! to the local daemon's `/dev/log`, another local datagram socket, or a server over UDP.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::kind::LogKind;
use super::settings::{SyslogSettings, SyslogSeverity};

/// The local syslog daemon's socket.
const DEV_LOG: &str = "/dev/log";
/// RFC 5426 §3.3: syslog over UDP uses port 514.
const SYSLOG_PORT: u16 = 514;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Unix(PathBuf),
    Udp(SocketAddr),
}

#[derive(Debug, Default)]
struct State {
    unix: Option<UnixDatagram>,
    udp4: Option<UdpSocket>,
    udp6: Option<UdpSocket>,
    /// Resolved `server` settings; cleared when the settings change.
    targets: HashMap<String, Option<Target>>,
    /// An error was reported to stderr and no send has succeeded since.
    failing: bool,
}

/// Sends log entries to syslog. Failures are reported to stderr once and otherwise ignored;
/// a missing `/dev/log` is silently ignored (guide §25.1: syslog output is optional).
#[derive(Debug, Default)]
pub(crate) struct Syslog {
    state: Mutex<State>,
}

impl Syslog {
    /// Forgets resolved servers, so changed settings take effect.
    pub(crate) fn reset(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.targets.clear();
        st.failing = false;
    }

    /// Sends `<PRI>keel: body` (RFC 3164 §4.1.1 PRI = facility × 8 + severity).
    pub(crate) fn send(&self, kind: LogKind, s: &SyslogSettings, body: &str) {
        let severity = s.severity.unwrap_or(SyslogSeverity::default_for(kind));
        let pri = u16::from(s.facility.code()) * 8 + u16::from(severity.code());
        let msg = format!("<{pri}>keel: {body}");
        let key = s.server.clone().unwrap_or_default();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let target = match st.targets.get(&key) {
            Some(t) => t.clone(),
            None => {
                let t = resolve(s.server.as_deref());
                if t.is_none() {
                    report(&mut st, &format!("cannot resolve syslog server {key:?}"));
                }
                st.targets.insert(key, t.clone());
                t
            }
        };
        let Some(target) = target else { return };
        let result = match &target {
            Target::Unix(path) => send_unix(&mut st, path, msg.as_bytes()),
            Target::Udp(addr) => send_udp(&mut st, *addr, msg.as_bytes()),
        };
        match result {
            Ok(()) => st.failing = false,
            // No local syslog daemon: nothing to report.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && matches!(&target, Target::Unix(p) if p == Path::new(DEV_LOG)) => {}
            Err(e) => report(&mut st, &format!("cannot send to syslog {target:?}: {e}")),
        }
    }
}

fn report(st: &mut State, what: &str) {
    if !st.failing {
        st.failing = true;
        let _ = writeln!(io::stderr(), "keel: {what}");
    }
}

fn send_unix(st: &mut State, path: &Path, msg: &[u8]) -> io::Result<()> {
    let sock = match &st.unix {
        Some(s) => s,
        None => st.unix.insert(UnixDatagram::unbound()?),
    };
    sock.send_to(msg, path).map(drop)
}

fn send_udp(st: &mut State, addr: SocketAddr, msg: &[u8]) -> io::Result<()> {
    let (slot, any) = match addr {
        SocketAddr::V4(_) => (
            &mut st.udp4,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        ),
        SocketAddr::V6(_) => (
            &mut st.udp6,
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        ),
    };
    let sock = match slot {
        Some(s) => s,
        None => slot.insert(UdpSocket::bind(any)?),
    };
    sock.send_to(msg, addr).map(drop)
}

/// `None` → `/dev/log`; `unix:/path`; `host`, `host:port`, `[v6]:port`, `v6` → UDP.
fn resolve(server: Option<&str>) -> Option<Target> {
    let Some(server) = server.map(str::trim).filter(|s| !s.is_empty()) else {
        return Some(Target::Unix(PathBuf::from(DEV_LOG)));
    };
    if let Some(path) = server.strip_prefix("unix:") {
        return Some(Target::Unix(PathBuf::from(path)));
    }
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Some(Target::Udp(addr));
    }
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Some(Target::Udp(SocketAddr::new(ip, SYSLOG_PORT)));
    }
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (server, SYSLOG_PORT),
    };
    (host, port).to_socket_addrs().ok()?.next().map(Target::Udp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_forms() {
        assert_eq!(resolve(None), Some(Target::Unix(PathBuf::from("/dev/log"))));
        assert_eq!(
            resolve(Some("unix:/run/x")),
            Some(Target::Unix(PathBuf::from("/run/x")))
        );
        let udp = |s: &str| Some(Target::Udp(s.parse().expect("addr")));
        assert_eq!(resolve(Some("10.0.0.1")), udp("10.0.0.1:514"));
        assert_eq!(resolve(Some("10.0.0.1:1514")), udp("10.0.0.1:1514"));
        assert_eq!(resolve(Some("::1")), udp("[::1]:514"));
        assert_eq!(resolve(Some("[::1]:99")), udp("[::1]:99"));
        assert_eq!(resolve(Some("localhost:bad")), None);
    }
}

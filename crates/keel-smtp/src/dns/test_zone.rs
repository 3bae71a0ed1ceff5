//! Test helper: an authoritative DNS server on 127.0.0.1 (UDP and TCP, one random port)
//! serving zones built from records given in code (DESIGN §3, §8: nothing in tests reaches
//! the Internet). Used by the unit tests of `dns` and, through `#[path]`, by the
//! integration tests in `tests/common`; it therefore names only external crates.

#![allow(dead_code, unreachable_pub)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

/// One record of a test zone.
#[derive(Debug, Clone)]
pub struct TestRecord {
    /// Owner name (without trailing dot is fine).
    pub name: String,
    /// The data.
    pub data: RData,
}

fn name(n: &str) -> Name {
    let fq = if n.ends_with('.') {
        n.to_owned()
    } else {
        format!("{n}.")
    };
    Name::from_str(&fq).unwrap_or_else(|e| panic!("bad test DNS name {n:?}: {e}"))
}

impl TestRecord {
    /// An MX record; `exchange` "." makes a null MX (RFC 7505).
    pub fn mx(owner: &str, preference: u16, exchange: &str) -> Self {
        let ex = if exchange == "." {
            Name::root()
        } else {
            name(exchange)
        };
        Self {
            name: owner.into(),
            data: RData::MX(MX::new(preference, ex)),
        }
    }
    /// An A record.
    pub fn a(owner: &str, ip: &str) -> Self {
        let ip: Ipv4Addr = ip.parse().unwrap_or_else(|e| panic!("bad IPv4 {ip}: {e}"));
        Self {
            name: owner.into(),
            data: RData::A(A::from(ip)),
        }
    }
    /// An AAAA record.
    pub fn aaaa(owner: &str, ip: &str) -> Self {
        let ip: Ipv6Addr = ip.parse().unwrap_or_else(|e| panic!("bad IPv6 {ip}: {e}"));
        Self {
            name: owner.into(),
            data: RData::AAAA(AAAA::from(ip)),
        }
    }
    /// A TXT record.
    pub fn txt(owner: &str, text: &str) -> Self {
        Self {
            name: owner.into(),
            data: RData::TXT(TXT::new(vec![text.to_owned()])),
        }
    }
    /// A CNAME record.
    pub fn cname(owner: &str, target: &str) -> Self {
        Self {
            name: owner.into(),
            data: RData::CNAME(CNAME(name(target))),
        }
    }
}

/// A running test DNS server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    _server: Server<Catalog>,
}

impl TestDns {
    /// Serves one zone `origin` with `records` (an SOA is added).
    pub async fn start(origin: &str, records: Vec<TestRecord>) -> Self {
        Self::start_zones(vec![(origin.to_owned(), records)]).await
    }

    /// Serves several zones.
    pub async fn start_zones(zones: Vec<(String, Vec<TestRecord>)>) -> Self {
        let mut catalog = Catalog::new();
        for (origin, records) in zones {
            let origin_name = name(&origin);
            let mut handler: InMemoryZoneHandler = InMemoryZoneHandler::empty(
                origin_name.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
            let soa = SOA::new(
                name(&format!("ns.{origin}")),
                name(&format!("hostmaster.{origin}")),
                1,
                3600,
                600,
                86400,
                60,
            );
            assert!(handler.upsert_mut(
                Record::from_rdata(origin_name.clone(), 60, RData::SOA(soa)),
                1
            ));
            for r in records {
                let rec = Record::from_rdata(name(&r.name), 60, r.data);
                assert!(handler.upsert_mut(rec, 1), "record {} not inserted", r.name);
            }
            catalog.upsert(LowerName::new(&origin_name), vec![Arc::new(handler)]);
        }
        // One port for UDP and TCP: bind TCP first, then UDP on the same port (retry if
        // the UDP port happens to be taken).
        for _ in 0..20 {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind DNS TCP");
            let addr = tcp.local_addr().expect("DNS addr");
            let Ok(udp) = tokio::net::UdpSocket::bind(addr).await else {
                continue;
            };
            let mut server = Server::new(catalog);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
            return Self {
                addr,
                _server: server,
            };
        }
        panic!("no free port for the test DNS server");
    }

    /// The server's address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

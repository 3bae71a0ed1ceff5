//! The one DNS resolver component of the MTA (DESIGN §3): MX lookups for outbound delivery
//! (RFC 5321 §5.1, RFC 7505 null MX) and address lookups.
//!
//! Implementation notes:
//! - [`Resolver`] wraps hickory's `TokioResolver`. [`Resolver::from_system`] reads
//!   `/etc/resolv.conf`; [`Resolver::with_nameserver`] asks one nameserver (UDP and TCP on
//!   a given port), which is how tests point it at an in-process authoritative zone on
//!   loopback: nothing in tests reaches the Internet.
//! - Names are always queried fully qualified (a trailing dot is added), so the search
//!   list of the host never turns `remote.test` into `remote.test.corp.example`.
//! - Errors are typed ([`DnsError`]): a name that does not exist (NXDOMAIN) is permanent,
//!   everything else (timeouts, SERVFAIL, refused) is temporary, so the queue retries.
//! - Among MX records of equal preference the order is random (RFC 5321 §5.1: "the
//!   SMTP client SHOULD randomize them"), and the guide §12.1 asks for the same.
//! - A null MX (RFC 7505 §3: a single MX with preference 0 and exchange ".") is reported
//!   as [`MxTargets::NullMx`]. When "." appears next to real MX records (a
//!   misconfiguration RFC 7505 §3 forbids) the "." entry is ignored and the others used.
//! - No MX but the name exists: the implicit MX is the domain itself (RFC 5321 §5.1);
//!   whether it has A/AAAA records is found out by [`Resolver::ip_addrs`].

#[cfg(test)]
pub(crate) mod test_zone;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RData;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use rand::seq::SliceRandom;

/// Errors of DNS lookups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN) or has no address: a permanent failure.
    #[error("{0}: no such domain or host")]
    NotFound(String),
    /// The lookup failed for now (timeout, SERVFAIL, network): retry later.
    #[error("DNS lookup of {name} failed: {reason}")]
    Temporary {
        /// The name queried.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The name is not a valid domain name.
    #[error("{0}: not a valid domain name")]
    Invalid(String),
    /// The resolver could not be built (system configuration unreadable).
    #[error("DNS resolver configuration: {0}")]
    Config(String),
}

impl DnsError {
    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::NotFound(_) | Self::Invalid(_))
    }
}

/// One mail exchanger to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// Host name without the trailing dot.
    pub name: String,
    /// MX preference (0 for the implicit MX).
    pub preference: u16,
    /// True when there was no MX record and this is the domain itself (RFC 5321 §5.1).
    pub implicit: bool,
}

/// The result of an MX lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxTargets {
    /// Hosts to try, in order: ascending preference, random among equal preferences.
    Hosts(Vec<MxHost>),
    /// The domain accepts no mail (RFC 7505 null MX).
    NullMx,
}

/// The DNS resolver component (DESIGN §3). Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// A resolver using the system configuration (`/etc/resolv.conf`).
    pub fn from_system() -> Result<Self, DnsError> {
        let builder =
            TokioResolver::builder_tokio().map_err(|e| DnsError::Config(e.to_string()))?;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Config(e.to_string()))?;
        Ok(Self { inner })
    }

    /// A resolver asking only the nameserver at `addr` (UDP, then TCP for truncated
    /// answers). The hosts file is not consulted, so tests see only their zone.
    pub fn with_nameserver(addr: SocketAddr) -> Result<Self, DnsError> {
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for c in &mut ns.connections {
            c.port = addr.port();
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| DnsError::Config(e.to_string()))?;
        Ok(Self { inner })
    }

    /// The mail exchangers of `domain` (RFC 5321 §5.1, RFC 7505).
    pub async fn mx(&self, domain: &str) -> Result<MxTargets, DnsError> {
        let fqdn = fqdn(domain)?;
        match self.inner.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut hosts: Vec<MxHost> = Vec::new();
                let mut null_mx = false;
                for record in lookup.answers() {
                    if let RData::MX(mx) = &record.data {
                        if mx.exchange.is_root() {
                            null_mx = true;
                            continue;
                        }
                        hosts.push(MxHost {
                            name: trim_dot(&mx.exchange.to_ascii()),
                            preference: mx.preference,
                            implicit: false,
                        });
                    }
                }
                if hosts.is_empty() {
                    if null_mx {
                        // RFC 7505 §3: the domain does not accept mail.
                        return Ok(MxTargets::NullMx);
                    }
                    // An answer without MX data (e.g. only a CNAME chain): implicit MX.
                    return Ok(MxTargets::Hosts(vec![implicit(domain)]));
                }
                Ok(MxTargets::Hosts(order_by_preference(hosts)))
            }
            Err(e) => match classify(&e) {
                Lookup::NxDomain => Err(DnsError::NotFound(trim_dot(domain))),
                // RFC 5321 §5.1: no MX records but the name exists → implicit MX.
                Lookup::NoData => Ok(MxTargets::Hosts(vec![implicit(domain)])),
                Lookup::Other => Err(DnsError::Temporary {
                    name: trim_dot(domain),
                    reason: e.to_string(),
                }),
            },
        }
    }

    /// The IPv4 and IPv6 addresses of `host`. An IP literal is returned as is.
    pub async fn ip_addrs(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = fqdn(host)?;
        match self.inner.lookup_ip(fqdn.as_str()).await {
            Ok(lookup) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    Err(DnsError::NotFound(trim_dot(host)))
                } else {
                    Ok(ips)
                }
            }
            Err(e) => match classify(&e) {
                Lookup::NxDomain | Lookup::NoData => Err(DnsError::NotFound(trim_dot(host))),
                Lookup::Other => Err(DnsError::Temporary {
                    name: trim_dot(host),
                    reason: e.to_string(),
                }),
            },
        }
    }
}

enum Lookup {
    NxDomain,
    NoData,
    Other,
}

fn classify(e: &NetError) -> Lookup {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(no)) => {
            if no.response_code == ResponseCode::NXDomain {
                Lookup::NxDomain
            } else {
                Lookup::NoData
            }
        }
        NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::NXDomain)) => Lookup::NxDomain,
        _ => Lookup::Other,
    }
}

fn implicit(domain: &str) -> MxHost {
    MxHost {
        name: trim_dot(domain),
        preference: 0,
        implicit: true,
    }
}

/// RFC 5321 §5.1: ascending preference; equal preferences in random order.
fn order_by_preference(mut hosts: Vec<MxHost>) -> Vec<MxHost> {
    let mut rng = rand::rng();
    hosts.shuffle(&mut rng);
    // A stable sort keeps the shuffled order within one preference.
    hosts.sort_by_key(|h| h.preference);
    hosts.dedup_by(|a, b| a.name.eq_ignore_ascii_case(&b.name));
    hosts
}

fn trim_dot(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Result<String, DnsError> {
    let n = name.trim();
    if n.is_empty()
        || n.len() > 253
        || n.contains("..")
        || n.starts_with('.')
        || n.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(DnsError::Invalid(name.to_owned()));
    }
    Ok(if n.ends_with('.') {
        n.to_owned()
    } else {
        format!("{n}.")
    })
}

#[cfg(test)]
mod tests {
    use super::test_zone::{TestDns, TestRecord};
    use super::*;

    fn zone() -> Vec<TestRecord> {
        vec![
            TestRecord::mx("remote.test", 20, "mx3.remote.test"),
            TestRecord::mx("remote.test", 10, "mx1.remote.test"),
            TestRecord::mx("remote.test", 10, "mx2.remote.test"),
            TestRecord::a("mx1.remote.test", "127.0.0.2"),
            TestRecord::a("mx2.remote.test", "127.0.0.3"),
            TestRecord::aaaa("mx2.remote.test", "::1"),
            TestRecord::a("mx3.remote.test", "127.0.0.1"),
            TestRecord::a("plain.remote.test", "127.0.0.4"),
            TestRecord::mx("nullmx.remote.test", 0, "."),
            TestRecord::txt("noaddr.remote.test", "v=spf1 -all"),
        ]
    }

    #[tokio::test]
    async fn mx_in_preference_order_with_random_ties() {
        let dns = TestDns::start("remote.test", zone()).await;
        let r = Resolver::with_nameserver(dns.addr()).expect("resolver");
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..40 {
            let MxTargets::Hosts(hosts) = r.mx("remote.test").await.expect("mx") else {
                panic!("not null MX");
            };
            let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
            assert_eq!(names.len(), 3);
            assert_eq!(names[2], "mx3.remote.test", "{names:?}");
            firsts.insert(names[0].to_owned());
        }
        // RFC 5321 §5.1: equal preferences are randomised (2^-39 chance of a false failure).
        assert_eq!(firsts.len(), 2, "{firsts:?}");
    }

    #[tokio::test]
    async fn implicit_mx_null_mx_and_nxdomain() {
        let dns = TestDns::start("remote.test", zone()).await;
        let r = Resolver::with_nameserver(dns.addr()).expect("resolver");
        assert_eq!(
            r.mx("plain.remote.test").await.expect("implicit"),
            MxTargets::Hosts(vec![MxHost {
                name: "plain.remote.test".into(),
                preference: 0,
                implicit: true
            }])
        );
        assert_eq!(
            r.mx("nullmx.remote.test").await.expect("null"),
            MxTargets::NullMx
        );
        let e = r.mx("nowhere.remote.test").await.expect_err("nxdomain");
        assert!(e.is_permanent(), "{e:?}");
        let e = r
            .ip_addrs("noaddr.remote.test")
            .await
            .expect_err("no address");
        assert!(matches!(e, DnsError::NotFound(_)), "{e:?}");
        let mut ips = r.ip_addrs("mx2.remote.test").await.expect("ips");
        ips.sort();
        assert_eq!(
            ips,
            vec![
                "127.0.0.3".parse::<IpAddr>().expect("ip"),
                "::1".parse().expect("ip")
            ]
        );
        assert_eq!(
            r.ip_addrs("127.0.0.9").await.expect("literal"),
            vec!["127.0.0.9".parse::<IpAddr>().expect("ip")]
        );
        assert!(matches!(r.mx("a..b").await, Err(DnsError::Invalid(_))));
    }

    #[tokio::test]
    async fn unreachable_nameserver_is_temporary() {
        // A UDP port nobody answers on: the lookup times out.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = sock.local_addr().expect("addr");
        drop(sock);
        let r = Resolver::with_nameserver(addr).expect("resolver");
        let e = r.mx("remote.test").await.expect_err("no server");
        assert!(!e.is_permanent(), "{e:?}");
    }
}

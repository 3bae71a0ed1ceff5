//! The filter's DNS resolver (DESIGN §3: one resolver component that tests point at an
//! in-process authoritative server) and the DNS blacklist lookups (guide §13.2, §13.4).
//!
//! Implementation notes:
//! - [`FilterDns`] wraps a hickory `TokioResolver`, built from the system configuration or
//!   for one nameserver `ip:port` (tests, or the admin's own recursive resolver). The same
//!   resolver (and its cache) serves the DNSBL/URIBL lookups and mail-auth's SPF, DKIM and
//!   DMARC lookups ([`crate::auth`]). Resolvers are built once per nameserver choice and
//!   shared ([`FilterDns::shared`]), so a session costs no resolver construction.
//! - DNSBL query names (RFC 5782 §2.1, §2.4): IPv4 octets reversed, IPv6 as 32 reversed
//!   nibbles, then the zone. A listing is an A record in 127.0.0.0/8 (RFC 5782 §2.3);
//!   answers in 127.255.255.0/24 are the operators' error codes (e.g. Spamhaus answers
//!   127.255.255.254 to queries through public resolvers) and never count. A per-list
//!   return-code filter narrows the accepted answers further.
//! - Lookup errors (timeouts, SERVFAIL) count as "not listed": a blacklist outage must not
//!   block mail. They are reported to the caller for the debug log.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RData;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};

use crate::FilterError;

/// The filter's resolver. Cheap to clone.
#[derive(Clone)]
pub struct FilterDns {
    inner: TokioResolver,
}

impl std::fmt::Debug for FilterDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilterDns")
    }
}

fn cache() -> &'static Mutex<HashMap<Option<SocketAddr>, FilterDns>> {
    static CACHE: OnceLock<Mutex<HashMap<Option<SocketAddr>, FilterDns>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl FilterDns {
    /// A resolver using the system configuration (`/etc/resolv.conf`).
    pub fn from_system() -> Result<Self, FilterError> {
        let builder =
            TokioResolver::builder_tokio().map_err(|e| FilterError::Dns(e.to_string()))?;
        let inner = builder
            .build()
            .map_err(|e| FilterError::Dns(e.to_string()))?;
        Ok(Self { inner })
    }

    /// A resolver asking only `addr` (UDP, TCP for truncated answers), without the hosts
    /// file.
    pub fn with_nameserver(addr: SocketAddr) -> Result<Self, FilterError> {
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for c in &mut ns.connections {
            c.port = addr.port();
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| FilterError::Dns(e.to_string()))?;
        Ok(Self { inner })
    }

    /// The process-wide resolver for a nameserver choice (`None` = system), built once.
    pub fn shared(server: Option<SocketAddr>) -> Result<Self, FilterError> {
        let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(&server) {
            return Ok(r.clone());
        }
        let r = match server {
            Some(a) => Self::with_nameserver(a)?,
            None => Self::from_system()?,
        };
        map.insert(server, r.clone());
        Ok(r)
    }

    /// The hickory resolver (mail-auth's `MessageAuthenticator` wraps it).
    pub fn resolver(&self) -> &TokioResolver {
        &self.inner
    }

    /// The A records of `name` (queried fully qualified). NXDOMAIN and "no records" give
    /// an empty list; other failures are errors.
    pub async fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, FilterError> {
        let fq = if name.ends_with('.') {
            name.to_owned()
        } else {
            format!("{name}.")
        };
        match self.inner.ipv4_lookup(fq.as_str()).await {
            Ok(l) => Ok(l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect()),
            Err(NetError::Dns(HickoryDnsError::NoRecordsFound(_)))
            | Err(NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::NXDomain))) => {
                Ok(Vec::new())
            }
            Err(e) => Err(FilterError::Dns(format!("{fq}: {e}"))),
        }
    }

    /// Whether `name` is listed in a blacklist zone with the given return-code filter
    /// (module notes). Returns the accepted answers (empty = not listed).
    pub async fn listed(
        &self,
        name: &str,
        codes: &[Ipv4Addr],
    ) -> Result<Vec<Ipv4Addr>, FilterError> {
        let answers = self.ipv4(name).await?;
        Ok(answers
            .into_iter()
            .filter(|a| {
                let o = a.octets();
                // RFC 5782 §2.3: listings are 127.0.0.0/8; 127.255.255.x are errors.
                o[0] == 127 && !(o[1] == 255 && o[2] == 255)
            })
            .filter(|a| codes.is_empty() || codes.contains(a))
            .collect())
    }
}

/// The DNSBL query name of `ip` in `zone` (RFC 5782 §2.1, §2.4).
pub fn dnsbl_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_matches('.');
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(64 + zone.len());
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str(zone);
            s
        }
    }
}

/// Whether `ip` is in the ranges that guide §13.2 whitelists automatically (loopback and
/// the RFC 1918 private ranges), plus their IPv6 counterparts (loopback, RFC 4193 unique
/// local, link-local).
pub fn is_private_or_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_or_loopback(IpAddr::V4(v4));
            }
            let seg = v6.segments()[0];
            v6.is_loopback() || (seg & 0xfe00) == 0xfc00 || (seg & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names() {
        assert_eq!(
            dnsbl_name("127.0.0.2".parse().unwrap(), "zen.spamhaus.org"),
            "2.0.0.127.zen.spamhaus.org"
        );
        // RFC 5782 §2.4 example.
        assert_eq!(
            dnsbl_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"
        );
        assert!(is_private_or_loopback("10.1.2.3".parse().unwrap()));
        assert!(is_private_or_loopback("::1".parse().unwrap()));
        assert!(is_private_or_loopback("fd00::1".parse().unwrap()));
        assert!(!is_private_or_loopback("192.0.2.1".parse().unwrap()));
    }
}

//! IP address groups (guide §19.1).
//!
//! A group is a named list of items; each item is a single host, an inclusive range, a subnet
//! (CIDR or address/netmask) or another group (groups are "cascadable", guide §19.1). Groups
//! are the building block of access policy (remote administration, relay, antispam
//! exceptions …).
//!
//! Keel additions to the guide: IPv6 everywhere, CIDR notation, IPv4-mapped IPv6 addresses
//! matching IPv4 items, and refusal of nested-group cycles (requirements §19.1 "Modern").
//!
//! The built-in group [`LOCAL_CLIENTS`] (the guide's automatically created group of local
//! ranges) is always present in an [`IpGroups`] and cannot be redefined.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Name of the built-in group of local (private) address ranges (guide §19.1: "Group of IP
/// addresses of local ranges is entered automatically").
pub const LOCAL_CLIENTS: &str = "Local clients";

/// Prefix of the text form of an [`IpEntry::Group`] item.
pub const GROUP_PREFIX: &str = "group:";

/// Errors of IP entries and groups. Every message is a full sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpGroupError {
    /// The text is not an address, a range, a subnet or a group reference.
    #[error(
        "'{0}' is not a valid IP address group item: expected an address, a range \
         (from-to), a subnet (address/prefix or address/netmask) or 'group:Name'"
    )]
    InvalidEntry(String),
    /// A range whose two ends are of different address families.
    #[error("the range '{0}' mixes an IPv4 and an IPv6 address")]
    MixedRange(String),
    /// A range whose start is after its end.
    #[error("the range '{0}' starts after it ends")]
    ReversedRange(String),
    /// A subnet mask or prefix length that is not valid.
    #[error(
        "'{0}' has an invalid prefix length or netmask (a netmask must be contiguous ones \
         followed by zeros)"
    )]
    InvalidMask(String),
    /// An empty group name (in a group or in a `group:` reference).
    #[error("an IP address group name must not be empty")]
    EmptyName,
    /// A user-defined group uses the reserved built-in name.
    #[error("the IP address group '{0}' is built in and cannot be redefined")]
    Reserved(String),
    /// A group refers to a group that does not exist.
    #[error(
        "the IP address group '{group}' refers to the group '{referenced}', which does not exist"
    )]
    UnknownGroup {
        /// The group containing the reference.
        group: String,
        /// The missing group.
        referenced: String,
    },
    /// Nested groups refer to each other in a cycle.
    #[error("IP address groups must not contain each other in a cycle: {}", .0.join(" → "))]
    Cycle(
        /// The cycle, first group repeated at the end (`a → b → a`).
        Vec<String>,
    ),
}

/// One item of an IP address group (guide §19.1, "Type").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IpEntry {
    /// A single host, `192.168.1.10` or `2001:db8::1`.
    Single(IpAddr),
    /// An inclusive range, `10.0.0.1-10.0.0.50`; both ends of the same family, start ≤ end.
    Range(IpAddr, IpAddr),
    /// A subnet, `10.0.0.0/8`, `2001:db8::/32`; also parsed from `192.168.1.0/255.255.255.0`.
    Subnet(IpNet),
    /// Another group, `group:Name` (guide §19.1: groups are cascadable).
    Group(String),
}

impl IpEntry {
    /// Whether this item (not following a [`IpEntry::Group`] reference) covers `ip`.
    ///
    /// IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, RFC 4291 §2.5.5.2) are treated as the
    /// IPv4 address they carry, on either side. A `Group` item matches nothing here.
    pub fn matches_address(&self, ip: IpAddr) -> bool {
        let canon = ip.to_canonical();
        match self {
            IpEntry::Single(a) => a.to_canonical() == canon,
            IpEntry::Range(from, to) => {
                let (f, t) = (from.to_canonical(), to.to_canonical());
                let in_range = |x: IpAddr| same_family(f, x) && f <= x && x <= t;
                in_range(canon) || in_range(ip)
            }
            IpEntry::Subnet(net) => net.contains(&canon) || net.contains(&ip),
            IpEntry::Group(_) => false,
        }
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Converts a contiguous netmask into a prefix length.
fn mask_to_prefix(mask: IpAddr) -> Option<u8> {
    let (bits, width): (u128, u32) = match mask {
        IpAddr::V4(m) => (u128::from(u32::from(m)) << 96, 32),
        IpAddr::V6(m) => (u128::from(m), 128),
    };
    let ones = bits.leading_ones();
    // Contiguous: all ones first, then only zeros.
    if bits.checked_shl(ones).unwrap_or(0) != 0 || ones > width {
        return None;
    }
    u8::try_from(ones).ok()
}

impl FromStr for IpEntry {
    type Err = IpGroupError;

    /// Parses the text forms shown on [`IpEntry`]. White space around the parts is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let invalid = || IpGroupError::InvalidEntry(s.to_string());

        // The `group:` prefix is matched ignoring case.
        let group_name = s
            .get(..GROUP_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(GROUP_PREFIX))
            .and_then(|_| s.get(GROUP_PREFIX.len()..));
        if let Some(name) = group_name {
            let name = name.trim();
            if name.is_empty() {
                return Err(IpGroupError::EmptyName);
            }
            return Ok(IpEntry::Group(name.to_string()));
        }
        if let Some((addr, mask)) = s.split_once('/') {
            let addr: IpAddr = addr.trim().parse().map_err(|_| invalid())?;
            let mask = mask.trim();
            let prefix = if let Ok(len) = mask.parse::<u8>() {
                len
            } else if let Ok(m) = mask.parse::<IpAddr>() {
                if !same_family(addr, m) {
                    return Err(IpGroupError::InvalidMask(s.to_string()));
                }
                mask_to_prefix(m).ok_or_else(|| IpGroupError::InvalidMask(s.to_string()))?
            } else {
                return Err(IpGroupError::InvalidMask(s.to_string()));
            };
            let net =
                IpNet::new(addr, prefix).map_err(|_| IpGroupError::InvalidMask(s.to_string()))?;
            return Ok(IpEntry::Subnet(net));
        }
        if let Some((from, to)) = s.split_once('-') {
            let from: IpAddr = from.trim().parse().map_err(|_| invalid())?;
            let to: IpAddr = to.trim().parse().map_err(|_| invalid())?;
            if !same_family(from, to) {
                return Err(IpGroupError::MixedRange(s.to_string()));
            }
            if from > to {
                return Err(IpGroupError::ReversedRange(s.to_string()));
            }
            return Ok(IpEntry::Range(from, to));
        }
        s.parse::<IpAddr>()
            .map(IpEntry::Single)
            .map_err(|_| invalid())
    }
}

impl fmt::Display for IpEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpEntry::Single(a) => write!(f, "{a}"),
            IpEntry::Range(from, to) => write!(f, "{from}-{to}"),
            IpEntry::Subnet(net) => write!(f, "{net}"),
            IpEntry::Group(name) => write!(f, "{GROUP_PREFIX}{name}"),
        }
    }
}

impl Serialize for IpEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn default_true() -> bool {
    true
}

/// One row of a group: the item, its description (guide §19.1 "Description") and whether it
/// is in force. `description` defaults to empty and `enabled` to `true` when deserialising.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpGroupItem {
    /// What the item covers.
    pub entry: IpEntry,
    /// Free-text comment for the administrator.
    #[serde(default)]
    pub description: String,
    /// Disabled items are ignored by [`IpGroups::contains`].
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl IpGroupItem {
    /// An enabled item with the given description.
    pub fn new(entry: IpEntry, description: impl Into<String>) -> Self {
        IpGroupItem {
            entry,
            description: description.into(),
            enabled: true,
        }
    }
}

/// A named IP address group (guide §19.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpGroup {
    /// The group name; names are compared case-insensitively.
    pub name: String,
    /// The items, in the order the administrator entered them.
    #[serde(default)]
    pub items: Vec<IpGroupItem>,
}

// The built-in local ranges. `new_assert` runs at compile time in these constants.
/// 127.0.0.0/8, loopback (RFC 1122 §3.2.1.3, RFC 6890).
const V4_LOOPBACK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8);
/// 10.0.0.0/8, private (RFC 1918 §3).
const V4_PRIVATE_10: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8);
/// 172.16.0.0/12, private (RFC 1918 §3).
const V4_PRIVATE_172: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12);
/// 192.168.0.0/16, private (RFC 1918 §3).
const V4_PRIVATE_192: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16);
/// 169.254.0.0/16, link-local (RFC 3927).
const V4_LINK_LOCAL: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16);
/// ::1/128, loopback (RFC 4291 §2.5.3).
const V6_LOOPBACK: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128);
/// fc00::/7, unique local addresses (RFC 4193).
const V6_ULA: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7);
/// fe80::/10, link-local unicast (RFC 4291 §2.5.6).
const V6_LINK_LOCAL: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);

/// The built-in [`LOCAL_CLIENTS`] group: loopback, the RFC 1918 private ranges, IPv4
/// link-local, IPv6 unique-local and IPv6 link-local. Carrier-grade NAT space
/// (100.64.0.0/10, RFC 6598) is deliberately left out: it is shared with other customers of
/// the provider and is not "local".
pub fn local_clients_group() -> IpGroup {
    let items = [
        (IpNet::V4(V4_LOOPBACK), "Loopback (RFC 1122)"),
        (IpNet::V6(V6_LOOPBACK), "IPv6 loopback (RFC 4291)"),
        (IpNet::V4(V4_PRIVATE_10), "Private network (RFC 1918)"),
        (IpNet::V4(V4_PRIVATE_172), "Private network (RFC 1918)"),
        (IpNet::V4(V4_PRIVATE_192), "Private network (RFC 1918)"),
        (IpNet::V4(V4_LINK_LOCAL), "Link-local (RFC 3927)"),
        (IpNet::V6(V6_ULA), "IPv6 unique local (RFC 4193)"),
        (IpNet::V6(V6_LINK_LOCAL), "IPv6 link-local (RFC 4291)"),
    ];
    IpGroup {
        name: LOCAL_CLIENTS.to_string(),
        items: items
            .into_iter()
            .map(|(net, desc)| IpGroupItem::new(IpEntry::Subnet(net), desc))
            .collect(),
    }
}

/// Case-insensitive lookup key of a group name.
fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// A validated set of IP address groups, always including the built-in [`LOCAL_CLIENTS`].
///
/// Group names are compared case-insensitively. Construction guarantees that every
/// `group:` reference names an existing group and that nesting has no cycles, so lookups
/// always terminate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpGroups {
    /// Keyed by [`name_key`].
    groups: BTreeMap<String, IpGroup>,
}

impl Default for IpGroups {
    /// Only the built-in [`LOCAL_CLIENTS`] group.
    fn default() -> Self {
        let builtin = local_clients_group();
        let mut groups = BTreeMap::new();
        groups.insert(name_key(&builtin.name), builtin);
        IpGroups { groups }
    }
}

impl IpGroups {
    /// Validates user-defined groups and adds the built-in [`LOCAL_CLIENTS`] group.
    ///
    /// Several groups with the same name (ignoring case) are merged, items appended in order
    /// (guide §19.1: entering an existing name adds the item to that group). Errors: an empty
    /// name, the reserved name [`LOCAL_CLIENTS`], a reference to an unknown group, or a cycle
    /// of nested groups (`a → a`, `a → b → a`). Disabled references count too, so enabling
    /// an item can never create a cycle.
    pub fn new(groups: Vec<IpGroup>) -> Result<IpGroups, IpGroupError> {
        let mut set = IpGroups::default();
        for mut g in groups {
            let name = g.name.trim();
            if name.is_empty() {
                return Err(IpGroupError::EmptyName);
            }
            let key = name_key(name);
            if key == name_key(LOCAL_CLIENTS) {
                return Err(IpGroupError::Reserved(name.to_string()));
            }
            g.name = name.to_string();
            match set.groups.get_mut(&key) {
                Some(existing) => existing.items.append(&mut g.items),
                None => {
                    set.groups.insert(key, g);
                }
            }
        }
        // Every reference must resolve.
        for g in set.groups.values() {
            for referenced in references(g) {
                if !set.groups.contains_key(&name_key(referenced)) {
                    return Err(IpGroupError::UnknownGroup {
                        group: g.name.clone(),
                        referenced: referenced.to_string(),
                    });
                }
            }
        }
        set.check_cycles()?;
        Ok(set)
    }

    /// Depth-first search for a cycle of references; reports it with display names.
    fn check_cycles(&self) -> Result<(), IpGroupError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut marks: BTreeMap<&str, Mark> = self
            .groups
            .keys()
            .map(|k| (k.as_str(), Mark::New))
            .collect();

        for start in self.groups.keys() {
            if marks.get(start.as_str()) != Some(&Mark::New) {
                continue;
            }
            // Iterative DFS: a stack of (group key, its reference keys, next index).
            let mut path: Vec<(&str, Vec<String>, usize)> = Vec::new();
            marks.insert(start, Mark::OnPath);
            path.push((start, self.reference_keys(start), 0));
            while let Some((key, refs, idx)) = path.last_mut() {
                let Some(next) = refs.get(*idx).cloned() else {
                    marks.insert(key, Mark::Done);
                    path.pop();
                    continue;
                };
                *idx += 1;
                let Some((next_key, _)) = self.groups.get_key_value(&next) else {
                    continue; // unreachable after the reference check
                };
                match marks.get(next_key.as_str()) {
                    Some(Mark::OnPath) => {
                        let from = path
                            .iter()
                            .position(|(k, _, _)| *k == next_key)
                            .unwrap_or(0);
                        let mut cycle: Vec<String> = path[from..]
                            .iter()
                            .map(|(k, _, _)| self.display_name(k))
                            .collect();
                        cycle.push(self.display_name(next_key));
                        return Err(IpGroupError::Cycle(cycle));
                    }
                    Some(Mark::New) => {
                        marks.insert(next_key, Mark::OnPath);
                        path.push((next_key, self.reference_keys(next_key), 0));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn reference_keys(&self, key: &str) -> Vec<String> {
        self.groups
            .get(key)
            .map(|g| references(g).map(name_key).collect())
            .unwrap_or_default()
    }

    fn display_name(&self, key: &str) -> String {
        self.groups
            .get(key)
            .map_or_else(|| key.to_string(), |g| g.name.clone())
    }

    /// Whether `ip` belongs to the group `group` (case-insensitive name), following nested
    /// groups. An unknown group contains nothing; disabled items are ignored (a disabled
    /// `group:` item does not pull in its group). IPv4-mapped IPv6 addresses match IPv4
    /// items and vice versa.
    pub fn contains(&self, group: &str, ip: IpAddr) -> bool {
        let mut visited = HashSet::new();
        self.contains_inner(&name_key(group), ip, &mut visited)
    }

    fn contains_inner(&self, key: &str, ip: IpAddr, visited: &mut HashSet<String>) -> bool {
        // `visited` keeps diamonds (a→b, a→c, b→d, c→d) linear; cycles are excluded by `new`.
        if !visited.insert(key.to_string()) {
            return false;
        }
        let Some(g) = self.groups.get(key) else {
            return false;
        };
        g.items
            .iter()
            .filter(|i| i.enabled)
            .any(|i| match &i.entry {
                IpEntry::Group(name) => self.contains_inner(&name_key(name), ip, visited),
                entry => entry.matches_address(ip),
            })
    }

    /// The names of all groups, the built-in one included, sorted case-insensitively.
    pub fn names(&self) -> Vec<String> {
        self.groups.values().map(|g| g.name.clone()).collect()
    }

    /// The group called `name` (case-insensitive), if any.
    pub fn get(&self, name: &str) -> Option<&IpGroup> {
        self.groups.get(&name_key(name))
    }

    /// All groups, the built-in one included, in the order of [`names`](Self::names).
    pub fn iter(&self) -> impl Iterator<Item = &IpGroup> {
        self.groups.values()
    }

    /// The user-defined groups (everything except the built-in [`LOCAL_CLIENTS`]), e.g. to
    /// save the configuration.
    pub fn user_groups(&self) -> Vec<IpGroup> {
        let builtin = name_key(LOCAL_CLIENTS);
        self.groups
            .iter()
            .filter(|(k, _)| **k != builtin)
            .map(|(_, g)| g.clone())
            .collect()
    }

    /// The names of the groups that directly contain a `group:` item naming `name` (enabled
    /// or not), sorted. A group that is still referenced must not be deleted.
    pub fn groups_referencing(&self, name: &str) -> Vec<String> {
        let key = name_key(name);
        self.groups
            .values()
            .filter(|g| references(g).any(|r| name_key(r) == key))
            .map(|g| g.name.clone())
            .collect()
    }
}

/// The group names referenced by `g`'s items.
fn references(g: &IpGroup) -> impl Iterator<Item = &str> {
    g.items.iter().filter_map(|i| match &i.entry {
        IpEntry::Group(name) => Some(name.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn entry(s: &str) -> IpEntry {
        s.parse().unwrap()
    }

    fn group(name: &str, entries: &[&str]) -> IpGroup {
        IpGroup {
            name: name.to_string(),
            items: entries
                .iter()
                .map(|e| IpGroupItem::new(entry(e), ""))
                .collect(),
        }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(entry("192.168.1.10"), IpEntry::Single(ip("192.168.1.10")));
        assert_eq!(entry("2001:db8::1"), IpEntry::Single(ip("2001:db8::1")));
        assert_eq!(
            entry("10.0.0.1-10.0.0.50"),
            IpEntry::Range(ip("10.0.0.1"), ip("10.0.0.50"))
        );
        assert_eq!(
            entry("2001:db8::1-2001:db8::ff"),
            IpEntry::Range(ip("2001:db8::1"), ip("2001:db8::ff"))
        );
        assert_eq!(
            entry("10.0.0.0/8"),
            IpEntry::Subnet("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            entry("2001:db8::/32"),
            IpEntry::Subnet("2001:db8::/32".parse().unwrap())
        );
        assert_eq!(entry("group:Trusted"), IpEntry::Group("Trusted".into()));
        assert_eq!(
            entry("group:Local clients"),
            IpEntry::Group(LOCAL_CLIENTS.into())
        );
    }

    #[test]
    fn tolerates_white_space() {
        assert_eq!(
            entry(" 10.0.0.1 - 10.0.0.50 "),
            IpEntry::Range(ip("10.0.0.1"), ip("10.0.0.50"))
        );
        assert_eq!(entry("10.0.0.0 / 8"), entry("10.0.0.0/8"));
        assert_eq!(entry("group: Office "), IpEntry::Group("Office".into()));
        assert_eq!(entry("GROUP:Office"), IpEntry::Group("Office".into()));
    }

    #[test]
    fn parses_netmask_form() {
        assert_eq!(entry("192.168.1.0/255.255.255.0"), entry("192.168.1.0/24"));
        assert_eq!(entry("10.0.0.0/255.0.0.0"), entry("10.0.0.0/8"));
        assert_eq!(entry("0.0.0.0/0.0.0.0"), entry("0.0.0.0/0"));
        assert_eq!(entry("10.1.2.3/255.255.255.255"), entry("10.1.2.3/32"));
        assert_eq!(entry("2001:db8::/ffff:ffff::"), entry("2001:db8::/32"));
        assert_eq!(
            entry("192.168.1.0/255.255.255.0").to_string(),
            "192.168.1.0/24"
        );
    }

    #[test]
    fn rejects_bad_masks() {
        for s in [
            "192.168.1.0/255.0.255.0",
            "192.168.1.0/33",
            "2001:db8::/129",
            "192.168.1.0/ffff::",
            "192.168.1.0/abc",
            "192.168.1.0/",
        ] {
            assert_eq!(
                s.parse::<IpEntry>(),
                Err(IpGroupError::InvalidMask(s.into())),
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_bad_entries() {
        for s in [
            "",
            "host.example.com",
            "10.0.0.256",
            "10.0.0.1-",
            "-10.0.0.1",
            "1.2.3.4/8/8",
        ] {
            let err = s.parse::<IpEntry>().unwrap_err();
            assert!(
                matches!(
                    err,
                    IpGroupError::InvalidEntry(_) | IpGroupError::InvalidMask(_)
                ),
                "{s}: {err:?}"
            );
        }
        let err = "nonsense".parse::<IpEntry>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("'nonsense' is not a valid IP address group item")
        );
        assert_eq!("group:".parse::<IpEntry>(), Err(IpGroupError::EmptyName));
        assert_eq!("group:  ".parse::<IpEntry>(), Err(IpGroupError::EmptyName));
    }

    #[test]
    fn rejects_mixed_and_reversed_ranges() {
        assert_eq!(
            "10.0.0.1-::1".parse::<IpEntry>(),
            Err(IpGroupError::MixedRange("10.0.0.1-::1".into()))
        );
        let err = "10.0.0.50-10.0.0.1".parse::<IpEntry>().unwrap_err();
        assert_eq!(
            err,
            IpGroupError::ReversedRange("10.0.0.50-10.0.0.1".into())
        );
        assert_eq!(
            err.to_string(),
            "the range '10.0.0.50-10.0.0.1' starts after it ends"
        );
        // A one-address range is fine.
        assert!("10.0.0.1-10.0.0.1".parse::<IpEntry>().is_ok());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "192.168.1.10",
            "2001:db8::1",
            "10.0.0.1-10.0.0.50",
            "2001:db8::1-2001:db8::ff",
            "10.0.0.0/8",
            "2001:db8::/32",
            "10.1.2.3/8",
            "group:Name with spaces",
        ] {
            let e = entry(s);
            assert_eq!(e.to_string(), s);
            assert_eq!(entry(&e.to_string()), e);
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let item = IpGroupItem::new(entry("10.0.0.1-10.0.0.50"), "office");
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(
            json,
            r#"{"entry":"10.0.0.1-10.0.0.50","description":"office","enabled":true}"#
        );
        assert_eq!(serde_json::from_str::<IpGroupItem>(&json).unwrap(), item);
        // Defaults: empty description, enabled.
        let short: IpGroupItem = serde_json::from_str(r#"{"entry":"group:X"}"#).unwrap();
        assert_eq!(short, IpGroupItem::new(IpEntry::Group("X".into()), ""));
        // A bad entry is a deserialisation error carrying the message.
        let err =
            serde_json::from_str::<IpGroupItem>(r#"{"entry":"10.0.0.9-10.0.0.1"}"#).unwrap_err();
        assert!(err.to_string().contains("starts after it ends"));

        let g = group("Office", &["192.168.1.0/24", "group:Local clients"]);
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<IpGroup>(&json).unwrap(), g);
    }

    #[test]
    fn single_range_and_subnet_matching() {
        let groups = IpGroups::new(vec![group(
            "G",
            &[
                "192.0.2.7",
                "198.51.100.10-198.51.100.20",
                "203.0.113.0/24",
                "2001:db8:1::/48",
            ],
        )])
        .unwrap();
        for yes in [
            "192.0.2.7",
            "198.51.100.10",
            "198.51.100.15",
            "198.51.100.20",
            "203.0.113.0",
            "203.0.113.255",
            "2001:db8:1::1",
            "2001:db8:1:ffff::1",
        ] {
            assert!(groups.contains("G", ip(yes)), "{yes}");
        }
        for no in [
            "192.0.2.8",
            "198.51.100.9",
            "198.51.100.21",
            "203.0.114.0",
            "2001:db8:2::1",
        ] {
            assert!(!groups.contains("G", ip(no)), "{no}");
        }
    }

    #[test]
    fn ipv6_range_matching() {
        let e = entry("2001:db8::10-2001:db8::20");
        assert!(e.matches_address(ip("2001:db8::10")));
        assert!(e.matches_address(ip("2001:db8::1a")));
        assert!(e.matches_address(ip("2001:db8::20")));
        assert!(!e.matches_address(ip("2001:db8::21")));
        assert!(!e.matches_address(ip("10.0.0.1")));
    }

    #[test]
    fn mapped_ipv6_matches_ipv4_entries() {
        let groups = IpGroups::new(vec![group(
            "G",
            &["10.1.2.3", "10.2.0.1-10.2.0.9", "10.3.0.0/16"],
        )])
        .unwrap();
        assert!(groups.contains("G", ip("::ffff:10.1.2.3")));
        assert!(groups.contains("G", ip("::ffff:10.2.0.5")));
        assert!(groups.contains("G", ip("::ffff:10.3.4.5")));
        assert!(!groups.contains("G", ip("::ffff:10.4.0.1")));
        assert!(groups.contains(LOCAL_CLIENTS, ip("::ffff:192.168.0.1")));
        assert!(groups.contains(LOCAL_CLIENTS, ip("::ffff:127.0.0.1")));
        // The other way round: a mapped entry matches the plain IPv4 address.
        assert!(entry("::ffff:10.9.9.9").matches_address(ip("10.9.9.9")));
        assert!(entry("::ffff:0:0/96").matches_address(ip("::ffff:1.2.3.4")));
    }

    #[test]
    fn builtin_group_contents() {
        let groups = IpGroups::new(Vec::new()).unwrap();
        assert_eq!(groups.names(), vec![LOCAL_CLIENTS.to_string()]);
        let g = groups.get(LOCAL_CLIENTS).unwrap();
        let texts: Vec<String> = g.items.iter().map(|i| i.entry.to_string()).collect();
        assert_eq!(
            texts,
            [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "fc00::/7",
                "fe80::/10"
            ]
        );
        for yes in [
            "127.0.0.1",
            "127.255.255.254",
            "::1",
            "10.20.30.40",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.100.1",
            "169.254.1.1",
            "fd12:3456::1",
            "fc00::1",
            "fe80::1",
        ] {
            assert!(groups.contains(LOCAL_CLIENTS, ip(yes)), "{yes}");
            assert!(
                groups.contains("local CLIENTS", ip(yes)),
                "case-insensitive {yes}"
            );
        }
        for no in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "192.169.0.1",
            "100.64.0.1",
            "11.0.0.1",
            "2001:db8::1",
            "::",
            "fec0::1",
        ] {
            assert!(!groups.contains(LOCAL_CLIENTS, ip(no)), "{no}");
        }
        assert_eq!(IpGroups::default(), groups);
    }

    #[test]
    fn builtin_group_cannot_be_redefined() {
        for name in [LOCAL_CLIENTS, "local clients", " Local clients "] {
            let err = IpGroups::new(vec![group(name, &["1.2.3.4"])]).unwrap_err();
            assert_eq!(err, IpGroupError::Reserved(name.trim().to_string()));
        }
        assert_eq!(
            IpGroupError::Reserved(LOCAL_CLIENTS.into()).to_string(),
            "the IP address group 'Local clients' is built in and cannot be redefined"
        );
    }

    #[test]
    fn rejects_empty_group_name() {
        assert_eq!(
            IpGroups::new(vec![group("  ", &["1.2.3.4"])]),
            Err(IpGroupError::EmptyName)
        );
    }

    #[test]
    fn nested_groups() {
        let groups = IpGroups::new(vec![
            group("Admins", &["203.0.113.5"]),
            group(
                "Trusted",
                &["group:Admins", "group:Local clients", "198.51.100.0/24"],
            ),
            group("Relay", &["group:trusted"]),
        ])
        .unwrap();
        for g in ["Relay", "Trusted"] {
            assert!(groups.contains(g, ip("203.0.113.5")), "{g}");
            assert!(groups.contains(g, ip("192.168.1.1")), "{g}");
            assert!(groups.contains(g, ip("198.51.100.1")), "{g}");
            assert!(!groups.contains(g, ip("203.0.113.6")), "{g}");
        }
        assert!(!groups.contains("Admins", ip("192.168.1.1")));
        assert_eq!(
            groups.names(),
            ["Admins", LOCAL_CLIENTS, "Relay", "Trusted"]
        );
        assert_eq!(groups.groups_referencing("admins"), ["Trusted"]);
        assert_eq!(groups.groups_referencing(LOCAL_CLIENTS), ["Trusted"]);
        assert_eq!(groups.groups_referencing("Trusted"), ["Relay"]);
        assert!(groups.groups_referencing("Relay").is_empty());
        assert!(groups.groups_referencing("Nope").is_empty());
    }

    #[test]
    fn diamond_nesting_is_allowed() {
        let groups = IpGroups::new(vec![
            group("A", &["group:B", "group:C"]),
            group("B", &["group:D"]),
            group("C", &["group:D"]),
            group("D", &["10.0.0.1"]),
        ])
        .unwrap();
        assert!(groups.contains("A", ip("10.0.0.1")));
        assert!(!groups.contains("A", ip("10.0.0.2")));
        assert_eq!(groups.groups_referencing("D"), ["B", "C"]);
    }

    #[test]
    fn unknown_group_contains_nothing() {
        let groups = IpGroups::new(Vec::new()).unwrap();
        assert!(!groups.contains("Nope", ip("127.0.0.1")));
        assert!(groups.get("Nope").is_none());
    }

    #[test]
    fn disabled_items_are_ignored() {
        let mut g = group("G", &["10.0.0.1", "group:H"]);
        g.items[0].enabled = false;
        g.items[1].enabled = false;
        let groups = IpGroups::new(vec![g, group("H", &["10.0.0.2"])]).unwrap();
        assert!(!groups.contains("G", ip("10.0.0.1")));
        assert!(!groups.contains("G", ip("10.0.0.2")));
        assert!(groups.contains("H", ip("10.0.0.2")));
        // A disabled reference still counts as a use of the group.
        assert_eq!(groups.groups_referencing("H"), ["G"]);
    }

    #[test]
    fn rejects_unknown_references() {
        let err = IpGroups::new(vec![group("A", &["group:Missing"])]).unwrap_err();
        assert_eq!(
            err,
            IpGroupError::UnknownGroup {
                group: "A".into(),
                referenced: "Missing".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "the IP address group 'A' refers to the group 'Missing', which does not exist"
        );
    }

    #[test]
    fn rejects_self_cycle() {
        let err = IpGroups::new(vec![group("A", &["10.0.0.1", "group:A"])]).unwrap_err();
        assert_eq!(err, IpGroupError::Cycle(vec!["A".into(), "A".into()]));
        assert_eq!(
            err.to_string(),
            "IP address groups must not contain each other in a cycle: A → A"
        );
    }

    #[test]
    fn rejects_two_and_three_group_cycles() {
        let err =
            IpGroups::new(vec![group("a", &["group:b"]), group("b", &["group:a"])]).unwrap_err();
        assert_eq!(
            err,
            IpGroupError::Cycle(vec!["a".into(), "b".into(), "a".into()])
        );

        let err = IpGroups::new(vec![
            group("root", &["group:x"]),
            group("x", &["group:y"]),
            group("y", &["group:z", "group:Local clients"]),
            group("z", &["group:X"]),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "IP address groups must not contain each other in a cycle: x → y → z → x"
        );
    }

    #[test]
    fn disabled_reference_still_counts_for_cycles() {
        let mut b = group("b", &["group:a"]);
        b.items[0].enabled = false;
        let err = IpGroups::new(vec![group("a", &["group:b"]), b]).unwrap_err();
        assert!(matches!(err, IpGroupError::Cycle(_)));
    }

    #[test]
    fn same_name_groups_are_merged() {
        // Guide §19.1: entering an existing name adds the item to that group.
        let groups = IpGroups::new(vec![
            group("Office", &["10.0.0.1"]),
            group("office", &["10.0.0.2"]),
        ])
        .unwrap();
        let g = groups.get("OFFICE").unwrap();
        assert_eq!(g.name, "Office");
        assert_eq!(g.items.len(), 2);
        assert!(groups.contains("Office", ip("10.0.0.2")));
        assert_eq!(groups.user_groups(), vec![g.clone()]);
        assert_eq!(groups.iter().count(), 2);
    }

    #[test]
    fn mask_to_prefix_values() {
        assert_eq!(mask_to_prefix(ip("255.255.255.0")), Some(24));
        assert_eq!(mask_to_prefix(ip("255.255.255.255")), Some(32));
        assert_eq!(mask_to_prefix(ip("0.0.0.0")), Some(0));
        assert_eq!(mask_to_prefix(ip("255.255.128.0")), Some(17));
        assert_eq!(mask_to_prefix(ip("255.255.0.255")), None);
        assert_eq!(
            mask_to_prefix(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(128)
        );
        assert_eq!(mask_to_prefix(ip("ffff:ff00::")), Some(24));
        assert_eq!(mask_to_prefix(ip("::1")), None);
    }
}

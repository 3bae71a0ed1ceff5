//! IP address groups (guide §19.1) and time intervals (guide §19.2) stored as documents.

use keel_core::ipgroup::{IpGroup, IpGroups, LOCAL_CLIENTS, local_clients_group};
use keel_core::timeinterval::TimeInterval;

use crate::Directory;
use crate::auth::SecurityPolicy;
use crate::docs::{self, Docs, IPGROUP, SECURITY_POLICY, SETTING, TIMEINTERVAL, Tx};
use crate::error::{DirResult, DirectoryError};

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn is_builtin(name: &str) -> bool {
    key(name) == key(LOCAL_CLIENTS)
}

/// Builds the validated set from the stored groups, with `change` applied (replace or
/// remove one group).
fn build(d: &mut dyn Docs, change: Option<(&str, Option<&IpGroup>)>) -> DirResult<IpGroups> {
    let mut groups = docs::list::<IpGroup>(d, IPGROUP, None)?;
    if let Some((name, new)) = change {
        groups.retain(|g| key(&g.name) != key(name));
        if let Some(g) = new {
            groups.push(g.clone());
        }
    }
    IpGroups::new(groups).map_err(|e| DirectoryError::InvalidIpGroup(e.to_string()))
}

fn put_group(tx: &mut Tx<'_>, g: &IpGroup) -> DirResult<()> {
    build(tx, Some((&g.name, Some(g))))?;
    tx.put(IPGROUP, &key(&g.name), "", g)
}

impl Directory {
    /// Adds an IP address group. Nested `group:` items must name existing groups and must not
    /// form a cycle.
    pub fn add_ip_group(&self, group: IpGroup) -> DirResult<IpGroup> {
        let mut g = group;
        g.name = g.name.trim().to_string();
        if is_builtin(&g.name) {
            return Err(DirectoryError::BuiltInIpGroup(LOCAL_CLIENTS.to_string()));
        }
        self.txn(|tx| {
            if tx.get_raw(IPGROUP, &key(&g.name))?.is_some() {
                return Err(DirectoryError::IpGroupExists(g.name.clone()));
            }
            put_group(tx, &g)
        })?;
        self.get_ip_group(&g.name)
    }

    /// Replaces the items of an IP address group.
    pub fn set_ip_group(&self, group: IpGroup) -> DirResult<IpGroup> {
        let g = group;
        if is_builtin(&g.name) {
            return Err(DirectoryError::BuiltInIpGroup(LOCAL_CLIENTS.to_string()));
        }
        self.txn(|tx| {
            let Some(old) = docs::get::<IpGroup>(tx, IPGROUP, &key(&g.name))? else {
                return Err(DirectoryError::NoSuchIpGroup(g.name.trim().to_string()));
            };
            let new = IpGroup {
                name: old.name,
                items: g.items.clone(),
            };
            put_group(tx, &new)
        })?;
        self.get_ip_group(&g.name)
    }

    /// Removes an IP address group; refused for the built-in "Local clients" and while another
    /// group or the security policy uses it.
    pub fn remove_ip_group(&self, name: &str) -> DirResult<()> {
        if is_builtin(name) {
            return Err(DirectoryError::BuiltInIpGroup(LOCAL_CLIENTS.to_string()));
        }
        self.txn(|tx| {
            let Some(g) = docs::get::<IpGroup>(tx, IPGROUP, &key(name))? else {
                return Err(DirectoryError::NoSuchIpGroup(name.trim().to_string()));
            };
            let users = build(tx, None)?.groups_referencing(&g.name);
            if !users.is_empty() {
                return Err(DirectoryError::IpGroupInUse {
                    name: g.name.clone(),
                    by: format!("IP address group {}", users.join(", ")),
                });
            }
            if let Some(p) = docs::get::<SecurityPolicy>(tx, SETTING, SECURITY_POLICY)?
                && p.exempt_ip_group.as_deref().map(key) == Some(key(&g.name))
            {
                return Err(DirectoryError::IpGroupInUse {
                    name: g.name.clone(),
                    by: "the security policy".to_string(),
                });
            }
            tx.delete(IPGROUP, &key(name))?;
            Ok(())
        })
    }

    /// One IP address group (the built-in one included).
    pub fn get_ip_group(&self, name: &str) -> DirResult<IpGroup> {
        if is_builtin(name) {
            return Ok(local_clients_group());
        }
        docs::get::<IpGroup>(&mut self.reader(), IPGROUP, &key(name))?
            .ok_or_else(|| DirectoryError::NoSuchIpGroup(name.trim().to_string()))
    }

    /// Every IP address group, the built-in one included.
    pub fn list_ip_groups(&self) -> DirResult<Vec<IpGroup>> {
        Ok(self.ip_groups()?.iter().cloned().collect())
    }

    /// A validated snapshot of every IP address group for policy checks.
    pub fn ip_groups(&self) -> DirResult<IpGroups> {
        build(&mut self.reader(), None)
    }

    /// Adds a time interval.
    pub fn add_time_interval(&self, interval: TimeInterval) -> DirResult<TimeInterval> {
        let mut t = interval;
        t.name = t.name.trim().to_string();
        t.validate()
            .map_err(|e| DirectoryError::InvalidTimeInterval(e.to_string()))?;
        self.txn(|tx| {
            if tx.get_raw(TIMEINTERVAL, &key(&t.name))?.is_some() {
                return Err(DirectoryError::TimeIntervalExists(t.name.clone()));
            }
            tx.put(TIMEINTERVAL, &key(&t.name), "", &t)
        })?;
        self.get_time_interval(&t.name)
    }

    /// Replaces the items of a time interval.
    pub fn set_time_interval(&self, interval: TimeInterval) -> DirResult<TimeInterval> {
        let t = interval;
        t.validate()
            .map_err(|e| DirectoryError::InvalidTimeInterval(e.to_string()))?;
        self.txn(|tx| {
            let Some(old) = docs::get::<TimeInterval>(tx, TIMEINTERVAL, &key(&t.name))? else {
                return Err(DirectoryError::NoSuchTimeInterval(
                    t.name.trim().to_string(),
                ));
            };
            let new = TimeInterval {
                name: old.name,
                items: t.items.clone(),
            };
            tx.put(TIMEINTERVAL, &key(&t.name), "", &new)
        })?;
        self.get_time_interval(&t.name)
    }

    /// Removes a time interval.
    pub fn remove_time_interval(&self, name: &str) -> DirResult<()> {
        self.txn(|tx| {
            if !tx.delete(TIMEINTERVAL, &key(name))? {
                return Err(DirectoryError::NoSuchTimeInterval(name.trim().to_string()));
            }
            Ok(())
        })
    }

    /// One time interval.
    pub fn get_time_interval(&self, name: &str) -> DirResult<TimeInterval> {
        docs::get::<TimeInterval>(&mut self.reader(), TIMEINTERVAL, &key(name))?
            .ok_or_else(|| DirectoryError::NoSuchTimeInterval(name.trim().to_string()))
    }

    /// Every time interval.
    pub fn list_time_intervals(&self) -> DirResult<Vec<TimeInterval>> {
        docs::list::<TimeInterval>(&mut self.reader(), TIMEINTERVAL, None)
    }
}

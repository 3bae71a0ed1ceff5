//! User groups (guide §9) and aliases (guide §12.3).

use keel_core::address::{Address, is_valid_alias_name};

use crate::Directory;
use crate::docs::{
    self, ALIAS, AddressOwner, DOMAIN, Docs as _, GROUP, Tx, address_in_domain, claim_addresses,
    guard_last_admin, release_addresses, valid_local_name,
};
use crate::error::{DirResult, DirectoryError};
use crate::model::{Alias, Group, GroupPatch, NewAlias, NewGroup};

fn group_key(s: &str) -> DirResult<(String, String)> {
    let s = s.trim().to_lowercase();
    match s.rsplit_once('@') {
        Some((n, d)) if !n.is_empty() && !d.is_empty() => Ok((n.to_string(), d.to_string())),
        _ => Err(DirectoryError::Invalid(format!(
            "'{s}' is not a group: give it as name@domain"
        ))),
    }
}

fn norm_members(tx: &mut Tx<'_>, members: &[String], domain: &str) -> DirResult<Vec<String>> {
    let mut out = Vec::new();
    for m in members {
        let m = m.trim().to_lowercase();
        let key = match m.rsplit_once('@') {
            Some((l, d)) => match docs::real_domain(tx, d)? {
                Some((real, _)) => format!("{l}@{real}"),
                None => return Err(DirectoryError::NoSuchUser(m.clone())),
            },
            None => format!("{m}@{domain}"),
        };
        if docs::get_user(tx, &key)?.is_none() {
            return Err(DirectoryError::NoSuchUser(key));
        }
        if !out.contains(&key) {
            out.push(key);
        }
    }
    Ok(out)
}

fn norm_group_addresses(tx: &mut Tx<'_>, addrs: &[String], domain: &str) -> DirResult<Vec<String>> {
    let mut out = Vec::new();
    for a in addrs {
        let a = address_in_domain(tx, a, domain)?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// Checks an alias target: `#public/Folder`, a full address or a local name (guide §12.3).
fn norm_target(t: &str) -> DirResult<String> {
    let t = t.trim();
    if let Some(path) = t.strip_prefix("#public/") {
        if path.trim_matches('/').is_empty() {
            return Err(DirectoryError::InvalidAliasTarget(t.to_string()));
        }
        return Ok(format!("#public/{}", path.trim_matches('/')));
    }
    if t.contains('@') {
        return Address::parse(t)
            .map(|a| a.key())
            .map_err(|_| DirectoryError::InvalidAliasTarget(t.to_string()));
    }
    let l = t.to_lowercase();
    if valid_local_name(&l) {
        Ok(l)
    } else {
        Err(DirectoryError::InvalidAliasTarget(t.to_string()))
    }
}

impl Directory {
    /// Adds a group (guide §9.1). Groups get no automatic address (requirements-1 §0.7).
    pub fn add_group(&self, new: NewGroup) -> DirResult<Group> {
        let name = new.name.trim().to_lowercase();
        if !valid_local_name(&name) {
            return Err(DirectoryError::Invalid(format!(
                "'{}' is not a valid group name: use only letters a-z, digits, '.', '-' and '_'",
                new.name.trim()
            )));
        }
        let domain = new.domain.trim().to_lowercase();
        let key = format!("{name}@{domain}");
        self.txn(|tx| {
            if tx.get_raw(DOMAIN, &domain)?.is_none() {
                return Err(DirectoryError::NoSuchDomain(domain.clone()));
            }
            if tx.get_raw(GROUP, &key)?.is_some() {
                return Err(DirectoryError::GroupExists(key.clone()));
            }
            let addresses = norm_group_addresses(tx, &new.addresses, &domain)?;
            let owner = AddressOwner {
                kind: "group".into(),
                key: key.clone(),
            };
            claim_addresses(tx, &addresses, &owner, &domain)?;
            let g = Group {
                name: name.clone(),
                domain: domain.clone(),
                description: new.description.clone(),
                addresses,
                members: norm_members(tx, &new.members, &domain)?,
                admin_rights: new.admin_rights,
                domain_admin: new.domain_admin,
                local_domain_only: new.local_domain_only,
            };
            tx.put(GROUP, &key, &domain, &g)
        })?;
        self.get_group(&key)
    }

    /// One group by `name@domain`.
    pub fn get_group(&self, key: &str) -> DirResult<Group> {
        let (n, d) = group_key(key)?;
        let k = format!("{n}@{d}");
        docs::get::<Group>(&mut self.reader(), GROUP, &k)?.ok_or(DirectoryError::NoSuchGroup(k))
    }

    /// Groups of one domain, or of every domain.
    pub fn list_groups(&self, domain: Option<&str>) -> DirResult<Vec<Group>> {
        let d = domain.map(|d| d.trim().to_lowercase());
        docs::list::<Group>(&mut self.reader(), GROUP, d.as_deref())
    }

    /// The groups a user belongs to.
    pub fn groups_of_user(&self, user: &str) -> DirResult<Vec<Group>> {
        let mut r = self.reader();
        let key = self.user_key(&mut r, user)?;
        Ok(docs::list::<Group>(&mut r, GROUP, None)?
            .into_iter()
            .filter(|g| g.members.contains(&key))
            .collect())
    }

    /// Changes a group. Refuses changes (members, rights) that leave no account with full admin
    /// rights.
    pub fn set_group(&self, key: &str, patch: GroupPatch) -> DirResult<Group> {
        let (n, d) = group_key(key)?;
        let k = format!("{n}@{d}");
        self.txn(|tx| {
            let before = docs::full_admins(tx)?;
            let mut g = docs::get::<Group>(tx, GROUP, &k)?
                .ok_or_else(|| DirectoryError::NoSuchGroup(k.clone()))?;
            if let Some(v) = &patch.description {
                g.description = v.clone();
            }
            if let Some(v) = &patch.members {
                g.members = norm_members(tx, v, &d)?;
            }
            if let Some(v) = patch.admin_rights {
                g.admin_rights = v;
            }
            if let Some(v) = patch.domain_admin {
                g.domain_admin = v;
            }
            if let Some(v) = patch.local_domain_only {
                g.local_domain_only = v;
            }
            if let Some(v) = &patch.addresses {
                let owner = AddressOwner {
                    kind: "group".into(),
                    key: k.clone(),
                };
                let new = norm_group_addresses(tx, v, &d)?;
                let old: Vec<String> = g
                    .addresses
                    .iter()
                    .filter(|a| !new.contains(a))
                    .cloned()
                    .collect();
                release_addresses(tx, &old, &owner)?;
                claim_addresses(tx, &new, &owner, &d)?;
                g.addresses = new;
            }
            tx.put(GROUP, &k, &d, &g)?;
            guard_last_admin(tx, &before, "change", &format!("group {k}"))
        })?;
        self.get_group(&k)
    }

    /// Adds users to a group.
    pub fn add_group_members(&self, key: &str, users: &[String]) -> DirResult<Group> {
        let g = self.get_group(key)?;
        let mut members = g.members.clone();
        members.extend(users.iter().cloned());
        self.set_group(
            key,
            GroupPatch {
                members: Some(members),
                ..Default::default()
            },
        )
    }

    /// Removes users from a group (refused if it removes the last full admin's rights).
    pub fn remove_group_members(&self, key: &str, users: &[String]) -> DirResult<Group> {
        let g = self.get_group(key)?;
        let mut r = self.reader();
        let mut drop = Vec::new();
        for u in users {
            drop.push(self.user_key(&mut r, u)?);
        }
        let members: Vec<String> = g
            .members
            .iter()
            .filter(|m| !drop.contains(m))
            .cloned()
            .collect();
        self.set_group(
            key,
            GroupPatch {
                members: Some(members),
                ..Default::default()
            },
        )
    }

    /// Removes a group (refused if it removes the last full admin's rights).
    pub fn remove_group(&self, key: &str) -> DirResult<()> {
        let (n, d) = group_key(key)?;
        let k = format!("{n}@{d}");
        self.txn(|tx| {
            let before = docs::full_admins(tx)?;
            let g = docs::get::<Group>(tx, GROUP, &k)?
                .ok_or_else(|| DirectoryError::NoSuchGroup(k.clone()))?;
            let owner = AddressOwner {
                kind: "group".into(),
                key: k.clone(),
            };
            release_addresses(tx, &g.addresses, &owner)?;
            tx.delete(GROUP, &k)?;
            guard_last_admin(tx, &before, "remove", &format!("group {k}"))
        })
    }

    /// Adds an alias (guide §12.3). Adding targets to an existing name adds up ("several rows
    /// for one alias fan out"); a non-empty description replaces the old one.
    pub fn add_alias(&self, new: NewAlias) -> DirResult<Alias> {
        self.save_alias(new, false)
    }

    /// Replaces an existing alias's targets (and its description when one is given), in
    /// one transaction: a bad target leaves the alias unchanged.
    pub fn set_alias(&self, new: NewAlias) -> DirResult<Alias> {
        self.save_alias(new, true)
    }

    fn save_alias(&self, new: NewAlias, replace: bool) -> DirResult<Alias> {
        let name = new.name.trim().to_lowercase();
        if !is_valid_alias_name(&name) || name.len() > keel_core::address::MAX_LOCAL_PART_OCTETS {
            return Err(DirectoryError::InvalidAliasName(
                new.name.trim().to_string(),
            ));
        }
        if new.targets.is_empty() {
            return Err(DirectoryError::Invalid(
                "an alias needs at least one target".into(),
            ));
        }
        let targets = new
            .targets
            .iter()
            .map(|t| norm_target(t))
            .collect::<DirResult<Vec<_>>>()?;
        let domain = new.domain.trim().to_lowercase();
        let key = format!("{name}@{domain}");
        self.txn(|tx| {
            if tx.get_raw(DOMAIN, &domain)?.is_none() {
                return Err(DirectoryError::NoSuchDomain(domain.clone()));
            }
            let existing = docs::get::<Alias>(tx, ALIAS, &key)?;
            if replace && existing.is_none() {
                return Err(DirectoryError::NoSuchAlias(key.clone()));
            }
            let mut a = existing.unwrap_or_else(|| Alias {
                name: name.clone(),
                domain: domain.clone(),
                description: String::new(),
                targets: Vec::new(),
            });
            if replace {
                a.targets.clear();
            }
            for t in &targets {
                if !a.targets.contains(t) {
                    a.targets.push(t.clone());
                }
            }
            if !new.description.is_empty() {
                a.description = new.description.clone();
            }
            tx.put(ALIAS, &key, &domain, &a)
        })?;
        self.get_alias(&domain, &name)
    }

    /// One alias.
    pub fn get_alias(&self, domain: &str, name: &str) -> DirResult<Alias> {
        let key = format!(
            "{}@{}",
            name.trim().to_lowercase(),
            domain.trim().to_lowercase()
        );
        docs::get::<Alias>(&mut self.reader(), ALIAS, &key)?.ok_or(DirectoryError::NoSuchAlias(key))
    }

    /// Aliases of one domain, or of every domain.
    pub fn list_aliases(&self, domain: Option<&str>) -> DirResult<Vec<Alias>> {
        let d = domain.map(|d| d.trim().to_lowercase());
        docs::list::<Alias>(&mut self.reader(), ALIAS, d.as_deref())
    }

    /// Removes one target of an alias, or the whole alias when `target` is `None`.
    pub fn remove_alias(&self, domain: &str, name: &str, target: Option<&str>) -> DirResult<()> {
        let key = format!(
            "{}@{}",
            name.trim().to_lowercase(),
            domain.trim().to_lowercase()
        );
        let target = target.map(norm_target).transpose()?;
        let d = domain.trim().to_lowercase();
        self.txn(|tx| {
            let mut a = docs::get::<Alias>(tx, ALIAS, &key)?
                .ok_or_else(|| DirectoryError::NoSuchAlias(key.clone()))?;
            match &target {
                Some(t) => {
                    if !a.targets.contains(t) {
                        return Err(DirectoryError::Invalid(format!(
                            "alias {key} has no target {t}"
                        )));
                    }
                    a.targets.retain(|x| x != t);
                    if a.targets.is_empty() {
                        tx.delete(ALIAS, &key)?;
                    } else {
                        tx.put(ALIAS, &key, &d, &a)?;
                    }
                }
                None => {
                    tx.delete(ALIAS, &key)?;
                }
            }
            Ok(())
        })
    }
}

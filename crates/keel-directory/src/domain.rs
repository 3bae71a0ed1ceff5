//! Domains (guide §7).

use keel_core::address::is_valid_domain;

use crate::Directory;
use crate::docs::{
    self, DOMAIN, Docs, PRIMARY_DOMAIN, PUBLIC_FOLDER_SCOPE, PrimarySetting, SETTING, Tx,
};
use crate::error::{DirResult, DirectoryError};
use crate::model::{
    CLEANOUT_DELETED_ITEMS_DAYS, CLEANOUT_JUNK_DAYS, DELETED_ITEMS_RECOVERY_DAYS, Domain,
    DomainPatch, FOLDER_NAMES, MAX_CLEANOUT_DAYS, MAX_RECOVERY_DAYS, NewDomain, PublicFolderScope,
    SPECIAL_FOLDER_USES,
};

fn norm_domain(name: &str) -> DirResult<String> {
    let n = name.trim().trim_end_matches('.').to_lowercase();
    if !is_valid_domain(&n) {
        return Err(DirectoryError::InvalidDomainName(name.trim().to_string()));
    }
    Ok(n)
}

/// Checks that `name` is neither a domain nor a domain alias, except of domain `own`.
fn name_free(tx: &mut dyn Docs, name: &str, own: Option<&str>) -> DirResult<()> {
    for d in docs::list::<Domain>(tx, DOMAIN, None)? {
        if Some(d.name.as_str()) == own {
            continue;
        }
        if d.name == name {
            return Err(DirectoryError::DomainNameTaken {
                name: name.to_string(),
                by: format!("domain {}", d.name),
            });
        }
        if d.aliases.iter().any(|a| a == name) {
            return Err(DirectoryError::DomainNameTaken {
                name: name.to_string(),
                by: format!("an alias of domain {}", d.name),
            });
        }
    }
    Ok(())
}

fn check_domain_fields(tx: &mut Tx<'_>, dom: &mut Domain) -> DirResult<()> {
    let mut aliases = Vec::new();
    for a in &dom.aliases {
        let a = norm_domain(a)?;
        if a == dom.name {
            return Err(DirectoryError::Invalid(format!(
                "domain {} cannot be an alias of itself",
                dom.name
            )));
        }
        name_free(tx, &a, Some(&dom.name))?;
        if !aliases.contains(&a) {
            aliases.push(a);
        }
    }
    dom.aliases = aliases;
    if let Some(f) = &dom.forwarding
        && (f.host.trim().is_empty() || f.port == 0)
    {
        return Err(DirectoryError::Invalid(
            "domain forwarding needs a host name and a port".to_string(),
        ));
    }
    // guide §7.7: at most one domain per listening IP.
    if let Some(ip) = dom.bound_ip {
        for d in docs::list::<Domain>(tx, DOMAIN, None)? {
            if d.name != dom.name && d.bound_ip == Some(ip) {
                return Err(DirectoryError::IpAlreadyBound {
                    ip: ip.to_string(),
                    domain: d.name,
                });
            }
        }
    }
    dom.settings.retain(|_, v| !v.is_null());
    // guide §7.4: at most 365 days of deleted-item recovery; guide §7.5: clean-out ages.
    for (key, max) in [
        (DELETED_ITEMS_RECOVERY_DAYS, MAX_RECOVERY_DAYS),
        (CLEANOUT_DELETED_ITEMS_DAYS, MAX_CLEANOUT_DAYS),
        (CLEANOUT_JUNK_DAYS, MAX_CLEANOUT_DAYS),
    ] {
        if let Some(v) = dom.settings.get(key) {
            check_days(key, v.as_u64(), max)?;
        }
    }
    if let Some(v) = dom.settings.get_mut(FOLDER_NAMES) {
        check_folder_names(v)?;
        if v.as_object().is_some_and(serde_json::Map::is_empty) {
            dom.settings.remove(FOLDER_NAMES);
        }
    }
    Ok(())
}

/// Checks (and trims) the special-use folder names of a domain: known uses only, each a
/// usable top-level or nested folder name, all different; empty or null entries are
/// dropped (the default applies).
fn check_folder_names(v: &mut serde_json::Value) -> DirResult<()> {
    let invalid =
        |field: String, message: String| DirectoryError::InvalidSetting { field, message };
    let Some(map) = v.as_object_mut() else {
        return Err(invalid(
            FOLDER_NAMES.to_owned(),
            format!(
                "{FOLDER_NAMES} must be an object from special use ({}) to folder name",
                SPECIAL_FOLDER_USES.join(", ")
            ),
        ));
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut drop = Vec::new();
    for (key, value) in map.iter_mut() {
        let field = format!("{FOLDER_NAMES}.{key}");
        if !SPECIAL_FOLDER_USES.contains(&key.as_str()) {
            return Err(invalid(
                field,
                format!(
                    "unknown special use {key:?}; the uses are {}",
                    SPECIAL_FOLDER_USES.join(", ")
                ),
            ));
        }
        let mut name = match value {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.trim().to_owned(),
            _ => return Err(invalid(field, "a folder name must be a string".into())),
        };
        if name.is_empty() {
            drop.push(key.clone());
            continue;
        }
        if let Some(reason) = unusable_folder_name(&name) {
            return Err(invalid(field, format!("{name:?} cannot be used: {reason}")));
        }
        // RFC 9051 §5.1: the INBOX component is case-insensitive; keep it spelled `INBOX`.
        if let Some(rest) = name.get(5..).filter(|r| r.starts_with('/'))
            && name[..5].eq_ignore_ascii_case("INBOX")
        {
            name = format!("INBOX{rest}");
        }
        if let Some((other, _)) = seen.iter().find(|(_, n)| n.eq_ignore_ascii_case(&name)) {
            return Err(invalid(
                field,
                format!("{name:?} is already the {other} folder; each use needs its own folder"),
            ));
        }
        seen.push((key.clone(), name.clone()));
        *value = serde_json::Value::String(name);
    }
    for key in drop {
        map.remove(&key);
    }
    Ok(())
}

/// Why a name cannot be a special-use folder (RFC 9051 §5.1; keel-mail's folder rules:
/// the shared namespaces' roots are reserved, RFC 2342).
fn unusable_folder_name(name: &str) -> Option<&'static str> {
    let top = name.split('/').next().unwrap_or("");
    if name.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if name.split('/').any(str::is_empty) {
        Some("it has an empty hierarchy level")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if name.contains(['*', '%']) {
        Some("it contains a wildcard character (* or %)")
    } else if name.eq_ignore_ascii_case("INBOX") {
        Some("INBOX is not a special-use folder")
    } else if top.eq_ignore_ascii_case("Other Users") || top.eq_ignore_ascii_case("Public Folders")
    {
        Some("its top level is reserved for shared folders")
    } else {
        None
    }
}

/// Checks a day count setting: a whole number from 0 to `max`.
pub(crate) fn check_days(key: &str, value: Option<u64>, max: u32) -> DirResult<()> {
    match value {
        Some(v) if v <= u64::from(max) => Ok(()),
        Some(v) if key == DELETED_ITEMS_RECOVERY_DAYS => Err(DirectoryError::InvalidSetting {
            field: key.to_owned(),
            message: format!(
                "deleted items can be kept for recovery for at most {max} days, not {v} \
                 (guide §7.4); use 0 to turn recovery off"
            ),
        }),
        Some(v) => Err(DirectoryError::InvalidSetting {
            field: key.to_owned(),
            message: format!("{key} must be at most {max} days, not {v}"),
        }),
        None => Err(DirectoryError::InvalidSetting {
            field: key.to_owned(),
            message: format!("{key} must be a whole number of days (0 = off)"),
        }),
    }
}

impl Directory {
    /// Adds a domain (guide §7.2). The first domain becomes the primary domain (§7.2.1).
    pub fn add_domain(&self, new: NewDomain) -> DirResult<Domain> {
        let name = norm_domain(&new.name)?;
        self.txn(|tx| {
            name_free(tx, &name, None)?;
            let mut dom = Domain {
                name: name.clone(),
                description: new.description.clone(),
                primary: false,
                user_limit: new.user_limit,
                aliases: new.aliases.clone(),
                outgoing_size_limit: new.outgoing_size_limit,
                forwarding: new.forwarding.clone(),
                bound_ip: new.bound_ip,
                settings: Default::default(),
            };
            check_domain_fields(tx, &mut dom)?;
            tx.put(DOMAIN, &name, "", &dom)?;
            let primary = docs::primary_domain(tx)?;
            let primary_exists = match &primary {
                Some(p) => tx.get_raw(DOMAIN, p)?.is_some(),
                None => false,
            };
            if !primary_exists {
                tx.put(
                    SETTING,
                    PRIMARY_DOMAIN,
                    "",
                    &PrimarySetting {
                        domain: name.clone(),
                    },
                )?;
            }
            Ok(())
        })?;
        self.get_domain(&name)
    }

    /// Lists every domain, ordered by name.
    pub fn list_domains(&self) -> DirResult<Vec<Domain>> {
        let mut r = self.reader();
        let primary = docs::primary_domain(&mut r)?;
        let mut v = docs::list::<Domain>(&mut r, DOMAIN, None)?;
        for d in &mut v {
            d.primary = primary.as_deref() == Some(d.name.as_str());
        }
        Ok(v)
    }

    /// One domain by name (not by domain alias).
    pub fn get_domain(&self, name: &str) -> DirResult<Domain> {
        let n = name.trim().trim_end_matches('.').to_lowercase();
        docs::get_domain(&mut self.reader(), &n)?.ok_or(DirectoryError::NoSuchDomain(n))
    }

    /// Changes a domain's settings.
    pub fn set_domain(&self, name: &str, patch: DomainPatch) -> DirResult<Domain> {
        let n = name.trim().trim_end_matches('.').to_lowercase();
        self.txn(|tx| {
            let mut dom = docs::get::<Domain>(tx, DOMAIN, &n)?
                .ok_or_else(|| DirectoryError::NoSuchDomain(n.clone()))?;
            if let Some(v) = &patch.description {
                dom.description = v.clone();
            }
            if let Some(v) = patch.user_limit {
                dom.user_limit = v;
            }
            if let Some(v) = &patch.aliases {
                dom.aliases = v.clone();
            }
            if let Some(v) = patch.outgoing_size_limit {
                dom.outgoing_size_limit = v;
            }
            if let Some(v) = &patch.forwarding {
                dom.forwarding = v.clone();
            }
            if let Some(v) = patch.bound_ip {
                dom.bound_ip = v;
            }
            if let Some(s) = &patch.settings {
                for (k, v) in s {
                    match (dom.settings.get_mut(k), v) {
                        // Folder names merge per use; a null or empty name restores the
                        // default of that use.
                        (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new))
                            if k == FOLDER_NAMES =>
                        {
                            for (use_key, name) in new {
                                old.insert(use_key.clone(), name.clone());
                            }
                        }
                        _ => {
                            dom.settings.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            check_domain_fields(tx, &mut dom)?;
            dom.primary = false;
            tx.put(DOMAIN, &n, "", &dom)
        })?;
        self.get_domain(&n)
    }

    /// Removes a domain. Refused while it has users, groups or aliases, or while it is the
    /// primary domain (guide §7.8).
    pub fn remove_domain(&self, name: &str) -> DirResult<()> {
        let n = name.trim().trim_end_matches('.').to_lowercase();
        self.txn(|tx| {
            if tx.get_raw(DOMAIN, &n)?.is_none() {
                return Err(DirectoryError::NoSuchDomain(n.clone()));
            }
            for (kind, what) in [
                (docs::USER, "users"),
                (docs::GROUP, "groups"),
                (docs::ALIAS, "aliases"),
            ] {
                let count = docs::count(tx, kind, Some(&n))?;
                if count > 0 {
                    return Err(DirectoryError::DomainNotEmpty {
                        domain: n.clone(),
                        count,
                        what,
                    });
                }
            }
            if docs::primary_domain(tx)?.as_deref() == Some(n.as_str()) {
                return Err(DirectoryError::PrimaryDomain(n.clone()));
            }
            tx.delete(DOMAIN, &n)?;
            Ok(())
        })
    }

    /// Makes a domain the primary domain (guide §7.2.1 "Set as primary").
    pub fn set_primary_domain(&self, name: &str) -> DirResult<()> {
        let n = name.trim().trim_end_matches('.').to_lowercase();
        self.txn(|tx| {
            if tx.get_raw(DOMAIN, &n)?.is_none() {
                return Err(DirectoryError::NoSuchDomain(n.clone()));
            }
            tx.put(
                SETTING,
                PRIMARY_DOMAIN,
                "",
                &PrimarySetting { domain: n.clone() },
            )
        })
    }

    /// Whether public folders are kept per domain (the default) or shared by every domain
    /// (guide §7.1 "Advanced", §26.1).
    pub fn public_folder_scope(&self) -> DirResult<PublicFolderScope> {
        Ok(
            docs::get::<PublicFolderScope>(&mut self.reader(), SETTING, PUBLIC_FOLDER_SCOPE)?
                .unwrap_or_default(),
        )
    }

    /// Sets the public-folder scope. The folders of the other scope stay in the store but
    /// are not shown while this one applies (requirements-2 §26).
    pub fn set_public_folder_scope(&self, scope: PublicFolderScope) -> DirResult<()> {
        self.txn(|tx| tx.put(SETTING, PUBLIC_FOLDER_SCOPE, "", &scope))
    }

    /// The primary domain, if any domain exists.
    pub fn primary_domain(&self) -> DirResult<Option<String>> {
        docs::primary_domain(&mut self.reader())
    }

    /// Whether a name is a local domain or domain alias; returns the real domain.
    pub fn local_domain(&self, name: &str) -> DirResult<Option<String>> {
        Ok(docs::real_domain(&mut self.reader(), name)?.map(|(d, _)| d))
    }
}

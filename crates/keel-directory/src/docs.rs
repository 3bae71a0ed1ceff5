//! Typed access to the MetaStore documents, inside and outside transactions.

use std::collections::BTreeSet;

use keel_store::{Doc, DocTxn, MetaStore, StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Directory;
use crate::error::{DirResult, DirectoryError};
use crate::model::{AdminRights, Domain, Group, User};
use crate::password::StoredSecret;

pub(crate) const DOMAIN: &str = "domain";
pub(crate) const USER: &str = "user";
pub(crate) const GROUP: &str = "group";
pub(crate) const ALIAS: &str = "alias";
pub(crate) const ADDRESS: &str = "address";
pub(crate) const IPGROUP: &str = "ipgroup";
pub(crate) const TIMEINTERVAL: &str = "timeinterval";
pub(crate) const SETTING: &str = "setting";
pub(crate) const LOCKOUT: &str = "lockout";
pub(crate) const USERSTAT: &str = "userstat";

pub(crate) const PRIMARY_DOMAIN: &str = "primary_domain";
/// Key of the public-folder scope setting (guide §7.1 "Advanced", §26.1).
pub(crate) const PUBLIC_FOLDER_SCOPE: &str = "public_folder_scope";
pub(crate) const SECURITY_POLICY: &str = "security_policy";

/// Read access shared by the store (outside transactions) and a transaction.
pub(crate) trait Docs {
    fn get_raw(&mut self, kind: &str, key: &str) -> StoreResult<Option<Doc>>;
    fn list_raw(&mut self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>>;
}

/// Reads straight from the store.
pub(crate) struct StoreDocs<'a>(pub(crate) &'a dyn MetaStore);

impl Docs for StoreDocs<'_> {
    fn get_raw(&mut self, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
        self.0.get_doc(kind, key)
    }
    fn list_raw(&mut self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
        self.0.list_docs(kind, parent)
    }
}

/// A transaction.
pub(crate) struct Tx<'a>(pub(crate) &'a mut dyn DocTxn);

impl Docs for Tx<'_> {
    fn get_raw(&mut self, kind: &str, key: &str) -> StoreResult<Option<Doc>> {
        self.0.get(kind, key)
    }
    fn list_raw(&mut self, kind: &str, parent: Option<&str>) -> StoreResult<Vec<Doc>> {
        self.0.list(kind, parent)
    }
}

impl Tx<'_> {
    pub(crate) fn put<T: Serialize>(
        &mut self,
        kind: &str,
        key: &str,
        parent: &str,
        body: &T,
    ) -> DirResult<()> {
        let v = serde_json::to_value(body).map_err(|e| DirectoryError::Corrupt {
            kind: kind.to_string(),
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        self.0.put(kind, key, parent, &v)?;
        Ok(())
    }
    pub(crate) fn delete(&mut self, kind: &str, key: &str) -> DirResult<bool> {
        Ok(self.0.delete(kind, key)?)
    }
}

fn decode<T: DeserializeOwned>(doc: Doc) -> DirResult<T> {
    serde_json::from_value(doc.body).map_err(|e| DirectoryError::Corrupt {
        kind: doc.kind,
        key: doc.key,
        reason: e.to_string(),
    })
}

pub(crate) fn get<T: DeserializeOwned>(
    d: &mut dyn Docs,
    kind: &str,
    key: &str,
) -> DirResult<Option<T>> {
    d.get_raw(kind, key)?.map(decode).transpose()
}

pub(crate) fn list<T: DeserializeOwned>(
    d: &mut dyn Docs,
    kind: &str,
    parent: Option<&str>,
) -> DirResult<Vec<T>> {
    d.list_raw(kind, parent)?.into_iter().map(decode).collect()
}

pub(crate) fn count(d: &mut dyn Docs, kind: &str, parent: Option<&str>) -> DirResult<usize> {
    Ok(d.list_raw(kind, parent)?.len())
}

/// The stored form of a user: the public fields plus the secret.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct UserDoc {
    #[serde(flatten)]
    pub(crate) user: User,
    #[serde(default)]
    pub(crate) secret: StoredSecret,
}

impl UserDoc {
    pub(crate) fn public(mut self) -> User {
        self.user.has_password = self.secret.hash.is_some();
        self.user
    }
}

/// Owner of an address in the `address` index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AddressOwner {
    /// `user` or `group`.
    pub(crate) kind: String,
    /// The owner's key.
    pub(crate) key: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PrimarySetting {
    pub(crate) domain: String,
}

pub(crate) fn primary_domain(d: &mut dyn Docs) -> DirResult<Option<String>> {
    Ok(get::<PrimarySetting>(d, SETTING, PRIMARY_DOMAIN)?.map(|p| p.domain))
}

pub(crate) fn get_domain(d: &mut dyn Docs, name: &str) -> DirResult<Option<Domain>> {
    let Some(mut dom) = get::<Domain>(d, DOMAIN, name)? else {
        return Ok(None);
    };
    dom.primary = primary_domain(d)?.as_deref() == Some(name);
    Ok(Some(dom))
}

/// Maps a domain name or domain alias to the real domain: `(real, via_domain_alias)`.
pub(crate) fn real_domain(d: &mut dyn Docs, name: &str) -> DirResult<Option<(String, bool)>> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    if d.get_raw(DOMAIN, &name)?.is_some() {
        return Ok(Some((name, false)));
    }
    for dom in list::<Domain>(d, DOMAIN, None)? {
        if dom.aliases.contains(&name) {
            return Ok(Some((dom.name, true)));
        }
    }
    Ok(None)
}

pub(crate) fn get_user(d: &mut dyn Docs, key: &str) -> DirResult<Option<UserDoc>> {
    get::<UserDoc>(d, USER, key)
}

/// Keys of the enabled users whose effective rights are Full (own or through a group).
pub(crate) fn full_admins(d: &mut dyn Docs) -> DirResult<BTreeSet<String>> {
    let groups = list::<Group>(d, GROUP, None)?;
    let mut out = BTreeSet::new();
    for u in list::<UserDoc>(d, USER, None)? {
        let u = u.user;
        if u.enabled && effective_rights(&u, &groups) == AdminRights::Full {
            out.insert(u.address);
        }
    }
    Ok(out)
}

/// Effective rights: the higher of the user's and every group's it belongs to (guide §9.1).
pub(crate) fn effective_rights(user: &User, groups: &[Group]) -> AdminRights {
    groups
        .iter()
        .filter(|g| g.members.contains(&user.address))
        .map(|g| g.admin_rights)
        .fold(user.admin_rights, Ord::max)
}

/// guide §32.2, §32.3 note: the user's own flag, or a group's of the user's own domain (a
/// group cannot make a member of another domain administer that domain).
pub(crate) fn effective_domain_admin(user: &User, groups: &[Group]) -> bool {
    user.domain_admin
        || groups
            .iter()
            .any(|g| g.domain_admin && g.domain == user.domain && g.members.contains(&user.address))
}

impl Directory {
    /// Runs `f` in one store transaction, turning a directory error raised inside into the
    /// returned error (the transaction is rolled back).
    pub(crate) fn txn<T>(&self, mut f: impl FnMut(&mut Tx<'_>) -> DirResult<T>) -> DirResult<T> {
        let mut out: Option<DirResult<T>> = None;
        let r = self.meta.transact(&mut |t: &mut dyn DocTxn| {
            out = None;
            let mut tx = Tx(t);
            match f(&mut tx) {
                Ok(v) => {
                    out = Some(Ok(v));
                    Ok(())
                }
                Err(DirectoryError::Store(e)) => Err(e),
                Err(e) => {
                    let msg = e.to_string();
                    out = Some(Err(e));
                    Err(StoreError::Aborted(msg))
                }
            }
        });
        match (r, out) {
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Err(StoreError::Aborted(_)), Some(Err(e))) => Err(e),
            (Err(e), _) => Err(DirectoryError::Store(e)),
            (Ok(()), _) => Err(DirectoryError::Store(StoreError::Backend(
                "transaction committed without running".to_string(),
            ))),
        }
    }

    /// Read access to the store outside transactions.
    pub(crate) fn reader(&self) -> StoreDocs<'_> {
        StoreDocs(self.meta.as_ref())
    }
}

/// Refuses a change that leaves no account with full admin rights while there was one
/// (guide §8.1: the admin can be removed once another read/write admin exists).
pub(crate) fn guard_last_admin(
    tx: &mut Tx<'_>,
    before: &BTreeSet<String>,
    action: &'static str,
    object: &str,
) -> DirResult<()> {
    if !before.is_empty() && full_admins(tx)?.is_empty() {
        return Err(DirectoryError::LastAdmin {
            action,
            object: object.to_string(),
        });
    }
    Ok(())
}

/// Checks a login name or group name: ASCII letters, digits, `.`, `-`, `_` (guide §8.2: no
/// diacritics or special symbols), not starting or ending with `.`.
pub(crate) fn valid_local_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= keel_core::address::MAX_LOCAL_PART_OCTETS
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Normalises an address given as a local part or a full address that must belong to `domain`
/// (or one of its domain aliases); returns `local@domain`, lower-case.
pub(crate) fn address_in_domain(d: &mut dyn Docs, input: &str, domain: &str) -> DirResult<String> {
    let input = input.trim();
    let (local, dom) = match input.rsplit_once('@') {
        Some((l, dm)) => {
            let a = keel_core::address::Address::parse(input)
                .map_err(|e| DirectoryError::InvalidAddress(e.to_string()))?;
            let real = real_domain(d, dm)?.map(|(r, _)| r);
            if real.as_deref() != Some(domain) {
                return Err(DirectoryError::AddressOutsideDomain {
                    address: a.key(),
                    domain: domain.to_string(),
                });
            }
            (l.to_lowercase(), domain.to_string())
        }
        None => (input.to_lowercase(), domain.to_string()),
    };
    if !valid_local_name(&local) {
        return Err(DirectoryError::InvalidAddress(format!(
            "'{input}' is not a valid address: use only letters a-z, digits, '.', '-' and '_' \
             before '@'"
        )));
    }
    Ok(format!("{local}@{dom}"))
}

/// Reserves addresses for an owner: refuses any taken by another owner.
pub(crate) fn claim_addresses(
    tx: &mut Tx<'_>,
    addresses: &[String],
    owner: &AddressOwner,
    domain: &str,
) -> DirResult<()> {
    for a in addresses {
        if let Some(o) = get::<AddressOwner>(tx, ADDRESS, a)?
            && o != *owner
        {
            return Err(DirectoryError::AddressTaken {
                address: a.clone(),
                owner_kind: o.kind,
                owner: o.key,
            });
        }
        tx.put(ADDRESS, a, domain, owner)?;
    }
    Ok(())
}

/// Releases addresses owned by `owner`.
pub(crate) fn release_addresses(
    tx: &mut Tx<'_>,
    addresses: &[String],
    owner: &AddressOwner,
) -> DirResult<()> {
    for a in addresses {
        if get::<AddressOwner>(tx, ADDRESS, a)?.as_ref() == Some(owner) {
            tx.delete(ADDRESS, a)?;
        }
    }
    Ok(())
}

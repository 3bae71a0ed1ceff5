//! Users (guide §8).

use keel_core::address::Address;

use crate::Directory;
use crate::docs::{
    self, ADDRESS, AddressOwner, DOMAIN, Docs, GROUP, LOCKOUT, USER, USERSTAT, UserDoc,
    address_in_domain, claim_addresses, guard_last_admin, release_addresses, valid_local_name,
};
use crate::error::{DirResult, DirectoryError};
use crate::model::{
    AdminRights, Domain, Forwarding, Group, LoginStats, MailboxDisposal, NewUser, RemovedUser,
    User, UserPatch,
};
use crate::password::{self, ScramCredentials, StoredSecret};

/// Parses `login@domain` of a new user: returns (login, domain), lower-case.
fn parse_user_address(s: &str) -> DirResult<(String, String)> {
    let a = Address::parse(s).map_err(|e| DirectoryError::InvalidAddress(e.to_string()))?;
    let login = a.local.to_lowercase();
    if !valid_local_name(&login) {
        return Err(DirectoryError::InvalidLoginName(a.local));
    }
    Ok((login, a.domain))
}

/// Validates forwarding targets: full addresses, or local names of the user's domain.
fn norm_forwarding(f: &Forwarding, domain: &str) -> DirResult<Forwarding> {
    let mut targets = Vec::new();
    for t in &f.targets {
        let t = t.trim();
        let key = if t.contains('@') {
            Address::parse(t)
                .map_err(|e| DirectoryError::InvalidAddress(e.to_string()))?
                .key()
        } else if valid_local_name(&t.to_lowercase()) {
            format!("{}@{domain}", t.to_lowercase())
        } else {
            return Err(DirectoryError::InvalidAddress(format!(
                "'{t}' is not a valid forwarding address"
            )));
        };
        if !targets.contains(&key) {
            targets.push(key);
        }
    }
    Ok(Forwarding {
        targets,
        keep_local_copy: f.keep_local_copy,
    })
}

impl Directory {
    /// Resolves a user given as `login@domain` (a domain alias maps to its domain) or as a
    /// bare login of the primary domain; returns the user key.
    pub(crate) fn user_key(&self, d: &mut dyn Docs, s: &str) -> DirResult<String> {
        let s = s.trim().to_lowercase();
        let key = match s.rsplit_once('@') {
            Some((l, dm)) => match docs::real_domain(d, dm)? {
                Some((real, _)) => format!("{l}@{real}"),
                None => return Err(DirectoryError::NoSuchUser(s)),
            },
            None => match docs::primary_domain(d)? {
                Some(p) => format!("{s}@{p}"),
                None => return Err(DirectoryError::NoSuchUser(s)),
            },
        };
        Ok(key)
    }

    fn user_doc(&self, d: &mut dyn Docs, s: &str) -> DirResult<UserDoc> {
        let key = self.user_key(d, s)?;
        docs::get_user(d, &key)?.ok_or(DirectoryError::NoSuchUser(key))
    }

    /// Adds a user (guide §8.2). The domain must exist; the user owns `login@domain`
    /// automatically (requirements-1 §0.7); the domain's user limit is enforced (§7.2).
    pub fn add_user(&self, new: NewUser) -> DirResult<User> {
        let (login, domain) = parse_user_address(&new.address)?;
        let key = format!("{login}@{domain}");
        let secret = match &new.password {
            Some(pw) => {
                password::check_password_policy(pw, &login, &key)?;
                password::new_secret(pw, &self.hash_params)?
            }
            None => StoredSecret::default(),
        };
        self.txn(|tx| {
            let dom = docs::get::<Domain>(tx, DOMAIN, &domain)?
                .ok_or_else(|| DirectoryError::NoSuchDomain(domain.clone()))?;
            if docs::get_user(tx, &key)?.is_some() {
                return Err(DirectoryError::UserExists(key.clone()));
            }
            if dom.user_limit > 0
                && docs::count(tx, USER, Some(&domain))? >= dom.user_limit as usize
            {
                return Err(DirectoryError::UserLimitReached {
                    domain: domain.clone(),
                    limit: dom.user_limit,
                });
            }
            let mut extra = Vec::new();
            for a in &new.addresses {
                let a = address_in_domain(tx, a, &domain)?;
                if a != key && !extra.contains(&a) {
                    extra.push(a);
                }
            }
            let owner = AddressOwner {
                kind: "user".into(),
                key: key.clone(),
            };
            let mut all = vec![key.clone()];
            all.extend(extra.iter().cloned());
            claim_addresses(tx, &all, &owner, &domain)?;
            let user = User {
                address: key.clone(),
                login: login.clone(),
                domain: domain.clone(),
                full_name: new.full_name.clone(),
                description: new.description.clone(),
                addresses: extra,
                forwarding: norm_forwarding(&new.forwarding, &domain)?,
                quota: new.quota,
                outgoing_size_limit: new.outgoing_size_limit,
                local_domain_only: new.local_domain_only,
                enabled: new.enabled,
                admin_rights: new.admin_rights,
                public_folder_admin: new.public_folder_admin,
                domain_admin: new.domain_admin,
                has_password: false,
                cleanout_deleted_items_days: None,
                cleanout_junk_days: None,
            };
            tx.put(
                USER,
                &key,
                &domain,
                &UserDoc {
                    user,
                    secret: secret.clone(),
                },
            )
        })?;
        self.get_user(&key)
    }

    /// One user, by `login@domain` (or a bare login of the primary domain).
    pub fn get_user(&self, address: &str) -> DirResult<User> {
        let mut r = self.reader();
        Ok(self.user_doc(&mut r, address)?.public())
    }

    /// Users of one domain, or of every domain, ordered by address.
    pub fn list_users(&self, domain: Option<&str>) -> DirResult<Vec<User>> {
        let mut r = self.reader();
        let parent = match domain {
            Some(d) => Some(
                docs::real_domain(&mut r, d)?
                    .ok_or_else(|| DirectoryError::NoSuchDomain(d.to_lowercase()))?
                    .0,
            ),
            None => None,
        };
        Ok(docs::list::<UserDoc>(&mut r, USER, parent.as_deref())?
            .into_iter()
            .map(UserDoc::public)
            .collect())
    }

    /// Changes a user. Refuses to disable or demote the last account with full admin rights.
    pub fn set_user(&self, address: &str, patch: UserPatch) -> DirResult<User> {
        let key = self.user_key(&mut self.reader(), address)?;
        let new_secret = match &patch.password {
            Some(pw) => {
                let login = key.split('@').next().unwrap_or_default();
                password::check_password_policy(pw, login, &key)?;
                Some(password::new_secret(pw, &self.hash_params)?)
            }
            None => None,
        };
        self.txn(|tx| {
            let before = docs::full_admins(tx)?;
            let mut doc =
                docs::get_user(tx, &key)?.ok_or_else(|| DirectoryError::NoSuchUser(key.clone()))?;
            let domain = doc.user.domain.clone();
            let u = &mut doc.user;
            if let Some(v) = &patch.full_name {
                u.full_name = v.clone();
            }
            if let Some(v) = &patch.description {
                u.description = v.clone();
            }
            if let Some(v) = &patch.forwarding {
                u.forwarding = norm_forwarding(v, &domain)?;
            }
            if let Some(v) = patch.quota {
                u.quota = v;
            }
            if let Some(v) = patch.outgoing_size_limit {
                u.outgoing_size_limit = v;
            }
            if let Some(v) = patch.local_domain_only {
                u.local_domain_only = v;
            }
            if let Some(v) = patch.enabled {
                u.enabled = v;
            }
            if let Some(v) = patch.admin_rights {
                u.admin_rights = v;
            }
            if let Some(v) = patch.public_folder_admin {
                u.public_folder_admin = v;
            }
            if let Some(v) = patch.domain_admin {
                u.domain_admin = v;
            }
            // guide §7.5, §8.2 step 8: the user's clean-out ages override the domain's.
            for (key, new, field) in [
                (
                    crate::model::CLEANOUT_DELETED_ITEMS_DAYS,
                    patch.cleanout_deleted_items_days,
                    &mut u.cleanout_deleted_items_days,
                ),
                (
                    crate::model::CLEANOUT_JUNK_DAYS,
                    patch.cleanout_junk_days,
                    &mut u.cleanout_junk_days,
                ),
            ] {
                if let Some(v) = new {
                    if let Some(days) = v {
                        crate::domain::check_days(
                            key,
                            Some(u64::from(days)),
                            crate::model::MAX_CLEANOUT_DAYS,
                        )?;
                    }
                    *field = v;
                }
            }
            if let Some(addrs) = &patch.addresses {
                let owner = AddressOwner {
                    kind: "user".into(),
                    key: key.clone(),
                };
                let mut extra = Vec::new();
                for a in addrs {
                    let a = address_in_domain(tx, a, &domain)?;
                    if a != key && !extra.contains(&a) {
                        extra.push(a);
                    }
                }
                let old: Vec<String> = doc
                    .user
                    .addresses
                    .iter()
                    .filter(|a| !extra.contains(a))
                    .cloned()
                    .collect();
                release_addresses(tx, &old, &owner)?;
                claim_addresses(tx, &extra, &owner, &domain)?;
                doc.user.addresses = extra;
            }
            if let Some(s) = &new_secret {
                doc.secret = s.clone();
            }
            doc.user.has_password = false;
            tx.put(USER, &key, &domain, &doc)?;
            let action = if patch.enabled == Some(false) {
                "disable"
            } else {
                "demote"
            };
            guard_last_admin(tx, &before, action, &key)
        })?;
        self.get_user(&key)
    }

    /// Removes a user and disposes of the mailbox (guide §8.5). With
    /// [`MailboxDisposal::Delete`] the returned blobs are no longer referenced: the caller
    /// deletes them from the blob store. Refused for the last account with full admin rights.
    pub fn remove_user(&self, address: &str, disposal: MailboxDisposal) -> DirResult<RemovedUser> {
        let key = self.user_key(&mut self.reader(), address)?;
        let target = match &disposal {
            MailboxDisposal::MoveTo(t) => {
                let t = self.user_key(&mut self.reader(), t)?;
                if t == key {
                    return Err(DirectoryError::Invalid(format!(
                        "cannot move the mailbox of {key} to itself"
                    )));
                }
                Some(t)
            }
            _ => None,
        };
        self.txn(|tx| {
            let before = docs::full_admins(tx)?;
            let doc =
                docs::get_user(tx, &key)?.ok_or_else(|| DirectoryError::NoSuchUser(key.clone()))?;
            if let Some(t) = &target
                && docs::get_user(tx, t)?.is_none()
            {
                return Err(DirectoryError::NoSuchUser(t.clone()));
            }
            let owner = AddressOwner {
                kind: "user".into(),
                key: key.clone(),
            };
            let mut all = vec![key.clone()];
            all.extend(doc.user.addresses.iter().cloned());
            release_addresses(tx, &all, &owner)?;
            for mut g in docs::list::<Group>(tx, GROUP, None)? {
                if g.members.contains(&key) {
                    g.members.retain(|m| *m != key);
                    let gk = g.key();
                    let parent = g.domain.clone();
                    tx.put(GROUP, &gk, &parent, &g)?;
                }
            }
            for l in tx.list_raw(LOCKOUT, Some(&key))? {
                tx.delete(LOCKOUT, &l.key)?;
            }
            tx.delete(USERSTAT, &key)?;
            tx.delete(USER, &key)?;
            guard_last_admin(tx, &before, "remove", &key)
        })?;
        let mut out = RemovedUser::default();
        match disposal {
            MailboxDisposal::Delete => {
                out.orphaned_blobs = self.meta.delete_account_data(&key)?;
            }
            MailboxDisposal::Keep => {}
            MailboxDisposal::MoveTo(_) => {
                if let Some(t) = target {
                    // guide §8.5: "Deleted mailbox — user_name@domain" under the target's root.
                    let prefix = format!("Deleted mailbox \u{2014} {key}");
                    self.meta.move_account_folders(&key, &t, &prefix)?;
                    out.moved_to = Some(prefix);
                }
            }
        }
        Ok(out)
    }

    /// Replaces a user's password by an imported hash (bcrypt, sha-crypt or Argon2). The SCRAM
    /// keys are dropped until the next successful login re-hashes the password.
    pub fn set_password_hash(&self, address: &str, imported_hash: &str) -> DirResult<()> {
        let hash = imported_hash.trim().to_string();
        if password::hash_kind(&hash).is_none() {
            return Err(DirectoryError::UnsupportedHash);
        }
        if password::verify_password("", &hash) == password::Verification::Unsupported {
            return Err(DirectoryError::UnsupportedHash);
        }
        let key = self.user_key(&mut self.reader(), address)?;
        self.txn(|tx| {
            let mut doc =
                docs::get_user(tx, &key)?.ok_or_else(|| DirectoryError::NoSuchUser(key.clone()))?;
            doc.secret = StoredSecret {
                hash: Some(hash.clone()),
                scram_sha256: None,
            };
            let parent = doc.user.domain.clone();
            tx.put(USER, &key, &parent, &doc)
        })
    }

    /// The user's effective admin rights: the higher of its own and its groups' (guide §9.1).
    pub fn effective_admin_rights(&self, address: &str) -> DirResult<AdminRights> {
        let mut r = self.reader();
        let doc = self.user_doc(&mut r, address)?;
        let groups = docs::list::<Group>(&mut r, GROUP, None)?;
        Ok(docs::effective_rights(&doc.user, &groups))
    }

    /// Whether the user may administer its own domain (guide §32.2): its own flag or a
    /// same-domain group's.
    pub fn effective_domain_admin(&self, address: &str) -> DirResult<bool> {
        let mut r = self.reader();
        let doc = self.user_doc(&mut r, address)?;
        let groups = docs::list::<Group>(&mut r, GROUP, None)?;
        Ok(docs::effective_domain_admin(&doc.user, &groups))
    }

    /// The outgoing message size limit that applies to a user in bytes, 0 = none: the user's
    /// own limit takes precedence over the domain's (guide §8.2 step 8, §18.1.3).
    pub fn effective_outgoing_limit(&self, address: &str) -> DirResult<u64> {
        let mut r = self.reader();
        let doc = self.user_doc(&mut r, address)?;
        if doc.user.outgoing_size_limit > 0 {
            return Ok(doc.user.outgoing_size_limit);
        }
        Ok(docs::get::<Domain>(&mut r, DOMAIN, &doc.user.domain)?
            .map(|d| d.outgoing_size_limit)
            .unwrap_or(0))
    }

    /// Login statistics of a user (guide §8.7).
    pub fn login_stats(&self, address: &str) -> DirResult<LoginStats> {
        let mut r = self.reader();
        let key = self.user_key(&mut r, address)?;
        Ok(docs::get::<LoginStats>(&mut r, USERSTAT, &key)?.unwrap_or_default())
    }

    /// SCRAM-SHA-256 credentials for a login name (bare name or `login@domain`, resolved like
    /// a login, guide §7.2.1/§7.7), for the SASL layer. `None` when the user does not exist or
    /// has no SCRAM keys (e.g. an imported hash not yet upgraded by a PLAIN login).
    pub fn scram_credentials(
        &self,
        login: &str,
        local_ip: Option<std::net::IpAddr>,
    ) -> DirResult<Option<ScramCredentials>> {
        let mut r = self.reader();
        let Some(key) = crate::auth::login_to_key(&mut r, login, local_ip)? else {
            return Ok(None);
        };
        Ok(docs::get_user(&mut r, &key)?.and_then(|d| d.secret.scram_sha256))
    }

    /// Who owns an address (user or group key), after mapping domain aliases.
    pub fn address_owner(&self, address: &str) -> DirResult<Option<(String, String)>> {
        let mut r = self.reader();
        let Some((l, d)) = address
            .trim()
            .to_lowercase()
            .rsplit_once('@')
            .map(|(l, d)| (l.to_string(), d.to_string()))
        else {
            return Ok(None);
        };
        let Some((real, _)) = docs::real_domain(&mut r, &d)? else {
            return Ok(None);
        };
        Ok(
            docs::get::<AddressOwner>(&mut r, ADDRESS, &format!("{l}@{real}"))?
                .map(|o| (o.kind, o.key)),
        )
    }
}

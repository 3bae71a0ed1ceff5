//! Special-use folders (RFC 6154; guide §7.5 names; issue 4): Sent, Drafts, Trash, Junk
//! and Archive.
//!
//! Which folder of an account has a use is decided in this order, so that nothing moves
//! under a user's feet when an administrator renames a domain's defaults later:
//! 1. the account's own choice, kept in one document per account ([`SPECIAL_USE_KIND`]):
//!    set for the folders created with the account, by IMAP `CREATE … (USE (…))`
//!    (RFC 6154 §3), and kept across RENAME and DELETE of the folder;
//! 2. the domain's name for the use (`folder_names` domain setting), when that folder exists;
//! 3. a recognised name of the use that exists (the guide's `Sent Items`, `Deleted Items`,
//!    `Junk E-mail`, and the common `Sent`, `Trash`, `Junk`, …);
//! 4. the domain's name (or the guide's), to be created when first needed.
//!
//! Delivery of tagged spam, the clean-out, deleted-item recovery and spam training use the
//! resolved names; IMAP LIST shows the attributes.

use keel_directory::Domain;
use serde_json::Value;

use crate::folders::{HIERARCHY_SEPARATOR, canonical_name};
use crate::{MailResult, Mailboxes, account_key};

/// Document kind of an account's special-use choices (a JSON array of `[name, attribute]`
/// pairs; the key is the account).
pub const SPECIAL_USE_KIND: &str = "imap_special_use";

/// A special use of a folder (RFC 6154 §2) that Keel gives every account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecialUse {
    /// `\Sent`.
    Sent,
    /// `\Drafts`.
    Drafts,
    /// `\Trash`: Deleted Items (guide §7.4, §7.5).
    Trash,
    /// `\Junk`: Junk E-mail (guide §13.1, §13.4).
    Junk,
    /// `\Archive`.
    Archive,
}

impl SpecialUse {
    /// Every use, in the order new accounts get their folders.
    pub const ALL: [Self; 5] = [
        Self::Sent,
        Self::Drafts,
        Self::Trash,
        Self::Junk,
        Self::Archive,
    ];

    /// The RFC 6154 attribute.
    pub fn attribute(self) -> &'static str {
        match self {
            Self::Sent => "\\Sent",
            Self::Drafts => "\\Drafts",
            Self::Trash => "\\Trash",
            Self::Junk => "\\Junk",
            Self::Archive => "\\Archive",
        }
    }

    /// The use of an attribute (case-insensitive, RFC 9051 §9 atoms).
    pub fn from_attribute(attr: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|u| u.attribute().eq_ignore_ascii_case(attr))
    }

    /// The key of the use in the domain's `folder_names` setting.
    pub fn key(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Drafts => "drafts",
            Self::Trash => "trash",
            Self::Junk => "junk",
            Self::Archive => "archive",
        }
    }

    /// The use of a `folder_names` key.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.key() == key)
    }

    /// The default folder name: the guide's (§7.5), `Archive` for the archive.
    pub fn default_name(self) -> &'static str {
        self.recognised_names()[0]
    }

    /// Top-level names recognised as this use when the account made no choice: the
    /// guide's name first, then the names other servers and clients use.
    pub fn recognised_names(self) -> &'static [&'static str] {
        match self {
            Self::Sent => &["Sent Items", "Sent", "Sent Messages"],
            Self::Drafts => &["Drafts"],
            Self::Trash => &["Deleted Items", "Trash", "Deleted Messages"],
            Self::Junk => &["Junk E-mail", "Junk", "Spam"],
            Self::Archive => &["Archive"],
        }
    }

    /// The use a recognised name stands for.
    pub fn of_recognised_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|u| u.recognised_names().contains(&name))
    }

    /// The folder name a domain gives this use (its setting, else the default).
    pub fn name_in(self, domain: Option<&Domain>) -> String {
        domain
            .and_then(|d| d.folder_name(self.key()))
            .map_or_else(|| self.default_name().to_owned(), canonical_name)
    }
}

/// The special-use folders of one account, resolved (module notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialFolders {
    /// The resolved folder name of each use, in [`SpecialUse::ALL`] order.
    names: [String; 5],
    /// The account's explicit choices (name, use).
    chosen: Vec<(String, SpecialUse)>,
    /// The domain's names, in [`SpecialUse::ALL`] order.
    domain: [String; 5],
}

impl SpecialFolders {
    /// The folder name of a use.
    pub fn name(&self, u: SpecialUse) -> &str {
        &self.names[u as usize]
    }

    /// The uses of a folder name (RFC 6154 allows several folders with one use: a folder
    /// chosen by the account, the resolved one, and any folder with the domain's or a
    /// recognised name, unless the account chose another use for it).
    pub fn uses_of(&self, name: &str) -> Vec<SpecialUse> {
        let chosen: Vec<SpecialUse> = self
            .chosen
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, u)| *u)
            .collect();
        if !chosen.is_empty() {
            return chosen;
        }
        SpecialUse::ALL
            .into_iter()
            .filter(|u| {
                self.names[*u as usize] == name
                    || self.domain[*u as usize] == name
                    || u.recognised_names().contains(&name)
            })
            .collect()
    }
}

/// Reads an account's explicit choices.
fn parse_choices(body: &Value) -> Vec<(String, SpecialUse)> {
    body.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|pair| {
                    let p = pair.as_array()?;
                    Some((
                        p.first()?.as_str()?.to_owned(),
                        SpecialUse::from_attribute(p.get(1)?.as_str()?)?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn choices_value(choices: &[(String, SpecialUse)]) -> Value {
    Value::Array(
        choices
            .iter()
            .map(|(n, u)| Value::Array(vec![n.clone().into(), u.attribute().into()]))
            .collect(),
    )
}

impl Mailboxes {
    /// The domain of a user account; `None` for public-folder owners and unknown users.
    fn account_domain(&self, account: &str) -> MailResult<Option<Domain>> {
        if account.starts_with('#') {
            return Ok(None);
        }
        let dir = &self.inner.directory;
        let domain = match dir.get_user(account) {
            Ok(u) => u.domain,
            Err(keel_directory::DirectoryError::NoSuchUser(_)) => match account.rsplit_once('@') {
                Some((_, d)) => d.to_owned(),
                None => return Ok(None),
            },
            Err(e) => return Err(e.into()),
        };
        match dir.get_domain(&domain) {
            Ok(d) => Ok(Some(d)),
            Err(keel_directory::DirectoryError::NoSuchDomain(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The account's explicit special-use choices (name, use).
    pub fn special_use_choices(&self, user: &str) -> MailResult<Vec<(String, SpecialUse)>> {
        Ok(self
            .inner
            .meta
            .get_doc(SPECIAL_USE_KIND, &account_key(user))?
            .map(|d| parse_choices(&d.body))
            .unwrap_or_default())
    }

    /// Sets the uses the account chose for folder `name` (RFC 6154 §3 CREATE); an empty
    /// list removes the choice.
    pub fn set_special_use(&self, user: &str, name: &str, uses: &[SpecialUse]) -> MailResult<()> {
        let name = canonical_name(name);
        self.update_choices(user, |c| {
            c.retain(|(n, _)| *n != name);
            c.extend(uses.iter().map(|u| (name.clone(), *u)));
        })
    }

    /// Follows a folder rename (`from` and its inferiors) in the account's choices.
    pub(crate) fn rename_special_uses(&self, user: &str, from: &str, to: &str) -> MailResult<()> {
        let prefix = format!("{from}{HIERARCHY_SEPARATOR}");
        if !self
            .special_use_choices(user)?
            .iter()
            .any(|(n, _)| n == from || n.starts_with(&prefix))
        {
            return Ok(());
        }
        self.update_choices(user, |c| {
            for (n, _) in c.iter_mut() {
                if n == from {
                    *n = to.to_owned();
                } else if let Some(rest) = n.strip_prefix(&prefix) {
                    *n = format!("{to}{HIERARCHY_SEPARATOR}{rest}");
                }
            }
        })
    }

    /// Drops the choices of a deleted folder (a new folder with its name starts plain).
    pub(crate) fn forget_special_uses(&self, user: &str, name: &str) -> MailResult<()> {
        if !self
            .special_use_choices(user)?
            .iter()
            .any(|(n, _)| n == name)
        {
            return Ok(());
        }
        self.update_choices(user, |c| c.retain(|(n, _)| n != name))
    }

    fn update_choices(
        &self,
        user: &str,
        f: impl Fn(&mut Vec<(String, SpecialUse)>),
    ) -> MailResult<()> {
        let account = account_key(user);
        self.inner.meta.transact(&mut |tx| {
            let mut choices = tx
                .get(SPECIAL_USE_KIND, &account)?
                .map(|d| parse_choices(&d.body))
                .unwrap_or_default();
            f(&mut choices);
            choices.dedup();
            tx.put(SPECIAL_USE_KIND, &account, "", &choices_value(&choices))?;
            Ok(())
        })?;
        Ok(())
    }

    /// The account's special-use folders, resolved (module notes).
    pub fn special_folders(&self, user: &str) -> MailResult<SpecialFolders> {
        let account = account_key(user);
        let domain = self.account_domain(&account)?;
        let existing: Vec<String> = self
            .inner
            .meta
            .list_folders(&account)?
            .into_iter()
            .map(|f| f.name)
            .collect();
        let chosen = self.special_use_choices(&account)?;
        Ok(resolve(&existing, chosen, domain.as_ref()))
    }

    /// The folder name of one special use of an account.
    pub fn special_folder(&self, user: &str, u: SpecialUse) -> MailResult<String> {
        Ok(self.special_folders(user)?.name(u).to_owned())
    }
}

/// The resolution of the module notes over the account's folder names.
pub(crate) fn resolve(
    existing: &[String],
    chosen: Vec<(String, SpecialUse)>,
    domain: Option<&Domain>,
) -> SpecialFolders {
    let exists = |n: &str| existing.iter().any(|e| e == n);
    let domain_names = SpecialUse::ALL.map(|u| u.name_in(domain));
    let names = SpecialUse::ALL.map(|u| {
        if let Some((n, _)) = chosen.iter().find(|(n, c)| *c == u && exists(n)) {
            return n.clone();
        }
        let mine = &domain_names[u as usize];
        if exists(mine) {
            return mine.clone();
        }
        let claimed = |n: &str| chosen.iter().any(|(c, cu)| c == n && *cu != u);
        if let Some(n) = u
            .recognised_names()
            .iter()
            .find(|n| exists(n) && !claimed(n))
        {
            return (*n).to_owned();
        }
        mine.clone()
    });
    SpecialFolders {
        names,
        chosen,
        domain: domain_names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_directory::FOLDER_NAMES;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn domain(folder_names: Value) -> Domain {
        let mut settings = std::collections::BTreeMap::new();
        settings.insert(FOLDER_NAMES.to_owned(), folder_names);
        Domain {
            name: "example.com".into(),
            description: String::new(),
            primary: true,
            user_limit: 0,
            aliases: Vec::new(),
            outgoing_size_limit: 0,
            forwarding: None,
            bound_ip: None,
            settings,
        }
    }

    #[test]
    fn guide_names_by_default() {
        let s = resolve(&[], Vec::new(), None);
        assert_eq!(s.name(SpecialUse::Sent), "Sent Items");
        assert_eq!(s.name(SpecialUse::Trash), "Deleted Items");
        assert_eq!(s.name(SpecialUse::Junk), "Junk E-mail");
        assert_eq!(s.name(SpecialUse::Archive), "Archive");
        assert_eq!(s.uses_of("Trash"), vec![SpecialUse::Trash]);
        assert!(s.uses_of("Projects").is_empty());
    }

    #[test]
    fn domain_names_apply_and_existing_guide_folders_keep_their_use() {
        let d = domain(serde_json::json!({"sent": "Sent", "junk": "Spam", "trash": "Trash"}));
        let fresh = resolve(&names(&["INBOX"]), Vec::new(), Some(&d));
        assert_eq!(fresh.name(SpecialUse::Sent), "Sent");
        assert_eq!(fresh.name(SpecialUse::Junk), "Spam");
        assert_eq!(fresh.name(SpecialUse::Drafts), "Drafts");
        // An older account with the guide's folders keeps them.
        let old = resolve(
            &names(&["INBOX", "Sent Items", "Junk E-mail", "Deleted Items"]),
            Vec::new(),
            Some(&d),
        );
        assert_eq!(old.name(SpecialUse::Sent), "Sent Items");
        assert_eq!(old.name(SpecialUse::Junk), "Junk E-mail");
        assert_eq!(old.uses_of("Sent Items"), vec![SpecialUse::Sent]);
        assert_eq!(old.uses_of("Sent"), vec![SpecialUse::Sent]);
    }

    #[test]
    fn the_accounts_choice_wins_and_claims_the_name() {
        let chosen = vec![
            ("Papierkorb".to_owned(), SpecialUse::Trash),
            ("Junk".to_owned(), SpecialUse::Archive),
        ];
        let s = resolve(
            &names(&["INBOX", "Papierkorb", "Deleted Items", "Junk"]),
            chosen,
            None,
        );
        assert_eq!(s.name(SpecialUse::Trash), "Papierkorb");
        assert_eq!(s.name(SpecialUse::Archive), "Junk");
        // `Junk` is the account's archive, so junk mail goes to the guide's name.
        assert_eq!(s.name(SpecialUse::Junk), "Junk E-mail");
        assert_eq!(s.uses_of("Junk"), vec![SpecialUse::Archive]);
    }

    #[test]
    fn a_choice_of_a_missing_folder_falls_back() {
        let chosen = vec![("Gone".to_owned(), SpecialUse::Sent)];
        let s = resolve(&names(&["INBOX", "Sent"]), chosen, None);
        assert_eq!(s.name(SpecialUse::Sent), "Sent");
    }
}

//! LIST (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE
//! RFC 6154 §2, CHILDREN RFC 3348), LSUB (RFC 3501 §6.3.9) and NAMESPACE (RFC 2342).

use keel_mail::{Folder, FolderKind, HIERARCHY_SEPARATOR, OTHER_USERS_PREFIX, PUBLIC_PREFIX};

use crate::codec::{
    Data, ListCommand, ListData, ListReturnOption, ListSelectOption, MailboxName, NamespaceDesc,
};
use crate::server::docs;
use crate::server::{CmdResult, Session, ok};

/// Wildcard match (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// hierarchy separator.
pub(crate) fn wildmatch(pat: &[char], name: &[char]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => {
            (0..=name.len()).any(|i| wildmatch(rest, name.get(i..).unwrap_or_default()))
        }
        Some(('%', rest)) => {
            for i in 0..=name.len() {
                if wildmatch(rest, name.get(i..).unwrap_or_default()) {
                    return true;
                }
                if name.get(i) == Some(&HIERARCHY_SEPARATOR) {
                    return false;
                }
            }
            false
        }
        Some((c, rest)) => {
            name.first() == Some(c) && wildmatch(rest, name.get(1..).unwrap_or_default())
        }
    }
}

/// The full pattern: reference + pattern, with `INBOX` canonical in any case (RFC 9051 §5.1).
fn full_pattern(reference: &str, pattern: &str) -> Vec<char> {
    let mut p = format!("{reference}{pattern}");
    if p.len() >= 5
        && p.get(..5).is_some_and(|h| h.eq_ignore_ascii_case("INBOX"))
        && p.get(5..6).is_none_or(|n| n == "/" || n == "*" || n == "%")
    {
        p.replace_range(..5, "INBOX");
    }
    p.chars().collect()
}

fn matches_any(patterns: &[Vec<char>], name: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    patterns.iter().any(|p| wildmatch(p, &n))
}

struct Listing {
    /// Own folders, then other accounts' folders the user may see, under their visible
    /// names (keel-mail `acl`: `Other Users/<owner>/…`, `Public Folders/…`).
    folders: Vec<Folder>,
    /// Levels above shared folders that are no folder themselves (the namespace roots,
    /// `Other Users/<owner>`): listed `\Noselect` (RFC 9051 §7.3.1).
    virtual_parents: Vec<String>,
    /// Shared folders the user may see but not read (`l` without `r`): no LIST-STATUS.
    unreadable: Vec<i64>,
    subscribed: Vec<String>,
    special: keel_mail::SpecialFolders,
    /// Folders of other accounts (their special uses are their owners').
    shared: Vec<i64>,
}

impl Listing {
    fn has_children(&self, name: &str) -> bool {
        let prefix = format!("{name}{HIERARCHY_SEPARATOR}");
        self.folders.iter().any(|f| f.name.starts_with(&prefix))
    }

    /// RFC 6154 §2 attributes of a personal folder (keel-mail special.rs decides).
    fn special_use(&self, folder: &Folder) -> Vec<String> {
        if self.shared.contains(&folder.id) {
            return Vec::new();
        }
        self.special
            .uses_of(&folder.name)
            .into_iter()
            .map(|u| u.attribute().to_owned())
            .collect()
    }
}

impl Session {
    async fn listing(&self) -> Result<Listing, crate::server::Reply> {
        let user = self.account().unwrap_or_default();
        self.blocking(move |mb| {
            let mut folders: Vec<Folder> = mb
                .folders(&user)?
                .into_iter()
                .filter(|f| f.kind == FolderKind::Mail)
                .collect();
            let mut virtual_parents: Vec<String> = Vec::new();
            let mut unreadable = Vec::new();
            let mut shared = Vec::new();
            for (visible, f, rights) in mb.shared_folders(&user)? {
                shared.push(f.id);
                if !rights.has(keel_mail::Right::Read) {
                    unreadable.push(f.id);
                }
                folders.push(Folder {
                    name: visible.clone(),
                    ..f
                });
                let mut at = visible.as_str();
                while let Some((sup, _)) = at.rsplit_once(HIERARCHY_SEPARATOR) {
                    virtual_parents.push(sup.to_owned());
                    at = sup;
                }
            }
            virtual_parents.sort();
            virtual_parents.dedup();
            virtual_parents.retain(|v| !folders.iter().any(|f| &f.name == v));
            Ok(Listing {
                folders,
                virtual_parents,
                unreadable,
                subscribed: docs::subscriptions(mb, &user)?,
                special: mb.special_folders(&user)?,
                shared,
            })
        })
        .await
    }

    /// RFC 9051 §6.3.9 LIST, with the RFC 5258 extended forms.
    pub(crate) async fn list(&mut self, l: ListCommand) -> CmdResult {
        // RFC 9051 §6.3.9: an empty pattern asks for the delimiter.
        if l.select.is_empty()
            && l.patterns.len() == 1
            && l.patterns.first().is_some_and(String::is_empty)
        {
            let mut d = ListData::new("", &["\\Noselect"]);
            d.mailbox = MailboxName::new("");
            self.data(Data::List(d));
            return ok("LIST completed");
        }
        let listing = self.listing().await?;
        let patterns: Vec<Vec<char>> = l
            .patterns
            .iter()
            .map(|p| full_pattern(&l.reference, p))
            .collect();
        let sel_subscribed = l.select.contains(&ListSelectOption::Subscribed);
        let sel_special = l.select.contains(&ListSelectOption::SpecialUse);
        let recursive = l.select.contains(&ListSelectOption::RecursiveMatch);
        let returns = l.returns.clone().unwrap_or_default();
        let ret_subscribed = sel_subscribed || returns.contains(&ListReturnOption::Subscribed);
        let status_items = returns.iter().find_map(|r| match r {
            ListReturnOption::Status(items) => Some(items.clone()),
            _ => None,
        });
        let mut lines: Vec<(ListData, Option<Folder>)> = Vec::new();
        for f in &listing.folders {
            let subscribed = listing.subscribed.contains(&f.name);
            let mut child_info = Vec::new();
            if !matches_any(&patterns, &f.name) {
                continue;
            }
            if sel_subscribed && !subscribed {
                // RFC 5258 §3.5: RECURSIVEMATCH reports parents of subscribed mailboxes.
                let prefix = format!("{}{HIERARCHY_SEPARATOR}", f.name);
                if recursive && listing.subscribed.iter().any(|s| s.starts_with(&prefix)) {
                    child_info.push("SUBSCRIBED".to_owned());
                } else {
                    continue;
                }
            }
            let special = listing.special_use(f);
            if sel_special && special.is_empty() {
                continue;
            }
            let mut attrs: Vec<String> = Vec::new();
            attrs.push(
                if listing.has_children(&f.name) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                }
                .into(),
            );
            attrs.extend(special);
            if ret_subscribed && subscribed {
                attrs.push("\\Subscribed".into());
            }
            let mut d = ListData::new(MailboxName::new(f.name.clone()), &[]);
            d.attributes = attrs;
            d.child_info = child_info;
            lines.push((d, Some(f.clone())));
        }
        if !sel_subscribed && !sel_special {
            for v in &listing.virtual_parents {
                if matches_any(&patterns, v) {
                    let d = ListData::new(
                        MailboxName::new(v.clone()),
                        &["\\Noselect", "\\HasChildren"],
                    );
                    lines.push((d, None));
                }
            }
            lines.sort_by(|a, b| a.0.mailbox.as_str().cmp(b.0.mailbox.as_str()));
        }
        if sel_subscribed {
            // Subscribed names without a mailbox (RFC 5258 §3.1 \NonExistent).
            for s in &listing.subscribed {
                if listing.folders.iter().any(|f| &f.name == s) || !matches_any(&patterns, s) {
                    continue;
                }
                let d = ListData::new(
                    MailboxName::new(s.clone()),
                    &["\\NonExistent", "\\Subscribed"],
                );
                lines.push((d, None));
            }
        }
        for (d, folder) in lines {
            self.data(Data::List(d));
            // RFC 5819 §2: a STATUS line after each selectable mailbox.
            // RFC 4314 §4: STATUS needs `r`.
            let folder = folder.filter(|f| !listing.unreadable.contains(&f.id));
            if let (Some(items), Some(f)) = (&status_items, folder) {
                let values = self.status_values(&f, items).await?;
                self.data(Data::Status {
                    mailbox: MailboxName::new(f.name.clone()),
                    items: values,
                });
            }
        }
        ok("LIST completed")
    }

    /// RFC 3501 §6.3.9 LSUB.
    pub(crate) async fn lsub(&mut self, reference: String, pattern: String) -> CmdResult {
        let listing = self.listing().await?;
        let pat = vec![full_pattern(&reference, &pattern)];
        for s in &listing.subscribed {
            if !matches_any(&pat, s) {
                continue;
            }
            let attrs: &[&str] = if listing.folders.iter().any(|f| &f.name == s) {
                &[]
            } else {
                &["\\Noselect"]
            };
            self.data(Data::Lsub(ListData::new(
                MailboxName::new(s.clone()),
                attrs,
            )));
        }
        ok("LSUB completed")
    }

    /// RFC 2342 §5 / RFC 9051 §6.3.10: the personal namespace, other users' folders
    /// (`Other Users/<owner>/…`) and the public folders (`Public Folders/…`, guide ch. 26).
    pub(crate) fn namespace(&mut self) -> CmdResult {
        let ns = |prefix: &str| {
            vec![NamespaceDesc {
                prefix: prefix.to_owned(),
                delimiter: Some(HIERARCHY_SEPARATOR),
            }]
        };
        self.data(Data::Namespace {
            personal: ns(""),
            other: ns(OTHER_USERS_PREFIX),
            shared: ns(PUBLIC_PREFIX),
        });
        ok("NAMESPACE completed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        wildmatch(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn wildcards() {
        // RFC 9051 §6.3.9
        assert!(m("*", "A/B/C"));
        assert!(m("%", "Sent Items"));
        assert!(!m("%", "A/B"));
        assert!(m("A/%", "A/B"));
        assert!(!m("A/%", "A/B/C"));
        assert!(m("A*", "A/B/C"));
        assert!(m("INBOX", "INBOX"));
        assert_eq!(
            full_pattern("", "inbox"),
            "INBOX".chars().collect::<Vec<_>>()
        );
        assert_eq!(
            full_pattern("", "inboxes"),
            "inboxes".chars().collect::<Vec<_>>()
        );
    }
}

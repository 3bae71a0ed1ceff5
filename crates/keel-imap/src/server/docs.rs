//! Per-user IMAP state kept in MetaStore documents: subscriptions (RFC 9051 §6.3.7) and
//! special-use attributes set with `CREATE ... (USE (...))` (RFC 6154 §3).
//!
//! Each is one document per user (kind [`SUBSCRIPTIONS_KIND`] / [`SPECIAL_USE_KIND`], key =
//! the user key): a JSON array of names, and a JSON array of `[name, attribute]` pairs.
//! Read-modify-write happens inside one [`keel_mail::MetaStore::transact`].

use keel_mail::{MailResult, Mailboxes};

/// Document kind of a user's subscribed mailbox names.
pub const SUBSCRIPTIONS_KIND: &str = "imap_subscriptions";
/// Document kind of a user's special-use attributes.
pub const SPECIAL_USE_KIND: &str = "imap_special_use";

/// The guide's folder names and the RFC 6154 attribute each stands for; `Archive` is the
/// conventional name of `\Archive`.
pub(crate) fn default_special_use(name: &str) -> Option<&'static str> {
    keel_mail::special_use(name).or(match name {
        "Archive" => Some("\\Archive"),
        _ => None,
    })
}

pub(crate) fn subscriptions(mb: &Mailboxes, user: &str) -> MailResult<Vec<String>> {
    let doc = mb.meta().get_doc(SUBSCRIPTIONS_KIND, user)?;
    Ok(doc
        .and_then(|d| {
            d.body.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default())
}

/// Adds or removes a subscription.
pub(crate) fn set_subscribed(mb: &Mailboxes, user: &str, name: &str, on: bool) -> MailResult<()> {
    update_names(mb, user, |names| {
        names.retain(|n| n != name);
        if on {
            names.push(name.to_owned());
        }
    })
}

/// Renames subscriptions of `from` and its inferiors.
pub(crate) fn rename_subscriptions(
    mb: &Mailboxes,
    user: &str,
    from: &str,
    to: &str,
) -> MailResult<()> {
    update_names(mb, user, |names| {
        for n in names.iter_mut() {
            if n == from {
                *n = to.to_owned();
            } else if let Some(rest) = n.strip_prefix(&format!("{from}/")) {
                *n = format!("{to}/{rest}");
            }
        }
    })
}

fn update_names(mb: &Mailboxes, user: &str, f: impl Fn(&mut Vec<String>)) -> MailResult<()> {
    mb.meta().transact(&mut |tx| {
        let mut names: Vec<String> = tx
            .get(SUBSCRIPTIONS_KIND, user)?
            .and_then(|d| {
                d.body.as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default();
        f(&mut names);
        names.sort();
        names.dedup();
        tx.put(SUBSCRIPTIONS_KIND, user, "", &names.into())?;
        Ok(())
    })?;
    Ok(())
}

/// Special-use attributes set by CREATE (name → attribute).
pub(crate) fn special_uses(mb: &Mailboxes, user: &str) -> MailResult<Vec<(String, String)>> {
    let doc = mb.meta().get_doc(SPECIAL_USE_KIND, user)?;
    Ok(doc
        .and_then(|d| {
            d.body.as_array().map(|a| {
                a.iter()
                    .filter_map(|pair| {
                        let p = pair.as_array()?;
                        Some((
                            p.first()?.as_str()?.to_owned(),
                            p.get(1)?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
        })
        .unwrap_or_default())
}

pub(crate) fn set_special_use(
    mb: &Mailboxes,
    user: &str,
    name: &str,
    attrs: &[String],
) -> MailResult<()> {
    mb.meta().transact(&mut |tx| {
        let mut pairs: Vec<Vec<String>> = tx
            .get(SPECIAL_USE_KIND, user)?
            .and_then(|d| {
                d.body.as_array().map(|a| {
                    a.iter()
                        .filter_map(|p| {
                            let p = p.as_array()?;
                            Some(vec![
                                p.first()?.as_str()?.to_owned(),
                                p.get(1)?.as_str()?.to_owned(),
                            ])
                        })
                        .collect()
                })
            })
            .unwrap_or_default();
        pairs.retain(|p| p.first().map(String::as_str) != Some(name));
        for a in attrs {
            pairs.push(vec![name.to_owned(), a.clone()]);
        }
        tx.put(SPECIAL_USE_KIND, user, "", &pairs.into())?;
        Ok(())
    })?;
    Ok(())
}

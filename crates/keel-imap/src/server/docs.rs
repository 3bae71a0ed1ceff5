//! Per-user IMAP state kept in MetaStore documents: subscriptions (RFC 9051 §6.3.7), one
//! document per user (kind [`SUBSCRIPTIONS_KIND`], key = the user key) holding a JSON array
//! of names; read-modify-write happens inside one [`keel_mail::MetaStore::transact`].
//! Special-use choices (`CREATE … (USE (…))`, RFC 6154 §3) live in keel-mail (special.rs),
//! because delivery and the clean-out use them too.

use keel_mail::{MailResult, Mailboxes};

/// Document kind of a user's subscribed mailbox names.
pub const SUBSCRIPTIONS_KIND: &str = "imap_subscriptions";
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

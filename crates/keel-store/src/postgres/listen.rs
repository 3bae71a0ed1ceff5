//! Cross-node change notifications (DESIGN §4: "change notifications cross nodes with
//! LISTEN/NOTIFY, so an IMAP IDLE on node A sees a delivery on node B").
//!
//! - **Sending**: every transaction that writes change-log rows also runs
//!   `SELECT pg_notify(<channel>, '<account>:<new highest modseq>')`, one per account it
//!   changed, just before `COMMIT` (see `Tx::notify_changes`). PostgreSQL delivers a
//!   NOTIFY only when (and if) its transaction commits, so listeners never hear of a
//!   rolled-back change, and hear of committed ones in commit order.
//! - **Channel**: `keel_changes` when the store's schema is `public`; otherwise
//!   `keel_changes_<first 16 hex digits of BLAKE3(schema)>`, because NOTIFY channels are
//!   per database, not per schema, and two installations on separate schemas of one
//!   database must not hear each other.
//! - **Receiving**: [`PgChangeListener`] holds one dedicated connection (outside the
//!   pool) that ran `LISTEN <channel>`, and waits on it with
//!   `notifications().timeout_iter`. A connection error drops it; the next call
//!   reconnects and listens again.
//! - **Best-effort**: notifications sent while a listener is disconnected are lost. That
//!   is harmless for IMAP IDLE: the account's next change notifies again with a higher
//!   modseq, and every client command re-reads the change log anyway.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use super::{Tx, describe, to_i64};
use crate::{ChangeListener, StoreError, StoreResult};

/// The channel in the `public` schema.
pub const CHANNEL: &str = "keel_changes";

/// The channel of a store whose `current_schema()` is `schema` (see the module notes).
pub(super) fn channel_for(schema: Option<&str>) -> String {
    match schema {
        None | Some("public") => CHANNEL.to_owned(),
        Some(s) => {
            let hash = blake3::hash(s.as_bytes()).to_hex();
            format!("{CHANNEL}_{}", &hash.as_str()[..16])
        }
    }
}

/// `"<account>:<modseq>"`: the account (which may itself hold a colon) is everything
/// before the last colon.
fn payload(account: &str, modseq: u64) -> String {
    format!("{account}:{modseq}")
}

/// Parses a payload; `None` for one this build did not send (ignored, never unwrapped).
pub(super) fn parse_payload(p: &str) -> Option<(String, u64)> {
    let (account, modseq) = p.rsplit_once(':')?;
    let modseq = modseq.parse().ok()?;
    (!account.is_empty()).then(|| (account.to_owned(), modseq))
}

impl Tx<'_> {
    /// Remembers that `account` reached `modseq` in this transaction.
    pub(super) fn changed(&mut self, account: &str, modseq: u64) {
        let e = self.changed.entry(account.to_owned()).or_insert(modseq);
        *e = (*e).max(modseq);
    }

    /// Queues one NOTIFY per changed account (delivered at commit). Run after the
    /// caller's closure succeeded, right before `COMMIT`.
    pub(super) fn notify_changes(&mut self, channel: &str) -> StoreResult<()> {
        let changed = std::mem::take(&mut self.changed);
        for (account, modseq) in changed {
            // Checked like every other value written (no silent wrap-around).
            to_i64(modseq, "modseq")?;
            let p = payload(&account, modseq);
            self.exec("SELECT pg_notify($1, $2)::TEXT", &[&channel, &p])?;
        }
        Ok(())
    }
}

/// The PostgreSQL [`ChangeListener`] (see the module notes).
pub struct PgChangeListener {
    config: postgres::Config,
    channel: String,
    client: Option<Client>,
}

impl std::fmt::Debug for PgChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgChangeListener")
            .field("channel", &self.channel)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl PgChangeListener {
    pub(super) fn new(config: postgres::Config, channel: String) -> Self {
        Self {
            config,
            channel,
            client: None,
        }
    }

    /// The connected client, connecting and listening first if needed.
    fn client(&mut self) -> StoreResult<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut c = self.config.connect(NoTls).map_err(|e| {
                StoreError::Backend(format!("connecting the change listener: {}", describe(&e)))
            })?;
            // A quoted identifier: the channel is matched exactly, as pg_notify sends it.
            let ident = format!("\"{}\"", self.channel.replace('"', "\"\""));
            c.batch_execute(&format!("LISTEN {ident}"))
                .map_err(|e| StoreError::Backend(format!("LISTEN {ident}: {}", describe(&e))))?;
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Backend("change listener not connected".into()))
    }
}

impl ChangeListener for PgChangeListener {
    fn next(&mut self, timeout: Duration) -> StoreResult<Option<(String, u64)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let channel = self.channel.clone();
            let client = self.client()?;
            let got = client.notifications().timeout_iter(left).next();
            match got {
                Ok(Some(n)) => {
                    if n.channel() != channel {
                        continue;
                    }
                    if let Some(change) = parse_payload(n.payload()) {
                        return Ok(Some(change));
                    }
                    // Not ours (another program on the channel): skip it.
                }
                Ok(None) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Err(e) => {
                    // Reconnect on the next call.
                    self.client = None;
                    return Err(StoreError::Backend(format!(
                        "change listener connection failed: {}",
                        describe(&e)
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_bad_ones_are_ignored() {
        assert_eq!(
            parse_payload(&payload("dana@example.com", 42)),
            Some(("dana@example.com".into(), 42))
        );
        assert_eq!(parse_payload("a:b@x:7"), Some(("a:b@x".into(), 7)));
        assert_eq!(parse_payload("nocolon"), None);
        assert_eq!(parse_payload("x@y:-1"), None);
        assert_eq!(parse_payload(":5"), None);
    }

    #[test]
    fn channel_is_per_schema() {
        assert_eq!(channel_for(None), CHANNEL);
        assert_eq!(channel_for(Some("public")), CHANNEL);
        let a = channel_for(Some("tenant_a"));
        assert!(a.starts_with("keel_changes_") && a.len() == CHANNEL.len() + 17);
        assert_ne!(a, channel_for(Some("tenant_b")));
    }
}

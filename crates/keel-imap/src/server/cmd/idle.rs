//! IDLE (RFC 2177, RFC 9051 §6.3.13): the session waits on the account's change
//! notifications (`Mailboxes::subscribe`) and reports changes as they commit.

use keel_net::Conn;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast::error::RecvError;

use crate::codec::{Continue, Event, StatusResponse};
use crate::server::{CmdResult, Flow, Reply, Session, ok};

impl Session {
    pub(crate) async fn idle(&mut self, conn: &mut Conn, _tag: &str) -> Result<CmdResult, Flow> {
        let account = self.account().unwrap_or_default();
        // Subscribe before the first sync so no change falls between the two.
        let mut changes = self.ctx.mailboxes.subscribe(&account);
        self.send(Continue::Text("idling".into()));
        self.sync(true).await;
        self.rx.expect_idle_done();
        let mut buf = vec![0u8; 4096];
        let mut notifications = true;
        loop {
            if !self.flush(conn).await {
                return Err(Flow::Close);
            }
            match self.rx.next() {
                Ok(Some(Event::IdleDone)) => return Ok(ok("IDLE terminated")),
                Ok(Some(_)) => return Ok(Err(Reply::bad("expected DONE"))),
                Err(_) => return Ok(Err(Reply::bad("expected DONE"))),
                Ok(None) => {}
            }
            tokio::select! {
                r = conn.stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Err(Flow::Close),
                    Ok(n) => {
                        if !self.feed_raw(buf.get(..n).unwrap_or_default()) {
                            return Err(Flow::Close);
                        }
                    }
                },
                n = changes.recv(), if notifications => match n {
                    // A lagged receiver only missed wake-ups; the change log has it all.
                    Ok(_) | Err(RecvError::Lagged(_)) => self.sync(true).await,
                    Err(RecvError::Closed) => notifications = false,
                },
                _ = conn.shutdown.changed() => {
                    self.rx.expect_command();
                    self.send(StatusResponse::bye("server shutting down"));
                    self.flush(conn).await;
                    return Err(Flow::Close);
                }
                _ = tokio::time::sleep(self.limits.idle_timeout) => {
                    // RFC 9051 §5.4 autologout also applies while idling.
                    self.rx.expect_command();
                    self.send(StatusResponse::bye("autologout; idle for too long"));
                    self.flush(conn).await;
                    return Err(Flow::Close);
                }
            }
        }
    }
}

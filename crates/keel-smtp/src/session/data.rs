//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): reading the message through the codec's
//! receivers; [`super::deliver`] finishes the transaction.

use keel_net::Conn;
use tokio::io::AsyncReadExt;

use super::{Answer, Flow, READ_CHUNK, Session, write_reply};
use crate::codec::{
    BdatReceiver, BodyError, BodyLimits, BodyProgress, DataReceiver, MAX_TEXT_LINE, SmtpReply,
    replies,
};

impl Session {
    fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_size: self.settings.max_message_size,
            max_line: MAX_TEXT_LINE,
            lenient_lines: self.settings.lenient_line_length,
        }
    }

    pub(super) async fn data(&mut self, conn: &mut Conn) -> Result<Answer, SmtpReply> {
        let Some(tx) = &self.tx else {
            return Err(replies::BAD_SEQUENCE);
        };
        if tx.rcpts.is_empty() {
            // RFC 5321 §3.3: no valid recipients.
            return Err(replies::NO_VALID_RECIPIENTS);
        }
        if self.low_disk() {
            return Err(replies::LOW_DISK.server());
        }
        write_reply(conn, &replies::START_DATA)
            .await
            .map_err(|()| replies::LOCAL_ERROR.closing())?;
        let mut rx = DataReceiver::new(self.body_limits());
        let pending = self.reader.take_buffered();
        let mut progress = rx.push(&pending);
        let mut buf = vec![0u8; READ_CHUNK];
        let timeout = self.settings.data_timeout();
        while progress == BodyProgress::More {
            let n = match tokio::time::timeout(timeout, conn.stream.read(&mut buf)).await {
                Err(_) => return Err(replies::TIMEOUT.closing()),
                Ok(Err(_)) | Ok(Ok(0)) => return Ok(Answer::Done(Flow::Close)),
                Ok(Ok(n)) => n,
            };
            progress = rx.push(&buf[..n]);
        }
        if let BodyProgress::Done { rest } = progress {
            self.reader.push(&rest);
        }
        let body = rx.finish();
        let reply = self.finish_message(body).await;
        // RFC 5321 §4.1.1.4: the transaction ends whatever the outcome.
        self.tx = None;
        reply.map(Answer::Reply)
    }

    pub(super) async fn bdat(
        &mut self,
        conn: &mut Conn,
        chunk: usize,
        last: bool,
    ) -> Result<Answer, SmtpReply> {
        // RFC 3030 §2: the chunk is read even when the command is refused.
        let usable = self.tx.as_ref().is_some_and(|t| !t.rcpts.is_empty());
        let mut rx = BdatReceiver::new(chunk as u64);
        let max = self.settings.max_message_size;
        let mut sink = Vec::new();
        let pending = self.reader.take_buffered();
        let mut progress = rx.push(&pending, Some(&mut sink));
        let mut buf = vec![0u8; READ_CHUNK];
        let timeout = self.settings.data_timeout();
        while progress == BodyProgress::More {
            let n = match tokio::time::timeout(timeout, conn.stream.read(&mut buf)).await {
                Err(_) => return Err(replies::TIMEOUT.closing()),
                Ok(Err(_)) | Ok(Ok(0)) => return Ok(Answer::Done(Flow::Close)),
                Ok(Ok(n)) => n,
            };
            progress = rx.push(&buf[..n], Some(&mut sink));
            if sink.len() > READ_CHUNK * 4 && !usable {
                sink.clear();
            }
        }
        if let BodyProgress::Done { rest } = progress {
            self.reader.push(&rest);
        }
        if !usable {
            let reply = if self.tx.is_none() {
                replies::BAD_SEQUENCE
            } else {
                replies::NO_VALID_RECIPIENTS
            };
            self.tx = None;
            return Err(reply);
        }
        let Some(tx) = &mut self.tx else {
            return Err(replies::BAD_SEQUENCE);
        };
        if tx.bdat_error.is_none() {
            if max > 0 && (tx.bdat.len() + sink.len()) as u64 > max {
                tx.bdat_error = Some(BodyError::TooBig);
                tx.bdat = Vec::new();
            } else {
                tx.bdat.extend_from_slice(&sink);
            }
        }
        if !last {
            return Ok(Answer::Reply(
                SmtpReply::new(250, "2.0.0", "").with_text(format!("{chunk} octets received")),
            ));
        }
        let body = match tx.bdat_error {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut tx.bdat)),
        };
        let reply = self.finish_message(body).await;
        self.tx = None;
        reply.map(Answer::Reply)
    }
}

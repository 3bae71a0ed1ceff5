//! One client connection: plain TCP or TLS (implicit or after STARTTLS/STLS), with a
//! read buffer for line and literal reads.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Accepts any certificate: the load generator only talks to servers on loopback whose
/// self-signed certificates are not what is being measured.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connector that trusts any server certificate.
pub(crate) fn tls_connector() -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Transient state while upgrading.
    Gone,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// A buffered client connection with a per-read timeout.
pub(crate) struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    timeout: Duration,
}

impl Conn {
    /// Connects; with `tls` set, performs the TLS handshake at once (implicit TLS).
    pub(crate) async fn connect(
        addr: &str,
        tls: Option<&TlsConnector>,
        timeout: Duration,
    ) -> Result<Self> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connect to {addr} timed out"))?
            .with_context(|| format!("connect to {addr}"))?;
        tcp.set_nodelay(true).ok();
        let mut c = Self {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(4096),
            pos: 0,
            timeout,
        };
        if let Some(t) = tls {
            c.upgrade(t).await?;
        }
        Ok(c)
    }

    /// Switches to TLS (after STARTTLS/STLS, or at once for implicit TLS).
    pub(crate) async fn upgrade(&mut self, tls: &TlsConnector) -> Result<()> {
        if self.pos < self.buf.len() {
            bail!("server sent data before the TLS handshake");
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            bail!("already TLS");
        };
        let name = ServerName::try_from("localhost").context("server name")?;
        let s = tokio::time::timeout(self.timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| anyhow!("TLS handshake timed out"))?
            .context("TLS handshake")?;
        self.stream = Stream::Tls(Box::new(s));
        Ok(())
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| anyhow!("write timed out"))?
        .context("write")
    }

    async fn fill(&mut self) -> Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
            .await
            .map_err(|_| anyhow!("read timed out"))?
            .context("read")?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// One line including its LF (bounded: refuses lines over 1 MB).
    pub(crate) async fn line(&mut self) -> Result<Vec<u8>> {
        // Offset from `pos` already searched; `fill` may move `pos`, never this offset.
        let mut searched = 0;
        loop {
            let start = self.pos + searched;
            if let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
                let end = start + i + 1;
                let line = self.buf[self.pos..end].to_vec();
                self.pos = end;
                return Ok(line);
            }
            searched = self.buf.len() - self.pos;
            if searched > 1 << 20 {
                bail!("response line over 1 MB");
            }
            self.fill().await?;
        }
    }

    /// Exactly `n` bytes (an IMAP literal).
    pub(crate) async fn exact(&mut self, n: usize) -> Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            self.fill().await?;
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// Reads a POP3 multi-line body up to the `.` line; returns its size in bytes.
    pub(crate) async fn dot_body(&mut self) -> Result<u64> {
        let mut size = 0u64;
        loop {
            let l = self.line().await?;
            if l == b".\r\n" || l == b".\n" {
                return Ok(size);
            }
            size += l.len() as u64;
        }
    }

    /// An SMTP reply (multi-line aware): (code, text of the last line).
    pub(crate) async fn smtp_reply(&mut self) -> Result<(u16, String)> {
        loop {
            let l = self.line().await?;
            if l.len() < 4 {
                bail!("short SMTP reply {:?}", String::from_utf8_lossy(&l));
            }
            let code: u16 = std::str::from_utf8(&l[..3])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("bad SMTP reply {:?}", String::from_utf8_lossy(&l)))?;
            if l[3] != b'-' {
                return Ok((code, String::from_utf8_lossy(&l).trim_end().to_owned()));
            }
        }
    }

    pub(crate) async fn shutdown(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}

//! The bytes under h2: a plain socket, or rustls over one (ALPN `h2`, RFC 9113
//! section 3.2), both behind `Read + Write` with a socket's non-blocking rules, as
//! ferricorn's `Transport` puts TCP and TLS behind one trait.
//!
//! TLS keeps the "`WouldBlock` only when the socket said so" rule that edge-triggered
//! mio needs: a read returns `WouldBlock` only after rustls has no plaintext left and
//! the socket has no record, so decrypted bytes never wait for an edge that will not
//! come (ferricorn's `Transport::buffered`).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

/// Encrypted bytes rustls may hold unsent before a write says `WouldBlock`.
const TLS_BUFFER: usize = 64 * 1024;

/// A connection's byte stream.
pub enum Wire {
    /// Cleartext (h2c).
    Plain(TcpStream),
    /// TLS; boxed, the session is large.
    Tls(Box<Tls>),
}

/// A rustls server session over its socket.
pub struct Tls {
    /// The socket the records travel on.
    sock: TcpStream,
    /// The session: handshake, records, plaintext buffers.
    conn: ServerConnection,
}

impl Wire {
    /// Wraps a socket in a new TLS session of `config`.
    pub fn tls(sock: TcpStream, config: &Arc<ServerConfig>) -> io::Result<Self> {
        let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Wire::Tls(Box::new(Tls { sock, conn })))
    }

    /// Ends our side: `close_notify` first under TLS.
    pub fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(sock) => sock.shutdown(Shutdown::Write),
            Wire::Tls(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.push();
                tls.sock.shutdown(Shutdown::Write)
            }
        }
    }
}

impl Tls {
    /// Writes records out until none is left (`Ok(true)`) or the socket is full.
    fn push(&mut self) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Plaintext if rustls has any, else one record from the socket, until one of them
    /// gives bytes, the peer ends, or the socket says `WouldBlock`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.push()?;
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        let _ = self.push(); // the alert
                        return Err(io::Error::other(e));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Encrypts what rustls takes and pushes records out.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push()?;
        let n = self.conn.writer().write(buf)?;
        self.push()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(sock) => sock.read(buf),
            Wire::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(sock) => sock.write(buf),
            Wire::Tls(tls) => tls.write(buf),
        }
    }

    /// `WouldBlock` while TLS records wait for room on the socket.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(_) => Ok(()),
            Wire::Tls(tls) => match tls.push()? {
                true => Ok(()),
                false => Err(io::ErrorKind::WouldBlock.into()),
            },
        }
    }
}

/// The server config: one certificate chain and key (PEM files), ALPN `h2` only.
pub fn config(cert: &str, key: &str) -> io::Result<Arc<ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(io::Error::other)?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

//! TLS over a socket: [`TlsTransport`], the [`Transport`] a connection runs over when
//! `--certfile` is set (the settings and the `rustls::ServerConfig` are [`crate::tls`]'s).
//!
//! rustls is sans-io: it turns ciphertext read off the socket into plaintext and plaintext
//! into records, and never touches the descriptor itself. The session sits behind a
//! `Mutex` held for one non-blocking step and never across a wait (transport.rs explains
//! why: the connection, an app thread in `wsgi.input` and `write()` share one transport).
//!
//! The handshake needs no state of its own: it is driven inside [`Transport::read`] (the
//! connection reads for its first request; rustls answers the ClientHello and its answer
//! goes out on the way), so it happens off the Python path, on the loop or the sync
//! worker's bounded waits, and a client that stalls it is bounded as a silent client is:
//! by `--read-timeout` on the sync worker, by the first request's deadline on the async
//! one.
//!
//! Where the kernel has kTLS ([`crate::tls::ktls::support`]), the session moves to the
//! kernel once the handshake is over: rustls reads the handshake whole record by whole
//! record ([`ktls::RecordReader`]), then hands the keys over ([`ktls::offload`]), and from
//! then on reads, writes and `wsgi.file_wrapper`'s `sendfile(2)` go straight to the
//! socket, the kernel encrypting. Without kTLS (or for a session the kernel cannot take:
//! a cipher it lacks) rustls carries on, and files are read and written
//! ([`super::transport::copy_file`]).

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection};
use socket2::Socket;

use super::transport::{copy_file, Transport, Want};
use crate::tls::ktls;
use crate::wsgi::FileSpan;

/// A TLS session over a connected, non-blocking socket.
pub struct TlsTransport {
    /// The connection's one descriptor: ciphertext in and out.
    socket: Socket,
    /// The rustls session, locked for one non-blocking step at a time.
    session: Mutex<Session>,
    /// A read returned bytes and none has met `WouldBlock` since: plaintext may wait
    /// decrypted above the socket, or ciphertext in it that no new edge will announce.
    ahead: AtomicBool,
    /// `--suppress-ragged-eofs`: a TCP end of stream without `close_notify` reads as a
    /// plain end of stream; off, it is an `UnexpectedEof` error.
    suppress_ragged_eofs: bool,
    /// The client certificate's environ keys, made at the first request (after the
    /// handshake) and shared by the connection's requests.
    client_cert: std::sync::OnceLock<Arc<crate::tls::client::Environ>>,
    /// ALPN chose `h2`: taken from rustls after the handshake (or at the hand-over to
    /// the kernel, which knows nothing of ALPN).
    alpn_h2: std::sync::OnceLock<bool>,
}

/// What the lock guards.
struct Session {
    /// Who holds the keys: rustls, or the kernel.
    engine: Engine,
    /// While the session may still move to the kernel: what the kernel takes, and where
    /// the record boundaries are in what rustls has read. `None`: rustls keeps it.
    handover: Option<(ktls::Support, ktls::RecordReader)>,
    /// Plaintext rustls decrypted before the hand-over, read before the kernel's.
    plaintext: Vec<u8>,
    /// The session failed (a bad record, a refused handshake): every read says so.
    failed: bool,
    /// `shutdown_write` was asked while records were still held (or, with the kernel,
    /// the socket had no room for `close_notify`): it goes out, then the TCP FIN, when a
    /// later push can (a FIN first would lose `close_notify`).
    fin_pending: bool,
}

/// Who holds a session's keys.
enum Engine {
    /// rustls's state: handshake, keys, records in and out.
    Rustls(Box<ServerConnection>),
    /// The kernel's TLS, after the hand-over: the socket reads and writes plaintext.
    Kernel(ktls::Kernel),
    /// The keys left rustls and the kernel refused them: the session is failed.
    Gone,
}

impl Engine {
    /// Whether records are waiting to go to the socket (only rustls holds any).
    fn wants_write(&self) -> bool {
        matches!(self, Engine::Rustls(tls) if tls.wants_write())
    }
}

/// An error of the TLS layer as an `io::Error`: the connection closes on it.
fn invalid(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl TlsTransport {
    /// A server session on `socket` (an accepted connection). `early` is ciphertext
    /// already read off the socket (what followed a PROXY header): rustls gets it before
    /// anything the socket holds. A session rustls refuses to create, or early bytes it
    /// refuses, make a transport whose reads fail, so that the connection just closes.
    /// The session moves to the kernel after its handshake when the config allows it
    /// (`enable_secret_extraction`, set by [`crate::tls::server_config`] where the
    /// kernel has kTLS).
    pub fn new(socket: Socket, config: Arc<ServerConfig>, early: &[u8]) -> TlsTransport {
        let support = ktls::support().filter(|_| config.enable_secret_extraction);
        TlsTransport::with_kernel(socket, config, early, support)
    }

    /// [`TlsTransport::new`], with what the kernel takes said by the caller: `None`, the
    /// session stays in rustls.
    pub(crate) fn with_kernel(
        socket: Socket,
        config: Arc<ServerConfig>,
        early: &[u8],
        support: Option<ktls::Support>,
    ) -> TlsTransport {
        let mut handover = support.map(|support| (support, ktls::RecordReader::default()));
        let (tls, failed) = match ServerConnection::new(config) {
            Ok(mut tls) => {
                let fed = match &mut handover {
                    Some((_, records)) => records.feed(early, &mut tls),
                    None => feed(&mut tls, early),
                };
                (tls, fed.is_err())
            }
            Err(e) => {
                tracing::error!("TLS session could not start: {e}");
                // An unusable session: the connection closes at its first read.
                let fallback = Arc::new(
                    ServerConfig::builder()
                        .with_no_client_auth()
                        .with_cert_resolver(Arc::new(NoCertificate)),
                );
                (ServerConnection::new(fallback).expect("a session with no certificate"), true)
            }
        };
        let session = Session {
            engine: Engine::Rustls(Box::new(tls)),
            handover,
            plaintext: Vec::new(),
            failed,
            fin_pending: false,
        };
        TlsTransport {
            socket,
            session: Mutex::new(session),
            ahead: AtomicBool::new(!early.is_empty()),
            suppress_ragged_eofs: true,
            client_cert: std::sync::OnceLock::new(),
            alpn_h2: std::sync::OnceLock::new(),
        }
    }

    /// The session of a connection accepted with `--certfile` on; `early` as for
    /// [`TlsTransport::new`].
    pub fn accept(socket: Socket, settings: &crate::tls::Settings, early: &[u8]) -> TlsTransport {
        TlsTransport::new(socket, Arc::clone(&settings.server), early)
            .ragged_eofs(settings.suppress_ragged_eofs)
    }

    /// `--suppress-ragged-eofs false`: a client's TCP end of stream without `close_notify`
    /// is an error for reads, not an end of stream.
    pub fn ragged_eofs(mut self, suppress: bool) -> TlsTransport {
        self.suppress_ragged_eofs = suppress;
        self
    }

    /// Whether the kernel holds the session's keys now (kTLS).
    pub fn in_kernel(&self) -> bool {
        matches!(self.lock().engine, Engine::Kernel(_))
    }

    /// The session, for one step. A thread that panicked holding it left rustls's state
    /// consistent (rustls does not unwind mid-record), so the poison is ignored.
    fn lock(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the records rustls holds (then a FIN asked for meanwhile); `Ok(false)`
    /// when the socket is full.
    fn push(&self, session: &mut Session) -> io::Result<bool> {
        match &mut session.engine {
            Engine::Rustls(tls) => {
                if !self.push_records(tls)? {
                    return Ok(false);
                }
                if std::mem::take(&mut session.fin_pending) {
                    self.socket.shutdown(std::net::Shutdown::Write)?;
                }
            }
            Engine::Kernel(kernel) if session.fin_pending => match kernel.shutdown_write() {
                Ok(()) => session.fin_pending = false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            },
            Engine::Kernel(_) | Engine::Gone => {}
        }
        Ok(true)
    }

    /// Writes the records rustls holds; `Ok(false)` when the socket is full.
    fn push_records(&self, tls: &mut ServerConnection) -> io::Result<bool> {
        while tls.wants_write() {
            match tls.write_tls(&mut &self.socket) {
                Ok(n) => crate::metrics::bytes_out(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads ciphertext off the socket into rustls and processes it (handshake messages
    /// answered on the way): how many bytes came (0: the peer's end of stream). `Ok(None)`:
    /// the socket is drained for now.
    fn pull(&self, session: &mut Session) -> io::Result<Option<usize>> {
        let Engine::Rustls(tls) = &mut session.engine else {
            return Ok(Some(0));
        };
        let n = loop {
            let read = match &mut session.handover {
                Some((_, records)) => records.read_tls(&self.socket, tls),
                None => tls.read_tls(&mut &self.socket),
            };
            match read {
                Ok(n) => {
                    crate::metrics::bytes_in(n);
                    break n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if let Err(error) = tls.process_new_packets() {
            session.failed = true;
            // rustls queued an alert saying why; it goes out if the socket takes it.
            let _ = self.push(session);
            return Err(invalid(error));
        }
        Ok(Some(n))
    }

    /// Moves the session to the kernel if it may and now can: the handshake over, its
    /// records all sent, and rustls at a record boundary. A session the kernel cannot
    /// take stays in rustls for good; one it lost on the way fails.
    fn hand_over(&self, session: &mut Session) -> io::Result<()> {
        let ready = match (&session.engine, &session.handover) {
            (Engine::Rustls(tls), Some((_, records))) => {
                !tls.is_handshaking() && !tls.wants_write() && records.at_boundary()
            }
            _ => false,
        };
        if !ready {
            return Ok(());
        }
        let (support, records) = session.handover.take().expect("checked above");
        let Engine::Rustls(tls) = std::mem::replace(&mut session.engine, Engine::Gone) else {
            unreachable!("checked above");
        };
        // The client's certificate is rustls's to tell: taken now, while rustls has it.
        let _ = self.client_cert.set(certificate_environ(&tls));
        let _ = self.alpn_h2.set(tls.alpn_protocol() == Some(b"h2"));
        match ktls::offload(&self.socket, *tls, &records, &support) {
            Ok(offloaded) => {
                session.engine = Engine::Kernel(offloaded.kernel);
                session.plaintext = offloaded.plaintext;
                Ok(())
            }
            Err(ktls::Refused::Kept(tls, why)) => {
                tracing::debug!("TLS: this session stays in rustls, because {why}");
                session.engine = Engine::Rustls(tls);
                Ok(())
            }
            Err(ktls::Refused::Lost(e)) => {
                session.failed = true;
                Err(e)
            }
        }
    }

    /// A read once the kernel holds the keys: plaintext rustls had decrypted first, then
    /// the socket's.
    fn read_kernel(&self, session: &mut Session, buf: &mut [u8]) -> io::Result<usize> {
        if !session.plaintext.is_empty() {
            let n = buf.len().min(session.plaintext.len());
            buf[..n].copy_from_slice(&session.plaintext[..n]);
            session.plaintext.drain(..n);
            self.ahead.store(true, Ordering::Relaxed);
            return Ok(n);
        }
        let Engine::Kernel(kernel) = &session.engine else {
            unreachable!("read_kernel is called with the kernel's session");
        };
        loop {
            match kernel.read(buf) {
                Ok(n) => {
                    self.ahead.store(n > 0, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.suppress_ragged_eofs => {
                    self.ahead.store(false, Ordering::Relaxed);
                    return Ok(0);
                }
                Err(e) => {
                    self.ahead.store(false, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    }
}

/// Feeds ciphertext already read to a fresh session.
fn feed(tls: &mut ServerConnection, mut early: &[u8]) -> Result<(), rustls::Error> {
    while !early.is_empty() {
        match tls.read_tls(&mut early) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                tls.process_new_packets()?;
            }
        }
    }
    Ok(())
}

/// The environ keys of the session's client certificate (none: `SSL_CLIENT_VERIFY=NONE`).
fn certificate_environ(tls: &ServerConnection) -> Arc<crate::tls::client::Environ> {
    Arc::new(crate::tls::client::environ(tls.peer_certificates().unwrap_or(&[])))
}

impl Transport for TlsTransport {
    const PLAINTEXT: bool = false;

    fn alpn_h2(&self) -> bool {
        *self.alpn_h2.get_or_init(|| match &self.lock().engine {
            Engine::Rustls(tls) => tls.alpn_protocol() == Some(b"h2"),
            Engine::Kernel(_) | Engine::Gone => false,
        })
    }

    /// Made at the first request (after the handshake), or at the hand-over to the kernel,
    /// and shared by the connection's requests.
    fn client_certificate(&self) -> Option<Arc<crate::tls::client::Environ>> {
        let made = self.client_cert.get_or_init(|| match &self.lock().engine {
            Engine::Rustls(tls) => certificate_environ(tls),
            // Set at the hand-over; not reached.
            Engine::Kernel(_) | Engine::Gone => Arc::new(crate::tls::client::environ(&[])),
        });
        Some(Arc::clone(made))
    }

    /// Plaintext first; with none decrypted, the handshake's or the records' next step:
    /// what rustls owes the peer goes out, then ciphertext comes in. `WouldBlock` only
    /// once the socket said so, so an edge-triggered caller gets a new edge. Once the
    /// kernel has the keys, a read of the socket.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut session = self.lock();
        let mut eof = false;
        loop {
            if session.failed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS session failed"));
            }
            self.hand_over(&mut session)?;
            let tls = match &mut session.engine {
                Engine::Rustls(tls) => tls,
                Engine::Kernel(_) => return self.read_kernel(&mut session, buf),
                Engine::Gone => unreachable!("a session without keys is failed"),
            };
            match tls.reader().read(buf) {
                Ok(n) => {
                    self.ahead.store(n > 0, Ordering::Relaxed);
                    return Ok(n);
                }
                // The peer's end of stream with rustls still waiting (mid-handshake, or
                // mid-record): a ragged end.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && eof => {
                    self.ahead.store(false, Ordering::Relaxed);
                    return match self.suppress_ragged_eofs {
                        true => Ok(0),
                        false => Err(io::ErrorKind::UnexpectedEof.into()),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.suppress_ragged_eofs => {
                    self.ahead.store(false, Ordering::Relaxed);
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
            // A full socket keeps the rest for `flush` (or the next read).
            self.push(&mut session)?;
            match self.pull(&mut session)? {
                Some(n) => eof = n == 0,
                None => {
                    // The last records may have ended the handshake.
                    self.hand_over(&mut session)?;
                    if matches!(session.engine, Engine::Kernel(_)) {
                        continue;
                    }
                    self.ahead.store(false, Ordering::Relaxed);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Plaintext becomes records (up to rustls's buffer limit, 64 KiB) and records go to
    /// the socket. Fewer bytes than offered (or `WouldBlock`) only once the socket is
    /// full, so an edge-triggered caller gets a writable edge. Once the kernel has the
    /// keys, one gathering write of the socket.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut session = self.lock();
        let tls = match &mut session.engine {
            Engine::Rustls(tls) => tls,
            Engine::Kernel(kernel) => return kernel.write_vectored(bufs),
            Engine::Gone => return Err(io::Error::other("TLS session failed")),
        };
        let mut taken = 0;
        for buf in bufs {
            let mut rest: &[u8] = buf;
            while !rest.is_empty() {
                let n = tls.writer().write(rest)?;
                taken += n;
                rest = &rest[n..];
                if rest.is_empty() {
                    break;
                }
                if n == 0 && !tls.wants_write() {
                    // rustls takes nothing and holds no record: its handshake is not
                    // done, and a server writes only after a request.
                    return Err(io::Error::other("TLS write before the handshake ended"));
                }
                // rustls's buffer is full: make room, unless the socket is full too.
                if !self.push_records(tls)? {
                    return match taken {
                        0 => Err(io::ErrorKind::WouldBlock.into()),
                        _ => Ok(taken),
                    };
                }
            }
        }
        self.push(&mut session)?;
        Ok(taken)
    }

    fn flush(&self) -> io::Result<bool> {
        let mut session = self.lock();
        self.push(&mut session)
    }

    /// `close_notify`, then the TCP FIN: the client can tell our end of the response from
    /// a truncation. A full socket keeps both for [`Transport::flush`].
    fn shutdown_write(&self) -> io::Result<()> {
        let mut session = self.lock();
        if let Engine::Rustls(tls) = &mut session.engine {
            tls.send_close_notify();
        }
        session.fin_pending = true;
        self.push(&mut session).map(drop)
    }

    /// `sendfile(2)` once the kernel holds the keys; else the file is read and written
    /// through rustls.
    fn send_file(&self, span: &mut FileSpan) -> io::Result<bool> {
        if let Engine::Kernel(kernel) = &self.lock().engine {
            return kernel.send_file(span);
        }
        copy_file(self, span)
    }

    fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    fn buffered(&self) -> bool {
        self.ahead.load(Ordering::Relaxed)
    }

    /// A wait for bytes while records are still owed to the peer (its handshake waits for
    /// our answer) also wakes when the socket takes them: the read that follows sends them.
    fn wait(&self, want: Want, timeout: Duration) -> io::Result<()> {
        let mut events = match want {
            Want::Read => libc::POLLIN,
            Want::Write => libc::POLLOUT,
        };
        if want == Want::Read && self.lock().engine.wants_write() {
            events |= libc::POLLOUT;
        }
        super::io::wait_fd(self.fd(), events, timeout)
    }
}

/// The certificate resolver of a session that could not be created: none, so every
/// handshake fails.
#[derive(Debug)]
struct NoCertificate;

impl rustls::server::ResolvesServerCert for NoCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;

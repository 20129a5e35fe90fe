//! The byte stream a connection runs over: a socket (TCP or unix, both `socket2::Socket`),
//! implemented here, or a TLS session over one ([`super::tls::TlsTransport`]).
//!
//! The connection state machine ([`super::conn::Conn`]), the sync worker, `wsgi.input`'s
//! reader ([`super::io::TransportSource`]) and `write()`'s stream all go through
//! [`Transport`], and share one transport through an `Arc` (the app's side holds it
//! weakly): no descriptor is ever duplicated.
//!
//! # Why `&self`
//!
//! Three parties use one connection at once: the connection itself, a thread of the app
//! inside `wsgi.input.read()`, and `write()` called from the app. A socket serves them
//! all through `&Socket`, as `&TcpStream` does, with no lock. A TLS session needs `&mut`
//! for every record; its implementation keeps the session behind a `Mutex` of its own,
//! held for one non-blocking operation and never across a wait (waits are
//! [`Transport::wait`], on the descriptor, outside the lock), so the plain socket pays for
//! no lock it does not need. Plaintext TLS decrypted ahead of the caller's read sits
//! above the socket, where no readiness edge announces it: [`Transport::buffered`] says
//! so, and the connection reads again instead of waiting for an edge. Records accepted by
//! `write` but not yet on the socket are pushed by [`Transport::flush`], which the
//! connection calls before it counts its queue as sent.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use socket2::Socket;

use crate::wsgi::FileSpan;

/// Bytes of a file read per step of [`Transport::send_file`]'s fallback.
const FALLBACK_CHUNK: usize = 16 * 1024;

/// What a wait on a transport waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
}

/// A non-blocking, connected byte stream. Every operation returns at once:
/// `WouldBlock` means "not now", and [`Transport::wait`] (or the event loop, on
/// [`Transport::fd`]) says when to try again.
pub trait Transport: Send + Sync + 'static {
    /// Whether a page written before anything was read reaches the client as it is
    /// (not so under TLS, before a handshake).
    const PLAINTEXT: bool = true;

    /// One read; `Ok(0)` is the peer's end of stream.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// One write; fewer bytes than offered means the transport is full for now.
    fn write(&self, buf: &[u8]) -> io::Result<usize>;

    /// One gathering write (`writev(2)` for a socket). The default writes the first
    /// non-empty slice.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(buf) => self.write(buf),
            None => Ok(0),
        }
    }

    /// Pushes out bytes the transport accepted but still holds below the caller (TLS
    /// records not yet on the socket). `Ok(true)` once none is left, `Ok(false)` when
    /// the descriptor is full: a response is on the wire only after this says so. A
    /// socket holds nothing.
    #[inline]
    fn flush(&self) -> io::Result<bool> {
        Ok(true)
    }

    /// Ends our side of the stream (a FIN for TCP; `close_notify` first for TLS); reads
    /// go on (RFC 9112 §9.6: half-close, then drain).
    fn shutdown_write(&self) -> io::Result<()>;

    /// Sends as much of `span` as the transport takes now; the span shrinks by what went
    /// out. `Ok(true)` once it is all sent, `Ok(false)` when the transport is full. A file
    /// that shrank underneath is an error. The default reads the file and writes its
    /// bytes (what TLS must do: the kernel cannot encrypt); a socket overrides it with
    /// `sendfile(2)`.
    fn send_file(&self, span: &mut FileSpan) -> io::Result<bool> {
        copy_file(self, span)
    }

    /// The descriptor the event loop registers (edge-triggered readiness).
    fn fd(&self) -> RawFd;

    /// The descriptor when it carries the plaintext itself, so the app may be handed it
    /// (`gunicorn.socket`, [`super::handoff`]); `None` for TLS, whose bytes are records.
    fn plaintext_fd(&self) -> Option<RawFd> {
        None
    }

    /// What the app's environ says of the client's certificate (`SSL_CLIENT_*`, mod_ssl's
    /// keys, docs/tls.md); `None` on a plain connection.
    fn client_certificate(&self) -> Option<std::sync::Arc<crate::tls::client::Environ>> {
        None
    }

    /// TLS's ALPN chose `h2` (asked once plaintext has arrived: the handshake is over).
    fn alpn_h2(&self) -> bool {
        false
    }

    /// Bytes already received and held above the descriptor (TLS plaintext decrypted
    /// ahead): readable now, though no readiness edge will say so.
    fn buffered(&self) -> bool {
        false
    }

    /// Waits until the transport may be ready for `want`, up to `timeout`, beating the
    /// worker's heartbeat meanwhile (see [`super::io::wait_fd`]).
    fn wait(&self, want: Want, timeout: Duration) -> io::Result<()> {
        let events = match want {
            Want::Read => libc::POLLIN,
            Want::Write => libc::POLLOUT,
        };
        super::io::wait_fd(self.fd(), events, timeout)
    }
}

/// An in-memory client's read, for the connection tests: the next of the pieces it
/// sent (split when longer than `buf`), then `fin`'s end of stream or `WouldBlock`.
#[cfg(test)]
pub(crate) fn read_pieces(
    incoming: &mut std::collections::VecDeque<Vec<u8>>,
    fin: bool,
    buf: &mut [u8],
) -> io::Result<usize> {
    let Some(piece) = incoming.front_mut() else {
        return if fin { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) };
    };
    let n = piece.len().min(buf.len());
    buf[..n].copy_from_slice(&piece[..n]);
    piece.drain(..n);
    if piece.is_empty() {
        incoming.pop_front();
    }
    Ok(n)
}

/// [`Transport::send_file`] by reading the file and writing its bytes through `transport`
/// (the default; TLS's way when the kernel does not encrypt).
pub fn copy_file<T: Transport + ?Sized>(transport: &T, span: &mut FileSpan) -> io::Result<bool> {
    let mut chunk = [0u8; FALLBACK_CHUNK];
    while span.len > 0 {
        let want = span.len.min(FALLBACK_CHUNK as u64) as usize;
        // SAFETY: the fd belongs to the app's file object, which the exchange keeps
        // open until close(); pread writes at most `want` bytes into `chunk`.
        let got = unsafe {
            libc::pread(span.fd, chunk.as_mut_ptr().cast(), want, span.offset as libc::off_t)
        };
        let got = match got {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
            n if n < 0 => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => continue,
                e => return Err(e),
            },
            n => n as usize,
        };
        // Bytes read but not taken are read again next time (pread keeps no position).
        match transport.write(&chunk[..got]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                span.offset += n as u64;
                span.len -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A TCP or unix socket: `sendfile(2)` works on both.
impl Transport for Socket {
    // Every byte a client sends or gets passes here: `--metrics-bind`'s byte counters.
    #[inline]
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let n = Read::read(&mut &*self, buf)?;
        crate::metrics::bytes_in(n);
        Ok(n)
    }

    #[inline]
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let n = Write::write(&mut &*self, buf)?;
        crate::metrics::bytes_out(n);
        Ok(n)
    }

    #[inline]
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = Write::write_vectored(&mut &*self, bufs)?;
        crate::metrics::bytes_out(n);
        Ok(n)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }

    fn send_file(&self, span: &mut FileSpan) -> io::Result<bool> {
        // SAFETY: as in the default: the app's file stays open until close().
        let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(span.fd) };
        while span.len > 0 {
            let mut offset = span.offset as libc::off64_t;
            let count = span.len.min(1 << 30) as usize;
            match nix::sys::sendfile::sendfile64(self.as_fd(), file, Some(&mut offset), count) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
                Ok(n) => {
                    span.offset += n as u64;
                    span.len -= n as u64;
                    crate::metrics::bytes_out(n);
                    tracing::debug!("sendfile: {n} bytes");
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    #[inline]
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }

    fn plaintext_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    /// A transport that only has `write`: the defaults must carry the rest.
    struct Plain(Socket);

    impl Transport for Plain {
        fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
            Transport::read(&self.0, buf)
        }
        fn write(&self, buf: &[u8]) -> io::Result<usize> {
            Transport::write(&self.0, buf)
        }
        fn shutdown_write(&self) -> io::Result<()> {
            self.0.shutdown_write()
        }
        fn fd(&self) -> RawFd {
            self.0.fd()
        }
    }

    /// A file holding `data`, at a path of its own: two tests that ran at once shared one
    /// (the pid's) and read each other's bytes.
    fn file_of(data: &[u8]) -> std::fs::File {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ferricorn-sendfile-{}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        file
    }

    /// Both `send_file`s send the same bytes from the span's offset, through a socket that
    /// fills up and drains, and shrink the span by what went out.
    #[test]
    fn send_file_and_its_fallback_send_the_span() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let file = file_of(&data);
        let fd = file.as_raw_fd();
        for fallback in [false, true] {
            let (writer, reader) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
            writer.set_nonblocking(true).unwrap();
            writer.set_send_buffer_size(4096).unwrap();
            let writer = Plain(writer);
            let mut span = FileSpan { fd, offset: 7, len: 200_000 };
            let (mut got, mut chunk, mut full) = (Vec::new(), vec![0; 65536], 0);
            loop {
                let done = match fallback {
                    true => writer.send_file(&mut span).unwrap(),
                    false => writer.0.send_file(&mut span).unwrap(),
                };
                if done {
                    break;
                }
                full += 1;
                let n = Transport::read(&reader, &mut chunk).unwrap();
                got.extend_from_slice(&chunk[..n]);
            }
            drop(writer);
            (&reader).read_to_end(&mut got).unwrap();
            assert_eq!(got, &data[7..200_007], "fallback {fallback}");
            assert_eq!((span.offset, span.len), (200_007, 0));
            assert!(full > 0, "the socket was meant to fill up");
        }
    }

    #[test]
    fn a_file_that_shrank_is_an_error_for_both() {
        let file = file_of(b"short");
        let (writer, _reader) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        let writer = Plain(writer);
        for fallback in [false, true] {
            let mut span = FileSpan { fd: file.as_raw_fd(), offset: 0, len: 100 };
            let sent = match fallback {
                true => writer.send_file(&mut span),
                false => writer.0.send_file(&mut span),
            };
            assert_eq!(sent.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(span.len, 95, "fallback {fallback}: the 5 bytes there were sent");
        }
    }
}

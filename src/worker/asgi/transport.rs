//! The `asgi` worker's connections over a plain socket or TLS (`--certfile`): one enum,
//! so the connection table and the Python-facing server stay one type. A branch per
//! syscall costs nothing beside the syscall.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use socket2::Socket;

use crate::worker::tls::TlsTransport;
use crate::worker::transport::Transport;

/// A client connection's byte stream.
pub enum Stream {
    /// Plain TCP or a unix socket.
    Plain(Socket),
    /// A rustls session over a socket.
    Tls(Box<TlsTransport>),
}

impl Stream {
    /// An accepted socket as this worker serves it.
    pub fn accept(socket: Socket, tls: Option<&crate::tls::Settings>) -> Stream {
        match tls {
            None => Stream::Plain(socket),
            Some(tls) => Stream::Tls(Box::new(TlsTransport::accept(socket, tls, &[]))),
        }
    }
}

impl Transport for Stream {
    #[inline]
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    #[inline]
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => Transport::write(s, buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    #[inline]
    fn flush(&self) -> io::Result<bool> {
        match self {
            Stream::Plain(_) => Ok(true),
            Stream::Tls(t) => t.flush(),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown_write(),
            Stream::Tls(t) => t.shutdown_write(),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Stream::Plain(s) => Transport::fd(s),
            Stream::Tls(t) => t.fd(),
        }
    }

    fn client_certificate(&self) -> Option<Arc<crate::tls::client::Environ>> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => t.client_certificate(),
        }
    }

    fn alpn_h2(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.alpn_h2(),
        }
    }

    #[inline]
    fn buffered(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.buffered(),
        }
    }
}

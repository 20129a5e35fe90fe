//! `gunicorn.socket`: the connection's socket handed to the app, for WebSockets the way
//! WSGI apps do them on gunicorn (simple-websocket, Flask-Sock; docs/websockets-wsgi.md).
//!
//! A request that asks for a WebSocket upgrade and has no body gets, in its environ, a
//! `socket.socket` over a duplicate of the connection's descriptor (`ferricorn._websocket`),
//! with the bytes already read past the head served first by its reads. The app answers
//! the handshake on it itself, and when it is done raises `StopIteration` out of its call:
//! gunicorn's "already handled" (its sync and gthread workers catch it and write nothing).
//! The worker then writes nothing, never reuses the connection and closes only its own
//! descriptor: the connection ends when the app's socket closes. Apps that answer with a
//! response instead (a refused handshake) get the socket back in the worker's mode
//! (non-blocking) and the connection closes after that response.
//!
//! Descriptors: the app's socket owns the duplicate (Python closes it, once); the worker's
//! transport owns its own, closed once when the worker is done with the connection. The two
//! share one open file description, so its flags (`O_NONBLOCK`) too.
//!
//! Over TLS the descriptor carries ciphertext: no socket is offered (gunicorn hands an
//! `ssl.SSLSocket`); a warning says so once per worker.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::http::{BodyFraming, Head};

/// The environ key simple-websocket and Flask-Sock read (gunicorn's `default_environ`).
pub const ENVIRON_KEY: &str = "gunicorn.socket";

/// The socket the app gets: a duplicate of the worker's descriptor and what was read ahead.
pub struct Handoff {
    /// The app's own descriptor, moved into its Python socket.
    dup: OwnedFd,
    /// The worker's descriptor, made non-blocking again if the app does not take over.
    own: RawFd,
    /// Bytes received after the head (the client's first frames), the app's first reads.
    early: BytesMut,
}

/// Whether a request may take its socket: it asks for a WebSocket upgrade (RFC 6455
/// §4.1: an `Upgrade` field naming `websocket`) and has no body, so every byte after its
/// head belongs to the WebSocket. Only these pay for a socket object (gunicorn puts its
/// socket in every environ; docs/differences.md).
pub fn wanted(head: &Head) -> bool {
    let bodiless = matches!(head.framing, BodyFraming::Empty | BodyFraming::Length(0));
    bodiless
        && head.fields().any(|(name, value)| {
            name.eq_ignore_ascii_case(b"upgrade")
                && value
                    .split(|&b| b == b',')
                    .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"websocket"))
        })
}

impl Handoff {
    /// The socket for a request on descriptor `own`, `early` the bytes read past its head.
    /// `None` (logged) when the descriptor cannot be duplicated.
    pub fn offer(own: RawFd, early: BytesMut) -> Option<Handoff> {
        // SAFETY: F_DUPFD_CLOEXEC on the connection's open descriptor returns a new one
        // (or -1), which nothing else owns: it becomes the OwnedFd.
        let fd = unsafe { libc::fcntl(own, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            tracing::warn!(
                "{ENVIRON_KEY}: can't duplicate the connection's descriptor: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        // SAFETY: `fd` was just returned by fcntl and is owned by no one else.
        let dup = unsafe { OwnedFd::from_raw_fd(fd) };
        Some(Handoff { dup, own, early })
    }

    /// The worker's own descriptor, for [`restore`] once the app returned.
    pub fn own_fd(&self) -> RawFd {
        self.own
    }

    /// Puts the app's socket in `environ`; from here its descriptor is Python's.
    pub fn into_environ(
        self,
        py: Python<'_>,
        environ: &Bound<'_, pyo3::types::PyDict>,
    ) -> PyResult<()> {
        let Handoff { dup, early, .. } = self;
        let adopt =
            py.import(intern!(py, "ferricorn._websocket"))?.getattr(intern!(py, "adopt"))?;
        // `adopt` closes the descriptor itself if it fails to make the socket.
        let sock = adopt.call1((dup.into_raw_fd(), PyBytes::new(py, &early)))?;
        environ.set_item(intern!(py, "gunicorn.socket"), sock)
    }
}

/// After an app that had the socket returned a response instead of taking the connection
/// over: the worker's descriptor is non-blocking again (the app's socket made the shared
/// file description blocking), so its waits are bounded again.
pub fn restore(own: RawFd) {
    // SAFETY: fcntl on the worker's open descriptor; a failure leaves its flags alone.
    unsafe {
        let flags = libc::fcntl(own, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(own, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Says once per worker why an upgrade request got no socket.
pub fn not_offered(why: &str) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "A WebSocket upgrade request got no {ENVIRON_KEY}: {why} (docs/websockets-wsgi.md)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};

    fn head(raw: &str) -> Head {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, &Limits::default()).unwrap().unwrap()
    }

    #[test]
    fn which_requests_get_the_socket() {
        let rows = [
            ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: x\r\nupgrade: WebSocket\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c, websocket\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: x\r\nX-Upgrade: websocket\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
            ("POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", true),
            ("POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n", false),
            ("POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n", false),
        ];
        for (raw, expected) in rows {
            assert_eq!(wanted(&head(raw)), expected, "{raw:?}");
        }
    }
}

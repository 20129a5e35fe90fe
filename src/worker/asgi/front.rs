//! What comes before HTTP on an `asgi` connection: the PROXY protocol header
//! (`--proxy-protocol`, `--proxy-allow-from`), read as the WSGI workers read it
//! ([`crate::worker::preamble`]: the same parser, the same allow list, the same answers).
//!
//! A connection whose header is still arriving sits in its slot as an [`Opening`]: the raw
//! socket, no [`Conn`] and no TLS session yet, because a load balancer sends the header
//! before the TLS handshake. Once its bytes decide, it becomes a [`Conn`] whose peer (the
//! scope's `client`) is the header's client and whose first bytes are those after the
//! header: the start of the first request, or the handshake's first bytes under
//! `--certfile`. A header from a peer not allowed gets 403, one that does not parse 400,
//! then the close (over TLS just the close: the client would not read a plaintext page).
//!
//! A child module of `core`, so the connection table stays one type: the openings live in
//! the same slots and tokens as the connections.

use std::time::Instant;

use bytes::BytesMut;
use socket2::Socket;

use super::Core;
use crate::listener::Peer;
use crate::worker::asgi::conn::Conn;
use crate::worker::asgi::transport::Stream;
use crate::worker::preamble::{Opening, Outcome, Preamble};
use crate::worker::NEW_CONNECTION_GRACE;

impl Core {
    /// An accepted socket in its slot: an [`Opening`] when `--proxy-protocol` is on (its
    /// bytes judged at once: they may be here already), else a connection.
    pub(super) fn admit(
        &mut self,
        token: usize,
        sock: Socket,
        peer: Peer,
        listener: usize,
        now: Instant,
    ) {
        let Some(mode) = self.settings.proxy.mode else {
            let stream = Stream::accept(sock, self.tls.as_ref());
            let keepalive = self.settings.keepalive;
            let conn = Conn::new(stream, peer, listener, now, keepalive);
            self.slots[token].conn = Some(Box::new(conn));
            return self.drive(token, now);
        };
        let preamble = Preamble::new(mode, &self.settings.proxy.allow, peer);
        let deadline = now + self.settings.read_timeout;
        let opening = Opening::new(sock, preamble, listener, deadline);
        self.slots[token].opening = Some(Box::new(opening));
        self.open_further(token, false, now);
    }

    /// Reads more of an opening's header; once the bytes decide, the connection starts
    /// (or is refused, or closed). `closed`: the client's FIN came with this edge.
    pub(super) fn open_further(&mut self, token: usize, closed: bool, now: Instant) {
        let Some(opening) = self.slots[token].opening.as_mut() else { return };
        let outcome = opening.read(&mut self.scratch);
        if matches!(outcome, Outcome::NeedMore) {
            return;
        }
        let Some(opening) = self.slots[token].opening.take() else { return };
        let Opening { socket, listener, .. } = *opening;
        let keepalive = self.settings.keepalive;
        let conn = match outcome {
            Outcome::Ready { peer, leftover } => {
                let (stream, plaintext) = Stream::opened(socket, self.tls.as_ref(), leftover);
                Conn::new(stream, peer, listener, now, keepalive).with_received(plaintext)
            }
            Outcome::Refuse { peer, status } if self.tls.is_none() => {
                let stream = Stream::accept(socket, None);
                Conn::new(stream, peer, listener, now, keepalive).refused(status, now)
            }
            // A TLS client is just closed; so is one that left before the bytes decided.
            Outcome::Refuse { .. } | Outcome::NeedMore | Outcome::Drop => {
                let fd = crate::worker::transport::Transport::fd(&socket);
                let _ = self.registry.deregister(&mut mio::unix::SourceFd(&fd));
                return self.release(token);
            }
        };
        let mut conn = Box::new(conn);
        conn.ready(true, true, closed);
        self.slots[token].conn = Some(conn);
        self.drive(token, now);
    }

    /// Closes the opening in `token`'s slot, if it holds one; `false` when it does not.
    pub(super) fn close_opening(&mut self, token: usize) -> bool {
        let Some(opening) = self.slots[token].opening.take() else { return false };
        let _ = self.registry.deregister(&mut mio::unix::SourceFd(&opening.fd()));
        drop(opening);
        self.release(token);
        true
    }

    /// Whether `token`'s slot holds an opening past its deadline (`--read-timeout`).
    pub(super) fn opening_expired(&self, token: usize, now: Instant) -> bool {
        self.slots[token].opening.as_ref().is_some_and(|o| o.deadline <= now)
    }

    /// A graceful stop: connections still in their header get [`STOP_GRACE`].
    pub(super) fn hurry_openings(&mut self, now: Instant) {
        for slot in &mut self.slots {
            if let Some(opening) = slot.opening.as_mut() {
                opening.deadline = opening.deadline.min(now + NEW_CONNECTION_GRACE);
            }
        }
    }
}

impl Stream {
    /// A connection whose PROXY header was read: `leftover` (what came after it) is the
    /// first of the TLS handshake under `--certfile`, else the first plaintext, returned.
    pub fn opened(
        socket: Socket,
        tls: Option<&crate::tls::Settings>,
        leftover: BytesMut,
    ) -> (Stream, BytesMut) {
        match tls {
            None => (Stream::Plain(socket), leftover),
            Some(tls) => {
                let session = crate::worker::tls::TlsTransport::accept(socket, tls, &leftover);
                (Stream::Tls(Box::new(session)), BytesMut::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::transport::Transport;
    use socket2::{Domain, Type};

    /// Without TLS the bytes after the header are the connection's first plaintext.
    #[test]
    fn what_follows_the_header_goes_where_the_stream_reads_it() {
        for leftover in [&b""[..], b"GET / HTTP/1.1\r\n"] {
            let (ours, _theirs) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
            let fd = Transport::fd(&ours);
            let (stream, plaintext) = Stream::opened(ours, None, BytesMut::from(leftover));
            assert!(matches!(stream, Stream::Plain(_)));
            assert_eq!((&plaintext[..], stream.fd()), (leftover, fd));
        }
    }
}

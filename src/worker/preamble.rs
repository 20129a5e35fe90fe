//! What a connection may send before HTTP: the PROXY protocol header (`--proxy-protocol`),
//! naming the client a load balancer accepted (HAProxy's `send-proxy`, AWS NLB).
//!
//! It is read off the raw socket before anything else on the connection: before TLS (a
//! load balancer sends it ahead of the handshake) and before the first request. It yields
//! the connection's peer and the bytes that came after the header ("leftover"): the start
//! of the HTTP read buffer, or the first TLS ciphertext. Both workers use it: the sync
//! worker waits for it ([`read_blocking`]), the async loop holds an [`Opening`] until the
//! bytes decide.
//!
//! gunicorn 27's semantics (`http/message.py`, `_handle_proxy_protocol`), tested side by
//! side in tests/test_proxy_protocol.py:
//! - a connection that does not start with a header the mode reads is served as it came,
//!   in every mode (`v1` or `v2` alone do not make the header required);
//! - a header from a peer not in `--proxy-allow-from` gets 403 as soon as its first bytes
//!   show it is one, whatever follows; a unix socket's peer is always allowed;
//! - a header that does not parse gets 400 (gunicorn answers a bad v2 header with 500:
//!   docs/differences.md);
//! - `TCP4`/`TCP6`: the header's client is `REMOTE_ADDR`/`REMOTE_PORT` for every request
//!   of the connection (gunicorn's gthread worker forgets it after the first: see
//!   docs/differences.md); `LOCAL` and `UNSPEC` keep the socket's peer;
//! - `--forwarded-allow-ips` still judges the socket's peer (the proxy), as gunicorn does.

use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use socket2::Socket;

use super::transport::Transport;
use crate::forwarded::AllowList;
use crate::http::proxy::{self, Mode, Parsed, ProxyError};
use crate::listener::Peer;

/// `--proxy-protocol` and `--proxy-allow-from`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Which headers a connection may start with; `None`: off.
    pub mode: Option<Mode>,
    /// The peers that may send one.
    pub allow: AllowList,
}

impl Settings {
    /// From the settings' text, as gunicorn's `validate_proxy_protocol` reads the mode
    /// (case and spaces aside: `true`/`1` are `auto`, `false`/`0`/`none` are `off`).
    pub fn parse(mode: &str, allow: &str) -> Result<Settings, String> {
        let mode = match mode.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "none" => None,
            "auto" | "true" | "1" => Some(Mode::Auto),
            "v1" => Some(Mode::V1),
            "v2" => Some(Mode::V2),
            _ => return Err(format!("--proxy-protocol {mode:?}: expected off, v1, v2 or auto")),
        };
        Ok(Settings { mode, allow: AllowList::parse("--proxy-allow-from", allow)? })
    }

    /// The mode as gunicorn's `--print-config` shows it.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            None => "off",
            Some(Mode::V1) => "v1",
            Some(Mode::V2) => "v2",
            Some(Mode::Auto) => "auto",
        }
    }
}

/// What the bytes received so far decide.
#[derive(Debug)]
pub enum Outcome {
    /// Too few to tell.
    NeedMore,
    /// The connection goes on with this peer; `leftover` came after the header (all the
    /// bytes, when there was none).
    Ready {
        /// The header's client, or the socket's peer.
        peer: Peer,
        /// The bytes after the header.
        leftover: BytesMut,
    },
    /// Answer `status` (400: a header that does not parse; 403: a peer not allowed), then
    /// close; `peer` is the socket's.
    Refuse {
        /// Who sent it.
        peer: Peer,
        /// The error page's status.
        status: u16,
    },
    /// Close without an answer: the client left, or went silent, before the header was
    /// whole (gunicorn's `NoMoreData`).
    Drop,
}

/// One connection's preamble while it arrives. Spent once it has decided (`Ready` or
/// `Refuse`).
pub struct Preamble {
    /// Which headers are read.
    mode: Mode,
    /// Whether the socket's peer may send one (`--proxy-allow-from`).
    allowed: bool,
    /// The socket's peer.
    peer: Peer,
    /// The bytes received so far.
    buf: BytesMut,
}

impl Preamble {
    pub fn new(mode: Mode, allow: &AllowList, peer: Peer) -> Preamble {
        let allowed = allow.allows(peer.ip());
        Preamble { mode, allowed, peer, buf: BytesMut::new() }
    }

    /// Judges the bytes so far.
    fn judge(&mut self) -> Outcome {
        if !self.allowed && proxy::announces(&self.buf, self.mode) == Some(true) {
            tracing::debug!("Invalid request from {}: PROXY header not allowed", self.peer.addr);
            return Outcome::Refuse { peer: self.take_peer(), status: 403 };
        }
        match proxy::parse(&self.buf, self.mode) {
            Ok(Parsed::NeedMore) => Outcome::NeedMore,
            // gunicorn serves a connection that starts otherwise, whatever the mode.
            Ok(Parsed::NotProxy) | Err(ProxyError::Missing) => {
                Outcome::Ready { peer: self.take_peer(), leftover: std::mem::take(&mut self.buf) }
            }
            Ok(Parsed::Header(header, taken)) => {
                let leftover = self.buf.split_off(taken);
                Outcome::Ready { peer: self.take_peer().behind(&header), leftover }
            }
            Err(error) => {
                tracing::debug!("Invalid request from {}: {error:?}", self.peer.addr);
                Outcome::Refuse { peer: self.take_peer(), status: error.status() }
            }
        }
    }

    fn take_peer(&mut self) -> Peer {
        std::mem::replace(&mut self.peer, Peer::new("", ""))
    }

    /// The client closed (or went silent) before the bytes decided.
    fn ended(&self) -> Outcome {
        if !self.buf.is_empty() {
            tracing::debug!("Ignored premature client disconnection: an unfinished PROXY header");
        }
        Outcome::Drop
    }
}

/// The sync worker's way: reads until the bytes decide, waiting `timeout` in all (a
/// header that trickles in cannot hold the worker longer than one silent client can).
pub fn read_blocking(
    socket: &Socket,
    mut preamble: Preamble,
    scratch: &mut [u8],
    timeout: Duration,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    loop {
        match preamble.judge() {
            Outcome::NeedMore => {}
            decided => return decided,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match super::io::read_waiting(socket, &mut preamble.buf, scratch, left) {
            Ok(0) | Err(_) => return preamble.ended(),
            Ok(_) => {}
        }
    }
}

/// The async loop's way: a connection whose preamble is still arriving, held by the loop
/// with its raw socket (no connection, no transport yet: under TLS the header comes
/// before the handshake) until the bytes decide.
pub struct Opening {
    /// The accepted socket, registered with the loop under the connection's token.
    pub socket: Socket,
    /// Index of the listener it came from.
    pub listener: usize,
    /// When the loop closes it if the bytes have not decided (`--read-timeout`).
    pub deadline: Instant,
    /// What has arrived.
    preamble: Preamble,
    /// `--metrics-bind`'s open-connections gauge, until the connection takes it over.
    _open: crate::metrics::Held,
}

impl Opening {
    pub fn new(socket: Socket, preamble: Preamble, listener: usize, deadline: Instant) -> Self {
        let _open = crate::metrics::Held::connection();
        Opening { socket, listener, deadline, preamble, _open }
    }

    /// Reads what the socket holds (edge-triggered: until it would block) and judges it.
    pub fn read(&mut self, scratch: &mut [u8]) -> Outcome {
        loop {
            match self.preamble.judge() {
                Outcome::NeedMore => {}
                decided => return decided,
            }
            match super::io::read_some(&self.socket, &mut self.preamble.buf, scratch) {
                Ok(0) => return self.preamble.ended(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::NeedMore,
                Err(_) => return self.preamble.ended(),
            }
        }
    }

    /// The descriptor the loop registered.
    pub fn fd(&self) -> std::os::fd::RawFd {
        Transport::fd(&self.socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};
    use std::io::Write;

    const V1: &[u8] = b"PROXY TCP4 10.1.2.3 10.9.9.9 4321 443\r\n";
    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    fn peer() -> Peer {
        Peer::new("127.0.0.1", "40000")
    }

    fn allow(text: &str) -> AllowList {
        AllowList::parse("--proxy-allow-from", text).unwrap()
    }

    /// Feeds `input` whole and byte by byte: the same outcome either way (byte by byte,
    /// the leftover is what had arrived when the bytes decided).
    fn outcome(mode: Mode, allowed: &str, input: &[u8]) -> Outcome {
        let mut whole = Preamble::new(mode, &allow(allowed), peer());
        whole.buf.extend_from_slice(input);
        let whole = whole.judge();
        let mut bytewise = Preamble::new(mode, &allow(allowed), peer());
        for &byte in input {
            bytewise.buf.extend_from_slice(&[byte]);
            match (bytewise.judge(), &whole) {
                (Outcome::NeedMore, _) => continue,
                (Outcome::Ready { peer, leftover }, Outcome::Ready { peer: p, leftover: l }) => {
                    assert_eq!((&peer, true), (p, l.starts_with(&leftover)), "{input:?}");
                }
                (decided, _) => assert_eq!(format!("{decided:?}"), format!("{whole:?}")),
            }
            break;
        }
        whole
    }

    #[test]
    fn a_header_names_the_peer_and_leaves_the_rest() {
        let input = [V1, REQUEST].concat();
        let Outcome::Ready { peer, leftover } = outcome(Mode::Auto, "127.0.0.1", &input) else {
            panic!()
        };
        assert_eq!((peer.addr.as_str(), peer.port.as_str()), ("10.1.2.3", "4321"));
        assert_eq!(peer.ip(), Some([127, 0, 0, 1].into()), "forwarded headers judge the socket");
        let proxied = peer.proxy.as_deref().unwrap();
        assert_eq!(proxied.protocol, "TCP4");
        assert_eq!(proxied.destination, Some(("10.9.9.9".into(), "443".into())));
        assert_eq!(&leftover[..], REQUEST);
    }

    #[test]
    fn no_header_is_served_as_it_came_in_every_mode() {
        for mode in [Mode::Auto, Mode::V1, Mode::V2] {
            let Outcome::Ready { peer, leftover } = outcome(mode, "127.0.0.1", REQUEST) else {
                panic!("{mode:?}")
            };
            assert_eq!((peer.addr.as_str(), peer.proxy), ("127.0.0.1", None));
            assert_eq!(&leftover[..], REQUEST);
        }
    }

    #[test]
    fn refusals() {
        // Not allowed: 403 as soon as the prefix shows a header, even a bad one.
        for input in [V1, b"PROXY garbage\r\n", proxy::V2_SIGNATURE] {
            let got = outcome(Mode::Auto, "10.0.0.0/8", input);
            assert!(matches!(got, Outcome::Refuse { status: 403, .. }), "{input:?}: {got:?}");
        }
        // ... but a connection without one is served.
        assert!(matches!(outcome(Mode::Auto, "10.0.0.0/8", REQUEST), Outcome::Ready { .. }));
        let got = outcome(Mode::V1, "*", b"PROXY UNKNOWN\r\n");
        assert!(matches!(got, Outcome::Refuse { status: 400, .. }), "{got:?}");
        // A unix socket's peer is always allowed.
        let mut unix = Preamble::new(Mode::Auto, &allow("10.0.0.1"), Peer::new("", ""));
        unix.buf.extend_from_slice(V1);
        assert!(matches!(unix.judge(), Outcome::Ready { .. }));
    }

    #[test]
    fn local_keeps_the_socket_peer() {
        let local = [&proxy::V2_SIGNATURE[..], &[0x20, 0x00, 0x00, 0x00], REQUEST].concat();
        let Outcome::Ready { peer, leftover } = outcome(Mode::V2, "127.0.0.1", &local) else {
            panic!()
        };
        assert_eq!(peer.addr, "127.0.0.1");
        assert_eq!(
            peer.proxy.as_deref().map(|p| (p.protocol, p.destination.clone())),
            Some(("LOCAL", None))
        );
        assert_eq!(&leftover[..], REQUEST);
    }

    /// A sync worker waits `timeout` in all for a header, however it trickles.
    #[test]
    fn a_stalled_header_is_dropped_after_the_timeout() {
        let (ours, mut theirs) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.write_all(b"PROXY TCP4 10.1.2.3").unwrap();
        let preamble = Preamble::new(Mode::Auto, &allow("*"), peer());
        let mut scratch = [0; 64];
        let got = read_blocking(&ours, preamble, &mut scratch, Duration::from_millis(50));
        assert!(matches!(got, Outcome::Drop), "{got:?}");
    }

    /// The async way reads until the socket would block, and decides once it can.
    #[test]
    fn an_opening_decides_as_bytes_arrive() {
        let (ours, mut theirs) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        ours.set_nonblocking(true).unwrap();
        let preamble = Preamble::new(Mode::Auto, &allow("*"), peer());
        let mut opening = Opening::new(ours, preamble, 0, Instant::now());
        let mut scratch = [0; 8];
        theirs.write_all(&V1[..20]).unwrap();
        assert!(matches!(opening.read(&mut scratch), Outcome::NeedMore));
        theirs.write_all(&[&V1[20..], REQUEST].concat()).unwrap();
        let Outcome::Ready { peer, leftover } = opening.read(&mut scratch) else { panic!() };
        assert_eq!(peer.addr, "10.1.2.3");
        // The scratch is small: what the decision read is leftover, the rest stays queued.
        assert!(REQUEST.starts_with(&leftover), "{leftover:?}");
        drop(theirs);
    }

    #[test]
    fn settings_as_gunicorn_reads_them() {
        for (text, name) in [("off", "off"), ("FALSE", "off"), (" v1 ", "v1"), ("true", "auto")] {
            assert_eq!(Settings::parse(text, "*").unwrap().mode_name(), name, "{text}");
        }
        assert_eq!(
            Settings::parse("v3", "*").unwrap_err(),
            "--proxy-protocol \"v3\": expected off, v1, v2 or auto"
        );
        assert!(Settings::parse("auto", "nope").unwrap_err().starts_with("--proxy-allow-from"));
    }
}

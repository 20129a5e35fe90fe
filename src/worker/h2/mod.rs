//! HTTP/2 (RFC 9113) on the `async` and `asgi` workers: the `h2` crate, polled from the mio loop with
//! no runtime (docs/http2-engine.md says why this engine and how it is driven).
//!
//! - `io`: the transport as h2's `AsyncRead`/`AsyncWrite`, and the PING/SETTINGS flood
//!   counter h2 lacks.
//! - `conn`: one connection on the loop, its streams' bytes moved between h2 and
//!   the app's side.
//! - `stream`: what the loop and an app thread share of one stream (body in, response
//!   out, reset), with flow control as backpressure both ways.
//! - `wsgi`: a stream as one WSGI request, on an app thread (`asgi/http2.rs` is the
//!   ASGI side).
//! - `upgrade`: HTTP/1.1's `Upgrade: h2c`, its request replayed to h2 as stream 1.
//!
//! A connection becomes HTTP/2 when TLS's ALPN chose `h2`, or (`--http2-cleartext`) a
//! trusted cleartext client opens with the preface or asks with `Upgrade: h2c`; see
//! [`Policy`].

pub mod conn;
pub mod io;
pub mod stream;
pub mod upgrade;
pub mod wsgi;

pub use conn::{Accepted, H2Conn, Settings};
pub use io::PREFACE;
pub use stream::Nudge;

/// The least time an HTTP/2 connection with no stream open is kept (`--keep-alive` if
/// longer): a client keeps one connection for a whole page and more.
const IDLE_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(5);

/// When a worker speaks HTTP/2, from `--http-protocols` and `--http2-*`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// What each connection is built with.
    pub settings: Settings,
    /// Cleartext connections that open with the preface are HTTP/2 (trusted peers only,
    /// as gunicorn 27: `--forwarded-allow-ips`).
    pub prior_knowledge: bool,
    /// `--http2-cleartext prior-knowledge` alone: a trusted cleartext peer that sends
    /// HTTP/1.x instead gets a 400, as gunicorn 27 answers it.
    pub strict: bool,
    /// `--http2-cleartext upgrade` (or `both`): a trusted cleartext peer's `Upgrade: h2c`
    /// is honoured.
    pub upgrade: bool,
}

/// The worker's HTTP/2 policy from its config; `None` without `h2` in
/// `--http-protocols`.
pub fn policy(config: &crate::config::Config) -> Option<Policy> {
    let http2 = &config.http2;
    if !http2.enabled() {
        return None;
    }
    let settings = Settings {
        initial_window_size: http2.initial_window_size,
        max_concurrent_streams: http2.max_concurrent_streams,
        max_frame_size: http2.max_frame_size,
        max_header_list_size: http2.max_header_list_size,
        idle: config.keepalive.max(IDLE_AT_LEAST),
    };
    let prior_knowledge = http2.prior_knowledge() && config.tls.is_none();
    let strict = http2.cleartext == crate::config::http2::Cleartext::PriorKnowledge;
    let upgrade = http2.upgrade() && config.tls.is_none();
    Some(Policy { settings, prior_knowledge, strict, upgrade })
}

impl Policy {
    /// For a request from a trusted cleartext peer that asks for `h2c` as this policy
    /// honours it: the length of its body, to receive before the switch. `None`: serve
    /// it as HTTP/1.1.
    pub fn upgrade(&self, head: &crate::http::Head, cleartext_trusted: bool) -> Option<usize> {
        (self.upgrade && cleartext_trusted).then(|| upgrade::asked(head)).flatten()
    }
}

/// How far a prior-knowledge-only port reads for an HTTP/1.x request line to refuse.
const HTTP1_LINE_LIMIT: usize = 8192;

/// How the first bytes of a connection decide its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 from here.
    Http2,
    /// Too few bytes to tell.
    NeedMore,
    /// A trusted peer on a prior-knowledge-only port that did not send the preface.
    Refuse,
}

impl Policy {
    /// What a connection's first bytes (`received`) make of it. `alpn_h2`: TLS chose
    /// `h2`; `cleartext_trusted`: a cleartext connection from a trusted peer.
    pub fn opening(&self, received: &[u8], alpn_h2: bool, cleartext_trusted: bool) -> Opening {
        if alpn_h2 {
            return Opening::Http2;
        }
        if !(cleartext_trusted && self.prior_knowledge) {
            return Opening::Http1;
        }
        let n = received.len().min(PREFACE.len());
        match (received[..n] == PREFACE[..n], n == PREFACE.len()) {
            (true, true) => Opening::Http2,
            (true, false) => Opening::NeedMore,
            (false, _) if self.strict => strict_opening(received),
            (false, _) => Opening::Http1,
        }
    }
}

/// On a prior-knowledge-only port, what is not the preface: an HTTP/1.x request gets
/// gunicorn 27's 400; anything else goes to h2, which ends it with GOAWAY PROTOCOL_ERROR
/// (RFC 9113 §3.4: an invalid preface is a connection error).
fn strict_opening(received: &[u8]) -> Opening {
    match received.windows(2).position(|w| w == b"\r\n") {
        Some(end) if received[..end].ends_with(b" HTTP/1.1") => Opening::Refuse,
        Some(end) if received[..end].ends_with(b" HTTP/1.0") => Opening::Refuse,
        Some(_) => Opening::Http2,
        None if received.len() < HTTP1_LINE_LIMIT => Opening::NeedMore,
        None => Opening::Http2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_bytes_decide_the_protocol() {
        let settings = Settings {
            initial_window_size: 65_535,
            max_concurrent_streams: 100,
            max_frame_size: 16_384,
            max_header_list_size: 65_536,
            idle: Duration::from_secs(5),
        };
        let policy =
            |prior_knowledge, strict| Policy { settings, prior_knowledge, strict, upgrade: false };
        let get = b"GET / HTTP/1.1\r\n";
        // (policy, bytes, alpn h2, trusted cleartext, opening)
        let cases = [
            (policy(false, false), &get[..], true, false, Opening::Http2),
            (policy(false, false), PREFACE, false, true, Opening::Http1),
            (policy(true, false), PREFACE, false, true, Opening::Http2),
            (policy(true, false), &PREFACE[..5], false, true, Opening::NeedMore),
            (policy(true, false), &get[..], false, true, Opening::Http1),
            (policy(true, true), &get[..], false, true, Opening::Refuse),
            (policy(true, true), &b"GET / HTTP/1.0\r\n"[..], false, true, Opening::Refuse),
            (policy(true, true), &b"INVALID PREFACE\r\n"[..], false, true, Opening::Http2),
            (policy(true, true), &b"GET / HT"[..], false, true, Opening::NeedMore),
            (policy(true, true), &b"P"[..], false, true, Opening::NeedMore),
            (policy(true, true), PREFACE, false, false, Opening::Http1),
        ];
        for (policy, bytes, alpn, trusted, want) in cases {
            assert_eq!(policy.opening(bytes, alpn, trusted), want, "{policy:?} {bytes:?}");
        }
    }
}

//! Sans-io HTTP/1.1 for servers: request heads with gunicorn's limits, body decoders, the
//! response encoder and error pages, the reason-phrase table.
//!
//! Nothing here does I/O, spawns threads or knows about Python; the only dependencies are
//! `bytes`, `httparse` and `sha1_smol` (the WebSocket accept key). Parsers take the bytes
//! received so far and answer `Ok(None)` when they need more, and give the same answer
//! however the bytes were split; every error maps to one status code through
//! [`Error::status`], so a server answers any of them the same way, with
//! [`Encoder::error_page`]. The socket, the event loop, keep-alive timers and which client
//! to trust are the server's business.
//!
//! # Layout
//!
//! - [`request`]: [`parse_head`] turns bytes into a validated [`Head`] and its
//!   [`BodyFraming`]; [`limits`]: the [`Limits`] it is measured against.
//! - [`body`]: [`BodyDecoder`] hands out a request body as it arrives;
//!   [`chunked`]: the chunked coding, decoded byte by byte and encoded.
//! - [`response`]: validating what an app says, [`response::plan`] for the framing, and the
//!   [`Encoder`] that writes heads and error pages; [`date`]: the `Date` header.
//! - [`status`]: the reason phrase of every registered status code.
//! - [`proxy`]: the PROXY protocol header (v1 and v2) a load balancer sends first.
//! - [`uwsgi`]: the uwsgi packet (nginx's `uwsgi_pass`), read into the same [`Head`].
//! - [`websocket`]: RFC 6455, server side: the opening handshake read from a [`Head`]
//!   ([`websocket::read_offer`]) and answered, and the [`websocket::Decoder`] and encoders
//!   of the frames that follow.
//! - [`fuzzing`]: the properties the fuzz targets check, public so that the fuzz crate and
//!   the stable replay test call the same code.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use ferricorn_http::response::{plan, RequestInfo};
//! use ferricorn_http::{parse_head, Encoder, Limits};
//!
//! let mut buf = BytesMut::from(&b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
//! let head = parse_head(&mut buf, &Limits::default()).unwrap().expect("a whole head");
//! assert_eq!(head.target(), "/hi");
//!
//! let req = RequestInfo { minor: head.minor, head_request: false, keep_alive: head.keep_alive };
//! let body = b"hello";
//! let framing = plan(200, Some(body.len() as u64), req);
//! let mut out = Vec::new();
//! Encoder::DEFAULT.encode_head(&mut out, "200 OK", [("Content-Type", "text/plain")], 200, framing);
//! out.extend_from_slice(body);
//! assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"));
//! ```
#![deny(missing_docs)]

pub mod base64;
pub mod body;
pub mod chunked;
pub mod date;
pub mod fuzzing;
pub mod limits;
pub mod proxy;
pub mod request;
pub mod response;
pub mod status;
pub mod uwsgi;
pub mod websocket;

use std::fmt;

pub use body::{BodyDecoder, Decoded};
pub use chunked::ChunkedDecoder;
pub use limits::{Leniency, Limits};
pub use request::{parse_head, BodyFraming, Head};
pub use response::{BodyMode, Encoder, Plan, RequestInfo};
pub use status::reason;

/// The README's usage sample, compiled and run by `cargo test` so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Every way a client's bytes can be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The request line is not `method SP request-target SP HTTP-version` (RFC 9112 §3).
    BadRequestLine(&'static str),
    /// The method is not an upper-case token, as gunicorn requires by default.
    BadMethod,
    /// Only HTTP/1.0 and HTTP/1.1 are spoken here.
    BadVersion,
    /// The request line is longer than `--limit-request-line`.
    RequestLineTooLong,
    /// More header fields than `--limit-request-fields`.
    TooManyHeaders,
    /// One header line longer than `--limit-request-field_size`.
    HeaderTooLarge,
    /// A header name that is not a token, or a forbidden field (RFC 9110 §5.1).
    BadHeaderName,
    /// A header value with control characters or a bare LF, or a header that may appear once.
    BadHeader(&'static str),
    /// Content-Length that is not one decimal number, or appears twice (RFC 9112 §6.3).
    BadContentLength,
    /// Transfer-Encoding that cannot frame this request (RFC 9112 §6.1, §6.3).
    BadTransferEncoding(&'static str),
    /// A transfer coding this server does not know (RFC 9112 §6.1: 501).
    UnsupportedTransferCoding,
    /// Obsolete line folding, refused as RFC 9112 §5.2 allows.
    ObsoleteFolding,
    /// A malformed chunk size, extension or terminator.
    BadChunk(&'static str),
    /// A trailer field that must never be a trailer (RFC 9110 §6.5.1).
    ForbiddenTrailer,
    /// The connection ended before the body did.
    IncompleteBody,
    /// The body is larger than the server accepts (its `--limit-request-body`): 413.
    BodyTooLarge,
    /// A uwsgi packet that does not parse (gunicorn's `InvalidUWSGIHeader`).
    BadUwsgi(&'static str),
    /// A uwsgi packet whose modifier1 is not 0, a WSGI request (gunicorn: 501).
    UwsgiModifier(u8),
    /// A uwsgi packet from a peer outside `--uwsgi-allow-from` (gunicorn: 403).
    UwsgiForbidden,
}

impl Error {
    /// The response status for this error; `413`, `414`, `431` and `501` where RFCs name them,
    /// `403` and `501` for uwsgi as gunicorn's exceptions carry them.
    pub fn status(&self) -> u16 {
        match self {
            Error::RequestLineTooLong => 414,
            Error::TooManyHeaders | Error::HeaderTooLarge => 431,
            Error::UnsupportedTransferCoding => 501,
            Error::BodyTooLarge => 413,
            Error::UwsgiModifier(_) => 501,
            Error::UwsgiForbidden => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadRequestLine(why) => write!(f, "invalid request line: {why}"),
            Error::BadMethod => f.write_str("invalid request method"),
            Error::BadVersion => f.write_str("unsupported HTTP version"),
            Error::RequestLineTooLong => f.write_str("request line too long"),
            Error::TooManyHeaders => f.write_str("too many header fields"),
            Error::HeaderTooLarge => f.write_str("header field too large"),
            Error::BadHeaderName => f.write_str("invalid header name"),
            Error::BadHeader(why) => write!(f, "invalid header: {why}"),
            Error::BadContentLength => f.write_str("invalid Content-Length"),
            Error::BadTransferEncoding(why) => write!(f, "invalid Transfer-Encoding: {why}"),
            Error::UnsupportedTransferCoding => f.write_str("unsupported transfer coding"),
            Error::ObsoleteFolding => f.write_str("obsolete line folding"),
            Error::BadChunk(why) => write!(f, "invalid chunked body: {why}"),
            Error::ForbiddenTrailer => f.write_str("forbidden trailer field"),
            Error::IncompleteBody => f.write_str("client closed the connection mid-body"),
            Error::BodyTooLarge => f.write_str("request body larger than the limit"),
            Error::BadUwsgi(why) => write!(f, "Invalid uWSGI header: {why}"),
            Error::UwsgiModifier(m) => write!(f, "Unsupported uWSGI modifier1: {m}"),
            Error::UwsgiForbidden => f.write_str("uWSGI request from a peer not allowed"),
        }
    }
}

impl std::error::Error for Error {}

/// `tchar` of RFC 9110 §5.6.2: the bytes allowed in methods and field names.
pub fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// A non-empty token (RFC 9110 §5.6.2).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

//! HTTP/1.1 as bytes: request heads and their limits, body framing, chunked decoding,
//! response heads.
//!
//! Nothing here does I/O or knows about Python. Parsers take the bytes received so far
//! and answer `Ok(None)` when they need more (STYLE.md point 4); every error maps to one
//! status code through [`Error::status`], so a worker answers any of them the same way.

pub mod body;
pub mod chunked;
pub mod date;
pub mod fuzzing;
pub mod limits;
pub mod request;
pub mod response;

use std::fmt;

pub use body::{BodyDecoder, Decoded};
pub use limits::{Leniency, Limits};
pub use request::{parse_head, BodyFraming, Head};

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
}

impl Error {
    /// The response status for this error; `413`, `414`, `431` and `501` where RFCs name them.
    pub fn status(&self) -> u16 {
        match self {
            Error::RequestLineTooLong => 414,
            Error::TooManyHeaders | Error::HeaderTooLarge => 431,
            Error::UnsupportedTransferCoding => 501,
            Error::BodyTooLarge => 413,
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

/// The reason phrase gunicorn and most servers send for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

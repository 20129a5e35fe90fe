//! Request heads (RFC 9112 §2–§6): httparse finds the pieces, this module judges them.
//!
//! httparse is lenient where gunicorn's corpus is strict (bare LF line endings, control
//! characters, duplicate framing headers), so every head it accepts is checked again here.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::{is_token, Error};

/// gunicorn's limits, with its defaults and its meaning of 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes; 0 means no limit (gunicorn's `limit_request_line`).
    pub request_line: usize,
    /// Most header fields in one request (gunicorn's `limit_request_fields`).
    pub fields: usize,
    /// Longest header line in bytes (gunicorn's `limit_request_field_size`).
    pub field_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { request_line: 4094, fields: 100, field_size: 8190 }
    }
}

impl Limits {
    /// Largest head accepted: every line at its limit. A field size of 0 counts as the
    /// default it means, or a head could be refused in pieces and parsed whole (bug 7).
    fn max_head(&self) -> usize {
        let line = if self.request_line == 0 { 8192 } else { self.request_line };
        line + 2 + self.fields * (self.field_size_or_default() + 2) + 2
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither Content-Length nor Transfer-Encoding: no body.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// Chunked transfer coding (the last coding; earlier ones stay applied to the data).
    Chunked,
}

/// A parsed, validated request head. Owns its bytes; the accessors borrow from them.
#[derive(Debug, Clone)]
pub struct Head {
    /// The raw head, request line through the empty line.
    raw: Bytes,
    method: Range<usize>,
    target: Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// (name, value) ranges into `raw`, in wire order, values trimmed of OWS.
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// How to find the end of the body.
    pub framing: BodyFraming,
    /// Whether the client asked the connection to persist (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1 (RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// What the front-end proxy told us, once the worker has judged it (depends on the
    /// peer, so not part of parsing).
    pub forwarded: super::forwarded::Verdict,
}

impl Head {
    pub fn method(&self) -> &str {
        ascii(&self.raw[self.method.clone()])
    }

    /// The request-target exactly as sent (gunicorn's `RAW_URI`).
    pub fn target(&self) -> &str {
        ascii(&self.raw[self.target.clone()])
    }

    /// Header fields in wire order: name as sent, value without surrounding whitespace.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(n, v)| (&self.raw[n.clone()], &self.raw[v.clone()]))
    }

    pub fn is_head_request(&self) -> bool {
        self.method() == "HEAD"
    }

    /// The path and query of the target, without fragment; absolute-form loses its authority.
    pub fn path_and_query(&self) -> (&str, &str) {
        split_target(self.target())
    }
}

/// The head bytes are checked to be ASCII (target) or token characters (method).
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// Parses a head from the front of `buf`. On success the head's bytes leave `buf`, so what
/// remains is the start of the body (or the next pipelined request).
pub fn parse_head(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Head>, Error> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    while buf.starts_with(b"\r\n") {
        let _ = buf.split_to(2);
    }
    // A bare LF is refused wherever it is (see `reject_bare_lf`); here at once, because
    // httparse would skip it and the line counts below must start at the request line.
    if buf.first() == Some(&b'\n') {
        return Err(Error::BadHeader("bare LF"));
    }
    check_request_line_length(buf, limits)?;

    let mut slots = vec![httparse::EMPTY_HEADER; limits.fields.max(1)];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return check_sizes(buf, limits).map(|()| None),
        // A malformed head is judged once it is whole, after the size limits, as it is
        // when it arrives whole: the same bytes get the same status however they are cut.
        Err(e) => {
            return match head_end(buf) {
                Some(end) => check_sizes(&buf[..end], limits).and(Err(map_httparse(e, buf))),
                None => check_sizes(buf, limits).map(|()| None),
            }
        }
    };
    check_sizes(&buf[..len], limits)?;
    if limits.fields == 0 && !req.headers.is_empty() {
        return Err(Error::TooManyHeaders);
    }
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;
    let range = |s: &[u8]| offset(s)..offset(s) + s.len();
    let method = range(req.method.unwrap_or_default().as_bytes());
    let target = range(req.path.unwrap_or_default().as_bytes());
    let minor = req.version.unwrap_or(1);
    let mut fields = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        fields.push((range(h.name.as_bytes()), trim_ows(range(h.value), buf)));
    }
    reject_bare_lf(&buf[..len])?;
    let raw = buf.split_to(len).freeze();
    let mut head = Head {
        raw,
        method,
        target,
        minor,
        fields,
        framing: BodyFraming::Empty,
        keep_alive: false,
        expect_continue: false,
        forwarded: Default::default(),
    };
    validate_method(head.method())?;
    validate_target(head.method(), head.target())?;
    judge_fields(&mut head)?;
    Ok(Some(head))
}

impl Limits {
    /// gunicorn reads a field-size limit of 0 as its default, 8190.
    fn field_size_or_default(&self) -> usize {
        if self.field_size == 0 {
            Limits::default().field_size
        } else {
            self.field_size
        }
    }
}

fn check_request_line_length(buf: &[u8], limits: &Limits) -> Result<(), Error> {
    if limits.request_line == 0 {
        return Ok(());
    }
    let window = &buf[..buf.len().min(limits.request_line + 2)];
    let line_len = match window.iter().position(|&b| b == b'\n') {
        Some(lf) => lf - usize::from(lf > 0 && window[lf - 1] == b'\r'),
        None if buf.len() > limits.request_line + 1 => buf.len(),
        None => return Ok(()),
    };
    if line_len > limits.request_line {
        return Err(Error::RequestLineTooLong);
    }
    Ok(())
}

/// The size limits of a head, whole or still arriving: its length, and each field line
/// as gunicorn counts it (as sent, trailing whitespace included, plus CRLF; a line still
/// arriving may end in its own CR, which the + 2 counts). Every count only grows as bytes
/// arrive, so a head refused in pieces is refused whole.
fn check_sizes(head: &[u8], limits: &Limits) -> Result<(), Error> {
    if head.len() > limits.max_head() {
        return Err(Error::HeaderTooLarge);
    }
    let mut lines = head.split(|&b| b == b'\n').skip(1);
    match lines
        .any(|l| l.strip_suffix(b"\r").unwrap_or(l).len() + 2 > limits.field_size_or_default())
    {
        true => Err(Error::HeaderTooLarge),
        false => Ok(()),
    }
}

/// Where a head httparse refused ends: just after its first empty line, if it has come.
fn head_end(buf: &[u8]) -> Option<usize> {
    let lf_lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let lf_crlf = buf.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3);
    lf_lf.into_iter().chain(lf_crlf).min()
}

fn map_httparse(e: httparse::Error, buf: &[u8]) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders,
        httparse::Error::Version => Error::BadVersion,
        httparse::Error::Token if !buf.contains(&b' ') => Error::BadRequestLine("no target"),
        httparse::Error::Token => Error::BadMethod,
        httparse::Error::HeaderName if is_obs_fold(buf) => Error::ObsoleteFolding,
        httparse::Error::HeaderName => Error::BadHeaderName,
        httparse::Error::HeaderValue => Error::BadHeader("invalid character in value"),
        httparse::Error::NewLine => Error::BadHeader("invalid line ending"),
        httparse::Error::Status => Error::BadRequestLine("malformed"),
    }
}

/// A header line that starts with SP or HTAB continues the previous one (RFC 9112 §5.2).
fn is_obs_fold(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t'))
}

/// RFC 9112 §2.2 lets a server accept a bare LF, but a front end that does not would
/// see different headers: a request-smuggling seam, so it is refused.
fn reject_bare_lf(head: &[u8]) -> Result<(), Error> {
    match head.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r')) {
        true => Err(Error::BadHeader("bare LF")),
        false => Ok(()),
    }
}

fn trim_ows(mut r: Range<usize>, buf: &[u8]) -> Range<usize> {
    while r.start < r.end && matches!(buf[r.start], b' ' | b'\t') {
        r.start += 1;
    }
    while r.end > r.start && matches!(buf[r.end - 1], b' ' | b'\t') {
        r.end -= 1;
    }
    r
}

/// gunicorn's default method rule: a token with no lower-case letters (`-BLARGH` passes).
fn validate_method(method: &str) -> Result<(), Error> {
    let m = method.as_bytes();
    if !is_token(m) || m.iter().any(|b| b.is_ascii_lowercase() || *b == b'#') {
        return Err(Error::BadMethod);
    }
    Ok(())
}

/// The four request-target forms of RFC 9112 §3.2, each only where it belongs.
fn validate_target(method: &str, target: &str) -> Result<(), Error> {
    let t = target.as_bytes();
    if t.is_empty() || !t.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Error::BadRequestLine("target is not a visible-ASCII URI"));
    }
    if t[0] == b'/' {
        return Ok(());
    }
    if target == "*" {
        return match method {
            "OPTIONS" => Ok(()),
            _ => Err(Error::BadRequestLine("asterisk-form outside OPTIONS")),
        };
    }
    if method == "CONNECT" {
        return match valid_authority(target, true) {
            true => Ok(()),
            false => Err(Error::BadRequestLine("invalid authority-form")),
        };
    }
    match split_absolute(target) {
        Some((authority, _)) if valid_authority(authority, false) => Ok(()),
        _ => Err(Error::BadRequestLine("invalid target")),
    }
}

/// `scheme "://" authority rest` of an absolute-form target, as (authority, rest).
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = target.split_once("://")?;
    let s = scheme.as_bytes();
    let scheme_ok = s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b));
    if !scheme_ok {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(rest.split_at(end))
}

/// `[userinfo@]host[:port]` (RFC 3986 §3.2); authority-form (CONNECT) needs the port.
fn valid_authority(authority: &str, need_port: bool) -> bool {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        let ok = !literal.is_empty()
            && literal.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return false;
        }
        match after {
            "" => ("[]", None),
            p => match p.strip_prefix(':') {
                Some(port) => ("[]", Some(port)),
                None => return false,
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let reg_name_ok = host == "[]"
        || (!host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)));
    let port_ok = match port {
        Some(p) => p.bytes().all(|b| b.is_ascii_digit()) && (!p.is_empty() || !need_port),
        None => !need_port,
    };
    reg_name_ok && port_ok
}

/// Path and query of a target; the fragment (never sent by browsers, but seen) is cut.
pub fn split_target(target: &str) -> (&str, &str) {
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    let path_query = if target.starts_with('/') {
        target
    } else {
        match split_absolute(target) {
            Some((_, rest)) => rest,
            None => target,
        }
    };
    path_query.split_once('?').unwrap_or((path_query, ""))
}

/// Framing, persistence and the fields that may appear once.
fn judge_fields(head: &mut Head) -> Result<(), Error> {
    let mut content_length: Option<u64> = None;
    let mut codings: Vec<Vec<u8>> = Vec::new();
    // Present even with no coding in it: an empty field must not fall back to Content-Length.
    let mut transfer_encoding = false;
    let (mut close, mut keep_alive) = (false, false);
    let (mut hosts, mut content_types) = (0, 0);
    let mut expect_continue = false;
    for (name, value) in head.fields() {
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Error::BadHeader("control character in value"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(Error::BadContentLength);
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            codings.extend(list_items(value).map(|c| c.to_ascii_lowercase()));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_items(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = head.minor == 1 && value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            content_types += 1;
        }
    }
    if hosts > 1 || content_types > 1 {
        return Err(Error::BadHeader("Host or Content-Type repeated"));
    }
    head.expect_continue = expect_continue;
    head.keep_alive = if head.minor == 1 { !close } else { keep_alive && !close };
    head.framing = match (content_length, transfer_encoding) {
        (None, false) => BodyFraming::Empty,
        (Some(n), false) => BodyFraming::Length(n),
        (Some(_), true) => return Err(Error::BadTransferEncoding("sent with Content-Length")),
        (None, true) if head.minor == 0 => return Err(Error::BadTransferEncoding("on HTTP/1.0")),
        (None, true) => judge_codings(&codings)?,
    };
    Ok(())
}

/// `1*DIGIT` and nothing else: no sign, no list, no whitespace inside (RFC 9110 §8.6).
fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadContentLength);
    }
    Ok(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Codings gunicorn accepts ahead of `chunked`; their bytes reach the app still encoded.
const PASS_THROUGH_CODINGS: [&[u8]; 6] =
    [b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress", b"identity"];

/// RFC 9112 §6.3: chunked must be the final coding, once; anything else cannot frame a request.
fn judge_codings(codings: &[Vec<u8>]) -> Result<BodyFraming, Error> {
    for c in codings {
        if !is_token(c) {
            return Err(Error::BadTransferEncoding("not a token"));
        }
        if c != b"chunked" && !PASS_THROUGH_CODINGS.contains(&c.as_slice()) {
            return Err(Error::UnsupportedTransferCoding);
        }
    }
    let chunked = codings.iter().filter(|c| c.as_slice() == b"chunked").count();
    match (chunked, codings.last().map(Vec::as_slice)) {
        (1, Some(b"chunked")) => Ok(BodyFraming::Chunked),
        (0, _) => Err(Error::BadTransferEncoding("chunked is missing")),
        _ => Err(Error::BadTransferEncoding("chunked is not the last coding, once")),
    }
}

/// Elements of a comma-separated list (RFC 9110 §5.6.1), empty ones skipped.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|item| item.trim_ascii()).filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` fed in pieces of `step` bytes, as a socket might deliver it.
    fn parse_in_steps(input: &[u8], step: usize, limits: &Limits) -> Result<Option<Head>, Error> {
        let mut buf = BytesMut::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            if let Some(head) = parse_head(&mut buf, limits)? {
                return Ok(Some(head));
            }
        }
        Ok(None)
    }

    fn parse(input: &[u8]) -> Result<Head, Error> {
        let limits = Limits::default();
        let whole = parse_in_steps(input, input.len(), &limits);
        let bytewise = parse_in_steps(input, 1, &limits);
        assert_eq!(
            whole.as_ref().map(|h| h.as_ref().map(Head::target)),
            bytewise.as_ref().map(|h| h.as_ref().map(Head::target)),
            "{input:?}"
        );
        whole.map(|h| h.expect("incomplete head"))
    }

    #[test]
    fn valid_heads() {
        let rows: &[(&[u8], &str, &str, BodyFraming, bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", "GET", "/", BodyFraming::Empty, true),
            (b"\r\nGET /a?b HTTP/1.0\r\n\r\n", "GET", "/a?b", BodyFraming::Empty, false),
            (b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\n", "POST", "/p", BodyFraming::Length(5), true),
            (b"POST /p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "POST", "/p", BodyFraming::Chunked, true),
            (b"POST /p HTTP/1.1\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", "/p", BodyFraming::Chunked, true),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", BodyFraming::Empty, true),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "/", BodyFraming::Empty, false),
            (b"-BLARGH /foo HTTP/1.1\r\n\r\n", "-BLARGH", "/foo", BodyFraming::Empty, true),
            (b"OPTIONS * HTTP/1.1\r\n\r\n", "OPTIONS", "*", BodyFraming::Empty, true),
            (b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n", "CONNECT", "[::1]:443", BodyFraming::Empty, true),
            (b"GET http://u:p@example.com:8080/foo?q=1 HTTP/1.1\r\n\r\n", "GET", "http://u:p@example.com:8080/foo?q=1", BodyFraming::Empty, true),
        ];
        for &(input, method, target, framing, keep_alive) in rows {
            let head = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(
                (head.method(), head.target(), head.framing, head.keep_alive),
                (method, target, framing, keep_alive),
                "{input:?}"
            );
        }
    }

    #[test]
    fn invalid_heads_map_to_one_status() {
        let rows: &[(&[u8], u16)] = &[
            (b"GET HTTP/1.1\r\n\r\n", 400),
            (b"get / HTTP/1.1\r\n\r\n", 400),
            (b"GET /foo FTP/1.1\r\n\r\n", 400),
            (b"GET /foo HTTP/2.0\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nba\0z: bar\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 501),
            (b"GET / HTTP/1.1\r\nLong: one\r\n two\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: a\nB: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: a\x07b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\n\r\n", 400),
            (b"GET example.com:443 HTTP/1.1\r\n\r\n", 400),
            (b"GET foo/bar HTTP/1.1\r\n\r\n", 400),
            (b"PUT s://]ufd/: HTTP/1.1\r\n\r\n", 400),
            (b"GET /\xc3\xa0 HTTP/1.0\r\n\r\n", 400),
        ];
        for &(input, status) in rows {
            match parse(input) {
                Err(e) => assert_eq!(e.status(), status, "{input:?}: {e}"),
                Ok(head) => panic!("{input:?} parsed as {} {}", head.method(), head.target()),
            }
        }
    }

    #[test]
    fn limits() {
        let small = Limits { request_line: 16, fields: 2, field_size: 20 };
        let rows: &[(&[u8], u16)] = &[
            (b"GET /0123456789 HTTP/1.1\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\nA: 0123456789012345678901\r\n\r\n", 431),
        ];
        for &(input, status) in rows {
            for step in [input.len(), 1] {
                let err = parse_in_steps(input, step, &small).expect_err("limit not enforced");
                assert_eq!(err.status(), status, "{input:?} step {step}");
            }
        }
        let endless = vec![b'a'; 100_000];
        let err = parse_in_steps(
            &[b"GET / HTTP/1.1\r\nX: ", &endless[..]].concat(),
            4096,
            &Limits::default(),
        );
        assert_eq!(err.map_err(|e| e.status()).err(), Some(431));
    }

    /// The status (or None: parsed) of `input` fed in pieces of `step` bytes.
    fn status_in_steps(input: &[u8], step: usize, limits: &Limits) -> Option<u16> {
        match parse_in_steps(input, step, limits) {
            Ok(Some(_)) => None,
            Ok(None) => panic!("incomplete head {input:?}"),
            Err(e) => Some(e.status()),
        }
    }

    /// Asserts `input` gets `want` whole, byte by byte and in pieces of `steps`.
    fn same_answer_in_pieces(input: &[u8], limits: &Limits, want: Option<u16>) {
        for step in [input.len(), 1, 2, 7, 1024] {
            assert_eq!(status_in_steps(input, step, limits), want, "step {step} {limits:?}");
        }
    }

    /// Bug 7: with `--limit-request-field_size 0` (the default, 8190, for each line) the
    /// bound on an incomplete head counted each line as 0 bytes, so a 9 KB head of short
    /// lines parsed whole and got 431 in 1 KB pieces.
    #[test]
    fn regression_field_size_0_same_answer_whole_and_in_pieces() {
        let fields: Vec<u8> =
            (0..9).flat_map(|i| format!("X-{i}: {}\r\n", "a".repeat(1000)).into_bytes()).collect();
        let head = [&b"GET / HTTP/1.1\r\nHost: x\r\n"[..], &fields, b"\r\n"].concat();
        let limits = Limits { field_size: 0, ..Limits::default() };
        same_answer_in_pieces(&head, &limits, None);
    }

    /// Found by the `split` fuzz target's seeds: a request line over the limit, bad method,
    /// got 414 whole but 400 when the method arrived first; now the length is judged first.
    #[test]
    fn regression_long_bad_request_line_same_status_however_split() {
        let limits = Limits { request_line: 32, ..Limits::default() };
        same_answer_in_pieces(b"GET: /stuff/here?foo=bar HTTP/1.1\r\n\r\n", &limits, Some(414));
        same_answer_in_pieces(b"GET: /x HTTP/1.1\r\n\r\n", &limits, Some(400));
    }

    /// Seen while writing the `split` target: a field line at exactly the size limit, cut
    /// just after its CR, counted the CR twice and got 431; whole it parsed.
    #[test]
    fn regression_field_line_cut_after_its_cr_fits_the_limit() {
        let limits = Limits { field_size: 10, ..Limits::default() };
        same_answer_in_pieces(b"GET / HTTP/1.1\r\nA: 12345\r\n\r\n", &limits, None);
        same_answer_in_pieces(b"GET / HTTP/1.1\r\nA: 123456\r\n\r\n", &limits, Some(431));
    }

    /// Seen while writing the `head` target: httparse trims a value's trailing whitespace, so
    /// whole the line was measured without it and in pieces with it. gunicorn counts the
    /// line as sent.
    #[test]
    fn regression_field_size_counts_trailing_whitespace() {
        let limits = Limits { field_size: 10, ..Limits::default() };
        same_answer_in_pieces(b"GET / HTTP/1.1\r\nA: 1     \r\n\r\n", &limits, Some(431));
    }

    /// A malformed head waits for its end, so that its status cannot depend on the cuts:
    /// the size limits are judged first, then the syntax, whole or in pieces.
    #[test]
    fn size_limits_are_judged_before_syntax_however_split() {
        let limits = Limits { field_size: 20, ..Limits::default() };
        let head = b"GET / HTTP/1.1\r\nA\x01: b\r\nB: 0123456789012345678901234\r\n\r\n";
        same_answer_in_pieces(head, &limits, Some(431));
        let head = b"GET / HTTP/1.1\r\nA\x01: b\r\nB: 0\r\n\r\n";
        same_answer_in_pieces(head, &limits, Some(400));
    }

    /// Found by the `head` fuzz target: a `Transfer-Encoding` field with no coding in it
    /// was ignored, so the request was framed by its Content-Length (or had no body),
    /// while a front end may see a transfer coding. RFC 9112 §6.3: a request whose
    /// Transfer-Encoding does not end in chunked is a 400 (gunicorn: 501, "unsupported").
    #[test]
    fn regression_empty_transfer_encoding_is_not_ignored() {
        let rows: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\nContent-Length: 2\r\n\r\nhi",
            b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: \r\n\r\n",
        ];
        for &input in rows {
            same_answer_in_pieces(input, &Limits::default(), Some(400));
        }
    }

    /// Found by the `split` fuzz target: an incomplete head checked only the line being
    /// received, so an oversized field line already complete passed when it arrived in the
    /// same read as the next line's start, and got 431 when cut inside it.
    #[test]
    fn regression_incomplete_head_checks_every_line() {
        let limits = Limits { field_size: 40, ..Limits::default() };
        let input = b"GET / HTTP/1.1\r\nIf-Match: baziT /stuff/here?foo=bar HTTP/1.\r\nA";
        for step in [input.len(), 1, 30] {
            let got = parse_in_steps(input, step, &limits).map_err(|e| e.status());
            assert_eq!(got.map(|h| h.is_some()), Err(431), "step {step}");
        }
    }

    /// Found by the `split` fuzz target: httparse skips a bare LF before the request line,
    /// but the size check counted it as the first line, so the request line was measured
    /// as a field line: a malformed head got 400 whole, 431 when the bare LF came alone.
    #[test]
    fn regression_leading_bare_lf_same_status_however_split() {
        let limits = Limits { request_line: 0, fields: 4, field_size: 40 };
        let long = "L".repeat(60);
        let bad = format!("\n\r\nGET /2{long} HT\x03TP/1.1\r\nHost: x\r\n\r\n");
        let good = format!("\n\r\nGET /2{long} HTTP/1.1\r\nHost: x\r\n\r\n");
        for input in [bad, good] {
            same_answer_in_pieces(input.as_bytes(), &limits, Some(400));
            let mut buf = BytesMut::from(&input.as_bytes()[..3]);
            assert_eq!(parse_head(&mut buf, &limits).map_err(|e| e.status()).err(), Some(400));
        }
    }

    #[test]
    fn leftover_bytes_stay_in_the_buffer() {
        let mut buf = BytesMut::from(&b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET"[..]);
        let head = parse_head(&mut buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(head.framing, BodyFraming::Length(2));
        assert_eq!(&buf[..], b"hiGET");
    }

    #[test]
    fn path_and_query_of_each_form() {
        let rows = [
            ("/a/b?x=1#frag", ("/a/b", "x=1")),
            ("/a#f?g", ("/a", "")),
            ("http://h:1/p?q", ("/p", "q")),
            ("http://h", ("", "")),
            ("*", ("*", "")),
        ];
        for (target, want) in rows {
            assert_eq!(split_target(target), want, "{target}");
        }
    }
}

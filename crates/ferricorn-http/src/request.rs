//! Request heads (RFC 9112 §2–§6): httparse finds the pieces, this module judges them.
//!
//! httparse is lenient where gunicorn's corpus is strict (bare LF line endings, control
//! characters, duplicate framing headers), so every head it accepts is checked again here.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::limits::{scan, Leniency, Scan};
use super::{is_token, Error, Limits};

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
    /// Where the method is in `raw`: ranges, so the head owns one buffer, not strings.
    method: Range<usize>,
    /// Where the request-target is in `raw`.
    target: Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1: the semantics the request gets. An unconventional
    /// version (`--permit-unconventional-http-version`) below 1.1 counts as 1.0, others as 1.1.
    pub minor: u8,
    /// The version as sent, (major, minor).
    pub version: (u8, u8),
    /// (name, value) ranges into `raw`, in wire order, values trimmed of OWS.
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// How to find the end of the body.
    pub framing: BodyFraming,
    /// Whether the client asked the connection to persist (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1 (RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// Read from a uwsgi packet: the response body goes to the front end as opaque bytes,
    /// so it is never chunked (gunicorn's `is_chunked`).
    uwsgi: bool,
}

impl Head {
    /// Copies the head out of the read buffer it was parsed from. A head shares that
    /// buffer (no copy per request), which keeps all of it alive: a request that waits for
    /// its body calls this to hold its few hundred bytes instead of a whole read.
    pub fn own(&mut self) {
        self.raw = Bytes::copy_from_slice(&self.raw);
    }

    /// The method as sent (upper-cased with `--casefold-http-method`).
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

    /// A HEAD request: its response carries no body (RFC 9110 §9.3.2).
    pub fn is_head_request(&self) -> bool {
        self.method() == "HEAD"
    }

    /// The minor version whose framing the response may use: 0 (no chunked coding) for a
    /// uwsgi request, whose body nginx passes on as it comes (gunicorn's `is_chunked`).
    pub fn response_minor(&self) -> u8 {
        match self.uwsgi {
            true => 0,
            false => self.minor,
        }
    }

    /// The path and query of the target, without fragment; absolute-form loses its authority.
    pub fn path_and_query(&self) -> (&str, &str) {
        split_target(self.target())
    }
}

/// A head put together from pieces (a uwsgi packet's, judged by `uwsgi::parse`), laid
/// out as an HTTP/1.1 head in one buffer so that it reads as one to everything after.
/// Names and the target are written straight into that buffer: no allocation per field.
pub(crate) struct HeadBuilder {
    /// The head's bytes so far.
    raw: Vec<u8>,
    /// Where the method is in `raw`.
    method: Range<usize>,
    /// Where the target is in `raw`.
    target: Range<usize>,
    /// (name, value) ranges into `raw`, in the order given.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

impl HeadBuilder {
    /// Starts with the method; `capacity`: the bytes the whole head will about take.
    pub(crate) fn new(method: &[u8], capacity: usize) -> HeadBuilder {
        let mut raw = Vec::with_capacity(capacity);
        raw.extend_from_slice(method);
        raw.push(b' ');
        HeadBuilder { raw, method: 0..method.len(), target: 0..0, fields: Vec::new() }
    }

    /// The request-target, as `write` puts it into the buffer.
    pub(crate) fn target(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.raw.len();
        write(&mut self.raw);
        self.target = start..self.raw.len();
        self.raw.extend_from_slice(b" HTTP/1.1\r\n");
    }

    /// One more field, its name from `name`'s bytes; how long its line is (`Name: value`
    /// and CRLF, as the HTTP path measures it).
    pub(crate) fn field(&mut self, name: impl Iterator<Item = u8>, value: &[u8]) -> usize {
        let start = self.raw.len();
        self.raw.extend(name);
        let name = start..self.raw.len();
        self.raw.extend_from_slice(b": ");
        let value = self.put(value);
        self.raw.extend_from_slice(b"\r\n");
        let line = self.raw.len() - start;
        self.fields.push((name, value));
        line
    }

    /// The index of the field named `name`, if there is one.
    pub(crate) fn find(&self, name: &[u8]) -> Option<usize> {
        self.fields.iter().position(|(n, _)| self.raw[n.clone()] == *name)
    }

    /// A new value for field `index`.
    pub(crate) fn set_value(&mut self, index: usize, value: &[u8]) {
        self.fields[index].1 = self.put(value);
    }

    /// How many fields there are.
    pub(crate) fn field_count(&self) -> usize {
        self.fields.len()
    }

    fn put(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.raw.len();
        self.raw.extend_from_slice(bytes);
        start..self.raw.len()
    }

    /// The head of a uwsgi request: HTTP/1.1, no `Expect`, a response never chunked.
    pub(crate) fn finish(mut self, framing: BodyFraming, keep_alive: bool) -> Head {
        self.raw.extend_from_slice(b"\r\n");
        Head {
            raw: Bytes::from(self.raw),
            method: self.method,
            target: self.target,
            minor: 1,
            version: (1, 1),
            fields: self.fields,
            framing,
            keep_alive,
            expect_continue: false,
            uwsgi: true,
        }
    }
}

/// The head bytes are checked to be ASCII (target) or token characters (method).
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// Parses a head from the front of `buf`. On success the head's bytes leave `buf`, so what
/// remains is the start of the body (or the next pipelined request).
///
/// The answer depends on the bytes alone, not on how many have arrived: the limits are
/// measured by `limits::scan`, httparse sees only whole lines, and an error httparse finds in the
/// lines before the one that broke a limit comes first, as it would have on a shorter read.
pub fn parse_head(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Head>, Error> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    while buf.starts_with(b"\r\n") {
        buf.advance(2);
    }
    if buf.starts_with(b"\n") {
        return Err(Error::BadHeader("bare LF"));
    }
    let lenient = &limits.lenient;
    let (len, fields) = match scan(buf, &limits.effective(), lenient.obsolete_folding) {
        Scan::Broken { error, line_start } => {
            check_lines(&buf[..line_start], lenient)?;
            return Err(error);
        }
        Scan::Partial { lines_end, .. } => {
            return check_lines(&buf[..lines_end], lenient).map(|()| None)
        }
        Scan::Complete { len, fields } => (len, fields),
    };
    reject_bare_lf(&buf[..len])?;
    let mut raw = match normalize(&buf[..len], lenient) {
        Cow::Borrowed(_) => buf.split_to(len),
        Cow::Owned(normal) => {
            buf.advance(len);
            BytesMut::from(&normal[..])
        }
    };
    let parsed = parse_complete(&raw, fields, lenient)?;
    let mut head = Head {
        raw: Bytes::new(),
        method: parsed.method,
        target: parsed.target,
        minor: u8::from(parsed.version >= (1, 1)),
        version: parsed.version,
        fields: parsed.fields,
        framing: BodyFraming::Empty,
        keep_alive: false,
        expect_continue: false,
        uwsgi: false,
    };
    validate_method(&raw[head.method.clone()], lenient)?;
    if lenient.casefold_method {
        raw[head.method.clone()].make_ascii_uppercase();
    }
    head.raw = raw.freeze();
    validate_target(head.method(), head.target())?;
    judge_fields(&mut head)?;
    Ok(Some(head))
}

/// What httparse found in a complete head, as ranges into it.
struct Parsed {
    /// The method's bytes in the head.
    method: Range<usize>,
    /// The request-target's bytes in the head.
    target: Range<usize>,
    /// The version as sent, which httparse alone would round to 1.0 or 1.1.
    version: (u8, u8),
    /// (name, value) of each field, the values trimmed of OWS.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

/// httparse on a complete head that [`scan`] found within the limits and with `fields`
/// header fields (so it needs no more slots than that).
fn parse_complete(raw: &[u8], fields: usize, lenient: &Leniency) -> Result<Parsed, Error> {
    let view = httparse_view(raw, lenient);
    let mut slots = vec![httparse::EMPTY_HEADER; fields];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(&view) {
        Ok(httparse::Status::Complete(n)) if n == view.len() => {}
        Ok(_) => return Err(Error::BadRequestLine("malformed")),
        Err(e) => return Err(map_httparse(e, &view)),
    }
    // `view` has `raw`'s length and layout, so its ranges are `raw`'s.
    let base = view.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let fields =
        req.headers.iter().map(|h| (range(h.name.as_bytes()), trim_ows(range(h.value), raw)));
    Ok(Parsed {
        method: range(req.method.unwrap_or_default().as_bytes()),
        target: range(req.path.unwrap_or_default().as_bytes()),
        version: sent_version(raw).unwrap_or((1, req.version.unwrap_or(1))),
        fields: fields.collect(),
    })
}

/// Whole lines of an incomplete head: httparse's verdict on them, so that a malformed
/// line is refused as soon as it has arrived, the same however the bytes were split.
fn check_lines(lines: &[u8], lenient: &Leniency) -> Result<(), Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let lines = normalize(lines, lenient);
    let view = httparse_view(&lines, lenient);
    let mut slots = vec![httparse::EMPTY_HEADER; view.iter().filter(|&&b| b == b'\n').count()];
    match httparse::Request::new(&mut slots).parse(&view) {
        Err(e) => Err(map_httparse(e, &view)),
        Ok(_) => Ok(()),
    }
}

/// The head as httparse may read it. httparse knows only HTTP/1.0 and 1.1; with
/// `--permit-unconventional-http-version` any other `HTTP/d.d` is read as 1.0 (below
/// 1.1) or 1.1, the same length, and [`sent_version`] keeps what was sent.
fn httparse_view<'a>(head: &'a [u8], lenient: &Leniency) -> Cow<'a, [u8]> {
    let at = match (lenient.unconventional_version, version_offset(head)) {
        (true, Some(at)) => at,
        _ => return Cow::Borrowed(head),
    };
    let version = (head[at + 5] - b'0', head[at + 7] - b'0');
    if matches!(version, (1, 0) | (1, 1)) {
        return Cow::Borrowed(head);
    }
    let mut copy = head.to_vec();
    let minor = if version >= (1, 1) { b'1' } else { b'0' };
    copy[at + 5..at + 8].copy_from_slice(&[b'1', b'.', minor]);
    Cow::Owned(copy)
}

/// Where ` HTTP/d.d` ends the request line: the offset of `HTTP`.
fn version_offset(head: &[u8]) -> Option<usize> {
    let lf = head.iter().position(|&b| b == b'\n')?;
    let line = &head[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let at = line.len().checked_sub(8)?;
    let v = &line[at..];
    let ok =
        v.starts_with(b"HTTP/") && v[5].is_ascii_digit() && v[6] == b'.' && v[7].is_ascii_digit();
    (ok && at > 0 && line[at - 1] == b' ').then_some(at)
}

/// The `HTTP/d.d` of the request line, as (major, minor).
fn sent_version(head: &[u8]) -> Option<(u8, u8)> {
    version_offset(head).map(|at| (head[at + 5] - b'0', head[at + 7] - b'0'))
}

/// The head as gunicorn's lenient settings read it: folded lines joined to their field
/// with one SP (`--permit-obsolete-folding`), whitespace before a colon removed
/// (`--strip-header-spaces`). Borrowed when nothing changes.
fn normalize<'a>(head: &'a [u8], lenient: &Leniency) -> Cow<'a, [u8]> {
    if !lenient.obsolete_folding && !lenient.strip_header_spaces {
        return Cow::Borrowed(head);
    }
    let mut out: Vec<u8> = Vec::with_capacity(head.len());
    let mut changed = false;
    let mut fields = 0;
    for (i, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
        let body_len = line.len() - usize::from(line.ends_with(b"\n"));
        let body_len = body_len - usize::from(line[..body_len].ends_with(b"\r"));
        let (content, end) = line.split_at(body_len);
        let folded =
            lenient.obsolete_folding && fields > 0 && matches!(content.first(), Some(b' ' | b'\t'));
        if i == 0 || content.is_empty() {
            out.extend_from_slice(line);
        } else if folded {
            // Drop the previous line's terminator, then ` value` (gunicorn strips each piece).
            let prev_end =
                out.len() - usize::from(out.ends_with(b"\n")) - usize::from(out.ends_with(b"\r\n"));
            out.truncate(prev_end);
            out.push(b' ');
            out.extend_from_slice(trim_sp_tab(content));
            out.extend_from_slice(end);
            changed = true;
        } else {
            fields += 1;
            match content.iter().position(|&b| b == b':') {
                Some(colon) if lenient.strip_header_spaces => {
                    let name = trim_sp_tab_end(&content[..colon]);
                    changed |= name.len() != colon;
                    out.extend_from_slice(name);
                    out.extend_from_slice(&line[colon..]);
                }
                _ => out.extend_from_slice(line),
            }
        }
    }
    match changed {
        true => Cow::Owned(out),
        false => Cow::Borrowed(head),
    }
}

fn trim_sp_tab(s: &[u8]) -> &[u8] {
    trim_sp_tab_start(trim_sp_tab_end(s))
}

fn trim_sp_tab_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

fn trim_sp_tab_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn map_httparse(e: httparse::Error, buf: &[u8]) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders,
        httparse::Error::Version => Error::BadVersion,
        httparse::Error::Token if !first_line(buf).contains(&b' ') => {
            Error::BadRequestLine("no target")
        }
        httparse::Error::Token => Error::BadMethod,
        httparse::Error::HeaderName if is_obs_fold(buf) => Error::ObsoleteFolding,
        httparse::Error::HeaderName => Error::BadHeaderName,
        httparse::Error::HeaderValue => Error::BadHeader("invalid character in value"),
        httparse::Error::NewLine => Error::BadHeader("invalid line ending"),
        httparse::Error::Status => Error::BadRequestLine("malformed"),
    }
}

fn first_line(buf: &[u8]) -> &[u8] {
    &buf[..buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len())]
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

/// A method is a token (RFC 9110 §9.1). gunicorn's default adds its own rule, which
/// `--permit-unconventional-http-method` lifts: 3 to 20 characters, no lower-case letter
/// and no `#` (`-BLARGH` passes).
fn validate_method(m: &[u8], lenient: &Leniency) -> Result<(), Error> {
    let conventional =
        (3..=20).contains(&m.len()) && !m.iter().any(|b| b.is_ascii_lowercase() || *b == b'#');
    match is_token(m) && (conventional || lenient.unconventional_method) {
        true => Ok(()),
        false => Err(Error::BadMethod),
    }
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
    // Present even with no coding in it: an empty field must not fall back to
    // Content-Length (a front end may see a transfer coding there).
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
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field" (gunicorn 27 serves it).
    if hosts == 0 && head.minor == 1 {
        return Err(Error::BadHeader("HTTP/1.1 request without Host"));
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
/// The number is from the wire: built with checked arithmetic, and one that does not fit
/// in 64 bits is refused, never wrapped to a small length (which would smuggle the rest).
pub(crate) fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    if value.is_empty() {
        return Err(Error::BadContentLength);
    }
    value.iter().try_fold(0u64, |n, &d| {
        let digit = (d as char).to_digit(10).ok_or(Error::BadContentLength)?;
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(digit)))
            .ok_or(Error::BadContentLength)
    })
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

    /// An owned head reads the same as the one that shared the read buffer, and lives on
    /// its own allocation.
    #[test]
    fn an_owned_head_is_the_same_head() {
        let mut buf = BytesMut::from(
            &b"POST /up?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"[..],
        );
        let head = parse_head(&mut buf, &Limits::default()).unwrap().unwrap();
        let mut owned = head.clone();
        owned.own();
        assert_ne!(owned.raw.as_ptr(), head.raw.as_ptr());
        assert_eq!((owned.method(), owned.target()), (head.method(), head.target()));
        assert!(owned.fields().eq(head.fields()));
        assert_eq!((owned.framing, &buf[..]), (BodyFraming::Length(3), &b"abc"[..]));
    }

    /// What a parse came to, comparable across splits: the head's pieces, "need more", or
    /// the status of the error.
    type Verdict = Result<Option<(String, String, Vec<(Vec<u8>, Vec<u8>)>, BodyFraming)>, u16>;

    /// Parses `input` fed in the given pieces, as a socket might deliver it.
    fn parse_pieces<'a>(pieces: impl Iterator<Item = &'a [u8]>, limits: &Limits) -> Verdict {
        let mut buf = BytesMut::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            match parse_head(&mut buf, limits) {
                Ok(Some(h)) => {
                    let fields = h.fields().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
                    return Ok(Some((h.method().into(), h.target().into(), fields, h.framing)));
                }
                Ok(None) => {}
                Err(e) => return Err(e.status()),
            }
        }
        Ok(None)
    }

    fn parse_in_steps(input: &[u8], step: usize, limits: &Limits) -> Verdict {
        parse_pieces(input.chunks(step.max(1)), limits)
    }

    /// Cuts at points drawn from a small xorshift generator seeded with `seed`.
    fn random_pieces(input: &[u8], seed: u64) -> Vec<&[u8]> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut cuts: Vec<usize> = (0..8)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % (input.len() as u64 + 1)) as usize
            })
            .collect();
        cuts.extend([0, input.len()]);
        cuts.sort_unstable();
        cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect()
    }

    /// The verdict on `input`, required to be the same whole, byte by byte, in 1 KB and
    /// 7-byte pieces and at random cuts (bug 7: the same bytes get the same answer).
    fn verdict(input: &[u8], limits: &Limits) -> Verdict {
        let whole = parse_in_steps(input, input.len(), limits);
        // Each read re-scans the head from its start: quadratic, so byte by byte only for
        // short heads, and steps that keep a head of the whole budget (823 KB) to a few
        // hundred reads (97-byte steps made that one test take over a minute).
        let steps: &[usize] = match input.len() {
            0..=600 => &[1, 7, 1024],
            601..=65_536 => &[97, 1024],
            _ => &[4093, 65_536],
        };
        for &step in steps {
            let split = parse_in_steps(input, step, limits);
            assert_eq!(
                split,
                whole,
                "step {step}: {:?} {limits:?}",
                String::from_utf8_lossy(input)
            );
        }
        for seed in 0..8 {
            let split = parse_pieces(random_pieces(input, seed).into_iter(), limits);
            assert_eq!(
                split,
                whole,
                "seed {seed}: {:?} {limits:?}",
                String::from_utf8_lossy(input)
            );
        }
        whole
    }

    fn parse(input: &[u8]) -> Result<Head, Error> {
        let limits = Limits::default();
        let _ = verdict(input, &limits);
        let mut buf = BytesMut::from(input);
        parse_head(&mut buf, &limits).map(|h| h.expect("incomplete head"))
    }

    #[test]
    fn valid_heads() {
        let rows: &[(&[u8], &str, &str, BodyFraming, bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "/", BodyFraming::Empty, true),
            (b"\r\nGET /a?b HTTP/1.0\r\n\r\n", "GET", "/a?b", BodyFraming::Empty, false),
            (b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", "POST", "/p", BodyFraming::Length(5), true),
            (b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "POST", "/p", BodyFraming::Chunked, true),
            (b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", "/p", BodyFraming::Chunked, true),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", BodyFraming::Empty, true),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "GET", "/", BodyFraming::Empty, false),
            (b"-BLARGH /foo HTTP/1.1\r\nHost: h\r\n\r\n", "-BLARGH", "/foo", BodyFraming::Empty, true),
            (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "OPTIONS", "*", BodyFraming::Empty, true),
            (b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", "CONNECT", "[::1]:443", BodyFraming::Empty, true),
            (b"GET http://u:p@example.com:8080/foo?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "http://u:p@example.com:8080/foo?q=1", BodyFraming::Empty, true),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET", "/", BodyFraming::Empty, true),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n", "POST", "/", BodyFraming::Length(u64::MAX), true),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 000000000000000000000000005\r\n\r\n", "POST", "/", BodyFraming::Length(5), true),
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
            (b"get / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GE / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /foo FTP/1.1\r\n\r\n", 400),
            (b"GET /foo HTTP/2.0\r\n\r\n", 400),
            (b"GET /foo HTTP/1.2\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nba\0z: bar\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 501),
            (b"GET / HTTP/1.1\r\nLong: one\r\n two\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: a\nB: b\r\n\r\n", 400),
            (b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: a\x07b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET foo/bar HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"PUT s://]ufd/: HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /\xc3\xa0 HTTP/1.0\r\n\r\n", 400),
        ];
        for &(input, status) in rows {
            match parse(input) {
                Err(e) => assert_eq!(e.status(), status, "{input:?}: {e}"),
                Ok(head) => panic!("{input:?} parsed as {} {}", head.method(), head.target()),
            }
        }
    }

    /// Bug 8: RFC 9112 §3.2 requires a 400 for an HTTP/1.1 request without Host; HTTP/1.0
    /// has no such rule.
    #[test]
    fn regression_http11_request_without_host_is_refused() {
        assert_eq!(verdict(b"GET / HTTP/1.1\r\n\r\n", &Limits::default()), Err(400));
        let absolute = b"GET http://example.com/ HTTP/1.1\r\nX: y\r\n\r\n";
        assert_eq!(verdict(absolute, &Limits::default()), Err(400));
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    /// Content-Length is a number from the wire: one that does not fit 64 bits is refused,
    /// never wrapped (a wrapped length would frame the body short and smuggle the rest).
    #[test]
    fn regression_content_length_overflow_is_refused() {
        for value in ["18446744073709551616", "99999999999999999999", "184467440737095516150"] {
            let input = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                parse(input.as_bytes()).map(|h| h.framing).unwrap_err(),
                Error::BadContentLength,
                "{value}"
            );
        }
    }

    #[test]
    fn limits() {
        let small = Limits { request_line: 16, fields: 2, field_size: 20, ..Limits::default() };
        let rows: &[(&[u8], u16)] = &[
            (b"GET /0123456789 HTTP/1.1\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\nA: 0123456789012345678901\r\n\r\n", 431),
        ];
        for &(input, status) in rows {
            assert_eq!(verdict(input, &small), Err(status), "{input:?}");
        }
        let endless = vec![b'a'; 100_000];
        let input = [b"GET / HTTP/1.1\r\nX: ", &endless[..]].concat();
        assert_eq!(verdict(&input, &Limits::default()), Err(431));
    }

    /// Limits come from settings, and settings can be huge: `usize::MAX` everywhere once
    /// sized httparse's slots (a capacity-overflow panic) and overflowed `request_line + 2`.
    #[test]
    fn regression_huge_limits_parse_without_overflow() {
        let huge = Limits {
            request_line: usize::MAX,
            fields: usize::MAX,
            field_size: usize::MAX,
            ..Limits::default()
        };
        let heads: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n",
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ];
        for head in heads {
            assert!(verdict(head, &huge).is_ok(), "{head:?}");
        }
    }

    /// Heads at, just under and just over each limit, with malformed lines before and after
    /// the long one, so that which error comes first is tested too.
    fn limit_heads() -> Vec<Vec<u8>> {
        let mut heads = Vec::new();
        for n in [1usize, 15, 16, 17, 18, 19, 20, 21, 4095, 8190, 8191] {
            let a = "a".repeat(n);
            heads.push(format!("GET /{a} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes());
            heads.push(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {a}\r\n\r\n").into_bytes());
            heads.push(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {a}\r\n\r").into_bytes());
            heads.push(
                format!("GET / HTTP/1.1\r\nHost: h\r\nX: {a}\r\nB@d: x\r\n\r\n").into_bytes(),
            );
            heads.push(format!("GET / HTTP/1.1\r\nB@d: x\r\nX: {a}\r\n\r\n").into_bytes());
            heads.push(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {a}\r\n {a}\r\n\r\n").into_bytes());
            heads.push(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {a}\nY: b\r\n\r\n").into_bytes());
            heads.push(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {a}\x07\r\n\r\n").into_bytes());
            heads.push(format!("get /{a} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes());
        }
        for count in [1usize, 2, 3, 101] {
            let fields: String = (0..count).map(|i| format!("X-{i}: v\r\n")).collect();
            heads.push(format!("GET / HTTP/1.1\r\nHost: h\r\n{fields}\r\n").into_bytes());
            heads.push(format!("GET / HTTP/1.1\r\n{fields}Bad Name: v\r\n\r\n").into_bytes());
        }
        let nine_kb: String =
            (0..9).map(|i| format!("X-Field-{i}: {}\r\n", "v".repeat(1000))).collect();
        heads.push(format!("GET / HTTP/1.1\r\nHost: h\r\n{nine_kb}\r\n").into_bytes());
        heads
    }

    /// Bug 7, for every limit and gunicorn's meaning of 0: whole, byte by byte, in pieces
    /// and at random cuts, the same bytes get the same verdict.
    #[test]
    fn every_limit_gives_the_same_verdict_however_the_bytes_arrive() {
        let mut limits = Vec::new();
        for request_line in [0, 16, 20, 9000] {
            for fields in [0, 2] {
                for field_size in [0, 20, 21] {
                    limits.push(Limits { request_line, fields, field_size, ..Limits::default() });
                }
            }
        }
        let heads = limit_heads();
        for l in &limits {
            for lenient in
                [Leniency::default(), Leniency { obsolete_folding: true, ..Leniency::default() }]
            {
                let l = Limits { lenient, ..*l };
                for head in &heads {
                    let _ = verdict(head, &l);
                }
            }
        }
    }

    /// Bug 7: `--limit-request-field_size 0` (gunicorn: 8190) is the same limit when the head
    /// arrives in pieces: the head's budget used the raw 0 and refused a 9 KB head.
    #[test]
    fn regression_field_size_0_same_answer_whole_or_in_pieces() {
        let zero = Limits { field_size: 0, ..Limits::default() };
        let nine_kb: String =
            (0..9).map(|i| format!("X-Field-{i}: {}\r\n", "v".repeat(1000))).collect();
        let head = format!("GET / HTTP/1.1\r\nHost: h\r\n{nine_kb}\r\n").into_bytes();
        assert!(head.len() > 9000);
        for step in [head.len(), 1024, 1] {
            assert!(matches!(parse_in_steps(&head, step, &zero), Ok(Some(_))), "step {step}");
        }
        let line = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "v".repeat(8190));
        assert_eq!(verdict(line.as_bytes(), &zero), Err(431));
    }

    /// gunicorn 27: `limit_request_line` 0 means no limit of its own (only the head's
    /// budget bounds the line), above 8190 means 8190.
    #[test]
    fn request_line_0_has_no_limit_of_its_own() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(20_000));
        let zero = Limits { request_line: 0, ..Limits::default() };
        assert!(matches!(verdict(long.as_bytes(), &zero), Ok(Some(_))));
        let over_budget = format!("GET /{} HTTP/1.1\r\n", "a".repeat(zero.max_head()));
        assert_eq!(verdict(over_budget.as_bytes(), &zero), Err(414));
        let capped = Limits { request_line: 100_000, ..Limits::default() };
        assert_eq!(verdict(long.as_bytes(), &capped), Err(414));
    }

    #[test]
    fn leniency_settings_with_gunicorns_meaning() {
        let on = |l: Leniency| Limits { lenient: l, ..Limits::default() };
        let off = Leniency::default();
        let fold = on(Leniency { obsolete_folding: true, ..off });
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nLong: one\r\n  two\r\n\tthree\r\nB: c\r\n\r\n";
        let fields = |v: Verdict| v.unwrap().unwrap().2;
        assert_eq!(verdict(head, &Limits::default()), Err(400));
        let folded = fields(verdict(head, &fold));
        assert_eq!(folded[1], (b"Long".to_vec(), b"one two three".to_vec()));
        assert_eq!(folded[2], (b"B".to_vec(), b"c".to_vec()));

        let strip = on(Leniency { strip_header_spaces: true, ..off });
        let spaced = b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length \t: 3\r\n\r\n";
        assert_eq!(verdict(spaced, &Limits::default()), Err(400));
        assert_eq!(verdict(spaced, &strip).unwrap().unwrap().3, BodyFraming::Length(3));

        let method = on(Leniency { unconventional_method: true, ..off });
        let casefold = on(Leniency { unconventional_method: true, casefold_method: true, ..off });
        for (input, plain, permitted, folded) in [
            (&b"-blargh /foo HTTP/1.1\r\nHost: h\r\n\r\n"[..], 400, "-blargh", "-BLARGH"),
            (b"GE /foo HTTP/1.1\r\nHost: h\r\n\r\n", 400, "GE", "GE"),
            (b"M#T /foo HTTP/1.1\r\nHost: h\r\n\r\n", 400, "M#T", "M#T"),
        ] {
            assert_eq!(verdict(input, &Limits::default()), Err(plain));
            assert_eq!(verdict(input, &method).unwrap().unwrap().0, permitted);
            assert_eq!(verdict(input, &casefold).unwrap().unwrap().0, folded);
        }

        let version = on(Leniency { unconventional_version: true, ..off });
        for (input, sent, minor) in [
            (&b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"[..], (1, 2), 1),
            (b"GET / HTTP/0.9\r\n\r\n", (0, 9), 0),
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", (2, 0), 1),
        ] {
            assert_eq!(verdict(input, &Limits::default()), Err(400));
            let _ = verdict(input, &version);
            let head = parse_head(&mut BytesMut::from(input), &version).unwrap().unwrap();
            assert_eq!((head.version, head.minor), (sent, minor));
        }
    }

    #[test]
    fn leftover_bytes_stay_in_the_buffer() {
        let mut buf =
            BytesMut::from(&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET"[..]);
        let head = parse_head(&mut buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(head.framing, BodyFraming::Length(2));
        assert_eq!(&buf[..], b"hiGET");
        let fold = Limits {
            lenient: Leniency { obsolete_folding: true, ..Leniency::default() },
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n 2\r\n\r\nNEXT"[..]);
        let head = parse_head(&mut buf, &fold).unwrap().unwrap();
        assert_eq!(head.fields().nth(1), Some((&b"A"[..], &b"1 2"[..])));
        assert_eq!(&buf[..], b"NEXT");
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

    /// The status a head gets, the same however it is cut (`None`: it parses).
    fn status_of(input: &[u8], limits: &Limits) -> Option<u16> {
        match verdict(input, limits) {
            Ok(Some(_)) => None,
            Ok(None) => panic!("incomplete head {input:?}"),
            Err(status) => Some(status),
        }
    }

    /// Bug 7: with `--limit-request-field_size 0` the bound on an incomplete head counted
    /// each line as 0 bytes, so a 9 KB head of short lines parsed whole and got 431 in
    /// 1 KB pieces.
    #[test]
    fn regression_field_size_0_same_answer_whole_and_in_pieces() {
        let fields: Vec<u8> =
            (0..9).flat_map(|i| format!("X-{i}: {}\r\n", "a".repeat(1000)).into_bytes()).collect();
        let head = [&b"GET / HTTP/1.1\r\nHost: x\r\n"[..], &fields, b"\r\n"].concat();
        let limits = Limits { field_size: 0, ..Limits::default() };
        assert_eq!(status_of(&head, &limits), None);
    }

    /// Found by the `split` fuzz target's seeds: a request line over the limit with a bad
    /// method got 414 whole but 400 when the method arrived first.
    #[test]
    fn regression_long_bad_request_line_same_status_however_split() {
        let limits = Limits { request_line: 32, ..Limits::default() };
        assert_eq!(status_of(b"GET: /stuff/here?foo=bar HTTP/1.1\r\n\r\n", &limits), Some(414));
        assert_eq!(status_of(b"GET: /x HTTP/1.1\r\n\r\n", &limits), Some(400));
    }

    /// Found while writing the `split` target: a field line at exactly the size limit, cut
    /// just after its CR, counted the CR twice and got 431; whole it parsed.
    #[test]
    fn regression_field_line_cut_after_its_cr_fits_the_limit() {
        let limits = Limits { field_size: 10, ..Limits::default() };
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost: x\r\nA: 12345\r\n\r\n", &limits), None);
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost: x\r\nA: 123456\r\n\r\n", &limits),
            Some(431)
        );
    }

    /// Found by the `head` fuzz target: a `Transfer-Encoding` field with no coding in it
    /// was ignored, so the request was framed by its Content-Length (or had no body) while
    /// a front end may see a transfer coding.
    #[test]
    fn regression_empty_transfer_encoding_is_not_ignored() {
        let rows: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nContent-Length: 2\r\n\r\nhi",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: \r\n\r\n",
        ];
        for &input in rows {
            assert_eq!(status_of(input, &Limits::default()), Some(400), "{input:?}");
        }
    }

    /// Found by the `split` fuzz target: an incomplete head had only its last line checked
    /// against the field size, so an over-long line before it waited for more bytes.
    #[test]
    fn regression_incomplete_head_checks_every_line() {
        let limits = Limits { field_size: 40, ..Limits::default() };
        let input = b"GET / HTTP/1.1\r\nIf-Match: baziT /stuff/here?foo=bar HTTP/1.\r\nA";
        assert_eq!(verdict(input, &limits), Err(431));
    }

    /// Found by the `split` fuzz target: a bare LF before the request line was skipped
    /// whole but measured as a field line in pieces (400 whole, 431 when it came alone).
    #[test]
    fn regression_leading_bare_lf_same_status_however_split() {
        let limits = Limits { request_line: 0, fields: 4, field_size: 40, ..Limits::default() };
        let long = "L".repeat(60);
        let bad = format!("\n\r\nGET /2{long} HT\x03TP/1.1\r\nHost: x\r\n\r\n");
        let good = format!("\n\r\nGET /2{long} HTTP/1.1\r\nHost: x\r\n\r\n");
        for input in [bad, good] {
            assert_eq!(status_of(input.as_bytes(), &limits), Some(400), "{input:?}");
        }
    }
}

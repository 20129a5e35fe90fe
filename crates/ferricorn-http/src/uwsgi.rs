//! The uwsgi binary protocol (nginx's `uwsgi_pass`), read as gunicorn 27's `UWSGIRequest`
//! reads it: a packet that replaces the HTTP request head.
//!
//! A packet is a 4-byte header (`modifier1`, the vars' size as a little-endian u16,
//! `modifier2`) and that many bytes of vars: CGI variables, each a little-endian u16
//! length and a key, then a u16 length and a value. The request body follows, as long as
//! `CONTENT_LENGTH` says. [`parse`] waits for the whole packet (at most 4 + 65535 bytes, so
//! the buffer is bounded by the protocol), then maps it to the [`Head`] the HTTP path
//! serves, as gunicorn does: `REQUEST_METHOD` (default `GET`), `PATH_INFO` (default `/`)
//! and `QUERY_STRING`, every `HTTP_*` var a header field (`HTTP_X_A` is `X-A`),
//! `CONTENT_TYPE` and `CONTENT_LENGTH`, `HTTPS` or `wsgi.url_scheme` for the scheme. A var
//! sent twice keeps its first place and its last value (gunicorn's dict). The client the
//! front end names (`REMOTE_ADDR`, `REMOTE_PORT`) comes back beside the head.
//!
//! Limits: gunicorn's 1000 vars, and the HTTP path's own (`Limits`): the header fields
//! count against `--limit-request-fields` and each, as `Name: value\r\n`, against
//! `--limit-request-field_size`; `method SP uri SP HTTP/1.1` against
//! `--limit-request-line`. Which peers may speak uwsgi (`--uwsgi-allow-from`) is the
//! server's business ([`Error::UwsgiForbidden`] is its answer).

use std::collections::HashMap;

use bytes::{Buf, BytesMut};

use super::limits::Effective;
use super::request::{parse_content_length, BodyFraming, Head, HeadBuilder};
use super::{is_token, Error, Limits};

/// The header: modifier1, the vars' size (2 bytes), modifier2.
pub const HEADER_LEN: usize = 4;
/// gunicorn's cap on the vars in one packet (uwsgi/message.py `MAX_UWSGI_VARS`).
pub const MAX_VARS: usize = 1000;
/// The longest packet: the header and a vars block of the largest u16 size.
pub const MAX_PACKET: usize = HEADER_LEN + u16::MAX as usize;
/// The bytes of the request line the HTTP path would measure, besides method and URI.
const LINE_EXTRA: usize = " ".len() + " HTTP/1.1".len();

/// One CGI variable: (key, value), borrowed from the packet.
type Var<'a> = (&'a [u8], &'a [u8]);

/// A request as the front end sent it.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Method, target, header fields and body framing, as the HTTP path's head.
    pub head: Head,
    /// `REMOTE_ADDR` and `REMOTE_PORT` (empty when absent): the front end's client,
    /// `None` without `REMOTE_ADDR`.
    pub remote: Option<(String, String)>,
    /// `HTTPS` is `on`, `1` or `true` (any case), or else `wsgi.url_scheme` is `https`.
    pub https: bool,
}

/// Reads a packet from the front of `buf`: `Ok(None)` until all of it has arrived, then
/// the packet, its bytes gone from `buf` (what remains is the body). The answer depends on
/// the bytes alone, however they were split.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Packet>, Error> {
    match buf.first() {
        None => return Ok(None),
        Some(&modifier1) if modifier1 != 0 => return Err(Error::UwsgiModifier(modifier1)),
        Some(_) if buf.len() < HEADER_LEN => return Ok(None),
        Some(_) => {}
    }
    let size = usize::from(u16::from_le_bytes([buf[1], buf[2]]));
    if buf.len() < HEADER_LEN + size {
        return Ok(None);
    }
    let packet = {
        let vars = dedupe(read_vars(&buf[HEADER_LEN..HEADER_LEN + size])?);
        to_packet(&vars, limits, size)?
    };
    buf.advance(HEADER_LEN + size);
    Ok(Some(packet))
}

/// The vars block as (key, value) pairs in wire order; a length past the block's end is
/// refused (gunicorn's `InvalidUWSGIHeader` messages).
fn read_vars(mut block: &[u8]) -> Result<Vec<Var<'_>>, Error> {
    let mut vars = Vec::new();
    while !block.is_empty() {
        if vars.len() >= MAX_VARS {
            return Err(Error::BadUwsgi("too many variables"));
        }
        let key = take(&mut block, "truncated key size", "truncated key")?;
        let value = take(&mut block, "truncated value size", "truncated value")?;
        vars.push((key, value));
    }
    Ok(vars)
}

/// One u16-LE-length-prefixed string off the front of `block`.
fn take<'a>(
    block: &mut &'a [u8],
    short_size: &'static str,
    short_data: &'static str,
) -> Result<&'a [u8], Error> {
    let &[lo, hi, ref rest @ ..] = *block else { return Err(Error::BadUwsgi(short_size)) };
    let len = usize::from(u16::from_le_bytes([lo, hi]));
    let data = rest.get(..len).ok_or(Error::BadUwsgi(short_data))?;
    *block = &rest[len..];
    Ok(data)
}

/// A key sent twice keeps its first place and takes its last value, as a Python dict.
/// Most packets have a few dozen vars: those are compared in place, more go through a map.
fn dedupe(vars: Vec<Var<'_>>) -> Vec<Var<'_>> {
    const SMALL: usize = 48;
    let mut out: Vec<Var> = Vec::with_capacity(vars.len());
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    for (key, value) in vars {
        if out.len() == SMALL && index.is_empty() {
            index.extend(out.iter().enumerate().map(|(i, (k, _))| (*k, i)));
        }
        let at = match index.is_empty() {
            true => out.iter().position(|(k, _)| *k == key),
            false => index.get(key).copied(),
        };
        match at {
            Some(at) => out[at].1 = value,
            None => {
                if !index.is_empty() {
                    index.insert(key, out.len());
                }
                out.push((key, value));
            }
        }
    }
    out
}

/// The vars the mapping reads, found in one pass.
#[derive(Default)]
struct Cgi<'a> {
    /// `REQUEST_METHOD`.
    method: Option<&'a [u8]>,
    /// `PATH_INFO`.
    path: Option<&'a [u8]>,
    /// `QUERY_STRING`.
    query: Option<&'a [u8]>,
    /// `CONTENT_LENGTH`.
    content_length: Option<&'a [u8]>,
    /// `HTTP_CONNECTION`.
    connection: Option<&'a [u8]>,
    /// `HTTPS`.
    https: Option<&'a [u8]>,
    /// `wsgi.url_scheme`.
    url_scheme: Option<&'a [u8]>,
    /// `REMOTE_ADDR`.
    remote_addr: Option<&'a [u8]>,
    /// `REMOTE_PORT`.
    remote_port: Option<&'a [u8]>,
}

impl<'a> Cgi<'a> {
    fn of(vars: &[Var<'a>]) -> Cgi<'a> {
        let mut cgi = Cgi::default();
        for &(key, value) in vars {
            let slot = match key {
                b"REQUEST_METHOD" => &mut cgi.method,
                b"PATH_INFO" => &mut cgi.path,
                b"QUERY_STRING" => &mut cgi.query,
                b"CONTENT_LENGTH" => &mut cgi.content_length,
                b"HTTP_CONNECTION" => &mut cgi.connection,
                b"HTTPS" => &mut cgi.https,
                b"wsgi.url_scheme" => &mut cgi.url_scheme,
                b"REMOTE_ADDR" => &mut cgi.remote_addr,
                b"REMOTE_PORT" => &mut cgi.remote_port,
                _ => continue,
            };
            *slot = Some(value);
        }
        cgi
    }
}

/// gunicorn's mapping of the vars to a request (`_extract_request_info`,
/// `set_body_reader`, `should_close`), measured against the HTTP path's limits.
fn to_packet(vars: &[Var<'_>], limits: &Limits, size: usize) -> Result<Packet, Error> {
    let cgi = Cgi::of(vars);
    let method = cgi.method.unwrap_or(b"GET");
    if !is_token(method) {
        return Err(Error::BadMethod);
    }
    let (path, query) = (cgi.path.unwrap_or(b"/"), cgi.query.unwrap_or_default());
    let effective = limits.effective();
    let uri_len = path.len() + if query.is_empty() { 0 } else { 1 + query.len() };
    if effective.request_line.is_some_and(|max| method.len() + uri_len + LINE_EXTRA > max) {
        return Err(Error::RequestLineTooLong);
    }
    let mut head = HeadBuilder::new(method, size + 3 * uri_len + 32);
    head.target(|raw| target(raw, path, query));
    header_fields(&mut head, vars, &effective)?;
    let framing = match cgi.content_length {
        None | Some(b"") => BodyFraming::Empty,
        Some(text) => match parse_content_length(text)? {
            0 => BodyFraming::Empty,
            n => BodyFraming::Length(n),
        },
    };
    let keep_alive = !cgi.connection.is_some_and(|c| c.eq_ignore_ascii_case(b"close"));
    let https = match cgi.https.map(<[u8]>::to_ascii_lowercase).as_deref() {
        Some(b"on" | b"1" | b"true") => true,
        _ => cgi.url_scheme == Some(b"https"),
    };
    let remote =
        cgi.remote_addr.map(|addr| (latin1(addr), latin1(cgi.remote_port.unwrap_or_default())));
    Ok(Packet { head: head.finish(framing, keep_alive), remote, https })
}

/// `HTTP_*` vars as header fields (`HTTP_ACCEPT_ENCODING` is `ACCEPT-ENCODING`), and
/// `CONTENT_TYPE` and `CONTENT_LENGTH`, which CGI names without the prefix; these two
/// appear once, with the last value given. Each counts against the HTTP path's limits.
fn header_fields(
    head: &mut HeadBuilder,
    vars: &[Var<'_>],
    limits: &Effective,
) -> Result<(), Error> {
    for &(key, value) in vars {
        let name = match key {
            b"CONTENT_TYPE" => &b"CONTENT-TYPE"[..],
            b"CONTENT_LENGTH" => b"CONTENT-LENGTH",
            _ => match key.strip_prefix(b"HTTP_") {
                Some(name) => name,
                None => continue,
            },
        };
        // nginx sends `CONTENT_LENGTH` and the client's `Content-Length` as
        // `HTTP_CONTENT_LENGTH`: gunicorn's environ takes the last, never joins them.
        let framing = matches!(
            name,
            b"CONTENT-TYPE" | b"CONTENT-LENGTH" | b"CONTENT_TYPE" | b"CONTENT_LENGTH"
        );
        let dashed = name.iter().map(|&b| if b == b'_' { b'-' } else { b });
        if framing {
            let dashed: Vec<u8> = dashed.clone().collect();
            if let Some(at) = head.find(&dashed) {
                head.set_value(at, value);
                continue;
            }
        }
        if head.field(dashed, value) > limits.field_size {
            return Err(Error::HeaderTooLarge);
        }
        if head.field_count() > limits.fields {
            return Err(Error::TooManyHeaders);
        }
    }
    Ok(())
}

/// The request-target the head carries: `PATH_INFO`, with `?` and `QUERY_STRING` when
/// there is a query. `PATH_INFO` is already decoded by the front end, so the bytes the
/// server would read as syntax (`%`, `?`, `#`, and `:` where the path could pass for an
/// absolute URI) and any byte that is not visible ASCII are escaped as `%XX`: the environ's
/// one decoding gives back exactly `PATH_INFO`'s bytes.
fn target(out: &mut Vec<u8>, path: &[u8], query: &[u8]) {
    let colon_is_syntax = !path.starts_with(b"/");
    for &b in path {
        let syntax = matches!(b, b'%' | b'?' | b'#') || (b == b':' && colon_is_syntax);
        escape_into(out, b, syntax);
    }
    if !query.is_empty() {
        out.push(b'?');
        for &b in query {
            escape_into(out, b, b == b'#');
        }
    }
}

fn escape_into(out: &mut Vec<u8>, b: u8, syntax: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    match syntax || !(0x21..=0x7e).contains(&b) {
        true => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        false => out.push(b),
    }
}

/// Bytes as text, one code point each (gunicorn decodes vars as latin-1).
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A packet with `vars`, for tests, seeds and benches.
pub fn encode(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (key, value) in vars {
        for part in [key, value] {
            block.extend_from_slice(&(part.len() as u16).to_le_bytes());
            block.extend_from_slice(part);
        }
    }
    let mut packet = vec![0];
    packet.extend_from_slice(&(block.len() as u16).to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parse came to, comparable across splits.
    type Verdict = Result<Option<(String, String, Vec<(Vec<u8>, Vec<u8>)>, BodyFraming)>, u16>;

    fn summary(result: Result<Option<Packet>, Error>) -> Verdict {
        match result {
            Ok(Some(p)) => {
                let h = p.head;
                let fields = h.fields().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
                Ok(Some((h.method().into(), h.target().into(), fields, h.framing)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.status()),
        }
    }

    /// The verdict on `input` whole; every prefix needs more or agrees with it.
    fn verdict(input: &[u8], limits: &Limits) -> Verdict {
        let whole = summary(parse(&mut BytesMut::from(input), limits));
        for end in 0..input.len() {
            match summary(parse(&mut BytesMut::from(&input[..end]), limits)) {
                Ok(None) => {}
                early => assert_eq!(early, whole, "the first {end} bytes of {input:?}"),
            }
        }
        whole
    }

    fn packet(vars: &[(&[u8], &[u8])]) -> Packet {
        let mut buf = BytesMut::from(&encode(vars)[..]);
        buf.extend_from_slice(b"body");
        let _ = verdict(&buf, &Limits::default());
        let packet = parse(&mut buf, &Limits::default()).unwrap().expect("a whole packet");
        assert_eq!(&buf[..], b"body", "the body stays in the buffer");
        packet
    }

    /// What nginx's `uwsgi_params` sends for `POST /p/a%20b?x=1` with a body.
    const NGINX: &[(&[u8], &[u8])] = &[
        (b"QUERY_STRING", b"x=1"),
        (b"REQUEST_METHOD", b"POST"),
        (b"CONTENT_TYPE", b"text/plain"),
        (b"CONTENT_LENGTH", b"4"),
        (b"REQUEST_URI", b"/p/a%20b?x=1"),
        (b"PATH_INFO", b"/p/a b"),
        (b"DOCUMENT_ROOT", b"/srv"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REMOTE_ADDR", b"203.0.113.9"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.com"),
        (b"HTTP_HOST", b"example.com"),
        (b"HTTP_X_FORWARDED_FOR", b"198.51.100.1"),
        (b"HTTP_USER_AGENT", b"curl/8"),
    ];

    #[test]
    fn nginx_packet_maps_as_gunicorn_maps_it() {
        let p = packet(NGINX);
        let h = &p.head;
        assert_eq!(
            (h.method(), h.target(), h.framing),
            ("POST", "/p/a%20b?x=1", BodyFraming::Length(4))
        );
        let fields: Vec<(&[u8], &[u8])> = h.fields().collect();
        assert_eq!(
            fields,
            [
                (&b"CONTENT-TYPE"[..], &b"text/plain"[..]),
                (b"CONTENT-LENGTH", b"4"),
                (b"HOST", b"example.com"),
                (b"X-FORWARDED-FOR", b"198.51.100.1"),
                (b"USER-AGENT", b"curl/8"),
            ]
        );
        assert_eq!(p.remote, Some(("203.0.113.9".into(), "51234".into())));
        assert!(!p.https && h.keep_alive && !h.expect_continue);
        assert_eq!((h.minor, h.response_minor()), (1, 0), "HTTP/1.1, never chunked");
    }

    #[test]
    fn defaults_scheme_and_repeats() {
        let empty = packet(&[]);
        assert_eq!((empty.head.method(), empty.head.target()), ("GET", "/"));
        assert_eq!(
            (empty.remote, empty.https, empty.head.framing),
            (None, false, BodyFraming::Empty)
        );
        let rows: &[(&[Var], bool)] = &[
            (&[(b"HTTPS", b"on")], true),
            (&[(b"HTTPS", b"TRUE")], true),
            (&[(b"HTTPS", b"1")], true),
            (&[(b"HTTPS", b"off")], false),
            (&[(b"HTTPS", b"off"), (b"wsgi.url_scheme", b"https")], true),
            (&[(b"wsgi.url_scheme", b"http")], false),
        ];
        for (vars, https) in rows {
            assert_eq!(packet(vars).https, *https, "{vars:?}");
        }
        let p = packet(&[(b"HTTP_A", b"1"), (b"HTTP_B", b"2"), (b"HTTP_A", b"3")]);
        let fields: Vec<(&[u8], &[u8])> = p.head.fields().collect();
        assert_eq!(fields, [(&b"A"[..], &b"3"[..]), (b"B", b"2")]);
        let twice = packet(&[
            (b"CONTENT_LENGTH", b"4"),
            (b"CONTENT_TYPE", b"a"),
            (b"HTTP_CONTENT_LENGTH", b"4"),
            (b"HTTP_CONTENT_TYPE", b"b"),
        ]);
        let fields: Vec<(&[u8], &[u8])> = twice.head.fields().collect();
        assert_eq!(fields, [(&b"CONTENT-LENGTH"[..], &b"4"[..]), (b"CONTENT-TYPE", b"b")]);
        let close = packet(&[(b"HTTP_CONNECTION", b"Close"), (b"CONTENT_LENGTH", b"")]);
        assert!(!close.head.keep_alive);
        assert_eq!(close.head.framing, BodyFraming::Empty);
        let port_only = packet(&[(b"REMOTE_ADDR", b"::1")]);
        assert_eq!(port_only.remote, Some(("::1".into(), String::new())));
    }

    /// `PATH_INFO` comes decoded: the target escapes what would be read as syntax, so the
    /// environ's decoding gives its bytes back (no second decoding of `%`).
    #[test]
    fn decoded_paths_are_escaped_into_the_target() {
        let rows: &[(&[u8], &[u8], &str)] = &[
            (b"/a%20b", b"", "/a%2520b"),
            (b"/a?b#c", b"q=1#x", "/a%3Fb%23c?q=1%23x"),
            (b"/caf\xc3\xa9 x", b"", "/caf%C3%A9%20x"),
            (b"http://evil/x", b"", "http%3A//evil/x"),
            (b"", b"a=1", "?a=1"),
        ];
        for &(path, query, want) in rows {
            let p = packet(&[(b"PATH_INFO", path), (b"QUERY_STRING", query)]);
            assert_eq!(p.head.target(), want, "{path:?}");
        }
    }

    #[test]
    fn bad_packets_get_a_status() {
        let bad_var = [0u8, 3, 0, 0, 5, 0, b'k'];
        let truncated_value = [&encode(&[(b"K", b"value")])[..9], &[]].concat();
        let mut fixed_size = truncated_value.clone();
        fixed_size[1] = (fixed_size.len() - 4) as u8;
        let many: Vec<(Vec<u8>, Vec<u8>)> =
            (0..=MAX_VARS).map(|i| (format!("K{i}").into_bytes(), Vec::new())).collect();
        let many: Vec<(&[u8], &[u8])> = many.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let rows: &[(&[u8], u16)] = &[
            (&[1, 0, 0, 0], 501),
            (&[5], 501),
            (&bad_var, 400),
            (&fixed_size, 400),
            (&[0, 1, 0, 0, 7], 400),
            (&encode(&many), 400),
            (&encode(&[(b"REQUEST_METHOD", b"G T")]), 400),
            (&encode(&[(b"REQUEST_METHOD", b"")]), 400),
            (&encode(&[(b"CONTENT_LENGTH", b"-1")]), 400),
            (&encode(&[(b"CONTENT_LENGTH", b"99999999999999999999999")]), 400),
            (&encode(&[(b"CONTENT_LENGTH", b" 5")]), 400),
        ];
        for &(input, status) in rows {
            assert_eq!(verdict(input, &Limits::default()), Err(status), "{input:?}");
        }
        // 1000 vars are fine.
        let most = encode(&many[..MAX_VARS]);
        let limits = Limits { fields: 0, ..Limits::default() };
        assert!(matches!(verdict(&most, &limits), Ok(Some(_))));
    }

    #[test]
    fn http_limits_hold() {
        let small = Limits { request_line: 20, fields: 2, field_size: 12, ..Limits::default() };
        let rows: &[(&[Var], Result<(), u16>)] = &[
            // "GET /0123456 HTTP/1.1" is 21 bytes.
            (&[(b"PATH_INFO", b"/012345")], Ok(())),
            (&[(b"PATH_INFO", b"/0123456")], Err(414)),
            (&[(b"PATH_INFO", b"/0"), (b"QUERY_STRING", b"1234")], Ok(())),
            (&[(b"PATH_INFO", b"/0"), (b"QUERY_STRING", b"12345")], Err(414)),
            (&[(b"HTTP_A", b"1"), (b"HTTP_B", b"2"), (b"SERVER_NAME", b"x")], Ok(())),
            (&[(b"HTTP_A", b"1"), (b"HTTP_B", b"2"), (b"CONTENT_TYPE", b"x")], Err(431)),
            // "A: 12345678\r\n" is 13 bytes.
            (&[(b"HTTP_A", b"1234567")], Ok(())),
            (&[(b"HTTP_A", b"12345678")], Err(431)),
        ];
        for (vars, want) in rows {
            let got = verdict(&encode(vars), &small).map(|_| ());
            assert_eq!(got, *want, "{vars:?}");
        }
    }
}

//! The response encoder: what an app may say, how the body is delimited, and the bytes
//! of the head and of the server's own error pages.
//!
//! The app's status and headers are validated before anything is sent (a CR or LF in a
//! value would let it split the response), by [`parse_status`] and [`validate_header`];
//! [`plan`] decides the framing from the request and the app's `Content-Length`; an
//! [`Encoder`] writes the head. What the encoder adds (`Server`, `Date`) and whether it
//! drops the app's hop-by-hop headers are its options, so a server states its policy once.
//! Chunk framing is in [`crate::chunked`], beside its decoder.

use super::{date, is_token, reason};

/// How the response body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// No body may be sent: HEAD, 1xx, 204, 304 (RFC 9110 §6.4.1).
    Empty,
    /// The app's Content-Length: exactly this many bytes, extra ones cut.
    Length(u64),
    /// HTTP/1.1 with unknown length.
    Chunked,
    /// HTTP/1.0 with unknown length: the close ends the body.
    Close,
}

/// What a worker needs to know to frame the response to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// How the body is delimited, which decides the framing headers.
    pub body: BodyMode,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

/// The request facts that decide framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1: an HTTP/1.0 client cannot read chunked bodies.
    pub minor: u8,
    /// A HEAD request: its response has a head only (RFC 9110 §9.3.2).
    pub head_request: bool,
    /// The client wants, and the worker offers, a persistent connection.
    pub keep_alive: bool,
}

/// The framing of a response with this status, the app's `Content-Length` (or a length the
/// server knows, such as a one-item body's), to this request (RFC 9112 §6.1-§6.3).
pub fn plan(status: u16, content_length: Option<u64>, req: RequestInfo) -> Plan {
    let no_body = req.head_request || status < 200 || status == 204 || status == 304;
    let body = match (no_body, content_length, req.minor) {
        (true, _, _) => BodyMode::Empty,
        (false, Some(n), _) => BodyMode::Length(n),
        (false, None, 1) => BodyMode::Chunked,
        (false, None, _) => BodyMode::Close,
    };
    Plan { body, keep_alive: req.keep_alive && body != BodyMode::Close }
}

/// Headers that only mean something for one connection (RFC 9110 §7.6.1), which PEP 3333
/// §"Other HTTP Features" forbids an app to send: the server frames the connection.
pub fn is_hop_by_hop(name: &str) -> bool {
    // Hot path: run for every header of every response, so the length picks the one or
    // two names to compare instead of trying all eight.
    let is = |h: &str| name.eq_ignore_ascii_case(h);
    match name.len() {
        2 => is("te"),
        7 => is("upgrade"),
        8 => is("trailers"),
        10 => is("connection") || is("keep-alive"),
        17 => is("transfer-encoding"),
        18 => is("proxy-authenticate"),
        19 => is("proxy-authorization"),
        _ => false,
    }
}

/// `"200 OK"` into 200; the reason phrase may be empty but not hold control characters
/// (RFC 9112 §4: `reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )`).
pub fn parse_status(status: &str) -> Result<u16, &'static str> {
    let b = status.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || (b.len() > 3 && b[3] != b' ') {
        return Err("status must start with a three-digit code and a space, like '200 OK'");
    }
    if b.iter().any(|&c| c < 0x20 && c != b'\t' || c == 0x7f) {
        return Err("status contains a control character");
    }
    if !status.is_ascii() && status.chars().any(|c| c as u32 > 0xff) {
        return Err("status is not latin-1");
    }
    let code = status[..3].parse::<u16>().unwrap_or_default();
    if code < 100 {
        return Err("status code must be 100 to 999");
    }
    Ok(code)
}

/// A header the app may send: a token name (RFC 9110 §5.1) and a value of field-vchars,
/// SP and HTAB (§5.5), as gunicorn's `HEADER_VALUE_RE` requires. A CR or LF would split
/// the response; other control characters are refused too, and characters past U+00FF,
/// which latin-1 (the bytes [`Encoder`] writes) cannot carry.
pub fn validate_header(name: &str, value: &str) -> Result<(), &'static str> {
    if !is_token(name.as_bytes()) {
        return Err("header name is not a token");
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err("header value contains CR, LF or NUL");
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("header value contains a control character");
    }
    if !value.is_ascii() && value.chars().any(|c| c as u32 > 0xff) {
        return Err("header value is not latin-1");
    }
    Ok(())
}

/// `1*DIGIT` Content-Length from the app.
pub fn parse_content_length(value: &str) -> Option<u64> {
    let v = value.trim();
    match !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        true => v.parse().ok(),
        false => None,
    }
}

/// The response encoder and its options: what it adds to the app's headers and what it
/// drops. `Copy` and `const`-constructible, so a server keeps its policy in one constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder<'a> {
    /// The `Server` header added when the app sends none; `None` adds none (RFC 9110
    /// §10.2.4 makes it optional, and some hide the server's name).
    pub server: Option<&'a str>,
    /// Add `Date` when the app sends none: an origin server with a clock must
    /// (RFC 9110 §6.6.1). Off for byte-exact test output.
    pub date: bool,
    /// Drop the app's hop-by-hop headers ([`is_hop_by_hop`]), as PEP 3333 requires of a
    /// WSGI server. Off, they pass (an upgrade's `Connection: upgrade` and `Upgrade`),
    /// except `Transfer-Encoding`, which the [`Plan`] decides; an app's `Connection`
    /// then replaces the encoder's own.
    pub drop_hop_by_hop: bool,
}

impl Encoder<'static> {
    /// No `Server` header, `Date` added, hop-by-hop headers dropped.
    pub const DEFAULT: Encoder<'static> =
        Encoder { server: None, date: true, drop_hop_by_hop: true };
}

impl Default for Encoder<'static> {
    fn default() -> Self {
        Encoder::DEFAULT
    }
}

/// The text of [`Encoder::error_page`] around the reason phrase, as gunicorn's
/// `util.write_error` writes it (without its message line).
const PAGE: [&str; 3] = [
    "<html>\n  <head>\n    <title>",
    "</title>\n  </head>\n  <body>\n    <h1><p>",
    "</p></h1>\n  </body>\n</html>\n",
];

impl Encoder<'_> {
    /// Writes the status line and headers. `status` is the app's whole status
    /// (`"200 OK"`), `code` its number, both checked by [`parse_status`]; `headers` passed
    /// [`validate_header`]. The framing headers come from `plan`: a known length the app
    /// did not state is added as `Content-Length`, none is sent on 1xx and 204 (RFC 9110
    /// §8.6), then `Transfer-Encoding: chunked` and `Connection`.
    pub fn encode_head<'h, I>(
        &self,
        out: &mut Vec<u8>,
        status: &str,
        headers: I,
        code: u16,
        plan: Plan,
    ) where
        I: IntoIterator<Item = (&'h str, &'h str)>,
    {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_latin1(out, status);
        out.extend_from_slice(b"\r\n");
        self.encode_fields(out, headers, code, plan);
    }

    /// The app's headers and the encoder's own, through the empty line.
    fn encode_fields<'h, I>(&self, out: &mut Vec<u8>, headers: I, code: u16, plan: Plan)
    where
        I: IntoIterator<Item = (&'h str, &'h str)>,
    {
        let (mut has_server, mut has_date, mut has_length) = (false, false, false);
        let mut has_connection = false;
        let forbids_length = code < 200 || code == 204;
        for (name, value) in headers {
            let is_length = name.eq_ignore_ascii_case("content-length");
            if (forbids_length && is_length) || self.drops(name) {
                continue;
            }
            has_server |= name.eq_ignore_ascii_case("server");
            has_date |= name.eq_ignore_ascii_case("date");
            has_length |= is_length;
            has_connection |= !self.drop_hop_by_hop && name.eq_ignore_ascii_case("connection");
            push_header(out, name, value);
        }
        if let (BodyMode::Length(n), false) = (plan.body, has_length) {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        if let (Some(server), false) = (self.server, has_server) {
            push_header(out, "Server", server);
        }
        if self.date && !has_date {
            out.extend_from_slice(b"Date: ");
            date::now(out);
            out.extend_from_slice(b"\r\n");
        }
        if plan.body == BodyMode::Chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        out.extend_from_slice(match (has_connection, plan.keep_alive) {
            (true, _) => b"\r\n",
            (false, true) => b"Connection: keep-alive\r\n\r\n",
            (false, false) => b"Connection: close\r\n\r\n",
        });
    }

    /// Whether an app's header is left out: hop-by-hop ones when the option says so, and
    /// `Transfer-Encoding` always, since the framing is the plan's.
    fn drops(&self, name: &str) -> bool {
        match self.drop_hop_by_hop {
            true => is_hop_by_hop(name),
            false => name.eq_ignore_ascii_case("transfer-encoding"),
        }
    }

    /// The whole response a server sends for a request it refuses or could not serve:
    /// gunicorn's short HTML page naming the status, then `Connection: close`. An
    /// unregistered status ([`reason`] is empty) is named by its number.
    pub fn error_page(&self, status: u16) -> Vec<u8> {
        let body = error_body(status);
        let mut out = Vec::with_capacity(160 + body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        let plan = Plan { body: BodyMode::Length(body.len() as u64), keep_alive: false };
        self.encode_fields(&mut out, [("Content-Type", "text/html")], status, plan);
        out.extend_from_slice(&body);
        out
    }
}

/// The body of [`Encoder::error_page`]: gunicorn's short HTML page naming the status (by
/// its number when [`reason`] has no phrase for it), for HTTP/2 as for HTTP/1.1.
pub fn error_body(status: u16) -> Vec<u8> {
    let phrase = reason(status);
    let number = status.to_string();
    let title = if phrase.is_empty() { number.as_str() } else { phrase };
    let mut out = Vec::with_capacity(PAGE.iter().map(|s| s.len()).sum::<usize>() + 2 * title.len());
    for (i, text) in PAGE.iter().enumerate() {
        out.extend_from_slice(text.as_bytes());
        if i < 2 {
            out.extend_from_slice(title.as_bytes());
        }
    }
    out
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_latin1(out, value);
    out.extend_from_slice(b"\r\n");
}

/// WSGI strings are latin-1 (PEP 3333 "native strings"); [`validate_header`] made sure
/// they fit. A character past U+00FF that skipped it becomes `?`, never a truncated byte
/// (U+010A would otherwise be an LF).
#[inline]
fn push_latin1(out: &mut Vec<u8>, s: &str) {
    if s.is_ascii() {
        out.extend_from_slice(s.as_bytes());
    } else {
        push_non_ascii(out, s);
    }
}

/// The rare case, kept out of line so the ASCII path inlines into its callers.
#[cold]
fn push_non_ascii(out: &mut Vec<u8>, s: &str) {
    out.extend(s.chars().map(|c| u8::try_from(c as u32).unwrap_or(b'?')));
}

/// `n` in decimal, without the allocation of `to_string`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The interim response sent when the app first reads a body the client is holding back
/// (RFC 9110 §10.1.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const GET11: RequestInfo = RequestInfo { minor: 1, head_request: false, keep_alive: false };
    /// The encoder with nothing time-dependent, for byte-exact rows.
    const PLAIN: Encoder<'static> = Encoder { server: None, date: false, drop_hop_by_hop: true };
    const KEEP: Plan = Plan { body: BodyMode::Length(5), keep_alive: true };
    const CHUNKED: Plan = Plan { body: BodyMode::Chunked, keep_alive: false };
    const EMPTY: Plan = Plan { body: BodyMode::Empty, keep_alive: true };

    #[test]
    fn framing_table() {
        let head = RequestInfo { head_request: true, ..GET11 };
        let http10 = RequestInfo { minor: 0, ..GET11 };
        let rows: &[(u16, Option<u64>, RequestInfo, BodyMode)] = &[
            (200, Some(5), GET11, BodyMode::Length(5)),
            (200, None, GET11, BodyMode::Chunked),
            (200, None, http10, BodyMode::Close),
            (200, Some(5), http10, BodyMode::Length(5)),
            (200, Some(5), head, BodyMode::Empty),
            (204, None, GET11, BodyMode::Empty),
            (304, Some(9), GET11, BodyMode::Empty),
            (101, None, GET11, BodyMode::Empty),
            (103, None, GET11, BodyMode::Empty),
            (205, Some(0), GET11, BodyMode::Length(0)),
        ];
        for &(status, cl, req, want) in rows {
            assert_eq!(plan(status, cl, req).body, want, "{status} {cl:?} {req:?}");
        }
    }

    #[test]
    fn close_delimited_bodies_never_keep_alive() {
        let req = RequestInfo { minor: 0, head_request: false, keep_alive: true };
        assert!(!plan(200, None, req).keep_alive);
        assert!(plan(200, Some(1), req).keep_alive);
    }

    #[test]
    fn hop_by_hop_table() {
        let hop = [
            "Connection",
            "keep-alive",
            "PROXY-AUTHENTICATE",
            "Proxy-Authorization",
            "TE",
            "Trailers",
            "Transfer-Encoding",
            "upgrade",
        ];
        for name in hop {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["", "T", "Tee", "Upgrades", "Content-Length", "Server", "Date", "Keep_Alive"] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    #[test]
    fn status_table() {
        let rows: &[(&str, Result<u16, ()>)] = &[
            ("200 OK", Ok(200)),
            ("404", Ok(404)),
            ("599 ", Ok(599)),
            ("299 Anything\tgoes \u{e9}", Ok(299)),
            ("100 Continue", Ok(100)),
            ("OK", Err(())),
            ("20 OK", Err(())),
            ("200OK", Err(())),
            ("200 OK\r\nX: y", Err(())),
            ("200 OK\n", Err(())),
            ("200 \x7f", Err(())),
            ("099 Low", Err(())),
            ("", Err(())),
            ("2000 OK", Err(())),
            ("200 \u{20ac}", Err(())),
        ];
        for &(status, want) in rows {
            assert_eq!(parse_status(status).map_err(|_| ()), want, "{status:?}");
        }
    }

    #[test]
    fn header_table() {
        let rows: &[(&str, &str, bool)] = &[
            ("X-Ok", "fine\tvalue", true),
            ("X-Ok", "", true),
            ("X-Latin", "caf\u{e9} \u{ff}", true),
            ("!#$%&'*+-.^_`|~09azAZ", "v", true),
            ("Bad Name", "v", false),
            ("", "v", false),
            ("X:", "v", false),
            ("X", "a\r\nSet-Cookie: x", false),
            ("X", "a\nb", false),
            ("X", "a\rb", false),
            ("X", "nul\0", false),
            ("X", "bell\x07", false),
            ("X", "esc\x1b[0m", false),
            ("X", "del\x7f", false),
            ("X", "not latin-1 \u{20ac}", false),
            ("X", "\u{10a}", false),
        ];
        for &(name, value, ok) in rows {
            assert_eq!(validate_header(name, value).is_ok(), ok, "{name:?}: {value:?}");
        }
    }

    /// Bug: `validate_header` refused only CR, LF and NUL, so an app's `X: a\x01b` went out
    /// as sent; RFC 9110 §5.5 allows no control character but HTAB in a value, and
    /// gunicorn 27 answers such a header with 500 (`InvalidResponseHeader`).
    #[test]
    fn regression_header_value_control_character_is_refused() {
        for b in (0x01u8..0x20).filter(|&b| b != b'\t').chain([0x7f]) {
            let value = format!("a{}b", b as char);
            assert!(validate_header("X", &value).is_err(), "{b:#04x}");
        }
    }

    #[test]
    fn content_length_table() {
        let rows: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("42", Some(42)),
            (" 42 ", Some(42)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("1,1", None),
            ("0x10", None),
        ];
        for &(value, want) in rows {
            assert_eq!(parse_content_length(value), want, "{value:?}");
        }
    }

    /// What each option changes, byte for byte: (encoder, status, headers, code, plan, head).
    #[test]
    fn encoder_table() {
        let server = Encoder { server: Some("srv/1"), ..PLAIN };
        let pass = Encoder { drop_hop_by_hop: false, ..PLAIN };
        let ct = ("Content-Type", "text/plain");
        type Row<'a> = (Encoder<'a>, &'a str, &'a [(&'a str, &'a str)], u16, Plan, &'a str);
        let rows: &[Row] = &[
            (PLAIN, "200 OK", &[ct], 200, KEEP,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
              Connection: keep-alive\r\n\r\n"),
            (PLAIN, "200 OK", &[("content-length", "5")], 200, KEEP,
             "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nConnection: keep-alive\r\n\r\n"),
            (PLAIN, "200 OK", &[ct], 200, CHUNKED,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n"),
            (PLAIN, "200 OK", &[("Connection", "upgrade"), ("TE", "x"), ("Keep-Alive", "1"),
                                ("Transfer-Encoding", "gzip"), ("Upgrade", "h2c"), ct],
             200, CHUNKED,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n"),
            (pass, "101 Switching Protocols", &[("Upgrade", "websocket"),
                                                 ("Connection", "Upgrade")], 101, EMPTY,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            (pass, "200 OK", &[("Transfer-Encoding", "chunked"), ("Keep-Alive", "timeout=5")],
             200, CHUNKED,
             "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n"),
            (server, "200 OK", &[], 200, KEEP,
             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: srv/1\r\nConnection: keep-alive\r\n\r\n"),
            (server, "200 OK", &[("server", "app")], 200, KEEP,
             "HTTP/1.1 200 OK\r\nserver: app\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"),
            (PLAIN, "204 No Content", &[("Content-Length", "0")], 204, EMPTY,
             "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"),
            (PLAIN, "304 Not Modified", &[("Content-Length", "9")], 304, EMPTY,
             "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\nConnection: keep-alive\r\n\r\n"),
            (PLAIN, "200 OK", &[], 200, Plan { body: BodyMode::Close, keep_alive: false },
             "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"),
            (PLAIN, "200 OK", &[], 200, Plan { body: BodyMode::Length(u64::MAX), keep_alive: false },
             "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nConnection: close\r\n\r\n"),
            (PLAIN, "200 OK", &[], 200, Plan { body: BodyMode::Length(0), keep_alive: false },
             "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            (PLAIN, "299 D\u{e9}j\u{e0}", &[("X-Name", "caf\u{e9}")], 299, EMPTY,
             "HTTP/1.1 299 D\u{e9}j\u{e0}\r\nX-Name: caf\u{e9}\r\nConnection: keep-alive\r\n\r\n"),
        ];
        for &(encoder, status, headers, code, plan, want) in rows {
            let mut out = Vec::new();
            encoder.encode_head(&mut out, status, headers.iter().copied(), code, plan);
            // The rows are latin-1 text: one byte per char.
            let want: Vec<u8> = want.chars().map(|c| c as u32 as u8).collect();
            assert_eq!(
                out,
                want,
                "{status} {headers:?} {plan:?}\n{}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    /// A date the encoder adds is an IMF-fixdate, after Server, before the framing.
    #[test]
    fn date_goes_after_server() {
        let mut out = Vec::new();
        let encoder = Encoder { server: Some("s"), ..Encoder::DEFAULT };
        encoder.encode_head(&mut out, "200 OK", [], 200, CHUNKED);
        let text = String::from_utf8(out).unwrap();
        let date = text.split("\r\nDate: ").nth(1).unwrap().split("\r\n").next().unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nServer: s\r\nDate: "), "{text}");
        assert_eq!(date.len(), "Sun, 06 Nov 1994 08:49:37 GMT".len(), "{date}");
        assert!(date.ends_with(" GMT"), "{date}");
        let mut app_date = Vec::new();
        encoder.encode_head(&mut app_date, "200 OK", [("Date", "x")], 200, CHUNKED);
        assert_eq!(String::from_utf8(app_date).unwrap().matches("Date").count(), 1);
    }

    #[test]
    fn latin1_never_truncates_to_a_control_byte() {
        let mut out = Vec::new();
        push_latin1(&mut out, "a\u{10a}\u{e9}\u{20ac}");
        assert_eq!(out, b"a?\xe9?");
    }

    /// gunicorn's page, byte for byte but for its message line (and ferricorn's `Server`).
    #[test]
    fn error_page_table() {
        let page = |title: &str| {
            format!(
                "<html>\n  <head>\n    <title>{title}</title>\n  </head>\n  <body>\n    \
                 <h1><p>{title}</p></h1>\n  </body>\n</html>\n"
            )
        };
        let rows: &[(u16, &str, &str)] = &[
            (400, "400 Bad Request", "Bad Request"),
            (413, "413 Content Too Large", "Content Too Large"),
            (414, "414 URI Too Long", "URI Too Long"),
            (417, "417 Expectation Failed", "Expectation Failed"),
            (431, "431 Request Header Fields Too Large", "Request Header Fields Too Large"),
            (500, "500 Internal Server Error", "Internal Server Error"),
            (501, "501 Not Implemented", "Not Implemented"),
            (503, "503 Service Unavailable", "Service Unavailable"),
            (599, "599 ", "599"),
        ];
        for &(status, line, title) in rows {
            let body = page(title);
            let want = format!(
                "HTTP/1.1 {line}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            assert_eq!(String::from_utf8(PLAIN.error_page(status)).unwrap(), want, "{status}");
        }
        let served = Encoder { server: Some("ferricorn"), ..Encoder::DEFAULT }.error_page(400);
        let text = String::from_utf8(served).unwrap();
        assert!(text.contains("\r\nServer: ferricorn\r\nDate: "), "{text}");
        assert!(text.contains(" GMT\r\nConnection: close\r\n\r\n<html>"), "{text}");
    }

    /// Every encoded head reads back, with httparse, as the status and fields it was made
    /// of (hop-by-hop ones gone), whole and byte by byte: the encoder cannot split a head.
    #[test]
    fn encoded_heads_parse_back() {
        let headers = [("Content-Type", "text/plain"), ("X-Tab", "a\tb"), ("Connection", "x")];
        for plan in [KEEP, CHUNKED, EMPTY] {
            let mut out = Vec::new();
            Encoder::DEFAULT.encode_head(&mut out, "201 Made", headers, 201, plan);
            for step in [out.len(), 1] {
                let got = parse_response(&out, step);
                assert_eq!(got.0, 201);
                assert_eq!(
                    &got.1[..2],
                    &[
                        ("Content-Type".into(), "text/plain".into()),
                        ("X-Tab".into(), "a\tb".into())
                    ]
                );
                assert_eq!(got.1.iter().filter(|(n, _)| n == "Connection").count(), 1);
            }
        }
    }

    /// httparse's reading of a response head fed `step` bytes at a time.
    fn parse_response(bytes: &[u8], step: usize) -> (u16, Vec<(String, String)>) {
        for end in (step..bytes.len()).step_by(step).chain([bytes.len()]) {
            let mut slots = [httparse::EMPTY_HEADER; 16];
            let mut res = httparse::Response::new(&mut slots);
            match res.parse(&bytes[..end]).expect("a valid head") {
                httparse::Status::Partial => assert!(end < bytes.len(), "incomplete head"),
                httparse::Status::Complete(n) => {
                    assert_eq!(n, bytes.len(), "the head ends at its empty line");
                    let fields = res.headers.iter().map(|h| {
                        (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned())
                    });
                    return (res.code.unwrap(), fields.collect());
                }
            }
        }
        unreachable!("the whole head was fed")
    }
}

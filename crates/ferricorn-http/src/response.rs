//! Response heads: what the app may say, how the body is delimited, and the bytes.
//!
//! The app's status and headers are validated before anything is sent (a CR or LF in a
//! value would let it split the response); hop-by-hop headers are the server's business,
//! so the app's are dropped (PEP 3333, gunicorn's `is_hoppish`).

use super::{date, is_token};

/// The `Server` header value sent when the app does not set one.
pub const SERVER: &str = "ferricorn";

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
    pub body: BodyMode,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

/// The request facts that decide framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub head_request: bool,
    /// The client wants, and the worker offers, a persistent connection.
    pub keep_alive: bool,
}

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

/// Headers that only mean something for one connection (RFC 9110 §7.6.1).
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// `"200 OK"` into 200; the reason phrase may be empty but not hold control characters.
pub fn parse_status(status: &str) -> Result<u16, &'static str> {
    let b = status.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || (b.len() > 3 && b[3] != b' ') {
        return Err("status must start with a three-digit code and a space, like '200 OK'");
    }
    if b.iter().any(|&c| c < 0x20 && c != b'\t' || c == 0x7f) {
        return Err("status contains a control character");
    }
    let code = status[..3].parse::<u16>().unwrap_or_default();
    if code < 100 {
        return Err("status code must be 100 to 999");
    }
    Ok(code)
}

/// A header the app may send: a token name and a value without CR, LF or NUL.
pub fn validate_header(name: &str, value: &str) -> Result<(), &'static str> {
    if !is_token(name.as_bytes()) {
        return Err("header name is not a token");
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err("header value contains CR, LF or NUL");
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

/// Writes the status line and headers. `headers` are the app's, already validated;
/// hop-by-hop ones are skipped here and the framing headers come from `plan` (a known
/// length the app did not state is added as Content-Length).
pub fn encode_head<'a, I>(out: &mut Vec<u8>, status: &str, headers: I, code: u16, plan: Plan)
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    out.extend_from_slice(b"HTTP/1.1 ");
    push_latin1(out, status);
    out.extend_from_slice(b"\r\n");
    let (mut has_server, mut has_date, mut has_length) = (false, false, false);
    let forbids_length = code < 200 || code == 204;
    for (name, value) in headers {
        if is_hop_by_hop(name) || (forbids_length && name.eq_ignore_ascii_case("content-length")) {
            continue;
        }
        has_server |= name.eq_ignore_ascii_case("server");
        has_date |= name.eq_ignore_ascii_case("date");
        has_length |= name.eq_ignore_ascii_case("content-length");
        push_header(out, name, value);
    }
    if let (BodyMode::Length(n), false) = (plan.body, has_length) {
        push_header(out, "Content-Length", &n.to_string());
    }
    if !has_server {
        push_header(out, "Server", SERVER);
    }
    if !has_date {
        out.extend_from_slice(b"Date: ");
        date::now(out);
        out.extend_from_slice(b"\r\n");
    }
    if plan.body == BodyMode::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(if plan.keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_latin1(out, value);
    out.extend_from_slice(b"\r\n");
}

/// WSGI strings are latin-1 (PEP 3333 "native strings"); validation made sure they fit.
fn push_latin1(out: &mut Vec<u8>, s: &str) {
    if s.is_ascii() {
        out.extend_from_slice(s.as_bytes());
    } else {
        out.extend(s.chars().map(|c| c as u32 as u8));
    }
}

/// A complete response the server writes itself (errors, 100 Continue).
pub fn simple(status: u16, body: &str) -> Vec<u8> {
    let status_line = format!("{status} {}", super::reason(status));
    let len = body.len().to_string();
    let headers = [("Content-Type", "text/html"), ("Content-Length", len.as_str())];
    let plan = Plan { body: BodyMode::Length(body.len() as u64), keep_alive: false };
    let mut out = Vec::with_capacity(160 + body.len());
    encode_head(&mut out, &status_line, headers, status, plan);
    out.extend_from_slice(body.as_bytes());
    out
}

/// The interim response sent when the app first reads a body the client is holding back.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const GET11: RequestInfo = RequestInfo { minor: 1, head_request: false, keep_alive: false };

    #[test]
    fn framing_table() {
        let head = RequestInfo { head_request: true, ..GET11 };
        let http10 = RequestInfo { minor: 0, ..GET11 };
        let rows: &[(u16, Option<u64>, RequestInfo, BodyMode)] = &[
            (200, Some(5), GET11, BodyMode::Length(5)),
            (200, None, GET11, BodyMode::Chunked),
            (200, None, http10, BodyMode::Close),
            (200, Some(5), head, BodyMode::Empty),
            (204, None, GET11, BodyMode::Empty),
            (304, Some(9), GET11, BodyMode::Empty),
            (101, None, GET11, BodyMode::Empty),
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
    fn status_and_header_validation() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404"), Ok(404));
        for bad in ["OK", "20 OK", "200OK", "200 OK\r\nX: y", "099 Low"] {
            assert!(parse_status(bad).is_err(), "{bad}");
        }
        assert!(validate_header("X-Ok", "fine\tvalue").is_ok());
        assert!(validate_header("Bad Name", "v").is_err());
        assert!(validate_header("X", "a\r\nSet-Cookie: x").is_err());
        assert!(validate_header("X", "nul\0").is_err());
    }

    #[test]
    fn head_drops_hop_by_hop_and_adds_server_date_framing() {
        let mut out = Vec::new();
        let headers = [("Content-Type", "text/plain"), ("Connection", "upgrade"), ("TE", "x")];
        let plan = Plan { body: BodyMode::Chunked, keep_alive: false };
        encode_head(&mut out, "200 OK", headers, 200, plan);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"), "{text}");
        assert!(!text.contains("upgrade") && !text.contains("TE: x"), "{text}");
        assert!(text.contains("\r\nServer: ferricorn\r\nDate: "), "{text}");
        assert!(
            text.ends_with("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn no_content_length_on_204() {
        let mut out = Vec::new();
        let plan = Plan { body: BodyMode::Empty, keep_alive: false };
        encode_head(&mut out, "204 No Content", [("Content-Length", "0")], 204, plan);
        assert!(!String::from_utf8(out).unwrap().contains("Content-Length"));
    }
}

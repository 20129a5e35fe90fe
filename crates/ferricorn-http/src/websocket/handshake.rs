//! The opening handshake, RFC 6455 §4.2, as gunicorn 27's asgi worker judges it
//! (gunicorn/asgi/protocol.py: `_is_websocket_upgrade`, `_handle_websocket`,
//! `_valid_websocket_key`, `_build_websocket_scope`; the 101 of websocket.py's
//! `_send_accept`), so a request gets the same answer from either server.
//!
//! [`read_offer`] sorts a parsed head three ways: not an upgrade (plain HTTP), an upgrade
//! refused before the app runs ([`Refusal`]: 426 or 400), or an [`Offer`] for the app to
//! accept or deny. [`write_accept`] and [`write_refusal`] write the server's answer.

use crate::response::validate_header;
use crate::{reason, Head};

/// RFC 6455 §1.3: appended to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The one version this server speaks (RFC 6455 §4.2.2: sent back with a 426).
const VERSION: &str = "13";

/// The headers of a 426: the version this server speaks (RFC 6455 §4.2.2).
const VERSION_HEADERS: &[(&str, &str)] = &[("Sec-WebSocket-Version", VERSION)];

/// What a client's upgrade request offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// `Sec-WebSocket-Key`, trimmed as Python's `str.strip()`: base64 of 16 bytes, hashed into the 101's accept key.
    pub key: String,
    /// `Sec-WebSocket-Protocol` split on `,` and trimmed, in the client's order of
    /// preference: the ASGI scope's `subprotocols`. gunicorn reads the first such field
    /// only, and keeps empty items (`"a,,b"` gives `["a", "", "b"]`); so does this.
    pub protocols: Vec<String>,
    /// `Sec-WebSocket-Extensions` items (every such field, split on `,`, trimmed as the
    /// protocols are, empty items dropped), parameters included: none is accepted here, the list is for logs.
    pub extensions: Vec<String>,
}

/// An upgrade request refused before the app sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 426 for a version other than 13 (RFC 6455 §4.2.2), 400 for a bad key (§4.2.1).
    pub status: u16,
    /// Headers the refusal carries: `Sec-WebSocket-Version: 13` on a 426.
    pub headers: &'static [(&'static str, &'static str)],
    /// Why, for the server's log; the status line carries the registered reason phrase.
    pub reason: &'static str,
}

/// The fields of a head that the handshake reads, each as gunicorn picks it.
#[derive(Default)]
struct Fields<'a> {
    /// The last `Upgrade` field (gunicorn's loop keeps overwriting).
    upgrade: Option<&'a [u8]>,
    /// The last `Connection` field.
    connection: Option<&'a [u8]>,
    /// The last `Sec-WebSocket-Version`.
    version: Option<&'a [u8]>,
    /// The last `Sec-WebSocket-Key`.
    key: Option<&'a [u8]>,
    /// The first `Sec-WebSocket-Protocol` (gunicorn breaks out of its loop there).
    protocol: Option<&'a [u8]>,
    /// Every `Sec-WebSocket-Extensions`, in order.
    extensions: Vec<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn read(head: &'a Head) -> Fields<'a> {
        let mut f = Fields::default();
        for (name, value) in head.fields() {
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("upgrade") {
                f.upgrade = Some(value);
            } else if is("connection") {
                f.connection = Some(value);
            } else if is("sec-websocket-version") {
                f.version = Some(value);
            } else if is("sec-websocket-key") {
                f.key = Some(value);
            } else if is("sec-websocket-protocol") {
                f.protocol = f.protocol.or(Some(value));
            } else if is("sec-websocket-extensions") {
                f.extensions.push(value);
            }
        }
        f
    }

    /// RFC 6455 §4.1 as gunicorn's `_is_websocket_upgrade` tests it: the last `Upgrade`
    /// is `websocket` (any case) and the last `Connection` contains `upgrade` (any case,
    /// as a substring: gunicorn's `"upgrade" in connection`).
    fn is_upgrade(&self) -> bool {
        let upgrade = self.upgrade.is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
        let connection = self
            .connection
            .is_some_and(|v| v.windows(7).any(|w| w.eq_ignore_ascii_case(b"upgrade")));
        upgrade && connection
    }
}

/// None: not a WebSocket upgrade (GET + `Upgrade: websocket` (case-insensitive) +
/// `Connection` containing `upgrade`; anything else is served as plain HTTP).
/// Some(Err): version != "13" -> 426 with `Sec-WebSocket-Version: 13`; a key that is not
/// base64 of 16 bytes -> 400. This is exactly gunicorn 27's rule (`_is_websocket_upgrade`,
/// `_handle_websocket`, `_valid_websocket_key`); subprotocols are split on ',' and
/// trimmed, as gunicorn's `_build_websocket_scope` does.
pub fn read_offer(head: &Head) -> Option<Result<Offer, Refusal>> {
    // RFC 6455 §4.1: "The method of the request MUST be GET".
    if head.method() != "GET" {
        return None;
    }
    let fields = Fields::read(head);
    if !fields.is_upgrade() {
        return None;
    }
    // §4.2.1 item 6, §4.2.2: a version we do not speak gets 426 and the one we do.
    if fields.version.map(py_strip) != Some(VERSION.as_bytes()) {
        let reason = "Sec-WebSocket-Version is not 13";
        return Some(Err(Refusal { status: 426, headers: VERSION_HEADERS, reason }));
    }
    // §4.2.1 item 5: the key is base64 of a 16-byte nonce.
    let key = fields.key.map(py_strip).unwrap_or_default();
    if !valid_key(key) {
        let reason = "Sec-WebSocket-Key is not base64 of 16 bytes";
        return Some(Err(Refusal { status: 400, headers: &[], reason }));
    }
    let protocols = match fields.protocol {
        Some(v) => v.split(|&b| b == b',').map(|p| latin1(py_strip(p))).collect(),
        None => Vec::new(),
    };
    let extensions = (fields.extensions.iter())
        .flat_map(|v| v.split(|&b| b == b','))
        .map(py_strip)
        .filter(|e| !e.is_empty())
        .map(latin1)
        .collect();
    Some(Ok(Offer { key: latin1(key), protocols, extensions }))
}

/// Python's `str.strip()` on latin-1 text, as gunicorn trims the version, the key and
/// each subprotocol: ASCII whitespace, the separators 0x1C-0x1F, NEL (0x85) and NBSP
/// (0xA0), the last two being obs-text a field value may carry.
fn py_strip(v: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b'\t'..=b'\r' | 0x1c..=0x20 | 0x85 | 0xa0);
    let start = v.iter().position(|b| !space(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !space(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// A field value as the latin-1 text gunicorn (and the ASGI scope) sees.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// gunicorn's `_valid_websocket_key`: `base64.b64decode(key, validate=True)` gives 16
/// bytes. Only 22 base64 characters and `==` do (the unused low bits of the last
/// character are not checked, as Python does not check them).
fn valid_key(key: &[u8]) -> bool {
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(is_b64) && &key[22..] == b"=="
}

/// base64(SHA-1(key + 258EAFA5-E914-47DA-95CA-C5AB0DC85B11)): the `Sec-WebSocket-Accept`
/// that proves the server read the handshake (RFC 6455 §4.2.2 item 5.4).
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    crate::base64::encode(&sha.digest().bytes())
}

/// Appends the `101 Switching Protocols` head: Upgrade, Connection, Sec-WebSocket-Accept,
/// `Sec-WebSocket-Protocol` if `subprotocol` (an empty one is none, as gunicorn's
/// `if subprotocol:`), then the app's extra headers. Nothing is written unless all of
/// them pass [`validate_header`] (no CR, LF or NUL; a token name).
pub fn write_accept(
    out: &mut Vec<u8>,
    offer: &Offer,
    subprotocol: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(), &'static str> {
    let subprotocol = subprotocol.filter(|p| !p.is_empty());
    if let Some(p) = subprotocol {
        validate_header("Sec-WebSocket-Protocol", p)?;
    }
    for &(name, value) in headers {
        validate_header(name, value)?;
    }
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
    out.extend_from_slice(b"Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(accept_key(&offer.key).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = subprotocol {
        push_header(out, "Sec-WebSocket-Protocol", p);
    }
    for &(name, value) in headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends the HTTP response for a refusal: the status line with its registered reason
/// phrase, the refusal's headers, `Content-Length: 0`, `Connection: close`.
pub fn write_refusal(out: &mut Vec<u8>, refusal: &Refusal) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(refusal.status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(refusal.status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for &(name, value) in refusal.headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
}

/// One `name: value` line, the value as latin-1 ([`validate_header`] made sure it fits).
fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend(value.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_head, Limits};
    use bytes::BytesMut;

    /// RFC 6455 §1.3's sample key.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn head(fields: &str) -> Head {
        head_with("GET", fields)
    }

    fn head_with(method: &str, fields: &str) -> Head {
        let raw = format!("{method} /chat HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
        // Latin-1, as the rows mean their characters past ASCII.
        let mut buf: BytesMut = raw.chars().map(|c| c as u8).collect();
        parse_head(&mut buf, &Limits::default()).expect("valid head").expect("whole head")
    }

    fn upgrade(extra: &str) -> String {
        format!("Upgrade: websocket\r\nConnection: Upgrade\r\n{extra}")
    }

    #[test]
    fn accept_key_matches_rfc_6455() {
        // RFC 6455 §1.3's worked example.
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn which_requests_are_upgrades() {
        let v13 = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n");
        // (method, fields, is an upgrade): gunicorn's `_is_websocket_upgrade`.
        let rows: Vec<(&str, String, bool)> = vec![
            ("GET", upgrade(&v13), true),
            (
                "GET",
                format!("upgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n{v13}"),
                true,
            ),
            ("POST", upgrade(&v13), false),
            ("HEAD", upgrade(&v13), false),
            ("GET", format!("Upgrade: websocket\r\n{v13}"), false),
            ("GET", format!("Connection: Upgrade\r\n{v13}"), false),
            ("GET", format!("Upgrade: h2c, websocket\r\nConnection: Upgrade\r\n{v13}"), false),
            ("GET", format!("Upgrade: websocket\r\nConnection: close\r\n{v13}"), false),
            // The last field wins, as gunicorn's loop overwrites.
            (
                "GET",
                format!("Upgrade: h2c\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{v13}"),
                true,
            ),
            (
                "GET",
                format!("Upgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n{v13}"),
                false,
            ),
            (
                "GET",
                format!("Upgrade: websocket\r\nConnection: Upgrade\r\nConnection: close\r\n{v13}"),
                false,
            ),
            // `"upgrade" in connection` is a substring test.
            ("GET", format!("Upgrade: websocket\r\nConnection: x-upgraded\r\n{v13}"), true),
            ("GET", "Upgrade: websocket\r\nConnection: Upgrade\r\n".into(), true),
        ];
        for (method, fields, want) in rows {
            let got = read_offer(&head_with(method, &fields)).is_some();
            assert_eq!(got, want, "{method} {fields:?}");
        }
    }

    #[test]
    fn refusals_match_gunicorn() {
        let key =
            |k: &str| upgrade(&format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {k}\r\n"));
        // (fields, refusal status or 0 for an offer)
        let rows: Vec<(String, u16)> = vec![
            (key(KEY), 0),
            (upgrade(&format!("Sec-WebSocket-Key: {KEY}\r\n")), 426),
            (upgrade(&format!("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n")), 426),
            (upgrade(&format!("Sec-WebSocket-Version: 13, 8\r\nSec-WebSocket-Key: {KEY}\r\n")), 426),
            // The last version counts.
            (upgrade(&format!("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n")), 0),
            // The version is judged before the key.
            (upgrade("Sec-WebSocket-Version: 7\r\n"), 426),
            (upgrade("Sec-WebSocket-Version: 13\r\n"), 400),
            (key(""), 400),
            (key("AAAAAAAAAAAAAAAAAAAAAA=="), 0),
            // Python does not check the unused bits of the last character.
            (key("AAAAAAAAAAAAAAAAAAAAAB=="), 0),
            (key("AAAAAAAAAAAAAAAAAAAAAA="), 400),
            (key("AAAAAAAAAAAAAAAAAAAAAA"), 400),
            (key("AAAAAAAAAAAAAAAAAAAAAAA="), 400),
            (key("AAAAAAAAAAAAAAAAAAAAAAAA"), 400),
            (key("AAAAAAAAAAAAAAAAAAAAA*=="), 400),
            (key("AAAAAAAAAAAAAAAAAAAAAA=A="), 400),
            (key("dGhlIHNhbXBsZSBub25jZQ=="), 0),
            // gunicorn's `.strip()` is Python's: NBSP and NEL are whitespace too.
            (key("dGhlIHNhbXBsZSBub25jZQ==\u{a0}"), 0),
            (upgrade(&format!("Sec-WebSocket-Version: 13\u{85}\r\nSec-WebSocket-Key: {KEY}\r\n")), 0),
        ];
        for (fields, want) in rows {
            let got = read_offer(&head(&fields)).expect("an upgrade");
            match got {
                Ok(_) => assert_eq!(want, 0, "{fields:?}"),
                Err(r) => {
                    assert_eq!(r.status, want, "{fields:?}");
                    let headers: &[(&str, &str)] = match r.status {
                        426 => &[("Sec-WebSocket-Version", "13")],
                        _ => &[],
                    };
                    assert_eq!(r.headers, headers);
                }
            }
        }
    }

    #[test]
    fn offers_read_protocols_and_extensions() {
        let base = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n");
        // (extra fields, protocols, extensions)
        let rows: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
            ("", vec![], vec![]),
            ("Sec-WebSocket-Protocol: chat\r\n", vec!["chat"], vec![]),
            ("Sec-WebSocket-Protocol: chat, superchat\r\n", vec!["chat", "superchat"], vec![]),
            // gunicorn reads the first field only and keeps empty items.
            (
                "Sec-WebSocket-Protocol: a,,b\r\nSec-WebSocket-Protocol: c\r\n",
                vec!["a", "", "b"],
                vec![],
            ),
            (
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x\r\n\
                 Sec-WebSocket-Extensions: y,\r\n",
                vec![],
                vec!["permessage-deflate; client_max_window_bits", "x", "y"],
            ),
        ];
        for (extra, protocols, extensions) in rows {
            let offer = read_offer(&head(&upgrade(&format!("{base}{extra}")))).unwrap().unwrap();
            assert_eq!(offer.key, KEY);
            assert_eq!(offer.protocols, protocols, "{extra:?}");
            assert_eq!(offer.extensions, extensions, "{extra:?}");
        }
    }

    /// The handshake fuzz target's first find: extensions were trimmed of ASCII space
    /// only, the protocols as Python's `strip()` (fuzz/regressions/handshake).
    #[test]
    fn regression_extensions_are_trimmed_as_protocols_are() {
        let base = format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n");
        let fields = format!("{base}Sec-WebSocket-Extensions: a,\u{a0}b\u{85}, \u{a0}\r\n");
        let offer = read_offer(&head(&upgrade(&fields))).unwrap().unwrap();
        assert_eq!(offer.extensions, ["a", "b"]);
    }

    #[test]
    fn accept_heads() {
        let offer = Offer { key: KEY.into(), protocols: vec![], extensions: vec![] };
        let start =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
        // (subprotocol, headers, the head after the accept key, or the error)
        type Row<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], Result<&'a str, &'a str>);
        let rows: &[Row] = &[
            (None, &[], Ok("\r\n")),
            (Some(""), &[], Ok("\r\n")),
            (Some("chat"), &[], Ok("Sec-WebSocket-Protocol: chat\r\n\r\n")),
            (
                Some("chat"),
                &[("X-A", "1"), ("Set-Cookie", "b=2")],
                Ok("Sec-WebSocket-Protocol: chat\r\nX-A: 1\r\nSet-Cookie: b=2\r\n\r\n"),
            ),
            (Some("ch\r\nX: y"), &[], Err("header value contains CR, LF or NUL")),
            (None, &[("X-A", "1\n")], Err("header value contains CR, LF or NUL")),
            (None, &[("X-A", "a\0")], Err("header value contains CR, LF or NUL")),
            (None, &[("X A", "1")], Err("header name is not a token")),
            (None, &[("", "1")], Err("header name is not a token")),
        ];
        for &(subprotocol, headers, want) in rows {
            let mut out = b"before".to_vec();
            let got = write_accept(&mut out, &offer, subprotocol, headers);
            match want {
                Ok(rest) => {
                    assert_eq!(got, Ok(()));
                    assert_eq!(String::from_utf8_lossy(&out), format!("before{start}{rest}"));
                }
                Err(why) => {
                    assert_eq!(got, Err(why), "{subprotocol:?} {headers:?}");
                    assert_eq!(out, b"before", "nothing written on an error");
                }
            }
        }
    }

    #[test]
    fn refusal_responses() {
        let rows = [
            (
                Refusal { status: 426, headers: VERSION_HEADERS, reason: "v" },
                "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            (
                Refusal { status: 400, headers: &[], reason: "k" },
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
        ];
        for (refusal, want) in rows {
            let mut out = Vec::new();
            write_refusal(&mut out, &refusal);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}

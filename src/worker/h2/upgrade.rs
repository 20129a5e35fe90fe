//! HTTP/1.1's `Upgrade: h2c` (RFC 7540 §3.2, dropped by RFC 9113 and still served by
//! gunicorn 27): a cleartext request that asks to go on in HTTP/2 is answered `101`, and
//! becomes stream 1 of the HTTP/2 connection that follows.
//!
//! h2 cannot be told "stream 1 is this request" (upgrade is a non-goal of the crate), so
//! the connection's bytes are rewritten instead: after the client's preface and first
//! frame (its SETTINGS), the adapter ([`super::io::H2Io`]) hands h2 a HEADERS frame on
//! stream 1 carrying the request, and DATA frames carrying its body, as if the client had
//! sent them ([`stream_one`]). Its header block uses literals without indexing only (RFC
//! 7541 §6.2.2), so the dynamic table the client's encoder drives is untouched and every
//! later block still decodes. benches/h2_engine/src/upgrade.rs was the experiment.

use bytes::{BufMut, Bytes, BytesMut};

use crate::http::base64::{self, Alphabet};
use crate::http::{BodyFraming, Head};

/// The answer that switches protocols (RFC 9110 §15.2.2), as gunicorn 27 words it.
pub const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The largest body an upgrade request may carry: it is replayed as DATA before any
/// window update, inside the connection's first window (RFC 9113 §6.9.2). gunicorn 27
/// allows 65,536 bytes; one byte more would overflow that window.
pub const BODY_LIMIT: usize = 65_535;

/// The largest frame h2 takes before the client has acknowledged its settings.
pub const FRAME: usize = 16_384;

/// What the switch gives the HTTP/2 connection: the `101` to write before h2's first
/// frame, and stream 1's frames to replay after the client's first one.
#[derive(Debug)]
pub struct Upgraded {
    /// [`SWITCHING`], written before anything h2 writes.
    pub prelude: Bytes,
    /// Stream 1's HEADERS (and CONTINUATION) and DATA frames.
    pub splice: Bytes,
}

/// How many body bytes the request carries if it asks for `h2c` as gunicorn 27 honours
/// it (its `upgrade_settings`): `Upgrade: h2c`, exactly one `HTTP2-Settings` that decodes
/// to valid settings, both named in `Connection`, HTTP/1.1, a body of at most
/// [`BODY_LIMIT`] by `Content-Length`. `None`: serve it as HTTP/1.1 (RFC 9110 §7.8 lets a
/// server ignore `Upgrade`).
pub fn asked(head: &Head) -> Option<usize> {
    if head.version < (1, 1) {
        return None;
    }
    let (mut upgrade, mut settings, mut connection) = (None, Vec::new(), None);
    for (name, value) in head.fields() {
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = Some(value);
        } else if name.eq_ignore_ascii_case(b"http2-settings") {
            settings.push(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection = Some(value);
        }
    }
    if !upgrade.is_some_and(|u| u.trim_ascii().eq_ignore_ascii_case(b"h2c")) {
        return None;
    }
    let tokens = connection.unwrap_or_default().split(|&b| b == b',').map(<[u8]>::trim_ascii);
    let named = |want: &[u8]| tokens.clone().any(|t| t.eq_ignore_ascii_case(want));
    if settings.len() != 1 || !named(b"http2-settings") || !named(b"upgrade") {
        return None;
    }
    if !settings_valid(settings[0].trim_ascii()) {
        return None;
    }
    match head.framing {
        BodyFraming::Empty => Some(0),
        BodyFraming::Length(n) if n <= BODY_LIMIT as u64 => Some(n as usize),
        _ => None,
    }
}

/// gunicorn's `_settings_payload_valid`: base64url of 6-byte settings whose
/// ENABLE_PUSH is 0 or 1, INITIAL_WINDOW_SIZE at most 2^31 - 1, MAX_FRAME_SIZE within
/// RFC 9113 §6.5.2's bounds.
fn settings_valid(payload: &[u8]) -> bool {
    let Some(raw) =
        std::str::from_utf8(payload).ok().and_then(|t| base64::decode(t, Alphabet::UrlSafe))
    else {
        return false;
    };
    raw.len() % 6 == 0
        && raw.chunks(6).all(|s| {
            let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match u16::from_be_bytes([s[0], s[1]]) {
                2 => value <= 1,
                4 => value < (1 << 31),
                5 => (16_384..=16_777_215).contains(&value),
                _ => true,
            }
        })
}

/// Fields that mean something for the HTTP/1.1 connection only: HTTP/2 forbids them
/// (RFC 9113 §8.2.2), and `host` becomes `:authority`.
fn dropped(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 8] = [
        b"connection",
        b"upgrade",
        b"http2-settings",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"host",
    ];
    NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// The switch for `head` and its `body`: the `101`, and stream 1 as h2 will read it.
fn upgraded(head: &Head, body: &[u8]) -> Upgraded {
    Upgraded { prelude: Bytes::from_static(SWITCHING), splice: stream_one(head, body) }
}

/// The switch once `received` holds the body (`length` bytes, split off it); `None`
/// while it does not. An `Expect: 100-continue` client gets its `100` first, through
/// `continue_now`, once.
pub fn when_received(
    head: &mut Head,
    length: usize,
    received: &mut BytesMut,
    continue_now: impl FnOnce(),
) -> Option<Upgraded> {
    if received.len() >= length {
        return Some(upgraded(head, &received.split_to(length)));
    }
    if std::mem::take(&mut head.expect_continue) {
        continue_now();
    }
    None
}

/// Stream 1's frames: the request's HEADERS (CONTINUATION past [`FRAME`] bytes), then its
/// body as DATA, END_STREAM on the last.
pub fn stream_one(head: &Head, body: &[u8]) -> Bytes {
    let mut block = Vec::with_capacity(256);
    literal(&mut block, b":method", head.method().as_bytes());
    literal(&mut block, b":scheme", b"http");
    literal(&mut block, b":path", head.target().as_bytes());
    if let Some((_, host)) = head.fields().find(|(n, _)| n.eq_ignore_ascii_case(b"host")) {
        literal(&mut block, b":authority", host);
    }
    for (name, value) in head.fields().filter(|(n, _)| !dropped(n)) {
        literal(&mut block, &name.to_ascii_lowercase(), value);
    }
    let mut out = BytesMut::with_capacity(block.len() + body.len() + 64);
    let pieces: Vec<&[u8]> = block.chunks(FRAME).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let (kind, mut flags) = if i == 0 { (HEADERS, 0) } else { (CONTINUATION, 0) };
        if i + 1 == pieces.len() {
            flags |= END_HEADERS;
        }
        if i == 0 && body.is_empty() {
            flags |= END_STREAM;
        }
        frame(&mut out, kind, flags, piece);
    }
    let chunks: Vec<&[u8]> = body.chunks(FRAME).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let flags = if i + 1 == chunks.len() { END_STREAM } else { 0 };
        frame(&mut out, DATA, flags, chunk);
    }
    out.freeze()
}

/// Frame types and flags (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One frame on stream 1 (RFC 9113 §4.1).
fn frame(out: &mut BytesMut, kind: u8, flags: u8, payload: &[u8]) {
    out.put_uint(payload.len() as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(1);
    out.put_slice(payload);
}

/// A literal header field without indexing, new name (RFC 7541 §6.2.2), no Huffman.
fn literal(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    block.push(0);
    for text in [name, value] {
        integer(block, text.len(), 7);
        block.extend_from_slice(text);
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits zero.
fn integer(block: &mut Vec<u8>, mut value: usize, n: u32) {
    let max = (1usize << n) - 1;
    if value < max {
        block.push(value as u8);
        return;
    }
    block.push(max as u8);
    value -= max;
    while value >= 128 {
        block.push((value % 128 + 128) as u8);
        value /= 128;
    }
    block.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        let mut buf = BytesMut::from(text.as_bytes());
        crate::http::parse_head(&mut buf, &crate::http::Limits::default()).unwrap().unwrap()
    }

    const SETTINGS: &str = "AAMAAABkAAQAoAAAAAIAAAAA"; // curl's

    #[test]
    fn only_what_gunicorn_upgrades_is_upgraded() {
        let ask = |extra: &str| {
            let text = format!("GET / HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
            asked(&head(&text))
        };
        let good = format!(
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: {SETTINGS}\r\n"
        );
        assert_eq!(ask(&good), Some(0));
        assert_eq!(ask(&format!("{good}Content-Length: 5\r\n")), Some(5));
        assert_eq!(ask(&format!("{good}Content-Length: 65536\r\n")), None);
        assert_eq!(ask(&format!("{good}Transfer-Encoding: chunked\r\n")), None);
        assert_eq!(ask(&good.replace("h2c", "websocket")), None);
        assert_eq!(ask(&good.replace("Upgrade, HTTP2-Settings", "Upgrade")), None);
        assert_eq!(ask(&format!("{good}HTTP2-Settings: {SETTINGS}\r\n")), None);
        // ENABLE_PUSH 2 is no setting at all.
        assert_eq!(ask(&good.replace(SETTINGS, "AAIAAAAC")), None);
        assert_eq!(ask(&good.replace(SETTINGS, "!!")), None);
        let old = format!("GET / HTTP/1.0\r\nHost: h\r\n{good}\r\n");
        assert_eq!(asked(&head(&old)), None);
    }

    #[test]
    fn stream_one_carries_the_request_as_literal_fields_then_its_body() {
        let request = head(
            "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nX-Y: z\r\n\r\n",
        );
        let frames = stream_one(&request, b"");
        let mut block = Vec::new();
        for (name, value) in [(":method", "GET"), (":scheme", "http"), (":path", "/a")] {
            block.extend(
                [
                    &[0, name.len() as u8][..],
                    name.as_bytes(),
                    &[value.len() as u8],
                    value.as_bytes(),
                ]
                .concat(),
            );
        }
        block.extend(b"\x00\x0a:authority\x01h\x00\x03x-y\x01z");
        // One HEADERS on stream 1 with END_HEADERS and END_STREAM: no body.
        let mut want = vec![0, 0, block.len() as u8, HEADERS, END_HEADERS | END_STREAM, 0, 0, 0, 1];
        want.extend(&block);
        assert_eq!(&frames[..], &want[..]);

        // A body: HEADERS without END_STREAM, then DATA of 16384 and 3616 bytes, the
        // second ending the stream; a header block past a frame goes on in CONTINUATION.
        let big = "v".repeat(8000);
        let request = head(&format!(
            "POST / HTTP/1.1\r\nHost: h\r\nX-A: {big}\r\nX-B: {big}\r\nX-C: {big}\r\nContent-Length: 20000\r\n\r\n"
        ));
        let frames = stream_one(&request, &[7u8; 20_000]);
        let mut seen = Vec::new();
        let mut at = 0;
        while at < frames.len() {
            let len = usize::from(frames[at]) << 16
                | usize::from(frames[at + 1]) << 8
                | usize::from(frames[at + 2]);
            seen.push((frames[at + 3], frames[at + 4], len));
            at += 9 + len;
        }
        let block_len = seen[0].2 + seen[1].2;
        assert_eq!(seen[0], (HEADERS, 0, FRAME));
        assert_eq!(seen[1], (CONTINUATION, END_HEADERS, block_len - FRAME));
        assert_eq!(&seen[2..], [(DATA, 0, FRAME), (DATA, END_STREAM, 20_000 - FRAME)]);
    }

    #[test]
    fn integers_use_the_prefix_then_seven_bit_groups() {
        // RFC 7541 §C.1.1 and §C.1.2.
        let mut out = Vec::new();
        integer(&mut out, 10, 5);
        integer(&mut out, 1337, 5);
        assert_eq!(out, [10, 31, 154, 10]);
    }
}

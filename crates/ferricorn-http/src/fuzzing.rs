//! The properties the fuzz targets check, as plain functions of the fuzzer's bytes.
//!
//! Each function panics when a property fails, so a `cargo fuzz` target (fuzz/) is one
//! line and `tests/fuzz_corpus.rs` replays the committed corpus through the same code on
//! stable. Beyond "no input panics the parser", each checks what a worker relies on: the
//! limits hold, the bytes after a head or body are left for the next request, and the
//! same bytes get the same answer however the socket delivers them (issue 8, bug 7).
//! The `encode` target runs the other way: what the response encoder writes from an app's
//! status, headers and body pieces must read back as exactly those (issue 10). The `proxy`
//! target reads PROXY protocol headers, the `uwsgi` target uwsgi packets (issue 12). The
//! `websocket` target decodes WebSocket frames, `handshake` reads upgrade requests.

use bytes::BytesMut;

use super::chunked::{encode_chunk, LAST_CHUNK};
use super::limits::Leniency;
use super::response::{self, BodyMode, Encoder, RequestInfo};
use super::{
    is_tchar, parse_head, websocket, BodyDecoder, BodyFraming, Decoded, Error, Head, Limits,
};

/// gunicorn's parser as it is by default.
const STRICT: Leniency = Leniency {
    casefold_method: false,
    obsolete_folding: false,
    unconventional_method: false,
    unconventional_version: false,
    strip_header_spaces: false,
};
/// Every leniency setting on: the paths a config may open must hold the same properties.
const LENIENT: Leniency = Leniency {
    casefold_method: true,
    obsolete_folding: true,
    unconventional_method: true,
    unconventional_version: true,
    strip_header_spaces: true,
};

/// The limits every input is parsed under: gunicorn's defaults, small ones a fuzzer's
/// short inputs reach, the 0s, which gunicorn reads as "no limit" (request line) or
/// "the default" (field size), and the leniency settings on.
pub const LIMITS: [Limits; 7] = [
    Limits { request_line: 4094, fields: 100, field_size: 8190, lenient: STRICT },
    Limits { request_line: 32, fields: 4, field_size: 40, lenient: STRICT },
    Limits { request_line: 0, fields: 0, field_size: 0, lenient: STRICT },
    Limits { request_line: 4094, fields: 100, field_size: 0, lenient: STRICT },
    Limits { request_line: 0, fields: 4, field_size: 40, lenient: STRICT },
    Limits { request_line: 4094, fields: 100, field_size: 8190, lenient: LENIENT },
    Limits { request_line: 32, fields: 4, field_size: 40, lenient: LENIENT },
];

/// Stops a stream of tiny pipelined requests from making one input slow.
const MAX_REQUESTS: usize = 64;

/// Target `head`: the request-head parser under each of [`LIMITS`].
pub fn head(data: &[u8]) {
    for limits in &LIMITS {
        let mut buf = BytesMut::from(data);
        match parse_head(&mut buf, limits) {
            Ok(Some(head)) => check_head(data, &buf, &head, limits),
            Ok(None) => check_incomplete(data, &buf, limits),
            Err(error) => check_error(&error),
        }
    }
}

/// Target `chunked`: the chunked decoder, fed whole and byte by byte.
pub fn chunked(data: &[u8]) {
    let whole = decode_chunked(data, data.len(), usize::MAX);
    let bytewise = decode_chunked(data, 1, 1);
    assert_eq!(whole, bytewise, "whole and byte by byte disagree");
    let (body, outcome) = whole;
    match outcome {
        Outcome::End { consumed } => {
            assert_eq!(body, reference_chunked(&data[..consumed]), "decoded body");
        }
        Outcome::NeedMore => assert!(body.len() <= data.len()),
        Outcome::Refused(error) => check_error(&error),
    }
}

/// Target `split`: a stream of pipelined requests (heads and bodies) parsed as one piece
/// and cut where the fuzzer chose must give the same heads, bodies and errors.
///
/// Layout: byte 0 picks the [`LIMITS`], byte 1 holds the number of cuts (low 4 bits) and
/// the split run's read size as a power of two (high 4 bits), then one little-endian u16
/// per cut (an offset into the stream, modulo its length); the rest is the stream.
pub fn split(data: &[u8]) {
    let (limits, max, cuts, stream) = split_input(data);
    let whole = serve(&[stream], limits, usize::MAX);
    let pieces = cut(stream, &cuts);
    let split = serve(&pieces, limits, max);
    assert_eq!(whole, split, "cut at {cuts:?} under {limits:?}");
}

/// Builds the input of [`split`] from its parts (for seed corpora and tests).
pub fn split_seed(limits: usize, read_pow: u8, cuts: &[u16], stream: &[u8]) -> Vec<u8> {
    assert!(cuts.len() < 16 && read_pow < 16 && limits < LIMITS.len());
    let mut out = vec![limits as u8, (read_pow << 4) | cuts.len() as u8];
    for c in cuts {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(stream);
    out
}

fn split_input(data: &[u8]) -> (&'static Limits, usize, Vec<usize>, &[u8]) {
    let limits = &LIMITS[usize::from(data.first().copied().unwrap_or(0)) % LIMITS.len()];
    let shape = data.get(1).copied().unwrap_or(0);
    let max = 1usize << (shape >> 4);
    let rest = data.get(2..).unwrap_or_default();
    let n = usize::from(shape & 0x0f).min(rest.len() / 2);
    let (offsets, stream) = rest.split_at(n * 2);
    let mut cuts: Vec<usize> = offsets
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    (limits, max, cuts, stream)
}

fn cut<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &c in cuts {
        pieces.push(&stream[start..c]);
        start = c;
    }
    pieces.push(&stream[start..]);
    pieces
}

/// What a worker would make of a stream, in order.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Head(Summary),
    /// A whole body, or the bytes decoded before the body failed.
    Body(Vec<u8>),
    /// The status a parse or decode error answers with.
    Refused(u16),
    /// The stream ended inside a head.
    IncompleteHead,
}

/// Everything a worker reads from a [`Head`].
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    /// REQUEST_METHOD: a split must not change it.
    method: String,
    /// RAW_URI, as sent.
    target: String,
    /// What the environ's PATH_INFO and QUERY_STRING come from.
    path_and_query: (String, String),
    /// The protocol the response is framed for.
    minor: u8,
    /// Every field, in order, as the environ's HTTP_ keys get them.
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where the body ends: a disagreement here is request smuggling.
    framing: BodyFraming,
    /// Whether the connection reads another request.
    keep_alive: bool,
    /// Whether a 100 Continue is owed.
    expect_continue: bool,
}

impl Summary {
    fn of(head: &Head) -> Self {
        Summary {
            method: head.method().to_owned(),
            target: head.target().to_owned(),
            path_and_query: {
                let (path, query) = head.path_and_query();
                (path.to_owned(), query.to_owned())
            },
            minor: head.minor,
            fields: head.fields().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
            framing: head.framing,
            keep_alive: head.keep_alive,
            expect_continue: head.expect_continue,
        }
    }
}

/// Parses `pieces` as a worker reads a socket: a head, its body, the next head, each
/// step given one more piece whenever it needs more bytes.
fn serve(pieces: &[&[u8]], limits: &Limits, max: usize) -> Vec<Event> {
    let mut pieces = pieces.iter();
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut body: Option<(BodyDecoder, Vec<u8>)> = None;
    while events.len() < MAX_REQUESTS * 2 {
        let Some((decoder, data)) = &mut body else {
            match parse_head(&mut buf, limits) {
                Ok(Some(head)) => {
                    events.push(Event::Head(Summary::of(&head)));
                    body = Some((BodyDecoder::new(head.framing), Vec::new()));
                }
                Ok(None) => match pieces.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None if buf.is_empty() => break,
                    None => {
                        events.push(Event::IncompleteHead);
                        break;
                    }
                },
                Err(error) => {
                    events.push(Event::Refused(error.status()));
                    break;
                }
            }
            continue;
        };
        let failed = match decoder.decode(&mut buf, max) {
            Ok(Decoded::Data(bytes)) => {
                data.extend_from_slice(&bytes);
                continue;
            }
            Ok(Decoded::End) => None,
            Ok(Decoded::NeedMore) => match pieces.next() {
                Some(piece) => {
                    buf.extend_from_slice(piece);
                    continue;
                }
                None => decoder.eof().err(),
            },
            Err(error) => Some(error),
        };
        let (_, data) = body.take().expect("in a body");
        events.push(Event::Body(data));
        if let Some(error) = failed {
            events.push(Event::Refused(error.status()));
            break;
        }
    }
    events
}

/// Where chunked decoding stopped.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The body ended after `consumed` input bytes.
    End {
        consumed: usize,
    },
    NeedMore,
    Refused(Error),
}

/// Decodes `data` given `step` bytes at a time, taking at most `max` per call.
fn decode_chunked(data: &[u8], step: usize, max: usize) -> (Vec<u8>, Outcome) {
    let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
    let mut src = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    for piece in data.chunks(step.max(1)) {
        src.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match decoder.decode(&mut src, max) {
                Ok(Decoded::Data(bytes)) => {
                    assert!(!bytes.is_empty() && bytes.len() <= max, "Data of {}", bytes.len());
                    body.extend_from_slice(&bytes);
                }
                Ok(Decoded::NeedMore) => {
                    assert!(src.is_empty(), "NeedMore with {} bytes unread", src.len());
                    break;
                }
                Ok(Decoded::End) => {
                    let consumed = fed - src.len();
                    assert_eq!(&src[..], &data[consumed..fed], "bytes after the body");
                    assert!(decoder.is_done() && decoder.eof().is_ok());
                    return (body, Outcome::End { consumed });
                }
                Err(error) => return (body, Outcome::Refused(error)),
            }
        }
    }
    assert_eq!(decoder.eof(), Err(Error::IncompleteBody));
    (body, Outcome::NeedMore)
}

/// A second reading of a chunked body the decoder accepted, written the plain way (find
/// each CRLF, read the hex digits before it) to check the state machine's data bytes.
fn reference_chunked(framed: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut rest = framed;
    loop {
        let eol = find_crlf(rest).expect("size line ends in CRLF");
        let digits = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let hex = std::str::from_utf8(&rest[..digits]).expect("hex digits");
        let size = u64::from_str_radix(hex, 16).expect("size fits") as usize;
        rest = &rest[eol + 2..];
        if size == 0 {
            assert!(rest == b"\r\n" || rest.ends_with(b"\r\n\r\n"), "trailers: {rest:?}");
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "CRLF after chunk data");
        rest = &rest[size + 2..];
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Every error answers with one of the statuses the RFCs name for a refused request.
fn check_error(error: &Error) {
    assert!(matches!(error.status(), 400 | 414 | 431 | 501), "{error:?}");
}

/// A head was accepted: it must be well formed, within `limits`, and its bytes only.
fn check_head(data: &[u8], rest: &[u8], head: &Head, limits: &Limits) {
    let consumed = data.len() - rest.len();
    assert_eq!(rest, &data[consumed..], "bytes after the head");
    let mut raw = &data[..consumed];
    while let Some(r) = raw.strip_prefix(b"\r\n") {
        raw = r;
    }
    assert!(raw.ends_with(b"\r\n\r\n"), "head does not end in an empty line");
    let lines: Vec<&[u8]> = raw[..raw.len() - 4].split(|&b| b == b'\n').collect();
    for line in &lines[..lines.len() - 1] {
        assert!(line.ends_with(b"\r"), "bare LF in an accepted head");
    }
    let unterminated = |line: &'_ [u8]| line.strip_suffix(b"\r").unwrap_or(line).len();
    let effective = limits.effective();
    let request_line_len = unterminated(lines[0]);
    if let Some(max) = effective.request_line {
        assert!(request_line_len <= max, "request line of {request_line_len}");
    }
    let field_lines = &lines[1..];
    if !limits.lenient.obsolete_folding {
        // With folding a field may take several lines; the limits module measures those.
        assert_eq!(field_lines.len(), head.fields().count(), "one field per line");
        assert!(field_lines.len() <= effective.fields, "{} fields", field_lines.len());
        for line in field_lines {
            // The line with its CRLF, as gunicorn counts it.
            let len = unterminated(line) + 2;
            assert!(len <= effective.field_size, "field line of {len}");
        }
    }
    check_head_fields(head, &limits.lenient);
    // What follows a head cannot change it: the head alone parses the same.
    let mut alone = BytesMut::from(&data[..consumed]);
    let again = parse_head(&mut alone, limits).expect("head alone").expect("head alone");
    assert_eq!(Summary::of(&again), Summary::of(head), "head depends on what follows");
    assert!(alone.is_empty());
}

fn check_head_fields(head: &Head, lenient: &Leniency) {
    let m = head.method().as_bytes();
    assert!(super::is_token(m), "method {m:?}");
    let any_method = lenient.unconventional_method && !lenient.casefold_method;
    assert!(any_method || !m.iter().any(u8::is_ascii_lowercase), "method {m:?}");
    let t = head.target().as_bytes();
    assert!(!t.is_empty() && t.iter().all(|b| (0x21..=0x7e).contains(b)), "target {t:?}");
    assert!(head.minor <= 1 || lenient.unconventional_version);
    let mut lengths = 0;
    let mut chunked = false;
    for (name, value) in head.fields() {
        assert!(super::is_token(name), "field name {name:?}");
        assert!(!value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f), "{value:?}");
        assert!(!value.starts_with(b" ") && !value.ends_with(b" "), "untrimmed {value:?}");
        lengths += usize::from(name.eq_ignore_ascii_case(b"content-length"));
        chunked |= name.eq_ignore_ascii_case(b"transfer-encoding");
    }
    match head.framing {
        BodyFraming::Empty => assert!(lengths == 0 && !chunked),
        BodyFraming::Length(_) => assert!(lengths == 1 && !chunked),
        BodyFraming::Chunked => assert!(lengths == 0 && chunked && head.minor == 1),
    }
}

/// An incomplete head is kept only while it could still fit the limits, so a client
/// cannot make a worker buffer without bound.
fn check_incomplete(data: &[u8], buf: &[u8], limits: &Limits) {
    let mut unstripped = data;
    while buf.len() < unstripped.len() {
        unstripped = unstripped.strip_prefix(b"\r\n").expect("only leading CRLFs are dropped");
    }
    assert_eq!(buf, unstripped);
    // Every line at its limit, gunicorn 27's meaning of 0 applied (a request line with no
    // limit of its own still counts against the head's budget).
    let bound = limits.max_head();
    assert!(buf.len() <= bound, "{} bytes buffered, bound {bound}", buf.len());
}

/// Target `encode`: a response as an app gives it (status, headers, body pieces) through
/// the validators and the [`Encoder`], read back by httparse and the chunked decoder.
///
/// Layout: byte 0 holds flags (bit 0: HTTP/1.1, 1: HEAD request, 2: keep-alive, 3: a
/// known length, 4: a `Server` header, 5: hop-by-hop headers pass, 6: the strings are
/// UTF-8, not latin-1); then, up to a 0xFD byte, the status and header names and values
/// separated by 0xFE; after the 0xFD, the body pieces separated by 0xFE.
///
/// Checks: [`response::validate_header`] and [`response::parse_status`] agree with the RFC
/// grammar written out again here; a valid head parses back to the same status and the
/// app's fields, in order, minus the ones the options drop, with exactly one framing
/// header set for the plan; the body reads back whole and byte by byte.
pub fn encode(data: &[u8]) {
    let flags = data.first().copied().unwrap_or(0);
    let rest = data.get(1..).unwrap_or_default();
    let (head, body) = match rest.iter().position(|&b| b == 0xfd) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let text = |b: &[u8]| match flags & 0x40 {
        0 => b.iter().map(|&c| char::from(c)).collect::<String>(),
        _ => String::from_utf8_lossy(b).into_owned(),
    };
    let mut parts = head.split(|&b| b == 0xfe).map(text);
    let status = parts.next().unwrap_or_default();
    let code = match response::parse_status(&status) {
        Ok(code) => code,
        Err(_) => return assert!(!is_status(&status), "{status:?} refused"),
    };
    assert!(is_status(&status), "{status:?} accepted");
    let fields: Vec<String> = parts.collect();
    let headers: Vec<(&str, &str)> = fields
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .filter(|(name, value)| {
            let valid = response::validate_header(name, value).is_ok();
            assert_eq!(valid, is_field(name, value), "{name:?}: {value:?}");
            valid && !name.eq_ignore_ascii_case("content-length")
        })
        .collect();
    let pieces: Vec<&[u8]> =
        if body.is_empty() { Vec::new() } else { body.split(|&b| b == 0xfe).collect() };
    check_response(flags, &status, code, &headers, &pieces);
}

/// Encodes one valid response and reads it back.
fn check_response(flags: u8, status: &str, code: u16, headers: &[(&str, &str)], pieces: &[&[u8]]) {
    let bit = |n: u8| flags & (1 << n) != 0;
    let req = RequestInfo { minor: u8::from(bit(0)), head_request: bit(1), keep_alive: bit(2) };
    let body: Vec<u8> = pieces.concat();
    let plan = response::plan(code, bit(3).then_some(body.len() as u64), req);
    let encoder =
        Encoder { server: bit(4).then_some("fuzz"), date: false, drop_hop_by_hop: !bit(5) };
    let mut wire = Vec::new();
    encoder.encode_head(&mut wire, status, headers.iter().copied(), code, plan);
    let head_len = wire.len();
    match plan.body {
        BodyMode::Empty => {}
        BodyMode::Chunked => {
            pieces.iter().for_each(|p| encode_chunk(p, &mut wire));
            wire.extend_from_slice(LAST_CHUNK);
        }
        BodyMode::Length(_) | BodyMode::Close => wire.extend_from_slice(&body),
    }
    let sent = read_back(&wire[..head_len], code);
    let kept: Vec<(Vec<u8>, Vec<u8>)> = headers
        .iter()
        .filter(|(n, _)| !(encoder.drop_hop_by_hop && response::is_hop_by_hop(n)))
        .filter(|(n, _)| !n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(n, v)| (latin1(n), latin1(v.trim_matches([' ', '\t']))))
        .collect();
    assert_eq!(&sent[..kept.len()], &kept[..], "the app's fields");
    let count =
        |name: &str| sent.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).count();
    assert_eq!(count("transfer-encoding"), usize::from(plan.body == BodyMode::Chunked));
    assert!(count("connection") >= 1, "no Connection field");
    let data = &wire[head_len..];
    match plan.body {
        BodyMode::Chunked => {
            for step in [data.len(), 1] {
                let got = decode_chunked(data, step, usize::MAX);
                assert_eq!(got, (body.clone(), Outcome::End { consumed: data.len() }), "{step}");
            }
        }
        BodyMode::Empty => assert!(data.is_empty()),
        BodyMode::Length(n) => assert_eq!(data.len() as u64, n),
        BodyMode::Close => assert_eq!(data, &body[..]),
    }
}

/// httparse's reading of an encoded head: it must be one whole head with `code`.
fn read_back(head: &[u8], code: u16) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut slots = vec![httparse::EMPTY_HEADER; head.split(|&b| b == b'\n').count()];
    let mut parsed = httparse::Response::new(&mut slots);
    let status = parsed.parse(head);
    assert_eq!(status, Ok(httparse::Status::Complete(head.len())), "{head:?}");
    assert_eq!(parsed.code, Some(code));
    parsed.headers.iter().map(|h| (h.name.as_bytes().to_vec(), trim(h.value).to_vec())).collect()
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(value.len());
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |i| i + 1);
    &value[start..end]
}

fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

/// RFC 9112 §4, as the validator should read it: 3 digits from 100, then nothing or SP
/// and a phrase of HTAB, SP, VCHAR and obs-text (latin-1 characters only).
fn is_status(s: &str) -> bool {
    let b: Vec<u32> = s.chars().map(|c| c as u32).collect();
    let digits = b.len() >= 3 && b[..3].iter().all(|&c| (0x30..=0x39).contains(&c));
    let code_ok = digits && b[0] != 0x30;
    let phrase_ok =
        b.len() == 3 || (b.len() > 3 && b[3] == 0x20 && b[4..].iter().all(|&c| is_field_char(c)));
    code_ok && phrase_ok && b.iter().all(|&c| c <= 0xff)
}

/// RFC 9110 §5.1 and §5.5: a token name, a value of field-vchar, SP and HTAB.
fn is_field(name: &str, value: &str) -> bool {
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii() && is_tchar(c as u8));
    name_ok && value.chars().all(|c| is_field_char(c as u32))
}

fn is_field_char(c: u32) -> bool {
    c == 0x09 || (0x20..=0x7e).contains(&c) || (0x80..=0xff).contains(&c)
}

/// Prefixes of a `proxy` input checked one by one; past this, every 61st.
const PROXY_PREFIXES: usize = 256;

/// Target `proxy`: the PROXY header parser in each mode. A header takes at least its
/// signature and no more than the protocol allows, and every prefix of the input either
/// needs more or gets the whole input's answer (however the bytes arrive). `announces`
/// (where the server checks `--proxy-allow-from`) never contradicts it: what it calls no
/// header parses as none, what it calls a header never does.
pub fn proxy(data: &[u8]) {
    use super::proxy::{announces, parse, Mode, Parsed, ProxyError, V1_MAX};
    for mode in [Mode::V1, Mode::V2, Mode::Auto] {
        let whole = parse(data, mode);
        let none = matches!(whole, Ok(Parsed::NotProxy) | Err(ProxyError::Missing));
        match announces(data, mode) {
            Some(said) => assert_eq!(said, !none, "{mode:?}: announces {said}, parse {whole:?}"),
            None => assert!(!none, "{mode:?}: undecided, yet parse says {whole:?}"),
        }
        if let Ok(Parsed::Header(header, taken)) = &whole {
            assert!(*taken <= data.len(), "took {taken} of {} bytes", data.len());
            match header.version {
                1 => assert!((8..=V1_MAX).contains(taken), "v1 took {taken}"),
                _ => assert!((16..=16 + 65535).contains(taken), "v2 took {taken}"),
            }
            assert_eq!(header.addresses.is_some(), matches!(header.kind, "TCP4" | "TCP6"));
        }
        let ends =
            (0..data.len().min(PROXY_PREFIXES)).chain((PROXY_PREFIXES..data.len()).step_by(61));
        for end in ends {
            match parse(&data[..end], mode) {
                Ok(Parsed::NeedMore) => {}
                early => assert_eq!(early, whole, "{mode:?}: the first {end} bytes"),
            }
        }
    }
}

/// Prefixes of a `uwsgi` input checked one by one; past this, every 61st.
const UWSGI_PREFIXES: usize = 8;

/// Target `uwsgi`: the uwsgi packet parser under each of [`LIMITS`]. A packet takes its
/// header and vars block and nothing more, its head is within the limits and reads as a
/// valid one (a token method, a visible-ASCII target), and the prefixes of the input up to
/// the packet's end (each of the first 8, then every 61st, the last, and the end) either
/// needs more or gets the whole input's answer.
pub fn uwsgi(data: &[u8]) {
    use super::uwsgi::{parse, Packet, HEADER_LEN};
    type Seen = Result<Option<(String, String, Vec<(Vec<u8>, Vec<u8>)>, BodyFraming)>, Error>;
    let seen = |result: Result<Option<Packet>, Error>| -> Seen {
        result.map(|packet| {
            packet.map(|p| {
                let fields = p.head.fields().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
                (p.head.method().to_owned(), p.head.target().to_owned(), fields, p.head.framing)
            })
        })
    };
    for limits in &LIMITS {
        let mut buf = BytesMut::from(data);
        let whole = parse(&mut buf, limits);
        match &whole {
            Ok(Some(packet)) => {
                let size = usize::from(u16::from_le_bytes([data[1], data[2]]));
                assert_eq!(&buf[..], &data[HEADER_LEN + size..], "bytes after the packet");
                let head = &packet.head;
                assert!(super::is_token(head.method().as_bytes()), "method {:?}", head.method());
                assert!(head.target().bytes().all(|b| (0x21..=0x7e).contains(&b)), "target");
                assert!(head.fields().count() <= limits.effective().fields, "field count");
                assert_eq!(head.response_minor(), 0, "a uwsgi response is never chunked");
            }
            Ok(None) => assert_eq!(&buf[..], data, "an incomplete packet takes nothing"),
            Err(error) => assert!(matches!(error.status(), 400 | 414 | 431 | 501), "{error:?}"),
        }
        let whole = seen(whole);
        // Past the packet's end, a prefix holds the same packet: its end is the one checked.
        let total = match data {
            [0, lo, hi, ..] => HEADER_LEN + usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => data.len(),
        };
        // Until the whole packet is there only the first byte can be judged: the first
        // few prefixes, every 61st, the last short one and the packet itself are checked.
        let short = data.len().min(total);
        let ends = (0..short.min(UWSGI_PREFIXES))
            .chain((UWSGI_PREFIXES..short).step_by(61))
            .chain(short.checked_sub(1))
            .chain((total < data.len()).then_some(total));
        for end in ends {
            match seen(parse(&mut BytesMut::from(&data[..end]), limits)) {
                Ok(None) => {}
                early => assert_eq!(early, whole, "the first {end} bytes"),
            }
        }
    }
}

/// The message limits the `websocket` target decodes under: none, gunicorn's default,
/// and small ones a fuzzer's short inputs cross.
pub const WS_LIMITS: [usize; 5] = [0, 16 << 20, 1000, 64, 5];

/// What a worker would see of a WebSocket stream: its messages, then the error, if any.
type WsEvents = Vec<Result<websocket::Message, websocket::Error>>;

/// Target `websocket`: client bytes through [`websocket::Decoder`]. Fed whole, cut where
/// the fuzzer chose and byte by byte, the messages and the error are the same; no message
/// exceeds the limit; an error's close code is 1002, 1007 or 1009; and each message,
/// encoded again (`encode_*`) and masked as a client would, decodes to itself.
///
/// Layout: byte 0 picks the [`WS_LIMITS`], byte 1 holds the number of cuts (low 4 bits),
/// then one little-endian u16 per cut (an offset into the stream, modulo its length); the
/// rest is the stream. [`websocket_seed`] builds one.
pub fn websocket(data: &[u8]) {
    let max = WS_LIMITS[usize::from(data.first().copied().unwrap_or(0)) % WS_LIMITS.len()];
    let (_, _, cuts, stream) = split_input(data.get(1..).map_or(&[][..], |d| d));
    let whole = ws_decode(&[stream], max);
    assert_eq!(ws_decode(&cut(stream, &cuts), max), whole, "cut at {cuts:?}, max {max}");
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(ws_decode(&bytewise, max), whole, "byte by byte, max {max}");
    for (i, event) in whole.iter().enumerate() {
        match event {
            Ok(message) => check_ws_message(message, max, i),
            Err(e) => assert!(matches!(e.close_code(), 1002 | 1007 | 1009), "{e:?}"),
        }
    }
}

/// Builds the input of [`websocket`] from its parts (for seed corpora and tests).
pub fn websocket_seed(limit: usize, cuts: &[u16], stream: &[u8]) -> Vec<u8> {
    assert!(cuts.len() < 16 && limit < WS_LIMITS.len());
    // `split_input`'s layout after the limit byte, its own first byte unused.
    let mut out = vec![limit as u8, 0, cuts.len() as u8];
    for c in cuts {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(stream);
    out
}

/// Decodes `pieces` as a worker reads a socket: one more piece whenever it needs more.
fn ws_decode(pieces: &[&[u8]], max: usize) -> WsEvents {
    let mut decoder = websocket::Decoder::new(max);
    let mut pieces = pieces.iter();
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(message)) => events.push(Ok(message)),
            Ok(None) => match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return events,
            },
            Err(e) => {
                assert_eq!(decoder.decode(&mut buf), Err(e), "an error is final");
                events.push(Err(e));
                return events;
            }
        }
    }
}

/// A decoded message keeps the limit and the rules, and survives encoding and decoding.
fn check_ws_message(message: &websocket::Message, max: usize, i: usize) {
    use websocket::Message;
    let mut frame = Vec::new();
    match message {
        Message::Text(t) => {
            assert!(max == 0 || t.len() <= max, "text of {} over {max}", t.len());
            websocket::encode_text(&mut frame, t);
        }
        Message::Binary(b) => {
            assert!(max == 0 || b.len() <= max, "binary of {} over {max}", b.len());
            websocket::encode_binary(&mut frame, b);
        }
        Message::Ping(p) => websocket::encode_ping(&mut frame, p),
        Message::Pong(p) => websocket::encode_pong(&mut frame, p),
        Message::Close(close) => {
            if let Some(c) = close {
                assert!(websocket::valid_close_code(c.code) && c.reason.len() <= 123);
            }
            let (code, reason) = close.as_ref().map_or((None, ""), |c| (Some(c.code), &c.reason));
            websocket::encode_close(&mut frame, code, reason);
        }
    }
    let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes();
    let mut buf = BytesMut::from(&mask_frame(&frame, mask)[..]);
    let again = websocket::Decoder::new(0).decode(&mut buf);
    assert_eq!(again, Ok(Some(message.clone())), "message {i} re-encoded");
    assert!(buf.is_empty(), "message {i}: bytes left after re-decoding");
}

/// A server frame (unmasked, as `encode_*` write it) as a client sends it: the mask bit
/// set, the key after the length, the payload masked (RFC 6455 §5.3).
pub fn mask_frame(frame: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let size = match frame[1] & 0x7F {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mut out = frame[..size].to_vec();
    out[1] |= 0x80;
    out.extend_from_slice(&mask);
    out.extend(frame[size..].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Target `handshake`: head bytes through [`parse_head`], then [`websocket::read_offer`],
/// which must agree with [`reference_offer`] (gunicorn 27's rule written out plainly); an
/// offer is accepted ([`websocket::write_accept`], the offer's protocols and extensions
/// as the app's headers) and a refusal written, and what is written reads back with
/// httparse as the response meant.
pub fn handshake(data: &[u8]) {
    let Ok(Some(head)) = parse_head(&mut BytesMut::from(data), &LIMITS[0]) else { return };
    let offer = websocket::read_offer(&head);
    let judged = offer.as_ref().map(|o| o.clone().map_err(|r| r.status));
    assert_eq!(judged, reference_offer(&head), "read_offer against gunicorn's rule");
    match offer {
        None => {}
        Some(Ok(offer)) => check_accept(&offer),
        Some(Err(refusal)) => {
            let mut out = Vec::new();
            websocket::write_refusal(&mut out, &refusal);
            let fields = read_response(&out, refusal.status);
            let want: Vec<(Vec<u8>, Vec<u8>)> = (refusal.headers.iter())
                .chain(&[("Content-Length", "0"), ("Connection", "close")])
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            assert_eq!(fields, want, "the refusal's headers");
        }
    }
}

/// gunicorn 27's `_is_websocket_upgrade`, `_handle_websocket` and
/// `_build_websocket_scope`, on the fields as latin-1 text, as Python has them.
fn reference_offer(head: &Head) -> Option<Result<websocket::Offer, u16>> {
    let fields: Vec<(String, String)> = head
        .fields()
        .map(|(n, v)| {
            (String::from_utf8_lossy(n).to_uppercase(), v.iter().map(|&b| char::from(b)).collect())
        })
        .collect();
    let last = |name: &str| fields.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let upgrade = last("UPGRADE").map(|v| v.to_ascii_lowercase());
    let connection = last("CONNECTION").map(|v| v.to_ascii_lowercase());
    let is_upgrade = upgrade.as_deref() == Some("websocket")
        && connection.is_some_and(|c| c.contains("upgrade"));
    if head.method() != "GET" || !is_upgrade {
        return None;
    }
    if last("SEC-WEBSOCKET-VERSION").as_deref().map(py_strip) != Some("13") {
        return Some(Err(426));
    }
    let key = py_strip(&last("SEC-WEBSOCKET-KEY").unwrap_or_default()).to_owned();
    // Python's b64decode refuses a str that is not ASCII; then 22 characters and "==".
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
    let chars: Vec<char> = key.chars().collect();
    if !(chars.len() == 24 && chars[..22].iter().all(|&c| b64(c)) && key.ends_with("==")) {
        return Some(Err(400));
    }
    let protocols = (fields.iter().find(|(n, _)| n == "SEC-WEBSOCKET-PROTOCOL"))
        .map(|(_, v)| v.split(',').map(|p| py_strip(p).to_owned()).collect())
        .unwrap_or_default();
    let extensions = (fields.iter().filter(|(n, _)| n == "SEC-WEBSOCKET-EXTENSIONS"))
        .flat_map(|(_, v)| v.split(',').map(|e| e.trim().to_owned()))
        .filter(|e| !e.is_empty())
        .collect();
    Some(Ok(websocket::Offer { key, protocols, extensions }))
}

/// Python's `str.strip()`: `str.isspace()` is Unicode's White_Space and 0x1C-0x1F.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// Accepts `offer` with its first protocol and, as the app's headers, each protocol as a
/// name and each extension as a value: written only when all are valid, and then read
/// back exactly.
fn check_accept(offer: &websocket::Offer) {
    let subprotocol = offer.protocols.first().map(String::as_str);
    let mut headers: Vec<(&str, &str)> =
        offer.protocols.iter().map(|p| (p.as_str(), "1")).collect();
    headers.extend(offer.extensions.iter().map(|e| ("X-Extension", e.as_str())));
    let valid =
        subprotocol.into_iter().all(|p| p.is_empty() || is_field("Sec-WebSocket-Protocol", p))
            && headers.iter().all(|(n, v)| is_field(n, v));
    let mut out = Vec::new();
    let written = websocket::write_accept(&mut out, offer, subprotocol, &headers);
    assert_eq!(written.is_ok(), valid, "{written:?} for {subprotocol:?} {headers:?}");
    if written.is_err() {
        assert!(out.is_empty(), "nothing written on an error");
        return;
    }
    let accept = websocket::accept_key(&offer.key);
    let mut want = vec![
        ("Upgrade".to_owned(), "websocket".to_owned()),
        ("Connection".to_owned(), "Upgrade".to_owned()),
        ("Sec-WebSocket-Accept".to_owned(), accept),
    ];
    want.extend(
        subprotocol
            .filter(|p| !p.is_empty())
            .map(|p| ("Sec-WebSocket-Protocol".to_owned(), p.to_owned())),
    );
    want.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let want: Vec<_> = want.iter().map(|(n, v)| (n.as_bytes().to_vec(), latin1(v))).collect();
    assert_eq!(read_response(&out, 101), want, "the 101's headers");
}

/// A whole response head as httparse reads it: the status checked, the fields returned.
fn read_response(out: &[u8], status: u16) -> Vec<(Vec<u8>, Vec<u8>)> {
    // A slot per line: an offer may carry more extensions than any fixed count.
    let mut fields = vec![httparse::EMPTY_HEADER; out.iter().filter(|&&b| b == b'\n').count()];
    let mut response = httparse::Response::new(&mut fields);
    let parsed = response.parse(out);
    assert_eq!(
        parsed,
        Ok(httparse::Status::Complete(out.len())),
        "{:?}",
        String::from_utf8_lossy(out)
    );
    assert_eq!(response.code, Some(status));
    response.headers.iter().map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_reads_its_layout() {
        // HTTP/1.1, keep-alive, chunked: three pieces, one empty.
        encode(b"\x05200 OK\xfeX-A\xfeb\xfeConnection\xfeupgrade\xfdab\xfe\xfecd");
        // HEAD, a known length, hop-by-hop passing, an invalid header left out.
        encode(b"\x2e404 Not Found\xfeBad Name\xfev\xfeUpgrade\xfeh2c\xfdbody");
        // An invalid status is only checked against the grammar.
        encode(b"\x0120 OK");
    }

    #[test]
    fn websocket_reads_its_layout() {
        let mut text = Vec::new();
        websocket::encode_text(&mut text, "Hello");
        let stream = mask_frame(&text, [1, 2, 3, 4]);
        let seed = websocket_seed(4, &[3, 7], &stream);
        let (_, _, cuts, rest) = split_input(&seed[1..]);
        assert_eq!((cuts, rest), (vec![3, 7], &stream[..]));
        assert_eq!(
            ws_decode(&[rest], WS_LIMITS[4]),
            vec![Ok(websocket::Message::Text("Hello".into()))]
        );
        assert_eq!(ws_decode(&[rest], WS_LIMITS[3]).len(), 1);
        websocket(&seed);
        handshake(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Protocol: a, b c\r\n\r\n",
        );
    }

    #[test]
    fn split_input_reads_its_header() {
        let seed = split_seed(1, 3, &[5, 2, 2], b"GET / HTTP/1.1\r\n\r\n");
        let (limits, max, cuts, stream) = split_input(&seed);
        assert_eq!((limits, max, cuts), (&LIMITS[1], 8, vec![2, 5]));
        assert_eq!(stream, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(cut(stream, &[2, 5]), [&b"GE"[..], b"T /", b" HTTP/1.1\r\n\r\n"]);
    }

    #[test]
    fn serve_reads_pipelined_requests() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\
            POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c";
        let events = serve(&[stream], &LIMITS[0], usize::MAX);
        let bodies: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Body(b) => Some(b.as_slice()),
                _ => None,
            })
            .collect();
        assert_eq!(bodies, [&b"hi"[..], b"abc"]);
        assert_eq!(events.last(), Some(&Event::IncompleteHead));
    }

    #[test]
    fn reference_chunked_reads_sizes_and_trailers() {
        assert_eq!(reference_chunked(b"3;x=y\r\nabc\r\n00\r\nA: b\r\n\r\n"), b"abc");
    }
}

//! The chunked transfer coding (RFC 9112 §7.1), decoded a byte at a time.
//!
//! One state per grammar position, so a body split anywhere (even byte by byte) decodes
//! the same as one sent whole. Chunk data is handed out as zero-copy `Bytes`.

use bytes::{Buf, BytesMut};

use super::body::Decoded;
use super::{is_tchar, is_token, Error};

/// Chunk sizes beyond this are refused rather than risk overflow (2^60 bytes).
const MAX_CHUNK_SIZE: u64 = 1 << 60;
/// Bound on one chunk's extensions, which are read and ignored.
const MAX_EXTENSION: usize = 4096;
/// Bound on the whole trailer section, which is read, checked and dropped.
const MAX_TRAILERS: usize = 16 * 1024;

/// Trailer fields that would change framing, routing or authentication (RFC 9110 §6.5.1).
const FORBIDDEN_TRAILERS: [&[u8]; 10] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"trailer",
    b"te",
    b"expect",
    b"authorization",
    b"proxy-authorization",
    b"content-encoding",
    b"content-range",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size; `digits` counts them (at least one is needed).
    Size {
        size: u64,
        digits: usize,
    },
    /// Whitespace after the size, allowed only before an extension (BWS, §7.1.1).
    SizeSpace {
        size: u64,
    },
    /// Just after `;`: optional whitespace, then an extension name must start
    /// (RFC 9112 §7.1.1: `chunk-ext-name` is a token, so `5;` alone is malformed).
    ExtensionName {
        size: u64,
        len: usize,
    },
    /// The rest of a `;name=value` extension, ignored up to CR.
    Extension {
        size: u64,
        len: usize,
    },
    /// CR seen after the size line; LF must follow.
    SizeLf {
        size: u64,
    },
    /// Chunk data still to come.
    Data {
        remaining: u64,
    },
    /// CRLF after chunk data.
    DataCr,
    DataLf,
    /// A trailer line being collected (empty: end of the trailer section).
    Trailer {
        line: Vec<u8>,
        total: usize,
    },
    /// CR seen at the end of a trailer line.
    TrailerLf {
        line: Vec<u8>,
        total: usize,
    },
    /// The last CRLF was read.
    Done,
}

/// A chunked body's decoder (RFC 9112 §7.1), fed as bytes arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    /// Where in the grammar the next byte falls.
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size { size: 0, digits: 0 } }
    }
}

impl ChunkedDecoder {
    /// The last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes from `src` until it can return data (at most `max` bytes),
    /// the end of the body, or needs more input.
    pub fn decode(&mut self, src: &mut BytesMut, max: usize) -> Result<Decoded, Error> {
        loop {
            if let State::Data { remaining } = self.state {
                if src.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = (remaining.min(src.len() as u64) as usize).min(max.max(1));
                let left = remaining - n as u64;
                self.state =
                    if left == 0 { State::DataCr } else { State::Data { remaining: left } };
                return Ok(Decoded::Data(src.split_to(n).freeze()));
            }
            if self.state == State::Done {
                return Ok(Decoded::End);
            }
            let Some(&byte) = src.first() else {
                return Ok(Decoded::NeedMore);
            };
            src.advance(1);
            self.state = self.step(byte)?;
        }
    }

    /// One framing byte: the next state, or why the body is malformed.
    fn step(&mut self, b: u8) -> Result<State, Error> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Size { size, digits } => size_byte(size, digits, b),
            State::SizeSpace { size } => match b {
                b' ' | b'\t' => Ok(State::SizeSpace { size }),
                b';' => Ok(State::ExtensionName { size, len: 0 }),
                _ => Err(Error::BadChunk("whitespace after the size without an extension")),
            },
            State::ExtensionName { size, len } => extension_name_byte(size, len, b),
            State::Extension { size, len } => extension_byte(size, len, b),
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => Ok(State::Trailer { line: Vec::new(), total: 0 }),
                (b'\n', size) => Ok(State::Data { remaining: size }),
                _ => Err(Error::BadChunk("CR without LF after the size")),
            },
            State::DataCr => match b {
                b'\r' => Ok(State::DataLf),
                _ => Err(Error::BadChunk("chunk data longer than its size")),
            },
            State::DataLf => match b {
                b'\n' => Ok(State::Size { size: 0, digits: 0 }),
                _ => Err(Error::BadChunk("CR without LF after chunk data")),
            },
            State::Trailer { line, total } => trailer_byte(line, total, b),
            State::TrailerLf { line, total } => match b {
                b'\n' if line.is_empty() => Ok(State::Done),
                b'\n' => check_trailer(&line).map(|()| State::Trailer { line: Vec::new(), total }),
                _ => Err(Error::BadChunk("CR without LF in trailers")),
            },
            State::Data { .. } | State::Done => unreachable!("handled in decode"),
        }
    }
}

/// A size digit. The size is a number from the wire, so it is built with checked
/// arithmetic: a size that wrapped to 0 would read as the last chunk and let the rest of
/// the body be parsed as the next request (smuggling).
fn size_byte(size: u64, digits: usize, b: u8) -> Result<State, Error> {
    if let Some(d) = (b as char).to_digit(16) {
        let size = size.checked_mul(16).and_then(|s| s.checked_add(u64::from(d)));
        return match size {
            Some(size) if size <= MAX_CHUNK_SIZE => Ok(State::Size { size, digits: digits + 1 }),
            _ => Err(Error::BadChunk("chunk size too large")),
        };
    }
    if digits == 0 {
        return Err(Error::BadChunk("missing chunk size"));
    }
    match b {
        b'\r' => Ok(State::SizeLf { size }),
        b';' => Ok(State::ExtensionName { size, len: 0 }),
        b' ' | b'\t' => Ok(State::SizeSpace { size }),
        _ => Err(Error::BadChunk("invalid character in chunk size")),
    }
}

fn extension_name_byte(size: u64, len: usize, b: u8) -> Result<State, Error> {
    match b {
        _ if len >= MAX_EXTENSION => Err(Error::BadChunk("chunk extension too long")),
        b' ' | b'\t' => Ok(State::ExtensionName { size, len: len + 1 }),
        _ if is_tchar(b) => Ok(State::Extension { size, len: len + 1 }),
        _ => Err(Error::BadChunk("chunk extension without a name")),
    }
}

fn extension_byte(size: u64, len: usize, b: u8) -> Result<State, Error> {
    match b {
        b'\r' => Ok(State::SizeLf { size }),
        _ if len >= MAX_EXTENSION => Err(Error::BadChunk("chunk extension too long")),
        b'\t' => Ok(State::Extension { size, len: len + 1 }),
        0..=0x1f | 0x7f => Err(Error::BadChunk("control character in chunk extension")),
        _ => Ok(State::Extension { size, len: len + 1 }),
    }
}

fn trailer_byte(mut line: Vec<u8>, total: usize, b: u8) -> Result<State, Error> {
    if total >= MAX_TRAILERS {
        return Err(Error::BadChunk("trailers too large"));
    }
    match b {
        b'\r' => Ok(State::TrailerLf { line, total: total + 1 }),
        b'\n' => Err(Error::BadChunk("bare LF in trailers")),
        _ => {
            line.push(b);
            Ok(State::Trailer { line, total: total + 1 })
        }
    }
}

/// A trailer line is a field line; the fields that frame or route a request may not be.
fn check_trailer(line: &[u8]) -> Result<(), Error> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(Error::BadChunk("trailer without a colon"));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if !is_token(name) {
        return Err(Error::BadHeaderName);
    }
    if FORBIDDEN_TRAILERS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
        return Err(Error::ForbiddenTrailer);
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Error::BadHeader("control character in trailer"));
    }
    Ok(())
}

/// Writes the size line of a chunk of `len` bytes (RFC 9112 §7.1): hex digits and CRLF,
/// no extensions. `len` must not be 0, which would be the last chunk: an empty write
/// from an app sends nothing, never an early end of the body.
pub fn encode_chunk_size(len: u64, out: &mut Vec<u8>) {
    debug_assert!(len > 0, "a chunk of 0 bytes is the last chunk");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 18];
    let mut at = 16;
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    digits[16..].copy_from_slice(b"\r\n");
    out.extend_from_slice(&digits[at..]);
}

/// What ends a chunk's data: written after the `len` bytes [`encode_chunk_size`] announced.
pub const CHUNK_END: &[u8] = b"\r\n";

/// Frames `data` as one chunk of a chunked body: size line, data, CRLF. Empty data
/// writes nothing (see [`encode_chunk_size`]).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    encode_chunk_size(data.len() as u64, out);
    out.extend_from_slice(data);
    out.extend_from_slice(CHUNK_END);
}

/// The last chunk and an empty trailer section: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body or the error.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), Error> {
        let mut dec = ChunkedDecoder::default();
        let mut src = BytesMut::new();
        let mut body = Vec::new();
        for piece in input.chunks(step.max(1)) {
            src.extend_from_slice(piece);
            loop {
                match dec.decode(&mut src, 3)? {
                    Decoded::Data(d) => body.extend_from_slice(&d),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok((body, true)),
                }
            }
        }
        Ok((body, false))
    }

    const VALID: &[(&str, &[u8], &str)] = &[
        ("one chunk", b"5\r\nhello\r\n0\r\n\r\n", "hello"),
        ("two chunks, 000", b"5\r\nhello\r\n6\r\n world\r\n000\r\n\r\n", "hello world"),
        ("hex uppercase", b"A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
        ("leading zeros", b"0005\r\nhello\r\n0\r\n\r\n", "hello"),
        ("extensions", b"5; a; b=c\r\nhello\r\n0;x\r\n\r\n", "hello"),
        ("quoted extension", b"5;foo=\"bar baz\"\r\nhello\r\n0\r\n\r\n", "hello"),
        ("BWS before ;", b"5 ;x\r\nhello\r\n0\r\n\r\n", "hello"),
        ("trailers", b"5\r\nhello\r\n0\r\nVary: *\r\nContent-Type: text/plain\r\n\r\n", "hello"),
        ("empty", b"0\r\n\r\n", ""),
    ];

    const INVALID: &[(&str, &[u8])] = &[
        ("underscore in size", b"5\r\nhello\r\n6_0\r\n world\r\n0\r\n\r\n"),
        ("space without ext", b"5\r\nhello\r\n0 \r\n\r\n"),
        ("space before size", b"5\r\nhello\r\n 0\r\n\r\n"),
        ("bare LF after size", b"5\n;\r\nhello\r\n0\r\n\r\n"),
        ("ext without size", b" ;foo=bar\r\nhello\r\n0\r\n\r\n"),
        ("no size", b"\r\nhello\r\n0\r\n\r\n"),
        ("bare CR in ext", b"5;ext=val\rue\r\nhello\r\n0\r\n\r\n"),
        ("minus sign", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("plus sign", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("data too long", b"3\r\nhello\r\n0\r\n\r\n"),
        ("trailer Content-Length", b"5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n"),
        ("trailer Host", b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n"),
        ("trailer TE", b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("huge size", b"fffffffffffffffffff\r\n"),
        ("empty extension", b"21;\r\n"),
        ("empty extension before CRLF data", b"5;\r\nhello\r\n0\r\n\r\n"),
        ("extension of only whitespace", b"5; \r\nhello\r\n0\r\n\r\n"),
        ("two semicolons", b"5;;a\r\nhello\r\n0\r\n\r\n"),
    ];

    #[test]
    fn valid_bodies_decode_whole_and_byte_by_byte() {
        for (name, input, want) in VALID {
            for step in [input.len(), 1, 2, 7] {
                let got = decode_in_steps(input, step).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(got, (want.as_bytes().to_vec(), true), "{name} step {step}");
            }
        }
    }

    #[test]
    fn invalid_bodies_fail_whole_and_byte_by_byte() {
        for (name, input) in INVALID {
            for step in [input.len(), 1] {
                assert!(decode_in_steps(input, step).is_err(), "{name} step {step} decoded");
            }
        }
    }

    /// Bug: sizes were accumulated with unchecked `* 16 + digit`, so one digit past 2^60
    /// wrapped (release) to a small number, or to 0, the last chunk, and the rest of the
    /// body was read as a second request. Every size that does not fit is refused.
    #[test]
    fn regression_chunk_size_overflow_smuggles_a_request() {
        let sizes: &[&[u8]] = &[
            b"10000000000000000",
            b"10000000000000005",
            b"100000000000000005",
            b"1000000000000000000000000000005",
            b"20000000000000005",
            b"ffffffffffffffff",
            b"1000000000000001",
        ];
        for size in sizes {
            let body =
                [size, &b"\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"[..]].concat();
            for step in [body.len(), 1] {
                let got = decode_in_steps(&body, step);
                assert_eq!(
                    got,
                    Err(Error::BadChunk("chunk size too large")),
                    "{} step {step}",
                    String::from_utf8_lossy(size)
                );
            }
        }
        // 2^60 itself is the largest size accepted (its data simply has not arrived).
        assert_eq!(decode_in_steps(b"1000000000000000\r\nab", 1), Ok((b"ab".to_vec(), false)));
    }

    /// Bug: `21;` then CRLF was accepted; RFC 9112 §7.1.1 needs a name after `;`.
    #[test]
    fn regression_empty_chunk_extension_is_refused() {
        for input in [&b"21;\r\n"[..], b"5;\r\nhello\r\n0\r\n\r\n", b"0; \r\n\r\n"] {
            for step in [input.len(), 1] {
                assert_eq!(
                    decode_in_steps(input, step),
                    Err(Error::BadChunk("chunk extension without a name")),
                    "{input:?} step {step}"
                );
            }
        }
    }

    #[test]
    fn missing_final_crlf_is_not_the_end() {
        assert_eq!(decode_in_steps(b"0\r\n", 1), Ok((vec![], false)));
    }

    #[test]
    fn bytes_after_the_end_are_left_for_the_next_request() {
        let mut dec = ChunkedDecoder::default();
        let mut src = BytesMut::from(&b"0\r\n\r\nGET / HTTP/1.1\r\n"[..]);
        assert_eq!(dec.decode(&mut src, 100), Ok(Decoded::End));
        assert_eq!(&src[..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn chunk_size_table() {
        let rows: &[(u64, &[u8])] = &[
            (1, b"1\r\n"),
            (9, b"9\r\n"),
            (10, b"a\r\n"),
            (15, b"f\r\n"),
            (16, b"10\r\n"),
            (255, b"ff\r\n"),
            (4096, b"1000\r\n"),
            (65_535, b"ffff\r\n"),
            (1 << 20, b"100000\r\n"),
            (u64::MAX, b"ffffffffffffffff\r\n"),
        ];
        for &(len, want) in rows {
            let mut out = b"x".to_vec();
            encode_chunk_size(len, &mut out);
            assert_eq!(&out[1..], want, "{len}");
        }
    }

    #[test]
    fn encode_chunk_frames_data() {
        let mut out = Vec::new();
        encode_chunk(b"hello world, this is 26 b!", &mut out);
        encode_chunk(b"", &mut out);
        assert_eq!(out, b"1a\r\nhello world, this is 26 b!\r\n");
    }

    /// Whatever the pieces, what the encoder frames the decoder reads back, whole and
    /// byte by byte, and the bytes after the last chunk are left alone.
    #[test]
    fn encoded_bodies_decode_back() {
        let pieces: &[&[&[u8]]] = &[
            &[],
            &[b""],
            &[b"a"],
            &[b"hello", b"", b" world"],
            &[&[b'x'; 4096], b"\r\n0\r\n\r\n", &[0u8; 17]],
        ];
        for body in pieces {
            let mut wire = Vec::new();
            for piece in body.iter() {
                encode_chunk(piece, &mut wire);
            }
            wire.extend_from_slice(LAST_CHUNK);
            for step in [wire.len(), 1, 5] {
                assert_eq!(decode_in_steps(&wire, step), Ok((body.concat(), true)), "{step}");
            }
        }
    }
}

//! The framing, RFC 6455 §5, server side: the [`Decoder`] reads a client's frames into
//! whole messages, and `encode_*` write the server's (never masked, §5.1).
//!
//! The decoder fails the connection on anything §5 forbids, each with the close code of
//! its [`Error`] (§7.4.1): 1002 for a protocol error, 1007 for text that is not UTF-8
//! (§8.1), 1009 for a message over the server's limit. Every length read from the wire is
//! hostile: it is checked against the limit from the frame header alone, before any of
//! the payload is kept, and the decoder only ever holds bytes that arrived.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Opcodes, RFC 6455 §5.2 (§11.8 registry). The rest, 0x3-0x7 and 0xB-0xF, are reserved.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
const MAX_CONTROL: usize = 125;
/// A close payload: the 2-byte code, then a reason of at most this many bytes (§5.5.1).
const MAX_CLOSE_REASON: usize = MAX_CONTROL - 2;

/// One message from the client: data messages whole (fragments joined), control frames as
/// they arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8 (§5.6).
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A ping: the server answers with a pong carrying the same payload (§5.5.2).
    Ping(Bytes),
    /// A pong, solicited or not (§5.5.3): nothing to answer.
    Pong(Bytes),
    /// The client closes (§5.5.1); `None` when it gave no code (1005 to an app, §7.4.1).
    /// The server answers with a close of its own, then ends the TCP connection (§7.1.1).
    Close(Option<Close>),
}

/// The code and reason of a close frame (§5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The status code, one a peer may send ([`valid_close_code`]).
    pub code: u16,
    /// The reason, UTF-8, at most 123 bytes; often empty.
    pub reason: String,
}

/// Why the decoder failed the connection (§7.1.7); [`Error::close_code`] is the code of the
/// close frame the server sends before it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A frame §5 forbids; the text says which rule it broke.
    Protocol(&'static str),
    /// A text message, or a close reason, that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A message larger than the server's `max_message` (§7.4.1, 1009).
    TooBig,
}

impl Error {
    /// The close code for this error (§7.4.1): 1002, 1007 or 1009.
    pub fn close_code(&self) -> u16 {
        match self {
            Error::Protocol(_) => 1002,
            Error::InvalidUtf8 => 1007,
            Error::TooBig => 1009,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(why) => write!(f, "WebSocket protocol error: {why}"),
            Error::InvalidUtf8 => f.write_str("WebSocket text is not UTF-8"),
            Error::TooBig => f.write_str("WebSocket message larger than the limit"),
        }
    }
}

impl std::error::Error for Error {}

/// A frame header (§5.2), checked.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// FIN: the last frame of its message.
    fin: bool,
    /// The opcode, a known one.
    opcode: u8,
    /// The masking key (§5.3): client frames always have one.
    mask: [u8; 4],
    /// The payload length, at most `max_message` for a data frame, 125 for a control one.
    len: u64,
    /// Bytes of header before the payload: 6, 8 or 14.
    size: usize,
}

/// The data frame whose payload is being read, a piece at a time as it arrives.
#[derive(Debug, Clone, Copy)]
struct Payload {
    /// The frame ends its message.
    fin: bool,
    /// Its masking key.
    mask: [u8; 4],
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes read so far, mod 4: where in the mask the next byte is.
    phase: usize,
}

/// A data message begun and not yet finished: its fragments so far, joined.
#[derive(Debug)]
struct Partial {
    /// A text message (its bytes are checked as UTF-8 as they come).
    text: bool,
    /// The unmasked payload so far.
    data: Vec<u8>,
    /// How much of `data` is known to be whole UTF-8 sequences: the check of the next
    /// piece starts here, so a message fed byte by byte is checked in linear time.
    checked: usize,
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Frames are read.
    Open,
    /// A close frame came: nothing after it is read (§5.5.1).
    Closed,
    /// The connection failed with this error, given again to every later call.
    Failed(Error),
}

/// Reads client frames. `max_message`: largest whole message (sum of its fragments),
/// 0 = no limit (gunicorn's --websocket-max-message-size, default 16 MiB): a frame header
/// announcing more is refused at once (TooBig) before its payload is buffered.
#[derive(Debug)]
pub struct Decoder {
    /// The largest data message accepted, in bytes; 0 for no limit.
    max_message: usize,
    /// The data frame whose payload is being read, if one is.
    payload: Option<Payload>,
    /// The data message being assembled, if its first frame has come.
    message: Option<Partial>,
    /// Open, closed by the client, or failed.
    state: State,
}

/// What one step of the decoder made of the buffer.
enum Step {
    /// Nothing more can be done until more bytes come.
    NeedMore,
    /// Progress was made (a header or a piece of payload read): go on.
    Again,
    /// A whole message.
    Done(Message),
}

impl Decoder {
    /// A decoder for a new connection, its messages limited to `max_message` bytes (0: none).
    pub fn new(max_message: usize) -> Decoder {
        Decoder { max_message, payload: None, message: None, state: State::Open }
    }

    /// Consumes what it uses from `buf`; Ok(None): need more bytes. Returns whole messages
    /// (fragments joined); control frames (ping, pong, close) come out as soon as they
    /// arrive, even between fragments. Same answers however `buf` was split.
    ///
    /// Text is checked as UTF-8 as its bytes arrive, so a message that can no longer be
    /// UTF-8 fails at once (Autobahn's 6.4 "fail fast"). An error is final: every later
    /// call returns it again. After a close frame, the bytes that follow are left in `buf`
    /// and never read (§5.5.1: the client sends nothing after its close).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        loop {
            match self.state {
                State::Open => {}
                State::Closed => return Ok(None),
                State::Failed(e) => return Err(e),
            }
            match self.step(buf) {
                Ok(Step::NeedMore) => return Ok(None),
                Ok(Step::Again) => {}
                Ok(Step::Done(message)) => {
                    if matches!(message, Message::Close(_)) {
                        self.state = State::Closed;
                    }
                    return Ok(Some(message));
                }
                Err(e) => {
                    self.state = State::Failed(e);
                    self.payload = None;
                    self.message = None;
                    return Err(e);
                }
            }
        }
    }

    /// Whether the client's close frame has come (nothing more will be decoded).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        if let Some(payload) = self.payload {
            return self.read_payload(buf, payload);
        }
        let Some(header) = self.read_header(buf)? else { return Ok(Step::NeedMore) };
        let whole = header.size as u64 + header.len;
        if header.opcode >= CLOSE {
            // §5.5: control frames are short (checked) and come out whole.
            if (buf.len() as u64) < whole {
                return Ok(Step::NeedMore);
            }
            buf.advance(header.size);
            let mut data = buf.split_to(header.len as usize);
            unmask(&mut data, header.mask, 0);
            return control(header.opcode, data.freeze()).map(Step::Done);
        }
        if header.fin && header.opcode != CONTINUATION && buf.len() as u64 >= whole {
            // A whole unfragmented message in the buffer: unmasked in place, no copy.
            buf.advance(header.size);
            let mut data = buf.split_to(header.len as usize);
            unmask(&mut data, header.mask, 0);
            return match header.opcode {
                TEXT => Ok(Step::Done(Message::Text(utf8(data.to_vec())?))),
                _ => Ok(Step::Done(Message::Binary(data.freeze()))),
            };
        }
        buf.advance(header.size);
        if header.opcode != CONTINUATION {
            let text = header.opcode == TEXT;
            self.message = Some(Partial { text, data: Vec::new(), checked: 0 });
        }
        let (fin, mask, remaining) = (header.fin, header.mask, header.len);
        self.payload = Some(Payload { fin, mask, remaining, phase: 0 });
        Ok(Step::Again)
    }

    /// Reads and checks a frame header, consuming nothing: `Ok(None)` until it is whole.
    /// Each rule is checked as soon as the bytes it needs are there, in one fixed order,
    /// so the answer does not depend on how the bytes came.
    fn read_header(&self, buf: &[u8]) -> Result<Option<Header>, Error> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
        // §5.2: "MUST be 0 unless an extension is negotiated", and none is.
        if b0 & 0x70 != 0 {
            return Err(Error::Protocol("RSV bit set, no extension was negotiated"));
        }
        if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
            return Err(Error::Protocol("reserved opcode"));
        }
        // §5.1: "a client MUST mask all frames that it sends to the server".
        if b1 & 0x80 == 0 {
            return Err(Error::Protocol("client frame not masked"));
        }
        let len7 = b1 & 0x7F;
        if opcode >= CLOSE {
            // §5.5: control frames "MUST NOT be fragmented" and carry at most 125 bytes.
            if !fin {
                return Err(Error::Protocol("fragmented control frame"));
            }
            if usize::from(len7) > MAX_CONTROL {
                return Err(Error::Protocol("control frame over 125 bytes"));
            }
        } else {
            // §5.4: fragments of one message are not interleaved with another's.
            match (opcode, &self.message) {
                (CONTINUATION, None) => {
                    return Err(Error::Protocol("continuation frame with nothing to continue"))
                }
                (TEXT | BINARY, Some(_)) => {
                    return Err(Error::Protocol("new message inside a fragmented one"))
                }
                _ => {}
            }
        }
        let Some((len, size)) = read_length(buf, len7)? else { return Ok(None) };
        if opcode < CLOSE {
            self.check_size(len)?;
        }
        let Some(mask) = buf.get(size..size + 4) else { return Ok(None) };
        let mask = [mask[0], mask[1], mask[2], mask[3]];
        Ok(Some(Header { fin, opcode, mask, len, size: size + 4 }))
    }

    /// §7.4.1 (1009): the message, with this frame's announced length, fits the limit.
    fn check_size(&self, len: u64) -> Result<(), Error> {
        let so_far = self.message.as_ref().map_or(0, |m| m.data.len() as u64);
        let total = so_far.checked_add(len).ok_or(Error::TooBig)?;
        match self.max_message != 0 && total > self.max_message as u64 {
            true => Err(Error::TooBig),
            false => Ok(()),
        }
    }

    /// Takes what has come of a data frame's payload into the message, unmasked, and
    /// checks text as it goes; finishes the message after its last frame.
    fn read_payload(&mut self, buf: &mut BytesMut, mut payload: Payload) -> Result<Step, Error> {
        let n = buf.len().min(usize::try_from(payload.remaining).unwrap_or(usize::MAX));
        if n == 0 && payload.remaining > 0 {
            return Ok(Step::NeedMore);
        }
        let Some(message) = self.message.as_mut() else {
            return Err(Error::Protocol("payload without a message"));
        };
        let start = message.data.len();
        message.data.extend_from_slice(&buf[..n]);
        buf.advance(n);
        unmask(&mut message.data[start..], payload.mask, payload.phase);
        payload.remaining -= n as u64;
        payload.phase = (payload.phase + n) % 4;
        let last = payload.remaining == 0 && payload.fin;
        if message.text {
            check_utf8(&message.data, &mut message.checked, last)?;
        }
        self.payload = (payload.remaining > 0).then_some(payload);
        if !last {
            return Ok(Step::Again);
        }
        let Some(message) = self.message.take() else { return Ok(Step::Again) };
        Ok(Step::Done(match message.text {
            true => Message::Text(utf8(message.data)?),
            false => Message::Binary(Bytes::from(message.data)),
        }))
    }
}

/// The payload length (§5.2): 7 bits, or 126 and 16 bits, or 127 and 64 bits, in the
/// fewest bytes ("the minimal number of bytes MUST be used", as gunicorn requires too),
/// and where the length's bytes end. `Ok(None)` until they are there.
fn read_length(buf: &[u8], len7: u8) -> Result<Option<(u64, usize)>, Error> {
    match len7 {
        126 => {
            let Some(&[a, b]) = buf.get(2..4) else { return Ok(None) };
            let len = u16::from_be_bytes([a, b]);
            if len < 126 {
                return Err(Error::Protocol("16-bit length under 126"));
            }
            Ok(Some((u64::from(len), 4)))
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else { return Ok(None) };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            // "the most significant bit MUST be 0".
            if len >> 63 != 0 {
                return Err(Error::Protocol("64-bit length with the top bit set"));
            }
            if len <= 0xFFFF {
                return Err(Error::Protocol("64-bit length under 65536"));
            }
            Ok(Some((len, 10)))
        }
        n => Ok(Some((u64::from(n), 2))),
    }
}

/// A whole control frame's message (§5.5).
fn control(opcode: u8, data: Bytes) -> Result<Message, Error> {
    match opcode {
        PING => Ok(Message::Ping(data)),
        PONG => Ok(Message::Pong(data)),
        _ => read_close(&data).map(Message::Close),
    }
}

/// A close payload (§5.5.1): empty, or a code a peer may send and a UTF-8 reason.
fn read_close(data: &[u8]) -> Result<Option<Close>, Error> {
    match *data {
        [] => Ok(None),
        [_] => Err(Error::Protocol("close payload of 1 byte")),
        [hi, lo, ref reason @ ..] => {
            let code = u16::from_be_bytes([hi, lo]);
            if !valid_close_code(code) {
                return Err(Error::Protocol("close code a peer may not send"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some(Close { code, reason: reason.to_owned() }))
        }
    }
}

/// Checks the bytes of `data` past `checked` as UTF-8, moving `checked` past the whole
/// sequences. Until the `last` piece, a sequence cut at the end may be finished by the
/// next piece; one that no byte could finish (`error_len` is `Some`) fails now.
fn check_utf8(data: &[u8], checked: &mut usize, last: bool) -> Result<(), Error> {
    match std::str::from_utf8(&data[*checked..]) {
        Ok(_) => {
            *checked = data.len();
            Ok(())
        }
        Err(e) if e.error_len().is_none() && !last => {
            *checked += e.valid_up_to();
            Ok(())
        }
        Err(_) => Err(Error::InvalidUtf8),
    }
}

/// A text payload as a `String` (checked once more: cheap, and no `unsafe`).
fn utf8(data: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(data).map_err(|_| Error::InvalidUtf8)
}

/// XORs `data` with the masking key (§5.3), `data[0]` being payload byte `phase` mod 4.
/// A hot path: eight bytes at a time, as one `u64`.
fn unmask(data: &mut [u8], mask: [u8; 4], phase: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(phase + i) % 4]);
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Eight is a multiple of four: the tail starts at the same place in the mask.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// RFC 6455 §7.4: codes a peer may send (1000-1014 except 1004-1006, 3000-4999).
/// 1004 is reserved, 1005 and 1006 are for APIs only ("MUST NOT be set ... by an
/// endpoint"); 1015 is TLS's, never sent either; 2000-2999 are for extensions, none here.
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A frame header with FIN set and no mask (§5.1: server frames are never masked).
#[inline]
fn push_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.reserve(10 + len);
    out.push(0x80 | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// A text message in one frame. A hot path: no allocation beyond `out`.
pub fn encode_text(out: &mut Vec<u8>, text: &str) {
    push_header(out, TEXT, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// A binary message in one frame. A hot path: no allocation beyond `out`.
pub fn encode_binary(out: &mut Vec<u8>, data: &[u8]) {
    push_header(out, BINARY, data.len());
    out.extend_from_slice(data);
}

/// A ping; the payload is cut to 125 bytes (§5.5).
pub fn encode_ping(out: &mut Vec<u8>, data: &[u8]) {
    let data = &data[..data.len().min(MAX_CONTROL)];
    push_header(out, PING, data.len());
    out.extend_from_slice(data);
}

/// A pong, the answer to a ping with its payload (§5.5.3); cut to 125 bytes.
pub fn encode_pong(out: &mut Vec<u8>, data: &[u8]) {
    let data = &data[..data.len().min(MAX_CONTROL)];
    push_header(out, PONG, data.len());
    out.extend_from_slice(data);
}

/// `code` None: an empty close payload. `reason` cut to fit 123 bytes on a char boundary
/// (§5.5.1: the code's 2 bytes and the reason fit a control frame's 125).
pub fn encode_close(out: &mut Vec<u8>, code: Option<u16>, reason: &str) {
    let Some(code) = code else {
        push_header(out, CLOSE, 0);
        return;
    };
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    push_header(out, CLOSE, 2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const MIB16: usize = 16 << 20;

    /// A client frame: first byte `b0` (FIN, RSV, opcode), masked, length minimal.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, 0, payload.len());
        out[0] = b0;
        out[1] |= 0x80;
        masked(out, payload)
    }

    /// A client frame whose second byte and extended length are `len` as given (the mask
    /// bit is set here), then the mask and `payload`.
    fn raw(b0: u8, len: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0, len[0] | 0x80];
        out.extend_from_slice(&len[1..]);
        masked(out, payload)
    }

    fn masked(mut out: Vec<u8>, payload: &[u8]) -> Vec<u8> {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        out
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    fn text(s: &str) -> Result<Message, Error> {
        Ok(Message::Text(s.into()))
    }

    fn binary(b: &[u8]) -> Result<Message, Error> {
        Ok(Message::Binary(Bytes::copy_from_slice(b)))
    }

    fn close(code: u16, reason: &str) -> Result<Message, Error> {
        Ok(Message::Close(Some(Close { code, reason: reason.into() })))
    }

    type Decoded = Result<Message, Error>;

    /// Feeds `input` `step` bytes at a time; the messages, then the error if one came.
    fn run(max: usize, input: &[u8], step: usize) -> Vec<Result<Message, Error>> {
        let mut decoder = Decoder::new(max);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pieces = input.chunks(step.max(1)).peekable();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => got.push(Ok(m)),
                Ok(None) => match pieces.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None => return got,
                },
                Err(e) => {
                    got.push(Err(e));
                    assert_eq!(decoder.decode(&mut buf), Err(e), "an error is final");
                    return got;
                }
            }
        }
    }

    /// Every rule of the decoder, each fed whole, byte by byte and 3 bytes at a time.
    #[test]
    fn decoder_rules() {
        let p = |why| Err(Error::Protocol(why));
        let kappa = "κόσμε".as_bytes(); // Autobahn 6.2's text
        let surrogate = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80";
        let big = vec![7u8; 70_000];
        #[rustfmt::skip]
        let rows: Vec<(&str, usize, Vec<u8>, Vec<Decoded>)> = vec![
            ("text", MIB16, frame(0x81, b"Hello"), vec![text("Hello")]),
            ("binary", MIB16, frame(0x82, b"\x00\xff"), vec![binary(b"\x00\xff")]),
            ("empty text", MIB16, frame(0x81, b""), vec![text("")]),
            ("empty binary", MIB16, frame(0x82, b""), vec![binary(b"")]),
            ("ping", MIB16, frame(0x89, b"hi"), vec![Ok(Message::Ping(Bytes::from_static(b"hi")))]),
            ("pong", MIB16, frame(0x8A, b""), vec![Ok(Message::Pong(Bytes::new()))]),
            ("ping of 125", MIB16, frame(0x89, &[1; 125]), vec![Ok(Message::Ping(Bytes::from(vec![1; 125])))]),
            ("16-bit length", MIB16, frame(0x82, &big[..126]), vec![binary(&big[..126])]),
            ("64-bit length", MIB16, frame(0x82, &big), vec![binary(&big)]),
            ("two messages", MIB16, cat(&[frame(0x81, b"a"), frame(0x82, b"b")]), vec![text("a"), binary(b"b")]),
            ("fragmented text", MIB16, cat(&[frame(0x01, b"Hel"), frame(0x00, b"l"), frame(0x80, b"o")]), vec![text("Hello")]),
            ("fragmented binary", MIB16, cat(&[frame(0x02, b"\x01"), frame(0x80, b"\x02")]), vec![binary(b"\x01\x02")]),
            ("empty fragments", MIB16, cat(&[frame(0x01, b""), frame(0x00, b""), frame(0x80, b"")]), vec![text("")]),
            ("a character cut between fragments", MIB16, cat(&[frame(0x01, &kappa[..3]), frame(0x80, &kappa[3..])]), vec![text("κόσμε")]),
            ("control frames between fragments", MIB16,
                cat(&[frame(0x01, b"Hel"), frame(0x89, b"x"), frame(0x8A, b""), frame(0x80, b"lo")]),
                vec![Ok(Message::Ping(Bytes::from_static(b"x"))), Ok(Message::Pong(Bytes::new())), text("Hello")]),
            ("unmasked", MIB16, vec![0x81, 0x01, b'a'], vec![p("client frame not masked")]),
            ("RSV1", MIB16, frame(0xC1, b"a"), vec![p("RSV bit set, no extension was negotiated")]),
            ("RSV2", MIB16, frame(0xA1, b"a"), vec![p("RSV bit set, no extension was negotiated")]),
            ("RSV3", MIB16, frame(0x91, b"a"), vec![p("RSV bit set, no extension was negotiated")]),
            ("RSV on a ping", MIB16, frame(0xF9, b""), vec![p("RSV bit set, no extension was negotiated")]),
            ("opcode 3", MIB16, frame(0x83, b""), vec![p("reserved opcode")]),
            ("opcode 7", MIB16, frame(0x87, b""), vec![p("reserved opcode")]),
            ("opcode 0xB", MIB16, frame(0x8B, b""), vec![p("reserved opcode")]),
            ("opcode 0xF", MIB16, frame(0x8F, b""), vec![p("reserved opcode")]),
            ("reserved opcode after a message", MIB16, cat(&[frame(0x81, b"a"), frame(0x84, b"")]), vec![text("a"), p("reserved opcode")]),
            ("ping of 126", MIB16, frame(0x89, &[0; 126]), vec![p("control frame over 125 bytes")]),
            ("close of 126 (64-bit length)", MIB16, raw(0x88, &[127, 0, 0, 0, 0, 0, 1, 0, 0], b""), vec![p("control frame over 125 bytes")]),
            ("fragmented ping", MIB16, frame(0x09, b"a"), vec![p("fragmented control frame")]),
            ("fragmented close", MIB16, frame(0x08, b""), vec![p("fragmented control frame")]),
            ("continuation with nothing to continue", MIB16, frame(0x80, b"a"), vec![p("continuation frame with nothing to continue")]),
            ("continuation after a whole message", MIB16, cat(&[frame(0x81, b"a"), frame(0x80, b"b")]),
                vec![text("a"), p("continuation frame with nothing to continue")]),
            ("text inside a fragmented text", MIB16, cat(&[frame(0x01, b"a"), frame(0x81, b"b")]), vec![p("new message inside a fragmented one")]),
            ("binary inside a fragmented text", MIB16, cat(&[frame(0x01, b"a"), frame(0x02, b"b")]), vec![p("new message inside a fragmented one")]),
            ("64-bit length, top bit set", 0, raw(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0], b""), vec![p("64-bit length with the top bit set")]),
            ("16-bit length under 126", MIB16, raw(0x82, &[126, 0, 125], &[0; 125]), vec![p("16-bit length under 126")]),
            ("64-bit length under 65536", MIB16, raw(0x82, &[127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], b""), vec![p("64-bit length under 65536")]),
            ("invalid UTF-8", MIB16, frame(0x81, b"\xff"), vec![Err(Error::InvalidUtf8)]),
            ("a surrogate", MIB16, frame(0x81, surrogate), vec![Err(Error::InvalidUtf8)]),
            ("a sequence cut at the end", MIB16, frame(0x81, &kappa[..3]), vec![Err(Error::InvalidUtf8)]),
            ("a sequence cut at the last fragment's end", MIB16, cat(&[frame(0x01, b"a"), frame(0x80, &kappa[..3])]), vec![Err(Error::InvalidUtf8)]),
            // Autobahn 6.4.1: the first fragment fails at once, the rest never came.
            ("fail fast: the fragment that breaks", MIB16, cat(&[frame(0x01, &kappa[..5]), frame(0x00, &surrogate[10..])]), vec![Err(Error::InvalidUtf8)]),
            // Autobahn 6.4.3: one frame, only its start arrived: the bad bytes fail now.
            ("fail fast: within a frame", MIB16, frame(0x81, &[surrogate.as_slice(), &[b'a'; 20]].concat())[..6 + 14].to_vec(), vec![Err(Error::InvalidUtf8)]),
            ("fail fast: a cut sequence no byte could finish", MIB16, frame(0x81, b"a\xf4\x90zz")[..9].to_vec(), vec![Err(Error::InvalidUtf8)]),
            ("binary is not checked", MIB16, frame(0x82, b"\xff"), vec![binary(b"\xff")]),
            ("close, no code", MIB16, frame(0x88, b""), vec![Ok(Message::Close(None))]),
            ("close 1000", MIB16, frame(0x88, b"\x03\xe8"), vec![close(1000, "")]),
            ("close 4999 with a reason", MIB16, frame(0x88, b"\x13\x87bye"), vec![close(4999, "bye")]),
            ("close of 1 byte", MIB16, frame(0x88, b"\x03"), vec![p("close payload of 1 byte")]),
            ("close 999", MIB16, frame(0x88, b"\x03\xe7"), vec![p("close code a peer may not send")]),
            ("close 1005", MIB16, frame(0x88, b"\x03\xed"), vec![p("close code a peer may not send")]),
            ("close 5000", MIB16, frame(0x88, b"\x13\x88"), vec![p("close code a peer may not send")]),
            ("close reason not UTF-8", MIB16, frame(0x88, b"\x03\xe8\xff"), vec![Err(Error::InvalidUtf8)]),
            ("an invalid code beats a bad reason", MIB16, frame(0x88, b"\x03\xec\xff"), vec![p("close code a peer may not send")]),
            ("nothing is read after a close", MIB16, cat(&[frame(0x88, b""), frame(0x81, b"a"), vec![0xff]]), vec![Ok(Message::Close(None))]),
            ("exactly the limit", 5, frame(0x81, b"Hello"), vec![text("Hello")]),
            ("over the limit", 4, frame(0x81, b"Hello"), vec![Err(Error::TooBig)]),
            // Refused from the header alone: none of the payload came.
            ("over the limit, refused from the header", MIB16, raw(0x82, &[127, 0, 0, 0, 0, 1, 0, 0, 1], b"")[..10].to_vec(), vec![Err(Error::TooBig)]),
            ("fragments over the limit", 4, cat(&[frame(0x01, b"He"), frame(0x00, b"ll"), frame(0x80, b"o")]), vec![Err(Error::TooBig)]),
            ("fragments at the limit", 5, cat(&[frame(0x01, b"He"), frame(0x00, b"ll"), frame(0x80, b"o")]), vec![text("Hello")]),
            ("control frames do not count", 1, cat(&[frame(0x01, b"H"), frame(0x89, b"ping"), frame(0x80, b"")]),
                vec![Ok(Message::Ping(Bytes::from_static(b"ping"))), text("H")]),
            ("0 is no limit", 0, frame(0x82, &big), vec![binary(&big)]),
            ("need more", MIB16, frame(0x81, b"Hello")[..9].to_vec(), vec![]),
        ];
        for (name, max, input, want) in rows {
            for step in [input.len(), 1, 3] {
                assert_eq!(run(max, &input, step), want, "{name}, fed {step} at a time");
            }
        }
    }

    #[test]
    fn decode_consumes_a_message_and_leaves_the_rest() {
        let mut buf = BytesMut::from(&cat(&[frame(0x81, b"a"), vec![0x82]])[..]);
        let mut decoder = Decoder::new(0);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(Message::Text("a".into()))));
        assert_eq!(&buf[..], b"\x82");
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"\x82", "a partial header stays");
        assert!(!decoder.is_closed());
    }

    #[test]
    fn close_codes() {
        let rows =
            [(Error::Protocol("x"), 1002), (Error::InvalidUtf8, 1007), (Error::TooBig, 1009)];
        for (error, code) in rows {
            assert_eq!(error.close_code(), code, "{error}");
        }
        let valid =
            [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999];
        let invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535];
        for code in valid {
            assert!(valid_close_code(code), "{code}");
        }
        for code in invalid {
            assert!(!valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn unmask_matches_the_byte_at_a_time_rule() {
        let data: Vec<u8> = (0..40u8).collect();
        for phase in 0..4 {
            for len in 0..data.len() {
                let mut fast = data[..len].to_vec();
                unmask(&mut fast, MASK, phase);
                let slow: Vec<u8> = (data[..len].iter().enumerate())
                    .map(|(i, b)| b ^ MASK[(phase + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "phase {phase}, {len} bytes");
            }
        }
    }

    #[test]
    fn encoders() {
        let long = "é".repeat(70); // 140 bytes, a character every 2
        #[rustfmt::skip]
        let rows: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            ("text", enc(|o| encode_text(o, "Hello")), b"\x81\x05Hello".to_vec()),
            ("binary", enc(|o| encode_binary(o, b"\x00")), b"\x82\x01\x00".to_vec()),
            ("empty text", enc(|o| encode_text(o, "")), b"\x81\x00".to_vec()),
            ("ping", enc(|o| encode_ping(o, b"p")), b"\x89\x01p".to_vec()),
            ("pong", enc(|o| encode_pong(o, b"")), b"\x8a\x00".to_vec()),
            ("ping cut to 125", enc(|o| encode_ping(o, &[1; 200])), [&[0x89, 125][..], &[1; 125]].concat()),
            ("pong cut to 125", enc(|o| encode_pong(o, &[1; 126])), [&[0x8a, 125][..], &[1; 125]].concat()),
            ("close, no code", enc(|o| encode_close(o, None, "ignored")), b"\x88\x00".to_vec()),
            ("close 1000", enc(|o| encode_close(o, Some(1000), "")), b"\x88\x02\x03\xe8".to_vec()),
            ("close with a reason", enc(|o| encode_close(o, Some(1001), "bye")), b"\x88\x05\x03\xe9bye".to_vec()),
            ("close reason cut on a char boundary", enc(|o| encode_close(o, Some(1000), &long)),
                [&[0x88, 124, 0x03, 0xe8][..], &long.as_bytes()[..122]].concat()),
            ("close reason of 123 bytes", enc(|o| encode_close(o, Some(1000), &"a".repeat(130))),
                [&[0x88, 125, 0x03, 0xe8][..], &[b'a'; 123]].concat()),
        ];
        for (name, got, want) in rows {
            assert_eq!(got, want, "{name}");
        }
    }

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn encoded_lengths() {
        // (payload length, header bytes): §5.2's three forms, at their edges.
        let rows = [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (100_000, 10)];
        for (len, header) in rows {
            let data = vec![9u8; len];
            let out = enc(|o| encode_binary(o, &data));
            assert_eq!(out.len(), header + len, "{len}");
            // The same frame from a client (masked) decodes to the same payload.
            let client = frame(0x82, &data);
            assert_eq!(run(0, &client, client.len()), vec![binary(&data)], "{len}");
            assert_eq!(&client[..2], &[0x82, out[1] | 0x80]);
            assert_eq!(&client[2..header], &out[2..header], "{len}: the same length bytes");
        }
    }
}

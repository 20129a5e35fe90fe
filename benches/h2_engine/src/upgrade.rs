//! Before h2 runs: prior knowledge or an HTTP/1.1 `Upgrade: h2c` (RFC 7540 section 3.2,
//! which RFC 9113 dropped and gunicorn 27 still serves).
//!
//! `h2` cannot be told "stream 1 is this HTTP/1.1 request" (upgrade is a non-goal of
//! the crate), so this module rewrites the byte stream instead: after the 101 it waits
//! for the client's preface and first frame (SETTINGS), then replays them to h2
//! followed by a synthesized HEADERS frame on stream 1 that carries the upgraded
//! request. Its header block uses only static-table indexes and literals without
//! indexing (RFC 7541 section 6.2.2), so the dynamic table that the client's encoder
//! drives is untouched and every later block still decodes. Bodiless requests only:
//! this is the experiment, not the feature.

use std::io::{self, Read, Write};

use super::MioIo;

/// The client preface (RFC 9113 section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most bytes held before h2 takes over.
const MAX_HEAD: usize = 64 * 1024;

/// The answer that switches protocols (RFC 9110 section 15.2.2).
const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The answer to an HTTP/1.1 request that does not upgrade.
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";

/// A connection not yet speaking HTTP/2.
pub struct Upgrade {
    /// The socket, and later h2's I/O.
    io: MioIo,
    /// What has been read so far.
    buf: Vec<u8>,
    /// `None` while reading the first bytes; after a 101, the stream-1 HEADERS frame
    /// to slip in after the client's first frame.
    inject: Option<Vec<u8>>,
}

/// What one step made of it.
pub enum Next {
    /// More bytes are needed.
    Wait(Box<Upgrade>),
    /// h2 can run: its I/O replays the rewritten start first.
    Ready(Box<MioIo>),
    /// Not HTTP/2, malformed or too long: close.
    Close,
}

impl Upgrade {
    /// Starts with nothing read.
    pub fn new(io: MioIo) -> Box<Self> {
        Box::new(Upgrade { io, buf: Vec::new(), inject: None })
    }

    /// Reads what this step needs (never past it: what follows is h2's to read) and
    /// moves on if it can.
    pub fn advance(mut self: Box<Self>) -> Next {
        if !self.fill() {
            return Next::Close;
        }
        match self.inject.take() {
            None => self.first_bytes(),
            Some(inject) => self.after_switch(inject),
        }
    }

    /// How many bytes this step wants in `buf`: the preface while what came matches
    /// it, a request head otherwise; after a 101 the preface and the first frame.
    fn want(&self) -> usize {
        let head = PREFACE.len() + 9;
        if self.inject.is_some() {
            if self.buf.len() < head {
                return head;
            }
            let l = &self.buf[PREFACE.len()..head - 6];
            return head + (usize::from(l[0]) << 16 | usize::from(l[1]) << 8 | usize::from(l[2]));
        }
        let n = self.buf.len().min(PREFACE.len());
        if self.buf[..n] == PREFACE[..n] {
            PREFACE.len()
        } else {
            MAX_HEAD
        }
    }

    /// Reads until `WouldBlock` or [`Upgrade::want`] is met; `false` on EOF, an error,
    /// or a head over [`MAX_HEAD`].
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            let want = self.want().min(MAX_HEAD);
            if self.buf.len() >= want {
                return want < MAX_HEAD || self.buf.windows(4).any(|w| w == b"\r\n\r\n");
            }
            let room = (want - self.buf.len()).min(chunk.len());
            match self.io.sock.read(&mut chunk[..room]) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Prior knowledge (the preface, RFC 9113 section 3.3) or an HTTP/1.1 request.
    fn first_bytes(mut self: Box<Self>) -> Next {
        let n = self.buf.len().min(PREFACE.len());
        if self.buf[..n] == PREFACE[..n] {
            if n < PREFACE.len() {
                return Next::Wait(self);
            }
            let replay = std::mem::take(&mut self.buf);
            return self.ready(replay);
        }
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Next::Wait(self);
        };
        let Some(frame) = stream_one(&self.buf[..end]) else {
            // An HTTP/1.x request that is no upgrade gets a 400 (this server speaks only
            // HTTP/2); anything else is an invalid preface, a connection error (RFC 9113
            // section 3.4): close without a word, as h2spec 3.5/2 expects.
            if is_http1(&self.buf[..end]) {
                let _ = self.io.sock.write_all(BAD_REQUEST);
            }
            return Next::Close;
        };
        // A prototype's shortcut: 71 bytes to a fresh socket do not block.
        if self.io.sock.write_all(SWITCHING).is_err() {
            return Next::Close;
        }
        self.buf.drain(..end + 4);
        self.after_switch(frame)
    }

    /// Waits for the preface and the first frame, then replays them with `inject`.
    fn after_switch(mut self: Box<Self>, inject: Vec<u8>) -> Next {
        let head = PREFACE.len() + 9;
        let first_end = (self.buf.len() >= head).then(|| {
            let l = &self.buf[PREFACE.len()..PREFACE.len() + 3];
            head + (usize::from(l[0]) << 16 | usize::from(l[1]) << 8 | usize::from(l[2]))
        });
        match first_end {
            Some(end) if self.buf.len() >= end => {
                let mut replay = self.buf[..end].to_vec();
                replay.extend_from_slice(&inject);
                replay.extend_from_slice(&self.buf[end..]);
                self.ready(replay)
            }
            _ => {
                self.inject = Some(inject);
                Next::Wait(self)
            }
        }
    }

    /// Hands the socket to h2 with `replay` in front.
    fn ready(self, replay: Vec<u8>) -> Next {
        let mut io = self.io;
        io.replay = replay;
        io.replay_at = 0;
        Next::Ready(Box::new(io))
    }
}

/// Whether a request head's first line ends in an HTTP/1.x version (RFC 9112 section 3).
fn is_http1(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")
}

/// The HEADERS frame for stream 1 (END_STREAM | END_HEADERS) of an `Upgrade: h2c`
/// request head, or `None` when it is not one (or has a body).
fn stream_one(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, path) = (parts.next()?, parts.next()?);
    let (mut host, mut upgrade) = ("", false);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "host" => host = value,
            "upgrade" => upgrade = value.eq_ignore_ascii_case("h2c"),
            "content-length" if value != "0" => return None,
            "transfer-encoding" => return None,
            _ => {}
        }
    }
    if !upgrade {
        return None;
    }
    let mut block = Vec::new();
    match method {
        "GET" => block.push(0x82),
        "POST" => block.push(0x83),
        other => literal(&mut block, 2, other),
    }
    block.push(0x86); // :scheme http
    literal(&mut block, 4, path);
    literal(&mut block, 1, host);
    let len = u32::try_from(block.len()).ok().filter(|l| *l < 1 << 14)?;
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[0x1, 0x5, 0, 0, 0, 1]); // HEADERS, END_STREAM|END_HEADERS, 1
    frame.extend_from_slice(&block);
    Some(frame)
}

/// A literal header field without indexing, name from the static table (RFC 7541
/// section 6.2.2), value not Huffman-coded.
fn literal(out: &mut Vec<u8>, name_index: u8, value: &str) {
    out.push(name_index); // 0000 + 4-bit index (all used here are < 15)
    integer(out, 7, 0, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// An HPACK integer with an N-bit prefix (RFC 7541 section 5.1).
fn integer(out: &mut Vec<u8>, bits: u32, flags: u8, mut value: usize) {
    let max = (1usize << bits) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

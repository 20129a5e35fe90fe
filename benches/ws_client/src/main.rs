//! WebSocket echo messages per second: `benches/asgi_speed.py`'s WebSocket figure, one
//! client for every server.
//!
//! `ws-client --port P [--host H] [--path /] [--connections C] [--duration S] [--size B]
//! [--binary]`: C threads, each opening one WebSocket (an HTTP/1.1 Upgrade, RFC 6455
//! section 4.1), then, until S seconds have passed, sending one masked message of B bytes
//! (text unless `--binary`) and reading frames until its echo arrives, which must equal
//! what was sent. A ping from the server is answered with a pong; a connection that fails
//! is counted and opened again. At the end each sends a close frame (1000). Prints one JSON
//! object on stdout: the echoes counted, the seconds, the errors and the first of them.
//!
//! The server's `Sec-WebSocket-Accept` is not checked (the servers under test are known;
//! the figure is about framing, not the handshake), and every connection uses RFC 6455's
//! sample key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

#[path = "../../client_common.rs"]
mod client_common;

use client_common::{number, Common};

/// RFC 6455 section 1.3's sample nonce: a valid key, the same for every connection.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Opcodes, RFC 6455 section 5.2.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
/// A frame longer than this from the server is an error: the echoes are small.
const MAX_FRAME: u64 = 64 * 1024 * 1024;

/// What the command line asks for.
struct Args {
    /// Host, port, threads (each with one WebSocket), how long to keep echoing.
    common: Common,
    /// The request target of the Upgrade.
    path: String,
    /// Bytes per message.
    size: usize,
    /// Binary messages instead of text.
    binary: bool,
}

/// What one thread counted.
#[derive(Default)]
struct Counts {
    /// Echoes received and checked.
    messages: u64,
    /// WebSockets opened (more than one per thread after an error).
    opened: u64,
    /// Failures anywhere: connect, handshake, I/O, a wrong echo, a close from the server.
    errors: u64,
    /// The first error, for the report.
    first_error: Option<String>,
}

/// One open WebSocket: the stream for writing, a buffered reader on the same socket.
struct Socket {
    /// Frames go out here.
    writer: TcpStream,
    /// Frames come in here (the handshake's response too).
    reader: BufReader<TcpStream>,
    /// xorshift state for the masking keys.
    seed: u32,
}

fn parse_args() -> Result<Args, String> {
    let (common, rest) = client_common::parse_args(&["--binary"])?;
    let mut args = Args { common, path: "/".into(), size: 32, binary: false };
    for (flag, value) in rest {
        match (flag.as_str(), value) {
            ("--binary", None) => args.binary = true,
            ("--path", Some(value)) => args.path = value,
            ("--size", Some(value)) => args.size = number(&flag, &value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

impl Socket {
    /// Connects and upgrades: the response must be `101` and its head is consumed.
    fn open(args: &Args, seed: u32) -> Result<Socket, String> {
        let sock = client_common::connect(&args.common)?;
        let reader = BufReader::new(sock.try_clone().map_err(|e| e.to_string())?);
        let mut socket = Socket { writer: sock, reader, seed: seed | 1 };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            args.path, args.common.host, args.common.port
        );
        socket.writer.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
        let mut status = String::new();
        socket.reader.read_line(&mut status).map_err(|e| format!("handshake: {e}"))?;
        if status.split(' ').nth(1) != Some("101") {
            return Err(format!("handshake answered {:?}", status.trim_end()));
        }
        loop {
            let mut line = String::new();
            let n = socket.reader.read_line(&mut line).map_err(|e| format!("handshake: {e}"))?;
            if n == 0 {
                return Err("closed during the handshake".into());
            }
            if line == "\r\n" {
                return Ok(socket);
            }
        }
    }

    /// A fresh masking key per frame (RFC 6455 section 5.3), from xorshift32.
    fn mask_key(&mut self) -> [u8; 4] {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        self.seed.to_be_bytes()
    }

    /// One final frame, masked as a client's must be (RFC 6455 section 5.1).
    fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = self.mask_key();
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.writer.write_all(&frame).map_err(|e| format!("write: {e}"))
    }

    /// One frame from the server: (fin, opcode, payload). Server frames are not masked.
    fn frame(&mut self) -> Result<(bool, u8, Vec<u8>), String> {
        let mut head = [0u8; 2];
        self.reader.read_exact(&mut head).map_err(|e| format!("read: {e}"))?;
        if head[1] & 0x80 != 0 {
            return Err("a masked frame from the server".into());
        }
        let length = match head[1] & 0x7F {
            126 => {
                let mut n = [0u8; 2];
                self.reader.read_exact(&mut n).map_err(|e| format!("read: {e}"))?;
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                self.reader.read_exact(&mut n).map_err(|e| format!("read: {e}"))?;
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        if length > MAX_FRAME {
            return Err(format!("a {length}-byte frame"));
        }
        let mut payload = vec![0u8; length as usize];
        self.reader.read_exact(&mut payload).map_err(|e| format!("read: {e}"))?;
        Ok((head[0] & 0x80 != 0, head[0] & 0x0F, payload))
    }

    /// Reads until a whole data message arrives (answering pings on the way).
    fn message(&mut self) -> Result<(u8, Vec<u8>), String> {
        let mut message: Option<(u8, Vec<u8>)> = None;
        loop {
            let (fin, opcode, payload) = self.frame()?;
            match opcode {
                PING => self.send(PONG, &payload)?,
                PONG => {}
                CLOSE => {
                    let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    return Err(format!("closed by the server, code {code:?}"));
                }
                TEXT | BINARY if message.is_none() => message = Some((opcode, payload)),
                CONTINUATION if message.is_some() => {
                    message.as_mut().expect("checked").1.extend_from_slice(&payload)
                }
                other => return Err(format!("unexpected opcode {other:#x}")),
            }
            if fin && message.is_some() {
                return Ok(message.take().expect("checked"));
            }
        }
    }

    /// One message out, its echo back, checked.
    fn echo(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        self.send(opcode, payload)?;
        let (got_opcode, got) = self.message()?;
        if got_opcode != opcode || got != payload {
            return Err(format!("wrong echo: opcode {got_opcode:#x}, {} bytes", got.len()));
        }
        Ok(())
    }
}

fn run_thread(args: &Args, index: usize, deadline: Instant) -> Counts {
    let payload: Vec<u8> = (0..args.size).map(|i| b'a' + (i % 26) as u8).collect();
    let opcode = if args.binary { BINARY } else { TEXT };
    let mut counts = Counts::default();
    let fail = |counts: &mut Counts, e: String| {
        counts.errors += 1;
        counts.first_error.get_or_insert(e);
    };
    while Instant::now() < deadline {
        let mut socket = match Socket::open(args, 0x9E37_79B9 ^ index as u32) {
            Ok(socket) => socket,
            Err(e) => {
                fail(&mut counts, e);
                continue;
            }
        };
        counts.opened += 1;
        loop {
            if Instant::now() >= deadline {
                let _ = socket.send(CLOSE, &1000u16.to_be_bytes());
                return counts;
            }
            match socket.echo(opcode, &payload) {
                Ok(()) => counts.messages += 1,
                Err(e) => {
                    fail(&mut counts, e);
                    break;
                }
            }
        }
    }
    counts
}

fn main() {
    let args = client_common::args_or_exit("ws-client", parse_args());
    let worker = args.clone();
    let (counts, seconds) = client_common::run_threads(&args.common, move |index, deadline| {
        run_thread(&worker, index, deadline)
    });
    let mut total = Counts::default();
    for c in counts {
        total.messages += c.messages;
        total.opened += c.opened;
        total.errors += c.errors;
        total.first_error = total.first_error.or(c.first_error);
    }
    println!(
        "{{\"messages\": {}, \"opened\": {}, \"errors\": {}, \"seconds\": {seconds:.3}, \
         \"first_error\": {}}}",
        total.messages,
        total.opened,
        total.errors,
        client_common::quoted(total.first_error)
    );
}

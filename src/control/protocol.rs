//! gunicorn's control framing: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! [`Conn`] is one client connection as the master holds it: non-blocking, read into a
//! bounded buffer, answered from an output buffer. Nothing here waits: a client that sends
//! half a frame, or never reads its answers, costs the master a buffer and a deadline.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The largest request frame taken (gunicorn allows 16 MiB; a command is a few bytes).
pub const MAX_FRAME: usize = 64 * 1024;
/// A connection with no complete request for this long is closed (gunicorn's idle bound).
pub const IDLE: Duration = Duration::from_secs(300);
/// A started frame, or an answer the client does not read, must be done within this.
pub const STALL: Duration = Duration::from_secs(10);
/// At most this many bytes are read from one connection per pass of the master loop.
const READ_BUDGET: usize = MAX_FRAME + 4;

/// Why a connection is closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The client hung up, or a read or write failed.
    Gone,
    /// A length over [`MAX_FRAME`].
    TooLarge(usize),
    /// Past [`IDLE`] or [`STALL`].
    TimedOut,
}

/// One client connection.
pub struct Conn {
    /// The socket, non-blocking.
    stream: UnixStream,
    /// Bytes read and not yet taken as a frame.
    input: Vec<u8>,
    /// Encoded answers not yet written.
    output: Vec<u8>,
    /// The last complete request, or the connect: the idle clock.
    last_request: Instant,
    /// When the unfinished frame in `input`, or the unwritten `output`, began.
    stalled_since: Option<Instant>,
}

impl Conn {
    /// Takes an accepted stream, making it non-blocking.
    pub fn new(stream: UnixStream, now: Instant) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        Ok(Conn {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            last_request: now,
            stalled_since: None,
        })
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> std::os::unix::io::RawFd {
        std::os::unix::io::AsRawFd::as_raw_fd(&self.stream)
    }

    /// Whether answers wait to be written (the loop then polls again soon).
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// When the client last completed a request.
    pub fn last_request(&self) -> Instant {
        self.last_request
    }

    /// Reads what has come, within the budget, and returns the complete frames. While an
    /// answer is unwritten nothing more is read: a client must read what it asked for.
    pub fn read_frames(&mut self, now: Instant) -> Result<Vec<Vec<u8>>, Closed> {
        if self.has_output() {
            return Ok(Vec::new());
        }
        let mut chunk = [0u8; 8192];
        let mut taken = 0;
        while taken < READ_BUDGET {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Closed::Gone),
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    taken += n;
                    frame_length(&self.input)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Closed::Gone),
            }
        }
        let frames = split_frames(&mut self.input)?;
        if !frames.is_empty() {
            self.last_request = now;
        }
        self.stalled_since = match (self.input.is_empty(), self.stalled_since) {
            (true, _) => None,
            (false, None) => Some(now),
            (false, since) => since,
        };
        Ok(frames)
    }

    /// Queues one answer (a JSON body) and writes what the socket takes.
    pub fn answer(&mut self, body: &[u8], now: Instant) -> Result<(), Closed> {
        self.output.extend_from_slice(&encode(body));
        self.flush(now)
    }

    /// Writes queued answers without blocking.
    pub fn flush(&mut self, now: Instant) -> Result<(), Closed> {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return Err(Closed::Gone),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stalled_since.get_or_insert(now);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Closed::Gone),
            }
        }
        if self.input.is_empty() {
            self.stalled_since = None;
        }
        Ok(())
    }

    /// Past its idle or stall deadline.
    pub fn expired(&self, now: Instant) -> bool {
        let stalled = self.stalled_since.is_some_and(|s| now.duration_since(s) > STALL);
        stalled || now.duration_since(self.last_request) > IDLE
    }
}

/// A frame: the length prefix, then the body.
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// The length the buffer's prefix announces, once four bytes are in; too large is an error.
fn frame_length(input: &[u8]) -> Result<Option<usize>, Closed> {
    let Some(prefix) = input.get(..4) else { return Ok(None) };
    let length = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
    if length > MAX_FRAME {
        return Err(Closed::TooLarge(length));
    }
    Ok(Some(length))
}

/// Takes every complete frame's body off the front of `input`.
fn split_frames(input: &mut Vec<u8>) -> Result<Vec<Vec<u8>>, Closed> {
    let mut frames = Vec::new();
    let mut start = 0;
    while let Some(length) = frame_length(&input[start..])? {
        let end = start + 4 + length;
        if input.len() < end {
            break;
        }
        frames.push(input[start + 4..end].to_vec());
        start = end;
    }
    input.drain(..start);
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_whole_and_keep_the_rest() {
        let mut input = encode(b"{\"a\":1}");
        input.extend_from_slice(&encode(b"[]"));
        input.extend_from_slice(&[0, 0, 0, 9, b'{']);
        let frames = split_frames(&mut input).unwrap();
        assert_eq!(frames, vec![b"{\"a\":1}".to_vec(), b"[]".to_vec()]);
        assert_eq!(input, vec![0, 0, 0, 9, b'{']);
    }

    #[test]
    fn an_oversize_length_is_refused_before_its_body() {
        let mut input = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        assert_eq!(split_frames(&mut input), Err(Closed::TooLarge(MAX_FRAME + 1)));
        let mut short = vec![0, 0];
        assert_eq!(split_frames(&mut short), Ok(Vec::new()));
    }

    #[test]
    fn a_client_that_stalls_mid_frame_expires() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let mut conn = Conn::new(a, start).unwrap();
        b.write_all(&[0, 0, 0, 5, b'{']).unwrap();
        assert_eq!(conn.read_frames(start), Ok(Vec::new()));
        assert!(!conn.expired(start + STALL / 2));
        assert!(conn.expired(start + STALL + Duration::from_secs(1)));
        drop(b);
        assert_eq!(conn.read_frames(start), Err(Closed::Gone));
    }
}

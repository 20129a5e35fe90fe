//! The connection's [`Transport`] as the `AsyncRead`/`AsyncWrite` h2 is written against,
//! with no runtime under it: `WouldBlock` is `Pending`, and the loop polls again when the
//! descriptor's next edge comes (docs/http2-engine.md, "How h2 plugs into ferricorn").
//!
//! mio is edge-triggered, so the adapter records whether a `Pending` came from the
//! transport ([`Flags::blocked`]): any other `Pending` (h2 yielding by itself) must be
//! polled again at once. The same holds for TLS plaintext decrypted ahead
//! ([`Transport::buffered`]), which no edge announces.
//!
//! [`Sniffer`] walks the frame headers of what h2 reads, to count the PING and SETTINGS
//! frames h2 answers without telling its user: past an allowance the connection is a
//! flood and the loop sends GOAWAY `ENHANCE_YOUR_CALM`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::super::transport::Transport;
use super::upgrade::Upgraded;

/// The client connection preface (RFC 9113 §3.4), before its SETTINGS frame.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// PINGs and SETTINGS (not ACKs) a connection may send in a burst; refilled at
/// [`FLOOD_REFILL_PER_SEC`]. Clients send a handful per connection.
const FLOOD_BURST: f64 = 100.0;
/// How fast the PING/SETTINGS allowance refills, per second.
const FLOOD_REFILL_PER_SEC: f64 = 10.0;

/// What the adapter tells the loop after a poll, shared with the connection (one thread
/// at a time; atomics only so that a connection may move to the asgi worker's socket
/// thread).
#[derive(Default)]
pub struct Flags {
    /// A read or write met `WouldBlock`: the descriptor's next edge brings the loop back.
    pub blocked: AtomicBool,
    /// The peer went over its PING/SETTINGS allowance: GOAWAY it.
    pub flood: AtomicBool,
}

/// A transport seen through tokio's I/O traits.
pub struct H2Io<T: Transport> {
    /// The connection's transport (shared with nothing else once HTTP/2 runs).
    transport: Arc<T>,
    /// Bytes read before h2 took over (the preface the HTTP/1.1 reader saw, or an
    /// upgrade's rewritten start), handed to h2 before the transport's.
    replay: BytesMut,
    /// Counts PING and SETTINGS frames in what is read.
    sniffer: Sniffer,
    /// Shared with the connection.
    flags: Arc<Flags>,
    /// Written before anything h2 writes: an upgrade's `101`.
    prelude: Bytes,
    /// An upgrade's stream 1, handed to h2 after the client's preface and first frame.
    splice: Option<Bytes>,
}

impl<T: Transport> H2Io<T> {
    /// `replay` is what was read of the client's preface (or, after an upgrade, of
    /// what follows the request); `upgraded`: the switch's `101` and stream 1.
    pub fn new(
        transport: Arc<T>,
        replay: BytesMut,
        flags: Arc<Flags>,
        upgraded: Option<Upgraded>,
    ) -> H2Io<T> {
        let sniffer = Sniffer::new(PREFACE.len());
        let (prelude, splice) = match upgraded {
            Some(Upgraded { prelude, splice }) => (prelude, Some(splice)),
            None => (Bytes::new(), None),
        };
        H2Io { transport, replay, sniffer, flags, prelude, splice }
    }

    /// One write as h2 sees it: `WouldBlock` is `Pending` (and noted), `EINTR` retried.
    /// An upgrade's `101` goes first.
    fn written(&mut self, write: impl Fn(&T) -> io::Result<usize>) -> Poll<io::Result<usize>> {
        match self.push_prelude() {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        loop {
            match write(&self.transport) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.blocked(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes what is left of the prelude; `Ready(Ok)` once none is.
    fn push_prelude(&mut self) -> Poll<io::Result<()>> {
        while !self.prelude.is_empty() {
            match self.transport.write(&self.prelude) {
                Ok(n) => self.prelude.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.blocked(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// After an upgrade: reads the client's preface and first frame (its SETTINGS) into
    /// `replay`, then puts stream 1's frames after them; `Pending` until they are here.
    /// A first frame longer than any h2 takes now is not waited for: h2 refuses it.
    fn splice_in(&mut self) -> Poll<io::Result<()>> {
        let head = PREFACE.len() + 9;
        let mut chunk = [0u8; 4096];
        loop {
            let want = match self.replay.get(PREFACE.len()..head) {
                Some(l) => {
                    head + (usize::from(l[0]) << 16 | usize::from(l[1]) << 8 | usize::from(l[2]))
                }
                None => head,
            };
            if want > head + super::upgrade::FRAME {
                self.splice = None;
                return Poll::Ready(Ok(()));
            }
            if self.replay.len() >= want {
                let rest = self.replay.split_off(want);
                self.replay.extend_from_slice(&self.splice.take().unwrap_or_default());
                self.replay.extend_from_slice(&rest);
                return Poll::Ready(Ok(()));
            }
            let room = (want - self.replay.len()).min(chunk.len());
            match self.transport.read(&mut chunk[..room]) {
                // The client left: h2 finds out from what came.
                Ok(0) => {
                    self.splice = None;
                    return Poll::Ready(Ok(()));
                }
                Ok(n) => self.replay.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.blocked(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn blocked<R>(&self) -> Poll<R> {
        self.flags.blocked.store(true, Relaxed);
        Poll::Pending
    }
}

impl<T: Transport> AsyncRead for H2Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.sniffer.tripped {
            // Nothing more is read from a flooding peer: h2 only writes its GOAWAY.
            return this.blocked();
        }
        if this.splice.is_some() {
            match this.splice_in() {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        if !this.replay.is_empty() {
            let n = buf.remaining().min(this.replay.len());
            let bytes = this.replay.split_to(n);
            this.sniffer.see(&bytes, &this.flags);
            buf.put_slice(&bytes);
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.transport.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    this.sniffer.see(&buf.initialize_unfilled()[..n], &this.flags);
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return this.blocked(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<T: Transport> AsyncWrite for H2Io<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().written(|t| t.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().written(|t| t.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        T::PLAINTEXT
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.push_prelude() {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match this.transport.flush() {
            Ok(true) => Poll::Ready(Ok(())),
            Ok(false) => this.blocked(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => this.blocked(),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.transport.flush() {
            Ok(false) => return self.blocked(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.blocked(),
            _ => {}
        }
        Poll::Ready(self.transport.shutdown_write())
    }
}

/// Walks the frame headers (RFC 9113 §4.1) of the bytes h2 reads, counting PING and
/// SETTINGS frames that are not ACKs against a token bucket. h2 bounds their memory but
/// never closes the connection; past the allowance [`Flags::flood`] is raised, reading
/// stops, and the loop calls `abrupt_shutdown(ENHANCE_YOUR_CALM)`.
struct Sniffer {
    /// Bytes of the client preface still to skip.
    preface_left: usize,
    /// The frame header being gathered, when it straddles reads.
    head: [u8; 9],
    /// How much of `head` is filled.
    head_len: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    /// PING/SETTINGS frames still allowed.
    allowance: f64,
    /// When `allowance` was last refilled.
    refilled: Instant,
    /// Raised once, never cleared: nothing more is read from this peer.
    tripped: bool,
}

impl Sniffer {
    fn new(preface_left: usize) -> Sniffer {
        Sniffer {
            preface_left,
            head: [0; 9],
            head_len: 0,
            skip: 0,
            allowance: FLOOD_BURST,
            refilled: Instant::now(),
            tripped: false,
        }
    }

    /// Counts the control frames that start in `bytes`.
    fn see(&mut self, mut bytes: &[u8], flags: &Flags) {
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
            self.head_len += n;
            bytes = &bytes[n..];
            if self.head_len == 9 {
                self.head_len = 0;
                let h = self.head;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                // SETTINGS is type 4, PING type 6; flag 0x1 is ACK on both.
                if matches!(h[3], 4 | 6) && h[4] & 0x1 == 0 {
                    self.count(flags);
                }
            }
        }
    }

    /// Takes one frame from the allowance, raising the flood flag when none is left.
    fn count(&mut self, flags: &Flags) {
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * FLOOD_REFILL_PER_SEC;
        self.allowance = (self.allowance + refill).min(FLOOD_BURST) - 1.0;
        self.refilled = now;
        if self.allowance < 0.0 {
            flags.flood.store(true, Relaxed);
            self.tripped = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame header: length, type, flags, stream 0.
    fn frame(len: usize, kind: u8, flags: u8) -> Vec<u8> {
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 0];
        f.resize(9 + len, 0);
        f
    }

    #[test]
    fn the_sniffer_counts_pings_and_settings_but_not_acks_or_data() {
        // (frames sent, one byte at a time or whole, whether the flood trips)
        // (frames: length, type, flags), how many times, whether the flood trips
        type Case<'a> = (&'a [(usize, u8, u8)], usize, bool);
        let cases: &[Case] = &[
            (&[(8, 6, 0)], 100, false),
            (&[(8, 6, 0)], 101, true),
            (&[(0, 4, 0)], 101, true),
            (&[(8, 6, 1)], 10_000, false),
            (&[(0, 4, 1)], 10_000, false),
            (&[(16_384, 0, 0)], 1_000, false),
            (&[(100, 0, 0), (8, 6, 0)], 101, true),
        ];
        for &(frames, times, trips) in cases {
            for bytewise in [false, true] {
                let flags = Flags::default();
                let mut sniffer = Sniffer::new(PREFACE.len());
                let mut wire = PREFACE.to_vec();
                for _ in 0..times {
                    for &(len, kind, f) in frames {
                        wire.extend(frame(len, kind, f));
                    }
                }
                match bytewise {
                    true => wire.chunks(1).for_each(|b| sniffer.see(b, &flags)),
                    false => sniffer.see(&wire, &flags),
                }
                assert_eq!(
                    flags.flood.load(Relaxed),
                    trips,
                    "{frames:?} x{times} bytewise={bytewise}"
                );
            }
        }
    }
}

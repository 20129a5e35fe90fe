//! The `h2` crate driven from a single-threaded mio loop, no tokio runtime.
//!
//! `h2-mio [PORT] [--tls CERT KEY]`: listens on 127.0.0.1:PORT (default 8000), accepts
//! h2c connections (prior knowledge, RFC 9113 section 3.3, or Upgrade), or with `--tls`
//! TLS with ALPN `h2` ([`wire`]), and answers every request with 200
//! "Hello, World!\n". Each connection owns an `h2::server::Connection` over [`MioIo`], an
//! `AsyncRead + AsyncWrite` that maps `WouldBlock` to `Pending`. The connection is polled
//! whenever its socket is ready, and again while its waker ([`Flag`]) was called during
//! the poll; with `H2_NOOP_WAKER=1` the waker is `Waker::noop()` instead, and the loop
//! relies on re-polling after its own actions (sending) alone. Either way it counts how
//! often h2 returned `Pending` without the socket having said `WouldBlock` (mio is
//! edge-triggered: a missed drain is a hung connection).
//!
//! `GET /big` answers 50 MiB, sent only as the client's flow-control window allows
//! (`reserve_capacity` / `poll_capacity`): the backpressure path of a WSGI iterable.
//! [`Sniffer`] closes PING and SETTINGS floods, which h2 answers without limit, and
//! [`upgrade`] serves an HTTP/1.1 `Upgrade: h2c` as well as prior knowledge.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use bytes::Bytes;
use h2::server::{self, Connection, Handshake};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll as MioPoll, Token};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The listener's token; connections count up from 1.
const LISTENER: Token = Token(0);

/// The body every request gets.
const HELLO: &[u8] = b"Hello, World!\n";

/// Bytes of the `/big` response: 50 MiB, issue 14's download size.
const BIG: usize = 50 * 1024 * 1024;

/// The most a `/big` stream asks window for, and hands h2, at once.
const BIG_STEP: usize = 1024 * 1024;

/// PINGs and SETTINGS (not ACKs) a connection may send in a burst; refilled at
/// [`FLOOD_REFILL_PER_SEC`]. Clients send a handful per connection.
const FLOOD_BURST: f64 = 100.0;

/// How fast the PING/SETTINGS allowance refills, per second.
const FLOOD_REFILL_PER_SEC: f64 = 10.0;

/// Walks the frame headers (RFC 9113 section 4.1) of the bytes h2 reads, to count the
/// control frames h2 answers without telling its user: PING and SETTINGS floods. h2
/// bounds their memory but never closes the connection; past the allowance this sets
/// `flood` and the loop calls `abrupt_shutdown(ENHANCE_YOUR_CALM)`.
struct Sniffer {
    /// Bytes of the client preface (RFC 9113 section 3.4) still to skip.
    preface_left: usize,
    /// The frame header being gathered, when it straddles reads.
    head: [u8; 9],
    /// How much of `head` is filled.
    head_len: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    /// Token bucket of PING/SETTINGS frames still allowed.
    allowance: f64,
    /// When `allowance` was last refilled.
    refilled: Instant,
    /// Shared with [`Conn`]: the peer went over the allowance.
    flood: Rc<Cell<bool>>,
    /// Set with `flood`, never cleared: nothing more is read from this peer, so h2
    /// stops answering the flood and only writes its GOAWAY.
    tripped: bool,
}

impl Sniffer {
    /// Counts the control frames that start in `bytes`.
    fn see(&mut self, mut bytes: &[u8]) {
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
                // PING is type 6, SETTINGS type 4; flag 0x1 is ACK on both.
                if matches!(h[3], 4 | 6) && h[4] & 0x1 == 0 {
                    self.count();
                }
            }
        }
    }

    /// Takes one frame from the allowance, raising `flood` when none is left.
    fn count(&mut self) {
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * FLOOD_REFILL_PER_SEC;
        self.allowance = (self.allowance + refill).min(FLOOD_BURST) - 1.0;
        self.refilled = now;
        if self.allowance < 0.0 {
            self.flood.set(true);
            self.tripped = true;
        }
    }
}

/// A non-blocking socket seen through tokio's I/O traits.
struct MioIo {
    /// The connection's socket (or TLS over it), registered edge-triggered for both
    /// directions.
    sock: Wire,
    /// Set when a read or write hit `WouldBlock`: only then will mio report it again.
    blocked: Rc<Cell<bool>>,
    /// Counts PING and SETTINGS frames in what is read.
    sniffer: Sniffer,
    /// Bytes read before h2 took over (the preface, or an upgrade's rewritten start),
    /// handed to h2 before the socket's.
    replay: Vec<u8>,
    /// How much of `replay` h2 has had.
    replay_at: usize,
}

impl AsyncRead for MioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.sniffer.tripped {
            return Poll::Pending;
        }
        if this.replay_at < this.replay.len() {
            let n = buf.remaining().min(this.replay.len() - this.replay_at);
            let bytes = &this.replay[this.replay_at..this.replay_at + n];
            this.sniffer.see(bytes);
            buf.put_slice(bytes);
            this.replay_at += n;
            return Poll::Ready(Ok(()));
        }
        loop {
            match self.sock.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    let this = &mut *self;
                    this.sniffer.see(&buf.initialize_unfilled()[..n]);
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked.set(true);
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for MioIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.sock.write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked.set(true);
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.sock.flush() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.blocked.set(true);
                Poll::Pending
            }
            done => Poll::Ready(done),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.sock.shutdown())
    }
}

/// Where one connection is: h2 reads the client preface and SETTINGS before it yields
/// a `Connection`.
enum State {
    /// Before HTTP/2: telling prior knowledge from an HTTP/1.1 `Upgrade: h2c`
    /// ([`upgrade`]); `None` only while a step has it out.
    Upgrading(Option<Box<upgrade::Upgrade>>),
    /// Waiting for the preface (RFC 9113 section 3.4).
    Handshaking(Handshake<MioIo, Bytes>),
    /// Serving streams.
    Open(Connection<MioIo, Bytes>),
}

/// A stream whose request body is still arriving: it is answered once the body (and any
/// trailers) has been read, as a WSGI app reads `wsgi.input` before it returns.
struct Pending {
    /// The request body; DATA frames and trailers come through it.
    body: h2::RecvStream,
    /// Whether the DATA frames are done and trailers are being waited for.
    in_trailers: bool,
    /// Whether the request asked for `/big` (a [`BIG`]-byte body) rather than hello.
    big: bool,
    /// Where the response goes.
    tx: server::SendResponse<Bytes>,
}

/// A `/big` response on its way out, as fast as the peer's flow-control window allows
/// (RFC 9113 section 5.2): the shape of a WSGI iterable under backpressure.
struct Sending {
    /// The response body's stream.
    stream: h2::SendStream<Bytes>,
    /// Bytes still to send.
    left: usize,
}

/// A connection's waker: h2 calls it when something it waits on has changed (window
/// granted, a frame queued by a stream handle); the loop then polls that connection.
/// In ferricorn it would also wake the `mio::Waker`, for calls from the app's threads.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

#[path = "../upgrade.rs"]
mod upgrade;
#[path = "../wire.rs"]
mod wire;

use wire::Wire;

/// One client connection.
struct Conn {
    /// h2's side of it.
    state: State,
    /// Streams accepted whose bodies are not yet read.
    pending: Vec<Pending>,
    /// `/big` responses being sent.
    sending: Vec<Sending>,
    /// Set by [`Sniffer`]: the peer floods PING or SETTINGS; GOAWAY it.
    flood: Rc<Cell<bool>>,
    /// Set by h2 through [`Conn::waker`]: poll this connection again.
    woken: Arc<Flag>,
    /// The waker every poll of this connection passes to h2.
    waker: Waker,
    /// Shared with [`MioIo`]: set when the socket said `WouldBlock` in either direction.
    blocked: Rc<Cell<bool>>,
}

/// How often h2 returned `Pending` with the socket not blocked (it yielded on its own);
/// printed as connections close, it is the figure for "edge-triggered needs a re-poll".
static SELF_YIELDS: AtomicU64 = AtomicU64::new(0);

/// h2's settings as ferricorn would set them from `--http2-*` (gunicorn 27's defaults)
/// and its defences: SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 section 6.5.2) is sent,
/// so h2spec's limit test runs; rapid reset (CVE-2023-44487) is capped by
/// `max_pending_accept_reset_streams`; a header list over the limit is refused.
fn builder() -> server::Builder {
    let mut b = server::Builder::new();
    b.max_concurrent_streams(100)
        .initial_window_size(65_535)
        .max_frame_size(16_384)
        .max_header_list_size(65_536)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(Some(1024));
    b
}

/// Answers one stream at once: headers, then the body with END_STREAM.
fn respond(respond: &mut server::SendResponse<Bytes>) -> Result<(), h2::Error> {
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("content-length", HELLO.len())
        .body(())
        .expect("static response");
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(Bytes::from_static(HELLO), true)
}

/// Reads what has arrived of each pending body, answering the finished ones; whether
/// anything moved. A body error (h2 found the request malformed and reset the stream)
/// drops the stream unanswered.
fn read_bodies(
    pending: &mut Vec<Pending>,
    sending: &mut Vec<Sending>,
    cx: &mut Context<'_>,
) -> bool {
    let before = pending.len();
    let mut moved = false;
    pending.retain_mut(|p| loop {
        if p.in_trailers {
            return match p.body.poll_trailers(cx) {
                Poll::Pending => true,
                Poll::Ready(Ok(_)) if p.big => {
                    if let Ok(stream) = respond_big(&mut p.tx) {
                        sending.push(Sending { stream, left: BIG });
                    }
                    false
                }
                Poll::Ready(Ok(_)) => {
                    let _ = respond(&mut p.tx);
                    false
                }
                Poll::Ready(Err(_)) => false,
            };
        }
        match p.body.poll_data(cx) {
            Poll::Pending => return true,
            Poll::Ready(Some(Ok(chunk))) => {
                // Flow control: hand the window back once the bytes are consumed.
                let _ = p.body.flow_control().release_capacity(chunk.len());
                moved = true;
            }
            Poll::Ready(Some(Err(_))) => return false,
            Poll::Ready(None) => p.in_trailers = true,
        }
    });
    moved || pending.len() != before
}

/// Starts a `/big` response: headers now, the body as window allows.
fn respond_big(
    respond: &mut server::SendResponse<Bytes>,
) -> Result<h2::SendStream<Bytes>, h2::Error> {
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream")
        .header("content-length", BIG)
        .body(())
        .expect("static response");
    respond.send_response(response, false)
}

/// Hands each `/big` stream as many bytes as the window allows now; whether any moved.
/// `poll_capacity` returning `Pending` registers the waker: a WINDOW_UPDATE from the
/// peer wakes the connection, and the loop comes back here.
fn write_bodies(sending: &mut Vec<Sending>, chunk: &Bytes, cx: &mut Context<'_>) -> bool {
    let mut moved = false;
    sending.retain_mut(|s| loop {
        if s.left == 0 {
            return false;
        }
        s.stream.reserve_capacity(s.left.min(BIG_STEP));
        match s.stream.poll_capacity(cx) {
            Poll::Ready(Some(Ok(0))) | Poll::Pending => return true,
            Poll::Ready(Some(Ok(n))) => {
                let n = n.min(s.left).min(chunk.len());
                s.left -= n;
                if s.stream.send_data(chunk.slice(..n), s.left == 0).is_err() {
                    return false;
                }
                moved = true;
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return false,
        }
    });
    moved
}

/// Polls a connection until it can make no progress; `false` when it is finished.
fn drive(conn: &mut Conn, chunk: &Bytes) -> bool {
    let waker = conn.waker.clone();
    let cx = &mut Context::from_waker(&waker);
    loop {
        conn.woken.0.store(false, Ordering::Release);
        conn.blocked.set(false);
        let progressed = match &mut conn.state {
            State::Upgrading(slot) => match slot.take().map(|up| up.advance()) {
                Some(upgrade::Next::Wait(up)) => {
                    *slot = Some(up);
                    conn.blocked.set(true);
                    false
                }
                Some(upgrade::Next::Ready(io)) => {
                    conn.state = State::Handshaking(builder().handshake(*io));
                    true
                }
                Some(upgrade::Next::Close) | None => return false,
            },
            State::Handshaking(hs) => match Pin::new(hs).poll(cx) {
                Poll::Ready(Ok(c)) => {
                    conn.state = State::Open(c);
                    true
                }
                Poll::Ready(Err(_)) => return false,
                Poll::Pending => false,
            },
            State::Open(c) => {
                if conn.flood.replace(false) {
                    c.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                }
                let mut progressed = false;
                loop {
                    match c.poll_accept(cx) {
                        Poll::Ready(Some(Ok((req, tx)))) => {
                            let big = req.uri().path() == "/big";
                            let body = req.into_body();
                            conn.pending.push(Pending { body, in_trailers: false, big, tx });
                            progressed = true;
                        }
                        Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return false,
                        Poll::Pending => break,
                    }
                }
                let read = read_bodies(&mut conn.pending, &mut conn.sending, cx);
                progressed | read | write_bodies(&mut conn.sending, chunk, cx)
            }
        };
        // After sending, or when h2 woke us (window granted), poll again so h2 writes
        // the frames out; with a no-op waker only the first of these is seen. And mio is edge-triggered: Pending
        // without WouldBlock means h2 yielded by itself, so poll again too.
        if progressed || conn.woken.0.load(Ordering::Acquire) || conn.flood.get() {
            continue;
        }
        if conn.blocked.get() {
            return true;
        }
        SELF_YIELDS.fetch_add(1, Ordering::Relaxed);
        return true;
    }
}

/// A fresh connection: it starts before HTTP/2 ([`upgrade`]); `noop` picks
/// `Waker::noop()` over the connection's [`Flag`].
fn new_conn(sock: Wire, noop: bool) -> Conn {
    let blocked = Rc::new(Cell::new(false));
    let flood = Rc::new(Cell::new(false));
    let sniffer = Sniffer {
        preface_left: 24,
        head: [0; 9],
        head_len: 0,
        skip: 0,
        allowance: FLOOD_BURST,
        refilled: Instant::now(),
        flood: flood.clone(),
        tripped: false,
    };
    let replay = Vec::new();
    let io = MioIo { sock, blocked: blocked.clone(), sniffer, replay, replay_at: 0 };
    let state = State::Upgrading(Some(upgrade::Upgrade::new(io)));
    let woken = Arc::new(Flag(AtomicBool::new(false)));
    let waker = match noop {
        true => Waker::noop().clone(),
        false => Waker::from(woken.clone()),
    };
    let (pending, sending) = (Vec::new(), Vec::new());
    Conn { state, blocked, pending, sending, flood, woken, waker }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).map_or(8000, |p| p.parse().expect("port"));
    let tls = match args.get(2).map(String::as_str) {
        Some("--tls") => Some(wire::config(&args[3], &args[4])?),
        _ => None,
    };
    let mut poll = MioPoll::new()?;
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("h2-mio listening on 127.0.0.1:{port}");
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(1024);
    let chunk = Bytes::from(vec![b'x'; BIG_STEP]);
    let noop = std::env::var_os("H2_NOOP_WAKER").is_some_and(|v| v == "1");
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let token = Token(next);
                    next += 1;
                    let _ = sock.set_nodelay(true);
                    poll.registry().register(
                        &mut sock,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    let wire = match &tls {
                        Some(config) => Wire::tls(sock, config)?,
                        None => Wire::Plain(sock),
                    };
                    let mut conn = new_conn(wire, noop);
                    if drive(&mut conn, &chunk) {
                        conns.insert(token, conn);
                    }
                }
                continue;
            }
            let token = event.token();
            let alive = conns.get_mut(&token).is_some_and(|c| drive(c, &chunk));
            if !alive && conns.remove(&token).is_some() {
                let n = SELF_YIELDS.load(Ordering::Relaxed);
                eprintln!("closed {token:?}; self-yields so far: {n}");
            }
        }
    }
}

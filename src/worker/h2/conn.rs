//! One HTTP/2 connection on the loop: h2's `server::Connection` polled by hand whenever
//! its descriptor is ready or one of its streams has news, each stream's bytes moved
//! between h2's handles and the [`Stream`] the app's side holds.
//!
//! All h2 calls happen here, on the loop thread. h2's waker only raises a flag
//! ([`Woken`]) that makes [`H2Conn::drive`] poll again before it returns: everything h2
//! waits on (a WINDOW_UPDATE, a frame to write) is read or written inside that same
//! call. What happens on the app's threads comes in through [`super::stream::Nudge`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::server::{self, Connection, Handshake, SendResponse};
use h2::{FlowControl, Reason, RecvStream, SendStream};

use super::super::transport::Transport;
use super::io::{Flags, H2Io};
use super::stream::{Nudge, Stream};
use super::upgrade::Upgraded;

/// Body bytes of a request received (their window handed back at once) before the app
/// is called; the rest comes as the app reads. At most this times
/// `--http2-max-concurrent-streams` bytes wait per connection.
const PREBUFFER: usize = 64 * 1024;
/// The most window one stream asks for, and hands h2, at once.
const MAX_STEP: usize = 1 << 20;
/// How long a closing connection (GOAWAY sent, nothing in flight) has to go away.
const CLOSING_WAIT: Duration = Duration::from_secs(1);
/// A connection with streams in flight is not timed out by the loop.
const BUSY: Duration = Duration::from_secs(24 * 3600);
/// How often a poll may find h2 pending for no reason the transport gave (h2 yielded by
/// itself) and poll again before the loop waits for an edge.
const SELF_YIELDS: usize = 8;

/// `--http2-*`: what every connection of a worker is built with.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `--http2-initial-window-size`.
    pub initial_window_size: u32,
    /// `--http2-max-concurrent-streams`.
    pub max_concurrent_streams: u32,
    /// `--http2-max-frame-size`.
    pub max_frame_size: u32,
    /// `--http2-max-header-list-size` (0: unlimited).
    pub max_header_list_size: u32,
    /// How long a connection may stay with no stream open.
    pub idle: Duration,
}

impl Settings {
    /// h2's builder from the settings, with the defences h2 has configured: rapid reset
    /// (CVE-2023-44487) caps streams reset before the app saw them, and streams the
    /// server itself had to reset; a header list over the limit (HPACK bombs, the
    /// CONTINUATION flood, which h2 counts against it) ends the connection.
    fn builder(&self) -> server::Builder {
        let mut builder = server::Builder::new();
        let header_list = match self.max_header_list_size {
            0 => u32::MAX,
            n => n,
        };
        builder
            .initial_window_size(self.initial_window_size)
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_frame_size(self.max_frame_size)
            .max_header_list_size(header_list)
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(Some(1024));
        builder
    }
}

/// A request stream the connection accepted: the loop hands it to the app.
pub struct Accepted {
    /// The request's pseudo-headers and headers (the body comes through `stream`).
    pub request: http::Request<()>,
    /// Where the app's side reads the body and queues the response.
    pub stream: Arc<Stream>,
    /// A body follows (no END_STREAM on the HEADERS).
    pub body: bool,
}

/// h2 called its waker during a poll: poll again.
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Where the connection is.
enum State<T: Transport> {
    /// Waiting for the client preface and SETTINGS (RFC 9113 §3.4).
    Handshaking(Handshake<H2Io<T>, Bytes>),
    /// Serving streams.
    Open(Connection<H2Io<T>, Bytes>),
}

/// One stream in flight, h2's side.
struct Live {
    /// The app's side.
    stream: Arc<Stream>,
    /// Where the head goes, until it went.
    respond: Option<SendResponse<Bytes>>,
    /// The response body's stream, once the head went without END_STREAM.
    send: Option<SendStream<Bytes>>,
    /// The request body, until END_STREAM.
    recv: Option<RecvStream>,
    /// The request body's window, handed back as the app takes bytes.
    flow: FlowControl,
    /// The request, until the app is given it: once its body ended, or [`PREBUFFER`]
    /// bytes of it arrived (so an app never answers a request whose body is still
    /// arriving within one window, and a small body is whole before the app runs).
    request: Option<http::Request<()>>,
    /// A body came with the request (no END_STREAM on its HEADERS).
    body: bool,
    /// Body bytes received before the app was given the request, their window handed
    /// back as they came.
    prebuffered: usize,
}

/// One HTTP/2 connection.
pub struct H2Conn<T: Transport> {
    /// h2's connection.
    state: State<T>,
    /// The streams in flight.
    live: Vec<Live>,
    /// What the transport adapter reports.
    flags: Arc<Flags>,
    /// Raised by h2's waker.
    woken: Arc<Woken>,
    /// The waker every poll passes to h2.
    waker: Waker,
    /// The connection's transport, for its descriptor and what it holds decrypted.
    transport: Arc<T>,
    /// This connection's token, for the streams' nudges.
    token: usize,
    /// How the streams' app side wakes the loop.
    nudge: Nudge,
    /// When the loop closes (or, while open and idle, winds down) the connection.
    deadline: Instant,
    /// How long it may stay with no stream.
    idle: Duration,
    /// GOAWAY was sent: no new streams, in-flight ones finish.
    closing: bool,
}

impl<T: Transport> H2Conn<T> {
    /// A connection whose first bytes (`replay`, the preface at least begun) were read
    /// by the HTTP/1.1 reader; or, `upgraded`, the bytes after a request that asked for
    /// `h2c`.
    pub fn new(
        transport: Arc<T>,
        (replay, upgraded): (BytesMut, Option<Upgraded>),
        settings: &Settings,
        (token, nudge): (usize, Nudge),
        now: Instant,
    ) -> H2Conn<T> {
        let flags = Arc::new(Flags::default());
        let io = H2Io::new(Arc::clone(&transport), replay, Arc::clone(&flags), upgraded);
        let woken = Arc::new(Woken(AtomicBool::new(false)));
        H2Conn {
            state: State::Handshaking(settings.builder().handshake(io)),
            live: Vec::new(),
            flags,
            waker: Waker::from(Arc::clone(&woken)),
            woken,
            transport,
            token,
            nudge,
            deadline: now + settings.idle,
            idle: settings.idle,
            closing: false,
        }
    }

    /// The descriptor the loop registers.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.transport.fd()
    }

    /// When the loop calls [`H2Conn::expire`].
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The connection's transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Sends GOAWAY (graceful stop, HUP, idle): in-flight streams finish, no new one
    /// starts, then the connection ends: h2 closes it once the client acknowledges the
    /// GOAWAY's PING, and the loop [`CLOSING_WAIT`] after its last stream if it does not.
    pub fn graceful_shutdown(&mut self) {
        if let State::Open(conn) = &mut self.state {
            if !std::mem::replace(&mut self.closing, true) {
                conn.graceful_shutdown();
                self.idle = self.idle.min(CLOSING_WAIT);
            }
        }
    }

    /// The deadline passed: an idle connection winds down with GOAWAY; `false` when it
    /// is to be closed now (still handshaking, or already wound down).
    pub fn expire(&mut self, now: Instant) -> bool {
        let open = matches!(self.state, State::Open(_));
        if !open || self.closing || !self.live.is_empty() {
            return false;
        }
        self.graceful_shutdown();
        self.deadline = now + CLOSING_WAIT;
        true
    }

    /// Streams still in flight when the connection is dropped: their app side stops.
    pub fn abandon(&mut self) {
        for live in self.live.drain(..) {
            live.stream.reset();
        }
    }

    /// Polls until nothing moves; streams the client opened are appended to `accepted`.
    /// `false` when the connection is over (the loop closes it).
    pub fn drive(&mut self, accepted: &mut Vec<Accepted>, now: Instant) -> bool {
        let waker = self.waker.clone();
        let cx = &mut Context::from_waker(&waker);
        let mut self_yields = 0;
        loop {
            self.woken.0.store(false, Ordering::Release);
            self.flags.blocked.store(false, Relaxed);
            let progressed = match self.poll_once(cx, accepted) {
                Some(progressed) => progressed,
                None => {
                    self.abandon();
                    return false;
                }
            };
            if progressed || self.woken.0.load(Ordering::Acquire) || self.flags.flood.load(Relaxed)
            {
                continue;
            }
            // Edge-triggered: a Pending the transport did not cause, or plaintext TLS
            // holds decrypted, raises no edge; poll again (boundedly).
            let unexplained = !self.flags.blocked.load(Relaxed) || self.transport.buffered();
            if unexplained && self_yields < SELF_YIELDS {
                self_yields += 1;
                continue;
            }
            break;
        }
        // Streams in flight answer to the app's timeouts; once none is, the idle wait
        // starts again.
        match self.live.is_empty() {
            false => self.deadline = now + BUSY,
            true if self.deadline > now + self.idle => self.deadline = now + self.idle,
            true => {}
        }
        true
    }

    /// One pass; `None` when the connection is over.
    fn poll_once(&mut self, cx: &mut Context<'_>, accepted: &mut Vec<Accepted>) -> Option<bool> {
        let conn = match &mut self.state {
            State::Handshaking(handshake) => {
                return match Pin::new(handshake).poll(cx) {
                    Poll::Ready(Ok(conn)) => {
                        self.state = State::Open(conn);
                        Some(true)
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!("HTTP/2 handshake failed: {e}");
                        None
                    }
                    Poll::Pending => Some(false),
                };
            }
            State::Open(conn) => conn,
        };
        if self.flags.flood.swap(false, Relaxed) {
            tracing::warn!("HTTP/2: PING or SETTINGS flood; GOAWAY ENHANCE_YOUR_CALM");
            self.closing = true;
            conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
        }
        let mut progressed = false;
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    progressed = true;
                    self.live.push(Live::new(request, respond, self.token, &self.nudge));
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!("HTTP/2 connection error: {e}");
                    return None;
                }
                Poll::Ready(None) => return None,
                Poll::Pending => break,
            }
        }
        let before = self.live.len();
        let mut moved = false;
        self.live.retain_mut(|live| {
            let (went, alive) = step(live, cx);
            moved |= went;
            if alive
                && live.request.is_some()
                && (live.recv.is_none() || live.prebuffered >= PREBUFFER)
            {
                let request = live.request.take().expect("checked");
                let stream = Arc::clone(&live.stream);
                accepted.push(Accepted { request, stream, body: live.body });
            }
            alive
        });
        Some(progressed || moved || self.live.len() != before)
    }
}

impl Live {
    /// A stream h2 accepted; the app gets it once its body ended or filled
    /// [`PREBUFFER`].
    fn new(
        request: http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
        token: usize,
        nudge: &Nudge,
    ) -> Live {
        let (parts, mut recv) = request.into_parts();
        let ended = recv.is_end_stream();
        let flow = recv.flow_control().clone();
        Live {
            stream: Stream::new(token, nudge.clone(), ended),
            respond: Some(respond),
            send: None,
            recv: (!ended).then_some(recv),
            flow,
            request: Some(http::Request::from_parts(parts, ())),
            body: !ended,
            prebuffered: 0,
        }
    }
}

/// Moves one stream's bytes as far as h2 lets them; (whether anything moved, whether the
/// stream is still in flight).
fn step(live: &mut Live, cx: &mut Context<'_>) -> (bool, bool) {
    let mut moved = receive(live, cx);
    let released = live.stream.take_released();
    if released > 0 {
        let _ = live.flow.release_capacity(released);
    }
    let reset = match (&mut live.respond, &mut live.send) {
        (Some(respond), _) => respond.poll_reset(cx),
        (None, Some(send)) => send.poll_reset(cx),
        (None, None) => Poll::Pending,
    };
    if let Poll::Ready(reason) = reset {
        tracing::debug!("HTTP/2: the client reset a stream ({reason:?})");
        live.stream.reset();
        return (true, false);
    }
    if live.stream.aborted() {
        match (&mut live.respond, &mut live.send) {
            (Some(respond), _) => respond.send_reset(Reason::INTERNAL_ERROR),
            (None, Some(send)) => send.send_reset(Reason::INTERNAL_ERROR),
            (None, None) => {}
        }
        live.stream.reset();
        return (true, false);
    }
    if let Some(respond) = live.respond.as_mut() {
        let Some(head) = live.stream.take_head() else { return (moved, true) };
        let (queued, end) = live.stream.queued();
        let end = end && queued == 0;
        match respond.send_response(head, end) {
            Ok(_) if end => return (true, finish(live)),
            Ok(send) => live.send = Some(send),
            Err(e) => {
                tracing::debug!("HTTP/2: the response could not be sent: {e}");
                live.stream.reset();
                return (true, false);
            }
        }
        live.respond = None;
        moved = true;
    }
    match send_body(live, cx) {
        Some(went) => (moved || went, true),
        None => (true, finish(live)),
    }
}

/// Reads what arrived of the request body into the stream; whether anything did.
fn receive(live: &mut Live, cx: &mut Context<'_>) -> bool {
    let mut moved = false;
    while let Some(recv) = live.recv.as_mut() {
        match recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                if live.request.is_some() {
                    // Not yet the app's: the window goes back now, as the bytes wait here.
                    live.prebuffered += data.len();
                    let _ = live.flow.release_capacity(data.len());
                    live.stream.prepaid(data.len());
                }
                live.stream.push_body(data);
                moved = true;
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!("HTTP/2: a request body failed: {e}");
                live.recv = None;
                live.stream.reset();
                return true;
            }
            Poll::Ready(None) => {
                live.recv = None;
                live.stream.end_body();
                return true;
            }
            Poll::Pending => break,
        }
    }
    moved
}

/// Sends queued response bytes as the window allows. `None` once the response ended
/// (or cannot go on); else whether anything moved.
fn send_body(live: &mut Live, cx: &mut Context<'_>) -> Option<bool> {
    let send = live.send.as_mut()?;
    let mut moved = false;
    loop {
        let (queued, end) = live.stream.queued();
        if queued == 0 {
            if !end {
                return Some(moved);
            }
            return send.send_data(Bytes::new(), true).ok().and(None);
        }
        send.reserve_capacity(queued.min(MAX_STEP));
        // `capacity` is the window held now; `poll_capacity` says only when it grows
        // (and registers the waker for that), so it is asked only with none held.
        let room = match send.capacity() {
            0 => match send.poll_capacity(cx) {
                Poll::Pending => return Some(moved),
                // Window that came and went: ask again, which registers the waker.
                Poll::Ready(Some(Ok(0))) => continue,
                Poll::Ready(Some(Ok(room))) => room,
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return None,
            },
            room => room,
        };
        let (chunk, last) = live.stream.take_out(room);
        send.send_data(chunk.unwrap_or_default(), last).ok()?;
        if last {
            return None;
        }
        moved = true;
    }
}

/// The response went out whole: the stream leaves the connection (a request body still
/// arriving is refused by h2 as the handle drops). Always `false`: not in flight.
fn finish(live: &mut Live) -> bool {
    live.recv = None;
    live.stream.reset();
    false
}

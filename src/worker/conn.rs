//! One keep-alive connection of the async worker, as a state machine over any
//! [`Transport`].
//!
//! Shaped like hyper's `proto::h1` connection: the [`Phase`] says what the connection
//! waits for, and every transition happens here, in [`Conn::drive`] (on the loop) or
//! [`Conn::run`] (on an app thread, which the loop hands a request to). Nothing outside
//! changes a connection's state: the loop reports readiness ([`Conn::ready`]) and reads
//! the deadline. Reads and writes are non-blocking; `may_read`/`may_write` remember
//! readiness between edge-triggered events so no syscall is spent on a transport known
//! to be empty or full.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pyo3::prelude::*;

use super::front::{parse_request, Front};
use super::h2::upgrade::{self, Upgraded};
use super::h2::Opening;
use super::handoff::{self, Handoff};
use super::io::{TransportSource, TransportStream, LINGER_BYTES, LINGER_TIME};
use super::output::Output;
use super::request::{self, Call};
use super::transport::Transport;
use crate::forwarded::Verdict;
use crate::http::response::RequestInfo;
use crate::http::{self, BodyDecoder, BodyFraming, Decoded, Head};
use crate::listener::Peer;
use crate::wsgi::{self, spool, Exchange, FileSpan, Input, Spool, Spooler, Step, Wire};

/// Bodies up to this size are received before the app is called, so a slow uploader
/// never holds Python (into a [`Spool`]: memory within the worker's budget, else a
/// temporary file); larger ones stream to `wsgi.input` from a thread.
pub const BODY_BUFFER: usize = 1 << 20;
/// Response bytes queued before the app's iterator is paused until the socket drains.
const HIGH_WATER: usize = 256 * 1024;
/// How long a client has to send a whole request head (slowloris); `--read-timeout` if
/// shorter.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new connection may stay silent (at least `--keep-alive`): browsers open
/// connections ahead of the requests they will carry.
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(5);

/// What a connection is waiting for.
// A Head and a response inline cost no allocation per request; the Conn holding this is
// boxed anyway.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// A request head: idle keep-alive while nothing of it has arrived.
    Head,
    /// The body of a parsed request, received (decoded) up to [`BODY_BUFFER`] into a
    /// spool: memory within the worker's budget, else a temporary file.
    Body {
        /// The request the body belongs to.
        head: Head,
        /// The forwarding headers' verdict, judged when the head arrived.
        forwarded: Verdict,
        /// Where in the body's framing the bytes received so far end.
        decoder: BodyDecoder,
        /// The body decoded so far.
        body: Spool,
    },
    /// A request that asks for `h2c`: its body (at most 64 KiB) arrives, then the switch.
    Upgrading {
        /// The request, stream 1 once the switch is made.
        head: Head,
        /// The body's length.
        length: usize,
    },
    /// The app was called; its response is being pulled and written.
    Respond(Responding),
    /// Write what is queued, then half-close and drain (RFC 9112 §9.6).
    Closing,
    /// Half-closed; reading and dropping what the client still sends.
    Linger {
        /// Bytes still to drop before giving up on a clean close.
        left: usize,
    },
}

/// A response in progress.
struct Responding {
    /// The app's response, pulled piece by piece.
    exchange: Exchange,
    /// `wsgi.input`: after the response, whether the body was read whole and what
    /// arrived after it.
    input: Py<Input>,
    /// The part of a `wsgi.file_wrapper` file still to send.
    file: Option<FileSpan>,
    /// The app was handed the socket (`gunicorn.socket`): if it takes the connection
    /// over, the connection is its own.
    offered: bool,
}

/// What the event loop does with a connection after driving it.
// As for Phase: the request moves to a thread without a box of its own.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// Wait for the next readiness event (or the deadline).
    Wait,
    /// Done with: the loop closes it.
    Close,
    /// Hand the connection and this request to a thread, which calls [`Conn::run`]
    /// (`--threads`, or a body too big to buffer).
    Offload(Request),
    /// The connection speaks HTTP/2 from here ([`Conn::into_http2`]).
    Http2,
}

/// A parsed request for a thread, with its body buffered or still to stream.
pub struct Request {
    /// The request line and headers.
    head: Head,
    /// The forwarding headers' verdict, judged when the head arrived.
    forwarded: Verdict,
    /// What of the body is here, and how the rest arrives.
    body: Body,
    /// When it was ready to run: its queue time runs from here to the app's call.
    ready: Instant,
}

impl Request {
    /// The request line and headers.
    pub fn head(&self) -> &Head {
        &self.head
    }
}

/// A request body as the app gets it.
pub enum Body {
    /// The whole body, decoded, before the app is called: in memory or a spool file.
    Buffered(Spool),
    /// The rest arrives while the app reads; raw bytes already received stay in the
    /// connection's `rbuf`.
    Streaming {
        /// Where in the body's framing the connection's bytes stand.
        decoder: BodyDecoder,
        /// What was already de-chunked, handed to the app first.
        decoded: Spool,
    },
}

/// What every connection of a worker shares, on the loop and on app threads.
pub struct Shared {
    /// The WSGI callable.
    pub app: Py<PyAny>,
    /// The environ's constant parts.
    pub globals: wsgi::Globals,
    /// SERVER_NAME and SERVER_PORT of each listener.
    pub servers: Vec<(String, String)>,
    /// Whether the app runs on threads (`--threads` > 1) rather than on the loop.
    pub threaded: bool,
    /// `--keep-alive`; zero disables keep-alive.
    pub keepalive: Duration,
    /// `--limit-request-line` and friends.
    pub limits: http::Limits,
    /// `--protocol`: HTTP heads or uwsgi packets.
    pub protocol: crate::config::Protocol,
    /// `--read-timeout`: how long a client may stay silent mid-request.
    pub read_timeout: Duration,
    /// Set by TERM (the signal handler's own flag): no new keep-alive from then on.
    pub stopping: Arc<AtomicBool>,
    /// `--max-requests`.
    pub recycler: super::Recycler,
    /// The memory budget and directory for bodies received before the app runs.
    pub spooler: Arc<Spooler>,
    /// `--limit-request-body` (0: none).
    pub body_limit: u64,
    /// When connections speak HTTP/2 (`--http-protocols h2`); `None`: never.
    pub http2: Option<super::h2::Policy>,
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// How heads are read: `--protocol`, the limits, the forwarding policy.
    fn front(&self) -> Front<'_> {
        Front { protocol: &self.protocol, limits: &self.limits, forwarded: &self.globals.forwarded }
    }

    /// Whether a response may leave the connection open for another request.
    fn keep_alive_allowed(&self) -> bool {
        !self.stopping() && !self.keepalive.is_zero()
    }
}

/// One client connection.
pub struct Conn<T: Transport> {
    /// Shared with `write()`'s stream and `wsgi.input`'s source, which hold it weakly.
    transport: Arc<T>,
    /// REMOTE_ADDR and REMOTE_PORT, and whose forwarding headers may be trusted.
    peer: Peer,
    /// Index of the listener it came from (SERVER_NAME, SERVER_PORT).
    listener: usize,
    /// Received bytes not yet parsed.
    rbuf: BytesMut,
    /// Response bytes queued, the app's big bodies by reference.
    out: Output,
    /// What the connection waits for.
    phase: Phase,
    /// The transport may hold unread bytes (a readable edge not yet drained).
    may_read: bool,
    /// The client's FIN was seen: after the data before it, a read returns EOF. A short
    /// read then does not mean "drained", since the FIN raises no further edge.
    peer_closed: bool,
    /// The transport may take more bytes (no partial write since the last writable edge).
    may_write: bool,
    /// When the loop closes the connection if it has not progressed.
    deadline: Instant,
    /// `--keep-alive`: how long it may stay idle between requests. Kept here so that the
    /// thread that finishes a response sets the same idle deadline as the loop.
    keepalive: Duration,
    /// A response went out on this connection: the client knows it may find it closed
    /// when idle (RFC 9112 §9.3.1); a new one's first request must not meet a reset.
    served: bool,
    /// A request asked for `h2c` and is answered `101`: what the HTTP/2 connection
    /// replays ([`Conn::into_http2`]).
    upgraded: Option<Box<Upgraded>>,
    /// `--metrics-bind`'s open-connections gauge, for as long as this lives.
    _open: crate::metrics::Held,
}

impl<T: Transport> Conn<T> {
    pub fn new(
        transport: T,
        peer: Peer,
        listener: usize,
        now: Instant,
        keepalive: Duration,
    ) -> Self {
        Conn {
            transport: Arc::new(transport),
            peer,
            listener,
            rbuf: BytesMut::new(),
            out: Output::default(),
            phase: Phase::Head,
            may_read: true,
            peer_closed: false,
            may_write: true,
            deadline: now + keepalive.max(FIRST_REQUEST_WAIT),
            keepalive,
            served: false,
            upgraded: None,
            _open: crate::metrics::Held::connection(),
        }
    }

    /// A connection whose first bytes were read before it was handed over (what followed a
    /// PROXY header): the start of its first request.
    pub fn with_received(mut self, received: BytesMut) -> Self {
        self.rbuf = received;
        self
    }

    /// A connection refused before its first request (its PROXY header): the error page
    /// for `status`, then the close.
    pub fn refused(mut self, status: u16) -> Self {
        self.out.push(&wsgi::exchange::error_page(status));
        self.phase = Phase::Closing;
        self
    }

    /// The descriptor the loop registers.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.transport.fd()
    }

    /// What a readiness event said (edge-triggered: remembered until used up).
    pub fn ready(&mut self, readable: bool, writable: bool, closed: bool) {
        self.may_read |= readable;
        self.may_write |= writable;
        self.peer_closed |= closed;
    }

    /// When the loop closes the connection if it has not progressed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A stopping worker's shorter wait for a first request.
    pub fn shorten_deadline(&mut self, at: Instant) {
        self.deadline = self.deadline.min(at);
    }

    /// Whether a response went out on this connection.
    pub fn served(&self) -> bool {
        self.served
    }

    /// Whether the connection is idle: no byte of a next request received, nothing owed
    /// to the client. A graceful stop closes these (once a last read found nothing).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head) && self.rbuf.is_empty() && self.out.is_empty()
    }

    /// Idle after a response: the client knows such a connection may close under it
    /// (RFC 9112 §9.3.1), so a full table may close it to make room for a new one.
    pub fn is_idle_keep_alive(&self) -> bool {
        self.served && self.is_idle()
    }

    /// Advances as far as the transport allows, on the loop.
    pub fn drive(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        scratch: &mut [u8],
        now: Instant,
    ) -> Next {
        self.advance(py, shared, Some(scratch), now)
    }

    /// Runs an offloaded request on an app thread: calls the app and writes what the
    /// transport takes, then hands the connection back (`None`: it is done with). What
    /// is left (the rest of a response to a slow reader, the next request, a linger) is
    /// the loop's: a thread never waits for a client.
    pub fn run(mut self, py: Python<'_>, shared: &Shared, request: Request) -> Option<Self> {
        let Request { head, forwarded, body, ready } = request;
        let input = match body {
            Body::Buffered(body) => Input::spooled(body),
            Body::Streaming { decoder, decoded } => {
                let weak = Arc::downgrade(&self.transport);
                let source = TransportSource::new(weak, shared.read_timeout);
                let raw = std::mem::take(&mut self.rbuf);
                Input::new(decoder, raw, Box::new(source), head.expect_continue)
                    .with_spool(decoded)
                    .with_limit(shared.body_limit)
            }
        };
        self.start(py, shared, (head, ready), forwarded, input);
        match self.advance(py, shared, None, Instant::now()) {
            Next::Close => {
                self.abandon(py);
                None
            }
            _ => Some(self),
        }
    }

    /// Every phase transition happens here. Without `scratch` (on an app thread) it
    /// stops at the phases that read from the client.
    fn advance(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        mut scratch: Option<&mut [u8]>,
        now: Instant,
    ) -> Next {
        loop {
            let step = match (&self.phase, scratch.as_deref_mut()) {
                (Phase::Respond(_), _) => self.on_respond(py, shared),
                (Phase::Closing, _) => self.on_closing(py),
                (_, None) => Ok(Progress::Wait),
                (Phase::Head, Some(scratch)) => self.on_head(py, shared, scratch, now),
                (Phase::Body { .. }, Some(scratch)) => self.on_body(py, shared, scratch, now),
                (Phase::Upgrading { .. }, Some(scratch)) => {
                    self.on_upgrading(py, shared, scratch, now)
                }
                (Phase::Linger { .. }, Some(scratch)) => self.on_linger(scratch),
            };
            match step {
                Ok(Progress::Again) => continue,
                Ok(Progress::Wait) => return self.flush_then(py, Next::Wait),
                Ok(Progress::Offload(request)) => {
                    return self.flush_then(py, Next::Offload(request))
                }
                Ok(Progress::Http2) => return Next::Http2,
                Ok(Progress::Close) | Err(_) => return Next::Close,
            }
        }
    }

    fn flush_then(&mut self, py: Python<'_>, next: Next) -> Next {
        match self.flush(py) {
            Ok(_) => next,
            Err(_) => Next::Close,
        }
    }

    fn on_head(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        scratch: &mut [u8],
        now: Instant,
    ) -> io::Result<Progress> {
        if let Some(opening) = self.http2_opening(shared) {
            return match opening {
                Opening::Http2 => Ok(Progress::Http2),
                Opening::NeedMore => self.read_head(shared, scratch, now),
                _ => Ok(self.refuse(&http::Error::BadRequestLine("HTTP/2 preface expected"))),
            };
        }
        let (head, forwarded) = match parse_request(&mut self.rbuf, &shared.front(), &self.peer) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return self.read_head(shared, scratch, now),
            Err(error) => return Ok(self.refuse(&error)),
        };
        let trusted = self.trusted_cleartext(shared);
        if let Some(length) = shared.http2.as_ref().and_then(|p| p.upgrade(&head, trusted)) {
            self.deadline = now + shared.read_timeout;
            self.phase = Phase::Upgrading { head, length };
            return Ok(Progress::Again);
        }
        if let Err(error) = spool::check_length(&head, shared.body_limit) {
            return Ok(self.refuse(&error));
        }
        self.deadline = now + shared.read_timeout;
        let decoder = BodyDecoder::new(head.framing);
        if decoder.is_done() {
            return self.dispatch(py, shared, head, forwarded, Body::Buffered(Spool::empty()));
        }
        // A client that waits for `100 Continue` gets it only when the app reads.
        let expects = head.expect_continue && self.rbuf.is_empty();
        let too_big = matches!(head.framing, BodyFraming::Length(n) if n > BODY_BUFFER as u64);
        if expects || too_big {
            let body = Body::Streaming { decoder, decoded: Spool::empty() };
            return self.dispatch(py, shared, head, forwarded, body);
        }
        self.receive_body(shared, head, forwarded, decoder);
        Ok(Progress::Again)
    }

    /// The body is received before the app runs, into a spool: in `rbuf` when the
    /// worker's budget grants it memory whole, else piece by piece into a file.
    fn receive_body(
        &mut self,
        shared: &Shared,
        mut head: Head,
        forwarded: Verdict,
        decoder: BodyDecoder,
    ) {
        let length = match head.framing {
            BodyFraming::Length(n) => Some(n),
            _ => None,
        };
        let body = shared.spooler.spool(length);
        if let Some(n) = length.filter(|&n| body.holds(n)) {
            // The whole body will sit in `rbuf`: one allocation, then taken without a copy.
            self.rbuf.reserve(n as usize);
        }
        if length.is_none_or(|n| (self.rbuf.len() as u64) < n) {
            head.own(); // while the body arrives: not the whole read the head came in
        }
        self.phase = Phase::Body { head, forwarded, decoder, body };
    }

    /// Whether the connection's first bytes open HTTP/2 (`None`: HTTP/1.x, go on).
    fn http2_opening(&self, shared: &Shared) -> Option<Opening> {
        let policy = shared.http2.as_ref()?;
        if self.served || self.rbuf.is_empty() {
            return None;
        }
        match policy.opening(&self.rbuf, self.transport.alpn_h2(), self.trusted_cleartext(shared)) {
            Opening::Http1 => None,
            opening => Some(opening),
        }
    }

    /// A cleartext connection from a peer in `--forwarded-allow-ips`: the only kind that
    /// may open HTTP/2 without TLS (gunicorn 27's rule).
    fn trusted_cleartext(&self, shared: &Shared) -> bool {
        T::PLAINTEXT && shared.globals.forwarded.trusts(self.peer.ip())
    }

    /// An `h2c` request's body arrives; with all of it, the switch to HTTP/2.
    fn on_upgrading(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        scratch: &mut [u8],
        now: Instant,
    ) -> io::Result<Progress> {
        let Phase::Upgrading { length, .. } = &self.phase else { unreachable!() };
        // A `100 Continue` still queued goes out before the `101`.
        if self.rbuf.len() >= *length && !self.flush(py)? {
            return Ok(Progress::Wait);
        }
        let Phase::Upgrading { head, length } = &mut self.phase else { unreachable!() };
        let out = &mut self.out;
        let continued = || out.push(http::response::CONTINUE);
        if let Some(upgraded) = upgrade::when_received(head, *length, &mut self.rbuf, continued) {
            self.upgraded = Some(Box::new(upgraded));
            return Ok(Progress::Http2);
        }
        if !self.may_read {
            return Ok(Progress::Wait);
        }
        match self.read(scratch)? {
            None => Ok(Progress::Wait),
            Some(0) => Ok(self.refuse(&http::Error::IncompleteBody)),
            Some(_) => {
                self.deadline = now + shared.read_timeout;
                Ok(Progress::Again)
            }
        }
    }

    /// The connection leaves HTTP/1.1 for HTTP/2: its transport, what was read of the
    /// preface (h2 reads it again) and an upgrade's switch, the client and the listener.
    pub fn into_http2(self) -> (Arc<T>, (BytesMut, Option<Upgraded>), Peer, usize) {
        let upgraded = self.upgraded.map(|u| *u);
        (self.transport, (self.rbuf, upgraded), self.peer, self.listener)
    }

    /// More of a head: read, or learn that the client is done.
    fn read_head(
        &mut self,
        shared: &Shared,
        scratch: &mut [u8],
        now: Instant,
    ) -> io::Result<Progress> {
        if !self.may_read {
            return Ok(Progress::Wait);
        }
        let was_empty = self.rbuf.is_empty();
        match self.read(scratch)? {
            None => return Ok(Progress::Wait),
            // The client's FIN ends its requests, not our responses (RFC 9112 §9.6):
            // what is queued for the requests before it still goes out.
            Some(0) if was_empty && self.out.is_empty() => return Ok(Progress::Close),
            Some(0) if was_empty => {
                self.phase = Phase::Closing;
                return Ok(Progress::Again);
            }
            Some(0) => return Ok(self.refuse(&http::Error::BadRequestLine("incomplete head"))),
            Some(_) => {}
        }
        if was_empty {
            self.deadline = now + HEAD_TIMEOUT.min(shared.read_timeout);
        }
        Ok(Progress::Again)
    }

    fn on_body(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        scratch: &mut [u8],
        now: Instant,
    ) -> io::Result<Progress> {
        let Phase::Body { decoder, body, .. } = &mut self.phase else { unreachable!() };
        let error = loop {
            let step = match in_place(decoder, body, &mut self.rbuf)? {
                true => Ok(Decoded::NeedMore),
                false => decoder.decode(&mut self.rbuf, BODY_BUFFER),
            };
            match step {
                Ok(Decoded::Data(data)) => {
                    body.write(&data)?;
                    if body.on_disk() && self.rbuf.is_empty() {
                        // Its memory goes with the piece just written: a connection that
                        // waits for more holds no read buffer.
                        self.rbuf = BytesMut::new();
                    }
                    if spool::over_limit(body.len(), shared.body_limit) {
                        break Some(http::Error::BodyTooLarge);
                    }
                    if body.len() > BODY_BUFFER as u64 {
                        break None;
                    }
                }
                Ok(Decoded::End) => break None,
                Ok(Decoded::NeedMore) if !self.may_read => return Ok(Progress::Wait),
                Ok(Decoded::NeedMore) => {
                    let (transport, rbuf) = (&*self.transport, &mut self.rbuf);
                    match read_into(transport, rbuf, &mut self.may_read, self.peer_closed, scratch)?
                    {
                        None => return Ok(Progress::Wait),
                        Some(0) => break Some(http::Error::IncompleteBody),
                        Some(_) => {}
                    }
                    self.deadline = now + shared.read_timeout;
                }
                Err(error) => break Some(error),
            }
        };
        if let Some(error) = error {
            return Ok(self.refuse(&error));
        }
        let Phase::Body { head, forwarded, decoder, body } =
            std::mem::replace(&mut self.phase, Phase::Head)
        else {
            unreachable!()
        };
        let body = match decoder.is_done() {
            true => Body::Buffered(body),
            // Too big to buffer: the app gets what was decoded first, then the rest streams.
            false => Body::Streaming { decoder, decoded: body },
        };
        self.dispatch(py, shared, head, forwarded, body)
    }

    /// Runs the request: on this thread when the app runs on the loop, else on a thread.
    fn dispatch(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        head: Head,
        forwarded: Verdict,
        body: Body,
    ) -> io::Result<Progress> {
        if shared.threaded || matches!(body, Body::Streaming { .. }) {
            return Ok(Progress::Offload(Request { head, forwarded, body, ready: Instant::now() }));
        }
        let Body::Buffered(body) = body else { unreachable!() };
        if let Some(pulse) = super::pulse() {
            pulse.enter(head.method(), head.target());
        }
        self.start(py, shared, (head, Instant::now()), forwarded, Input::spooled(body));
        Ok(Progress::Again)
    }

    /// Calls the app (through [`request::start`], as the sync worker does); the response
    /// is then pumped in the Respond phase. A request that cannot start gets its 500
    /// page and the connection closes.
    fn start(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        (head, ready): (Head, Instant),
        forwarded: Verdict,
        input: Input,
    ) {
        shared.recycler.count_request();
        let socket = self.offer_socket(shared, &head);
        let offered = socket.is_some();
        let keep_alive = head.keep_alive && shared.keep_alive_allowed();
        let req = RequestInfo {
            minor: head.response_minor(),
            head_request: head.is_head_request(),
            keep_alive,
        };
        let stream = TransportStream::new(Arc::downgrade(&self.transport), shared.read_timeout);
        let wire = Wire {
            req,
            stopping: Some(Arc::clone(&shared.stopping)),
            stream: Some(Box::new(stream)),
            queued: !self.out.is_empty(),
        };
        let conn = wsgi::Connection {
            peer: &self.peer,
            server: &shared.servers[self.listener],
            forwarded: &forwarded,
            queued_since: ready,
            client_cert: self.transport.client_certificate(),
        };
        let app = shared.app.bind(py);
        let call = Call { app, globals: &shared.globals, head: &head, conn: &conn, socket };
        let started = request::start(py, call, input, wire, &mut self.out);
        // A write() may have sent on the transport meanwhile: what it said of its room is
        // stale.
        self.may_write = true;
        self.phase = match started {
            Some(s) => Phase::Respond(Responding {
                exchange: s.exchange,
                input: s.input,
                file: None,
                offered,
            }),
            None => Phase::Closing,
        };
    }

    fn on_respond(&mut self, py: Python<'_>, shared: &Shared) -> io::Result<Progress> {
        match self.pump(py, shared)? {
            Pumped::Blocked => Ok(Progress::Wait),
            Pumped::Done { keep_alive } => {
                self.finish_response(keep_alive && !shared.stopping());
                Ok(Progress::Again)
            }
            // The app answered on its socket: nothing of ours may follow, the connection is
            // its own (only this side's descriptor closes).
            Pumped::Handled { offered: true } => {
                self.phase = Phase::Head;
                Ok(Progress::Close)
            }
            // The app failed mid-body: send what is queued, then close (the client sees
            // a truncated body, never a complete-looking one). Or it raised StopIteration
            // with no socket of its own: gunicorn's close_graceful.
            Pumped::Failed | Pumped::Handled { offered: false } => {
                self.phase = Phase::Closing;
                Ok(Progress::Again)
            }
        }
    }

    /// Pulls the response into `out` and writes it, until done or the transport is full.
    /// Blocked, the client has `--read-timeout` to take more (on the loop or a thread).
    fn pump(&mut self, py: Python<'_>, shared: &Shared) -> io::Result<Pumped> {
        let pumped = self.pump_until_blocked(py);
        if let Ok(Pumped::Blocked) = pumped {
            self.deadline = Instant::now() + shared.read_timeout;
        }
        pumped
    }

    /// The app's iterable is pulled only while less than [`HIGH_WATER`] is queued, so a
    /// slow reader holds back the app rather than a growing buffer. After an item from a
    /// generator, what is queued is written at once: the next item may take the app a
    /// while, and a streamed response must not wait for it.
    fn pump_until_blocked(&mut self, py: Python<'_>) -> io::Result<Pumped> {
        loop {
            let Phase::Respond(r) = &mut self.phase else { unreachable!() };
            if let Some(span) = &mut r.file {
                if !self.out.write_to(py, &*self.transport, &mut self.may_write)? {
                    return Ok(Pumped::Blocked);
                }
                if !self.transport.send_file(span)? {
                    self.may_write = false;
                    return Ok(Pumped::Blocked);
                }
                r.file = None;
            }
            if self.out.len() >= HIGH_WATER && !self.flush(py)? {
                return Ok(Pumped::Blocked);
            }
            let Phase::Respond(r) = &mut self.phase else { unreachable!() };
            match r.exchange.next(py, &mut self.out) {
                Step::Send if r.exchange.streams() => {
                    self.may_write = true; // as in `start`: the app's code ran
                    self.flush(py)?;
                }
                Step::Send => {}
                Step::SendFile(span) => r.file = Some(span),
                Step::Done { keep_alive } => return Ok(Pumped::Done { keep_alive }),
                Step::Abort => return Ok(Pumped::Failed),
                Step::Handled => return Ok(Pumped::Handled { offered: r.offered }),
            }
        }
    }

    /// After a complete response: the next request, or a close. The idle deadline is set
    /// here, so it is `--keep-alive` whichever thread finished the response.
    fn finish_response(&mut self, keep_alive: bool) {
        let Phase::Respond(r) = std::mem::replace(&mut self.phase, Phase::Head) else { return };
        self.served = true;
        self.deadline = Instant::now() + self.keepalive;
        let (complete, rest) = r.input.get().end_of_body();
        if let Some(rest) = rest {
            self.rbuf = rest;
        }
        self.phase = if keep_alive && complete { Phase::Head } else { Phase::Closing };
    }

    /// Whether a request would leave the loop with its socket ([`handoff`]): it asks for a
    /// WebSocket, its app runs on a thread of its own and the transport is plaintext. The
    /// loop takes such a connection out of epoll while it is away: the app's descriptor
    /// shares its registration.
    pub fn may_hand_off(&self, shared: &Shared, head: &Head) -> bool {
        shared.threaded && handoff::wanted(head) && self.transport.plaintext_fd().is_some()
    }

    /// The socket for the app, when the request asks for a WebSocket upgrade: what
    /// followed the head (the client's first frames) goes with it.
    fn offer_socket(&mut self, shared: &Shared, head: &Head) -> Option<Handoff> {
        if !handoff::wanted(head) {
            return None;
        }
        if !self.may_hand_off(shared, head) {
            handoff::not_offered(match shared.threaded {
                true => "the connection is TLS (--certfile)",
                false => "the async worker runs the app on its event loop with --threads 1",
            });
            return None;
        }
        // A response still queued for an earlier request must not be overtaken.
        let fd = self.transport.plaintext_fd().filter(|_| self.out.is_empty())?;
        Handoff::offer(fd, self.rbuf.split())
    }

    /// A malformed request: one error page, then close.
    fn refuse(&mut self, error: &http::Error) -> Progress {
        tracing::debug!("Invalid request from {}: {error}", self.peer.addr);
        self.out.push(&wsgi::exchange::error_page(error.status()));
        self.phase = Phase::Closing;
        Progress::Again
    }

    fn on_closing(&mut self, py: Python<'_>) -> io::Result<Progress> {
        if !self.flush(py)? {
            return Ok(Progress::Wait);
        }
        let _ = self.transport.shutdown_write();
        self.deadline = Instant::now() + LINGER_TIME;
        self.phase = Phase::Linger { left: LINGER_BYTES };
        Ok(Progress::Again)
    }

    fn on_linger(&mut self, scratch: &mut [u8]) -> io::Result<Progress> {
        let Phase::Linger { left } = &mut self.phase else { unreachable!() };
        while (self.may_read || self.transport.buffered()) && *left > 0 {
            match self.transport.read(scratch) {
                Ok(0) => return Ok(Progress::Close),
                Ok(n) => {
                    *left = left.saturating_sub(n);
                    self.may_read = n == scratch.len() || self.peer_closed;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.may_read = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(Progress::Close),
            }
        }
        Ok(if *left == 0 { Progress::Close } else { Progress::Wait })
    }

    fn read(&mut self, scratch: &mut [u8]) -> io::Result<Option<usize>> {
        let (transport, rbuf) = (&*self.transport, &mut self.rbuf);
        read_into(transport, rbuf, &mut self.may_read, self.peer_closed, scratch)
    }

    /// Writes queued bytes; `Ok(false)` when the transport is full.
    fn flush(&mut self, py: Python<'_>) -> io::Result<bool> {
        self.out.write_to(py, &*self.transport, &mut self.may_write)
    }

    /// Closes the iterable of an unfinished response (PEP 3333: close() always runs).
    pub fn abandon(&mut self, py: Python<'_>) {
        if let Phase::Respond(r) = &mut self.phase {
            if let Err(err) = r.exchange.close(py) {
                wsgi::exchange::log_app_error(py, &self.peer.addr, &err);
            }
        }
    }
}

/// How far pumping got.
enum Pumped {
    /// The response is complete; `keep_alive`: the connection may carry another.
    Done { keep_alive: bool },
    /// The transport is full; resume on the next writable event.
    Blocked,
    /// The response cannot be completed; close.
    Failed,
    /// The app took the connection over ([`Step::Handled`]).
    Handled {
        /// It had the socket.
        offered: bool,
    },
}

/// What one phase's step asks of the loop in [`Conn::advance`].
// As for Phase.
#[allow(clippy::large_enum_variant)]
enum Progress {
    /// The phase changed or can go on: step again.
    Again,
    /// Nothing more until the transport is ready.
    Wait,
    /// The connection is done.
    Close,
    /// The request goes to a thread.
    Offload(Request),
    /// The connection speaks HTTP/2 from here.
    Http2,
}

/// A body granted memory whole waits in `rbuf` (reserved for it) and is taken at once,
/// without a copy. `Ok(true)`: it is still arriving.
fn in_place(decoder: &mut BodyDecoder, body: &mut Spool, rbuf: &mut BytesMut) -> io::Result<bool> {
    let BodyDecoder::Length { remaining } = decoder else { return Ok(false) };
    if *remaining == 0 || !body.is_empty() || !body.holds(*remaining) {
        return Ok(false);
    }
    if (rbuf.len() as u64) < *remaining {
        return Ok(true);
    }
    let whole = rbuf.split_to(*remaining as usize);
    if whole.len() > super::io::READ_SIZE {
        // What follows (a pipelined request) gets a buffer of its own: sharing the body's
        // would keep it for as long as the connection lives. A body within one read
        // shares what the connection keeps anyway.
        *rbuf = BytesMut::from(&rbuf[..]);
    }
    *remaining = 0;
    body.put(whole)?;
    Ok(false)
}

/// One read into `rbuf`; a short read means the transport is drained (edge-triggered),
/// unless it holds bytes above the descriptor. `Ok(None)`: nothing to read now;
/// `Ok(Some(0))`: the client closed.
fn read_into<T: Transport>(
    transport: &T,
    rbuf: &mut BytesMut,
    may_read: &mut bool,
    peer_closed: bool,
    scratch: &mut [u8],
) -> io::Result<Option<usize>> {
    loop {
        match transport.read(scratch) {
            Ok(n) => {
                *may_read = n == scratch.len() || (peer_closed && n > 0) || transport.buffered();
                rbuf.extend_from_slice(&scratch[..n]);
                return Ok(Some(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *may_read = false;
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;

//! One HTTP/1.1 connection of the `asgi` worker, as a state machine over any
//! [`Transport`]: no Python. Bytes come in, [`Note`]s go out to the app's side (a request
//! head, body pieces, the client gone, the socket drained); the app's messages come in as
//! calls ([`Conn::start`], [`Conn::body`], [`Conn::pull`], [`Conn::fail`]) and leave as
//! bytes.
//!
//! A WebSocket upgrade ([`websocket::read_offer`]) reaches the app as a request whose
//! [`Arrived::subprotocols`] is set; once the app accepts it the connection speaks frames
//! ([`ws`], its child module).
//!
//! Backpressure both ways: the connection reads at most [`READ_AHEAD`] bytes beyond what
//! the app took (a 1 GB upload waits in the client's socket, not here), and a response
//! body queued past [`HIGH_WATER`] tells the app to wait for [`Note::Drained`].

use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::forwarded::Verdict;
use crate::http::chunked::{encode_chunk_size, CHUNK_END, LAST_CHUNK};
use crate::http::response::{self, BodyMode, Encoder, Plan, RequestInfo, CONTINUE};
use crate::http::websocket::{self, Message, Offer};
use crate::http::{self, BodyDecoder, Decoded, Head};
use crate::listener::Peer;
use crate::worker::front::{parse_request, Front};
use crate::worker::h2::upgrade::{self, Upgraded};
use crate::worker::h2::Opening;
use crate::worker::transport::Transport;

/// Unconsumed bytes the connection holds before it stops reading the socket.
pub const READ_AHEAD: usize = 64 * 1024;
/// Most body bytes in one `http.request` message.
pub const BODY_CHUNK: usize = 64 * 1024;
/// Response bytes queued before `send()` waits for the socket to drain.
pub const HIGH_WATER: usize = 256 * 1024;
/// How long a client has to send a whole request head (slowloris).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection may take to take its last bytes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new connection may stay silent (at least `--keep-alive`).
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(5);
/// Far enough in the future to mean "no deadline" (the app's time is `--timeout`'s).
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);
/// The encoder's policy: `Date` added, no `Server`, the app's hop-by-hop headers pass
/// except the framing ones the plan decides (gunicorn's ASGI worker strips only those).
const ENCODER: Encoder<'static> = Encoder { server: None, date: true, drop_hop_by_hop: false };

/// What the connection tells the app's side.
#[derive(Debug)]
pub enum Note {
    /// A request head arrived, with the start of its body.
    Request(Box<Arrived>),
    /// More of the body (`more`: not the end yet), after a [`Conn::pull`].
    Body(Bytes, bool),
    /// The client went away before the response ended.
    Disconnect,
    /// The queue fell back under [`HIGH_WATER`]: `send()` may go on.
    Drained,
    /// A response ended: its access log line is due (only when the log is on).
    Finished(Box<Logged>),
    /// A WebSocket message, text or binary (`websocket.receive`).
    Message(Message),
    /// The WebSocket closed: the code and reason the app hears in `websocket.disconnect`.
    Closed {
        /// The close code (1006: lost without a close frame).
        code: u16,
        /// The close reason.
        reason: String,
        /// A protocol error failed it and our close frame is not sent yet: the bridge
        /// sends it ([`Conn::ws_close`]) once the app has heard the close, so that what
        /// the app sent for the messages before the error goes out first (Autobahn's
        /// strict cases 3 to 5), or [`ws::FAIL_TIMEOUT`] later.
        reply_due: bool,
    },
}

/// What an access log line is made of, kept from the head to the response's end.
#[derive(Debug)]
pub struct Logged {
    /// The request line and headers.
    pub head: Head,
    /// The client.
    pub peer: Peer,
    /// When the request reached the app.
    pub started: Instant,
    /// The response's status (500 if the app failed before it started).
    pub status: u16,
    /// The response's headers, as text.
    pub headers: Vec<(String, String)>,
    /// Body bytes sent.
    pub sent: u64,
}

/// A request as it reached the app.
#[derive(Debug)]
pub struct Arrived {
    /// The client (the scope's `client`, unless a front end named another).
    pub peer: Peer,
    /// The listener it came in on (the scope's `server`).
    pub listener: usize,
    /// The request line and headers.
    pub head: Head,
    /// The forwarding headers' verdict.
    pub forwarded: Verdict,
    /// The body's first bytes (all of it when `more` is false).
    pub body: Bytes,
    /// More body is to come.
    pub more: bool,
    /// A WebSocket upgrade: the subprotocols the client offers (the `websocket` scope).
    pub subprotocols: Option<Vec<String>>,
}

/// Where the response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    /// No `http.response.start` yet.
    NotStarted,
    /// The head is queued; the body goes by `mode`, `left` bytes of a length still due.
    Started {
        /// How the body is delimited.
        mode: BodyMode,
        /// Whether the connection may carry another request afterwards.
        keep_alive: bool,
    },
}

/// A request with the app.
#[derive(Debug)]
struct Exchange {
    /// Where in the body's framing the received bytes stand.
    decoder: BodyDecoder,
    /// The app awaits more body ([`Conn::pull`]).
    wanted: bool,
    /// The client waits for `100 Continue` before it sends the body.
    expect_continue: bool,
    /// What decides the response's framing.
    info: RequestInfo,
    /// The response's progress.
    response: Response,
    /// The client's going was told to the app.
    told_gone: bool,
    /// What the access log line needs, when the log is on.
    log: Option<Box<Logged>>,
    /// A WebSocket upgrade the app has not yet accepted or refused.
    offer: Option<Box<Offer>>,
}

/// What a connection waits for.
#[derive(Debug)]
enum Phase {
    /// A request head: idle keep-alive while nothing of it has arrived.
    Head,
    /// The app has the request.
    Serving(Exchange),
    /// The app accepted a WebSocket: frames both ways.
    WebSocket(Box<ws::Session>),
    /// Write what is queued, then half-close and drain (RFC 9112 §9.6).
    Closing,
    /// Half-closed; dropping what the client still sends until its FIN.
    Linger,
    /// A request that asks for `h2c`: its body (at most 64 KiB) arrives, then the switch.
    Upgrading {
        /// The request, stream 1 once the switch is made.
        head: Box<Head>,
        /// The body's length.
        length: usize,
    },
    /// Its first bytes opened HTTP/2, or a request asked for `h2c` (the switch): the
    /// loop takes it over ([`Conn::into_http2`]).
    Http2(Option<Box<Upgraded>>),
    /// Nothing more to do: the loop closes it.
    Done,
}

/// What every connection of a worker shares.
pub struct Settings {
    /// `--limit-request-line` and friends.
    pub limits: http::Limits,
    /// `--protocol`.
    pub protocol: crate::config::Protocol,
    /// `--forwarded-allow-ips` and the scheme headers.
    pub forwarded: crate::forwarded::Policy,
    /// `--keep-alive`; zero disables keep-alive.
    pub keepalive: Duration,
    /// `--read-timeout`: how long a client may keep an app that awaits its body waiting
    /// (and send its PROXY header in).
    pub read_timeout: Duration,
    /// `--websocket-max-message-size` (0: no limit).
    pub websocket_max: usize,
    /// `--proxy-protocol` and `--proxy-allow-from` (read in `asgi/front.rs`).
    pub proxy: crate::worker::preamble::Settings,
    /// `--http-protocols` and `--http2-*`; `None` without h2.
    pub http2: Option<crate::worker::h2::Policy>,
}

impl Settings {
    fn front(&self) -> Front<'_> {
        Front { protocol: &self.protocol, limits: &self.limits, forwarded: &self.forwarded }
    }
}

/// One client connection.
pub struct Conn<T: Transport> {
    /// The socket (or test double).
    transport: T,
    /// The client, and whose forwarding headers may be trusted.
    pub peer: Peer,
    /// The listener it came from.
    pub listener: usize,
    /// Received bytes not yet parsed or handed to the app.
    rbuf: BytesMut,
    /// Response bytes queued; `out[sent..]` is still to write.
    out: Vec<u8>,
    /// How much of `out` is written.
    sent: usize,
    /// The queue went past [`HIGH_WATER`]: a [`Note::Drained`] is owed.
    throttled: bool,
    /// What the connection waits for.
    phase: Phase,
    /// The transport may hold unread bytes (edge-triggered: no edge until drained).
    may_read: bool,
    /// The transport may take more bytes.
    may_write: bool,
    /// The client's FIN (or an error) was seen.
    peer_closed: bool,
    /// When the loop closes the connection if it has not progressed.
    deadline: Instant,
    /// Requests answered.
    served: u64,
    /// `--keep-alive`: how long it may stay idle between requests.
    keepalive: Duration,
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
            transport,
            peer,
            listener,
            rbuf: BytesMut::new(),
            out: Vec::new(),
            sent: 0,
            throttled: false,
            phase: Phase::Head,
            may_read: true,
            may_write: true,
            peer_closed: false,
            deadline: now + keepalive.max(FIRST_REQUEST_WAIT),
            served: 0,
            keepalive,
        }
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.transport.fd()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Requests (and WebSockets) answered on it.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Brings the deadline forward (a graceful stop's grace for a new connection).
    pub fn shorten_deadline(&mut self, deadline: Instant) {
        self.deadline = self.deadline.min(deadline);
    }

    /// Waiting for a request with nothing of one received: safe to close on a stop.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head) && self.rbuf.is_empty()
    }

    /// The loop is done with it.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Its first bytes opened HTTP/2.
    pub fn is_http2(&self) -> bool {
        matches!(self.phase, Phase::Http2(_))
    }

    /// The connection leaves HTTP/1.1 for HTTP/2: its transport, what was read of the
    /// preface (h2 reads it again) and an upgrade's switch, the client and the listener.
    pub fn into_http2(self) -> (T, (BytesMut, Option<Upgraded>), Peer, usize) {
        let upgraded = match self.phase {
            Phase::Http2(upgraded) => upgraded.map(|u| *u),
            _ => None,
        };
        (self.transport, (self.rbuf, upgraded), self.peer, self.listener)
    }

    /// Whether the app has a request (or an accepted WebSocket) of this connection.
    pub fn is_serving(&self) -> bool {
        matches!(self.phase, Phase::Serving(_) | Phase::WebSocket(_))
    }

    /// Whether the app accepted a WebSocket on it.
    pub fn is_websocket(&self) -> bool {
        matches!(self.phase, Phase::WebSocket(_))
    }

    /// A readiness edge from the loop.
    pub fn ready(&mut self, readable: bool, writable: bool, closed: bool) {
        self.may_read |= readable;
        self.may_write |= writable;
        self.peer_closed |= closed;
    }

    /// Reads what may be read, moves the phase on, writes what is queued; `notes`
    /// collects what the app must hear. A hot path.
    pub fn drive(
        &mut self,
        settings: &Settings,
        scratch: &mut [u8],
        now: Instant,
        notes: &mut Vec<Note>,
    ) {
        loop {
            self.fill(scratch);
            let progressed = match self.phase {
                Phase::Head => self.next_request(settings, now, notes),
                Phase::Serving(_) => {
                    self.feed_body(notes);
                    false
                }
                Phase::WebSocket(_) => self.ws_read(now, notes),
                Phase::Upgrading { .. } => self.upgrading(),
                Phase::Closing | Phase::Linger | Phase::Http2(_) | Phase::Done => false,
            };
            self.flush(now, notes);
            if !progressed {
                break;
            }
        }
        if matches!(self.phase, Phase::Linger) {
            self.linger(scratch);
        }
    }

    /// Reads while the socket has bytes and the buffer is under [`READ_AHEAD`] (a
    /// WebSocket's: a whole message, unless the app's backlog paused it).
    fn fill(&mut self, scratch: &mut [u8]) {
        let (reading, limit) = match &self.phase {
            Phase::Head | Phase::Serving(_) | Phase::Upgrading { .. } => (true, READ_AHEAD),
            Phase::WebSocket(session) => (session.reading(), session.read_limit()),
            Phase::Closing | Phase::Linger | Phase::Http2(_) | Phase::Done => (false, 0),
        };
        while reading && self.may_read && self.rbuf.len() < limit {
            match self.transport.read(scratch) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.may_read = false;
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&scratch[..n]);
                    // Short: drained, unless TLS holds decrypted bytes no edge announces.
                    if n < scratch.len() && !self.peer_closed && !self.transport.buffered() {
                        self.may_read = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.may_read = false,
                Err(_) => {
                    self.peer_closed = true;
                    self.may_read = false;
                }
            }
        }
    }

    /// Parses the next head; `true` when the phase moved (a request or an error page).
    fn next_request(&mut self, settings: &Settings, now: Instant, notes: &mut Vec<Note>) -> bool {
        if self.rbuf.is_empty() {
            if self.peer_closed {
                self.phase = Phase::Done;
            }
            return false;
        }
        match self.http2_opening(settings) {
            Opening::Http1 => {}
            Opening::Http2 => {
                self.phase = Phase::Http2(None);
                return false;
            }
            Opening::NeedMore if !self.peer_closed => {
                self.deadline = self.deadline.min(now + HEAD_TIMEOUT);
                return false;
            }
            Opening::NeedMore | Opening::Refuse => {
                let error = http::Error::BadRequestLine("HTTP/2 preface expected");
                return self.refuse(&error, now);
            }
        }
        match parse_request(&mut self.rbuf, &settings.front(), &self.peer) {
            Ok(None) if self.peer_closed => {
                self.phase = Phase::Done;
                false
            }
            Ok(None) => {
                self.deadline = self.deadline.min(now + HEAD_TIMEOUT);
                false
            }
            Ok(Some((head, forwarded))) => {
                let trusted = self.trusted(settings);
                match settings.http2.as_ref().and_then(|p| p.upgrade(&head, trusted)) {
                    Some(length) => {
                        self.phase = Phase::Upgrading { head: Box::new(head), length };
                        self.deadline = now + settings.read_timeout;
                    }
                    None => self.begin(head, forwarded, settings, now, notes),
                }
                true
            }
            Err(error) => self.refuse(&error, now),
        }
    }

    /// What the first bytes open (HTTP/1.x unless `--http-protocols` has h2; see
    /// [`crate::worker::h2::Policy::opening`]).
    fn http2_opening(&self, settings: &Settings) -> Opening {
        let Some(policy) = settings.http2.as_ref().filter(|_| self.served == 0) else {
            return Opening::Http1;
        };
        policy.opening(&self.rbuf, self.transport.alpn_h2(), self.trusted(settings))
    }

    /// A peer in `--forwarded-allow-ips`: the only kind that may open HTTP/2 without TLS
    /// (gunicorn 27's rule; the policy offers neither prior knowledge nor the upgrade
    /// under TLS).
    fn trusted(&self, settings: &Settings) -> bool {
        settings.forwarded.trusts(self.peer.ip())
    }

    /// An `h2c` request's body arrives; with all of it (and a `100 Continue` written),
    /// the switch: `true` when the phase moved.
    fn upgrading(&mut self) -> bool {
        let Phase::Upgrading { head, length } = &mut self.phase else { return false };
        let unsent = self.sent < self.out.len();
        if self.rbuf.len() >= *length && unsent {
            return false;
        }
        let out = &mut self.out;
        let continued = || out.extend_from_slice(CONTINUE);
        match upgrade::when_received(head, *length, &mut self.rbuf, continued) {
            Some(upgraded) => {
                self.phase = Phase::Http2(Some(Box::new(upgraded)));
                true
            }
            None if self.peer_closed => {
                self.phase = Phase::Done;
                true
            }
            None => false,
        }
    }

    /// A request refused with `error`'s status, then the close; `true`: the phase moved.
    fn refuse(&mut self, error: &http::Error, now: Instant) -> bool {
        tracing::debug!("bad request: {error}");
        self.queue(&ENCODER.error_page(error.status()));
        self.phase = Phase::Closing;
        self.deadline = now + CLOSE_TIMEOUT;
        true
    }

    /// A request for the app: its head and what of the body is here.
    fn begin(
        &mut self,
        head: Head,
        forwarded: Verdict,
        settings: &Settings,
        now: Instant,
        notes: &mut Vec<Note>,
    ) {
        let offer = match websocket::read_offer(&head) {
            None => None,
            Some(Ok(offer)) => Some(Box::new(offer)),
            Some(Err(refusal)) => return self.refuse_upgrade(&refusal, now),
        };
        let mut decoder = BodyDecoder::new(head.framing);
        let info = RequestInfo {
            minor: head.response_minor(),
            head_request: head.is_head_request(),
            keep_alive: head.keep_alive && !settings.keepalive.is_zero(),
        };
        let (body, more) = match take_body(&mut decoder, &mut self.rbuf, self.peer_closed) {
            Ok(taken) => taken,
            Err(_) => (Bytes::new(), false),
        };
        let expect_continue = head.expect_continue && more && self.rbuf.is_empty();
        let subprotocols = offer.as_ref().map(|o| o.protocols.clone());
        let log = counted().then(|| {
            let (head, peer) = (head.clone(), self.peer.clone());
            Box::new(Logged { head, peer, started: now, status: 500, headers: Vec::new(), sent: 0 })
        });
        let exchange = Exchange {
            log,
            decoder,
            wanted: false,
            expect_continue,
            info,
            response: Response::NotStarted,
            told_gone: false,
            offer,
        };
        self.phase = Phase::Serving(exchange);
        self.deadline = now + NEVER;
        let (peer, listener) = (self.peer.clone(), self.listener);
        notes.push(Note::Request(Box::new(Arrived {
            peer,
            listener,
            head,
            forwarded,
            body,
            more,
            subprotocols,
        })));
    }

    /// A WebSocket upgrade refused before the app sees it (a version other than 13: 426;
    /// a bad key: 400, as gunicorn 27 answers), then the close.
    fn refuse_upgrade(&mut self, refusal: &websocket::Refusal, now: Instant) {
        tracing::debug!("WebSocket upgrade refused: {}", refusal.reason);
        let mut page = Vec::with_capacity(128);
        websocket::write_refusal(&mut page, refusal);
        self.queue(&page);
        self.phase = Phase::Closing;
        self.deadline = now + CLOSE_TIMEOUT;
    }

    /// Body for an app that asked, and the client's going for one that is being served.
    fn feed_body(&mut self, notes: &mut Vec<Note>) {
        let Phase::Serving(ex) = &mut self.phase else { return };
        if ex.wanted {
            match take_body(&mut ex.decoder, &mut self.rbuf, self.peer_closed) {
                Ok((data, more)) if !data.is_empty() || !more => {
                    ex.wanted = false;
                    self.deadline = self.deadline.max(Instant::now() + NEVER);
                    notes.push(Note::Body(data, more));
                }
                Ok(_) => {}
                // A truncated or malformed body: the client is as good as gone.
                Err(_) => self.peer_closed = true,
            }
        }
        let Phase::Serving(ex) = &mut self.phase else { return };
        if self.peer_closed && !ex.told_gone && (ex.wanted || self.rbuf.is_empty()) {
            ex.told_gone = true;
            notes.push(Note::Disconnect);
            // Nothing more reaches this client: the app's messages are dropped from now on,
            // and the connection closes instead of waiting for a response with no deadline.
            self.phase = Phase::Closing;
            self.deadline = Instant::now() + CLOSE_TIMEOUT;
        }
    }

    /// The app awaits more body: `100 Continue` first if the client waits for it. The
    /// client has `--read-timeout` to send it; then the connection closes and the app
    /// hears `http.disconnect` (a stalled upload must not hold a task for ever).
    pub fn pull(&mut self, now: Instant, read_timeout: Duration) {
        let Phase::Serving(ex) = &mut self.phase else { return };
        ex.wanted = true;
        self.deadline = now + read_timeout;
        if std::mem::take(&mut ex.expect_continue) && ex.response == Response::NotStarted {
            self.queue(CONTINUE);
        }
    }

    /// `http.response.start`: the head, queued until the first body piece. `keep_alive`:
    /// the worker allows another request after this one (not stopping, not recycling).
    pub fn start(
        &mut self,
        status: u16,
        headers: &[(Bytes, Bytes)],
        keep_alive: bool,
    ) -> Result<(), &'static str> {
        let Phase::Serving(ex) = &mut self.phase else { return Err("no request") };
        if ex.response != Response::NotStarted {
            return Err("http.response.start sent twice");
        }
        if !(100..=999).contains(&status) {
            return Err("status must be 100 to 999");
        }
        let (text, length) = app_headers(headers)?;
        let info = RequestInfo { keep_alive: ex.info.keep_alive && keep_alive, ..ex.info };
        let plan: Plan = response::plan(status, length, info);
        let reason = http::reason(status);
        let status_line = format!("{status} {reason}");
        let mut head = Vec::with_capacity(256);
        let pairs = text.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        ENCODER.encode_head(&mut head, &status_line, pairs, status, plan);
        ex.response = Response::Started { mode: plan.body, keep_alive: plan.keep_alive };
        if let Some(log) = &mut ex.log {
            (log.status, log.headers) = (status, text);
        }
        self.queue(&head);
        Ok(())
    }

    /// `http.response.body`; `Ok(true)`: the queue is past [`HIGH_WATER`], wait for
    /// [`Note::Drained`].
    pub fn body(
        &mut self,
        data: &[u8],
        more: bool,
        now: Instant,
        notes: &mut Vec<Note>,
    ) -> Result<bool, &'static str> {
        let Phase::Serving(ex) = &mut self.phase else { return Ok(false) };
        let Response::Started { mode, keep_alive } = &mut ex.response else {
            return Err("http.response.body before http.response.start");
        };
        if let Some(log) = &mut ex.log {
            log.sent += data.len() as u64;
        }
        match mode {
            BodyMode::Empty => {}
            BodyMode::Length(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                *left -= n as u64;
                self.out.extend_from_slice(&data[..n]);
            }
            BodyMode::Chunked => {
                if !data.is_empty() {
                    encode_chunk_size(data.len() as u64, &mut self.out);
                    self.out.extend_from_slice(data);
                    self.out.extend_from_slice(CHUNK_END);
                }
                if !more {
                    self.out.extend_from_slice(LAST_CHUNK);
                }
            }
            BodyMode::Close => self.out.extend_from_slice(data),
        }
        if !more {
            // A Content-Length the app did not fill: the client cannot find the end.
            let short = matches!(mode, BodyMode::Length(left) if *left > 0);
            let keep = *keep_alive && !short;
            if let Some(log) = ex.log.take() {
                notes.push(Note::Finished(log));
            }
            self.finish(keep, now);
        }
        self.flush(now, notes);
        let queued = self.out.len() - self.sent;
        self.throttled |= queued > HIGH_WATER;
        Ok(queued > HIGH_WATER)
    }

    /// The app failed: a 500 if nothing was sent, else the connection closes (the client
    /// cannot tell where the response would have ended).
    pub fn fail(&mut self, now: Instant, notes: &mut Vec<Note>) {
        self.fail_with(500, now, notes);
    }

    /// [`Conn::fail`] with the error page's `status` (504: `--request-timeout`).
    pub fn fail_with(&mut self, status: u16, now: Instant, notes: &mut Vec<Note>) {
        let Phase::Serving(ex) = &mut self.phase else { return };
        let page = (ex.response == Response::NotStarted).then(|| ENCODER.error_page(status));
        if let Some(mut log) = ex.log.take() {
            if page.is_some() {
                (log.status, log.headers) = (status, Vec::new());
            }
            notes.push(Note::Finished(log));
        }
        if let Some(page) = page {
            self.queue(&page);
        }
        self.phase = Phase::Closing;
        self.deadline = now + CLOSE_TIMEOUT;
        self.flush(now, notes);
    }

    /// The response is whole: the next request, or the close.
    fn finish(&mut self, keep_alive: bool, now: Instant) {
        let Phase::Serving(ex) = &mut self.phase else { return };
        // Body the app left unread, if it is all here, is dropped; else the connection
        // cannot find the next request and closes.
        let drained = loop {
            match ex.decoder.decode(&mut self.rbuf, usize::MAX) {
                Ok(Decoded::Data(_)) => continue,
                Ok(Decoded::End) => break true,
                Ok(Decoded::NeedMore) | Err(_) => break false,
            }
        };
        self.served += 1;
        if keep_alive && drained && !self.peer_closed {
            self.phase = Phase::Head;
            let wait = if self.rbuf.is_empty() { self.keepalive } else { HEAD_TIMEOUT };
            self.deadline = now + wait;
        } else {
            self.phase = Phase::Closing;
            self.deadline = now + CLOSE_TIMEOUT;
        }
    }

    fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes the queue while the transport takes it; a closing connection half-closes
    /// once it is empty.
    fn flush(&mut self, now: Instant, notes: &mut Vec<Note>) {
        while self.may_write && self.sent < self.out.len() {
            match self.transport.write(&self.out[self.sent..]) {
                Ok(0) => self.broken(),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.may_write = false,
                Err(_) => self.broken(),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        // TLS records accepted but not yet on the socket: out only once this says so.
        let pushed = match self.may_write && self.out.is_empty() {
            true => match self.transport.flush() {
                Ok(all) => all,
                Err(_) => {
                    self.broken();
                    false
                }
            },
            false => false,
        };
        if !pushed && self.out.is_empty() {
            self.may_write = false;
        }
        if self.throttled && self.out.len() - self.sent <= HIGH_WATER / 2 {
            self.throttled = false;
            notes.push(Note::Drained);
        }
        if matches!(self.phase, Phase::Closing) && self.out.is_empty() && pushed {
            let _ = self.transport.shutdown_write();
            self.phase = Phase::Linger;
            self.deadline = self.deadline.min(now + CLOSE_TIMEOUT);
        }
    }

    /// A write failed: nothing more reaches this client.
    fn broken(&mut self) {
        self.out.clear();
        self.sent = 0;
        self.may_write = false;
        self.peer_closed = true;
        match &mut self.phase {
            // The app hears of it from the next drive.
            Phase::Serving(_) | Phase::WebSocket(_) => {}
            _ => self.phase = Phase::Done,
        }
    }

    /// Drops what the client still sends after our FIN, until its own.
    fn linger(&mut self, scratch: &mut [u8]) {
        while self.may_read {
            match self.transport.read(scratch) {
                Ok(0) => {
                    self.phase = Phase::Done;
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.may_read = false,
                Err(_) => {
                    self.phase = Phase::Done;
                    return;
                }
            }
        }
        if self.peer_closed {
            self.phase = Phase::Done;
        }
    }

    /// A graceful stop: an idle connection closes now.
    pub fn close_if_idle(&mut self) {
        if self.is_idle() {
            self.phase = Phase::Done;
        }
    }
}

/// How a connection opened behind a PROXY header starts (`asgi/front.rs`).
impl<T: Transport> Conn<T> {
    /// `received`: the bytes that came after the header, the start of the first request.
    pub fn with_received(mut self, received: BytesMut) -> Self {
        self.rbuf = received;
        self
    }

    /// A connection refused before its first request (its PROXY header): the error page
    /// for `status`, then the close.
    pub fn refused(mut self, status: u16, now: Instant) -> Self {
        self.queue(&ENCODER.error_page(status));
        self.phase = Phase::Closing;
        self.deadline = now + CLOSE_TIMEOUT;
        self
    }
}

/// Up to [`BODY_CHUNK`] decoded body bytes from `rbuf`, and whether more is to come.
fn take_body(
    decoder: &mut BodyDecoder,
    rbuf: &mut BytesMut,
    eof: bool,
) -> Result<(Bytes, bool), http::Error> {
    if decoder.is_done() {
        return Ok((Bytes::new(), false));
    }
    let mut data = BytesMut::new();
    while data.len() < BODY_CHUNK {
        match decoder.decode(rbuf, BODY_CHUNK - data.len())? {
            Decoded::Data(piece) if data.is_empty() && decoder.is_done() => {
                return Ok((piece, false));
            }
            Decoded::Data(piece) => data.extend_from_slice(&piece),
            Decoded::End => return Ok((data.freeze(), false)),
            Decoded::NeedMore if eof => return Err(http::Error::IncompleteBody),
            Decoded::NeedMore => break,
        }
    }
    let done = decoder.is_done();
    Ok((data.freeze(), !done))
}

/// A response's headers as text, and its Content-Length if it has one.
pub type TextHeaders = (Vec<(String, String)>, Option<u64>);

/// `http.response.start`'s headers as latin-1 text, each checked as a response header
/// must be (no CR, LF or NUL; a token name), and the Content-Length among them.
pub fn app_headers(headers: &[(Bytes, Bytes)]) -> Result<TextHeaders, &'static str> {
    let mut text = Vec::with_capacity(headers.len());
    let mut length = None;
    for (name, value) in headers {
        let (name, value) = (latin1(name), latin1(value));
        response::validate_header(&name, &value)?;
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(response::parse_content_length(&value).ok_or("bad content-length")?);
        }
        text.push((name, value));
    }
    Ok((text, length))
}

/// Whether requests are recorded: the access log, statsd and `--metrics-bind` all count
/// from the same record ([`Logged`]).
pub fn counted() -> bool {
    crate::wsgi::access::enabled() || crate::statsd::enabled() || crate::metrics::enabled()
}

/// ASGI header bytes as the encoder's latin-1 text.
fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.is_ascii() => text.to_owned(),
        _ => bytes.iter().map(|&b| b as char).collect(),
    }
}

#[path = "ws.rs"]
mod ws;

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;

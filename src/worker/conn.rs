//! One keep-alive connection of the async worker, as a state machine.
//!
//! Shaped like hyper's `proto::h1` connection: the [`Phase`] says what the connection
//! waits for, and every transition happens in [`Conn::drive`]. Reads and writes are
//! non-blocking; `may_read`/`may_write` remember readiness between edge-triggered events
//! so no syscall is spent on a socket known to be empty or full.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pyo3::prelude::*;
use socket2::Socket;

use super::io::{send_file, SocketStream, LINGER_BYTES, LINGER_TIME};
use super::output::Output;
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
// A Head inline costs no allocation per request; the Conn holding this is boxed anyway.
#[allow(clippy::large_enum_variant)]
pub enum Phase {
    /// A request head: idle keep-alive while nothing of it has arrived.
    Head,
    /// The body of a parsed request, received (decoded) up to [`BODY_BUFFER`] into a
    /// spool: memory within the worker's budget, else a temporary file.
    Body { head: Head, forwarded: Verdict, decoder: BodyDecoder, body: Spool },
    /// The app was called; its response is being pulled and written.
    Respond(Box<Responding>),
    /// Write what is queued, then half-close and drain (RFC 9112 §9.6).
    Closing,
    /// Half-closed; reading and dropping what the client still sends.
    Linger { left: usize },
}

pub struct Responding {
    exchange: Exchange,
    input: Py<Input>,
    /// The part of a `wsgi.file_wrapper` file still to `sendfile`.
    file: Option<FileSpan>,
}

/// What the event loop does with a connection after driving it.
// As for Phase: the request moves to a thread without a box of its own.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// Wait for the next readiness event (or the deadline).
    Wait,
    Close,
    /// Run this request on a thread (`--threads`, or a body too big to buffer).
    Offload(Request),
}

/// A parsed request handed to a thread, with its body buffered or still to stream.
pub struct Request {
    pub head: Head,
    /// The forwarding headers' verdict, judged when the head arrived.
    pub forwarded: Verdict,
    pub body: Body,
}

pub enum Body {
    Buffered(Spool),
    /// The rest arrives while the app reads; `decoded` is what was already de-chunked and
    /// raw bytes already received stay in the connection's `rbuf`.
    Streaming {
        decoder: BodyDecoder,
        decoded: Spool,
    },
}

/// What every connection of a worker shares, on the loop and on app threads.
pub struct Shared {
    pub app: Py<PyAny>,
    pub globals: wsgi::Globals,
    /// SERVER_NAME and SERVER_PORT of each listener.
    pub servers: Vec<(String, String)>,
    /// Whether the app runs on threads (`--threads` > 1) rather than on the loop.
    pub threaded: bool,
    /// `--keep-alive`; zero disables keep-alive.
    pub keepalive: Duration,
    pub limits: http::Limits,
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
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether a response may leave the connection open for another request.
    fn keep_alive_allowed(&self) -> bool {
        !self.stopping() && !self.keepalive.is_zero()
    }
}

pub struct Conn {
    /// Shared with `write()`'s stream, which holds it weakly.
    pub sock: Arc<Socket>,
    pub peer: Peer,
    /// Index of the listener it came from.
    pub listener: usize,
    /// Received bytes not yet parsed.
    pub rbuf: BytesMut,
    /// Response bytes queued, the app's big bodies by reference.
    out: Output,
    pub phase: Phase,
    /// The socket may hold unread bytes (a readable edge not yet drained).
    pub may_read: bool,
    /// The client's FIN was seen: after the data before it, a read returns EOF. A short
    /// read then does not mean "drained", since the FIN raises no further edge.
    pub peer_closed: bool,
    /// The socket may take more bytes (no partial write since the last writable edge).
    pub may_write: bool,
    /// When the loop closes the connection if it has not progressed.
    pub deadline: Instant,
    /// `--keep-alive`: how long it may stay idle between requests. Kept here so that the
    /// thread that finishes a response sets the same idle deadline as the loop.
    keepalive: Duration,
    /// A response went out on this connection: the client knows it may find it closed
    /// when idle (RFC 9112 §9.3.1); a new one's first request must not meet a reset.
    pub served: bool,
}

impl Conn {
    pub fn new(
        sock: Socket,
        peer: Peer,
        listener: usize,
        now: Instant,
        keepalive: Duration,
    ) -> Conn {
        Conn {
            sock: Arc::new(sock),
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
        }
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

    /// Advances as far as the socket allows. Every phase transition happens here.
    pub fn drive(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        scratch: &mut [u8],
        now: Instant,
    ) -> Next {
        loop {
            let step = match &mut self.phase {
                Phase::Head => self.on_head(py, shared, scratch, now),
                Phase::Body { .. } => self.on_body(py, shared, scratch, now),
                Phase::Respond(_) => self.on_respond(py, shared),
                Phase::Closing => self.on_closing(py),
                Phase::Linger { .. } => self.on_linger(scratch),
            };
            match step {
                Ok(Progress::Again) => continue,
                Ok(Progress::Wait) => return self.flush_then(py, Next::Wait),
                Ok(Progress::Offload(request)) => {
                    return self.flush_then(py, Next::Offload(request))
                }
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
        let head = match http::parse_head(&mut self.rbuf, &shared.limits) {
            Ok(Some(head)) => head,
            Ok(None) => {
                if !self.may_read {
                    return Ok(Progress::Wait);
                }
                let was_empty = self.rbuf.is_empty();
                match self.read(scratch)? {
                    None => return Ok(Progress::Wait),
                    // The client's FIN ends its requests, not our responses (RFC 9112
                    // §9.6): what is queued for the requests before it still goes out.
                    Some(0) if was_empty && self.out.is_empty() => return Ok(Progress::Close),
                    Some(0) if was_empty => {
                        self.phase = Phase::Closing;
                        return Ok(Progress::Again);
                    }
                    Some(0) => {
                        return Ok(self.refuse(&http::Error::BadRequestLine("incomplete head")))
                    }
                    Some(_) => {}
                }
                if was_empty {
                    self.deadline = now + HEAD_TIMEOUT.min(shared.read_timeout);
                }
                return Ok(Progress::Again);
            }
            Err(error) => return Ok(self.refuse(&error)),
        };
        let forwarded = match shared.globals.forwarded.judge(&head, self.peer.ip()) {
            Ok(verdict) => verdict,
            Err(error) => return Ok(self.refuse(&error)),
        };
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
            return self.dispatch(
                py,
                shared,
                head,
                forwarded,
                Body::Streaming { decoder, decoded: Spool::empty() },
            );
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
                    match read_into(
                        &self.sock,
                        &mut self.rbuf,
                        &mut self.may_read,
                        self.peer_closed,
                        scratch,
                    )? {
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
            return Ok(Progress::Offload(Request { head, forwarded, body }));
        }
        let Body::Buffered(body) = body else { unreachable!() };
        if let Some(pulse) = super::pulse() {
            pulse.enter(head.method(), head.target());
        }
        self.start(py, shared, head, forwarded, Input::spooled(body));
        Ok(Progress::Again)
    }

    /// Calls the app; the response is then pumped in the Respond phase.
    pub fn start(
        &mut self,
        py: Python<'_>,
        shared: &Shared,
        head: Head,
        forwarded: Verdict,
        input: Input,
    ) {
        shared.recycler.count_request();
        let keep_alive = head.keep_alive && shared.keep_alive_allowed();
        let req =
            RequestInfo { minor: head.minor, head_request: head.is_head_request(), keep_alive };
        let started = Py::new(py, input).and_then(|input| {
            let conn = wsgi::Connection {
                peer: &self.peer,
                server: &shared.servers[self.listener],
                forwarded: &forwarded,
            };
            let environ =
                wsgi::environ::build(py, &head, &conn, &shared.globals, input.clone_ref(py))?;
            let stream = SocketStream::new(Arc::downgrade(&self.sock), shared.read_timeout);
            let wire = Wire {
                req,
                stopping: Some(Arc::clone(&shared.stopping)),
                stream: Some(Box::new(stream)),
                queued: !self.out.is_empty(),
            };
            let exchange = Exchange::call(
                py,
                shared.app.bind(py),
                environ.into_any(),
                input.clone_ref(py),
                wire,
                &head,
            )?;
            Ok(Responding { exchange, input, file: None })
        });
        // A write() may have sent on the socket meanwhile: what it said of its room is stale.
        self.may_write = true;
        self.phase = match started {
            Ok(responding) => Phase::Respond(Box::new(responding)),
            Err(err) => {
                let request = format!("{} {}", head.method(), head.target());
                wsgi::exchange::log_app_error(py, &request, &err);
                self.out.push(&wsgi::exchange::error_page(500));
                Phase::Closing
            }
        };
    }

    fn on_respond(&mut self, py: Python<'_>, shared: &Shared) -> io::Result<Progress> {
        match self.pump(py, shared)? {
            Pumped::Blocked => Ok(Progress::Wait),
            Pumped::Done { keep_alive } => {
                self.finish_response(py, keep_alive && !shared.stopping());
                Ok(Progress::Again)
            }
            // The app failed mid-body: send what is queued, then close (the client sees
            // a truncated body, never a complete-looking one).
            Pumped::Failed => {
                self.phase = Phase::Closing;
                Ok(Progress::Again)
            }
        }
    }

    /// Pulls the response into `out` and writes it, until done or the socket is full.
    /// Blocked, the client has `--read-timeout` to take more (on the loop or a thread).
    pub fn pump(&mut self, py: Python<'_>, shared: &Shared) -> io::Result<Pumped> {
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
                if !self.out.write_to(py, &self.sock, &mut self.may_write)? {
                    return Ok(Pumped::Blocked);
                }
                if !send_file(&self.sock, span)? {
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
            }
        }
    }

    /// After a complete response: the next request, or a close. The idle deadline is set
    /// here, so it is `--keep-alive` whichever thread finished the response.
    pub fn finish_response(&mut self, _py: Python<'_>, keep_alive: bool) {
        let Phase::Respond(r) = std::mem::replace(&mut self.phase, Phase::Head) else { return };
        self.served = true;
        self.deadline = Instant::now() + self.keepalive;
        let (complete, rest) = r.input.get().end_of_body();
        if let Some(rest) = rest {
            self.rbuf = rest;
        }
        self.phase = if keep_alive && complete { Phase::Head } else { Phase::Closing };
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
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        self.deadline = Instant::now() + LINGER_TIME;
        self.phase = Phase::Linger { left: LINGER_BYTES };
        Ok(Progress::Again)
    }

    fn on_linger(&mut self, scratch: &mut [u8]) -> io::Result<Progress> {
        let Phase::Linger { left } = &mut self.phase else { unreachable!() };
        while self.may_read && *left > 0 {
            match (&*self.sock).read(scratch) {
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
        read_into(&self.sock, &mut self.rbuf, &mut self.may_read, self.peer_closed, scratch)
    }

    /// Writes queued bytes; `Ok(false)` when the socket is full.
    pub fn flush(&mut self, py: Python<'_>) -> io::Result<bool> {
        self.out.write_to(py, &self.sock, &mut self.may_write)
    }

    pub fn is_responding_phase(&self) -> bool {
        matches!(self.phase, Phase::Respond(_))
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
pub enum Pumped {
    Done {
        keep_alive: bool,
    },
    /// The socket is full; resume on the next writable event.
    Blocked,
    /// The response cannot be completed; close.
    Failed,
}

// As for Phase.
#[allow(clippy::large_enum_variant)]
enum Progress {
    Again,
    Wait,
    Close,
    Offload(Request),
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

/// One read into `rbuf`; a short read means the socket is drained (edge-triggered).
/// `Ok(None)`: nothing to read now; `Ok(Some(0))`: the client closed.
fn read_into(
    mut sock: &Socket,
    rbuf: &mut BytesMut,
    may_read: &mut bool,
    peer_closed: bool,
    scratch: &mut [u8],
) -> io::Result<Option<usize>> {
    loop {
        match sock.read(scratch) {
            Ok(n) => {
                *may_read = n == scratch.len() || (peer_closed && n > 0);
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

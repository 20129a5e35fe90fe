//! The `async` worker: one mio event loop per process owns the listeners and every
//! client socket. Sockets are edge-triggered; accepts drain until `WouldBlock`; each
//! connection is a [`Conn`] state machine driven when it becomes ready.
//!
//! With `--threads 1` the app is called on the loop thread, once a request (head and a
//! body up to [`BODY_BUFFER`](super::conn::BODY_BUFFER)) has arrived whole, so slow
//! clients never hold Python. The GIL is released only while the loop waits in
//! `epoll_wait`, so a burst of ready connections costs one GIL round trip.

use std::io;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use pyo3::prelude::*;
use socket2::Socket;

use super::conn::{Conn, Next, Shared, BODY_BUFFER};
use super::h2::wsgi::StreamJob;
use super::h2::{self, Accepted, H2Conn, Nudge};
use super::io::READ_SIZE;
use super::pool::{Job, Pool};
use super::preamble::{self, Opening, Outcome, Preamble};
use super::tls::TlsTransport;
use super::transport::Transport;
use super::NEW_CONNECTION_GRACE;
use super::{Stop, WorkerContext};
use crate::exit;
use crate::listener::{Listener, Peer};
use crate::wsgi::spool::MEMORY_BUDGET;
use crate::wsgi::{Globals, Spooler};

/// Tokens at and above this are not connections.
const LISTENER_BASE: usize = usize::MAX / 2;
const STOP: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// How often timeouts are swept and the parent is checked.
const TICK: Duration = Duration::from_millis(500);
/// How long a stopping worker waits for its app threads once the loop is done (every
/// connection closed, or `--graceful-timeout` passed).
const JOIN_GRACE: Duration = Duration::from_secs(1);
/// App threads used with `--threads 1` for bodies too big to buffer.
const STREAMING_THREADS: usize = 2;

/// What one event says about a connection.
#[derive(Clone, Copy)]
struct Readiness {
    /// Bytes (or the FIN) may be waiting.
    readable: bool,
    /// The socket may take bytes.
    writable: bool,
    /// The client half-closed (or the socket failed).
    closed: bool,
}

/// A connection slot: its token is its index.
enum Slot<T: Transport> {
    Free,
    Here(Box<Conn<T>>),
    /// Accepted with `--proxy-protocol`: its PROXY header is read off the raw socket
    /// before the connection exists.
    Opening(Box<Opening>),
    /// Speaking HTTP/2: it stays on the loop, its streams run on the app threads.
    Http2(Box<Http2<T>>),
    /// On an app thread; write readiness and the client's FIN seen meanwhile are kept
    /// for its return (the thread may have read, so it is read again anyway). Sweeps and
    /// a graceful stop leave it alone; the stop waits for it (`--graceful-timeout`).
    Away {
        /// A writable edge arrived meanwhile.
        writable: bool,
        /// The client's FIN (or an error) arrived meanwhile.
        closed: bool,
        /// Taken out of epoll: its app may be handed the socket (a WebSocket upgrade,
        /// `worker/handoff.rs`), whose traffic is none of the loop's. Registered again if
        /// it comes back.
        detached: bool,
    },
}

/// An HTTP/2 connection and what its streams' requests say of it.
struct Http2<T: Transport> {
    /// h2's connection and its streams.
    conn: H2Conn<T>,
    /// REMOTE_ADDR and REMOTE_PORT of every stream.
    peer: Peer,
    /// The listener it came on.
    listener: usize,
}

/// The worker's loop and everything it owns, over one kind of transport: a plain socket,
/// or TLS (`--certfile`), each loop compiled for its own, so plaintext pays nothing for TLS.
struct EventLoop<'a, T: Transport> {
    /// The epoll instance every socket is registered with.
    poll: Poll,
    /// The sockets clients arrive on; a listener's token is `LISTENER_BASE + index`.
    listeners: &'a [Listener],
    /// The connections, by token.
    slots: Vec<Slot<T>>,
    /// Free slots, reused before the table grows.
    free: Vec<usize>,
    /// Connections open, here or away: bounded by `--worker-connections`.
    open: usize,
    /// `--worker-connections`.
    max_open: usize,
    /// Whether the listeners are registered (not at capacity, not stopping).
    accepting: bool,
    /// What the connections share with the app threads.
    shared: Arc<Shared>,
    /// The app threads.
    pool: Pool<T>,
    /// Makes an accepted socket, and the bytes read off it after a PROXY header, the
    /// connection's transport and the plaintext its first request starts with.
    wrap: Box<Wrap<'a, T>>,
    /// Where reads land before they join a connection's buffer, one for the loop.
    scratch: Box<[u8]>,
    /// `--proxy-protocol` and `--proxy-allow-from`.
    proxy: preamble::Settings,
    /// HTTP/2 streams' news from the app threads: the connections to drive.
    nudge: Nudge,
}

/// An accepted socket and what was read off it after a PROXY header, made the transport
/// and the plaintext the first request starts with.
type Wrap<'a, T> = dyn Fn(Socket, BytesMut) -> (T, BytesMut) + 'a;

pub fn serve(py: Python<'_>, ctx: &WorkerContext<'_>, app: &Bound<'_, PyAny>, stop: &Stop) -> i32 {
    match &ctx.config.tls {
        None => serve_over(py, ctx, app, stop, Box::new(|sock, early| (sock, early))),
        // Under TLS, what followed a PROXY header is the start of the handshake.
        Some(tls) => serve_over(
            py,
            ctx,
            app,
            stop,
            Box::new(|s, early| (TlsTransport::accept(s, tls, &early), BytesMut::new())),
        ),
    }
}

fn serve_over<'a, T: Transport>(
    py: Python<'_>,
    ctx: &WorkerContext<'a>,
    app: &Bound<'_, PyAny>,
    stop: &Stop,
    wrap: Box<Wrap<'a, T>>,
) -> i32 {
    match EventLoop::new(py, ctx, app, stop, wrap) {
        Ok(mut event_loop) => {
            let code = event_loop.run(py, ctx, stop);
            let pool = &mut event_loop.pool;
            // Threads still in the app past `--graceful-timeout` (a WebSocket that stays
            // open) are not waited for: the worker exits, which closes their sockets.
            py.detach(|| pool.join(JOIN_GRACE));
            code
        }
        Err(e) => {
            tracing::error!("Worker failed to boot: {e}");
            exit::WORKER_BOOT_ERROR
        }
    }
}

impl<'a, T: Transport> EventLoop<'a, T> {
    fn new(
        py: Python<'_>,
        ctx: &WorkerContext<'a>,
        app: &Bound<'_, PyAny>,
        stop: &Stop,
        wrap: Box<Wrap<'a, T>>,
    ) -> io::Result<EventLoop<'a, T>> {
        let config = ctx.config;
        let poll = Poll::new()?;
        for (i, listener) in ctx.listeners.iter().enumerate() {
            let fd = listener.fd();
            poll.registry().register(
                &mut SourceFd(&fd),
                Token(LISTENER_BASE + i),
                Interest::READABLE,
            )?;
        }
        poll.registry().register(&mut SourceFd(&stop.fd()), STOP, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let globals =
            Globals::new(py, config.multiprocess(), config.multithread(), config.forwarded.clone())
                .and_then(|g| g.over_tls(py, config.tls.is_some()))
                .map_err(|e| io::Error::other(e.to_string()))?;
        crate::wsgi::spool::tune_allocator();
        let shared = Arc::new(Shared {
            app: app.clone().unbind(),
            globals,
            servers: ctx.listeners.iter().map(Listener::server_name_port).collect(),
            threaded: config.threads > 1,
            keepalive: config.keepalive,
            limits: config.limits,
            protocol: config.protocol.clone(),
            read_timeout: config.read_timeout,
            stopping: stop.flag(),
            recycler: stop.recycler(),
            spooler: Spooler::new(MEMORY_BUDGET, BODY_BUFFER, config.worker_tmp_dir.clone()),
            body_limit: config.limit_request_body,
            http2: h2::policy(config),
        });
        let threads = if config.threads > 1 { config.threads } else { STREAMING_THREADS };
        let nudge = Nudge::new(Arc::clone(&waker));
        let pool = Pool::new(threads, Arc::clone(&shared), waker);
        Ok(EventLoop {
            poll,
            listeners: ctx.listeners,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            max_open: config.worker_connections,
            accepting: true,
            shared,
            pool,
            wrap,
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            proxy: config.proxy_protocol.clone(),
            nudge,
        })
    }

    fn run(&mut self, py: Python<'_>, ctx: &WorkerContext<'_>, stop: &Stop) -> i32 {
        let parent = std::os::unix::process::parent_id();
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        let mut stop_deadline = None;
        loop {
            crate::wsgi::access::flush();
            let poll = &mut self.poll;
            let waited = py.detach(|| poll.poll(&mut events, Some(TICK)));
            if let Err(e) = waited {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("poll failed: {e}");
                    return exit::FAILURE;
                }
            }
            if let Some(code) = stop.between_requests(py) {
                return code;
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    STOP => stop.drain(),
                    WAKER => {
                        self.take_back(py, now);
                        for token in self.nudge.take() {
                            self.drive_http2(py, token, now);
                        }
                    }
                    Token(t) if t >= LISTENER_BASE => self.accept(py, t - LISTENER_BASE, now),
                    Token(t) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        let closed = event.is_read_closed() || event.is_error();
                        self.ready(py, t, Readiness { readable, writable, closed }, now);
                    }
                }
            }
            crate::wsgi::test_panic::panic_outside_request_if_armed();
            if stop.requested() && stop_deadline.is_none() {
                stop_deadline = Some(now + ctx.config.graceful_timeout);
                self.begin_stop(py, now, stop.terminated());
            }
            if now >= next_tick {
                next_tick = now + TICK;
                self.sweep(py, now);
                if std::os::unix::process::parent_id() != parent {
                    tracing::info!("Parent changed, shutting down");
                    return exit::OK;
                }
            }
            if let Some(deadline) = stop_deadline {
                if self.open == 0 || now >= deadline {
                    return exit::OK;
                }
            }
        }
    }

    /// Accepts until the backlog is empty. A full table makes room by closing the
    /// connection idle the longest, once a newcomer is there to take its slot; with none
    /// idle, new clients wait in the kernel's backlog until a slot frees.
    fn accept(&mut self, py: Python<'_>, index: usize, now: Instant) {
        while self.accepting {
            let victim = match self.open < self.max_open {
                true => None,
                false => match self.longest_idle() {
                    Some(token) => Some(token),
                    None => break,
                },
            };
            if !self.accept_one(index, now) {
                return;
            }
            if let Some(token) = victim {
                self.close(py, token);
            }
        }
        self.set_accepting(py, self.open < self.max_open && !self.shared.stopping());
    }

    /// Accepts one connection into a slot; `false` when the backlog is empty (or accept
    /// failed).
    fn accept_one(&mut self, index: usize, now: Instant) -> bool {
        loop {
            let (sock, peer) = match self.listeners[index].accept() {
                Ok(accepted) => accepted,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return false,
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                    _ => {
                        tracing::error!("accept failed: {e}");
                        return false;
                    }
                },
            };
            let fd = sock.as_raw_fd();
            let slot = match self.proxy.mode {
                Some(mode) => {
                    let preamble = Preamble::new(mode, &self.proxy.allow, peer);
                    let deadline = now + self.shared.read_timeout;
                    Slot::Opening(Box::new(Opening::new(sock, preamble, index, deadline)))
                }
                None => {
                    let (transport, _) = (self.wrap)(sock, BytesMut::new());
                    let keepalive = self.shared.keepalive;
                    Slot::Here(Box::new(Conn::new(transport, peer, index, now, keepalive)))
                }
            };
            let token = self.free.pop().unwrap_or_else(|| {
                self.slots.push(Slot::Free);
                self.slots.len() - 1
            });
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) =
                self.poll.registry().register(&mut SourceFd(&fd), Token(token), interest)
            {
                tracing::error!("register failed: {e}");
                self.free.push(token);
                continue;
            }
            self.slots[token] = slot;
            self.open += 1;
            return true;
        }
    }

    /// The idle keep-alive connection closest to its deadline (they all got the same
    /// `--keep-alive`, so the one idle the longest).
    fn longest_idle(&self) -> Option<usize> {
        (0..self.slots.len())
            .filter_map(|t| match &self.slots[t] {
                Slot::Here(c) if c.is_idle_keep_alive() => Some((c.deadline(), t)),
                _ => None,
            })
            .min()
            .map(|(_, t)| t)
    }

    /// Stops or resumes accepting: at capacity the kernel backlog holds new clients.
    fn set_accepting(&mut self, py: Python<'_>, on: bool) {
        if on == self.accepting {
            return;
        }
        self.accepting = on;
        for (i, listener) in self.listeners.iter().enumerate() {
            let fd = listener.fd();
            let registry = self.poll.registry();
            let _ = match on {
                true => registry.register(
                    &mut SourceFd(&fd),
                    Token(LISTENER_BASE + i),
                    Interest::READABLE,
                ),
                false => registry.deregister(&mut SourceFd(&fd)),
            };
        }
        if on {
            // Connections that queued while we were full raise no new edge.
            for i in 0..self.listeners.len() {
                self.accept(py, i, Instant::now());
            }
        }
    }

    /// Readiness on a connection: drive it as far as it goes.
    fn ready(&mut self, py: Python<'_>, token: usize, ready: Readiness, now: Instant) {
        match self.slots.get_mut(token) {
            Some(Slot::Opening(_)) if ready.readable => {
                return self.open_further(py, token, ready.closed, now)
            }
            Some(Slot::Here(conn)) => conn.ready(ready.readable, ready.writable, ready.closed),
            Some(Slot::Http2(_)) => return self.drive_http2(py, token, now),
            Some(Slot::Away { writable, closed, .. }) => {
                *writable |= ready.writable;
                *closed |= ready.closed;
                return;
            }
            _ => return,
        }
        self.drive(py, token, now);
    }

    /// Reads more of a connection's preamble; once the bytes decide, the connection
    /// starts with the peer they name and what followed the header, or is refused (its
    /// error page, then the close) or closed. `closed`: the client's FIN came with this
    /// edge, which the connection must know (no other edge will say it).
    fn open_further(&mut self, py: Python<'_>, token: usize, closed: bool, now: Instant) {
        let Slot::Opening(opening) = &mut self.slots[token] else { return };
        let outcome = opening.read(&mut self.scratch);
        if matches!(outcome, Outcome::NeedMore) {
            return;
        }
        let Slot::Opening(opening) = std::mem::replace(&mut self.slots[token], Slot::Free) else {
            unreachable!()
        };
        let Opening { socket, listener, .. } = *opening;
        let keepalive = self.shared.keepalive;
        let conn = match outcome {
            Outcome::Ready { peer, leftover } => {
                let (transport, plaintext) = (self.wrap)(socket, leftover);
                Conn::new(transport, peer, listener, now, keepalive).with_received(plaintext)
            }
            // A TLS client would not read a plaintext page: it is just closed.
            Outcome::Refuse { .. } if !T::PLAINTEXT => return self.release(py, token),
            Outcome::Refuse { peer, status } => {
                let (transport, _) = (self.wrap)(socket, BytesMut::new());
                Conn::new(transport, peer, listener, now, keepalive).refused(status)
            }
            // Closed with `socket`, here (a closed descriptor leaves epoll by itself).
            Outcome::NeedMore | Outcome::Drop => return self.release(py, token),
        };
        let mut conn = Box::new(conn);
        conn.ready(true, true, closed);
        self.slots[token] = Slot::Here(conn);
        self.drive(py, token, now);
    }

    fn drive(&mut self, py: Python<'_>, token: usize, now: Instant) {
        let Slot::Here(conn) = &mut self.slots[token] else { return };
        // With the app on this thread (`--threads 1`), a panic in one request fails that
        // request only (the hook logged it): its connection closes, the others go on.
        let (shared, scratch) = (&self.shared, &mut self.scratch);
        let driven = catch_unwind(AssertUnwindSafe(|| conn.drive(py, shared, scratch, now)));
        match driven.unwrap_or(Next::Close) {
            // Full, with new clients left in the backlog: this one may now make room.
            Next::Wait if !self.accepting && conn.is_idle_keep_alive() => {
                self.set_accepting(py, !self.shared.stopping())
            }
            Next::Wait => {}
            Next::Close => self.close(py, token),
            Next::Http2 => self.start_http2(py, token, now),
            Next::Offload(request) => {
                let detached = conn.may_hand_off(&self.shared, request.head());
                if detached {
                    let _ = self.poll.registry().deregister(&mut SourceFd(&conn.fd()));
                }
                let away = Slot::Away { writable: false, closed: false, detached };
                let Slot::Here(conn) = std::mem::replace(&mut self.slots[token], away) else {
                    unreachable!()
                };
                self.pool.submit(Job { token, conn: *conn, request });
            }
        }
    }

    /// A connection whose first bytes opened HTTP/2: it leaves its HTTP/1.1 state.
    fn start_http2(&mut self, py: Python<'_>, token: usize, now: Instant) {
        let Some(policy) = &self.shared.http2 else { return self.close(py, token) };
        let settings = policy.settings;
        let Slot::Here(conn) = std::mem::replace(&mut self.slots[token], Slot::Free) else {
            unreachable!()
        };
        let (transport, start, peer, listener) = conn.into_http2();
        let conn = H2Conn::new(transport, start, &settings, (token, self.nudge.clone()), now);
        self.slots[token] = Slot::Http2(Box::new(Http2 { conn, peer, listener }));
        self.drive_http2(py, token, now);
    }

    /// Drives an HTTP/2 connection; the streams it accepted go to the app threads.
    fn drive_http2(&mut self, py: Python<'_>, token: usize, now: Instant) {
        let Some(Slot::Http2(h2)) = self.slots.get_mut(token) else { return };
        if self.shared.stopping() {
            // A connection that opened HTTP/2 during a stop: GOAWAY, written by this drive.
            h2.conn.graceful_shutdown();
        }
        let mut accepted = Vec::new();
        let alive = h2.conn.drive(&mut accepted, now);
        for Accepted { request, stream, body } in accepted {
            match h2::wsgi::head_of(&request, &self.shared.limits) {
                Ok(head) => self.pool.submit_stream(StreamJob {
                    stream,
                    head,
                    body,
                    peer: h2.peer.clone(),
                    listener: h2.listener,
                    client_cert: h2.conn.transport().client_certificate(),
                    ready: now,
                }),
                Err(error) => {
                    tracing::debug!("Invalid HTTP/2 request from {}: {error}", h2.peer.addr);
                    h2::wsgi::refuse(&stream, error.status());
                }
            }
        }
        if !alive {
            self.close(py, token);
        }
    }

    /// Connections the app threads are done with.
    fn take_back(&mut self, py: Python<'_>, now: Instant) {
        for (token, conn) in self.pool.returned() {
            let Slot::Away { writable, closed, detached } = self.slots[token] else { continue };
            match conn {
                Some(conn) if detached && !self.attach(token, &conn) => {
                    drop(conn);
                    self.release(py, token);
                }
                Some(mut conn) => {
                    // The thread may have read from the socket; one read finds out.
                    conn.ready(true, writable || detached, closed);
                    self.slots[token] = Slot::Here(Box::new(conn));
                    self.drive(py, token, now);
                }
                None => self.release(py, token),
            }
        }
    }

    /// Registers a connection back from its thread after it was taken out of epoll (its
    /// app answered the upgrade request with a response); `false` when that failed.
    fn attach(&self, token: usize, conn: &Conn<T>) -> bool {
        let interest = Interest::READABLE | Interest::WRITABLE;
        let fd = conn.fd();
        match self.poll.registry().register(&mut SourceFd(&fd), Token(token), interest) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("register failed: {e}");
                false
            }
        }
    }

    fn close(&mut self, py: Python<'_>, token: usize) {
        match std::mem::replace(&mut self.slots[token], Slot::Free) {
            Slot::Here(mut conn) => {
                conn.abandon(py);
                // An app thread inside `wsgi.input` may hold the transport a moment longer.
                let _ = self.poll.registry().deregister(&mut SourceFd(&conn.fd()));
            }
            Slot::Opening(opening) => {
                let _ = self.poll.registry().deregister(&mut SourceFd(&opening.fd()));
            }
            Slot::Http2(mut h2) => {
                h2.conn.abandon();
                let _ = self.poll.registry().deregister(&mut SourceFd(&h2.conn.fd()));
            }
            Slot::Free | Slot::Away { .. } => {}
        }
        self.release(py, token);
    }

    /// Frees a connection's slot and, below capacity again, resumes accepting.
    fn release(&mut self, py: Python<'_>, token: usize) {
        self.slots[token] = Slot::Free;
        self.free.push(token);
        self.open -= 1;
        if !self.accepting && !self.shared.stopping() && self.open < self.max_open {
            self.set_accepting(py, true);
        }
    }

    /// A graceful stop: on TERM, take every connection already in the listen backlog (the
    /// kernel accepted them: their clients wait for an answer, and would get a reset when
    /// the socket closes; a `--max-requests` stop leaves them to the replacement), stop
    /// accepting, close idle connections now, finish the others.
    /// A request already in an idle socket's buffer (its edge not handled yet) is read
    /// and answered, with `Connection: close`, before the connection is closed, and a
    /// connection accepted but not yet used gets [`NEW_CONNECTION_GRACE`] for its first
    /// request: a client never sees a reset for a request it had sent. Requests still
    /// arriving finish.
    fn begin_stop(&mut self, py: Python<'_>, now: Instant, drain_backlog: bool) {
        // Past `--worker-connections` if need be: the backlog is bounded (`--backlog`) and
        // these are served once, with `Connection: close`.
        for i in (0..self.listeners.len()).filter(|_| drain_backlog) {
            while self.accept_one(i, now) {}
        }
        self.set_accepting(py, false);
        let idle: Vec<usize> = (0..self.slots.len())
            .filter(|&t| matches!(&self.slots[t], Slot::Here(c) if c.is_idle()))
            .collect();
        for token in idle {
            if let Slot::Here(conn) = &mut self.slots[token] {
                conn.ready(true, false, false);
            }
            self.drive(py, token, now);
            match &mut self.slots[token] {
                Slot::Here(c) if c.is_idle() && !c.served() => {
                    c.shorten_deadline(now + NEW_CONNECTION_GRACE);
                }
                Slot::Here(c) if c.is_idle() => self.close(py, token),
                _ => {}
            }
        }
        // A connection still in its PROXY header is a new one: the same grace.
        for slot in &mut self.slots {
            if let Slot::Opening(opening) = slot {
                opening.deadline = opening.deadline.min(now + NEW_CONNECTION_GRACE);
            }
        }
        // HTTP/2: GOAWAY; streams in flight finish, then each connection ends.
        let http2: Vec<usize> =
            (0..self.slots.len()).filter(|&t| matches!(self.slots[t], Slot::Http2(_))).collect();
        for token in http2 {
            if let Slot::Http2(h2) = &mut self.slots[token] {
                h2.conn.graceful_shutdown();
            }
            self.drive_http2(py, token, now);
        }
    }

    /// Closes connections past their deadline: idle keep-alive, slow heads and bodies,
    /// readers that stopped reading.
    fn sweep(&mut self, py: Python<'_>, now: Instant) {
        let expired: Vec<usize> = (0..self.slots.len())
            .filter(|&t| match &self.slots[t] {
                Slot::Here(c) => c.deadline() <= now,
                Slot::Opening(o) => o.deadline <= now,
                Slot::Http2(h2) => h2.conn.deadline() <= now,
                _ => false,
            })
            .collect();
        for token in expired {
            // Idle HTTP/2: GOAWAY first, the close if the client does not leave.
            let winds_down = match &mut self.slots[token] {
                Slot::Http2(h2) => h2.conn.expire(now),
                _ => false,
            };
            match winds_down {
                true => self.drive_http2(py, token, now),
                false => self.close(py, token),
            }
        }
    }
}

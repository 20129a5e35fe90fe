//! The `asgi` worker's sockets: the listeners and a table of [`Conn`]s, driven by the
//! readiness events of one mio poll, and the app's messages ([`Command`]) applied to
//! them. No Python: what the app must hear comes out as `(Id, Note)` pairs in
//! [`Core::notes`], for the bridge to turn into ASGI events.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::unix::SourceFd;
use mio::{Events, Interest, Registry, Token};

use super::conn::{Conn, Note, Settings};
use super::http2::Http2;
use super::transport::Stream;
use crate::listener::Listener;
use crate::worker::io::READ_SIZE;
use crate::worker::preamble::Opening;
use crate::worker::{Recycler, NEW_CONNECTION_GRACE};

#[path = "front.rs"]
mod front;

/// Tokens at and above this are listeners.
pub const LISTENER_BASE: usize = usize::MAX / 2;
/// The worker's signal pipe.
pub const STOP: Token = Token(usize::MAX - 1);
/// The bridge's wake-up from the app's thread (bridge (B) only).
pub const WAKER: Token = Token(usize::MAX - 2);

/// One request's name for the app's side: the slot in the high half, the slot's request
/// count in the low. A reused slot (or the next request on the connection) gets a new
/// id, so a late `send()` of a finished request never reaches another one.
pub type Id = u64;

/// A message from the app, for the connection its id names.
#[derive(Debug)]
pub enum Command {
    /// `http.response.start`.
    Start {
        /// The request.
        id: Id,
        /// The status code.
        status: u16,
        /// The headers, as the app gave them.
        headers: Vec<(Bytes, Bytes)>,
    },
    /// `http.response.body`.
    Body {
        /// The request.
        id: Id,
        /// The bytes.
        data: Bytes,
        /// More body is to come.
        more: bool,
    },
    /// `receive()` awaits more of the request body.
    Pull(Id),
    /// The app failed: a 500 if nothing was sent, else the close.
    Fail(Id),
    /// `websocket.accept`.
    Accept {
        /// The request.
        id: Id,
        /// The subprotocol the app chose.
        subprotocol: Option<String>,
        /// Extra headers for the `101` head.
        headers: Vec<(Bytes, Bytes)>,
    },
    /// `websocket.send`.
    Send {
        /// The WebSocket.
        id: Id,
        /// The message (UTF-8 when `text`).
        data: Bytes,
        /// A text message, else binary.
        text: bool,
    },
    /// `websocket.close`: after accept a close frame; before, the handshake refused with
    /// `code` as the HTTP status (403, or 500 when the app raised).
    Close {
        /// The WebSocket.
        id: Id,
        /// The close code, or the refusal's status.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The app's unread messages passed the high-water mark (`true`) or caught up.
    Flow(Id, bool),
    /// `--request-timeout` passed: a 504 if nothing was sent, else the close.
    TimedOut(Id),
}

impl Command {
    /// The request or WebSocket the message is for.
    fn id(&self) -> Id {
        match self {
            Command::Start { id, .. } | Command::Body { id, .. } => *id,
            Command::Accept { id, .. } | Command::Send { id, .. } | Command::Close { id, .. } => {
                *id
            }
            Command::Pull(id) | Command::Fail(id) | Command::TimedOut(id) => *id,
            Command::Flow(id, _) => *id,
        }
    }
}

/// A connection slot.
struct Slot {
    /// The connection, if the slot is in use.
    conn: Option<Box<Conn<Stream>>>,
    /// A connection still in its PROXY header ([`front`]), before it has a `conn`.
    opening: Option<Box<Opening>>,
    /// A connection speaking HTTP/2 (instead of `conn`), its streams the app's requests.
    h2: Option<Box<Http2>>,
    /// Requests started in this slot, ever: the low half of an [`Id`].
    request: u32,
}

/// The listeners, the connections, and what the app has yet to hear.
pub struct Core {
    /// Where sockets are registered (edge-triggered).
    registry: Registry,
    /// The worker's own copies of the listeners; a listener's token is
    /// `LISTENER_BASE + index`.
    listeners: Vec<Listener>,
    /// The connections, by token.
    slots: Vec<Slot>,
    /// Free slots, reused before the table grows.
    free: Vec<usize>,
    /// Connections open: bounded by `--worker-connections`.
    pub open: usize,
    /// `--worker-connections`.
    max_open: usize,
    /// Whether the listeners are registered.
    accepting: bool,
    /// A graceful stop began: no new connections, no keep-alive.
    stopping: bool,
    /// What every connection shares.
    pub settings: Settings,
    /// `--certfile`: each connection's TLS session is made from it.
    tls: Option<crate::tls::Settings>,
    /// `--max-requests`.
    recycler: Recycler,
    /// Where reads land first.
    scratch: Box<[u8]>,
    /// What the app must hear, in order.
    pub notes: Vec<(Id, Note)>,
    /// One drive's notes, before they get their id (kept to reuse its allocation).
    fresh: Vec<Note>,
    /// An HTTP/2 drive's notes, by stream number, before they get their id.
    fresh_h2: Vec<(u32, Note)>,
    /// HTTP/2 connections the app's messages changed, not driven since: the app's
    /// messages of one turn of its loop go out in one drive ([`Core::drive_undriven`]).
    undriven: Vec<usize>,
    /// The signal pipe was readable.
    pub signalled: bool,
}

impl Core {
    pub fn new(
        registry: Registry,
        listeners: Vec<Listener>,
        settings: Settings,
        max_open: usize,
        recycler: Recycler,
        tls: Option<crate::tls::Settings>,
    ) -> io::Result<Core> {
        for (i, listener) in listeners.iter().enumerate() {
            let fd = listener.fd();
            registry.register(&mut SourceFd(&fd), Token(LISTENER_BASE + i), Interest::READABLE)?;
        }
        Ok(Core {
            registry,
            listeners,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            max_open,
            accepting: true,
            stopping: false,
            settings,
            tls,
            recycler,
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            notes: Vec::new(),
            fresh: Vec::new(),
            fresh_h2: Vec::new(),
            undriven: Vec::new(),
            signalled: false,
        })
    }

    /// The events of one poll. A hot path.
    pub fn handle(&mut self, events: &Events, now: Instant) {
        for event in events.iter() {
            match event.token() {
                STOP => self.signalled = true,
                WAKER => {}
                Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE, now),
                Token(t) if self.slots.get(t).is_some_and(|s| s.h2.is_some()) => {
                    self.drive_h2(t, now);
                }
                Token(t) => {
                    let closed = event.is_read_closed() || event.is_error();
                    if self.slots.get(t).is_some_and(|s| s.opening.is_some()) {
                        if event.is_readable() || closed {
                            self.open_further(t, closed, now);
                        }
                        continue;
                    }
                    let Some(conn) = self.slots.get_mut(t).and_then(|s| s.conn.as_mut()) else {
                        continue;
                    };
                    let readable = event.is_readable() || closed;
                    let writable =
                        event.is_writable() || event.is_write_closed() || event.is_error();
                    conn.ready(readable, writable, closed);
                    self.drive(t, now);
                }
            }
        }
    }

    /// Accepts until the backlog is empty or the table is full.
    fn accept(&mut self, index: usize, now: Instant) {
        while self.accepting && self.open < self.max_open && self.accept_one(index, now) {}
        if self.open >= self.max_open {
            self.set_accepting(false);
        }
    }

    /// Accepts one connection; `false` when the backlog is empty (or accept failed).
    fn accept_one(&mut self, index: usize, now: Instant) -> bool {
        loop {
            let (sock, peer) = match self.listeners[index].accept() {
                Ok(accepted) => accepted,
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                    io::ErrorKind::WouldBlock => return false,
                    _ => {
                        tracing::error!("accept failed: {e}");
                        return false;
                    }
                },
            };
            let token = self.free.pop().unwrap_or_else(|| {
                self.slots.push(Slot { conn: None, opening: None, h2: None, request: 0 });
                self.slots.len() - 1
            });
            let fd = sock.as_raw_fd();
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.registry.register(&mut SourceFd(&fd), Token(token), interest) {
                tracing::error!("register failed: {e}");
                self.free.push(token);
                continue;
            }
            self.open += 1;
            self.admit(token, sock, peer, index, now);
            return true;
        }
    }

    fn set_accepting(&mut self, on: bool) {
        if on == self.accepting {
            return;
        }
        self.accepting = on;
        for (i, listener) in self.listeners.iter().enumerate() {
            let fd = listener.fd();
            let _ = match on {
                true => self.registry.register(
                    &mut SourceFd(&fd),
                    Token(LISTENER_BASE + i),
                    Interest::READABLE,
                ),
                false => self.registry.deregister(&mut SourceFd(&fd)),
            };
        }
        if on {
            // Clients that queued while we were full raise no new edge.
            for i in 0..self.listeners.len() {
                self.accept(i, Instant::now());
            }
        }
    }

    /// Drives one connection and names its notes. A hot path.
    fn drive(&mut self, token: usize, now: Instant) {
        let slot = &mut self.slots[token];
        let Some(conn) = slot.conn.as_mut() else { return };
        conn.drive(&self.settings, &mut self.scratch, now, &mut self.fresh);
        let (done, http2) = (conn.is_done(), conn.is_http2());
        self.name_notes(token);
        if http2 {
            self.start_http2(token, now);
        } else if done {
            self.close(token);
        }
    }

    /// A connection whose first bytes opened HTTP/2 leaves its HTTP/1.1 state.
    fn start_http2(&mut self, token: usize, now: Instant) {
        let Some(conn) = self.slots[token].conn.take() else { return };
        let fd = conn.fd();
        let (transport, start, peer, listener) = conn.into_http2();
        match Http2::new(transport, start, (peer, listener), &self.settings, token, now) {
            Some(h2) => {
                self.slots[token].h2 = Some(Box::new(h2));
                self.drive_h2(token, now);
            }
            // No policy (cannot be: only a policy opens HTTP/2): closed.
            None => {
                let _ = self.registry.deregister(&mut SourceFd(&fd));
                self.release(token);
            }
        }
    }

    /// Drives an HTTP/2 connection and names its streams' notes. A hot path.
    fn drive_h2(&mut self, token: usize, now: Instant) {
        let slot = &mut self.slots[token];
        let Some(h2) = slot.h2.as_mut() else { return };
        if self.stopping {
            // Opened during a stop: GOAWAY, written by this drive.
            h2.graceful_shutdown();
        }
        let alive = h2.drive(&self.settings, &mut slot.request, now, &mut self.fresh_h2);
        self.name_h2_notes(token);
        if !alive {
            self.close(token);
        }
    }

    /// Gives the notes of `token`'s HTTP/2 streams their ids.
    fn name_h2_notes(&mut self, token: usize) {
        let high = (token as u64) << 32;
        self.notes.extend(self.fresh_h2.drain(..).map(|(n, note)| (high | u64::from(n), note)));
    }

    /// Gives the fresh notes of `token`'s connection their ids.
    fn name_notes(&mut self, token: usize) {
        let slot = &mut self.slots[token];
        for note in self.fresh.drain(..) {
            if matches!(note, Note::Request(_)) {
                slot.request = slot.request.wrapping_add(1);
            }
            self.notes.push((((token as u64) << 32) | u64::from(slot.request), note));
        }
    }

    /// Closes a connection; an app still serving it hears of the client's going.
    fn close(&mut self, token: usize) {
        if self.close_opening(token) {
            return;
        }
        if let Some(mut h2) = self.slots[token].h2.take() {
            h2.abandon(&mut self.fresh_h2);
            self.name_h2_notes(token);
            let _ = self.registry.deregister(&mut SourceFd(&h2.fd()));
            return self.release(token);
        }
        let slot = &mut self.slots[token];
        let Some(conn) = slot.conn.take() else { return };
        if conn.is_serving() {
            self.notes.push((((token as u64) << 32) | u64::from(slot.request), Note::Disconnect));
        }
        let _ = self.registry.deregister(&mut SourceFd(&conn.fd()));
        drop(conn);
        self.release(token);
    }

    /// A slot given back: below capacity again, accepting resumes.
    fn release(&mut self, token: usize) {
        self.free.push(token);
        self.open -= 1;
        if !self.accepting && !self.stopping && self.open < self.max_open {
            self.set_accepting(true);
        }
    }

    /// The slot of a live request, or `None` when it is over (or its client gone).
    fn live(&mut self, id: Id) -> Option<usize> {
        let token = (id >> 32) as usize;
        let slot = self.slots.get(token)?;
        if let Some(h2) = &slot.h2 {
            return h2.has(id as u32).then_some(token);
        }
        (slot.request == id as u32 && slot.conn.as_ref()?.is_serving()).then_some(token)
    }

    /// Applies one of the app's messages; `Ok(true)`: the response queue is full, the
    /// app should wait for [`Note::Drained`]. An `Err` is the app's mistake, to raise.
    pub fn apply(&mut self, command: Command, now: Instant) -> Result<bool, &'static str> {
        // A request that is over (the client gone): its messages go nowhere.
        let id = command.id();
        let Some(token) = self.live(id) else { return Ok(false) };
        // A response's end, or a WebSocket's accept: a request served (`--max-requests`).
        let served = matches!(command, Command::Body { more: false, .. } | Command::Accept { .. });
        if self.slots[token].h2.is_some() {
            return self.apply_h2(token, id as u32, command, (served, now));
        }
        let keep_alive = !self.stopping;
        let Some(conn) = self.slots[token].conn.as_mut() else { return Ok(false) };
        let mut full = false;
        let outcome = match command {
            Command::Start { status, headers, .. } => conn.start(status, &headers, keep_alive),
            Command::Body { data, more, .. } => {
                conn.body(&data, more, now, &mut self.fresh).map(|f| full = f)
            }
            Command::Pull(_) => {
                conn.pull(now, self.settings.read_timeout);
                Ok(())
            }
            Command::Fail(_) => {
                conn.fail(now, &mut self.fresh);
                Ok(())
            }
            Command::Accept { subprotocol, headers, .. } => {
                let max = self.settings.websocket_max;
                conn.ws_accept(subprotocol.as_deref(), &headers, max, now, &mut self.fresh)
            }
            Command::Send { data, text, .. } => {
                conn.ws_send(&data, text, now, &mut self.fresh).map(|f| full = f)
            }
            Command::Close { code, reason, .. } => {
                match conn.is_websocket() {
                    true => conn.ws_close(code, &reason, now, &mut self.fresh),
                    // Before accept: the handshake refused with an error page, as any
                    // request the app fails (403; 500 when the app raised).
                    false => conn.fail_with(code, now, &mut self.fresh),
                }
                Ok(())
            }
            Command::Flow(_, paused) => {
                conn.ws_flow(paused);
                Ok(())
            }
            Command::TimedOut(_) => {
                conn.fail_with(504, now, &mut self.fresh);
                Ok(())
            }
        };
        if outcome.is_err() {
            conn.fail(now, &mut self.fresh);
        } else if served {
            self.recycler.count_request();
        }
        self.drive(token, now);
        outcome.map(|()| full)
    }

    /// [`Core::apply`] for stream `number` of an HTTP/2 connection (`served`: the message
    /// ends a response).
    fn apply_h2(
        &mut self,
        token: usize,
        number: u32,
        command: Command,
        (served, now): (bool, Instant),
    ) -> Result<bool, &'static str> {
        let Some(h2) = self.slots[token].h2.as_mut() else { return Ok(false) };
        let outcome = h2.apply(number, command, now, &mut self.fresh_h2);
        if served && outcome.is_ok() {
            self.recycler.count_request();
        }
        self.name_h2_notes(token);
        // Driven once the app's turn is over: a drive walks every stream of the
        // connection, and a turn may answer a hundred of them.
        if !self.undriven.contains(&token) {
            self.undriven.push(token);
        }
        outcome
    }

    /// Whether HTTP/2 connections wait for [`Core::drive_undriven`].
    pub fn undriven(&self) -> bool {
        !self.undriven.is_empty()
    }

    /// Drives the HTTP/2 connections the app's messages changed since the last call.
    pub fn drive_undriven(&mut self, now: Instant) {
        for token in std::mem::take(&mut self.undriven) {
            self.drive_h2(token, now);
        }
    }

    /// A graceful stop, as the WSGI async worker's: on TERM (`drain_backlog`) the
    /// connections already in the listen backlog are taken first (their clients wait for an
    /// answer; a `--max-requests` stop leaves them to the replacement); no new ones after.
    /// A request already in an idle socket is read and answered; a connection never used
    /// gets [`NEW_CONNECTION_GRACE`] for its first request; idle kept-alive ones close now,
    /// the others after their response; WebSockets are closed with 1001, "going away".
    pub fn begin_stop(&mut self, now: Instant, drain_backlog: bool) {
        self.stopping = true;
        for i in (0..self.listeners.len()).filter(|_| drain_backlog) {
            while self.accept_one(i, now) {}
        }
        self.set_accepting(false);
        self.hurry_openings(now);
        for token in 0..self.slots.len() {
            if self.slots[token].h2.is_some() {
                // GOAWAY (a drive while stopping asks for it): streams in flight finish,
                // then the connection ends.
                self.drive_h2(token, now);
                continue;
            }
            let Some(conn) = self.slots[token].conn.as_mut() else { continue };
            conn.ready(true, false, false);
            conn.going_away(now, &mut self.fresh);
            self.drive(token, now);
            if let Some(conn) = self.slots[token].conn.as_mut() {
                match conn.is_idle() && conn.served() == 0 {
                    true => conn.shorten_deadline(now + NEW_CONNECTION_GRACE),
                    false => conn.close_if_idle(),
                }
                self.drive(token, now);
            }
        }
    }

    /// Closes connections past their deadline.
    pub fn sweep(&mut self, now: Instant) {
        for token in 0..self.slots.len() {
            if self.slots[token].h2.is_some() {
                self.sweep_h2(token, now);
                continue;
            }
            let expired = self.slots[token].conn.as_ref().is_some_and(|c| c.deadline() <= now)
                || self.opening_expired(token, now);
            if expired {
                self.close(token);
            }
        }
    }

    /// An HTTP/2 connection's sweep: stalled uploads reset; idle, GOAWAY first and the
    /// close if the client does not leave.
    fn sweep_h2(&mut self, token: usize, now: Instant) {
        let read_timeout = self.settings.read_timeout;
        let Some(h2) = self.slots[token].h2.as_mut() else { return };
        let mut drive = h2.sweep(now, read_timeout);
        if h2.deadline() <= now {
            if !h2.expire(now) {
                return self.close(token);
            }
            drive = true;
        }
        if drive {
            self.drive_h2(token, now);
        }
    }

    /// How long a stopping worker still waits: `Duration::ZERO` once nothing is open.
    pub fn busy(&self) -> bool {
        self.open > 0
    }
}

/// Ticks of the bridge: how often deadlines are swept and the heartbeat beats.
pub const TICK: Duration = Duration::from_millis(500);

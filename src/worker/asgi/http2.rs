//! HTTP/2 on the `asgi` worker: one [`H2Conn`] (the engine the `async` worker uses,
//! `worker/h2/`) whose streams are ASGI requests. The app's side is the asyncio loop on
//! this same thread, so nothing here waits: a stream's response is queued without the
//! [`HIGH_WATER`] wait ([`Stream::queue`]; `send()` waits for [`Note::Drained`] instead),
//! its body is taken as it arrives ([`Stream::try_body`]), and the connection is driven
//! again once the app's turn of messages is in (`Core::drive_undriven`).
//!
//! Each stream gets an [`Id`](super::core::Id) number from the slot's request count, as
//! each request of an HTTP/1.1 connection does, so streams run side by side with ids no
//! other request ever had.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::conn::{Arrived, Logged, Note, Settings};
use super::core::Command;
use super::transport::Stream as Transport;
use crate::http::response::{self, BodyMode, RequestInfo};
use crate::listener::Peer;
use crate::worker::h2::stream::{Stream, HIGH_WATER};
use crate::worker::h2::upgrade::Upgraded;
use crate::worker::h2::wsgi::{head_of, refuse, response_head};
use crate::worker::h2::{Accepted, H2Conn, Nudge};

/// How many times one drive goes round when taking body bytes hands window back (each
/// turn writes the WINDOW_UPDATE the last one made due).
const TURNS: usize = 8;

/// One HTTP/2 connection of the asgi worker.
pub struct Http2 {
    /// h2's connection and its streams.
    conn: H2Conn<Transport>,
    /// The client of every stream.
    peer: Peer,
    /// The listener it came on.
    listener: usize,
    /// The streams the app has, by number.
    streams: Vec<Exchange>,
    /// One drive's new streams (kept to reuse the allocation).
    accepted: Vec<Accepted>,
}

/// One stream the app has.
struct Exchange {
    /// The low half of its id.
    number: u32,
    /// Where its body arrives and its response goes.
    stream: Arc<Stream>,
    /// The app awaits more body, since this instant (`--read-timeout` runs from it).
    wanted: Option<Instant>,
    /// `send()` waits for [`Note::Drained`].
    throttled: bool,
    /// A HEAD request: the response's body is dropped.
    head_request: bool,
    /// `None` before `http.response.start`; then how the body is delimited.
    mode: Option<BodyMode>,
    /// The app's response is whole (or was failed): nothing more is taken from it.
    ended: bool,
    /// What the access log line needs, when the log is on.
    log: Option<Box<Logged>>,
}

impl Http2 {
    /// A connection whose first bytes (`start.0`) opened HTTP/2, or (`start.1`) whose
    /// request asked for `h2c`.
    pub fn new(
        transport: Transport,
        start: (BytesMut, Option<Upgraded>),
        (peer, listener): (Peer, usize),
        settings: &Settings,
        token: usize,
        now: Instant,
    ) -> Option<Http2> {
        let policy = settings.http2.as_ref()?;
        let transport = Arc::new(transport);
        let conn = H2Conn::new(transport, start, &policy.settings, (token, Nudge::local()), now);
        Some(Http2 { conn, peer, listener, streams: Vec::new(), accepted: Vec::new() })
    }

    /// The descriptor the loop registers.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.conn.fd()
    }

    /// When the loop calls [`Http2::expire`] (or sweeps a stalled upload).
    pub fn deadline(&self) -> Instant {
        self.conn.deadline()
    }

    /// Whether the stream numbered `number` is the app's.
    pub fn has(&self, number: u32) -> bool {
        self.streams.iter().any(|e| e.number == number)
    }

    /// GOAWAY: streams in flight finish, no new one starts.
    pub fn graceful_shutdown(&mut self) {
        self.conn.graceful_shutdown();
    }

    /// The idle deadline passed; `false`: close it now.
    pub fn expire(&mut self, now: Instant) -> bool {
        self.conn.expire(now)
    }

    /// The connection goes: the app hears of it on every stream it still answers.
    pub fn abandon(&mut self, notes: &mut Vec<(u32, Note)>) {
        self.conn.abandon();
        for exchange in self.streams.drain(..).filter(|e| !e.ended) {
            notes.push((exchange.number, Note::Disconnect));
        }
    }

    /// Drives the connection: new streams become requests (numbered from `count`), and
    /// each stream's news what the app hears. `false` when the connection is over.
    pub fn drive(
        &mut self,
        settings: &Settings,
        count: &mut u32,
        now: Instant,
        notes: &mut Vec<(u32, Note)>,
    ) -> bool {
        for _ in 0..TURNS {
            if !self.conn.drive(&mut self.accepted, now) {
                self.abandon(notes);
                return false;
            }
            let refused = self.admit(settings, count, now, notes);
            if !(self.observe(notes) || refused) {
                break;
            }
        }
        true
    }

    /// The streams h2 accepted, as requests for the app; `true` when one was refused
    /// (its error page is queued: drive again to send it).
    fn admit(
        &mut self,
        settings: &Settings,
        count: &mut u32,
        now: Instant,
        notes: &mut Vec<(u32, Note)>,
    ) -> bool {
        let mut refused = false;
        for Accepted { request, stream, body: _ } in self.accepted.drain(..) {
            let judged = head_of(&request, &settings.limits).and_then(|head| {
                let verdict = settings.forwarded.judge(&head, self.peer.ip())?;
                Ok((head, verdict))
            });
            let (head, forwarded) = match judged {
                Ok(judged) => judged,
                Err(error) => {
                    tracing::debug!("Invalid HTTP/2 request from {}: {error}", self.peer.addr);
                    refuse(&stream, error.status());
                    refused = true;
                    continue;
                }
            };
            *count = count.wrapping_add(1);
            let (body, more) = stream.try_body().unwrap_or((Bytes::new(), true));
            let log = super::conn::counted().then(|| {
                let (head, peer) = (head.clone(), self.peer.clone());
                Box::new(Logged { head, peer, started: now, status: 500, headers: vec![], sent: 0 })
            });
            self.streams.push(Exchange {
                number: *count,
                stream,
                wanted: None,
                throttled: false,
                head_request: head.is_head_request(),
                mode: None,
                ended: false,
                log,
            });
            let (peer, listener) = (self.peer.clone(), self.listener);
            let arrived =
                Arrived { peer, listener, head, forwarded, body, more, subprotocols: None };
            notes.push((*count, Note::Request(Box::new(arrived))));
        }
        refused
    }

    /// Body for streams whose app awaits it, room for those that wait to send, the
    /// client's reset for the others; finished streams leave. `true` when body was taken
    /// (its window is due: drive again).
    fn observe(&mut self, notes: &mut Vec<(u32, Note)>) -> bool {
        let mut took = false;
        self.streams.retain_mut(|exchange| {
            let number = exchange.number;
            if exchange.stream.is_reset() {
                if !exchange.ended {
                    notes.push((number, Note::Disconnect));
                }
                return false;
            }
            if exchange.wanted.is_some() {
                if let Some((data, more)) = exchange.stream.try_body() {
                    took |= !data.is_empty();
                    exchange.wanted = None;
                    notes.push((number, Note::Body(data, more)));
                }
            }
            if exchange.throttled && exchange.stream.queued().0 <= HIGH_WATER / 2 {
                exchange.throttled = false;
                notes.push((number, Note::Drained));
            }
            true
        });
        took
    }

    /// Streams whose app has awaited body past `--read-timeout` are reset (the app hears
    /// the client's going from the next drive); whether any was.
    pub fn sweep(&mut self, now: Instant, read_timeout: Duration) -> bool {
        let mut any = false;
        for exchange in &mut self.streams {
            if exchange.wanted.is_some_and(|since| since + read_timeout <= now) {
                tracing::debug!("HTTP/2: a request body stalled; the stream is reset");
                exchange.wanted = None;
                exchange.stream.abort();
                any = true;
            }
        }
        any
    }

    /// One of the app's messages for stream `number`; `Ok(true)`: its queue is past
    /// [`HIGH_WATER`], `send()` waits for [`Note::Drained`]. An `Err` is the app's
    /// mistake, to raise (the stream is reset).
    pub fn apply(
        &mut self,
        number: u32,
        command: Command,
        now: Instant,
        notes: &mut Vec<(u32, Note)>,
    ) -> Result<bool, &'static str> {
        let Some(exchange) = self.streams.iter_mut().find(|e| e.number == number) else {
            return Ok(false);
        };
        if exchange.ended {
            return match command {
                Command::Start { .. } => Err("http.response.start after the response's end"),
                Command::Body { .. } => Err("http.response.body after the response's end"),
                _ => Ok(false),
            };
        }
        let outcome = match command {
            Command::Start { status, headers, .. } => {
                exchange.start(status, &headers).map(|_| false)
            }
            Command::Body { data, more, .. } => exchange.body(data, more, notes),
            Command::Pull(_) => {
                exchange.wanted = Some(now);
                Ok(false)
            }
            Command::Fail(_) => {
                exchange.fail(500, notes);
                Ok(false)
            }
            Command::TimedOut(_) => {
                exchange.fail(504, notes);
                Ok(false)
            }
            // WebSocket messages: no WebSocket runs over HTTP/2 here.
            _ => Ok(false),
        };
        if outcome.is_err() {
            exchange.fail(500, notes);
        }
        outcome
    }
}

impl Exchange {
    /// `http.response.start`: validated as on HTTP/1.1, queued as h2's response head.
    fn start(&mut self, status: u16, headers: &[(Bytes, Bytes)]) -> Result<(), &'static str> {
        if self.mode.is_some() {
            return Err("http.response.start sent twice");
        }
        if !(200..=999).contains(&status) {
            return Err("status must be 200 to 999 on HTTP/2");
        }
        let (text, length) = super::conn::app_headers(headers)?;
        let info = RequestInfo { minor: 1, head_request: self.head_request, keep_alive: false };
        self.mode = Some(response::plan(status, length, info).body);
        self.stream.queue(Some(response_head(status, &text, false)), Bytes::new(), false);
        if let Some(log) = &mut self.log {
            (log.status, log.headers) = (status, text);
        }
        Ok(())
    }

    /// `http.response.body`: what the head's framing allows of it queued; `true` when
    /// the queue is past [`HIGH_WATER`].
    fn body(
        &mut self,
        mut data: Bytes,
        more: bool,
        notes: &mut Vec<(u32, Note)>,
    ) -> Result<bool, &'static str> {
        let Some(mode) = &mut self.mode else {
            return Err("http.response.body before http.response.start");
        };
        if let Some(log) = &mut self.log {
            log.sent += data.len() as u64;
        }
        match mode {
            BodyMode::Empty => data = Bytes::new(),
            BodyMode::Length(left) => {
                data.truncate((*left).min(data.len() as u64) as usize);
                *left -= data.len() as u64;
            }
            BodyMode::Chunked | BodyMode::Close => {}
        }
        // A Content-Length the app did not fill: the stream is reset, not ended, so the
        // client cannot take the short body for the whole.
        let short = !more && matches!(mode, BodyMode::Length(left) if *left > 0);
        let queued = self.stream.queue(None, data, !more && !short);
        if short {
            self.stream.abort();
        }
        if !more {
            self.ended = true;
            if let Some(log) = self.log.take() {
                notes.push((self.number, Note::Finished(log)));
            }
        }
        self.throttled |= more && queued > HIGH_WATER;
        Ok(self.throttled)
    }

    /// The app failed (or `--request-timeout` passed): the error page if nothing was
    /// sent, else the stream is reset.
    fn fail(&mut self, status: u16, notes: &mut Vec<(u32, Note)>) {
        match self.mode {
            None => refuse(&self.stream, status),
            Some(_) => self.stream.abort(),
        }
        self.ended = true;
        if let Some(mut log) = self.log.take() {
            if self.mode.is_none() {
                (log.status, log.headers) = (status, Vec::new());
            }
            notes.push((self.number, Note::Finished(log)));
        }
    }
}

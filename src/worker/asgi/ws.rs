//! A connection of the `asgi` worker once the app accepted its WebSocket upgrade: the
//! `websocket` scope's frames (RFC 6455), in Rust, through the sans-io codec of
//! `ferricorn_http::websocket`. The app hears whole messages ([`Note::Message`]) and the
//! close ([`Note::Closed`]); pings are answered here and never reach it, and so are the
//! close handshake's replies (§5.5.1: an endpoint that receives a Close answers with one).
//!
//! A child of [`super`] (conn.rs): it moves the connection's own phase and buffers.
//! gunicorn 27's `WebSocketProtocol` (gunicorn/asgi/websocket.py) is the behaviour matched:
//! the codes, when the app hears what, the 403 for a close before accept.

use std::time::Instant;

use bytes::Bytes;

use super::{Conn, Note, Phase, Response, CLOSE_TIMEOUT, NEVER};
use crate::http::websocket::{self, Decoder, Message};
use crate::worker::transport::Transport;

/// RFC 6455 §7.4.1: the peer went away without a close frame (never sent on the wire).
pub const ABNORMAL: u16 = 1006;
/// §7.4.1: no status code was in the close frame (never sent on the wire).
const NO_STATUS: u16 = 1005;
/// §7.4.1: the endpoint is going away (a graceful stop of the worker).
pub const GOING_AWAY: u16 = 1001;
/// How long a failed WebSocket waits for the app to hear of it before its close frame
/// goes out anyway (the loop's sweep closes it; the app's late messages are lost).
pub const FAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Messages flow both ways.
    Open,
    /// Our close frame is queued; the client's answer is awaited (up to [`CLOSE_TIMEOUT`]).
    Sent,
    /// The client broke the protocol (the code to close with): nothing more is read,
    /// the app's replies to the messages before still go out, then the close frame.
    Failed(u16),
}

/// An accepted WebSocket.
#[derive(Debug)]
pub struct Session {
    /// The client's frames into messages, `--websocket-max-message-size` enforced.
    decoder: Decoder,
    /// The app has too many messages unread: stop reading the socket (backpressure).
    paused: bool,
    /// The close handshake.
    closing: Closing,
    /// The largest message, for the read-ahead bound (0: no limit).
    max_message: usize,
}

impl Session {
    /// How many received bytes the connection may hold while a frame is incomplete: a
    /// whole message and its frame headers, at least the HTTP read-ahead.
    pub fn read_limit(&self) -> usize {
        match self.max_message {
            0 => usize::MAX,
            max => max.saturating_add(64).max(super::READ_AHEAD),
        }
    }

    /// Whether the socket may be read.
    pub fn reading(&self) -> bool {
        !self.paused
    }
}

impl<T: Transport> Conn<T> {
    /// `websocket.accept`: the `101` head, then frames. `Err` is the app's mistake (no
    /// upgrade to accept, a header with CR or LF), to raise.
    pub fn ws_accept(
        &mut self,
        subprotocol: Option<&str>,
        headers: &[(Bytes, Bytes)],
        max_message: usize,
        now: Instant,
        notes: &mut Vec<Note>,
    ) -> Result<(), &'static str> {
        let Phase::Serving(ex) = &mut self.phase else { return Err("no request") };
        if ex.response != Response::NotStarted {
            return Err("websocket.accept after a response began");
        }
        let offer =
            ex.offer.take().ok_or("websocket.accept on a connection that is not a WebSocket")?;
        let text: Vec<(String, String)> =
            headers.iter().map(|(n, v)| (super::latin1(n), super::latin1(v))).collect();
        let pairs: Vec<(&str, &str)> = text.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut head = Vec::with_capacity(256);
        if let Err(e) = websocket::write_accept(&mut head, &offer, subprotocol, &pairs) {
            ex.offer = Some(offer);
            return Err(e);
        }
        if let Some(mut log) = ex.log.take() {
            (log.status, log.headers) = (101, text);
            notes.push(Note::Finished(log));
        }
        self.queue(&head);
        self.served += 1;
        self.phase = Phase::WebSocket(Box::new(Session {
            decoder: Decoder::new(max_message),
            paused: false,
            closing: Closing::Open,
            max_message,
        }));
        self.deadline = now + NEVER;
        self.flush(now, notes);
        Ok(())
    }

    /// `websocket.send`: one text or binary message. `Ok(true)`: the queue is past
    /// [`super::HIGH_WATER`], wait for [`Note::Drained`]. A hot path.
    pub fn ws_send(
        &mut self,
        data: &[u8],
        text: bool,
        now: Instant,
        notes: &mut Vec<Note>,
    ) -> Result<bool, &'static str> {
        let Phase::WebSocket(session) = &self.phase else {
            return Err("websocket.send before websocket.accept");
        };
        if session.closing == Closing::Sent {
            return Ok(false);
        }
        match text {
            // The bridge hands text over as the UTF-8 of a Python str.
            true => match std::str::from_utf8(data) {
                Ok(text) => websocket::encode_text(&mut self.out, text),
                Err(_) => return Err("websocket.send text is not UTF-8"),
            },
            false => websocket::encode_binary(&mut self.out, data),
        }
        self.flush(now, notes);
        let queued = self.out.len() - self.sent;
        self.throttled |= queued > super::HIGH_WATER;
        Ok(queued > super::HIGH_WATER)
    }

    /// `websocket.close` after accept, or a graceful stop's 1001: our close frame, then
    /// the client's answer is awaited for [`CLOSE_TIMEOUT`].
    pub fn ws_close(&mut self, code: u16, reason: &str, now: Instant, notes: &mut Vec<Note>) {
        let Phase::WebSocket(session) = &mut self.phase else { return };
        if let Closing::Failed(code) = session.closing {
            // The app has heard of the failure: the close frame, and no answer awaited
            // (the decoder is done with this client).
            websocket::encode_close(&mut self.out, Some(code), "");
            self.phase = Phase::Closing;
            self.deadline = now + CLOSE_TIMEOUT;
            return self.flush(now, notes);
        }
        if session.closing != Closing::Open {
            return;
        }
        session.closing = Closing::Sent;
        // Reading goes on whatever the app's backlog: the answer must be seen.
        session.paused = false;
        self.may_read = true;
        let code = if websocket::valid_close_code(code) { code } else { 1000 };
        websocket::encode_close(&mut self.out, Some(code), reason);
        self.deadline = now + CLOSE_TIMEOUT;
        self.flush(now, notes);
    }

    /// The app's side has too many messages unread (`paused`), or caught up.
    pub fn ws_flow(&mut self, paused: bool) {
        if let Phase::WebSocket(session) = &mut self.phase {
            if session.closing == Closing::Open {
                session.paused = paused;
                self.may_read |= !paused;
            }
        }
    }

    /// A graceful stop: an open WebSocket is closed with 1001, "going away".
    pub fn going_away(&mut self, now: Instant, notes: &mut Vec<Note>) {
        self.ws_close(GOING_AWAY, "", now, notes);
    }

    /// Decodes what arrived; `true` when the phase moved on (the socket closes). A hot
    /// path.
    pub(super) fn ws_read(&mut self, now: Instant, notes: &mut Vec<Note>) -> bool {
        loop {
            let Phase::WebSocket(session) = &mut self.phase else { return false };
            if session.paused {
                return false;
            }
            match session.decoder.decode(&mut self.rbuf) {
                Ok(None) => break,
                Ok(Some(Message::Text(text))) => notes.push(Note::Message(Message::Text(text))),
                Ok(Some(Message::Binary(data))) => {
                    notes.push(Note::Message(Message::Binary(data)));
                }
                // §5.5.2: a Pong with the Ping's payload, as soon as practical.
                Ok(Some(Message::Ping(data))) => {
                    if session.closing == Closing::Open {
                        websocket::encode_pong(&mut self.out, &data);
                    }
                }
                Ok(Some(Message::Pong(_))) => {}
                Ok(Some(Message::Close(close))) => {
                    let (code, reason) = match close {
                        Some(c) => (c.code, c.reason),
                        None => (NO_STATUS, String::new()),
                    };
                    // §5.5.1: the answer echoes the status code (none for none).
                    if session.closing == Closing::Open {
                        let echo = (code != NO_STATUS).then_some(code);
                        websocket::encode_close(&mut self.out, echo, "");
                    }
                    return self.ws_end(code, reason, now, notes);
                }
                Err(e) => {
                    let code = e.close_code();
                    tracing::debug!("WebSocket failed with {code}: {e:?}");
                    if session.closing == Closing::Sent {
                        return self.ws_end(code, String::new(), now, notes);
                    }
                    // §7.1.7: fail the connection, after what the app still says.
                    session.closing = Closing::Failed(code);
                    session.paused = true;
                    self.deadline = now + FAIL_TIMEOUT;
                    let reason = String::new();
                    notes.push(Note::Closed { code, reason, reply_due: true });
                    return false;
                }
            }
        }
        if self.peer_closed {
            return self.ws_end(ABNORMAL, String::new(), now, notes);
        }
        false
    }

    /// The WebSocket is over: the app hears `websocket.disconnect`, and the server
    /// closes the TCP connection once its last frame is out (§7.1.1: the server first).
    fn ws_end(&mut self, code: u16, reason: String, now: Instant, notes: &mut Vec<Note>) -> bool {
        notes.push(Note::Closed { code, reason, reply_due: false });
        self.phase = Phase::Closing;
        self.deadline = now + CLOSE_TIMEOUT;
        true
    }
}

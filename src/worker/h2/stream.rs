//! One HTTP/2 stream as the app's side sees it: the request body arriving, the response
//! leaving, and a reset. The loop owns h2's handles ([`super::conn`]); the app's side
//! (an app thread for WSGI) owns an `Arc<Stream>`. They meet here, under one lock held
//! for a queue operation at a time and never across a wait.
//!
//! Flow control is backpressure both ways (RFC 9113 §5.2): the loop hands the client's
//! window back only for body bytes the app has taken ([`Stream::take_released`]), and
//! the app's side waits while [`HIGH_WATER`] bytes of its response are still queued for
//! a window the client has not opened ([`Stream::send`]).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// Response bytes queued for the client's window before the app's side waits.
pub const HIGH_WATER: usize = 256 * 1024;
/// How long one wait lasts before the heartbeat is beaten and the wait goes on.
const BEAT: Duration = Duration::from_secs(1);

/// The stream was reset (by the client, or by the connection's end): nothing more of it
/// goes anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset;

impl From<Reset> for io::Error {
    fn from(_: Reset) -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, "the client reset the HTTP/2 stream")
    }
}

/// Tells the loop that a stream of connection `token` has something for it.
#[derive(Clone)]
pub struct Nudge {
    /// Connections with news, drained by the loop when `waker` fires.
    queue: Arc<Mutex<Vec<usize>>>,
    /// The loop's waker; `None` when the app's side runs on the loop's thread (the asgi
    /// worker), which drives the connection itself.
    waker: Option<Arc<mio::Waker>>,
}

impl Nudge {
    pub fn new(waker: Arc<mio::Waker>) -> Nudge {
        Nudge { queue: Arc::default(), waker: Some(waker) }
    }

    /// For an app's side on the loop's thread: nothing to wake.
    pub fn local() -> Nudge {
        Nudge { queue: Arc::default(), waker: None }
    }

    /// The connections nudged since the last call.
    pub fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn nudge(&self, token: usize) {
        let Some(waker) = &self.waker else { return };
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let first = queue.is_empty();
        if !queue.contains(&token) {
            queue.push(token);
        }
        drop(queue);
        if first {
            let _ = waker.wake();
        }
    }
}

/// The response head as the app's side gives it.
pub type Head = http::Response<()>;

/// What the two sides share.
#[derive(Default)]
struct State {
    /// Request body bytes received, not yet taken by the app.
    body: VecDeque<Bytes>,
    /// The request body ended (END_STREAM).
    body_end: bool,
    /// Body bytes the app took that the loop has not yet handed back as window.
    released: usize,
    /// Body bytes whose window the loop handed back before the app took them.
    prepaid: usize,
    /// The response head, until the loop sends it.
    head: Option<Head>,
    /// Response bytes queued for the client.
    out: VecDeque<Bytes>,
    /// Bytes in `out`.
    out_len: usize,
    /// The response is complete: END_STREAM after `out`.
    out_end: bool,
    /// The app's side failed mid-response: the stream is reset (INTERNAL_ERROR).
    aborted: bool,
    /// The client reset the stream, or the connection ended.
    reset: bool,
}

/// One stream's meeting point.
pub struct Stream {
    /// What the two sides share.
    state: Mutex<State>,
    /// The app's side waits here for body bytes, for room, or for a reset.
    changed: Condvar,
    /// The connection's token, for `nudge`.
    token: usize,
    /// How the app's side wakes the loop.
    nudge: Nudge,
}

impl Stream {
    pub fn new(token: usize, nudge: Nudge, body_end: bool) -> Arc<Stream> {
        let state = State { body_end, ..State::default() };
        Arc::new(Stream { state: Mutex::new(state), changed: Condvar::new(), token, nudge })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (the caller holds no GIL) until `ready` holds, beating the heartbeat every
    /// [`BEAT`]; `Err(Reset)` once the stream is reset, or `timeout` passed.
    fn wait_until(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&State) -> bool,
    ) -> Result<MutexGuard<'_, State>, Reset> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if state.reset {
                return Err(Reset);
            }
            if ready(&state) {
                return Ok(state);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Reset);
            }
            let wait = BEAT.min(deadline - now);
            state = self.changed.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0;
            super::super::beat_while_waiting();
        }
    }

    // The app's side.

    /// Queues the response head and `data`, `end` after it; waits first while the queue
    /// is over [`HIGH_WATER`] (up to `timeout`: a client that never opens its window).
    pub fn send(
        &self,
        head: Option<Head>,
        data: Vec<Bytes>,
        end: bool,
        timeout: Duration,
    ) -> Result<(), Reset> {
        let mut state = self.wait_until(timeout, |s| s.out_len < HIGH_WATER)?;
        enqueue(&mut state, head, data, end);
        drop(state);
        self.nudge.nudge(self.token);
        Ok(())
    }

    /// [`Stream::send`] without the wait, for an app's side on the loop's thread (which
    /// waits for the queue itself): the bytes queued after these.
    pub fn queue(&self, head: Option<Head>, data: Bytes, end: bool) -> usize {
        let mut state = self.lock();
        enqueue(&mut state, head, [data], end);
        state.out_len
    }

    /// The app's side cannot finish its response: the stream is reset.
    pub fn abort(&self) {
        self.lock().aborted = true;
        self.nudge.nudge(self.token);
    }

    /// Whether the stream was reset.
    pub fn is_reset(&self) -> bool {
        self.lock().reset
    }

    /// Appends what arrived of the body to `buf`, waiting (up to `timeout`) for some;
    /// `Ok(0)` at its end. A reset is `ConnectionReset`, a timeout `TimedOut`.
    pub fn read_body(&self, buf: &mut BytesMut, timeout: Duration) -> io::Result<usize> {
        let mut state =
            self.wait_until(timeout, |s| !s.body.is_empty() || s.body_end).map_err(|reset| {
                match self.is_reset() {
                    true => io::Error::from(reset),
                    false => io::Error::new(io::ErrorKind::TimedOut, "the request body stalled"),
                }
            })?;
        let n = take_body(&mut state, buf);
        drop(state);
        if n > 0 {
            self.nudge.nudge(self.token);
        }
        Ok(n)
    }

    /// [`Stream::read_body`] without the wait: what arrived, and whether the body goes
    /// on; `None` while nothing did and it goes on (or once the stream is reset).
    pub fn try_body(&self) -> Option<(Bytes, bool)> {
        let mut state = self.lock();
        if state.reset || (state.body.is_empty() && !state.body_end) {
            return None;
        }
        let mut buf = BytesMut::new();
        take_body(&mut state, &mut buf);
        Some((buf.freeze(), !state.body_end))
    }

    // The loop's side.

    /// Request body bytes from the client.
    pub fn push_body(&self, data: Bytes) {
        self.lock().body.push_back(data);
        self.changed.notify_all();
    }

    /// Body bytes whose window was handed back on arrival (before the app ran).
    pub fn prepaid(&self, n: usize) {
        self.lock().prepaid += n;
    }

    /// The request body ended.
    pub fn end_body(&self) {
        self.lock().body_end = true;
        self.changed.notify_all();
    }

    /// Body bytes the app took since the last call: window to hand back.
    pub fn take_released(&self) -> usize {
        std::mem::take(&mut self.lock().released)
    }

    /// The stream was reset, or the connection ended: the app's side stops.
    pub fn reset(&self) {
        self.lock().reset = true;
        self.changed.notify_all();
    }

    /// The head, once given.
    pub fn take_head(&self) -> Option<Head> {
        self.lock().head.take()
    }

    /// Up to `max` bytes of the response, split off its queue, and whether they are its
    /// last. Wakes the app's side when the queue drops under [`HIGH_WATER`].
    pub fn take_out(&self, max: usize) -> (Option<Bytes>, bool) {
        let mut state = self.lock();
        let was_full = state.out_len >= HIGH_WATER;
        let chunk = match state.out.front_mut() {
            Some(front) if front.len() > max => Some(front.split_to(max)),
            Some(_) => state.out.pop_front(),
            None => None,
        };
        state.out_len -= chunk.as_ref().map_or(0, Bytes::len);
        let last = state.out_end && state.out.is_empty();
        let wake = was_full && state.out_len < HIGH_WATER;
        drop(state);
        if wake {
            self.changed.notify_all();
        }
        (chunk, last)
    }

    /// Response bytes queued, and whether the response is complete after them.
    pub fn queued(&self) -> (usize, bool) {
        let state = self.lock();
        (state.out_len, state.out_end)
    }

    /// Whether the app's side gave up on the response.
    pub fn aborted(&self) -> bool {
        self.lock().aborted
    }
}

/// Queues the response head and `data`, `end` after it.
fn enqueue(
    state: &mut State,
    head: Option<Head>,
    data: impl IntoIterator<Item = Bytes>,
    end: bool,
) {
    if let Some(head) = head {
        state.head = Some(head);
    }
    for chunk in data.into_iter().filter(|c| !c.is_empty()) {
        state.out_len += chunk.len();
        state.out.push_back(chunk);
    }
    state.out_end |= end;
}

/// Moves the body bytes received into `buf`, counting their window as released unless
/// it was handed back on arrival; how many.
fn take_body(state: &mut State, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(chunk) = state.body.pop_front() {
        n += chunk.len();
        buf.extend_from_slice(&chunk);
    }
    let paid = n.min(state.prepaid);
    state.prepaid -= paid;
    state.released += n - paid;
    n
}

/// `wsgi.input`'s source on HTTP/2: the stream's DATA frames, framed as chunks so the
/// body decoder (and `--limit-request-body`) treat them as any streamed body.
pub struct BodySource {
    /// The stream the bytes arrive on.
    stream: Arc<Stream>,
    /// `--read-timeout`: how long the client may stay silent mid-body.
    timeout: Duration,
    /// The last chunk went out.
    ended: bool,
    /// Where the stream's bytes land before they are framed.
    scratch: BytesMut,
}

impl BodySource {
    pub fn new(stream: Arc<Stream>, timeout: Duration) -> BodySource {
        BodySource { stream, timeout, ended: false, scratch: BytesMut::new() }
    }
}

impl crate::wsgi::BodySource for BodySource {
    fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let stream = Arc::clone(&self.stream);
        let timeout = self.timeout;
        let scratch = &mut self.scratch;
        let n = stream.read_body(scratch, timeout)?;
        let before = buf.len();
        if n == 0 {
            self.ended = true;
            buf.extend_from_slice(b"0\r\n\r\n");
        } else {
            buf.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            buf.extend_from_slice(&scratch.split());
            buf.extend_from_slice(b"\r\n");
        }
        Ok(buf.len() - before)
    }

    fn send_continue(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Arc<Stream> {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        Stream::new(7, Nudge::new(waker), false)
    }

    #[test]
    fn response_bytes_leave_in_pieces_no_larger_than_the_window() {
        let s = stream();
        let data = vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
        s.send(None, data, true, BEAT).unwrap();
        let mut got = Vec::new();
        loop {
            let (chunk, last) = s.take_out(4);
            got.push(chunk.clone().unwrap_or_default());
            if last {
                break;
            }
        }
        assert_eq!(got, [&b"hell"[..], b"o ", b"worl", b"d"]);
        assert_eq!(s.queued(), (0, true));
    }

    #[test]
    fn the_app_waits_for_room_and_a_reset_ends_the_wait() {
        let s = stream();
        s.send(None, vec![Bytes::from(vec![0; HIGH_WATER])], false, BEAT).unwrap();
        let s2 = Arc::clone(&s);
        let waiter = std::thread::spawn(move || s2.send(None, vec![], false, BEAT * 30));
        s.reset();
        assert_eq!(waiter.join().unwrap(), Err(Reset));
    }

    #[test]
    fn the_calls_for_an_app_on_the_loop_thread_never_wait() {
        let s = Stream::new(7, Nudge::local(), false);
        assert_eq!(s.try_body(), None);
        s.push_body(Bytes::from_static(b"ab"));
        assert_eq!(s.try_body(), Some((Bytes::from_static(b"ab"), true)));
        assert_eq!(s.take_released(), 2);
        s.end_body();
        assert_eq!(s.try_body(), Some((Bytes::new(), false)));
        // Past the high-water mark: queued at once, the length said (the caller waits).
        let big = Bytes::from(vec![0; 2 * HIGH_WATER]);
        assert_eq!(s.queue(None, big, true), 2 * HIGH_WATER);
        assert_eq!(s.queued(), (2 * HIGH_WATER, true));
        s.reset();
        assert_eq!(s.try_body(), None);
    }

    #[test]
    fn body_bytes_taken_by_the_app_are_released_as_window() {
        let s = stream();
        s.push_body(Bytes::from_static(b"abc"));
        s.push_body(Bytes::from_static(b"de"));
        let mut source = BodySource::new(Arc::clone(&s), BEAT);
        let mut buf = BytesMut::new();
        use crate::wsgi::BodySource as _;
        source.fill(&mut buf).unwrap();
        assert_eq!(&buf[..], b"5\r\nabcde\r\n");
        assert_eq!(s.take_released(), 5);
        s.end_body();
        source.fill(&mut buf).unwrap();
        assert!(buf.ends_with(b"0\r\n\r\n"));
        assert_eq!(source.fill(&mut buf).unwrap(), 0);
    }
}

//! The `sync` worker, gunicorn's semantics: one connection at a time, one request per
//! connection, `Connection: close`. Socket I/O lives here, never in `http` or `wsgi`;
//! every wait happens with the GIL released, is bounded by `--read-timeout`, and beats the
//! heartbeat (a worker waiting on a slow client is not stuck). A graceful stop serves the
//! connections already in the listen backlog.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pyo3::prelude::*;
use socket2::Socket;

use super::front::{parse_request, Front};
use super::io::{
    accept_queue_len, close_write, linger_close, read_waiting, send_file_waiting,
    write_all_waiting, TransportSource, TransportStream, READ_SIZE,
};
use super::preamble::{self, Outcome, Preamble};
use super::request::{self, Call, Started};
use super::tls::TlsTransport;
use super::transport::Transport;
use super::{Stop, WorkerContext};
use crate::exit;
use crate::forwarded::Verdict;
use crate::http::response::RequestInfo;
use crate::http::{self, BodyDecoder, Head};
use crate::listener::{Listener, Peer};
use crate::wsgi::{self, spool, Connection, Globals, Input, Step, Wire};

/// How often an idle worker checks that its master is still alive (gunicorn: 1 s).
const TICK: Duration = Duration::from_secs(1);
/// A response buffer grown past this (a big body in one piece) is not kept for the next.
const KEEP_OUT: usize = 256 * 1024;

pub fn serve(py: Python<'_>, ctx: &WorkerContext<'_>, app: &Bound<'_, PyAny>, stop: &Stop) -> i32 {
    let globals =
        match Globals::new(py, ctx.config.multiprocess(), false, ctx.config.forwarded.clone())
            .and_then(|g| g.over_tls(py, ctx.config.tls.is_some()))
        {
            Ok(globals) => globals,
            Err(err) => {
                tracing::error!("Worker failed to boot: {err}");
                return exit::WORKER_BOOT_ERROR;
            }
        };
    let servers: Vec<(String, String)> =
        ctx.listeners.iter().map(Listener::server_name_port).collect();
    let serving = Serving {
        app,
        globals: &globals,
        limits: &ctx.config.limits,
        protocol: &ctx.config.protocol,
        timeout: ctx.config.read_timeout,
        body_limit: ctx.config.limit_request_body,
        proxy: &ctx.config.proxy_protocol,
        tls: ctx.config.tls.is_some(),
    };
    let buffers = std::cell::RefCell::new(Buffers::new());
    let recycler = stop.recycler();
    let serve_one = |i: usize, sock: Socket, peer: Peer| {
        // A panic fails this connection only (the hook logged it); the socket was
        // dropped, so closed, on the way out.
        let handled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut buffers = buffers.borrow_mut();
            let Some((peer, early)) = opening(py, &serving, &mut buffers.scratch, &sock, peer)
            else {
                return false;
            };
            let server = &servers[i];
            match &ctx.config.tls {
                None => handle(py, &serving, &mut buffers, sock, &peer, early, server),
                Some(tls) => {
                    // What followed a PROXY header is the start of the TLS handshake.
                    let tls = TlsTransport::accept(sock, tls, &early);
                    handle(py, &serving, &mut buffers, tls, &peer, BytesMut::new(), server)
                }
            }
        }));
        if handled.unwrap_or(true) {
            recycler.count_request();
        }
        crate::wsgi::access::flush();
    };
    if let Some(code) = accept_until_stopped(py, ctx, stop, &serve_one) {
        return code;
    }
    // A worker recycled by --max-requests leaves the backlog to the others.
    let drained = stop.terminated().then(|| drain_backlog(py, ctx, stop, &serve_one)).flatten();
    drained.unwrap_or_else(|| stop.between_requests(py).unwrap_or(exit::OK))
}

/// Waits for a connection on any listener and serves it, one at a time, until a stop is
/// asked for. `Some`: the exit code, when the worker must leave at once (aborted, or its
/// master gone).
fn accept_until_stopped(
    py: Python<'_>,
    ctx: &WorkerContext<'_>,
    stop: &Stop,
    serve_one: &dyn Fn(usize, Socket, Peer),
) -> Option<i32> {
    let parent = std::os::unix::process::parent_id();
    let mut fds: Vec<libc::pollfd> = ctx
        .listeners
        .iter()
        .map(|l| l.fd())
        .chain([stop.fd()])
        .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();
    let signals = fds.len() - 1;
    let mut next_tick = Instant::now();
    while !stop.requested() {
        if let Some(code) = stop.between_requests(py) {
            return Some(code);
        }
        py.detach(|| wait(&mut fds));
        // Neither check costs a syscall per request: the signal pipe is read when poll
        // says it holds something, the parent looked at once a TICK (gunicorn: 1 s).
        if fds[signals].revents != 0 {
            stop.drain();
        }
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            if std::os::unix::process::parent_id() != parent {
                tracing::info!("Parent changed, shutting down");
                return Some(stop.between_requests(py).unwrap_or(exit::OK));
            }
        }
        for (i, listener) in ctx.listeners.iter().enumerate() {
            if fds[i].revents == 0 || stop.requested() {
                continue;
            }
            match listener.accept() {
                Ok((sock, peer)) => {
                    serve_one(i, sock, peer);
                    break;
                }
                Err(e) if is_transient(&e) => {}
                Err(e) => tracing::error!("accept failed: {e}"),
            }
        }
    }
    None
}

/// TERM serves the connections the kernel already accepted for this worker,
/// as many as were queued when the stop began, within `--graceful-timeout`: the master
/// has closed its copy of the sockets, so closing ours would reset them. `Some`: the exit
/// code, when the worker must leave at once.
fn drain_backlog(
    py: Python<'_>,
    ctx: &WorkerContext<'_>,
    stop: &Stop,
    serve_one: &dyn Fn(usize, Socket, Peer),
) -> Option<i32> {
    let deadline = Instant::now() + ctx.config.graceful_timeout;
    // Unix sockets do not say how many wait: those are served until none is left.
    let queued: Vec<usize> =
        ctx.listeners.iter().map(|l| accept_queue_len(l.fd()).unwrap_or(usize::MAX)).collect();
    for (i, (listener, mut left)) in ctx.listeners.iter().zip(queued).enumerate() {
        while left > 0 && Instant::now() < deadline {
            match listener.accept() {
                Ok((sock, peer)) => {
                    left -= 1;
                    serve_one(i, sock, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    tracing::error!("accept failed: {e}");
                    break;
                }
            }
            if let Some(code) = stop.between_requests(py) {
                return Some(code);
            }
        }
    }
    None
}

fn wait(fds: &mut [libc::pollfd]) {
    for fd in fds.iter_mut() {
        fd.revents = 0;
    }
    // SAFETY: a valid slice of pollfd; EINTR just returns early.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, TICK.as_millis() as i32) };
}

/// Another worker took the connection, or the client gave up before we accepted it.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    )
}

/// An accepted connection, non-blocking, so that every wait on it is bounded by
/// `--read-timeout` and keeps the heartbeat going (a slow client is not a stuck worker).
struct Client<'a, T: Transport> {
    /// Shared with `write()`'s stream and `wsgi.input`'s source, which hold it weakly.
    transport: &'a Arc<T>,
    /// `--read-timeout`.
    timeout: Duration,
}

impl<T: Transport> Client<'_, T> {
    fn write_all(&self, data: &[u8]) -> io::Result<()> {
        write_all_waiting(&**self.transport, data, self.timeout)
    }
}

/// What one connection borrows from the worker, kept from one connection to the next so
/// that none costs an allocation.
pub(super) struct Buffers {
    /// Where a read lands before it joins the request's bytes.
    scratch: Box<[u8]>,
    /// The response bytes of one step, written out before the next.
    out: Vec<u8>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            out: Vec::with_capacity(16 * 1024),
        }
    }
}

/// What the worker serves every connection with.
struct Serving<'a, 'py> {
    /// The WSGI callable.
    app: &'a Bound<'py, PyAny>,
    /// The environ's constant parts, and whose forwarding headers are trusted.
    globals: &'a Globals,
    /// `--limit-request-line` and friends.
    limits: &'a http::Limits,
    /// `--protocol`: HTTP heads or uwsgi packets.
    protocol: &'a crate::config::Protocol,
    /// `--read-timeout`.
    timeout: Duration,
    /// `--limit-request-body` (0: none).
    body_limit: u64,
    /// `--proxy-protocol` and `--proxy-allow-from`.
    proxy: &'a preamble::Settings,
    /// `--certfile`: connections are TLS, after any PROXY header.
    tls: bool,
}

/// What comes before HTTP on the raw socket: with `--proxy-protocol`, the PROXY header,
/// waited for within `--read-timeout` in all. The connection's peer and the bytes after
/// the header; `None` when it was refused (its error page sent) or dropped.
fn opening(
    py: Python<'_>,
    serving: &Serving<'_, '_>,
    scratch: &mut [u8],
    sock: &Socket,
    peer: Peer,
) -> Option<(Peer, BytesMut)> {
    let Some(mode) = serving.proxy.mode else { return Some((peer, BytesMut::new())) };
    let preamble = Preamble::new(mode, &serving.proxy.allow, peer);
    let (timeout, tls) = (serving.timeout, serving.tls);
    py.detach(|| match preamble::read_blocking(sock, preamble, scratch, timeout) {
        Outcome::Ready { peer, leftover } => Some((peer, leftover)),
        // A TLS client would not read a plaintext page: it is just closed.
        Outcome::Refuse { .. } if tls => None,
        Outcome::Refuse { status, .. } => {
            let page = wsgi::exchange::error_page(status);
            let _ = write_all_waiting(sock, &page, timeout);
            linger_close(sock);
            None
        }
        Outcome::NeedMore | Outcome::Drop => None,
    })
}

/// One connection: read a head, run the app, write the response, close. `early`: bytes
/// already received (after a PROXY header), the start of the request. Returns whether a
/// request reached the app (what `--max-requests` counts, as gunicorn does).
fn handle<T: Transport>(
    py: Python<'_>,
    serving: &Serving<'_, '_>,
    buffers: &mut Buffers,
    transport: T,
    peer: &Peer,
    early: BytesMut,
    server: &(String, String),
) -> bool {
    // The queue start of its request (`--max-queue-time`, the environ's queue start).
    let accepted = Instant::now();
    let _open = crate::metrics::Held::connection();
    let transport = Arc::new(transport);
    let client = Client { transport: &transport, timeout: serving.timeout };
    let mut buf = early;
    buf.reserve(8192);
    let scratch = &mut buffers.scratch;
    let front = Front {
        protocol: serving.protocol,
        limits: serving.limits,
        forwarded: &serving.globals.forwarded,
    };
    let judged = py.detach(|| read_head(&client, &mut buf, scratch, &front, peer)).and_then(|r| {
        let Some((head, forwarded)) = r else { return Ok(None) };
        spool::check_length(&head, serving.body_limit)?;
        Ok(Some((head, forwarded)))
    });
    let (head, forwarded) = match judged {
        Ok(Some(judged)) => judged,
        Ok(None) => return false,
        Err(error) => {
            tracing::debug!("Invalid request from {}: {error}", peer.addr);
            let page = wsgi::exchange::error_page(error.status());
            py.detach(|| {
                let _ = client.write_all(&page);
                linger_close(&*transport);
            });
            return false;
        }
    };
    if let Some(pulse) = super::pulse() {
        pulse.enter(head.method(), head.target());
    }
    let client_cert = transport.client_certificate();
    let conn =
        Connection { peer, server, forwarded: &forwarded, queued_since: accepted, client_cert };
    super::deadline::enter(0, head.method(), head.target());
    let ending = run_app(py, serving, &client, &mut buffers.out, head, buf, &conn);
    super::deadline::leave(py);
    let timeout = serving.timeout;
    py.detach(|| match ending {
        Ending::Complete => close_write(&*transport, timeout),
        // gunicorn's close_graceful, after an app that wrote nothing of its own.
        Ending::Unread | Ending::TakenOver { offered: false } => linger_close(&*transport),
        // The app's socket is the connection now: only our descriptor closes (below).
        Ending::TakenOver { offered: true } => {}
    });
    true
}

/// Reads until a whole head (an HTTP head or a uwsgi packet, as `--protocol` says) is
/// parsed. `Ok(None)`: the client left (or stayed silent for `--read-timeout`) before
/// sending a byte.
fn read_head<T: Transport>(
    client: &Client<'_, T>,
    buf: &mut BytesMut,
    scratch: &mut [u8],
    front: &Front<'_>,
    peer: &Peer,
) -> Result<Option<(Head, Verdict)>, http::Error> {
    loop {
        if let Some(parsed) = parse_request(buf, front, peer)? {
            return Ok(Some(parsed));
        }
        match read_waiting(&**client.transport, buf, scratch, client.timeout) {
            Ok(0) | Err(_) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(http::Error::BadRequestLine("incomplete request head")),
            Ok(_) => {}
        }
    }
}

/// How a connection ends after its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The body was read whole: half-close.
    Complete,
    /// Part of the body is unread: half-close, then drain (RFC 9112 §9.6).
    Unread,
    /// The app took the connection over (`StopIteration`, gunicorn's contract); `offered`:
    /// it had the socket, which is then its own to close.
    TakenOver {
        /// The app got `gunicorn.socket`.
        offered: bool,
    },
}

/// The socket for the app when the request asks for a WebSocket upgrade: a duplicate of
/// the descriptor, with `rest` (what followed the head) as its first bytes.
fn offer_socket<T: Transport>(
    transport: &T,
    head: &Head,
    rest: &mut BytesMut,
) -> Option<super::handoff::Handoff> {
    if !super::handoff::wanted(head) {
        return None;
    }
    let Some(fd) = transport.plaintext_fd() else {
        super::handoff::not_offered("the connection is TLS (--certfile)");
        return None;
    };
    super::handoff::Handoff::offer(fd, rest.split())
}

/// Starts the request (as the async worker does, through [`request::start`]: a request
/// that cannot start gets a 500) and writes the response. Returns how the connection
/// ends: whether the body was read whole (if not, the socket is drained before close),
/// or the app took it over.
fn run_app<T: Transport>(
    py: Python<'_>,
    serving: &Serving<'_, '_>,
    client: &Client<'_, T>,
    out: &mut Vec<u8>,
    head: Head,
    mut rest: BytesMut,
    conn: &Connection<'_>,
) -> Ending {
    let socket = offer_socket(&**client.transport, &head, &mut rest);
    let offered = socket.is_some();
    let source = TransportSource::new(Arc::downgrade(client.transport), client.timeout);
    let decoder = BodyDecoder::new(head.framing);
    let input = Input::new(decoder, rest, Box::new(source), head.expect_continue)
        .with_limit(serving.body_limit);
    let req = RequestInfo {
        minor: head.response_minor(),
        head_request: head.is_head_request(),
        keep_alive: false,
    };
    let stream = TransportStream::new(Arc::downgrade(client.transport), client.timeout);
    let wire = Wire { req, stopping: None, stream: Some(Box::new(stream)), queued: false };
    out.clear();
    let call = Call { app: serving.app, globals: serving.globals, head: &head, conn, socket };
    let Some(Started { mut exchange, input }) = request::start(py, call, input, wire, out) else {
        let _ = py.detach(|| client.write_all(out));
        return Ending::Unread;
    };
    let mut step = Step::Send;
    while matches!(step, Step::Send | Step::SendFile(_)) {
        out.clear();
        step = exchange.next(py, out);
        let sent = py.detach(|| {
            client.write_all(out)?;
            match step {
                Step::SendFile(mut span) => {
                    send_file_waiting(&**client.transport, &mut span, client.timeout)
                }
                _ => Ok(()),
            }
        });
        if let Err(e) = sent {
            tracing::debug!("Client went away: {e}");
            break;
        }
    }
    if let Err(err) = exchange.close(py) {
        wsgi::exchange::log_app_error(py, &conn.peer.addr, &err);
    }
    if out.capacity() > KEEP_OUT {
        *out = Vec::with_capacity(16 * 1024);
    }
    match (step, input.get().complete()) {
        (Step::Handled, _) => Ending::TakenOver { offered },
        (_, true) => Ending::Complete,
        (_, false) => Ending::Unread,
    }
}

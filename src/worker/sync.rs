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

use super::io::{
    accept_queue_len, linger_close, read_waiting, send_file_waiting, write_all_waiting,
    SocketSource, SocketStream, READ_SIZE,
};
use super::{Stop, WorkerContext};
use crate::exit;
use crate::http::response::RequestInfo;
use crate::http::{self, BodyDecoder, Head};
use crate::listener::{Listener, Peer};
use crate::wsgi::{self, spool, Connection, Exchange, Globals, Input, Step, Wire};

/// How often an idle worker checks that its master is still alive (gunicorn: 1 s).
const TICK: Duration = Duration::from_secs(1);

pub fn serve(py: Python<'_>, ctx: &WorkerContext<'_>, app: &Bound<'_, PyAny>, stop: &Stop) -> i32 {
    let globals =
        match Globals::new(py, ctx.config.multiprocess(), false, ctx.config.forwarded.clone()) {
            Ok(globals) => globals,
            Err(err) => {
                tracing::error!("Worker failed to boot: {err}");
                return exit::WORKER_BOOT_ERROR;
            }
        };
    let servers: Vec<(String, String)> =
        ctx.listeners.iter().map(Listener::server_name_port).collect();
    let parent = std::os::unix::process::parent_id();
    let mut fds: Vec<libc::pollfd> = ctx
        .listeners
        .iter()
        .map(|l| l.fd())
        .chain([stop.fd()])
        .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();
    let serve_one = |i: usize, sock: Socket, peer: Peer| {
        // A panic fails this connection only (the hook logged it); the socket was
        // dropped, so closed, on the way out.
        let handled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            handle(py, ctx, app, &globals, sock, &peer, &servers[i])
        }));
        if handled.unwrap_or(true) {
            stop.recycler().count_request();
        }
        crate::wsgi::access::flush();
    };
    while !stop.requested() {
        if let Some(code) = stop.between_requests(py) {
            return code;
        }
        py.detach(|| wait(&mut fds));
        stop.drain();
        if std::os::unix::process::parent_id() != parent {
            tracing::info!("Parent changed, shutting down");
            return stop.between_requests(py).unwrap_or(exit::OK);
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
    // A worker recycled by --max-requests leaves the backlog to the others.
    let drained = stop.terminated().then(|| drain_backlog(py, ctx, stop, &serve_one)).flatten();
    drained.unwrap_or_else(|| stop.between_requests(py).unwrap_or(exit::OK))
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
#[derive(Clone, Copy)]
struct Client<'a> {
    /// Shared with `write()`'s stream, which holds it weakly.
    sock: &'a Arc<Socket>,
    timeout: Duration,
}

impl Client<'_> {
    fn write_all(&self, data: &[u8]) -> io::Result<()> {
        write_all_waiting(self.sock, data, self.timeout)
    }
}

/// One connection: read a head, run the app, write the response, close. Returns whether
/// a request reached the app (what `--max-requests` counts, as gunicorn does).
fn handle(
    py: Python<'_>,
    ctx: &WorkerContext<'_>,
    app: &Bound<'_, PyAny>,
    globals: &Globals,
    sock: Socket,
    peer: &Peer,
    server: &(String, String),
) -> bool {
    let sock = Arc::new(sock);
    let client = Client { sock: &sock, timeout: ctx.config.read_timeout };
    let mut buf = BytesMut::with_capacity(8192);
    let judged = py.detach(|| read_head(client, &mut buf, &ctx.config.limits)).and_then(|head| {
        let Some(head) = head else { return Ok(None) };
        let forwarded = globals.forwarded.judge(&head, peer.ip())?;
        spool::check_length(&head, ctx.config.limit_request_body)?;
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
                linger_close(&sock);
            });
            return false;
        }
    };
    if let Some(pulse) = super::pulse() {
        pulse.enter(head.method(), head.target());
    }
    let conn = Connection { peer, server, forwarded: &forwarded };
    let limit = ctx.config.limit_request_body;
    let complete = match run_app(py, app, globals, client, (head, buf, limit), &conn) {
        Ok(complete) => complete,
        Err(err) => {
            tracing::error!("Error handling request: {err}");
            false
        }
    };
    py.detach(|| match complete {
        true => drop(sock.shutdown(std::net::Shutdown::Write)),
        false => linger_close(&sock),
    });
    true
}

/// Reads until a whole head is parsed. `Ok(None)`: the client left (or stayed silent for
/// `--read-timeout`) before sending a byte.
fn read_head(
    client: Client<'_>,
    buf: &mut BytesMut,
    limits: &http::Limits,
) -> Result<Option<Head>, http::Error> {
    loop {
        if let Some(head) = http::parse_head(buf, limits)? {
            return Ok(Some(head));
        }
        match read_waiting(client.sock, buf, &mut [0; READ_SIZE], client.timeout) {
            Ok(0) | Err(_) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(http::Error::BadRequestLine("incomplete request head")),
            Ok(_) => {}
        }
    }
}

/// Calls the app and writes its response. Returns whether the request body was read
/// whole (if not, the socket is drained before close).
fn run_app(
    py: Python<'_>,
    app: &Bound<'_, PyAny>,
    globals: &Globals,
    client: Client<'_>,
    (head, rest, limit): (Head, BytesMut, u64),
    conn: &Connection<'_>,
) -> PyResult<bool> {
    let source = SocketSource::new(client.sock.try_clone()?, client.timeout);
    let decoder = BodyDecoder::new(head.framing);
    let input = Input::new(decoder, rest, Box::new(source), head.expect_continue);
    let input = Py::new(py, input.with_limit(limit))?;
    let environ = wsgi::environ::build(py, &head, conn, globals, input.clone_ref(py))?;
    let req =
        RequestInfo { minor: head.minor, head_request: head.is_head_request(), keep_alive: false };
    let stream = SocketStream::new(Arc::downgrade(client.sock), client.timeout);
    let wire = Wire { req, stopping: None, stream: Some(Box::new(stream)), queued: false };
    let mut exchange =
        Exchange::call(py, app, environ.into_any(), input.clone_ref(py), wire, &head)?;
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        out.clear();
        let step = exchange.next(py, &mut out);
        let sent = py.detach(|| {
            client.write_all(&out)?;
            match step {
                Step::SendFile(mut span) => {
                    send_file_waiting(client.sock, &mut span, client.timeout)
                }
                _ => Ok(()),
            }
        });
        if let Err(e) = sent {
            tracing::debug!("Client went away: {e}");
            break;
        }
        if !matches!(step, Step::Send | Step::SendFile(_)) {
            break;
        }
    }
    if let Err(err) = exchange.close(py) {
        wsgi::exchange::log_app_error(py, &conn.peer.addr, &err);
    }
    let complete = input.get().complete();
    Ok(complete)
}

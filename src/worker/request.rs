//! Starting a request, the one way both workers do it: the environ, the app's call, and
//! the answer when that fails.
//!
//! Once the app is called, its errors are the [`Exchange`]'s to answer (a 500 before the
//! head, a cut-off body after it). What can fail before that (the environ, the objects the
//! app is handed) is answered here: logged as gunicorn's `handle_error` logs it ("Error
//! handling request GET /path" and the traceback) and a 500 page queued for the client,
//! for the sync worker as for the async one.

use pyo3::prelude::*;

use super::handoff::{self, Handoff};
use crate::http::Head;
use crate::wsgi::{self, Connection, Exchange, Globals, Input, Sink, Wire};

/// A request the app was called for: its response is pulled from `exchange`.
pub struct Started {
    /// The app's response, pulled piece by piece.
    pub exchange: Exchange,
    /// `wsgi.input`, kept to ask after the response whether the body was read whole.
    pub input: Py<Input>,
}

/// What a worker hands over to start one request.
pub struct Call<'a, 'py> {
    /// The WSGI callable.
    pub app: &'a Bound<'py, PyAny>,
    /// The environ's constant parts.
    pub globals: &'a Globals,
    /// The parsed request head.
    pub head: &'a Head,
    /// Who the request came from and where it arrived.
    pub conn: &'a Connection<'a>,
    /// The connection's socket for the app (`gunicorn.socket`), when the request asks
    /// for a WebSocket upgrade ([`super::handoff`]).
    pub socket: Option<Handoff>,
}

/// Builds the environ and calls the app. `None`: the request could not start; the error
/// was logged and a 500 page is in `out`, or it waited past `--max-queue-time` and a 503
/// page is there (the connection then closes).
pub fn start(
    py: Python<'_>,
    call: Call<'_, '_>,
    input: Input,
    mut wire: Wire,
    out: &mut impl Sink,
) -> Option<Started> {
    let waited = call.conn.queued_since.elapsed();
    let too_late = crate::metrics::queued(waited);
    let mut socket = call.socket;
    // A connection the app had its hands on is never reused.
    wire.req.keep_alive &= socket.is_none();
    let started = Py::new(py, input).and_then(|input| {
        let environ =
            wsgi::environ::build(py, call.head, call.conn, call.globals, input.clone_ref(py))?;
        if too_late {
            refuse_queued(call.head, &environ, waited, out);
            return Ok(None);
        }
        let own = socket.as_ref().map(Handoff::own_fd);
        if let Some(socket) = socket.take() {
            socket.into_environ(py, &environ)?;
            // A WebSocket lives as long as it likes: the request leaves the watchdog's
            // and the master's view of busy threads (`--request-timeout`, `--timeout`).
            super::deadline::leave(py);
        }
        let exchange =
            Exchange::call(py, call.app, environ.into_any(), input.clone_ref(py), wire, call.head)?;
        if let Some(own) = own.filter(|_| !exchange.handled()) {
            handoff::restore(own);
        }
        Ok(Some(Started { exchange, input }))
    });
    match started {
        Ok(started) => started,
        Err(err) => {
            fail_to_start(py, call.head, &err, out);
            None
        }
    }
}

/// `--max-queue-time`: the request waited too long to be worth running. A 503 page (with
/// `Connection: close`) instead of the app, and its access log line.
fn refuse_queued(
    head: &Head,
    environ: &Bound<'_, pyo3::types::PyDict>,
    waited: std::time::Duration,
    out: &mut impl Sink,
) {
    tracing::warn!(
        "{} {} waited {} ms, over --max-queue-time: answered 503",
        head.method(),
        head.target(),
        waited.as_millis()
    );
    out.error_page(503);
    wsgi::access::write(&wsgi::access::Record {
        environ,
        status: "503 Service Unavailable",
        headers: &[],
        request_headers: &wsgi::access::capture(head),
        sent: 0,
        elapsed: std::time::Duration::ZERO,
    });
}

/// The answer to a request that could not reach the app: gunicorn's log line and page.
fn fail_to_start(py: Python<'_>, head: &Head, err: &PyErr, out: &mut impl Sink) {
    let request = [head.method(), " ", head.target()].concat();
    wsgi::exchange::log_app_error(py, &request, err);
    out.error_page(500);
}

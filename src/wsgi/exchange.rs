//! One request through the app: call it, then turn what it returns into framed bytes.
//!
//! The worker pulls: each [`Exchange::next`] appends bytes to send to a [`Sink`] and says
//! what comes next (more data, a file span for `sendfile`, or the end). So the same code
//! serves a blocking worker and an event loop that stops pulling while a socket is full.
//! The head and framing are copied into the sink; the app's body bytes are handed over as
//! the app's own `bytes` objects, which a sink may keep by reference instead of copying.
//! How far the body got on the wire lives in the [`Response`] behind `start_response`,
//! since `write()` frames and sends from inside the app's call, as the iterable's items.

use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyTuple};

use crate::hooks::{self, Hook};
use crate::http::chunked::{self, LAST_CHUNK};
use crate::http::response::{self, BodyMode, Encoder, Plan};
use crate::http::Head;
use crate::log::{self, LogLevel};
use crate::statsd;
use crate::wsgi::start_response::{Response, Wire};
use crate::wsgi::{access, FileWrapper, Input, StartResponse};

/// A region of an open file for the worker to send with `sendfile(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// The app's file, open until the exchange's `close()`.
    pub fd: RawFd,
    /// Where the next byte to send is in the file.
    pub offset: u64,
    /// Bytes still to send.
    pub len: u64,
}

/// What the worker does after sending the bytes `next` appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send, then call `next` again.
    Send,
    /// Send, then `sendfile` this span, then call `next` again.
    SendFile(FileSpan),
    /// Send; the response is complete. `keep_alive`: the connection may be reused.
    Done { keep_alive: bool },
    /// Send what is there, then close: the response cannot be completed.
    Abort,
    /// The app took the connection over (it raised `StopIteration` out of its call,
    /// gunicorn's "already handled", as Flask-Sock does after a WebSocket): nothing is
    /// sent and the connection is not reused.
    Handled,
}

/// Where [`Exchange::next`] puts the response, in order.
pub trait Sink {
    /// The buffer the head and framing bytes are appended to.
    fn framing(&mut self) -> &mut Vec<u8>;
    /// `data[range]`: body bytes, the app's own object (never empty).
    fn body(&mut self, data: &Bound<'_, PyBytes>, range: Range<usize>);
    /// Nothing is queued: a `write()` may go straight to the client without overtaking.
    fn is_empty(&self) -> bool;
    /// The response head, once, framed by `plan`: HTTP/1.1 bytes into [`Sink::framing`]
    /// by default (an HTTP/2 stream takes the status and headers instead).
    fn head(&mut self, status: &str, code: u16, headers: &[(String, String)], plan: Plan) {
        let fields = headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        ENCODER.encode_head(self.framing(), status, fields, code, plan);
    }
    /// gunicorn's error page for `status` instead of the app's response.
    fn error_page(&mut self, status: u16) {
        self.framing().extend_from_slice(&error_page(status));
    }
}

/// A plain buffer copies everything (the sync worker writes it out at once).
impl Sink for Vec<u8> {
    fn framing(&mut self) -> &mut Vec<u8> {
        self
    }

    fn body(&mut self, data: &Bound<'_, PyBytes>, range: Range<usize>) {
        self.extend_from_slice(&data.as_bytes()[range]);
    }

    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

/// The app's response body, as far as it was pulled.
enum Body {
    /// The app raised before returning an iterable.
    Failed(PyErr),
    /// The app raised `StopIteration` out of its call: it answered on the socket itself.
    Handled,
    Iter {
        /// What the app returned, whose `close()` runs at the end.
        iterable: Py<PyAny>,
        /// Its iterator, pulled one item per step.
        iter: Py<PyIterator>,
        /// A list or tuple: every item is there already, none makes the app wait.
        ready: bool,
    },
    /// A real file the worker will `sendfile`; `sent` once handed out.
    File {
        /// The `wsgi.file_wrapper`, whose `close()` runs at the end.
        iterable: Py<PyAny>,
        /// The file's region from its position.
        span: FileSpan,
        /// The span was handed to the worker.
        sent: bool,
    },
    Finished,
}

/// One request through the app, from the call to `close()`.
pub struct Exchange {
    /// The app's response so far, and its framing (shared with `write()`).
    start: Py<StartResponse>,
    /// `wsgi.input`: its framing errors decide the error status, its end keep-alive.
    input: Py<Input>,
    /// `GET /path?query` (method and RAW_URI), for log lines about this request, as
    /// gunicorn 27's "Error handling request GET /path" names it.
    request: String,
    /// What the app returned, and how far it was pulled.
    body: Body,
    /// For the access log line (when it is on).
    logged: Option<Logged>,
    /// The status actually sent when the app failed before its headers went out.
    error_status: Option<u16>,
}

impl Exchange {
    /// Calls the app. Its failure is kept and answered by the first `next`.
    pub fn call(
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        environ: Bound<'_, PyAny>,
        input: Py<Input>,
        wire: Wire,
        head: &Head,
    ) -> PyResult<Exchange> {
        let start = Py::new(py, StartResponse::new(input.clone_ref(py), wire))?;
        let mut exchange = Exchange {
            start,
            input,
            request: [head.method(), " ", head.target()].concat(),
            body: Body::Finished,
            logged: (access::enabled()
                || hooks::defined(Hook::PostRequest)
                || statsd::enabled()
                || crate::metrics::enabled())
            .then(|| {
                let environ = environ.cast::<PyDict>().ok()?.clone().unbind();
                let request_headers = access::capture(head);
                let in_flight = crate::metrics::Held::in_flight();
                Some(Logged { environ, started: Instant::now(), request_headers, in_flight })
            })
            .flatten(),
            error_status: None,
        };
        hooks::request_started(py, &environ);
        let called = app.call1((environ, exchange.start.bind(py)));
        // From here the worker's queue decides (see `step`).
        exchange.response(py).direct = false;
        exchange.body = match called {
            // gunicorn's sync and gthread workers catch it around the whole request and
            // close the connection without a response ("Closing connection.").
            Err(err) if err.is_instance_of::<PyStopIteration>(py) => Body::Handled,
            Err(err) => Body::Failed(err),
            Ok(iterable) => match exchange.body_of(py, iterable) {
                Ok(body) => body,
                Err(err) => Body::Failed(err),
            },
        };
        super::test_panic::panic_if_armed();
        Ok(exchange)
    }

    fn body_of(&mut self, py: Python<'_>, iterable: Bound<'_, PyAny>) -> PyResult<Body> {
        if let Ok(wrapper) = iterable.cast::<FileWrapper>() {
            if let Some(span) = file_span(py, wrapper.get()) {
                self.response(py).known_length = Some(span.len);
                return Ok(Body::File { iterable: iterable.unbind(), span, sent: false });
            }
        }
        let mut ready = true;
        let single = if let Ok(list) = iterable.cast::<PyList>() {
            (list.len() == 1).then(|| list.get_item(0)).transpose()?
        } else if let Ok(tuple) = iterable.cast::<PyTuple>() {
            (tuple.len() == 1).then(|| tuple.get_item(0)).transpose()?
        } else {
            ready = false;
            None
        };
        if let Some(bytes) = single.as_ref().and_then(|b| b.cast::<PyBytes>().ok()) {
            self.response(py).known_length = Some(bytes.as_bytes().len() as u64);
        }
        let iter = iterable.try_iter()?.unbind();
        Ok(Body::Iter { iterable: iterable.unbind(), iter, ready })
    }

    /// The response's state, locked briefly (never across Python code).
    fn response(&self, py: Python<'_>) -> std::sync::MutexGuard<'_, Response> {
        self.start.get().lock(py)
    }

    /// Whether the app took the connection over ([`Step::Handled`]).
    pub fn handled(&self) -> bool {
        matches!(self.body, Body::Handled)
    }

    /// Whether the next item may keep the app busy (a generator, not a list): what was
    /// produced so far should go out first, so a streamed response is not held back.
    pub fn streams(&self) -> bool {
        matches!(self.body, Body::Iter { ready: false, .. })
    }

    /// Appends the next bytes of the response to `out`.
    pub fn next(&mut self, py: Python<'_>, out: &mut impl Sink) -> Step {
        crate::worker::request_alive();
        match self.step(py, out) {
            Ok(step) => step,
            Err(err) => self.fail(py, err, out),
        }
    }

    fn step(&mut self, py: Python<'_>, out: &mut impl Sink) -> PyResult<Step> {
        self.emit_written(py, out)?;
        match &mut self.body {
            Body::Failed(_) => {
                let Body::Failed(err) = std::mem::replace(&mut self.body, Body::Finished) else {
                    unreachable!()
                };
                Err(err)
            }
            Body::Iter { iter, ready, .. } => {
                let (mut iter, ready) = (iter.bind(py).clone(), *ready);
                // A generator's code runs in `next()`: a write() there may send at once
                // only if nothing is queued ahead of it.
                if !ready {
                    self.response(py).direct = out.is_empty();
                }
                let item = iter.next();
                if !ready {
                    self.response(py).direct = false;
                    self.emit_written(py, out)?;
                }
                match item {
                    None => Ok(self.finish(py, out)),
                    Some(item) => {
                        let item = item?;
                        let bytes = item.cast::<PyBytes>().map_err(|_| {
                            PyRuntimeError::new_err(format!(
                                "the app's iterable yielded {}, not bytes",
                                item.get_type().name().map_or("?".into(), |n| n.to_string())
                            ))
                        })?;
                        self.response(py).frame(bytes, out)?;
                        Ok(Step::Send)
                    }
                }
            }
            Body::Handled => {
                tracing::debug!("{}: the app took the connection over", self.request);
                self.close(py)?;
                Ok(Step::Handled)
            }
            Body::File { span, sent: false, .. } => {
                let span = *span;
                self.send_span(py, span, out)
            }
            Body::File { span, .. } => {
                // A chunk was framed only around a span that held bytes.
                let framed = span.len > 0;
                let is_chunked =
                    self.response(py).plan.is_some_and(|p| p.body == BodyMode::Chunked);
                if framed && is_chunked {
                    out.framing().extend_from_slice(chunked::CHUNK_END);
                }
                Ok(self.finish(py, out))
            }
            Body::Finished => Ok(Step::Done { keep_alive: false }),
        }
    }

    /// The app's file, once: the head if not yet out, the span cut to a Content-Length,
    /// a chunk size line when chunked; the worker then sends it with `sendfile`.
    fn send_span(
        &mut self,
        py: Python<'_>,
        mut span: FileSpan,
        out: &mut impl Sink,
    ) -> PyResult<Step> {
        let mut response = self.start.get().lock(py);
        if response.plan.is_none() {
            response.write_head(out)?;
        }
        if let Some(Plan { body: BodyMode::Length(n), .. }) = response.plan {
            span.len = span.len.min(n.saturating_sub(response.sent));
        }
        let mode = response.plan.map(|p| p.body);
        if mode.is_some_and(|m| m != BodyMode::Empty) {
            response.sent += span.len;
        }
        drop(response);
        if let Body::File { sent, .. } = &mut self.body {
            *sent = true;
        }
        match mode {
            Some(BodyMode::Empty) | None => Ok(self.finish(py, out)),
            Some(mode) => {
                if mode == BodyMode::Chunked && span.len > 0 {
                    chunked::encode_chunk_size(span.len, out.framing());
                }
                Ok(Step::SendFile(span))
            }
        }
    }

    /// What `write()` kept while it could not send, framed ahead of what follows.
    fn emit_written(&mut self, py: Python<'_>, out: &mut impl Sink) -> PyResult<()> {
        let written = std::mem::take(&mut self.response(py).written);
        for data in written {
            self.response(py).frame(data.bind(py), out)?;
        }
        Ok(())
    }

    /// The iterable is exhausted: head if still unsent, final chunk, close().
    fn finish(&mut self, py: Python<'_>, out: &mut impl Sink) -> Step {
        let mut response = self.start.get().lock(py);
        if response.plan.is_none() {
            response.known_length.get_or_insert(0);
            if let Err(err) = response.write_head(out) {
                drop(response);
                return self.fail(py, err, out);
            }
        }
        let plan = response.plan.unwrap_or(Plan { body: BodyMode::Close, keep_alive: false });
        let sent = response.sent;
        drop(response);
        let mut keep_alive = plan.keep_alive && self.input.get().complete();
        match plan.body {
            BodyMode::Chunked => out.framing().extend_from_slice(LAST_CHUNK),
            BodyMode::Length(n) if sent < n => {
                tracing::warn!("{}: the app sent {sent} of its Content-Length {n}", self.request);
                keep_alive = false;
            }
            _ => {}
        }
        match self.close(py) {
            Ok(()) => Step::Done { keep_alive },
            Err(err) => {
                log_app_error(py, &self.request, &err);
                Step::Done { keep_alive: false }
            }
        }
    }

    /// The app failed: a 500 (or the body's 4xx) if nothing was sent yet, else close.
    fn fail(&mut self, py: Python<'_>, err: PyErr, out: &mut impl Sink) -> Step {
        let (headers_sent, client_gone) = {
            let response = self.response(py);
            (response.headers_sent, response.client_gone)
        };
        let body_error = self.input.get().error();
        match &body_error {
            Some(e) => {
                tracing::warn!(
                    "Invalid request body for {}: {e} (the app raised {err})",
                    self.request
                )
            }
            // gunicorn: "Ignoring EPIPE" at debug level.
            None if client_gone => {
                tracing::debug!("Client went away during {}: the app raised {err}", self.request)
            }
            None => log_app_error(py, &self.request, &err),
        }
        let status = body_error.map_or_else(|| failure_status(py, &err), |e| e.status());
        if !headers_sent {
            self.error_status = Some(status);
        }
        if let Err(close_err) = self.close(py) {
            log_app_error(py, &self.request, &close_err);
        }
        if headers_sent {
            return Step::Abort;
        }
        out.error_page(status);
        Step::Done { keep_alive: false }
    }

    /// Calls the iterable's `close()` once, whatever happened (PEP 3333); writes the
    /// access log line.
    pub fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.start.get().close_stream(py);
        self.log_access(py);
        let iterable = match std::mem::replace(&mut self.body, Body::Finished) {
            Body::Iter { iterable, .. } | Body::File { iterable, .. } => iterable,
            Body::Failed(_) | Body::Handled | Body::Finished => return Ok(()),
        };
        let iterable = iterable.bind(py);
        // A list or tuple (what most apps return) has no `close`; asking raises and formats
        // an AttributeError, the dearest step of a hello-world request.
        if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
            return Ok(());
        }
        if iterable.hasattr(intern!(py, "close"))? {
            iterable.call_method0(intern!(py, "close"))?;
        }
        Ok(())
    }
}

/// What an access log line is made from, kept from the call to the end.
struct Logged {
    /// The request's environ, for the log format and `post_request`.
    environ: Py<PyDict>,
    /// When the app was called: the line's request time.
    started: Instant,
    /// The request headers the log format names.
    request_headers: Vec<(String, String)>,
    /// `--metrics-bind`'s in-flight gauge: counted until the line is written (or the
    /// exchange dropped).
    #[allow(dead_code)]
    in_flight: crate::metrics::Held,
}

impl Exchange {
    /// The access log line, once, for a response that got a status.
    fn log_access(&mut self, py: Python<'_>) {
        let Some(logged) = self.logged.take() else { return };
        if !access::enabled() && !statsd::enabled() && !hooks::defined(Hook::PostRequest) {
            return self.count_only(py, &logged);
        }
        // Copied out: the lock is never held across Python code (the post_request hook).
        let (status, headers, sent) = {
            let start = self.start.get().lock(py);
            (start.status.clone(), start.headers.clone(), start.sent)
        };
        let record =
            |environ: &Bound<'_, PyDict>, status: &str, headers: &[(String, String)], sent| {
                access::write(&access::Record {
                    environ,
                    status,
                    headers,
                    request_headers: &logged.request_headers,
                    sent,
                    elapsed: logged.started.elapsed(),
                });
                if hooks::defined(Hook::PostRequest) {
                    let args = (logged.environ.bind(py), status, headers.to_vec(), sent);
                    hooks::call(py, Hook::PostRequest, args);
                }
            };
        match (self.error_status, &status) {
            // gunicorn logs its error page from a bare environ (handle_error's
            // default_environ), with no response headers and nothing counted as sent.
            (Some(code), _) => {
                let status = format!("{code} {}", crate::http::reason(code));
                if let Ok(bare) = access::bare_environ(logged.environ.bind(py)) {
                    record(&bare, &status, &[], 0);
                }
            }
            (None, Some(status)) => record(logged.environ.bind(py), status, &headers, sent),
            (None, None) => {}
        }
    }
}

impl Exchange {
    /// `--metrics-bind` alone needs the record: the counters, without the copies of the
    /// status and headers a log line or the post_request hook takes.
    fn count_only(&self, py: Python<'_>, logged: &Logged) {
        let method = self.request.split(' ').next().unwrap_or("");
        let elapsed = logged.started.elapsed();
        match self.error_status {
            Some(code) => crate::metrics::request(method, &code.to_string(), elapsed),
            None => {
                let start = self.start.get().lock(py);
                if let Some(status) = &start.status {
                    crate::metrics::request(method, status, elapsed);
                }
            }
        }
    }
}

impl Response {
    /// Frames body bytes; the head goes first, once there is a non-empty chunk (PEP 3333).
    pub fn frame(
        &mut self,
        data: &Bound<'_, PyBytes>,
        out: &mut (impl Sink + ?Sized),
    ) -> PyResult<()> {
        let len = data.as_bytes().len();
        if len == 0 {
            return Ok(());
        }
        let plan = match self.plan {
            Some(plan) => plan,
            None => self.write_head(out)?,
        };
        match plan.body {
            BodyMode::Empty => {}
            BodyMode::Length(n) => {
                let room = n.saturating_sub(self.sent);
                let take = room.min(len as u64) as usize;
                if take > 0 {
                    out.body(data, 0..take);
                }
                self.sent += take as u64;
            }
            // One chunk per item, as `http::chunked::encode_chunk` frames it, the data
            // handed over rather than copied.
            BodyMode::Chunked => {
                chunked::encode_chunk_size(len as u64, out.framing());
                out.body(data, 0..len);
                out.framing().extend_from_slice(chunked::CHUNK_END);
                self.sent += len as u64;
            }
            BodyMode::Close => {
                out.body(data, 0..len);
                self.sent += len as u64;
            }
        }
        Ok(())
    }

    /// The head, once; from then on start_response may only re-raise (`headers_sent`).
    pub fn write_head(&mut self, out: &mut (impl Sink + ?Sized)) -> PyResult<Plan> {
        let Some(status) = self.status.as_deref() else {
            return Err(PyRuntimeError::new_err("the app did not call start_response()"));
        };
        // Decided when the head goes out: a body the app has not read whole by now, or a
        // stop that began while the app ran, ends the connection after this response.
        let mut req = self.req;
        req.keep_alive &= self.input.get().complete() && !self.stopping();
        let plan = response::plan(self.code, self.content_length.or(self.known_length), req);
        out.head(status, self.code, &self.headers, plan);
        self.headers_sent = true;
        self.plan = Some(plan);
        Ok(plan)
    }
}

/// A file_wrapper around a real, regular file: the span from its current position.
fn file_span(py: Python<'_>, wrapper: &FileWrapper) -> Option<FileSpan> {
    let file = wrapper.filelike.bind(py);
    let fd: RawFd = file.call_method0("fileno").ok()?.extract().ok()?;
    // Python's buffered files know their logical position better than the descriptor.
    let offset: u64 = match file.call_method0("tell") {
        Ok(pos) => pos.extract().ok()?,
        // SAFETY: lseek on a descriptor the app handed us; a bad one only returns -1.
        Err(_) => u64::try_from(unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }).ok()?,
    };
    // SAFETY: fstat writes into a zeroed stat of the right type; a bad fd returns -1.
    let stat = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut stat) == 0).then_some(stat)?
    };
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let len = (stat.st_size as u64).saturating_sub(offset);
    Some(FileSpan { fd, offset, len })
}

/// The server's response policy: `Server: ferricorn` and `Date` unless the app sent
/// them, and the app's hop-by-hop headers dropped (PEP 3333, gunicorn's `is_hoppish`).
pub const ENCODER: Encoder<'static> =
    Encoder { server: Some("ferricorn"), date: true, drop_hop_by_hop: true };

/// gunicorn's error page: short HTML naming the status, as [`ENCODER`] frames it.
pub fn error_page(status: u16) -> Vec<u8> {
    ENCODER.error_page(status)
}

/// 504 for `--request-timeout`'s `RequestTimeout` (the deadline passed), else 500.
fn failure_status(py: Python<'_>, err: &PyErr) -> u16 {
    let timed_out = py
        .import("ferricorn._worker")
        .and_then(|m| m.getattr("RequestTimeout"))
        .is_ok_and(|class| err.value(py).is_instance(&class).unwrap_or(false));
    if timed_out {
        504
    } else {
        500
    }
}

/// "Error handling request GET /path" and the app's traceback, as gunicorn logs it
/// (through Python, its `log.exception(...)`, the record carrying the exception).
pub fn log_app_error(py: Python<'_>, request: &str, err: &PyErr) {
    statsd::increment("gunicorn.log.exception");
    if crate::pylog::app_error(py, request, err) {
        return;
    }
    log::write_uncounted(
        LogLevel::Error,
        &format!("Error handling request {request}\n{}", traceback(py, err)),
    );
}

/// The Python traceback of an error, formatted as Python prints it.
pub fn traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            let args = (err.get_type(py), err.value(py), err.traceback(py));
            tb.call_method1("format_exception", args)
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_owned(),
        Err(_) => err.to_string(),
    }
}

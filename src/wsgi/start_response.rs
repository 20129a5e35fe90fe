//! `start_response` and the `write()` callable it returns (PEP 3333).
//!
//! Status and headers are validated when the app passes them, so a bad header fails in
//! the app's own frame (its traceback points at the culprit) and never reaches the wire.
//!
//! `write()` sends at once (PEP 3333: it may not return before its data is sent or
//! buffered for sending without delay): the head the first time, then the data, framed
//! as the iterable's would be, through the [`Stream`] the worker provides.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::http::response::{self, Plan, RequestInfo};
use crate::wsgi::input::lock;
use crate::wsgi::{Input, Sink};

/// Where `write()` sends its bytes: the worker's connection (this layer never touches a
/// socket, as [`crate::wsgi::BodySource`] for the input). Called without the GIL.
pub trait Stream: Send {
    /// Where `write()` frames its bytes when the stream frames the response itself (an
    /// HTTP/2 stream: its head and DATA); `None`: HTTP/1.1 bytes, for [`Stream::send`].
    fn framer(&mut self) -> Option<&mut dyn Sink> {
        None
    }
    /// Sends all of `data` (or, with a [`Stream::framer`], what it holds) now, waiting
    /// for the client (bounded by `--read-timeout`). An error means the client is gone.
    fn send(&mut self, data: &[u8]) -> io::Result<()>;
}

/// What the worker says about the connection a response goes to.
pub struct Wire {
    /// The request's version, method and keep-alive wish: they decide the framing.
    pub req: RequestInfo,
    /// Set when the worker is stopping: the response then says `Connection: close`.
    pub stopping: Option<Arc<AtomicBool>>,
    /// `write()`'s way to the client; without one, its data waits for the iterable's.
    pub stream: Option<Box<dyn Stream>>,
    /// The worker still has bytes queued for this connection (a pipelined response):
    /// `write()` may not overtake them, so it buffers until they are sent.
    pub queued: bool,
}

/// `start_response`. The app may call it (or `write()`) from any of its threads, so its
/// state sits behind a lock, held only briefly and never across Python code.
#[pyclass(module = "ferricorn", frozen)]
pub struct StartResponse {
    /// The status and headers once given, the framing plan and bytes sent.
    state: Mutex<Response>,
    /// Taken before `state` by `write()` and held while it sends (the GIL released), so
    /// concurrent writes go out in the order they were framed.
    stream: Mutex<Option<Box<dyn Stream>>>,
}

/// What the app said about its response, and how far its body got on the wire.
pub struct Response {
    /// The status line after `HTTP/1.1 `, e.g. `200 OK`; None until start_response runs.
    pub status: Option<String>,
    /// The status code of `status`.
    pub code: u16,
    /// The app's headers, validated.
    pub headers: Vec<(String, String)>,
    /// The app's own Content-Length, which bounds the body.
    pub content_length: Option<u64>,
    /// Set by the worker once the head is on its way; start_response may no longer change it.
    pub headers_sent: bool,
    /// Data given to `write()` while it could not send at once (bytes queued ahead of it),
    /// framed by the exchange ahead of the iterable's next item.
    pub written: Vec<Py<PyBytes>>,
    /// `write()` may send at once: nothing of this connection is queued in the worker.
    pub direct: bool,
    /// A `write()` to the client failed: later ones fail at once, and the app's error
    /// that follows is the client leaving, not a bug.
    pub client_gone: bool,
    /// The request facts that decide framing.
    pub req: RequestInfo,
    /// The request body, read whole or not when the head goes out (keep-alive).
    pub input: Py<Input>,
    /// Set when the worker is stopping.
    pub stopping: Option<Arc<AtomicBool>>,
    /// Set when the head is written; framing for everything after it.
    pub plan: Option<Plan>,
    /// Body bytes framed so far (before chunk framing).
    pub sent: u64,
    /// The length the server worked out when the app gave none (one-item list, file).
    pub known_length: Option<u64>,
}

impl Response {
    /// Whether a graceful stop began (the response then ends the connection).
    pub fn stopping(&self) -> bool {
        self.stopping.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

impl StartResponse {
    pub fn new(input: Py<Input>, wire: Wire) -> StartResponse {
        let direct = wire.stream.is_some() && !wire.queued;
        let state = Response {
            status: None,
            code: 0,
            headers: Vec::new(),
            content_length: None,
            headers_sent: false,
            written: Vec::new(),
            direct,
            client_gone: false,
            req: wire.req,
            input,
            stopping: wire.stopping,
            plan: None,
            sent: 0,
            known_length: None,
        };
        StartResponse { state: Mutex::new(state), stream: Mutex::new(wire.stream) }
    }

    /// Drops the way to the client: the app may keep `write` after the response.
    pub fn close_stream(&self, py: Python<'_>) {
        lock(py, &self.stream).take();
    }

    /// The response's state, for the server and for the app's calls.
    pub fn lock(&self, py: Python<'_>) -> MutexGuard<'_, Response> {
        lock(py, &self.state)
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Writer> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let this = slf.get().lock(slf.py());
            match (&this.status, exc_info) {
                // PEP 3333: once headers are out, the app's error is re-raised for it.
                (_, Some(info)) if this.headers_sent => return Err(reraise(info)),
                (Some(_), None) => {
                    return Err(PyAssertionError::new_err(
                        "start_response() called again without exc_info",
                    ))
                }
                _ => {}
            }
        }
        let (status, code) = parse_status(status)?;
        let (headers, content_length) = parse_headers(headers)?;
        let mut this = slf.get().lock(slf.py());
        this.status = Some(status);
        this.code = code;
        this.headers = headers;
        this.content_length = content_length;
        Ok(Writer { start: slf.clone().unbind() })
    }
}

fn reraise(exc_info: &Bound<'_, PyAny>) -> PyErr {
    match exc_info.cast::<PyTuple>().ok().and_then(|t| t.get_item(1).ok()) {
        Some(value) => PyErr::from_value(value),
        None => PyTypeError::new_err("exc_info must be a sys.exc_info() tuple"),
    }
}

fn parse_status(status: &Bound<'_, PyAny>) -> PyResult<(String, u16)> {
    let status = status
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("status must be a str, like '200 OK'"))?
        .to_str()?
        .to_owned();
    if !is_latin1(&status) {
        return Err(PyValueError::new_err(format!("status {status:?} is not latin-1")));
    }
    let code = response::parse_status(&status).map_err(PyValueError::new_err)?;
    Ok((status, code))
}

/// The app's headers, validated, and its Content-Length if it gave one.
type Headers = (Vec<(String, String)>, Option<u64>);

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<Headers> {
    let mut out = Vec::new();
    let mut content_length = None;
    for item in headers.try_iter()? {
        let item = item?;
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| PyTypeError::new_err("each header must be a (name, value) tuple"))?;
        let name = header_str(&pair.get_item(0)?, "name")?;
        let value = header_str(&pair.get_item(1)?, "value")?;
        response::validate_header(&name, &value)
            .map_err(|why| PyValueError::new_err(format!("{why}: {name:?}")))?;
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(response::parse_content_length(&value).ok_or_else(|| {
                PyValueError::new_err(format!("invalid Content-Length {value:?}"))
            })?);
        }
        out.push((name, value));
    }
    Ok((out, content_length))
}

/// Header strings must be latin-1 text (PEP 3333 "native strings").
fn header_str(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("header {what} must be a str")))?
        .to_str()?;
    if !is_latin1(s) {
        return Err(PyValueError::new_err(format!("header {what} {s:?} is not latin-1")));
    }
    Ok(s.to_owned())
}

/// Every character at most U+00FF. Per header string of every response: the ASCII test
/// (whole words at a time) settles nearly all of them without decoding a character.
fn is_latin1(s: &str) -> bool {
    s.is_ascii() || s.chars().all(|c| c as u32 <= 0xff)
}

/// The `write()` callable: legacy streaming for apps that predate iterables.
#[pyclass(module = "ferricorn", frozen)]
pub struct Writer {
    /// Where the written bytes go.
    start: Py<StartResponse>,
}

#[pymethods]
impl Writer {
    /// Frames `data` (the head first, once) and sends it before returning, with the GIL
    /// released while the socket is full. While bytes of this connection are queued in the
    /// worker, it is kept instead and goes out after them. A client that left makes it
    /// raise the socket's error (`BrokenPipeError`, ...), as gunicorn's does.
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes =
            data.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        let start = self.start.get();
        let mut stream = lock(py, &start.stream);
        let mut frame = Vec::new();
        {
            let mut this = start.lock(py);
            if this.client_gone {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
            }
            if stream.is_none() || !this.direct || !this.written.is_empty() {
                this.written.push(bytes.clone().unbind());
                return Ok(());
            }
            match stream.as_mut().and_then(|s| s.framer()) {
                Some(framer) => this.frame(bytes, framer)?,
                None => this.frame(bytes, &mut frame)?,
            }
        }
        let Some(stream) = stream.as_mut() else { return Ok(()) };
        if frame.is_empty() && stream.framer().is_none() {
            return Ok(());
        }
        py.detach(|| stream.send(&frame)).map_err(|err| {
            start.lock(py).client_gone = true;
            err.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use pyo3::types::PyList;

    /// A connection that records what it was given, or fails like a reset one.
    struct Recorder {
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
        fail: bool,
    }

    impl Stream for Recorder {
        fn send(&mut self, data: &[u8]) -> io::Result<()> {
            if self.fail {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            self.sent.lock().unwrap().push(data.to_vec());
            Ok(())
        }
    }

    fn start(py: Python<'_>, fail: bool, queued: bool) -> (Bound<'_, StartResponse>, Recorder) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder { sent: Arc::clone(&sent), fail };
        let wire = Wire {
            req: RequestInfo { minor: 1, head_request: false, keep_alive: true },
            stopping: None,
            stream: Some(Box::new(Recorder { sent, fail })),
            queued,
        };
        let input = Py::new(py, Input::buffered(BytesMut::new())).unwrap();
        (Bound::new(py, StartResponse::new(input, wire)).unwrap(), recorder)
    }

    fn begin<'py>(start: &Bound<'py, StartResponse>) -> Bound<'py, PyAny> {
        let headers = PyList::new(start.py(), [("Content-Type", "text/plain")]).unwrap();
        start.call1(("200 OK", headers)).unwrap()
    }

    #[test]
    fn regression_write_sends_the_head_and_each_chunk_before_it_returns() {
        Python::initialize();
        Python::attach(|py| {
            let (start, recorder) = start(py, false, false);
            let write = begin(&start);
            write.call1((PyBytes::new(py, b"first"),)).unwrap();
            write.call1((PyBytes::new(py, b""),)).unwrap(); // nothing to send
            write.call1((PyBytes::new(py, b"second!"),)).unwrap();
            let sent = recorder.sent.lock().unwrap().clone();
            assert_eq!(sent.len(), 2, "{sent:?}");
            assert!(sent[0].starts_with(b"HTTP/1.1 200 OK\r\n"));
            assert!(sent[0].ends_with(b"\r\n\r\n5\r\nfirst\r\n"), "{:?}", sent[0]);
            assert_eq!(sent[1], b"7\r\nsecond!\r\n");
            let state = start.get().lock(py);
            assert!(state.headers_sent && state.written.is_empty());
            assert_eq!(state.sent, 12);
        });
    }

    #[test]
    fn write_behind_queued_bytes_waits_for_them() {
        Python::initialize();
        Python::attach(|py| {
            let (start, recorder) = start(py, false, true);
            begin(&start).call1((PyBytes::new(py, b"later"),)).unwrap();
            assert!(recorder.sent.lock().unwrap().is_empty());
            let state = start.get().lock(py);
            assert!(!state.headers_sent);
            assert_eq!(state.written.len(), 1);
        });
    }

    #[test]
    fn write_to_a_client_that_left_raises_then_keeps_raising() {
        Python::initialize();
        Python::attach(|py| {
            let (start, _) = start(py, true, false);
            let write = begin(&start);
            for _ in 0..2 {
                let err = write.call1((PyBytes::new(py, b"x"),)).unwrap_err();
                assert!(err.is_instance_of::<pyo3::exceptions::PyOSError>(py), "{err}");
            }
            assert!(start.get().lock(py).client_gone);
        });
    }
}

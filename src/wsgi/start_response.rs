//! `start_response` and the `write()` callable it returns (PEP 3333).
//!
//! Status and headers are validated when the app passes them, so a bad header fails in
//! the app's own frame (its traceback points at the culprit) and never reaches the wire.

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::http::response;
use crate::wsgi::input::lock;

/// `start_response`. The app may call it (or `write()`) from any of its threads, so its
/// state sits behind a lock, held only briefly and never across Python code.
#[pyclass(module = "ferricorn", frozen)]
#[derive(Default)]
pub struct StartResponse {
    state: Mutex<Response>,
}

/// What the app said about its response.
#[derive(Default)]
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
    /// Data given to `write()`, sent ahead of the iterable's (PEP 3333 lets it be buffered).
    pub written: Vec<Py<PyBytes>>,
}

impl StartResponse {
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
    if status.chars().any(|c| c as u32 > 0xff) {
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
    if s.chars().any(|c| c as u32 > 0xff) {
        return Err(PyValueError::new_err(format!("header {what} {s:?} is not latin-1")));
    }
    Ok(s.to_owned())
}

/// The `write()` callable: legacy streaming for apps that predate iterables.
#[pyclass(module = "ferricorn", frozen)]
pub struct Writer {
    /// Where the written bytes go.
    start: Py<StartResponse>,
}

#[pymethods]
impl Writer {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes =
            data.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        self.start.get().lock(py).written.push(bytes.clone().unbind());
        Ok(())
    }
}

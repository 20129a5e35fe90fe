//! The ASGI 3.0 `http` and `websocket` connection scopes of a request, built from its
//! head with the GIL held: a hot path (once per request), so keys are interned and header
//! names are lower-cased on the stack.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::conn::Arrived;
use crate::http::request::split_target;
use crate::http::websocket::Message;
use crate::listener::Peer;
use crate::wsgi::environ::percent_decode;

/// What a scope needs beyond the request: the worker's constants.
pub struct Place {
    /// `--root-path`.
    pub root_path: String,
    /// Each listener's (host, port) as `server`.
    pub servers: Vec<(String, String)>,
    /// Served over TLS: `https` unless a trusted header says otherwise.
    pub tls: bool,
}

/// The `http` scope of one request, or the `websocket` scope of an upgrade (no `method`,
/// `ws`/`wss`, the offered `subprotocols`). A hot path.
pub fn of<'py>(
    py: Python<'py>,
    arrived: &Arrived,
    peer: &Peer,
    listener: usize,
    place: &Place,
) -> PyResult<Bound<'py, PyDict>> {
    let head = &arrived.head;
    let scope = PyDict::new(py);
    let websocket = arrived.subprotocols.as_ref();
    let kind = if websocket.is_some() { intern!(py, "websocket") } else { intern!(py, "http") };
    scope.set_item(intern!(py, "type"), kind)?;
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), intern!(py, "2.4"))?;
    scope.set_item(intern!(py, "asgi"), asgi)?;
    let version = match head.version {
        (1, 0) => intern!(py, "1.0"),
        (2, _) => intern!(py, "2"),
        _ => intern!(py, "1.1"),
    };
    scope.set_item(intern!(py, "http_version"), version)?;
    let forwarded = &arrived.forwarded;
    let https = forwarded.https || (place.tls && !forwarded.http);
    let scheme = match (websocket, https) {
        (None, false) => intern!(py, "http"),
        (None, true) => intern!(py, "https"),
        (Some(_), false) => intern!(py, "ws"),
        (Some(_), true) => intern!(py, "wss"),
    };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    match websocket {
        None => scope.set_item(intern!(py, "method"), method(py, head.method()))?,
        Some(offered) => scope.set_item(intern!(py, "subprotocols"), offered)?,
    }
    let (path, query) = split_target(head.target());
    let decoded = path.contains('%').then(|| percent_decode(path.as_bytes()));
    let text = match &decoded {
        Some(bytes) => String::from_utf8_lossy(bytes),
        None => std::borrow::Cow::Borrowed(path),
    };
    scope.set_item(intern!(py, "path"), PyString::new(py, &text))?;
    scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, path.as_bytes()))?;
    scope.set_item(intern!(py, "query_string"), PyBytes::new(py, query.as_bytes()))?;
    let root = forwarded.script_name.as_deref().unwrap_or(&place.root_path);
    scope.set_item(intern!(py, "root_path"), root)?;
    scope.set_item(intern!(py, "headers"), headers(py, arrived)?)?;
    let client = forwarded.remote.as_ref().unwrap_or(peer);
    scope.set_item(intern!(py, "client"), address(py, &client.addr, &client.port)?)?;
    let server = place.servers.get(listener).map(|(h, p)| address(py, h, p)).transpose()?;
    scope.set_item(intern!(py, "server"), server)?;
    Ok(scope)
}

/// The common methods interned; others as sent.
fn method<'py>(py: Python<'py>, method: &str) -> Bound<'py, PyString> {
    match method {
        "GET" => intern!(py, "GET").clone(),
        "POST" => intern!(py, "POST").clone(),
        "HEAD" => intern!(py, "HEAD").clone(),
        _ => PyString::new(py, method),
    }
}

/// `[(name, value), ...]`, names lower-cased (ASGI: "header names should be lowercased").
fn headers<'py>(py: Python<'py>, arrived: &Arrived) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    let mut lower = [0u8; 64];
    for (name, value) in arrived.head.fields() {
        let name = match name.len() <= lower.len() {
            true => {
                let buf = &mut lower[..name.len()];
                buf.copy_from_slice(name);
                buf.make_ascii_lowercase();
                PyBytes::new(py, buf)
            }
            false => PyBytes::new(py, &name.to_ascii_lowercase()),
        };
        list.append(PyTuple::new(py, [name, PyBytes::new(py, value)])?)?;
    }
    Ok(list)
}

/// `(host, port)`; a unix socket's peer (no address) is `None`, its server `(path, None)`.
fn address<'py>(py: Python<'py>, host: &str, port: &str) -> PyResult<Bound<'py, PyAny>> {
    if host.is_empty() {
        return Ok(py.None().into_bound(py));
    }
    let port: Option<u16> = port.parse().ok();
    Ok((host, port).into_pyobject(py)?.into_any())
}

/// `websocket.receive`: `text` (a str) or `bytes`, the other key absent. A hot path.
pub fn message(py: Python<'_>, message: Message) -> PyResult<Bound<'_, PyDict>> {
    let event = PyDict::new(py);
    event.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
    match message {
        Message::Text(text) => event.set_item(intern!(py, "text"), PyString::new(py, &text))?,
        Message::Binary(data) => event.set_item(intern!(py, "bytes"), PyBytes::new(py, &data))?,
        // Control frames are answered in Rust and never reach the app.
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
    }
    Ok(event)
}

/// `websocket.disconnect` with the close code (1006 for a connection lost) and reason.
pub fn disconnect<'py>(py: Python<'py>, code: u16, reason: &str) -> PyResult<Bound<'py, PyDict>> {
    let event = PyDict::new(py);
    event.set_item(intern!(py, "type"), intern!(py, "websocket.disconnect"))?;
    event.set_item(intern!(py, "code"), code)?;
    event.set_item(intern!(py, "reason"), reason)?;
    Ok(event)
}
